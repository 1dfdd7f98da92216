//! Cancel: a waiting job ends at once; a running one ends now and its worker learns it on
//! the next heartbeat (the attempt keeps its lease until reported or expired).

use super::queued::queued_of;
use super::{JobRef, Shard, Step};
use crate::error::{Error, Result};
use crate::keys;
use crate::lifecycle::{self, Event, JobState};
use crate::proto::records;

impl Shard {
    pub(super) async fn cancel(&mut self, st: &mut Step, job_ref: &JobRef) -> Result<()> {
        let job = self
            .load_job(st, &job_ref.tenant, &job_ref.id)
            .await?
            .ok_or(Error::JobNotFound)?;
        self.cancel_job(st, job).await
    }

    /// Cancels a job as loaded (Cancel, CancelJobs). JobTerminal if it already ended.
    pub(super) async fn cancel_job(
        &mut self,
        st: &mut Step,
        mut job: records::JobRecord,
    ) -> Result<()> {
        let from = JobState::of_record(job.state)?;
        let to = lifecycle::transition(from, Event::Cancel)?;
        // A running attempt keeps its lease and slots until reported or expired.
        if from.is_queued() {
            self.unqueue(st, &job).await?;
            job.wait_seq = 0;
            job.next_attempt_at_ms = 0;
        }
        job.state = to.to_record();
        job.updated_at_ms = st.now;
        self.put_job(st, &mut job);
        if let Some(lease) = self.running.get_mut(&job.current_task_id) {
            lease.cancelled = true;
        }
        Ok(())
    }

    /// Takes a waiting job out of the store and of memory, wherever it waits: a timer, a
    /// ready group's head, a concurrency or rate-limit key's waiters, or only the store; and
    /// drops its first-attempt deadline (expiry.rs).
    pub(super) async fn unqueue(&mut self, st: &mut Step, job: &records::JobRecord) -> Result<()> {
        self.drop_expiry(st, job);
        let w = queued_of(job, job.next_attempt_at_ms, job.wait_seq);
        let scheduled_key = keys::scheduled(w.due_ms, w.seq);
        let scheduled = self.timers.remove(&w.sort_key()).is_some()
            || st.txn.get(&self.db, &scheduled_key).await?.is_some();
        if scheduled {
            self.forget_key(st, &w, scheduled_key);
            self.counts.scheduled_removed();
        } else {
            if let Some((w, refill)) = self.ready.remove(&w.group(), w.sort_key()) {
                self.unreserve(&w);
                if let Some(g) = refill {
                    self.refill_or_rebuild(st, &g).await;
                }
            } else {
                self.conc
                    .remove_waiter(&w.tenant, &w.job_id, w.due_ms, w.seq, w.priority);
            }
            // A job queued due now in this step waits for the step's end to enter memory.
            st.due_now
                .retain(|d| (d.seq, &d.job_id) != (w.seq, &w.job_id));
            self.forget_key(st, &w, w.ready_key());
            self.counts.ready_removed();
        }
        Ok(())
    }
}
