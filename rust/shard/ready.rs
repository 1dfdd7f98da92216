//! The ready index: due jobs per queue, ordered by priority (highest first), then due time,
//! then enqueue sequence, with tenants taking turns inside one priority level.
//!
//! Each (queue, priority, tenant) group is a `Page` of its READY store range: memory holds the
//! head of each group and the store the rest, so memory does not grow with the backlog. The
//! shard refills a group's head from the store when `pop` or `remove` reports it ran empty.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, VecDeque};

use super::page::{Page, Placed, SortKey};
use crate::keys;

/// A job waiting to run: what the WAITING and READY keys name and the indexes hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub tenant: String,
    pub job_id: String,
    pub queue: String,
    pub priority: u32,
    pub due_ms: i64,
    pub seq: u64,
    /// Concurrency keys the job needs a slot of (see concurrency.rs).
    pub keys: Vec<String>,
}

impl Queued {
    pub fn sort_key(&self) -> SortKey {
        (self.due_ms, self.seq)
    }

    /// Whether two entries belong to the same (queue, priority, tenant) group.
    pub fn same_group(&self, other: &Queued) -> bool {
        self.queue == other.queue && self.priority == other.priority && self.tenant == other.tenant
    }

    pub fn group(&self) -> Group {
        Group {
            queue: self.queue.clone(),
            priority: self.priority,
            tenant: self.tenant.clone(),
        }
    }

    /// The job's READY key.
    pub fn ready_key(&self) -> Vec<u8> {
        keys::ready(
            &keys::ready_group(&self.queue, self.priority, &self.tenant),
            self.due_ms,
            self.seq,
        )
    }
}

/// One (queue, priority, tenant) group: one READY store range.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Group {
    pub queue: String,
    pub priority: u32,
    pub tenant: String,
}

impl Group {
    /// The group's READY key prefix.
    pub fn prefix(&self) -> Vec<u8> {
        keys::ready_group(&self.queue, self.priority, &self.tenant)
    }
}

/// One priority level of one queue: each tenant's page, and the turn order of tenants
/// (round-robin: a tenant that was served goes to the back).
#[derive(Debug, Default)]
struct Level {
    tenants: HashMap<String, Page<Queued>>,
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
        let (&(due, seq), _) = level.tenants.get(tenant)?.first()?;
        Some((*prio, due, seq))
    }
}

/// All due jobs of a shard: the head of every group in memory, the rest in the store.
#[derive(Debug, Default)]
pub struct ReadyIndex {
    queues: HashMap<String, QueueIndex>,
}

impl ReadyIndex {
    fn page(&self, g: &Group) -> Option<&Page<Queued>> {
        self.queues
            .get(&g.queue)?
            .levels
            .get(&Reverse(g.priority))?
            .tenants
            .get(&g.tenant)
    }

    fn page_mut(&mut self, g: &Group) -> Option<&mut Page<Queued>> {
        self.queues
            .get_mut(&g.queue)?
            .levels
            .get_mut(&Reverse(g.priority))?
            .tenants
            .get_mut(&g.tenant)
    }

    /// Entries held in memory (heads only).
    pub fn in_memory(&self) -> usize {
        self.queues
            .values()
            .flat_map(|q| q.levels.values())
            .flat_map(|l| l.tenants.values())
            .map(Page::len)
            .sum()
    }

    /// Whether a job just written to READY belongs in memory (then the caller admits it:
    /// `insert`, or a concurrency key's waiters) or stays in the store for a later refill.
    pub fn place(&mut self, w: &Queued) -> Placed<Queued> {
        match self.page_mut(&w.group()) {
            Some(page) => page.place(w.sort_key()),
            None => Placed::Memory(None), // a new group: memory holds all of it
        }
    }

    /// Whether memory already holds this entry in its group's head.
    pub fn contains(&self, w: &Queued) -> bool {
        self.page(&w.group())
            .is_some_and(|p| p.contains(&w.sort_key()))
    }

    /// Puts an admitted job in its group's head (creating the group, complete, if new).
    pub fn insert(&mut self, w: Queued) {
        self.page_or_new(&w.queue, w.priority, &w.tenant, Page::complete)
            .insert(w.sort_key(), w);
    }

    /// Registers a group whose store entries are not read yet (opening the shard); the caller
    /// refills it next.
    pub fn add_unread(&mut self, g: &Group) {
        self.page_or_new(&g.queue, g.priority, &g.tenant, Page::unread);
    }

    /// A group's page, created with `new` (and given a turn) if the group is not in memory.
    fn page_or_new(
        &mut self,
        queue: &str,
        priority: u32,
        tenant: &str,
        new: fn() -> Page<Queued>,
    ) -> &mut Page<Queued> {
        let level = self
            .queues
            .entry(queue.to_string())
            .or_default()
            .levels
            .entry(Reverse(priority))
            .or_default();
        level.tenants.entry(tenant.to_string()).or_insert_with(|| {
            level.turn.push_back(tenant.to_string());
            new()
        })
    }

    /// Where a group's next refill starts: its key prefix and the last key memory holds.
    /// None when the group needs no refill.
    pub fn refill_from(&self, g: &Group) -> Option<Option<SortKey>> {
        self.page(g)
            .filter(|p| p.needs_refill())
            .map(|p| p.loaded())
    }

