//! Counters and histograms of the core for `/metrics` (docs/operations.md#metrics): jobs
//! enqueued, tasks leased and tasks finished (by outcome) per queue, the group commit's size
//! and duration, and the jobs stored per status (from the counts the shard keeps). The shard
//! actor counts as it works; `Metrics::snapshot` copies them for the Python side, which
//! exposes them with a prometheus-client collector (python/silo/server/metrics.py), so nothing
//! on the request path is decoded twice.
//!
//! Labels stay bounded: there is no tenant label (tenants are unbounded), and the first
//! `MAX_QUEUE_LABELS` queue names seen since the process started keep a label of their own;
//! every later queue counts under `OTHER_QUEUE`. A queue keeps its label once it has one, so
//! each labelled counter only ever goes up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The `status` labels of `silo_jobs`, in wire order (JobStatus 1..=6).
pub const JOB_STATUSES: [&str; 6] = [
    "scheduled",
    "pending",
    "running",
    "succeeded",
    "failed",
    "cancelled",
];

/// Most queues with a label of their own.
pub const MAX_QUEUE_LABELS: usize = 200;
/// The label of every queue past the first `MAX_QUEUE_LABELS`.
pub const OTHER_QUEUE: &str = "_other";

/// How a task (one attempt) finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskOutcome {
    Succeeded,
    Failed,
    /// The worker reported it cancelled (acknowledging a cancel, or giving the job up).
    Cancelled,
    /// Its lease ran out before the worker reported.
    LeaseExpired,
}

impl TaskOutcome {
    pub const ALL: [TaskOutcome; 4] = [
        TaskOutcome::Succeeded,
        TaskOutcome::Failed,
        TaskOutcome::Cancelled,
        TaskOutcome::LeaseExpired,
    ];

    /// The `outcome` label.
    pub fn name(self) -> &'static str {
        match self {
            TaskOutcome::Succeeded => "succeeded",
            TaskOutcome::Failed => "failed",
            TaskOutcome::Cancelled => "cancelled",
            TaskOutcome::LeaseExpired => "lease_expired",
        }
    }

    /// Its index in `QueueCounters::finished`.
    pub fn slot(self) -> usize {
        self as usize
    }
}

/// The counters of one queue label.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct QueueCounters {
    pub enqueued: u64,
    pub leased: u64,
    /// Indexed like `TaskOutcome::ALL`.
    pub finished: [u64; 4],
}

/// Queue label -> counters, at most `MAX_QUEUE_LABELS` labels plus `OTHER_QUEUE`.
#[derive(Debug, Default)]
struct QueueTable {
    index: HashMap<String, usize>,
    rows: Vec<(String, QueueCounters)>,
    other: Option<usize>,
}

impl QueueTable {
    fn row(&mut self, queue: &str) -> &mut QueueCounters {
        let slot = match self.index.get(queue) {
            Some(&i) => i,
            None if self.index.len() < MAX_QUEUE_LABELS => {
                self.rows
                    .push((queue.to_string(), QueueCounters::default()));
                self.index.insert(queue.to_string(), self.rows.len() - 1);
                self.rows.len() - 1
            }
            None => *self.other.get_or_insert_with(|| {
                self.rows
                    .push((OTHER_QUEUE.to_string(), QueueCounters::default()));
                self.rows.len() - 1
            }),
        };
        &mut self.rows[slot].1
    }
}

/// A histogram with fixed bucket bounds, observed without a lock. Observations are integers
/// in `unit`s of the exported value (nanoseconds for seconds, 1 for counts), so the sum is
/// exact.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    unit: f64,
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum: AtomicU64,
}

