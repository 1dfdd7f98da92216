"""Small helpers shared by the tests: the clock, status assertions and request shorthands."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import grpc
import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from silo._proto.silo.admin.v1 import AdminStub, GetStatsRequest
from silo._proto.silo.v1 import (
    EnqueueBatchRequest,
    EnqueueRequest,
    GetJobRequest,
    HeartbeatTaskRequest,
    HeartbeatTaskResponse,
    Job,
    JobStatus,
    LeaseTasksRequest,
    ListJobsRequest,
    ListQueuesRequest,
    ReportTaskOutcomeRequest,
    ReportTaskOutcomesRequest,
    RetryPolicy,
    SiloStub,
    Task,
    TaskCancelled,
    TaskFailure,
)

# Lease duration of `short_lease_server`: short enough to wait for expiry, long enough that a
# test on a busy 2-core machine can heartbeat or report in time.
SHORT_LEASE_MS = 600

# Slack for comparing timestamps taken by the server with the test's clock (same machine, same
# wall clock; the server only rounds to milliseconds).
CLOCK_SLACK_MS = 2

# Tolerance for "this delay was applied": the server may read its clock more than once per
# operation.
DELAY_TOLERANCE_MS = 50

# Retries that are due at once, for tests where a retry must be possible but not waited for.
RETRY_NOW = RetryPolicy(max_retries=3, schedule_ms=[0])


def now_ms() -> int:
    """Wall-clock Unix milliseconds, as the server's timestamps."""
    return time.time_ns() // 1_000_000


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def assert_between(value: int, low: int, high: int, what: str = "value") -> None:
    assert low - CLOCK_SLACK_MS <= value <= high + CLOCK_SLACK_MS, (
        f"{what}={value} not within [{low}, {high}] (slack {CLOCK_SLACK_MS} ms)"
    )


async def expect_status(
    call: Awaitable[Any], status: Status, *, names: str | None = None
) -> GRPCError:
    """Await `call`, assert it fails with `status` (and that the message names `names`)."""
    with pytest.raises(GRPCError) as info:
        await call
    err = info.value
    assert err.status is status, f"expected {status.name}, got {err.status.name}: {err.message!r}"
    if names is not None:
        assert names.lower() in (err.message or "").lower(), (
            f"{status.name} message {err.message!r} does not name {names!r}"
        )
    return err


async def enqueue(stub: SiloStub, **fields: Any) -> str:
    """Enqueue one job and return its id."""
    return (await stub.enqueue(EnqueueRequest(**fields))).id


async def enqueue_many(stub: SiloStub, jobs: list[EnqueueRequest]) -> list[str]:
    """Enqueue jobs in batches (each must succeed) and return their ids in order."""
    ids: list[str] = []
    for i in range(0, len(jobs), 250):
        resp = await stub.enqueue_batch(EnqueueBatchRequest(jobs=jobs[i : i + 250]))
        for r in resp.results:
            assert r.code == 0, r
            ids.append(r.id)
    return ids


async def finish(
    stub: SiloStub, tasks: list[Task], *, worker: str = "w", result: bytes = b""
) -> None:
    """Report every task a success in one call (each report must succeed)."""
    reports = [
        ReportTaskOutcomeRequest(task_id=t.task_id, worker_id=worker, result=result) for t in tasks
    ]
    resp = await stub.report_task_outcomes(ReportTaskOutcomesRequest(reports=reports))
    assert all(r.code == 0 for r in resp.results), resp


async def list_all(stub: SiloStub, req: ListJobsRequest) -> tuple[list[Job], int]:
    """Every job ListJobs finds for `req`, paging until the token is empty: (jobs, pages)."""
    jobs: list[Job] = []
    pages = 0
    token = req.page_token
    while True:
        req.page_token = token
        page = await stub.list_jobs(req)
        pages += 1
        jobs.extend(page.jobs)
        token = page.next_page_token
        if not token:
            return jobs, pages


#: ListQueues counts' keys, in JobStatus order.
STATUS_NAMES = ("SCHEDULED", "PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")


