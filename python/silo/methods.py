"""The methods of `silo.Api`, written once for the embedded `silo.Broker` and the remote
`silo.Client`: each builds its request's fields and hands them to `_invoke(rpc, fields)`, which
the two classes implement (a native call in process; a gRPC call over the network).

`fields` is a dict of the request message's fields (or a `silo.types` value with those
attributes); the native module turns it into the protobuf request and the reply into
`silo.types` values (rust/py/convert/), so no protobuf object crosses this API.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from silo import errors
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
    to_ms,
)

__all__ = ["ApiMethods", "start_at_ms_of"]

#: WaitJob's longest wait per call (docs/api.md).
MAX_WAIT_MS = 300_000


def start_at_ms_of(start_at: datetime | None, start_at_ms: int, *, field: str = "start_at") -> int:
    """`start_at_ms`, or `start_at` as Unix ms; InvalidArgument when both are given."""
    if start_at is None:
        return start_at_ms
    if start_at_ms:
        raise errors.InvalidArgument(f"{field}: give {field} or {field}_ms, not both")
    if not isinstance(start_at, datetime):
        raise errors.InvalidArgument(f"{field}: expected a datetime")
    return to_ms(start_at)


class ApiMethods(abc.ABC):
    """Every `silo.Api` method over one abstract call (see the module doc). Subclasses:
    `silo.Broker`, `silo.Client`."""

    @abc.abstractmethod
    async def _invoke(self, rpc: str, fields: object) -> Any:
        """Run the unary RPC `rpc` on `fields`; its reply as a `silo.types` value. Raises the
        silo.errors class of a failure."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the broker or connection. Idempotent."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

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
        """Enqueue one job durably (see `silo.Api.enqueue`)."""
        if start_at is not None:
            start_at_ms = start_at_ms_of(start_at, start_at_ms)
        fields = {
            "id": id,
            "tenant": tenant,
            "queue": queue,
            "priority": priority,
            "start_at_ms": start_at_ms,
            "retry_policy": retry_policy,
            "concurrency_limits": concurrency_limits,
            "payload": payload,
            "metadata": metadata,
            "rate_limits": rate_limits,
            "unique_key": unique_key,
            "unique_for_ms": unique_for_ms,
            "retention_ms": retention_ms,
            "lease_ms": lease_ms,
            "expire_at_ms": expire_at_ms,
        }
        result: Enqueued = await self._invoke("Enqueue", fields)
        return result

    async def enqueue_many(self, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        """Enqueue up to 1,000 jobs durably together; one result per job, in order."""
        result: list[EnqueueResult] = await self._invoke("EnqueueBatch", {"jobs": jobs})
        return result

    async def cancel(self, *, id: str, tenant: str = "") -> None:
        """Cancel a job. Raises JobNotFound, JobTerminal."""
        await self._invoke("Cancel", {"id": id, "tenant": tenant})

    async def get_job(self, *, id: str, tenant: str = "", include_attempts: bool = False) -> Job:
        """The job's current state, with its attempts if asked. Raises JobNotFound."""
        fields = {"id": id, "tenant": tenant, "include_attempts": include_attempts}
        job: Job = await self._invoke("GetJob", fields)
        return job

    async def wait_job(self, *, id: str, tenant: str = "", timeout_ms: int = MAX_WAIT_MS) -> Job:
        """The job once terminal, or as it is after `timeout_ms`. Raises JobNotFound."""
        job: Job = await self._invoke(
            "WaitJob", {"id": id, "tenant": tenant, "timeout_ms": timeout_ms}
        )
        return job

    # Operators

    async def list_jobs(
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
        """Every job matching the filters, newest first, fetched page by page."""
        token = ""
        while True:
            page = await self.list_jobs_page(
                tenant=tenant,
                queue=queue,
                statuses=statuses,
                metadata=metadata,
                created_after_ms=created_after_ms,
                created_before_ms=created_before_ms,
                page_size=page_size,
                page_token=token,
            )
            for job in page.jobs:
                yield job
            token = page.next_page_token
            if not token:
                return

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
        fields = {
            "tenant": tenant,
            "queue": queue,
            "statuses": statuses,
            "metadata": metadata,
            "created_after_ms": created_after_ms,
            "created_before_ms": created_before_ms,
            "page_size": page_size,
            "page_token": page_token,
        }
        page: JobPage = await self._invoke("ListJobs", fields)
        return page

    async def restart_job(self, *, id: str, tenant: str = "") -> Job:
        """Run a FAILED or CANCELLED job again. Raises JobNotFound, FailedPrecondition."""
        job: Job = await self._invoke("RestartJob", {"id": id, "tenant": tenant})
        return job

    async def expedite_job(self, *, id: str, tenant: str = "") -> Job:
        """Make a SCHEDULED job due now. Raises JobNotFound, FailedPrecondition."""
        job: Job = await self._invoke("ExpediteJob", {"id": id, "tenant": tenant})
        return job

    async def delete_job(self, *, id: str, tenant: str = "") -> None:
        """Remove a terminal job with its attempts. Raises JobNotFound, FailedPrecondition."""
        await self._invoke("DeleteJob", {"id": id, "tenant": tenant})

    async def list_queues(self, *, tenant: str = "") -> list[QueueStats]:
        """The tenant's queues with their job counts per status."""
        queues: list[QueueStats] = await self._invoke("ListQueues", {"tenant": tenant})
        return queues

    async def cancel_jobs(self, *, filter: JobFilter, limit: int = 10_000) -> BulkResult:
        """Cancel up to `limit` jobs matching `filter`; call again while `more`."""
        return await self._bulk("CancelJobs", filter, limit)

    async def restart_jobs(self, *, filter: JobFilter, limit: int = 10_000) -> BulkResult:
        """Restart up to `limit` FAILED/CANCELLED jobs matching `filter`; again while `more`."""
        return await self._bulk("RestartJobs", filter, limit)

    async def delete_jobs(self, *, filter: JobFilter, limit: int = 10_000) -> BulkResult:
        """Delete up to `limit` terminal jobs matching `filter`; call again while `more`."""
        return await self._bulk("DeleteJobs", filter, limit)

    async def _bulk(self, rpc: str, filter: JobFilter, limit: int) -> BulkResult:
        result: BulkResult = await self._invoke(rpc, {"filter": filter, "limit": limit})
        return result

    # Flow control

    async def pause_queue(self, *, queue: str, tenant: str = "") -> QueueStats:
        """Stop leasing from a queue (durable, idempotent); it keeps accepting jobs."""
        stats: QueueStats = await self._invoke("PauseQueue", {"queue": queue, "tenant": tenant})
        return stats

    async def resume_queue(self, *, queue: str, tenant: str = "") -> QueueStats:
        """Lease from a paused queue again."""
        stats: QueueStats = await self._invoke("ResumeQueue", {"queue": queue, "tenant": tenant})
        return stats

    async def put_schedule(self, schedule: Schedule) -> Schedule:
        """Create or replace a schedule by (tenant, name)."""
        stored: Schedule = await self._invoke("PutSchedule", schedule)
        return stored

    async def get_schedule(self, *, name: str, tenant: str = "") -> Schedule:
        """A schedule with its next run. Raises NotFound."""
        schedule: Schedule = await self._invoke("GetSchedule", {"name": name, "tenant": tenant})
        return schedule

    async def delete_schedule(self, *, name: str, tenant: str = "") -> None:
        """Remove a schedule (jobs it enqueued stay). Raises NotFound."""
        await self._invoke("DeleteSchedule", {"name": name, "tenant": tenant})

    async def list_schedules(
        self, *, tenant: str = "", page_size: int = 100
    ) -> AsyncIterator[Schedule]:
        """Every schedule of the tenant, by name."""
        token = ""
        while True:
            page = await self.list_schedules_page(
                tenant=tenant, page_size=page_size, page_token=token
            )
            for schedule in page.schedules:
                yield schedule
            token = page.next_page_token
            if not token:
                return

    async def list_schedules_page(
        self, *, tenant: str = "", page_size: int = 100, page_token: str = ""
    ) -> SchedulePage:
        """One page of ListSchedules."""
        fields = {"tenant": tenant, "page_size": page_size, "page_token": page_token}
        page: SchedulePage = await self._invoke("ListSchedules", fields)
        return page

    # Workers

    async def lease_tasks(
        self,
        *,
        worker_id: str,
        max_tasks: int = 1,
        queues: Sequence[str] = (),
        wait_ms: int = 0,
    ) -> list[Task]:
        """Lease up to `max_tasks` due tasks of `queues`, waiting up to `wait_ms`."""
        fields = {
            "worker_id": worker_id,
            "max_tasks": max_tasks,
            "queues": queues,
            "wait_ms": wait_ms,
        }
        tasks: list[Task] = await self._invoke("LeaseTasks", fields)
        return tasks

    async def heartbeat_task(
        self, *, task_id: str, worker_id: str, cursor: bytes = b""
    ) -> HeartbeatResult:
        """Extend a lease; store `cursor` durably when non-empty.
        Raises TaskNotFound, LeaseNotHeld (the worker must abort the task)."""
        fields = {"task_id": task_id, "worker_id": worker_id, "cursor": cursor}
        result: HeartbeatResult = await self._invoke("HeartbeatTask", fields)
        return result

    async def report_task_outcome(
        self,
        *,
        task_id: str,
        worker_id: str,
        result: bytes | None = None,
        failure: TaskFailure | None = None,
        cancelled: bool = False,
    ) -> None:
        """Record a task's outcome: exactly one of `result`, `failure`, `cancelled=True`."""
        fields = {
            "task_id": task_id,
            "worker_id": worker_id,
            "result": result,
            "failure": failure,
            "cancelled": cancelled,
        }
        await self._invoke("ReportTaskOutcome", fields)

    async def report_task_outcomes(self, *, reports: Sequence[Report]) -> list[ReportResult]:
        """Record up to 1,000 outcomes durably together; one result per report, in order."""
        results: list[ReportResult] = await self._invoke("ReportTaskOutcomes", {"reports": reports})
        return results

    # Cluster

    async def get_cluster(self) -> Cluster:
        """The cluster map."""
        cluster: Cluster = await self._invoke("GetCluster", {})
        return cluster

    # Operators of one process (silo.admin.v1)

    async def get_stats(self) -> dict[str, Any]:
        """Admin/GetStats as a dict: `gauges` (ready, scheduled, running, lease_waiters, ...),
        `settings`, `object_store_requests`, `rss_bytes`."""
        stats: dict[str, Any] = await self._invoke("GetStats", {})
        return stats
