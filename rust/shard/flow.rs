//! Flow control's commands (docs/architecture.md#flow-control): the queue, schedule and
//! rate-limit calls a `ShardHandle` sends, in one `Command::Flow` so that the actor's loop
//! (step.rs) needs one arm for all of them, and the deadline its timers add to the loop.

use super::handle::{Command, Reply, ShardHandle};
use super::step::defer;
use super::{Shard, Step};
use crate::error::{Error, Result};
use crate::proto::{admin, records, wire};

/// A queue of a tenant (PauseQueue, ResumeQueue). `queue` is never empty ("" is "default").
#[derive(Debug, Clone)]
pub struct QueueRef {
    pub tenant: String,
    pub queue: String,
}

/// A schedule's address.
#[derive(Debug, Clone)]
pub struct ScheduleRef {
    pub tenant: String,
    pub name: String,
}

/// A validated ListSchedules call: up to `page_size` schedules of `tenant` whose name sorts
/// after `after` (None: from the first).
#[derive(Debug, Clone)]
pub struct ListSchedulesParams {
    pub tenant: String,
    pub page_size: usize,
    pub after: Option<String>,
}

/// Schedules fire together per window of this many ms (a tick at most this late), so ten
/// thousand schedules of spread phases cost a step and a durable write per window, not per
/// millisecond. Cron ticks (whole seconds) fall on a window's start and are not delayed.
pub const TICK_GRANULARITY_MS: i64 = 10;

pub(super) enum FlowCommand {
    /// Pause (true) or resume (false) a queue of a tenant.
    PauseQueue(QueueRef, bool, Reply<wire::QueueStats>),
    /// A validated schedule to create or replace (its outputs are the actor's to fill).
    PutSchedule(Box<records::ScheduleRecord>, Reply<wire::Schedule>),
    GetSchedule(ScheduleRef, Reply<wire::Schedule>),
    DeleteSchedule(ScheduleRef, Reply<()>),
    ListSchedules(ListSchedulesParams, Reply<wire::ListSchedulesResponse>),
    GetRateLimit(String, String, Reply<admin::RateLimitState>),
}

impl FlowCommand {
    pub(super) fn refuse(self, err: Error) {
        match self {
            FlowCommand::PauseQueue(_, _, r) => drop(r.send(Err(err))),
            FlowCommand::PutSchedule(_, r) => drop(r.send(Err(err))),
            FlowCommand::GetSchedule(_, r) => drop(r.send(Err(err))),
            FlowCommand::DeleteSchedule(_, r) => drop(r.send(Err(err))),
            FlowCommand::ListSchedules(_, r) => drop(r.send(Err(err))),
            FlowCommand::GetRateLimit(_, _, r) => drop(r.send(Err(err))),
        }
    }
}

impl Shard {
    pub(super) async fn apply_flow(&mut self, st: &mut Step, cmd: FlowCommand) {
        match cmd {
            FlowCommand::PauseQueue(queue, pause, reply) => {
                let r = self.pause_queue(st, queue, pause).await;
                st.replies.push(defer(reply, r));
            }
            FlowCommand::PutSchedule(schedule, reply) => {
                let r = self.put_schedule(st, *schedule).await;
                st.replies.push(defer(reply, r));
            }
            FlowCommand::GetSchedule(sched, reply) => {
                let r = self.get_schedule(st, &sched).await;
                st.replies.push(defer(reply, r));
            }
            FlowCommand::DeleteSchedule(sched, reply) => {
                let r = self.delete_schedule(st, &sched).await;
                st.replies.push(defer(reply, r));
            }
            FlowCommand::ListSchedules(params, reply) => {
                let r = self.list_schedules(st, &params).await;
                st.replies.push(defer(reply, r));
            }
            FlowCommand::GetRateLimit(tenant, key, reply) => {
                let r = self.get_rate_limit(st, &tenant, &key).await;
                st.replies.push(defer(reply, r));
            }
        }
    }

    /// The earliest time flow control needs a step: the next rate-limit token some waiter is
    /// owed, the first expiry, the first schedule tick (or now, when a head ran empty).
    pub(super) fn flow_deadline(&self) -> Option<i64> {
        let expiry = if self.expiries.needs_refill() {
            Some(0)
        } else {
            // An expiry fires once its time has passed (expire_at < now).
            self.expiries.first().map(|((t, _), _)| t.saturating_add(1))
        };
        let schedule = if self.schedules.needs_refill() {
            Some(0)
        } else {
            // Rounded up to the tick granularity: the ticks of one window fire in one step.
            self.schedules.first().map(|((t, _), _)| {
                (t + TICK_GRANULARITY_MS - 1).div_euclid(TICK_GRANULARITY_MS) * TICK_GRANULARITY_MS
            })
        };
        [self.conc.next_token_due(), expiry, schedule]
            .into_iter()
            .flatten()
            .min()
    }
}

impl ShardHandle {
    pub async fn pause_queue(&self, queue: QueueRef, pause: bool) -> Result<wire::QueueStats> {
        self.call(|r| Command::Flow(FlowCommand::PauseQueue(queue, pause, r)))
            .await
    }

    pub async fn put_schedule(&self, schedule: records::ScheduleRecord) -> Result<wire::Schedule> {
        self.call(|r| Command::Flow(FlowCommand::PutSchedule(Box::new(schedule), r)))
            .await
    }

    pub async fn get_schedule(&self, sched: ScheduleRef) -> Result<wire::Schedule> {
        self.call(|r| Command::Flow(FlowCommand::GetSchedule(sched, r)))
            .await
    }

    pub async fn delete_schedule(&self, sched: ScheduleRef) -> Result<()> {
        self.call(|r| Command::Flow(FlowCommand::DeleteSchedule(sched, r)))
            .await
    }

    pub async fn list_schedules(
        &self,
        params: ListSchedulesParams,
    ) -> Result<wire::ListSchedulesResponse> {
        self.call(|r| Command::Flow(FlowCommand::ListSchedules(params, r)))
            .await
    }

    /// A rate-limit key's bucket and waiters.
    pub async fn get_rate_limit(
        &self,
        tenant: String,
        key: String,
    ) -> Result<admin::RateLimitState> {
        self.call(|r| Command::Flow(FlowCommand::GetRateLimit(tenant, key, r)))
            .await
    }
}
