//! Actor tests of flow control on the manual clock (docs/testing.md#actor-tests): rate-limit
//! tokens and their timers, per-job leases, expiry, paused queues and schedule ticks (DST,
//! catch-up, overlap, restarts), with no wall-clock wait.

use super::*;
use crate::proto::records;
use crate::shard::{ListSchedulesParams, QueueRef, ScheduleRef};

fn rate(key: &str, limit: u32, period_ms: i64) -> wire::RateLimit {
    wire::RateLimit {
        key: key.into(),
        limit,
        period_ms,
    }
}

fn limited(id: &str, queue: &str, limits: Vec<wire::RateLimit>) -> wire::EnqueueRequest {
    wire::EnqueueRequest {
        rate_limits: limits,
        ..job(id, queue)
    }
}

async fn job_ids(shard: &ShardHandle, queues: &[&str], max: u32) -> Vec<String> {
    lease(shard, queues, max)
        .await
        .into_iter()
        .map(|t| t.job_id)
        .collect()
}

async fn exists(shard: &ShardHandle, id: &str) -> bool {
    let r = JobRef {
        tenant: "t".into(),
        id: id.into(),
    };
    match shard.get_job(r, false).await {
        Ok(_) => true,
        Err(Error::JobNotFound) => false,
        Err(e) => panic!("GetJob failed: {e}"),
    }
}

async fn enqueue_full(shard: &ShardHandle, req: wire::EnqueueRequest) -> crate::shard::Enqueued {
    let job = validate::enqueue(req, &LIMITS).unwrap();
    shard
        .enqueue(vec![job])
        .await
        .unwrap()
        .pop()
        .unwrap()
        .unwrap()
}

fn queue(name: &str) -> QueueRef {
    QueueRef {
        tenant: "t".into(),
        queue: name.into(),
    }
}

#[tokio::test]
async fn a_backlog_gets_the_bucket_at_once_then_one_token_per_refill() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    for i in 0..10 {
        enqueue(
            &shard,
            limited(&format!("j{i}"), "q", vec![rate("k", 3, 1000)]),
        )
        .await;
    }
    assert_eq!(
        job_ids(&shard, &["q"], 100).await,
        ["j0", "j1", "j2"],
        "exactly the limit"
    );
    let waiting = get_job(&shard, "j3").await;
    assert_eq!(waiting.status, wire::JobStatus::Pending as i32);
    assert_eq!(waiting.waiting_on_rate_limit, "k");
    assert!(waiting.waiting_on_keys.is_empty());
    // 3 per second: a token every 333.3 ms, at 334, 667 and 1000.
    h.clock.advance(333);
    assert!(lease(&shard, &["q"], 100).await.is_empty());
    h.clock.advance(1);
    assert_eq!(job_ids(&shard, &["q"], 100).await, ["j3"]);
    h.clock.advance(666);
    assert_eq!(job_ids(&shard, &["q"], 100).await, ["j4", "j5"]);
    let state = shard.get_rate_limit("t".into(), "k".into()).await.unwrap();
    assert_eq!((state.limit, state.period_ms), (3, 1000));
    assert_eq!(state.tokens, 0.0);
    assert_eq!(state.waiters, ["j6", "j7", "j8", "j9"]);
    assert_eq!(state.next_token_at_ms, T0 + 1334);
    shard.close().await;
}

#[tokio::test]
async fn the_timer_wakes_a_parked_long_poll_at_the_token_time() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    for i in 0..2 {
        enqueue(
            &shard,
            limited(&format!("j{i}"), "q", vec![rate("k", 1, 60_000)]),
        )
        .await;
    }
    assert_eq!(lease(&shard, &["q"], 10).await.len(), 1);
    let params = validate::lease(wire::LeaseTasksRequest {
        worker_id: "w".into(),
        max_tasks: 10,
        queues: vec!["q".into()],
        wait_ms: 60_000,
    })
    .unwrap();
    let parked = {
        let shard = shard.clone();
        tokio::spawn(async move { shard.lease_tasks(params).await })
    };
    while gauge(&shard, "lease_waiters").await == 0 {
        tokio::task::yield_now().await;
    }
    h.clock.advance(59_999);
    assert_eq!(gauge(&shard, "lease_waiters").await, 1, "no token yet");
    h.clock.advance(1);
    // The first step at or after the token's time (the actor's deadline, or here a GetStats)
    // grants it and serves the parked call.
    gauge(&shard, "ready").await;
    let tasks = parked.await.unwrap().unwrap().tasks;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].job_id, "j1");
    shard.close().await;
}

