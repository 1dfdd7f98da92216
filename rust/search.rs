//! ListJobs filters, page tokens and the choice of index (docs/api.md#listjobs): pure logic,
//! no I/O. The shard's scan (rust/shard/list_jobs.rs) reads the ranges this module plans.
//!
//! Every index orders a tenant's jobs the same way, newest first by (created_ms, seq)
//! (rust/keys.rs), so a page token is only a position: "continue after this job". It stays
//! valid whichever index the next page uses, and whatever changed in between.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::error::{Error, Result};
use crate::keys::{self, Index};
use crate::lifecycle::JobState;
use crate::proto::records;

/// A validated ListJobs filter (also the filter of the bulk RPCs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub tenant: String,
    /// None: every queue.
    pub queue: Option<String>,
    /// Empty: every status. Sorted, without repeats.
    pub statuses: Vec<JobState>,
    /// Every pair must match.
    pub metadata: BTreeMap<String, String>,
    /// created_ms >= this (0: unbounded).
    pub created_after_ms: i64,
    /// created_ms < this (0: unbounded).
    pub created_before_ms: i64,
}

/// A job's place in every index: (created_ms, seq).
pub type Position = (i64, u64);

/// Version byte of page tokens (a token of another version is refused as malformed).
const TOKEN_VERSION: u8 = 1;

/// The opaque page token of a position: base64url of a version byte and the position.
pub fn encode_token(p: Position) -> String {
    let mut raw = Vec::with_capacity(1 + keys::POSITION_LEN);
    raw.push(TOKEN_VERSION);
    raw.extend_from_slice(&keys::position(p.0, p.1));
    URL_SAFE_NO_PAD.encode(raw)
}

/// The position of a page token; INVALID_ARGUMENT on `page_token` when it is not one of ours.
pub fn decode_token(token: &str) -> Result<Position> {
    let malformed = || Error::invalid("page_token", "malformed (pass next_page_token unchanged)");
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| malformed())?;
    match raw.split_first() {
        Some((&TOKEN_VERSION, rest)) if rest.len() == keys::POSITION_LEN => {
            keys::parse_position(rest).map_err(|_| malformed())
        }
        _ => Err(malformed()),
    }
}

/// How the scan finds candidates: the index ranges to merge, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// One range per status (every status: the tenant's whole list).
    Statuses(Vec<JobState>),
    Queue(String),
    Metadata(String, String),
}

impl Plan {
    /// Picks the most selective index: a metadata pair if any; else between the status
    /// ranges and the queue range, the one with fewer jobs by the counts (`status_jobs`: the
    /// tenant's jobs in the filter's statuses; `queue_jobs`: the jobs of the filter's queue);
    /// else the queue's range, or all six status ranges.
    pub fn choose(filter: &Filter, status_jobs: i64, queue_jobs: i64) -> Plan {
        if let Some((k, v)) = filter.metadata.iter().next() {
            return Plan::Metadata(k.clone(), v.clone());
        }
        match (&filter.queue, filter.statuses.is_empty()) {
            (Some(q), false) if queue_jobs < status_jobs => Plan::Queue(q.clone()),
            (_, false) => Plan::Statuses(filter.statuses.clone()),
            (Some(q), true) => Plan::Queue(q.clone()),
            (None, true) => Plan::Statuses(JobState::ALL.to_vec()),
        }
    }

    /// Whether the ranges hold exactly the jobs the filter matches (no filter is left to check
    /// on the job records): a page then needs to read no more entries than it returns.
    pub fn covers(&self, filter: &Filter) -> bool {
        match self {
            Plan::Statuses(_) => filter.queue.is_none() && filter.metadata.is_empty(),
            Plan::Queue(_) => filter.statuses.is_empty() && filter.metadata.is_empty(),
            Plan::Metadata(..) => {
                filter.metadata.len() == 1 && filter.queue.is_none() && filter.statuses.is_empty()
            }
        }
    }

    /// The key prefix of each range to merge.
    pub fn prefixes(&self, tenant: &str) -> Vec<Vec<u8>> {
        match self {
            Plan::Statuses(s) => s
                .iter()
                .map(|s| keys::index_prefix(tenant, &Index::Status(s.wire() as u32)))
                .collect(),
            Plan::Queue(q) => vec![keys::index_prefix(tenant, &Index::Queue(q))],
            Plan::Metadata(k, v) => vec![keys::index_prefix(tenant, &Index::Metadata(k, v))],
        }
    }
}

