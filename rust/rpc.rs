//! Every RPC of Silo's services, named once, and the raw-bytes entry point that serves a unary
//! one: decode the request (prost), run the broker method of the same name, encode the reply.
//!
//! Why one table: the gRPC server routes each path to `Broker::call_raw(rpc, bytes)` from this
//! list (python/silo/server/service.py reads it through `silo._native.rpcs()`), so adding an
//! RPC is a broker method and one arm of `call_raw`, and every per-RPC table (routes, the auth
//! roles of docs/security.md) is an exhaustive `match` over `Rpc` that cannot forget one.

use std::future::Future;

use bytes::Bytes;
use prost::Message;

use crate::audit::{self, Audited, AuditedReply};
use crate::auth::{Caller, Scoped};
use crate::broker::{Broker, CallContext};
use crate::error::{Error, Result};
use crate::stream_io::StreamIo;

/// The gRPC service an RPC belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// `silo.v1.Silo`: the job contract (docs/api.md).
    Silo,
    /// `silo.admin.v1.Admin`: operator and test calls of one process.
    Admin,
}

impl Service {
    /// The fully qualified service name.
    pub fn name(self) -> &'static str {
        match self {
            Service::Silo => "silo.v1.Silo",
            Service::Admin => "silo.admin.v1.Admin",
        }
    }
}

/// One RPC, by its method name in the proto.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rpc {
    Enqueue,
    EnqueueBatch,
    Cancel,
    LeaseTasks,
    HeartbeatTask,
    ReportTaskOutcome,
    ReportTaskOutcomes,
    GetJob,
    ListJobs,
    RestartJob,
    ExpediteJob,
    DeleteJob,
    WaitJob,
    ListQueues,
    CancelJobs,
    RestartJobs,
    DeleteJobs,
    PauseQueue,
    ResumeQueue,
    PutSchedule,
    DeleteSchedule,
    GetSchedule,
    ListSchedules,
    GetCluster,
    EnqueueStream,
    WorkerSession,
    GetStats,
    SetFaults,
    GetConcurrencyKey,
    GetRateLimit,
}

impl Rpc {
    /// Every RPC, in the order of the protos.
    pub const ALL: [Rpc; 30] = [
        Rpc::Enqueue,
        Rpc::EnqueueBatch,
        Rpc::Cancel,
        Rpc::LeaseTasks,
        Rpc::HeartbeatTask,
        Rpc::ReportTaskOutcome,
        Rpc::ReportTaskOutcomes,
        Rpc::GetJob,
        Rpc::ListJobs,
        Rpc::RestartJob,
        Rpc::ExpediteJob,
        Rpc::DeleteJob,
        Rpc::WaitJob,
        Rpc::ListQueues,
        Rpc::CancelJobs,
        Rpc::RestartJobs,
        Rpc::DeleteJobs,
        Rpc::PauseQueue,
        Rpc::ResumeQueue,
        Rpc::PutSchedule,
        Rpc::DeleteSchedule,
        Rpc::GetSchedule,
        Rpc::ListSchedules,
        Rpc::GetCluster,
        Rpc::EnqueueStream,
        Rpc::WorkerSession,
        Rpc::GetStats,
        Rpc::SetFaults,
        Rpc::GetConcurrencyKey,
        Rpc::GetRateLimit,
    ];

