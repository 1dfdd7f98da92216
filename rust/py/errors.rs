//! Rust errors to Python exceptions: the class is the one the status table names
//! (`Error::status`, docs/api.md#status-codes).

use pyo3::prelude::*;
use pyo3::types::PyType;

use crate::error::Error;

/// Builds the Python exception for an error. The message is the full one: the server decides
/// what a client may see (INTERNAL detail goes to its log).
pub fn to_py(py: Python<'_>, e: Error) -> PyErr {
    let class = py
        .import("silo.errors")
        .and_then(|m| m.getattr(e.status().class))
        .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from));
    match class {
        Ok(class) => PyErr::from_type(class, e.to_string()),
        Err(import_error) => import_error,
    }
}

/// The status table as rows of (silo.errors class name, gRPC code), one per error variant, for
/// tests/test_status_table.py to check against python/silo/status.py and silo.errors.
#[pyfunction]
pub fn status_table() -> Vec<(&'static str, i32)> {
    Error::samples()
        .iter()
        .map(|e| (e.status().class, e.status().code as i32))
        .collect()
}
