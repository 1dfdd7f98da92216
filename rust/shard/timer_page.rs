//! The head page of a timer family (SCHEDULED, EXPIRY, SCHEDULE_DUE: keys `(time, seq)`),
//! shared by the timers of queued jobs, expiries and schedules: memory holds the first page,
//! a refill reads the next page after the last key memory holds (never a rescan), and due
//! entries are taken from the front (docs/architecture.md#caches).

use bytes::Bytes;
use slatedb::Db;

use super::page::{Page, SortKey, PAGE_SIZE};
use super::txn::Txn;
use crate::error::Result;
use crate::keys;

/// The smallest key after `key`.
pub(super) fn after(mut key: Vec<u8>) -> Vec<u8> {
    key.push(0);
    key
}

/// One timer family: its byte and how its values decode.
pub(super) struct TimerFamily<V> {
    pub(super) family: u8,
    pub(super) decode: fn(SortKey, &Bytes) -> Result<V>,
}

impl<V> TimerFamily<V> {
    /// Reads the next page of the family after the last key memory holds into `page`.
    pub(super) async fn refill(&self, db: &Db, txn: &Txn, page: &mut Page<V>) -> Result<()> {
        let start = match page.loaded() {
            Some((at, seq)) => after(keys::timer(self.family, at, seq)),
            None => vec![self.family],
        };
        let rows = txn
            .scan(db, start, vec![self.family + 1], PAGE_SIZE)
            .await?;
        let complete = rows.len() < PAGE_SIZE;
        let mut last = None;
        for (k, v) in rows {
            let sort = keys::parse_timer(self.family, &k)?;
            page.insert(sort, (self.decode)(sort, &v)?);
            last = Some(sort);
        }
        page.refilled(last, complete);
        Ok(())
    }

    /// Takes up to `max` entries from the front whose time has come (`due(time)`), refilling
    /// the head from the store as it runs empty.
    pub(super) async fn take_due(
        &self,
        db: &Db,
        txn: &Txn,
        page: &mut Page<V>,
        due: impl Fn(i64) -> bool,
        max: usize,
    ) -> Result<Vec<(SortKey, V)>> {
        let mut out = Vec::new();
        while out.len() < max {
            if page.needs_refill() {
                self.refill(db, txn, page).await?;
            }
            let key = match page.first() {
                Some((&key, _)) if due(key.0) => key,
                _ => break,
            };
            out.extend(page.pop_first().map(|v| (key, v)));
        }
        Ok(out)
    }
}
