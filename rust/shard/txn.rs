//! The writes of one actor step: an overlay that later commands of the same step read
//! through, turned into one SlateDB `WriteBatch` at the end of the step.

use std::collections::BTreeMap;

use bytes::Bytes;
use slatedb::{Db, WriteBatch};

use crate::error::Result;

#[derive(Debug, Default)]
pub struct Txn {
    writes: BTreeMap<Vec<u8>, Option<Bytes>>,
}

impl Txn {
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    pub fn put(&mut self, key: Vec<u8>, value: Bytes) {
        self.writes.insert(key, Some(value));
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
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
