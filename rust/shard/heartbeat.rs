//! HeartbeatTask: extends a live lease (in memory) and stores a cursor (durably) if given.

use super::{Shard, Step};
use crate::codec;
use crate::error::{Error, Result};
use crate::keys;
use crate::proto::wire;
use crate::validate::HeartbeatParams;

impl Shard {
    pub(super) async fn heartbeat(
        &mut self,
        st: &mut Step,
        p: HeartbeatParams,
    ) -> Result<wire::HeartbeatTaskResponse> {
        let lease = match self.leases.get(&p.task_id) {
            Some(l) if l.worker_id == p.worker_id => l.clone(),
            Some(_) => return Err(Error::LeaseNotHeld("the task is leased to another worker")),
            None => return Err(self.ended_task_error(st, &p.task_id).await),
        };
        if !p.cursor.is_empty() {
            let mut job = self
                .load_job(st, &lease.tenant, &lease.job_id)
                .await?
                .ok_or_else(|| Error::Internal("job of a live lease is missing".into()))?;
            let mut attempt = self
                .load_attempt(st, &lease.tenant, &lease.job_id, lease.attempt)
                .await?;
            attempt.heartbeat_cursor = p.cursor.clone();
            job.heartbeat_cursor = p.cursor;
            st.txn.put(
                keys::attempt(&lease.tenant, &lease.job_id, lease.attempt),
                codec::encode(&attempt),
            );
            self.put_job(st, &job);
        }
        let expires_at_ms = st.now + self.config.lease_ms;
        self.leases.extend(&p.task_id, expires_at_ms);
        Ok(wire::HeartbeatTaskResponse {
            cancelled: lease.cancelled,
            lease_expires_at_ms: expires_at_ms,
        })
    }

    /// The error for a task that has no live lease: NOT_FOUND if it never existed, else
    /// FAILED_PRECONDITION (its lease expired or its outcome is recorded).
    pub(super) async fn ended_task_error(&self, st: &Step, task_id: &str) -> Error {
        match st.txn.get(&self.db, &keys::task(task_id)).await {
            Ok(Some(_)) => {
                Error::LeaseNotHeld("the task's lease ended: it expired or its outcome is recorded")
            }
            Ok(None) => Error::TaskNotFound,
            Err(e) => e,
        }
    }
}
