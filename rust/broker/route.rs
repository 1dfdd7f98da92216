//! Routing a unary call to its shard (docs/cluster.md#routing): served here when this process
//! owns the shard, else forwarded to the owner as the bytes that came in; a call for a shard
//! that is moving waits for the map to change and tries again, up to `route_wait`. A batch
//! whose entries live on several shards is split: each shard's entries go where that shard is
//! served, and the answers come back in the batch's order.

use std::future::Future;
use std::time::Instant;

use bytes::Bytes;
use prost::Message;

use super::forward::{CallContext, ForwardError, MAX_HOPS};
use super::shards::{changed, Route};
use super::Broker;
use crate::auth::{Caller, Scoped};
use crate::error::{Error, Result};
use crate::proto::wire;
use crate::routing;
use crate::rpc::{decode, Rpc};
use crate::validate;

impl Broker {
    /// Serves `rpc` from `bytes` where its shard is served: the tenant the decoded request
    /// names is checked against `caller` first (rust/auth.rs; the owner checks it again when
    /// the call is forwarded), then `shard_of` names the shard (an error answers at once) and
    /// `op` runs it here.
    pub(crate) async fn routed<Req, Resp, Fut>(
        &self,
        rpc: Rpc,
        bytes: Bytes,
        ctx: &CallContext,
        caller: &Caller,
        shard_of: impl Fn(&Req) -> Result<u32>,
        op: impl Fn(Req) -> Fut,
    ) -> Result<Vec<u8>>
    where
        Req: Message + Default + Scoped,
        Resp: Message,
        Fut: Future<Output = Result<Resp>>,
    {
        let give_up = Instant::now() + self.route_wait;
        let mut watch = None;
        loop {
            let req: Req = decode(bytes.clone())?;
            caller.check(&req)?;
            let shard = shard_of(&req)?;
            let refused = match self.shards.route(shard) {
                Route::Local(_) => match op(req).await {
                    Err(e @ Error::ShardUnavailable { .. }) => e,
                    other => return other.map(|r| r.encode_to_vec()),
                },
                Route::Remote(peer) if ctx.hops < MAX_HOPS => {
                    match self.forwarder.call(&peer, rpc, bytes.clone(), ctx).await {
                        Ok(reply) => return Ok(reply),
                        Err(ForwardError::Answered(e)) => return Err(e),
                        Err(ForwardError::NotSent(reason)) => {
                            Error::ShardUnavailable { shard, reason }
                        }
                    }
                }
                Route::Remote(peer) => {
                    return Err(Error::ShardUnavailable {
                        shard,
                        reason: format!(
                            "forwarded {} times already (next: node {:?}); the cluster map is \
                             settling",
                            ctx.hops, peer.node_id
                        ),
                    })
                }
                Route::Moving => Error::ShardUnavailable {
                    shard,
                    reason: "it is moving between nodes".into(),
                },
            };
            // Look again at once the first time (the map may have changed meanwhile), then
            // each time it changes, until the wait runs out.
            let Some(rx) = watch.as_mut() else {
                watch = Some(self.shards.subscribe());
                continue;
            };
            let left = give_up.saturating_duration_since(Instant::now());
            if left.is_zero() || !changed(rx, left).await {
                return Err(refused);
            }
        }
    }

    /// The shard of a tenant-scoped request.
    pub(crate) fn tenant_shard(&self, tenant: &str) -> Result<u32> {
        Ok(routing::shard_of_tenant(tenant, self.shards.count()))
    }

    /// The shard of a bulk call: its filter's tenant's.
    pub(crate) fn bulk_shard(&self, req: &wire::BulkJobsRequest) -> Result<u32> {
        self.tenant_shard(req.filter.as_ref().map_or("", |f| f.tenant.as_str()))
    }

    /// The shard of a task-scoped request (`TaskNotFound` for an id no shard issued).
    pub(crate) fn task_shard(&self, task_id: &str) -> Result<u32> {
        routing::shard_of_task(task_id, self.shards.count()).ok_or(Error::TaskNotFound)
    }

