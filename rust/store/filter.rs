//! The SST filter of a shard's SlateDB: a bloom filter over the keys the broker reads one at a
//! time (job records, payloads, attempts, tasks, limits, counts, timers it looks up), leaving
//! out the families it only ever scans (leases, READY, the ListJobs indexes, retention timers).
//!
//! Why: filters and SST indexes share SlateDB's metadata cache, and a point read of an old key
//! checks the filter of every SST it might be in. The search indexes add scanned keys per
//! job; hashing them into the filters more than doubled the filters' size, and at a million jobs the
//! metadata outgrew a 16 MiB cache: every read reloaded filters from the store (a GetJob of an
//! old job took milliseconds instead of microseconds; BENCHMARKS.md, "ops"). A point query for
//! a key of a left-out family answers "may match", so a read of such a key is never wrong,
//! only unfiltered. The policy's name is stored with each filter: a change of the families
//! left out changes the name (SlateDB then reads older SSTs without their filter).

use std::sync::Arc;

use slatedb::{
    BloomFilterPolicy, Filter, FilterBuilder, FilterPolicy, FilterQuery, FilterTarget, RowEntry,
};

use crate::keys;

/// Bits per key of the bloom filter (SlateDB's default).
const BITS_PER_KEY: u32 = 10;

/// Families the broker never reads by key: their keys stay out of the filters.
const SCANNED_ONLY: [u8; 6] = [
    keys::LEASE,
    keys::READY,
    keys::BY_STATUS,
    keys::BY_QUEUE,
    keys::BY_METADATA,
    keys::RETENTION,
];

fn filtered(key: &[u8]) -> bool {
    key.first().is_none_or(|f| !SCANNED_ONLY.contains(f))
}

/// The filter policy of every shard (rust/store/mod.rs opens SlateDB with it).
pub fn policy() -> Arc<dyn FilterPolicy> {
    Arc::new(PointKeys(BloomFilterPolicy::new(BITS_PER_KEY)))
}

struct PointKeys(BloomFilterPolicy);

impl FilterPolicy for PointKeys {
    fn name(&self) -> &str {
        "silo-point-keys-bf1"
    }

    fn builder(&self) -> Box<dyn FilterBuilder> {
        Box::new(PointKeysBuilder(self.0.builder()))
    }

    fn decode(&self, data: &[u8]) -> Arc<dyn Filter> {
        Arc::new(PointKeysFilter(self.0.decode(data)))
    }

    fn estimate_size(&self, num_keys: usize) -> usize {
        self.0.estimate_size(num_keys)
    }

    fn supports_range_queries(&self) -> bool {
        false
    }

    fn supports_prefix_queries(&self) -> bool {
        false
    }
}

struct PointKeysBuilder(Box<dyn FilterBuilder>);

impl FilterBuilder for PointKeysBuilder {
    fn add_entry(&mut self, entry: &RowEntry) {
        if filtered(&entry.key) {
            self.0.add_entry(entry);
        }
    }

    fn build(&mut self) -> Arc<dyn Filter> {
        Arc::new(PointKeysFilter(self.0.build()))
    }
}

struct PointKeysFilter(Arc<dyn Filter>);

impl Filter for PointKeysFilter {
    fn might_match(&self, query: &FilterQuery) -> bool {
        match &query.target {
            FilterTarget::Point(key) if filtered(key) => self.0.might_match(query),
            // A key left out of the filter, a prefix or a range: the bloom filter cannot tell.
            _ => true,
        }
    }

    fn encode(&self, writer: &mut dyn bytes::BufMut) {
        self.0.encode(writer)
    }

    fn size(&self) -> usize {
        self.0.size()
    }

    fn clamp_allocated_size(&self) -> Arc<dyn Filter> {
        Arc::new(PointKeysFilter(self.0.clamp_allocated_size()))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use slatedb::ValueDeletable;

    use super::*;

    fn entry(key: Vec<u8>) -> RowEntry {
        RowEntry {
            key: Bytes::from(key),
            value: ValueDeletable::Value(Bytes::from_static(b"v")),
            seq: 1,
            create_ts: None,
            expire_ts: None,
        }
    }

    #[test]
    fn point_keys_are_filtered_and_scanned_keys_always_may_match() {
        let p = policy();
        let mut b = p.builder();
        let job = keys::job("t", "j");
        let index = keys::index_entry(&keys::index_prefix("t", &keys::Index::Status(2)), 1, 1);
        b.add_entry(&entry(job.clone()));
        b.add_entry(&entry(index.clone()));
        let mut encoded = Vec::new();
        b.build().encode(&mut encoded);
        let f = p.decode(&encoded);
        let point = |k: Vec<u8>| FilterQuery::point(Bytes::from(k));
        assert!(f.might_match(&point(job)));
        assert!(f.might_match(&point(index)));
        // A scanned-only key that is not in the SST still "may match": never a false negative.
        let other = keys::index_entry(&keys::index_prefix("u", &keys::Index::Status(2)), 2, 2);
        assert!(f.might_match(&point(other)));
        // Bloom filters have false positives; with one key, these misses are ruled out.
        let misses = (0..100)
            .filter(|i| f.might_match(&point(keys::job("t", &format!("other-{i}")))))
            .count();
        assert!(misses < 10, "{misses} false positives of 100");
    }
}
