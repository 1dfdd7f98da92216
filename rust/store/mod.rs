//! Opening a store: parses the store URL into an object store and opens a shard's SlateDB.

mod filter;
pub mod instrumented;
pub mod layout;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{BackoffConfig, ClientConfigKey, ObjectStore, RetryConfig};
use slatedb::config::{
    CompactionWorkerOptions, CompactorOptions, GarbageCollectorDirectoryOptions,
    GarbageCollectorOptions, Settings,
};
use slatedb::db_cache::moka::{MokaCache, MokaCacheOptions};
use slatedb::db_cache::SplitCache;
use slatedb::Db;

use crate::error::{Error, Result};

/// Longest time one S3 request may take, from connecting to the last byte of the answer.
/// Why: object_store's default (30 s, then up to 10 retries within 3 min) let a stalled server
/// hold a call for minutes. The variable `AWS_TIMEOUT` (e.g. `30s`) overrides it, for large
/// uploads over a slow link.
pub const S3_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest time connecting to the S3 endpoint may take (`AWS_CONNECT_TIMEOUT` overrides it).
pub const S3_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The S3 client starts no retry of a request later than this after its first attempt, so a
/// request that keeps failing or stalling gives up within this plus one request timeout.
pub const S3_RETRY_WINDOW: Duration = Duration::from_secs(10);

/// The S3 client's retries: `max_retries` per request, backing off 0.1 s doubling to 1 s,
/// none started after `S3_RETRY_WINDOW`. Requests whose effect is unknown after a timeout
/// (conditional PUTs: WAL files, manifests) are never retried by the client; the shard then
/// reopens the store (see `Shard::recover`).
fn s3_retry_config(max_retries: u32) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
        },
        max_retries: max_retries as usize,
        retry_timeout: S3_RETRY_WINDOW,
    }
}

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A local directory (a bare path or `file:///abs/path`).
    Local(PathBuf),
    /// `memory://`: gone when the process ends (tests).
    Memory,
    /// `s3://bucket/prefix`, configured by the standard `AWS_*` variables.
    S3 { bucket: String, prefix: String },
}

impl StoreLocation {
    /// Parses a store URL. A string without a scheme is a local path.
    pub fn parse(url: &str) -> Result<Self> {
        if url.is_empty() {
            return Err(Error::invalid("store", "must not be empty"));
        }
        if url == "memory://" || url == "memory:" {
            return Ok(StoreLocation::Memory);
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Error::invalid(
                    "store",
                    "s3:// URL needs a bucket: s3://bucket/prefix",
                ));
            }
            return Ok(StoreLocation::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        if let Some(rest) = url.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(Error::invalid(
                    "store",
                    "file:// URL needs an absolute path: file:///abs/path",
                ));
            }
            return Ok(StoreLocation::Local(PathBuf::from(rest)));
        }
        if url.contains("://") {
            return Err(Error::invalid(
                "store",
                format!("unsupported store URL {url:?}: use a path, file://, memory:// or s3://"),
            ));
        }
        Ok(StoreLocation::Local(PathBuf::from(url)))
    }

    /// The WAL flush interval that suits this kind of store: a few ms on local disk, tens of ms
    /// on S3, where every flush is a billed PUT.
    pub fn default_flush_interval_ms(&self) -> u64 {
        match self {
            StoreLocation::Local(_) => 2,
            StoreLocation::Memory => 1,
            StoreLocation::S3 { .. } => 50,
        }
    }

    /// The object store and the path prefix inside it. `max_retries` bounds the S3 client's
    /// retries of one request (the other stores have no client that retries).
    pub fn object_store(&self, max_retries: u32) -> Result<(Arc<dyn ObjectStore>, Path)> {
        match self {
            StoreLocation::Memory => Ok((Arc::new(InMemory::new()), Path::from(""))),
            StoreLocation::Local(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    Error::StoreUnavailable(format!("cannot create {}: {e}", dir.display()))
                })?;
                let fs = LocalFileSystem::new_with_prefix(dir).map_err(|e| {
                    Error::StoreUnavailable(format!("cannot use {}: {e}", dir.display()))
                })?;
                Ok((Arc::new(fs), Path::from("")))
            }
            StoreLocation::S3 { bucket, prefix } => {
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(s3_retry_config(max_retries));
                for (variable, key, limit) in [
                    ("AWS_TIMEOUT", ClientConfigKey::Timeout, S3_REQUEST_TIMEOUT),
                    (
                        "AWS_CONNECT_TIMEOUT",
                        ClientConfigKey::ConnectTimeout,
                        S3_CONNECT_TIMEOUT,
                    ),
                ] {
                    // Set through the key, not `with_client_options`, which would drop the
                    // client options read from the environment (AWS_ALLOW_HTTP, proxies).
                    if std::env::var_os(variable).is_none() {
                        builder = builder.with_config(
                            AmazonS3ConfigKey::Client(key),
                            format!("{}ms", limit.as_millis()),
                        );
                    }
                }
                let s3 = builder
                    .build()
                    .map_err(|e| Error::StoreUnavailable(format!("s3 store: {e}")))?;
                Ok((Arc::new(s3), Path::from(prefix.as_str())))
            }
        }
    }
}