    /// The method name, as in the proto and the gRPC path.
    pub fn name(self) -> &'static str {
        match self {
            Rpc::Enqueue => "Enqueue",
            Rpc::EnqueueBatch => "EnqueueBatch",
            Rpc::Cancel => "Cancel",
            Rpc::LeaseTasks => "LeaseTasks",
            Rpc::HeartbeatTask => "HeartbeatTask",
            Rpc::ReportTaskOutcome => "ReportTaskOutcome",
            Rpc::ReportTaskOutcomes => "ReportTaskOutcomes",
            Rpc::GetJob => "GetJob",
            Rpc::ListJobs => "ListJobs",
            Rpc::RestartJob => "RestartJob",
            Rpc::ExpediteJob => "ExpediteJob",
            Rpc::DeleteJob => "DeleteJob",
            Rpc::WaitJob => "WaitJob",
            Rpc::ListQueues => "ListQueues",
            Rpc::CancelJobs => "CancelJobs",
            Rpc::RestartJobs => "RestartJobs",
            Rpc::DeleteJobs => "DeleteJobs",
            Rpc::PauseQueue => "PauseQueue",
            Rpc::ResumeQueue => "ResumeQueue",
            Rpc::PutSchedule => "PutSchedule",
            Rpc::DeleteSchedule => "DeleteSchedule",
            Rpc::GetSchedule => "GetSchedule",
            Rpc::ListSchedules => "ListSchedules",
            Rpc::GetCluster => "GetCluster",
            Rpc::EnqueueStream => "EnqueueStream",
            Rpc::WorkerSession => "WorkerSession",
            Rpc::GetStats => "GetStats",
            Rpc::SetFaults => "SetFaults",
            Rpc::GetConcurrencyKey => "GetConcurrencyKey",
            Rpc::GetRateLimit => "GetRateLimit",
        }
    }

    pub fn service(self) -> Service {
        match self {
            Rpc::GetStats | Rpc::SetFaults | Rpc::GetConcurrencyKey | Rpc::GetRateLimit => {
                Service::Admin
            }
            _ => Service::Silo,
        }
    }

    /// Whether the RPC streams both ways (served by its own stream handler, not `call_raw`).
    pub fn streaming(self) -> bool {
        matches!(self, Rpc::EnqueueStream | Rpc::WorkerSession)
    }

    /// The RPC of a method name (names are unique across the services).
    pub fn from_name(name: &str) -> Option<Rpc> {
        Rpc::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// Decodes one request; a message that does not decode is `InvalidArgument` on `request`.
pub(crate) fn decode<Req: Message + Default>(bytes: Bytes) -> Result<Req> {
    Req::decode(bytes).map_err(|e| Error::invalid("request", format!("malformed protobuf: {e}")))
}

/// Decodes `bytes` as `Req`, checks the tenant it names against `caller` (PERMISSION_DENIED
/// before any work), runs `op`, encodes its reply.
async fn raw<Req, Resp, Fut>(
    bytes: Bytes,
    caller: &Caller,
    op: impl FnOnce(Req) -> Fut,
) -> Result<Vec<u8>>
where
    Req: Message + Default + Scoped,
    Resp: Message,
    Fut: Future<Output = Result<Resp>>,
{
    let req = decode::<Req>(bytes)?;
    caller.check(&req)?;
    Ok(op(req).await?.encode_to_vec())
}

/// `op` for an operator action: once it succeeded, its line in the audit log (rust/audit.rs).
/// It runs where the call is served (after any forwarding), so an action is written once.
async fn audited<Req, Resp, Fut>(
    caller: &Caller,
    rpc: Rpc,
    req: Req,
    op: impl FnOnce(Req) -> Fut,
) -> Result<Resp>
where
    Req: Audited + Clone,
    Resp: AuditedReply,
    Fut: Future<Output = Result<Resp>>,
{
    let reply = op(req.clone()).await?;
    audit::record(caller, rpc, &req, &reply);
    Ok(reply)
}

impl Broker {
    /// Serves one unary RPC from its encoded request for `caller`: the encoded reply, or the
    /// error to answer with. The caller's role for the RPC is checked first and the tenant the
    /// request names right after decoding, before any work or forwarding (rust/auth.rs); a
    /// request that does not decode is `InvalidArgument` on `request`. A streaming RPC is
    /// refused here.
    pub async fn call_raw(&self, caller: &Caller, rpc: Rpc, bytes: Bytes) -> Result<Vec<u8>> {
        self.call_raw_with(caller, rpc, bytes, &CallContext::default())
            .await
    }

    /// `call_raw` for a call that came with `ctx` (its metadata, passed on when the call is
    /// forwarded to the node that owns its shard, where the token is checked again:
    /// docs/cluster.md#routing). Tenant- and task-scoped calls go to their shard; LeaseTasks,
    /// GetStats and SetFaults are this node's; GetCluster is answered by any node.
    pub async fn call_raw_with(
        &self,
        caller: &Caller,
        rpc: Rpc,
        bytes: Bytes,
        ctx: &CallContext,
    ) -> Result<Vec<u8>> {
        use crate::proto::{admin, wire};
        caller.permit(rpc)?;
        let (c, scope) = (caller, &caller.scope());
        match rpc {
            Rpc::Enqueue => {
                let shard = |r: &wire::EnqueueRequest| self.tenant_shard(&r.tenant);
                self.routed(rpc, bytes, ctx, c, shard, |r| self.enqueue(r))
                    .await
            }
            Rpc::EnqueueBatch => self.enqueue_batch_routed(bytes, ctx, c).await,
            Rpc::Cancel => {
                let shard = |r: &wire::CancelRequest| self.tenant_shard(&r.tenant);
                self.routed(rpc, bytes, ctx, c, shard, |r| {
                    audited(c, rpc, r, |r| self.cancel(r))
                })
                .await
            }
            Rpc::LeaseTasks => raw(bytes, c, |r| self.lease_tasks(r, scope)).await,
            Rpc::HeartbeatTask => {
                let shard = |r: &wire::HeartbeatTaskRequest| self.task_shard(&r.task_id);
                self.routed(rpc, bytes, ctx, c, shard, |r| self.heartbeat_task(r, scope))
                    .await
            }
            Rpc::ReportTaskOutcome => {
                let shard = |r: &wire::ReportTaskOutcomeRequest| self.task_shard(&r.task_id);
                self.routed(rpc, bytes, ctx, c, shard, |r| {
                    self.report_task_outcome(r, scope)
                })
                .await
            }
            Rpc::ReportTaskOutcomes => self.report_task_outcomes_routed(bytes, ctx, c).await,
            Rpc::GetJob => {
                let shard = |r: &wire::GetJobRequest| self.tenant_shard(&r.tenant);
                self.routed(rpc, bytes, ctx, c, shard, |r| self.get_job(r))
                    .await
            }
            Rpc::WaitJob => {
                let shard = |r: &wire::WaitJobRequest| self.tenant_shard(&r.tenant);
                self.routed(rpc, bytes, ctx, c, shard, |r| self.wait_job(r))
                    .await
            }
            Rpc::GetCluster => raw(bytes, c, |r| self.get_cluster(r)).await,
            Rpc::ListJobs => {
                let shard = |r: &wire::ListJobsRequest| self.tenant_shard(&r.tenant);
                self.routed(rpc, bytes, ctx, c, shard, |r| self.list_jobs(r))
                    .await
            }
            Rpc::RestartJob => {
                let shard = |r: &wire::RestartJobRequest| self.tenant_shard(&r.tenant);
                self.routed(rpc, bytes, ctx, c, shard, |r| {
                    audited(c, rpc, r, |r| self.restart_job(r))
                })
                .await
            }
            Rpc::ExpediteJob => {
                let shard = |r: &wire::ExpediteJobRequest| self.tenant_shard(&r.tenant);
                self.routed(rpc, bytes, ctx, c, shard, |r| {
                    audited(c, rpc, r, |r| self.expedite_job(r))
                })
                .await
            }
            Rpc::DeleteJob => {
                let shard = |r: &wire::DeleteJobRequest| self.tenant_shard(&r.tenant);
                self.routed(rpc, bytes, ctx, c, shard, |r| {
                    audited(c, rpc, r, |r| self.delete_job(r))
                })
                .await
            }
            Rpc::ListQueues => {
                let shard = |r: &wire::ListQueuesRequest| self.tenant_shard(&r.tenant);
                self.routed(rpc, bytes, ctx, c, shard, |r| self.list_queues(r))
                    .await
            }
            Rpc::CancelJobs => {
                let shard = |r: &wire::BulkJobsRequest| self.bulk_shard(r);
                self.routed(rpc, bytes, ctx, c, shard, |r| {
                    audited(c, rpc, r, |r| self.cancel_jobs(r))
                })
                .await
            }
            Rpc::RestartJobs => {
                let shard = |r: &wire::BulkJobsRequest| self.bulk_shard(r);
                self.routed(rpc, bytes, ctx, c, shard, |r| {
                    audited(c, rpc, r, |r| self.restart_jobs(r))
                })
                .await
            }
            Rpc::DeleteJobs => {
                let shard = |r: &wire::BulkJobsRequest| self.bulk_shard(r);
                self.routed(rpc, bytes, ctx, c, shard, |r| {
                    audited(c, rpc, r, |r| self.delete_jobs(r))
                })
                .await
            }
            Rpc::GetStats => raw(bytes, c, |r| self.get_stats(r)).await,
            Rpc::SetFaults => raw(bytes, c, |r| self.set_faults(r)).await,
            Rpc::GetConcurrencyKey => {
                let shard = |r: &admin::GetConcurrencyKeyRequest| self.tenant_shard(&r.tenant);
                self.routed(rpc, bytes, ctx, c, shard, |r| self.get_concurrency_key(r))
                    .await
            }
            Rpc::GetRateLimit => {
                let shard = |r: &admin::GetRateLimitRequest| self.tenant_shard(&r.tenant);
                self.routed(rpc, bytes, ctx, c, shard, |r| self.get_rate_limit(r))
                    .await
            }
            Rpc::PauseQueue => {
                let shard = |r: &wire::QueueRef| self.tenant_shard(&r.tenant);
                self.routed(rpc, bytes, ctx, c, shard, |r| {
                    audited(c, rpc, r, |r| self.pause_queue(r))
                })
                .await
            }
            Rpc::ResumeQueue => {
                let shard = |r: &wire::QueueRef| self.tenant_shard(&r.tenant);
                self.routed(rpc, bytes, ctx, c, shard, |r| {
                    audited(c, rpc, r, |r| self.resume_queue(r))
                })
                .await
            }
            Rpc::PutSchedule => {
                let shard = |r: &wire::Schedule| self.tenant_shard(&r.tenant);
                self.routed(rpc, bytes, ctx, c, shard, |r| {
                    audited(c, rpc, r, |r| self.put_schedule(r))
                })
                .await
            }
            Rpc::DeleteSchedule => {
                let shard = |r: &wire::ScheduleRef| self.tenant_shard(&r.tenant);
                self.routed(rpc, bytes, ctx, c, shard, |r| {
                    audited(c, rpc, r, |r| self.delete_schedule(r))
                })
                .await
            }
            Rpc::GetSchedule => {
                let shard = |r: &wire::ScheduleRef| self.tenant_shard(&r.tenant);
                self.routed(rpc, bytes, ctx, c, shard, |r| self.get_schedule(r))
                    .await
            }
            Rpc::ListSchedules => {
                let shard = |r: &wire::ListSchedulesRequest| self.tenant_shard(&r.tenant);
                self.routed(rpc, bytes, ctx, c, shard, |r| self.list_schedules(r))
                    .await
            }
            Rpc::EnqueueStream | Rpc::WorkerSession => Err(Error::invalid(
                "rpc",
                format!("{} is a stream, not a unary call", rpc.name()),
            )),
        }
    }
}

impl Broker {
    /// Serves one streaming RPC over `io` (its buffers, from `Broker::stream_io`) for `caller`
    /// until it ends: Ok for a stream that ends cleanly, else the error that ends it (at once
    /// PERMISSION_DENIED for a caller without the RPC's role). The transport then takes the
    /// last answers and the end with `io.next()`. A unary RPC is refused here. `ctx` is the
    /// stream's metadata: what its requests forwarded to other nodes carry.
    pub async fn serve_stream(
        &self,
        caller: &Caller,
        rpc: Rpc,
        io: &StreamIo,
        ctx: &CallContext,
    ) -> Result<()> {
        caller.permit(rpc)?;
        match rpc {
            Rpc::EnqueueStream => self.enqueue_stream(io, &caller.scope(), ctx).await,
            Rpc::WorkerSession => self.worker_session(io, &caller.scope()).await,
            unary => Err(Error::invalid(
                "rpc",
                format!("{} is a unary call, not a stream", unary.name()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        for rpc in Rpc::ALL {
            assert_eq!(Rpc::from_name(rpc.name()), Some(rpc));
        }
        let mut names: Vec<&str> = Rpc::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Rpc::ALL.len());
        assert_eq!(Rpc::from_name("Nope"), None);
    }
}
