//! Admission: per (tenant, key), the accounting of what a due job needs before it may run: a
//! free slot of each concurrency key, and a token of each rate-limit key (docs/architecture.md,
//! "Concurrency limits" and "Rate limits"). One table owns both, so that a job takes everything
//! it needs at once or nothing.
//!
//! Rules:
//! - A job enters the ready index only when every one of its keys has room (a free slot, a
//!   token not reserved by another admitted job), and then it reserves one unit of each at
//!   once. Leasing turns a slot reservation into a holding and takes the reserved token from
//!   the bucket (the caller writes the bucket in the lease's write).
//! - A holder is a live attempt (its task id). `release` is called exactly where an attempt
//!   ends (`Shard::end_attempt`), in the same step as the write that ends it. Tokens are not
//!   held: a started job has spent its token.
//! - A job that cannot be admitted waits in the queue of the first key without room, ordered
//!   like the ready index, never in the ready index (no head-of-line blocking).
//! - Invariant after every call: a concurrency key with waiters has no free slot, and a
//!   rate-limit key with waiters has no unreserved token and a timer at the time its next one
//!   is due (`next_token_due`). Whenever a slot frees, a limit rises or a token comes,
//!   `grant` hands room to the best waiters at once.
//!
//! Durable truth is elsewhere: holders are rebuilt from LEASE records, waiters from READY
//! records, limits from LIMIT records, buckets from RATE records. Memory is proportional to
//! keys in use: a key's state is dropped when it has no holder, reservation, waiter or pin.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::bucket::Bucket;
use super::ready::Queued;

/// What a key limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Gate {
    /// A concurrency key: slots held by live attempts.
    Slots,
    /// A rate-limit key: tokens of a bucket.
    Tokens,
}

type KeyId = (String, Gate, String); // (tenant, gate, key)
type WaiterOrder = (Reverse<u32>, i64, u64); // priority desc, due, seq

#[derive(Debug, Default)]
struct KeyState {
    /// Slots: the limit and the live attempts holding a slot.
    limit: u32,
    holders: HashSet<String>,
    /// Tokens: the bucket (always present for a Tokens key).
    bucket: Option<Bucket>,
    reserved: u32,
    waiters: BTreeMap<WaiterOrder, Queued>,
    /// Parked jobs (waiting on any key) that name this key: its state must stay known so that
    /// a grant can admit them without reading the store.
    pins: u32,
    /// Tokens with waiters: when the next unreserved token is due (its entry in `timers`).
    timer: Option<i64>,
}

impl KeyState {
    fn free(&self, now_ms: i64) -> i64 {
        match &self.bucket {
            Some(b) => b.tokens_at(now_ms) - i64::from(self.reserved),
            None => i64::from(self.limit) - self.holders.len() as i64 - i64::from(self.reserved),
        }
    }

    fn idle(&self) -> bool {
        self.holders.is_empty() && self.reserved == 0 && self.waiters.is_empty() && self.pins == 0
    }
}

fn order(w: &Queued) -> WaiterOrder {
    (Reverse(w.priority), w.due_ms, w.seq)
}

fn slot(tenant: &str, key: &str) -> KeyId {
    (tenant.to_string(), Gate::Slots, key.to_string())
}

fn token(tenant: &str, key: &str) -> KeyId {
    (tenant.to_string(), Gate::Tokens, key.to_string())
}

/// Every key a job needs room in: its concurrency keys, then its rate-limit keys.
fn gate_keys(w: &Queued) -> impl Iterator<Item = KeyId> + '_ {
    let slots = w.keys.iter().map(|k| slot(&w.tenant, k));
    slots.chain(w.rate_keys.iter().map(|k| token(&w.tenant, k)))
}

/// Per-key admission accounting of one shard: concurrency slots and rate-limit tokens.
#[derive(Debug, Default)]
pub struct ConcurrencyTable {
    keys: HashMap<KeyId, KeyState>,
    /// Which key each parked job waits on: (tenant, job_id) -> (gate, key).
    blocked_on: HashMap<(String, String), (Gate, String)>,
    /// Rate-limit keys with waiters, by the time their next token is due.
    timers: BTreeSet<(i64, KeyId)>,
    /// The step's time (`set_now`): buckets are read at it.
    now_ms: i64,
}

