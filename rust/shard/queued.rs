//! Queued jobs between the store and memory. A waiting job has exactly one entry in the
//! store: SCHEDULED (due, seq) until its time comes, then READY (queue, priority, tenant, due,
//! seq) until a worker leases it. Both hold a `QueuedJob`: the job record and its payload, so
//! that starting an attempt reads nothing else. Memory holds the head of the timer range and
//! of each ready group (`Page`); refills read the next page after the last key memory holds.

use bytes::Bytes;

use super::page::{Placed, SortKey, PAGE_SIZE};
use super::ready::{Group, Queued};
use super::timer_page::{after, TimerFamily};
use super::{job_keys, job_rate_keys, Shard, Step};
use crate::auth::TenantScope;
use crate::error::{Error, Result};
use crate::keys;
use crate::lifecycle::{self, Event, JobState};
use crate::proto::records;
use crate::record;

/// Most timers one step moves to READY (a backlog of due timers, e.g. after a restart, is
/// promoted over several steps instead of stalling one).
const MAX_PROMOTIONS_PER_STEP: usize = 4096;

/// The index entry of a queued job.
pub(super) fn queued_of(job: &records::JobRecord, due_ms: i64, seq: u64) -> Queued {
    Queued {
        tenant: job.tenant.clone(),
        job_id: job.id.clone(),
        queue: job.queue.clone(),
        priority: job.priority,
        due_ms,
        seq,
        keys: job_keys(job),
        rate_keys: job_rate_keys(job),
    }
}

fn decode_queued(value: &[u8]) -> Result<records::JobRecord> {
    record::decode::<records::QueuedJob>(value)?
        .job
        .ok_or_else(|| Error::Internal("queued job without its record".into()))
}

/// The SCHEDULED family as a timer family: jobs waiting for their start time or backoff.
const SCHEDULED_TIMERS: TimerFamily<Queued> = TimerFamily {
    family: keys::SCHEDULED,
    decode: |(due, seq), value| Ok(queued_of(&decode_queued(value)?, due, seq)),
};

impl Shard {
    /// Queues a SCHEDULED job (enqueue, retry, restart, expedite) for an attempt at `due_ms`:
    /// allocates its waiting sequence, sets `wait_seq` and `next_attempt_at_ms`, and writes the
    /// job record (`put_job`) and its queue entry, with the payload when given (else a lease
    /// reads key P). A job due later waits on a SCHEDULED entry and a timer. A job due now
    /// comes due at once (PENDING, a READY entry): no SCHEDULED entry, no second write of the
    /// job; memory admits it at the end of the step with the timers that came due.
    pub(super) fn add_queued(
        &mut self,
        st: &mut Step,
        job: &mut records::JobRecord,
        due_ms: i64,
        payload: Option<Bytes>,
    ) {
        let seq = self.alloc_seq();
        job.wait_seq = seq;
        job.next_attempt_at_ms = due_ms;
        if due_ms <= st.now {
            match JobState::of_record(job.state)
                .and_then(|from| lifecycle::transition(from, Event::ComeDue))
            {
                Ok(to) => job.state = to.to_record(),
                Err(e) => tracing::error!(job = %job.id, "queueing a job in a bad state: {e}"),
            }
        }
        self.put_job(st, job);
        let queued = records::QueuedJob {
            job: Some(job.clone()),
            payload_stored_apart: payload.is_none(),
            payload: payload.unwrap_or_default(),
        };
        let w = queued_of(job, due_ms, seq);
        if due_ms <= st.now {
            st.txn.put(w.ready_key(), record::encode(&queued));
            self.counts.ready_added();
            st.due_now.push(w);
            return;
        }
        st.txn
            .put(keys::scheduled(due_ms, seq), record::encode(&queued));
        self.counts.scheduled_added();
        // A timer displaced from a full head is the store's alone until a refill.
        if let Placed::Memory(_) = self.timers.place((due_ms, seq)) {
            self.timers.insert((due_ms, seq), w);
        }
    }

    /// Reads the next page of timers after the last one memory holds.
    pub(super) async fn refill_timers(&mut self, st: &Step) -> Result<()> {
        SCHEDULED_TIMERS
            .refill(&self.db, &st.txn, &mut self.timers)
            .await
    }

    /// Timers that came due, at most a step's worth (`promote` orders them best first, so free
    /// concurrency slots go to the highest priority).
    pub(super) async fn take_due_timers(&mut self, st: &Step) -> Result<Vec<Queued>> {
        let now = st.now;
        let due = SCHEDULED_TIMERS
            .take_due(
                &self.db,
                &st.txn,
                &mut self.timers,
                |t| t <= now,
                MAX_PROMOTIONS_PER_STEP,
            )
            .await?;
        Ok(due.into_iter().map(|(_, w)| w).collect())
    }