    /// EnqueueBatch from its bytes, split by the tenant of each job (`split_routed`).
    /// An entry of a tenant outside the caller's scope fails alone (`Broker::enqueue_batch`).
    pub(crate) async fn enqueue_batch_routed(
        &self,
        bytes: Bytes,
        ctx: &CallContext,
        caller: &Caller,
    ) -> Result<Vec<u8>> {
        let count = self.shards.count();
        let scope = &caller.scope();
        self.split_routed::<wire::EnqueueBatchRequest, _, _>(
            bytes,
            ctx,
            caller,
            |j| routing::shard_of_tenant(&j.tenant, count),
            |req| {
                Ok(validate::enqueue_batch(req, &self.limits)?
                    .into_iter()
                    .map(|r| r.err())
                    .collect())
            },
            |req| self.enqueue_batch(req, scope),
        )
        .await
    }

    /// ReportTaskOutcomes from its bytes, split by the shard each task id names (an id that
    /// names no shard goes to shard 0, which answers NOT_FOUND; so does a task of a tenant
    /// outside the caller's scope).
    pub(crate) async fn report_task_outcomes_routed(
        &self,
        bytes: Bytes,
        ctx: &CallContext,
        caller: &Caller,
    ) -> Result<Vec<u8>> {
        let count = self.shards.count();
        let scope = &caller.scope();
        self.split_routed::<wire::ReportTaskOutcomesRequest, _, _>(
            bytes,
            ctx,
            caller,
            |r| routing::shard_of_task(&r.task_id, count).unwrap_or(0),
            |req| {
                Ok(validate::report_batch(req, &self.limits)?
                    .into_iter()
                    .map(|r| r.err())
                    .collect())
            },
            |req| self.report_task_outcomes(req, scope),
        )
        .await
    }

    /// A batch call from its bytes: a batch whose entries live on one shard (or a process that
    /// serves every shard) goes where that shard is served as it came; a batch over several
    /// shards is validated here (`check`: each entry's error, so errors name the entries'
    /// places in the whole batch) and its valid entries travel as one sub-batch per shard,
    /// routed like any call, and the answers come back in the batch's order.
    async fn split_routed<B, Fut, C>(
        &self,
        bytes: Bytes,
        ctx: &CallContext,
        caller: &Caller,
        shard_of: impl Fn(&B::Entry) -> u32,
        check: C,
        run: impl Fn(B) -> Fut,
    ) -> Result<Vec<u8>>
    where
        B: BatchCall,
        C: FnOnce(B) -> Result<Vec<Option<Error>>>,
        Fut: Future<Output = Result<B::Reply>>,
    {
        let req: B = decode(bytes.clone())?;
        let shards: Vec<u32> = req.entries().iter().map(&shard_of).collect();
        if self.is_one_shard(&shards) {
            let shard = shards.first().copied().unwrap_or(0);
            return self
                .routed(B::RPC, bytes, ctx, caller, |_: &B| Ok(shard), &run)
                .await;
        }
        let entries = req.entries().to_vec();
        let mut results: Vec<B::Result> = vec![Default::default(); entries.len()];
        let mut groups: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
        for (i, error) in check(req)?.into_iter().enumerate() {
            match error {
                None => groups.entry(shards[i]).or_default().push(i),
                Some(e) => results[i] = B::failed(&e),
            }
        }
        let runs = groups.into_iter().map(|(shard, slots)| {
            let sub = B::of(slots.iter().map(|&i| entries[i].clone()).collect());
            let body = Bytes::from(sub.encode_to_vec());
            let run = &run;
            async move {
                let reply = self
                    .routed(B::RPC, body, ctx, caller, |_: &B| Ok(shard), run)
                    .await
                    .and_then(|b| decode::<B::Reply>(Bytes::from(b)))
                    .map(B::results);
                (slots, reply)
            }
        });
        for (slots, reply) in futures::future::join_all(runs).await {
            match reply.and_then(|r| one_each(r, slots.len())) {
                Ok(answers) => {
                    for (slot, r) in slots.into_iter().zip(answers) {
                        results[slot] = r;
                    }
                }
                Err(e) => {
                    for slot in slots {
                        results[slot] = B::failed(&e);
                    }
                }
            }
        }
        Ok(B::reply(results).encode_to_vec())
    }