#[tokio::test]
async fn a_blocked_key_does_not_hold_up_other_keys_or_jobs() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    enqueue(&shard, limited("a0", "q", vec![rate("a", 1, 60_000)])).await;
    enqueue(&shard, limited("a1", "q", vec![rate("a", 1, 60_000)])).await;
    enqueue(&shard, limited("a2", "q", vec![rate("a", 1, 60_000)])).await;
    enqueue(&shard, limited("b0", "q", vec![rate("b", 5, 60_000)])).await;
    enqueue(&shard, job("free", "q")).await;
    assert_eq!(job_ids(&shard, &["q"], 100).await, ["a0", "b0", "free"]);
    shard.close().await;
}

#[tokio::test]
async fn tokens_survive_a_restart_and_refill_with_time_only() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    for i in 0..4 {
        enqueue(
            &shard,
            limited(&format!("j{i}"), "q", vec![rate("k", 2, 10_000)]),
        )
        .await;
    }
    assert_eq!(lease(&shard, &["q"], 10).await.len(), 2);
    shard.close().await;
    let shard = h.open().await.unwrap();
    assert!(
        lease(&shard, &["q"], 10).await.is_empty(),
        "a restart refills nothing"
    );
    h.clock.advance(5_000);
    assert_eq!(job_ids(&shard, &["q"], 10).await, ["j2"]);
    shard.close().await;
}

#[tokio::test]
async fn the_last_enqueue_sets_the_rate_and_a_lower_limit_caps_the_tokens() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    for i in 0..3 {
        enqueue(
            &shard,
            limited(&format!("j{i}"), "q", vec![rate("k", 1, 1000)]),
        )
        .await;
    }
    assert_eq!(lease(&shard, &["q"], 10).await.len(), 1);
    h.clock.advance(500);
    // Half a token refilled at 1/s; from now on 2/s: the next whole token in 250 ms.
    enqueue(&shard, limited("j3", "q", vec![rate("k", 2, 1000)])).await;
    assert!(lease(&shard, &["q"], 10).await.is_empty());
    h.clock.advance(249);
    assert!(lease(&shard, &["q"], 10).await.is_empty());
    h.clock.advance(1);
    assert_eq!(job_ids(&shard, &["q"], 10).await, ["j1"]);
    // Lower to 1: however long it waits, the bucket holds at most one token.
    enqueue(&shard, limited("j4", "q", vec![rate("k", 1, 1000)])).await;
    h.clock.advance(5_000);
    assert_eq!(job_ids(&shard, &["q"], 10).await, ["j2"]);
    shard.close().await;
}

#[tokio::test]
async fn a_job_takes_its_slot_and_token_together() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    let both = |id: &str| wire::EnqueueRequest {
        concurrency_limits: vec![wire::ConcurrencyLimit {
            key: "c".into(),
            max_concurrency: 1,
        }],
        ..limited(id, "q", vec![rate("r", 10, 1000)])
    };
    enqueue(&shard, both("x")).await;
    enqueue(&shard, both("y")).await;
    let x = lease(&shard, &["q"], 10).await.remove(0);
    let y = get_job(&shard, "y").await;
    assert_eq!(
        y.waiting_on_keys,
        ["c"],
        "the slot is taken: y holds no token meanwhile"
    );
    let state = shard.get_rate_limit("t".into(), "r".into()).await.unwrap();
    assert_eq!((state.reserved, state.tokens), (0, 9.0));
    report(&shard, &x.task_id, success(b"")).await.unwrap();
    assert_eq!(job_ids(&shard, &["q"], 10).await, ["y"]);
    shard.close().await;
}

#[tokio::test]
async fn a_job_lease_ms_sets_its_lease_heartbeats_and_restart_lease() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    let id = enqueue(
        &shard,
        wire::EnqueueRequest {
            lease_ms: 6_000,
            ..job("a", "q")
        },
    )
    .await;
    let task = lease(&shard, &["q"], 1).await.remove(0);
    assert_eq!(task.lease_expires_at_ms, T0 + 6_000);
    assert_eq!(task.heartbeat_interval_ms, 2_000);
    h.clock.advance(5_999);
    let hb = heartbeat(&shard, &task.task_id).await.unwrap();
    assert_eq!(hb.lease_expires_at_ms, T0 + 5_999 + 6_000);
    shard.close().await;
    let shard = h.open().await.unwrap();
    h.clock.advance(5_999);
    assert_eq!(
        gauge(&shard, "running").await,
        1,
        "a fresh lease of the job's own 6 s"
    );
    h.clock.advance(1);
    assert_eq!(gauge(&shard, "running").await, 0);
    let j = get_job(&shard, &id).await;
    assert_eq!(
        j.attempts[0].failure.as_ref().unwrap().code,
        "lease_expired"
    );
    assert_eq!(j.lease_ms, 6_000);
    shard.close().await;
}