/// A histogram as Prometheus exports it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// (upper bound, observations at most that bound), cumulative, bounds ascending; the
    /// `+Inf` bucket is `count`.
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64], unit: f64) -> Self {
        Histogram {
            bounds,
            unit,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    /// Records one observation of `units` (in the histogram's unit).
    pub fn observe_units(&self, units: u64) {
        let value = units as f64 * self.unit;
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(units, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let buckets = self
            .bounds
            .iter()
            .zip(&self.buckets)
            .map(|(b, n)| {
                cumulative += n.load(Ordering::Relaxed);
                (*b, cumulative)
            })
            .collect();
        // Read after the buckets, so that count >= every bucket even while observed.
        let count = self.count.load(Ordering::Relaxed).max(cumulative);
        HistogramSnapshot {
            buckets,
            count,
            sum: self.sum.load(Ordering::Relaxed) as f64 * self.unit,
        }
    }
}

/// Calls answered by one durable write: a step holds at most 256 commands.
const BATCH_BOUNDS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
/// Seconds from a step's write to its durability.
const DURATION_BOUNDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The metrics of one shard; shared (behind an `Arc`) by its actor, which counts, and the
/// broker, which takes snapshots.
#[derive(Debug)]
pub struct Metrics {
    queues: Mutex<QueueTable>,
    /// Calls answered by each durable write that answers any.
    pub commit_batch_size: Histogram,
    /// Time from each write of a step to its durability.
    pub commit_duration: Histogram,
    /// Jobs stored per status (in `JOB_STATUSES` order), as the shard's counts leave them.
    jobs: [AtomicI64; 6],
    /// False with `--metrics off`: nothing is counted (every figure stays 0).
    counting: bool,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(true)
    }
}

/// What `/metrics` exports of the core, at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSnapshot {
    /// By queue label, in the order the labels were first seen.
    pub queues: Vec<(String, QueueCounters)>,
    pub commit_batch_size: HistogramSnapshot,
    pub commit_duration: HistogramSnapshot,
    /// Jobs stored per status, in `JOB_STATUSES` order.
    pub jobs: [i64; 6],
    /// Object-store requests by kind (put, get, ...) since start; filled by the broker.
    pub object_store_requests: Vec<(String, u64)>,
}

impl HistogramSnapshot {
    /// Adds `other`'s observations (a histogram of the same bounds: another shard's).
    fn add(&mut self, other: &HistogramSnapshot) {
        for ((_, n), (_, m)) in self.buckets.iter_mut().zip(&other.buckets) {
            *n += m;
        }
        self.count += other.count;
        self.sum += other.sum;
    }
}

impl MetricsSnapshot {
    /// Adds another shard's figures: queue counters by label (labels new to `self` are
    /// appended while fewer than `MAX_QUEUE_LABELS` are named, then counted as
    /// `OTHER_QUEUE`: the bound holds for the node's sum too), histograms and job counts
    /// summed.
    pub fn add(&mut self, other: &MetricsSnapshot) {
        let mut index: HashMap<String, usize> = self
            .queues
            .iter()
            .enumerate()
            .map(|(i, (label, _))| (label.clone(), i))
            .collect();
        let mut named = self.queues.len() - usize::from(index.contains_key(OTHER_QUEUE));
        for (label, counters) in &other.queues {
            let label = if index.contains_key(label) || label == OTHER_QUEUE {
                label.as_str()
            } else if named < MAX_QUEUE_LABELS {
                named += 1;
                label.as_str()
            } else {
                OTHER_QUEUE
            };
            let at = *index.entry(label.to_string()).or_insert_with(|| {
                self.queues
                    .push((label.to_string(), QueueCounters::default()));
                self.queues.len() - 1
            });
            let mine = &mut self.queues[at].1;
            mine.enqueued += counters.enqueued;
            mine.leased += counters.leased;
            for (a, b) in mine.finished.iter_mut().zip(counters.finished) {
                *a += b;
            }
        }
        self.commit_batch_size.add(&other.commit_batch_size);
        self.commit_duration.add(&other.commit_duration);
        for (a, b) in self.jobs.iter_mut().zip(other.jobs) {
            *a += b;
        }
    }
}

impl Metrics {
    /// Metrics that count, or (`counting` false, `--metrics off`) that stay at zero.
    pub fn new(counting: bool) -> Self {
        Metrics {
            queues: Mutex::default(),
            commit_batch_size: Histogram::new(BATCH_BOUNDS, 1.0),
            commit_duration: Histogram::new(DURATION_BOUNDS, 1e-9),
            jobs: Default::default(),
            counting,
        }
    }

    fn with_queue(&self, queue: &str, f: impl FnOnce(&mut QueueCounters)) {
        if !self.counting {
            return;
        }
        // A poisoned lock only means a panic elsewhere mid-update: counting goes on.
        let mut table = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        f(table.row(queue));
    }

    /// A job was stored (a deduplicated enqueue stores nothing and is not counted).
    pub fn job_enqueued(&self, queue: &str) {
        self.with_queue(queue, |c| c.enqueued += 1);
    }

    /// A task (attempt) was leased to a worker.
    pub fn task_leased(&self, queue: &str) {
        self.with_queue(queue, |c| c.leased += 1);
    }

    /// A task ended.
    pub fn task_finished(&self, queue: &str, outcome: TaskOutcome) {
        self.with_queue(queue, |c| c.finished[outcome.slot()] += 1);
    }

