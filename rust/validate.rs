//! Request validation: turns wire requests into the core's parameter structs, or an
//! `InvalidArgument` naming the field. Runs in the caller's task, before the shard actor.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::auth::TenantScope;
use crate::error::{Error, Result};
use crate::lifecycle::JobState;
use crate::proto::{records, wire};
use crate::search::{self, Filter, Position};

mod flow;
pub use flow::{
    list_schedules, page_token, put_schedule, queue_ref, schedule_ref, tick_job_id,
    MAX_SCHEDULE_NAME_CHARS, TICK_ID_PREFIX,
};

pub const MAX_NAME_CHARS: usize = 127;
pub const MAX_BATCH: usize = 1000;
pub const MAX_TASKS: u32 = 1000;
/// The most credit a WorkerSession may hold at once (granted and not yet used by a task): the
/// bound of one LeaseTasks call.
pub const MAX_SESSION_CREDIT: u32 = MAX_TASKS;
pub const MAX_WAIT_MS: i64 = 60_000;
/// Longest WaitJob wait (`timeout_ms`).
pub const MAX_WAIT_JOB_MS: i64 = 300_000;
pub const MAX_METADATA_ENTRIES: usize = 32;
pub const MAX_METADATA_VALUE_CHARS: usize = 1024;
pub const MAX_CONCURRENCY_LIMITS: usize = 8;
pub const MAX_SCHEDULE_ENTRIES: usize = 1000;
pub const MAX_FAILURE_MESSAGE_CHARS: usize = 65_536;
pub const MAX_RATE_LIMITS: usize = 8;
pub const MAX_RATE_PERIOD_MS: i64 = 86_400_000;
pub const MIN_JOB_LEASE_MS: i64 = 1_000;
pub const MAX_JOB_LEASE_MS: i64 = 3_600_000;
pub const DEFAULT_PRIORITY: u32 = 50;
pub const DEFAULT_QUEUE: &str = "default";
pub const DEFAULT_PAGE_SIZE: u32 = 100;
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Jobs a bulk call changes at most (and by default).
pub const MAX_BULK_LIMIT: u32 = 10_000;

/// Limits that come from the server's settings.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_payload_bytes: usize,
}

/// A validated job to enqueue. `id` is filled in when the request left it empty.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: String,
    /// The server made the id (a UUIDv7, or a schedule tick's id under the reserved `sched:`
    /// prefix, which only moves forward): it cannot collide, so no existence check is needed.
    pub id_generated: bool,
    pub tenant: String,
    pub queue: String,
    pub priority: u32,
    /// As given; the actor turns 0 or a past time into "now".
    pub start_at_ms: i64,
    pub retry_policy: Option<records::RetryPolicyRecord>,
    pub concurrency_limits: Vec<records::ConcurrencyLimitRecord>,
    pub payload: Bytes,
    pub metadata: BTreeMap<String, String>,
    /// Flow control (docs/api.md#flow-control): rate-limit keys (distinct), the unique key
    /// ("" = none) and its window, the job's lease (0 = the server's) and its first-attempt
    /// deadline (0 = none).
    pub rate_limits: Vec<records::RateLimitRecord>,
    pub unique_key: String,
    pub unique_for_ms: i64,
    pub lease_ms: i64,
    pub expire_at_ms: i64,
    /// 0: the server's retention; -1: forever; else ms once terminal.
    pub retention_ms: i64,
}

/// A validated LeaseTasks call.
#[derive(Debug, Clone)]
pub struct LeaseParams {
    pub worker_id: String,
    pub max_tasks: u32,
    /// Distinct queue names, "" already replaced by "default".
    pub queues: Vec<String>,
    pub wait_ms: i64,
    /// The tenants whose jobs the caller may lease (docs/security.md); every tenant unless the
    /// broker narrows it to the caller's.
    pub tenants: TenantScope,
}

/// A validated SessionOpen, the first message of a WorkerSession: the session's worker and
/// queues (`lease.max_tasks` and `lease.wait_ms` are 0: a session leases up to its credit and
/// never stops waiting) and its first credit.
#[derive(Debug, Clone)]
pub struct SessionParams {
    pub lease: LeaseParams,
    pub credit: u32,
}

