//! LeaseTasks over the shards this process serves (docs/cluster.md#leasetasks-over-shards).
//!
//! With one local shard the call goes straight to it. With several, a lease must still hand
//! out tasks in the §2 order — priority first, tenants taking turns — never more than
//! `max_tasks`, and a long-poll must wake when any shard gets a due job:
//!
//! 1. every shard answers a peek (what its ready index would hand out next: per priority
//!    level, its tenants in turn order with how many jobs each could give), taking nothing;
//! 2. `plan` merges the peeks into one order: by priority, then by round (a tenant's n-th job
//!    comes after every tenant's (n-1)-th), then by turn position, shards alternating across
//!    calls on ties; its first `max_tasks` entries say how many tasks to take from each shard;
//! 3. each shard takes its count (its own order is the one the peek showed), and the tasks are
//!    answered in the merged order.
//!
//! A shard may give fewer than planned (another call took them meanwhile): the lease answers
//! what it got, so it can fall short but never over-lease. When nothing is due and the call
//! may wait, it watches every shard at once and runs the three steps again when one wakes.

use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::{join_all, select_all};

use crate::error::Result;
use crate::proto::wire;
use crate::shard::ready::PeekLevel;
use crate::shard::worker_session::{SessionEvent, SessionSink};
use crate::shard::ShardHandle;
use crate::validate::LeaseParams;

/// Node-level state of leases over several shards.
#[derive(Default)]
pub struct LeaseMerge {
    /// Turns the tie-break between shards each call, so no shard is always first.
    rotation: AtomicU64,
    /// LeaseTasks calls waiting for a due job on any shard (the `lease_waiters` gauge).
    pub waiting: AtomicU64,
}

/// Which shard each of the next tasks comes from, in the merged order: `peeks[i]` is shard
/// i's peek; the result lists shard positions, at most `max` of them.
pub fn plan(peeks: &[Vec<PeekLevel>], max: usize, rotation: u64) -> Vec<usize> {
    let n = peeks.len().max(1) as u64;
    // (priority desc, round, turn position, rotated shard) for each job a shard could give,
    // at most `max` per shard (its own order is the same key order).
    let mut items: Vec<(std::cmp::Reverse<u32>, usize, usize, u64, usize)> = Vec::new();
    for (shard, levels) in peeks.iter().enumerate() {
        let tie = (shard as u64 + rotation) % n;
        let mut given = 0usize;
        'levels: for level in levels {
            let rounds = level.tenants.iter().copied().max().unwrap_or(0);
            for round in 0..rounds {
                for (pos, &count) in level.tenants.iter().enumerate() {
                    if count > round {
                        items.push((std::cmp::Reverse(level.priority), round, pos, tie, shard));
                        given += 1;
                        if given >= max {
                            break 'levels;
                        }
                    }
                }
            }
        }
    }
    items.sort_unstable();
    items.truncate(max);
    items.into_iter().map(|(.., shard)| shard).collect()
}

impl LeaseMerge {
    /// Leases from several local shards in the merged order; see the module doc.
    pub async fn lease(
        &self,
        shards: &[ShardHandle],
        params: LeaseParams,
        now_ms: impl Fn() -> i64,
    ) -> Result<wire::LeaseTasksResponse> {
        let deadline = now_ms() + params.wait_ms;
        loop {
            let tasks = self.take(shards, &params).await?;
            if !tasks.is_empty() || params.wait_ms == 0 || now_ms() >= deadline {
                return Ok(wire::LeaseTasksResponse { tasks });
            }
            self.waiting.fetch_add(1, Ordering::Relaxed);
            let woke = wait_any(shards, &params, deadline).await;
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            if !woke {
                return Ok(wire::LeaseTasksResponse::default());
            }
        }
    }

    /// One round: peek every shard, plan, take.
    async fn take(&self, shards: &[ShardHandle], params: &LeaseParams) -> Result<Vec<wire::Task>> {
        let max = params.max_tasks as usize;
        let peeks = join_all(
            shards
                .iter()
                .map(|s| s.peek_ready(params.queues.clone(), max, params.tenants.clone())),
        )
        .await;
        // A shard that cannot answer (moving, failed) gives nothing this round.
        let peeks: Vec<Vec<PeekLevel>> = peeks.into_iter().map(|p| p.unwrap_or_default()).collect();
        let order = plan(&peeks, max, self.rotation.fetch_add(1, Ordering::Relaxed));
        if order.is_empty() {
            return Ok(Vec::new());
        }
        let mut counts = vec![0u32; shards.len()];
        for &s in &order {
            counts[s] += 1;
        }
        let taken = join_all(
            counts
                .iter()
                .enumerate()
                .filter(|(_, &k)| k > 0)
                .map(|(s, &k)| {
                    let p = LeaseParams {
                        worker_id: params.worker_id.clone(),
                        max_tasks: k,
                        queues: params.queues.clone(),
                        wait_ms: 0,
                        tenants: params.tenants.clone(),
                    };
                    async move { (s, shards[s].lease_tasks(p).await) }
                }),
        )
        .await;
        let mut per_shard: Vec<std::collections::VecDeque<wire::Task>> =
            vec![Default::default(); shards.len()];
        let mut first_error = None;
        for (s, r) in taken {
            match r {
                Ok(resp) => per_shard[s].extend(resp.tasks),
                Err(e) => {
                    tracing::warn!(shard = shards[s].shard, "lease from one shard failed: {e}");
                    first_error.get_or_insert(e);
                }
            }
        }
        let mut tasks = Vec::with_capacity(order.len());
        for s in order {
            if let Some(t) = per_shard[s].pop_front() {
                tasks.push(t);
            }
        }
        match first_error {
            Some(e) if tasks.is_empty() => Err(e),
            _ => Ok(tasks),
        }
    }
}

