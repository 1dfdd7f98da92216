//! The wire's reply messages to typed Python values (python/silo/types.py), built on the thread
//! that holds the GIL: the event loop's, when the completion queue settles a call, or the
//! caller's for `silo._native.decode_reply`.

use std::collections::BTreeMap;

use prost::Message;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple, PyType};
use pyo3::BoundObject;

use crate::error::Error;
use crate::proto::{admin, wire};
use crate::rpc::Rpc;

use super::super::errors::to_py;
use super::interned;

/// The classes of `silo.types` the replies are made of, looked up once.
pub(super) struct Types {
    enqueued: Py<PyType>,
    enqueue_result: Py<PyType>,
    task: Py<PyType>,
    heartbeat_result: Py<PyType>,
    report_result: Py<PyType>,
    job: Py<PyType>,
    attempt: Py<PyType>,
    retry_policy: Py<PyType>,
    concurrency_limit: Py<PyType>,
    rate_limit: Py<PyType>,
    task_failure: Py<PyType>,
    job_page: Py<PyType>,
    queue_stats: Py<PyType>,
    bulk_result: Py<PyType>,
    new_job: Py<PyType>,
    schedule: Py<PyType>,
    schedule_page: Py<PyType>,
    node: Py<PyType>,
    cluster: Py<PyType>,
    /// The members of each enum, by wire number.
    job_status: Vec<Py<PyAny>>,
    attempt_status: Vec<Py<PyAny>>,
    overlap: Vec<Py<PyAny>>,
    catch_up: Vec<Py<PyAny>>,
}

static TYPES: PyOnceLock<Types> = PyOnceLock::new();

pub(super) fn types(py: Python<'_>) -> PyResult<&Types> {
    TYPES.get_or_try_init(py, || {
        let module = py.import("silo.types")?;
        let class = |name: &str| -> PyResult<Py<PyType>> {
            Ok(module.getattr(name)?.cast_into::<PyType>()?.unbind())
        };
        let members = |name: &str| -> PyResult<Vec<Py<PyAny>>> {
            let enum_class = module.getattr(name)?;
            let mut out = Vec::new();
            for member in enum_class.try_iter()? {
                out.push(member?.unbind());
            }
            Ok(out)
        };
        Ok(Types {
            enqueued: class("Enqueued")?,
            enqueue_result: class("EnqueueResult")?,
            task: class("Task")?,
            heartbeat_result: class("HeartbeatResult")?,
            report_result: class("ReportResult")?,
            job: class("Job")?,
            attempt: class("Attempt")?,
            retry_policy: class("RetryPolicy")?,
            concurrency_limit: class("ConcurrencyLimit")?,
            rate_limit: class("RateLimit")?,
            task_failure: class("TaskFailure")?,
            job_page: class("JobPage")?,
            queue_stats: class("QueueStats")?,
            bulk_result: class("BulkResult")?,
            new_job: class("NewJob")?,
            schedule: class("Schedule")?,
            schedule_page: class("SchedulePage")?,
            node: class("Node")?,
            cluster: class("Cluster")?,
            job_status: members("JobStatus")?,
            attempt_status: members("AttemptStatus")?,
            overlap: members("Overlap")?,
            catch_up: members("CatchUp")?,
        })
    })
}

/// The fields of one value, given in the order its class declares them, then made into an
/// instance of its class.
///
/// Every field is given (tests/test_conversions.py checks each type), so the instance is made
/// without running the dataclass's `__init__`: a new object of the class with each slot set by
/// `object.__setattr__`, which is what the `__init__` of a frozen dataclass does itself, minus
/// a Python frame and a keyword dict per value (a leased Task cost about 4 µs that way).
struct Kw<'py> {
    py: Python<'py>,
    fields: Vec<(&'static str, Bound<'py, PyAny>)>,
}

impl<'py> Kw<'py> {
    fn new(py: Python<'py>) -> Self {
        Kw {
            py,
            fields: Vec::with_capacity(32),
        }
    }