/// A validated HeartbeatTask call.
#[derive(Debug, Clone)]
pub struct HeartbeatParams {
    pub task_id: String,
    pub worker_id: String,
    pub cursor: Bytes,
    /// The tenants whose tasks the caller may touch: another tenant's task is NOT_FOUND.
    pub tenants: TenantScope,
}

/// What a worker reports.
#[derive(Debug, Clone)]
pub enum Outcome {
    Success(Bytes),
    Failure(records::FailureRecord),
    Cancelled,
}

/// A validated report of one task's outcome.
#[derive(Debug, Clone)]
pub struct ReportParams {
    pub task_id: String,
    pub worker_id: String,
    pub outcome: Outcome,
    /// The tenants whose tasks the caller may touch: another tenant's task is NOT_FOUND.
    pub tenants: TenantScope,
}

/// Checks a name: 1..=127 Unicode characters, none of them a control character.
fn name(field: &str, value: &str, required: bool) -> Result<()> {
    if value.is_empty() {
        return if required {
            Err(Error::invalid(field, "is required"))
        } else {
            Ok(())
        };
    }
    check_chars(field, value, MAX_NAME_CHARS)
}

fn check_chars(field: &str, value: &str, max: usize) -> Result<()> {
    let mut n = 0;
    for c in value.chars() {
        n += 1;
        if c.is_control() {
            return Err(Error::invalid(field, "must not contain control characters"));
        }
    }
    if n > max {
        return Err(Error::invalid(
            field,
            format!("must be at most {max} characters (got {n})"),
        ));
    }
    Ok(())
}

fn bytes_limit(field: &str, value: &[u8], limits: &Limits) -> Result<()> {
    if value.len() > limits.max_payload_bytes {
        return Err(Error::invalid(
            field,
            format!(
                "must be at most {} bytes (got {})",
                limits.max_payload_bytes,
                value.len()
            ),
        ));
    }
    Ok(())
}

/// A new random, time-sortable job id (UUIDv7).
pub fn new_job_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Validates one EnqueueRequest of a client (field names relative to the request). Ids under
/// `sched:` are reserved for schedule ticks (docs/api.md#schedules).
pub fn enqueue(req: wire::EnqueueRequest, limits: &Limits) -> Result<NewJob> {
    if req.id.starts_with(TICK_ID_PREFIX) {
        return Err(Error::invalid(
            "id",
            format!("ids starting with {TICK_ID_PREFIX:?} are reserved for schedule ticks"),
        ));
    }
    job(req, limits)
}

/// Validates the job a schedule's tick enqueues from its template: its id is the tick's, which
/// no client can take and no later tick repeats, so the actor skips the existence read.
pub fn tick_job(req: wire::EnqueueRequest, limits: &Limits) -> Result<NewJob> {
    let mut job = job(req, limits)?;
    job.id_generated = true;
    Ok(job)
}