    /// Timers that came due: each job becomes PENDING (`put_job`) and its entry moves from
    /// SCHEDULED to READY carrying the updated record. Returns the jobs moved.
    pub(super) async fn promote(&mut self, st: &mut Step, due: Vec<Queued>) -> Result<Vec<Queued>> {
        let scheduled_keys: Vec<Vec<u8>> = due
            .iter()
            .map(|w| keys::scheduled(w.due_ms, w.seq))
            .collect();
        let values = st.txn.read_sorted(&self.db, &scheduled_keys).await?;
        let mut promoted = Vec::with_capacity(due.len());
        for ((w, key), value) in due.into_iter().zip(scheduled_keys).zip(values) {
            let Some(value) = value else {
                tracing::error!(job = %w.job_id, tenant = %w.tenant, "timer without its SCHEDULED entry: dropped");
                continue;
            };
            let mut queued: records::QueuedJob = match record::decode_bytes(value) {
                Ok(q) => q,
                Err(e) => {
                    tracing::error!(job = %w.job_id, tenant = %w.tenant, "a SCHEDULED entry that does not decode: left alone ({e})");
                    continue;
                }
            };
            let Some(job) = queued.job.as_mut() else {
                tracing::error!(job = %w.job_id, tenant = %w.tenant, "a SCHEDULED entry without its job: left alone");
                continue;
            };
            let due = JobState::of_record(job.state)
                .and_then(|from| lifecycle::transition(from, Event::ComeDue));
            let to = match due {
                Ok(to) => to,
                Err(e) => {
                    tracing::error!(job = %w.job_id, tenant = %w.tenant, "a SCHEDULED entry of a job that cannot come due: left alone ({e})");
                    continue;
                }
            };
            job.state = to.to_record();
            job.updated_at_ms = st.now;
            self.put_job(st, job);
            self.forget_key(st, &w, key);
            st.txn.put(w.ready_key(), record::encode(&queued));
            self.counts.promoted();
            promoted.push(w);
        }
        Ok(promoted)
    }

    /// Jobs that became PENDING (timers that came due, jobs queued due now) enter memory, best
    /// first (so free concurrency slots go to the highest priority): each goes to its group's
    /// head if it takes it, and is admitted or waits on a concurrency key.
    pub(super) async fn admit_due(&mut self, st: &Step, mut due: Vec<Queued>) -> Result<()> {
        due.sort_by_key(|w| (std::cmp::Reverse(w.priority), w.due_ms, w.seq));
        for w in due {
            if let Placed::Memory(displaced) = self.ready.place(&w) {
                if let Some(d) = displaced {
                    // Back to the store only: its reserved slots go to the next in line.
                    self.unreserve(&d);
                }
                self.admit(st, w).await?;
            }
        }
        Ok(())
    }

    /// Deletes a scheduled entry's key; one this step created is dropped from the batch instead.
    pub(super) fn forget_key(&self, st: &mut Step, w: &Queued, key: Vec<u8>) {
        if w.seq >= st.first_seq {
            st.txn.discard(&key);
        } else {
            st.txn.delete(key);
        }
    }

    /// A due job that memory holds enters its group's head if every key has a free slot, else
    /// waits on a key (concurrency.rs).
    pub(super) async fn admit(&mut self, st: &Step, w: Queued) -> Result<()> {
        // A job of a paused queue waits in its group, out of every lease's way, holding nothing.
        if !w.gated() || self.ready.is_paused(&w.queue, &w.tenant) {
            self.ready.insert(w);
            return Ok(());
        }
        self.ensure_limits(&st.txn, &w.tenant, &w.keys).await?;
        self.ensure_buckets(&st.txn, &w.tenant, &w.rate_keys)
            .await?;
        if let Some(w) = self.conc.admit(w) {
            self.ready.insert(w);
        }
        Ok(())
    }

    /// Reads a group's next page of READY entries into memory until its head holds an
    /// admitted job or the group is read to its end.
    pub(super) async fn refill_group(&mut self, st: &Step, g: &Group) -> Result<()> {
        let prefix = g.prefix();
        let Some(end) = keys::prefix_end(&prefix) else {
            return Err(Error::Internal("unbounded ready group".into()));
        };
        while let Some(loaded) = self.ready.refill_from(g) {
            let start = match loaded {
                Some((due, seq)) => after(keys::ready(&prefix, due, seq)),
                None => prefix.clone(),
            };
            let rows = st.txn.scan(&self.db, start, end.clone(), PAGE_SIZE).await?;
            let complete = rows.len() < PAGE_SIZE;
            let mut last: Option<SortKey> = None;
            for (k, v) in rows {
                let (_, _, _, due, seq) = keys::parse_ready(&k)?;
                last = Some((due, seq));
                let job = decode_queued(&v)?;
                let w = queued_of(&job, due, seq);
                // Memory may hold it already (parked on a concurrency key).
                if self.ready.contains(&w) || self.conc.waiting_on(&w.tenant, &w.job_id).is_some() {
                    continue;
                }
                self.admit(st, w).await?;
            }
            self.ready.refilled(g, last, complete);
        }
        Ok(())
    }

