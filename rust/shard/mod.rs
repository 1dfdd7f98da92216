//! The shard actor: the one task that owns and mutates one shard (one SlateDB). See
//! docs/architecture.md#the-shard-actor.
//!
//! Callers hold a `ShardHandle` (handle.rs) and send it a `Command` named after the RPC. The
//! actor drains every waiting command into one step (step.rs): it fires due timers, applies the
//! commands to one `Txn`, serves parked long-polls, writes the step as one `WriteBatch`, and
//! answers every caller of the step once that batch is durable, in a spawned task so the next
//! step can start at once (group commit).
//!
//! In-memory state (ready index, timers, running tasks, parked long-polls) is a cache rebuilt
//! from SlateDB by load.rs on start and by recovery.rs after a failed write; only the actor
//! writes it. Store health (health.rs) says when memory can no longer be trusted.
//!
//! Words: a *queued* job has one store entry, SCHEDULED (waiting for its time) or READY (due,
//! waiting for a worker); a *parked* call is a LeaseTasks long-poll; a *session* is a
//! WorkerSession stream, which waits for tasks beside the parked calls while it has credit; a
//! concurrency *waiter* is a due job waiting for a slot of a concurrency key.
//!
//! One file per RPC: enqueue.rs, cancel.rs, lease_tasks.rs, heartbeat_task.rs,
//! report_task_outcome.rs, get_job.rs, wait_job.rs, get_stats.rs (GetStats and
//! GetConcurrencyKey), worker_session.rs.
//! Flow control (docs/architecture.md#flow-control) has its own files: flow.rs (its commands),
//! rate_limit.rs and bucket.rs, unique.rs, expiry.rs, pause_queue.rs, schedules.rs (times in
//! rust/cron.rs), and timer_page.rs (the head pages of the timer families).
//! Search and operator calls (docs/architecture.md#indexes-and-counts): list_jobs.rs,
//! list_queues.rs, restart_job.rs, expedite_job.rs, delete_job.rs, bulk_jobs.rs (CancelJobs,
//! RestartJobs, DeleteJobs); index.rs is `put_job`, the one write of a job record (its index
//! entries, counts, retention timer and waiters follow it; queue_counts.rs keeps the counts);
//! retention.rs deletes terminal jobs on time.

pub mod bucket;
mod bulk_jobs;
mod cancel;
pub mod concurrency;
mod counts;
mod delete_job;
mod enqueue;
mod expedite_job;
mod expiry;
mod flow;
mod get_job;
mod get_stats;
mod handle;
mod health;
mod heartbeat_task;
mod index;
mod lease_tasks;
mod list_jobs;
mod list_queues;
mod load;
mod page;
mod parked;
mod pause_queue;
mod queue_counts;
mod queued;
mod rate_limit;
pub mod ready;
mod ready_watch;
mod recovery;
mod report_task_outcome;
mod restart_job;
mod retention;
pub mod running;
mod schedules;
mod step;
mod timer_page;
mod timers;
mod txn;
mod unique;
mod wait_job;
pub mod worker_session;

use std::collections::VecDeque;
use std::sync::Arc;

use slatedb::{Db, WriteHandle};
use tokio::sync::{mpsc, watch};

use crate::auth::TenantScope;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::keys;
use crate::proto::records;
use crate::record;
use crate::store::ShardStore;
use crate::validate::Limits;

pub use bulk_jobs::{BulkProgress, BulkStep};
use concurrency::ConcurrencyTable;
use counts::BacklogCounts;
use expiry::Expiring;
pub use flow::{ListSchedulesParams, QueueRef, ScheduleRef};
pub use handle::{Enqueued, JobRef, ShardHandle};
use health::DbHealth;
use page::Page;
/// Entries of each ready group and of the timers held in memory (the rest stays in the store).
pub use page::PAGE_SIZE as INDEX_PAGE_SIZE;
use parked::Waiter;
use queue_counts::CountCache;
use ready::{Queued, ReadyIndex};
use retention::RetentionTimer;
use running::RunningTasks;
use step::Step;
use txn::Txn;
use wait_job::JobWaiters;
use worker_session::Sessions;

/// Settings of one shard.
#[derive(Debug, Clone, Copy)]
pub struct ShardConfig {
    /// The shard's number in its store (task ids it issues name it: rust/routing.rs).
    pub index: u32,
    pub lease_ms: i64,
    pub limits: Limits,
    /// How long a terminal job is kept before retention deletes it; 0 keeps jobs forever.
    pub retention_ms: i64,
    /// Whether the actor counts what `/metrics` exports (off: `Metrics` stays at zero).
    pub metrics: bool,
}

