//! WaitJob: a caller waits until one job ends (docs/api.md#waitjob). Waiters are kept per
//! (tenant, job id) with a deadline. `put_job` wakes a job's waiters in the step that makes it
//! terminal, and the step answers them with the job as it was stored then, once the step is
//! durable; a deadline answers the job's current state. Nothing polls: deadlines join the
//! actor's `time_to_next_deadline`, and a caller that went away is dropped (its reply channel
//! is closed) when it would be answered, or sooner by a bounded sweep each step.

use std::collections::{BTreeSet, HashMap};

use super::handle::Reply;
use super::step::defer;
use super::{JobRef, Shard, Step};
use crate::error::{Error, Result};
use crate::lifecycle::JobState;
use crate::proto::{records, wire};
use crate::validate::WaitJobParams;

/// Waiters one step checks for callers that went away (bounds the sweep's cost per step).
const SWEEP_PER_STEP: usize = 64;

/// One waiting WaitJob call.
struct Waiter {
    tenant: String,
    id: String,
    deadline_ms: i64,
    reply: Reply<wire::Job>,
}

/// The WaitJob calls waiting in the actor: by job (to wake them) and by deadline (to time them
/// out). Not durable: a waiter is a caller, answered before any rebuild of the shard.
#[derive(Default)]
pub(super) struct JobWaiters {
    next_id: u64,
    waiters: HashMap<u64, Waiter>,
    /// tenant -> job id -> waiter ids (looked up by `&str`, so a wake check allocates nothing).
    by_job: HashMap<String, HashMap<String, Vec<u64>>>,
    deadlines: BTreeSet<(i64, u64)>,
    /// Where the sweep for closed callers resumes (it wraps around).
    sweep_from: (i64, u64),
}

impl JobWaiters {
    pub(super) fn len(&self) -> usize {
        self.waiters.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    /// The earliest deadline of a waiting call.
    pub(super) fn next_deadline(&self) -> Option<i64> {
        self.deadlines.first().map(|(t, _)| *t)
    }

    fn add(&mut self, tenant: String, id: String, deadline_ms: i64, reply: Reply<wire::Job>) {
        let key = self.next_id;
        self.next_id += 1;
        self.by_job
            .entry(tenant.clone())
            .or_default()
            .entry(id.clone())
            .or_default()
            .push(key);
        self.deadlines.insert((deadline_ms, key));
        self.waiters.insert(
            key,
            Waiter {
                tenant,
                id,
                deadline_ms,
                reply,
            },
        );
    }

    /// Takes out every waiter of one job.
    fn take_job(&mut self, tenant: &str, id: &str) -> Vec<Reply<wire::Job>> {
        let Some(jobs) = self.by_job.get_mut(tenant) else {
            return Vec::new();
        };
        let Some(keys) = jobs.remove(id) else {
            return Vec::new();
        };
        if jobs.is_empty() {
            self.by_job.remove(tenant);
        }
        keys.into_iter()
            .filter_map(|key| {
                let w = self.waiters.remove(&key)?;
                self.deadlines.remove(&(w.deadline_ms, key));
                Some(w.reply)
            })
            .collect()
    }

    /// Takes out one waiter (a deadline or a closed caller).
    fn remove(&mut self, key: u64) -> Option<Waiter> {
        let w = self.waiters.remove(&key)?;
        self.deadlines.remove(&(w.deadline_ms, key));
        if let Some(jobs) = self.by_job.get_mut(&w.tenant) {
            if let Some(keys) = jobs.get_mut(&w.id) {
                keys.retain(|k| *k != key);
                if keys.is_empty() {
                    jobs.remove(&w.id);
                }
            }
            if jobs.is_empty() {
                self.by_job.remove(&w.tenant);
            }
        }
        Some(w)
    }

    /// Takes out every waiter whose deadline is at or before `now_ms`.
    fn take_expired(&mut self, now_ms: i64) -> Vec<Waiter> {
        let mut out = Vec::new();
        while let Some(&(t, key)) = self.deadlines.first() {
            if t > now_ms {
                break;
            }
            out.extend(self.remove(key));
        }
        out
    }

    /// Drops up to `budget` waiters, from where the last sweep stopped, whose caller went away:
    /// memory does not hold abandoned calls until their deadline, and no step checks them all.
    fn sweep(&mut self, budget: usize) {
        let mut checked = 0;
        let mut closed = Vec::new();
        let mut last = None;
        for &(t, key) in self.deadlines.range(self.sweep_from..).take(budget) {
            checked += 1;
            last = Some((t, key));
            if self.waiters.get(&key).is_some_and(|w| w.reply.is_closed()) {
                closed.push(key);
            }
        }
        for key in closed {
            self.remove(key);
        }
        self.sweep_from = match last {
            Some((t, key)) if checked == budget => (t, key + 1),
            _ => (i64::MIN, 0), // reached the end: start over next time
        };
    }

    /// Takes out every waiter (the shard closes or rebuilds).
    pub(super) fn drain(&mut self) -> Vec<Reply<wire::Job>> {
        self.by_job.clear();
        self.deadlines.clear();
        self.waiters.drain().map(|(_, w)| w.reply).collect()
    }
}

impl Shard {
    /// Answers at once when the job is terminal or `timeout_ms` is 0 (NOT_FOUND when there is
    /// no such job); otherwise the call waits for `put_job` to make the job terminal, or for
    /// its deadline.
    pub(super) async fn wait_job(
        &mut self,
        st: &mut Step,
        p: WaitJobParams,
        reply: Reply<wire::Job>,
    ) {
        let job = match self.load_job(st, &p.tenant, &p.id).await {
            Ok(Some(job)) => job,
            Ok(None) => return st.replies.push(defer(reply, Err(Error::JobNotFound))),
            Err(e) => return st.replies.push(defer(reply, Err(e))),
        };
        let terminal = JobState::of_record(job.state).map(JobState::is_terminal);
        if p.timeout_ms == 0 || !matches!(terminal, Ok(false)) {
            let r = self.wire_job(st, job, false).await;
            return st.replies.push(defer(reply, r));
        }
        self.waiters
            .add(p.tenant, p.id, st.now + p.timeout_ms, reply);
    }

