//! Stored records (docs/architecture.md#records): how a value of the store is encoded, and the
//! conversions between the records of `proto/silo/store/v1` and the wire types of `silo.v1`.
//! The store never holds a wire message, so an API change is not a store change; this file is
//! the one edge where the two meet.

use bytes::Bytes;
use prost::Message;

use crate::error::{Error, Result};
use crate::lifecycle::JobState;
use crate::proto::{records, wire};

pub fn encode<M: Message>(m: &M) -> Bytes {
    Bytes::from(m.encode_to_vec())
}

pub fn decode<M: Message + Default>(bytes: &[u8]) -> Result<M> {
    Ok(M::decode(bytes)?)
}

/// `decode` from owned bytes: `bytes` fields (payloads) share the buffer instead of a copy.
pub fn decode_bytes<M: Message + Default>(bytes: Bytes) -> Result<M> {
    Ok(M::decode(bytes)?)
}

/// Counters and limits are stored as 8 big-endian bytes.
pub fn encode_u64(v: u64) -> Bytes {
    Bytes::copy_from_slice(&v.to_be_bytes())
}

pub fn decode_u64(bytes: &[u8]) -> Result<u64> {
    let a: [u8; 8] = bytes
        .try_into()
        .map_err(|_| Error::Internal(format!("bad counter value {bytes:02x?}")))?;
    Ok(u64::from_be_bytes(a))
}

impl From<wire::RetryPolicy> for records::RetryPolicyRecord {
    fn from(p: wire::RetryPolicy) -> Self {
        records::RetryPolicyRecord {
            max_retries: p.max_retries,
            schedule_ms: p.schedule_ms,
            initial_backoff_ms: p.initial_backoff_ms,
            backoff_multiplier: p.backoff_multiplier,
            max_backoff_ms: p.max_backoff_ms,
            jitter: p.jitter,
        }
    }
}

impl From<records::RetryPolicyRecord> for wire::RetryPolicy {
    fn from(p: records::RetryPolicyRecord) -> Self {
        wire::RetryPolicy {
            max_retries: p.max_retries,
            schedule_ms: p.schedule_ms,
            initial_backoff_ms: p.initial_backoff_ms,
            backoff_multiplier: p.backoff_multiplier,
            max_backoff_ms: p.max_backoff_ms,
            jitter: p.jitter,
        }
    }
}

impl From<wire::ConcurrencyLimit> for records::ConcurrencyLimitRecord {
    fn from(l: wire::ConcurrencyLimit) -> Self {
        records::ConcurrencyLimitRecord {
            key: l.key,
            max_concurrency: l.max_concurrency,
        }
    }
}

impl From<records::ConcurrencyLimitRecord> for wire::ConcurrencyLimit {
    fn from(l: records::ConcurrencyLimitRecord) -> Self {
        wire::ConcurrencyLimit {
            key: l.key,
            max_concurrency: l.max_concurrency,
        }
    }
}

impl From<wire::RateLimit> for records::RateLimitRecord {
    fn from(l: wire::RateLimit) -> Self {
        records::RateLimitRecord {
            key: l.key,
            limit: l.limit,
            period_ms: l.period_ms,
        }
    }
}

impl From<records::RateLimitRecord> for wire::RateLimit {
    fn from(l: records::RateLimitRecord) -> Self {
        wire::RateLimit {
            key: l.key,
            limit: l.limit,
            period_ms: l.period_ms,
        }
    }
}

impl From<wire::TaskFailure> for records::FailureRecord {
    fn from(f: wire::TaskFailure) -> Self {
        records::FailureRecord {
            code: f.code,
            message: f.message,
            data: f.data,
            non_retryable: f.non_retryable,
        }
    }
}

impl From<records::FailureRecord> for wire::TaskFailure {
    fn from(f: records::FailureRecord) -> Self {
        wire::TaskFailure {
            code: f.code,
            message: f.message,
            data: f.data,
            non_retryable: f.non_retryable,
        }
    }
}

impl From<wire::EnqueueRequest> for records::JobTemplateRecord {
    /// A schedule's template: the request without id, tenant and times.
    fn from(r: wire::EnqueueRequest) -> Self {
        records::JobTemplateRecord {
            queue: r.queue,
            priority: r.priority,
            retry_policy: r.retry_policy.map(Into::into),
            concurrency_limits: r.concurrency_limits.into_iter().map(Into::into).collect(),
            payload: r.payload,
            metadata: r.metadata.into_iter().collect(),
            rate_limits: r.rate_limits.into_iter().map(Into::into).collect(),
            unique_key: r.unique_key,
            unique_for_ms: r.unique_for_ms,
            retention_ms: r.retention_ms,
            lease_ms: r.lease_ms,
        }
    }
}

impl From<records::JobTemplateRecord> for wire::EnqueueRequest {
    fn from(t: records::JobTemplateRecord) -> Self {
        wire::EnqueueRequest {
            queue: t.queue,
            priority: t.priority,
            retry_policy: t.retry_policy.map(Into::into),
            concurrency_limits: t.concurrency_limits.into_iter().map(Into::into).collect(),
            payload: t.payload,
            metadata: t.metadata.into_iter().collect(),
            rate_limits: t.rate_limits.into_iter().map(Into::into).collect(),
            unique_key: t.unique_key,
            unique_for_ms: t.unique_for_ms,
            retention_ms: t.retention_ms,
            lease_ms: t.lease_ms,
            ..Default::default()
        }
    }
}

