//! ListJobs: a page of a tenant's jobs matching a filter, newest first, from the most
//! selective index (rust/search.rs plans it). The cost of a page is bounded: it scans at most
//! a budget of index entries (10 per job asked, 1,000 to 10,000) and, when the filter matches
//! few of them, answers a short page (even an empty one) with a token to go on
//! (docs/api.md#listjobs). Bulk calls scan the same way (bulk_jobs.rs).

use super::queue_counts::Counts;
use super::{Shard, Step};
use crate::error::{Error, Result};
use crate::keys;
use crate::proto::{records, wire};
use crate::search::{self, Filter, Plan, Position};
use crate::validate::ListJobsParams;

/// Index entries a page scans at most, per job asked, and its bounds.
const SCAN_PER_JOB: usize = 10;
const MIN_SCAN: usize = 1_000;
const MAX_SCAN: usize = 10_000;

/// Index entries read by one scan, newest first.
pub(super) struct Scanned {
    /// Each entry's position and job id.
    pub(super) entries: Vec<(Position, String)>,
    /// The ranges hold nothing after the last entry.
    pub(super) exhausted: bool,
}

fn sum(c: &Counts, filter: &Filter) -> i64 {
    filter
        .statuses
        .iter()
        .map(|s| c[s.wire() as usize - 1])
        .sum()
}

impl Shard {
    pub(super) async fn list_jobs(
        &mut self,
        st: &mut Step,
        p: ListJobsParams,
    ) -> Result<wire::ListJobsResponse> {
        let page_size = p.page_size as usize;
        let plan = self.plan(st, &p.filter).await?;
        // Entries read: as many as the page when the index alone decides, else the budget.
        let limit = if plan.covers(&p.filter) {
            page_size
        } else {
            (page_size * SCAN_PER_JOB).clamp(MIN_SCAN, MAX_SCAN)
        };
        let scanned = self.scan_plan(st, &p.filter, &plan, p.after, limit).await?;
        let total = scanned.entries.len();
        let mut jobs = Vec::new();
        let mut last = None;
        for (i, (pos, id)) in scanned.entries.into_iter().enumerate() {
            last = Some((i, pos));
            if let Some(rec) = self.matching_job(st, &p.filter, pos, &id).await? {
                jobs.push(self.wire_job(st, rec, false).await?);
                if jobs.len() == page_size {
                    break;
                }
            }
        }
        let next_page_token = match last {
            Some((i, _)) if i + 1 == total && scanned.exhausted => String::new(),
            Some((_, pos)) => search::encode_token(pos),
            None => String::new(),
        };
        Ok(wire::ListJobsResponse {
            jobs,
            next_page_token,
        })
    }

    /// The job of an index entry, if the filter matches it (None for an entry whose job was
    /// deleted and whose id was enqueued again: its position differs).
    pub(super) async fn matching_job(
        &self,
        st: &Step,
        filter: &Filter,
        pos: Position,
        id: &str,
    ) -> Result<Option<records::JobRecord>> {
        let Some(rec) = self.load_job(st, &filter.tenant, id).await? else {
            return Ok(None);
        };
        let same_job = (rec.created_at_ms, rec.seq) == pos;
        Ok((same_job && filter.matches(&rec)).then_some(rec))
    }

    /// Up to `budget` entries of the filter's best index after `after`, newest first (the
    /// ranges of several statuses merged).
    pub(super) async fn scan_index(
        &mut self,
        st: &mut Step,
        filter: &Filter,
        after: Option<Position>,
        budget: usize,
    ) -> Result<Scanned> {
        let plan = self.plan(st, filter).await?;
        self.scan_plan(st, filter, &plan, after, budget).await
    }

    async fn scan_plan(
        &self,
        st: &Step,
        filter: &Filter,
        plan: &Plan,
        after: Option<Position>,
        budget: usize,
    ) -> Result<Scanned> {
        let mut entries = Vec::new();
        let mut exhausted = true;
        for prefix in plan.prefixes(&filter.tenant) {
            let (start, end) = filter.range(&prefix, after);
            if start >= end {
                continue;
            }
            // One entry more than the budget tells whether the range goes on after it.
            let rows = st.txn.scan_cached(&self.db, start, end, budget + 1).await?;
            exhausted &= rows.len() <= budget;
            for (key, value) in rows {
                let id = String::from_utf8(value.to_vec())
                    .map_err(|_| Error::Internal("an index entry with a bad job id".into()))?;
                entries.push((keys::entry_position(&key)?, id));
            }
        }
        // Newest first across ranges; each range is already in that order.
        entries.sort_by_key(|e| std::cmp::Reverse(e.0));
        if entries.len() > budget {
            entries.truncate(budget);
            exhausted = false;
        }
        Ok(Scanned { entries, exhausted })
    }

    /// The index to scan. Counts decide between the status ranges and the queue range, so
    /// they are brought up to date with the step first.
    async fn plan(&mut self, st: &mut Step, filter: &Filter) -> Result<Plan> {
        let (status_jobs, queue_jobs) = match &filter.queue {
            Some(queue) if filter.metadata.is_empty() && !filter.statuses.is_empty() => {
                self.flush_counts(st).await?;
                let tenant = self
                    .read_counts(st, &keys::tenant_counts(&filter.tenant))
                    .await?;
                let queue = self
                    .read_counts(st, &keys::queue_counts(&filter.tenant, queue))
                    .await?;
                (sum(&tenant, filter), queue.iter().sum())
            }
            _ => (0, 0),
        };
        Ok(Plan::choose(filter, status_jobs, queue_jobs))
    }
}
