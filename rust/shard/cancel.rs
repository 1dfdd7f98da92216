//! Cancel: a waiting job ends at once; a running one ends now and its worker learns it on
//! the next heartbeat (the attempt keeps its lease until reported or expired).

use super::{JobRef, Shard, Step};
use crate::error::{Error, Result};
use crate::keys;
use crate::lifecycle::{self, Event};
use crate::proto::wire::JobStatus;

impl Shard {
    pub(super) async fn cancel(&mut self, st: &mut Step, job_ref: &JobRef) -> Result<()> {
        let mut job = self
            .load_job(st, &job_ref.tenant, &job_ref.id)
            .await?
            .ok_or(Error::JobNotFound)?;
        let from = lifecycle::stored(job.status)?;
        let to = lifecycle::transition(from, Event::Cancel)?;
        match from {
            JobStatus::Scheduled | JobStatus::Pending => {
                let (due, seq) = (job.next_attempt_at_ms, job.wait_seq);
                if self.scheduled.remove(&(due, seq)).is_some() {
                } else if let Some(w) =
                    self.ready
                        .remove(&job.queue, job.priority, &job.tenant, due, seq)
                {
                    let admitted = self.conc.unreserve(&w);
                    self.ready_all(admitted);
                } else {
                    self.conc
                        .remove_waiter(&job.tenant, &job.id, due, seq, job.priority);
                }
                st.txn.delete(keys::waiting(due, seq));
                job.wait_seq = 0;
                job.next_attempt_at_ms = 0;
            }
            // The attempt keeps its lease and slots until reported or expired.
            _ => self.leases.mark_cancelled(&job.current_task_id),
        }
        job.status = to as i32;
        job.updated_at_ms = st.now;
        self.put_job(st, &job);
        Ok(())
    }
}
