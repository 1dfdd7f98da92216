//! Admin.GetStats (the shard's gauges) and Admin.GetConcurrencyKey (one key's slot accounting).

use std::collections::BTreeMap;

use super::Shard;
use crate::proto::admin;

impl Shard {
    pub(super) fn get_stats(&self) -> BTreeMap<String, i64> {
        BTreeMap::from([
            ("ready".to_string(), self.counts.ready() as i64),
            ("ready_in_memory".to_string(), self.ready.in_memory() as i64),
            ("scheduled".to_string(), self.counts.scheduled() as i64),
            ("scheduled_in_memory".to_string(), self.timers.len() as i64),
            ("running".to_string(), self.running.len() as i64),
            ("lease_waiters".to_string(), self.parked_leases() as i64),
            ("job_waiters".to_string(), self.waiters.len() as i64),
            ("worker_sessions".to_string(), self.sessions.len() as i64),
            (
                "concurrency_keys".to_string(),
                self.conc.keys_in_use() as i64,
            ),
            (
                "rate_limit_keys".to_string(),
                self.conc.rate_keys_in_use() as i64,
            ),
            ("key_waiters".to_string(), self.conc.waiters() as i64),
            (
                "paused_queues".to_string(),
                self.ready.paused_count() as i64,
            ),
            ("expiries_in_memory".to_string(), self.expiries.len() as i64),
            (
                "schedules_in_memory".to_string(),
                self.schedules.len() as i64,
            ),
            ("schedule_ticks".to_string(), self.ticks_fired as i64),
        ])
    }

    /// The slot accounting of one concurrency key.
    pub(super) fn get_concurrency_key(
        &self,
        tenant: &str,
        key: &str,
    ) -> admin::ConcurrencyKeyState {
        let (limit, holders, reserved, waiters) = self.conc.describe(tenant, key);
        admin::ConcurrencyKeyState {
            limit,
            holders,
            reserved,
            waiters,
        }
    }
}
