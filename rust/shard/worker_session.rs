//! WorkerSession in the actor: a session is a LeaseTasks long-poll that never ends. While it has
//! credit it waits in the queue of parked LeaseTasks calls (parked.rs) and is served from the
//! same take-tasks path; the tasks it takes reach it once their step is durable. See
//! docs/architecture.md#worker-sessions.

use std::collections::HashMap;

use tokio::sync::mpsc;

use super::parked::Waiter;
use super::{Shard, Step};
use crate::proto::wire;
use crate::validate::LeaseParams;

/// A session's id, unique in the process (rust/streams/worker_session.rs allocates them).
pub type SessionId = u64;

/// What the actor sends a session.
#[derive(Debug)]
pub enum SessionEvent {
    /// Tasks leased to the session's worker; their leases are durable.
    Tasks(Vec<wire::Task>),
    /// Tasks were taken for the session but their step did not become durable, so they were
    /// never leased (the store's recovery puts them back): the credit they used is the
    /// session's again, and the session must grant it anew.
    Lost(u32),
}

/// Where the actor sends a session's events. The actor drops it when the session closes (or the
/// shard closes): the receiver then sees the end once every delivery in flight has arrived.
pub type SessionSink = mpsc::UnboundedSender<SessionEvent>;

/// A new session: its worker and queues (`lease.max_tasks` and `lease.wait_ms` unused), its
/// first credit, and where its tasks go.
#[derive(Debug)]
pub struct SessionOpen {
    pub id: SessionId,
    pub lease: LeaseParams,
    pub credit: u32,
    pub sink: SessionSink,
}

/// One open session.
pub(super) struct Session {
    /// The session's worker and queues; `max_tasks` is set to the credit at each take.
    pub(super) lease: LeaseParams,
    /// Tasks it may still take.
    pub(super) credit: u32,
    pub(super) sink: SessionSink,
    /// Whether it is in the waiter queue (exactly when it has credit).
    pub(super) waiting: bool,
}

/// What a session's turn in the waiter queue left it as.
pub(super) enum Turn {
    /// It took nothing and keeps its place.
    Waits,
    /// It took tasks and has credit left: it goes to the back, behind the other waiters.
    Served,
    /// It leaves the queue: no credit left, or closed.
    Leaves,
}

/// Every open session of the shard. Memory only: a session is a connection, not state.
#[derive(Default)]
pub(super) struct Sessions {
    by_id: HashMap<SessionId, Session>,
}

impl Sessions {
    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    pub(super) fn get(&self, id: SessionId) -> Option<&Session> {
        self.by_id.get(&id)
    }

    pub(super) fn get_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        self.by_id.get_mut(&id)
    }

    pub(super) fn remove(&mut self, id: SessionId) -> Option<Session> {
        self.by_id.remove(&id)
    }

    /// Ends every session (the shard closes): their sinks drop.
    pub(super) fn clear(&mut self) {
        self.by_id.clear();
    }
}

impl Shard {
    /// Registers a session; with credit, it waits for tasks from this step on.
    pub(super) fn session_open(&mut self, open: SessionOpen) {
        let session = Session {
            lease: open.lease,
            credit: 0,
            sink: open.sink,
            waiting: false,
        };
        self.sessions.by_id.insert(open.id, session);
        self.session_credits(open.id, open.credit);
    }

    /// Adds credit to a session (unknown ids are sessions already closed: ignored). The caller
    /// keeps the credit bounded (validate::MAX_SESSION_CREDIT).
    pub(super) fn session_credits(&mut self, id: SessionId, credit: u32) {
        let Some(s) = self.sessions.by_id.get_mut(&id) else {
            return;
        };
        s.credit = s.credit.saturating_add(credit);
        if s.credit > 0 && !s.waiting {
            s.waiting = true;
            self.parked.push_back(Waiter::Session(id));
        }
    }

    /// Forgets a session: it takes no more tasks. Its waiter entry is dropped when reached.
    pub(super) fn session_close(&mut self, id: SessionId) {
        self.sessions.remove(id);
    }

    /// Serves one waiting session: takes up to its credit of ready tasks and sends them once the
    /// step is durable.
    pub(super) async fn serve_session(&mut self, st: &mut Step, id: SessionId) -> Turn {
        let Some(s) = self.sessions.get(id) else {
            return Turn::Leaves;
        };
        if s.sink.is_closed() {
            // The session's stream is gone: lease nothing for it.
            self.sessions.remove(id);
            return Turn::Leaves;
        }
        if !self.ready.has_any(&s.lease.queues, &s.lease.tenants) {
            return Turn::Waits;
        }
        let mut lease = s.lease.clone();
        lease.max_tasks = s.credit;
        let tasks = match self.take_tasks(st, &lease).await {
            Ok(tasks) => tasks,
            Err(e) => {
                // The store failed: the session keeps waiting, and recovery runs next step.
                tracing::warn!(session = id, "leasing for a worker session failed: {e}");
                return Turn::Waits;
            }
        };
        let Some(s) = self.sessions.get_mut(id) else {
            return Turn::Leaves;
        };
        if tasks.is_empty() {
            return Turn::Waits;
        }
        let n = tasks.len() as u32;
        s.credit -= n;
        let sink = s.sink.clone();
        st.replies.push(Box::new(move |durable| {
            let event = match durable {
                Ok(()) => SessionEvent::Tasks(tasks),
                Err(_) => SessionEvent::Lost(n),
            };
            // A session that went away meanwhile leaves its tasks leased until they expire.
            let _ = sink.send(event);
        }));
        if s.credit == 0 {
            s.waiting = false;
            Turn::Leaves
        } else {
            Turn::Served
        }
    }
}
