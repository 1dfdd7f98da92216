//! The broker: validates requests, routes them to the shard that owns the tenant, and
//! shapes the replies. One method per RPC, named after it (flow control's in broker/flow.rs).
//!
//! A store has a fixed number of shards (rust/store/layout.rs). Without a cluster this process
//! serves all of them; in a cluster (rust/cluster/) it serves those it owns and forwards the
//! rest (route.rs). `shards.rs` is where each shard's calls go; `lease_tasks.rs` merges a
//! lease over several local shards.

mod flow;
mod forward;
mod lease_tasks;
mod route;
mod shards;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub use forward::{CallContext, ForwardError, Forwarder, PeerTls, HOPS_HEADER};
pub use lease_tasks::{plan as lease_plan, LeaseMerge};
pub use shards::{Peer, Route, ShardMap};

use serde::{Deserialize, Serialize};

use crate::auth::TenantScope;
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::metrics::MetricsSnapshot;
use crate::proto::{admin, wire};
use crate::routing;
use crate::shard::{BulkStep, Enqueued, JobRef, Shard, ShardConfig, ShardHandle};
use crate::store::instrumented::{FaultSwitch, Faults, InstrumentedStore, RequestCounts};
use crate::store::{layout, ShardStore, StoreLocation, StoreSettings};
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
    /// Shards of a new store (default 1); an existing store keeps its own count, and a
    /// different value is an error (docs/cluster.md#shards).
    #[serde(default)]
    pub shards: Option<u32>,
    /// This node's id in GetCluster (and in the cluster, when `cluster` is set).
    #[serde(default)]
    pub node_id: Option<String>,
    /// `HOST:PORT` clients and other nodes reach this node's gRPC on.
    #[serde(default)]
    pub advertise: Option<String>,
    /// `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`: join that cluster (docs/cluster.md).
    #[serde(default)]
    pub cluster: Option<String>,
    /// How long a node that stops renewing its etcd lease keeps its shards, in ms.
    #[serde(default = "default_node_ttl")]
    pub node_ttl: u64,
    /// Whether the shards count what `/metrics` exports (`--metrics`).
    #[serde(default = "default_metrics")]
    pub metrics: bool,
    /// The node's TLS certificate chain and key (PEM files): with them, calls are forwarded to
    /// peers over TLS and the node presents them as its client certificate
    /// (docs/security.md#in-a-cluster). The server's own TLS lives in the Python server.
    #[serde(default)]
    pub tls_cert: Option<String>,
    #[serde(default)]
    pub tls_key: Option<String>,
    /// The CA certificates clients must present a certificate of (mTLS); the peers are verified
    /// against them when `tls_peer_ca` is not set.
    #[serde(default)]
    pub tls_client_ca: Option<String>,
    /// The CA certificates the peers' certificates are verified against (default:
    /// `tls_client_ca`, else the system's roots).
    #[serde(default)]
    pub tls_peer_ca: Option<String>,
}

fn default_metrics() -> bool {
    true
}

fn default_node_ttl() -> u64 {
    5000
}

impl BrokerConfig {
    /// Reads the settings object; a missing, unknown or ill-typed setting is `InvalidArgument`
    /// on field `settings`, with serde's message naming the setting.
    pub fn from_json(text: &str) -> Result<BrokerConfig> {
        serde_json::from_str(text).map_err(|e| Error::invalid("settings", e))
    }

    /// How calls are forwarded to peers over TLS: `None` (plain HTTP/2) without `tls_cert`.
    fn peer_tls(&self) -> Result<Option<PeerTls>> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let ca = match (&self.tls_peer_ca, &self.tls_client_ca) {
            (Some(path), _) => Some(("tls_peer_ca", path.as_str())),
            (None, Some(path)) => Some(("tls_client_ca", path.as_str())),
            (None, None) => None,
        };
        PeerTls::from_files(cert, key, ca).map(Some)
    }

    /// Every setting as text, plus what the broker derived (the flush interval a store preset
    /// picked, the build profile, the index page size, the shard count).
    fn describe(&self, flush_ms: u64, shard_count: u32) -> BTreeMap<String, String> {
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
            ("shards", shard_count.to_string()),
        ] {
            settings.insert(name.to_string(), value);
        }
        settings
    }
}