#[tokio::test]
async fn a_job_not_started_by_its_expiry_fails_with_expired() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    let expiring = |id: &str, start: i64| wire::EnqueueRequest {
        start_at_ms: start,
        expire_at_ms: T0 + 2_000,
        ..job(id, "q")
    };
    enqueue(&shard, expiring("late", T0 + 1_000)).await;
    enqueue(&shard, expiring("started", 0)).await;
    enqueue(&shard, expiring("cancelled", 0)).await;
    assert_eq!(job_ids(&shard, &["q"], 1).await, ["started"]);
    shard
        .cancel(JobRef {
            tenant: "t".into(),
            id: "cancelled".into(),
        })
        .await
        .unwrap();
    h.clock.advance(2_000);
    assert_eq!(
        gauge(&shard, "expiries_in_memory").await,
        1,
        "at its time it may still start"
    );
    assert_eq!(
        get_job(&shard, "late").await.status,
        wire::JobStatus::Pending as i32
    );
    h.clock.advance(1);
    let j = get_job(&shard, "late").await;
    assert_eq!(j.status, wire::JobStatus::Failed as i32);
    let f = j.last_failure.unwrap();
    assert_eq!(f.code, "expired");
    assert!(f.non_retryable);
    assert_eq!(j.attempt_count, 0);
    assert!(lease(&shard, &["q"], 10).await.is_empty());
    assert_eq!(gauge(&shard, "ready").await, 0);
    assert_eq!(gauge(&shard, "expiries_in_memory").await, 0);
    assert_eq!(
        get_job(&shard, "started").await.status,
        wire::JobStatus::Running as i32
    );
    assert_eq!(
        get_job(&shard, "cancelled").await.status,
        wire::JobStatus::Cancelled as i32
    );
    shard.close().await;
}

#[tokio::test]
async fn an_expiry_reaches_a_job_waiting_for_a_token_and_survives_a_restart() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    enqueue(&shard, limited("first", "q", vec![rate("k", 1, 3_600_000)])).await;
    let req = wire::EnqueueRequest {
        expire_at_ms: T0 + 1_000,
        ..limited("second", "q", vec![rate("k", 1, 3_600_000)])
    };
    enqueue(&shard, req).await;
    assert_eq!(lease(&shard, &["q"], 10).await.len(), 1);
    assert_eq!(get_job(&shard, "second").await.waiting_on_rate_limit, "k");
    shard.close().await;
    let shard = h.open().await.unwrap();
    h.clock.advance(1_001);
    let j = get_job(&shard, "second").await;
    assert_eq!(j.status, wire::JobStatus::Failed as i32);
    assert_eq!(j.waiting_on_rate_limit, "", "it waits on nothing any more");
    assert_eq!(gauge(&shard, "key_waiters").await, 0);
    assert_eq!(
        gauge(&shard, "rate_limit_keys").await,
        0,
        "an idle key is dropped"
    );
    shard.close().await;
}

#[tokio::test]
async fn a_paused_queue_leases_nothing_and_resumes_in_order_after_a_restart() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    for i in 0..3 {
        enqueue(&shard, job(&format!("j{i}"), "q")).await;
    }
    enqueue(&shard, job("other", "o")).await;
    let stats = shard.pause_queue(queue("q"), true).await.unwrap();
    assert!(stats.paused);
    assert!(
        shard.pause_queue(queue("q"), true).await.unwrap().paused,
        "idempotent"
    );
    enqueue(&shard, job("j3", "q")).await;
    assert_eq!(job_ids(&shard, &["q", "o"], 10).await, ["other"]);
    assert_eq!(
        get_job(&shard, "j0").await.status,
        wire::JobStatus::Pending as i32
    );
    shard.close().await;
    let shard = h.open().await.unwrap();
    assert!(
        lease(&shard, &["q"], 10).await.is_empty(),
        "still paused after a restart"
    );
    assert_eq!(gauge(&shard, "paused_queues").await, 1);
    assert!(!shard.pause_queue(queue("q"), false).await.unwrap().paused);
    assert_eq!(job_ids(&shard, &["q"], 10).await, ["j0", "j1", "j2", "j3"]);
    shard.close().await;
}

