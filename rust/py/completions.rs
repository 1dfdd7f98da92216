//! Answers from tokio to one asyncio event loop without the GIL: a finished call queues its
//! asyncio future with its outcome, and the loop thread settles every queued future in one go.
//!
//! Why: settling each future from the tokio thread that finished it (what pyo3-async-runtimes'
//! `future_into_py` does) takes the GIL there and wakes the loop with `call_soon_threadsafe`
//! once per call; with the loop busy, tokio threads then spend their time waiting for the GIL
//! (BENCHMARKS.md, "Where the time goes"). Here a tokio thread only locks a mutex and, when the
//! queue was empty, signals a file descriptor the loop watches (`loop.add_reader`); many answers
//! then cost one wakeup and one drain on the loop thread.

use std::future::Future;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tokio::task::AbortHandle;

use super::convert::decode_reply;
use super::errors::to_py;
use super::{guarded, PyBroker};
use crate::broker::Broker;
use crate::error::{Error, Result};
use crate::rpc::Rpc;

/// What a finished call answers, before it becomes a Python object on the loop thread.
pub(super) enum Reply {
    /// An encoded protobuf reply, answered as `bytes`.
    Bytes(Vec<u8>),
    /// Nothing to answer: `None`.
    Nothing,
    /// A newly opened broker, answered as a `silo._native.Broker` bound to this queue.
    Broker(Box<Broker>),
    /// The encoded reply of a typed call, answered as the `silo.types` value of `rpc`'s reply
    /// (decoded on the loop thread, rust/py/convert/).
    Typed(Rpc, Vec<u8>),
}

/// A file descriptor that one side makes readable (`wake`) and the other watches and empties
/// (`reset`): an eventfd on Linux (the cheapest to signal), a socket pair elsewhere.
struct Wakeup {
    #[cfg(target_os = "linux")]
    event: std::fs::File,
    #[cfg(not(target_os = "linux"))]
    pair: (
        std::os::unix::net::UnixStream,
        std::os::unix::net::UnixStream,
    ),
}

impl Wakeup {
    #[cfg(target_os = "linux")]
    fn new() -> io::Result<Self> {
        use std::os::fd::FromRawFd;
        // SAFETY: eventfd takes no pointers; a non-negative result is a new descriptor that
        // nothing else owns, so the File may own and close it.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: see above.
        let event = unsafe { std::fs::File::from_raw_fd(fd) };
        Ok(Wakeup { event })
    }

    #[cfg(not(target_os = "linux"))]
    fn new() -> io::Result<Self> {
        let pair = std::os::unix::net::UnixStream::pair()?;
        pair.0.set_nonblocking(true)?;
        pair.1.set_nonblocking(true)?;
        Ok(Wakeup { pair })
    }

    fn fd(&self) -> RawFd {
        #[cfg(target_os = "linux")]
        return self.event.as_raw_fd();
        #[cfg(not(target_os = "linux"))]
        return self.pair.1.as_raw_fd();
    }

    /// Make the descriptor readable. Failure is only ever "already full of wakeups" (the
    /// watcher is already woken), so it is ignored.
    fn wake(&self) {
        #[cfg(target_os = "linux")]
        let _ = (&self.event).write(&1u64.to_ne_bytes());
        #[cfg(not(target_os = "linux"))]
        let _ = (&self.pair.0).write(&[1]);
    }

    /// Make the descriptor unreadable again (one read empties an eventfd; bytes a socket read
    /// leaves behind only cost a spurious wakeup).
    fn reset(&self) {
        let mut buf = [0u8; 256];
        #[cfg(target_os = "linux")]
        let mut source = &self.event;
        #[cfg(not(target_os = "linux"))]
        let mut source = &self.pair.1;
        while let Err(e) = source.read(&mut buf) {
            if e.kind() != ErrorKind::Interrupted {
                break;
            }
        }
    }
}

/// The queue of finished calls and the descriptor that wakes the loop when it fills.
pub(super) struct Queue {
    /// Finished calls, oldest first. Written by tokio threads, taken by the loop thread.
    done: Mutex<Vec<(Py<PyAny>, Result<Reply>)>>,
    /// Signalled when `done` goes from empty to non-empty; watched by the loop and reset by
    /// `drain` before it takes `done`.
    wakeup: Wakeup,
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
    pub(super) fn push(&self, future: Py<PyAny>, outcome: Result<Reply>) {
        let was_empty = {
            let mut done = self.lock();
            let was_empty = done.is_empty();
            done.push((future, outcome));
            was_empty
        };
        if was_empty {
            self.wakeup.wake();
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
        Ok(PyCompletions {
            queue: Arc::new(Queue {
                done: Mutex::new(Vec::new()),
                wakeup: Wakeup::new()?,
            }),
        })
    }

    /// The file descriptor that becomes readable when finished calls are queued.
    fn fileno(&self) -> i32 {
        self.queue.wakeup.fd()
    }

    /// Settle the future of every finished call (skipping those already done, i.e.
    /// cancelled); returns how many calls were taken off the queue.
    fn drain(&self, py: Python<'_>) -> usize {
        // Reset the wakeup before taking the queue: a call queued after the take then wakes
        // the loop again.
        self.queue.wakeup.reset();
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
/// A reply that cannot be made into its Python value settles the future with that error.
pub(super) fn settle(
    queue: &Arc<Queue>,
    future: &Bound<'_, PyAny>,
    outcome: Result<Reply>,
) -> PyResult<()> {
    let py = future.py();
    if future.call_method0(intern!(py, "done"))?.is_truthy()? {
        return Ok(());
    }
    let value = match outcome {
        Ok(reply) => match reply {
            Reply::Bytes(bytes) => Ok(PyBytes::new(py, &bytes).into_any()),
            Reply::Nothing => Ok(py.None().into_bound(py)),
            Reply::Broker(broker) => Bound::new(
                py,
                PyBroker {
                    inner: Arc::from(broker),
                    queue: queue.clone(),
                },
            )
            .map(Bound::into_any),
            Reply::Typed(rpc, bytes) => decode_reply(py, rpc, &bytes),
        },
        Err(error) => Err(to_py(py, error)),
    };
    match value {
        Ok(value) => future.call_method1(intern!(py, "set_result"), (value,))?,
        Err(error) => future.call_method1(intern!(py, "set_exception"), (error.into_value(py),))?,
    };
    Ok(())
}