/// A running broker. Cheap to share behind an `Arc`; every method may be called concurrently.
pub struct Broker {
    /// Where each shard's calls go (all local without a cluster).
    shards: Arc<ShardMap>,
    /// LeaseTasks over several local shards.
    leases: LeaseMerge,
    /// Calls for shards other nodes own go through it (cluster mode).
    forwarder: Forwarder,
    /// How long a call for a shard that is moving waits for its new owner.
    route_wait: Duration,
    clock: Arc<dyn Clock>,
    limits: Limits,
    settings: BTreeMap<String, String>,
    requests: Arc<RequestCounts>,
    /// Present only with `fault_injection`.
    faults: Option<FaultSwitch>,
    /// Open streams and their requests in flight (Admin/GetStats).
    stream_gauges: Arc<StreamGauges>,
    /// This node, as GetCluster shows it.
    node: Peer,
    /// Membership and shard ownership on etcd (cluster mode only).
    cluster: Option<crate::cluster::Cluster>,
}

/// Everything needed to open any shard of the store (all at start without a cluster; the
/// ones this node comes to own, in a cluster).
pub struct ShardOpener {
    location: StoreLocation,
    object_store: Arc<dyn object_store::ObjectStore>,
    root: object_store::path::Path,
    settings: StoreSettings,
    clock: Arc<dyn Clock>,
    lease_ms: i64,
    limits: Limits,
    retention_ms: i64,
    metrics: bool,
}

impl ShardOpener {
    /// Opens shard `index`'s SlateDB (fencing any older writer) and starts its actor.
    pub async fn open(&self, index: u32) -> Result<ShardHandle> {
        let store = ShardStore::new(
            &self.location,
            self.object_store.clone(),
            &self.root,
            index,
            self.settings.clone(),
        );
        let config = ShardConfig {
            index,
            lease_ms: self.lease_ms,
            limits: self.limits,
            retention_ms: self.retention_ms,
            metrics: self.metrics,
        };
        Shard::start(store, self.clock.clone(), config).await
    }

