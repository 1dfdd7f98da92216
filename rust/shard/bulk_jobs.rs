//! CancelJobs, RestartJobs, DeleteJobs: an action on every job a ListJobs filter matches,
//! without stalling the actor. The broker runs a call as a sequence of `BulkStep` commands;
//! each scans a bounded number of index entries (the filter's best index, as ListJobs) from
//! the position the previous one reached, applies the action to the matching jobs it applies
//! to, and stops early when the call's limit of changes is reached (docs/api.md#bulk-calls).

use super::{Shard, Step};
use crate::error::{Error, Result};
use crate::search::{Filter, Position};
use crate::validate::BulkAction;

/// Index entries one command scans at most (other callers' commands run in between).
const SCAN_PER_STEP: usize = 1_000;

/// One bounded command of a bulk call.
#[derive(Debug, Clone)]
pub struct BulkStep {
    pub action: BulkAction,
    pub filter: Filter,
    /// Continue after this job (None: from the newest).
    pub after: Option<Position>,
    /// Changes left to the call's limit (at least 1).
    pub limit: u32,
}

/// What one command did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkProgress {
    /// Jobs examined that match the filter.
    pub matched: u64,
    /// Jobs the action applied to.
    pub changed: u64,
    /// The position reached: the next command continues after it.
    pub after: Option<Position>,
    /// The filter's range holds nothing after `after`.
    pub done: bool,
}

impl Shard {
    pub(super) async fn bulk_jobs(&mut self, st: &mut Step, p: BulkStep) -> Result<BulkProgress> {
        let scanned = self
            .scan_index(st, &p.filter, p.after, SCAN_PER_STEP)
            .await?;
        let total = scanned.entries.len();
        let mut out = BulkProgress {
            after: p.after,
            done: scanned.exhausted,
            ..Default::default()
        };
        for (i, (pos, id)) in scanned.entries.into_iter().enumerate() {
            out.after = Some(pos);
            let Some(job) = self.matching_job(st, &p.filter, pos, &id).await? else {
                continue;
            };
            out.matched += 1;
            let applied = match p.action {
                BulkAction::Cancel => self.cancel_job(st, job).await,
                BulkAction::Restart => self.restart_record(st, job).await.map(drop),
                BulkAction::Delete => self.remove_job(st, job).await,
            };
            match applied {
                Ok(()) => out.changed += 1,
                // The action does not apply to this job (already ended, or not restartable
                // or deletable in its state): skipped.
                Err(Error::JobTerminal(_) | Error::InvalidJobState(_)) => {}
                Err(e) => return Err(e),
            }
            if out.changed == u64::from(p.limit) {
                out.done = scanned.exhausted && i + 1 == total;
                break;
            }
        }
        Ok(out)
    }
}
