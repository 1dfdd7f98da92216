//! The shard actor: the one task that owns and mutates one shard (one SlateDB).
//!
//! Callers send a `Command` and await a oneshot reply. The actor drains every waiting command
//! into one step: it fires due timers, applies the commands to one `Txn`, serves parked
//! long-polls, writes the step as one `WriteBatch`, and answers every caller of the step once
//! that batch is durable (`await_durable`), in a spawned task so the next step can start at once
//! (group commit: SlateDB flushes all steps that arrived within one WAL flush together).
//!
//! In-memory state (ready index, timers, lease table, parked long-polls) is a cache rebuilt
//! from SlateDB by `Shard::open`; only the actor writes it.

mod cancel;
mod complete;
pub mod concurrency;
mod enqueue;
mod heartbeat;
mod lease;
pub mod leases;
mod page;
mod query;
mod queued;
pub mod ready;
mod timers;
mod txn;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use slatedb::{CloseReason, Db, ErrorKind, WriteHandle};
use tokio::sync::{mpsc, oneshot, watch};

use crate::clock::Clock;
use crate::codec;
use crate::error::{Error, Result};
use crate::keys;
use crate::proto::{admin, store, wire};
use crate::store::ShardStore;
use crate::validate::{HeartbeatParams, LeaseParams, Limits, NewJob, ReportParams};

use concurrency::ConcurrencyTable;
use leases::{Lease, LeaseTable};
use page::Page;
/// Entries of each ready group and of the timers held in memory (the rest stays in the store).
pub use page::PAGE_SIZE as INDEX_PAGE_SIZE;
use ready::{ReadyIndex, Waiting};
use txn::Txn;

/// Most commands one step takes from the channel (bounds the latency of a step).
const MAX_COMMANDS_PER_STEP: usize = 256;
/// Channel capacity: senders wait when the actor falls this far behind.
const CHANNEL_CAPACITY: usize = 4096;

/// Settings of one shard.
#[derive(Debug, Clone, Copy)]
pub struct ShardConfig {
    pub lease_ms: i64,
    pub limits: Limits,
}

type Reply<T> = oneshot::Sender<Result<T>>;

/// What callers ask of the actor. Each variant carries validated parameters.
enum Command {
    Enqueue(Vec<NewJob>, Reply<Vec<Result<String>>>),
    Cancel(JobRef, Reply<()>),
    Lease(LeaseParams, Reply<wire::LeaseTasksResponse>),
    Heartbeat(HeartbeatParams, Reply<wire::HeartbeatTaskResponse>),
    Report(Vec<ReportParams>, Reply<Vec<Result<()>>>),
    GetJob(JobRef, bool, Reply<wire::Job>),
    Gauges(Reply<BTreeMap<String, i64>>),
    DescribeKey(String, String, Reply<admin::ConcurrencyKeyState>),
    Close(oneshot::Sender<()>),
}

/// A job's address.
#[derive(Debug, Clone)]
pub struct JobRef {
    pub tenant: String,
    pub id: String,
}

/// A deferred answer: sent once the step's batch is durable (or failed).
type Deferred = Box<dyn FnOnce(Result<()>) + Send + Sync>;

fn defer<T: Send + Sync + 'static>(tx: Reply<T>, result: Result<T>) -> Deferred {
    Box::new(move |durable: Result<()>| {
        let _ = tx.send(durable.and(result));
    })
}

/// The work of one actor step.
struct Step {
    now: i64,
    /// The first sequence number this step may allocate: keys with a later one are new.
    first_seq: u64,
    txn: Txn,
    replies: Vec<Deferred>,
}

/// A LeaseTasks call parked until a task is ready or its deadline passes.
struct LeaseWaiter {
    params: LeaseParams,
    deadline_ms: i64,
    reply: Reply<wire::LeaseTasksResponse>,
}

/// The cheap, cloneable address of a running shard actor.
#[derive(Clone)]
pub struct ShardHandle {
    tx: mpsc::Sender<Command>,
    fenced: watch::Receiver<bool>,
}

