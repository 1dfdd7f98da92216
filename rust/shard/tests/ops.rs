//! Actor tests of the operator side: WaitJob, the index and count maintenance, retention on a
//! manual clock.

use bytes::Bytes;

use super::*;

fn wait_params(id: &str, timeout_ms: i64) -> validate::WaitJobParams {
    validate::wait_job(wire::WaitJobRequest {
        id: id.into(),
        tenant: "t".into(),
        timeout_ms,
    })
    .unwrap()
}

/// Waits (on the actor, not the clock) until `n` WaitJob calls are parked.
async fn until_job_waiters(shard: &ShardHandle, n: i64) {
    while gauge(shard, "job_waiters").await != n {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn wait_job_answers_when_the_job_ends_and_not_on_a_retry() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    let id = enqueue(
        &shard,
        wire::EnqueueRequest {
            retry_policy: Some(wire::RetryPolicy {
                max_retries: 1,
                schedule_ms: vec![0],
                ..Default::default()
            }),
            ..job("a", "q")
        },
    )
    .await;
    let waiting = tokio::spawn({
        let shard = shard.clone();
        let p = wait_params(&id, 300_000);
        async move { shard.wait_job(p).await }
    });
    until_job_waiters(&shard, 1).await;
    let first = lease(&shard, &["q"], 1).await.remove(0);
    report(&shard, &first.task_id, failure("boom"))
        .await
        .unwrap();
    assert_eq!(
        gauge(&shard, "job_waiters").await,
        1,
        "a retry is not an end"
    );
    let second = lease(&shard, &["q"], 1).await.remove(0);
    report(&shard, &second.task_id, success(b"done"))
        .await
        .unwrap();
    let j = waiting.await.unwrap().unwrap();
    assert_eq!(j.status, wire::JobStatus::Succeeded as i32);
    assert_eq!(j.result, Bytes::from_static(b"done"));
    assert_eq!(j.payload, Bytes::from_static(b"p"));
    assert_eq!(gauge(&shard, "job_waiters").await, 0);
    shard.close().await;
}

#[tokio::test]
async fn wait_job_answers_the_current_state_at_its_deadline() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    let id = enqueue(&shard, job("a", "q")).await;
    let now = shard.wait_job(wait_params(&id, 0)).await.unwrap();
    assert_eq!(
        now.status,
        wire::JobStatus::Pending as i32,
        "0 answers at once"
    );
    let waiting = tokio::spawn({
        let shard = shard.clone();
        let p = wait_params(&id, 1000);
        async move { shard.wait_job(p).await }
    });
    until_job_waiters(&shard, 1).await;
    h.clock.advance(999);
    assert_eq!(gauge(&shard, "job_waiters").await, 1);
    h.clock.advance(1);
    assert_eq!(gauge(&shard, "job_waiters").await, 0, "the deadline passed");
    let j = waiting.await.unwrap().unwrap();
    assert_eq!(j.status, wire::JobStatus::Pending as i32);
    assert_eq!(
        shard.wait_job(wait_params("nope", 10)).await,
        Err(Error::JobNotFound)
    );
    shard.close().await;
}

#[tokio::test]
async fn wait_job_is_woken_by_a_cancel_and_refused_at_close() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    let a = enqueue(&shard, job("a", "q")).await;
    let b = enqueue(&shard, job("b", "q")).await;
    let spawn_wait = |id: &str| {
        let shard = shard.clone();
        let p = wait_params(id, 300_000);
        tokio::spawn(async move { shard.wait_job(p).await })
    };
    let (wa1, wa2, wb) = (spawn_wait(&a), spawn_wait(&a), spawn_wait(&b));
    until_job_waiters(&shard, 3).await;
    shard
        .cancel(JobRef {
            tenant: "t".into(),
            id: a.clone(),
        })
        .await
        .unwrap();
    for w in [wa1, wa2] {
        let j = w.await.unwrap().unwrap();
        assert_eq!(j.status, wire::JobStatus::Cancelled as i32);
    }
    shard.close().await;
    assert!(matches!(
        wb.await.unwrap(),
        Err(Error::StoreUnavailable(m)) if m.contains("shutting down")
    ));
}

