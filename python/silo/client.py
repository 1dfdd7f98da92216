"""A thin async client for `silo.v1.Silo` over grpclib, raising silo.errors on failure.

One method per RPC, keyword-only arguments, betterproto2 messages in and out. Errors: a call
that ends with a status in silo/status.py's table raises that table's class (refined to the
specific class the RPC documents, e.g. JobNotFound for GetJob); connection failures raise
Unavailable; any other status propagates as grpclib's GRPCError.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from types import TracebackType
from typing import Final, TypeVar

from grpclib.client import Channel
from grpclib.exceptions import GRPCError, StreamTerminatedError

from silo import errors
from silo._proto.silo.v1 import (
    CancelRequest,
    ConcurrencyLimit,
    EnqueueBatchRequest,
    EnqueueRequest,
    EnqueueResult,
    GetJobRequest,
    HeartbeatTaskRequest,
    HeartbeatTaskResponse,
    Job,
    LeaseTasksRequest,
    ReportResult,
    ReportTaskOutcomeRequest,
    ReportTaskOutcomesRequest,
    RetryPolicy,
    SiloStub,
    Task,
    TaskCancelled,
    TaskFailure,
)
from silo.config import DEFAULT_LISTEN, parse_listen
from silo.status import error_for_status

__all__ = ["Client", "outcome_request"]

T = TypeVar("T")
_Refine = Sequence[type[errors.SiloError]]

_ENQUEUE: Final[_Refine] = (errors.JobAlreadyExists,)
_JOB: Final[_Refine] = (errors.JobNotFound, errors.JobTerminal)
_TASK: Final[_Refine] = (
    errors.TaskNotFound,
    errors.OutcomeAlreadyRecorded,
    errors.LeaseNotHeld,
)


class Client:
    """Async client of one Silo broker. Use `async with Client(...)` or call `close()`.

    `timeout` (seconds) applies to every call unless None; long-polling `lease_tasks` calls need
    a timeout above their `wait_ms`. Create it inside the event loop that uses it (grpclib binds
    the running loop when the channel is made).
    """

    def __init__(self, address: str = DEFAULT_LISTEN, *, timeout: float | None = None) -> None:
        host, port = parse_listen(address)
        self._channel = Channel(host, port)
        self._stub = SiloStub(self._channel, timeout=timeout)

    @property
    def stub(self) -> SiloStub:
        """The generated stub, for RPCs and options this client does not wrap."""
        return self._stub

    def close(self) -> None:
        """Close the connection; calls in progress fail."""
        self._channel.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def enqueue(
        self,
        *,
        id: str = "",
        tenant: str = "",
        queue: str = "",
        priority: int = 0,
        start_at_ms: int = 0,
        retry_policy: RetryPolicy | None = None,
        concurrency_limits: Sequence[ConcurrencyLimit] = (),
        payload: bytes = b"",
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        """Enqueue one job; its id. Raises InvalidArgument, JobAlreadyExists."""
        request = EnqueueRequest(
            id=id,
            tenant=tenant,
            queue=queue,
            priority=priority,
            start_at_ms=start_at_ms,
            retry_policy=retry_policy,
            concurrency_limits=list(concurrency_limits),
            payload=payload,
            metadata=dict(metadata or {}),
        )
        reply = await _call(self._stub.enqueue(request), _ENQUEUE)
        return reply.id

    async def enqueue_batch(self, *, jobs: Sequence[EnqueueRequest]) -> list[EnqueueResult]:
        """Enqueue up to 1000 jobs durably together; one result per job, in order.

        Each job succeeds or fails alone (see EnqueueResult.code); raises InvalidArgument only
        for a batch that is bad as a whole.
        """
        reply = await _call(self._stub.enqueue_batch(EnqueueBatchRequest(jobs=list(jobs))), ())
        return reply.results

    async def cancel(self, *, id: str, tenant: str = "") -> None:
        """Cancel a job. Raises JobNotFound, JobTerminal."""
        await _call(self._stub.cancel(CancelRequest(id=id, tenant=tenant)), _JOB)

    async def lease_tasks(
        self,
        *,
        worker_id: str,
        max_tasks: int = 1,
        queues: Sequence[str] = (),
        wait_ms: int = 0,
    ) -> list[Task]:
        """Lease up to `max_tasks` tasks, waiting up to `wait_ms` for the first one.

        Raises InvalidArgument.
        """
        request = LeaseTasksRequest(
            worker_id=worker_id, max_tasks=max_tasks, queues=list(queues), wait_ms=wait_ms
        )
        reply = await _call(self._stub.lease_tasks(request), ())
        return reply.tasks

    async def heartbeat_task(
        self, *, task_id: str, worker_id: str, cursor: bytes = b""
    ) -> HeartbeatTaskResponse:
        """Extend a lease (and store `cursor` durably if non-empty).

        Raises TaskNotFound, LeaseNotHeld (the worker must abort the task).
        """
        request = HeartbeatTaskRequest(task_id=task_id, worker_id=worker_id, cursor=cursor)
        return await _call(self._stub.heartbeat_task(request), _TASK)

    async def report_task_outcome(
        self,
        *,
        task_id: str,
        worker_id: str,
        result: bytes | None = None,
        failure: TaskFailure | None = None,
        cancelled: bool = False,
    ) -> None:
        """Record a task's outcome: exactly one of `result`, `failure`, `cancelled=True`.

        Raises InvalidArgument (not exactly one outcome), TaskNotFound, OutcomeAlreadyRecorded,
        LeaseNotHeld.
        """
        request = outcome_request(
            task_id=task_id,
            worker_id=worker_id,
            result=result,
            failure=failure,
            cancelled=cancelled,
        )
        await _call(self._stub.report_task_outcome(request), _TASK)

    async def report_task_outcomes(
        self, *, reports: Sequence[ReportTaskOutcomeRequest]
    ) -> list[ReportResult]:
        """Record up to 1000 outcomes durably together; one result per report, in order."""
        request = ReportTaskOutcomesRequest(reports=list(reports))
        reply = await _call(self._stub.report_task_outcomes(request), ())
        return reply.results

    async def get_job(self, *, id: str, tenant: str = "", include_attempts: bool = False) -> Job:
        """The job's current state (with its attempts if asked). Raises JobNotFound."""
        request = GetJobRequest(id=id, tenant=tenant, include_attempts=include_attempts)
        return await _call(self._stub.get_job(request), _JOB)


def outcome_request(
    *,
    task_id: str,
    worker_id: str,
    result: bytes | None = None,
    failure: TaskFailure | None = None,
    cancelled: bool = False,
) -> ReportTaskOutcomeRequest:
    """A ReportTaskOutcomeRequest with exactly one outcome set; InvalidArgument otherwise."""
    given = (result is not None) + (failure is not None) + cancelled
    if given != 1:
        raise errors.InvalidArgument("outcome: give exactly one of result, failure, cancelled")
    return ReportTaskOutcomeRequest(
        task_id=task_id,
        worker_id=worker_id,
        result=result,
        failure=failure,
        cancelled=TaskCancelled() if cancelled else None,
    )


async def _call(call: Awaitable[T], refine: _Refine) -> T:
    """Await one RPC, turning its failure into the matching silo.errors class."""
    try:
        return await call
    except GRPCError as exc:
        error = error_for_status(exc.status, exc.message, refine=refine)
        if error is None:
            raise
        raise error from exc
    except (OSError, StreamTerminatedError) as exc:
        raise errors.Unavailable(f"cannot reach the broker: {exc}") from exc