    /// Opens every shard of the map at once and routes them here; if one fails, closes the
    /// others and fails.
    async fn open_all(&self, shards: &ShardMap) -> Result<()> {
        let opened = futures::future::join_all((0..shards.count()).map(|i| self.open(i))).await;
        let mut handles = Vec::with_capacity(opened.len());
        let mut failure = None;
        for r in opened {
            match r {
                Ok(h) => handles.push(h),
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failure {
            // A half-open broker must not keep shards open.
            futures::future::join_all(handles.iter().map(|h| h.close())).await;
            return Err(e);
        }
        for h in handles {
            shards.set(h.shard, Route::Local(h));
        }
        Ok(())
    }
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
        let shard_layout =
            layout::open_or_create(object_store.as_ref(), &root, config.shards).await?;
        let count = shard_layout.shard_count;
        let settings = StoreSettings {
            // --cache-bytes is the process's budget, shared by the store's shards.
            block_cache_bytes: (config.cache_bytes / u64::from(count)).max(MIN_SHARD_CACHE_BYTES),
            meta_cache_bytes: (config.cache_bytes / 4 / u64::from(count))
                .max(MIN_SHARD_CACHE_BYTES / 4),
            ..settings
        };
        let limits = Limits {
            max_payload_bytes: config.max_payload_bytes,
        };
        let shards = Arc::new(ShardMap::new(count));
        let opener = ShardOpener {
            location,
            object_store,
            root,
            settings,
            clock: clock.clone(),
            lease_ms: config.lease_ms,
            limits,
            retention_ms: config.retention,
            metrics: config.metrics,
        };
        let node = Peer {
            node_id: config.node_id.clone().unwrap_or_else(|| "local".into()),
            address: config.advertise.clone().unwrap_or_default(),
        };
        let peer_tls = config.peer_tls()?;
        let mut route_wait = DEFAULT_ROUTE_WAIT;
        let cluster = match &config.cluster {
            None => {
                opener.open_all(&shards).await?;
                None
            }
            Some(url) => {
                let cluster_config = crate::cluster::ClusterConfig::parse(
                    url,
                    node.clone(),
                    Duration::from_millis(config.node_ttl),
                )?;
                route_wait = route_wait.max(cluster_config.node_ttl + Duration::from_secs(5));
                Some(crate::cluster::Cluster::join(cluster_config, opener, shards.clone()).await?)
            }
        };
        let settings = config.describe(flush_ms, count);
        Ok(Broker {
            shards,
            leases: LeaseMerge::default(),
            forwarder: Forwarder::new(peer_tls),
            route_wait,
            clock,
            limits,
            settings,
            requests,
            faults: config.fault_injection.then_some(fault_switch),
            stream_gauges: Arc::default(),
            node,
            cluster,
        })
    }

    /// The effective settings, for logs and benchmark reports.
    pub fn settings(&self) -> &BTreeMap<String, String> {
        &self.settings
    }

    /// The store's shard count.
    pub fn shard_count(&self) -> u32 {
        self.shards.count()
    }

    /// The actor of the tenant's shard, if this process serves it (else `ShardUnavailable`).
    fn shard_for(&self, tenant: &str) -> Result<ShardHandle> {
        self.shards
            .local(routing::shard_of_tenant(tenant, self.shards.count()))
    }

    /// The actor of the shard that issued a task id (`TaskNotFound` for an id no shard of
    /// this store issued).
    fn shard_for_task(&self, task_id: &str) -> Result<ShardHandle> {
        let shard =
            routing::shard_of_task(task_id, self.shards.count()).ok_or(Error::TaskNotFound)?;
        self.shards.local(shard)
    }

    pub async fn enqueue(&self, req: wire::EnqueueRequest) -> Result<wire::EnqueueResponse> {
        let job = validate::enqueue(req, &self.limits)?;
        let shard = self.shard_for(&job.tenant)?;
        let mut results = shard.enqueue(vec![job]).await?;
        let stored = results
            .pop()
            .ok_or_else(|| Error::Internal("enqueue answered no result".into()))??;
        Ok(wire::EnqueueResponse {
            id: stored.id,
            deduplicated: stored.deduplicated,
        })
    }

    /// Each entry succeeds or fails alone; an entry of a tenant outside `scope` fails with
    /// PERMISSION_DENIED.
    pub async fn enqueue_batch(
        &self,
        req: wire::EnqueueBatchRequest,
        scope: &TenantScope,
    ) -> Result<wire::EnqueueBatchResponse> {
        let entries = in_scope(validate::enqueue_batch(req, &self.limits)?, scope);
        let results = self
            .enqueue_entries(entries)
            .await?
            .into_iter()
            .map(enqueue_result)
            .collect();
        Ok(wire::EnqueueBatchResponse { results })
    }

    /// Enqueues validated entries, each shard's valid ones in one command (all durable
    /// together); an entry that failed validation keeps its error. Fails whole only when a
    /// single shard does (UNAVAILABLE).
    async fn enqueue_entries(&self, entries: Vec<Result<NewJob>>) -> Result<Vec<Result<Enqueued>>> {
        let count = self.shards.count();
        self.by_shard(
            entries,
            |job| routing::shard_of_tenant(&job.tenant, count),
            |shard, jobs| async move { shard.enqueue(jobs).await },
        )
        .await
    }

    /// `enqueue_entries` for a stream, where each entry is answered alone.
    async fn enqueue_each(&self, entries: Vec<Result<NewJob>>) -> Vec<Result<Enqueued>> {
        each(entries, |entries| self.enqueue_entries(entries)).await
    }

    pub async fn cancel(&self, req: wire::CancelRequest) -> Result<wire::CancelResponse> {
        validate::job_ref(&req.id, &req.tenant)?;
        self.shard_for(&req.tenant)?
            .cancel(JobRef {
                tenant: req.tenant,
                id: req.id,
            })
            .await?;
        Ok(wire::CancelResponse {})
    }

    /// Leases jobs of the tenants in `scope` only; the others' are skipped, not taken.
    pub async fn lease_tasks(
        &self,
        req: wire::LeaseTasksRequest,
        scope: &TenantScope,
    ) -> Result<wire::LeaseTasksResponse> {
        let mut params = validate::lease(req)?;
        params.tenants = scope.clone();
        let locals = self.shards.locals();
        match locals.as_slice() {
            // One shard: straight to it, as fast as a single-shard broker.
            [only] => only.lease_tasks(params).await,
            _ => {
                let clock = &self.clock;
                self.leases.lease(&locals, params, || clock.now_ms()).await
            }
        }
    }

    /// A task of a tenant outside `scope` is NOT_FOUND, as a task that does not exist.
    pub async fn heartbeat_task(
        &self,
        req: wire::HeartbeatTaskRequest,
        scope: &TenantScope,
    ) -> Result<wire::HeartbeatTaskResponse> {
        let mut params = validate::heartbeat(req, &self.limits)?;
        params.tenants = scope.clone();
        self.shard_for_task(&params.task_id)?
            .heartbeat_task(params)
            .await
    }

    /// A task of a tenant outside `scope` is NOT_FOUND, as a task that does not exist.
    pub async fn report_task_outcome(
        &self,
        req: wire::ReportTaskOutcomeRequest,
        scope: &TenantScope,
    ) -> Result<wire::ReportTaskOutcomeResponse> {
        let mut params = validate::report(req, &self.limits)?;
        params.tenants = scope.clone();
        let mut results = self
            .shard_for_task(&params.task_id)?
            .report_task_outcomes(vec![params])
            .await?;
        results
            .pop()
            .ok_or_else(|| Error::Internal("report answered no result".into()))??;
        Ok(wire::ReportTaskOutcomeResponse {})
    }

    /// Each report succeeds or fails alone; a task of a tenant outside `scope` is NOT_FOUND.
    pub async fn report_task_outcomes(
        &self,
        req: wire::ReportTaskOutcomesRequest,
        scope: &TenantScope,
    ) -> Result<wire::ReportTaskOutcomesResponse> {
        let mut entries = validate::report_batch(req, &self.limits)?;
        for p in entries.iter_mut().flatten() {
            p.tenants = scope.clone();
        }
        let results = self
            .report_entries(entries)
            .await?
            .iter()
            .map(|r| {
                let (code, message) = status_of(r);
                wire::ReportResult { code, message }
            })
            .collect();
        Ok(wire::ReportTaskOutcomesResponse { results })
    }

    /// Records validated reports, each shard's valid ones in one command; a report that failed
    /// validation keeps its error.
    async fn report_entries(
        &self,
        entries: Vec<Result<validate::ReportParams>>,
    ) -> Result<Vec<Result<()>>> {
        let count = self.shards.count();
        self.by_shard(
            entries,
            // A task id that names no shard goes to shard 0, which answers NOT_FOUND.
            |p| routing::shard_of_task(&p.task_id, count).unwrap_or(0),
            |shard, reports| async move { shard.report_task_outcomes(reports).await },
        )
        .await
    }

    pub async fn get_job(&self, req: wire::GetJobRequest) -> Result<wire::Job> {
        validate::job_ref(&req.id, &req.tenant)?;
        self.shard_for(&req.tenant)?
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
        self.shard_for(&params.tenant)?.wait_job(params).await
    }

    pub async fn list_jobs(&self, req: wire::ListJobsRequest) -> Result<wire::ListJobsResponse> {
        let params = validate::list_jobs(req)?;
        self.shard_for(&params.filter.tenant)?
            .list_jobs(params)
            .await
    }

    pub async fn list_queues(
        &self,
        req: wire::ListQueuesRequest,
    ) -> Result<wire::ListQueuesResponse> {
        validate::list_queues(&req)?;
        self.shard_for(&req.tenant)?.list_queues(req.tenant).await
    }

    pub async fn restart_job(&self, req: wire::RestartJobRequest) -> Result<wire::Job> {
        validate::job_ref(&req.id, &req.tenant)?;
        self.shard_for(&req.tenant)?
            .restart_job(JobRef {
                tenant: req.tenant,
                id: req.id,
            })
            .await
    }

    pub async fn expedite_job(&self, req: wire::ExpediteJobRequest) -> Result<wire::Job> {
        validate::job_ref(&req.id, &req.tenant)?;
        self.shard_for(&req.tenant)?
            .expedite_job(JobRef {
                tenant: req.tenant,
                id: req.id,
            })
            .await
    }

    pub async fn delete_job(&self, req: wire::DeleteJobRequest) -> Result<wire::DeleteJobResponse> {
        validate::job_ref(&req.id, &req.tenant)?;
        self.shard_for(&req.tenant)?
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
        let shard = self.shard_for(&p.filter.tenant)?;
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

    /// Admin.GetStats: object-store request counts, settings, RSS, the gauges of the shards
    /// this process serves (summed in `gauges`, and per shard in `shards`) and the streams'
    /// (from `stream_gauges`).
    pub async fn get_stats(&self, _req: admin::GetStatsRequest) -> Result<admin::Stats> {
        let locals = self.shards.locals();
        let per_shard = futures::future::join_all(
            locals
                .iter()
                .map(|h| async move { (h.shard, h.get_stats().await) }),
        )
        .await;
        let mut gauges: BTreeMap<String, i64> = BTreeMap::new();
        let mut shards = Vec::with_capacity(per_shard.len());
        for (shard, stats) in per_shard {
            let stats = match stats {
                Ok(s) => s,
                // A shard handed over meanwhile is not this process's any more.
                Err(Error::ShardUnavailable { .. }) => continue,
                Err(e) => return Err(e),
            };
            for (name, value) in &stats {
                *gauges.entry(name.clone()).or_default() += value;
            }
            shards.push(admin::ShardStats {
                shard,
                gauges: stats.into_iter().collect(),
            });
        }
        // Leases waiting across several shards wait at the node, not in one shard.
        *gauges.entry("lease_waiters".into()).or_default() +=
            self.leases
                .waiting
                .load(std::sync::atomic::Ordering::Relaxed) as i64;
        let streams = &self.stream_gauges;
        gauges.insert("streams".into(), streams.streams.load(Ordering::Relaxed));
        gauges.insert(
            "stream_requests".into(),
            streams.requests.load(Ordering::Relaxed),
        );
        gauges.insert("forwarded_calls".into(), self.forwarder.forwarded());
        Ok(admin::Stats {
            object_store_requests: self.requests.snapshot().into_iter().collect(),
            settings: self.settings.clone().into_iter().collect(),
            rss_bytes: rss_bytes(),
            gauges: gauges.into_iter().collect(),
            shards,
        })
    }

    /// GetCluster: the nodes and the shards each serves, the shard count and the tenant hash.
    /// A shard that is moving is in no node's list.
    pub async fn get_cluster(&self, _req: wire::GetClusterRequest) -> Result<wire::Cluster> {
        let mut nodes: BTreeMap<String, wire::Node> = BTreeMap::new();
        fn node<'a>(
            nodes: &'a mut BTreeMap<String, wire::Node>,
            peer: &Peer,
        ) -> &'a mut wire::Node {
            nodes
                .entry(peer.node_id.clone())
                .or_insert_with(|| wire::Node {
                    id: peer.node_id.clone(),
                    address: peer.address.clone(),
                    shards: Vec::new(),
                })
        }
        node(&mut nodes, &self.node);
        if let Some(cluster) = &self.cluster {
            for peer in cluster.members() {
                node(&mut nodes, &peer);
            }
        }
        for (shard, route) in self.shards.snapshot().into_iter().enumerate() {
            match route {
                Route::Local(_) => node(&mut nodes, &self.node).shards.push(shard as u32),
                Route::Remote(peer) => node(&mut nodes, &peer).shards.push(shard as u32),
                Route::Moving => {}
            }
        }
        Ok(wire::Cluster {
            nodes: nodes.into_values().collect(),
            shard_count: self.shards.count(),
            hash: routing::TENANT_HASH_NAME.to_string(),
        })
    }

