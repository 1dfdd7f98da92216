"""Retention (docs/api.md#retention, docs/operations.md#settings): a terminal job is deleted
with its attempts, index entries and count once `--retention` (or its own `retention_ms`) has
passed since it ended, driven by timers that survive a restart; a restart of the job cancels
its deletion. The actor-level timing is tested on a manual clock in rust/shard/tests.rs; these
tests check the same on a real server with short retentions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from helpers import (
    enqueue,
    enqueue_and_lease,
    expect_status,
    get_job,
    heartbeat,
    now_ms,
    queue_counts,
    report_failure,
    report_result,
)
from silo._proto.silo.v1 import (
    CancelRequest,
    Job,
    ListJobsRequest,
    RestartJobRequest,
    SiloStub,
)
from silo.testing import ServerProcess

# Core behaviour: runs once per store kind (file and S3), see conftest.
pytestmark = pytest.mark.all_stores

T = "tenant-r"
Q = "q"


async def gone(stub: SiloStub, job_id: str) -> bool:
    try:
        await get_job(stub, job_id, T)
    except GRPCError as e:
        assert e.status is Status.NOT_FOUND, e
        return True
    return False


async def wait_until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20) -> None:
    """Poll `check` (a deletion has no event a client can await) until true or `timeout`."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} after {timeout}s")
        await asyncio.sleep(0.05)  # polling interval: retention has no client-visible event


async def finished_job(stub: SiloStub, queue: str = Q, **fields: object) -> Job:
    """A SUCCEEDED job of `queue`, which must hold no other due job."""
    job_id, task = await enqueue_and_lease(stub, T, queue, **fields)  # type: ignore[arg-type]
    await report_result(stub, task)
    return await get_job(stub, job_id, T)


async def test_a_finished_job_is_deleted_once_retention_passed(make_server) -> None:
    server: ServerProcess = await make_server(extra_args=["--retention", "1s"])
    stub = server.stub()
    job = await finished_job(stub, metadata={"k": "v"})
    assert job.retention_ms == 0, "the server's setting applies"
    assert job.updated_at_ms + 1000 == job.retained_until_ms
    keep = await enqueue(stub, tenant=T, queue=Q)
    assert await queue_counts(stub, T) == {Q: {"SUCCEEDED": 1, "PENDING": 1}}
    await wait_until(lambda: gone(stub, job.id), "the job was not deleted")
    assert now_ms() >= job.retained_until_ms, "deleted before its time"
    assert await queue_counts(stub, T) == {Q: {"PENDING": 1}}
    listed = await stub.list_jobs(ListJobsRequest(tenant=T, metadata={"k": "v"}))
    assert listed.jobs == []
    assert (await get_job(stub, keep, T)).id == keep, "a job that has not ended stays"


async def test_per_job_retention_overrides_the_server(make_server) -> None:
    server: ServerProcess = await make_server(extra_args=["--retention", "1h"])
    stub = server.stub()
    forever = await finished_job(stub, retention_ms=-1)
    short = await finished_job(stub, retention_ms=300)
    assert (forever.retention_ms, forever.retained_until_ms) == (-1, 0)
    assert short.retained_until_ms == short.updated_at_ms + 300
    await wait_until(lambda: gone(stub, short.id), "the short-lived job was not deleted")
    assert (await get_job(stub, forever.id, T)).retained_until_ms == 0
    assert await queue_counts(stub, T) == {Q: {"SUCCEEDED": 1}}


async def test_zero_keeps_jobs_forever(make_server) -> None:
    server: ServerProcess = await make_server(extra_args=["--retention", "0"])
    stub = server.stub()
    job = await finished_job(stub)
    assert job.retained_until_ms == 0
    short = await finished_job(stub, retention_ms=200)
    await wait_until(lambda: gone(stub, short.id), "the job with its own retention stayed")
    assert not await gone(stub, job.id)


async def test_a_restart_cancels_the_deletion(make_server) -> None:
    server: ServerProcess = await make_server(extra_args=["--retention", "500ms"])
    stub = server.stub()
    job_id, task = await enqueue_and_lease(stub, T, Q)
    await report_failure(stub, task, non_retryable=True)
    failed = await get_job(stub, job_id, T)
    assert failed.retained_until_ms > 0
    restarted = await stub.restart_job(RestartJobRequest(id=job_id, tenant=T))
    assert restarted.retained_until_ms == 0
    # Past the old deletion time (with room for a slow step), the job is still there.
    other = await finished_job(
        stub, queue="other", retention_ms=failed.retained_until_ms - now_ms() + 200
    )
    await wait_until(lambda: gone(stub, other.id), "the later job was not deleted")
    assert (await get_job(stub, job_id, T)).retained_until_ms == 0


async def test_a_cancelled_job_waits_for_its_running_attempt(make_server) -> None:
    server: ServerProcess = await make_server(lease_ms=1500, extra_args=["--retention", "100ms"])
    stub = server.stub()
    job_id, task = await enqueue_and_lease(stub, T, Q)
    await stub.cancel(CancelRequest(id=job_id, tenant=T))
    first = (await get_job(stub, job_id, T)).retained_until_ms

    async def postponed() -> bool:
        await heartbeat(stub, task)  # the attempt goes on
        return (await get_job(stub, job_id, T)).retained_until_ms > first

    await wait_until(postponed, "the deletion of a job whose attempt runs was not put off")
    await report_result(stub, task)
    await wait_until(lambda: gone(stub, job_id), "the job was not deleted once its attempt ended")
    assert await queue_counts(stub, T) == {}


async def test_retention_timers_survive_kill9(make_server) -> None:
    server: ServerProcess = await make_server(extra_args=["--retention", "1500ms"])
    stub = server.stub()
    job = await finished_job(stub)
    server.kill9()
    await server.arestart()
    stub = server.stub()
    assert not await gone(stub, job.id) or now_ms() >= job.retained_until_ms
    await wait_until(lambda: gone(stub, job.id), "the job was not deleted after the restart")
    assert now_ms() >= job.retained_until_ms
    assert await queue_counts(stub, T) == {}


async def test_a_bad_retention_is_invalid_argument(shared_stub: SiloStub, ns) -> None:
    await expect_status(
        enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue, retention_ms=-2),
        Status.INVALID_ARGUMENT,
        names="retention_ms",
    )
