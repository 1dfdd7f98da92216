//! The ready index: due jobs per queue, ordered by priority (highest first), then due time,
//! then enqueue sequence, with tenants taking turns inside one priority level. A lease naming
//! several queues takes from them in that same order, as if they were one queue.
//!
//! Each (queue, priority, tenant) group is a `Page` of its READY store range: memory holds the
//! head of each group and the store the rest, so memory does not grow with the backlog. The
//! shard refills a group's head from the store when `pop` or `remove` reports it ran empty.
//!
//! A paused (queue, tenant) (docs/architecture.md#paused-queues) keeps its groups aside, in
//! `held`, where no lease looks: pausing and resuming move its pages (one per priority level),
//! so a lease never scans past paused work.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::page::{Page, Placed, SortKey};
use crate::auth::TenantScope;
use crate::keys;

/// A queued job: what its SCHEDULED or READY key names and the in-memory indexes hold.
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
    /// Rate-limit keys the job needs a token of (see concurrency.rs and bucket.rs).
    pub rate_keys: Vec<String>,
}

impl Queued {
    pub fn sort_key(&self) -> SortKey {
        (self.due_ms, self.seq)
    }

    /// Whether two entries belong to the same (queue, priority, tenant) group.
    /// Whether the job needs room in any key before it may be leased (concurrency.rs).
    pub fn gated(&self) -> bool {
        !self.keys.is_empty() || !self.rate_keys.is_empty()
    }

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

/// One priority level of a `ReadyIndex::peek`: how many jobs each tenant whose turn comes
/// could give, in turn order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeekLevel {
    pub priority: u32,
    pub tenants: Vec<usize>,
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

/// One priority level of one queue: each tenant's page, and the tenants in turn order (the
/// turn of the tenant served longest ago comes first).
#[derive(Debug, Default)]
struct Level {
    tenants: HashMap<String, Page<Queued>>,
    turn: BTreeSet<(u64, String)>,
}

#[derive(Debug, Default)]
struct QueueIndex {
    levels: BTreeMap<Reverse<u32>, Level>,
}

/// The turn of one tenant at one priority, shared by every queue: serving the tenant from one
/// queue moves it to the back in all of them, so a lease naming several queues merges them as
/// if they were one (docs/architecture.md#ready-index).
#[derive(Debug)]
struct Turn {
    tick: u64,
    /// The queues whose level at this priority holds the tenant.
    queues: Vec<String>,
}

/// All due jobs of a shard: the head of every group in memory, the rest in the store.
#[derive(Debug, Default)]
pub struct ReadyIndex {
    queues: HashMap<String, QueueIndex>,
    turns: HashMap<(u32, String), Turn>,
    /// The next turn tick: a tenant served or newly arrived takes it and goes to the back.
    next_tick: u64,
    /// Paused queues: queue -> tenants.
    paused: HashMap<String, HashSet<String>>,
    /// The groups of paused (queue, tenant) pairs, by priority; no lease sees them.
    held: HashMap<(String, String), BTreeMap<u32, Page<Queued>>>,
}

impl ReadyIndex {
    /// Whether leases skip this queue of this tenant.
    pub fn is_paused(&self, queue: &str, tenant: &str) -> bool {
        !self.paused.is_empty() && self.paused.get(queue).is_some_and(|t| t.contains(tenant))
    }

    /// (queue, tenant) pairs paused.
    pub fn paused_count(&self) -> usize {
        self.paused.values().map(HashSet::len).sum()
    }

    /// Pauses a queue of a tenant: its groups move aside, where no lease sees them. Returns
    /// the entries they hold that needed room in a key (each holds reservations the caller
    /// must give back: a paused job holds none). Idempotent.
    pub fn pause(&mut self, queue: &str, tenant: &str) -> Vec<Queued> {
        if !self
            .paused
            .entry(queue.to_string())
            .or_default()
            .insert(tenant.to_string())
        {
            return Vec::new();
        }
        let mut moved: BTreeMap<u32, Page<Queued>> = BTreeMap::new();
        if let Some(q) = self.queues.get_mut(queue) {
            for (prio, level) in q.levels.iter_mut() {
                if let Some(page) = level.tenants.remove(tenant) {
                    moved.insert(prio.0, page);
                }
            }
        }
        for &priority in moved.keys() {
            self.leave_turn(queue, priority, tenant);
        }
        if let Some(q) = self.queues.get_mut(queue) {
            q.levels.retain(|_, level| !level.tenants.is_empty());
            if q.levels.is_empty() {
                self.queues.remove(queue);
            }
        }
        let gated = moved
            .values()
            .flat_map(|p| p.values())
            .filter(|w| w.gated())
            .cloned()
            .collect();
        if !moved.is_empty() {
            self.held
                .insert((queue.to_string(), tenant.to_string()), moved);
        }
        gated
    }