    /// What `/metrics` exports of the core (docs/operations.md#metrics): the shard's counters
    /// and histograms and the object-store requests. Read without asking the actor, so it
    /// answers during a store outage too.
    /// With several local shards the figures are their sums, under the same bound of queue
    /// labels as one shard's.
    pub fn metrics(&self) -> MetricsSnapshot {
        let mut shards = self.shards.locals().into_iter();
        let mut snapshot = match shards.next() {
            Some(first) => first.metrics().snapshot(),
            None => crate::metrics::Metrics::new(false).snapshot(),
        };
        for shard in shards {
            snapshot.add(&shard.metrics().snapshot());
        }
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
        self.shard_for(&req.tenant)?
            .get_concurrency_key(req.tenant, req.key)
            .await
    }

    /// Resolves once a newer broker has fenced this one off one of its shards: from then on
    /// calls for that shard fail with UNAVAILABLE, and the process should stop serving.
    pub async fn fenced(&self) {
        let locals = self.shards.locals();
        // In a cluster a fenced shard is the membership's business: it stops serving that
        // shard and the node goes on (docs/cluster.md#failure-modes).
        if locals.is_empty() || self.cluster.is_some() {
            return futures::future::pending().await;
        }
        futures::future::select_all(locals.iter().map(|h| Box::pin(h.fenced()))).await;
    }

