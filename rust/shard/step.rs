//! The step: the actor's loop drains waiting commands, applies them to one `Txn`, serves parked
//! long-polls, writes the step as one batch and answers once it is durable (group commit, see
//! docs/architecture.md#group-commit).

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::handle::{closed_error, Command, Reply};
use super::health::record_failure;
use super::parked::Waiter;
use super::queue_counts::CountDeltas;
use super::ready::Queued;
use super::txn::Txn;
use super::Shard;
use crate::error::{Error, Result};
use crate::keys;
use crate::proto::{records, wire};
use crate::record;

/// Most commands one step takes from the channel (bounds the latency of a step).
const MAX_COMMANDS_PER_STEP: usize = 256;

/// A deferred answer: sent once the step's batch is durable (or failed).
pub(super) type Deferred = Box<dyn FnOnce(Result<()>) + Send + Sync>;

pub(super) fn defer<T: Send + Sync + 'static>(tx: Reply<T>, result: Result<T>) -> Deferred {
    Box::new(move |durable: Result<()>| {
        let _ = tx.send(durable.and(result));
    })
}

/// The work of one actor step.
pub(super) struct Step {
    pub(super) now: i64,
    /// The first sequence number this step may allocate: keys with a later one are new.
    pub(super) first_seq: u64,
    pub(super) txn: Txn,
    pub(super) replies: Vec<Deferred>,
    /// WaitJob callers woken by a job that became terminal, with the job as written then.
    pub(super) woken: Vec<(records::JobRecord, Vec<Reply<wire::Job>>)>,
    /// How the step moved jobs between statuses, per count (written at commit).
    pub(super) counts: CountDeltas,
    /// Jobs the step queued due now (READY entries written), for memory to admit at the end
    /// of the step with the timers that came due.
    pub(super) due_now: Vec<Queued>,
}

impl Step {
    pub(super) fn new(now: i64, first_seq: u64) -> Step {
        Step {
            now,
            first_seq,
            txn: Txn::default(),
            replies: Vec::new(),
            woken: Vec::new(),
            counts: CountDeltas::default(),
            due_now: Vec::new(),
        }
    }
}