#[tokio::test]
async fn resuming_serves_a_parked_long_poll_at_once() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    shard.pause_queue(queue("q"), true).await.unwrap();
    enqueue(&shard, job("j", "q")).await;
    let params = validate::lease(wire::LeaseTasksRequest {
        worker_id: "w".into(),
        max_tasks: 10,
        queues: vec!["q".into()],
        wait_ms: 60_000,
    })
    .unwrap();
    let parked = {
        let shard = shard.clone();
        tokio::spawn(async move { shard.lease_tasks(params).await })
    };
    while gauge(&shard, "lease_waiters").await == 0 {
        tokio::task::yield_now().await;
    }
    enqueue(&shard, job("k", "q")).await;
    assert_eq!(
        gauge(&shard, "lease_waiters").await,
        1,
        "a paused queue serves no long-poll"
    );
    shard.pause_queue(queue("q"), false).await.unwrap();
    let tasks = parked.await.unwrap().unwrap().tasks;
    assert_eq!(
        tasks.iter().map(|t| t.job_id.as_str()).collect::<Vec<_>>(),
        ["j", "k"]
    );
    shard.close().await;
}

#[tokio::test]
async fn a_paused_job_gives_its_slot_to_another_queue() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    let keyed = |id: &str, q: &str| wire::EnqueueRequest {
        concurrency_limits: vec![wire::ConcurrencyLimit {
            key: "shared".into(),
            max_concurrency: 1,
        }],
        ..job(id, q)
    };
    enqueue(&shard, keyed("p", "paused")).await;
    enqueue(&shard, keyed("o", "open")).await;
    assert_eq!(get_job(&shard, "o").await.waiting_on_keys, ["shared"]);
    shard.pause_queue(queue("paused"), true).await.unwrap();
    assert_eq!(job_ids(&shard, &["open"], 10).await, ["o"]);
    shard.pause_queue(queue("paused"), false).await.unwrap();
    assert_eq!(get_job(&shard, "p").await.waiting_on_keys, ["shared"]);
    shard.close().await;
}

