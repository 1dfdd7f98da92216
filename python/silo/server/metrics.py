"""The Prometheus metrics of one broker (docs/operations.md#metrics), in a registry of its own.

Two sources: the Rust core counts jobs, tasks and commits in the shard actor and hands over a
snapshot (`silo._native.Broker.metrics()`), which `CoreCollector` turns into metric families at
each scrape; and the gRPC server observes each call's duration in
`silo_rpc_duration_seconds` (service.py calls `observe_rpc`). Nothing here decodes a request.
Labels are bounded: no tenant label, at most 200 queue labels (the core folds the rest into
`queue="_other"`), methods from the RPC table, codes from the status enum.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "BrokerMetrics", "CoreCollector"]

#: The Content-Type of the text exposition format.
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

#: Bucket bounds of `silo_rpc_duration_seconds` (a long-poll may last 60 s, WaitJob 300 s).
RPC_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    60.0,
    300.0,
)

Snapshot = Callable[[], Mapping[str, Any]]


def _histogram(name: str, doc: str, h: Mapping[str, Any]) -> HistogramMetricFamily:
    buckets = [(repr(float(le)), float(n)) for le, n in h["buckets"]]
    buckets.append(("+Inf", float(h["count"])))
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=float(h["sum"]))


class CoreCollector(Collector):
    """Metric families of the Rust core's snapshot, built at each scrape (a custom collector:
    the counters live in the core, not in prometheus-client objects)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def describe(self) -> list[Metric]:
        # Registered without a describe pass: the families depend on the snapshot.
        return []

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        enqueued = CounterMetricFamily(
            "silo_jobs_enqueued", "Jobs stored by Enqueue and schedules.", labels=["queue"]
        )
        leased = CounterMetricFamily(
            "silo_tasks_leased", "Tasks (attempts) leased to workers.", labels=["queue"]
        )
        finished = CounterMetricFamily(
            "silo_tasks_finished",
            "Tasks (attempts) ended, by outcome (succeeded, failed, cancelled, lease_expired).",
            labels=["queue", "outcome"],
        )
        for queue, n_enqueued, n_leased, by_outcome in snap["queues"]:
            enqueued.add_metric([queue], n_enqueued)
            leased.add_metric([queue], n_leased)
            for outcome, n in by_outcome.items():
                finished.add_metric([queue, outcome], n)
        yield enqueued
        yield leased
        yield finished
        jobs = GaugeMetricFamily(
            "silo_jobs", "Jobs stored, by status (counts kept incrementally).", labels=["status"]
        )
        for status, n in snap["jobs"].items():
            jobs.add_metric([status], n)
        yield jobs
        yield _histogram(
            "silo_commit_batch_size",
            "Calls answered by one durable write (group commit).",
            snap["commit_batch_size"],
        )
        yield _histogram(
            "silo_commit_duration_seconds",
            "Time from a write to its durability.",
            snap["commit_duration_seconds"],
        )
        requests = CounterMetricFamily(
            "silo_object_store_requests", "Object-store requests, by kind.", labels=["op"]
        )
        for op, n in snap["object_store_requests"].items():
            requests.add_metric([op], n)
        yield requests


class BrokerMetrics:
    """The registry of one broker: the core's collector and the RPC histogram.

    `observe_rpc(method, code, seconds)` is the gRPC server's hook (one dict lookup and one
    histogram observation per call); `exposition()` renders the text format. With `counting`
    false (`--metrics off`) the gRPC servers time nothing (`rpc_observer()` is None) and
    /metrics answers 404.
    """

    def __init__(self, snapshot: Snapshot, *, counting: bool = True) -> None:
        self.counting = counting
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(CoreCollector(snapshot))
        self._rpc = Histogram(
            "silo_rpc_duration_seconds",
            "Duration of gRPC calls (a stream's from its opening to its end), by method and "
            "status code.",
            ["method", "code"],
            buckets=RPC_BUCKETS,
            registry=self.registry,
        )
        # Children by (method, code): `labels()` takes a lock and validates on every call.
        self._children: dict[tuple[str, str], Any] = {}

    def observe_rpc(self, method: str, code: str, seconds: float) -> None:
        """One call of `method` ended with status `code` after `seconds`."""
        child = self._children.get((method, code))
        if child is None:
            child = self._children[(method, code)] = self._rpc.labels(method, code)
        child.observe(seconds)

    def rpc_observer(self) -> Callable[[str, str, float], None] | None:
        """The hook a gRPC server calls after each call; None when nothing is counted."""
        return self.observe_rpc if self.counting else None

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format (CONTENT_TYPE)."""
        return generate_latest(self.registry)