/// Storage settings of `silo serve` (each a flag and a `SILO_*` variable).
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// SlateDB WAL flush interval: the floor of an acknowledged write's latency.
    pub flush_interval: Duration,
    /// Object-store retries per call before a call fails (an outage then surfaces as
    /// UNAVAILABLE instead of a hang). Applied by exactly one layer: the S3 client on S3
    /// (`StoreLocation::object_store`), SlateDB's retrying wrapper on the other stores.
    pub max_retries: u32,
    /// Block cache and metadata cache sizes (in-memory, per shard).
    pub block_cache_bytes: u64,
    pub meta_cache_bytes: u64,
    /// Garbage collection of obsolete WAL, manifest and SST files.
    pub gc_interval: Duration,
    pub gc_min_age: Duration,
}

/// Everything needed to open (and reopen, after an outage) one shard's SlateDB.
#[derive(Clone)]
pub struct ShardStore {
    object_store: Arc<dyn ObjectStore>,
    path: Path,
    local: bool,
    eager_flush: bool,
    /// Retries of SlateDB's own wrapper: none where the client below already retries (S3),
    /// since the two layers would multiply (every SlateDB retry re-running all client retries).
    slatedb_max_retries: u32,
    settings: StoreSettings,
}

impl ShardStore {
    pub fn new(
        location: &StoreLocation,
        object_store: Arc<dyn ObjectStore>,
        root: &Path,
        shard: u32,
        settings: StoreSettings,
    ) -> Self {
        ShardStore {
            object_store,
            path: root.clone().join("shards").join(shard.to_string().as_str()),
            local: matches!(location, StoreLocation::Local(_)),
            eager_flush: !matches!(location, StoreLocation::S3 { .. }),
            slatedb_max_retries: match location {
                StoreLocation::S3 { .. } => 0,
                StoreLocation::Local(_) | StoreLocation::Memory => settings.max_retries,
            },
            settings,
        }
    }

    /// Whether to flush the WAL as soon as a write waits (local stores: a flush is a cheap
    /// file write) rather than only every flush interval (S3: a flush is a billed PUT).
    pub fn eager_flush(&self) -> bool {
        self.eager_flush
    }

    /// How often compaction looks for work: each look reads the manifest and `.compactions`,
    /// a billed GET each on S3, and nothing on a local disk.
    fn compaction_poll(&self) -> Duration {
        if self.local {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(1)
        }
    }

    fn slatedb_settings(&self) -> Settings {
        let s = &self.settings;
        let gc_dir = GarbageCollectorDirectoryOptions {
            interval: Some(s.gc_interval),
            min_age: s.gc_min_age,
            dry_run: false,
        };
        Settings {
            flush_interval: Some(s.flush_interval),
            // Sized for a small machine: a 16 MiB memtable, at most 64 MiB not yet in L0.
            l0_sst_size_bytes: 16 << 20,
            max_unflushed_bytes: 64 << 20,
            // Writes stall at this many L0 SSTs until compaction catches up (SlateDB: 8).
            l0_max_ssts: 16,
            compactor_options: Some(compactor_options(self.compaction_poll())),
            object_store_max_retries: Some(self.slatedb_max_retries),
            garbage_collector_options: Some(GarbageCollectorOptions {
                manifest_options: Some(gc_dir),
                wal_options: Some(gc_dir),
                compacted_options: Some(gc_dir),
                compactions_options: Some(gc_dir),
                // A local directory cannot do the conditional overwrites boundary files need
                // (SlateDB documents turning them off for LocalFileSystem).
                boundary_files_enabled: !self.local,
                object_store_max_retries: Some(self.slatedb_max_retries),
                ..GarbageCollectorOptions::default()
            }),
            ..Settings::default()
        }
    }

