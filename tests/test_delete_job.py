"""DeleteJob (docs/api.md#deletejob): a terminal job goes away with its payload, attempts,
tasks, index entries and count, and its id may be enqueued again; other states are refused."""

from __future__ import annotations

import pytest
from grpclib.const import Status
from helpers import (
    RETRY_NOW,
    enqueue,
    enqueue_and_lease,
    expect_job_ref_errors,
    expect_status,
    get_job,
    lease_one,
    list_all,
    now_ms,
    queue_counts,
    report_failure,
    report_result,
    unique,
)
from silo._proto.silo.v1 import (
    CancelRequest,
    DeleteJobRequest,
    GetJobRequest,
    JobStatus,
    ListJobsRequest,
    ReportTaskOutcomeRequest,
    SiloStub,
    WaitJobRequest,
)

# Core behaviour: runs once per store kind (file and S3), see conftest.
pytestmark = pytest.mark.all_stores


async def delete(stub: SiloStub, job_id: str, tenant: str) -> None:
    await stub.delete_job(DeleteJobRequest(id=job_id, tenant=tenant))


async def test_delete_leaves_nothing_behind(shared_stub: SiloStub, ns) -> None:
    job_id, task = await enqueue_and_lease(
        shared_stub, ns.tenant, ns.queue, payload=b"p", metadata={"k": "v"}, retry_policy=RETRY_NOW
    )
    await report_failure(shared_stub, task)
    second = await lease_one(shared_stub, ns.queue)
    await report_result(shared_stub, second)
    keep = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue, metadata={"k": "v"})
    assert await queue_counts(shared_stub, ns.tenant) == {ns.queue: {"SUCCEEDED": 1, "PENDING": 1}}
    await delete(shared_stub, job_id, ns.tenant)

    await expect_status(get_job(shared_stub, job_id, ns.tenant), Status.NOT_FOUND)
    for fields in (
        {},
        {"queue": ns.queue},
        {"statuses": [JobStatus.SUCCEEDED]},
        {"metadata": {"k": "v"}},
    ):
        jobs, _ = await list_all(shared_stub, ListJobsRequest(tenant=ns.tenant, **fields))  # type: ignore[arg-type]
        assert job_id not in [j.id for j in jobs], fields
    assert await queue_counts(shared_stub, ns.tenant) == {ns.queue: {"PENDING": 1}}
    # Its tasks are gone too: a report for one is answered as for a task never issued.
    late = ReportTaskOutcomeRequest(task_id=second.task_id, worker_id="worker-1", result=b"")
    await expect_status(shared_stub.report_task_outcome(late), Status.NOT_FOUND)
    await expect_status(
        shared_stub.wait_job(WaitJobRequest(id=job_id, tenant=ns.tenant)), Status.NOT_FOUND
    )
    await expect_status(delete(shared_stub, job_id, ns.tenant), Status.NOT_FOUND)
    # The id may be enqueued again: a new job, with nothing of the old one.
    assert await enqueue(shared_stub, id=job_id, tenant=ns.tenant, queue=ns.queue) == job_id
    again = await shared_stub.get_job(
        GetJobRequest(id=job_id, tenant=ns.tenant, include_attempts=True)
    )
    assert (again.status, again.attempt_count, again.attempts, again.payload) == (
        JobStatus.PENDING,
        0,
        [],
        b"",
    )
    assert keep != job_id


async def test_delete_refuses_a_job_that_has_not_ended(shared_stub: SiloStub, ns) -> None:
    scheduled = await enqueue(
        shared_stub, tenant=ns.tenant, queue=ns.queue, start_at_ms=now_ms() + 3_600_000
    )
    pending = await enqueue(shared_stub, tenant=ns.tenant, queue=unique("q"))
    running, task = await enqueue_and_lease(shared_stub, ns.tenant, ns.queue)
    for job_id, name in [(scheduled, "SCHEDULED"), (pending, "PENDING"), (running, "RUNNING")]:
        await expect_status(
            delete(shared_stub, job_id, ns.tenant), Status.FAILED_PRECONDITION, names=name
        )
        assert (await get_job(shared_stub, job_id, ns.tenant)).id == job_id
    await shared_stub.cancel(CancelRequest(id=running, tenant=ns.tenant))
    await expect_status(
        delete(shared_stub, running, ns.tenant),
        Status.FAILED_PRECONDITION,
        names="attempt still runs",
    )
    await report_result(shared_stub, task)
    await delete(shared_stub, running, ns.tenant)
    await expect_status(get_job(shared_stub, running, ns.tenant), Status.NOT_FOUND)


async def test_unknown_job_and_bad_input(shared_stub: SiloStub, ns) -> None:
    await expect_job_ref_errors(shared_stub, shared_stub.delete_job, DeleteJobRequest, ns.tenant)
