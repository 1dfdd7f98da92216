"""Backlogs larger than memory's page (docs/architecture.md#caches): each ready group and the
timers keep only their head in memory and read the rest from the store after the last key they
hold. These tests queue several pages' worth of jobs and check that order, cancel, restarts,
timers, concurrency limits and tenant turns behave exactly as with a small backlog, while the
`*_in_memory` gauges stay within a page."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from conftest import MakeServer
from grpclib.client import Channel
from helpers import enqueue_many, finish, get_job, lease, now_ms
from silo._proto.silo.admin.v1 import AdminStub, GetStatsRequest
from silo._proto.silo.v1 import (
    CancelRequest,
    ConcurrencyLimit,
    EnqueueRequest,
    JobStatus,
    SiloStub,
    Task,
)
from silo.testing import ServerProcess

pytestmark = pytest.mark.all_stores

QUEUE = "q"


@pytest.fixture
async def server(make_server: MakeServer) -> ServerProcess:
    return await make_server()


@pytest.fixture
async def admin(server: ServerProcess) -> AsyncIterator[AdminStub]:
    channel = Channel(server.host, server.port)
    yield AdminStub(channel)
    channel.close()


async def stats(admin: AdminStub) -> tuple[dict[str, int], int]:
    """The gauges and the index page size the broker runs with."""
    s = await admin.get_stats(GetStatsRequest())
    return dict(s.gauges), int(s.settings["index_page_size"])


async def drain(
    stub: SiloStub, admin: AdminStub, *, batch: int = 100, limit: int | None = None
) -> list[Task]:
    """Lease (and complete) until nothing is ready or `limit` tasks came; checks after every
    lease that memory holds at most a page of ready entries."""
    got: list[Task] = []
    while limit is None or len(got) < limit:
        want = batch if limit is None else min(batch, limit - len(got))
        tasks = await lease(stub, [QUEUE], worker="w", max_tasks=want)
        if not tasks:
            break
        got.extend(tasks)
        await finish(stub, tasks)
        gauges, page = await stats(admin)
        assert gauges["ready_in_memory"] <= page, gauges
    return got


def jobs(n: int, prefix: str = "j", **fields: object) -> list[EnqueueRequest]:
    return [EnqueueRequest(id=f"{prefix}{i:05d}", queue=QUEUE, **fields) for i in range(n)]  # type: ignore[arg-type]


async def test_a_backlog_of_several_pages_drains_in_order_with_one_page_in_memory(
    server: ServerProcess, admin: AdminStub
) -> None:
    stub = server.stub()
    _, page = await stats(admin)
    n = 3 * page + 17
    ids = await enqueue_many(stub, jobs(n))
    gauges, _ = await stats(admin)
    assert gauges["ready"] == n
    assert 0 < gauges["ready_in_memory"] <= page, gauges
    got = await drain(stub, admin)
    assert [t.job_id for t in got] == ids, "not handed out in enqueue order, or not all once"
    gauges, _ = await stats(admin)
    assert gauges["ready"] == 0 and gauges["ready_in_memory"] == 0, gauges


async def test_a_restart_in_the_middle_of_a_paged_backlog_loses_and_repeats_nothing(
    server: ServerProcess, admin: AdminStub
) -> None:
    stub = server.stub()
    _, page = await stats(admin)
    n = 2 * page + 40
    ids = await enqueue_many(stub, jobs(n))
    first = await drain(stub, admin, limit=page + 30)  # past the first refill
    server.kill9()
    await server.arestart()
    stub = server.stub()
    channel = Channel(server.host, server.port)
    try:
        admin = AdminStub(channel)
        gauges, _ = await stats(admin)
        assert gauges["ready"] == n - len(first), gauges
        assert gauges["ready_in_memory"] <= page, gauges
        rest = await drain(stub, admin)
    finally:
        channel.close()
    assert [t.job_id for t in first + rest] == ids


async def test_cancel_reaches_a_job_that_only_the_store_holds(
    server: ServerProcess, admin: AdminStub
) -> None:
    stub = server.stub()
    _, page = await stats(admin)
    n = 2 * page + 10
    ids = await enqueue_many(stub, jobs(n))
    in_memory, in_store = ids[3], ids[-5]
    for job_id in (in_memory, in_store):
        await stub.cancel(CancelRequest(id=job_id))
    gauges, _ = await stats(admin)
    assert gauges["ready"] == n - 2, gauges
    got = [t.job_id for t in await drain(stub, admin)]
    assert got == [i for i in ids if i not in (in_memory, in_store)]
    for job_id in (in_memory, in_store):
        assert (await get_job(stub, job_id)).status == JobStatus.CANCELLED
    gauges, _ = await stats(admin)
    assert gauges["ready"] == 0, gauges


async def test_scheduled_jobs_beyond_the_timer_page_all_come_due_in_due_order(
    server: ServerProcess, admin: AdminStub
) -> None:
    stub = server.stub()
    _, page = await stats(admin)
    n = 2 * page + 10
    start = now_ms() + 1500
    # Later enqueues are due earlier for a third of the jobs: due order is not enqueue order.
    due = [start + (i % 3) * 7 - (i // 3) % 5 for i in range(n)]
    reqs = [EnqueueRequest(id=f"s{i:05d}", queue=QUEUE, start_at_ms=due[i]) for i in range(n)]
    ids = await enqueue_many(stub, reqs)
    gauges, _ = await stats(admin)
    assert gauges["scheduled"] == n, gauges
    assert gauges["scheduled_in_memory"] <= page, gauges
    # Coming due is a timer inside the broker: poll the gauges until every job is ready.
    deadline = time.monotonic() + 30
    while (await stats(admin))[0]["scheduled"] > 0:
        assert time.monotonic() < deadline, "scheduled jobs did not all come due"
        await asyncio.sleep(0.1)
    got = [t.job_id for t in await drain(stub, admin)]
    expected = [ids[i] for i in sorted(range(n), key=lambda i: (due[i], i))]
    assert got == expected


async def test_a_concurrency_limit_holds_across_pages(
    server: ServerProcess, admin: AdminStub
) -> None:
    stub = server.stub()
    _, page = await stats(admin)
    n, limit = page + 100, 50
    ids = await enqueue_many(
        stub, jobs(n, concurrency_limits=[ConcurrencyLimit(key="k", max_concurrency=limit)])
    )
    seen: list[str] = []
    while True:
        tasks = await lease(stub, [QUEUE], worker="w", max_tasks=limit * 2)
        if not tasks:
            break
        assert len(tasks) <= limit, f"{len(tasks)} tasks hold key k (limit {limit})"
        seen.extend(t.job_id for t in tasks)
        await finish(stub, tasks)
    assert seen == ids


async def test_a_small_tenant_is_served_beside_a_paged_backlog(
    server: ServerProcess, admin: AdminStub
) -> None:
    stub = server.stub()
    _, page = await stats(admin)
    await enqueue_many(stub, jobs(2 * page, prefix="big", tenant="big"))
    small = await enqueue_many(stub, jobs(5, prefix="small", tenant="small"))
    first = await lease(stub, [QUEUE], worker="w", max_tasks=10)
    assert {t.job_id for t in first if t.tenant == "small"} == set(small)
