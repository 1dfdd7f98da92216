//! Every key of a shard's SlateDB, and the one place their layout is defined.
//!
//! A key is a family byte followed by order-preserving fields, so that the byte order of
//! encoded keys equals the order of the field tuples:
//! - strings: bytes with 0x00 escaped as 0x00 0xFF, ended by 0x00 0x01 (a prefix sorts first);
//! - u32/u64: big-endian; i64: big-endian with the sign bit flipped.
//!
//! Families (docs/architecture.md#keys); the records are those of proto/silo/store/v1:
//! - `META  name`                 -> u64 big-endian (format version, shard counters)
//! - `JOB   tenant job_id`        -> JobRecord
//! - `PAYLOAD tenant job_id`      -> raw payload bytes (written once)
//! - `ATTEMPT tenant job_id n`    -> AttemptRecord
//! - `TASK  task_id`              -> TaskRef
//! - `LEASE task_id`              -> LeaseRecord (live attempts only)
//! - `SCHEDULED due_ms seq`       -> QueuedJob (a job waiting for its start time or backoff)
//! - `LIMIT tenant key`           -> u64 big-endian: the key's max concurrency (last enqueue wins)
//! - `READY queue !priority tenant due_ms seq` -> QueuedJob (a due job waiting for a worker;
//!   `!priority` is `u32::MAX - priority`, so the highest priority sorts first)
//! - `RATE  tenant key`           -> RateBucketRecord (a rate-limit key's token bucket)
//! - `UNIQUE tenant unique_key`   -> UniqueRecord (the job holding a unique key)
//! - `PAUSED tenant queue`        -> PausedQueueRecord (present while the queue is paused)
//! - `SCHEDULE tenant name`       -> ScheduleRecord
//! - `SCHEDULE_DUE next_run_ms seq` -> ScheduleRecord (a copy: the schedule timer family)
//! - `EXPIRY expire_at_ms seq`    -> ExpiryRecord (a queued job's first-attempt deadline; `seq`
//!   is the job's)
//! - `BY_STATUS tenant status ~created ~seq`      -> job id (`status`: the wire JobStatus, u32)
//! - `BY_QUEUE tenant queue ~created ~seq`        -> job id
//! - `BY_METADATA tenant key value ~created ~seq` -> job id (one entry per metadata pair)
//! - `QUEUE_COUNTS tenant queue`  -> QueueCountsRecord (jobs of the queue per status)
//! - `RETENTION due_ms seq`       -> RetentionRecord (a terminal job to delete at `due_ms`)
//! - `TENANT_COUNTS tenant`       -> QueueCountsRecord (jobs of the tenant per status, all queues)
//!
//! The three ListJobs indexes end with the job's *position* `~created ~seq`: its creation time
//! and enqueue sequence, each inverted (`!` of the encoded field), so that a forward scan yields
//! the newest job first (no reverse scans needed) and every index orders its jobs the same way.
//! A page token or a bulk cursor is therefore a position, valid in any index. Static entries
//! (queue, metadata) are written when the job is first put; the status entry moves with the
//! job. A tenant's every job is in exactly one status range, so its whole list is the merge of
//! its six status ranges: no tenant-wide index is kept (docs/architecture.md#indexes-and-counts).
//!
//! Family bytes are grouped by area: 0x01 META; 0x10..=0x1F jobs, attempts, leases and their
//! queues; 0x20..=0x2F search (ListJobs indexes, queue counts, retention timers); 0x30..=0x3F
//! flow control (rate-limit buckets, unique keys, paused queues, schedules, expiry timers).
//!
//! # Store format
//!
//! `META format_version` holds `FORMAT_VERSION`, written when a shard first opens an empty
//! store. Version 2 added the search families (0x20..=0x25), the PENDING job state (the
//! record's SCHEDULED/PENDING became exact) and `JobRecord` fields 30-33; a version 1 store
//! lacks the indexes and counts, so it is refused (nothing had shipped). A shard refuses to
//! open a store of another version, or one holding data but no version, with an error naming
//! the versions (`shard/load.rs`, `check_format`), so a build never misreads a store it does
//! not understand. Any change of a family's layout or of a record's field number or type bumps
//! `FORMAT_VERSION`.
//!
//! No release has shipped, so no migration exists yet, and stores written before version 1 are
//! refused. A future migration from version N to N+1 would run inside `check_format` when the
//! shard opens: with the shard's actor not yet started (so nothing else writes), scan each
//! changed family, rewrite its entries in bounded `WriteBatch`es, and write `format_version
//! = N+1` in the last batch, so that a crash midway leaves version N and the migration reruns
//! from the start (each rewrite must therefore be idempotent). A broker never serves a store
//! until its version is the one it was built for.

