//! Unit tests of request validation: every bound, without a server (the Python suite checks
//! one case per bound end to end).

use super::*;

const LIMITS: Limits = Limits {
    max_payload_bytes: 16,
};

fn field_of(e: Error) -> String {
    match e {
        Error::InvalidArgument { field, .. } => field,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[test]
fn names_are_counted_in_characters() {
    let ok = "é".repeat(127);
    assert!(name("id", &ok, true).is_ok());
    assert_eq!(
        field_of(name("id", &"é".repeat(128), true).unwrap_err()),
        "id"
    );
    assert_eq!(field_of(name("id", "a\nb", true).unwrap_err()), "id");
}

#[test]
fn enqueue_defaults_and_bounds() {
    let job = enqueue(wire::EnqueueRequest::default(), &LIMITS).unwrap();
    assert_eq!(job.priority, DEFAULT_PRIORITY);
    assert_eq!(job.queue, DEFAULT_QUEUE);
    assert_eq!(job.id.len(), 36);
    let over = wire::EnqueueRequest {
        priority: 101,
        ..Default::default()
    };
    assert_eq!(field_of(enqueue(over, &LIMITS).unwrap_err()), "priority");
    let big = wire::EnqueueRequest {
        payload: Bytes::from(vec![0u8; 17]),
        ..Default::default()
    };
    assert_eq!(field_of(enqueue(big, &LIMITS).unwrap_err()), "payload");
}

/// Characters every name field refuses (C0, DEL and C1 controls).
const CONTROL_CHARS: [char; 6] = ['\0', '\t', '\n', '\x1b', '\x7f', '\u{85}'];

fn with_field(field: &str, value: &str) -> wire::EnqueueRequest {
    let mut req = wire::EnqueueRequest::default();
    match field {
        "id" => req.id = value.into(),
        "tenant" => req.tenant = value.into(),
        "queue" => req.queue = value.into(),
        other => panic!("no name field {other}"),
    }
    req
}

#[test]
fn name_fields_accept_1_to_127_characters() {
    for field in ["id", "tenant", "queue"] {
        for value in [
            "x".repeat(127),
            "é".repeat(127),
            "日".repeat(127),
            "a".into(),
            "a b-c.d/e:f".into(),
        ] {
            let job = enqueue(with_field(field, &value), &LIMITS)
                .unwrap_or_else(|e| panic!("{field}={value:?}: {e}"));
            let kept = match field {
                "id" => job.id,
                "tenant" => job.tenant,
                _ => job.queue,
            };
            assert_eq!(kept, value);
        }
    }
}

#[test]
fn name_fields_refuse_long_names_and_control_characters() {
    for field in ["id", "tenant", "queue"] {
        let mut bad = vec!["x".repeat(128), "é".repeat(128), "x".repeat(1000)];
        bad.extend(CONTROL_CHARS.iter().map(|c| format!("a{c}b")));
        for value in bad {
            let e = enqueue(with_field(field, &value), &LIMITS).unwrap_err();
            assert_eq!(field_of(e), field, "{value:?}");
        }
    }
}

#[test]
fn priority_is_1_to_100_and_0_means_default() {
    for p in [1, 50, 100] {
        let req = wire::EnqueueRequest {
            priority: p,
            ..Default::default()
        };
        assert_eq!(enqueue(req, &LIMITS).unwrap().priority, p);
    }
    for p in [101, 1000, u32::MAX] {
        let req = wire::EnqueueRequest {
            priority: p,
            ..Default::default()
        };
        assert_eq!(field_of(enqueue(req, &LIMITS).unwrap_err()), "priority");
    }
    let negative = wire::EnqueueRequest {
        start_at_ms: -1,
        ..Default::default()
    };
    assert_eq!(
        field_of(enqueue(negative, &LIMITS).unwrap_err()),
        "start_at_ms"
    );
}

fn with_metadata(entries: &[(String, String)]) -> wire::EnqueueRequest {
    wire::EnqueueRequest {
        metadata: entries.iter().cloned().collect(),
        ..Default::default()
    }
}

#[test]
fn metadata_bounds() {
    let entry = |k: String, v: String| vec![(k, v)];
    let good = [
        (0..32).map(|i| (format!("k{i}"), i.to_string())).collect(),
        entry("k".repeat(127), "v".into()),
        entry("é".repeat(127), "v".into()),
        entry("k".into(), "v".repeat(1024)),
        entry("k".into(), "é".repeat(1024)),
    ];
    for m in good {
        assert!(enqueue(with_metadata(&m), &LIMITS).is_ok(), "{m:?}");
    }
    let bad: [Vec<(String, String)>; 8] = [
        (0..33).map(|i| (format!("k{i}"), "v".into())).collect(),
        entry("k".repeat(128), "v".into()),
        entry("é".repeat(128), "v".into()),
        entry(String::new(), "v".into()),
        entry("a\nb".into(), "v".into()),
        entry("a\0b".into(), "v".into()),
        entry("k".into(), "v".repeat(1025)),
        entry("k".into(), "é".repeat(1025)),
    ];
    for m in bad {
        let field = field_of(enqueue(with_metadata(&m), &LIMITS).unwrap_err());
        assert!(field.starts_with("metadata"), "{m:?} named {field}");
    }
}

fn limit(key: &str, max: u32) -> wire::ConcurrencyLimit {
    wire::ConcurrencyLimit {
        key: key.into(),
        max_concurrency: max,
    }
}

#[test]
fn concurrency_limit_bounds() {
    let ok = wire::EnqueueRequest {
        concurrency_limits: (0..8).map(|i| limit(&format!("k{i}"), i + 1)).collect(),
        ..Default::default()
    };
    assert_eq!(enqueue(ok, &LIMITS).unwrap().concurrency_limits.len(), 8);
    let bad = [
        (0..9).map(|i| limit(&format!("k{i}"), 1)).collect(),
        vec![limit("k", 0)],
        vec![limit("", 1)],
        vec![limit(&"k".repeat(128), 1)],
        vec![limit("k\n", 1)],
    ];
    for limits in bad {
        let req = wire::EnqueueRequest {
            concurrency_limits: limits.clone(),
            ..Default::default()
        };
        let field = field_of(enqueue(req, &LIMITS).unwrap_err());
        assert!(
            field.starts_with("concurrency_limits"),
            "{limits:?} named {field}"
        );
    }
}

#[test]
fn retry_policy_bounds() {
    let policy = |p: wire::RetryPolicy| wire::EnqueueRequest {
        retry_policy: Some(p),
        ..Default::default()
    };
    let cases = [
        (
            wire::RetryPolicy {
                schedule_ms: vec![0; MAX_SCHEDULE_ENTRIES + 1],
                ..Default::default()
            },
            "retry_policy.schedule_ms",
        ),
        (
            wire::RetryPolicy {
                schedule_ms: vec![10, -1],
                ..Default::default()
            },
            "retry_policy.schedule_ms",
        ),
        (
            wire::RetryPolicy {
                initial_backoff_ms: -1,
                ..Default::default()
            },
            "retry_policy.initial_backoff_ms",
        ),
        (
            wire::RetryPolicy {
                max_backoff_ms: -1,
                ..Default::default()
            },
            "retry_policy.max_backoff_ms",
        ),
        (
            wire::RetryPolicy {
                backoff_multiplier: 0.5,
                ..Default::default()
            },
            "retry_policy.backoff_multiplier",
        ),
        (
            wire::RetryPolicy {
                backoff_multiplier: f64::NAN,
                ..Default::default()
            },
            "retry_policy.backoff_multiplier",
        ),
    ];
    for (p, field) in cases {
        assert_eq!(field_of(enqueue(policy(p), &LIMITS).unwrap_err()), field);
    }
    let ok = wire::RetryPolicy {
        schedule_ms: vec![0; MAX_SCHEDULE_ENTRIES],
        backoff_multiplier: 1.0,
        ..Default::default()
    };
    assert!(enqueue(policy(ok), &LIMITS).is_ok());
}

#[test]
fn batch_entries_name_their_index() {
    let req = wire::EnqueueBatchRequest {
        jobs: vec![
            wire::EnqueueRequest::default(),
            wire::EnqueueRequest {
                priority: 500,
                ..Default::default()
            },
        ],
    };
    let out = enqueue_batch(req, &LIMITS).unwrap();
    assert!(out[0].is_ok());
    assert_eq!(field_of(out[1].clone().unwrap_err()), "jobs[1].priority");
}

#[test]
fn a_worker_may_not_report_the_lease_expired_code() {
    let failing = |code: &str| wire::ReportTaskOutcomeRequest {
        task_id: "t".into(),
        worker_id: "w".into(),
        outcome: Some(wire::report_task_outcome_request::Outcome::Failure(
            wire::TaskFailure {
                code: code.into(),
                ..Default::default()
            },
        )),
    };
    assert_eq!(
        field_of(report(failing("lease_expired"), &LIMITS).unwrap_err()),
        "failure.code"
    );
    assert!(report(failing("timeout"), &LIMITS).is_ok());
}

#[test]
fn wait_job_timeout_bounds() {
    let req = |id: &str, timeout_ms: i64| wire::WaitJobRequest {
        id: id.into(),
        tenant: String::new(),
        timeout_ms,
    };
    assert_eq!(wait_job(req("j", 0)).unwrap().timeout_ms, 0);
    assert_eq!(
        wait_job(req("j", MAX_WAIT_JOB_MS)).unwrap().timeout_ms,
        MAX_WAIT_JOB_MS
    );
    for bad in [-1, MAX_WAIT_JOB_MS + 1, i64::MIN, i64::MAX] {
        assert_eq!(field_of(wait_job(req("j", bad)).unwrap_err()), "timeout_ms");
    }
    assert_eq!(field_of(wait_job(req("", 10)).unwrap_err()), "id");
}

fn rate_limit(key: &str, limit: u32, period_ms: i64) -> wire::RateLimit {
    wire::RateLimit {
        key: key.into(),
        limit,
        period_ms,
    }
}

#[test]
fn flow_control_fields_of_an_enqueue() {
    let field = |req: wire::EnqueueRequest| field_of(enqueue(req, &LIMITS).unwrap_err());
    let ok = |req: wire::EnqueueRequest| enqueue(req, &LIMITS).unwrap();
    let with_limits = |limits: Vec<wire::RateLimit>| wire::EnqueueRequest {
        rate_limits: limits,
        ..Default::default()
    };
    assert_eq!(
        ok(with_limits(vec![rate_limit("k", 1, 1)]))
            .rate_limits
            .len(),
        1
    );
    ok(with_limits(vec![rate_limit(
        "k",
        u32::MAX,
        MAX_RATE_PERIOD_MS,
    )]));
    let nine = (0..9)
        .map(|i| rate_limit(&format!("k{i}"), 1, 1000))
        .collect();
    assert_eq!(field(with_limits(nine)), "rate_limits");
    assert_eq!(
        field(with_limits(vec![rate_limit("", 1, 1)])),
        "rate_limits[0].key"
    );
    let long = "k".repeat(128);
    assert_eq!(
        field(with_limits(vec![rate_limit(&long, 1, 1)])),
        "rate_limits[0].key"
    );
    let twice = vec![rate_limit("k", 1, 1), rate_limit("k", 2, 2)];
    assert_eq!(field(with_limits(twice)), "rate_limits[1].key");
    assert_eq!(
        field(with_limits(vec![rate_limit("k", 0, 1)])),
        "rate_limits[0].limit"
    );
    for bad in [0, -1, MAX_RATE_PERIOD_MS + 1] {
        let req = with_limits(vec![rate_limit("k", 1, bad)]);
        assert_eq!(field(req), "rate_limits[0].period_ms");
    }
    let unique = |key: &str, window: i64| wire::EnqueueRequest {
        unique_key: key.into(),
        unique_for_ms: window,
        ..Default::default()
    };
    assert_eq!(ok(unique("u", 0)).unique_key, "u");
    assert_eq!(field(unique(&long, 0)), "unique_key");
    assert_eq!(field(unique("a\nb", 0)), "unique_key");
    assert_eq!(field(unique("u", -1)), "unique_for_ms");
    assert_eq!(field(unique("", 5)), "unique_for_ms");
    let lease = |ms: i64| wire::EnqueueRequest {
        lease_ms: ms,
        ..Default::default()
    };
    for good in [0, MIN_JOB_LEASE_MS, MAX_JOB_LEASE_MS] {
        assert_eq!(ok(lease(good)).lease_ms, good);
    }
    for bad in [-1, 1, MIN_JOB_LEASE_MS - 1, MAX_JOB_LEASE_MS + 1] {
        assert_eq!(field(lease(bad)), "lease_ms");
    }
    let expiry = |start: i64, expire: i64| wire::EnqueueRequest {
        start_at_ms: start,
        expire_at_ms: expire,
        ..Default::default()
    };
    assert_eq!(ok(expiry(10, 10)).expire_at_ms, 10);
    assert_eq!(
        ok(expiry(0, 5)).expire_at_ms,
        5,
        "a past expiry expires at once"
    );
    assert_eq!(field(expiry(0, -1)), "expire_at_ms");
    assert_eq!(field(expiry(11, 10)), "expire_at_ms");
}

#[test]
fn a_worker_may_not_report_the_expired_code() {
    let req = wire::ReportTaskOutcomeRequest {
        task_id: "t".into(),
        worker_id: "w".into(),
        outcome: Some(wire::report_task_outcome_request::Outcome::Failure(
            wire::TaskFailure {
                code: "expired".into(),
                ..Default::default()
            },
        )),
    };
    assert_eq!(field_of(report(req, &LIMITS).unwrap_err()), "failure.code");
}

fn a_schedule() -> wire::Schedule {
    wire::Schedule {
        name: "s".into(),
        interval_ms: 1000,
        ..Default::default()
    }
}

#[test]
fn put_schedule_bounds() {
    let field = |s: wire::Schedule| field_of(put_schedule(s, &LIMITS).unwrap_err());
    let rec = put_schedule(a_schedule(), &LIMITS).unwrap();
    assert_eq!((rec.interval_ms, rec.job.is_some()), (1000, true));
    let cron = |c: &str| wire::Schedule {
        cron: c.into(),
        interval_ms: 0,
        ..a_schedule()
    };
    for good in ["* * * * *", "0 */5 * * * *", "@daily", "@hourly"] {
        assert!(put_schedule(cron(good), &LIMITS).is_ok(), "{good}");
    }
    for bad in ["* * * *", "99 * * * *", "@sometimes", "x"] {
        assert_eq!(field(cron(bad)), "cron", "{bad}");
    }
    let both = wire::Schedule {
        cron: "@daily".into(),
        ..a_schedule()
    };
    assert_eq!(field(both), "cron");
    assert_eq!(field(cron("")), "cron", "neither");
    for bad in [999, -1000] {
        let s = wire::Schedule {
            interval_ms: bad,
            ..a_schedule()
        };
        assert_eq!(field(s), "interval_ms");
    }
    let zone = |z: &str| wire::Schedule {
        timezone: z.into(),
        ..a_schedule()
    };
    assert!(put_schedule(zone("America/New_York"), &LIMITS).is_ok());
    assert_eq!(field(zone("Nowhere/City")), "timezone");
    let name = |n: &str| wire::Schedule {
        name: n.into(),
        ..a_schedule()
    };
    assert!(put_schedule(name(&"n".repeat(100)), &LIMITS).is_ok());
    assert_eq!(field(name(&"n".repeat(101))), "name");
    assert_eq!(field(name("")), "name");
    let enums = wire::Schedule {
        overlap: 7,
        ..a_schedule()
    };
    assert_eq!(field(enums), "overlap");
    let enums = wire::Schedule {
        catch_up: 7,
        ..a_schedule()
    };
    assert_eq!(field(enums), "catch_up");
}

#[test]
fn a_schedule_template_is_validated_like_an_enqueue() {
    let field = |job: wire::EnqueueRequest| {
        let s = wire::Schedule {
            tenant: "t".into(),
            job: Some(job),
            ..a_schedule()
        };
        field_of(put_schedule(s, &LIMITS).unwrap_err())
    };
    let job = |f: fn(&mut wire::EnqueueRequest)| {
        let mut r = wire::EnqueueRequest::default();
        f(&mut r);
        r
    };
    assert_eq!(field(job(|r| r.id = "x".into())), "job.id");
    assert_eq!(field(job(|r| r.tenant = "other".into())), "job.tenant");
    assert_eq!(field(job(|r| r.start_at_ms = 5)), "job.start_at_ms");
    assert_eq!(field(job(|r| r.expire_at_ms = 5)), "job.expire_at_ms");
    assert_eq!(field(job(|r| r.priority = 101)), "job.priority");
    assert_eq!(field(job(|r| r.lease_ms = 5)), "job.lease_ms");
    let same_tenant = wire::Schedule {
        tenant: "t".into(),
        job: Some(job(|r| r.tenant = "t".into())),
        ..a_schedule()
    };
    assert!(put_schedule(same_tenant, &LIMITS).is_ok());
}

#[test]
fn list_schedules_paging_and_tokens() {
    let list = |size: u32, token: &str| {
        list_schedules(wire::ListSchedulesRequest {
            tenant: String::new(),
            page_size: size,
            page_token: token.into(),
        })
    };
    assert_eq!(list(0, "").unwrap().page_size, 100);
    assert_eq!(list(1000, "").unwrap().page_size, 1000);
    assert_eq!(field_of(list(1001, "").unwrap_err()), "page_size");
    let token = page_token("nämé:1");
    assert_eq!(list(5, &token).unwrap().after.as_deref(), Some("nämé:1"));
    for bad in ["x", "s1.z", "s1.abc", "s1.ff"] {
        assert_eq!(field_of(list(5, bad).unwrap_err()), "page_token", "{bad}");
    }
}

#[test]
fn queue_and_schedule_refs() {
    let q = queue_ref(wire::QueueRef::default()).unwrap();
    assert_eq!(q.queue, DEFAULT_QUEUE);
    let bad = wire::QueueRef {
        queue: "a\tb".into(),
        ..Default::default()
    };
    assert_eq!(field_of(queue_ref(bad).unwrap_err()), "queue");
    assert_eq!(
        field_of(schedule_ref(wire::ScheduleRef::default()).unwrap_err()),
        "name"
    );
}

#[test]
fn retention_is_minus_one_zero_or_positive() {
    let with = |retention_ms: i64| wire::EnqueueRequest {
        retention_ms,
        ..Default::default()
    };
    for ok in [-1, 0, 1, i64::MAX] {
        assert_eq!(enqueue(with(ok), &LIMITS).unwrap().retention_ms, ok);
    }
    for bad in [-2, i64::MIN] {
        assert_eq!(
            field_of(enqueue(with(bad), &LIMITS).unwrap_err()),
            "retention_ms"
        );
    }
}

#[test]
fn list_jobs_page_size_token_and_filter_bounds() {
    let list = |f: fn(&mut wire::ListJobsRequest)| {
        let mut req = wire::ListJobsRequest::default();
        f(&mut req);
        list_jobs(req)
    };
    let defaults = list(|_| {}).unwrap();
    assert_eq!(
        (defaults.page_size, defaults.after),
        (DEFAULT_PAGE_SIZE, None)
    );
    assert_eq!(defaults.filter.queue, None, "an empty queue is every queue");
    assert_eq!(
        list(|r| r.page_size = MAX_PAGE_SIZE).unwrap().page_size,
        1000
    );
    assert_eq!(
        field_of(list(|r| r.page_size = MAX_PAGE_SIZE + 1).unwrap_err()),
        "page_size"
    );
    assert_eq!(
        field_of(list(|r| r.page_token = "garbage".into()).unwrap_err()),
        "page_token"
    );
    let token = search::encode_token((5, 6));
    let mut req = wire::ListJobsRequest {
        page_token: token,
        ..Default::default()
    };
    assert_eq!(list_jobs(req.clone()).unwrap().after, Some((5, 6)));
    req.statuses = vec![5, 1, 5];
    let states = list_jobs(req).unwrap().filter.statuses;
    assert_eq!(
        states,
        [JobState::Scheduled, JobState::Failed],
        "sorted, once each"
    );
    assert_eq!(
        field_of(list(|r| r.statuses = vec![1, 0]).unwrap_err()),
        "statuses[1]"
    );
    assert_eq!(
        field_of(list(|r| r.created_before_ms = -1).unwrap_err()),
        "created_before_ms"
    );
    let many: BTreeMap<String, String> = (0..=MAX_METADATA_ENTRIES)
        .map(|i| (format!("k{i}"), "v".into()))
        .collect();
    let mut req = wire::ListJobsRequest {
        metadata: many,
        ..Default::default()
    };
    assert_eq!(field_of(list_jobs(req.clone()).unwrap_err()), "metadata");
    req.metadata = BTreeMap::from([("k".into(), "v".repeat(1025))]);
    assert_eq!(field_of(list_jobs(req).unwrap_err()), "metadata[k]");
}

#[test]
fn bulk_limit_defaults_to_the_maximum_and_filter_fields_are_named() {
    let bulk = |limit: u32, filter: Option<wire::ListJobsRequest>| {
        bulk_jobs(wire::BulkJobsRequest { filter, limit }, BulkAction::Cancel)
    };
    assert_eq!(bulk(0, None).unwrap().limit, MAX_BULK_LIMIT);
    assert_eq!(bulk(MAX_BULK_LIMIT, None).unwrap().limit, MAX_BULK_LIMIT);
    assert_eq!(
        field_of(bulk(MAX_BULK_LIMIT + 1, None).unwrap_err()),
        "limit"
    );
    let bad = wire::ListJobsRequest {
        statuses: vec![9],
        page_size: 5000, // page fields are ignored
        page_token: "x".into(),
        ..Default::default()
    };
    assert_eq!(
        field_of(bulk(1, Some(bad)).unwrap_err()),
        "filter.statuses[0]"
    );
}

#[test]
fn tick_ids_are_reserved_for_schedules() {
    let req = |id: &str| wire::EnqueueRequest {
        id: id.into(),
        ..Default::default()
    };
    let err = enqueue(req(&tick_job_id("nightly", 1_000)), &LIMITS).unwrap_err();
    assert_eq!(field_of(err), "id");
    let client = enqueue(req("schedule-1"), &LIMITS).unwrap();
    assert!(
        !client.id_generated,
        "a client's id is checked for existence"
    );
    let tick = tick_job(req(&tick_job_id("nightly", 1_000)), &LIMITS).unwrap();
    assert!(tick.id_generated, "a tick's id skips the existence read");
    assert_eq!(tick.id, "sched:nightly:1000");
}
