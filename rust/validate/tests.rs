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