    /// Opens the shard's SlateDB; a newer opener fences any older writer of the same path.
    pub async fn open(&self) -> Result<Db> {
        let cache = SplitCache::new()
            .with_block_cache(Some(Arc::new(MokaCache::new_with_opts(MokaCacheOptions {
                max_capacity: self.settings.block_cache_bytes,
                time_to_live: None,
                time_to_idle: None,
            }))))
            .with_meta_cache(Some(Arc::new(MokaCache::new_with_opts(MokaCacheOptions {
                max_capacity: self.settings.meta_cache_bytes,
                time_to_live: None,
                time_to_idle: None,
            }))))
            .build();
        Db::builder(self.path.clone(), self.object_store.clone())
            .with_settings(self.slatedb_settings())
            .with_db_cache(Arc::new(cache), 0)
            .with_filter_policies(vec![filter::policy()])
            .build()
            .await
            .map_err(|e| {
                Error::StoreUnavailable(format!("cannot open the store at {}: {e}", self.path))
            })
    }
}

/// Compaction sized for a small broker. Its memory is mostly read-ahead: each input SST
/// iterator prefetches `bytes_to_fetch` × `max_fetch_tasks`, in every subcompaction of every
/// running compaction. SlateDB's defaults (4 compactions × 4 subcompactions × 8 MiB per input)
/// took a 10M-job backlog's broker to 1.7 GB; two compactions without subcompactions, each
/// input prefetching one 2 MiB read, held it under 0.4 GB at 20k jobs/s burn-down (one
/// compaction: 18k jobs/s).
///
/// `poll` is how soon compaction notices new L0 SSTs and starts on them (SlateDB: 5 s for the
/// scheduler plus 5 s for its worker): writes stall at `l0_max_ssts` until it has, so a 5 s
/// poll stalled a batched enqueue for up to 8 s with the CPU idle.
fn compactor_options(poll: Duration) -> CompactorOptions {
    CompactorOptions {
        poll_interval: poll,
        max_concurrent_compactions: 2,
        worker: Some(CompactionWorkerOptions {
            compactions_poll_interval: poll,
            max_concurrent_compactions: 2,
            max_subcompactions: 1,
            max_sst_size: 64 << 20,
            max_fetch_tasks: 1,
            ..CompactionWorkerOptions::default()
        }),
        ..CompactorOptions::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_scheme() {
        assert_eq!(
            StoreLocation::parse("./d").unwrap(),
            StoreLocation::Local("./d".into())
        );
        assert_eq!(
            StoreLocation::parse("file:///a/b").unwrap(),
            StoreLocation::Local("/a/b".into())
        );
        assert_eq!(
            StoreLocation::parse("memory://").unwrap(),
            StoreLocation::Memory
        );
        assert_eq!(
            StoreLocation::parse("s3://b/p/q/").unwrap(),
            StoreLocation::S3 {
                bucket: "b".into(),
                prefix: "p/q".into()
            }
        );
        assert!(StoreLocation::parse("gs://x").is_err());
        assert!(StoreLocation::parse("file://rel").is_err());
        assert!(StoreLocation::parse("s3:///p").is_err());
    }

    fn slatedb_retries(location: &StoreLocation) -> (Option<u32>, Option<u32>) {
        let settings = StoreSettings {
            flush_interval: Duration::from_millis(50),
            max_retries: 3,
            block_cache_bytes: 1 << 20,
            meta_cache_bytes: 1 << 18,
            gc_interval: Duration::from_secs(60),
            gc_min_age: Duration::from_secs(300),
        };
        let store = ShardStore::new(
            location,
            Arc::new(InMemory::new()),
            &Path::from(""),
            0,
            settings,
        );
        let s = store.slatedb_settings();
        let gc = s
            .garbage_collector_options
            .map(|g| g.object_store_max_retries);
        (s.object_store_max_retries, gc.flatten())
    }

    #[test]
    fn retries_are_applied_by_one_layer() {
        // S3: the client retries; SlateDB's wrapper must not multiply its attempts.
        let s3 = StoreLocation::S3 {
            bucket: "b".into(),
            prefix: String::new(),
        };
        assert_eq!(slatedb_retries(&s3), (Some(0), Some(0)));
        assert_eq!(s3_retry_config(3).max_retries, 3);
        // Elsewhere no client retries below SlateDB: its wrapper does.
        assert_eq!(slatedb_retries(&StoreLocation::Memory), (Some(3), Some(3)));
        let local = StoreLocation::Local("/tmp/x".into());
        assert_eq!(slatedb_retries(&local), (Some(3), Some(3)));
    }
}