/// The checks every job passes, whoever enqueues it.
fn job(req: wire::EnqueueRequest, limits: &Limits) -> Result<NewJob> {
    name("id", &req.id, false)?;
    name("tenant", &req.tenant, false)?;
    name("queue", &req.queue, false)?;
    let priority = match req.priority {
        0 => DEFAULT_PRIORITY,
        p @ 1..=100 => p,
        p => {
            return Err(Error::invalid(
                "priority",
                format!("must be 1..100 (got {p})"),
            ))
        }
    };
    if req.start_at_ms < 0 {
        return Err(Error::invalid("start_at_ms", "must not be negative"));
    }
    if let Some(p) = &req.retry_policy {
        retry_policy(p)?;
    }
    if req.concurrency_limits.len() > MAX_CONCURRENCY_LIMITS {
        return Err(Error::invalid(
            "concurrency_limits",
            format!("at most {MAX_CONCURRENCY_LIMITS} limits"),
        ));
    }
    for (i, l) in req.concurrency_limits.iter().enumerate() {
        name(&format!("concurrency_limits[{i}].key"), &l.key, true)?;
        if l.max_concurrency == 0 {
            return Err(Error::invalid(
                format!("concurrency_limits[{i}].max_concurrency"),
                "must be at least 1",
            ));
        }
    }
    bytes_limit("payload", &req.payload, limits)?;
    flow_control(&req)?;
    metadata_map(&req.metadata)?;
    if req.retention_ms < -1 {
        return Err(Error::invalid(
            "retention_ms",
            "must be -1 (keep forever), 0 (the server's --retention) or a number of ms",
        ));
    }
    Ok(NewJob {
        id_generated: req.id.is_empty(),
        id: if req.id.is_empty() {
            new_job_id()
        } else {
            req.id
        },
        tenant: req.tenant,
        queue: queue_name(req.queue),
        priority,
        start_at_ms: req.start_at_ms,
        retry_policy: req.retry_policy.map(Into::into),
        concurrency_limits: req.concurrency_limits.into_iter().map(Into::into).collect(),
        payload: req.payload,
        metadata: req.metadata,
        rate_limits: req.rate_limits.into_iter().map(Into::into).collect(),
        unique_key: req.unique_key,
        unique_for_ms: req.unique_for_ms,
        lease_ms: req.lease_ms,
        expire_at_ms: req.expire_at_ms,
        retention_ms: req.retention_ms,
    })
}

/// The flow-control fields of an EnqueueRequest (docs/api.md#flow-control).
fn flow_control(req: &wire::EnqueueRequest) -> Result<()> {
    if req.rate_limits.len() > MAX_RATE_LIMITS {
        return Err(Error::invalid(
            "rate_limits",
            format!("at most {MAX_RATE_LIMITS} limits"),
        ));
    }
    for (i, l) in req.rate_limits.iter().enumerate() {
        name(&format!("rate_limits[{i}].key"), &l.key, true)?;
        if let Some(j) = req.rate_limits[..i].iter().position(|o| o.key == l.key) {
            return Err(Error::invalid(
                format!("rate_limits[{i}].key"),
                format!("repeats rate_limits[{j}].key"),
            ));
        }
        if l.limit == 0 {
            return Err(Error::invalid(
                format!("rate_limits[{i}].limit"),
                "must be at least 1",
            ));
        }
        if !(1..=MAX_RATE_PERIOD_MS).contains(&l.period_ms) {
            return Err(Error::invalid(
                format!("rate_limits[{i}].period_ms"),
                format!("must be 1..{MAX_RATE_PERIOD_MS} (got {})", l.period_ms),
            ));
        }
    }
    name("unique_key", &req.unique_key, false)?;
    if req.unique_for_ms < 0 {
        return Err(Error::invalid("unique_for_ms", "must not be negative"));
    }
    if req.unique_for_ms > 0 && req.unique_key.is_empty() {
        return Err(Error::invalid("unique_for_ms", "needs a unique_key"));
    }
    if req.lease_ms != 0 && !(MIN_JOB_LEASE_MS..=MAX_JOB_LEASE_MS).contains(&req.lease_ms) {
        return Err(Error::invalid(
            "lease_ms",
            format!(
                "must be 0 (the server's) or {MIN_JOB_LEASE_MS}..{MAX_JOB_LEASE_MS} (got {})",
                req.lease_ms
            ),
        ));
    }
    if req.expire_at_ms < 0 {
        return Err(Error::invalid("expire_at_ms", "must not be negative"));
    }
    if req.expire_at_ms > 0 && req.start_at_ms > req.expire_at_ms {
        return Err(Error::invalid(
            "expire_at_ms",
            format!(
                "is before start_at_ms ({} < {})",
                req.expire_at_ms, req.start_at_ms
            ),
        ));
    }
    Ok(())
}

/// Checks a metadata map (Enqueue, and the metadata filter of ListJobs).
fn metadata_map(metadata: &BTreeMap<String, String>) -> Result<()> {
    if metadata.len() > MAX_METADATA_ENTRIES {
        return Err(Error::invalid(
            "metadata",
            format!(
                "at most {MAX_METADATA_ENTRIES} entries (got {})",
                metadata.len()
            ),
        ));
    }
    for (k, v) in metadata {
        name("metadata key", k, true)?;
        check_chars(&format!("metadata[{k}]"), v, MAX_METADATA_VALUE_CHARS)?;
    }
    Ok(())
}