    fn set(mut self, name: &'static str, value: impl IntoPyObject<'py>) -> PyResult<Self> {
        let value = value.into_pyobject(self.py).map_err(Into::into)?;
        self.fields.push((name, value.into_any().into_bound()));
        Ok(self)
    }

    fn build(self, class: &Py<PyType>) -> PyResult<Bound<'py, PyAny>> {
        let py = self.py;
        let class = class.bind(py);
        // SAFETY: `class` is a live type object (a dataclass of silo.types); PyType_GenericNew
        // only allocates an instance of it (no __init__), returning a new reference or NULL
        // with an exception set, which `from_owned_ptr_or_err` turns into a PyErr.
        let object = unsafe {
            let raw = pyo3::ffi::PyType_GenericNew(
                class.as_type_ptr(),
                PyTuple::empty(py).as_ptr(),
                std::ptr::null_mut(),
            );
            Bound::from_owned_ptr_or_err(py, raw)?
        };
        for (name, value) in self.fields {
            let name = interned(py, name);
            // SAFETY: all three pointers are live objects borrowed for the call;
            // PyObject_GenericSetAttr sets the slot named `name` (the base object's
            // __setattr__, bypassing the frozen dataclass's) and returns -1 with an exception
            // set on failure.
            let status = unsafe {
                pyo3::ffi::PyObject_GenericSetAttr(object.as_ptr(), name.as_ptr(), value.as_ptr())
            };
            if status != 0 {
                return Err(PyErr::fetch(py));
            }
        }
        Ok(object)
    }
}

fn bytes<'py>(py: Python<'py>, b: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, b)
}

fn str_map<'py>(py: Python<'py>, m: &BTreeMap<String, String>) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (k, v) in m {
        dict.set_item(k, v)?;
    }
    Ok(dict)
}

/// The enum member of a wire number; the number itself for one this build does not know.
fn member<'py>(py: Python<'py>, members: &[Py<PyAny>], n: i32) -> Bound<'py, PyAny> {
    usize::try_from(n)
        .ok()
        .and_then(|i| members.get(i))
        .map(|m| m.bind(py).clone())
        .unwrap_or_else(|| n.into_pyobject(py).expect("int").into_any())
}

fn tuple<'py, T>(
    py: Python<'py>,
    items: &[T],
    mut each: impl FnMut(&T) -> PyResult<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let values = items.iter().map(&mut each).collect::<PyResult<Vec<_>>>()?;
    PyTuple::new(py, values)
}

fn list<'py, T>(
    py: Python<'py>,
    items: &[T],
    each: impl FnMut(&T) -> PyResult<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let values = items.iter().map(each).collect::<PyResult<Vec<_>>>()?;
    Ok(PyList::new(py, values)?.into_any())
}

fn retry_policy<'py>(
    py: Python<'py>,
    t: &Types,
    r: &wire::RetryPolicy,
) -> PyResult<Bound<'py, PyAny>> {
    Kw::new(py)
        .set("max_retries", r.max_retries)?
        .set("schedule_ms", PyTuple::new(py, &r.schedule_ms)?)?
        .set("initial_backoff_ms", r.initial_backoff_ms)?
        .set("backoff_multiplier", r.backoff_multiplier)?
        .set("max_backoff_ms", r.max_backoff_ms)?
        .set("jitter", r.jitter)?
        .build(&t.retry_policy)
}

fn concurrency_limits<'py>(
    py: Python<'py>,
    t: &Types,
    limits: &[wire::ConcurrencyLimit],
) -> PyResult<Bound<'py, PyTuple>> {
    tuple(py, limits, |l| {
        t.concurrency_limit
            .bind(py)
            .call1((l.key.as_str(), l.max_concurrency))
    })
}

