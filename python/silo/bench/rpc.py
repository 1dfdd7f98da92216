"""The bench's gRPC client: grpcio (C core) with Google protobuf (upb) messages.

Why not silo.client: the load generator must never be the bottleneck, so it encodes with the C
protobuf runtime (well under 1 µs per message) and, where a request never changes, sends
pre-encoded bytes (the `*_raw` callables take and return `bytes`).
"""

from __future__ import annotations

import os
from typing import Any, Final, NamedTuple

import grpc

from silo.bench._pb import admin_pb2 as apb
from silo.bench._pb import silo_pb2 as pb
from silo.config import MAX_MESSAGE_BYTES

__all__ = ["TLS_CA_ENV", "AdminStats", "SiloClient", "apb", "pb"]

#: The CA file the load generators trust when the broker serves TLS (`silo bench --tls-ca`),
#: passed to their processes in the environment like SILO_TOKEN.
TLS_CA_ENV: Final = "SILO_BENCH_TLS_CA"

_SILO: Final = "/silo.v1.Silo/"
_ADMIN: Final = "/silo.admin.v1.Admin/"
#: The broker's message bound (64 MiB; a bigger message fails with RESOURCE_EXHAUSTED,
#: docs/api.md#status-codes), both ways: a LeaseTasks answer can be large too.
_MAX_MESSAGE: Final = MAX_MESSAGE_BYTES
CHANNEL_OPTIONS: Final = [
    ("grpc.max_send_message_length", _MAX_MESSAGE),
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    # Each SiloClient gets its own connection even when several target the same address.
    ("grpc.use_local_subchannel_pool", 1),
]


def _ser(message: Any) -> bytes:
    return bytes(message.SerializeToString())


class SiloClient:
    """One channel (one HTTP/2 connection) to a broker, with a callable per RPC.

    Each callable is a grpcio `UnaryUnaryMultiCallable`: `client.enqueue(request, timeout=..)`
    returns the decoded reply or raises `grpc.RpcError`; the `*_stream_raw`/`*_session_raw`
    ones are `StreamStreamMultiCallable`s over encoded messages. Thread-safe: threads may share
    a client (each stream call is a stream of its own on the client's one connection).
    """

    def __init__(self, address: str) -> None:
        self.address = address
        ca = os.environ.get(TLS_CA_ENV)
        if ca:
            with open(ca, "rb") as f:
                credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
            self.channel = grpc.secure_channel(address, credentials, options=CHANNEL_OPTIONS)
        else:
            self.channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        token = os.environ.get("SILO_TOKEN")
        if token:
            # Every call carries the token (a broker with --auth-file checks it; one without
            # ignores it, so both are measured with the same client cost).
            self.channel = grpc.intercept_channel(self.channel, _Bearer(token))
        u = self.channel.unary_unary

        def call(name: str, reply: Any) -> Any:
            return u(_SILO + name, request_serializer=_ser, response_deserializer=reply.FromString)

        def raw(name: str) -> Any:
            return u(_SILO + name, request_serializer=None, response_deserializer=None)

        self.enqueue = call("Enqueue", pb.EnqueueResponse)
        self.enqueue_raw = raw("Enqueue")
        self.enqueue_batch = call("EnqueueBatch", pb.EnqueueBatchResponse)
        self.enqueue_batch_raw = raw("EnqueueBatch")
        self.lease_tasks = call("LeaseTasks", pb.LeaseTasksResponse)
        self.lease_tasks_raw = raw("LeaseTasks")
        self.report_task_outcome = call("ReportTaskOutcome", pb.ReportTaskOutcomeResponse)
        self.report_task_outcomes = call("ReportTaskOutcomes", pb.ReportTaskOutcomesResponse)
        self.get_job = call("GetJob", pb.Job)
        self.put_schedule = call("PutSchedule", pb.Schedule)
        self.get_schedule = call("GetSchedule", pb.Schedule)
        # The streams, raw: an iterator of encoded requests in, encoded answers out.
        stream = self.channel.stream_stream
        self.enqueue_stream_raw = stream(
            _SILO + "EnqueueStream", request_serializer=None, response_deserializer=None
        )
        self.worker_session_raw = stream(
            _SILO + "WorkerSession", request_serializer=None, response_deserializer=None
        )
        self.list_jobs = call("ListJobs", pb.ListJobsResponse)
        self.list_queues = call("ListQueues", pb.ListQueuesResponse)
        self.get_stats = u(
            _ADMIN + "GetStats",
            request_serializer=_ser,
            response_deserializer=apb.Stats.FromString,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the connection is up; raises grpc.FutureTimeoutError after `timeout`."""
        grpc.channel_ready_future(self.channel).result(timeout=timeout)

    def stats(self, timeout: float = 10.0) -> AdminStats:
        """Admin/GetStats; `AdminStats.available` is False when the broker does not serve it."""
        try:
            reply = self.get_stats(apb.GetStatsRequest(), timeout=timeout)
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.NOT_FOUND):
                return AdminStats(available=False)
            raise
        return AdminStats(
            available=True,
            object_store_requests=dict(reply.object_store_requests),
            settings=dict(reply.settings),
            rss_bytes=int(reply.rss_bytes) or None,
            gauges=dict(reply.gauges),
        )

    def close(self) -> None:
        self.channel.close()


class _CallDetails(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):  # type: ignore[misc]
    """Adds `authorization: Bearer <token>` to every call (docs/security.md)."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, d: Any) -> _CallDetails:
        return _CallDetails(
            d.method,
            d.timeout,
            [*(d.metadata or ()), self._header],
            d.credentials,
            d.wait_for_ready,
            d.compression,
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


class AdminStats:
    """The answer of Admin/GetStats, or `available=False` when the broker lacks the service."""

    def __init__(
        self,
        *,
        available: bool,
        object_store_requests: dict[str, int] | None = None,
        settings: dict[str, str] | None = None,
        rss_bytes: int | None = None,
        gauges: dict[str, int] | None = None,
    ) -> None:
        self.available = available
        self.object_store_requests = object_store_requests or {}
        self.settings = settings or {}
        self.rss_bytes = rss_bytes
        self.gauges = gauges or {}