use crate::error::{Error, Result};

pub const META: u8 = 0x01;
pub const JOB: u8 = 0x10;
pub const PAYLOAD: u8 = 0x11;
pub const ATTEMPT: u8 = 0x12;
pub const TASK: u8 = 0x13;
pub const LEASE: u8 = 0x14;
pub const SCHEDULED: u8 = 0x15;
pub const LIMIT: u8 = 0x16;
pub const READY: u8 = 0x17;
// Flow control (docs/architecture.md#flow-control). Added in format version 1 without a bump
// (a store without them simply has no bucket, unique key, pause, schedule or expiry yet).
pub const RATE: u8 = 0x30;
pub const UNIQUE: u8 = 0x31;
pub const PAUSED: u8 = 0x32;
pub const SCHEDULE: u8 = 0x33;
pub const SCHEDULE_DUE: u8 = 0x34;
pub const EXPIRY: u8 = 0x35;
pub const BY_STATUS: u8 = 0x20;
pub const BY_QUEUE: u8 = 0x21;
pub const BY_METADATA: u8 = 0x22;
pub const QUEUE_COUNTS: u8 = 0x23;
pub const RETENTION: u8 = 0x24;
pub const TENANT_COUNTS: u8 = 0x25;

/// The store format this build reads and writes (see the module doc).
pub const FORMAT_VERSION: u64 = 2;
/// The META entry holding the store's format version.
pub const META_FORMAT_VERSION: &str = "format_version";
/// The META entry holding the next enqueue sequence number of the shard.
pub const META_NEXT_SEQ: &str = "next_seq";
/// The META entries counting the SCHEDULED and READY entries (the `scheduled` and `ready`
/// gauges, which must not cost a scan of the backlog).
pub const META_SCHEDULED_JOBS: &str = "scheduled_jobs";
pub const META_READY_JOBS: &str = "ready_jobs";
/// The META entry counting the shard's jobs per status (a QueueCountsRecord, like
/// TENANT_COUNTS summed over the tenants): the `silo_jobs{status}` gauge. A store written
/// before it existed gets it rebuilt from TENANT_COUNTS once, when the shard opens.
pub const META_JOB_COUNTS: &str = "job_counts";

/// Builds one key field by field.
#[derive(Debug, Clone, Default)]
pub struct KeyBuilder(Vec<u8>);

impl KeyBuilder {
    pub fn family(family: u8) -> Self {
        let mut v = Vec::with_capacity(48);
        v.push(family);
        KeyBuilder(v)
    }

    pub fn str(mut self, s: &str) -> Self {
        for &b in s.as_bytes() {
            self.0.push(b);
            if b == 0 {
                self.0.push(0xFF);
            }
        }
        self.0.extend_from_slice(&[0x00, 0x01]);
        self
    }

    pub fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn i64(mut self, v: i64) -> Self {
        self.0
            .extend_from_slice(&((v as u64) ^ (1u64 << 63)).to_be_bytes());
        self
    }

    pub fn build(self) -> Vec<u8> {
        self.0
    }
}

/// A job's position in every ListJobs index: the encoded `~created ~seq` suffix of its entries.
/// Byte order is newest first: a later creation time, then a later sequence, sorts first.
pub fn position(created_ms: i64, seq: u64) -> [u8; POSITION_LEN] {
    let mut out = [0u8; POSITION_LEN];
    out[..8].copy_from_slice(&(!((created_ms as u64) ^ (1u64 << 63))).to_be_bytes());
    out[8..].copy_from_slice(&(!seq).to_be_bytes());
    out
}

/// The length of a position.
pub const POSITION_LEN: usize = 16;