fn rate_limits<'py>(
    py: Python<'py>,
    t: &Types,
    limits: &[wire::RateLimit],
) -> PyResult<Bound<'py, PyTuple>> {
    tuple(py, limits, |l| {
        t.rate_limit
            .bind(py)
            .call1((l.key.as_str(), l.limit, l.period_ms))
    })
}

fn task_failure<'py>(
    py: Python<'py>,
    t: &Types,
    f: Option<&wire::TaskFailure>,
) -> PyResult<Bound<'py, PyAny>> {
    let Some(f) = f else {
        return Ok(py.None().into_bound(py));
    };
    Kw::new(py)
        .set("code", f.code.as_str())?
        .set("message", f.message.as_str())?
        .set("data", bytes(py, &f.data))?
        .set("non_retryable", f.non_retryable)?
        .build(&t.task_failure)
}

fn optional<'py, T>(
    py: Python<'py>,
    value: Option<&T>,
    make: impl FnOnce(&T) -> PyResult<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    match value {
        Some(v) => make(v),
        None => Ok(py.None().into_bound(py)),
    }
}

pub(super) fn task<'py>(
    py: Python<'py>,
    t: &Types,
    task: &wire::Task,
) -> PyResult<Bound<'py, PyAny>> {
    Kw::new(py)
        .set("task_id", task.task_id.as_str())?
        .set("job_id", task.job_id.as_str())?
        .set("tenant", task.tenant.as_str())?
        .set("queue", task.queue.as_str())?
        .set("priority", task.priority)?
        .set("payload", bytes(py, &task.payload))?
        .set("metadata", str_map(py, &task.metadata)?)?
        .set("attempt", task.attempt)?
        .set("heartbeat_interval_ms", task.heartbeat_interval_ms)?
        .set("lease_expires_at_ms", task.lease_expires_at_ms)?
        .set("heartbeat_cursor", bytes(py, &task.heartbeat_cursor))?
        .set("is_last_attempt", task.is_last_attempt)?
        .build(&t.task)
}

pub(super) fn enqueue_result<'py>(
    py: Python<'py>,
    t: &Types,
    e: &wire::EnqueueResult,
) -> PyResult<Bound<'py, PyAny>> {
    Kw::new(py)
        .set("id", e.id.as_str())?
        .set("code", e.code)?
        .set("message", e.message.as_str())?
        .set("deduplicated", e.deduplicated)?
        .build(&t.enqueue_result)
}

/// A WorkerSession's answer as the client takes it (python/silo/streams.py): a pushed task as
/// its `silo.Task`, an outcome's answer as its `silo.ReportResult`, a heartbeat's as the tuple
/// `(code, message, cancelled, lease_expires_at_ms)`.
pub(super) fn server_message<'py>(
    py: Python<'py>,
    t: &Types,
    m: &wire::ServerMessage,
) -> PyResult<Bound<'py, PyAny>> {
    use wire::server_message::Kind;
    match &m.kind {
        Some(Kind::Task(task_)) => task(py, t, task_),
        Some(Kind::Outcome(o)) => Kw::new(py)
            .set("code", o.code)?
            .set("message", o.message.as_str())?
            .build(&t.report_result),
        Some(Kind::Heartbeat(h)) => Ok((
            h.code,
            h.message.as_str(),
            h.cancelled,
            h.lease_expires_at_ms,
        )
            .into_pyobject(py)?
            .into_any()),
        None => Err(to_py(
            py,
            Error::Internal("a session message without a kind".into()),
        )),
    }
}

fn attempt<'py>(py: Python<'py>, t: &Types, a: &wire::Attempt) -> PyResult<Bound<'py, PyAny>> {
    Kw::new(py)
        .set("attempt", a.attempt)?
        .set("task_id", a.task_id.as_str())?
        .set("worker_id", a.worker_id.as_str())?
        .set("status", member(py, &t.attempt_status, a.status))?
        .set("started_at_ms", a.started_at_ms)?
        .set("finished_at_ms", a.finished_at_ms)?
        .set("result", bytes(py, &a.result))?
        .set("failure", task_failure(py, t, a.failure.as_ref())?)?
        .set("heartbeat_cursor", bytes(py, &a.heartbeat_cursor))?
        .build(&t.attempt)
}