/// The actor's state. Fields below `config` are caches rebuilt by `load`; only the actor
/// writes them.
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
    /// Jobs waiting for their start time or retry backoff: the head of SCHEDULED, by (due, seq).
    timers: Page<Queued>,
    /// Entries of SCHEDULED and READY (persisted in META by each step that changes them).
    counts: BacklogCounts,
    /// Job counts per (tenant, queue) and per tenant, by status: a bounded write-through cache.
    counts_cache: CountCache,
    /// The earliest retention deletion due, and where the last deletions stopped.
    retention: RetentionTimer,
    /// Live attempts by task id, with their lease expiry.
    running: RunningTasks,
    /// Concurrency slots: holders (live attempts), reservations (admitted jobs), waiters.
    conc: ConcurrencyTable,
    /// LeaseTasks calls parked until a task is ready or their wait ends, and sessions with
    /// credit, oldest first (parked.rs).
    parked: VecDeque<Waiter>,
    /// WaitJob calls waiting for a job to end or for their deadline.
    waiters: JobWaiters,
    /// Queued jobs with a first-attempt deadline: the head of EXPIRY, by (expire_at, seq).
    expiries: Page<Expiring>,
    /// Schedules: the head of SCHEDULE_DUE, by (next run, seq), each with its record.
    schedules: Page<records::ScheduleRecord>,
    /// Schedule firings since the shard started (a gauge).
    ticks_fired: u64,
    /// Open WorkerSession streams (worker_session.rs); not rebuilt by `load`.
    sessions: Sessions,
    /// LeaseTasks over several shards waiting for a due job here (ready_watch.rs).
    ready_watches: Vec<ready_watch::ReadyWatch>,
    /// Set when the shard is handed to another node (handle.rs `hand_over`).
    moving: Arc<std::sync::atomic::AtomicBool>,
    /// The last write; answers of a step wait on it so none reveals non-durable state.
    last_write: Option<WriteHandle>,
    /// Counters and histograms for /metrics (only the actor writes them).
    metrics: Arc<crate::metrics::Metrics>,
    /// Asks the flusher task for a WAL flush now (local stores only; see health.rs).
    flush_now: Option<mpsc::Sender<()>>,
}

/// Which call checks a task's lease (they answer a recorded outcome differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeaseUse {
    Heartbeat,
    Report,
}

impl Shard {
    /// Checks that `task_id` has a live lease held by `worker_id`; else the error says why:
    /// NOT_FOUND for a task never issued, FAILED_PRECONDITION for another worker's lease or an
    /// expired one, and for a recorded outcome ALREADY_EXISTS to a report, FAILED_PRECONDITION
    /// to a heartbeat (docs/api.md#status-codes). A task of a tenant outside `tenants` is
    /// NOT_FOUND whatever its state, exactly as a task never issued (docs/security.md: no
    /// existence oracle). Reads the store only when there is no lease.
    async fn check_lease(
        &self,
        st: &Step,
        task_id: &str,
        worker_id: &str,
        tenants: &TenantScope,
        rpc: LeaseUse,
    ) -> Result<()> {
        match self.running.get(task_id) {
            Some(l) if !tenants.allows(&l.job.tenant) => return Err(Error::TaskNotFound),
            Some(l) if l.attempt.worker_id == worker_id => return Ok(()),
            Some(_) => return Err(Error::LeaseNotHeld("the task is leased to another worker")),
            None => {}
        }
        let Some(v) = st.txn.get(&self.db, &keys::task(task_id)).await? else {
            return Err(Error::TaskNotFound);
        };
        let task_ref: records::TaskRef = record::decode(&v)?;
        if !tenants.allows(&task_ref.tenant) {
            return Err(Error::TaskNotFound);
        }
        let attempt = self
            .load_attempt(st, &task_ref.tenant, &task_ref.job_id, task_ref.attempt)
            .await?;
        let expired = attempt
            .failure
            .as_ref()
            .is_some_and(|f| f.code == report_task_outcome::LEASE_EXPIRED);
        Err(match (expired, rpc) {
            (true, _) => Error::LeaseNotHeld("the task's lease expired; nothing was recorded"),
            (false, LeaseUse::Report) => Error::OutcomeAlreadyRecorded,
            (false, LeaseUse::Heartbeat) => {
                Error::LeaseNotHeld("the task's outcome is recorded: its lease ended")
            }
        })
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
                Some(v) => record::decode_u64(&v)?.min(u64::from(u32::MAX)) as u32,
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

    /// Due jobs that the concurrency table admitted go to the ready index. A job of a paused
    /// queue holds no reservation (it cannot be leased): it gives its room back at once.
    fn ready_all(&mut self, admitted: Vec<Queued>) {
        let mut work = admitted;
        while let Some(w) = work.pop() {
            if self.ready.is_paused(&w.queue, &w.tenant) {
                work.extend(self.conc.unreserve(&w));
            }
            self.ready.insert(w);
        }
    }

    /// An entry left the ready index without running (cancel, displacement, an unreadable
    /// entry): its reservations, if it holds any, go to the next in line.
    fn unreserve(&mut self, w: &Queued) {
        if !self.ready.is_paused(&w.queue, &w.tenant) {
            let admitted = self.conc.unreserve(w);
            self.ready_all(admitted);
        }
    }

    /// A job's lease duration: its own `lease_ms`, else the server's.
    fn lease_ms_of(&self, job: &records::JobRecord) -> i64 {
        if job.lease_ms > 0 {
            job.lease_ms
        } else {
            self.config.lease_ms
        }
    }

    /// Loads a job record as the step sees it.
    async fn load_job(
        &self,
        st: &Step,
        tenant: &str,
        id: &str,
    ) -> Result<Option<records::JobRecord>> {
        match st.txn.get(&self.db, &keys::job(tenant, id)).await? {
            Some(v) => Ok(Some(record::decode(&v)?)),
            None => Ok(None),
        }
    }

    async fn load_attempt(
        &self,
        st: &Step,
        tenant: &str,
        id: &str,
        n: u32,
    ) -> Result<records::AttemptRecord> {
        match st.txn.get(&self.db, &keys::attempt(tenant, id, n)).await? {
            Some(v) => record::decode(&v),
            None => Err(Error::Internal(format!(
                "attempt {n} of job {id:?} is missing"
            ))),
        }
    }
}

/// The concurrency keys a job names, in order.
pub(crate) fn job_keys(job: &records::JobRecord) -> Vec<String> {
    job.concurrency_limits
        .iter()
        .map(|l| l.key.clone())
        .collect()
}

/// The rate-limit keys a job names, in order.
pub(crate) fn job_rate_keys(job: &records::JobRecord) -> Vec<String> {
    job.rate_limits.iter().map(|l| l.key.clone()).collect()
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod worker_session_tests;
