//! HeartbeatTask: extends a live lease (in memory) and stores a cursor (durably) if given.

use super::{LeaseUse, Shard, Step};
use crate::error::{Error, Result};
use crate::keys;
use crate::proto::wire;
use crate::record;
use crate::validate::HeartbeatParams;

impl Shard {
    pub(super) async fn heartbeat_task(
        &mut self,
        st: &mut Step,
        p: HeartbeatParams,
    ) -> Result<wire::HeartbeatTaskResponse> {
        self.check_lease(
            st,
            &p.task_id,
            &p.worker_id,
            &p.tenants,
            LeaseUse::Heartbeat,
        )
        .await?;
        let lease_ms = match self.running.get(&p.task_id) {
            Some(lease) => self.lease_ms_of(&lease.job),
            None => return Err(Error::TaskNotFound),
        };
        let Some(lease) = self.running.get_mut(&p.task_id) else {
            return Err(Error::TaskNotFound);
        };
        let cancelled = lease.cancelled;
        if !p.cursor.is_empty() {
            lease.attempt.heartbeat_cursor = p.cursor.clone();
            lease.job.heartbeat_cursor = p.cursor;
            let (mut job, attempt) = (lease.job.clone(), &lease.attempt);
            st.txn.put(
                keys::attempt(&job.tenant, &job.id, attempt.attempt),
                record::encode(attempt),
            );
            self.put_job(st, &mut job);
        }
        let expires_at_ms = st.now + lease_ms;
        self.running.extend(&p.task_id, expires_at_ms);
        Ok(wire::HeartbeatTaskResponse {
            cancelled,
            lease_expires_at_ms: expires_at_ms,
        })
    }
}