fn job<'py>(py: Python<'py>, t: &Types, j: &wire::Job) -> PyResult<Bound<'py, PyAny>> {
    Kw::new(py)
        .set("id", j.id.as_str())?
        .set("tenant", j.tenant.as_str())?
        .set("queue", j.queue.as_str())?
        .set("priority", j.priority)?
        .set("status", member(py, &t.job_status, j.status))?
        .set("payload", bytes(py, &j.payload))?
        .set("metadata", str_map(py, &j.metadata)?)?
        .set(
            "retry_policy",
            optional(py, j.retry_policy.as_ref(), |r| retry_policy(py, t, r))?,
        )?
        .set(
            "concurrency_limits",
            concurrency_limits(py, t, &j.concurrency_limits)?,
        )?
        .set("rate_limits", rate_limits(py, t, &j.rate_limits)?)?
        .set("created_at_ms", j.created_at_ms)?
        .set("start_at_ms", j.start_at_ms)?
        .set("updated_at_ms", j.updated_at_ms)?
        .set("next_attempt_at_ms", j.next_attempt_at_ms)?
        .set("attempt_count", j.attempt_count)?
        .set("result", bytes(py, &j.result))?
        .set(
            "last_failure",
            task_failure(py, t, j.last_failure.as_ref())?,
        )?
        .set("attempts", tuple(py, &j.attempts, |a| attempt(py, t, a))?)?
        .set("waiting_on_keys", PyTuple::new(py, &j.waiting_on_keys)?)?
        .set("waiting_on_rate_limit", j.waiting_on_rate_limit.as_str())?
        .set("unique_key", j.unique_key.as_str())?
        .set("unique_for_ms", j.unique_for_ms)?
        .set("retention_ms", j.retention_ms)?
        .set("lease_ms", j.lease_ms)?
        .set("expire_at_ms", j.expire_at_ms)?
        .set("retained_until_ms", j.retained_until_ms)?
        .build(&t.job)
}

fn new_job<'py>(
    py: Python<'py>,
    t: &Types,
    r: &wire::EnqueueRequest,
) -> PyResult<Bound<'py, PyAny>> {
    Kw::new(py)
        .set("id", r.id.as_str())?
        .set("tenant", r.tenant.as_str())?
        .set("queue", r.queue.as_str())?
        .set("priority", r.priority)?
        .set("start_at_ms", r.start_at_ms)?
        .set(
            "retry_policy",
            optional(py, r.retry_policy.as_ref(), |p| retry_policy(py, t, p))?,
        )?
        .set(
            "concurrency_limits",
            concurrency_limits(py, t, &r.concurrency_limits)?,
        )?
        .set("payload", bytes(py, &r.payload))?
        .set("metadata", str_map(py, &r.metadata)?)?
        .set("rate_limits", rate_limits(py, t, &r.rate_limits)?)?
        .set("unique_key", r.unique_key.as_str())?
        .set("unique_for_ms", r.unique_for_ms)?
        .set("retention_ms", r.retention_ms)?
        .set("lease_ms", r.lease_ms)?
        .set("expire_at_ms", r.expire_at_ms)?
        .build(&t.new_job)
}

fn schedule<'py>(py: Python<'py>, t: &Types, s: &wire::Schedule) -> PyResult<Bound<'py, PyAny>> {
    let template = s.job.clone().unwrap_or_default();
    Kw::new(py)
        .set("name", s.name.as_str())?
        .set("job", new_job(py, t, &template)?)?
        .set("tenant", s.tenant.as_str())?
        .set("cron", s.cron.as_str())?
        .set("interval_ms", s.interval_ms)?
        .set("timezone", s.timezone.as_str())?
        .set("paused", s.paused)?
        .set("overlap", member(py, &t.overlap, s.overlap))?
        .set("catch_up", member(py, &t.catch_up, s.catch_up))?
        .set("next_run_at_ms", s.next_run_at_ms)?
        .set("last_job_id", s.last_job_id.as_str())?
        .build(&t.schedule)
}