fn retry_policy(p: &wire::RetryPolicy) -> Result<()> {
    if p.schedule_ms.len() > MAX_SCHEDULE_ENTRIES {
        return Err(Error::invalid(
            "retry_policy.schedule_ms",
            format!("at most {MAX_SCHEDULE_ENTRIES} entries"),
        ));
    }
    if p.schedule_ms.iter().any(|&d| d < 0) {
        return Err(Error::invalid(
            "retry_policy.schedule_ms",
            "delays must not be negative",
        ));
    }
    if p.initial_backoff_ms < 0 {
        return Err(Error::invalid(
            "retry_policy.initial_backoff_ms",
            "must not be negative",
        ));
    }
    if p.max_backoff_ms < 0 {
        return Err(Error::invalid(
            "retry_policy.max_backoff_ms",
            "must not be negative",
        ));
    }
    let m = p.backoff_multiplier;
    if !m.is_finite() || (m != 0.0 && m < 1.0) {
        return Err(Error::invalid(
            "retry_policy.backoff_multiplier",
            "must be 0 (default 2.0) or a finite number >= 1",
        ));
    }
    Ok(())
}

fn queue_name(queue: String) -> String {
    if queue.is_empty() {
        DEFAULT_QUEUE.to_string()
    } else {
        queue
    }
}

/// Validates an EnqueueBatch: over 1000 entries fails the whole call; otherwise each entry
/// is validated alone (fields named `jobs[i].field`).
pub fn enqueue_batch(
    req: wire::EnqueueBatchRequest,
    limits: &Limits,
) -> Result<Vec<Result<NewJob>>> {
    if req.jobs.len() > MAX_BATCH {
        return Err(Error::invalid(
            "jobs",
            format!(
                "at most {MAX_BATCH} jobs per batch (got {})",
                req.jobs.len()
            ),
        ));
    }
    Ok(req
        .jobs
        .into_iter()
        .enumerate()
        .map(|(i, j)| enqueue(j, limits).map_err(|e| e.in_field(&format!("jobs[{i}]."))))
        .collect())
}

/// Validates a job reference (Cancel, GetJob).
pub fn job_ref(id: &str, tenant: &str) -> Result<()> {
    name("id", id, true)?;
    name("tenant", tenant, false)
}

/// A validated WaitJob call.
#[derive(Debug, Clone)]
pub struct WaitJobParams {
    pub tenant: String,
    pub id: String,
    /// 0..=MAX_WAIT_JOB_MS; 0 answers at once.
    pub timeout_ms: i64,
}

pub fn wait_job(req: wire::WaitJobRequest) -> Result<WaitJobParams> {
    job_ref(&req.id, &req.tenant)?;
    if req.timeout_ms < 0 {
        return Err(Error::invalid("timeout_ms", "must not be negative"));
    }
    if req.timeout_ms > MAX_WAIT_JOB_MS {
        return Err(Error::invalid(
            "timeout_ms",
            format!("must be at most {MAX_WAIT_JOB_MS} (got {})", req.timeout_ms),
        ));
    }
    Ok(WaitJobParams {
        tenant: req.tenant,
        id: req.id,
        timeout_ms: req.timeout_ms,
    })
}

/// A validated ListJobs call.
#[derive(Debug, Clone)]
pub struct ListJobsParams {
    pub filter: Filter,
    pub page_size: u32,
    /// Continue after this job (from `page_token`).
    pub after: Option<Position>,
}

/// What a bulk call does to each job its filter matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkAction {
    Cancel,
    Restart,
    Delete,
}

/// A validated CancelJobs, RestartJobs or DeleteJobs call.
#[derive(Debug, Clone)]
pub struct BulkParams {
    pub action: BulkAction,
    pub filter: Filter,
    /// 1..=MAX_BULK_LIMIT jobs changed at most.
    pub limit: u32,
}