/// (created_ms, seq) of an encoded position.
pub fn parse_position(bytes: &[u8]) -> Result<(i64, u64)> {
    let Ok(b) = <[u8; POSITION_LEN]>::try_from(bytes) else {
        return Err(corrupt(bytes));
    };
    let created = (!u64::from_be_bytes(b[..8].try_into().unwrap_or_default())) ^ (1u64 << 63);
    let seq = !u64::from_be_bytes(b[8..].try_into().unwrap_or_default());
    Ok((created as i64, seq))
}

/// The position an index entry ends with.
pub fn entry_position(key: &[u8]) -> Result<(i64, u64)> {
    match key.len().checked_sub(POSITION_LEN) {
        Some(at) => parse_position(&key[at..]),
        None => Err(corrupt(key)),
    }
}

/// The ListJobs index a job's entries sit in (each is one key prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Index<'a> {
    Status(u32),
    Queue(&'a str),
    Metadata(&'a str, &'a str),
}

/// The key prefix of one index of one tenant; its entries are `prefix ++ position`.
pub fn index_prefix(tenant: &str, index: &Index<'_>) -> Vec<u8> {
    match index {
        Index::Status(s) => KeyBuilder::family(BY_STATUS).str(tenant).u32(*s).build(),
        Index::Queue(q) => KeyBuilder::family(BY_QUEUE).str(tenant).str(q).build(),
        Index::Metadata(k, v) => KeyBuilder::family(BY_METADATA)
            .str(tenant)
            .str(k)
            .str(v)
            .build(),
    }
}

/// One index entry: `prefix` (from `index_prefix`) followed by the job's position.
pub fn index_entry(prefix: &[u8], created_ms: i64, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + POSITION_LEN);
    k.extend_from_slice(prefix);
    k.extend_from_slice(&position(created_ms, seq));
    k
}

pub fn queue_counts(tenant: &str, queue: &str) -> Vec<u8> {
    KeyBuilder::family(QUEUE_COUNTS)
        .str(tenant)
        .str(queue)
        .build()
}

/// Every queue count of one tenant, in queue name order.
pub fn queue_counts_prefix(tenant: &str) -> Vec<u8> {
    KeyBuilder::family(QUEUE_COUNTS).str(tenant).build()
}

/// (tenant, queue) of a QUEUE_COUNTS key.
pub fn parse_queue_counts(key: &[u8]) -> Result<(String, String)> {
    let mut r = KeyReader::new(key, QUEUE_COUNTS)?;
    Ok((r.str()?, r.str()?))
}

/// The prefix of every TENANT_COUNTS key.
pub fn tenant_counts_all() -> Vec<u8> {
    KeyBuilder::family(TENANT_COUNTS).build()
}

pub fn tenant_counts(tenant: &str) -> Vec<u8> {
    KeyBuilder::family(TENANT_COUNTS).str(tenant).build()
}

pub fn retention(due_ms: i64, seq: u64) -> Vec<u8> {
    KeyBuilder::family(RETENTION).i64(due_ms).u64(seq).build()
}

/// (due_ms, seq) of a RETENTION key.
pub fn parse_retention(key: &[u8]) -> Result<(i64, u64)> {
    let mut r = KeyReader::new(key, RETENTION)?;
    Ok((r.i64()?, r.u64()?))
}

/// Reads fields back in the order they were written.
#[derive(Debug)]
pub struct KeyReader<'a> {
    rest: &'a [u8],
}

impl<'a> KeyReader<'a> {
    /// Starts after the family byte, checking it.
    pub fn new(key: &'a [u8], family: u8) -> Result<Self> {
        match key.split_first() {
            Some((&f, rest)) if f == family => Ok(KeyReader { rest }),
            _ => Err(corrupt(key)),
        }
    }