async def queue_counts(stub: SiloStub, tenant: str) -> dict[str, dict[str, int]]:
    """ListQueues as {queue: {status name: count}}, leaving out zero counts."""
    resp = await stub.list_queues(ListQueuesRequest(tenant=tenant))
    out: dict[str, dict[str, int]] = {}
    for q in resp.queues:
        assert sorted(q.counts) == sorted(STATUS_NAMES), q.counts
        out[q.name] = {name: n for name, n in q.counts.items() if n}
    return out


async def lease(
    stub: SiloStub,
    queues: Iterable[str],
    *,
    worker: str = "worker-1",
    max_tasks: int = 1,
    wait_ms: int = 0,
) -> list[Task]:
    req = LeaseTasksRequest(
        worker_id=worker, max_tasks=max_tasks, queues=list(queues), wait_ms=wait_ms
    )
    return list((await stub.lease_tasks(req)).tasks)


async def lease_one(
    stub: SiloStub, queue: str, *, worker: str = "worker-1", wait_ms: int = 10_000
) -> Task:
    """Lease exactly one task of `queue`, long-polling up to `wait_ms` for it."""
    tasks = await lease(stub, [queue], worker=worker, max_tasks=1, wait_ms=wait_ms)
    assert len(tasks) == 1, f"expected one task from {queue!r} within {wait_ms} ms, got {tasks}"
    return tasks[0]


async def enqueue_and_lease(
    stub: SiloStub, tenant: str, queue: str, *, worker: str = "worker-1", **fields: Any
) -> tuple[str, Task]:
    """Enqueue one job (further EnqueueRequest `fields`) into `queue`, which must hold no other
    due job, and lease its task to `worker` at once: a RUNNING job. Returns (job id, task)."""
    job_id = await enqueue(stub, tenant=tenant, queue=queue, **fields)
    return job_id, await lease_one(stub, queue, worker=worker, wait_ms=0)


async def report_result(
    stub: SiloStub, task: Task, result: bytes = b"ok", *, worker: str = "worker-1"
) -> None:
    await stub.report_task_outcome(
        ReportTaskOutcomeRequest(task_id=task.task_id, worker_id=worker, result=result)
    )


async def report_failure(
    stub: SiloStub,
    task: Task,
    *,
    code: str = "boom",
    message: str = "it broke",
    data: bytes = b"",
    non_retryable: bool = False,
    worker: str = "worker-1",
) -> None:
    failure = TaskFailure(code=code, message=message, data=data, non_retryable=non_retryable)
    await stub.report_task_outcome(
        ReportTaskOutcomeRequest(task_id=task.task_id, worker_id=worker, failure=failure)
    )


async def report_cancelled(stub: SiloStub, task: Task, *, worker: str = "worker-1") -> None:
    await stub.report_task_outcome(
        ReportTaskOutcomeRequest(task_id=task.task_id, worker_id=worker, cancelled=TaskCancelled())
    )


async def failed_job(stub: SiloStub, tenant: str, queue: str, **fields: Any) -> str:
    """A FAILED job (enqueued into `queue`, which must hold no other due job, leased, failed
    for good); returns its id."""
    job_id, task = await enqueue_and_lease(stub, tenant, queue, **fields)
    await report_failure(stub, task, code="fatal", non_retryable=True)
    return job_id


#: Bad job references and the field each one's INVALID_ARGUMENT names.
BAD_JOB_REFS: list[tuple[dict[str, str], str]] = [
    ({"id": ""}, "id"),
    ({"id": "a\tb"}, "id"),
    ({"id": "x" * 128}, "id"),
    ({"id": "x", "tenant": "t" * 128}, "tenant"),
]


async def expect_job_ref_errors(
    stub: SiloStub, call: Callable[[Any], Awaitable[Any]], request: type[Any], tenant: str
) -> None:
    """An RPC that names one job: NOT_FOUND for an unknown id (and for an existing id in
    another tenant), INVALID_ARGUMENT naming the field for each of BAD_JOB_REFS."""
    await expect_status(call(request(id="no-such-job", tenant=tenant)), Status.NOT_FOUND)
    job_id = await enqueue(stub, tenant=tenant, queue=unique("queue"))
    await expect_status(call(request(id=job_id, tenant=unique("tenant"))), Status.NOT_FOUND)
    for fields, field in BAD_JOB_REFS:
        await expect_status(call(request(**fields)), Status.INVALID_ARGUMENT, names=field)