fn queue_stats<'py>(
    py: Python<'py>,
    t: &Types,
    q: &wire::QueueStats,
) -> PyResult<Bound<'py, PyAny>> {
    let counts = PyDict::new(py);
    for (k, v) in &q.counts {
        counts.set_item(k, v)?;
    }
    Kw::new(py)
        .set("name", q.name.as_str())?
        .set("counts", counts)?
        .set("paused", q.paused)?
        .build(&t.queue_stats)
}

pub(super) fn decode<M: Message + Default>(py: Python<'_>, data: &[u8]) -> PyResult<M> {
    M::decode(data).map_err(|e| {
        to_py(
            py,
            Error::Internal(format!("the reply does not decode: {e}")),
        )
    })
}

/// The typed value of `rpc`'s encoded reply (see python/silo/api.py for each method's return).
pub(crate) fn decode_reply<'py>(
    py: Python<'py>,
    rpc: Rpc,
    data: &[u8],
) -> PyResult<Bound<'py, PyAny>> {
    let t = types(py)?;
    let none = || Ok(py.None().into_bound(py));
    match rpc {
        Rpc::Enqueue => {
            let r: wire::EnqueueResponse = decode(py, data)?;
            t.enqueued.bind(py).call1((r.id, r.deduplicated))
        }
        Rpc::EnqueueBatch => {
            let r: wire::EnqueueBatchResponse = decode(py, data)?;
            list(py, &r.results, |e| enqueue_result(py, t, e))
        }
        Rpc::Cancel | Rpc::ReportTaskOutcome | Rpc::DeleteJob | Rpc::DeleteSchedule => none(),
        Rpc::LeaseTasks => {
            let r: wire::LeaseTasksResponse = decode(py, data)?;
            list(py, &r.tasks, |task_| task(py, t, task_))
        }
        Rpc::HeartbeatTask => {
            let r: wire::HeartbeatTaskResponse = decode(py, data)?;
            Kw::new(py)
                .set("cancelled", r.cancelled)
                .and_then(|k| k.set("lease_expires_at_ms", r.lease_expires_at_ms))
                .and_then(|k| k.build(&t.heartbeat_result))
        }
        Rpc::ReportTaskOutcomes => {
            let r: wire::ReportTaskOutcomesResponse = decode(py, data)?;
            list(py, &r.results, |e| {
                Kw::new(py)
                    .set("code", e.code)?
                    .set("message", e.message.as_str())?
                    .build(&t.report_result)
            })
        }
        Rpc::GetJob | Rpc::RestartJob | Rpc::ExpediteJob | Rpc::WaitJob => {
            let r: wire::Job = decode(py, data)?;
            job(py, t, &r)
        }
        Rpc::ListJobs => {
            let r: wire::ListJobsResponse = decode(py, data)?;
            tuple(py, &r.jobs, |j| job(py, t, j)).and_then(|jobs| {
                Kw::new(py)
                    .set("jobs", jobs)?
                    .set("next_page_token", r.next_page_token.as_str())?
                    .build(&t.job_page)
            })
        }
        Rpc::ListQueues => {
            let r: wire::ListQueuesResponse = decode(py, data)?;
            list(py, &r.queues, |q| queue_stats(py, t, q))
        }
        Rpc::CancelJobs | Rpc::RestartJobs | Rpc::DeleteJobs => {
            let r: wire::BulkJobsResponse = decode(py, data)?;
            Kw::new(py)
                .set("matched", r.matched)
                .and_then(|k| k.set("changed", r.changed))
                .and_then(|k| k.set("more", r.more))
                .and_then(|k| k.build(&t.bulk_result))
        }
        Rpc::PauseQueue | Rpc::ResumeQueue => {
            let r: wire::QueueStats = decode(py, data)?;
            queue_stats(py, t, &r)
        }
        Rpc::PutSchedule | Rpc::GetSchedule => {
            let r: wire::Schedule = decode(py, data)?;
            schedule(py, t, &r)
        }
        Rpc::ListSchedules => {
            let r: wire::ListSchedulesResponse = decode(py, data)?;
            tuple(py, &r.schedules, |s| schedule(py, t, s)).and_then(|schedules| {
                Kw::new(py)
                    .set("schedules", schedules)?
                    .set("next_page_token", r.next_page_token.as_str())?
                    .build(&t.schedule_page)
            })
        }
        Rpc::GetCluster => {
            let r: wire::Cluster = decode(py, data)?;
            tuple(py, &r.nodes, |n| {
                Kw::new(py)
                    .set("id", n.id.as_str())?
                    .set("address", n.address.as_str())?
                    .set("shards", PyTuple::new(py, &n.shards)?)?
                    .build(&t.node)
            })
            .and_then(|nodes| {
                Kw::new(py)
                    .set("nodes", nodes)?
                    .set("shard_count", r.shard_count)?
                    .set("hash", r.hash.as_str())?
                    .build(&t.cluster)
            })
        }
        Rpc::GetStats => {
            let r: admin::Stats = decode(py, data)?;
            stats(py, &r)
        }
        Rpc::SetFaults => none(),
        Rpc::GetConcurrencyKey => {
            let r: admin::ConcurrencyKeyState = decode(py, data)?;
            let d = PyDict::new(py);
            (|| {
                d.set_item("limit", r.limit)?;
                d.set_item("holders", PyTuple::new(py, &r.holders)?)?;
                d.set_item("reserved", r.reserved)?;
                d.set_item("waiters", PyTuple::new(py, &r.waiters)?)?;
                Ok(d.into_any())
            })()
        }
        Rpc::GetRateLimit => {
            let r: admin::RateLimitState = decode(py, data)?;
            let d = PyDict::new(py);
            (|| {
                d.set_item("limit", r.limit)?;
                d.set_item("period_ms", r.period_ms)?;
                d.set_item("tokens", r.tokens)?;
                d.set_item("reserved", r.reserved)?;
                d.set_item("waiters", PyTuple::new(py, &r.waiters)?)?;
                d.set_item("next_token_at_ms", r.next_token_at_ms)?;
                Ok(d.into_any())
            })()
        }
        Rpc::EnqueueStream | Rpc::WorkerSession => Err(to_py(
            py,
            Error::invalid(
                "rpc",
                format!("{} is a stream, not a unary call", rpc.name()),
            ),
        )),
    }
}

/// Admin/GetStats as a plain dict: `gauges`, `settings`, `object_store_requests`, `rss_bytes`,
/// `shards` (shard -> its gauges).
fn stats<'py>(py: Python<'py>, s: &admin::Stats) -> PyResult<Bound<'py, PyAny>> {
    let d = PyDict::new(py);
    let gauges = PyDict::new(py);
    for (k, v) in &s.gauges {
        gauges.set_item(k, v)?;
    }
    let requests = PyDict::new(py);
    for (k, v) in &s.object_store_requests {
        requests.set_item(k, v)?;
    }
    d.set_item("gauges", gauges)?;
    d.set_item("settings", str_map(py, &s.settings)?)?;
    d.set_item("object_store_requests", requests)?;
    d.set_item("rss_bytes", s.rss_bytes)?;
    // The gauges of each shard this process serves (docs/cluster.md#operating).
    let shards = PyDict::new(py);
    for shard in &s.shards {
        let g = PyDict::new(py);
        for (k, v) in &shard.gauges {
            g.set_item(k, v)?;
        }
        shards.set_item(shard.shard, g)?;
    }
    d.set_item("shards", shards)?;
    Ok(d.into_any())
}
