//! Parked LeaseTasks calls (long-polls): each waits, oldest first, until a task of its queues is
//! ready or its wait ends; every step serves them after applying its commands.

use super::handle::Reply;
use super::step::defer;
use super::{Shard, Step};
use crate::proto::wire;
use crate::validate::LeaseParams;

/// A LeaseTasks call parked until a task is ready or its deadline passes.
pub(super) struct ParkedLease {
    pub(super) params: LeaseParams,
    pub(super) deadline_ms: i64,
    pub(super) reply: Reply<wire::LeaseTasksResponse>,
}

impl Shard {
    /// Serves parked calls, oldest first, from the ready index; answers those whose wait ended.
    pub(super) async fn serve_parked(&mut self, st: &mut Step) {
        let mut keep = std::collections::VecDeque::with_capacity(self.parked.len());
        while let Some(w) = self.parked.pop_front() {
            if w.reply.is_closed() {
                continue; // the caller went away: lease nothing for it
            }
            if self.ready.has_any(&w.params.queues) {
                let r = self.take_tasks(st, &w.params).await;
                match r {
                    Ok(tasks) if tasks.is_empty() && w.deadline_ms > st.now => keep.push_back(w),
                    r => st.replies.push(defer(
                        w.reply,
                        r.map(|tasks| wire::LeaseTasksResponse { tasks }),
                    )),
                }
            } else if w.deadline_ms <= st.now {
                st.replies
                    .push(defer(w.reply, Ok(wire::LeaseTasksResponse::default())));
            } else {
                keep.push_back(w);
            }
        }
        self.parked = keep;
    }
}
