//! RestartJob: a FAILED or CANCELLED job runs again as a new attempt with a fresh retry
//! budget, due now, through the normal queued path (so it waits for its concurrency slots
//! like any due job). RestartJobs restarts through `restart_record` too.

use super::{JobRef, Shard, Step};
use crate::error::{Error, Result};
use crate::lifecycle::{self, Event, JobState};
use crate::proto::{records, wire};

impl Shard {
    pub(super) async fn restart_job(
        &mut self,
        st: &mut Step,
        job_ref: &JobRef,
    ) -> Result<wire::Job> {
        let job = self
            .load_job(st, &job_ref.tenant, &job_ref.id)
            .await?
            .ok_or(Error::JobNotFound)?;
        let job = self.restart_record(st, job).await?;
        self.wire_job(st, job, false).await
    }

    /// Restarts a job as loaded; returns it as it is now (PENDING).
    pub(super) async fn restart_record(
        &mut self,
        st: &mut Step,
        mut job: records::JobRecord,
    ) -> Result<records::JobRecord> {
        let from = JobState::of_record(job.state)?;
        let to = lifecycle::transition(from, Event::Restart)?;
        if !job.current_task_id.is_empty() {
            return Err(Error::InvalidJobState(format!(
                "job is {}, but its cancelled attempt still runs: restart it once the worker \
                 reports or its lease expires",
                from.name()
            )));
        }
        job.state = to.to_record();
        job.updated_at_ms = st.now;
        job.retry_base = job.attempt_count;
        // The payload stays in key P: the new attempt reads it there.
        self.add_queued(st, &mut job, st.now, None);
        Ok(job)
    }
}