    pub fn str(&mut self) -> Result<String> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.rest.len() {
            let b = self.rest[i];
            if b == 0 {
                match self.rest.get(i + 1) {
                    Some(0x01) => {
                        self.rest = &self.rest[i + 2..];
                        return String::from_utf8(out).map_err(|_| corrupt(self.rest));
                    }
                    Some(0xFF) => {
                        out.push(0);
                        i += 2;
                        continue;
                    }
                    _ => return Err(corrupt(self.rest)),
                }
            }
            out.push(b);
            i += 1;
        }
        Err(corrupt(self.rest))
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        if self.rest.len() < N {
            return Err(corrupt(self.rest));
        }
        let (head, tail) = self.rest.split_at(N);
        self.rest = tail;
        let mut a = [0u8; N];
        a.copy_from_slice(head);
        Ok(a)
    }

    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.take::<4>()?))
    }

    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.take::<8>()?))
    }

    pub fn i64(&mut self) -> Result<i64> {
        Ok((u64::from_be_bytes(self.take::<8>()?) ^ (1u64 << 63)) as i64)
    }
}

fn corrupt(key: &[u8]) -> Error {
    Error::Internal(format!("malformed key {key:02x?}"))
}

pub fn meta(name: &str) -> Vec<u8> {
    KeyBuilder::family(META).str(name).build()
}

pub fn job(tenant: &str, job_id: &str) -> Vec<u8> {
    KeyBuilder::family(JOB).str(tenant).str(job_id).build()
}

pub fn payload(tenant: &str, job_id: &str) -> Vec<u8> {
    KeyBuilder::family(PAYLOAD).str(tenant).str(job_id).build()
}

pub fn attempt(tenant: &str, job_id: &str, attempt: u32) -> Vec<u8> {
    KeyBuilder::family(ATTEMPT)
        .str(tenant)
        .str(job_id)
        .u32(attempt)
        .build()
}

/// Every attempt of one job, in attempt order.
pub fn attempts_prefix(tenant: &str, job_id: &str) -> Vec<u8> {
    KeyBuilder::family(ATTEMPT).str(tenant).str(job_id).build()
}

pub fn task(task_id: &str) -> Vec<u8> {
    KeyBuilder::family(TASK).str(task_id).build()
}

pub fn lease(task_id: &str) -> Vec<u8> {
    KeyBuilder::family(LEASE).str(task_id).build()
}

pub fn scheduled(due_ms: i64, seq: u64) -> Vec<u8> {
    timer(SCHEDULED, due_ms, seq)
}

/// A key of a timer family (SCHEDULED, SCHEDULE_DUE, EXPIRY): (time, seq).
pub fn timer(family: u8, at_ms: i64, seq: u64) -> Vec<u8> {
    KeyBuilder::family(family).i64(at_ms).u64(seq).build()
}

/// (time, seq) of a key of a timer family.
pub fn parse_timer(family: u8, key: &[u8]) -> Result<(i64, u64)> {
    let mut r = KeyReader::new(key, family)?;
    Ok((r.i64()?, r.u64()?))
}

pub fn rate(tenant: &str, key: &str) -> Vec<u8> {
    KeyBuilder::family(RATE).str(tenant).str(key).build()
}

pub fn unique(tenant: &str, unique_key: &str) -> Vec<u8> {
    KeyBuilder::family(UNIQUE)
        .str(tenant)
        .str(unique_key)
        .build()
}

pub fn paused(tenant: &str, queue: &str) -> Vec<u8> {
    KeyBuilder::family(PAUSED).str(tenant).str(queue).build()
}

/// Every paused queue of one tenant, in queue name order.
pub fn paused_prefix(tenant: &str) -> Vec<u8> {
    KeyBuilder::family(PAUSED).str(tenant).build()
}

/// (tenant, queue) of a PAUSED key.
pub fn parse_paused(key: &[u8]) -> Result<(String, String)> {
    let mut r = KeyReader::new(key, PAUSED)?;
    Ok((r.str()?, r.str()?))
}

pub fn schedule(tenant: &str, name: &str) -> Vec<u8> {
    KeyBuilder::family(SCHEDULE).str(tenant).str(name).build()
}

/// Every schedule of one tenant, in name order.
pub fn schedules_prefix(tenant: &str) -> Vec<u8> {
    KeyBuilder::family(SCHEDULE).str(tenant).build()
}

pub fn limit(tenant: &str, key: &str) -> Vec<u8> {
    KeyBuilder::family(LIMIT).str(tenant).str(key).build()
}