/// A bucket that took a token at lease: the caller writes it in the lease's write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenTaken {
    pub tenant: String,
    pub key: String,
    pub bucket: Bucket,
}

impl ConcurrencyTable {
    /// The time the table reads buckets at: the shard sets it at the start of every step.
    pub fn set_now(&mut self, now_ms: i64) {
        self.now_ms = self.now_ms.max(now_ms);
    }

    /// Whether the table has state for this concurrency key (else its limit must be loaded first).
    pub fn knows(&self, tenant: &str, key: &str) -> bool {
        self.keys.contains_key(&slot(tenant, key))
    }

    /// Whether the table has the bucket of this rate-limit key (else it must be loaded first).
    pub fn knows_rate(&self, tenant: &str, key: &str) -> bool {
        self.keys.contains_key(&token(tenant, key))
    }

    /// The bucket of a rate-limit key in use.
    pub fn bucket(&self, tenant: &str, key: &str) -> Option<Bucket> {
        self.keys.get(&token(tenant, key)).and_then(|s| s.bucket)
    }

    /// Number of keys with state (for memory checks), concurrency and rate-limit keys apart.
    pub fn keys_in_use(&self) -> usize {
        self.keys.keys().filter(|k| k.1 == Gate::Slots).count()
    }

    pub fn rate_keys_in_use(&self) -> usize {
        self.keys.keys().filter(|k| k.1 == Gate::Tokens).count()
    }

    /// Sets a key's limit. Returns jobs admitted because the limit rose.
    pub fn set_limit(&mut self, tenant: &str, key: &str, limit: u32) -> Vec<Queued> {
        let id = slot(tenant, key);
        let state = self.keys.entry(id.clone()).or_default();
        let raised = limit > state.limit;
        state.limit = limit;
        if raised {
            self.grant(&id)
        } else {
            Vec::new()
        }
    }

    /// Sets a rate-limit key's bucket (loaded from the store, or changed by an enqueue).
    /// Returns jobs admitted because tokens became available.
    pub fn set_bucket(&mut self, tenant: &str, key: &str, bucket: Bucket) -> Vec<Queued> {
        let id = token(tenant, key);
        self.keys.entry(id.clone()).or_default().bucket = Some(bucket);
        let admitted = self.grant(&id);
        self.retime(&id);
        admitted
    }

    /// A due job asks to run. Returns it if admitted (one unit of each key reserved);
    /// otherwise it waits in the queue of its first key without room. Every key must be known
    /// (`set_limit`, `set_bucket`).
    pub fn admit(&mut self, w: Queued) -> Option<Queued> {
        let now = self.now_ms;
        let blocked = gate_keys(&w).find(|id| self.keys.get(id).is_none_or(|s| s.free(now) <= 0));
        match blocked {
            None => {
                for id in gate_keys(&w) {
                    if let Some(s) = self.keys.get_mut(&id) {
                        s.reserved += 1;
                    }
                }
                Some(w)
            }
            Some(id) => {
                self.park(id, w);
                None
            }
        }
    }

    fn park(&mut self, id: KeyId, w: Queued) {
        for k in gate_keys(&w) {
            self.keys.entry(k).or_default().pins += 1;
        }
        self.blocked_on
            .insert((w.tenant.clone(), w.job_id.clone()), (id.1, id.2.clone()));
        let state = self.keys.entry(id.clone()).or_default();
        state.waiters.insert(order(&w), w);
        self.retime(&id);
    }

    /// Undoes the pins of a job that left a waiter queue; forgets keys left idle.
    fn unpin(&mut self, w: &Queued) {
        for id in gate_keys(w) {
            if let Some(s) = self.keys.get_mut(&id) {
                s.pins = s.pins.saturating_sub(1);
            }
            self.forget_if_idle(&id);
        }
    }

