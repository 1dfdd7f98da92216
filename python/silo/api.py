"""`silo.Api`: the one protocol that the embedded `silo.Broker` and the remote `silo.Client`
both satisfy, so code written against it runs in-process or across the network unchanged.

Every method is keyword-only and named after its RPC (docs/api.md); values are those of
`silo.types`; failures raise the classes of `silo.errors` (e.g. `JobNotFound` for an unknown
id, `InvalidArgument` naming the bad field).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from silo.types import (
    BulkResult,
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

__all__ = ["Api"]


@runtime_checkable
class Api(Protocol):
    """What a Silo broker offers a Python program, embedded or remote."""

    # Producers

    async def enqueue(
        self,
        *,
        id: str = "",
        tenant: str = "",
        queue: str = "",
        priority: int = 0,
        start_at_ms: int = 0,
        start_at: datetime | None = None,
        retry_policy: RetryPolicy | None = None,
        concurrency_limits: Sequence[ConcurrencyLimit] = (),
        payload: bytes = b"",
        metadata: Mapping[str, str] | None = None,
        rate_limits: Sequence[RateLimit] = (),
        unique_key: str = "",
        unique_for_ms: int = 0,
        retention_ms: int = 0,
        lease_ms: int = 0,
        expire_at_ms: int = 0,
    ) -> Enqueued:
        """Enqueue one job durably; its id (`.deduplicated` when a job already held
        `unique_key`). `start_at` is `start_at_ms` as a datetime (give one of the two).
        Raises InvalidArgument, JobAlreadyExists."""
        ...

    async def enqueue_many(self, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        """Enqueue up to 1,000 jobs durably together; one result per job, in order (each
        succeeds or fails alone). Raises InvalidArgument only for a batch bad as a whole."""
        ...

    async def cancel(self, *, id: str, tenant: str = "") -> None:
        """Cancel a job (a running one: its worker learns it on heartbeat).
        Raises JobNotFound, JobTerminal."""
        ...

    async def get_job(self, *, id: str, tenant: str = "", include_attempts: bool = False) -> Job:
        """The job's current state, with its attempts if asked. Raises JobNotFound."""
        ...

    async def wait_job(self, *, id: str, tenant: str = "", timeout_ms: int = 300_000) -> Job:
        """The job as soon as it is terminal, or as it is when `timeout_ms` (at most 300,000)
        passes. Raises JobNotFound."""
        ...

    # Operators

    def list_jobs(
        self,
        *,
        tenant: str = "",
        queue: str = "",
        statuses: Sequence[JobStatus] = (),
        metadata: Mapping[str, str] | None = None,
        created_after_ms: int = 0,
        created_before_ms: int = 0,
        page_size: int = 100,
    ) -> AsyncIterator[Job]:
        """Every job matching the filters (ANDed), newest first, fetched page by page:
        `async for job in api.list_jobs(...)`."""
        ...

    async def list_jobs_page(
        self,
        *,
        tenant: str = "",
        queue: str = "",
        statuses: Sequence[JobStatus] = (),
        metadata: Mapping[str, str] | None = None,
        created_after_ms: int = 0,
        created_before_ms: int = 0,
        page_size: int = 100,
        page_token: str = "",
    ) -> JobPage:
        """One page of ListJobs. Raises InvalidArgument (e.g. a malformed page token)."""
        ...

    async def restart_job(self, *, id: str, tenant: str = "") -> Job:
        """Run a FAILED or CANCELLED job again with a fresh retry budget.
        Raises JobNotFound, FailedPrecondition."""
        ...

    async def expedite_job(self, *, id: str, tenant: str = "") -> Job:
        """Make a SCHEDULED job due now. Raises JobNotFound, FailedPrecondition."""
        ...

    async def delete_job(self, *, id: str, tenant: str = "") -> None:
        """Remove a terminal job with its attempts. Raises JobNotFound, FailedPrecondition."""
        ...

    async def list_queues(self, *, tenant: str = "") -> list[QueueStats]:
        """The tenant's queues with their job counts per status."""
        ...

    async def cancel_jobs(self, *, filter: JobFilter, limit: int = 10_000) -> BulkResult:
        """Cancel up to `limit` jobs matching `filter`; call again while `more`."""
        ...

    async def restart_jobs(self, *, filter: JobFilter, limit: int = 10_000) -> BulkResult:
        """Restart up to `limit` FAILED/CANCELLED jobs matching `filter`; again while `more`."""
        ...

    async def delete_jobs(self, *, filter: JobFilter, limit: int = 10_000) -> BulkResult:
        """Delete up to `limit` terminal jobs matching `filter`; call again while `more`."""
        ...

    # Flow control

    async def pause_queue(self, *, queue: str, tenant: str = "") -> QueueStats:
        """Stop leasing from a queue (durable, idempotent); it keeps accepting jobs."""
        ...

    async def resume_queue(self, *, queue: str, tenant: str = "") -> QueueStats:
        """Lease from a paused queue again, in the order its jobs had."""
        ...

    async def put_schedule(self, schedule: Schedule) -> Schedule:
        """Create or replace a schedule by (tenant, name). Raises InvalidArgument naming the
        field (bad cron, unknown timezone, both or neither of cron and interval_ms)."""
        ...

    async def get_schedule(self, *, name: str, tenant: str = "") -> Schedule:
        """A schedule with its next run. Raises NotFound."""
        ...

    async def delete_schedule(self, *, name: str, tenant: str = "") -> None:
        """Remove a schedule (jobs it enqueued stay). Raises NotFound."""
        ...

    def list_schedules(self, *, tenant: str = "", page_size: int = 100) -> AsyncIterator[Schedule]:
        """Every schedule of the tenant, by name: `async for s in api.list_schedules()`."""
        ...

    async def list_schedules_page(
        self, *, tenant: str = "", page_size: int = 100, page_token: str = ""
    ) -> SchedulePage:
        """One page of ListSchedules."""
        ...

    # Workers

    async def lease_tasks(
        self,
        *,
        worker_id: str,
        max_tasks: int = 1,
        queues: Sequence[str] = (),
        wait_ms: int = 0,
    ) -> list[Task]:
        """Lease up to `max_tasks` due tasks of `queues` (default ["default"]), waiting up to
        `wait_ms` (at most 60,000) for the first one."""
        ...

    async def heartbeat_task(
        self, *, task_id: str, worker_id: str, cursor: bytes = b""
    ) -> HeartbeatResult:
        """Extend a lease; store `cursor` durably when non-empty.
        Raises TaskNotFound, LeaseNotHeld (the worker must abort the task)."""
        ...

    async def report_task_outcome(
        self,
        *,
        task_id: str,
        worker_id: str,
        result: bytes | None = None,
        failure: TaskFailure | None = None,
        cancelled: bool = False,
    ) -> None:
        """Record a task's outcome: exactly one of `result` (b"" is a success), `failure`,
        `cancelled=True`. Raises InvalidArgument, TaskNotFound, OutcomeAlreadyRecorded,
        LeaseNotHeld."""
        ...

    async def report_task_outcomes(self, *, reports: Sequence[Report]) -> list[ReportResult]:
        """Record up to 1,000 outcomes durably together; one result per report, in order."""
        ...

    # Cluster and lifecycle

    async def get_cluster(self) -> Cluster:
        """The cluster map (one node owning every shard for a single broker)."""
        ...

    async def get_stats(self) -> dict[str, Any]:
        """Admin/GetStats of the node answering (the `admin` role): `gauges`, `shards` (each
        shard's gauges), `settings`, `object_store_requests`, `rss_bytes`."""
        ...

    async def close(self) -> None:
        """Release the broker or connection. Idempotent."""
        ...
