//! Enqueue: a new job waits (durably) for its start time, then for a worker.

use super::{Shard, Step};
use crate::error::{Error, Result};
use crate::keys;
use crate::proto::{store, wire};
use crate::validate::NewJob;

impl Shard {
    /// Adds one validated job. ALREADY_EXISTS when the tenant has a job with this id, whatever
    /// its status (also one enqueued earlier in the same batch).
    pub(super) async fn enqueue(&mut self, st: &mut Step, job: NewJob) -> Result<String> {
        if self.load_job(st, &job.tenant, &job.id).await?.is_some() {
            return Err(Error::JobAlreadyExists);
        }
        let due = job.start_at_ms.max(st.now);
        let mut rec = store::JobRecord {
            id: job.id,
            tenant: job.tenant,
            queue: job.queue,
            priority: job.priority,
            status: wire::JobStatus::Scheduled as i32,
            metadata: job.metadata,
            retry_policy: job.retry_policy,
            concurrency_limits: job.concurrency_limits,
            created_at_ms: st.now,
            start_at_ms: due,
            updated_at_ms: st.now,
            next_attempt_at_ms: due,
            ..Default::default()
        };
        rec.seq = self.alloc_seq();
        rec.wait_seq = self.add_waiting(st, &rec, due);
        if !job.payload.is_empty() {
            st.txn.put(keys::payload(&rec.tenant, &rec.id), job.payload);
        }
        self.put_job(st, &rec);
        Ok(rec.id)
    }
}
