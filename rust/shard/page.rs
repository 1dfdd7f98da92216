//! The in-memory head of one ordered range of the store: memory keeps the head of each index
//! and pages the rest from SlateDB after a remembered key (docs/architecture.md#caches).
//!
//! A page holds the first entries of its range, ordered by (due_ms, seq). The store holds
//! every entry; memory holds those up to `loaded` (here, or parked by the owner, e.g. in a
//! concurrency key's waiters). Entries after `loaded` stay in the store until the head runs
//! empty and the owner reads the next page, starting after `loaded`, so a refill never rescans
//! what was already handed out (or its tombstones).
//!
//! Pure bookkeeping: the owner does the store reads and calls `refilled`.

use std::collections::BTreeMap;

/// (due_ms, seq): the order inside a page.
pub type SortKey = (i64, u64);

/// Entries read per refill, and the head size past which new, later entries stay in the store.
pub const PAGE_SIZE: usize = 512;

/// Where `Page::place` put an entry.
#[derive(Debug, PartialEq, Eq)]
pub enum Placed<V> {
    /// In memory; the entry it displaced from a full head, if any, is back in the store only.
    Memory(Option<V>),
    /// In the store only.
    Store,
}

impl<V> Placed<V> {
    pub fn in_memory(&self) -> bool {
        matches!(self, Placed::Memory(_))
    }
}

#[derive(Debug)]
pub struct Page<V> {
    head: BTreeMap<SortKey, V>,
    /// Every store entry of the range at or below this key is in memory.
    loaded: Option<SortKey>,
    /// Memory holds every store entry of the range (nothing waits beyond `loaded`).
    complete: bool,
}

impl<V> Page<V> {
    /// A range whose store entries memory holds all of (a new range is empty).
    pub fn complete() -> Self {
        Page {
            head: BTreeMap::new(),
            loaded: None,
            complete: true,
        }
    }

    /// A range whose store entries are not read yet: the owner must refill it before use.
    pub fn unread() -> Self {
        Page {
            head: BTreeMap::new(),
            loaded: None,
            complete: false,
        }
    }

    pub fn len(&self) -> usize {
        self.head.len()
    }

    pub fn first(&self) -> Option<(&SortKey, &V)> {
        self.head.first_key_value()
    }

    pub fn contains(&self, key: &SortKey) -> bool {
        self.head.contains_key(key)
    }

    pub fn pop_first(&mut self) -> Option<V> {
        self.head.pop_first().map(|(_, v)| v)
    }

    pub fn remove(&mut self, key: &SortKey) -> Option<V> {
        self.head.remove(key)
    }