    /// The shard's jobs per status now (counts kept incrementally with every change of a job).
    pub fn set_jobs(&self, counts: [i64; 6]) {
        if !self.counting {
            return;
        }
        for (slot, n) in self.jobs.iter().zip(counts) {
            slot.store(n, Ordering::Relaxed);
        }
    }

    /// One durable write that answered `calls` calls after `took`.
    pub fn commit(&self, calls: usize, took: Duration) {
        if !self.counting {
            return;
        }
        if calls > 0 {
            self.commit_batch_size.observe_units(calls as u64);
        }
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.commit_duration.observe_units(nanos);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let queues = self
            .queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .rows
            .clone();
        MetricsSnapshot {
            queues,
            commit_batch_size: self.commit_batch_size.snapshot(),
            commit_duration: self.commit_duration.snapshot(),
            jobs: std::array::from_fn(|i| self.jobs[i].load(Ordering::Relaxed)),
            object_store_requests: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_past_the_bound_count_as_other() {
        let m = Metrics::default();
        for i in 0..MAX_QUEUE_LABELS + 50 {
            m.job_enqueued(&format!("q{i}"));
        }
        m.job_enqueued("q0");
        m.task_leased("q250");
        m.task_finished("q3", TaskOutcome::LeaseExpired);
        let snap = m.snapshot();
        assert_eq!(snap.queues.len(), MAX_QUEUE_LABELS + 1);
        let row = |name: &str| snap.queues.iter().find(|(q, _)| q == name).map(|r| &r.1);
        assert_eq!(row("q0").unwrap().enqueued, 2);
        assert_eq!(row("q3").unwrap().finished, [0, 0, 0, 1]);
        let other = row(OTHER_QUEUE).unwrap();
        assert_eq!((other.enqueued, other.leased), (50, 1));
        assert!(row("q250").is_none());
    }

    #[test]
    fn a_sum_of_shards_keeps_the_label_bound() {
        // Two shards, each with a full table of its own labels (half shared) and its own
        // `_other`: the node's sum names MAX_QUEUE_LABELS queues and counts every job.
        let (a, b) = (Metrics::default(), Metrics::default());
        for i in 0..MAX_QUEUE_LABELS + 10 {
            a.job_enqueued(&format!("q{i}"));
            b.job_enqueued(&format!("q{}", i + MAX_QUEUE_LABELS / 2));
        }
        let mut sum = a.snapshot();
        sum.add(&b.snapshot());
        assert_eq!(sum.queues.len(), MAX_QUEUE_LABELS + 1);
        let total: u64 = sum.queues.iter().map(|(_, c)| c.enqueued).sum();
        assert_eq!(total, 2 * (MAX_QUEUE_LABELS as u64 + 10));
        let row = |name: &str| sum.queues.iter().find(|(q, _)| q == name).map(|r| &r.1);
        assert_eq!(row("q150").unwrap().enqueued, 2); // named by both shards
        assert_eq!(row("q0").unwrap().enqueued, 1);
        // b's own labels past a's 200 (q200..q299) and both shards' `_other` rows.
        assert_eq!(row(OTHER_QUEUE).unwrap().enqueued, 10 + 100 + 10);
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_the_sum_exact() {
        let m = Metrics::default();
        m.commit(1, Duration::from_micros(300));
        m.commit(3, Duration::from_millis(20));
        m.commit(0, Duration::from_secs(30)); // a timer-only write: no batch size
        let size = m.commit_batch_size.snapshot();
        assert_eq!(size.count, 2);
        assert_eq!(size.sum, 4.0);
        assert_eq!(size.buckets[0], (1.0, 1));
        assert_eq!(size.buckets[2], (4.0, 2));
        let took = m.commit_duration.snapshot();
        assert_eq!(took.count, 3);
        assert_eq!(took.buckets[0], (0.0005, 1));
        assert_eq!(took.buckets.last().unwrap().1, 2); // 30 s is only in +Inf
        assert!((took.sum - 30.0203).abs() < 1e-9);
    }

    #[test]
    fn metrics_off_count_nothing() {
        let m = Metrics::new(false);
        m.job_enqueued("q");
        m.task_leased("q");
        m.task_finished("q", TaskOutcome::Succeeded);
        m.commit(2, Duration::from_millis(1));
        m.set_jobs([1, 2, 3, 4, 5, 6]);
        let snap = m.snapshot();
        assert!(snap.queues.is_empty());
        assert_eq!(snap.commit_batch_size.count, 0);
        assert_eq!(snap.commit_duration.count, 0);
        assert_eq!(snap.jobs, [0; 6]);
    }
}
