//! Timers: scheduled jobs coming due (moved to READY and admitted to memory), leases running
//! out, and flow control's (schedule ticks, expiries, rate-limit tokens), fired at the start
//! and end of each step.

use super::{Shard, Step};
use crate::error::Result;

impl Shard {
    pub(super) async fn fire_timers(&mut self, st: &mut Step) {
        // Ticks first: a tick's job due now is promoted below, in the same step.
        if let Err(e) = self.fire_schedules(st).await {
            tracing::error!("firing schedules failed: {e}");
            self.health.fail(e.to_string());
        }
        self.promote_or_rebuild(st).await;
        for (_, lease) in self.running.take_expired(st.now) {
            self.expire_lease(st, lease);
        }
        if let Err(e) = self.fire_expiries(st).await {
            tracing::error!("expiring jobs failed: {e}");
            self.health.fail(e.to_string());
        }
        self.fire_rate_limits(st);
        if !st.due_now.is_empty() {
            // An expiry's retry may be due at once: admitted in this step, like any due job.
            self.promote_or_rebuild(st).await;
        }
    }

    async fn promote_or_rebuild(&mut self, st: &mut Step) {
        if let Err(e) = self.promote_due(st).await {
            // Memory may now lack entries the store holds: rebuild before serving again.
            tracing::error!("promoting due jobs failed: {e}");
            self.health.fail(e.to_string());
        }
    }

    /// Moves the timers that came due to READY, and admits them to memory with the jobs the
    /// step queued due now.
    async fn promote_due(&mut self, st: &mut Step) -> Result<()> {
        let timers = self.take_due_timers(st).await?;
        let mut due = std::mem::take(&mut st.due_now);
        if !timers.is_empty() {
            due.extend(self.promote(st, timers).await?);
        }
        if due.is_empty() {
            return Ok(());
        }
        self.admit_due(st, due).await
    }
}
