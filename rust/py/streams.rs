//! The native side of one stream RPC (`silo._native.Stream`): the gRPC server pushes each raw
//! request into it and awaits the encoded answers in batches; the pump (`Broker::serve_stream`)
//! runs on tokio. Answers reach the loop through the completion queue like any call's, one
//! settle per batch (docs/architecture.md#the-stream-path).

use std::sync::Arc;

use bytes::Bytes;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use tokio::task::AbortHandle;

use super::completions::{spawn, PyCall, Queue, Reply};
use super::{guarded, PyBroker};
use crate::rpc::Rpc;
use crate::stream_io::{Next, StreamIo};

/// One stream RPC in flight (see python/silo/_native.pyi).
#[pyclass(name = "Stream", module = "silo._native", frozen)]
pub(super) struct PyStream {
    io: Arc<StreamIo>,
    queue: Arc<Queue>,
    pump: AbortHandle,
}

#[pymethods]
impl PyStream {
    /// Starts serving the streaming RPC named `rpc` ("EnqueueStream" or "WorkerSession") on
    /// `broker`. ValueError for a name that is not a streaming RPC of the table.
    #[new]
    fn new(broker: &PyBroker, rpc: &str) -> PyResult<Self> {
        let rpc = Rpc::from_name(rpc)
            .filter(|r| r.streaming())
            .ok_or_else(|| PyValueError::new_err(format!("no streaming RPC named {rpc:?}")))?;
        let inner = broker.inner.clone();
        let io = Arc::new(inner.stream_io());
        let pump_io = io.clone();
        let pump = pyo3_async_runtimes::tokio::get_runtime().spawn(async move {
            let end = guarded(inner.serve_stream(rpc, &pump_io)).await;
            pump_io.finish(end);
        });
        Ok(PyStream {
            io,
            queue: broker.queue.clone(),
            pump: pump.abort_handle(),
        })
    }

    /// Queues one request read from the stream; False once the window is full (await `room`
    /// before reading more).
    fn push(&self, request: &[u8]) -> bool {
        self.io.push(Bytes::copy_from_slice(request))
    }

    /// Settles `future` (with None) once the window has room again, or the stream is over.
    fn room(&self, future: Py<PyAny>) -> PyCall {
        let io = self.io.clone();
        spawn(&self.queue, future, async move {
            io.room().await;
            Ok(Reply::Nothing)
        })
    }

    /// No more requests (the client closed its side, or the server stops reading).
    fn close(&self) {
        self.io.close_input();
    }

    /// Settles `future` with the next answers (a non-empty list of encoded messages, in
    /// order), with [] once the stream ended OK, or with the error that ends it.
    fn next(&self, future: Py<PyAny>) -> PyCall {
        let io = self.io.clone();
        spawn(&self.queue, future, async move {
            match io.next().await {
                Next::Answers(answers) => Ok(Reply::Messages(answers)),
                Next::End(Ok(())) => Ok(Reply::Messages(Vec::new())),
                Next::End(Err(e)) => Err(e),
            }
        })
    }

    /// The stream is going away (the client left or the server gave up on it): stop the pump.
    /// A change the shard already began still completes; a session's tasks stay leased.
    fn abort(&self) {
        self.io.cancel();
        self.pump.abort();
    }
}