/// The filter fields of a ListJobsRequest (page fields aside).
fn filter(req: wire::ListJobsRequest) -> Result<Filter> {
    name("tenant", &req.tenant, false)?;
    name("queue", &req.queue, false)?;
    let mut statuses = Vec::with_capacity(req.statuses.len());
    for (i, s) in req.statuses.iter().enumerate() {
        let Some(state) = JobState::of_wire(*s) else {
            return Err(Error::invalid(
                format!("statuses[{i}]"),
                format!("must be a job status 1..6 (got {s})"),
            ));
        };
        statuses.push(state);
    }
    statuses.sort();
    statuses.dedup();
    metadata_map(&req.metadata)?;
    for (field, v) in [
        ("created_after_ms", req.created_after_ms),
        ("created_before_ms", req.created_before_ms),
    ] {
        if v < 0 {
            return Err(Error::invalid(field, "must not be negative"));
        }
    }
    Ok(Filter {
        tenant: req.tenant,
        queue: (!req.queue.is_empty()).then_some(req.queue),
        statuses,
        metadata: req.metadata,
        created_after_ms: req.created_after_ms,
        created_before_ms: req.created_before_ms,
    })
}

pub fn list_jobs(req: wire::ListJobsRequest) -> Result<ListJobsParams> {
    let page_size = match req.page_size {
        0 => DEFAULT_PAGE_SIZE,
        n @ 1..=MAX_PAGE_SIZE => n,
        n => {
            return Err(Error::invalid(
                "page_size",
                format!("must be at most {MAX_PAGE_SIZE} (got {n})"),
            ))
        }
    };
    let after = match req.page_token.as_str() {
        "" => None,
        token => Some(search::decode_token(token)?),
    };
    Ok(ListJobsParams {
        filter: filter(req)?,
        page_size,
        after,
    })
}

/// Validates a bulk call (filter fields named `filter.x`); its page fields are ignored.
pub fn bulk_jobs(req: wire::BulkJobsRequest, action: BulkAction) -> Result<BulkParams> {
    let limit = match req.limit {
        0 => MAX_BULK_LIMIT,
        n @ 1..=MAX_BULK_LIMIT => n,
        n => {
            return Err(Error::invalid(
                "limit",
                format!("must be at most {MAX_BULK_LIMIT} (got {n})"),
            ))
        }
    };
    let filter = filter(req.filter.unwrap_or_default()).map_err(|e| e.in_field("filter."))?;
    Ok(BulkParams {
        action,
        filter,
        limit,
    })
}

/// Validates a ListQueues call.
pub fn list_queues(req: &wire::ListQueuesRequest) -> Result<()> {
    name("tenant", &req.tenant, false)
}

/// Validates a concurrency key reference (Admin.GetConcurrencyKey).
pub fn concurrency_key(tenant: &str, key: &str) -> Result<()> {
    name("tenant", tenant, false)?;
    name("key", key, true)
}

pub fn lease(req: wire::LeaseTasksRequest) -> Result<LeaseParams> {
    name("worker_id", &req.worker_id, true)?;
    if req.max_tasks == 0 || req.max_tasks > MAX_TASKS {
        return Err(Error::invalid(
            "max_tasks",
            format!("must be 1..{MAX_TASKS} (got {})", req.max_tasks),
        ));
    }
    if req.wait_ms < 0 {
        return Err(Error::invalid("wait_ms", "must not be negative"));
    }
    if req.wait_ms > MAX_WAIT_MS {
        return Err(Error::invalid(
            "wait_ms",
            format!("must be at most {MAX_WAIT_MS}"),
        ));
    }
    Ok(LeaseParams {
        worker_id: req.worker_id,
        max_tasks: req.max_tasks,
        queues: queue_list(req.queues)?,
        wait_ms: req.wait_ms,
        tenants: TenantScope::all(),
    })
}

/// The queues a worker leases from: distinct names, "" replaced by "default", none = default.
fn queue_list(names: Vec<String>) -> Result<Vec<String>> {
    let mut queues: Vec<String> = Vec::new();
    for (i, q) in names.into_iter().enumerate() {
        name(&format!("queues[{i}]"), &q, false)?;
        let q = queue_name(q);
        if !queues.contains(&q) {
            queues.push(q);
        }
    }
    if queues.is_empty() {
        queues.push(DEFAULT_QUEUE.to_string());
    }
    Ok(queues)
}