    /// Called by `put_job` for every write of a job: a job that is now terminal wakes its
    /// waiters, to be answered at the end of the step with the record as written here.
    pub(super) fn wake_waiters(&mut self, st: &mut Step, job: &records::JobRecord) {
        if self.waiters.is_empty() {
            return;
        }
        if !JobState::of_record(job.state).is_ok_and(JobState::is_terminal) {
            return;
        }
        let replies = self.waiters.take_job(&job.tenant, &job.id);
        if !replies.is_empty() {
            st.woken.push((job.clone(), replies));
        }
    }

    /// End of a step: answers the woken waiters (once the step is durable), and sweeps a few
    /// waiters for callers that went away.
    pub(super) async fn serve_job_waiters(&mut self, st: &mut Step) {
        for (job, replies) in std::mem::take(&mut st.woken) {
            let r = self.wire_job(st, job, false).await;
            for reply in replies {
                if !reply.is_closed() {
                    st.replies.push(defer(reply, r.clone()));
                }
            }
        }
        self.waiters.sweep(SWEEP_PER_STEP);
    }

    /// Start of a step, with the timers: answers the waiters whose deadline passed with the
    /// job's current state (once the step is durable).
    pub(super) async fn expire_job_waiters(&mut self, st: &mut Step) {
        for w in self.waiters.take_expired(st.now) {
            if w.reply.is_closed() {
                continue;
            }
            let job = JobRef {
                tenant: w.tenant,
                id: w.id,
            };
            let r = self.current_job(st, &job).await;
            st.replies.push(defer(w.reply, r));
        }
    }

    async fn current_job(&self, st: &Step, job: &JobRef) -> Result<wire::Job> {
        let rec = self
            .load_job(st, &job.tenant, &job.id)
            .await?
            .ok_or(Error::JobNotFound)?;
        self.wire_job(st, rec, false).await
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;

    fn add(w: &mut JobWaiters, id: &str, deadline: i64) -> oneshot::Receiver<Result<wire::Job>> {
        let (tx, rx) = oneshot::channel();
        w.add("t".into(), id.into(), deadline, tx);
        rx
    }

    #[test]
    fn waiters_are_woken_by_job_or_by_deadline() {
        let mut w = JobWaiters::default();
        let _a1 = add(&mut w, "a", 30);
        let _a2 = add(&mut w, "a", 10);
        let _b = add(&mut w, "b", 20);
        assert_eq!((w.len(), w.next_deadline()), (3, Some(10)));
        assert_eq!(w.take_job("t", "a").len(), 2);
        assert!(w.take_job("t", "a").is_empty());
        assert!(w.take_job("other", "b").is_empty(), "jobs are per tenant");
        assert_eq!(w.next_deadline(), Some(20));
        assert!(w.take_expired(19).is_empty());
        let expired = w.take_expired(20);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].id, "b");
        assert!(w.is_empty());
        assert!(w.by_job.is_empty() && w.deadlines.is_empty());
    }

    #[test]
    fn the_sweep_drops_closed_callers_a_budget_at_a_time() {
        let mut w = JobWaiters::default();
        let mut live = Vec::new();
        for i in 0..10 {
            let rx = add(&mut w, &format!("j{i}"), 100 + i);
            if i % 2 == 0 {
                live.push(rx); // odd ones: the caller went away
            }
        }
        w.sweep(4);
        assert_eq!(w.len(), 8, "the first four checked, two of them closed");
        w.sweep(4);
        w.sweep(4);
        assert_eq!(w.len(), 5);
        w.sweep(4); // wrapped around: nothing left to drop
        assert_eq!(w.len(), 5);
        assert_eq!(w.drain().len(), 5);
        assert!(w.is_empty());
        drop(live);
    }
}
