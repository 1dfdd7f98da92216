//! DeleteJob: a terminal job goes away with its payload, attempts, task references, index
//! entries, count, retention timer and the unique key it holds; its id may then be enqueued
//! again. Retention and
//! DeleteJobs delete through `remove_job` too.

use super::{JobRef, Shard, Step};
use crate::error::{Error, Result};
use crate::keys;
use crate::lifecycle::{self, Event, JobState};
use crate::proto::records;
use crate::record;

impl Shard {
    pub(super) async fn delete_job(&mut self, st: &mut Step, job_ref: &JobRef) -> Result<()> {
        let job = self
            .load_job(st, &job_ref.tenant, &job_ref.id)
            .await?
            .ok_or(Error::JobNotFound)?;
        self.remove_job(st, job).await
    }

    /// Deletes a job as loaded. InvalidJobState unless it is terminal with no attempt still
    /// running (a job cancelled while it ran keeps its attempt until the worker reports or
    /// the lease expires, and that end still writes the job).
    pub(super) async fn remove_job(
        &mut self,
        st: &mut Step,
        job: records::JobRecord,
    ) -> Result<()> {
        let state = JobState::of_record(job.state)?;
        lifecycle::transition(state, Event::Delete)?;
        if !job.current_task_id.is_empty() {
            return Err(Error::InvalidJobState(format!(
                "job is {}, but its cancelled attempt still runs: delete it once the worker \
                 reports or its lease expires",
                state.name()
            )));
        }
        let attempts = st
            .txn
            .scan_prefix(&self.db, &keys::attempts_prefix(&job.tenant, &job.id))
            .await?;
        for (key, value) in attempts {
            let attempt: records::AttemptRecord = record::decode(&value)?;
            st.txn.delete(keys::task(&attempt.task_id));
            st.txn.delete(key.to_vec());
        }
        st.txn.delete(keys::payload(&job.tenant, &job.id));
        if !job.unique_key.is_empty() {
            self.release_unique(st, &job).await?;
        }
        self.forget_job(st, &job);
        Ok(())
    }
}
