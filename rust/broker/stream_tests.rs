//! The stream pumps (enqueue_stream.rs, worker_session.rs) over a real broker on `memory://`,
//! driven through their `StreamIo` as the gRPC server drives them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prost::Message;

use crate::error::Error;
use crate::proto::wire;
use crate::proto::wire::server_message::Kind as Out;
use crate::proto::wire::worker_message::Kind as In;
use crate::rpc::Rpc;
use crate::stream_io::{Next, StreamIo};
use crate::{Broker, BrokerConfig};

async fn broker() -> Arc<Broker> {
    broker_of(None).await
}

/// A broker on `memory://` with `shards` shards (None: one).
async fn broker_of(shards: Option<u32>) -> Arc<Broker> {
    let config = BrokerConfig {
        store: "memory://".into(),
        lease_ms: 30_000,
        flush_interval_ms: None,
        max_payload_bytes: 1 << 20,
        store_max_retries: 0,
        cache_bytes: 1 << 20,
        gc_interval_ms: 3_600_000,
        gc_min_age_ms: 3_600_000,
        fault_injection: false,
        metrics: true,
        retention: 0,
        shards,
        node_id: None,
        advertise: None,
        cluster: None,
        node_ttl: 5000,
        tls_cert: None,
        tls_key: None,
        tls_client_ca: None,
        tls_peer_ca: None,
    };
    Arc::new(Broker::open(config).await.unwrap())
}

/// A stream being served, as the transport sees it.
struct Served {
    io: Arc<StreamIo>,
    answers: Vec<Vec<u8>>,
}

impl Served {
    fn start(broker: &Arc<Broker>, rpc: Rpc) -> Served {
        let io = Arc::new(broker.stream_io());
        let (b, pump) = (broker.clone(), io.clone());
        tokio::spawn(async move {
            let end = b
                .serve_stream(
                    &crate::auth::Caller::Trusted,
                    rpc,
                    &pump,
                    &crate::broker::CallContext::default(),
                )
                .await;
            pump.finish(end);
        });
        Served {
            io,
            answers: Vec::new(),
        }
    }

    fn send(&self, message: &impl Message) {
        self.push(Bytes::from(message.encode_to_vec()));
    }

    fn push(&self, bytes: Bytes) {
        self.io.push(bytes);
        self.io.wake();
    }

    /// At least `n` answers in all (fails after 10 s of real time: a hang).
    async fn answers(&mut self, n: usize) -> &[Vec<u8>] {
        while self.answers.len() < n {
            match tokio::time::timeout(Duration::from_secs(10), self.io.next()).await {
                Ok(Next::Answers(more)) => self.answers.extend(more),
                other => panic!("expected answers, got {other:?}"),
            }
        }
        &self.answers
    }

    async fn end(&mut self) -> crate::Result<()> {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.io.next()).await {
                Ok(Next::Answers(more)) => self.answers.extend(more),
                Ok(Next::End(end)) => return end,
                Err(_) => panic!("the stream did not end"),
            }
        }
    }
}

fn results(answers: &[Vec<u8>]) -> Vec<wire::EnqueueResult> {
    answers
        .iter()
        .map(|a| wire::EnqueueResult::decode(&a[..]).unwrap())
        .collect()
}

fn server_messages(answers: &[Vec<u8>]) -> Vec<Out> {
    answers
        .iter()
        .map(|a| wire::ServerMessage::decode(&a[..]).unwrap().kind.unwrap())
        .collect()
}

fn worker(kind: In) -> wire::WorkerMessage {
    wire::WorkerMessage { kind: Some(kind) }
}

fn open(credits: u32) -> wire::WorkerMessage {
    worker(In::Open(wire::SessionOpen {
        worker_id: "w".into(),
        queues: vec!["q".into()],
        credits,
    }))
}

#[tokio::test]
async fn an_enqueue_stream_answers_every_request_in_order_and_a_bad_one_alone() {
    let broker = broker().await;
    let mut s = Served::start(&broker, Rpc::EnqueueStream);
    for i in 0..300 {
        s.send(&wire::EnqueueRequest {
            id: format!("j{i}"),
            queue: "q".into(),
            priority: if i == 7 { 101 } else { 0 },
            ..Default::default()
        });
    }
    s.push(Bytes::from_static(b"\xff\xff not protobuf"));
    s.send(&wire::EnqueueRequest {
        id: "j0".into(),
        ..Default::default()
    });
    s.io.close_input();
    assert_eq!(s.end().await, Ok(()));
    let r = results(&s.answers);
    assert_eq!(r.len(), 302);
    for (i, r) in r[..300].iter().enumerate() {
        if i == 7 {
            assert_eq!(r.code, 3);
            assert!(r.message.starts_with("priority"), "{}", r.message);
        } else {
            assert_eq!((r.code, r.id.as_str()), (0, format!("j{i}").as_str()));
        }
    }
    assert_eq!(r[300].code, 3);
    assert!(r[300].message.starts_with("request"), "{}", r[300].message);
    assert_eq!(r[301].code, 6, "the repeated id exists");
    // Every request is done: the window is empty.
    assert!(s.io.has_room());
}

