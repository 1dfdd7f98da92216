//! ReportTaskOutcome(s) and the one place an attempt ends (report or lease expiry): the job
//! moves on (SUCCEEDED, retry, FAILED or CANCELLED) in the same write that ends the attempt.

use bytes::Bytes;

use super::running::Running;
use super::{LeaseUse, Shard, Step};
use crate::error::{Error, Result};
use crate::keys;
use crate::lifecycle::{self, Event, JobState};
use crate::metrics::TaskOutcome;
use crate::proto::records;
use crate::record;
use crate::retry;
use crate::validate::{Outcome, ReportParams};

pub use crate::lifecycle::LEASE_EXPIRED;

impl Shard {
    pub(super) async fn report_task_outcome(
        &mut self,
        st: &mut Step,
        p: ReportParams,
    ) -> Result<()> {
        self.check_lease(st, &p.task_id, &p.worker_id, &p.tenants, LeaseUse::Report)
            .await?;
        let Some(lease) = self.running.remove(&p.task_id) else {
            return Err(Error::TaskNotFound);
        };
        self.end_attempt(st, lease, p.outcome);
        Ok(())
    }

    /// Ends a live attempt with `outcome` and moves the job on; the attempt's concurrency slots
    /// free in this same step (the only place they free). The caller has already taken the
    /// lease out of the lease table. Reads nothing: the lease holds the records it changes.
    pub(super) fn end_attempt(&mut self, st: &mut Step, lease: Running, outcome: Outcome) {
        let Running {
            mut job,
            mut attempt,
            keys: held,
            ..
        } = lease;
        attempt.finished_at_ms = st.now;
        st.txn.delete(keys::lease(&attempt.task_id));
        let admitted = self.conc.release(&job.tenant, &held, &attempt.task_id);
        self.ready_all(admitted);
        job.current_task_id.clear();
        let mut result = None;
        self.metrics
            .task_finished(&job.queue, task_outcome(&outcome));
        let event = match outcome {
            Outcome::Success(r) => {
                attempt.state = records::AttemptState::Succeeded as i32;
                attempt.result = r.clone();
                result = Some(r);
                Event::Succeeded
            }
            Outcome::Failure(failure) => {
                attempt.state = records::AttemptState::Failed as i32;
                attempt.failure = Some(failure.clone());
                let retry = !failure.non_retryable && !retry::is_last_attempt(&job);
                job.last_failure = Some(failure);
                Event::Failed { retry }
            }
            Outcome::Cancelled => {
                attempt.state = records::AttemptState::Cancelled as i32;
                Event::WorkerCancelled
            }
        };
        st.txn.put(
            keys::attempt(&job.tenant, &job.id, attempt.attempt),
            record::encode(&attempt),
        );
        let from = JobState::of_record(job.state);
        match from.and_then(|from| lifecycle::transition(from, event).map(|to| (from, to))) {
            Ok((from, to)) if from == to => {} // cancelled while running: stays CANCELLED
            Ok((_, JobState::Scheduled)) => return self.schedule_retry(st, &mut job),
            Ok((_, to)) => {
                job.state = to.to_record();
                job.updated_at_ms = st.now;
                job.next_attempt_at_ms = 0;
                if let (JobState::Succeeded, Some(r)) = (to, result) {
                    job.result = r;
                }
            }
            Err(e) => tracing::error!(job = %job.id, "attempt ended on a job in a bad state: {e}"),
        }
        self.put_job(st, &mut job);
    }

    /// The job waits for its next attempt per its retry policy (writing the job record).
    fn schedule_retry(&mut self, st: &mut Step, job: &mut records::JobRecord) {
        let policy = job.retry_policy.clone().unwrap_or_default();
        let n = retry::attempts_used(job);
        let delay = retry::backoff_ms(&policy, n, rand::random::<f64>());
        let due = st.now.saturating_add(delay);
        job.state = JobState::Scheduled.to_record();
        job.updated_at_ms = st.now;
        // The payload stays in key P only: a lease of the retry reads it there.
        self.add_queued(st, job, due, None);
    }

    /// A lease ran out: the attempt fails with `lease_expired` and the job moves on.
    pub(super) fn expire_lease(&mut self, st: &mut Step, lease: Running) {
        let failure = records::FailureRecord {
            code: LEASE_EXPIRED.to_string(),
            message: "the lease expired before the worker reported an outcome".to_string(),
            data: Bytes::new(),
            non_retryable: false,
        };
        self.end_attempt(st, lease, Outcome::Failure(failure));
    }
}

/// How an attempt ending with `outcome` counts in `silo_tasks_finished_total`: a failure
/// with the reserved code `lease_expired` is an expiry (no worker may report that code).
fn task_outcome(outcome: &Outcome) -> TaskOutcome {
    match outcome {
        Outcome::Success(_) => TaskOutcome::Succeeded,
        Outcome::Failure(f) if f.code == LEASE_EXPIRED => TaskOutcome::LeaseExpired,
        Outcome::Failure(_) => TaskOutcome::Failed,
        Outcome::Cancelled => TaskOutcome::Cancelled,
    }
}