async fn counts(shard: &ShardHandle, queue: &str) -> std::collections::BTreeMap<String, i64> {
    let resp = shard.list_queues("t".into()).await.unwrap();
    resp.queues
        .into_iter()
        .find(|q| q.name == queue)
        .map(|q| q.counts.into_iter().filter(|(_, n)| *n != 0).collect())
        .unwrap_or_default()
}

async fn succeed_all(shard: &ShardHandle, queue: &str, n: u32) {
    let tasks = lease(shard, &[queue], n).await;
    assert_eq!(tasks.len(), n as usize);
    let reports = tasks
        .iter()
        .map(|t| {
            validate::report(
                wire::ReportTaskOutcomeRequest {
                    task_id: t.task_id.clone(),
                    worker_id: "w".into(),
                    outcome: Some(success(b"")),
                },
                &LIMITS,
            )
            .unwrap()
        })
        .collect();
    for r in shard.report_task_outcomes(reports).await.unwrap() {
        r.unwrap();
    }
}

#[tokio::test]
async fn an_enqueue_due_now_is_indexed_pending_only() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    enqueue(&shard, job("a", "q")).await;
    shard.close().await;
    let db = h.store().open().await.unwrap();
    let mut iter = db.scan(keys::family_range(keys::BY_STATUS)).await.unwrap();
    let mut statuses = Vec::new();
    while let Some(kv) = iter.next().await.unwrap() {
        let prefix = &kv.key[..kv.key.len() - keys::POSITION_LEN];
        for s in crate::lifecycle::JobState::ALL {
            let p = keys::index_prefix("t", &keys::Index::Status(s.wire() as u32));
            if prefix == p.as_slice() {
                statuses.push(s);
            }
        }
    }
    db.close().await.unwrap();
    assert_eq!(statuses, [crate::lifecycle::JobState::Pending]);
}

#[tokio::test]
async fn retention_deletes_on_time_a_bounded_number_per_step() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    for i in 0..300 {
        enqueue(&shard, job(&format!("j{i}"), "q")).await;
    }
    succeed_all(&shard, "q", 300).await;
    let j = get_job(&shard, "j0").await;
    assert_eq!(j.retained_until_ms, T0 + RETENTION_MS);
    h.clock.advance(RETENTION_MS - 1);
    assert_eq!(counts(&shard, "q").await["SUCCEEDED"], 300);
    h.clock.advance(1);
    // This step deleted a step's worth; the actor goes on at once with the rest.
    let left = counts(&shard, "q").await.get("SUCCEEDED").copied();
    assert_eq!(left, Some(300 - 256));
    while !counts(&shard, "q").await.is_empty() {
        tokio::task::yield_now().await;
    }
    let r = JobRef {
        tenant: "t".into(),
        id: "j299".into(),
    };
    assert_eq!(shard.get_job(r, false).await, Err(Error::JobNotFound));
    shard.close().await;
}

#[tokio::test]
async fn retention_timers_and_counts_come_back_after_a_restart() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    enqueue(&shard, job("a", "q")).await;
    let forever = wire::EnqueueRequest {
        retention_ms: -1,
        ..job("b", "q")
    };
    enqueue(&shard, forever).await;
    succeed_all(&shard, "q", 2).await;
    shard.close().await;
    h.clock.advance(RETENTION_MS);
    let shard = h.open().await.unwrap();
    assert_eq!(
        counts(&shard, "q").await,
        [("SUCCEEDED".to_string(), 1)].into_iter().collect(),
        "the due job is deleted by the first step after opening"
    );
    assert_eq!(get_job(&shard, "b").await.retained_until_ms, 0);
    shard.close().await;
}

fn job_ref(id: &str) -> JobRef {
    JobRef {
        tenant: "t".into(),
        id: id.into(),
    }
}

