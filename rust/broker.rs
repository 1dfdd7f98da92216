//! The broker: validates requests, routes them to the shard that owns the tenant, and
//! shapes the replies. One method per RPC, named after it (flow control's in broker/flow.rs).

mod flow;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::metrics::MetricsSnapshot;
use crate::proto::{admin, wire};
use crate::shard::{BulkStep, Enqueued, JobRef, Shard, ShardConfig, ShardHandle};
use crate::store::instrumented::{FaultSwitch, Faults, InstrumentedStore, RequestCounts};
use crate::store::{ShardStore, StoreLocation, StoreSettings};
use crate::stream_io::{StreamGauges, StreamIo};
use crate::validate::{self, BulkAction, Limits, NewJob};

mod enqueue_stream;
mod worker_session;

/// Settings of `silo serve` that reach the core. Their defaults, help and flags are defined
/// once, in python/silo/config.py; the core receives every one of them as a JSON object
/// (`from_json`) and reports them back in Admin/GetStats `settings` (docs/operations.md#settings).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// A path, `file:///abs`, `memory://` or `s3://bucket/prefix`.
    pub store: String,
    /// How long a lease lasts without a heartbeat.
    pub lease_ms: i64,
    /// SlateDB WAL flush interval; `None` picks the store's preset.
    pub flush_interval_ms: Option<u64>,
    pub max_payload_bytes: usize,
    /// Object-store retries per call before a call fails with UNAVAILABLE.
    pub store_max_retries: u32,
    /// SlateDB in-memory block cache; the metadata cache (SST indexes and filters) gets half of
    /// it on top (docs/operations.md#tuning).
    pub cache_bytes: u64,
    /// Garbage collection of obsolete store files: how often, and how old a file must be.
    pub gc_interval_ms: u64,
    pub gc_min_age_ms: u64,
    /// Whether Admin.SetFaults may inject object-store faults (tests only).
    pub fault_injection: bool,
    /// How long a terminal job is kept, in ms (`--retention`); 0 keeps jobs forever.
    pub retention: i64,
    /// Whether the shard counts what `/metrics` exports (`--metrics`).
    pub metrics: bool,
}

impl BrokerConfig {
    /// Reads the settings object; a missing, unknown or ill-typed setting is `InvalidArgument`
    /// on field `settings`, with serde's message naming the setting.
    pub fn from_json(text: &str) -> Result<BrokerConfig> {
        serde_json::from_str(text).map_err(|e| Error::invalid("settings", e))
    }

    /// Every setting as text, plus what the broker derived (the flush interval a store preset
    /// picked, the build profile, the index page size, the shard count).
    fn describe(&self, flush_ms: u64) -> BTreeMap<String, String> {
        let serde_json::Value::Object(fields) =
            serde_json::to_value(self).expect("BrokerConfig serializes")
        else {
            unreachable!("a struct serializes as an object")
        };
        let mut settings: BTreeMap<String, String> = fields
            .into_iter()
            .map(|(name, value)| match value {
                serde_json::Value::String(text) => (name, text),
                other => (name, other.to_string()),
            })
            .collect();
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        for (name, value) in [
            ("flush_interval_ms", flush_ms.to_string()),
            ("build_profile", profile.to_string()),
            ("index_page_size", crate::shard::INDEX_PAGE_SIZE.to_string()),
            ("shards", "1".to_string()),
        ] {
            settings.insert(name.to_string(), value);
        }
        settings
    }
}

/// A running broker. Cheap to share behind an `Arc`; every method may be called concurrently.
pub struct Broker {
    /// One shard today: every tenant maps to it. The routing seam is `shard_for`.
    shard: ShardHandle,
    limits: Limits,
    settings: BTreeMap<String, String>,
    requests: Arc<RequestCounts>,
    /// Present only with `fault_injection`.
    faults: Option<FaultSwitch>,
    /// Open streams and their requests in flight (Admin/GetStats).
    stream_gauges: Arc<StreamGauges>,
}

