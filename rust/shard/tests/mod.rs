//! Tests of the shard actor itself, through its handle, on an in-memory SlateDB and a manual
//! clock: no wall-clock waits. A step runs for every command, so advancing the clock and then
//! sending any command fires whatever came due (docs/testing.md#actor-tests).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStore;

use super::{JobRef, Shard, ShardConfig, ShardHandle};
use crate::clock::ManualClock;
use crate::error::Error;
use crate::keys;
use crate::proto::wire;
use crate::record;
use crate::store::{ShardStore, StoreLocation, StoreSettings};
use crate::validate::{self, Limits};

pub(super) const LEASE_MS: i64 = 30_000;
pub(super) const LIMITS: Limits = Limits {
    max_payload_bytes: 1 << 20,
};
pub(super) const T0: i64 = 1_700_000_000_000;
/// The server's retention in these tests: an hour.
const RETENTION_MS: i64 = 3_600_000;

/// One in-memory object store that outlives the shards opened on it (restart tests).
pub(super) struct Harness {
    objects: Arc<dyn ObjectStore>,
    pub(super) clock: ManualClock,
}

impl Harness {
    pub(super) fn new() -> Self {
        Harness {
            objects: Arc::new(InMemory::new()),
            clock: ManualClock::new(T0),
        }
    }

    fn store(&self) -> ShardStore {
        let settings = StoreSettings {
            flush_interval: Duration::from_millis(5),
            max_retries: 0,
            block_cache_bytes: 1 << 20,
            meta_cache_bytes: 1 << 18,
            gc_interval: Duration::from_secs(3600),
            gc_min_age: Duration::from_secs(3600),
        };
        ShardStore::new(
            &StoreLocation::Memory,
            self.objects.clone(),
            &Path::from(""),
            0,
            settings,
        )
    }

    pub(super) async fn open(&self) -> crate::Result<ShardHandle> {
        let config = ShardConfig {
            index: 0,
            lease_ms: LEASE_MS,
            limits: LIMITS,
            retention_ms: RETENTION_MS,
            metrics: true,
        };
        Shard::start(self.store(), Arc::new(self.clock.clone()), config).await
    }
}

pub(super) fn job(id: &str, queue: &str) -> wire::EnqueueRequest {
    wire::EnqueueRequest {
        id: id.into(),
        tenant: "t".into(),
        queue: queue.into(),
        payload: Bytes::from_static(b"p"),
        ..Default::default()
    }
}

pub(super) async fn enqueue(shard: &ShardHandle, req: wire::EnqueueRequest) -> String {
    let job = validate::enqueue(req, &LIMITS).unwrap();
    let mut out = shard.enqueue(vec![job]).await.unwrap();
    out.pop().unwrap().unwrap().id
}

pub(super) async fn lease(shard: &ShardHandle, queues: &[&str], max_tasks: u32) -> Vec<wire::Task> {
    let params = validate::lease(wire::LeaseTasksRequest {
        worker_id: "w".into(),
        max_tasks,
        queues: queues.iter().map(|q| q.to_string()).collect(),
        wait_ms: 0,
    })
    .unwrap();
    shard.lease_tasks(params).await.unwrap().tasks
}

pub(super) async fn report(
    shard: &ShardHandle,
    task_id: &str,
    outcome: wire::report_task_outcome_request::Outcome,
) -> crate::Result<()> {
    let p = validate::report(
        wire::ReportTaskOutcomeRequest {
            task_id: task_id.into(),
            worker_id: "w".into(),
            outcome: Some(outcome),
        },
        &LIMITS,
    )
    .unwrap();
    shard.report_task_outcomes(vec![p]).await?.pop().unwrap()
}

pub(super) async fn heartbeat(
    shard: &ShardHandle,
    task_id: &str,
) -> crate::Result<wire::HeartbeatTaskResponse> {
    let p = validate::heartbeat(
        wire::HeartbeatTaskRequest {
            task_id: task_id.into(),
            worker_id: "w".into(),
            cursor: Bytes::new(),
        },
        &LIMITS,
    )
    .unwrap();
    shard.heartbeat_task(p).await
}

pub(super) async fn get_job(shard: &ShardHandle, id: &str) -> wire::Job {
    let r = JobRef {
        tenant: "t".into(),
        id: id.into(),
    };
    shard.get_job(r, true).await.unwrap()
}

pub(super) async fn gauge(shard: &ShardHandle, name: &str) -> i64 {
    shard.get_stats().await.unwrap()[name]
}

pub(super) fn failure(code: &str) -> wire::report_task_outcome_request::Outcome {
    wire::report_task_outcome_request::Outcome::Failure(wire::TaskFailure {
        code: code.into(),
        ..Default::default()
    })
}

pub(super) fn success(result: &'static [u8]) -> wire::report_task_outcome_request::Outcome {
    wire::report_task_outcome_request::Outcome::Result(Bytes::from_static(result))
}

