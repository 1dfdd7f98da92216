//! GetJob: a job as a client sees it, with its attempts on request.

use super::{JobRef, Shard, Step};
use crate::codec;
use crate::error::{Error, Result};
use crate::keys;
use crate::proto::{store, wire};

impl Shard {
    pub(super) async fn get_job(
        &self,
        st: &mut Step,
        job_ref: &JobRef,
        include_attempts: bool,
    ) -> Result<wire::Job> {
        let rec = self
            .load_job(st, &job_ref.tenant, &job_ref.id)
            .await?
            .ok_or(Error::JobNotFound)?;
        let payload = st
            .txn
            .get(&self.db, &keys::payload(&rec.tenant, &rec.id))
            .await?
            .unwrap_or_default();
        let mut attempts = Vec::new();
        if include_attempts {
            for (_, v) in st
                .txn
                .scan_prefix(&self.db, &keys::attempts_prefix(&rec.tenant, &rec.id))
                .await?
            {
                attempts.push(codec::decode::<wire::Attempt>(&v)?);
            }
        }
        let waiting_on = self
            .conc
            .waiting_on(&rec.tenant, &rec.id)
            .map(str::to_string);
        let mut job = to_wire_job(rec, payload, attempts, st.now);
        job.waiting_on_keys = waiting_on.into_iter().collect();
        Ok(job)
    }
}

/// The client's view of a stored job. A waiting job is SCHEDULED while its next attempt is in
/// the future and PENDING once due (no write happens when it comes due).
pub fn to_wire_job(
    rec: store::JobRecord,
    payload: bytes::Bytes,
    attempts: Vec<wire::Attempt>,
    now: i64,
) -> wire::Job {
    let waiting = rec.status == wire::JobStatus::Scheduled as i32;
    let status = if waiting && rec.next_attempt_at_ms <= now {
        wire::JobStatus::Pending as i32
    } else {
        rec.status
    };
    wire::Job {
        id: rec.id,
        tenant: rec.tenant,
        queue: rec.queue,
        priority: rec.priority,
        status,
        payload,
        metadata: rec.metadata,
        retry_policy: rec.retry_policy,
        concurrency_limits: rec.concurrency_limits,
        created_at_ms: rec.created_at_ms,
        start_at_ms: rec.start_at_ms,
        updated_at_ms: rec.updated_at_ms,
        next_attempt_at_ms: if waiting { rec.next_attempt_at_ms } else { 0 },
        attempt_count: rec.attempt_count,
        result: rec.result,
        last_failure: rec.last_failure,
        attempts,
        ..Default::default()
    }
}