/// How long a session fed from several shards waits on them before it looks again (a bound,
/// not a poll: every shard wakes it as soon as a job is due).
const SESSION_WAIT_MS: i64 = 60_000;

impl LeaseMerge {
    /// Feeds one WorkerSession from several local shards (docs/cluster.md#worker-sessions): while
    /// it has credit, takes up to the credit in the merged order (`take`, never more) and sends
    /// the tasks to `sink`; with nothing due, waits on every shard at once and for more credit.
    /// `grants` carries the credit the worker grants after `credit`; when it closes (the session
    /// ends) or the shards close, the feed stops and drops `sink`, which ends the session once
    /// the tasks sent have been delivered.
    pub async fn feed_session(
        &self,
        shards: Vec<ShardHandle>,
        lease: LeaseParams,
        mut credit: u32,
        mut grants: tokio::sync::mpsc::UnboundedReceiver<u32>,
        sink: SessionSink,
        now_ms: impl Fn() -> i64,
    ) {
        loop {
            while let Ok(n) = grants.try_recv() {
                credit = credit.saturating_add(n);
            }
            if credit == 0 {
                match grants.recv().await {
                    Some(n) => credit = n,
                    None => return,
                }
                continue;
            }
            let params = LeaseParams {
                max_tasks: credit,
                wait_ms: 0,
                ..lease.clone()
            };
            match self.take(&shards, &params).await {
                Ok(tasks) if !tasks.is_empty() => {
                    credit -= (tasks.len() as u32).min(credit);
                    if sink.send(SessionEvent::Tasks(tasks)).is_err() {
                        return;
                    }
                    continue;
                }
                Ok(_) => {}
                // The shards are closing (or failed): the session ends; the worker opens another.
                Err(_) => return,
            }
            let deadline = now_ms() + SESSION_WAIT_MS;
            tokio::select! {
                woke = wait_any(&shards, &lease, deadline) => {
                    // Every shard refused the watch before the deadline: they are closing.
                    if !woke && now_ms() < deadline {
                        return;
                    }
                }
                grant = grants.recv() => match grant {
                    Some(n) => credit = credit.saturating_add(n),
                    None => return,
                },
            }
        }
    }
}

/// Waits until any shard has a due job of the lease's queues and tenants (true) or the deadline
/// passes (false).
async fn wait_any(shards: &[ShardHandle], lease: &LeaseParams, deadline_ms: i64) -> bool {
    let mut pending: Vec<_> = shards
        .iter()
        .map(|s| Box::pin(s.watch_ready(lease.queues.clone(), lease.tenants.clone(), deadline_ms)))
        .collect();
    while !pending.is_empty() {
        let (r, _, rest) = select_all(pending).await;
        match r {
            Ok(true) => return true,
            // Deadline passed (all shards share it) or the shard closed: look at the others.
            Ok(false) | Err(_) => pending = rest,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(priority: u32, tenants: &[usize]) -> PeekLevel {
        PeekLevel {
            priority,
            tenants: tenants.to_vec(),
        }
    }

    #[test]
    fn priority_comes_first_across_shards() {
        let peeks = vec![
            vec![level(10, &[5])],
            vec![level(90, &[2]), level(10, &[5])],
        ];
        assert_eq!(plan(&peeks, 4, 0), vec![1, 1, 0, 1]);
    }

    #[test]
    fn tenants_of_all_shards_take_turns() {
        // Shard 0: one big tenant; shard 1: three tenants with one job each.
        let peeks = vec![vec![level(50, &[100])], vec![level(50, &[1, 1, 1])]];
        let order = plan(&peeks, 6, 0);
        // Round 0 gives every tenant one job (4 tenants), then the big one continues.
        assert_eq!(order.iter().filter(|&&s| s == 1).count(), 3);
        assert_eq!(order.len(), 6);
        assert_eq!(&order[4..], &[0, 0]);
    }

    #[test]
    fn never_more_than_max_and_nothing_from_empty_shards() {
        let peeks = vec![vec![], vec![level(50, &[1000])], vec![]];
        assert_eq!(plan(&peeks, 7, 3), vec![1; 7]);
        assert!(plan(&[vec![], vec![]], 10, 0).is_empty());
    }

    #[test]
    fn ties_between_shards_rotate_across_calls() {
        let peeks = vec![vec![level(50, &[1])], vec![level(50, &[1])]];
        assert_eq!(plan(&peeks, 1, 0), vec![0]);
        assert_eq!(plan(&peeks, 1, 1), vec![1]);
    }

    #[test]
    fn a_shard_plan_is_a_prefix_of_its_own_order() {
        // The shard hands out tenant A, B, A, A (A has 3, B has 1); the plan must count a
        // prefix of that from it, whatever the other shard holds.
        let peeks = vec![
            vec![level(50, &[3, 1])],
            vec![level(60, &[1]), level(40, &[9])],
        ];
        let order = plan(&peeks, 3, 0);
        assert_eq!(order, vec![1, 0, 0]);
    }
}