impl Broker {
    /// Opens the store and rebuilds the shard's in-memory state.
    /// Errors: `InvalidArgument` for a bad setting, `StoreUnavailable` when the store fails.
    pub async fn open(config: BrokerConfig) -> Result<Broker> {
        Self::open_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn open_with_clock(config: BrokerConfig, clock: Arc<dyn Clock>) -> Result<Broker> {
        if config.lease_ms < 3 {
            return Err(Error::invalid("lease_ms", "must be at least 3"));
        }
        let location = StoreLocation::parse(&config.store)?;
        let flush_ms = config
            .flush_interval_ms
            .unwrap_or_else(|| location.default_flush_interval_ms());
        if flush_ms == 0 {
            return Err(Error::invalid("flush_interval_ms", "must be at least 1"));
        }
        if config.gc_interval_ms == 0 {
            return Err(Error::invalid("gc_interval_ms", "must be at least 1"));
        }
        if config.retention < 0 {
            return Err(Error::invalid("retention", "must not be negative"));
        }
        let (object_store, root) = location.object_store(config.store_max_retries)?;
        let (object_store, requests, fault_switch) = InstrumentedStore::wrap(object_store);
        let settings = StoreSettings {
            flush_interval: Duration::from_millis(flush_ms),
            max_retries: config.store_max_retries,
            block_cache_bytes: config.cache_bytes,
            meta_cache_bytes: config.cache_bytes / 2,
            gc_interval: Duration::from_millis(config.gc_interval_ms),
            gc_min_age: Duration::from_millis(config.gc_min_age_ms),
        };
        let store = ShardStore::new(&location, object_store, &root, 0, settings);
        let limits = Limits {
            max_payload_bytes: config.max_payload_bytes,
        };
        let shard = Shard::start(
            store,
            clock,
            ShardConfig {
                lease_ms: config.lease_ms,
                limits,
                retention_ms: config.retention,
                metrics: config.metrics,
            },
        )
        .await?;
        let settings = config.describe(flush_ms);
        Ok(Broker {
            shard,
            limits,
            settings,
            requests,
            faults: config.fault_injection.then_some(fault_switch),
            stream_gauges: Arc::default(),
        })
    }

    /// The effective settings, for logs and benchmark reports.
    pub fn settings(&self) -> &BTreeMap<String, String> {
        &self.settings
    }

    fn shard_for(&self, _tenant: &str) -> &ShardHandle {
        &self.shard
    }

    /// The shard that issued a task id.
    fn shard_for_task(&self, _task_id: &str) -> &ShardHandle {
        &self.shard
    }

    pub async fn enqueue(&self, req: wire::EnqueueRequest) -> Result<wire::EnqueueResponse> {
        let job = validate::enqueue(req, &self.limits)?;
        let shard = self.shard_for(&job.tenant);
        let mut results = shard.enqueue(vec![job]).await?;
        let stored = results
            .pop()
            .ok_or_else(|| Error::Internal("enqueue answered no result".into()))??;
        Ok(wire::EnqueueResponse {
            id: stored.id,
            deduplicated: stored.deduplicated,
        })
    }

    pub async fn enqueue_batch(
        &self,
        req: wire::EnqueueBatchRequest,
    ) -> Result<wire::EnqueueBatchResponse> {
        let entries = validate::enqueue_batch(req, &self.limits)?;
        let results = self
            .enqueue_entries(entries)
            .await?
            .into_iter()
            .map(enqueue_result)
            .collect();
        Ok(wire::EnqueueBatchResponse { results })
    }

    /// Enqueues validated entries in order, the valid ones in one shard command (all durable
    /// together); an entry that failed validation keeps its error. Fails whole only when the
    /// shard does (UNAVAILABLE).
    async fn enqueue_entries(&self, entries: Vec<Result<NewJob>>) -> Result<Vec<Result<Enqueued>>> {
        let shard = self.enqueue_shard(&entries);
        merge_batch(entries, |jobs| async move { shard.enqueue(jobs).await }).await
    }

    /// `enqueue_entries` for a stream, where each entry is answered alone.
    async fn enqueue_each(&self, entries: Vec<Result<NewJob>>) -> Vec<Result<Enqueued>> {
        let shard = self.enqueue_shard(&entries);
        each(entries, |jobs| async move { shard.enqueue(jobs).await }).await
    }

    /// The shard of a batch's jobs (the first valid one's tenant's).
    fn enqueue_shard(&self, entries: &[Result<NewJob>]) -> ShardHandle {
        match entries.iter().flatten().next() {
            Some(job) => self.shard_for(&job.tenant).clone(),
            None => self.shard.clone(),
        }
    }

    pub async fn cancel(&self, req: wire::CancelRequest) -> Result<wire::CancelResponse> {
        validate::job_ref(&req.id, &req.tenant)?;
        self.shard_for(&req.tenant)
            .cancel(JobRef {
                tenant: req.tenant,
                id: req.id,
            })
            .await?;
        Ok(wire::CancelResponse {})
    }

    pub async fn lease_tasks(
        &self,
        req: wire::LeaseTasksRequest,
    ) -> Result<wire::LeaseTasksResponse> {
        let params = validate::lease(req)?;
        self.shard.lease_tasks(params).await
    }

    pub async fn heartbeat_task(
        &self,
        req: wire::HeartbeatTaskRequest,
    ) -> Result<wire::HeartbeatTaskResponse> {
        let params = validate::heartbeat(req, &self.limits)?;
        self.shard_for_task(&params.task_id)
            .heartbeat_task(params)
            .await
    }

    pub async fn report_task_outcome(
        &self,
        req: wire::ReportTaskOutcomeRequest,
    ) -> Result<wire::ReportTaskOutcomeResponse> {
        let params = validate::report(req, &self.limits)?;
        let mut results = self
            .shard_for_task(&params.task_id)
            .report_task_outcomes(vec![params])
            .await?;
        results
            .pop()
            .ok_or_else(|| Error::Internal("report answered no result".into()))??;
        Ok(wire::ReportTaskOutcomeResponse {})
    }

    pub async fn report_task_outcomes(
        &self,
        req: wire::ReportTaskOutcomesRequest,
    ) -> Result<wire::ReportTaskOutcomesResponse> {
        let entries = validate::report_batch(req, &self.limits)?;
        let shard = match entries.iter().flatten().next() {
            Some(p) => self.shard_for_task(&p.task_id).clone(),
            None => self.shard.clone(),
        };
        let results = merge_batch(entries, |reports| async move {
            shard.report_task_outcomes(reports).await
        })
        .await?
        .iter()
        .map(|r| {
            let (code, message) = status_of(r);
            wire::ReportResult { code, message }
        })
        .collect();
        Ok(wire::ReportTaskOutcomesResponse { results })
    }

    pub async fn get_job(&self, req: wire::GetJobRequest) -> Result<wire::Job> {
        validate::job_ref(&req.id, &req.tenant)?;
        self.shard_for(&req.tenant)
            .get_job(
                JobRef {
                    tenant: req.tenant,
                    id: req.id,
                },
                req.include_attempts,
            )
            .await
    }

    /// The job as soon as it is terminal, or as it is when `timeout_ms` passes (0: at once).
    /// Errors: `InvalidArgument`, `JobNotFound`.
    pub async fn wait_job(&self, req: wire::WaitJobRequest) -> Result<wire::Job> {
        let params = validate::wait_job(req)?;
        self.shard_for(&params.tenant).wait_job(params).await
    }

    pub async fn list_jobs(&self, req: wire::ListJobsRequest) -> Result<wire::ListJobsResponse> {
        let params = validate::list_jobs(req)?;
        self.shard_for(&params.filter.tenant)
            .list_jobs(params)
            .await
    }

    pub async fn list_queues(
        &self,
        req: wire::ListQueuesRequest,
    ) -> Result<wire::ListQueuesResponse> {
        validate::list_queues(&req)?;
        self.shard_for(&req.tenant).list_queues(req.tenant).await
    }

    pub async fn restart_job(&self, req: wire::RestartJobRequest) -> Result<wire::Job> {
        validate::job_ref(&req.id, &req.tenant)?;
        self.shard_for(&req.tenant)
            .restart_job(JobRef {
                tenant: req.tenant,
                id: req.id,
            })
            .await
    }

    pub async fn expedite_job(&self, req: wire::ExpediteJobRequest) -> Result<wire::Job> {
        validate::job_ref(&req.id, &req.tenant)?;
        self.shard_for(&req.tenant)
            .expedite_job(JobRef {
                tenant: req.tenant,
                id: req.id,
            })
            .await
    }

    pub async fn delete_job(&self, req: wire::DeleteJobRequest) -> Result<wire::DeleteJobResponse> {
        validate::job_ref(&req.id, &req.tenant)?;
        self.shard_for(&req.tenant)
            .delete_job(JobRef {
                tenant: req.tenant,
                id: req.id,
            })
            .await?;
        Ok(wire::DeleteJobResponse {})
    }

    pub async fn cancel_jobs(&self, req: wire::BulkJobsRequest) -> Result<wire::BulkJobsResponse> {
        self.bulk_jobs(validate::bulk_jobs(req, BulkAction::Cancel)?)
            .await
    }

    pub async fn restart_jobs(&self, req: wire::BulkJobsRequest) -> Result<wire::BulkJobsResponse> {
        self.bulk_jobs(validate::bulk_jobs(req, BulkAction::Restart)?)
            .await
    }

    pub async fn delete_jobs(&self, req: wire::BulkJobsRequest) -> Result<wire::BulkJobsResponse> {
        self.bulk_jobs(validate::bulk_jobs(req, BulkAction::Delete)?)
            .await
    }

    /// A bulk call: bounded shard commands, each going on from the position the last one
    /// reached, until `limit` jobs changed or the filter's range ends (docs/api.md#bulk-calls).
    async fn bulk_jobs(&self, p: validate::BulkParams) -> Result<wire::BulkJobsResponse> {
        let shard = self.shard_for(&p.filter.tenant);
        let mut out = wire::BulkJobsResponse::default();
        let mut after = None;
        loop {
            let progress = shard
                .bulk_jobs(BulkStep {
                    action: p.action,
                    filter: p.filter.clone(),
                    after,
                    limit: p.limit - out.changed as u32,
                })
                .await?;
            out.matched += progress.matched;
            out.changed += progress.changed;
            after = progress.after;
            if progress.done {
                return Ok(out);
            }
            if out.changed >= u64::from(p.limit) {
                out.more = true;
                return Ok(out);
            }
        }
    }

    /// Admin.GetStats: object-store request counts, settings, RSS and in-memory gauges (the
    /// shard's, and the streams' from `stream_gauges`).
    pub async fn get_stats(&self, _req: admin::GetStatsRequest) -> Result<admin::Stats> {
        let mut gauges = self.shard.get_stats().await?;
        let streams = &self.stream_gauges;
        gauges.insert("streams".into(), streams.streams.load(Ordering::Relaxed));
        gauges.insert(
            "stream_requests".into(),
            streams.requests.load(Ordering::Relaxed),
        );
        Ok(admin::Stats {
            object_store_requests: self.requests.snapshot().into_iter().collect(),
            settings: self.settings.clone().into_iter().collect(),
            rss_bytes: rss_bytes(),
            gauges: gauges.into_iter().collect(),
        })
    }

    /// What `/metrics` exports of the core (docs/operations.md#metrics): the shard's counters
    /// and histograms and the object-store requests. Read without asking the actor, so it
    /// answers during a store outage too.
    pub fn metrics(&self) -> MetricsSnapshot {
        let mut snapshot = self.shard.metrics().snapshot();
        snapshot.object_store_requests = self.requests.snapshot().into_iter().collect();
        snapshot
    }

    /// The buffers of a new stream RPC, counted in this broker's gauges; serve it with
    /// `serve_stream` (rust/rpc.rs).
    pub fn stream_io(&self) -> StreamIo {
        StreamIo::new(self.stream_gauges.clone())
    }

    /// Admin.SetFaults: what the object store does to each call from now on.
    /// Errors: `FaultInjectionDisabled` unless the broker was opened with `fault_injection`.
    pub async fn set_faults(
        &self,
        req: admin::SetFaultsRequest,
    ) -> Result<admin::SetFaultsResponse> {
        let switch = self.faults.as_ref().ok_or(Error::FaultInjectionDisabled)?;
        if !(0.0..=1.0).contains(&req.error_rate) {
            return Err(Error::invalid("error_rate", "must be within 0..1"));
        }
        if req.added_latency_ms < 0 {
            return Err(Error::invalid("added_latency_ms", "must not be negative"));
        }
        switch.set(Faults {
            error_rate: req.error_rate,
            added_latency_ms: req.added_latency_ms as u64,
            stall: req.stall,
        });
        tracing::warn!(?req, "object-store faults set");
        Ok(admin::SetFaultsResponse {})
    }

    /// Admin.GetConcurrencyKey: the slot accounting of one key.
    pub async fn get_concurrency_key(
        &self,
        req: admin::GetConcurrencyKeyRequest,
    ) -> Result<admin::ConcurrencyKeyState> {
        validate::concurrency_key(&req.tenant, &req.key)?;
        self.shard_for(&req.tenant)
            .get_concurrency_key(req.tenant, req.key)
            .await
    }

    /// Resolves once a newer broker has fenced this one off the store: from then on every call
    /// fails with UNAVAILABLE, and the process should stop serving.
    pub async fn fenced(&self) {
        self.shard.fenced().await;
    }

    /// Finishes queued commands, waits for durability and closes the store. Idempotent.
    pub async fn close(&self) {
        self.shard.close().await;
    }
}

/// A batch call's entries each succeed or fail alone: the valid ones go to the shard in one
/// call (`run`, answering one result per entry, in order), and every answer goes back to its
/// entry's place beside the validation errors of the others.
async fn merge_batch<P, T, F, Fut>(entries: Vec<Result<P>>, run: F) -> Result<Vec<Result<T>>>
where
    F: FnOnce(Vec<P>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Result<T>>>>,
{
    let mut results: Vec<Option<Result<T>>> = Vec::with_capacity(entries.len());
    let mut valid = Vec::new();
    let mut slots = Vec::new();
    for entry in entries {
        match entry {
            Ok(p) => {
                slots.push(results.len());
                results.push(None);
                valid.push(p);
            }
            Err(e) => results.push(Some(Err(e))),
        }
    }
    if !valid.is_empty() {
        for (slot, r) in slots.into_iter().zip(run(valid).await?) {
            results[slot] = Some(r);
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::Internal("the shard answered no result".into()))))
        .collect())
}