    /// An admitted job was leased: its slot reservations become holdings by `task_id`, and
    /// its reserved tokens are taken. Returns the buckets to write with the lease.
    pub fn on_lease(&mut self, w: &Queued, task_id: &str) -> Vec<TokenTaken> {
        let now = self.now_ms;
        let mut taken = Vec::new();
        for id in gate_keys(w) {
            let Some(s) = self.keys.get_mut(&id) else {
                continue;
            };
            s.reserved = s.reserved.saturating_sub(1);
            match &mut s.bucket {
                Some(b) => {
                    b.take(now);
                    taken.push(TokenTaken {
                        tenant: id.0.clone(),
                        key: id.2.clone(),
                        bucket: *b,
                    });
                    self.retime(&id);
                    self.forget_if_idle(&id);
                }
                None => {
                    s.holders.insert(task_id.to_string());
                }
            }
        }
        taken
    }

    /// Rebuild: a live attempt holds a slot of each key.
    pub fn restore_holder(&mut self, tenant: &str, keys: &[String], task_id: &str) {
        for k in keys {
            let s = self.keys.entry(slot(tenant, k)).or_default();
            s.holders.insert(task_id.to_string());
        }
    }

    /// An attempt ended: its slots free and go to the best waiters. Returns admitted jobs.
    pub fn release(&mut self, tenant: &str, keys: &[String], task_id: &str) -> Vec<Queued> {
        let mut admitted = Vec::new();
        for k in keys {
            let id = slot(tenant, k);
            if let Some(s) = self.keys.get_mut(&id) {
                s.holders.remove(task_id);
            }
            admitted.extend(self.grant(&id));
            self.forget_if_idle(&id);
        }
        admitted
    }

    /// An admitted job left the ready index without running (cancel, displacement, a paused
    /// queue): its reservations free. Returns the jobs admitted in its place.
    pub fn unreserve(&mut self, w: &Queued) -> Vec<Queued> {
        let mut admitted = Vec::new();
        for id in gate_keys(w) {
            if let Some(s) = self.keys.get_mut(&id) {
                s.reserved = s.reserved.saturating_sub(1);
            }
            admitted.extend(self.grant(&id));
            self.forget_if_idle(&id);
        }
        admitted
    }

    /// A parked job left (cancel, expiry). Returns whether it was parked.
    pub fn remove_waiter(
        &mut self,
        tenant: &str,
        job_id: &str,
        due_ms: i64,
        seq: u64,
        priority: u32,
    ) -> bool {
        let Some((gate, key)) = self
            .blocked_on
            .remove(&(tenant.to_string(), job_id.to_string()))
        else {
            return false;
        };
        let id = (tenant.to_string(), gate, key);
        let removed = self
            .keys
            .get_mut(&id)
            .and_then(|s| s.waiters.remove(&(Reverse(priority), due_ms, seq)));
        self.retime(&id);
        if let Some(w) = removed {
            self.unpin(&w);
        }
        self.forget_if_idle(&id);
        true
    }

    /// The key a parked job waits on, and whether it is a concurrency or a rate-limit key.
    pub fn waiting_on(&self, tenant: &str, job_id: &str) -> Option<(Gate, &str)> {
        self.blocked_on
            .get(&(tenant.to_string(), job_id.to_string()))
            .map(|(gate, key)| (*gate, key.as_str()))
    }

    /// Live attempts holding a slot of the key (tests and stats).
    pub fn holders(&self, tenant: &str, key: &str) -> usize {
        self.keys
            .get(&slot(tenant, key))
            .map_or(0, |s| s.holders.len())
    }

    /// A concurrency key's accounting: (limit, holders sorted, reservations, waiters best first).
    pub fn describe(&self, tenant: &str, key: &str) -> (u32, Vec<String>, u32, Vec<String>) {
        match self.keys.get(&slot(tenant, key)) {
            None => (0, Vec::new(), 0, Vec::new()),
            Some(s) => {
                let mut holders: Vec<String> = s.holders.iter().cloned().collect();
                holders.sort();
                let waiters = s.waiters.values().map(|w| w.job_id.clone()).collect();
                (s.limit, holders, s.reserved, waiters)
            }
        }
    }

