//! Opening a store: parses the store URL into an object store and opens a shard's SlateDB.

pub mod instrumented;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStore;
use slatedb::config::{
    CompactionWorkerOptions, CompactorOptions, GarbageCollectorDirectoryOptions,
    GarbageCollectorOptions, Settings,
};
use slatedb::db_cache::moka::{MokaCache, MokaCacheOptions};
use slatedb::db_cache::SplitCache;
use slatedb::Db;

use crate::error::{Error, Result};

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

    /// The object store and the path prefix inside it.
    pub fn object_store(&self) -> Result<(Arc<dyn ObjectStore>, Path)> {
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
                let s3 = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
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
    /// Object-store retries per call before SlateDB gives up (an outage then surfaces as
    /// UNAVAILABLE instead of a hang).
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
            settings,
        }
    }

    /// Whether to flush the WAL as soon as a write waits (local stores: a flush is a cheap
    /// file write) rather than only every flush interval (S3: a flush is a billed PUT).
    pub fn eager_flush(&self) -> bool {
        self.eager_flush
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
            compactor_options: Some(compactor_options()),
            object_store_max_retries: Some(s.max_retries),
            garbage_collector_options: Some(GarbageCollectorOptions {
                manifest_options: Some(gc_dir),
                wal_options: Some(gc_dir),
                compacted_options: Some(gc_dir),
                compactions_options: Some(gc_dir),
                // A local directory cannot do the conditional overwrites boundary files need
                // (SlateDB documents turning them off for LocalFileSystem).
                boundary_files_enabled: !self.local,
                object_store_max_retries: Some(s.max_retries),
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
            .build()
            .await
            .map_err(|e| {
                Error::StoreUnavailable(format!("cannot open the store at {}: {e}", self.path))
            })
    }
}

/// One compaction at a time, writing 64 MiB SSTs: SlateDB's defaults (4 concurrent
/// compactions of 4 subcompactions each, 256 MiB output SSTs, 8 MiB read-ahead per input SST)
/// buffer more than a 500 MB broker may hold; a 10M-job backlog took the broker to 1.7 GB.
fn compactor_options() -> CompactorOptions {
    CompactorOptions {
        max_concurrent_compactions: 1,
        worker: Some(CompactionWorkerOptions {
            max_concurrent_compactions: 1,
            max_subcompactions: 1,
            max_sst_size: 64 << 20,
            max_fetch_tasks: 2,
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
}