impl Filter {
    /// The part of one range to scan: from after `after` (or the newest job created before
    /// `created_before_ms`) down to the oldest job created at or after `created_after_ms`.
    pub fn range(&self, prefix: &[u8], after: Option<Position>) -> (Vec<u8>, Vec<u8>) {
        let mut start = match self.created_before_ms {
            0 => prefix.to_vec(),
            // The first key of a job created at `before - 1` (seq u64::MAX sorts first).
            before => keys::index_entry(prefix, before - 1, u64::MAX),
        };
        if let Some((created, seq)) = after {
            let mut resume = keys::index_entry(prefix, created, seq);
            resume.push(0); // just after it
            start = start.max(resume);
        }
        let end = match self.created_after_ms {
            // Keys of jobs created before `after` all sort at or after this one.
            0 => keys::prefix_end(prefix).unwrap_or_else(|| vec![0xFF; prefix.len() + 1]),
            after => keys::index_entry(prefix, after - 1, u64::MAX),
        };
        (start, end)
    }

    /// Whether a job record matches every filter (the chosen index covers some already).
    pub fn matches(&self, job: &records::JobRecord) -> bool {
        if job.tenant != self.tenant {
            return false;
        }
        if self.queue.as_ref().is_some_and(|q| *q != job.queue) {
            return false;
        }
        if !self.statuses.is_empty() {
            match JobState::of_record(job.state) {
                Ok(s) if self.statuses.contains(&s) => {}
                _ => return false,
            }
        }
        if self.created_after_ms != 0 && job.created_at_ms < self.created_after_ms {
            return false;
        }
        if self.created_before_ms != 0 && job.created_at_ms >= self.created_before_ms {
            return false;
        }
        self.metadata
            .iter()
            .all(|(k, v)| job.metadata.get(k).is_some_and(|have| have == v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_anything_else_is_invalid() {
        for p in [
            (0, 0),
            (1_700_000_000_000, 42),
            (i64::MAX, u64::MAX),
            (-1, 1),
        ] {
            assert_eq!(decode_token(&encode_token(p)).unwrap(), p);
        }
        let mut wrong_version = vec![2u8];
        wrong_version.extend_from_slice(&keys::position(1, 1));
        for bad in [
            "x".to_string(),
            "!!!".to_string(),
            URL_SAFE_NO_PAD.encode([1u8; 5]),
            URL_SAFE_NO_PAD.encode(wrong_version),
        ] {
            match decode_token(&bad) {
                Err(Error::InvalidArgument { field, .. }) => assert_eq!(field, "page_token"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_most_selective_index_is_chosen() {
        let mut f = Filter::default();
        assert_eq!(
            Plan::choose(&f, 0, 0),
            Plan::Statuses(JobState::ALL.to_vec())
        );
        f.queue = Some("q".into());
        assert_eq!(Plan::choose(&f, 0, 0), Plan::Queue("q".into()));
        f.statuses = vec![JobState::Failed];
        assert_eq!(Plan::choose(&f, 100, 10), Plan::Queue("q".into()));
        assert_eq!(
            Plan::choose(&f, 10, 100),
            Plan::Statuses(vec![JobState::Failed])
        );
        assert!(
            !Plan::choose(&f, 10, 100).covers(&f),
            "the queue is checked on records"
        );
        f.metadata.insert("customer".into(), "c42".into());
        assert_eq!(
            Plan::choose(&f, 10, 100),
            Plan::Metadata("customer".into(), "c42".into())
        );
        let only_tag = Filter {
            metadata: f.metadata.clone(),
            ..Default::default()
        };
        assert!(Plan::choose(&only_tag, 0, 0).covers(&only_tag));
        let everything = Filter::default();
        assert!(Plan::choose(&everything, 0, 0).covers(&everything));
    }

    #[test]
    fn a_range_keeps_the_created_window_and_resumes_after_the_token() {
        let prefix = keys::index_prefix("t", &Index::Status(1));
        let f = Filter {
            created_after_ms: 100,
            created_before_ms: 200,
            ..Default::default()
        };
        let (start, end) = f.range(&prefix, None);
        let key = |c: i64, s: u64| keys::index_entry(&prefix, c, s);
        let inside = |k: &Vec<u8>| start <= *k && *k < end;
        assert!(inside(&key(199, 0)) && inside(&key(199, u64::MAX)));
        assert!(inside(&key(100, 0)) && inside(&key(100, u64::MAX)));
        assert!(!inside(&key(200, 5)) && !inside(&key(99, 5)));
        let (start, _) = f.range(&prefix, Some((150, 7)));
        assert!(key(150, 7) < start && start <= key(150, 6));
        assert!(start > key(199, 1));
    }
}
