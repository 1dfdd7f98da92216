"""The values of Silo's public Python API: frozen dataclasses and enums, never protobuf messages.

`silo.Broker` (embedded) and `silo.Client` (remote) take and return these, so a program does not
change when it moves from one to the other. Field names are those of the wire contract
(docs/api.md); times are Unix milliseconds in fields ending in `_ms`, with a `datetime` (aware,
UTC) property of the same name without the suffix where a user reads them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

__all__ = [
    "TERMINAL",
    "Attempt",
    "AttemptStatus",
    "BulkResult",
    "CatchUp",
    "Cluster",
    "ConcurrencyLimit",
    "EnqueueResult",
    "Enqueued",
    "HeartbeatResult",
    "Job",
    "JobFilter",
    "JobPage",
    "JobStatus",
    "NewJob",
    "Node",
    "Overlap",
    "QueueStats",
    "RateLimit",
    "Report",
    "ReportResult",
    "RetryPolicy",
    "Schedule",
    "SchedulePage",
    "Task",
    "TaskFailure",
    "from_ms",
    "to_ms",
]


def from_ms(ms: int) -> datetime | None:
    """A Unix-ms time as an aware UTC datetime; None for 0 (unset)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC) if ms else None


def to_ms(when: datetime) -> int:
    """An aware datetime as Unix ms (a naive one is taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


class JobStatus(enum.IntEnum):
    """A job's state (numbers as on the wire, `JOB_STATUS_<NAME>`)."""

    UNSPECIFIED = 0
    SCHEDULED = 1  # start time or retry backoff in the future
    PENDING = 2  # due: waiting for a worker, a concurrency slot or a rate-limit token
    RUNNING = 3
    SUCCEEDED = 4
    FAILED = 5
    CANCELLED = 6

    @property
    def terminal(self) -> bool:
        """SUCCEEDED, FAILED and CANCELLED: the job will not run again unless restarted."""
        return self in TERMINAL


TERMINAL: Final = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


class AttemptStatus(enum.IntEnum):
    """An attempt's state (`ATTEMPT_STATUS_<NAME>` on the wire)."""

    UNSPECIFIED = 0
    RUNNING = 1
    SUCCEEDED = 2
    FAILED = 3
    CANCELLED = 4


class Overlap(enum.IntEnum):
    """What a schedule does with a tick while its previous job is not terminal."""

    ALLOW = 0
    SKIP = 1


class CatchUp(enum.IntEnum):
    """What a schedule does with the ticks it missed while no broker ran."""

    ONE = 0  # one job, carrying the latest missed tick's time
    NONE = 1
    ALL = 2  # one job per missed tick, at most 1,000


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How a failed job is retried. `schedule_ms`, when given, lists explicit delays (retry n
    waits `schedule_ms[min(n-1, len-1)]`); otherwise retry n waits
    `min(initial_backoff_ms * backoff_multiplier**(n-1), max_backoff_ms)`, ±20 % with jitter."""

    max_retries: int = 0
    schedule_ms: tuple[int, ...] = ()
    initial_backoff_ms: int = 1000
    backoff_multiplier: float = 2.0
    max_backoff_ms: int = 3_600_000
    jitter: bool = False


@dataclass(frozen=True, slots=True)
class ConcurrencyLimit:
    """At most `max_concurrency` jobs naming `key` (in one tenant) run at once."""

    key: str
    max_concurrency: int


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket per (tenant, key): at most `limit` starts per `period_ms` in the long
    run, bursts up to `limit`."""

    key: str
    limit: int
    period_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFailure:
    """Why an attempt failed: `code` (e.g. an exception's qualified class name, or
    `lease_expired` / `expired`), a message, opaque data (a traceback), and whether the worker
    forbade a retry."""

    code: str
    message: str = ""
    data: bytes = b""
    non_retryable: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class NewJob:
    """One job to enqueue (an entry of `enqueue_many`); the fields of `Api.enqueue`."""

    id: str = ""
    tenant: str = ""
    queue: str = ""
    priority: int = 0
    start_at_ms: int = 0
    retry_policy: RetryPolicy | None = None
    concurrency_limits: tuple[ConcurrencyLimit, ...] = ()
    payload: bytes = b""
    metadata: Mapping[str, str] = field(default_factory=dict)
    rate_limits: tuple[RateLimit, ...] = ()
    unique_key: str = ""
    unique_for_ms: int = 0
    retention_ms: int = 0
    lease_ms: int = 0
    expire_at_ms: int = 0