#[tokio::test]
async fn a_session_must_open_first() {
    let broker = broker().await;
    let mut s = Served::start(&broker, Rpc::WorkerSession);
    s.send(&worker(In::Credits(3)));
    assert!(matches!(s.end().await, Err(Error::InvalidArgument { field, .. }) if field == "open"));

    let mut s = Served::start(&broker, Rpc::WorkerSession);
    s.send(&worker(In::Open(wire::SessionOpen::default())));
    assert!(matches!(
        s.end().await,
        Err(Error::InvalidArgument { field, .. }) if field == "open.worker_id"
    ));

    let mut s = Served::start(&broker, Rpc::WorkerSession);
    s.io.close_input();
    assert!(matches!(s.end().await, Err(Error::InvalidArgument { field, .. }) if field == "open"));
}

#[tokio::test]
async fn a_session_answers_in_order_and_ends_on_a_message_it_cannot_answer() {
    let broker = broker().await;
    broker
        .enqueue(wire::EnqueueRequest {
            id: "a".into(),
            queue: "q".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut s = Served::start(&broker, Rpc::WorkerSession);
    s.send(&open(1));
    let task = match &server_messages(s.answers(1).await)[0] {
        Out::Task(t) => t.clone(),
        other => panic!("expected a task, got {other:?}"),
    };
    let outcome = |worker_id: &str, outcome| {
        worker(In::Outcome(wire::ReportTaskOutcomeRequest {
            task_id: task.task_id.clone(),
            worker_id: worker_id.into(),
            outcome,
        }))
    };
    s.send(&worker(In::Heartbeat(wire::HeartbeatTaskRequest {
        task_id: task.task_id.clone(),
        ..Default::default()
    })));
    s.send(&outcome("", None));
    s.send(&outcome("someone-else", Some(ok())));
    s.send(&outcome("w", Some(ok())));
    s.send(&outcome("", Some(ok())));
    s.send(&worker(
        In::Heartbeat(wire::HeartbeatTaskRequest::default()),
    ));
    let got = server_messages(s.answers(7).await);
    let codes: Vec<(i32, String)> = got[1..]
        .iter()
        .map(|m| match m {
            Out::Heartbeat(h) => (h.code, h.message.clone()),
            Out::Outcome(o) => (o.code, o.message.clone()),
            Out::Task(t) => panic!("unexpected task {t:?}"),
        })
        .collect();
    assert_eq!(codes[0], (0, String::new()), "heartbeat");
    assert_eq!(codes[1].0, 3, "no outcome");
    assert!(codes[1].1.starts_with("outcome.outcome"), "{}", codes[1].1);
    assert_eq!(codes[2].0, 3, "another worker");
    assert!(
        codes[2].1.starts_with("outcome.worker_id"),
        "{}",
        codes[2].1
    );
    assert_eq!(codes[3], (0, String::new()), "the outcome");
    assert_eq!(codes[4].0, 6, "a second outcome");
    assert_eq!(codes[5].0, 3, "a heartbeat without a task id");
    assert!(
        codes[5].1.starts_with("heartbeat.task_id"),
        "{}",
        codes[5].1
    );
    // Credit over the bound ends the session, naming the field.
    s.send(&worker(In::Credits(1_000_000)));
    assert!(
        matches!(s.end().await, Err(Error::InvalidArgument { field, .. }) if field == "credits")
    );
}

fn ok() -> wire::report_task_outcome_request::Outcome {
    wire::report_task_outcome_request::Outcome::Result(Bytes::new())
}

#[tokio::test]
async fn a_session_whose_input_ends_delivers_what_it_took_and_ends_ok() {
    let broker = broker().await;
    let mut s = Served::start(&broker, Rpc::WorkerSession);
    s.send(&open(0));
    s.send(&worker(In::Credits(2)));
    s.io.close_input();
    assert_eq!(s.end().await, Ok(()));
    let stats = broker
        .get_stats(crate::proto::admin::GetStatsRequest {})
        .await
        .unwrap();
    assert_eq!(stats.gauges["worker_sessions"], 0);
}

/// Tenants spread over every shard of a 4-shard broker (two per shard).
fn tenants_on_every_shard(count: u32) -> Vec<String> {
    let mut per_shard = vec![0; count as usize];
    let mut tenants = Vec::new();
    for i in 0.. {
        let t = format!("t{i}");
        let shard = crate::routing::shard_of_tenant(&t, count) as usize;
        if per_shard[shard] < 2 {
            per_shard[shard] += 1;
            tenants.push(t);
        }
        if per_shard.iter().all(|&n| n == 2) {
            return tenants;
        }
    }
    unreachable!()
}

#[tokio::test]
async fn an_enqueue_stream_over_several_shards_answers_in_order() {
    let broker = broker_of(Some(4)).await;
    let tenants = tenants_on_every_shard(4);
    let mut s = Served::start(&broker, Rpc::EnqueueStream);
    for i in 0..200 {
        s.send(&wire::EnqueueRequest {
            id: format!("j{i}"),
            tenant: tenants[i % tenants.len()].clone(),
            queue: "q".into(),
            priority: if i == 5 { 101 } else { 0 },
            ..Default::default()
        });
    }
    s.io.close_input();
    assert_eq!(s.end().await, Ok(()));
    let r = results(&s.answers);
    assert_eq!(r.len(), 200);
    for (i, r) in r.iter().enumerate() {
        if i == 5 {
            assert_eq!(r.code, 3, "{}", r.message);
        } else {
            assert_eq!((r.code, r.id.as_str()), (0, format!("j{i}").as_str()));
            let job = broker
                .get_job(wire::GetJobRequest {
                    id: r.id.clone(),
                    tenant: tenants[i % tenants.len()].clone(),
                    include_attempts: false,
                })
                .await;
            assert!(job.is_ok(), "job {i} is on its tenant's shard");
        }
    }
}

#[tokio::test]
async fn a_session_over_several_shards_takes_from_every_shard_within_its_credit() {
    let broker = broker_of(Some(4)).await;
    let tenants = tenants_on_every_shard(4);
    for (i, t) in tenants.iter().enumerate() {
        broker
            .enqueue(wire::EnqueueRequest {
                id: format!("j{i}"),
                tenant: t.clone(),
                queue: "q".into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let mut s = Served::start(&broker, Rpc::WorkerSession);
    s.send(&open(3));
    let first = server_messages(s.answers(3).await);
    assert_eq!(first.len(), 3);
    // No more than the credit: three jobs are leased, the rest wait for more credit.
    let mut running = 0;
    for (i, t) in tenants.iter().enumerate() {
        let job = broker
            .get_job(wire::GetJobRequest {
                id: format!("j{i}"),
                tenant: t.clone(),
                include_attempts: false,
            })
            .await
            .unwrap();
        running += usize::from(job.status == wire::JobStatus::Running as i32);
    }
    assert_eq!(running, 3);
    s.send(&worker(In::Credits(100)));
    let all = server_messages(s.answers(tenants.len()).await);
    let mut shards: Vec<u32> = all
        .iter()
        .map(|m| match m {
            Out::Task(t) => crate::routing::shard_of_task(&t.task_id, 4).unwrap(),
            other => panic!("expected a task, got {other:?}"),
        })
        .collect();
    shards.sort();
    shards.dedup();
    assert_eq!(shards, vec![0, 1, 2, 3]);
    // A job enqueued later on any shard wakes the session.
    broker
        .enqueue(wire::EnqueueRequest {
            id: "late".into(),
            tenant: tenants[3].clone(),
            queue: "q".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let late = server_messages(s.answers(tenants.len() + 1).await);
    let Out::Task(t) = &late[tenants.len()] else {
        panic!("expected a task")
    };
    assert_eq!(t.job_id, "late");
    // Outcomes go to each task's shard.
    for m in &late {
        let Out::Task(t) = m else { unreachable!() };
        s.send(&worker(In::Outcome(wire::ReportTaskOutcomeRequest {
            task_id: t.task_id.clone(),
            worker_id: String::new(),
            outcome: Some(ok()),
        })));
    }
    s.io.close_input();
    assert_eq!(s.end().await, Ok(()));
    let outcomes = server_messages(&s.answers[tenants.len() + 1..]);
    assert_eq!(outcomes.len(), tenants.len() + 1);
    for o in outcomes {
        let Out::Outcome(o) = o else {
            panic!("expected an outcome, got {o:?}")
        };
        assert_eq!(o.code, 0, "{}", o.message);
    }
}