    /// Resumes a paused queue of a tenant: its groups rejoin the lease order (the tenant takes
    /// a turn at the back of each level). Returns the entries that need room in a key, taken
    /// out of their pages for the caller to admit again, and every group resumed (the caller
    /// refills those whose head ran empty). Idempotent.
    pub fn resume(&mut self, queue: &str, tenant: &str) -> (Vec<Queued>, Vec<Group>) {
        let was = self.paused.get_mut(queue).is_some_and(|t| t.remove(tenant));
        if self.paused.get(queue).is_some_and(HashSet::is_empty) {
            self.paused.remove(queue);
        }
        if !was {
            return (Vec::new(), Vec::new());
        }
        let Some(pages) = self.held.remove(&(queue.to_string(), tenant.to_string())) else {
            return (Vec::new(), Vec::new());
        };
        let mut gated = Vec::new();
        let mut groups = Vec::new();
        for (priority, mut page) in pages {
            let g = Group {
                queue: queue.to_string(),
                priority,
                tenant: tenant.to_string(),
            };
            gated.extend(page.take_where(Queued::gated));
            *self.page_or_new(&g, Page::complete) = page;
            groups.push(g);
        }
        (gated, groups)
    }

    /// Takes a tenant out of the turn order of one priority in one queue.
    fn leave_turn(&mut self, queue: &str, priority: u32, tenant: &str) {
        let id = (priority, tenant.to_string());
        let Some(turn) = self.turns.get_mut(&id) else {
            return;
        };
        if let Some(level) = self
            .queues
            .get_mut(queue)
            .and_then(|q| q.levels.get_mut(&Reverse(priority)))
        {
            level.turn.remove(&(turn.tick, tenant.to_string()));
        }
        turn.queues.retain(|name| name != queue);
        if turn.queues.is_empty() {
            self.turns.remove(&id);
        }
    }

    fn held_page(&self, g: &Group) -> Option<&Page<Queued>> {
        self.held
            .get(&(g.queue.clone(), g.tenant.clone()))?
            .get(&g.priority)
    }

    fn page(&self, g: &Group) -> Option<&Page<Queued>> {
        if self.is_paused(&g.queue, &g.tenant) {
            return self.held_page(g);
        }
        self.queues
            .get(&g.queue)?
            .levels
            .get(&Reverse(g.priority))?
            .tenants
            .get(&g.tenant)
    }

    fn page_mut(&mut self, g: &Group) -> Option<&mut Page<Queued>> {
        if self.is_paused(&g.queue, &g.tenant) {
            return self
                .held
                .get_mut(&(g.queue.clone(), g.tenant.clone()))?
                .get_mut(&g.priority);
        }
        self.queues
            .get_mut(&g.queue)?
            .levels
            .get_mut(&Reverse(g.priority))?
            .tenants
            .get_mut(&g.tenant)
    }

    /// Entries held in memory (heads only, paused ones included).
    pub fn in_memory(&self) -> usize {
        let active: usize = self
            .queues
            .values()
            .flat_map(|q| q.levels.values())
            .flat_map(|l| l.tenants.values())
            .map(Page::len)
            .sum();
        let held: usize = self
            .held
            .values()
            .flat_map(|p| p.values())
            .map(Page::len)
            .sum();
        active + held
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
        self.page_or_new(&w.group(), Page::complete)
            .insert(w.sort_key(), w);
    }

    /// Registers a group whose store entries are not read yet (opening the shard); the caller
    /// refills it next.
    pub fn add_unread(&mut self, g: &Group) {
        self.page_or_new(g, Page::unread);
    }

