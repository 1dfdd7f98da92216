//! The native side of one stream RPC (`silo._native.Stream`): the gRPC server pushes each raw
//! request into it and awaits the encoded answers in batches; the pump (`Broker::serve_stream`)
//! runs on tokio. Answers reach the loop through the completion queue like any call's, one
//! settle per batch (docs/architecture.md#the-stream-path).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use tokio::task::AbortHandle;

use super::auth::PyPrincipal;
use super::completions::{settle, spawn, PyCall, Queue, Reply};
use super::{guarded, PyBroker};
use crate::broker::CallContext;
use crate::error::Result;
use crate::rpc::Rpc;
use crate::stream_io::{Next, StreamIo};

/// The future of a `next` call waiting for answers, and what settles it.
struct Waiting {
    io: Arc<StreamIo>,
    queue: Arc<Queue>,
    future: Mutex<Option<Py<PyAny>>>,
}

impl Waiting {
    /// Settles the waiting future if answers (or the end) are ready; else parks itself in the
    /// stream again. Runs on the pump's thread: moves the future, never takes the GIL.
    fn deliver(self: Arc<Self>) {
        let again = self.clone();
        if let Some(next) = self.io.next_or_park(Box::new(move || again.deliver())) {
            let future = self.future.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(future) = future {
                self.queue.push(future, reply(next));
            }
        }
    }
}

fn reply(next: Next) -> Result<Reply> {
    match next {
        Next::Answers(answers) => Ok(Reply::Bytes(framed(&answers))),
        Next::End(Ok(())) => Ok(Reply::Bytes(Vec::new())),
        Next::End(Err(e)) => Err(e),
    }
}

/// Messages as they go on the wire of a gRPC stream: each prefixed by a 0 byte (not
/// compressed) and its length (u32, big-endian).
fn framed(messages: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(messages.iter().map(|m| m.len() + 5).sum());
    for m in messages {
        out.push(0);
        out.extend_from_slice(&(m.len() as u32).to_be_bytes());
        out.extend_from_slice(m);
    }
    out
}

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
    /// `broker` for `principal` (None: trusted), with the stream's `metadata` (what requests
    /// forwarded to other nodes carry: the caller's token). ValueError for a name that is not
    /// a streaming RPC of the table.
    #[new]
    #[pyo3(signature = (broker, rpc, principal=None, metadata=None))]
    fn new(
        broker: &PyBroker,
        rpc: &str,
        principal: Option<&PyPrincipal>,
        metadata: Option<Vec<(String, Vec<u8>)>>,
    ) -> PyResult<Self> {
        let rpc = Rpc::from_name(rpc)
            .filter(|r| r.streaming())
            .ok_or_else(|| PyValueError::new_err(format!("no streaming RPC named {rpc:?}")))?;
        let inner = broker.inner.clone();
        let io = Arc::new(inner.stream_io());
        let pump_io = io.clone();
        let caller = super::auth::caller(principal);
        let ctx = metadata.map(CallContext::from_metadata).unwrap_or_default();
        let pump = pyo3_async_runtimes::tokio::get_runtime().spawn(async move {
            let end = guarded(inner.serve_stream(&caller, rpc, &pump_io, &ctx)).await;
            pump_io.finish(end);
        });
        Ok(PyStream {
            io,
            queue: broker.queue.clone(),
            pump: pump.abort_handle(),
        })
    }

    /// Queues one request read from the stream; False once the window is full (await `room`
    /// before reading more). The pump takes it at the next `wake`.
    fn push(&self, request: &[u8]) -> bool {
        self.io.push(Bytes::copy_from_slice(request))
    }

    /// Hands the requests pushed so far to the pump: call it once per event-loop iteration
    /// that pushed (one wakeup of a tokio thread for all of them).
    fn wake(&self) {
        self.io.wake();
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

    /// Settles `future` with the next answers as gRPC messages on the wire (each a 5-byte
    /// length prefix and the encoded message, in order), with b"" once the stream ended OK, or
    /// with the error that ends it. Answers already there settle it at once; otherwise the
    /// pump's thread queues it in the completion queue when they come.
    fn next(&self, py: Python<'_>, future: Py<PyAny>) -> PyResult<()> {
        let waiting = Arc::new(Waiting {
            io: self.io.clone(),
            queue: self.queue.clone(),
            future: Mutex::new(Some(future)),
        });
        let parked = waiting.clone();
        match self.io.next_or_park(Box::new(move || parked.deliver())) {
            Some(next) => {
                let future = waiting
                    .future
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                match future {
                    Some(future) => settle(&self.queue, future.bind(py), reply(next)),
                    None => Ok(()),
                }
            }
            None => Ok(()),
        }
    }

    /// The stream is going away (the client left or the server gave up on it): stop the pump.
    /// A change the shard already began still completes; a session's tasks stay leased.
    fn abort(&self) {
        self.io.cancel();
        self.pump.abort();
    }
}
