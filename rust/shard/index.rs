//! The one write of a job record, `put_job`, and what follows a change of a job: its ListJobs
//! index entries, its queue's counts, its retention timer and its WaitJob waiters
//! (docs/architecture.md#indexes-and-counts).
//!
//! The before/after rule: a job record says under which state it is indexed and counted
//! (`indexed_state`, UNKNOWN before its first write). `put_job` compares it with the job's
//! state and, when they differ, moves the status entry and the counts and stores the new
//! `indexed_state` in the record, all in the step's batch. It reads nothing, so every
//! transition, present or future, is indexed and counted by going through it.

use bytes::Bytes;

use super::{Shard, Step};
use crate::keys::{self, Index};
use crate::lifecycle::JobState;
use crate::proto::records;
use crate::record;

/// The status entry of a job indexed as `state`.
fn status_entry(job: &records::JobRecord, state: JobState) -> Vec<u8> {
    let prefix = keys::index_prefix(&job.tenant, &Index::Status(state.wire() as u32));
    keys::index_entry(&prefix, job.created_at_ms, job.seq)
}

/// The entries written once, when a job is first put: queue and one per metadata pair.
fn static_entries(job: &records::JobRecord) -> Vec<Vec<u8>> {
    let mut indexes = vec![Index::Queue(&job.queue)];
    indexes.extend(
        job.metadata
            .iter()
            .map(|(k, v)| Index::Metadata(k.as_str(), v.as_str())),
    );
    indexes
        .iter()
        .map(|i| {
            let prefix = keys::index_prefix(&job.tenant, i);
            keys::index_entry(&prefix, job.created_at_ms, job.seq)
        })
        .collect()
}

/// The state a job is indexed as (None: not yet).
fn indexed_state(job: &records::JobRecord) -> Option<JobState> {
    match job.indexed_state {
        0 => None,
        s => JobState::of_record(s).ok(),
    }
}

impl Shard {
    /// Writes a job record: the one place every change of a job goes through (enqueue, coming
    /// due, lease, heartbeat cursor, attempt end, cancel, operator calls). Moves its index
    /// entries and counts when its state changed (recording the new `indexed_state` in `job`),
    /// starts or stops its retention timer when it becomes terminal or leaves that, keeps the
    /// copy a live attempt holds (running.rs) equal to it, and wakes its WaitJob waiters when
    /// it ends.
    pub(super) fn put_job(&mut self, st: &mut Step, job: &mut records::JobRecord) {
        match JobState::of_record(job.state) {
            Ok(state) => {
                let indexed = indexed_state(job);
                if indexed != Some(state) {
                    self.reindex(st, job, indexed, state);
                }
            }
            Err(e) => tracing::error!(job = %job.id, "writing a job in a bad state: {e}"),
        }
        st.txn
            .put(keys::job(&job.tenant, &job.id), record::encode(job));
        if let Some(lease) = self.running.get_mut(&job.current_task_id) {
            if lease.job != *job {
                lease.job = job.clone();
            }
        }
        self.wake_waiters(st, job);
    }

    fn reindex(
        &mut self,
        st: &mut Step,
        job: &mut records::JobRecord,
        from: Option<JobState>,
        to: JobState,
    ) {
        let id = Bytes::from(job.id.clone());
        match from {
            None => {
                for key in static_entries(job) {
                    st.txn.put_new(key, id.clone());
                }
            }
            Some(from) => st.txn.delete(status_entry(job, from)),
        }
        st.txn.put_new(status_entry(job, to), id);
        st.counts.moved(&job.tenant, &job.queue, from, Some(to));
        let was_terminal = from.is_some_and(JobState::is_terminal);
        if to.is_terminal() && !was_terminal {
            self.start_retention(st, job);
        } else if !to.is_terminal() && was_terminal {
            self.stop_retention(st, job);
        }
        job.indexed_state = to.to_record();
    }

    /// Deletes a job record with every index entry, its count and its retention timer (the
    /// caller deletes its payload and attempts): the counterpart of `put_job`.
    pub(super) fn forget_job(&mut self, st: &mut Step, job: &records::JobRecord) {
        st.txn.delete(keys::job(&job.tenant, &job.id));
        let Some(indexed) = indexed_state(job) else {
            return;
        };
        for key in static_entries(job) {
            st.txn.delete(key);
        }
        st.txn.delete(status_entry(job, indexed));
        st.counts
            .moved(&job.tenant, &job.queue, Some(indexed), None);
        if job.retained_until_ms != 0 {
            st.txn
                .delete(keys::retention(job.retained_until_ms, job.seq));
        }
    }
}