    /// A group's page, created with `new` if the group is not in memory. A new group takes
    /// its tenant's turn at that priority, or the back of the line if the tenant has none.
    fn page_or_new(&mut self, g: &Group, new: fn() -> Page<Queued>) -> &mut Page<Queued> {
        if self.is_paused(&g.queue, &g.tenant) {
            return self
                .held
                .entry((g.queue.clone(), g.tenant.clone()))
                .or_default()
                .entry(g.priority)
                .or_insert_with(new);
        }
        let level = self
            .queues
            .entry(g.queue.clone())
            .or_default()
            .levels
            .entry(Reverse(g.priority))
            .or_default();
        if !level.tenants.contains_key(&g.tenant) {
            let turn = self
                .turns
                .entry((g.priority, g.tenant.clone()))
                .or_insert_with(|| {
                    self.next_tick += 1;
                    Turn {
                        tick: self.next_tick,
                        queues: Vec::new(),
                    }
                });
            turn.queues.push(g.queue.clone());
            level.turn.insert((turn.tick, g.tenant.clone()));
            level.tenants.insert(g.tenant.clone(), new());
        }
        level
            .tenants
            .get_mut(&g.tenant)
            .expect("the group's page was just ensured")
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
        if self.is_paused(&g.queue, &g.tenant) {
            let id = (g.queue.clone(), g.tenant.clone());
            if let Some(pages) = self.held.get_mut(&id) {
                if pages.get(&g.priority).is_some_and(Page::is_done) {
                    pages.remove(&g.priority);
                }
                if pages.is_empty() {
                    self.held.remove(&id);
                }
            }
            return;
        }
        let Some(q) = self.queues.get_mut(&g.queue) else {
            return;
        };
        let Some(level) = q.levels.get_mut(&Reverse(g.priority)) else {
            return;
        };
        if level.tenants.get(&g.tenant).is_some_and(Page::is_done) {
            level.tenants.remove(&g.tenant);
            let id = (g.priority, g.tenant.clone());
            if let Some(turn) = self.turns.get_mut(&id) {
                level.turn.remove(&(turn.tick, g.tenant.clone()));
                turn.queues.retain(|name| name != &g.queue);
                if turn.queues.is_empty() {
                    self.turns.remove(&id);
                }
            }
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

    /// What `pop` would hand out next from these queues, without taking anything: each
    /// priority level (highest first) with its tenants in turn order and how many jobs each
    /// could give (a group whose page does not hold all of its store range counts as `max`),
    /// of the tenants `scope` allows only. Levels stop once they hold `max` jobs. LeaseTasks over several shards merges these
    /// (rust/broker/lease_tasks.rs) to decide how many tasks to take from each shard.
    pub fn peek(&self, queues: &[String], max: usize, scope: &TenantScope) -> Vec<PeekLevel> {
        let mut priorities: Vec<u32> = queues
            .iter()
            .filter_map(|name| self.queues.get(name))
            .flat_map(|q| q.levels.keys().map(|p| p.0))
            .collect();
        priorities.sort_unstable_by(|a, b| b.cmp(a));
        priorities.dedup();
        let mut out = Vec::new();
        let mut total = 0usize;
        for priority in priorities {
            // A tenant in several of the queues has one turn (one tick) at this priority.
            let mut tenants: BTreeMap<(u64, &str), usize> = BTreeMap::new();
            for name in queues {
                let Some(level) = self
                    .queues
                    .get(name)
                    .and_then(|q| q.levels.get(&Reverse(priority)))
                else {
                    continue;
                };
                for (tick, tenant) in level.turn.iter().filter(|(_, t)| scope.allows(t)).take(max) {
                    let Some(page) = level.tenants.get(tenant) else {
                        continue;
                    };
                    let n = if page.is_complete() { page.len() } else { max };
                    *tenants.entry((*tick, tenant.as_str())).or_default() += n;
                }
            }
            let counts: Vec<usize> = tenants
                .into_values()
                .take(max)
                .map(|n| n.min(max))
                .collect();
            total += counts.iter().sum::<usize>();
            out.push(PeekLevel {
                priority,
                tenants: counts,
            });
            if total >= max {
                break;
            }
        }
        out
    }

    /// Whether any of these queues has a due job in memory of a tenant `scope` allows.
    pub fn has_any(&self, queues: &[String], scope: &TenantScope) -> bool {
        if scope.tenants().is_none() {
            return queues.iter().any(|q| self.queues.contains_key(q));
        }
        queues.iter().any(|name| {
            self.queues.get(name).is_some_and(|q| {
                q.levels
                    .iter()
                    .any(|(p, level)| self.first_allowed(p.0, level, scope).is_some())
            })
        })
    }

    /// Takes the best due job of these queues of a tenant `scope` allows, merged as if they
    /// were one queue: the highest priority any of them holds for such a tenant; within it, the
    /// allowed tenant whose turn it is (served longest ago); within that tenant, the earliest
    /// due time, then enqueue order, across its groups in these queues. The tenant then goes to
    /// the back of the line at that priority. Other tenants' groups are skipped, never popped
    /// (docs/security.md). Also returns the job's group when its head ran empty and needs a
    /// refill.
    pub fn pop(
        &mut self,
        queues: &[String],
        scope: &TenantScope,
    ) -> Option<(Queued, Option<Group>)> {
        let g = self.best_group(queues, scope)?;
        let page = self.page_mut(&g)?;
        let w = page.pop_first()?;
        let needs_refill = page.needs_refill();
        self.pass_turn(g.priority, &g.tenant);
        self.drop_if_done(&g);
        Some((w, needs_refill.then_some(g)))
    }

    /// The group `pop` takes from (see there).
    fn best_group(&self, queues: &[String], scope: &TenantScope) -> Option<Group> {
        // Per queue, its highest level holding an allowed tenant, and that tenant's turn.
        let mut heads: Vec<(&String, u32, &Level)> = Vec::with_capacity(queues.len());
        let mut best: Option<(u32, (u64, &str))> = None;
        for name in queues {
            let Some(q) = self.queues.get(name) else {
                continue;
            };
            for (p, level) in &q.levels {
                let Some(turn) = self.first_allowed(p.0, level, scope) else {
                    continue;
                };
                heads.push((name, p.0, level));
                let better = match best {
                    None => true,
                    Some((bp, bt)) => p.0 > bp || (p.0 == bp && turn < bt),
                };
                if better {
                    best = Some((p.0, turn));
                }
                break;
            }
        }
        let (priority, (_, tenant)) = best?;
        let (queue, _) = heads
            .iter()
            .filter(|(_, p, _)| *p == priority)
            .filter_map(|(name, _, level)| {
                let (key, _) = level.tenants.get(tenant)?.first()?;
                Some((*name, *key))
            })
            .min_by_key(|(_, key)| *key)?;
        Some(Group {
            queue: queue.clone(),
            priority,
            tenant: tenant.to_string(),
        })
    }

    /// The turn (tick, tenant) of the first tenant of `level` in turn order that `scope`
    /// allows. A scope of a few exact names looks them up; otherwise the turn order is walked
    /// past the tenants it does not allow.
    fn first_allowed<'a>(
        &'a self,
        priority: u32,
        level: &'a Level,
        scope: &TenantScope,
    ) -> Option<(u64, &'a str)> {
        let Some(tenants) = scope.tenants() else {
            return level.turn.first().map(|(tick, t)| (*tick, t.as_str()));
        };
        if let Some(exact) = tenants.exact_only() {
            if exact.len() < level.turn.len() {
                return exact
                    .iter()
                    .filter_map(|t| {
                        let (name, _) = level.tenants.get_key_value(t)?;
                        let turn = self.turns.get(&(priority, t.clone()))?;
                        Some((turn.tick, name.as_str()))
                    })
                    .min();
            }
        }
        level
            .turn
            .iter()
            .find(|(_, t)| tenants.allows(t))
            .map(|(tick, t)| (*tick, t.as_str()))
    }

    /// Sends a tenant just served to the back of the line at `priority`, in every queue.
    fn pass_turn(&mut self, priority: u32, tenant: &str) {
        let Some(turn) = self.turns.get_mut(&(priority, tenant.to_string())) else {
            return;
        };
        self.next_tick += 1;
        let old = std::mem::replace(&mut turn.tick, self.next_tick);
        for name in &turn.queues {
            if let Some(level) = self
                .queues
                .get_mut(name)
                .and_then(|q| q.levels.get_mut(&Reverse(priority)))
            {
                level.turn.remove(&(old, tenant.to_string()));
                level.turn.insert((turn.tick, tenant.to_string()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Tenants;

    fn all() -> TenantScope {
        TenantScope::all()
    }

    fn only(patterns: &[&str]) -> TenantScope {
        TenantScope::of(Tenants::parse(patterns).unwrap())
    }

    fn w(tenant: &str, queue: &str, priority: u32, due_ms: i64, seq: u64) -> Queued {
        Queued {
            tenant: tenant.into(),
            job_id: format!("{tenant}-{seq}"),
            queue: queue.into(),
            priority,
            due_ms,
            seq,
            keys: Vec::new(),
            rate_keys: Vec::new(),
        }
    }

    fn drain(ix: &mut ReadyIndex, queues: &[&str]) -> Vec<u64> {
        let queues: Vec<String> = queues.iter().map(|q| q.to_string()).collect();
        std::iter::from_fn(|| {
            ix.pop(&queues, &all()).map(|(w, refill)| {
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
        assert!(!ix.has_any(&["a".into()], &all()));
        assert!(ix.has_any(&["c".into()], &all()));
    }

    #[test]
    fn tenants_take_turns_across_the_named_queues() {
        // One tenant's backlog in qa, enqueued first; another tenant's few jobs in qb.
        let mut ix = ReadyIndex::default();
        for s in 1..=100 {
            ix.insert(w("big", "qa", 50, 0, s));
        }
        for s in 101..=103 {
            ix.insert(w("small", "qb", 50, 0, s));
        }
        let first: Vec<u64> = drain(&mut ix, &["qa", "qb"]).into_iter().take(6).collect();
        assert_eq!(first, vec![1, 101, 2, 102, 3, 103]);
    }

    #[test]
    fn across_queues_priority_still_comes_first() {
        let mut ix = ReadyIndex::default();
        ix.insert(w("a", "qa", 10, 0, 1));
        ix.insert(w("a", "qa", 10, 0, 2));
        ix.insert(w("b", "qb", 10, 0, 3));
        ix.insert(w("c", "qb", 90, 5, 4));
        assert_eq!(drain(&mut ix, &["qa", "qb"]), vec![4, 1, 3, 2]);
    }

    #[test]
    fn a_tenant_in_several_queues_takes_one_turn_in_fifo_order() {
        // Tenant "a" has jobs in both queues: merged, its jobs go in due/seq order and it
        // takes turns with "b" as one tenant, not as two.
        let mut ix = ReadyIndex::default();
        ix.insert(w("a", "qa", 50, 0, 1));
        ix.insert(w("a", "qb", 50, 0, 2));
        ix.insert(w("a", "qa", 50, 0, 3));
        ix.insert(w("b", "qb", 50, 0, 4));
        ix.insert(w("b", "qb", 50, 0, 5));
        assert_eq!(drain(&mut ix, &["qa", "qb"]), vec![1, 4, 2, 5, 3]);
    }

    #[test]
    fn serving_one_queue_moves_the_tenant_back_in_the_others() {
        let mut ix = ReadyIndex::default();
        ix.insert(w("a", "qa", 50, 0, 1));
        ix.insert(w("a", "qb", 50, 0, 2));
        ix.insert(w("b", "qb", 50, 0, 3));
        let qa = vec!["qa".to_string()];
        assert_eq!(ix.pop(&qa, &all()).map(|(w, _)| w.seq), Some(1));
        // "a" was just served: in qb, "b" goes first although "a" arrived there first.
        assert_eq!(drain(&mut ix, &["qb"]), vec![3, 2]);
        assert!(ix.turns.is_empty(), "no turn outlives its tenant's groups");
    }

    #[test]
    fn peek_shows_levels_and_turns_without_taking() {
        let mut ix = ReadyIndex::default();
        for s in 1..=3 {
            ix.insert(w("big", "q", 50, 0, s));
        }
        ix.insert(w("small", "q", 50, 0, 4));
        ix.insert(w("small", "r", 50, 0, 5));
        ix.insert(w("top", "q", 90, 0, 6));
        ix.insert(w("low", "q", 10, 0, 7));
        let qs = vec!["q".to_string(), "r".to_string()];
        assert_eq!(
            ix.peek(&qs, 100, &all()),
            vec![
                PeekLevel {
                    priority: 90,
                    tenants: vec![1]
                },
                PeekLevel {
                    priority: 50,
                    tenants: vec![3, 2]
                },
                PeekLevel {
                    priority: 10,
                    tenants: vec![1]
                },
            ]
        );
        assert_eq!(
            ix.peek(&qs, 3, &all()).len(),
            2,
            "levels stop once they hold max"
        );
        assert_eq!(ix.in_memory(), 7, "peeking takes nothing");
        // Serving "big" sends it to the back of the line: the peek follows the turns.
        ix.pop(&qs, &all());
        ix.pop(&qs, &all());
        assert_eq!(ix.peek(&qs, 100, &all())[0].tenants, vec![2, 2]);
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
        assert_eq!(
            ix.pop(&qs, &all()).map(|(w, r)| (w.seq, r)),
            Some((1, None))
        );
        assert_eq!(
            ix.pop(&qs, &all()).map(|(w, r)| (w.seq, r)),
            Some((2, Some(g.clone())))
        );
        assert_eq!(ix.refill_from(&g), Some(Some((0, 2))));
        ix.refilled(&g, None, true);
        assert!(
            !ix.has_any(&qs, &all()),
            "a group read to its end with nothing left is gone"
        );
    }

    #[test]
    fn a_paused_queue_of_a_tenant_is_skipped_and_resumes_in_order() {
        let mut ix = ReadyIndex::default();
        ix.insert(w("a", "q", 90, 0, 1));
        ix.insert(w("a", "q", 50, 0, 2));
        ix.insert(w("b", "q", 50, 0, 3));
        ix.insert(w("a", "other", 50, 0, 4));
        assert!(ix.pause("q", "a").is_empty(), "nothing gated to give back");
        assert!(ix.is_paused("q", "a") && !ix.is_paused("other", "a"));
        // New work of the paused pair waits aside too.
        ix.insert(w("a", "q", 50, 0, 5));
        assert_eq!(ix.in_memory(), 5);
        // Tenant "a" keeps its turn (it arrived first) through its other queue.
        assert_eq!(drain(&mut ix, &["q", "other"]), vec![4, 3]);
        assert!(
            !ix.has_any(&["q".into()], &all()),
            "only paused work is left"
        );
        let (gated, groups) = ix.resume("q", "a");
        assert!(gated.is_empty());
        assert_eq!(groups.len(), 2);
        assert_eq!(drain(&mut ix, &["q"]), vec![1, 2, 5]);
        assert!(ix.queues.is_empty() && ix.held.is_empty() && ix.turns.is_empty());
        assert_eq!(ix.resume("q", "a"), (Vec::new(), Vec::new()), "idempotent");
    }

    #[test]
    fn pausing_hands_back_gated_entries_and_resuming_takes_them_out_to_admit() {
        let mut ix = ReadyIndex::default();
        let mut gated = w("a", "q", 50, 0, 1);
        gated.rate_keys = vec!["r".into()];
        ix.insert(gated.clone());
        ix.insert(w("a", "q", 50, 0, 2));
        assert_eq!(ix.pause("q", "a"), vec![gated.clone()]);
        assert!(ix.pause("q", "a").is_empty(), "idempotent");
        let (out, _) = ix.resume("q", "a");
        assert_eq!(out, vec![gated]);
        assert_eq!(drain(&mut ix, &["q"]), vec![2]);
    }

    #[test]
    fn a_scoped_pop_skips_other_tenants_without_taking_them() {
        let mut ix = ReadyIndex::default();
        ix.insert(w("a", "q", 90, 0, 1));
        ix.insert(w("b", "q", 50, 0, 2));
        ix.insert(w("acme-1", "q", 50, 0, 3));
        ix.insert(w("b", "q", 50, 0, 4));
        let q = vec!["q".to_string()];
        // Exact names (looked up), then a prefix (walked): "a" at priority 90 is not theirs.
        assert!(!ix.has_any(&q, &only(&["zz"])));
        assert_eq!(ix.pop(&q, &only(&["b"])).map(|(w, _)| w.seq), Some(2));
        assert_eq!(ix.pop(&q, &only(&["acme*"])).map(|(w, _)| w.seq), Some(3));
        assert_eq!(ix.pop(&q, &only(&["acme*"])), None);
        // Nothing of the others was taken: an unscoped pop still finds them in order.
        assert_eq!(drain(&mut ix, &["q"]), vec![1, 4]);
    }
}