    /// The head's entries, in order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.head.values()
    }

    /// Takes out of the head every entry that `pred` picks (their keys stay loaded: the owner
    /// keeps them elsewhere or puts them back).
    pub fn take_where(&mut self, pred: impl Fn(&V) -> bool) -> Vec<V> {
        let keys: Vec<SortKey> = self
            .head
            .iter()
            .filter(|(_, v)| pred(v))
            .map(|(k, _)| *k)
            .collect();
        keys.iter().filter_map(|k| self.head.remove(k)).collect()
    }

    /// The head ran empty while the store may hold more: read the page after `loaded`.
    pub fn needs_refill(&self) -> bool {
        self.head.is_empty() && !self.complete
    }

    /// Memory holds every entry of the range (the store has none beyond the head).
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Nothing left in memory or in the store.
    pub fn is_done(&self) -> bool {
        self.head.is_empty() && self.complete
    }

    /// Where the next refill starts (exclusive); None: at the start of the range.
    pub fn loaded(&self) -> Option<SortKey> {
        self.loaded
    }

    /// Decides where an entry just written to the store lives: in memory (the caller then
    /// inserts or parks it) or only in the store until a refill reads it. A full head makes
    /// room for an entry that sorts before its last one by handing that last one back to the
    /// store (returned, so the owner can undo what holding it meant); a later entry stays in
    /// the store. Either way the head never grows past `PAGE_SIZE` through `place`.
    pub fn place(&mut self, key: SortKey) -> Placed<V> {
        let in_range = self.complete || self.loaded.is_some_and(|l| key <= l);
        if !in_range {
            return Placed::Store;
        }
        if self.head.len() < PAGE_SIZE {
            if self.complete && self.loaded.is_none_or(|l| key > l) {
                self.loaded = Some(key);
            }
            return Placed::Memory(None);
        }
        self.complete = false;
        let last = match self.head.last_key_value() {
            Some((&last, _)) if key < last => last,
            Some((&last, _)) => {
                // Entries between `last` and `loaded` are parked or gone: re-reading them is
                // harmless (the owner skips what it holds).
                self.loaded = Some(last);
                return Placed::Store;
            }
            None => return Placed::Store,
        };
        let evicted = self.head.remove(&last);
        let new_last = self.head.last_key_value().map(|(k, _)| *k);
        self.loaded = Some(new_last.map_or(key, |l| l.max(key)));
        Placed::Memory(evicted)
    }

    /// Puts an entry in the head. It must be one `place` kept in memory, or one read by a
    /// refill, or one coming back from where the owner parked it (all at or below `loaded`,
    /// or the page is complete).
    pub fn insert(&mut self, key: SortKey, v: V) {
        if self.complete && self.loaded.is_none_or(|l| key > l) {
            self.loaded = Some(key);
        }
        self.head.insert(key, v);
    }

    /// Records a refill: it read entries up to `last` (None: it read nothing), and `complete`
    /// when it reached the end of the range.
    pub fn refilled(&mut self, last: Option<SortKey>, complete: bool) {
        if let Some(last) = last {
            self.loaded = Some(self.loaded.map_or(last, |l| l.max(last)));
        }
        self.complete = complete;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_complete_page_keeps_entries_until_full_then_starts_a_tail() {
        let mut p: Page<u64> = Page::complete();
        for i in 0..PAGE_SIZE as u64 {
            assert_eq!(p.place((0, i)), Placed::Memory(None));
            p.insert((0, i), i);
        }
        let n = PAGE_SIZE as u64;
        assert_eq!(
            p.place((0, n)),
            Placed::Store,
            "a full head leaves later entries"
        );
        assert_eq!(p.place((0, n + 1)), Placed::Store);
        // An earlier entry displaces the last one, which only the store holds from now on.
        assert_eq!(p.place((-1, 7)), Placed::Memory(Some(n - 1)));
        p.insert((-1, 7), 7);
        assert_eq!(p.len(), PAGE_SIZE);
        assert_eq!(p.loaded(), Some((0, n - 2)));
        while p.pop_first().is_some() {}
        assert!(p.needs_refill());
        p.refilled(Some((0, n + 1)), true);
        assert!(p.is_done());
        assert_eq!(p.loaded(), Some((0, n + 1)));
    }

    #[test]
    fn out_of_order_entries_never_grow_the_head_past_a_page() {
        let mut p: Page<u64> = Page::complete();
        for i in (0..3 * PAGE_SIZE as u64).rev() {
            if p.place((i as i64, i)).in_memory() {
                p.insert((i as i64, i), i);
            }
            assert!(p.len() <= PAGE_SIZE);
        }
        // The head holds the smallest entries; everything above `loaded` is the store's.
        assert_eq!(p.first(), Some((&(0, 0), &0)));
        assert_eq!(
            p.loaded(),
            Some((PAGE_SIZE as i64 - 1, PAGE_SIZE as u64 - 1))
        );
    }

    #[test]
    fn an_incomplete_page_keeps_only_entries_at_or_below_loaded() {
        let mut p: Page<u64> = Page::unread();
        assert!(p.needs_refill());
        assert_eq!(
            p.place((5, 1)),
            Placed::Store,
            "nothing is loaded: the store has it"
        );
        p.insert((1, 1), 1);
        p.insert((3, 3), 3);
        p.refilled(Some((3, 3)), false);
        assert!(p.place((2, 9)).in_memory());
        assert!(p.place((3, 3)).in_memory());
        assert_eq!(p.place((3, 4)), Placed::Store);
        assert!(!p.needs_refill());
    }

    #[test]
    fn a_page_read_to_the_end_is_complete_again() {
        let mut p: Page<u64> = Page::unread();
        p.refilled(None, true);
        assert!(p.is_done());
        assert!(p.place((9, 9)).in_memory());
        p.insert((9, 9), 9);
        assert_eq!(p.loaded(), Some((9, 9)));
        assert_eq!(p.first(), Some((&(9, 9), &9)));
    }
}
