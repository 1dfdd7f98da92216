//! ExpediteJob: a SCHEDULED job (future start or retry backoff) becomes due now. It keeps the
//! dispatch order's rules: among due jobs, priority first, then due time (now).

use super::{JobRef, Shard, Step};
use crate::error::{Error, Result};
use crate::lifecycle::{self, Event, JobState};
use crate::proto::wire;

impl Shard {
    pub(super) async fn expedite_job(
        &mut self,
        st: &mut Step,
        job_ref: &JobRef,
    ) -> Result<wire::Job> {
        let mut job = self
            .load_job(st, &job_ref.tenant, &job_ref.id)
            .await?
            .ok_or(Error::JobNotFound)?;
        let from = JobState::of_record(job.state)?;
        job.state = lifecycle::transition(from, Event::Expedite)?.to_record();
        self.unqueue(st, &job).await?;
        // The payload stays in key P (the old entry's copy went with it).
        self.add_queued(st, &mut job, st.now, None);
        self.wire_job(st, job, false).await
    }
}
