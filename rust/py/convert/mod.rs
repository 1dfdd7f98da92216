//! Typed Python values <-> the wire's prost messages, for the typed API that `silo.Broker`
//! (embedded) and `silo.Client` (remote) share (python/silo/api.py).
//!
//! Why here and not in Python: betterproto needs 12–200 µs to encode or decode one message
//! (docs/architecture.md#the-wire-path); reading a dataclass's attributes into a prost message
//! and building the reply's dataclasses from Rust costs a few µs. The embedded broker runs the
//! encoded request through `Broker::call_raw` (the one RPC table, rust/rpc.rs) and decodes the
//! reply when the completion queue settles the call, on the loop thread; the remote client
//! encodes and decodes around its gRPC call with `encode_request` / `decode_reply`.

mod reply;
mod request;
mod stream;

use pyo3::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use pyo3::types::{PyBytes, PyString};

use crate::error::Error;
use crate::rpc::Rpc;

use super::errors::to_py;

pub(crate) use reply::decode_reply;
pub(crate) use request::encode;
pub(crate) use stream::{decode_frames, encode_frames};

/// The `silo.errors.InvalidArgument` of a bad argument.
fn invalid(py: Python<'_>, error: Error) -> PyErr {
    to_py(py, error)
}

/// The interned Python string of a field name, made once per name and thread. Looked up by the
/// address and length of the `&'static str` (no string comparison, no lock): this runs for every
/// field of every message, so a lookup by content (a map under a mutex) cost more than the
/// conversion itself in a 1,000-job `enqueue_many`.
pub(super) fn interned<'py>(py: Python<'py>, field: &'static str) -> Bound<'py, PyString> {
    thread_local! {
        static NAMES: RefCell<InternedNames> = RefCell::new(HashMap::default());
    }
    NAMES.with(|names| {
        names
            .borrow_mut()
            .entry((field.as_ptr() as usize, field.len()))
            .or_insert_with(|| PyString::intern(py, field).unbind())
            .bind(py)
            .clone()
    })
}

/// The interned names of one thread, by the (address, length) of their `&'static str`.
type InternedNames = HashMap<(usize, usize), Py<PyString>, BuildHasherDefault<AddressHasher>>;

/// Hashes the (address, length) keys of `interned`: addresses of distinct names differ in their
/// low bits already, so mixing them once is enough.
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0.rotate_left(5) ^ n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// The RPC of a method name; ValueError for a name not in the table.
pub(super) fn rpc_named(name: &str) -> PyResult<Rpc> {
    Rpc::from_name(name)
        .ok_or_else(|| pyo3::exceptions::PyValueError::new_err(format!("no RPC named {name:?}")))
}

/// The encoded request of the unary RPC `rpc` from its typed arguments: a dict of the
/// request's fields (the keyword arguments of the `silo.Api` method) or a `silo.types` value.
/// Raises InvalidArgument naming a field of the wrong type or out of its wire range.
#[pyfunction]
pub(super) fn encode_request<'py>(
    py: Python<'py>,
    rpc: &str,
    args: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let bytes = encode(rpc_named(rpc)?, args)?;
    Ok(PyBytes::new(py, &bytes))
}

/// The typed value (python/silo/types.py) of the unary RPC `rpc`'s encoded reply.
#[pyfunction(name = "decode_reply")]
pub(super) fn decode_reply_of<'py>(
    py: Python<'py>,
    rpc: &str,
    data: &[u8],
) -> PyResult<Bound<'py, PyAny>> {
    decode_reply(py, rpc_named(rpc)?, data)
}
