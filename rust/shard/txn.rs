//! The writes of one actor step: an overlay that later commands of the same step read
//! through, turned into one SlateDB `WriteBatch` at the end of the step.
//!
//! Keys the step creates (`put_new`: the caller knows the store does not hold them, e.g. an
//! index entry of a job's new status) and then deletes in the same step leave nothing behind:
//! no put and no tombstone. A job enqueued due now thus writes its PENDING entry only, not a
//! SCHEDULED one and its tombstone.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use slatedb::config::ScanOptions;
use slatedb::{Db, WriteBatch};

use crate::error::Result;

#[derive(Debug, Default)]
pub struct Txn {
    writes: BTreeMap<Vec<u8>, Option<Bytes>>,
    /// Keys put by `put_new` that the store does not hold.
    fresh: HashSet<Vec<u8>>,
}

impl Txn {
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    pub fn put(&mut self, key: Vec<u8>, value: Bytes) {
        self.writes.insert(key, Some(value));
    }

    /// Puts a key the store does not hold (the caller's invariant). If the step deleted it
    /// earlier (a tombstone in the overlay: the store holds it after all), it is a plain put.
    pub fn put_new(&mut self, key: Vec<u8>, value: Bytes) {
        if !self.writes.contains_key(&key) {
            self.fresh.insert(key.clone());
        }
        self.writes.insert(key, Some(value));
    }

    /// Deletes a key; one this step created with `put_new` is forgotten instead.
    pub fn delete(&mut self, key: Vec<u8>) {
        if self.fresh.remove(&key) {
            self.writes.remove(&key);
        } else {
            self.writes.insert(key, None);
        }
    }

    /// Forgets a key this step created (the store never had it): no tombstone is written.
    pub fn discard(&mut self, key: &[u8]) {
        self.writes.remove(key);
    }

    /// Up to `limit` entries of `[start, end)` in key order, as this step left them. The
    /// blocks read are not cached (queue pages: read once, then tombstoned).
    pub async fn scan(
        &self,
        db: &Db,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>> {
        self.scan_with(db, start, end, limit, &ScanOptions::default())
            .await
    }

    /// `scan`, keeping the blocks read in SlateDB's block cache: for index ranges that
    /// searches read again and again (ListJobs, bulk calls). Without it every
    /// search reads a block of each SST it crosses from the object store.
    pub async fn scan_cached(
        &self,
        db: &Db,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>> {
        let options = ScanOptions::default().with_cache_blocks(true);
        self.scan_with(db, start, end, limit, &options).await
    }

    async fn scan_with(
        &self,
        db: &Db,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: usize,
        options: &ScanOptions,
    ) -> Result<Vec<(Bytes, Bytes)>> {
        let mut out = Vec::new();
        let mut overlay = self.writes.range(start.clone()..end.clone()).peekable();
        let mut iter = db.scan_with_options(start..end, options).await?;
        let mut stored = iter.next().await?;
        while out.len() < limit {
            // The next key comes from the overlay when it sorts first or shadows the store's.
            let from_overlay = match (&stored, overlay.peek()) {
                (None, None) => break,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some(kv), Some((k, _))) => k.as_slice() <= kv.key.as_ref(),
            };
            if from_overlay {
                let Some((k, v)) = overlay.next() else { break };
                if stored
                    .as_ref()
                    .is_some_and(|kv| kv.key.as_ref() == k.as_slice())
                {
                    stored = iter.next().await?;
                }
                if let Some(v) = v {
                    out.push((Bytes::from(k.clone()), v.clone()));
                }
            } else if let Some(kv) = stored.take() {
                out.push((kv.key, kv.value));
                stored = iter.next().await?;
            }
        }
        Ok(out)
    }

    /// The values of `keys` (sorted, close together in one range) as this step left them:
    /// keys the step wrote come from the overlay, the others from one scan of the store from
    /// the first to the last of them (not one point read each).
    pub async fn read_sorted(&self, db: &Db, keys: &[Vec<u8>]) -> Result<Vec<Option<Bytes>>> {
        let mut out = vec![None; keys.len()];
        let mut missing = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            match self.writes.get(k) {
                Some(v) => out[i] = v.clone(),
                None => missing.push(i),
            }
        }
        let (Some(&first), Some(&last)) = (missing.first(), missing.last()) else {
            return Ok(out);
        };
        let mut end = keys[last].clone();
        end.push(0);
        let mut iter = db.scan(keys[first].clone()..end).await?;
        let mut pending = missing.into_iter().peekable();
        while let Some(kv) = iter.next().await? {
            while pending
                .peek()
                .is_some_and(|&i| keys[i].as_slice() < kv.key.as_ref())
            {
                pending.next();
            }
            match pending.peek() {
                Some(&i) if keys[i].as_slice() == kv.key.as_ref() => {
                    out[i] = Some(kv.value);
                    pending.next();
                }
                Some(_) => {}
                None => break,
            }
        }
        Ok(out)
    }

    /// Reads a key as this step left it.
    pub async fn get(&self, db: &Db, key: &[u8]) -> Result<Option<Bytes>> {
        if let Some(v) = self.writes.get(key) {
            return Ok(v.clone());
        }
        Ok(db.get(key).await?)
    }

    /// Every (key, value) under `prefix`, in key order, as this step left them.
    pub async fn scan_prefix(&self, db: &Db, prefix: &[u8]) -> Result<Vec<(Bytes, Bytes)>> {
        let mut out: BTreeMap<Bytes, Bytes> = BTreeMap::new();
        let mut iter = db.scan_prefix(prefix, ..).await?;
        while let Some(kv) = iter.next().await? {
            out.insert(kv.key, kv.value);
        }
        for (k, v) in self.writes.range(prefix.to_vec()..) {
            if !k.starts_with(prefix) {
                break;
            }
            match v {
                Some(v) => out.insert(Bytes::from(k.clone()), v.clone()),
                None => out.remove(k.as_slice()),
            };
        }
        Ok(out.into_iter().collect())
    }

    pub fn into_batch(self) -> Option<WriteBatch> {
        if self.writes.is_empty() {
            return None;
        }
        let mut batch = WriteBatch::new();
        for (k, v) in self.writes {
            match v {
                Some(v) => batch.put_bytes(Bytes::from(k), v),
                None => batch.delete(k),
            }
        }
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_created_and_deleted_in_one_step_leaves_nothing() {
        let mut t = Txn::default();
        t.put_new(b"a".to_vec(), Bytes::from_static(b"1"));
        t.delete(b"a".to_vec());
        assert!(t.is_empty(), "no put and no tombstone");
        // Deleted first (the store held it), then put again: a plain put, whose later delete
        // must leave a tombstone.
        t.delete(b"b".to_vec());
        t.put_new(b"b".to_vec(), Bytes::from_static(b"2"));
        t.delete(b"b".to_vec());
        assert_eq!(t.writes.get(b"b".as_slice()), Some(&None));
    }
}
