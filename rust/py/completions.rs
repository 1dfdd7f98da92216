//! Answers from tokio to one asyncio event loop without the GIL: a finished call queues its
//! asyncio future with its outcome, and the loop thread settles every queued future in one go.
//!
//! Why: settling each future from the tokio thread that finished it (what pyo3-async-runtimes'
//! `future_into_py` does) takes the GIL there and wakes the loop with `call_soon_threadsafe`
//! once per call; with the loop busy, tokio threads then spend their time waiting for the GIL
//! (BENCHMARKS.md, "Where the time goes"). Here a tokio thread only locks a mutex and, when the
//! queue was empty, writes one byte to a socket the loop watches (`loop.add_reader`); many
//! answers then cost one wakeup and one drain on the loop thread.

use std::future::Future;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tokio::task::AbortHandle;

use super::errors::to_py;
use super::{guarded, PyBroker};
use crate::broker::Broker;
use crate::error::{Error, Result};

/// What a finished call answers, before it becomes a Python object on the loop thread.
pub(super) enum Reply {
    /// An encoded protobuf reply, answered as `bytes`.
    Bytes(Vec<u8>),
    /// Nothing to answer: `None`.
    Nothing,
    /// A newly opened broker, answered as a `silo._native.Broker` bound to this queue.
    Broker(Broker),
}

/// The queue of finished calls and the socket pair that wakes the loop when it fills.
pub(super) struct Queue {
    /// Finished calls, oldest first. Written by tokio threads, taken by the loop thread.
    done: Mutex<Vec<(Py<PyAny>, Result<Reply>)>>,
    /// Written (one byte) when `done` goes from empty to non-empty.
    wake_tx: UnixStream,
    /// Watched by the loop; read (emptied) by `drain` before it takes `done`.
    wake_rx: UnixStream,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Vec<(Py<PyAny>, Result<Reply>)>> {
        // Nothing panics while holding the lock; should it ever, the Vec is still consistent.
        self.done
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queue `future`'s outcome; wake the loop if the queue was empty. Never takes the GIL:
    /// moving a `Py` touches no reference count.
    fn push(&self, future: Py<PyAny>, outcome: Result<Reply>) {
        let was_empty = {
            let mut done = self.lock();
            let was_empty = done.is_empty();
            done.push((future, outcome));
            was_empty
        };
        if was_empty {
            // WouldBlock means the socket is full of unread wakeups: the loop is already woken.
            let _ = (&self.wake_tx).write(&[1]);
        }
    }
}

/// A call in flight. Its future is answered exactly once: by `finish`, or, if the task is dropped
/// first (aborted, or its runtime shut down), by `Drop` with an internal error.
struct Pending {
    future: Option<Py<PyAny>>,
    queue: Arc<Queue>,
}

impl Pending {
    fn finish(mut self, outcome: Result<Reply>) {
        if let Some(future) = self.future.take() {
            self.queue.push(future, outcome);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(future) = self.future.take() {
            let dropped = Error::Internal("the call was dropped before it finished".into());
            self.queue.push(future, Err(dropped));
        }
    }
}

/// Runs `work` on the tokio runtime; its outcome settles `future` through `queue`. A panic in
/// `work` becomes an internal error.
pub(super) fn spawn(
    queue: &Arc<Queue>,
    future: Py<PyAny>,
    work: impl Future<Output = Result<Reply>> + Send + 'static,
) -> PyCall {
    let pending = Pending {
        future: Some(future),
        queue: queue.clone(),
    };
    let task = pyo3_async_runtimes::tokio::get_runtime().spawn(async move {
        let outcome = guarded(work).await;
        pending.finish(outcome);
    });
    PyCall {
        task: task.abort_handle(),
    }
}

/// One call in flight (see python/silo/_native.pyi).
#[pyclass(name = "Call", module = "silo._native", frozen)]
pub(super) struct PyCall {
    task: AbortHandle,
}

#[pymethods]
impl PyCall {
    /// Stop the call if it is still running (its future must already be cancelled: it is never
    /// settled). Dropping the work releases what it waited on, e.g. a parked LeaseTasks.
    fn abort(&self) {
        self.task.abort();
    }
}

/// The completion queue of one event loop (see python/silo/_native.pyi).
#[pyclass(name = "Completions", module = "silo._native", frozen)]
pub(super) struct PyCompletions {
    pub(super) queue: Arc<Queue>,
}

#[pymethods]
impl PyCompletions {
    #[new]
    fn new() -> PyResult<Self> {
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        wake_tx.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        Ok(PyCompletions {
            queue: Arc::new(Queue {
                done: Mutex::new(Vec::new()),
                wake_tx,
                wake_rx,
            }),
        })
    }

    /// The file descriptor that becomes readable when finished calls are queued.
    fn fileno(&self) -> i32 {
        self.queue.wake_rx.as_raw_fd()
    }

    /// Settle the future of every finished call (skipping those already done, i.e.
    /// cancelled); returns how many calls were taken off the queue.
    fn drain(&self, py: Python<'_>) -> usize {
        // Empty the socket before taking the queue: a call queued after the take then wakes
        // the loop again. One read is enough: bytes left unread only cause a spurious wakeup.
        let mut buf = [0u8; 256];
        loop {
            match (&self.queue.wake_rx).read(&mut buf) {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                _ => break,
            }
        }
        let done = std::mem::take(&mut *self.queue.lock());
        let count = done.len();
        for (future, outcome) in done {
            let future = future.bind(py);
            if let Err(e) = settle(&self.queue, future, outcome) {
                e.write_unraisable(py, Some(future));
            }
        }
        count
    }
}

/// Set `future`'s result or exception, unless it is already done (cancelled while in flight).
fn settle(queue: &Arc<Queue>, future: &Bound<'_, PyAny>, outcome: Result<Reply>) -> PyResult<()> {
    let py = future.py();
    if future.call_method0(intern!(py, "done"))?.is_truthy()? {
        return Ok(());
    }
    match outcome {
        Ok(reply) => {
            let value = match reply {
                Reply::Bytes(bytes) => PyBytes::new(py, &bytes).into_any(),
                Reply::Nothing => py.None().into_bound(py),
                Reply::Broker(broker) => Bound::new(
                    py,
                    PyBroker {
                        inner: Arc::new(broker),
                        queue: queue.clone(),
                    },
                )?
                .into_any(),
            };
            future.call_method1(intern!(py, "set_result"), (value,))?;
        }
        Err(error) => {
            let exception = to_py(py, error).into_value(py);
            future.call_method1(intern!(py, "set_exception"), (exception,))?;
        }
    }
    Ok(())
}
