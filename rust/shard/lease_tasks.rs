//! LeaseTasks: hands due jobs to a worker as new attempts, or parks the call (long-poll)
//! until a job becomes due or the wait ends.

use bytes::Bytes;

use super::handle::Reply;
use super::parked::{ParkedLease, Waiter};
use super::ready::Queued;
use super::running::Running;
use super::step::defer;
use super::{Shard, Step};
use crate::error::{Error, Result};
use crate::keys;
use crate::lifecycle::{self, Event, JobState};
use crate::proto::{records, wire};
use crate::record;
use crate::retry;
use crate::validate::LeaseParams;

impl Shard {
    pub(super) async fn lease_tasks(
        &mut self,
        st: &mut Step,
        params: LeaseParams,
        reply: Reply<wire::LeaseTasksResponse>,
    ) {
        // Older parked calls and sessions come first: a new call only takes what they leave.
        if !self.waiter_has_ready() {
            match self.take_tasks(st, &params).await {
                Ok(tasks) if tasks.is_empty() && params.wait_ms > 0 => {}
                r => {
                    st.replies.push(defer(
                        reply,
                        r.map(|tasks| wire::LeaseTasksResponse { tasks }),
                    ));
                    return;
                }
            }
        }
        self.parked.push_back(Waiter::Lease(ParkedLease {
            deadline_ms: st.now + params.wait_ms,
            params,
            reply,
        }));
    }

    /// Takes up to `max_tasks` due jobs of the named queues and starts an attempt of each.
    pub(super) async fn take_tasks(
        &mut self,
        st: &mut Step,
        params: &LeaseParams,
    ) -> Result<Vec<wire::Task>> {
        let mut popped = Vec::new();
        while popped.len() < params.max_tasks as usize {
            match self.pop_ready(st, &params.queues, &params.tenants).await {
                Some(w) => popped.push(w),
                None => break,
            }
        }
        if popped.is_empty() {
            return Ok(Vec::new());
        }
        let values = match self.read_ready(st, &popped).await {
            Ok(v) => v,
            Err(e) => {
                for w in popped {
                    self.ready.insert(w);
                }
                return Err(e);
            }
        };
        let mut tasks = Vec::with_capacity(popped.len());
        let mut entries = popped.into_iter().zip(values);
        while let Some((w, value)) = entries.next() {
            match self.start_attempt(st, &w, value, &params.worker_id).await {
                Ok(task) => {
                    let taken = self.conc.on_lease(&w, &task.task_id);
                    self.write_buckets(st, taken);
                    tasks.push(task);
                }
                Err(e @ Error::StoreUnavailable(_)) => {
                    // Put back what is not leased; report the error only if nothing was.
                    self.ready.insert(w);
                    for (w, _) in entries.by_ref() {
                        self.ready.insert(w);
                    }
                    if tasks.is_empty() {
                        return Err(e);
                    }
                }
                Err(e) => {
                    // An entry that cannot be read: drop it rather than block the queue.
                    tracing::error!(job = %w.job_id, tenant = %w.tenant, "dropping a ready entry: {e}");
                    self.forget_key(st, &w, w.ready_key());
                    self.counts.ready_removed();
                    self.unreserve(&w);
                }
            }
        }
        Ok(tasks)
    }

    /// Starts attempt n+1 of a due job from its READY entry: a new task id, a lease, and the
    /// job RUNNING. Reads nothing but a payload stored apart (a retry's).
    async fn start_attempt(
        &mut self,
        st: &mut Step,
        w: &Queued,
        value: Option<Bytes>,
        worker_id: &str,
    ) -> Result<wire::Task> {
        let value = value.ok_or_else(|| Error::Internal("ready entry is missing".into()))?;
        let queued: records::QueuedJob = record::decode_bytes(value)?;
        let mut job = queued
            .job
            .ok_or_else(|| Error::Internal("ready entry without its job".into()))?;
        let to = lifecycle::transition(JobState::of_record(job.state)?, Event::Lease)?;
        if job.wait_seq != w.seq {
            return Err(Error::Internal("ready entry of another wait".into()));
        }
        let payload = if queued.payload_stored_apart {
            st.txn
                .get(&self.db, &keys::payload(&w.tenant, &w.job_id))
                .await?
                .unwrap_or_default()
        } else {
            queued.payload
        };
        let task_id = crate::routing::new_task_id(self.config.index);
        let lease_ms = self.lease_ms_of(&job);
        let expires_at_ms = st.now + lease_ms;
        if job.attempt_count == 0 {
            self.drop_expiry(st, &job); // its first attempt starts in time
        }
        job.attempt_count += 1;
        job.state = to.to_record();
        job.current_task_id = task_id.clone();
        job.wait_seq = 0;
        job.next_attempt_at_ms = 0;
        job.updated_at_ms = st.now;
        let attempt = records::AttemptRecord {
            attempt: job.attempt_count,
            task_id: task_id.clone(),
            worker_id: worker_id.to_string(),
            state: records::AttemptState::Running as i32,
            started_at_ms: st.now,
            ..Default::default()
        };
        self.forget_key(st, w, w.ready_key());
        self.counts.ready_removed();
        st.txn.put(
            keys::attempt(&job.tenant, &job.id, attempt.attempt),
            record::encode(&attempt),
        );
        st.txn.put(
            keys::task(&task_id),
            record::encode(&records::TaskRef {
                tenant: job.tenant.clone(),
                job_id: job.id.clone(),
                attempt: attempt.attempt,
            }),
        );
        st.txn.put(
            keys::lease(&task_id),
            record::encode(&records::LeaseRecord {
                tenant: job.tenant.clone(),
                job_id: job.id.clone(),
                attempt: attempt.attempt,
                worker_id: worker_id.to_string(),
                queue: job.queue.clone(),
                concurrency_keys: w.keys.clone(),
            }),
        );
        self.put_job(st, &mut job);
        self.metrics.task_leased(&job.queue);
        let task = wire::Task {
            task_id: task_id.clone(),
            is_last_attempt: retry::is_last_attempt(&job),
            job_id: job.id.clone(),
            tenant: job.tenant.clone(),
            queue: job.queue.clone(),
            priority: job.priority,
            payload,
            metadata: job.metadata.clone(),
            attempt: attempt.attempt,
            heartbeat_interval_ms: lease_ms / 3,
            lease_expires_at_ms: expires_at_ms,
            heartbeat_cursor: job.heartbeat_cursor.clone(),
        };
        self.running.insert(
            task_id,
            Running {
                job,
                attempt,
                keys: w.keys.clone(),
                expires_at_ms,
                cancelled: false,
            },
        );
        Ok(task)
    }
}
