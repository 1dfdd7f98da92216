//! ListQueues: a tenant's queues with their job counts per status, read from the counts that
//! `put_job` keeps (queue_counts.rs), never by scanning jobs, and whether each is paused
//! (pause_queue.rs). PauseQueue and ResumeQueue answer one queue the same way.

use std::collections::BTreeMap;

use super::queue_counts::{decode_counts, Counts};
use super::{Shard, Step};
use crate::error::Result;
use crate::keys;
use crate::lifecycle::JobState;
use crate::proto::wire;

/// One queue as ListQueues, PauseQueue and ResumeQueue answer it: a count for each of the six
/// status names (0 included), and the pause.
fn queue_stats(name: String, counts: Counts, paused: bool) -> wire::QueueStats {
    wire::QueueStats {
        name,
        counts: JobState::ALL
            .iter()
            .zip(counts)
            .map(|(s, n)| (s.name().to_string(), n))
            .collect::<BTreeMap<_, _>>(),
        paused,
    }
}

impl Shard {
    /// The tenant's queues by name: every queue that has jobs, and every paused one (a paused
    /// queue without jobs shows zero counts).
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
        let mut queues = BTreeMap::new();
        for (key, value) in rows {
            let (_, name) = keys::parse_queue_counts(&key)?;
            queues.insert(name, decode_counts(&value)?);
        }
        // Paused queues are few (a PAUSED entry each, loaded in memory when the shard opens);
        // the tenant's are one short prefix of the store.
        let paused = st
            .txn
            .scan_prefix(&self.db, &keys::paused_prefix(tenant))
            .await?;
        for (key, _) in paused {
            let (_, name) = keys::parse_paused(&key)?;
            queues.entry(name).or_insert_with(Counts::default);
        }
        let queues = queues
            .into_iter()
            .map(|(name, counts)| {
                let paused = self.ready.is_paused(&name, tenant);
                queue_stats(name, counts, paused)
            })
            .collect();
        Ok(wire::ListQueuesResponse { queues })
    }

    /// One queue of a tenant, as this step leaves it (PauseQueue, ResumeQueue).
    pub(super) async fn queue_stats(
        &mut self,
        st: &mut Step,
        tenant: &str,
        queue: &str,
    ) -> Result<wire::QueueStats> {
        self.flush_counts(st).await?;
        let counts = self
            .read_counts(st, &keys::queue_counts(tenant, queue))
            .await?;
        let paused = self.ready.is_paused(queue, tenant);
        Ok(queue_stats(queue.to_string(), counts, paused))
    }
}
