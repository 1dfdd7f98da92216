//! ListQueues: a tenant's queues with their job counts per status, read from the counts that
//! `put_job` keeps (queue_counts.rs), never by scanning jobs.

use std::collections::BTreeMap;

use super::queue_counts::decode_counts;
use super::{Shard, Step};
use crate::error::Result;
use crate::keys;
use crate::lifecycle::JobState;
use crate::proto::wire;

impl Shard {
    pub(super) async fn list_queues(
        &mut self,
        st: &mut Step,
        tenant: &str,
    ) -> Result<wire::ListQueuesResponse> {
        self.flush_counts(st).await?;
        let rows = st
            .txn
            .scan_prefix(&self.db, &keys::queue_counts_prefix(tenant))
            .await?;
        let mut queues = Vec::with_capacity(rows.len());
        for (key, value) in rows {
            let (_, name) = keys::parse_queue_counts(&key)?;
            let counts = decode_counts(&value)?;
            queues.push(wire::QueueStats {
                name,
                counts: JobState::ALL
                    .iter()
                    .zip(counts)
                    .map(|(s, n)| (s.name().to_string(), n))
                    .collect::<BTreeMap<_, _>>(),
                paused: false,
            });
        }
        Ok(wire::ListQueuesResponse { queues })
    }
}