async def heartbeat(
    stub: SiloStub, task: Task | str, *, worker: str = "worker-1", cursor: bytes = b""
) -> HeartbeatTaskResponse:
    task_id = task if isinstance(task, str) else task.task_id
    return await stub.heartbeat_task(
        HeartbeatTaskRequest(task_id=task_id, worker_id=worker, cursor=cursor)
    )


async def get_job(stub: SiloStub, job_id: str, tenant: str = "", *, attempts: bool = True) -> Job:
    return await stub.get_job(GetJobRequest(id=job_id, tenant=tenant, include_attempts=attempts))


async def wait_for_status(
    stub: SiloStub,
    job_id: str,
    tenant: str,
    statuses: Iterable[JobStatus],
    *,
    timeout: float = 10.0,
) -> Job:
    """Poll GetJob until the job is in one of `statuses` (for transitions no call can await,
    such as a lease expiring or a start time passing); fails after `timeout` seconds."""
    wanted = set(statuses)
    deadline = time.monotonic() + timeout
    while True:
        job = await get_job(stub, job_id, tenant)
        if job.status in wanted:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(
                f"job {job_id} still {job.status!r} after {timeout}s; wanted {sorted(wanted)}"
            )
        # Polling interval: the transition has no event a client can subscribe to.
        await asyncio.sleep(0.02)


async def wait_for_gauge(
    read_gauges: Callable[[], Awaitable[Mapping[str, int]]],
    name: str,
    ok: Callable[[int], bool],
    *,
    what: str,
    timeout: float = 10.0,
) -> int:
    """Poll the broker's gauges (Admin/GetStats) until `ok(gauges[name])`; fails with `what`
    after `timeout` seconds. For states with no event a client can await, such as a LeaseTasks
    call parked in the broker."""
    deadline = time.monotonic() + timeout
    while True:
        value = (await read_gauges()).get(name, 0)
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: gauge {name} is still {value} after {timeout}s")
        await asyncio.sleep(0.01)


def admin_gauges(admin: AdminStub) -> Callable[[], Awaitable[Mapping[str, int]]]:
    """The gauge reader of an Admin stub, for wait_for_gauge."""

    async def read() -> Mapping[str, int]:
        return (await admin.get_stats(GetStatsRequest())).gauges

    return read


async def wait_parked(admin: AdminStub, count: int = 1) -> None:
    """Wait until at least `count` LeaseTasks long-polls are parked in the broker."""
    await wait_for_gauge(
        admin_gauges(admin),
        "lease_waiters",
        lambda n: n >= count,
        what="the long-poll never parked",
    )


async def wait_unparked(admin: AdminStub) -> None:
    """Wait until no LeaseTasks long-poll is parked in the broker."""
    await wait_for_gauge(
        admin_gauges(admin), "lease_waiters", lambda n: n == 0, what="a long-poll stayed parked"
    )


R = TypeVar("R")


class SyncWire:
    """A synchronous gRPC client of one broker (grpcio transport, betterproto messages), for
    Hypothesis state machines, which must not share pytest-asyncio's event loop."""

    def __init__(self, address: str) -> None:
        self._channel = grpc.insecure_channel(address)

    def close(self) -> None:
        self._channel.close()

    def call(self, path: str, request: Any, reply: type[R]) -> R:
        fn = self._channel.unary_unary(
            path,
            request_serializer=bytes,
            response_deserializer=reply.parse,  # type: ignore[attr-defined]
        )
        return fn(request, timeout=30.0, wait_for_ready=True)  # type: ignore[no-any-return]

    def attempt(self, path: str, request: Any, reply: type[R]) -> tuple[grpc.StatusCode, R | None]:
        """(status code, reply or None): for calls whose refusal the model predicts."""
        try:
            return grpc.StatusCode.OK, self.call(path, request, reply)
        except grpc.RpcError as e:
            return e.code(), None
