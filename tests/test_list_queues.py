"""ListQueues (docs/api.md#listqueues): a tenant's queues with job counts per status, kept
incrementally as jobs move, equal to what ListJobs finds, and durable across kill -9."""

from __future__ import annotations

import pytest
from grpclib.const import Status
from helpers import (
    RETRY_NOW,
    STATUS_NAMES,
    enqueue,
    enqueue_and_lease,
    expect_status,
    failed_job,
    get_job,
    lease,
    list_all,
    now_ms,
    queue_counts,
    report_failure,
    report_result,
    unique,
)
from silo._proto.silo.v1 import (
    BulkJobsRequest,
    CancelRequest,
    DeleteJobRequest,
    ExpediteJobRequest,
    GetJobRequest,
    JobStatus,
    ListJobsRequest,
    ListQueuesRequest,
    QueueRef,
    RestartJobRequest,
    SiloStub,
)
from silo.testing import ServerProcess

# Core behaviour: runs once per store kind (file and S3), see conftest.
pytestmark = pytest.mark.all_stores


async def listed_counts(stub: SiloStub, tenant: str, queue: str) -> dict[str, int]:
    """What ListJobs finds per status in one queue (zero counts left out)."""
    out: dict[str, int] = {}
    for number, name in enumerate(STATUS_NAMES, start=1):
        jobs, _ = await list_all(
            stub, ListJobsRequest(tenant=tenant, queue=queue, statuses=[JobStatus(number)])
        )
        if jobs:
            out[name] = len(jobs)
    return out


async def test_counts_follow_every_status(shared_stub: SiloStub, ns) -> None:
    t, q = ns.tenant, ns.queue
    assert await queue_counts(shared_stub, t) == {}
    await enqueue(shared_stub, tenant=t, queue=q, start_at_ms=now_ms() + 3_600_000)
    assert await queue_counts(shared_stub, t) == {q: {"SCHEDULED": 1}}
    cancelled = await enqueue(shared_stub, tenant=t, queue=q)
    await shared_stub.cancel(CancelRequest(id=cancelled, tenant=t))
    for _ in range(3):
        await enqueue(shared_stub, tenant=t, queue=q, retry_policy=RETRY_NOW)
    assert await queue_counts(shared_stub, t) == {q: {"SCHEDULED": 1, "PENDING": 3, "CANCELLED": 1}}
    ok, fail, retry = await lease(shared_stub, [q], max_tasks=3)
    assert await queue_counts(shared_stub, t) == {q: {"SCHEDULED": 1, "RUNNING": 3, "CANCELLED": 1}}
    await report_result(shared_stub, ok)
    await report_failure(shared_stub, fail, non_retryable=True)
    await report_failure(shared_stub, retry)  # retried at once: PENDING again
    counts = {q: {"SCHEDULED": 1, "PENDING": 1, "SUCCEEDED": 1, "FAILED": 1, "CANCELLED": 1}}
    assert await queue_counts(shared_stub, t) == counts
    assert await listed_counts(shared_stub, t, q) == counts[q]


async def test_queues_and_tenants_are_apart(shared_stub: SiloStub, ns) -> None:
    other_q, other_t = unique("queue"), unique("tenant")
    await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    await enqueue(shared_stub, tenant=ns.tenant, queue=other_q)
    await enqueue(shared_stub, tenant=ns.tenant, queue=other_q)
    await enqueue(shared_stub, tenant=other_t, queue=ns.queue)
    await enqueue(shared_stub, tenant=ns.tenant)  # the default queue
    resp = await shared_stub.list_queues(ListQueuesRequest(tenant=ns.tenant))
    assert [q.name for q in resp.queues] == sorted(["default", ns.queue, other_q])
    assert all(not q.paused for q in resp.queues)
    assert (await queue_counts(shared_stub, ns.tenant))[other_q] == {"PENDING": 2}
    assert await queue_counts(shared_stub, other_t) == {ns.queue: {"PENDING": 1}}


async def test_bad_tenant_is_invalid_argument(shared_stub: SiloStub) -> None:
    await expect_status(
        shared_stub.list_queues(ListQueuesRequest(tenant="x" * 128)),
        Status.INVALID_ARGUMENT,
        names="tenant",
    )


