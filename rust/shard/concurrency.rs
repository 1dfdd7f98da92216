//! Concurrency limits: per (tenant, key) the limit, the live attempts holding a slot, the due
//! jobs admitted to the ready index (each reserves a slot until leased), and the waiters.
//!
//! Rules (docs/architecture.md#concurrency-limits):
//! - A job enters the ready index only when every one of its keys has a free slot, and then it
//!   reserves one slot of each at once; leasing turns the reservation into a holding.
//! - A holder is a live attempt (its task id). `release` is called exactly where an attempt
//!   ends (`Shard::end_attempt`), in the same step as the write that ends it.
//! - A job that cannot be admitted waits in the queue of the first key without a free slot,
//!   ordered like the ready index, never in the ready index (no head-of-line blocking).
//! - Invariant after every call: a key with waiters has no free slot. Whenever a slot frees
//!   or a limit rises, `grant` hands slots to the best waiters at once.
//!
//! Durable truth is elsewhere: holders are rebuilt from LEASE records, waiters from READY
//! records, limits from LIMIT records. Memory is proportional to keys in use: a key's state
//! is dropped when it has no holder, reservation or waiter.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, HashSet};

use super::ready::Queued;

type KeyId = (String, String); // (tenant, key)
type WaiterOrder = (Reverse<u32>, i64, u64); // priority desc, due, seq

#[derive(Debug, Default)]
struct KeyState {
    limit: u32,
    holders: HashSet<String>,
    reserved: u32,
    waiters: BTreeMap<WaiterOrder, Queued>,
    /// Parked jobs (waiting on any key) that name this key: their limits must stay known so
    /// that a grant can admit them without reading the store.
    pins: u32,
}

impl KeyState {
    fn free(&self) -> i64 {
        i64::from(self.limit) - self.holders.len() as i64 - i64::from(self.reserved)
    }

    fn idle(&self) -> bool {
        self.holders.is_empty() && self.reserved == 0 && self.waiters.is_empty() && self.pins == 0
    }
}

fn order(w: &Queued) -> WaiterOrder {
    (Reverse(w.priority), w.due_ms, w.seq)
}

/// Per-key slot accounting of one shard.
#[derive(Debug, Default)]
pub struct ConcurrencyTable {
    keys: HashMap<KeyId, KeyState>,
    /// Which key each parked job waits on: (tenant, job_id) -> key.
    blocked_on: HashMap<(String, String), String>,
}

impl ConcurrencyTable {
    /// Whether the table has state for this key (else its limit must be loaded first).
    pub fn knows(&self, tenant: &str, key: &str) -> bool {
        self.keys
            .contains_key(&(tenant.to_string(), key.to_string()))
    }

    /// Number of keys with state (for memory checks).
    pub fn keys_in_use(&self) -> usize {
        self.keys.len()
    }

    /// Sets a key's limit. Returns jobs admitted because the limit rose.
    pub fn set_limit(&mut self, tenant: &str, key: &str, limit: u32) -> Vec<Queued> {
        let id = (tenant.to_string(), key.to_string());
        let state = self.keys.entry(id.clone()).or_default();
        let raised = limit > state.limit;
        state.limit = limit;
        if raised {
            self.grant(&id)
        } else {
            Vec::new()
        }
    }

    /// A due job asks to run. Returns it if admitted (one slot of each key reserved); otherwise
    /// it waits in the queue of its first full key. Every key must be known (`set_limit`).
    pub fn admit(&mut self, w: Queued) -> Option<Queued> {
        let blocked = w.keys.iter().find(|k| {
            self.keys
                .get(&(w.tenant.clone(), (*k).clone()))
                .is_none_or(|s| s.free() <= 0)
        });
        match blocked.cloned() {
            None => {
                for k in &w.keys {
                    if let Some(s) = self.keys.get_mut(&(w.tenant.clone(), k.clone())) {
                        s.reserved += 1;
                    }
                }
                Some(w)
            }
            Some(key) => {
                self.park(key, w);
                None
            }
        }
    }

    fn park(&mut self, key: String, w: Queued) {
        for k in &w.keys {
            self.keys
                .entry((w.tenant.clone(), k.clone()))
                .or_default()
                .pins += 1;
        }
        self.blocked_on
            .insert((w.tenant.clone(), w.job_id.clone()), key.clone());
        let state = self.keys.entry((w.tenant.clone(), key)).or_default();
        state.waiters.insert(order(&w), w);
    }

    /// Undoes the pins of a job that left a waiter queue; forgets keys left idle.
    fn unpin(&mut self, w: &Queued) {
        for k in &w.keys {
            let id = (w.tenant.clone(), k.clone());
            if let Some(s) = self.keys.get_mut(&id) {
                s.pins = s.pins.saturating_sub(1);
            }
            self.forget_if_idle(&id);
        }
    }