    /// A rate-limit key's accounting: (bucket if in use, reservations, waiters best first,
    /// when its next token is due for them).
    pub fn describe_rate(
        &self,
        tenant: &str,
        key: &str,
    ) -> (Option<Bucket>, u32, Vec<String>, Option<i64>) {
        match self.keys.get(&token(tenant, key)) {
            None => (None, 0, Vec::new(), None),
            Some(s) => {
                let waiters = s.waiters.values().map(|w| w.job_id.clone()).collect();
                (s.bucket, s.reserved, waiters, s.timer)
            }
        }
    }

    /// Waiters of every key (a gauge).
    pub fn waiters(&self) -> usize {
        self.blocked_on.len()
    }

    /// When the first rate-limit key with waiters gets its next token.
    pub fn next_token_due(&self) -> Option<i64> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Rate-limit keys whose next token came by `now_ms` hand it to their best waiters.
    /// Returns the jobs admitted.
    pub fn fire_tokens(&mut self, now_ms: i64) -> Vec<Queued> {
        self.set_now(now_ms);
        let mut admitted = Vec::new();
        while let Some((t, _)) = self.timers.first() {
            if *t > self.now_ms {
                break;
            }
            let Some((_, id)) = self.timers.pop_first() else {
                break;
            };
            if let Some(s) = self.keys.get_mut(&id) {
                s.timer = None;
            }
            admitted.extend(self.grant(&id));
            self.retime(&id);
            self.forget_if_idle(&id);
        }
        admitted
    }

