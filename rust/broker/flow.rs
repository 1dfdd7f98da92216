//! The broker's flow-control RPCs (docs/api.md#flow-control): queues, schedules, and the
//! admin view of a rate-limit key. Validation in rust/validate/flow.rs, the work in the shard.

use super::Broker;
use crate::error::Result;
use crate::proto::{admin, wire};
use crate::validate;

impl Broker {
    pub async fn pause_queue(&self, req: wire::QueueRef) -> Result<wire::QueueStats> {
        let q = validate::queue_ref(req)?;
        self.shard_for(&q.tenant)?.pause_queue(q, true).await
    }

    pub async fn resume_queue(&self, req: wire::QueueRef) -> Result<wire::QueueStats> {
        let q = validate::queue_ref(req)?;
        self.shard_for(&q.tenant)?.pause_queue(q, false).await
    }

    pub async fn put_schedule(&self, req: wire::Schedule) -> Result<wire::Schedule> {
        let schedule = validate::put_schedule(req, &self.limits)?;
        self.shard_for(&schedule.tenant)?
            .put_schedule(schedule)
            .await
    }

    pub async fn get_schedule(&self, req: wire::ScheduleRef) -> Result<wire::Schedule> {
        let r = validate::schedule_ref(req)?;
        self.shard_for(&r.tenant)?.get_schedule(r).await
    }

    pub async fn delete_schedule(
        &self,
        req: wire::ScheduleRef,
    ) -> Result<wire::DeleteScheduleResponse> {
        let r = validate::schedule_ref(req)?;
        self.shard_for(&r.tenant)?.delete_schedule(r).await?;
        Ok(wire::DeleteScheduleResponse {})
    }

    pub async fn list_schedules(
        &self,
        req: wire::ListSchedulesRequest,
    ) -> Result<wire::ListSchedulesResponse> {
        let params = validate::list_schedules(req)?;
        self.shard_for(&params.tenant)?.list_schedules(params).await
    }

    /// Admin.GetRateLimit: one rate-limit key's bucket and waiters.
    pub async fn get_rate_limit(
        &self,
        req: admin::GetRateLimitRequest,
    ) -> Result<admin::RateLimitState> {
        validate::concurrency_key(&req.tenant, &req.key)?;
        self.shard_for(&req.tenant)?
            .get_rate_limit(req.tenant, req.key)
            .await
    }
}