    /// In a cluster, leaves it gracefully: hands every shard over to the nodes that stay,
    /// while this node still forwards the calls it gets. Without a cluster, nothing.
    pub async fn leave(&self) {
        if let Some(cluster) = &self.cluster {
            cluster.leave().await;
        }
    }

    /// Finishes queued commands, waits for durability and closes every local shard.
    /// Idempotent.
    pub async fn close(&self) {
        if let Some(cluster) = &self.cluster {
            // Leaves gracefully (hands every shard over) if not done yet, then stops following.
            cluster.leave().await;
            cluster.stop().await;
        }
        futures::future::join_all(self.shards.locals().iter().map(|h| h.close())).await;
    }

    /// Runs a batch's valid entries on their shards, each shard's part in one command and all
    /// shards at once, and puts every answer back in its entry's place beside the validation
    /// errors of the others. An entry whose shard this process does not serve gets
    /// `ShardUnavailable` (call_raw forwards such batches before they get here in a cluster).
    async fn by_shard<P, T, F, Fut>(
        &self,
        entries: Vec<Result<P>>,
        shard_of: impl Fn(&P) -> u32,
        run: F,
    ) -> Result<Vec<Result<T>>>
    where
        F: Fn(ShardHandle, Vec<P>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<Result<T>>>>,
        T: Clone,
    {
        if self.shards.count() == 1 {
            let shard = self.shards.local(0);
            return merge_batch(entries, |valid| async move { run(shard?, valid).await }).await;
        }
        let mut groups: BTreeMap<u32, Vec<(usize, P)>> = BTreeMap::new();
        let mut results: Vec<Option<Result<T>>> = Vec::with_capacity(entries.len());
        for (i, entry) in entries.into_iter().enumerate() {
            match entry {
                Ok(p) => {
                    groups.entry(shard_of(&p)).or_default().push((i, p));
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        let runs = groups.into_iter().map(|(shard, group)| {
            let (slots, valid): (Vec<usize>, Vec<P>) = group.into_iter().unzip();
            let handle = self.shards.local(shard);
            let run = &run;
            async move {
                let answers = match handle {
                    Ok(h) => run(h, valid).await,
                    Err(e) => Err(e),
                };
                (slots, answers)
            }
        });
        for (slots, answers) in futures::future::join_all(runs).await {
            match answers {
                Ok(answers) => {
                    for (slot, a) in slots.into_iter().zip(answers) {
                        results[slot] = Some(a);
                    }
                }
                // The shard failed as a whole (store unavailable, moved): each entry says so.
                Err(e) => {
                    for slot in slots {
                        results[slot] = Some(Err(e.clone()));
                    }
                }
            }
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(Error::Internal("the shard answered no result".into())))
            })
            .collect())
    }
}

/// Smallest block cache a shard gets when --cache-bytes is shared by many shards.
const MIN_SHARD_CACHE_BYTES: u64 = 4 << 20;
/// How long a call for a moving shard waits for its new owner without a cluster setting
/// (docs/cluster.md#routing).
const DEFAULT_ROUTE_WAIT: Duration = Duration::from_secs(10);

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

/// A batch run for a stream, where each entry is answered alone: a failure of the whole run
/// (the shard is unavailable) becomes every valid entry's result.
async fn each<P, T, F, Fut>(entries: Vec<Result<P>>, run: F) -> Vec<Result<T>>
where
    F: FnOnce(Vec<Result<P>>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Result<T>>>>,
{
    let invalid: Vec<Option<Error>> = entries.iter().map(|e| e.as_ref().err().cloned()).collect();
    match run(entries).await {
        Ok(results) => results,
        Err(e) => invalid
            .into_iter()
            .map(|bad| Err(bad.unwrap_or_else(|| e.clone())))
            .collect(),
    }
}

/// Batch entries of a tenant outside `scope` fail alone with PERMISSION_DENIED (after their
/// own validation, so a bad entry still names its field).
fn in_scope(entries: Vec<Result<NewJob>>, scope: &TenantScope) -> Vec<Result<NewJob>> {
    if scope.tenants().is_none() {
        return entries;
    }
    entries
        .into_iter()
        .map(|e| match e {
            Ok(job) if !scope.allows(&job.tenant) => Err(Error::PermissionDenied(format!(
                "the token may not act on tenant {:?}",
                job.tenant
            ))),
            other => other,
        })
        .collect()
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
