//! Job counts per (tenant, queue), per tenant and for the whole shard (the `silo_jobs` gauge),
//! by status, kept incrementally: `put_job` and the deletes record each job's move as a delta
//! of the step, and the step writes the changed counts in its batch
//! (docs/architecture.md#indexes-and-counts). Nothing ever counts by scanning jobs.
//!
//! Tenants and queues are unbounded, so memory holds a bounded LRU cache of counts. A count the
//! step changes and the cache lacks is read from the store once (one point read per such count
//! per step); the hot path of a busy queue reads nothing. The cache is written through: it
//! equals the store after every step, and a rebuild of the shard empties it.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;

use lru::LruCache;

use super::{Shard, Step};
use crate::error::{Error, Result};
use crate::keys;
use crate::lifecycle::JobState;
use crate::proto::records;
use crate::record;

/// Counts held in memory (about 100 bytes each).
const CACHED_COUNTS: usize = 16_384;

/// Jobs per status, indexed like `JobState::ALL`.
pub(super) type Counts = [i64; 6];

/// The slot of a state in `Counts`.
fn slot(state: JobState) -> usize {
    state.wire() as usize - 1
}

/// Cached counts by their store key (QUEUE_COUNTS or TENANT_COUNTS).
pub(super) struct CountCache(LruCache<Vec<u8>, Counts>);

impl Default for CountCache {
    fn default() -> Self {
        CountCache(LruCache::new(
            NonZeroUsize::new(CACHED_COUNTS).unwrap_or(NonZeroUsize::MIN),
        ))
    }
}

/// The count changes of one step, by count key.
#[derive(Debug, Default)]
pub(super) struct CountDeltas(BTreeMap<Vec<u8>, Counts>);

impl CountDeltas {
    /// One job of (tenant, queue) moves from `from` to `to` (None: it appears or disappears).
    pub(super) fn moved(
        &mut self,
        tenant: &str,
        queue: &str,
        from: Option<JobState>,
        to: Option<JobState>,
    ) {
        for key in [
            keys::queue_counts(tenant, queue),
            keys::tenant_counts(tenant),
            keys::meta(keys::META_JOB_COUNTS),
        ] {
            let d = self.0.entry(key).or_default();
            if let Some(from) = from {
                d[slot(from)] -= 1;
            }
            if let Some(to) = to {
                d[slot(to)] += 1;
            }
        }
    }
}

pub(super) fn decode_counts(value: &[u8]) -> Result<Counts> {
    let rec: records::QueueCountsRecord = record::decode(value)?;
    let mut out = Counts::default();
    if rec.by_status.len() > out.len() {
        return Err(Error::Internal(format!(
            "a count record of {} statuses",
            rec.by_status.len()
        )));
    }
    out[..rec.by_status.len()].copy_from_slice(&rec.by_status);
    Ok(out)
}

fn encode_counts(c: &Counts) -> bytes::Bytes {
    record::encode(&records::QueueCountsRecord {
        by_status: c.to_vec(),
    })
}

impl Shard {
    /// Applies the step's count deltas: each changed count is read (cache, else store), moved
    /// and written in the step's batch (deleted when every status is 0, so a queue whose jobs
    /// are all deleted disappears). Called before anything reads counts and at commit.
    pub(super) async fn flush_counts(&mut self, st: &mut Step) -> Result<()> {
        let shard_key = keys::meta(keys::META_JOB_COUNTS);
        for (key, delta) in std::mem::take(&mut st.counts).0 {
            if delta == Counts::default() {
                continue;
            }
            let mut counts = match self.counts_cache.0.get(&key) {
                Some(c) => *c,
                None => match st.txn.get(&self.db, &key).await? {
                    Some(v) => decode_counts(&v)?,
                    None => Counts::default(),
                },
            };
            for (c, d) in counts.iter_mut().zip(delta) {
                *c += d;
                if *c < 0 {
                    tracing::error!(key = ?key, "a job count went below zero: kept at 0");
                    *c = 0;
                }
            }
            if counts == Counts::default() {
                st.txn.delete(key.clone());
            } else {
                st.txn.put(key.clone(), encode_counts(&counts));
            }
            if key == shard_key {
                self.metrics.set_jobs(counts);
            }
            self.counts_cache.0.put(key, counts);
        }
        Ok(())
    }

    /// The shard's jobs per status as stored (META job_counts); rebuilt from the tenants'
    /// counts, and written, for a store made before that entry existed (one scan of
    /// TENANT_COUNTS, once). Called when the shard opens.
    pub(super) async fn load_job_counts(&mut self) -> Result<Counts> {
        let key = keys::meta(keys::META_JOB_COUNTS);
        if let Some(v) = self.db.get(&key).await? {
            return decode_counts(&v);
        }
        let mut total = Counts::default();
        let mut iter = self.db.scan_prefix(&keys::tenant_counts_all(), ..).await?;
        while let Some(kv) = iter.next().await? {
            for (t, n) in total.iter_mut().zip(decode_counts(&kv.value)?) {
                *t += n;
            }
        }
        if total != Counts::default() {
            tracing::info!(?total, "job counts rebuilt from the tenants' counts");
            self.db.put(&key, encode_counts(&total)).await?;
        }
        Ok(total)
    }

    /// The counts under one key as this step leaves them (after `flush_counts`).
    pub(super) async fn read_counts(&mut self, st: &Step, key: &[u8]) -> Result<Counts> {
        if let Some(c) = self.counts_cache.0.get(key) {
            return Ok(*c);
        }
        let counts = match st.txn.get(&self.db, key).await? {
            Some(v) => decode_counts(&v)?,
            None => Counts::default(),
        };
        self.counts_cache.0.put(key.to_vec(), counts);
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_move_changes_the_queue_and_the_tenant_totals() {
        let mut d = CountDeltas::default();
        d.moved("t", "q", None, Some(JobState::Scheduled));
        d.moved("t", "q", Some(JobState::Scheduled), Some(JobState::Pending));
        d.moved("t", "r", None, Some(JobState::Pending));
        let q = d.0[&keys::queue_counts("t", "q")];
        assert_eq!(q, [0, 1, 0, 0, 0, 0]);
        assert_eq!(d.0[&keys::tenant_counts("t")], [0, 2, 0, 0, 0, 0]);
        assert_eq!(d.0[&keys::meta(keys::META_JOB_COUNTS)], [0, 2, 0, 0, 0, 0]);
        let rec = encode_counts(&[1, 2, 3, 4, 5, 6]);
        assert_eq!(decode_counts(&rec).unwrap(), [1, 2, 3, 4, 5, 6]);
    }
}
