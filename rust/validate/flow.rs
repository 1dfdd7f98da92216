//! Validation of flow control's calls (docs/api.md#flow-control): queue and schedule
//! references, PutSchedule's schedule and ListSchedules' paging.

use super::{name, queue_name, Limits};
use crate::cron;
use crate::error::{Error, Result};
use crate::proto::{records, wire};
use crate::shard::{ListSchedulesParams, QueueRef, ScheduleRef};

pub const MAX_SCHEDULE_NAME_CHARS: usize = 100;
pub const MIN_INTERVAL_MS: i64 = 1_000;
pub const DEFAULT_PAGE_SIZE: u32 = 100;
pub const MAX_PAGE_SIZE: u32 = 1_000;
/// ListSchedules page tokens: this prefix, then the last name's UTF-8 bytes in hex.
const PAGE_TOKEN_PREFIX: &str = "s1.";

/// The prefix of schedule ticks' job ids, reserved: a client's Enqueue may not use it.
pub const TICK_ID_PREFIX: &str = "sched:";

/// The id of the job a schedule enqueues for the tick at `tick_ms`.
pub fn tick_job_id(schedule: &str, tick_ms: i64) -> String {
    format!("{TICK_ID_PREFIX}{schedule}:{tick_ms}")
}

/// PauseQueue, ResumeQueue: `queue` "" is "default".
pub fn queue_ref(req: wire::QueueRef) -> Result<QueueRef> {
    name("tenant", &req.tenant, false)?;
    name("queue", &req.queue, false)?;
    Ok(QueueRef {
        tenant: req.tenant,
        queue: queue_name(req.queue),
    })
}

fn schedule_name(value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid("name", "is required"));
    }
    super::check_chars("name", value, MAX_SCHEDULE_NAME_CHARS)
}

/// GetSchedule, DeleteSchedule.
pub fn schedule_ref(req: wire::ScheduleRef) -> Result<ScheduleRef> {
    name("tenant", &req.tenant, false)?;
    schedule_name(&req.name)?;
    Ok(ScheduleRef {
        tenant: req.tenant,
        name: req.name,
    })
}

/// PutSchedule: the schedule as the shard stores it (its outputs, `next_run_at_ms`,
/// `last_job_id` and the bookkeeping fields, are the shard's to fill).
pub fn put_schedule(req: wire::Schedule, limits: &Limits) -> Result<records::ScheduleRecord> {
    name("tenant", &req.tenant, false)?;
    schedule_name(&req.name)?;
    match (req.cron.is_empty(), req.interval_ms) {
        (true, 0) => {
            return Err(Error::invalid(
                "cron",
                "one of cron or interval_ms is required",
            ))
        }
        (false, i) if i != 0 => {
            return Err(Error::invalid("cron", "give cron or interval_ms, not both"))
        }
        (true, i) if i < MIN_INTERVAL_MS => {
            return Err(Error::invalid(
                "interval_ms",
                format!("must be at least {MIN_INTERVAL_MS} (got {i})"),
            ))
        }
        _ => {}
    }
    if !req.cron.is_empty() {
        cron::parse_cron(&req.cron).map_err(|e| Error::invalid("cron", e))?;
    }
    cron::parse_zone(&req.timezone).map_err(|e| Error::invalid("timezone", e))?;
    let overlap = records::ScheduleOverlap::try_from(req.overlap)
        .map_err(|_| Error::invalid("overlap", format!("unknown value {}", req.overlap)))?;
    let catch_up = records::ScheduleCatchUp::try_from(req.catch_up)
        .map_err(|_| Error::invalid("catch_up", format!("unknown value {}", req.catch_up)))?;
    let job = template(req.job.unwrap_or_default(), &req.tenant, &req.name, limits)?;
    Ok(records::ScheduleRecord {
        tenant: req.tenant,
        name: req.name,
        cron: req.cron,
        interval_ms: req.interval_ms,
        timezone: req.timezone,
        job: Some(job),
        paused: req.paused,
        overlap: overlap as i32,
        catch_up: catch_up as i32,
        ..Default::default()
    })
}

/// A schedule's job template: validated like an Enqueue (fields named `job.…`), with no id,
/// the schedule's tenant (or none), and no start or expiry time (a tick's job is due at once).
fn template(
    job: wire::EnqueueRequest,
    tenant: &str,
    schedule: &str,
    limits: &Limits,
) -> Result<records::JobTemplateRecord> {
    if !job.id.is_empty() {
        return Err(Error::invalid(
            "job.id",
            "must be empty: each tick's job is sched:<name>:<tick ms>",
        ));
    }
    if !job.tenant.is_empty() && job.tenant != tenant {
        return Err(Error::invalid(
            "job.tenant",
            "must be empty or the schedule's tenant",
        ));
    }
    if job.start_at_ms != 0 {
        return Err(Error::invalid(
            "job.start_at_ms",
            "must be 0: a tick's job is due at its tick",
        ));
    }
    if job.expire_at_ms != 0 {
        return Err(Error::invalid(
            "job.expire_at_ms",
            "must be 0 in a schedule's template",
        ));
    }
    let tick = wire::EnqueueRequest {
        id: tick_job_id(schedule, i64::MAX),
        tenant: tenant.to_string(),
        ..job.clone()
    };
    super::tick_job(tick, limits).map_err(|e| e.in_field("job."))?;
    Ok(records::JobTemplateRecord::from(job))
}

/// ListSchedules: page size 0 is 100, over 1000 refused; the token is opaque.
pub fn list_schedules(req: wire::ListSchedulesRequest) -> Result<ListSchedulesParams> {
    name("tenant", &req.tenant, false)?;
    let page_size = match req.page_size {
        0 => DEFAULT_PAGE_SIZE,
        n if n > MAX_PAGE_SIZE => {
            return Err(Error::invalid(
                "page_size",
                format!("must be at most {MAX_PAGE_SIZE} (got {n})"),
            ))
        }
        n => n,
    };
    let after = match req.page_token.as_str() {
        "" => None,
        token => Some(parse_page_token(token)?),
    };
    Ok(ListSchedulesParams {
        tenant: req.tenant,
        page_size: page_size as usize,
        after,
    })
}

/// The token of the page that follows the schedule named `last`.
pub fn page_token(last: &str) -> String {
    let hex: String = last.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{PAGE_TOKEN_PREFIX}{hex}")
}

fn parse_page_token(token: &str) -> Result<String> {
    let bad = || Error::invalid("page_token", "malformed");
    let hex = token.strip_prefix(PAGE_TOKEN_PREFIX).ok_or_else(bad)?;
    if hex.len() % 2 != 0 || !hex.is_ascii() {
        return Err(bad());
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| bad()))
        .collect::<Result<Vec<u8>>>()?;
    String::from_utf8(bytes).map_err(|_| bad())
}