/// The client's view of a stored schedule.
pub fn to_wire_schedule(r: records::ScheduleRecord) -> wire::Schedule {
    wire::Schedule {
        tenant: r.tenant,
        name: r.name,
        cron: r.cron,
        interval_ms: r.interval_ms,
        timezone: r.timezone,
        job: r.job.map(Into::into),
        paused: r.paused,
        overlap: r.overlap,
        catch_up: r.catch_up,
        next_run_at_ms: r.next_run_at_ms,
        last_job_id: r.last_job_id,
    }
}

/// The wire status of a stored attempt state.
fn attempt_status(state: i32) -> wire::AttemptStatus {
    use records::AttemptState as R;
    match R::try_from(state) {
        Ok(R::Running) => wire::AttemptStatus::Running,
        Ok(R::Succeeded) => wire::AttemptStatus::Succeeded,
        Ok(R::Failed) => wire::AttemptStatus::Failed,
        Ok(R::Cancelled) => wire::AttemptStatus::Cancelled,
        Ok(R::Unknown) | Err(_) => wire::AttemptStatus::Unspecified,
    }
}

impl From<records::AttemptRecord> for wire::Attempt {
    fn from(a: records::AttemptRecord) -> Self {
        wire::Attempt {
            attempt: a.attempt,
            task_id: a.task_id,
            worker_id: a.worker_id,
            status: attempt_status(a.state) as i32,
            started_at_ms: a.started_at_ms,
            finished_at_ms: a.finished_at_ms,
            result: a.result,
            failure: a.failure.map(Into::into),
            heartbeat_cursor: a.heartbeat_cursor,
        }
    }
}

/// The client's view of a stored job: its status is its state (exact, not derived from the
/// clock: rust/lifecycle.rs).
pub fn to_wire_job(
    rec: records::JobRecord,
    payload: Bytes,
    attempts: Vec<records::AttemptRecord>,
) -> Result<wire::Job> {
    let state = JobState::of_record(rec.state)?;
    Ok(wire::Job {
        id: rec.id,
        tenant: rec.tenant,
        queue: rec.queue,
        priority: rec.priority,
        status: state.wire() as i32,
        payload,
        metadata: rec.metadata,
        retry_policy: rec.retry_policy.map(Into::into),
        concurrency_limits: rec.concurrency_limits.into_iter().map(Into::into).collect(),
        created_at_ms: rec.created_at_ms,
        start_at_ms: rec.start_at_ms,
        updated_at_ms: rec.updated_at_ms,
        next_attempt_at_ms: if state.is_queued() {
            rec.next_attempt_at_ms
        } else {
            0
        },
        attempt_count: rec.attempt_count,
        result: rec.result,
        last_failure: rec.last_failure.map(Into::into),
        attempts: attempts.into_iter().map(Into::into).collect(),
        rate_limits: rec.rate_limits.into_iter().map(Into::into).collect(),
        unique_key: rec.unique_key,
        unique_for_ms: rec.unique_for_ms,
        lease_ms: rec.lease_ms,
        expire_at_ms: rec.expire_at_ms,
        retention_ms: rec.retention_ms,
        retained_until_ms: rec.retained_until_ms,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_reads_back_as_the_client_gave_it() {
        let policy = wire::RetryPolicy {
            max_retries: 3,
            schedule_ms: vec![10, 20],
            initial_backoff_ms: 5,
            backoff_multiplier: 1.5,
            max_backoff_ms: 100,
            jitter: true,
        };
        let limit = wire::ConcurrencyLimit {
            key: "k".into(),
            max_concurrency: 2,
        };
        let failure = wire::TaskFailure {
            code: "boom".into(),
            message: "m".into(),
            data: Bytes::from_static(b"d"),
            non_retryable: true,
        };
        let rec = records::JobRecord {
            id: "j".into(),
            state: JobState::Failed.to_record(),
            retry_policy: Some(policy.clone().into()),
            concurrency_limits: vec![limit.clone().into()],
            last_failure: Some(failure.clone().into()),
            next_attempt_at_ms: 50,
            ..Default::default()
        };
        let attempt = records::AttemptRecord {
            attempt: 1,
            state: records::AttemptState::Failed as i32,
            failure: Some(failure.clone().into()),
            ..Default::default()
        };
        let job = to_wire_job(rec, Bytes::new(), vec![attempt]).unwrap();
        assert_eq!(job.status, wire::JobStatus::Failed as i32);
        assert_eq!(job.retry_policy, Some(policy));
        assert_eq!(job.concurrency_limits, vec![limit]);
        assert_eq!(job.last_failure, Some(failure.clone()));
        assert_eq!(
            job.next_attempt_at_ms, 0,
            "only a queued job has a next attempt"
        );
        assert_eq!(job.attempts[0].status, wire::AttemptStatus::Failed as i32);
        assert_eq!(job.attempts[0].failure, Some(failure));
    }

    #[test]
    fn a_record_in_an_unknown_state_is_refused() {
        let rec = records::JobRecord::default(); // state 0 is never stored
        assert!(to_wire_job(rec, Bytes::new(), Vec::new()).is_err());
    }
}
