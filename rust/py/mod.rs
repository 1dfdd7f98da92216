//! The Python face of the core (module `silo._native`): thin wrappers that decode the request
//! bytes with prost, run the broker call on tokio, and encode the reply. Answers reach Python
//! through a completion queue (completions.rs), so tokio threads never take the GIL. The only
//! Rust that knows pyo3.

mod auth;
mod completions;
mod convert;
mod errors;
mod metrics;
mod streams;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Once};

use bytes::Bytes;
use futures::FutureExt;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::PyDict;

use crate::broker::{Broker, BrokerConfig, CallContext};
use crate::error::{Error, Result};
use crate::rpc::Rpc;
use completions::{spawn, PyCall, PyCompletions, Queue, Reply};

/// Runs a core future; a panic becomes an internal error instead of a crashed interpreter.
async fn guarded<T>(fut: impl Future<Output = Result<T>>) -> Result<T> {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(r) => r,
        Err(panic) => {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(Error::Internal(format!("panic: {detail}")))
        }
    }
}

/// A running broker over one store, answering through one completion queue (see
/// python/silo/_native.pyi).
#[pyclass(name = "Broker", module = "silo._native", frozen)]
struct PyBroker {
    inner: Arc<Broker>,
    queue: Arc<Queue>,
}

#[pymethods]
impl PyBroker {
    /// `settings`: every broker setting as one JSON object (python/silo/config.py).
    #[staticmethod]
    fn open(completions: &PyCompletions, future: Py<PyAny>, settings: &str) -> PyCall {
        init_logging();
        let config = BrokerConfig::from_json(settings);
        spawn(&completions.queue, future, async move {
            Ok(Reply::Broker(Box::new(Broker::open(config?).await?)))
        })
    }

    /// Serves the unary RPC named `rpc` (its method name, e.g. "Enqueue") from its encoded
    /// request, for `principal` (a verified token; None: trusted, no checks); the encoded reply
    /// settles `future`. `metadata` is the caller's (key, value) metadata, passed on if the
    /// call is forwarded to the node that owns its shard (which checks the token again).
    #[pyo3(signature = (future, rpc, request, principal=None, metadata=None))]
    fn call(
        &self,
        future: Py<PyAny>,
        rpc: &str,
        request: PyBackedBytes,
        principal: Option<&auth::PyPrincipal>,
        metadata: Option<Vec<(String, Vec<u8>)>>,
    ) -> PyResult<PyCall> {
        let rpc = Rpc::from_name(rpc)
            .ok_or_else(|| PyValueError::new_err(format!("no RPC named {rpc:?}")))?;
        // The request's bytes object itself, not a copy: a 64 MiB batch is not held twice
        // while it is served (docs/security.md#limits).
        let bytes = Bytes::from_owner(request);
        let broker = self.inner.clone();
        let ctx = metadata.map(CallContext::from_metadata).unwrap_or_default();
        let caller = auth::caller(principal);
        Ok(spawn(&self.queue, future, async move {
            Ok(Reply::Bytes(
                broker.call_raw_with(&caller, rpc, bytes, &ctx).await?,
            ))
        }))
    }

    /// Serves the unary RPC named `rpc` from its typed arguments (rust/py/convert/): a dict of
    /// the request's fields or a `silo.types` value. Bad arguments raise InvalidArgument here;
    /// the reply settles `future` as its `silo.types` value. `principal` as for `call`.
    #[pyo3(signature = (future, rpc, args, principal=None))]
    fn invoke(
        &self,
        future: Py<PyAny>,
        rpc: &str,
        args: &Bound<'_, PyAny>,
        principal: Option<&auth::PyPrincipal>,
    ) -> PyResult<PyCall> {
        let rpc = convert::rpc_named(rpc)?;
        let bytes = Bytes::from(convert::encode(rpc, args)?);
        let broker = self.inner.clone();
        let caller = auth::caller(principal);
        Ok(spawn(&self.queue, future, async move {
            Ok(Reply::Typed(
                rpc,
                broker.call_raw(&caller, rpc, bytes).await?,
            ))
        }))
    }

    /// Settles `future` once a newer broker has fenced this one off the store.
    fn wait_fenced(&self, future: Py<PyAny>) -> PyCall {
        let broker = self.inner.clone();
        spawn(&self.queue, future, async move {
            broker.fenced().await;
            Ok(Reply::Nothing)
        })
    }

    fn settings(&self) -> std::collections::BTreeMap<String, String> {
        self.inner.settings().clone()
    }

    /// Settles `future` once this node left its cluster (at once without a cluster).
    fn leave(&self, future: Py<PyAny>) -> PyCall {
        let broker = self.inner.clone();
        spawn(&self.queue, future, async move {
            broker.leave().await;
            Ok(Reply::Nothing)
        })
    }

    /// The core's counters and histograms for /metrics (python/silo/_native.pyi says the
    /// shape).
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        metrics::to_dict(py, &self.inner.metrics())
    }

    fn close(&self, future: Py<PyAny>) -> PyCall {
        let broker = self.inner.clone();
        spawn(&self.queue, future, async move {
            broker.close().await;
            Ok(Reply::Nothing)
        })
    }
}

/// Every RPC of the core's table (rust/rpc.rs): (service, method, streaming).
#[pyfunction]
fn rpcs() -> Vec<(&'static str, &'static str, bool)> {
    Rpc::ALL
        .iter()
        .map(|r| (r.service().name(), r.name(), r.streaming()))
        .collect()
}

/// Logs of the core go to stderr; the level comes from SILO_LOG_LEVEL (default "info").
fn init_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let level = std::env::var("SILO_LOG_LEVEL").unwrap_or_else(|_| "info".into());
        let filter = tracing_subscriber::EnvFilter::try_new(format!("warn,silo={level}"))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,silo=info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_target(false)
            .try_init();
    });
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    crate::allocator::return_freed_memory_soon();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<PyBroker>()?;
    m.add_class::<PyCompletions>()?;
    m.add_class::<PyCall>()?;
    m.add_class::<streams::PyStream>()?;
    m.add_class::<auth::PyPrincipal>()?;
    m.add_function(wrap_pyfunction!(errors::status_table, m)?)?;
    m.add_function(wrap_pyfunction!(rpcs, m)?)?;
    m.add_function(wrap_pyfunction!(convert::encode_request, m)?)?;
    m.add_function(wrap_pyfunction!(convert::decode_reply_of, m)?)?;
    m.add_function(wrap_pyfunction!(convert::encode_frames, m)?)?;
    m.add_function(wrap_pyfunction!(convert::decode_frames, m)?)?;
    Ok(())
}
