//! Expiry (docs/api.md#expiry): a queued job whose first attempt has not started by its
//! `expire_at_ms` becomes FAILED with failure code `expired`, with no retry. Driven by the
//! EXPIRY timer family `(expire_at_ms, job seq)`: its head page is in memory, the actor wakes
//! at the first deadline, and the entry is deleted when the first attempt starts, the job is
//! cancelled, or it expires (no scans).

use bytes::Bytes;

use super::page::{Placed, SortKey};
use super::timer_page::TimerFamily;
use super::{Shard, Step};
use crate::error::Result;
use crate::keys;
use crate::lifecycle::{self, Event, JobState, EXPIRED};
use crate::proto::records;
use crate::record;

/// Most expiries one step carries out (a backlog after a restart is spread over steps).
const MAX_EXPIRIES_PER_STEP: usize = 1024;

/// A job with a first-attempt deadline, as its EXPIRY entry names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Expiring {
    pub(super) tenant: String,
    pub(super) job_id: String,
}

pub(super) const EXPIRY_TIMERS: TimerFamily<Expiring> = TimerFamily {
    family: keys::EXPIRY,
    decode: |_, value| {
        let r: records::ExpiryRecord = record::decode(value)?;
        Ok(Expiring {
            tenant: r.tenant,
            job_id: r.job_id,
        })
    },
};

fn sort_key(job: &records::JobRecord) -> SortKey {
    (job.expire_at_ms, job.seq)
}

impl Shard {
    /// A new job with an `expire_at_ms` gets its EXPIRY entry (in the enqueue's write).
    pub(super) fn add_expiry(&mut self, st: &mut Step, job: &records::JobRecord) {
        let entry = records::ExpiryRecord {
            tenant: job.tenant.clone(),
            job_id: job.id.clone(),
        };
        let (at, seq) = sort_key(job);
        st.txn
            .put(keys::timer(keys::EXPIRY, at, seq), record::encode(&entry));
        if let Placed::Memory(_) = self.expiries.place((at, seq)) {
            let expiring = Expiring {
                tenant: entry.tenant,
                job_id: entry.job_id,
            };
            self.expiries.insert((at, seq), expiring);
        }
    }

    /// The job's first attempt started, or it left its queue: its deadline no longer applies.
    pub(super) fn drop_expiry(&mut self, st: &mut Step, job: &records::JobRecord) {
        if job.expire_at_ms <= 0 || job.attempt_count > 0 {
            return;
        }
        let (at, seq) = sort_key(job);
        self.expiries.remove(&(at, seq));
        let key = keys::timer(keys::EXPIRY, at, seq);
        if seq >= st.first_seq {
            st.txn.discard(&key); // enqueued in this step: the store never had it
        } else {
            st.txn.delete(key);
        }
    }

    /// Expires the jobs whose deadline has passed (`expire_at_ms < now`).
    pub(super) async fn fire_expiries(&mut self, st: &mut Step) -> Result<()> {
        let now = st.now;
        let due = EXPIRY_TIMERS
            .take_due(
                &self.db,
                &st.txn,
                &mut self.expiries,
                |at| at < now,
                MAX_EXPIRIES_PER_STEP,
            )
            .await?;
        for ((at, seq), e) in due {
            let key = keys::timer(keys::EXPIRY, at, seq);
            match self.load_job(st, &e.tenant, &e.job_id).await? {
                Some(job)
                    if job.seq == seq
                        && job.attempt_count == 0
                        && JobState::of_record(job.state)?.is_queued() =>
                {
                    self.expire(st, job).await?; // deletes the entry
                }
                _ => {
                    // Started, cancelled or gone meanwhile: the entry is stale.
                    st.txn.delete(key);
                }
            }
        }
        Ok(())
    }

    /// A queued job that never started in time: out of its queue, FAILED with `expired`.
    async fn expire(&mut self, st: &mut Step, mut job: records::JobRecord) -> Result<()> {
        let to = lifecycle::transition(JobState::of_record(job.state)?, Event::Expire)?;
        self.unqueue(st, &job).await?;
        let message = format!(
            "the job was not started by its expire_at_ms ({})",
            job.expire_at_ms
        );
        job.state = to.to_record();
        job.wait_seq = 0;
        job.next_attempt_at_ms = 0;
        job.updated_at_ms = st.now;
        job.last_failure = Some(records::FailureRecord {
            code: EXPIRED.to_string(),
            message,
            data: Bytes::new(),
            non_retryable: true,
        });
        self.put_job(st, &mut job);
        Ok(())
    }
}