fn schedule(name: &str, cron: &str, interval_ms: i64) -> wire::Schedule {
    wire::Schedule {
        tenant: "t".into(),
        name: name.into(),
        cron: cron.into(),
        interval_ms,
        job: Some(wire::EnqueueRequest {
            queue: "sq".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn put(shard: &ShardHandle, s: wire::Schedule) -> wire::Schedule {
    let rec: records::ScheduleRecord = validate::put_schedule(s, &LIMITS).unwrap();
    shard.put_schedule(rec).await.unwrap()
}

fn sref(name: &str) -> ScheduleRef {
    ScheduleRef {
        tenant: "t".into(),
        name: name.into(),
    }
}

#[tokio::test]
async fn an_interval_schedule_enqueues_one_job_per_tick() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    let s = put(&shard, schedule("every", "", 1_000)).await;
    assert_eq!(s.next_run_at_ms, T0 + 1_000);
    h.clock.advance(999);
    assert!(!exists(&shard, &format!("sched:every:{}", T0 + 1_000)).await);
    h.clock.advance(1);
    assert_eq!(gauge(&shard, "ready").await, 1);
    let first = format!("sched:every:{}", T0 + 1_000);
    assert!(exists(&shard, &first).await);
    let s = shard.get_schedule(sref("every")).await.unwrap();
    assert_eq!(
        (s.next_run_at_ms, s.last_job_id.as_str()),
        (T0 + 2_000, first.as_str())
    );
    // A restart right after a tick neither repeats nor skips it.
    shard.close().await;
    let shard = h.open().await.unwrap();
    assert_eq!(gauge(&shard, "ready").await, 1);
    h.clock.advance(1_000);
    assert_eq!(gauge(&shard, "ready").await, 2);
    assert_eq!(
        job_ids(&shard, &["sq"], 10).await,
        [first, format!("sched:every:{}", T0 + 2_000)]
    );
    shard.close().await;
}

async fn catch_up_after_downtime(policy: wire::CatchUp) -> Vec<bool> {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    let s = wire::Schedule {
        catch_up: policy as i32,
        ..schedule("s", "", 10_000)
    };
    put(&shard, s).await;
    shard.close().await;
    // Down through the ticks at +10 s and +20 s; back 5.5 s after the second.
    h.clock.advance(25_500);
    let shard = h.open().await.unwrap();
    let mut made = Vec::new();
    for t in [10_000, 20_000, 30_000] {
        made.push(exists(&shard, &format!("sched:s:{}", T0 + t)).await);
    }
    let s = shard.get_schedule(sref("s")).await.unwrap();
    assert_eq!(s.next_run_at_ms, T0 + 30_000, "on to the next tick");
    shard.close().await;
    made
}

#[tokio::test]
async fn catch_up_one_none_and_all_after_a_downtime() {
    assert_eq!(
        catch_up_after_downtime(wire::CatchUp::One).await,
        [false, true, false]
    );
    assert_eq!(
        catch_up_after_downtime(wire::CatchUp::None).await,
        [false, false, false]
    );
    assert_eq!(
        catch_up_after_downtime(wire::CatchUp::All).await,
        [true, true, false]
    );
}

#[tokio::test]
async fn overlap_skip_skips_ticks_while_the_last_job_is_open() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    let s = wire::Schedule {
        overlap: wire::Overlap::Skip as i32,
        ..schedule("s", "", 1_000)
    };
    put(&shard, s).await;
    h.clock.advance(1_000);
    let task = lease(&shard, &["sq"], 10).await.remove(0);
    h.clock.advance(1_000);
    assert!(
        !exists(&shard, &format!("sched:s:{}", T0 + 2_000)).await,
        "skipped"
    );
    report(&shard, &task.task_id, success(b"")).await.unwrap();
    h.clock.advance(1_000);
    assert!(exists(&shard, &format!("sched:s:{}", T0 + 3_000)).await);
    shard.close().await;
}

/// Unix ms of a UTC wall time.
fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
    chrono::NaiveDate::from_ymd_opt(y, mo, d)
        .unwrap()
        .and_hms_opt(h, mi, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis()
}

/// Runs the clock from `from` to `to` (UTC ms) in steps of `step` and returns the tick ids of
/// the jobs the schedule made.
async fn ticks_between(zone: &str, cron: &str, from: i64, to: i64, step: i64) -> Vec<i64> {
    let h = Harness {
        objects: Arc::new(InMemory::new()),
        clock: ManualClock::new(from),
    };
    let shard = h.open().await.unwrap();
    let s = wire::Schedule {
        timezone: zone.into(),
        ..schedule("dst", cron, 0)
    };
    put(&shard, s).await;
    let mut now = from;
    while now < to {
        h.clock.advance(step);
        now += step;
        gauge(&shard, "ready").await; // a step fires what came due
    }
    let mut ticks = Vec::new();
    for t in lease(&shard, &["sq"], 1000).await {
        ticks.push(t.job_id.rsplit(':').next().unwrap().parse().unwrap());
    }
    shard.close().await;
    ticks.sort();
    ticks
}

#[tokio::test]
async fn cron_ticks_keep_wall_clock_time_across_dst_in_berlin() {
    // Spring forward 2026-03-29 (02:30 does not exist: it runs at 03:00 CEST = 01:00 UTC).
    let spring = ticks_between(
        "Europe/Berlin",
        "30 2 * * *",
        utc(2026, 3, 27, 12, 0),
        utc(2026, 3, 30, 12, 0),
        600_000,
    )
    .await;
    assert_eq!(
        spring,
        [
            utc(2026, 3, 28, 1, 30),
            utc(2026, 3, 29, 1, 0),
            utc(2026, 3, 30, 0, 30)
        ]
    );
    // Fall back 2026-10-25 (02:30 happens twice: it runs once, at the first).
    let fall = ticks_between(
        "Europe/Berlin",
        "30 2 * * *",
        utc(2026, 10, 23, 12, 0),
        utc(2026, 10, 26, 12, 0),
        600_000,
    )
    .await;
    assert_eq!(
        fall,
        [
            utc(2026, 10, 24, 0, 30),
            utc(2026, 10, 25, 0, 30),
            utc(2026, 10, 26, 1, 30)
        ]
    );
}

#[tokio::test]
async fn cron_ticks_keep_wall_clock_time_across_dst_in_new_york() {
    let spring = ticks_between(
        "America/New_York",
        "0 9 * * *",
        utc(2026, 3, 7, 0, 0),
        utc(2026, 3, 9, 23, 0),
        900_000,
    )
    .await;
    assert_eq!(
        spring,
        [
            utc(2026, 3, 7, 14, 0),
            utc(2026, 3, 8, 13, 0),
            utc(2026, 3, 9, 13, 0)
        ],
        "09:00 EST, then 09:00 EDT"
    );
    let fall = ticks_between(
        "America/New_York",
        "30 1 * * *",
        utc(2026, 10, 31, 0, 0),
        utc(2026, 11, 2, 12, 0),
        900_000,
    )
    .await;
    assert_eq!(
        fall,
        [
            utc(2026, 10, 31, 5, 30),
            utc(2026, 11, 1, 5, 30),
            utc(2026, 11, 2, 6, 30)
        ],
        "01:30 EDT, the first of the two 01:30s on Nov 1, then 01:30 EST"
    );
}

#[tokio::test]
async fn schedules_are_put_replaced_paused_listed_and_deleted() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    for name in ["c", "a", "b"] {
        put(&shard, schedule(name, "@hourly", 0)).await;
    }
    let paused = wire::Schedule {
        paused: true,
        ..schedule("a", "", 5_000)
    };
    let a = put(&shard, paused).await;
    assert_eq!(
        (a.next_run_at_ms, a.interval_ms, a.cron.as_str()),
        (0, 5_000, "")
    );
    assert_eq!(
        gauge(&shard, "schedules_in_memory").await,
        2,
        "a paused schedule has no timer"
    );
    h.clock.advance(3_600_000);
    assert!(!exists(&shard, &format!("sched:a:{}", T0 + 5_000)).await);
    let page = |after: Option<String>| ListSchedulesParams {
        tenant: "t".into(),
        page_size: 2,
        after,
    };
    let first = shard.list_schedules(page(None)).await.unwrap();
    let names: Vec<&str> = first.schedules.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    let after = validate::list_schedules(wire::ListSchedulesRequest {
        tenant: "t".into(),
        page_size: 2,
        page_token: first.next_page_token.clone(),
    })
    .unwrap()
    .after;
    let second = shard.list_schedules(page(after)).await.unwrap();
    assert_eq!(second.schedules.len(), 1);
    assert_eq!(second.next_page_token, "");
    shard.delete_schedule(sref("b")).await.unwrap();
    assert_eq!(
        shard.get_schedule(sref("b")).await,
        Err(Error::ScheduleNotFound)
    );
    assert_eq!(
        shard.delete_schedule(sref("b")).await,
        Err(Error::ScheduleNotFound)
    );
    assert_eq!(gauge(&shard, "schedules_in_memory").await, 1);
    shard.close().await;
}

#[tokio::test]
async fn a_unique_key_dedups_while_held_and_frees_after_the_window() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    let unique = |id: &str, window: i64| wire::EnqueueRequest {
        unique_key: "u".into(),
        unique_for_ms: window,
        ..job(id, "q")
    };
    let first = enqueue_full(&shard, unique("a", 10_000)).await;
    assert!(!first.deduplicated);
    let dup = enqueue_full(&shard, unique("b", 0)).await;
    assert_eq!((dup.id.as_str(), dup.deduplicated), ("a", true));
    assert!(!exists(&shard, "b").await, "a dedup stores nothing");
    // An explicit id that exists is checked first.
    let again = validate::enqueue(unique("a", 0), &LIMITS).unwrap();
    let r = shard.enqueue(vec![again]).await.unwrap().pop().unwrap();
    assert_eq!(r, Err(Error::JobAlreadyExists));
    let task = lease(&shard, &["q"], 1).await.remove(0);
    report(&shard, &task.task_id, success(b"")).await.unwrap();
    h.clock.advance(9_999);
    assert!(
        enqueue_full(&shard, unique("c", 0)).await.deduplicated,
        "terminal, in its window"
    );
    h.clock.advance(1);
    let fresh = enqueue_full(&shard, unique("d", 0)).await;
    assert_eq!((fresh.id.as_str(), fresh.deduplicated), ("d", false));
    // One batch: the entries dedup against each other, in order.
    let batch: Vec<_> = ["e", "f"]
        .iter()
        .map(|id| {
            let req = wire::EnqueueRequest {
                unique_key: "v".into(),
                ..job(id, "q")
            };
            validate::enqueue(req, &LIMITS).unwrap()
        })
        .collect();
    let out = shard.enqueue(batch).await.unwrap();
    let out: Vec<_> = out.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(out[0].id, "e");
    assert_eq!((out[1].id.as_str(), out[1].deduplicated), ("e", true));
    shard.close().await;
}