    /// An admitted job was leased: its reservations become holdings by `task_id`.
    pub fn on_lease(&mut self, w: &Queued, task_id: &str) {
        for k in &w.keys {
            if let Some(s) = self.keys.get_mut(&(w.tenant.clone(), k.clone())) {
                s.reserved = s.reserved.saturating_sub(1);
                s.holders.insert(task_id.to_string());
            }
        }
    }

    /// Rebuild: a live attempt holds a slot of each key.
    pub fn restore_holder(&mut self, tenant: &str, keys: &[String], task_id: &str) {
        for k in keys {
            let s = self
                .keys
                .entry((tenant.to_string(), k.clone()))
                .or_default();
            s.holders.insert(task_id.to_string());
        }
    }

    /// An attempt ended: its slots free and go to the best waiters. Returns admitted jobs.
    pub fn release(&mut self, tenant: &str, keys: &[String], task_id: &str) -> Vec<Queued> {
        let mut admitted = Vec::new();
        for k in keys {
            let id = (tenant.to_string(), k.clone());
            if let Some(s) = self.keys.get_mut(&id) {
                s.holders.remove(task_id);
            }
            admitted.extend(self.grant(&id));
            self.forget_if_idle(&id);
        }
        admitted
    }

    /// An admitted job left the ready index without running (cancel): its reservations free.
    pub fn unreserve(&mut self, w: &Queued) -> Vec<Queued> {
        let mut admitted = Vec::new();
        for k in &w.keys {
            let id = (w.tenant.clone(), k.clone());
            if let Some(s) = self.keys.get_mut(&id) {
                s.reserved = s.reserved.saturating_sub(1);
            }
            admitted.extend(self.grant(&id));
            self.forget_if_idle(&id);
        }
        admitted
    }

    /// A parked job left (cancel). Returns whether it was parked.
    pub fn remove_waiter(
        &mut self,
        tenant: &str,
        job_id: &str,
        due_ms: i64,
        seq: u64,
        priority: u32,
    ) -> bool {
        let Some(key) = self
            .blocked_on
            .remove(&(tenant.to_string(), job_id.to_string()))
        else {
            return false;
        };
        let id = (tenant.to_string(), key);
        let removed = self
            .keys
            .get_mut(&id)
            .and_then(|s| s.waiters.remove(&(Reverse(priority), due_ms, seq)));
        if let Some(w) = removed {
            self.unpin(&w);
        }
        self.forget_if_idle(&id);
        true
    }

    /// The key a parked job waits on.
    pub fn waiting_on(&self, tenant: &str, job_id: &str) -> Option<&str> {
        self.blocked_on
            .get(&(tenant.to_string(), job_id.to_string()))
            .map(String::as_str)
    }

    /// Live attempts holding a slot of the key (tests and stats).
    pub fn holders(&self, tenant: &str, key: &str) -> usize {
        self.keys
            .get(&(tenant.to_string(), key.to_string()))
            .map_or(0, |s| s.holders.len())
    }

    /// A key's accounting: (limit, holders sorted, reservations, waiters best first).
    pub fn describe(&self, tenant: &str, key: &str) -> (u32, Vec<String>, u32, Vec<String>) {
        match self.keys.get(&(tenant.to_string(), key.to_string())) {
            None => (0, Vec::new(), 0, Vec::new()),
            Some(s) => {
                let mut holders: Vec<String> = s.holders.iter().cloned().collect();
                holders.sort();
                let waiters = s.waiters.values().map(|w| w.job_id.clone()).collect();
                (s.limit, holders, s.reserved, waiters)
            }
        }
    }

    /// Hands free slots of `id` to its best waiters. A waiter blocked on another of its keys
    /// moves to that key's queue. Returns the jobs admitted.
    fn grant(&mut self, id: &KeyId) -> Vec<Queued> {
        let mut admitted = Vec::new();
        while let Some(state) = self.keys.get_mut(id) {
            if state.free() <= 0 {
                break;
            }
            let Some((_, w)) = state.waiters.pop_first() else {
                break;
            };
            self.blocked_on
                .remove(&(w.tenant.clone(), w.job_id.clone()));
            // Its keys are pinned, so all are known; unpin only after admitting (a re-park
            // pins them again).
            if let Some(a) = self.admit(w.clone()) {
                admitted.push(a);
            }
            self.unpin(&w);
        }
        admitted
    }

    fn forget_if_idle(&mut self, id: &KeyId) {
        if self.keys.get(id).is_some_and(KeyState::idle) {
            self.keys.remove(id);
        }
    }

