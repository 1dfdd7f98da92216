"""WaitJob (docs/api.md#waitjob): answered from the broker the moment the job ends, or with the
job's current state when the timeout passes; bad input, unknown jobs, callers that go away and
a broker that shuts down."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest
from grpclib.client import Channel
from grpclib.const import Status
from helpers import (
    RETRY_NOW,
    SHORT_LEASE_MS,
    admin_gauges,
    enqueue,
    enqueue_and_lease,
    expect_status,
    get_job,
    lease_one,
    report_failure,
    report_result,
    unique,
    wait_for_gauge,
)
from silo._proto.silo.admin.v1 import AdminStub
from silo._proto.silo.v1 import CancelRequest, Job, JobStatus, SiloStub, WaitJobRequest
from silo.testing import ServerProcess

# Core behaviour: runs once per store kind (file and S3), see conftest.
pytestmark = pytest.mark.all_stores

MAX_TIMEOUT_MS = 300_000


async def wait_job(stub: SiloStub, job_id: str, tenant: str, timeout_ms: int) -> Job:
    return await stub.wait_job(WaitJobRequest(id=job_id, tenant=tenant, timeout_ms=timeout_ms))


async def waiting(
    stub: SiloStub, admin: AdminStub, job_id: str, tenant: str, count: int = 1
) -> asyncio.Task[Job]:
    """Start a WaitJob of the longest timeout and return once the broker holds `count` waiting
    calls: whatever answers it next is the job ending, not its deadline."""
    call = asyncio.create_task(wait_job(stub, job_id, tenant, MAX_TIMEOUT_MS))
    await wait_for_gauge(
        admin_gauges(admin), "job_waiters", lambda n: n >= count, what="WaitJob never waited"
    )
    return call


async def test_wait_job_answers_when_the_job_succeeds(
    shared_stub: SiloStub, shared_admin: AdminStub, ns
) -> None:
    job_id, task = await enqueue_and_lease(shared_stub, ns.tenant, ns.queue, payload=b"in")
    call = await waiting(shared_stub, shared_admin, job_id, ns.tenant)
    assert not call.done()
    await report_result(shared_stub, task, b"out")
    job = await call
    assert (job.id, job.status, job.result, job.payload) == (
        job_id,
        JobStatus.SUCCEEDED,
        b"out",
        b"in",
    )
    assert job.attempts == [], "WaitJob answers the job without its attempts"
    assert job == await get_job(shared_stub, job_id, ns.tenant, attempts=False)


async def test_wait_job_is_not_woken_by_a_retry(
    shared_stub: SiloStub, shared_admin: AdminStub, ns
) -> None:
    job_id, task = await enqueue_and_lease(shared_stub, ns.tenant, ns.queue, retry_policy=RETRY_NOW)
    call = await waiting(shared_stub, shared_admin, job_id, ns.tenant)
    await report_failure(shared_stub, task, code="again")
    retry = await lease_one(shared_stub, ns.queue)
    assert retry.attempt == 2
    assert not call.done(), "a failure that retries is not the end of the job"
    await report_failure(shared_stub, retry, code="fatal", non_retryable=True)
    job = await call
    assert job.status == JobStatus.FAILED
    assert job.last_failure is not None and job.last_failure.code == "fatal"
    assert job.attempt_count == 2


async def test_wait_job_answers_a_cancel_to_every_waiter(
    shared_stub: SiloStub, shared_admin: AdminStub, ns
) -> None:
    job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    gauges = await admin_gauges(shared_admin)()
    before = gauges.get("job_waiters", 0)
    calls = [
        await waiting(shared_stub, shared_admin, job_id, ns.tenant, count=before + i + 1)
        for i in range(3)
    ]
    await shared_stub.cancel(CancelRequest(id=job_id, tenant=ns.tenant))
    for job in await asyncio.gather(*calls):
        assert job.status == JobStatus.CANCELLED


async def test_wait_job_answers_a_lease_expiry_that_ends_the_job(
    short_stub: SiloStub, short_lease_server: ServerProcess, ns
) -> None:
    job_id, task = await enqueue_and_lease(short_stub, ns.tenant, ns.queue)
    # Long enough to outlive the lease several times over: the expiry, not the timeout, answers.
    job = await wait_job(short_stub, job_id, ns.tenant, 20 * SHORT_LEASE_MS)
    assert job.status == JobStatus.FAILED
    assert job.last_failure is not None and job.last_failure.code == "lease_expired"
    assert job.updated_at_ms >= task.lease_expires_at_ms


async def test_a_terminal_job_is_answered_at_once(shared_stub: SiloStub, ns) -> None:
    job_id, task = await enqueue_and_lease(shared_stub, ns.tenant, ns.queue)
    await report_result(shared_stub, task, b"r")
    # The longest timeout: a terminal job must not wait for it (the suite's timeout would fail).
    job = await wait_job(shared_stub, job_id, ns.tenant, MAX_TIMEOUT_MS)
    assert (job.status, job.result) == (JobStatus.SUCCEEDED, b"r")


async def test_timeout_zero_answers_the_current_state_at_once(shared_stub: SiloStub, ns) -> None:
    job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    job = await wait_job(shared_stub, job_id, ns.tenant, 0)
    assert job.status == JobStatus.PENDING


async def test_the_timeout_answers_the_current_state(shared_stub: SiloStub, ns) -> None:
    job_id, _task = await enqueue_and_lease(shared_stub, ns.tenant, ns.queue)
    started = time.monotonic()
    job = await wait_job(shared_stub, job_id, ns.tenant, 300)
    waited_ms = (time.monotonic() - started) * 1000
    assert job.status == JobStatus.RUNNING
    assert waited_ms >= 300, f"answered after {waited_ms:.0f} ms, before its timeout"


async def test_unknown_job_is_not_found(shared_stub: SiloStub, ns) -> None:
    await expect_status(wait_job(shared_stub, "no-such-job", ns.tenant, 10), Status.NOT_FOUND)
    job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    # The same id in another tenant is another (missing) job.
    await expect_status(wait_job(shared_stub, job_id, unique("tenant"), 10), Status.NOT_FOUND)


@pytest.mark.parametrize(
    ("fields", "names"),
    [
        ({"timeout_ms": -1}, "timeout_ms"),
        ({"timeout_ms": MAX_TIMEOUT_MS + 1}, "timeout_ms"),
        ({"timeout_ms": 2**63 - 1}, "timeout_ms"),
        ({"id": ""}, "id"),
        ({"id": "x" * 128}, "id"),
        ({"id": "a\nb"}, "id"),
        ({"tenant": "t" * 128}, "tenant"),
    ],
)
async def test_bad_input_is_invalid_argument(
    shared_stub: SiloStub, ns, fields: dict[str, object], names: str
) -> None:
    req = {"id": "some-job", "tenant": ns.tenant, "timeout_ms": 10, **fields}
    await expect_status(
        shared_stub.wait_job(WaitJobRequest(**req)), Status.INVALID_ARGUMENT, names=names
    )


async def test_a_caller_that_goes_away_is_dropped(
    shared_stub: SiloStub, shared_admin: AdminStub, ns
) -> None:
    job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    before = (await admin_gauges(shared_admin)()).get("job_waiters", 0)
    call = await waiting(shared_stub, shared_admin, job_id, ns.tenant, count=before + 1)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    # Each GetStats is a broker step, and each step sweeps waiters whose caller left.
    await wait_for_gauge(
        admin_gauges(shared_admin),
        "job_waiters",
        lambda n: n <= before,
        what="a cancelled WaitJob stayed in the broker",
    )


async def test_shutdown_answers_a_waiting_call(make_server) -> None:
    server: ServerProcess = await make_server()
    # A channel of our own: server.stop() would close the ones it made before the answer.
    channel = Channel(server.host, server.port)
    try:
        stub, admin = SiloStub(channel), AdminStub(channel)
        job_id = await enqueue(stub, queue="q")
        call = await waiting(stub, admin, job_id, "")
        server.send_signal(signal.SIGTERM)
        await expect_status(call, Status.UNAVAILABLE, names="shutting down")
        assert await asyncio.to_thread(server.wait) == 0
    finally:
        channel.close()


async def test_an_answer_survives_kill9(make_server) -> None:
    server: ServerProcess = await make_server()
    stub = server.stub()
    admin = AdminStub(server.channel())
    job_id, task = await enqueue_and_lease(stub, "", "q")
    call = await waiting(stub, admin, job_id, "")
    await report_result(stub, task, b"kept")
    assert (await call).status == JobStatus.SUCCEEDED
    server.kill9()  # right after the answer
    await server.arestart()
    job = await wait_job(server.stub(), job_id, "", 0)
    assert (job.status, job.result) == (JobStatus.SUCCEEDED, b"kept")