    /// Opening the shard: every ready group gets its first page, in one pass over READY that
    /// seeks past the rest of each group larger than a page (not a read of the backlog).
    pub(super) async fn load_ready_groups(&mut self, st: &Step) -> Result<usize> {
        let mut iter = self.db.scan(keys::family_range(keys::READY)).await?;
        let mut groups = 0;
        // The group being read: its key prefix, entries read of this page, the last key read.
        let mut current: Option<(Group, Vec<u8>, usize, Option<SortKey>)> = None;
        loop {
            let kv = iter.next().await?;
            let same_group = matches!((&current, &kv), (Some((_, prefix, _, _)), Some(kv)) if kv.key.starts_with(prefix));
            if !same_group {
                if let Some((g, _, _, last)) = current.take() {
                    self.ready.refilled(&g, last, true); // read to its end
                }
                let Some(kv) = &kv else {
                    return Ok(groups);
                };
                let (queue, priority, tenant, _, _) = keys::parse_ready(&kv.key)?;
                let g = Group {
                    queue,
                    priority,
                    tenant,
                };
                self.ready.add_unread(&g);
                groups += 1;
                let prefix = g.prefix();
                current = Some((g, prefix, 0, None));
            }
            let (Some(kv), Some((g, prefix, read, last))) = (kv, current.as_mut()) else {
                continue;
            };
            let (_, _, _, due, seq) = keys::parse_ready(&kv.key)?;
            let job = decode_queued(&kv.value)?;
            let w = queued_of(&job, due, seq);
            *read += 1;
            *last = Some((due, seq));
            let (g, prefix) = (g.clone(), prefix.clone());
            self.admit(st, w).await?;
            if let Some((_, _, read, last)) = current.as_mut().filter(|c| c.2 == PAGE_SIZE) {
                self.ready.refilled(&g, *last, false);
                if self.ready.refill_from(&g).is_some() {
                    *read = 0; // all parked on concurrency keys: read this group's next page
                    continue;
                }
                current = None;
                if let Some(end) = keys::prefix_end(&prefix) {
                    iter.seek(end).await?;
                }
            }
        }
    }

    /// Takes the best admitted job of these queues out of memory (refilling its group's head
    /// from the store when it runs empty). The entry stays in the store until leased.
    pub(super) async fn pop_ready(
        &mut self,
        st: &Step,
        queues: &[String],
        tenants: &TenantScope,
    ) -> Option<Queued> {
        let (w, refill) = self.ready.pop(queues, tenants)?;
        if let Some(g) = refill {
            self.refill_or_rebuild(st, &g).await;
        }
        Some(w)
    }

    /// Refills a group whose head ran empty. If the store cannot be read, memory now lacks
    /// part of the group: the shard rebuilds from the store before its next step.
    pub(super) async fn refill_or_rebuild(&mut self, st: &Step, g: &Group) {
        if let Err(e) = self.refill_group(st, g).await {
            tracing::error!("reading the next ready page failed: {e}");
            self.health.fail(e.to_string());
        }
    }

    /// The READY values of popped jobs: one scan per group (a group's popped entries are
    /// neighbours in the store), none for entries this step wrote.
    pub(super) async fn read_ready(
        &self,
        st: &Step,
        popped: &[Queued],
    ) -> Result<Vec<Option<Bytes>>> {
        let mut order: Vec<usize> = (0..popped.len()).collect();
        let ready_keys: Vec<Vec<u8>> = popped.iter().map(Queued::ready_key).collect();
        order.sort_by(|&a, &b| ready_keys[a].cmp(&ready_keys[b]));
        let mut out = vec![None; popped.len()];
        let mut run: Vec<usize> = Vec::new();
        for (pos, &i) in order.iter().enumerate() {
            run.push(i);
            let next_same_group = order
                .get(pos + 1)
                .is_some_and(|&j| popped[j].same_group(&popped[i]));
            if next_same_group {
                continue;
            }
            let run_keys: Vec<Vec<u8>> = run.iter().map(|&i| ready_keys[i].clone()).collect();
            let values = st.txn.read_sorted(&self.db, &run_keys).await?;
            for (&i, v) in run.iter().zip(values) {
                out[i] = v;
            }
            run.clear();
        }
        Ok(out)
    }
}
