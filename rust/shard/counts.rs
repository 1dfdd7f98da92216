//! How many jobs wait in the store's SCHEDULED and READY families. Kept in memory, written to
//! META by each step that changes them (GetStats `scheduled` and `ready` read them), so a count
//! never needs a scan.

use bytes::Bytes;

use crate::keys;
use crate::record;

#[derive(Debug, Default)]
pub struct BacklogCounts {
    scheduled: u64,
    ready: u64,
    dirty: bool,
}

impl BacklogCounts {
    /// The counts as stored.
    pub fn loaded(scheduled: u64, ready: u64) -> Self {
        BacklogCounts {
            scheduled,
            ready,
            dirty: false,
        }
    }

    pub fn scheduled(&self) -> u64 {
        self.scheduled
    }

    pub fn ready(&self) -> u64 {
        self.ready
    }

    /// A job got a SCHEDULED entry (enqueue, retry).
    pub fn scheduled_added(&mut self) {
        self.scheduled += 1;
        self.dirty = true;
    }

    /// A SCHEDULED entry went away without becoming READY (cancel).
    pub fn scheduled_removed(&mut self) {
        self.scheduled = self.scheduled.saturating_sub(1);
        self.dirty = true;
    }

    /// A job due at once got a READY entry (no SCHEDULED one).
    pub fn ready_added(&mut self) {
        self.ready += 1;
        self.dirty = true;
    }

    /// A SCHEDULED entry came due and moved to READY.
    pub fn promoted(&mut self) {
        self.scheduled = self.scheduled.saturating_sub(1);
        self.ready += 1;
        self.dirty = true;
    }

    /// A READY entry went away (leased, cancelled, or dropped as unreadable).
    pub fn ready_removed(&mut self) {
        self.ready = self.ready.saturating_sub(1);
        self.dirty = true;
    }

    /// The META writes of the counts, if they changed since the last call.
    pub fn take_writes(&mut self) -> Option<[(Vec<u8>, Bytes); 2]> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        Some([
            (
                keys::meta(keys::META_READY_JOBS),
                record::encode_u64(self.ready),
            ),
            (
                keys::meta(keys::META_SCHEDULED_JOBS),
                record::encode_u64(self.scheduled),
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_move_between_families_and_mark_writes() {
        let mut c = BacklogCounts::loaded(0, 0);
        assert!(c.take_writes().is_none());
        c.scheduled_added();
        c.scheduled_added();
        c.promoted();
        assert_eq!((c.scheduled(), c.ready()), (1, 1));
        assert!(c.take_writes().is_some());
        assert!(c.take_writes().is_none(), "written once per change");
        c.ready_removed();
        c.ready_removed(); // never below zero
        c.scheduled_removed();
        assert_eq!((c.scheduled(), c.ready()), (0, 0));
        assert!(c.take_writes().is_some());
    }
}