#[tokio::test]
async fn enqueue_lease_report_runs_a_job_to_success() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    let id = enqueue(&shard, job("a", "q")).await;
    assert_eq!(
        get_job(&shard, &id).await.status,
        wire::JobStatus::Pending as i32
    );
    let tasks = lease(&shard, &["q"], 10).await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].payload, Bytes::from_static(b"p"));
    assert_eq!(tasks[0].lease_expires_at_ms, T0 + LEASE_MS);
    assert!(tasks[0].is_last_attempt, "no retry policy: one attempt");
    assert_eq!(gauge(&shard, "running").await, 1);
    report(&shard, &tasks[0].task_id, success(b"r"))
        .await
        .unwrap();
    let j = get_job(&shard, &id).await;
    assert_eq!(j.status, wire::JobStatus::Succeeded as i32);
    assert_eq!(j.result, Bytes::from_static(b"r"));
    assert_eq!(j.attempts.len(), 1);
    assert_eq!(j.attempts[0].status, wire::AttemptStatus::Succeeded as i32);
    // The outcome is recorded once.
    assert_eq!(
        report(&shard, &tasks[0].task_id, success(b"r")).await,
        Err(Error::OutcomeAlreadyRecorded)
    );
    assert_eq!(gauge(&shard, "running").await, 0);
    shard.close().await;
}

#[tokio::test]
async fn a_future_job_is_scheduled_until_the_clock_reaches_it() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    let id = enqueue(
        &shard,
        wire::EnqueueRequest {
            start_at_ms: T0 + 1000,
            ..job("later", "q")
        },
    )
    .await;
    assert_eq!(
        get_job(&shard, &id).await.status,
        wire::JobStatus::Scheduled as i32
    );
    assert!(lease(&shard, &["q"], 1).await.is_empty());
    h.clock.advance(999);
    assert!(lease(&shard, &["q"], 1).await.is_empty());
    h.clock.advance(1);
    assert_eq!(lease(&shard, &["q"], 1).await.len(), 1);
    shard.close().await;
}

#[tokio::test]
async fn an_expired_lease_fails_the_attempt_and_refuses_the_worker() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    let id = enqueue(&shard, job("a", "q")).await;
    let task = lease(&shard, &["q"], 1).await.remove(0);
    h.clock.advance(LEASE_MS - 1);
    let hb = heartbeat(&shard, &task.task_id).await.unwrap();
    assert_eq!(
        hb.lease_expires_at_ms,
        T0 + LEASE_MS - 1 + LEASE_MS,
        "a heartbeat extends"
    );
    h.clock.advance(LEASE_MS);
    assert_eq!(
        gauge(&shard, "running").await,
        0,
        "the step fired the expiry"
    );
    let j = get_job(&shard, &id).await;
    assert_eq!(j.status, wire::JobStatus::Failed as i32);
    let f = j.attempts[0].failure.as_ref().unwrap();
    assert_eq!(f.code, "lease_expired");
    assert!(matches!(
        heartbeat(&shard, &task.task_id).await,
        Err(Error::LeaseNotHeld(m)) if m.contains("expired")
    ));
    assert!(matches!(
        report(&shard, &task.task_id, success(b"")).await,
        Err(Error::LeaseNotHeld(m)) if m.contains("expired")
    ));
    assert_eq!(
        heartbeat(&shard, "nosuchtask").await,
        Err(Error::TaskNotFound)
    );
    shard.close().await;
}

#[tokio::test]
async fn a_failed_attempt_retries_after_its_backoff() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    let id = enqueue(
        &shard,
        wire::EnqueueRequest {
            retry_policy: Some(wire::RetryPolicy {
                max_retries: 1,
                schedule_ms: vec![5000],
                ..Default::default()
            }),
            ..job("a", "q")
        },
    )
    .await;
    let first = lease(&shard, &["q"], 1).await.remove(0);
    assert!(!first.is_last_attempt);
    report(&shard, &first.task_id, failure("boom"))
        .await
        .unwrap();
    let j = get_job(&shard, &id).await;
    assert_eq!(j.status, wire::JobStatus::Scheduled as i32);
    assert_eq!(j.next_attempt_at_ms, T0 + 5000);
    assert_eq!(j.last_failure.as_ref().unwrap().code, "boom");
    h.clock.advance(4999);
    assert!(lease(&shard, &["q"], 1).await.is_empty());
    h.clock.advance(1);
    let second = lease(&shard, &["q"], 1).await.remove(0);
    assert_eq!(second.attempt, 2);
    assert!(second.is_last_attempt);
    assert_eq!(
        second.payload,
        Bytes::from_static(b"p"),
        "a retry reads the payload"
    );
    report(&shard, &second.task_id, failure("boom"))
        .await
        .unwrap();
    assert_eq!(
        get_job(&shard, &id).await.status,
        wire::JobStatus::Failed as i32
    );
    shard.close().await;
}

