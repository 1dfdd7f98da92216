"""ExpediteJob (docs/api.md#expeditejob): a SCHEDULED job (future start or retry backoff)
becomes due now, keeping priority first; other states are refused."""

from __future__ import annotations

import pytest
from grpclib.const import Status
from helpers import (
    enqueue,
    enqueue_and_lease,
    expect_job_ref_errors,
    expect_status,
    failed_job,
    get_job,
    lease,
    lease_one,
    now_ms,
    report_failure,
    unique,
)
from silo._proto.silo.v1 import ExpediteJobRequest, Job, JobStatus, RetryPolicy, SiloStub

# Core behaviour: runs once per store kind (file and S3), see conftest.
pytestmark = pytest.mark.all_stores


async def expedite(stub: SiloStub, job_id: str, tenant: str) -> Job:
    return await stub.expedite_job(ExpediteJobRequest(id=job_id, tenant=tenant))


async def test_expedite_a_future_job(shared_stub: SiloStub, ns) -> None:
    start = now_ms() + 3_600_000
    job_id = await enqueue(
        shared_stub, tenant=ns.tenant, queue=ns.queue, start_at_ms=start, payload=b"p"
    )
    assert await lease(shared_stub, [ns.queue]) == []
    job = await expedite(shared_stub, job_id, ns.tenant)
    assert job.status == JobStatus.PENDING
    assert job.next_attempt_at_ms <= now_ms() and job.start_at_ms == start
    task = await lease_one(shared_stub, ns.queue, wait_ms=0)
    assert (task.job_id, task.payload) == (job_id, b"p")


async def test_expedite_a_retry_backoff_keeps_priority_first(shared_stub: SiloStub, ns) -> None:
    backoff = RetryPolicy(max_retries=1, schedule_ms=[3_600_000])
    job_id, task = await enqueue_and_lease(
        shared_stub, ns.tenant, ns.queue, retry_policy=backoff, priority=10
    )
    await report_failure(shared_stub, task)
    assert (await get_job(shared_stub, job_id, ns.tenant)).status == JobStatus.SCHEDULED
    urgent = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue, priority=90)
    assert (await expedite(shared_stub, job_id, ns.tenant)).status == JobStatus.PENDING
    order = [t.job_id for t in await lease(shared_stub, [ns.queue], max_tasks=2)]
    assert order == [urgent, job_id], "priority first, even for an expedited job"


async def test_expedite_refuses_a_job_that_is_not_scheduled(shared_stub: SiloStub, ns) -> None:
    pending = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    failed = await failed_job(shared_stub, ns.tenant, unique("q"))
    for job_id, name in [(pending, "PENDING"), (failed, "FAILED")]:
        await expect_status(
            expedite(shared_stub, job_id, ns.tenant), Status.FAILED_PRECONDITION, names=name
        )


async def test_unknown_job_and_bad_input(shared_stub: SiloStub, ns) -> None:
    await expect_job_ref_errors(
        shared_stub, shared_stub.expedite_job, ExpediteJobRequest, ns.tenant
    )
