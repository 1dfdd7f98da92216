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
        let lease = match self.leases.get_mut(&p.task_id) {
            Some(l) if l.attempt.worker_id == p.worker_id => l,
            Some(_) => return Err(Error::LeaseNotHeld("the task is leased to another worker")),
            None => return Err(self.ended_task_error(st, &p.task_id).await),
        };
        let cancelled = lease.cancelled;
        if !p.cursor.is_empty() {
            lease.attempt.heartbeat_cursor = p.cursor.clone();
            lease.job.heartbeat_cursor = p.cursor;
            let (job, attempt) = (&lease.job, &lease.attempt);
            st.txn.put(
                keys::attempt(&job.tenant, &job.id, attempt.attempt),
                codec::encode(attempt),
            );
            st.txn
                .put(keys::job(&job.tenant, &job.id), codec::encode(job));
        }
        let expires_at_ms = st.now + self.config.lease_ms;
        self.leases.extend(&p.task_id, expires_at_ms);
        Ok(wire::HeartbeatTaskResponse {
            cancelled,
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
