//! The actor's public face: `ShardHandle`, the cheap address callers hold, and the `Command`
//! each of its methods sends (one per RPC, named after it). See docs/architecture.md#the-shard-actor.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use super::bulk_jobs::{BulkProgress, BulkStep};
use super::flow::FlowCommand;
use super::worker_session::{SessionId, SessionOpen};
use crate::auth::TenantScope;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::proto::{admin, wire};
use crate::validate::{
    HeartbeatParams, LeaseParams, ListJobsParams, NewJob, ReportParams, WaitJobParams,
};

use super::ready::PeekLevel;
use super::ready_watch::ReadyWatch;

pub(super) type Reply<T> = oneshot::Sender<Result<T>>;

/// What callers ask of the actor. Each variant carries validated parameters.
pub(super) enum Command {
    Enqueue(Vec<NewJob>, Reply<Vec<Result<Enqueued>>>),
    Cancel(JobRef, Reply<()>),
    LeaseTasks(LeaseParams, Reply<wire::LeaseTasksResponse>),
    HeartbeatTask(HeartbeatParams, Reply<wire::HeartbeatTaskResponse>),
    ReportTaskOutcomes(Vec<ReportParams>, Reply<Vec<Result<()>>>),
    GetJob(JobRef, bool, Reply<wire::Job>),
    WaitJob(WaitJobParams, Reply<wire::Job>),
    ListJobs(ListJobsParams, Reply<wire::ListJobsResponse>),
    ListQueues(String, Reply<wire::ListQueuesResponse>),
    RestartJob(JobRef, Reply<wire::Job>),
    ExpediteJob(JobRef, Reply<wire::Job>),
    DeleteJob(JobRef, Reply<()>),
    BulkJobs(BulkStep, Reply<BulkProgress>),
    GetStats(Reply<BTreeMap<String, i64>>),
    GetConcurrencyKey(String, String, Reply<admin::ConcurrencyKeyState>),
    /// Flow control: queues, schedules, rate-limit keys (flow.rs).
    Flow(FlowCommand),
    /// Session bookkeeping (worker_session.rs): memory only, applied whatever the store's
    /// health, and never answered (a session learns its end from its sink).
    SessionOpen(SessionOpen),
    SessionCredits(SessionId, u32),
    SessionClose(SessionId),
    /// What the ready index would hand out next (LeaseTasks over several shards).
    PeekReady(Vec<String>, usize, TenantScope, Reply<Vec<PeekLevel>>),
    /// Answers once a job of these queues is due (true) or the deadline passes (false).
    WatchReady(ReadyWatch),
    Close(oneshot::Sender<()>),
}

/// What an enqueue stored: the job's id, or the id of the job that holds its unique key
/// (`deduplicated`, nothing stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    pub id: String,
    pub deduplicated: bool,
}

/// A job's address.
#[derive(Debug, Clone)]
pub struct JobRef {
    pub tenant: String,
    pub id: String,
}

/// The cheap, cloneable address of a running shard actor.
#[derive(Clone)]
pub struct ShardHandle {
    /// The shard's number in its store.
    pub shard: u32,
    pub(super) tx: mpsc::Sender<Command>,
    pub(super) fenced: watch::Receiver<bool>,
    /// Set when the shard is being handed to another node (`hand_over`): calls it refuses
    /// from then on answer `ShardUnavailable`, which the router retries on the new owner.
    pub(super) moving: Arc<AtomicBool>,
    pub(super) metrics: Arc<Metrics>,
}