/// `merge_batch` for a stream, where each entry is answered alone: a failure of the whole run
/// (the shard is unavailable) becomes every valid entry's result.
async fn each<P, T, F, Fut>(entries: Vec<Result<P>>, run: F) -> Vec<Result<T>>
where
    F: FnOnce(Vec<P>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Result<T>>>>,
{
    let invalid: Vec<Option<Error>> = entries.iter().map(|e| e.as_ref().err().cloned()).collect();
    match merge_batch(entries, run).await {
        Ok(results) => results,
        Err(e) => invalid
            .into_iter()
            .map(|bad| Err(bad.unwrap_or_else(|| e.clone())))
            .collect(),
    }
}

/// One EnqueueBatch or EnqueueStream result.
fn enqueue_result(r: Result<Enqueued>) -> wire::EnqueueResult {
    let (code, message) = status_of(&r);
    let stored = r.ok();
    wire::EnqueueResult {
        id: stored.as_ref().map(|e| e.id.clone()).unwrap_or_default(),
        code,
        message,
        deduplicated: stored.is_some_and(|e| e.deduplicated),
    }
}

/// The gRPC status code and message of one batch entry's result (0 and "" for success).
fn status_of<T>(r: &Result<T>) -> (i32, String) {
    match r {
        Ok(_) => (0, String::new()),
        Err(e) => (e.status().code as i32, e.public_message()),
    }
}

/// Resident set size of this process (Linux; 0 elsewhere).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod stream_tests;