impl ShardHandle {
    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.map_err(|_| shutting_down())?;
        rx.await.map_err(|_| shutting_down())?
    }

    /// Enqueues jobs in order; each succeeds or fails alone; all are durable together.
    pub async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Result<String>>> {
        self.call(|r| Command::Enqueue(jobs, r)).await
    }

    pub async fn cancel(&self, job: JobRef) -> Result<()> {
        self.call(|r| Command::Cancel(job, r)).await
    }

    pub async fn lease(&self, params: LeaseParams) -> Result<wire::LeaseTasksResponse> {
        self.call(|r| Command::Lease(params, r)).await
    }

    pub async fn heartbeat(&self, params: HeartbeatParams) -> Result<wire::HeartbeatTaskResponse> {
        self.call(|r| Command::Heartbeat(params, r)).await
    }

    pub async fn report(&self, reports: Vec<ReportParams>) -> Result<Vec<Result<()>>> {
        self.call(|r| Command::Report(reports, r)).await
    }

    pub async fn get_job(&self, job: JobRef, include_attempts: bool) -> Result<wire::Job> {
        self.call(|r| Command::GetJob(job, include_attempts, r))
            .await
    }

    /// Sizes of the in-memory state (ready, scheduled, running, lease_waiters, concurrency_keys).
    pub async fn gauges(&self) -> Result<BTreeMap<String, i64>> {
        self.call(Command::Gauges).await
    }

    /// The slot accounting of one concurrency key.
    pub async fn describe_key(
        &self,
        tenant: String,
        key: String,
    ) -> Result<admin::ConcurrencyKeyState> {
        self.call(|r| Command::DescribeKey(tenant, key, r)).await
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

fn shutting_down() -> Error {
    Error::StoreUnavailable("the broker is shutting down".into())
}

const FENCED: &str = "fenced: a newer broker opened this store; this one no longer serves it";

/// Failure state of one opened SlateDB: set when a write or a flush failed, or the database
/// closed under us. Memory is then ahead of the store and must be rebuilt before serving.
#[derive(Default)]
struct DbHealth {
    failed: Mutex<Option<String>>,
}

impl DbHealth {
    fn fail(&self, reason: String) {
        if let Ok(mut f) = self.failed.lock() {
            f.get_or_insert(reason);
        }
    }

    fn failure(&self) -> Option<String> {
        self.failed.lock().map(|f| f.clone()).unwrap_or(None)
    }
}

/// Records a SlateDB error against the database it came from.
fn record_failure(health: &DbHealth, fenced: &watch::Sender<bool>, e: &slatedb::Error) {
    if matches!(e.kind(), ErrorKind::Closed(CloseReason::Fenced)) {
        tracing::error!("{FENCED}");
        fenced.send_replace(true);
    }
    health.fail(e.to_string());
}

/// Group commit without waiting out the flush interval: the actor kicks this task after each
/// write, and it flushes the WAL at once unless a flush is running, in which case the writes
/// that arrived meanwhile go in the next flush. Ends when the sender is dropped (reopen, close)
/// or the database closed. Used on local stores, where a flush is cheap; on S3 every flush is a
/// billed PUT, so the flush interval alone paces them.
fn spawn_flusher(db: Db) -> mpsc::Sender<()> {
    let (tx, mut rx) = mpsc::channel::<()>(1);
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            if let Err(e) = db.flush().await {
                if matches!(e.kind(), ErrorKind::Closed(_)) {
                    return;
                }
                tracing::warn!("WAL flush failed: {e}");
            }
        }
    });
    tx
}

