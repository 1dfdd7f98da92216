//! The shard's side of LeaseTasks over several shards (rust/broker/lease_tasks.rs): a peek at
//! what the ready index would hand out next, and a watch that answers as soon as any of some
//! queues has a due job (the long-poll of a node with many shards waits on all its shards at
//! once, then takes from the best ones). Neither takes or writes anything.

use super::handle::Reply;
use super::ready::PeekLevel;
use super::step::defer;
use super::{Shard, Step};
use crate::auth::TenantScope;

/// A `WatchReady` call waiting for a due job in one of its queues, or for its deadline.
pub(super) struct ReadyWatch {
    pub(super) queues: Vec<String>,
    /// The caller's tenants: only their jobs wake the watch (docs/security.md).
    pub(super) tenants: TenantScope,
    pub(super) deadline_ms: i64,
    pub(super) reply: Reply<bool>,
}

impl Shard {
    pub(super) fn peek_ready(
        &self,
        queues: &[String],
        max: usize,
        tenants: &TenantScope,
    ) -> Vec<PeekLevel> {
        self.ready.peek(queues, max, tenants)
    }

    /// Answers `true` at once if a job of `queues` is due, else parks the watch.
    pub(super) fn watch_ready(&mut self, st: &mut Step, watch: ReadyWatch) {
        if self.ready.has_any(&watch.queues, &watch.tenants) {
            st.replies.push(defer(watch.reply, Ok(true)));
        } else if watch.deadline_ms <= st.now {
            st.replies.push(defer(watch.reply, Ok(false)));
        } else {
            self.ready_watches.push(watch);
        }
    }

    /// After the parked long-polls took their share: wakes the watches whose queues have a due
    /// job (`true`) or whose deadline passed (`false`); drops those whose caller went away.
    pub(super) fn serve_ready_watches(&mut self, st: &mut Step) {
        if self.ready_watches.is_empty() {
            return;
        }
        let watches = std::mem::take(&mut self.ready_watches);
        for w in watches {
            if w.reply.is_closed() {
                continue;
            }
            if self.ready.has_any(&w.queues, &w.tenants) {
                st.replies.push(defer(w.reply, Ok(true)));
            } else if w.deadline_ms <= st.now {
                st.replies.push(defer(w.reply, Ok(false)));
            } else {
                self.ready_watches.push(w);
            }
        }
    }

    pub(super) fn next_watch_deadline(&self) -> Option<i64> {
        self.ready_watches.iter().map(|w| w.deadline_ms).min()
    }
}
