//! The client side of the stream RPCs (python/silo/streams.py, docs/api.md#streams): requests
//! encoded and framed many at a time for one send, and a received chunk of framed answers
//! decoded in one call.
//!
//! Why: a message on a stream is small, so what the client pays per message in Python (one
//! `send_message` through grpclib and h2, one parse) was most of a worker's cost per task on a
//! WorkerSession, several times that of the batched unary calls (BENCHMARKS.md, "The Python
//! API"). Framed in bulk here, a batch of outcomes is one send, and a chunk of pushed tasks and
//! answers is one call.

use prost::Message;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::error::Error;
use crate::proto::wire;

use super::invalid;
use super::reply::{decode, enqueue_result, server_message, types};
use super::request::{new_job, report, Fields};

/// Appends `message` framed as on a gRPC stream: a 0 byte (not compressed), its length as a
/// big-endian u32, then the message.
fn frame(out: &mut Vec<u8>, message: &impl Message) {
    let len = message.encoded_len();
    out.reserve(len + 5);
    out.push(0);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    message.encode(out).expect("a Vec grows to fit the message");
}

/// The requests `items` of one kind, each encoded and framed, in one `bytes`:
/// - "enqueue": EnqueueStream requests from `silo.NewJob` values or `Api.enqueue` keyword
///   dicts;
/// - "outcome": WorkerSession outcome messages from `silo.Report` values;
/// - "heartbeat": WorkerSession heartbeat messages from dicts or objects with `task_id` and
///   `cursor` (the session's worker id is implied).
///
/// Raises InvalidArgument naming a field of the wrong type, ValueError for an unknown kind.
#[pyfunction]
pub(crate) fn encode_frames<'py>(
    py: Python<'py>,
    kind: &str,
    items: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    use wire::worker_message::Kind;
    enum Request {
        Enqueue,
        Outcome,
        Heartbeat,
    }
    let request = match kind {
        "enqueue" => Request::Enqueue,
        "outcome" => Request::Outcome,
        "heartbeat" => Request::Heartbeat,
        _ => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "no stream request kind {kind:?}"
            )))
        }
    };
    let mut out = Vec::new();
    for item in items.try_iter()? {
        let f = Fields::top(item?);
        match request {
            Request::Enqueue => frame(&mut out, &new_job(&f)?),
            Request::Outcome => frame(
                &mut out,
                &wire::WorkerMessage {
                    kind: Some(Kind::Outcome(report(&f)?)),
                },
            ),
            Request::Heartbeat => frame(
                &mut out,
                &wire::WorkerMessage {
                    kind: Some(Kind::Heartbeat(wire::HeartbeatTaskRequest {
                        task_id: f.string("task_id")?,
                        worker_id: String::new(),
                        cursor: f.bytes("cursor")?,
                    })),
                },
            ),
        }
    }
    Ok(PyBytes::new(py, &out))
}

/// The answers in `data`, a chunk of a stream's framed messages, and how many of its bytes they
/// took (a message cut at the end of the chunk is left for the next one). For "WorkerSession"
/// each answer is as `reply::server_message` says; for "EnqueueStream" a `silo.EnqueueResult`.
#[pyfunction]
pub(crate) fn decode_frames<'py>(
    py: Python<'py>,
    rpc: &str,
    data: &[u8],
) -> PyResult<(Bound<'py, PyList>, usize)> {
    let t = types(py)?;
    let session = match rpc {
        "WorkerSession" => true,
        "EnqueueStream" => false,
        _ => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "{rpc:?} has no stream answers"
            )))
        }
    };
    let answers = PyList::empty(py);
    let mut at = 0;
    while data.len() - at >= 5 {
        if data[at] != 0 {
            return Err(invalid(
                py,
                Error::Internal("a compressed stream message (compression is not used)".into()),
            ));
        }
        let len = u32::from_be_bytes([data[at + 1], data[at + 2], data[at + 3], data[at + 4]]);
        let end = at + 5 + len as usize;
        if end > data.len() {
            break;
        }
        let message = &data[at + 5..end];
        let answer = if session {
            server_message(py, t, &decode::<wire::ServerMessage>(py, message)?)?
        } else {
            enqueue_result(py, t, &decode::<wire::EnqueueResult>(py, message)?)?
        };
        answers.append(answer)?;
        at = end;
    }
    Ok((answers, at))
}