/// One (queue, priority, tenant) group of the READY family: the jobs of one tenant that one
/// priority level of one queue hands out in (due, seq) order.
pub fn ready_group(queue: &str, priority: u32, tenant: &str) -> Vec<u8> {
    KeyBuilder::family(READY)
        .str(queue)
        .u32(u32::MAX - priority)
        .str(tenant)
        .build()
}

/// A READY key: its group followed by (due_ms, seq).
pub fn ready(group: &[u8], due_ms: i64, seq: u64) -> Vec<u8> {
    let mut k = KeyBuilder(Vec::with_capacity(group.len() + 16));
    k.0.extend_from_slice(group);
    k.i64(due_ms).u64(seq).build()
}

/// (queue, priority, tenant, due_ms, seq) of a READY key.
pub fn parse_ready(key: &[u8]) -> Result<(String, u32, String, i64, u64)> {
    let mut r = KeyReader::new(key, READY)?;
    Ok((r.str()?, u32::MAX - r.u32()?, r.str()?, r.i64()?, r.u64()?))
}

/// The first key after every key that starts with `prefix` (None: no such key).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// (due_ms, seq) of a SCHEDULED key.
pub fn parse_scheduled(key: &[u8]) -> Result<(i64, u64)> {
    parse_timer(SCHEDULED, key)
}

/// The task id of a LEASE key.
pub fn parse_lease(key: &[u8]) -> Result<String> {
    KeyReader::new(key, LEASE)?.str()
}

