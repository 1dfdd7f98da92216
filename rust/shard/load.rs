//! Loading: opening a shard's store and rebuilding every in-memory cache from it (on start and
//! after recovery). See docs/architecture.md#caches.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::concurrency::ConcurrencyTable;
use super::counts::BacklogCounts;
use super::handle::ShardHandle;
use super::health::{spawn_flusher, watch_db, DbHealth};
use super::page::Page;
use super::ready::ReadyIndex;
use super::running::{Running, RunningTasks};
use super::step::Step;
use super::{Shard, ShardConfig};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::keys;
use crate::lifecycle::JobState;
use crate::metrics::Metrics;
use crate::proto::records;
use crate::record;
use crate::store::ShardStore;

/// Channel capacity: senders wait when the actor falls this far behind.
const CHANNEL_CAPACITY: usize = 4096;

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
        let counting = config.metrics;
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
            counts: BacklogCounts::default(),
            counts_cache: Default::default(),
            retention: Default::default(),
            running: RunningTasks::default(),
            conc: ConcurrencyTable::default(),
            parked: VecDeque::new(),
            waiters: Default::default(),
            expiries: Page::unread(),
            schedules: Page::unread(),
            ticks_fired: 0,
            sessions: Default::default(),
            ready_watches: Vec::new(),
            moving: Arc::default(),
            last_write: None,
            metrics: Arc::new(Metrics::new(counting)),
            flush_now,
        };
        shard.load().await?;
        let metrics = shard.metrics.clone();
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let moving = shard.moving.clone();
        let index = shard.config.index;
        tokio::spawn(shard.run(rx));
        Ok(ShardHandle {
            shard: index,
            tx,
            fenced: fenced_rx,
            moving,
            metrics,
        })
    }

    /// (Re)builds every cache from the store: the first page of timers and of every ready
    /// group, live leases (each with a fresh expiry: docs/api.md#leases), concurrency holders, counters.
    pub(super) async fn load(&mut self) -> Result<()> {
        check_format(&self.db).await?;
        let now = self.clock.now_ms();
        let counter = |v: Option<Bytes>| v.map_or(Ok(0), |v| record::decode_u64(&v));
        self.next_seq = counter(self.db.get(keys::meta(keys::META_NEXT_SEQ)).await?)?.max(1);
        let ready = counter(self.db.get(keys::meta(keys::META_READY_JOBS)).await?)?;
        let scheduled = counter(self.db.get(keys::meta(keys::META_SCHEDULED_JOBS)).await?)?;
        self.counts = BacklogCounts::loaded(scheduled, ready);
        self.seq_dirty = false;
        self.ready = ReadyIndex::default();
        self.timers = Page::unread();
        self.running = RunningTasks::default();
        self.conc = ConcurrencyTable::default();
        self.conc.set_now(now);
        self.expiries = Page::unread();
        self.schedules = Page::unread();
        self.counts_cache = Default::default();
        let jobs = self.load_job_counts().await?;
        self.metrics.set_jobs(jobs);
        self.retention = Default::default();
        self.last_write = None;
        self.load_paused().await?;
        // Every RUNNING attempt gets a fresh lease (docs/api.md#leases). Holders first, so that admitting
        // the ready groups below sees the slots they hold.
        let st = Step::new(now, self.next_seq);
        let mut iter = self.db.scan(keys::family_range(keys::LEASE)).await?;
        while let Some(kv) = iter.next().await? {
            let task_id = keys::parse_lease(&kv.key)?;
            let rec: records::LeaseRecord = record::decode(&kv.value)?;
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
            let lease_ms = self.lease_ms_of(&job);
            self.running.insert(
                task_id,
                Running {
                    cancelled: job.state == JobState::Cancelled.to_record(),
                    job,
                    attempt,
                    keys: rec.concurrency_keys,
                    expires_at_ms: now + lease_ms,
                },
            );
        }
        self.refill_timers(&st).await?;
        self.refill_flow_timers(&st).await?;
        let groups = self.load_ready_groups(&st).await?;
        self.load_retention().await?;
        tracing::info!(
            ready = self.counts.ready(),
            scheduled = self.counts.scheduled(),
            running = self.running.len(),
            ready_groups = groups,
            "shard loaded"
        );
        Ok(())
    }
}

/// Refuses a store written in another format (rust/keys.rs, "Store format"); stamps an empty
/// store with this build's version, durably, before anything else is written to it.
pub(super) async fn check_format(db: &slatedb::Db) -> Result<()> {
    let key = keys::meta(keys::META_FORMAT_VERSION);
    match db.get(&key).await? {
        Some(v) => match record::decode_u64(&v)? {
            keys::FORMAT_VERSION => Ok(()),
            other => Err(Error::invalid(
                "store",
                format!(
                    "the store is in format version {other}; this build of silo reads version {}",
                    keys::FORMAT_VERSION
                ),
            )),
        },
        None => {
            let mut any = db.scan(vec![0u8]..vec![0xFF]).await?;
            if any.next().await?.is_some() {
                return Err(Error::invalid(
                    "store",
                    format!(
                        "the store holds data but no format version (written by an earlier \
                         build of silo); this build reads version {}",
                        keys::FORMAT_VERSION
                    ),
                ));
            }
            db.put(&key, record::encode_u64(keys::FORMAT_VERSION))
                .await?;
            Ok(())
        }
    }
}
