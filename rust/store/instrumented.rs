//! An object-store wrapper that counts requests by kind (for cost figures) and, when enabled,
//! injects faults: errors, added latency, or stalls (for outage tests). Off by default.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use tokio::sync::watch;

/// What the wrapper does to each call.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    /// Fraction (0..=1) of calls that fail at once.
    pub error_rate: f64,
    /// Latency added to every call.
    pub added_latency_ms: u64,
    /// Calls wait until this is cleared.
    pub stall: bool,
}

/// Request counters, one per kind.
#[derive(Debug, Default)]
pub struct RequestCounts {
    put: AtomicU64,
    get: AtomicU64,
    head: AtomicU64,
    list: AtomicU64,
    delete: AtomicU64,
    copy: AtomicU64,
}

impl RequestCounts {
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        [
            ("put", &self.put),
            ("get", &self.get),
            ("head", &self.head),
            ("list", &self.list),
            ("delete", &self.delete),
            ("copy", &self.copy),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.load(Ordering::Relaxed)))
        .collect()
    }
}

/// The switch a test (through the Admin service) uses to inject faults.
#[derive(Debug, Clone)]
pub struct FaultSwitch {
    tx: Arc<watch::Sender<Faults>>,
}

impl FaultSwitch {
    pub fn set(&self, faults: Faults) {
        self.tx.send_replace(faults);
    }
}

/// Counts every request and applies the current faults before passing it on.
pub struct InstrumentedStore {
    inner: Arc<dyn ObjectStore>,
    counts: Arc<RequestCounts>,
    faults: watch::Receiver<Faults>,
}

impl InstrumentedStore {
    pub fn wrap(inner: Arc<dyn ObjectStore>) -> (Arc<Self>, Arc<RequestCounts>, FaultSwitch) {
        let (tx, rx) = watch::channel(Faults::default());
        let counts = Arc::new(RequestCounts::default());
        let store = Arc::new(InstrumentedStore {
            inner,
            counts: counts.clone(),
            faults: rx,
        });
        (store, counts, FaultSwitch { tx: Arc::new(tx) })
    }

    /// Waits out a stall and added latency; fails the call at the configured rate.
    async fn gate(&self) -> Result<()> {
        let mut rx = self.faults.clone();
        let faults = loop {
            let f = *rx.borrow_and_update();
            if !f.stall {
                break f;
            }
            if rx.changed().await.is_err() {
                break f;
            }
        };
        if faults.added_latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(faults.added_latency_ms)).await;
        }
        if faults.error_rate > 0.0 && rand::random::<f64>() < faults.error_rate {
            return Err(object_store::Error::Generic {
                store: "fault-injection",
                source: "injected object-store fault".into(),
            });
        }
        Ok(())
    }

    fn count(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl fmt::Display for InstrumentedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instrumented({})", self.inner)
    }
}

impl fmt::Debug for InstrumentedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstrumentedStore({:?})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for InstrumentedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.count(&self.counts.put);
        self.gate().await?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.count(&self.counts.put);
        self.gate().await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if options.head {
            self.count(&self.counts.head);
        } else {
            self.count(&self.counts.get);
        }
        self.gate().await?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.counts
            .get
            .fetch_add(ranges.len() as u64, Ordering::Relaxed);
        self.gate().await?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let counts = self.counts.clone();
        let counted = locations
            .inspect(move |_| {
                counts.delete.fetch_add(1, Ordering::Relaxed);
            })
            .boxed();
        self.inner.delete_stream(counted)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.count(&self.counts.list);
        let faults = *self.faults.borrow();
        if faults.stall || faults.error_rate >= 1.0 {
            return stream::once(async {
                Err(object_store::Error::Generic {
                    store: "fault-injection",
                    source: "injected object-store fault".into(),
                })
            })
            .boxed();
        }
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.count(&self.counts.list);
        self.gate().await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.count(&self.counts.copy);
        self.gate().await?;
        self.inner.copy_opts(from, to, options).await
    }
}
