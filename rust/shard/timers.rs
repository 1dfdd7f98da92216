//! Timers: scheduled jobs coming due (admitted to the ready index or a key's waiters) and
//! leases running out, fired at the start and end of each step.

use std::cmp::Reverse;

use super::ready::Waiting;
use super::{Shard, Step};
use crate::error::Result;

impl Shard {
    pub(super) async fn fire_timers(&mut self, st: &mut Step) {
        let mut due: Vec<Waiting> = Vec::new();
        while let Some(entry) = self.scheduled.first_entry() {
            if entry.key().0 > st.now {
                break;
            }
            due.push(entry.remove());
        }
        // Admit the best first, so that free slots go to the highest priority.
        due.sort_by_key(|w| (Reverse(w.priority), w.due_ms, w.seq));
        for w in due {
            if let Err(e) = self.admit(st, w.clone()).await {
                // The store cannot tell the key's limit now: try again shortly.
                tracing::warn!(job = %w.job_id, "cannot admit a due job yet: {e}");
                self.conc.forget_idle(&w.tenant, &w.keys);
                self.scheduled.insert((st.now + 1000, w.seq), w);
            }
        }
        for (task_id, lease) in self.leases.take_expired(st.now) {
            self.expire_lease(st, &task_id, lease).await;
        }
    }

    /// A due job enters the ready index if every key has a free slot, else waits on a key.
    async fn admit(&mut self, st: &mut Step, w: Waiting) -> Result<()> {
        if w.keys.is_empty() {
            self.ready.insert(w);
            return Ok(());
        }
        self.ensure_limits(&st.txn, &w.tenant, &w.keys).await?;
        if let Some(w) = self.conc.admit(w) {
            self.ready.insert(w);
        }
        Ok(())
    }
}
