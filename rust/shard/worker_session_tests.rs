//! Worker sessions in the actor (worker_session.rs, parked.rs), through the handle, on an
//! in-memory store and a manual clock (docs/testing.md#actor-tests). A session's tasks reach its
//! sink once their step is durable, so a test awaits the sink rather than a step.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use super::tests::{enqueue, gauge, job, Harness};
use super::worker_session::{SessionEvent, SessionId, SessionOpen};
use super::ShardHandle;
use crate::proto::wire;
use crate::validate::{self, LeaseParams};

static IDS: AtomicU64 = AtomicU64::new(1);

struct TestSession {
    id: SessionId,
    events: mpsc::UnboundedReceiver<SessionEvent>,
}

impl TestSession {
    /// The next delivery of tasks (fails the test after 10 s of real time: a hang, not a
    /// timing assertion).
    async fn tasks(&mut self) -> Vec<wire::Task> {
        match tokio::time::timeout(Duration::from_secs(10), self.events.recv()).await {
            Ok(Some(SessionEvent::Tasks(tasks))) => tasks,
            other => panic!("expected tasks, got {other:?}"),
        }
    }

    /// Nothing was delivered so far (every delivery of a finished step has been sent: the
    /// caller awaited a later command).
    fn nothing_yet(&mut self) {
        match self.events.try_recv() {
            Err(mpsc::error::TryRecvError::Empty) => {}
            other => panic!("expected no delivery, got {other:?}"),
        }
    }
}

async fn open(shard: &ShardHandle, worker: &str, queues: &[&str], credit: u32) -> TestSession {
    let (sink, events) = mpsc::unbounded_channel();
    let id = IDS.fetch_add(1, Ordering::Relaxed);
    let lease = LeaseParams {
        worker_id: worker.into(),
        max_tasks: 0,
        queues: queues.iter().map(|q| q.to_string()).collect(),
        wait_ms: 0,
        tenants: crate::auth::TenantScope::all(),
    };
    shard
        .session_open(SessionOpen {
            id,
            lease,
            credit,
            sink,
        })
        .await
        .unwrap();
    TestSession { id, events }
}

fn ids(tasks: &[wire::Task]) -> Vec<&str> {
    tasks.iter().map(|t| t.job_id.as_str()).collect()
}

async fn enqueue_many(shard: &ShardHandle, tenant: &str, prefix: &str, n: usize) {
    let jobs = (0..n)
        .map(|i| {
            let req = wire::EnqueueRequest {
                tenant: tenant.into(),
                ..job(&format!("{prefix}{i}"), "q")
            };
            validate::enqueue(req, &super::tests::LIMITS).unwrap()
        })
        .collect();
    for r in shard.enqueue(jobs).await.unwrap() {
        r.unwrap();
    }
}

#[tokio::test]
async fn a_session_never_holds_more_tasks_than_its_credit() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    let mut s = open(&shard, "w", &["q"], 2).await;
    assert_eq!(gauge(&shard, "worker_sessions").await, 1);
    enqueue_many(&shard, "t", "j", 5).await;
    assert_eq!(ids(&s.tasks().await), ["j0", "j1"]);
    assert_eq!(gauge(&shard, "running").await, 2);
    assert_eq!(gauge(&shard, "ready").await, 3);
    s.nothing_yet();
    shard.session_credits(s.id, 1).await.unwrap();
    assert_eq!(ids(&s.tasks().await), ["j2"]);
    assert_eq!(gauge(&shard, "running").await, 3);
    s.nothing_yet();
    shard.close().await;
}

#[tokio::test]
async fn an_enqueue_wakes_a_waiting_session_and_its_worker_holds_the_lease() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    let mut s = open(&shard, "w-session", &["q"], 5).await;
    assert_eq!(
        gauge(&shard, "lease_waiters").await,
        0,
        "a session is no long-poll"
    );
    let id = enqueue(&shard, job("a", "q")).await;
    let [task] = <[wire::Task; 1]>::try_from(s.tasks().await).unwrap();
    assert_eq!(task.job_id, id);
    let j = super::tests::get_job(&shard, &id).await;
    assert_eq!(j.attempts[0].worker_id, "w-session");
    shard.close().await;
}

#[tokio::test]
async fn sessions_and_long_polls_take_turns() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    let mut a = open(&shard, "a", &["q"], 10).await;
    let poll = {
        let shard = shard.clone();
        tokio::spawn(async move {
            let params = validate::lease(wire::LeaseTasksRequest {
                worker_id: "poller".into(),
                max_tasks: 10,
                queues: vec!["q".into()],
                wait_ms: 60_000,
            })
            .unwrap();
            shard.lease_tasks(params).await.unwrap().tasks
        })
    };
    while gauge(&shard, "lease_waiters").await == 0 {
        tokio::task::yield_now().await;
    }
    let mut b = open(&shard, "b", &["q"], 10).await;
    enqueue(&shard, job("1", "q")).await;
    assert_eq!(ids(&a.tasks().await), ["1"], "the oldest waiter first");
    enqueue(&shard, job("2", "q")).await;
    assert_eq!(ids(&poll.await.unwrap()), ["2"], "then the long-poll");
    enqueue(&shard, job("3", "q")).await;
    assert_eq!(ids(&b.tasks().await), ["3"], "then the newer session");
    enqueue(&shard, job("4", "q")).await;
    assert_eq!(ids(&a.tasks().await), ["4"], "and the first session again");
    b.nothing_yet();
    shard.close().await;
}

#[tokio::test]
async fn a_session_serves_tenants_in_turn() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    enqueue_many(&shard, "big", "big", 20).await;
    enqueue_many(&shard, "small", "small", 3).await;
    let mut s = open(&shard, "w", &["q"], 1).await;
    let mut tenants = Vec::new();
    for _ in 0..8 {
        let tasks = s.tasks().await;
        tenants.extend(tasks.into_iter().map(|t| t.tenant));
        shard.session_credits(s.id, 1).await.unwrap();
    }
    assert_eq!(
        tenants,
        ["big", "small", "big", "small", "big", "small", "big", "big"]
    );
    shard.close().await;
}

#[tokio::test]
async fn a_closed_session_takes_nothing_and_its_sink_ends() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    let mut s = open(&shard, "w", &["q"], 3).await;
    shard.session_close(s.id).await.unwrap();
    enqueue(&shard, job("a", "q")).await;
    assert_eq!(gauge(&shard, "ready").await, 1, "nothing leased");
    assert_eq!(gauge(&shard, "worker_sessions").await, 0);
    assert!(s.events.recv().await.is_none(), "the sink dropped");
    // Credits for a closed session are ignored.
    shard.session_credits(s.id, 1).await.unwrap();
    assert_eq!(gauge(&shard, "ready").await, 1);
    shard.close().await;
}

#[tokio::test]
async fn a_session_whose_stream_went_away_is_dropped_when_its_turn_comes() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    let s = open(&shard, "w", &["q"], 3).await;
    drop(s.events);
    enqueue(&shard, job("a", "q")).await;
    assert_eq!(gauge(&shard, "ready").await, 1, "nothing leased for it");
    assert_eq!(gauge(&shard, "worker_sessions").await, 0);
    shard.close().await;
}

#[tokio::test]
async fn closing_the_shard_ends_every_session() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    let mut s = open(&shard, "w", &["q"], 3).await;
    shard.close().await;
    assert!(s.events.recv().await.is_none());
}
