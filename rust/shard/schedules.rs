//! Schedules (docs/api.md#schedules, docs/architecture.md#schedules): PutSchedule,
//! GetSchedule, DeleteSchedule, ListSchedules, and the ticks.
//!
//! A schedule is stored twice: by name (SCHEDULE, for the RPCs) and by its next run
//! (SCHEDULE_DUE `(next_run_at_ms, seq)`, a timer family whose head page is in memory, so
//! ten thousand schedules cost a page, not a scan per tick). A tick enqueues its job, with id
//! `sched:<name>:<tick ms>`, in the same step, so in the same durable write, as the one that
//! moves the schedule's due entry to its next run: a restart or a failover never skips or
//! doubles a tick. The `sched:` prefix is reserved (a client's Enqueue may not use it) and a
//! name's ticks only move forward (a put or re-put starts after now), so a tick's id is new and
//! the tick skips the existence read every other explicit id costs (a point read that misses
//! the memtables: the larger part of a tick's cost at 10,000 ticks per second).
//!
//! When more than one tick is due at once (the broker was down, or stalled past a period),
//! the catch-up policy decides what runs: ONE runs the latest due tick; NONE runs it only if
//! it is at most `ON_TIME_MS` late; ALL runs every due tick, at most the latest 1,000.

use super::flow::{ListSchedulesParams, ScheduleRef};
use super::page::{Placed, SortKey};
use super::timer_page::TimerFamily;
use super::{Shard, Step};
use crate::cron::{self, Ticks};
use crate::error::{Error, Result};
use crate::keys;
use crate::lifecycle::JobState;
use crate::proto::{records, wire};
use crate::record;
use crate::validate;

/// Most schedules one step fires (ten thousand due in one second spread over a few steps).
const MAX_TICKS_PER_STEP: usize = 4096;
/// CATCH_UP_ALL runs at most this many missed ticks (the latest ones).
pub const MAX_CATCH_UP: usize = 1_000;
/// A tick processed at most this late is on time; a later one was missed (CATCH_UP_NONE
/// skips it). A second, like APScheduler's default misfire grace time.
pub const ON_TIME_MS: i64 = 1_000;

const SCHEDULE_TIMERS: TimerFamily<records::ScheduleRecord> = TimerFamily {
    family: keys::SCHEDULE_DUE,
    decode: |_, value| record::decode(value),
};

fn due_key(s: &records::ScheduleRecord) -> SortKey {
    (s.next_run_at_ms, s.seq)
}

/// A stored schedule's ticks (its cron and zone were validated when it was put).
fn ticks_of(s: &records::ScheduleRecord) -> Result<Ticks> {
    if s.cron.is_empty() {
        return Ok(Ticks::Interval {
            every_ms: s.interval_ms.max(1),
            anchor_ms: s.anchor_ms,
        });
    }
    let bad = |e: String| Error::Internal(format!("stored schedule {:?}: {e}", s.name));
    Ok(Ticks::Cron {
        cron: Box::new(cron::parse_cron(&s.cron).map_err(bad)?),
        zone: cron::parse_zone(&s.timezone).map_err(bad)?,
    })
}

