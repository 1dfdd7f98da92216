//! EnqueueStream: every request is answered, in order, by one `EnqueueResult` once it is durable
//! (docs/api.md#enqueuestream). The requests that arrive together go to the shard as one
//! command, so they share a group commit with whatever else the actor's step holds; the next
//! requests go out while earlier ones wait for their commit, and the answers are put back in
//! order.

use bytes::Bytes;
use futures::stream::{FuturesOrdered, StreamExt};
use futures::FutureExt;
use prost::Message;

use super::{enqueue_result, Broker};
use crate::error::Result;
use crate::proto::wire;
use crate::rpc::decode;
use crate::stream_io::{StreamIo, Usage};
use crate::validate::{self, MAX_BATCH};

impl Broker {
    /// Serves one EnqueueStream until its input ends and every request is answered. A bad
    /// request fails alone (its result carries the code); the stream itself always ends OK.
    pub async fn enqueue_stream(&self, io: &StreamIo) -> Result<()> {
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
                    Some(requests) => pending.push_back(self.enqueue_requests(requests)),
                    None => input = false,
                },
            }
        }
        Ok(())
    }

    /// Enqueues one batch of raw requests: each decoded and validated alone, the valid ones in
    /// one shard command. The encoded results in order, and the requests they complete.
    async fn enqueue_requests(&self, requests: Vec<Bytes>) -> (Vec<Vec<u8>>, Usage) {
        let done = Usage::of(&requests);
        let entries = requests
            .into_iter()
            .map(|bytes| {
                decode::<wire::EnqueueRequest>(bytes)
                    .and_then(|req| validate::enqueue(req, &self.limits))
            })
            .collect();
        let answers = self
            .enqueue_each(entries)
            .await
            .into_iter()
            .map(|r| enqueue_result(r).encode_to_vec())
            .collect();
        (answers, done)
    }
}
