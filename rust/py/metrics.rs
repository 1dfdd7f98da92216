//! The core's metrics snapshot as the Python dict `silo._native.Broker.metrics()` returns
//! (its shape is in python/silo/_native.pyi); python/silo/server/metrics.py exports it.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::metrics::{HistogramSnapshot, MetricsSnapshot, TaskOutcome, JOB_STATUSES};

pub(super) fn to_dict<'py>(py: Python<'py>, m: &MetricsSnapshot) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    let mut queues = Vec::with_capacity(m.queues.len());
    for (name, c) in &m.queues {
        let finished = PyDict::new(py);
        for outcome in TaskOutcome::ALL {
            finished.set_item(outcome.name(), c.finished[outcome.slot()])?;
        }
        queues.push((name.as_str(), c.enqueued, c.leased, finished));
    }
    out.set_item("queues", queues)?;
    out.set_item("commit_batch_size", histogram(py, &m.commit_batch_size)?)?;
    out.set_item(
        "commit_duration_seconds",
        histogram(py, &m.commit_duration)?,
    )?;
    let jobs = PyDict::new(py);
    for (status, n) in JOB_STATUSES.iter().zip(m.jobs) {
        jobs.set_item(status, n)?;
    }
    out.set_item("jobs", jobs)?;
    let requests = PyDict::new(py);
    for (op, n) in &m.object_store_requests {
        requests.set_item(op, n)?;
    }
    out.set_item("object_store_requests", requests)?;
    Ok(out)
}

fn histogram<'py>(py: Python<'py>, h: &HistogramSnapshot) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("buckets", h.buckets.clone())?;
    out.set_item("count", h.count)?;
    out.set_item("sum", h.sum)?;
    Ok(out)
}