class Enqueued(str):
    """The id of an enqueued job (a `str`), with `deduplicated`: True when a job already held
    the request's `unique_key` and this id is that job's (nothing new was stored)."""

    __slots__ = ("deduplicated",)
    deduplicated: bool

    def __new__(cls, id: str, deduplicated: bool = False) -> Enqueued:
        self = super().__new__(cls, id)
        self.deduplicated = deduplicated
        return self

    @property
    def id(self) -> str:
        """The job id as a plain `str`."""
        return str(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class EnqueueResult:
    """One entry's outcome in `enqueue_many`: `code` is a gRPC status code (0 = OK)."""

    id: str
    code: int = 0
    message: str = ""
    deduplicated: bool = False

    @property
    def ok(self) -> bool:
        return self.code == 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One attempt (task) of a job, as kept for operators."""

    attempt: int
    task_id: str
    worker_id: str
    status: AttemptStatus
    started_at_ms: int
    finished_at_ms: int = 0
    result: bytes = b""
    failure: TaskFailure | None = None
    heartbeat_cursor: bytes = b""

    @property
    def started_at(self) -> datetime | None:
        return from_ms(self.started_at_ms)

    @property
    def finished_at(self) -> datetime | None:
        return from_ms(self.finished_at_ms)


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """A job as the broker reports it (GetJob, ListJobs, WaitJob, operator calls)."""

    id: str
    tenant: str
    queue: str
    priority: int
    status: JobStatus
    payload: bytes = b""
    metadata: Mapping[str, str] = field(default_factory=dict)
    retry_policy: RetryPolicy | None = None
    concurrency_limits: tuple[ConcurrencyLimit, ...] = ()
    rate_limits: tuple[RateLimit, ...] = ()
    created_at_ms: int = 0
    start_at_ms: int = 0
    updated_at_ms: int = 0
    next_attempt_at_ms: int = 0
    attempt_count: int = 0
    result: bytes = b""
    last_failure: TaskFailure | None = None
    attempts: tuple[Attempt, ...] = ()
    waiting_on_keys: tuple[str, ...] = ()
    waiting_on_rate_limit: str = ""
    unique_key: str = ""
    unique_for_ms: int = 0
    retention_ms: int = 0
    lease_ms: int = 0
    expire_at_ms: int = 0
    retained_until_ms: int = 0

    @property
    def terminal(self) -> bool:
        return self.status.terminal

    @property
    def created_at(self) -> datetime | None:
        return from_ms(self.created_at_ms)

    @property
    def start_at(self) -> datetime | None:
        return from_ms(self.start_at_ms)

    @property
    def updated_at(self) -> datetime | None:
        return from_ms(self.updated_at_ms)

    @property
    def next_attempt_at(self) -> datetime | None:
        return from_ms(self.next_attempt_at_ms)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobPage:
    """One page of ListJobs: newest first; `next_page_token` is empty on the last page (a page
    may be short, even empty, and still have a token: keep paging until it is empty)."""

    jobs: tuple[Job, ...]
    next_page_token: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class JobFilter:
    """The filters of ListJobs (ANDed); also what a bulk action applies to."""

    tenant: str = ""
    queue: str = ""
    statuses: tuple[JobStatus, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    created_after_ms: int = 0
    created_before_ms: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class BulkResult:
    """What one bulk call did: jobs examined that match, jobs changed, and whether to call
    again (`more`)."""

    matched: int
    changed: int
    more: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Task:
    """One attempt of a job, leased to one worker."""

    task_id: str
    job_id: str
    tenant: str
    queue: str
    priority: int
    payload: bytes
    metadata: Mapping[str, str]
    attempt: int
    heartbeat_interval_ms: int
    lease_expires_at_ms: int
    heartbeat_cursor: bytes = b""
    is_last_attempt: bool = False

    @property
    def lease_expires_at(self) -> datetime | None:
        return from_ms(self.lease_expires_at_ms)


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatResult:
    """A heartbeat's answer: whether the job was cancelled (abort the work), and the lease's
    new expiry."""

    cancelled: bool
    lease_expires_at_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """One task outcome for `report_task_outcomes`: exactly one of `result`, `failure`,
    `cancelled=True`."""

    task_id: str
    worker_id: str
    result: bytes | None = None
    failure: TaskFailure | None = None
    cancelled: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportResult:
    """One report's outcome in `report_task_outcomes`: a gRPC status code (0 = OK)."""

    code: int = 0
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.code == 0


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueStats:
    """A queue of one tenant: jobs per status (every JobStatus name but UNSPECIFIED) and
    whether it is paused."""

    name: str
    counts: Mapping[str, int]
    paused: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """A cron or interval schedule: each tick enqueues one job `sched:<name>:<tick ms>` from
    the template `job` (its id must be empty). Exactly one of `cron` and `interval_ms`."""

    name: str
    job: NewJob
    tenant: str = ""
    cron: str = ""
    interval_ms: int = 0
    timezone: str = ""
    paused: bool = False
    overlap: Overlap = Overlap.ALLOW
    catch_up: CatchUp = CatchUp.ONE
    next_run_at_ms: int = 0  # output
    last_job_id: str = ""  # output

    @property
    def next_run_at(self) -> datetime | None:
        return from_ms(self.next_run_at_ms)


@dataclass(frozen=True, slots=True, kw_only=True)
class SchedulePage:
    schedules: tuple[Schedule, ...]
    next_page_token: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    """A broker of a cluster: its id, the address clients reach it on, the shards it owns."""

    id: str
    address: str
    shards: tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Cluster:
    """The cluster map: nodes, the store's shard count, and how a tenant maps to a shard."""

    nodes: tuple[Node, ...]
    shard_count: int
    hash: str