async def test_counts_and_indexes_survive_kill9(make_server) -> None:
    server: ServerProcess = await make_server()
    stub = server.stub()
    t, q = "tenant-k", "q"
    await enqueue(stub, tenant=t, queue=q, start_at_ms=now_ms() + 3_600_000, metadata={"a": "1"})
    _, task = await enqueue_and_lease(stub, t, q)
    await report_result(stub, task)
    _, running = await enqueue_and_lease(stub, t, q)
    pending = await enqueue(stub, tenant=t, queue=q, metadata={"a": "1"})
    before = await queue_counts(stub, t)
    assert before == {q: {"SCHEDULED": 1, "SUCCEEDED": 1, "RUNNING": 1, "PENDING": 1}}
    server.kill9()  # right after the last answer
    await server.arestart()
    stub = server.stub()
    assert await queue_counts(stub, t) == before
    assert await listed_counts(stub, t, q) == before[q]
    tagged, _ = await list_all(stub, ListJobsRequest(tenant=t, metadata={"a": "1"}))
    assert tagged[0].id == pending and len(tagged) == 2
    # The broker goes on counting from the stored counts.
    await report_result(stub, running, worker="worker-1")
    assert await queue_counts(stub, t) == {q: {"SCHEDULED": 1, "SUCCEEDED": 2, "PENDING": 1}}


async def test_operator_changes_survive_kill9(make_server) -> None:
    """RestartJob, ExpediteJob, DeleteJob and a bulk call, each acknowledged just before a
    kill -9: after the restart GetJob, ListJobs and ListQueues all show them, and agree."""
    server: ServerProcess = await make_server()
    stub = server.stub()
    t, q, other = "tenant-ops", "q", "q-bulk"
    restarted = await failed_job(stub, t, q)
    deleted = await failed_job(stub, t, q)
    later = await enqueue(stub, tenant=t, queue=q, start_at_ms=now_ms() + 3_600_000)
    bulk = [await enqueue(stub, tenant=t, queue=other, metadata={"b": "1"}) for _ in range(3)]
    assert (await stub.restart_job(RestartJobRequest(id=restarted, tenant=t))).status == (
        JobStatus.PENDING
    )
    assert (await stub.expedite_job(ExpediteJobRequest(id=later, tenant=t))).status == (
        JobStatus.PENDING
    )
    await stub.delete_job(DeleteJobRequest(id=deleted, tenant=t))
    cancelled = await stub.cancel_jobs(
        BulkJobsRequest(filter=ListJobsRequest(tenant=t, metadata={"b": "1"}))
    )
    assert (cancelled.changed, cancelled.more) == (3, False)
    before = await queue_counts(stub, t)
    assert before == {q: {"PENDING": 2}, other: {"CANCELLED": 3}}
    server.kill9()  # right after the last answer
    await server.arestart()
    stub = server.stub()
    assert await queue_counts(stub, t) == before
    for name in (q, other):
        assert await listed_counts(stub, t, name) == before[name]
    await expect_status(stub.get_job(GetJobRequest(id=deleted, tenant=t)), Status.NOT_FOUND)
    assert (await get_job(stub, restarted, t)).status == JobStatus.PENDING
    assert {(await get_job(stub, j, t)).status for j in bulk} == {JobStatus.CANCELLED}
    # The expedited job is due: both PENDING jobs are leased now, the restarted one first.
    tasks = await lease(stub, [q], max_tasks=10)
    assert [task.job_id for task in tasks] == [restarted, later]


async def test_a_paused_queue_is_listed_paused_with_its_counts(shared_stub: SiloStub, ns) -> None:
    t, q, empty = ns.tenant, ns.queue, unique("empty")
    await enqueue(shared_stub, tenant=t, queue=q)
    await enqueue(shared_stub, tenant=t, queue=unique("other"))
    await shared_stub.pause_queue(QueueRef(tenant=t, queue=q))
    await shared_stub.pause_queue(QueueRef(tenant=t, queue=empty))
    await shared_stub.pause_queue(QueueRef(tenant=unique("tenant"), queue=q))
    resp = await shared_stub.list_queues(ListQueuesRequest(tenant=t))
    listed = {x.name: x for x in resp.queues}
    assert {name: x.paused for name, x in listed.items()} == {
        q: True,
        empty: True,  # paused with no job: listed, every count 0
        **{name: False for name in listed if name not in (q, empty)},
    }
    assert listed[empty].counts == dict.fromkeys(STATUS_NAMES, 0)
    assert listed[q].counts["PENDING"] == 1
    await shared_stub.resume_queue(QueueRef(tenant=t, queue=empty))
    await shared_stub.resume_queue(QueueRef(tenant=t, queue=q))
    resp = await shared_stub.list_queues(ListQueuesRequest(tenant=t))
    assert empty not in [x.name for x in resp.queues], "resumed and without jobs: gone"
    assert all(not x.paused for x in resp.queues)
