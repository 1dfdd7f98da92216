//! Enqueue: a new job waits (durably) for its start time, then for a worker.

use super::handle::Enqueued;
use super::{Shard, Step};
use crate::error::{Error, Result};
use crate::keys;
use crate::lifecycle::JobState;
use crate::proto::records;
use crate::record;
use crate::validate::NewJob;

impl Shard {
    /// Adds one validated job. ALREADY_EXISTS when the tenant has a job with this id, whatever
    /// its status (also one enqueued earlier in the same batch). A job whose unique key another
    /// job holds stores nothing and answers that job's id, `deduplicated` (unique.rs).
    pub(super) async fn enqueue(&mut self, st: &mut Step, job: NewJob) -> Result<Enqueued> {
        if !job.id_generated && self.load_job(st, &job.tenant, &job.id).await?.is_some() {
            return Err(Error::JobAlreadyExists);
        }
        if !job.unique_key.is_empty() {
            if let Some(id) = self.unique_holder(st, &job.tenant, &job.unique_key).await? {
                return Ok(Enqueued {
                    id,
                    deduplicated: true,
                });
            }
        }
        let due = job.start_at_ms.max(st.now);
        let mut rec = records::JobRecord {
            id: job.id,
            tenant: job.tenant,
            queue: job.queue,
            priority: job.priority,
            state: JobState::Scheduled.to_record(),
            metadata: job.metadata,
            retry_policy: job.retry_policy,
            concurrency_limits: job.concurrency_limits,
            created_at_ms: st.now,
            start_at_ms: due,
            updated_at_ms: st.now,
            next_attempt_at_ms: due,
            rate_limits: job.rate_limits,
            unique_key: job.unique_key,
            unique_for_ms: job.unique_for_ms,
            lease_ms: job.lease_ms,
            expire_at_ms: job.expire_at_ms,
            retention_ms: job.retention_ms,
            ..Default::default()
        };
        for limit in &rec.concurrency_limits {
            self.set_limit(st, &rec.tenant, &limit.key, limit.max_concurrency);
        }
        for limit in &rec.rate_limits {
            self.set_rate(st, &rec.tenant, limit).await?;
        }
        rec.seq = self.alloc_seq();
        if !rec.unique_key.is_empty() {
            self.take_unique(st, &rec);
        }
        if rec.expire_at_ms > 0 {
            self.add_expiry(st, &rec);
        }
        if !job.payload.is_empty() {
            st.txn
                .put(keys::payload(&rec.tenant, &rec.id), job.payload.clone());
        }
        self.add_queued(st, &mut rec, due, Some(job.payload));
        self.metrics.job_enqueued(&rec.queue);
        Ok(Enqueued {
            id: rec.id,
            deduplicated: false,
        })
    }

    /// The most recently enqueued job that names a key sets its limit (durably). A raised
    /// limit admits waiters at once; a lowered one preempts nothing.
    fn set_limit(&mut self, st: &mut Step, tenant: &str, key: &str, limit: u32) {
        st.txn.put(
            keys::limit(tenant, key),
            record::encode_u64(u64::from(limit)),
        );
        if self.conc.knows(tenant, key) {
            let admitted = self.conc.set_limit(tenant, key, limit);
            self.ready_all(admitted);
        }
    }
}
