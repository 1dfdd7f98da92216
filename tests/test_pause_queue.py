"""PauseQueue and ResumeQueue (docs/api.md#pausequeue-and-resumequeue): a paused queue of a
tenant leases nothing, not even to waiting long-polls, keeps accepting jobs, keeps their order,
and stays paused across a restart; resuming serves waiting long-polls at once."""

from __future__ import annotations

import asyncio

import pytest
from grpclib.const import Status
from helpers import (
    STATUS_NAMES,
    enqueue,
    expect_status,
    get_job,
    lease,
    now_ms,
    wait_parked,
)
from silo._proto.silo.admin.v1 import AdminStub, GetStatsRequest
from silo._proto.silo.v1 import CancelRequest, JobStatus, ListQueuesRequest, QueueRef

# Core behaviour: runs once per store kind (file and S3), see conftest.
pytestmark = pytest.mark.all_stores


async def test_a_paused_queue_leases_nothing_and_resumes_in_order(shared_stub, ns) -> None:
    ref = QueueRef(tenant=ns.tenant, queue=ns.queue)
    low = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue, priority=10)
    stats = await shared_stub.pause_queue(ref)
    assert (stats.name, stats.paused) == (ns.queue, True)
    assert (await shared_stub.pause_queue(ref)).paused, "idempotent"
    high = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue, priority=90)
    later = await enqueue(
        shared_stub, tenant=ns.tenant, queue=ns.queue, start_at_ms=now_ms() + 3_600_000
    )
    assert await lease(shared_stub, [ns.queue], max_tasks=10) == []
    assert (await get_job(shared_stub, high, ns.tenant)).status == JobStatus.PENDING
    assert (await get_job(shared_stub, later, ns.tenant)).status == JobStatus.SCHEDULED
    resumed = await shared_stub.resume_queue(ref)
    assert (resumed.name, resumed.paused) == (ns.queue, False)
    assert not (await shared_stub.resume_queue(ref)).paused, "idempotent"
    got = [t.job_id for t in await lease(shared_stub, [ns.queue], max_tasks=10)]
    assert got == [high, low]


async def test_a_paused_queue_serves_no_long_poll_until_resumed(shared_server, ns) -> None:
    stub = shared_server.stub()
    admin = AdminStub(shared_server.channel())
    ref = QueueRef(tenant=ns.tenant, queue=ns.queue)
    await stub.pause_queue(ref)
    before = (await admin.get_stats(GetStatsRequest())).gauges.get("lease_waiters", 0)
    poll = asyncio.create_task(lease(stub, [ns.queue], max_tasks=10, wait_ms=30_000))
    await wait_parked(admin, before + 1)
    job = await enqueue(stub, tenant=ns.tenant, queue=ns.queue)
    # The enqueue's step served parked calls: this one is still waiting.
    await wait_parked(admin, before + 1)
    assert not poll.done()
    await stub.resume_queue(ref)
    tasks = await asyncio.wait_for(poll, 10)
    assert [t.job_id for t in tasks] == [job]
    shared_server.close_channels()


async def test_pausing_is_per_tenant_and_per_queue(shared_stub, ns) -> None:
    other = ns.tenant + "-other"
    await shared_stub.pause_queue(QueueRef(tenant=ns.tenant, queue=ns.queue))
    mine = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    theirs = await enqueue(shared_stub, tenant=other, queue=ns.queue)
    side = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue + "-side")
    got = {t.job_id for t in await lease(shared_stub, [ns.queue, ns.queue + "-side"], max_tasks=10)}
    assert got == {theirs, side}
    await shared_stub.resume_queue(QueueRef(tenant=ns.tenant, queue=ns.queue))
    assert [t.job_id for t in await lease(shared_stub, [ns.queue], max_tasks=10)] == [mine]


async def test_an_empty_queue_name_is_the_default_queue(server) -> None:
    stub = server.stub()
    assert (await stub.pause_queue(QueueRef())).name == "default"
    await enqueue(stub)
    assert await lease(stub, [""], max_tasks=1) == []
    await stub.resume_queue(QueueRef(queue="default"))
    assert len(await lease(stub, [""], max_tasks=1)) == 1


async def test_a_pause_survives_kill9(make_server) -> None:
    server = await make_server()
    stub = server.stub()
    await stub.pause_queue(QueueRef(tenant="t", queue="q"))
    ids = [await enqueue(stub, tenant="t", queue="q") for _ in range(3)]
    await asyncio.to_thread(server.kill9)
    await server.arestart()
    stub = server.stub()
    assert await lease(stub, ["q"], max_tasks=10) == []
    await stub.resume_queue(QueueRef(tenant="t", queue="q"))
    assert [t.job_id for t in await lease(stub, ["q"], max_tasks=10)] == ids


@pytest.mark.parametrize(
    ("ref", "field"),
    [(QueueRef(queue="q" * 128), "queue"), (QueueRef(tenant="a\x00b"), "tenant")],
)
async def test_bad_queue_refs_name_the_field(shared_stub, ref, field) -> None:
    for call in (shared_stub.pause_queue, shared_stub.resume_queue):
        await expect_status(call(ref), Status.INVALID_ARGUMENT, names=field)


async def test_pause_and_resume_answer_the_queues_counts(shared_stub, ns) -> None:
    ref = QueueRef(tenant=ns.tenant, queue=ns.queue)
    empty = await shared_stub.pause_queue(QueueRef(tenant=ns.tenant, queue=ns.queue + "-empty"))
    assert empty.counts == dict.fromkeys(STATUS_NAMES, 0), "every status, 0 included"
    await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue, start_at_ms=now_ms() + 3_600_000)
    gone = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    await shared_stub.cancel(CancelRequest(id=gone, tenant=ns.tenant))
    expected = dict.fromkeys(STATUS_NAMES, 0) | {"PENDING": 1, "SCHEDULED": 1, "CANCELLED": 1}
    paused = await shared_stub.pause_queue(ref)
    assert (paused.paused, paused.counts) == (True, expected)
    resumed = await shared_stub.resume_queue(ref)
    assert (resumed.paused, resumed.counts) == (False, expected)
    listed = await shared_stub.list_queues(ListQueuesRequest(tenant=ns.tenant))
    assert [q.counts for q in listed.queues if q.name == ns.queue] == [expected]
