//! Retention: a terminal job is deleted, with its attempts, index entries and counts, once its
//! retention has passed since it ended (docs/architecture.md#retention). `put_job` sets the
//! deletion time when a job becomes terminal (`retained_until_ms`) and writes a RETENTION timer
//! entry `(due_ms, seq)`; a restart removes both. The actor sleeps until the earliest due entry
//! (a deadline of `time_to_next_deadline`, never a periodic scan), deletes a bounded number per
//! step, and resumes after the last entry it handled, so it never rescans the tombstones it
//! left. Every new entry is due after the entries already handled (its time is now + a
//! positive retention), so resuming after the last one misses none.

use super::{Shard, Step};
use crate::error::{Error, Result};
use crate::keys;
use crate::proto::records;
use crate::record;

/// Jobs one step deletes at most (a backlog is spread over several steps).
const DELETES_PER_STEP: usize = 256;

/// The memory of the RETENTION family: when the earliest entry is due, and the last handled.
#[derive(Debug, Default)]
pub(super) struct RetentionTimer {
    /// The earliest due time of an entry not yet handled (None: no entry).
    next_due: Option<i64>,
    /// The last entry handled: the next scan starts after it.
    after: Option<Vec<u8>>,
}

impl RetentionTimer {
    pub(super) fn next_due(&self) -> Option<i64> {
        self.next_due
    }

    fn due_at(&mut self, due_ms: i64) {
        self.next_due = Some(self.next_due.map_or(due_ms, |t| t.min(due_ms)));
    }
}

impl Shard {
    /// A job became terminal: its deletion time, from its own `retention_ms` (0: the server's
    /// setting, -1: never) and a timer entry for it. Kept forever: no entry, time 0.
    pub(super) fn start_retention(&mut self, st: &mut Step, job: &mut records::JobRecord) {
        let keep_ms = match job.retention_ms {
            0 => self.config.retention_ms,
            ms => ms,
        };
        if keep_ms <= 0 {
            job.retained_until_ms = 0;
            return;
        }
        let due = st.now.saturating_add(keep_ms);
        job.retained_until_ms = due;
        st.txn.put_new(
            keys::retention(due, job.seq),
            record::encode(&records::RetentionRecord {
                tenant: job.tenant.clone(),
                job_id: job.id.clone(),
            }),
        );
        self.retention.due_at(due);
    }

    /// A terminal job runs again (restart): it is no longer due for deletion.
    pub(super) fn stop_retention(&mut self, st: &mut Step, job: &mut records::JobRecord) {
        if job.retained_until_ms != 0 {
            st.txn
                .delete(keys::retention(job.retained_until_ms, job.seq));
            job.retained_until_ms = 0;
        }
    }

    /// Opening the shard: when the first RETENTION entry is due (one key read).
    pub(super) async fn load_retention(&mut self) -> Result<()> {
        let mut iter = self.db.scan(keys::family_range(keys::RETENTION)).await?;
        if let Some(kv) = iter.next().await? {
            let (due, _) = keys::parse_retention(&kv.key)?;
            self.retention.due_at(due);
        }
        Ok(())
    }

    /// Start of a step: deletes the jobs whose retention passed, at most a step's worth. A
    /// failed read leaves memory unsure of the store: the shard rebuilds before serving again.
    pub(super) async fn fire_retention(&mut self, st: &mut Step) {
        if let Err(e) = self.delete_retained(st).await {
            tracing::error!("retention failed: {e}");
            self.health.fail(e.to_string());
        }
    }

    async fn delete_retained(&mut self, st: &mut Step) -> Result<()> {
        match self.retention.next_due {
            Some(due) if due <= st.now => {}
            _ => return Ok(()),
        }
        let start = match &self.retention.after {
            Some(k) => {
                let mut k = k.clone();
                k.push(0);
                k
            }
            None => vec![keys::RETENTION],
        };
        let end = vec![keys::RETENTION + 1];
        let rows = st
            .txn
            .scan(&self.db, start, end, DELETES_PER_STEP + 1)
            .await?;
        // The scan reads through the step's writes, so it also sees the entries this step
        // added; entries added from here on lower `next_due` themselves.
        self.retention.next_due = None;
        for (i, (key, value)) in rows.into_iter().enumerate() {
            let (due, _) = keys::parse_retention(&key)?;
            if due > st.now {
                self.retention.due_at(due);
                break;
            }
            if i == DELETES_PER_STEP {
                self.retention.due_at(st.now); // the next step goes on
                break;
            }
            let entry: records::RetentionRecord = record::decode(&value)?;
            self.expire_job(st, &key, due, entry).await?;
            self.retention.after = Some(key.to_vec());
        }
        Ok(())
    }

    /// One due entry: deletes its job, unless the entry is stale (the job is gone or got
    /// another deletion time) or the job's cancelled attempt still runs (then the deletion
    /// waits for a lease's length, since the attempt's report or expiry still writes the job).
    async fn expire_job(
        &mut self,
        st: &mut Step,
        key: &[u8],
        due: i64,
        entry: records::RetentionRecord,
    ) -> Result<()> {
        let job = self.load_job(st, &entry.tenant, &entry.job_id).await?;
        let Some(mut job) = job.filter(|j| j.retained_until_ms == due) else {
            st.txn.delete(key.to_vec());
            return Ok(());
        };
        if !job.current_task_id.is_empty() {
            st.txn.delete(key.to_vec());
            let later = st.now.saturating_add(self.lease_ms_of(&job));
            job.retained_until_ms = later;
            st.txn.put_new(
                keys::retention(later, job.seq),
                record::encode(&records::RetentionRecord {
                    tenant: job.tenant.clone(),
                    job_id: job.id.clone(),
                }),
            );
            self.retention.due_at(later);
            self.put_job(st, &mut job);
            return Ok(());
        }
        match self.remove_job(st, job).await {
            Ok(()) => Ok(()),
            Err(e @ (Error::StoreUnavailable(_) | Error::Internal(_))) => Err(e),
            Err(e) => {
                tracing::error!(job = %entry.job_id, "retention could not delete a job: {e}");
                st.txn.delete(key.to_vec());
                Ok(())
            }
        }
    }
}