    /// Drops the state of keys that nobody uses (after loading limits for a job that then
    /// could not be admitted).
    pub fn forget_idle(&mut self, tenant: &str, keys: &[String]) {
        for k in keys {
            self.forget_if_idle(&(tenant.to_string(), k.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(job: &str, priority: u32, seq: u64, keys: &[&str]) -> Queued {
        Queued {
            tenant: "t".into(),
            job_id: job.into(),
            queue: "q".into(),
            priority,
            due_ms: 0,
            seq,
            keys: keys.iter().map(|k| k.to_string()).collect(),
        }
    }

    fn ids(v: &[Queued]) -> Vec<&str> {
        v.iter().map(|w| w.job_id.as_str()).collect()
    }

    #[test]
    fn admits_up_to_the_limit_then_parks() {
        let mut c = ConcurrencyTable::default();
        c.set_limit("t", "k", 2);
        assert!(c.admit(w("a", 50, 1, &["k"])).is_some());
        assert!(c.admit(w("b", 50, 2, &["k"])).is_some());
        assert!(c.admit(w("c", 50, 3, &["k"])).is_none());
        assert_eq!(c.waiting_on("t", "c"), Some("k"));
        c.on_lease(&w("a", 50, 1, &["k"]), "ta");
        assert_eq!(c.holders("t", "k"), 1);
        // The freed slot goes to the best waiter: priority first.
        assert!(c.admit(w("d", 90, 4, &["k"])).is_none());
        assert_eq!(ids(&c.release("t", &["k".into()], "ta")), vec!["d"]);
        assert_eq!(c.waiting_on("t", "c"), Some("k"));
    }

    #[test]
    fn a_job_takes_all_its_slots_at_once() {
        let mut c = ConcurrencyTable::default();
        c.set_limit("t", "a", 1);
        c.set_limit("t", "b", 1);
        let first = c.admit(w("x", 50, 1, &["b"])).unwrap();
        c.on_lease(&first, "tx");
        // a is free, b is full: y waits on b and holds nothing of a.
        assert!(c.admit(w("y", 50, 2, &["a", "b"])).is_none());
        assert_eq!(c.waiting_on("t", "y"), Some("b"));
        assert!(c.admit(w("z", 50, 3, &["a"])).is_some());
        // b frees, but a is now full: y moves to a's queue.
        assert!(c.release("t", &["b".into()], "tx").is_empty());
        assert_eq!(c.waiting_on("t", "y"), Some("a"));
    }

    #[test]
    fn limits_rise_and_fall_without_preemption() {
        let mut c = ConcurrencyTable::default();
        c.set_limit("t", "k", 1);
        let a = c.admit(w("a", 50, 1, &["k"])).unwrap();
        c.on_lease(&a, "ta");
        assert!(c.admit(w("b", 50, 2, &["k"])).is_none());
        assert!(c.admit(w("c", 50, 3, &["k"])).is_none());
        assert_eq!(ids(&c.set_limit("t", "k", 2)), vec!["b"]);
        assert!(c.set_limit("t", "k", 1).is_empty());
        assert_eq!(c.holders("t", "k"), 1);
        // a ends, but b's reservation still fills the limit of 1: c keeps waiting.
        assert!(c.release("t", &["k".into()], "ta").is_empty());
        assert_eq!(c.waiting_on("t", "c"), Some("k"));
    }

    #[test]
    fn idle_keys_are_forgotten() {
        let mut c = ConcurrencyTable::default();
        c.set_limit("t", "k", 1);
        let a = c.admit(w("a", 50, 1, &["k"])).unwrap();
        c.on_lease(&a, "ta");
        assert!(c.admit(w("b", 50, 2, &["k"])).is_none());
        assert!(c.remove_waiter("t", "b", 0, 2, 50));
        assert!(c.release("t", &["k".into()], "ta").is_empty());
        assert_eq!(c.keys_in_use(), 0);
    }

    #[test]
    fn a_parked_job_keeps_its_other_keys_known() {
        let mut c = ConcurrencyTable::default();
        c.set_limit("t", "a", 1);
        c.set_limit("t", "b", 1);
        let x = c.admit(w("x", 50, 1, &["a"])).unwrap();
        c.on_lease(&x, "tx");
        // j waits on a; b has no user but j, and must stay known with its limit.
        assert!(c.admit(w("j", 50, 2, &["a", "b"])).is_none());
        assert_eq!(c.describe("t", "b").0, 1);
        assert_eq!(ids(&c.release("t", &["a".into()], "tx")), vec!["j"]);
    }

    #[test]
    fn cancelling_a_parked_job_forgets_all_its_idle_keys() {
        let mut c = ConcurrencyTable::default();
        c.set_limit("t", "shared", 1);
        c.set_limit("t", "own", 1);
        let x = c.admit(w("x", 50, 1, &["shared"])).unwrap();
        c.on_lease(&x, "tx");
        assert!(c.admit(w("j", 50, 2, &["own", "shared"])).is_none());
        assert!(c.remove_waiter("t", "j", 0, 2, 50));
        assert!(c.release("t", &["shared".into()], "tx").is_empty());
        assert_eq!(c.keys_in_use(), 0);
    }

    #[test]
    fn unreserve_passes_the_slot_on() {
        let mut c = ConcurrencyTable::default();
        c.set_limit("t", "k", 1);
        let a = c.admit(w("a", 50, 1, &["k"])).unwrap();
        assert!(c.admit(w("b", 50, 2, &["k"])).is_none());
        assert_eq!(ids(&c.unreserve(&a)), vec!["b"]);
    }
}
