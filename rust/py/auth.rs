//! `silo._native.Principal`: a verified token's name, tenants and roles, built once per entry of
//! the auth file (python/silo/server/auth.py) and passed with each call it makes.

use std::sync::Arc;

use pyo3::prelude::*;

use super::errors::to_py;
use crate::auth::{Caller, Principal};
use crate::rpc::Rpc;

/// A verified token (see python/silo/_native.pyi).
#[pyclass(name = "Principal", module = "silo._native", frozen)]
pub(super) struct PyPrincipal {
    pub(super) inner: Arc<Principal>,
}

#[pymethods]
impl PyPrincipal {
    /// InvalidArgument naming `tenants[i]` or `roles[i]` for a bad pattern or an unknown role.
    #[new]
    fn new(py: Python<'_>, name: &str, tenants: Vec<String>, roles: Vec<String>) -> PyResult<Self> {
        let inner = Principal::new(name, &tenants, &roles).map_err(|e| to_py(py, e))?;
        Ok(PyPrincipal {
            inner: Arc::new(inner),
        })
    }

    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    #[getter]
    fn tenants(&self) -> Vec<String> {
        self.inner.patterns().to_vec()
    }

    #[getter]
    fn roles(&self) -> Vec<&'static str> {
        self.inner.roles().iter().map(|r| r.name()).collect()
    }

    /// Whether the token may act on `tenant`.
    fn allows_tenant(&self, tenant: &str) -> bool {
        self.inner.scope().allows(tenant)
    }

    /// Whether the token's roles let it make the RPC named `rpc` (ValueError for an unknown
    /// name).
    fn may_call(&self, rpc: &str) -> PyResult<bool> {
        let rpc = Rpc::from_name(rpc).ok_or_else(|| {
            pyo3::exceptions::PyValueError::new_err(format!("no RPC named {rpc:?}"))
        })?;
        Ok(self.inner.may(rpc))
    }

    fn __repr__(&self) -> String {
        format!(
            "Principal(name={:?}, tenants={:?}, roles={:?})",
            self.inner.name(),
            self.inner.patterns(),
            self.roles()
        )
    }
}

/// The caller of a call made with `principal` (None: trusted, no checks).
pub(super) fn caller(principal: Option<&PyPrincipal>) -> Caller {
    principal.map_or(Caller::Trusted, |p| Caller::Token(p.inner.clone()))
}