    /// Hands room in `id` to its best waiters. A waiter blocked on another of its keys moves
    /// to that key's queue. Returns the jobs admitted.
    fn grant(&mut self, id: &KeyId) -> Vec<Queued> {
        let now = self.now_ms;
        let mut admitted = Vec::new();
        while let Some(state) = self.keys.get_mut(id) {
            if state.free(now) <= 0 {
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
        self.retime(id);
        admitted
    }

    /// Keeps a rate-limit key's timer at the time its waiters' next token is due.
    fn retime(&mut self, id: &KeyId) {
        let Some(s) = self.keys.get_mut(id) else {
            return;
        };
        let want = match &s.bucket {
            Some(b) if !s.waiters.is_empty() => b.time_of_tokens(i64::from(s.reserved) + 1),
            _ => None,
        };
        if s.timer == want {
            return;
        }
        if let Some(old) = s.timer.take() {
            self.timers.remove(&(old, id.clone()));
        }
        if let Some(t) = want {
            s.timer = Some(t);
            self.timers.insert((t, id.clone()));
        }
    }

    fn forget_if_idle(&mut self, id: &KeyId) {
        if self.keys.get(id).is_some_and(KeyState::idle) {
            if let Some(s) = self.keys.remove(id) {
                if let Some(t) = s.timer {
                    self.timers.remove(&(t, id.clone()));
                }
            }
        }
    }

    /// Drops the state of keys that nobody uses (after loading limits for a job that then
    /// could not be admitted).
    pub fn forget_idle(&mut self, tenant: &str, keys: &[String]) {
        for k in keys {
            self.forget_if_idle(&slot(tenant, k));
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
            rate_keys: Vec::new(),
        }
    }

    fn r(job: &str, priority: u32, seq: u64, keys: &[&str], rate_keys: &[&str]) -> Queued {
        Queued {
            rate_keys: rate_keys.iter().map(|k| k.to_string()).collect(),
            ..w(job, priority, seq, keys)
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
        assert_eq!(c.waiting_on("t", "c"), Some((Gate::Slots, "k")));
        c.on_lease(&w("a", 50, 1, &["k"]), "ta");
        assert_eq!(c.holders("t", "k"), 1);
        // The freed slot goes to the best waiter: priority first.
        assert!(c.admit(w("d", 90, 4, &["k"])).is_none());
        assert_eq!(ids(&c.release("t", &["k".into()], "ta")), vec!["d"]);
        assert_eq!(c.waiting_on("t", "c"), Some((Gate::Slots, "k")));
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
        assert_eq!(c.waiting_on("t", "y"), Some((Gate::Slots, "b")));
        assert!(c.admit(w("z", 50, 3, &["a"])).is_some());
        // b frees, but a is now full: y moves to a's queue.
        assert!(c.release("t", &["b".into()], "tx").is_empty());
        assert_eq!(c.waiting_on("t", "y"), Some((Gate::Slots, "a")));
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
        assert_eq!(c.waiting_on("t", "c"), Some((Gate::Slots, "k")));
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

    #[test]
    fn tokens_admit_up_to_the_bucket_then_wait_for_the_next_token() {
        let mut c = ConcurrencyTable::default();
        c.set_now(0);
        assert!(c.set_bucket("t", "r", Bucket::full(2, 1000, 0)).is_empty());
        let a = c.admit(r("a", 50, 1, &[], &["r"])).unwrap();
        assert!(c.admit(r("b", 50, 2, &[], &["r"])).is_some());
        assert!(
            c.admit(r("c", 50, 3, &[], &["r"])).is_none(),
            "both tokens reserved"
        );
        assert_eq!(c.waiting_on("t", "c"), Some((Gate::Tokens, "r")));
        assert_eq!(
            c.next_token_due(),
            None,
            "both tokens are promised: no timer yet"
        );
        let taken = c.on_lease(&a, "ta");
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].bucket.tokens_at(0), 1);
        assert_eq!(
            c.next_token_due(),
            Some(500),
            "2 per second: the third at 500 ms"
        );
        assert!(c.fire_tokens(499).is_empty());
        assert_eq!(ids(&c.fire_tokens(500)), vec!["c"]);
        assert_eq!(c.next_token_due(), None, "no waiter, no timer");
    }

    #[test]
    fn a_job_takes_its_slot_and_its_token_at_once_or_neither() {
        let mut c = ConcurrencyTable::default();
        c.set_now(0);
        c.set_limit("t", "k", 1);
        c.set_bucket("t", "r", Bucket::full(1, 1000, 0));
        // The slot is taken by x: y waits on the slot and reserves no token.
        let x = c.admit(w("x", 50, 1, &["k"])).unwrap();
        c.on_lease(&x, "tx");
        assert!(c.admit(r("y", 50, 2, &["k"], &["r"])).is_none());
        assert_eq!(c.waiting_on("t", "y"), Some((Gate::Slots, "k")));
        // z needs only the token: it gets it, and y, once the slot frees, waits for a token.
        let z = c.admit(r("z", 50, 3, &[], &["r"])).unwrap();
        c.on_lease(&z, "tz");
        assert!(c.release("t", &["k".into()], "tx").is_empty());
        assert_eq!(c.waiting_on("t", "y"), Some((Gate::Tokens, "r")));
        assert_eq!(
            c.describe("t", "k").2,
            0,
            "y holds no slot while it waits for a token"
        );
        assert_eq!(ids(&c.fire_tokens(1000)), vec!["y"]);
        assert_eq!(c.describe("t", "k").2, 1);
    }

    #[test]
    fn idle_rate_keys_are_forgotten_and_their_timers_with_them() {
        let mut c = ConcurrencyTable::default();
        c.set_now(0);
        c.set_bucket("t", "r", Bucket::full(1, 1000, 0));
        let a = c.admit(r("a", 50, 1, &[], &["r"])).unwrap();
        assert!(c.admit(r("b", 50, 2, &[], &["r"])).is_none());
        c.on_lease(&a, "ta");
        assert!(c.remove_waiter("t", "b", 0, 2, 50));
        assert_eq!(c.next_token_due(), None);
        assert_eq!(c.rate_keys_in_use(), 0);
    }

    #[test]
    fn a_waiter_for_a_token_goes_by_priority() {
        let mut c = ConcurrencyTable::default();
        c.set_now(0);
        c.set_bucket("t", "r", Bucket::full(1, 100, 0));
        let a = c.admit(r("a", 50, 1, &[], &["r"])).unwrap();
        assert!(c.admit(r("low", 10, 2, &[], &["r"])).is_none());
        assert!(c.admit(r("high", 90, 3, &[], &["r"])).is_none());
        c.on_lease(&a, "ta");
        assert_eq!(ids(&c.fire_tokens(100)), vec!["high"]);
        assert_eq!(c.describe_rate("t", "r").2, vec!["low".to_string()]);
    }
}
