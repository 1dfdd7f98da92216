"""Tasks and `silo.Worker` (python/silo/tasks.py, python/silo/worker.py) against a real broker,
the same test body embedded (`silo.open`) and remote (`silo.connect` to `silo serve`): results,
cancellation of async and sync tasks, heartbeats, retries with tracebacks, NonRetryable,
cursors, graceful shutdown, raw handlers."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import silo
from conftest import MakeApi
from silo import AttemptStatus, Job, JobStatus, RetryPolicy, TaskContext

RETRY_NOW = RetryPolicy(max_retries=2, schedule_ms=(0,))
#: A lease short enough that a test can outlive three of them, long enough for a busy machine
#: to heartbeat in time (a heartbeat every third of it).
SHORT_LEASE_MS = 900

# Events the tasks below set for the test that runs them (one test at a time uses each).
started = threading.Event()
saw: dict[str, Any] = {}


@silo.task(queue="math")
async def add(ctx: TaskContext, a: int, b: int) -> int:
    return a + b


@silo.task(queue="math")
def multiply(a: int, b: int) -> int:
    return a * b


@silo.task(queue="slow")
async def wait_forever(ctx: TaskContext) -> None:
    started.set()
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        saw["async_cancelled"] = ctx.cancelled
        raise


@silo.task(queue="slow")
def spin_until_cancelled(ctx: TaskContext) -> str:
    started.set()
    deadline = time.monotonic() + 60
    while not ctx.cancelled and time.monotonic() < deadline:
        time.sleep(0.01)  # a sync task polls ctx.cancelled; this is its unit of work
    saw["sync_cancelled"] = ctx.cancelled
    return "stopped"


@silo.task(queue="slow")
async def outlive_leases(ctx: TaskContext, seconds: float) -> str:
    await asyncio.sleep(seconds)  # the work: longer than three leases
    return "alive"


class Flaky(Exception):
    pass


@silo.task(queue="flaky", retry=RETRY_NOW)
async def always_fails(ctx: TaskContext) -> None:
    raise Flaky(f"attempt {ctx.attempt} failed")


@silo.task(queue="flaky", retry=RetryPolicy(max_retries=5, schedule_ms=(0,)))
async def gives_up(ctx: TaskContext) -> None:
    raise silo.NonRetryable("the input is bad")


@silo.task(queue="flaky", retry=RETRY_NOW)
async def resumes(ctx: TaskContext) -> str:
    if ctx.attempt == 1:
        await ctx.heartbeat(cursor=b"page-3")
        raise Flaky("crashed after page 3")
    return ctx.cursor.decode()


@silo.task(queue="slow", retry=RETRY_NOW)
async def takes_a_while(ctx: TaskContext, seconds: float) -> float:
    started.set()
    await asyncio.sleep(seconds)  # the work the worker lets finish
    return seconds


async def wait_terminal(api: Any, job_id: str, timeout: float = 30.0) -> Job:
    """The job once terminal (GetJob until then: a transition the test has no call for)."""
    deadline = time.monotonic() + timeout
    while True:
        job: Job = await api.get_job(id=job_id, include_attempts=True)
        if job.terminal:
            return job
        assert time.monotonic() < deadline, f"job still {job.status.name}: {job}"
        await asyncio.sleep(0.02)


async def wait_status(api: Any, job_id: str, status: JobStatus, timeout: float = 30.0) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        job: Job = await api.get_job(id=job_id, include_attempts=True)
        if job.status is status:
            return job
        assert time.monotonic() < deadline, f"job still {job.status.name}, not {status.name}"
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running(worker: silo.Worker) -> AsyncIterator[asyncio.Task[None]]:
    """Run `worker` in the background; stop it and wait for it on exit."""
    job = asyncio.create_task(worker.run(handle_signals=False))
    try:
        yield job
    finally:
        worker.stop()
        await asyncio.wait_for(job, 60)


@pytest.fixture(autouse=True)
def reset_events() -> None:
    started.clear()
    saw.clear()


async def test_enqueue_work_result(make_api: MakeApi) -> None:
    api = await make_api()
    handle = await add.enqueue(api, 2, b=3)
    sync_handle = await multiply.enqueue(api, 4, 5)
    job = await api.get_job(id=handle.id)
    assert job.metadata["silo.task"] == f"{__name__}.add"
    assert job.queue == "math"
    async with running(silo.Worker(api, tasks=[add, multiply])):
        assert await handle.result(timeout=30) == 5
        assert await sync_handle.result(timeout=30) == 20


async def test_cancel_a_running_async_task(make_api: MakeApi) -> None:
    api = await make_api(lease_ms=SHORT_LEASE_MS)
    handle = await wait_forever.enqueue(api)
    async with running(silo.Worker(api, tasks=[wait_forever])):
        await asyncio.to_thread(started.wait, 30)
        await api.cancel(id=handle.id)
        job = await _wait_attempt_done(api, handle.id)
    assert job.status is JobStatus.CANCELLED
    assert job.attempts[0].status is AttemptStatus.CANCELLED
    assert saw["async_cancelled"] is True


async def test_cancel_a_running_sync_task(make_api: MakeApi) -> None:
    api = await make_api(lease_ms=SHORT_LEASE_MS)
    handle = await spin_until_cancelled.enqueue(api)
    async with running(silo.Worker(api, tasks=[spin_until_cancelled])):
        await asyncio.to_thread(started.wait, 30)
        await api.cancel(id=handle.id)
        job = await _wait_attempt_done(api, handle.id)
    assert job.status is JobStatus.CANCELLED
    assert job.attempts[0].status is AttemptStatus.CANCELLED
    assert saw["sync_cancelled"] is True


async def _wait_attempt_done(api: Any, job_id: str, timeout: float = 30.0) -> Job:
    """The job once its first attempt has an outcome."""
    deadline = time.monotonic() + timeout
    while True:
        job: Job = await api.get_job(id=job_id, include_attempts=True)
        if job.attempts and job.attempts[0].status is not AttemptStatus.RUNNING:
            return job
        assert time.monotonic() < deadline, f"attempt still running: {job}"
        await asyncio.sleep(0.02)


async def test_heartbeats_keep_a_task_alive_for_three_leases(make_api: MakeApi) -> None:
    api = await make_api(lease_ms=SHORT_LEASE_MS)
    handle = await outlive_leases.enqueue(api, 3 * SHORT_LEASE_MS / 1000 + 0.3)
    async with running(silo.Worker(api, tasks=[outlive_leases])):
        job = await wait_terminal(api, handle.id)
    assert job.status is JobStatus.SUCCEEDED, job
    assert job.attempt_count == 1
    assert handle.outcome(job) == "alive"


async def test_a_raising_task_retries_then_fails_with_its_traceback(make_api: MakeApi) -> None:
    api = await make_api()
    handle = await always_fails.enqueue(api)
    async with running(silo.Worker(api, tasks=[always_fails])):
        job = await wait_terminal(api, handle.id)
    assert job.status is JobStatus.FAILED
    assert job.attempt_count == 3
    failure = job.last_failure
    assert failure is not None
    assert failure.code == "Flaky"
    assert failure.message == "attempt 3 failed"
    assert failure.non_retryable is False
    traceback = failure.data.decode()
    assert traceback.startswith("Traceback (most recent call last):")
    assert "in always_fails" in traceback and "Flaky: attempt 3 failed" in traceback
    with pytest.raises(silo.JobFailed) as info:
        handle.outcome(job)
    assert info.value.failure == failure


async def test_non_retryable_fails_at_once(make_api: MakeApi) -> None:
    api = await make_api()
    handle = await gives_up.enqueue(api)
    async with running(silo.Worker(api, tasks=[gives_up])):
        job = await wait_terminal(api, handle.id)
    assert job.status is JobStatus.FAILED
    assert job.attempt_count == 1
    assert job.last_failure is not None
    assert job.last_failure.code == "NonRetryable"
    assert job.last_failure.non_retryable is True


async def test_the_cursor_reaches_the_next_attempt(make_api: MakeApi) -> None:
    api = await make_api()
    handle = await resumes.enqueue(api)
    async with running(silo.Worker(api, tasks=[resumes])):
        job = await wait_terminal(api, handle.id)
    assert job.status is JobStatus.SUCCEEDED
    assert handle.outcome(job) == "page-3"
    assert job.attempts[0].heartbeat_cursor == b"page-3"


async def test_graceful_stop_lets_running_tasks_finish(make_api: MakeApi) -> None:
    api = await make_api()
    handle = await takes_a_while.enqueue(api, 0.5)
    worker = silo.Worker(api, tasks=[takes_a_while], grace=30)
    job_task = asyncio.create_task(worker.run(handle_signals=False))
    await asyncio.to_thread(started.wait, 30)
    worker.stop()
    await asyncio.wait_for(job_task, 60)
    job = await api.get_job(id=handle.id)
    assert job.status is JobStatus.SUCCEEDED  # reported before run() returned


async def test_tasks_past_the_grace_period_are_retried_not_stuck(make_api: MakeApi) -> None:
    api = await make_api()
    handle = await takes_a_while.enqueue(
        api, 3600, _retry=RetryPolicy(max_retries=1, schedule_ms=(60_000,))
    )
    worker = silo.Worker(api, tasks=[takes_a_while], grace=0.2)
    job_task = asyncio.create_task(worker.run(handle_signals=False))
    await asyncio.to_thread(started.wait, 30)
    worker.stop()
    await asyncio.wait_for(job_task, 60)
    job = await api.get_job(id=handle.id, include_attempts=True)
    assert job.status is JobStatus.SCHEDULED  # the retry waits its backoff; nothing RUNNING
    assert job.attempts[0].status is AttemptStatus.FAILED
    assert job.last_failure is not None and job.last_failure.code == "silo.WorkerShutdown"


async def test_raw_handlers_serve_jobs_of_other_languages(make_api: MakeApi) -> None:
    api = await make_api()
    first = await api.enqueue(queue="raw", payload=b"abc")
    second = await api.enqueue(queue="raw-sync", payload=b"xyz")

    async def upper(ctx: TaskContext, payload: bytes) -> bytes:
        return payload.upper()

    def reverse(ctx: TaskContext, payload: bytes) -> bytes:
        return payload[::-1]

    worker = silo.Worker(api, handlers={"raw": upper, "raw-sync": reverse})
    assert sorted(worker.queues) == ["raw", "raw-sync"]
    async with running(worker):
        assert (await wait_terminal(api, first)).result == b"ABC"
        assert (await wait_terminal(api, second)).result == b"zyx"


async def test_unknown_tasks_fail_with_a_clear_code(make_api: MakeApi) -> None:
    api = await make_api()
    job_id = await api.enqueue(queue="math", metadata={"silo.task": "nowhere.nothing"})
    async with running(silo.Worker(api, tasks=[add])):
        job = await wait_terminal(api, job_id)
    assert job.status is JobStatus.FAILED
    assert job.last_failure is not None and job.last_failure.code == "silo.UnknownTask"
    assert "nowhere.nothing" in job.last_failure.message


async def test_job_options_and_serializers(make_api: MakeApi) -> None:
    api = await make_api()
    pickled = silo.task(queue="math", serializer=silo.PICKLE, name="pickled-add")(add.fn)
    handle = await pickled.enqueue(api, 1, 2, _id="p1", _priority=90, _metadata={"m": "v"})
    job = await api.get_job(id="p1")
    assert (job.priority, job.metadata["m"], job.metadata["silo.task"]) == (90, "v", "pickled-add")
    later = await add.enqueue(api, 1, 1, _delay=3600)
    assert (await api.get_job(id=later.id)).status is JobStatus.SCHEDULED
    with pytest.raises(silo.InvalidArgument, match="_nope"):
        await add.enqueue(api, 1, 1, _nope=1)  # type: ignore[call-arg]
    async with running(silo.Worker(api, tasks=[pickled])):
        job = await wait_terminal(api, handle.id)
    assert handle.outcome(job) == 3