#[tokio::test]
async fn cancel_ends_a_queued_job_and_flags_a_running_one() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    let queued = enqueue(&shard, job("queued", "q1")).await;
    let running = enqueue(&shard, job("running", "q2")).await;
    let task = lease(&shard, &["q2"], 1).await.remove(0);
    let cancel = |id: &str| {
        shard.cancel(JobRef {
            tenant: "t".into(),
            id: id.into(),
        })
    };
    cancel(&queued).await.unwrap();
    cancel(&running).await.unwrap();
    assert!(
        lease(&shard, &["q1"], 1).await.is_empty(),
        "a cancelled job is never leased"
    );
    assert_eq!(gauge(&shard, "ready").await, 0);
    assert!(heartbeat(&shard, &task.task_id).await.unwrap().cancelled);
    report(&shard, &task.task_id, success(b"")).await.unwrap();
    let j = get_job(&shard, &running).await;
    assert_eq!(
        j.status,
        wire::JobStatus::Cancelled as i32,
        "stays cancelled"
    );
    assert_eq!(
        cancel(&running).await,
        Err(Error::JobTerminal("CANCELLED")),
        "a terminal job refuses a cancel, naming its state"
    );
    shard.close().await;
}

#[tokio::test]
async fn a_restart_rebuilds_ready_jobs_and_live_leases_from_the_store() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    for id in ["a", "b", "c"] {
        enqueue(&shard, job(id, "q")).await;
    }
    let task = lease(&shard, &["q"], 1).await.remove(0);
    assert_eq!(task.job_id, "a", "FIFO");
    shard.close().await;

    h.clock.advance(10_000);
    let shard = h.open().await.unwrap();
    assert_eq!(gauge(&shard, "ready").await, 2);
    assert_eq!(gauge(&shard, "running").await, 1);
    // The live lease got a fresh expiry on open: it outlives its old deadline.
    h.clock.advance(LEASE_MS - 5_000);
    let hb = heartbeat(&shard, &task.task_id).await.unwrap();
    assert!(!hb.cancelled);
    let rest: Vec<String> = lease(&shard, &["q"], 10)
        .await
        .into_iter()
        .map(|t| t.job_id)
        .collect();
    assert_eq!(rest, ["b", "c"]);
    report(&shard, &task.task_id, success(b"ok")).await.unwrap();
    assert_eq!(
        get_job(&shard, "a").await.status,
        wire::JobStatus::Succeeded as i32
    );
    shard.close().await;
}

#[tokio::test]
async fn a_store_of_another_format_version_is_refused() {
    let h = Harness::new();
    h.open().await.unwrap().close().await;
    // Reopening the store this build stamped works.
    h.open().await.unwrap().close().await;
    let db = h.store().open().await.unwrap();
    db.put(
        &keys::meta(keys::META_FORMAT_VERSION),
        record::encode_u64(keys::FORMAT_VERSION + 1),
    )
    .await
    .unwrap();
    db.close().await.unwrap();
    match h.open().await {
        Err(Error::InvalidArgument { field, reason }) => {
            assert_eq!(field, "store");
            let other = format!("format version {}", keys::FORMAT_VERSION + 1);
            assert!(reason.contains(&other), "{reason}");
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a store of another version was opened"),
    }
}

#[tokio::test]
async fn a_store_with_data_but_no_version_is_refused() {
    let h = Harness::new();
    let db = h.store().open().await.unwrap();
    db.put(&keys::job("t", "old"), Bytes::from_static(b"x"))
        .await
        .unwrap();
    db.close().await.unwrap();
    assert!(matches!(
        h.open().await,
        Err(Error::InvalidArgument { field, .. }) if field == "store"
    ));
}

#[tokio::test]
async fn a_lease_of_several_queues_lets_tenants_take_turns() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    for i in 0..100 {
        let req = wire::EnqueueRequest {
            tenant: "big".into(),
            ..job(&format!("big-{i}"), "qa")
        };
        enqueue(&shard, req).await;
    }
    for i in 0..3 {
        let req = wire::EnqueueRequest {
            tenant: "small".into(),
            ..job(&format!("small-{i}"), "qb")
        };
        enqueue(&shard, req).await;
    }
    let tenants: Vec<String> = lease(&shard, &["qa", "qb"], 20)
        .await
        .into_iter()
        .map(|t| t.tenant)
        .collect();
    assert_eq!(tenants.len(), 20);
    assert_eq!(
        &tenants[..6],
        ["big", "small", "big", "small", "big", "small"]
    );
    assert_eq!(tenants.iter().filter(|t| *t == "small").count(), 3);
    shard.close().await;
}

mod flow;
mod ops;