    /// Whether a batch's entries all live on one shard (an empty batch counts as shard 0's),
    /// or every shard is this process's (then `by_shard` splits it without forwarding).
    fn is_one_shard(&self, shards: &[u32]) -> bool {
        shards.windows(2).all(|w| w[0] == w[1]) || self.all_local()
    }

    /// Whether this process serves every shard of the store (no cluster).
    pub(crate) fn all_local(&self) -> bool {
        self.shards
            .snapshot()
            .iter()
            .all(|r| matches!(r, Route::Local(_)))
    }
}

/// A batch's answers, checked to be one per entry sent.
pub(crate) fn one_each<T>(answers: Vec<T>, sent: usize) -> Result<Vec<T>> {
    if answers.len() == sent {
        Ok(answers)
    } else {
        Err(Error::Internal(format!(
            "a batch of {sent} was answered with {} results",
            answers.len()
        )))
    }
}

/// A batch RPC: its entries, its per-entry results, and how to build either side.
pub(crate) trait BatchCall: Message + Default + Scoped {
    type Entry: Message + Clone;
    type Result: Clone + Default;
    type Reply: Message + Default;
    const RPC: Rpc;
    fn entries(&self) -> &[Self::Entry];
    fn of(entries: Vec<Self::Entry>) -> Self;
    fn results(reply: Self::Reply) -> Vec<Self::Result>;
    fn reply(results: Vec<Self::Result>) -> Self::Reply;
    /// The result of an entry that failed with `e`.
    fn failed(e: &Error) -> Self::Result;
}

impl BatchCall for wire::EnqueueBatchRequest {
    type Entry = wire::EnqueueRequest;
    type Result = wire::EnqueueResult;
    type Reply = wire::EnqueueBatchResponse;
    const RPC: Rpc = Rpc::EnqueueBatch;
    fn entries(&self) -> &[wire::EnqueueRequest] {
        &self.jobs
    }
    fn of(jobs: Vec<wire::EnqueueRequest>) -> Self {
        wire::EnqueueBatchRequest { jobs }
    }
    fn results(reply: wire::EnqueueBatchResponse) -> Vec<wire::EnqueueResult> {
        reply.results
    }
    fn reply(results: Vec<wire::EnqueueResult>) -> wire::EnqueueBatchResponse {
        wire::EnqueueBatchResponse { results }
    }
    fn failed(e: &Error) -> wire::EnqueueResult {
        wire::EnqueueResult {
            code: e.status().code as i32,
            message: e.public_message(),
            ..Default::default()
        }
    }
}

impl BatchCall for wire::ReportTaskOutcomesRequest {
    type Entry = wire::ReportTaskOutcomeRequest;
    type Result = wire::ReportResult;
    type Reply = wire::ReportTaskOutcomesResponse;
    const RPC: Rpc = Rpc::ReportTaskOutcomes;
    fn entries(&self) -> &[wire::ReportTaskOutcomeRequest] {
        &self.reports
    }
    fn of(reports: Vec<wire::ReportTaskOutcomeRequest>) -> Self {
        wire::ReportTaskOutcomesRequest { reports }
    }
    fn results(reply: wire::ReportTaskOutcomesResponse) -> Vec<wire::ReportResult> {
        reply.results
    }
    fn reply(results: Vec<wire::ReportResult>) -> wire::ReportTaskOutcomesResponse {
        wire::ReportTaskOutcomesResponse { results }
    }
    fn failed(e: &Error) -> wire::ReportResult {
        wire::ReportResult {
            code: e.status().code as i32,
            message: e.public_message(),
        }
    }
}