/// Every family a job writes into, but LIMIT (kept for the life of the store) and META.
const JOB_FAMILIES: [u8; 15] = [
    keys::JOB,
    keys::PAYLOAD,
    keys::ATTEMPT,
    keys::TASK,
    keys::LEASE,
    keys::SCHEDULED,
    keys::READY,
    keys::BY_STATUS,
    keys::BY_QUEUE,
    keys::BY_METADATA,
    keys::QUEUE_COUNTS,
    keys::RETENTION,
    keys::TENANT_COUNTS,
    keys::UNIQUE,
    keys::EXPIRY,
];

#[tokio::test]
async fn a_deleted_job_leaves_no_key_behind_and_gives_its_unique_key_back() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    let tagged = wire::EnqueueRequest {
        metadata: [("k".to_string(), "v".to_string())].into(),
        unique_key: "u".into(),
        expire_at_ms: T0 + 60_000,
        retry_policy: Some(wire::RetryPolicy {
            max_retries: 1,
            schedule_ms: vec![0],
            ..Default::default()
        }),
        ..job("a", "q")
    };
    enqueue(&shard, tagged).await;
    let first = lease(&shard, &["q"], 1).await.remove(0);
    report(&shard, &first.task_id, failure("boom"))
        .await
        .unwrap();
    succeed_all(&shard, "q", 1).await;
    shard.delete_job(job_ref("a")).await.unwrap();
    assert_eq!(counts(&shard, "q").await, Default::default());
    // The key is free: a new job takes it (and is not deduplicated against the deleted one).
    let again = wire::EnqueueRequest {
        unique_key: "u".into(),
        ..job("b", "q")
    };
    enqueue(&shard, again).await;
    succeed_all(&shard, "q", 1).await;
    shard.delete_job(job_ref("b")).await.unwrap();
    shard.close().await;
    let db = h.store().open().await.unwrap();
    for family in JOB_FAMILIES {
        let mut iter = db.scan(keys::family_range(family)).await.unwrap();
        let left = iter.next().await.unwrap().map(|kv| kv.key);
        assert_eq!(left, None, "family {family:#04x} keeps a key");
    }
    db.close().await.unwrap();
}

#[tokio::test]
async fn an_expired_job_is_indexed_and_counted_failed_and_can_be_restarted() {
    let h = Harness::new();
    let shard = h.open().await.unwrap();
    let expiring = wire::EnqueueRequest {
        expire_at_ms: T0 + 100,
        ..job("a", "paused")
    };
    let q = crate::shard::QueueRef {
        tenant: "t".into(),
        queue: "paused".into(),
    };
    let stats = shard.pause_queue(q.clone(), true).await.unwrap();
    assert_eq!(stats.counts.values().sum::<i64>(), 0);
    enqueue(&shard, expiring).await;
    h.clock.advance(101);
    let failed = [("FAILED".to_string(), 1)].into_iter().collect();
    assert_eq!(counts(&shard, "paused").await, failed);
    let listed = shard
        .list_jobs(
            validate::list_jobs(wire::ListJobsRequest {
                tenant: "t".into(),
                statuses: vec![wire::JobStatus::Failed as i32],
                ..Default::default()
            })
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(listed.jobs.len(), 1);
    assert_eq!(
        listed.jobs[0].last_failure.as_ref().unwrap().code,
        "expired"
    );
    // Ended by expiry, its retention runs from the expiry like any other end.
    let expired_at = T0 + 101;
    assert_eq!(
        get_job(&shard, "a").await.retained_until_ms,
        expired_at + RETENTION_MS
    );
    // Restarted, it is PENDING in its paused queue (and not expired again), its deletion off.
    let restarted = shard.restart_job(job_ref("a")).await.unwrap();
    assert_eq!(restarted.status, wire::JobStatus::Pending as i32);
    assert_eq!(restarted.retained_until_ms, 0);
    h.clock.advance(1_000);
    let stats = shard.pause_queue(q, false).await.unwrap();
    assert_eq!(stats.counts["PENDING"], 1);
    assert!(!stats.paused);
    assert_eq!(lease(&shard, &["paused"], 1).await.len(), 1);
    shard.close().await;
}