/// Watches a database for closing under us (fencing noticed by SlateDB, or a fatal error).
fn watch_db(db: &Db, health: Arc<DbHealth>, fenced: Arc<watch::Sender<bool>>) {
    let mut rx = db.subscribe();
    tokio::spawn(async move {
        loop {
            let reason = rx.borrow_and_update().close_reason;
            match reason {
                Some(CloseReason::Clean) => return,
                Some(CloseReason::Fenced) => {
                    tracing::error!("{FENCED}");
                    fenced.send_replace(true);
                    health.fail(FENCED.into());
                    return;
                }
                Some(other) => {
                    health.fail(format!("the store closed: {other:?}"));
                    return;
                }
                None => {}
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    });
}

/// The actor's state. Fields below `db` are caches rebuilt by `open`; only the actor writes them.
pub struct Shard {
    store: ShardStore,
    db: Db,
    health: Arc<DbHealth>,
    fenced: Arc<watch::Sender<bool>>,
    /// Earliest time of the next attempt to reopen a failed store.
    recover_after_ms: i64,
    clock: Arc<dyn Clock>,
    config: ShardConfig,
    /// Next enqueue/retry sequence number (persisted in META next_seq by each step using it).
    next_seq: u64,
    seq_dirty: bool,
    /// Due jobs: the head of each READY group.
    ready: ReadyIndex,
    /// Jobs waiting for their start time or retry backoff: the head of WAITING, by (due, seq).
    timers: Page<Waiting>,
    /// Entries of READY and WAITING (persisted in META by each step that changes them).
    ready_jobs: u64,
    scheduled_jobs: u64,
    counts_dirty: bool,
    leases: LeaseTable,
    /// Concurrency slots: holders (live attempts), reservations (admitted jobs), waiters.
    conc: ConcurrencyTable,
    waiters: VecDeque<LeaseWaiter>,
    /// The last write; answers of a step wait on it so none reveals non-durable state.
    last_write: Option<WriteHandle>,
    /// Asks the flusher task for a WAL flush now (local stores only; see `spawn_flusher`).
    flush_now: Option<mpsc::Sender<()>>,
}

impl Shard {
    /// Opens the shard's SlateDB, rebuilds the in-memory state from it and starts the actor.
    pub async fn start(
        store: ShardStore,
        clock: Arc<dyn Clock>,
        config: ShardConfig,
    ) -> Result<ShardHandle> {
        let db = store.open().await?;
        let (fenced_tx, fenced_rx) = watch::channel(false);
        let fenced = Arc::new(fenced_tx);
        let health = Arc::new(DbHealth::default());
        watch_db(&db, health.clone(), fenced.clone());
        let flush_now = store.eager_flush().then(|| spawn_flusher(db.clone()));
        let mut shard = Shard {
            store,
            db,
            health,
            fenced,
            recover_after_ms: 0,
            clock,
            config,
            next_seq: 1,
            seq_dirty: false,
            ready: ReadyIndex::default(),
            timers: Page::unread(),
            ready_jobs: 0,
            scheduled_jobs: 0,
            counts_dirty: false,
            leases: LeaseTable::default(),
            conc: ConcurrencyTable::default(),
            waiters: VecDeque::new(),
            last_write: None,
            flush_now,
        };
        shard.load().await?;
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        tokio::spawn(shard.run(rx));
        Ok(ShardHandle {
            tx,
            fenced: fenced_rx,
        })
    }

    /// (Re)builds every cache from the store: the first page of timers and of every ready
    /// group, live leases (each with a fresh expiry, SPEC §4), concurrency holders, counters.
    async fn load(&mut self) -> Result<()> {
        let now = self.clock.now_ms();
        let counter = |v: Option<Bytes>| v.map_or(Ok(0), |v| codec::decode_u64(&v));
        self.next_seq = counter(self.db.get(keys::meta(keys::META_NEXT_SEQ)).await?)?.max(1);
        self.ready_jobs = counter(self.db.get(keys::meta(keys::META_READY_JOBS)).await?)?;
        self.scheduled_jobs = counter(self.db.get(keys::meta(keys::META_SCHEDULED_JOBS)).await?)?;
        self.seq_dirty = false;
        self.counts_dirty = false;
        self.ready = ReadyIndex::default();
        self.timers = Page::unread();
        self.leases = LeaseTable::default();
        self.conc = ConcurrencyTable::default();
        self.last_write = None;
        // Every RUNNING attempt gets a fresh lease (SPEC §4). Holders first, so that admitting
        // the ready groups below sees the slots they hold.
        let st = Step {
            now,
            first_seq: self.next_seq,
            txn: Txn::default(),
            replies: Vec::new(),
        };
        let mut iter = self.db.scan(keys::family_range(keys::LEASE)).await?;
        while let Some(kv) = iter.next().await? {
            let task_id = keys::parse_lease(&kv.key)?;
            let rec: store::LeaseRecord = codec::decode(&kv.value)?;
            let Some(job) = self.load_job(&st, &rec.tenant, &rec.job_id).await? else {
                tracing::error!(task = %task_id, job = %rec.job_id, "a lease without its job: ignored");
                continue;
            };
            let attempt = match self
                .load_attempt(&st, &rec.tenant, &rec.job_id, rec.attempt)
                .await
            {
                Ok(a) => a,
                Err(e @ Error::StoreUnavailable(_)) => return Err(e),
                Err(e) => {
                    tracing::error!(task = %task_id, "a lease without its attempt: ignored ({e})");
                    continue;
                }
            };
            self.ensure_limits(&st.txn, &rec.tenant, &rec.concurrency_keys)
                .await?;
            self.conc
                .restore_holder(&rec.tenant, &rec.concurrency_keys, &task_id);
            self.leases.insert(
                task_id,
                Lease {
                    cancelled: job.status == wire::JobStatus::Cancelled as i32,
                    job,
                    attempt,
                    keys: rec.concurrency_keys,
                    expires_at_ms: now + self.config.lease_ms,
                },
            );
        }
        self.refill_timers(&st).await?;
        let groups = self.load_ready_groups(&st).await?;
        tracing::info!(
            ready = self.ready_jobs,
            scheduled = self.scheduled_jobs,
            running = self.leases.len(),
            ready_groups = groups,
            "shard loaded"
        );
        Ok(())
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
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
        while let Ok(cmd) = rx.try_recv() {
            self.refuse(cmd, shutting_down());
        }
        for w in self.waiters.drain(..) {
            let _ = w.reply.send(Ok(wire::LeaseTasksResponse::default()));
        }
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
            self.leases.next_expiry(),
            self.waiters.iter().map(|w| w.deadline_ms).min(),
            self.health.failure().map(|_| self.recover_after_ms),
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
            Command::Lease(_, r) => drop(r.send(Err(err))),
            Command::Heartbeat(_, r) => drop(r.send(Err(err))),
            Command::Report(_, r) => drop(r.send(Err(err))),
            Command::GetJob(_, _, r) => drop(r.send(Err(err))),
            Command::Gauges(r) => drop(r.send(Err(err))),
            Command::DescribeKey(_, _, r) => drop(r.send(Err(err))),
            Command::Close(r) => drop(r.send(())),
        }
    }

    /// After a failed write the store may hold less than memory does: reopen the store and
    /// rebuild from it, one attempt at most a second. The second is counted from the end of a
    /// failed attempt: on a stalled store an attempt lasts as long as the S3 client's retries,
    /// and the calls that queued meanwhile are refused at once instead of waiting out one more.
    /// Never after fencing: the newer broker owns the store.
    async fn recover(&mut self) -> std::result::Result<(), String> {
        if *self.fenced.borrow() {
            return Err(FENCED.into());
        }
        let Some(reason) = self.health.failure() else {
            return Ok(());
        };
        if self.clock.now_ms() < self.recover_after_ms {
            return Err(reason);
        }
        for w in self.waiters.drain(..) {
            let _ = w.reply.send(Err(Error::StoreUnavailable(reason.clone())));
        }
        let attempt = self.reopen(&reason).await;
        self.recover_after_ms = self.clock.now_ms() + 1000;
        attempt
    }

    /// Opens the store anew in place of the failed database and rebuilds every cache from it.
    async fn reopen(&mut self, reason: &str) -> std::result::Result<(), String> {
        let db = match self.store.open().await {
            Ok(db) => db,
            Err(e) => return Err(format!("{reason}; reopening failed: {e}")),
        };
        let old = std::mem::replace(&mut self.db, db);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), old.close()).await;
        });
        self.health = Arc::new(DbHealth::default());
        watch_db(&self.db, self.health.clone(), self.fenced.clone());
        self.flush_now = self
            .store
            .eager_flush()
            .then(|| spawn_flusher(self.db.clone()));
        if let Err(e) = self.load().await {
            self.health.fail(e.to_string());
            return Err(e.to_string());
        }
        tracing::info!("the store is back: shard reopened and rebuilt");
        Ok(())
    }

    fn gauges(&self) -> BTreeMap<String, i64> {
        BTreeMap::from([
            ("ready".to_string(), self.ready_jobs as i64),
            ("ready_in_memory".to_string(), self.ready.in_memory() as i64),
            ("scheduled".to_string(), self.scheduled_jobs as i64),
            ("scheduled_in_memory".to_string(), self.timers.len() as i64),
            ("running".to_string(), self.leases.len() as i64),
            ("lease_waiters".to_string(), self.waiters.len() as i64),
            (
                "concurrency_keys".to_string(),
                self.conc.keys_in_use() as i64,
            ),
        ])
    }

    /// One step: timers, commands, long-polls, one write, answers after durability.
    async fn step(&mut self, cmds: Vec<Command>) {
        if let Err(reason) = self.recover().await {
            // Memory may be ahead of the store: refuse everything rather than act on it.
            for cmd in cmds {
                self.refuse(cmd, Error::StoreUnavailable(reason.clone()));
            }
            return;
        }
        let mut st = Step {
            now: self.clock.now_ms(),
            first_seq: self.next_seq,
            txn: Txn::default(),
            replies: Vec::new(),
        };
        self.fire_timers(&mut st).await;
        for cmd in cmds {
            self.apply(&mut st, cmd).await;
        }
        // Admit what the commands made due (enqueues, immediate retries) before serving.
        self.fire_timers(&mut st).await;
        self.serve_waiters(&mut st).await;
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
            Command::Lease(params, reply) => self.lease_or_park(st, params, reply).await,
            Command::Heartbeat(params, reply) => {
                let r = self.heartbeat(st, params).await;
                st.replies.push(defer(reply, r));
            }
            Command::Report(reports, reply) => {
                let mut out = Vec::with_capacity(reports.len());
                for report in reports {
                    out.push(self.report(st, report).await);
                }
                st.replies.push(defer(reply, Ok(out)));
            }
            Command::GetJob(job, include_attempts, reply) => {
                let r = self.get_job(st, &job, include_attempts).await;
                st.replies.push(defer(reply, r));
            }
            Command::Gauges(reply) => st.replies.push(defer(reply, Ok(self.gauges()))),
            Command::DescribeKey(tenant, key, reply) => {
                let (limit, holders, reserved, waiters) = self.conc.describe(&tenant, &key);
                let state = admin::ConcurrencyKeyState {
                    limit,
                    holders,
                    reserved,
                    waiters,
                };
                st.replies.push(defer(reply, Ok(state)));
            }
            Command::Close(reply) => drop(reply.send(())),
        }
    }

    /// Writes the step and answers its callers once durable, without blocking the next step.
    async fn commit(&mut self, mut st: Step) {
        if self.seq_dirty {
            st.txn.put(
                keys::meta(keys::META_NEXT_SEQ),
                codec::encode_u64(self.next_seq),
            );
            self.seq_dirty = false;
        }
        if self.counts_dirty {
            for (name, n) in [
                (keys::META_READY_JOBS, self.ready_jobs),
                (keys::META_SCHEDULED_JOBS, self.scheduled_jobs),
            ] {
                st.txn.put(keys::meta(name), codec::encode_u64(n));
            }
            self.counts_dirty = false;
        }
        if st.replies.is_empty() && st.txn.is_empty() {
            return;
        }
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
            for reply in replies {
                reply(durable.clone());
            }
        });
    }

    fn alloc_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.seq_dirty = true;
        seq
    }

    /// Loads into the concurrency table the limit of every key it does not hold yet.
    async fn ensure_limits(&mut self, txn: &Txn, tenant: &str, keys: &[String]) -> Result<()> {
        for key in keys {
            if self.conc.knows(tenant, key) {
                continue;
            }
            let limit = match txn.get(&self.db, &keys::limit(tenant, key)).await? {
                Some(v) => codec::decode_u64(&v)?.min(u64::from(u32::MAX)) as u32,
                None => {
                    tracing::error!(
                        tenant,
                        key,
                        "no stored limit for a concurrency key; using 1"
                    );
                    1
                }
            };
            let admitted = self.conc.set_limit(tenant, key, limit);
            self.ready_all(admitted);
        }
        Ok(())
    }

    /// Due jobs that the concurrency table admitted go to the ready index.
    fn ready_all(&mut self, admitted: Vec<Waiting>) {
        for w in admitted {
            self.ready.insert(w);
        }
    }

    /// Loads a job record as the step sees it.
    async fn load_job(
        &self,
        st: &Step,
        tenant: &str,
        id: &str,
    ) -> Result<Option<store::JobRecord>> {
        match st.txn.get(&self.db, &keys::job(tenant, id)).await? {
            Some(v) => Ok(Some(codec::decode(&v)?)),
            None => Ok(None),
        }
    }

    fn put_job(&self, st: &mut Step, job: &store::JobRecord) {
        st.txn
            .put(keys::job(&job.tenant, &job.id), codec::encode(job));
    }

    async fn load_attempt(
        &self,
        st: &Step,
        tenant: &str,
        id: &str,
        n: u32,
    ) -> Result<wire::Attempt> {
        match st.txn.get(&self.db, &keys::attempt(tenant, id, n)).await? {
            Some(v) => codec::decode(&v),
            None => Err(Error::Internal(format!(
                "attempt {n} of job {id:?} is missing"
            ))),
        }
    }
}

/// The concurrency keys a job names, in order.
pub(crate) fn job_keys(job: &store::JobRecord) -> Vec<String> {
    job.concurrency_limits
        .iter()
        .map(|l| l.key.clone())
        .collect()
}
