//! The waiters for tasks: parked LeaseTasks calls (long-polls) and worker sessions with credit,
//! in one queue, oldest first. Every step serves them after applying its commands: a long-poll
//! is answered once it gets tasks or its wait ends; a session that got tasks goes to the back, so
//! sessions and long-polls take turns (docs/architecture.md#worker-sessions).

use std::collections::VecDeque;

use super::handle::Reply;
use super::step::defer;
use super::worker_session::{SessionId, Turn};
use super::{Shard, Step};
use crate::proto::wire;
use crate::validate::LeaseParams;

/// A LeaseTasks call parked until a task is ready or its deadline passes.
pub(super) struct ParkedLease {
    pub(super) params: LeaseParams,
    pub(super) deadline_ms: i64,
    pub(super) reply: Reply<wire::LeaseTasksResponse>,
}

/// One entry of the waiter queue.
pub(super) enum Waiter {
    Lease(ParkedLease),
    /// A session with credit (shard/worker_session.rs); a closed one is dropped when reached.
    Session(SessionId),
}

impl Shard {
    /// What a waiter leases: its queues and tenants (None for a session already closed).
    fn waiter_lease<'a>(&'a self, w: &'a Waiter) -> Option<&'a LeaseParams> {
        match w {
            Waiter::Lease(p) => Some(&p.params),
            Waiter::Session(id) => self.sessions.get(*id).map(|s| &s.lease),
        }
    }

    /// Whether a waiter could take a task that is ready now: a new LeaseTasks call then queues
    /// behind it instead of taking the task first.
    pub(super) fn waiter_has_ready(&self) -> bool {
        self.parked.iter().any(|w| {
            self.waiter_lease(w)
                .is_some_and(|l| self.ready.has_any(&l.queues, &l.tenants))
        })
    }

    /// Parked LeaseTasks calls (the `lease_waiters` gauge).
    pub(super) fn parked_leases(&self) -> usize {
        self.parked
            .iter()
            .filter(|w| matches!(w, Waiter::Lease(_)))
            .count()
    }

    /// Serves the waiters, oldest first, from the ready index; answers the long-polls whose wait
    /// ended. Sessions that were served and still have credit go to the back.
    pub(super) async fn serve_parked(&mut self, st: &mut Step) {
        let mut keep = VecDeque::with_capacity(self.parked.len());
        let mut served = Vec::new();
        while let Some(w) = self.parked.pop_front() {
            match w {
                Waiter::Lease(w) => {
                    if let Some(w) = self.serve_lease(st, w).await {
                        keep.push_back(Waiter::Lease(w));
                    }
                }
                Waiter::Session(id) => match self.serve_session(st, id).await {
                    Turn::Waits => keep.push_back(Waiter::Session(id)),
                    Turn::Served => served.push(Waiter::Session(id)),
                    Turn::Leaves => {}
                },
            }
        }
        keep.extend(served);
        self.parked = keep;
    }

    /// Serves one parked LeaseTasks call; returns it if it keeps waiting.
    async fn serve_lease(&mut self, st: &mut Step, w: ParkedLease) -> Option<ParkedLease> {
        if w.reply.is_closed() {
            return None; // the caller went away: lease nothing for it
        }
        if self.ready.has_any(&w.params.queues, &w.params.tenants) {
            let r = self.take_tasks(st, &w.params).await;
            match r {
                Ok(tasks) if tasks.is_empty() && w.deadline_ms > st.now => Some(w),
                r => {
                    st.replies.push(defer(
                        w.reply,
                        r.map(|tasks| wire::LeaseTasksResponse { tasks }),
                    ));
                    None
                }
            }
        } else if w.deadline_ms <= st.now {
            st.replies
                .push(defer(w.reply, Ok(wire::LeaseTasksResponse::default())));
            None
        } else {
            Some(w)
        }
    }
}
