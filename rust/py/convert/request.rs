//! Typed Python arguments to the wire's request messages: the keyword arguments of a `silo.Api`
//! method (a dict) or a `silo.types` value (its attributes) become a prost message, read field
//! by field with no protobuf library on the Python side.
//!
//! A value of the wrong type or out of its wire range is `InvalidArgument` naming the field
//! (`jobs[3].priority: expected an int, got str`), like every other bad input
//! (docs/api.md#conventions); the core validates the message itself afterwards.

use std::collections::BTreeMap;

use bytes::Bytes;
use prost::Message;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyString};

use crate::error::Error;
use crate::proto::{admin, wire};
use crate::rpc::Rpc;

use super::{interned, invalid};

/// The fields of one message as Python holds them: the items of a dict (keyword arguments) or
/// the attributes of an object (a `silo.types` dataclass). A missing key or attribute, or a
/// `None`, reads as the field's default.
///
/// `at` says where the message sits in the arguments (`jobs[3].retry_policy.`), to prefix
/// field names in errors. It is a chain of borrows, turned into text only when an error is
/// raised: building the path of every job of a batch cost an allocation or two per job.
pub(super) struct Fields<'a, 'py> {
    source: Bound<'py, PyAny>,
    at: Option<(&'a Fields<'a, 'py>, Place)>,
}

/// Where a nested message sits in its parent: a field, or an element of a repeated field.
#[derive(Clone, Copy)]
enum Place {
    Field(&'static str),
    Item(&'static str, usize),
}

impl<'a, 'py> Fields<'a, 'py> {
    pub(super) fn top(source: Bound<'py, PyAny>) -> Self {
        Fields { source, at: None }
    }

    fn nested(&'a self, source: Bound<'py, PyAny>, place: Place) -> Self {
        Fields {
            source,
            at: Some((self, place)),
        }
    }

    /// The path of this message's fields: "" at the top, else e.g. `jobs[3].retry_policy.`.
    fn prefix(&self) -> String {
        match self.at {
            None => String::new(),
            Some((parent, Place::Field(field))) => format!("{}{field}.", parent.prefix()),
            Some((parent, Place::Item(field, i))) => format!("{}{field}[{i}].", parent.prefix()),
        }
    }

    fn name(&self, field: &str) -> String {
        format!("{}{field}", self.prefix())
    }

    fn bad(&self, field: &str, reason: impl std::fmt::Display) -> PyErr {
        invalid(self.source.py(), Error::invalid(self.name(field), reason))
    }

    /// The value of `field`, or None when absent or `None`.
    fn get(&self, field: &'static str) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = self.source.py();
        let key = interned(py, field);
        let value = match self.source.cast::<PyDict>() {
            Ok(dict) => dict.get_item(key)?,
            Err(_) => match self.source.getattr(key) {
                Ok(value) => Some(value),
                Err(e) if e.is_instance_of::<pyo3::exceptions::PyAttributeError>(py) => None,
                Err(e) => return Err(e),
            },
        };
        Ok(value.filter(|v| !v.is_none()))
    }

    fn expected(&self, field: &str, what: &str, value: &Bound<'py, PyAny>) -> PyErr {
        let type_name = value
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".into());
        self.bad(field, format!("expected {what}, got {type_name}"))
    }

    pub(super) fn string(&self, field: &'static str) -> PyResult<String> {
        match self.get(field)? {
            None => Ok(String::new()),
            Some(v) => match v.cast::<PyString>() {
                Ok(s) => Ok(s.to_str()?.to_owned()),
                Err(_) => Err(self.expected(field, "a str", &v)),
            },
        }
    }

    pub(super) fn int64(&self, field: &'static str) -> PyResult<i64> {
        match self.get(field)? {
            None => Ok(0),
            Some(v) => self.int_of(field, &v),
        }
    }

    fn int_of(&self, field: &str, v: &Bound<'py, PyAny>) -> PyResult<i64> {
        int_value(v).map_err(|e| match e {
            IntError::NotInt => self.expected(field, "an int", v),
            IntError::OutOfRange => self.bad(field, "out of range"),
        })
    }

    pub(super) fn uint32(&self, field: &'static str) -> PyResult<u32> {
        let n = self.int64(field)?;
        u32::try_from(n).map_err(|_| self.bad(field, format!("out of range (got {n})")))
    }

    pub(super) fn float(&self, field: &'static str) -> PyResult<f64> {
        match self.get(field)? {
            None => Ok(0.0),
            Some(v) if v.is_instance_of::<pyo3::types::PyBool>() => {
                Err(self.expected(field, "a number", &v))
            }
            Some(v) => v
                .extract::<f64>()
                .map_err(|_| self.expected(field, "a number", &v)),
        }
    }

    pub(super) fn boolean(&self, field: &'static str) -> PyResult<bool> {
        match self.get(field)? {
            None => Ok(false),
            Some(v) => v
                .extract::<bool>()
                .map_err(|_| self.expected(field, "a bool", &v)),
        }
    }

    /// `bytes` (or a bytearray); None when absent, so that an outcome can tell "no result"
    /// from an empty one.
    pub(super) fn opt_bytes(&self, field: &'static str) -> PyResult<Option<Bytes>> {
        let Some(v) = self.get(field)? else {
            return Ok(None);
        };
        if let Ok(b) = v.cast::<PyBytes>() {
            return Ok(Some(Bytes::copy_from_slice(b.as_bytes())));
        }
        if let Ok(b) = v.cast::<PyByteArray>() {
            return Ok(Some(Bytes::from(b.to_vec())));
        }
        Err(self.expected(field, "bytes", &v))
    }

    pub(super) fn bytes(&self, field: &'static str) -> PyResult<Bytes> {
        Ok(self.opt_bytes(field)?.unwrap_or_default())
    }

    /// A sequence (list, tuple, ...; not a str or bytes) of items, each read by `item` with its
    /// index (`item_name` names it in an error).
    pub(super) fn list<T>(
        &self,
        field: &'static str,
        mut item: impl FnMut(Bound<'py, PyAny>, usize) -> PyResult<T>,
    ) -> PyResult<Vec<T>> {
        let Some(v) = self.get(field)? else {
            return Ok(Vec::new());
        };
        if v.is_instance_of::<PyString>() || v.is_instance_of::<PyBytes>() {
            return Err(self.expected(field, "a sequence", &v));
        }
        let iter = v
            .try_iter()
            .map_err(|_| self.expected(field, "a sequence", &v))?;
        let mut out = Vec::with_capacity(v.len().unwrap_or(0));
        for (i, element) in iter.enumerate() {
            out.push(item(element?, i)?);
        }
        Ok(out)
    }

    /// The name of element `i` of the repeated field `field`, for an error.
    fn item_name(&self, field: &str, i: usize) -> String {
        format!("{}{field}[{i}]", self.prefix())
    }

    pub(super) fn strings(&self, field: &'static str) -> PyResult<Vec<String>> {
        self.list(field, |v, i| match v.cast::<PyString>() {
            Ok(s) => Ok(s.to_str()?.to_owned()),
            Err(_) => Err(invalid(
                v.py(),
                Error::invalid(self.item_name(field, i), "expected a str".to_string()),
            )),
        })
    }

    pub(super) fn int64s(&self, field: &'static str) -> PyResult<Vec<i64>> {
        self.list(field, |v, i| match int_value(&v) {
            Ok(n) => Ok(n),
            Err(_) => self.int_of(&format!("{field}[{i}]"), &v),
        })
    }

    /// A mapping of str to str (a dict, or anything with `items()`).
    pub(super) fn str_map(&self, field: &'static str) -> PyResult<BTreeMap<String, String>> {
        let Some(v) = self.get(field)? else {
            return Ok(BTreeMap::new());
        };
        let mut out = BTreeMap::new();
        let mut put = |key: Bound<'py, PyAny>, value: Bound<'py, PyAny>| -> PyResult<()> {
            let key = key
                .cast::<PyString>()
                .map_err(|_| self.bad(field, "keys must be str"))?
                .to_str()?
                .to_owned();
            let value = value
                .cast::<PyString>()
                .map_err(|_| self.bad(&format!("{field}[{key:?}]"), "expected a str"))?
                .to_str()?
                .to_owned();
            out.insert(key, value);
            Ok(())
        };
        if let Ok(dict) = v.cast::<PyDict>() {
            for (key, value) in dict.iter() {
                put(key, value)?;
            }
            return Ok(out);
        }
        let items = v
            .call_method0("items")
            .map_err(|_| self.expected(field, "a mapping", &v))?;
        for pair in items.try_iter()? {
            let (key, value): (Bound<'py, PyAny>, Bound<'py, PyAny>) = pair?.extract()?;
            put(key, value)?;
        }
        Ok(out)
    }

    /// A nested message, None when absent.
    pub(super) fn message<T>(
        &self,
        field: &'static str,
        read: impl FnOnce(&Fields<'_, 'py>) -> PyResult<T>,
    ) -> PyResult<Option<T>> {
        match self.get(field)? {
            None => Ok(None),
            Some(v) => read(&self.nested(v, Place::Field(field))).map(Some),
        }
    }

    /// Each element of the sequence `field` read as a message.
    pub(super) fn messages<T>(
        &self,
        field: &'static str,
        read: impl Fn(&Fields<'_, 'py>) -> PyResult<T>,
    ) -> PyResult<Vec<T>> {
        self.list(field, |v, i| read(&self.nested(v, Place::Item(field, i))))
    }
}

/// Why a value is not an int64.
enum IntError {
    NotInt,
    OutOfRange,
}

/// An int (not a bool) that fits in an i64.
fn int_value(v: &Bound<'_, PyAny>) -> Result<i64, IntError> {
    if v.is_instance_of::<pyo3::types::PyBool>() {
        return Err(IntError::NotInt);
    }
    match v.extract::<i64>() {
        Ok(n) => Ok(n),
        Err(_) if v.is_instance_of::<pyo3::types::PyInt>() => Err(IntError::OutOfRange),
        Err(_) => Err(IntError::NotInt),
    }
}

fn retry_policy(f: &Fields<'_, '_>) -> PyResult<wire::RetryPolicy> {
    Ok(wire::RetryPolicy {
        max_retries: f.uint32("max_retries")?,
        schedule_ms: f.int64s("schedule_ms")?,
        initial_backoff_ms: f.int64("initial_backoff_ms")?,
        backoff_multiplier: f.float("backoff_multiplier")?,
        max_backoff_ms: f.int64("max_backoff_ms")?,
        jitter: f.boolean("jitter")?,
    })
}

fn concurrency_limit(f: &Fields<'_, '_>) -> PyResult<wire::ConcurrencyLimit> {
    Ok(wire::ConcurrencyLimit {
        key: f.string("key")?,
        max_concurrency: f.uint32("max_concurrency")?,
    })
}

fn rate_limit(f: &Fields<'_, '_>) -> PyResult<wire::RateLimit> {
    Ok(wire::RateLimit {
        key: f.string("key")?,
        limit: f.uint32("limit")?,
        period_ms: f.int64("period_ms")?,
    })
}

/// A job to enqueue: `silo.types.NewJob` or the keyword arguments of `Api.enqueue`.
pub(super) fn new_job(f: &Fields<'_, '_>) -> PyResult<wire::EnqueueRequest> {
    Ok(wire::EnqueueRequest {
        id: f.string("id")?,
        tenant: f.string("tenant")?,
        queue: f.string("queue")?,
        priority: f.uint32("priority")?,
        start_at_ms: f.int64("start_at_ms")?,
        retry_policy: f.message("retry_policy", retry_policy)?,
        concurrency_limits: f.messages("concurrency_limits", concurrency_limit)?,
        payload: f.bytes("payload")?,
        metadata: f.str_map("metadata")?,
        rate_limits: f.messages("rate_limits", rate_limit)?,
        unique_key: f.string("unique_key")?,
        unique_for_ms: f.int64("unique_for_ms")?,
        retention_ms: f.int64("retention_ms")?,
        lease_ms: f.int64("lease_ms")?,
        expire_at_ms: f.int64("expire_at_ms")?,
    })
}

fn task_failure(f: &Fields<'_, '_>) -> PyResult<wire::TaskFailure> {
    Ok(wire::TaskFailure {
        code: f.string("code")?,
        message: f.string("message")?,
        data: f.bytes("data")?,
        non_retryable: f.boolean("non_retryable")?,
    })
}

/// One outcome: `silo.types.Report` or the keyword arguments of `Api.report_task_outcome`.
/// Exactly one of `result` (bytes; `b""` is a success), `failure`, `cancelled=True`.
pub(super) fn report(f: &Fields<'_, '_>) -> PyResult<wire::ReportTaskOutcomeRequest> {
    use wire::report_task_outcome_request::Outcome;
    let result = f.opt_bytes("result")?;
    let failure = f.message("failure", task_failure)?;
    let cancelled = f.boolean("cancelled")?;
    let given =
        usize::from(result.is_some()) + usize::from(failure.is_some()) + usize::from(cancelled);
    if given != 1 {
        return Err(f.bad("outcome", "give exactly one of result, failure, cancelled"));
    }
    let outcome = match (result, failure) {
        (Some(result), _) => Outcome::Result(result),
        (None, Some(failure)) => Outcome::Failure(failure),
        (None, None) => Outcome::Cancelled(wire::TaskCancelled {}),
    };
    Ok(wire::ReportTaskOutcomeRequest {
        task_id: f.string("task_id")?,
        worker_id: f.string("worker_id")?,
        outcome: Some(outcome),
    })
}

/// The filters of ListJobs (`silo.types.JobFilter` or keyword arguments), with its paging.
fn job_filter(f: &Fields<'_, '_>) -> PyResult<wire::ListJobsRequest> {
    Ok(wire::ListJobsRequest {
        tenant: f.string("tenant")?,
        queue: f.string("queue")?,
        statuses: f
            .int64s("statuses")?
            .into_iter()
            .map(|s| i32::try_from(s).unwrap_or(-1))
            .collect(),
        metadata: f.str_map("metadata")?,
        created_after_ms: f.int64("created_after_ms")?,
        created_before_ms: f.int64("created_before_ms")?,
        page_size: f.uint32("page_size")?,
        page_token: f.string("page_token")?,
    })
}

fn schedule(f: &Fields<'_, '_>) -> PyResult<wire::Schedule> {
    Ok(wire::Schedule {
        tenant: f.string("tenant")?,
        name: f.string("name")?,
        cron: f.string("cron")?,
        interval_ms: f.int64("interval_ms")?,
        timezone: f.string("timezone")?,
        job: f.message("job", new_job)?,
        paused: f.boolean("paused")?,
        overlap: i32::try_from(f.int64("overlap")?).unwrap_or(-1),
        catch_up: i32::try_from(f.int64("catch_up")?).unwrap_or(-1),
        next_run_at_ms: 0,
        last_job_id: String::new(),
    })
}

/// The encoded request of `rpc` from its typed arguments (see the module doc). A streaming
/// RPC has no unary request: InvalidArgument on `rpc`.
pub(crate) fn encode(rpc: Rpc, args: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let f = Fields::top(args.clone());
    let job_ref = |f: &Fields<'_, '_>| -> PyResult<(String, String)> {
        Ok((f.string("id")?, f.string("tenant")?))
    };
    let bytes = match rpc {
        Rpc::Enqueue => new_job(&f)?.encode_to_vec(),
        Rpc::EnqueueBatch => wire::EnqueueBatchRequest {
            jobs: f.messages("jobs", new_job)?,
        }
        .encode_to_vec(),
        Rpc::Cancel => {
            let (id, tenant) = job_ref(&f)?;
            wire::CancelRequest { id, tenant }.encode_to_vec()
        }
        Rpc::LeaseTasks => wire::LeaseTasksRequest {
            worker_id: f.string("worker_id")?,
            max_tasks: f.uint32("max_tasks")?,
            queues: f.strings("queues")?,
            wait_ms: f.int64("wait_ms")?,
        }
        .encode_to_vec(),
        Rpc::HeartbeatTask => wire::HeartbeatTaskRequest {
            task_id: f.string("task_id")?,
            worker_id: f.string("worker_id")?,
            cursor: f.bytes("cursor")?,
        }
        .encode_to_vec(),
        Rpc::ReportTaskOutcome => report(&f)?.encode_to_vec(),
        Rpc::ReportTaskOutcomes => wire::ReportTaskOutcomesRequest {
            reports: f.messages("reports", report)?,
        }
        .encode_to_vec(),
        Rpc::GetJob => wire::GetJobRequest {
            id: f.string("id")?,
            tenant: f.string("tenant")?,
            include_attempts: f.boolean("include_attempts")?,
        }
        .encode_to_vec(),
        Rpc::ListJobs => job_filter(&f)?.encode_to_vec(),
        Rpc::RestartJob => {
            let (id, tenant) = job_ref(&f)?;
            wire::RestartJobRequest { id, tenant }.encode_to_vec()
        }
        Rpc::ExpediteJob => {
            let (id, tenant) = job_ref(&f)?;
            wire::ExpediteJobRequest { id, tenant }.encode_to_vec()
        }
        Rpc::DeleteJob => {
            let (id, tenant) = job_ref(&f)?;
            wire::DeleteJobRequest { id, tenant }.encode_to_vec()
        }
        Rpc::WaitJob => wire::WaitJobRequest {
            id: f.string("id")?,
            tenant: f.string("tenant")?,
            timeout_ms: f.int64("timeout_ms")?,
        }
        .encode_to_vec(),
        Rpc::ListQueues => wire::ListQueuesRequest {
            tenant: f.string("tenant")?,
        }
        .encode_to_vec(),
        Rpc::CancelJobs | Rpc::RestartJobs | Rpc::DeleteJobs => wire::BulkJobsRequest {
            filter: Some(f.message("filter", job_filter)?.unwrap_or_default()),
            limit: f.uint32("limit")?,
        }
        .encode_to_vec(),
        Rpc::PauseQueue | Rpc::ResumeQueue => wire::QueueRef {
            tenant: f.string("tenant")?,
            queue: f.string("queue")?,
        }
        .encode_to_vec(),
        Rpc::PutSchedule => schedule(&f)?.encode_to_vec(),
        Rpc::DeleteSchedule | Rpc::GetSchedule => wire::ScheduleRef {
            tenant: f.string("tenant")?,
            name: f.string("name")?,
        }
        .encode_to_vec(),
        Rpc::ListSchedules => wire::ListSchedulesRequest {
            tenant: f.string("tenant")?,
            page_size: f.uint32("page_size")?,
            page_token: f.string("page_token")?,
        }
        .encode_to_vec(),
        Rpc::GetCluster => wire::GetClusterRequest {}.encode_to_vec(),
        Rpc::GetStats => admin::GetStatsRequest {}.encode_to_vec(),
        Rpc::SetFaults => admin::SetFaultsRequest {
            error_rate: f.float("error_rate")?,
            added_latency_ms: f.int64("added_latency_ms")?,
            stall: f.boolean("stall")?,
        }
        .encode_to_vec(),
        Rpc::GetConcurrencyKey => admin::GetConcurrencyKeyRequest {
            tenant: f.string("tenant")?,
            key: f.string("key")?,
        }
        .encode_to_vec(),
        Rpc::GetRateLimit => admin::GetRateLimitRequest {
            tenant: f.string("tenant")?,
            key: f.string("key")?,
        }
        .encode_to_vec(),
        Rpc::EnqueueStream | Rpc::WorkerSession => {
            return Err(invalid(
                args.py(),
                Error::invalid(
                    "rpc",
                    format!("{} is a stream, not a unary call", rpc.name()),
                ),
            ))
        }
    };
    Ok(bytes)
}
