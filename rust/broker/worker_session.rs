//! WorkerSession: the first message opens a session in the shard actor
//! (rust/shard/worker_session.rs), which pushes tasks while the session has credit; credits,
//! heartbeats and outcomes follow on the same stream, and each heartbeat and outcome is answered
//! with the code of the unary call, in the order they came (docs/api.md#workersession).
//!
//! What ends a session: the client closing its side or the server's shutdown (OK, once every
//! heartbeat and outcome read is answered and every task taken for it is delivered), a message
//! it cannot answer (INVALID_ARGUMENT naming the field: one that does not decode, names no kind,
//! a second `open`, credit over the bound), or the stream breaking. Tasks already pushed stay
//! leased whatever happens, until reported or expired: a lost connection does not prove the
//! worker stopped.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, StreamExt};
use futures::FutureExt;
use prost::Message;
use tokio::sync::mpsc;

use super::{each, status_of, Broker, LeaseMerge};
use crate::auth::TenantScope;
use crate::error::{Error, Result};
use crate::proto::wire;
use crate::proto::wire::server_message::Kind as Out;
use crate::proto::wire::worker_message::Kind as In;
use crate::rpc::decode;
use crate::shard::worker_session::{SessionEvent, SessionId, SessionOpen};
use crate::shard::ShardHandle;
use crate::stream_io::{StreamIo, Usage};
use crate::validate::{self, MAX_BATCH};

/// Session ids, unique in the process.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// Answers to heartbeats and outcomes, with the requests they complete.
type Answers = (Vec<Vec<u8>>, Usage);

impl Broker {
    /// Serves one WorkerSession until it ends (see the module doc): Ok, or the error that
    /// ends it (INVALID_ARGUMENT naming the field). The session leases jobs of the tenants in
    /// `scope` only, and a heartbeat or outcome of another tenant's task is NOT_FOUND.
    pub async fn worker_session(&self, io: &StreamIo, scope: &TenantScope) -> Result<()> {
        let Some(first) = io.take(1).await.and_then(|mut b| b.pop()) else {
            return Err(Error::invalid(
                "open",
                "a session starts with an open message; the stream ended before one",
            ));
        };
        let done = Usage::one(first.len());
        let mut params = match decode::<wire::WorkerMessage>(first)?.kind {
            Some(In::Open(open)) => {
                validate::session_open(open).map_err(|e| e.in_field("open."))?
            }
            _ => {
                return Err(Error::invalid(
                    "open",
                    "the first message of a session must be open",
                ))
            }
        };
        io.done(done);
        params.lease.tenants = scope.clone();
        let (sink, events) = mpsc::unbounded_channel();
        let worker_id = params.lease.worker_id.clone();
        let locals = self.shards.locals();
        let source = match locals.as_slice() {
            // One local shard: the session lives in its actor, as fast as LeaseTasks there.
            [only] => {
                let id = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
                only.session_open(SessionOpen {
                    id,
                    lease: params.lease,
                    credit: params.credit,
                    sink,
                })
                .await?;
                Source::Shard(CloseOnDrop {
                    shard: only.clone(),
                    id,
                })
            }
            // Several (or none): a feed merges the node's shards as LeaseTasks does
            // (lease_tasks.rs), never taking more than the credit.
            _ => {
                let (grants, grants_rx) = mpsc::unbounded_channel();
                let clock = self.clock.clone();
                tokio::spawn(async move {
                    LeaseMerge::default()
                        .feed_session(
                            locals,
                            params.lease,
                            params.credit,
                            grants_rx,
                            sink,
                            move || clock.now_ms(),
                        )
                        .await
                });
                Source::Merge(Some(grants))
            }
        };
        let session = Session {
            broker: self,
            source,
            worker_id,
            credit: params.credit,
            scope: scope.clone(),
        };
        session.run(io, events).await
    }
}

/// Where a session's tasks come from.
enum Source {
    /// The session in the one local shard's actor.
    Shard(CloseOnDrop),
    /// A feed over several local shards; its credit grants (None once closed).
    Merge(Option<mpsc::UnboundedSender<u32>>),
}

impl Source {
    /// Gives the session more credit.
    async fn credits(&self, n: u32) -> Result<()> {
        match self {
            Source::Shard(g) => g.shard.session_credits(g.id, n).await,
            Source::Merge(grants) => {
                if let Some(tx) = grants {
                    let _ = tx.send(n);
                }
                Ok(())
            }
        }
    }

    /// Takes no more tasks: deliveries in flight arrive, then the events end.
    async fn close(&mut self) {
        match self {
            Source::Shard(g) => {
                let _ = g.shard.session_close(g.id).await;
            }
            Source::Merge(grants) => *grants = None,
        }
    }
}

/// Closes the session in the actor if the pump stops without closing it (an error, or the
/// stream broke and the pump was dropped).
struct CloseOnDrop {
    shard: ShardHandle,
    id: SessionId,
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.shard.session_close_soon(self.id);
    }
}

/// One open session's pump.
struct Session<'a> {
    broker: &'a Broker,
    source: Source,
    worker_id: String,
    /// Credit granted and not yet used by a delivered task: what the worker may count on.
    credit: u32,
    /// The tenants whose tasks the session may touch.
    scope: TenantScope,
}