impl ShardHandle {
    /// The shard's counters and histograms (read without asking the actor, so `/metrics`
    /// answers whatever the actor is doing).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub(super) async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| self.closed_error())?;
        rx.await.map_err(|_| self.closed_error())?
    }

    /// The error of a call the closed actor never applied.
    pub(super) fn closed_error(&self) -> Error {
        closed_error(self.shard, &self.moving)
    }

    /// What the ready index would hand out next from these queues to a caller of `tenants`,
    /// taking nothing.
    pub async fn peek_ready(
        &self,
        queues: Vec<String>,
        max: usize,
        tenants: TenantScope,
    ) -> Result<Vec<PeekLevel>> {
        self.call(|r| Command::PeekReady(queues, max, tenants, r))
            .await
    }

    /// True as soon as a job of these queues of a tenant in `tenants` is due; false once
    /// `deadline_ms` passes.
    pub async fn watch_ready(
        &self,
        queues: Vec<String>,
        tenants: TenantScope,
        deadline_ms: i64,
    ) -> Result<bool> {
        self.call(|reply| {
            Command::WatchReady(ReadyWatch {
                queues,
                tenants,
                deadline_ms,
                reply,
            })
        })
        .await
    }

    /// Whether a newer broker fenced this shard off the store.
    pub fn is_fenced(&self) -> bool {
        *self.fenced.borrow()
    }

    /// Closes the shard to hand it to another node: the commands already sent are applied and
    /// made durable, SlateDB is closed, and every call refused from now on answers
    /// `ShardUnavailable` (never applied, so the router may send it to the new owner).
    pub async fn hand_over(&self) {
        self.moving.store(true, Ordering::SeqCst);
        self.close().await;
    }

    /// Enqueues jobs in order; each succeeds or fails alone; all are durable together.
    pub async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Result<Enqueued>>> {
        self.call(|r| Command::Enqueue(jobs, r)).await
    }

    pub async fn cancel(&self, job: JobRef) -> Result<()> {
        self.call(|r| Command::Cancel(job, r)).await
    }

    pub async fn lease_tasks(&self, params: LeaseParams) -> Result<wire::LeaseTasksResponse> {
        self.call(|r| Command::LeaseTasks(params, r)).await
    }

    pub async fn heartbeat_task(
        &self,
        params: HeartbeatParams,
    ) -> Result<wire::HeartbeatTaskResponse> {
        self.call(|r| Command::HeartbeatTask(params, r)).await
    }

    pub async fn report_task_outcomes(
        &self,
        reports: Vec<ReportParams>,
    ) -> Result<Vec<Result<()>>> {
        self.call(|r| Command::ReportTaskOutcomes(reports, r)).await
    }

    pub async fn get_job(&self, job: JobRef, include_attempts: bool) -> Result<wire::Job> {
        self.call(|r| Command::GetJob(job, include_attempts, r))
            .await
    }

    /// The job once it is terminal, or as it is when the timeout passes.
    pub async fn wait_job(&self, params: WaitJobParams) -> Result<wire::Job> {
        self.call(|r| Command::WaitJob(params, r)).await
    }

    /// A page of jobs matching a filter, newest first.
    pub async fn list_jobs(&self, params: ListJobsParams) -> Result<wire::ListJobsResponse> {
        self.call(|r| Command::ListJobs(params, r)).await
    }

    /// A tenant's queues with their job counts per status.
    pub async fn list_queues(&self, tenant: String) -> Result<wire::ListQueuesResponse> {
        self.call(|r| Command::ListQueues(tenant, r)).await
    }

    /// A FAILED or CANCELLED job runs again with a fresh retry budget.
    pub async fn restart_job(&self, job: JobRef) -> Result<wire::Job> {
        self.call(|r| Command::RestartJob(job, r)).await
    }

    /// A SCHEDULED job becomes due now.
    pub async fn expedite_job(&self, job: JobRef) -> Result<wire::Job> {
        self.call(|r| Command::ExpediteJob(job, r)).await
    }

    /// Deletes a terminal job and everything that refers to it.
    pub async fn delete_job(&self, job: JobRef) -> Result<()> {
        self.call(|r| Command::DeleteJob(job, r)).await
    }

    /// One bounded command of a bulk call (the broker sends them until done).
    pub async fn bulk_jobs(&self, step: BulkStep) -> Result<BulkProgress> {
        self.call(|r| Command::BulkJobs(step, r)).await
    }

    /// Sizes of the in-memory state (ready, scheduled, running, lease_waiters, job_waiters,
    /// concurrency_keys).
    pub async fn get_stats(&self) -> Result<BTreeMap<String, i64>> {
        self.call(Command::GetStats).await
    }

    /// The slot accounting of one concurrency key.
    pub async fn get_concurrency_key(
        &self,
        tenant: String,
        key: String,
    ) -> Result<admin::ConcurrencyKeyState> {
        self.call(|r| Command::GetConcurrencyKey(tenant, key, r))
            .await
    }

    /// Opens a worker session: from now on the actor sends its tasks to `open.sink` while it has
    /// credit. Fails only when the shard is shutting down.
    pub async fn session_open(&self, open: SessionOpen) -> Result<()> {
        self.send(Command::SessionOpen(open)).await
    }

    /// Gives a session more credit (ignored once the session is closed).
    pub async fn session_credits(&self, id: SessionId, credit: u32) -> Result<()> {
        self.send(Command::SessionCredits(id, credit)).await
    }

    /// Closes a session: it takes no more tasks, and its sink drops once the deliveries in
    /// flight are made.
    pub async fn session_close(&self, id: SessionId) -> Result<()> {
        self.send(Command::SessionClose(id)).await
    }

    /// `session_close` for a caller that cannot wait (a session dropped mid-way): sent at once
    /// if the channel has room, else from a task of the current runtime (if any).
    pub fn session_close_soon(&self, id: SessionId) {
        if let Err(mpsc::error::TrySendError::Full(cmd)) =
            self.tx.try_send(Command::SessionClose(id))
        {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let tx = self.tx.clone();
                rt.spawn(async move {
                    let _ = tx.send(cmd).await;
                });
            }
        }
    }

    async fn send(&self, cmd: Command) -> Result<()> {
        self.tx.send(cmd).await.map_err(|_| self.closed_error())
    }

    /// Resolves once a newer broker has fenced this one off the store.
    pub async fn fenced(&self) {
        let mut rx = self.fenced.clone();
        let _ = rx.wait_for(|f| *f).await;
    }

    /// Finishes queued commands, waits for durability and closes SlateDB.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Close(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

pub(super) fn shutting_down() -> Error {
    Error::StoreUnavailable("the broker is shutting down".into())
}

/// The error of a call a closed (or closing) actor refused without applying it.
pub(super) fn closed_error(shard: u32, moving: &AtomicBool) -> Error {
    if moving.load(Ordering::SeqCst) {
        Error::ShardUnavailable {
            shard,
            reason: "it is being handed to another node".into(),
        }
    } else {
        shutting_down()
    }
}
