"""Cancel (docs/api.md#cancel): in every state, what the worker is told, and what it may still
report."""

from __future__ import annotations

import pytest
from grpclib.const import Status
from helpers import (
    RETRY_NOW,
    SHORT_LEASE_MS,
    assert_between,
    enqueue,
    enqueue_and_lease,
    expect_status,
    get_job,
    heartbeat,
    lease,
    now_ms,
    report_cancelled,
    report_failure,
    report_result,
    unique,
)
from silo._proto.silo.v1 import AttemptStatus, CancelRequest, JobStatus, RetryPolicy, SiloStub

# Core behaviour: runs once per store kind (file and S3), see conftest.
pytestmark = pytest.mark.all_stores


async def cancel(stub: SiloStub, job_id: str, tenant: str) -> None:
    await stub.cancel(CancelRequest(id=job_id, tenant=tenant))


async def test_cancel_scheduled_job(shared_stub: SiloStub, ns) -> None:
    # Far enough ahead that a slow first call on a busy machine still finds it SCHEDULED.
    start = now_ms() + 2_000
    job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue, start_at_ms=start)
    assert (await get_job(shared_stub, job_id, ns.tenant)).status == JobStatus.SCHEDULED
    before = now_ms()
    await cancel(shared_stub, job_id, ns.tenant)
    after = now_ms()
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert job.status == JobStatus.CANCELLED
    assert job.next_attempt_at_ms == 0
    assert_between(job.updated_at_ms, before, after, "updated_at_ms")
    # Past its start time it is still never leased.
    past_start = max(0, start - now_ms()) + 300
    assert await lease(shared_stub, [ns.queue], max_tasks=10, wait_ms=past_start) == []
    assert now_ms() > start
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert (job.status, job.attempt_count) == (JobStatus.CANCELLED, 0)


async def test_cancel_pending_job(shared_stub: SiloStub, ns) -> None:
    job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    keep = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    await cancel(shared_stub, job_id, ns.tenant)
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert job.status == JobStatus.CANCELLED
    assert job.next_attempt_at_ms == 0
    tasks = await lease(shared_stub, [ns.queue], max_tasks=10)
    assert [t.job_id for t in tasks] == [keep]


async def test_cancel_scheduled_retry(shared_stub: SiloStub, ns) -> None:
    job_id, task = await enqueue_and_lease(
        shared_stub, ns.tenant, ns.queue, retry_policy=RetryPolicy(max_retries=2, schedule_ms=[300])
    )
    await report_failure(shared_stub, task)
    # Waiting for its retry: SCHEDULED, or PENDING once the 300 ms have passed (a slow store).
    waiting = (await get_job(shared_stub, job_id, ns.tenant)).status
    assert waiting in (JobStatus.SCHEDULED, JobStatus.PENDING), waiting
    await cancel(shared_stub, job_id, ns.tenant)
    assert (await get_job(shared_stub, job_id, ns.tenant)).status == JobStatus.CANCELLED
    assert await lease(shared_stub, [ns.queue], max_tasks=10, wait_ms=800) == []


async def test_cancel_running_job_tells_the_worker(shared_stub: SiloStub, ns) -> None:
    job_id, task = await enqueue_and_lease(shared_stub, ns.tenant, ns.queue, retry_policy=RETRY_NOW)
    await cancel(shared_stub, job_id, ns.tenant)
    assert (await get_job(shared_stub, job_id, ns.tenant)).status == JobStatus.CANCELLED
    resp = await heartbeat(shared_stub, task)
    assert resp.cancelled is True
    # The worker acknowledges.
    await report_cancelled(shared_stub, task)
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert job.status == JobStatus.CANCELLED
    assert job.attempts[0].status == AttemptStatus.CANCELLED
    assert await lease(shared_stub, [ns.queue], max_tasks=10, wait_ms=200) == []


async def test_cancelled_running_job_is_not_retried_after_failure(
    shared_stub: SiloStub, ns
) -> None:
    job_id, task = await enqueue_and_lease(shared_stub, ns.tenant, ns.queue, retry_policy=RETRY_NOW)
    await cancel(shared_stub, job_id, ns.tenant)
    await report_failure(shared_stub, task, code="interrupted")
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert job.status == JobStatus.CANCELLED
    assert job.attempt_count == 1
    assert job.attempts[0].failure is not None
    assert job.attempts[0].failure.code == "interrupted"
    assert await lease(shared_stub, [ns.queue], max_tasks=10, wait_ms=300) == []


async def test_cancelled_running_job_keeps_a_late_result(shared_stub: SiloStub, ns) -> None:
    job_id, task = await enqueue_and_lease(shared_stub, ns.tenant, ns.queue, retry_policy=RETRY_NOW)
    await cancel(shared_stub, job_id, ns.tenant)
    await report_result(shared_stub, task, b"finished anyway")
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert job.status == JobStatus.CANCELLED
    assert job.attempts[0].result == b"finished anyway"
    assert job.attempts[0].finished_at_ms > 0
    assert await lease(shared_stub, [ns.queue], max_tasks=10, wait_ms=200) == []


async def test_cancelled_running_job_is_not_retried_after_expiry(short_stub: SiloStub, ns) -> None:
    job_id, task = await enqueue_and_lease(short_stub, ns.tenant, ns.queue, retry_policy=RETRY_NOW)
    await cancel(short_stub, job_id, ns.tenant)
    # Wait past the lease's expiry: no retry may appear.
    assert await lease(short_stub, [ns.queue], max_tasks=10, wait_ms=3 * SHORT_LEASE_MS) == []
    assert now_ms() > task.lease_expires_at_ms
    job = await get_job(short_stub, job_id, ns.tenant)
    assert (job.status, job.attempt_count) == (JobStatus.CANCELLED, 1)


async def test_cancel_terminal_job_is_failed_precondition(shared_stub: SiloStub, ns) -> None:
    succeeded = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    failed = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    cancelled = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    t1, t2 = await lease(shared_stub, [ns.queue], max_tasks=2)
    await report_result(shared_stub, t1)
    await report_failure(shared_stub, t2)
    await cancel(shared_stub, cancelled, ns.tenant)
    for job_id, status in [
        (succeeded, JobStatus.SUCCEEDED),
        (failed, JobStatus.FAILED),
        (cancelled, JobStatus.CANCELLED),
    ]:
        assert (await get_job(shared_stub, job_id, ns.tenant)).status == status
        await expect_status(cancel(shared_stub, job_id, ns.tenant), Status.FAILED_PRECONDITION)
        assert (await get_job(shared_stub, job_id, ns.tenant)).status == status


async def test_cancel_unknown_job_is_not_found(shared_stub: SiloStub, ns) -> None:
    await expect_status(cancel(shared_stub, "no-such-job", ns.tenant), Status.NOT_FOUND)
    job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    # The same id in another tenant is another (missing) job.
    await expect_status(cancel(shared_stub, job_id, unique("tenant")), Status.NOT_FOUND)
    assert (await get_job(shared_stub, job_id, ns.tenant)).status == JobStatus.PENDING
