//! Enqueue: a new job waits (durably) for its start time, then for a worker.

use super::{Shard, Step};
use crate::error::{Error, Result};
use crate::keys;
use crate::lifecycle::JobState;
use crate::proto::records;
use crate::record;
use crate::validate::NewJob;

impl Shard {
    /// Adds one validated job. ALREADY_EXISTS when the tenant has a job with this id, whatever
    /// its status (also one enqueued earlier in the same batch).
    pub(super) async fn enqueue(&mut self, st: &mut Step, job: NewJob) -> Result<String> {
        if !job.id_generated && self.load_job(st, &job.tenant, &job.id).await?.is_some() {
            return Err(Error::JobAlreadyExists);
        }
        let due = job.start_at_ms.max(st.now);
        let mut rec = records::JobRecord {
            id: job.id,
            tenant: job.tenant,
            queue: job.queue,
            priority: job.priority,
            state: JobState::Queued.to_record(),
            metadata: job.metadata,
            retry_policy: job.retry_policy,
            concurrency_limits: job.concurrency_limits,
            created_at_ms: st.now,
            start_at_ms: due,
            updated_at_ms: st.now,
            next_attempt_at_ms: due,
            ..Default::default()
        };
        for limit in &rec.concurrency_limits {
            self.set_limit(st, &rec.tenant, &limit.key, limit.max_concurrency);
        }
        rec.seq = self.alloc_seq();
        self.add_scheduled(st, &mut rec, due, Some(job.payload.clone()));
        if !job.payload.is_empty() {
            st.txn.put(keys::payload(&rec.tenant, &rec.id), job.payload);
        }
        self.put_job(st, &rec);
        Ok(rec.id)
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
