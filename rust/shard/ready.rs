//! The ready index: due jobs per queue, ordered by priority (highest first), then due time,
//! then enqueue sequence, with tenants taking turns inside one priority level.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// A job waiting to run: what the WAITING key and the indexes hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub tenant: String,
    pub job_id: String,
    pub queue: String,
    pub priority: u32,
    pub due_ms: i64,
    pub seq: u64,
    /// Concurrency keys the job needs a slot of (see concurrency.rs).
    pub keys: Vec<String>,
}

/// One priority level of one queue: each tenant's jobs in (due, seq) order, and the turn
/// order of tenants (round-robin: a tenant that was served goes to the back).
#[derive(Debug, Default)]
struct Level {
    tenants: HashMap<String, BTreeMap<(i64, u64), Waiting>>,
    turn: VecDeque<String>,
}

#[derive(Debug, Default)]
struct QueueIndex {
    levels: BTreeMap<Reverse<u32>, Level>,
}

impl QueueIndex {
    /// The sort key of the job this queue would hand out next.
    fn head(&self) -> Option<(Reverse<u32>, i64, u64)> {
        let (prio, level) = self.levels.iter().next()?;
        let tenant = level.turn.front()?;
        let (&(due, seq), _) = level.tenants.get(tenant)?.iter().next()?;
        Some((*prio, due, seq))
    }

    fn pop(&mut self) -> Option<Waiting> {
        let mut entry = self.levels.first_entry()?;
        let level = entry.get_mut();
        let tenant = level.turn.pop_front()?;
        let jobs = level.tenants.get_mut(&tenant)?;
        let (_, w) = jobs.pop_first()?;
        if jobs.is_empty() {
            level.tenants.remove(&tenant);
        } else {
            level.turn.push_back(tenant);
        }
        if level.tenants.is_empty() {
            entry.remove();
        }
        Some(w)
    }
}

/// All due jobs of a shard. Memory: one entry per due job.
#[derive(Debug, Default)]
pub struct ReadyIndex {
    queues: HashMap<String, QueueIndex>,
    len: usize,
}

impl ReadyIndex {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn insert(&mut self, w: Waiting) {
        let level = self
            .queues
            .entry(w.queue.clone())
            .or_default()
            .levels
            .entry(Reverse(w.priority))
            .or_default();
        let jobs = level.tenants.entry(w.tenant.clone()).or_insert_with(|| {
            level.turn.push_back(w.tenant.clone());
            BTreeMap::new()
        });
        if jobs.insert((w.due_ms, w.seq), w).is_none() {
            self.len += 1;
        }
    }

    /// Removes one entry (cancel) and returns it, if it was there.
    pub fn remove(
        &mut self,
        queue: &str,
        priority: u32,
        tenant: &str,
        due_ms: i64,
        seq: u64,
    ) -> Option<Waiting> {
        let q = self.queues.get_mut(queue)?;
        let level = q.levels.get_mut(&Reverse(priority))?;
        let jobs = level.tenants.get_mut(tenant)?;
        let removed = jobs.remove(&(due_ms, seq))?;
        self.len -= 1;
        if jobs.is_empty() {
            level.tenants.remove(tenant);
            level.turn.retain(|t| t != tenant);
            if level.tenants.is_empty() {
                q.levels.remove(&Reverse(priority));
            }
        }
        if q.levels.is_empty() {
            self.queues.remove(queue);
        }
        Some(removed)
    }

    /// Whether any of these queues has a due job.
    pub fn has_any(&self, queues: &[String]) -> bool {
        queues.iter().any(|q| self.queues.contains_key(q))
    }

    /// Takes the best due job of these queues: highest priority, then the tenant whose turn it
    /// is, then earliest due time, then enqueue order.
    pub fn pop(&mut self, queues: &[String]) -> Option<Waiting> {
        let best = queues
            .iter()
            .filter_map(|q| self.queues.get(q).and_then(|qi| qi.head()).map(|h| (h, q)))
            .min_by(|a, b| a.0.cmp(&b.0))?
            .1
            .clone();
        let qi = self.queues.get_mut(&best)?;
        let w = qi.pop()?;
        if qi.levels.is_empty() {
            self.queues.remove(&best);
        }
        self.len -= 1;
        Some(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(tenant: &str, queue: &str, priority: u32, due_ms: i64, seq: u64) -> Waiting {
        Waiting {
            tenant: tenant.into(),
            job_id: format!("{tenant}-{seq}"),
            queue: queue.into(),
            priority,
            due_ms,
            seq,
            keys: Vec::new(),
        }
    }

    fn drain(ix: &mut ReadyIndex, queues: &[&str]) -> Vec<u64> {
        let queues: Vec<String> = queues.iter().map(|q| q.to_string()).collect();
        std::iter::from_fn(|| ix.pop(&queues).map(|w| w.seq)).collect()
    }

    #[test]
    fn priority_beats_due_time() {
        let mut ix = ReadyIndex::default();
        ix.insert(w("t", "q", 10, 1, 1));
        ix.insert(w("t", "q", 90, 50, 2));
        ix.insert(w("t", "q", 10, 0, 3));
        assert_eq!(drain(&mut ix, &["q"]), vec![2, 3, 1]);
        assert!(ix.is_empty());
    }

    #[test]
    fn fifo_by_due_then_seq() {
        let mut ix = ReadyIndex::default();
        ix.insert(w("t", "q", 50, 5, 3));
        ix.insert(w("t", "q", 50, 5, 2));
        ix.insert(w("t", "q", 50, 4, 9));
        assert_eq!(drain(&mut ix, &["q"]), vec![9, 2, 3]);
    }

    #[test]
    fn tenants_take_turns_within_a_level() {
        let mut ix = ReadyIndex::default();
        for s in 1..=3 {
            ix.insert(w("big", "q", 50, 0, s));
        }
        ix.insert(w("small", "q", 50, 10, 4));
        ix.insert(w("other", "q", 50, 20, 5));
        assert_eq!(drain(&mut ix, &["q"]), vec![1, 4, 5, 2, 3]);
    }

    #[test]
    fn queues_merge_in_priority_order_and_stay_apart() {
        let mut ix = ReadyIndex::default();
        ix.insert(w("t", "a", 10, 0, 1));
        ix.insert(w("t", "b", 20, 5, 2));
        ix.insert(w("t", "c", 99, 0, 3));
        assert_eq!(drain(&mut ix, &["a", "b"]), vec![2, 1]);
        assert_eq!(ix.len(), 1);
        assert!(!ix.has_any(&["a".into()]));
        assert!(ix.has_any(&["c".into()]));
    }

    #[test]
    fn remove_takes_one_entry_and_tidies_up() {
        let mut ix = ReadyIndex::default();
        ix.insert(w("t", "q", 50, 0, 1));
        ix.insert(w("u", "q", 50, 0, 2));
        assert!(ix.remove("q", 50, "t", 0, 1).is_some());
        assert!(ix.remove("q", 50, "t", 0, 1).is_none());
        assert_eq!(drain(&mut ix, &["q"]), vec![2]);
        assert!(ix.queues.is_empty());
    }
}