impl<'a> Session<'a> {
    async fn run(
        mut self,
        io: &StreamIo,
        mut events: mpsc::UnboundedReceiver<SessionEvent>,
    ) -> Result<()> {
        let mut pending: FuturesOrdered<BoxFuture<'a, Answers>> = FuturesOrdered::new();
        let mut input = true;
        let mut open = true;
        while open || !pending.is_empty() {
            tokio::select! {
                biased;
                Some((answers, done)) = pending.next(), if !pending.is_empty() => {
                    io.answer(answers, done);
                }
                event = events.recv(), if open => match event {
                    Some(SessionEvent::Tasks(tasks)) => {
                        self.credit = self.credit.saturating_sub(tasks.len() as u32);
                        let out = tasks
                            .into_iter()
                            .map(|t| server_message(Out::Task(t)))
                            .collect();
                        io.answer(out, Usage::NONE);
                    }
                    Some(SessionEvent::Lost(n)) => {
                        // Not leased after all: the credit is the session's again.
                        if input {
                            self.source.credits(n).await?;
                        }
                    }
                    // The actor ended the session (we closed it, or the broker closes).
                    None => open = false,
                },
                requests = io.take(MAX_BATCH), if input && open => match requests {
                    Some(requests) => self.requests(requests, io, &mut pending).await?,
                    None => {
                        // No more messages: no more tasks either; deliveries in flight arrive,
                        // then the actor drops the sink.
                        input = false;
                        self.source.close().await;
                    }
                },
            }
        }
        Ok(())
    }

    /// Applies a batch of messages in order: credits at once; heartbeats and runs of outcomes
    /// (one shard command per run, so they share a group commit) as answers to come, in
    /// order. A message that cannot be answered ends the session with its error.
    async fn requests(
        &mut self,
        requests: Vec<Bytes>,
        io: &StreamIo,
        pending: &mut FuturesOrdered<BoxFuture<'a, Answers>>,
    ) -> Result<()> {
        let mut outcomes: Vec<(wire::ReportTaskOutcomeRequest, usize)> = Vec::new();
        for bytes in requests {
            let size = bytes.len();
            let kind = decode::<wire::WorkerMessage>(bytes)?.kind;
            if !matches!(kind, Some(In::Outcome(_))) && !outcomes.is_empty() {
                pending.push_back(self.outcomes(std::mem::take(&mut outcomes)));
            }
            match kind {
                None => {
                    return Err(Error::invalid(
                        "kind",
                        "a WorkerMessage needs one of open, credits, heartbeat or outcome",
                    ))
                }
                Some(In::Open(_)) => {
                    return Err(Error::invalid(
                        "open",
                        "only the first message of a session may be open",
                    ))
                }
                Some(In::Credits(n)) => {
                    self.credit = validate::session_credit("credits", self.credit, n)?;
                    self.source.credits(n).await?;
                    io.done(Usage::one(size));
                }
                Some(In::Heartbeat(req)) => pending.push_back(self.heartbeat(req, size)),
                Some(In::Outcome(req)) => outcomes.push((req, size)),
            }
        }
        if !outcomes.is_empty() {
            pending.push_back(self.outcomes(outcomes));
        }
        Ok(())
    }

    /// A heartbeat, answered as HeartbeatTask would be.
    fn heartbeat(
        &self,
        mut req: wire::HeartbeatTaskRequest,
        size: usize,
    ) -> BoxFuture<'a, Answers> {
        let broker = self.broker;
        let worker = self.own_worker(&req.worker_id);
        let scope = self.scope.clone();
        async move {
            let task_id = req.task_id.clone();
            let r = match worker {
                Ok(worker_id) => {
                    req.worker_id = worker_id;
                    broker.heartbeat_task(req, &scope).await
                }
                Err(e) => Err(e),
            }
            .map_err(|e| e.in_field("heartbeat."));
            let (code, message) = status_of(&r);
            let r = r.unwrap_or_default();
            let answer = server_message(Out::Heartbeat(wire::HeartbeatResult {
                task_id,
                code,
                cancelled: r.cancelled,
                lease_expires_at_ms: r.lease_expires_at_ms,
                message,
            }));
            (vec![answer], Usage::one(size))
        }
        .boxed()
    }

    /// A run of outcomes, recorded by one shard command and answered in order, each as
    /// ReportTaskOutcome would be.
    fn outcomes(
        &self,
        reports: Vec<(wire::ReportTaskOutcomeRequest, usize)>,
    ) -> BoxFuture<'a, Answers> {
        let broker = self.broker;
        let mut done = Usage::NONE;
        let mut task_ids = Vec::with_capacity(reports.len());
        let mut entries = Vec::with_capacity(reports.len());
        for (mut req, size) in reports {
            done.add(Usage::one(size));
            task_ids.push(req.task_id.clone());
            entries.push(
                self.own_worker(&req.worker_id)
                    .and_then(|worker_id| {
                        req.worker_id = worker_id;
                        let mut p = validate::report(req, &broker.limits)?;
                        p.tenants = self.scope.clone();
                        Ok(p)
                    })
                    .map_err(|e| e.in_field("outcome.")),
            );
        }
        async move {
            let results = each(entries, |reports| broker.report_entries(reports)).await;
            let answers = task_ids
                .into_iter()
                .zip(results)
                .map(|(task_id, r)| {
                    let (code, message) = status_of(&r);
                    server_message(Out::Outcome(wire::OutcomeResult {
                        task_id,
                        code,
                        message,
                    }))
                })
                .collect();
            (answers, done)
        }
        .boxed()
    }

    /// The worker a heartbeat or outcome acts for: the session's. A message may leave
    /// `worker_id` empty or repeat the session's; another worker's is INVALID_ARGUMENT.
    fn own_worker(&self, given: &str) -> Result<String> {
        if given.is_empty() || given == self.worker_id {
            Ok(self.worker_id.clone())
        } else {
            Err(Error::invalid(
                "worker_id",
                format!(
                    "must be empty or the session's worker_id {:?} (got {given:?})",
                    self.worker_id
                ),
            ))
        }
    }
}

fn server_message(kind: Out) -> Vec<u8> {
    wire::ServerMessage { kind: Some(kind) }.encode_to_vec()
}