/// Validates the first message of a WorkerSession (field names relative to the SessionOpen).
pub fn session_open(open: wire::SessionOpen) -> Result<SessionParams> {
    name("worker_id", &open.worker_id, true)?;
    session_credit("credits", 0, open.credits)?;
    Ok(SessionParams {
        lease: LeaseParams {
            worker_id: open.worker_id,
            max_tasks: 0,
            queues: queue_list(open.queues)?,
            wait_ms: 0,
            tenants: TenantScope::all(),
        },
        credit: open.credits,
    })
}

/// Checks that `more` credit on top of `held` stays within MAX_SESSION_CREDIT; the new total.
pub fn session_credit(field: &str, held: u32, more: u32) -> Result<u32> {
    match held.checked_add(more) {
        Some(total) if total <= MAX_SESSION_CREDIT => Ok(total),
        _ => Err(Error::invalid(
            field,
            format!(
                "a session holds at most {MAX_SESSION_CREDIT} credits (it holds {held}, \
                 {more} more asked)"
            ),
        )),
    }
}

pub fn heartbeat(req: wire::HeartbeatTaskRequest, limits: &Limits) -> Result<HeartbeatParams> {
    name("task_id", &req.task_id, true)?;
    name("worker_id", &req.worker_id, true)?;
    bytes_limit("cursor", &req.cursor, limits)?;
    Ok(HeartbeatParams {
        task_id: req.task_id,
        worker_id: req.worker_id,
        cursor: req.cursor,
        tenants: TenantScope::all(),
    })
}

pub fn report(req: wire::ReportTaskOutcomeRequest, limits: &Limits) -> Result<ReportParams> {
    use wire::report_task_outcome_request::Outcome as W;
    name("task_id", &req.task_id, true)?;
    name("worker_id", &req.worker_id, true)?;
    let outcome = match req.outcome {
        None => {
            return Err(Error::invalid(
                "outcome",
                "one of result, failure or cancelled is required",
            ))
        }
        Some(W::Result(r)) => {
            bytes_limit("result", &r, limits)?;
            Outcome::Success(r)
        }
        Some(W::Failure(f)) => {
            check_chars("failure.code", &f.code, MAX_NAME_CHARS)?;
            if crate::lifecycle::BROKER_FAILURE_CODES.contains(&f.code.as_str()) {
                return Err(Error::invalid(
                    "failure.code",
                    format!("{} is reserved for the broker", f.code),
                ));
            }
            if f.message.chars().count() > MAX_FAILURE_MESSAGE_CHARS {
                return Err(Error::invalid(
                    "failure.message",
                    format!("must be at most {MAX_FAILURE_MESSAGE_CHARS} characters"),
                ));
            }
            bytes_limit("failure.data", &f.data, limits)?;
            Outcome::Failure(f.into())
        }
        Some(W::Cancelled(_)) => Outcome::Cancelled,
    };
    Ok(ReportParams {
        task_id: req.task_id,
        worker_id: req.worker_id,
        outcome,
        tenants: TenantScope::all(),
    })
}

/// Validates a ReportTaskOutcomes: over 1000 entries fails the whole call; otherwise each
/// report is validated alone (fields named `reports[i].field`).
pub fn report_batch(
    req: wire::ReportTaskOutcomesRequest,
    limits: &Limits,
) -> Result<Vec<Result<ReportParams>>> {
    if req.reports.len() > MAX_BATCH {
        return Err(Error::invalid(
            "reports",
            format!(
                "at most {MAX_BATCH} reports per call (got {})",
                req.reports.len()
            ),
        ));
    }
    Ok(req
        .reports
        .into_iter()
        .enumerate()
        .map(|(i, r)| report(r, limits).map_err(|e| e.in_field(&format!("reports[{i}]."))))
        .collect())
}

#[cfg(test)]
mod tests;