    /// Records a refill of `g` (see `Page::refilled`) and drops the group if it is done.
    pub fn refilled(&mut self, g: &Group, last: Option<SortKey>, complete: bool) {
        if let Some(page) = self.page_mut(g) {
            page.refilled(last, complete);
        }
        self.drop_if_done(g);
    }

    fn drop_if_done(&mut self, g: &Group) {
        let Some(q) = self.queues.get_mut(&g.queue) else {
            return;
        };
        let Some(level) = q.levels.get_mut(&Reverse(g.priority)) else {
            return;
        };
        if level.tenants.get(&g.tenant).is_some_and(Page::is_done) {
            level.tenants.remove(&g.tenant);
            level.turn.retain(|t| t != &g.tenant);
        }
        if level.tenants.is_empty() {
            q.levels.remove(&Reverse(g.priority));
        }
        if q.levels.is_empty() {
            self.queues.remove(&g.queue);
        }
    }

    /// Removes one entry (cancel) and returns it, if memory held it, with its group when the
    /// group's head ran empty and needs a refill.
    pub fn remove(&mut self, g: &Group, key: SortKey) -> Option<(Queued, Option<Group>)> {
        let page = self.page_mut(g)?;
        let removed = page.remove(&key)?;
        let refill = page.needs_refill().then(|| g.clone());
        self.drop_if_done(g);
        Some((removed, refill))
    }

    /// Whether any of these queues has a due job in memory.
    pub fn has_any(&self, queues: &[String]) -> bool {
        queues.iter().any(|q| self.queues.contains_key(q))
    }

    /// Takes the best due job of these queues: highest priority, then the tenant whose turn it
    /// is, then earliest due time, then enqueue order. Also returns the job's group when its
    /// head ran empty and needs a refill.
    pub fn pop(&mut self, queues: &[String]) -> Option<(Queued, Option<Group>)> {
        let best = queues
            .iter()
            .filter_map(|q| self.queues.get(q).and_then(|qi| qi.head()).map(|h| (h, q)))
            .min_by(|a, b| a.0.cmp(&b.0))?
            .1
            .clone();
        let level = self.queues.get_mut(&best)?.levels.values_mut().next()?;
        let tenant = level.turn.pop_front()?;
        let page = level.tenants.get_mut(&tenant)?;
        let w = page.pop_first()?;
        let needs_refill = page.needs_refill();
        level.turn.push_back(tenant);
        let g = w.group();
        self.drop_if_done(&g);
        Some((w, needs_refill.then_some(g)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(tenant: &str, queue: &str, priority: u32, due_ms: i64, seq: u64) -> Queued {
        Queued {
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
        std::iter::from_fn(|| {
            ix.pop(&queues).map(|(w, refill)| {
                assert!(refill.is_none(), "complete groups never need a refill");
                w.seq
            })
        })
        .collect()
    }

    #[test]
    fn priority_beats_due_time() {
        let mut ix = ReadyIndex::default();
        ix.insert(w("t", "q", 10, 1, 1));
        ix.insert(w("t", "q", 90, 50, 2));
        ix.insert(w("t", "q", 10, 0, 3));
        assert_eq!(drain(&mut ix, &["q"]), vec![2, 3, 1]);
        assert_eq!(ix.in_memory(), 0);
        assert!(ix.queues.is_empty());
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
        assert_eq!(ix.in_memory(), 1);
        assert!(!ix.has_any(&["a".into()]));
        assert!(ix.has_any(&["c".into()]));
    }

    #[test]
    fn remove_takes_one_entry_and_tidies_up() {
        let mut ix = ReadyIndex::default();
        ix.insert(w("t", "q", 50, 0, 1));
        ix.insert(w("u", "q", 50, 0, 2));
        let g = w("t", "q", 50, 0, 1).group();
        assert!(ix.remove(&g, (0, 1)).is_some());
        assert!(ix.remove(&g, (0, 1)).is_none());
        assert_eq!(drain(&mut ix, &["q"]), vec![2]);
        assert!(ix.queues.is_empty());
    }

    #[test]
    fn an_empty_head_of_a_paged_group_asks_for_a_refill() {
        let mut ix = ReadyIndex::default();
        let g = w("t", "q", 50, 0, 1).group();
        ix.add_unread(&g);
        assert_eq!(ix.refill_from(&g), Some(None));
        ix.insert(w("t", "q", 50, 0, 1));
        ix.insert(w("t", "q", 50, 0, 2));
        ix.refilled(&g, Some((0, 2)), false);
        assert_eq!(ix.refill_from(&g), None);
        assert_eq!(
            ix.place(&w("t", "q", 50, 0, 3)),
            Placed::Store,
            "after loaded: stays in the store"
        );
        let qs = vec!["q".to_string()];
        assert_eq!(ix.pop(&qs).map(|(w, r)| (w.seq, r)), Some((1, None)));
        assert_eq!(
            ix.pop(&qs).map(|(w, r)| (w.seq, r)),
            Some((2, Some(g.clone())))
        );
        assert_eq!(ix.refill_from(&g), Some(Some((0, 2))));
        ix.refilled(&g, None, true);
        assert!(
            !ix.has_any(&qs),
            "a group read to its end with nothing left is gone"
        );
    }
}
