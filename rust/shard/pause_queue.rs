//! PauseQueue and ResumeQueue (docs/api.md#pausequeue-and-resumequeue): a paused queue of a
//! tenant leases nothing and keeps accepting jobs; its jobs keep their place and their status.
//!
//! The pause is durable (a PAUSED entry, loaded when the shard opens) and idempotent. In memory
//! the ready index sets the queue's groups of that tenant aside (ready.rs), so leases, parked
//! long-polls and worker sessions, which all take from the ready index, skip them without
//! looking. A paused job holds no concurrency slot or token reservation: pausing gives them
//! back to the next in line, resuming admits the jobs again (and serves parked long-polls in
//! the same step).

use super::flow::QueueRef;
use super::{Shard, Step};
use crate::error::Result;
use crate::keys;
use crate::proto::{records, wire};
use crate::record;

impl Shard {
    /// Pauses (`pause`) or resumes a queue of a tenant; answers the queue's state: its counts
    /// per status (list_queues.rs) and `paused`.
    pub(super) async fn pause_queue(
        &mut self,
        st: &mut Step,
        q: QueueRef,
        pause: bool,
    ) -> Result<wire::QueueStats> {
        let was = self.ready.is_paused(&q.queue, &q.tenant);
        let key = keys::paused(&q.tenant, &q.queue);
        match (was, pause) {
            (false, true) => {
                let entry = records::PausedQueueRecord {
                    paused_at_ms: st.now,
                };
                st.txn.put(key, record::encode(&entry));
                for w in self.ready.pause(&q.queue, &q.tenant) {
                    // Its reservations go to the next in line; it holds none while paused.
                    let admitted = self.conc.unreserve(&w);
                    self.ready_all(admitted);
                }
            }
            (true, false) => {
                st.txn.delete(key);
                let (gated, groups) = self.ready.resume(&q.queue, &q.tenant);
                for w in gated {
                    self.admit(st, w).await?;
                }
                for g in groups {
                    if self.ready.refill_from(&g).is_some() {
                        self.refill_or_rebuild(st, &g).await;
                    }
                }
            }
            _ => {} // already so: idempotent
        }
        let action = if pause { "pause_queue" } else { "resume_queue" };
        tracing::info!(
            target: "silo::operator",
            action,
            tenant = %q.tenant,
            queue = %q.queue,
            changed = was != pause,
            "queue {}",
            if pause { "paused" } else { "resumed" }
        );
        self.queue_stats(st, &q.tenant, &q.queue).await
    }

    /// Opening the shard: the paused queues, before the ready groups are read.
    pub(super) async fn load_paused(&mut self) -> Result<()> {
        let mut iter = self.db.scan(keys::family_range(keys::PAUSED)).await?;
        while let Some(kv) = iter.next().await? {
            let (tenant, queue) = keys::parse_paused(&kv.key)?;
            self.ready.pause(&queue, &tenant);
        }
        Ok(())
    }
}