/// The half-open range of every key of one family.
pub fn family_range(family: u8) -> std::ops::Range<Vec<u8>> {
    vec![family]..vec![family + 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_str() -> impl Strategy<Value = String> {
        // Include NUL and 0xFF-ish characters to exercise the escaping.
        proptest::collection::vec(
            prop_oneof![
                Just('\0'),
                Just('\u{1}'),
                Just('a'),
                Just('b'),
                Just('ÿ'),
                any::<char>()
            ],
            0..6,
        )
        .prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #[test]
        fn attempt_key_order_matches_tuple_order(
            a in (any_str(), any_str(), any::<u32>()),
            b in (any_str(), any_str(), any::<u32>()),
        ) {
            let ka = attempt(&a.0, &a.1, a.2);
            let kb = attempt(&b.0, &b.1, b.2);
            let ta = (a.0.as_bytes(), a.1.as_bytes(), a.2);
            let tb = (b.0.as_bytes(), b.1.as_bytes(), b.2);
            prop_assert_eq!(ka.cmp(&kb), ta.cmp(&tb));
        }

        #[test]
        fn scheduled_key_order_matches_tuple_order(
            a in (any::<i64>(), any::<u64>()),
            b in (any::<i64>(), any::<u64>()),
        ) {
            prop_assert_eq!(scheduled(a.0, a.1).cmp(&scheduled(b.0, b.1)), a.cmp(&b));
        }

        #[test]
        fn ready_key_order_matches_tuple_order(
            a in (any_str(), any::<u32>(), any_str(), any::<i64>(), any::<u64>()),
            b in (any_str(), any::<u32>(), any_str(), any::<i64>(), any::<u64>()),
        ) {
            let ka = ready(&ready_group(&a.0, a.1, &a.2), a.3, a.4);
            let kb = ready(&ready_group(&b.0, b.1, &b.2), b.3, b.4);
            // Highest priority first.
            let ta = (a.0.as_bytes(), std::cmp::Reverse(a.1), a.2.as_bytes(), a.3, a.4);
            let tb = (b.0.as_bytes(), std::cmp::Reverse(b.1), b.2.as_bytes(), b.3, b.4);
            prop_assert_eq!(ka.cmp(&kb), ta.cmp(&tb));
            prop_assert_eq!(parse_ready(&ka).unwrap(), a.clone());
            let group = ready_group(&a.0, a.1, &a.2);
            prop_assert!(ka.starts_with(&group));
            let end = prefix_end(&group).unwrap();
            prop_assert!(ka < end);
            if !kb.starts_with(&group) {
                prop_assert!(kb < group || kb >= end);
            }
        }

        #[test]
        fn flow_keys_round_trip_and_stay_in_their_tenant(
            t in any_str(), u in any_str(), q in any_str(), at in any::<i64>(), seq in any::<u64>(),
        ) {
            prop_assert_eq!(parse_paused(&paused(&t, &q)).unwrap(), (t.clone(), q.clone()));
            for family in [SCHEDULED, SCHEDULE_DUE, EXPIRY] {
                prop_assert_eq!(parse_timer(family, &timer(family, at, seq)).unwrap(), (at, seq));
            }
            prop_assume!(t != u);
            prop_assert!(!schedule(&u, &q).starts_with(&schedules_prefix(&t)));
            prop_assert!(schedule(&t, &q).starts_with(&schedules_prefix(&t)));
            prop_assert!(paused(&t, &q).starts_with(&paused_prefix(&t)));
            prop_assert!(!paused(&u, &q).starts_with(&paused_prefix(&t)));
        }

        #[test]
        fn keys_round_trip(s in any_str(), due in any::<i64>(), seq in any::<u64>()) {
            prop_assert_eq!(parse_lease(&lease(&s)).unwrap(), s.clone());
            prop_assert_eq!(parse_scheduled(&scheduled(due, seq)).unwrap(), (due, seq));
            let k = attempt(&s, &s, 7);
            let mut r = KeyReader::new(&k, ATTEMPT).unwrap();
            prop_assert_eq!(r.str().unwrap(), s.clone());
            prop_assert_eq!(r.str().unwrap(), s);
            prop_assert_eq!(r.u32().unwrap(), 7);
        }

        #[test]
        fn a_job_prefix_never_covers_another_job(t in any_str(), a in any_str(), b in any_str()) {
            prop_assume!(a != b);
            let prefix = attempts_prefix(&t, &a);
            prop_assert!(!attempt(&t, &b, 1).starts_with(&prefix));
        }
    }

    proptest! {
        #[test]
        fn index_entries_sort_newest_first_and_round_trip(
            t in any_str(),
            a in (any::<i64>(), any::<u64>()),
            b in (any::<i64>(), any::<u64>()),
            status in any::<u32>(),
        ) {
            for index in [Index::Status(status), Index::Queue(&t), Index::Metadata(&t, &t)] {
                let prefix = index_prefix(&t, &index);
                let ka = index_entry(&prefix, a.0, a.1);
                let kb = index_entry(&prefix, b.0, b.1);
                prop_assert_eq!(ka.cmp(&kb), b.cmp(&a), "newest first");
                prop_assert_eq!(entry_position(&ka).unwrap(), a);
                prop_assert!(ka.starts_with(&prefix));
                prop_assert!(ka < prefix_end(&prefix).unwrap());
            }
            prop_assert_eq!(parse_retention(&retention(a.0, a.1)).unwrap(), a);
            prop_assert_eq!(parse_queue_counts(&queue_counts(&t, "q")).unwrap(), (t.clone(), "q".to_string()));
        }

        #[test]
        fn an_index_never_covers_another_tenant(t in any_str(), u in any_str()) {
            prop_assume!(t != u);
            let p = index_prefix(&t, &Index::Status(2));
            let q = index_prefix(&u, &Index::Status(2));
            prop_assert!(!index_entry(&q, 1, 1).starts_with(&p));
            prop_assert!(!queue_counts(&u, "q").starts_with(&queue_counts_prefix(&t)));
        }
    }

    #[test]
    fn families_do_not_overlap() {
        let r = family_range(JOB);
        assert!(job("t", "j") >= r.start && job("t", "j") < r.end);
        assert!(payload("t", "j") >= r.end);
        for (key, family) in [
            (rate("t", "k"), RATE),
            (unique("t", "u"), UNIQUE),
            (paused("t", "q"), PAUSED),
            (schedule("t", "s"), SCHEDULE),
            (timer(SCHEDULE_DUE, 1, 2), SCHEDULE_DUE),
            (timer(EXPIRY, 1, 2), EXPIRY),
        ] {
            assert!(
                (0x30..=0x3F).contains(&family),
                "flow control takes 0x30..=0x3F"
            );
            assert!(family_range(family).contains(&key));
        }
    }
}
