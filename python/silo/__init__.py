"""Silo: a durable background-job broker on object storage. Public Python API (docs/python.md).

One typed asyncio API, the same in process and across the network:

    broker = await silo.open("./silo-data")        # embedded: the broker runs in this process
    client = await silo.connect("127.0.0.1:7070")  # remote: a `silo serve`

Both satisfy `silo.Api`; tasks (`@silo.task`) are enqueued through either and run by
`silo.Worker`. `silo.sync` is the blocking facade, `silo.testing` the pytest plugin.
"""

from __future__ import annotations

# The blocking facade and the test helpers, as `silo.sync` and `silo.testing` (after the rest:
# they build on it).
from silo import errors, sync, testing, types
from silo.api import Api
from silo.broker import Broker, open
from silo.client import Client, connect
from silo.config import ConfigError, ServeConfig
from silo.errors import (
    AlreadyExists,
    FailedPrecondition,
    InternalError,
    InvalidArgument,
    JobAlreadyExists,
    JobNotFound,
    JobTerminal,
    LeaseNotHeld,
    NotFound,
    OutcomeAlreadyRecorded,
    PermissionDenied,
    ResourceExhausted,
    SiloError,
    StoreUnavailable,
    TaskNotFound,
    Unauthenticated,
    Unavailable,
    Unimplemented,
)
from silo.serializers import JSON, PICKLE, JsonSerializer, PickleSerializer, Serializer
from silo.tasks import (
    JobCancelled,
    JobFailed,
    NonRetryable,
    TaskContext,
    TaskDef,
    TaskHandle,
    task,
)
from silo.tls import tls_context
from silo.types import (
    Attempt,
    AttemptStatus,
    BulkResult,
    CatchUp,
    Cluster,
    ConcurrencyLimit,
    Enqueued,
    EnqueueResult,
    HeartbeatResult,
    Job,
    JobFilter,
    JobPage,
    JobStatus,
    NewJob,
    Node,
    Overlap,
    QueueStats,
    RateLimit,
    Report,
    ReportResult,
    RetryPolicy,
    Schedule,
    SchedulePage,
    Task,
    TaskFailure,
)
from silo.worker import Worker

__all__ = [
    "JSON",
    "PICKLE",
    "AlreadyExists",
    "Api",
    "Attempt",
    "AttemptStatus",
    "Broker",
    "BulkResult",
    "CatchUp",
    "Client",
    "Cluster",
    "ConcurrencyLimit",
    "ConfigError",
    "EnqueueResult",
    "Enqueued",
    "FailedPrecondition",
    "HeartbeatResult",
    "InternalError",
    "InvalidArgument",
    "Job",
    "JobAlreadyExists",
    "JobCancelled",
    "JobFailed",
    "JobFilter",
    "JobNotFound",
    "JobPage",
    "JobStatus",
    "JobTerminal",
    "JsonSerializer",
    "LeaseNotHeld",
    "NewJob",
    "Node",
    "NonRetryable",
    "NotFound",
    "OutcomeAlreadyRecorded",
    "Overlap",
    "PermissionDenied",
    "PickleSerializer",
    "QueueStats",
    "RateLimit",
    "Report",
    "ResourceExhausted",
    "ReportResult",
    "RetryPolicy",
    "Schedule",
    "SchedulePage",
    "Serializer",
    "ServeConfig",
    "SiloError",
    "StoreUnavailable",
    "Task",
    "TaskContext",
    "TaskDef",
    "TaskFailure",
    "TaskHandle",
    "TaskNotFound",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Worker",
    "connect",
    "errors",
    "open",
    "sync",
    "task",
    "testing",
    "tls_context",
    "types",
]