impl Shard {
    async fn load_schedule(
        &self,
        st: &Step,
        r: &ScheduleRef,
    ) -> Result<Option<records::ScheduleRecord>> {
        match st
            .txn
            .get(&self.db, &keys::schedule(&r.tenant, &r.name))
            .await?
        {
            Some(v) => Ok(Some(record::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Writes a schedule by name and, unless paused, its due entry (in memory too if its
    /// place is in the head page).
    fn write_schedule(&mut self, st: &mut Step, s: &records::ScheduleRecord) {
        let value = record::encode(s);
        st.txn
            .put(keys::schedule(&s.tenant, &s.name), value.clone());
        if s.paused || s.next_run_at_ms == 0 {
            return;
        }
        let (at, seq) = due_key(s);
        st.txn.put(keys::timer(keys::SCHEDULE_DUE, at, seq), value);
        if let Placed::Memory(_) = self.schedules.place((at, seq)) {
            self.schedules.insert((at, seq), s.clone());
        }
    }

    /// Deletes a schedule's due entry (it fired, or the schedule changed or went away).
    fn drop_due(&mut self, st: &mut Step, s: &records::ScheduleRecord) {
        if s.paused || s.next_run_at_ms == 0 {
            return;
        }
        let (at, seq) = due_key(s);
        self.schedules.remove(&(at, seq));
        st.txn.delete(keys::timer(keys::SCHEDULE_DUE, at, seq));
    }

    /// PutSchedule: creates or replaces a schedule by name. Its ticks start over from now
    /// (an interval schedule is anchored at this moment); `last_job_id` is kept.
    pub(super) async fn put_schedule(
        &mut self,
        st: &mut Step,
        mut s: records::ScheduleRecord,
    ) -> Result<wire::Schedule> {
        let r = ScheduleRef {
            tenant: s.tenant.clone(),
            name: s.name.clone(),
        };
        let old = self.load_schedule(st, &r).await?;
        s.anchor_ms = st.now;
        s.next_run_at_ms = 0;
        if !s.paused {
            s.next_run_at_ms = ticks_of(&s)?
                .next_after(st.now)
                .ok_or_else(|| Error::invalid("cron", "never matches a future time"))?;
        }
        s.seq = self.alloc_seq();
        s.updated_at_ms = st.now;
        s.created_at_ms = st.now;
        if let Some(old) = &old {
            self.drop_due(st, old);
            s.last_job_id = old.last_job_id.clone();
            s.created_at_ms = old.created_at_ms;
        }
        self.write_schedule(st, &s);
        tracing::info!(
            target: "silo::operator",
            action = "put_schedule",
            tenant = %s.tenant,
            schedule = %s.name,
            cron = %s.cron,
            interval_ms = s.interval_ms,
            timezone = %s.timezone,
            paused = s.paused,
            replaced = old.is_some(),
            next_run_at_ms = s.next_run_at_ms,
            "schedule put"
        );
        Ok(record::to_wire_schedule(s))
    }

    pub(super) async fn get_schedule(&self, st: &Step, r: &ScheduleRef) -> Result<wire::Schedule> {
        let s = self
            .load_schedule(st, r)
            .await?
            .ok_or(Error::ScheduleNotFound)?;
        Ok(record::to_wire_schedule(s))
    }

    /// DeleteSchedule: no tick follows. Jobs it enqueued stay. NOT_FOUND if absent.
    pub(super) async fn delete_schedule(&mut self, st: &mut Step, r: &ScheduleRef) -> Result<()> {
        let s = self
            .load_schedule(st, r)
            .await?
            .ok_or(Error::ScheduleNotFound)?;
        self.drop_due(st, &s);
        st.txn.delete(keys::schedule(&r.tenant, &r.name));
        tracing::info!(
            target: "silo::operator",
            action = "delete_schedule",
            tenant = %r.tenant,
            schedule = %r.name,
            "schedule deleted"
        );
        Ok(())
    }

    /// ListSchedules: a tenant's schedules in name order, one page from the token on.
    pub(super) async fn list_schedules(
        &self,
        st: &Step,
        p: &ListSchedulesParams,
    ) -> Result<wire::ListSchedulesResponse> {
        let prefix = keys::schedules_prefix(&p.tenant);
        let start = match &p.after {
            Some(name) => {
                let mut k = keys::schedule(&p.tenant, name);
                k.push(0);
                k
            }
            None => prefix.clone(),
        };
        let end = keys::prefix_end(&prefix)
            .ok_or_else(|| Error::Internal("unbounded schedule range".into()))?;
        let rows = st.txn.scan(&self.db, start, end, p.page_size + 1).await?;
        let more = rows.len() > p.page_size;
        let mut schedules = Vec::with_capacity(rows.len().min(p.page_size));
        for (_, v) in rows.into_iter().take(p.page_size) {
            let s: records::ScheduleRecord = record::decode(&v)?;
            schedules.push(record::to_wire_schedule(s));
        }
        let next_page_token = match schedules.last() {
            Some(last) if more => validate::page_token(&last.name),
            _ => String::new(),
        };
        Ok(wire::ListSchedulesResponse {
            schedules,
            next_page_token,
        })
    }

    /// Opening the shard: the first page of expiries and of schedule ticks.
    pub(super) async fn refill_flow_timers(&mut self, st: &Step) -> Result<()> {
        super::expiry::EXPIRY_TIMERS
            .refill(&self.db, &st.txn, &mut self.expiries)
            .await?;
        SCHEDULE_TIMERS
            .refill(&self.db, &st.txn, &mut self.schedules)
            .await
    }

    /// Fires the schedules whose next run has come.
    pub(super) async fn fire_schedules(&mut self, st: &mut Step) -> Result<()> {
        let now = st.now;
        let due = SCHEDULE_TIMERS
            .take_due(
                &self.db,
                &st.txn,
                &mut self.schedules,
                |t| t <= now,
                MAX_TICKS_PER_STEP,
            )
            .await?;
        for (_, s) in due {
            self.tick(st, s).await?;
        }
        Ok(())
    }

    /// One firing of a schedule: the due ticks its catch-up policy runs each enqueue a job,
    /// and the schedule moves to its next run, all in this step's write.
    async fn tick(&mut self, st: &mut Step, mut s: records::ScheduleRecord) -> Result<()> {
        let (at, seq) = due_key(&s);
        st.txn.delete(keys::timer(keys::SCHEDULE_DUE, at, seq));
        let ticks = ticks_of(&s)?;
        let catch_up =
            records::ScheduleCatchUp::try_from(s.catch_up).unwrap_or(records::ScheduleCatchUp::One);
        let max = match catch_up {
            records::ScheduleCatchUp::All => MAX_CATCH_UP,
            records::ScheduleCatchUp::One | records::ScheduleCatchUp::None => 1,
        };
        let mut run = ticks.due(s.next_run_at_ms, st.now, max);
        if catch_up == records::ScheduleCatchUp::None {
            run.retain(|&t| st.now - t <= ON_TIME_MS);
        }
        for t in run {
            self.run_tick(st, &mut s, t).await?;
        }
        s.next_run_at_ms = ticks.next_after(st.now).unwrap_or(0);
        s.updated_at_ms = st.now;
        self.ticks_fired += 1;
        self.write_schedule(st, &s);
        Ok(())
    }

    /// Enqueues the job of the tick at `t` (unless overlap SKIP finds the previous one still
    /// running or waiting).
    async fn run_tick(
        &mut self,
        st: &mut Step,
        s: &mut records::ScheduleRecord,
        t: i64,
    ) -> Result<()> {
        if s.overlap == records::ScheduleOverlap::Skip as i32 && !s.last_job_id.is_empty() {
            if let Some(prev) = self.load_job(st, &s.tenant, &s.last_job_id).await? {
                let terminal = matches!(
                    JobState::of_record(prev.state)?,
                    JobState::Succeeded | JobState::Failed | JobState::Cancelled
                );
                if !terminal {
                    tracing::debug!(schedule = %s.name, tick = t, "tick skipped: the previous job runs");
                    return Ok(());
                }
            }
        }
        let mut req = wire::EnqueueRequest::from(s.job.clone().unwrap_or_default());
        req.id = validate::tick_job_id(&s.name, t);
        req.tenant = s.tenant.clone();
        let job = match validate::tick_job(req, &self.config.limits) {
            Ok(job) => job,
            Err(e) => {
                tracing::error!(schedule = %s.name, tick = t, "a tick's job is invalid: {e}");
                return Ok(());
            }
        };
        match self.enqueue(st, job).await {
            Ok(enqueued) => s.last_job_id = enqueued.id,
            Err(e @ Error::StoreUnavailable(_)) => return Err(e),
            Err(e) => tracing::error!(schedule = %s.name, tick = t, "a tick failed: {e}"),
        }
        Ok(())
    }
}
