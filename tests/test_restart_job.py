"""RestartJob (docs/api.md#restartjob): a FAILED or CANCELLED job runs again as a new attempt
with a fresh retry budget, due now, under its concurrency limits; other states are refused."""

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
    heartbeat,
    lease,
    lease_one,
    now_ms,
    report_failure,
    report_result,
    unique,
)
from silo._proto.silo.v1 import (
    AttemptStatus,
    CancelRequest,
    ConcurrencyLimit,
    Job,
    JobStatus,
    RestartJobRequest,
    RetryPolicy,
    SiloStub,
)

# Core behaviour: runs once per store kind (file and S3), see conftest.
pytestmark = pytest.mark.all_stores


async def restart(stub: SiloStub, job_id: str, tenant: str) -> Job:
    return await stub.restart_job(RestartJobRequest(id=job_id, tenant=tenant))


async def test_restart_a_failed_job_with_a_fresh_retry_budget(shared_stub: SiloStub, ns) -> None:
    policy = RetryPolicy(max_retries=1, schedule_ms=[0])
    job_id, first = await enqueue_and_lease(
        shared_stub, ns.tenant, ns.queue, payload=b"in", retry_policy=policy
    )
    assert not first.is_last_attempt
    await report_failure(shared_stub, first)
    second = await lease_one(shared_stub, ns.queue)
    assert second.is_last_attempt
    await report_failure(shared_stub, second)
    failed = await get_job(shared_stub, job_id, ns.tenant)
    assert failed.status == JobStatus.FAILED and failed.retained_until_ms > 0

    job = await restart(shared_stub, job_id, ns.tenant)
    assert (job.status, job.attempt_count, job.retained_until_ms) == (JobStatus.PENDING, 2, 0)
    assert job.updated_at_ms >= failed.updated_at_ms
    third = await lease_one(shared_stub, ns.queue)
    assert (third.attempt, third.payload, third.is_last_attempt) == (3, b"in", False)
    await report_failure(shared_stub, third)  # the fresh budget allows one retry again
    fourth = await lease_one(shared_stub, ns.queue)
    assert (fourth.attempt, fourth.is_last_attempt) == (4, True)
    await report_result(shared_stub, fourth, b"done")
    done = await get_job(shared_stub, job_id, ns.tenant)
    assert (done.status, done.result, done.attempt_count) == (JobStatus.SUCCEEDED, b"done", 4)
    assert [a.status for a in done.attempts] == [AttemptStatus.FAILED] * 3 + [
        AttemptStatus.SUCCEEDED
    ]


async def test_restart_a_cancelled_job(shared_stub: SiloStub, ns) -> None:
    job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    await shared_stub.cancel(CancelRequest(id=job_id, tenant=ns.tenant))
    assert (await restart(shared_stub, job_id, ns.tenant)).status == JobStatus.PENDING
    task = await lease_one(shared_stub, ns.queue)
    assert (task.job_id, task.attempt) == (job_id, 1)


async def test_restart_waits_for_its_concurrency_slot(shared_stub: SiloStub, ns) -> None:
    key = [ConcurrencyLimit(key="k", max_concurrency=1)]
    failed = await failed_job(shared_stub, ns.tenant, ns.queue, concurrency_limits=key)
    holder, task = await enqueue_and_lease(shared_stub, ns.tenant, ns.queue, concurrency_limits=key)
    job = await restart(shared_stub, failed, ns.tenant)
    assert job.status == JobStatus.PENDING
    assert (await get_job(shared_stub, failed, ns.tenant)).waiting_on_keys == ["k"]
    assert await lease(shared_stub, [ns.queue], max_tasks=10) == [], "the slot is taken"
    await report_result(shared_stub, task)
    freed = await lease_one(shared_stub, ns.queue, wait_ms=0)
    assert (freed.job_id, freed.attempt) == (failed, 2)
    assert holder != failed


async def test_restart_refuses_other_states(shared_stub: SiloStub, ns) -> None:
    scheduled = await enqueue(
        shared_stub, tenant=ns.tenant, queue=ns.queue, start_at_ms=now_ms() + 3_600_000
    )
    pending = await enqueue(shared_stub, tenant=ns.tenant, queue=unique("q"))
    running, task = await enqueue_and_lease(shared_stub, ns.tenant, ns.queue)
    succeeded, done = await enqueue_and_lease(shared_stub, ns.tenant, ns.queue)
    await report_result(shared_stub, done)
    for job_id, name in [
        (scheduled, "SCHEDULED"),
        (pending, "PENDING"),
        (running, "RUNNING"),
        (succeeded, "SUCCEEDED"),
    ]:
        err = await expect_status(
            restart(shared_stub, job_id, ns.tenant), Status.FAILED_PRECONDITION, names=name
        )
        assert "FAILED or CANCELLED" in (err.message or "")
    # A job cancelled while it ran is refused while its attempt still runs.
    await shared_stub.cancel(CancelRequest(id=running, tenant=ns.tenant))
    await expect_status(
        restart(shared_stub, running, ns.tenant),
        Status.FAILED_PRECONDITION,
        names="attempt still runs",
    )
    assert (await heartbeat(shared_stub, task)).cancelled
    await report_failure(shared_stub, task)
    assert (await restart(shared_stub, running, ns.tenant)).status == JobStatus.PENDING


async def test_unknown_job_and_bad_input(shared_stub: SiloStub, ns) -> None:
    await expect_job_ref_errors(shared_stub, shared_stub.restart_job, RestartJobRequest, ns.tenant)
