//! EnqueueStream: every request is answered, in order, by one `EnqueueResult` once it is durable
//! (docs/api.md#enqueuestream). The requests that arrive together go to the shard as one
//! command, so they share a group commit with whatever else the actor's step holds; the next
//! requests go out while earlier ones wait for their commit, and the answers are put back in
//! order. In a cluster, requests for shards other nodes own are forwarded (one EnqueueBatch per
//! shard, made of the requests' own bytes) with the stream's metadata (the caller's token).

use bytes::Bytes;
use futures::stream::{FuturesOrdered, StreamExt};
use futures::FutureExt;
use prost::Message;

use super::route::one_each;
use super::{enqueue_result, in_scope, Broker, CallContext};
use crate::auth::{Caller, TenantScope};
use crate::error::Result;
use crate::proto::wire;
use crate::rpc::decode;
use crate::stream_io::{StreamIo, Usage};
use crate::validate::{self, NewJob, MAX_BATCH};

impl Broker {
    /// Serves one EnqueueStream until its input ends and every request is answered. A bad
    /// request fails alone (its result carries the code); the stream itself always ends OK.
    /// A request of a tenant outside `scope` fails alone with PERMISSION_DENIED. Requests
    /// forwarded to other nodes carry `ctx`, the stream's metadata (the caller's token).
    pub async fn enqueue_stream(
        &self,
        io: &StreamIo,
        scope: &TenantScope,
        ctx: &CallContext,
    ) -> Result<()> {
        let mut pending = FuturesOrdered::new();
        let mut input = true;
        while input || !pending.is_empty() {
            tokio::select! {
                biased;
                Some(batch) = pending.next(), if !pending.is_empty() => {
                    let (mut answers, mut done): (Vec<Vec<u8>>, Usage) = batch;
                    // Answers of later batches that are ready too go out with these.
                    while let Some(Some((more, more_done))) = pending.next().now_or_never() {
                        answers.extend(more);
                        done.add(more_done);
                    }
                    io.answer(answers, done);
                }
                requests = io.take(MAX_BATCH), if input => match requests {
                    Some(requests) => {
                        pending.push_back(self.enqueue_requests(requests, scope, ctx))
                    }
                    None => input = false,
                },
            }
        }
        Ok(())
    }

    /// Enqueues one batch of raw requests: each decoded and validated alone, the valid ones in
    /// one command per shard; an entry of a tenant outside `scope` fails alone
    /// (PERMISSION_DENIED). The encoded results in order, and the requests they complete.
    async fn enqueue_requests(
        &self,
        requests: Vec<Bytes>,
        scope: &TenantScope,
        ctx: &CallContext,
    ) -> (Vec<Vec<u8>>, Usage) {
        let done = Usage::of(&requests);
        let entries: Vec<Result<NewJob>> = requests
            .iter()
            .map(|bytes| {
                decode::<wire::EnqueueRequest>(bytes.clone())
                    .and_then(|req| validate::enqueue(req, &self.limits))
            })
            .collect();
        let entries = in_scope(entries, scope);
        let results = if self.all_local() {
            self.enqueue_each(entries)
                .await
                .into_iter()
                .map(enqueue_result)
                .collect()
        } else {
            self.enqueue_routed_each(entries, &requests, ctx).await
        };
        let answers = results.iter().map(|r| r.encode_to_vec()).collect();
        (answers, done)
    }

    /// In a cluster: the valid requests travel as they came, as one EnqueueBatch split by shard
    /// and routed like any batch (forwarded to the owners of other nodes' shards); each result
    /// goes back to its request's place beside the validation errors of the others. The
    /// forwarded parts carry `ctx` (the stream's metadata), so the owner checks the caller's
    /// token as for any forwarded call, and its refusal comes back unchanged.
    async fn enqueue_routed_each(
        &self,
        entries: Vec<Result<NewJob>>,
        requests: &[Bytes],
        ctx: &CallContext,
    ) -> Vec<wire::EnqueueResult> {
        let mut results: Vec<wire::EnqueueResult> = Vec::with_capacity(entries.len());
        let mut slots = Vec::new();
        let mut batch = Vec::new();
        for (i, entry) in entries.into_iter().enumerate() {
            match entry {
                Ok(_) => {
                    slots.push(i);
                    // EnqueueBatchRequest field 1, `jobs`: the request's own bytes.
                    prost::encoding::encode_key(
                        1,
                        prost::encoding::WireType::LengthDelimited,
                        &mut batch,
                    );
                    prost::encoding::encode_varint(requests[i].len() as u64, &mut batch);
                    batch.extend_from_slice(&requests[i]);
                    results.push(wire::EnqueueResult::default());
                }
                Err(e) => results.push(enqueue_result(Err(e))),
            }
        }
        if slots.is_empty() {
            return results;
        }
        let answered = self
            // The entries' tenants were checked against the stream's caller (`in_scope`); an
            // owner node checks its token again from `ctx`.
            .enqueue_batch_routed(Bytes::from(batch), ctx, &Caller::Trusted)
            .await
            .and_then(|reply| decode::<wire::EnqueueBatchResponse>(Bytes::from(reply)))
            .and_then(|reply| one_each(reply.results, slots.len()));
        match answered {
            Ok(answers) => {
                for (slot, answer) in slots.into_iter().zip(answers) {
                    results[slot] = answer;
                }
            }
            Err(e) => {
                for slot in slots {
                    results[slot] = enqueue_result(Err(e.clone()));
                }
            }
        }
        results
    }
}