impl Shard {
    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut closing: Option<oneshot::Sender<()>> = None;
        while closing.is_none() {
            let mut cmds = Vec::new();
            let sleep = self.time_to_next_deadline();
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(c) => cmds.push(c),
                    None => break,
                },
                _ = tokio::time::sleep(sleep) => {}
            }
            while cmds.len() < MAX_COMMANDS_PER_STEP {
                match rx.try_recv() {
                    Ok(c) => cmds.push(c),
                    Err(_) => break,
                }
            }
            if let Some(pos) = cmds.iter().position(|c| matches!(c, Command::Close(_))) {
                // Commands queued after Close are refused when the channel drops.
                if let Command::Close(tx) = cmds.remove(pos) {
                    closing = Some(tx);
                }
            }
            self.step(cmds).await;
        }
        rx.close();
        let closed = || closed_error(self.config.index, &self.moving);
        while let Ok(cmd) = rx.try_recv() {
            self.refuse(cmd, closed());
        }
        for w in self.parked.drain(..) {
            if let Waiter::Lease(w) = w {
                let _ = w.reply.send(Ok(wire::LeaseTasksResponse::default()));
            }
        }
        for w in self.ready_watches.drain(..) {
            let _ = w.reply.send(Ok(false));
        }
        for reply in self.waiters.drain() {
            let _ = reply.send(Err(closed()));
        }
        // Sessions end: their sinks drop (deliveries in flight still arrive).
        self.sessions.clear();
        if let Some(h) = self.last_write.take() {
            let _ = h.await_durable().await;
        }
        if let Err(e) = self.db.close().await {
            tracing::warn!("closing the shard's store: {e}");
        }
        if let Some(tx) = closing {
            let _ = tx.send(());
        }
    }

    fn time_to_next_deadline(&self) -> Duration {
        let next = [
            // A timer head that ran empty is refilled by the next step.
            if self.timers.needs_refill() {
                Some(0)
            } else {
                self.timers.first().map(|((t, _), _)| *t)
            },
            self.running.next_expiry(),
            self.parked
                .iter()
                .filter_map(|w| match w {
                    Waiter::Lease(p) => Some(p.deadline_ms),
                    Waiter::Session(_) => None,
                })
                .min(),
            self.waiters.next_deadline(),
            self.retention.next_due(),
            self.next_watch_deadline(),
            self.health.failure().map(|_| self.recover_after_ms),
            self.flow_deadline(),
        ]
        .into_iter()
        .flatten()
        .min();
        match next {
            // +1 ms so that a deadline at `t` is past when the step reads the clock.
            Some(t) => Duration::from_millis((t - self.clock.now_ms() + 1).clamp(0, 60_000) as u64),
            None => Duration::from_secs(60),
        }
    }

    fn refuse(&self, cmd: Command, err: Error) {
        match cmd {
            Command::Enqueue(_, r) => drop(r.send(Err(err))),
            Command::Cancel(_, r) => drop(r.send(Err(err))),
            Command::LeaseTasks(_, r) => drop(r.send(Err(err))),
            Command::HeartbeatTask(_, r) => drop(r.send(Err(err))),
            Command::ReportTaskOutcomes(_, r) => drop(r.send(Err(err))),
            Command::GetJob(_, _, r) => drop(r.send(Err(err))),
            Command::WaitJob(_, r) => drop(r.send(Err(err))),
            Command::ListJobs(_, r) => drop(r.send(Err(err))),
            Command::ListQueues(_, r) => drop(r.send(Err(err))),
            Command::RestartJob(_, r) => drop(r.send(Err(err))),
            Command::ExpediteJob(_, r) => drop(r.send(Err(err))),
            Command::DeleteJob(_, r) => drop(r.send(Err(err))),
            Command::BulkJobs(_, r) => drop(r.send(Err(err))),
            Command::GetStats(r) => drop(r.send(Err(err))),
            Command::GetConcurrencyKey(_, _, r) => drop(r.send(Err(err))),
            Command::Flow(cmd) => cmd.refuse(err),
            // A refused open drops its sink: the session sees its end at once.
            Command::SessionOpen(_) | Command::SessionCredits(..) | Command::SessionClose(_) => {}
            Command::PeekReady(_, _, _, r) => drop(r.send(Err(err))),
            Command::WatchReady(w) => drop(w.reply.send(Err(err))),
            Command::Close(r) => drop(r.send(())),
        }
    }

    /// Applies the session bookkeeping among `cmds` (memory only, so whatever the store's
    /// health: a store outage must not cost a session its credit) and returns the others.
    fn apply_sessions(&mut self, cmds: Vec<Command>) -> Vec<Command> {
        let mut rest = Vec::with_capacity(cmds.len());
        for cmd in cmds {
            match cmd {
                Command::SessionOpen(open) => self.session_open(open),
                Command::SessionCredits(id, credit) => self.session_credits(id, credit),
                Command::SessionClose(id) => self.session_close(id),
                other => rest.push(other),
            }
        }
        rest
    }

    /// One step: timers, commands, long-polls and sessions, one write, answers after durability.
    async fn step(&mut self, cmds: Vec<Command>) {
        let cmds = self.apply_sessions(cmds);
        if let Err(reason) = self.recover().await {
            // Memory may be ahead of the store: refuse everything rather than act on it.
            for cmd in cmds {
                self.refuse(cmd, Error::StoreUnavailable(reason.clone()));
            }
            return;
        }
        let mut st = Step::new(self.clock.now_ms(), self.next_seq);
        self.conc.set_now(st.now);
        self.fire_timers(&mut st).await;
        self.expire_job_waiters(&mut st).await;
        self.fire_retention(&mut st).await;
        for cmd in cmds {
            self.apply(&mut st, cmd).await;
        }
        // Admit what the commands made due (enqueues, immediate retries) before serving.
        self.fire_timers(&mut st).await;
        self.serve_parked(&mut st).await;
        self.serve_ready_watches(&mut st);
        self.serve_job_waiters(&mut st).await;
        self.commit(st).await;
    }

    async fn apply(&mut self, st: &mut Step, cmd: Command) {
        match cmd {
            Command::Enqueue(jobs, reply) => {
                let mut out = Vec::with_capacity(jobs.len());
                for job in jobs {
                    out.push(self.enqueue(st, job).await);
                }
                st.replies.push(defer(reply, Ok(out)));
            }
            Command::Cancel(job, reply) => {
                let r = self.cancel(st, &job).await;
                st.replies.push(defer(reply, r));
            }
            Command::LeaseTasks(params, reply) => self.lease_tasks(st, params, reply).await,
            Command::HeartbeatTask(params, reply) => {
                let r = self.heartbeat_task(st, params).await;
                st.replies.push(defer(reply, r));
            }
            Command::ReportTaskOutcomes(reports, reply) => {
                let mut out = Vec::with_capacity(reports.len());
                for report in reports {
                    out.push(self.report_task_outcome(st, report).await);
                }
                st.replies.push(defer(reply, Ok(out)));
            }
            Command::GetJob(job, include_attempts, reply) => {
                let r = self.get_job(st, &job, include_attempts).await;
                st.replies.push(defer(reply, r));
            }
            Command::WaitJob(params, reply) => self.wait_job(st, params, reply).await,
            Command::ListJobs(params, reply) => {
                let r = self.list_jobs(st, params).await;
                st.replies.push(defer(reply, r));
            }
            Command::ListQueues(tenant, reply) => {
                let r = self.list_queues(st, &tenant).await;
                st.replies.push(defer(reply, r));
            }
            Command::RestartJob(job, reply) => {
                let r = self.restart_job(st, &job).await;
                st.replies.push(defer(reply, r));
            }
            Command::ExpediteJob(job, reply) => {
                let r = self.expedite_job(st, &job).await;
                st.replies.push(defer(reply, r));
            }
            Command::DeleteJob(job, reply) => {
                let r = self.delete_job(st, &job).await;
                st.replies.push(defer(reply, r));
            }
            Command::BulkJobs(step, reply) => {
                let r = self.bulk_jobs(st, step).await;
                st.replies.push(defer(reply, r));
            }
            Command::GetStats(reply) => st.replies.push(defer(reply, Ok(self.get_stats()))),
            Command::GetConcurrencyKey(tenant, key, reply) => {
                let state = self.get_concurrency_key(&tenant, &key);
                st.replies.push(defer(reply, Ok(state)));
            }
            Command::Flow(cmd) => self.apply_flow(st, cmd).await,
            Command::SessionOpen(open) => self.session_open(open),
            Command::SessionCredits(id, credit) => self.session_credits(id, credit),
            Command::SessionClose(id) => self.session_close(id),
            Command::PeekReady(queues, max, tenants, reply) => {
                let peek = self.peek_ready(&queues, max, &tenants);
                st.replies.push(defer(reply, Ok(peek)));
            }
            Command::WatchReady(watch) => self.watch_ready(st, watch),
            Command::Close(reply) => drop(reply.send(())),
        }
    }

    /// Writes the step and answers its callers once durable, without blocking the next step.
    async fn commit(&mut self, mut st: Step) {
        if let Err(e) = self.flush_counts(&mut st).await {
            // The step's changes without their counts would leave the counts wrong for good:
            // write nothing, and rebuild from the store before serving again.
            tracing::error!("reading job counts failed: {e}");
            self.health.fail(e.to_string());
            for reply in st.replies {
                reply(Err(Error::StoreUnavailable(e.to_string())));
            }
            return;
        }
        if self.seq_dirty {
            st.txn.put(
                keys::meta(keys::META_NEXT_SEQ),
                record::encode_u64(self.next_seq),
            );
            self.seq_dirty = false;
        }
        for (key, value) in self.counts.take_writes().into_iter().flatten() {
            st.txn.put(key, value);
        }
        if st.replies.is_empty() && st.txn.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        let wrote = !st.txn.is_empty();
        if let Some(batch) = st.txn.into_batch() {
            match self.db.write(batch).await {
                Ok(handle) => {
                    self.last_write = Some(handle);
                    if let Some(kick) = &self.flush_now {
                        // Full channel: a flush is already due and will include this write.
                        let _ = kick.try_send(());
                    }
                }
                Err(e) => {
                    tracing::error!("shard write failed: {e}");
                    record_failure(&self.health, &self.fenced, &e);
                    let err = Error::StoreUnavailable(e.to_string());
                    for reply in st.replies {
                        reply(Err(err.clone()));
                    }
                    return;
                }
            }
        }
        let handle = self.last_write.clone();
        let health = self.health.clone();
        let fenced = self.fenced.clone();
        let replies = st.replies;
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let durable = match handle {
                Some(h) => match h.await_durable().await {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        tracing::error!("shard write did not become durable: {e}");
                        record_failure(&health, &fenced, &e);
                        Err(Error::StoreUnavailable(e.to_string()))
                    }
                },
                None => Ok(()),
            };
            if wrote && durable.is_ok() {
                metrics.commit(replies.len(), started.elapsed());
            }
            for reply in replies {
                reply(durable.clone());
            }
        });
    }
}
