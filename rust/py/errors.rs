//! Rust errors to Python exceptions: one match, no wildcard, onto the classes of silo.errors.

use pyo3::prelude::*;
use pyo3::types::PyType;

use crate::error::Error;

/// The silo.errors class that stands for each error.
fn class_name(e: &Error) -> &'static str {
    match e {
        Error::InvalidArgument { .. } => "InvalidArgument",
        Error::JobNotFound => "JobNotFound",
        Error::TaskNotFound => "TaskNotFound",
        Error::JobAlreadyExists => "JobAlreadyExists",
        Error::OutcomeAlreadyRecorded => "OutcomeAlreadyRecorded",
        Error::JobTerminal(_) => "JobTerminal",
        Error::LeaseNotHeld(_) => "LeaseNotHeld",
        Error::FaultInjectionDisabled => "FaultInjectionDisabled",
        Error::Unimplemented(_) => "Unimplemented",
        Error::StoreUnavailable(_) => "StoreUnavailable",
        Error::Internal(_) => "InternalError",
    }
}

/// Builds the Python exception for an error. The message is the full one: the server decides
/// what a client may see (INTERNAL detail goes to its log).
pub fn to_py(py: Python<'_>, e: Error) -> PyErr {
    let class = py
        .import("silo.errors")
        .and_then(|m| m.getattr(class_name(&e)))
        .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from));
    match class {
        Ok(class) => PyErr::from_type(class, e.to_string()),
        Err(import_error) => import_error,
    }
}
