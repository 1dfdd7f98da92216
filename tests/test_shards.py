"""Many shards in one process (docs/cluster.md#shards): `--shards N` is fixed when the store is
created; tenants map to shards by xxh3_64; task ids name their shard; batches split by shard;
LeaseTasks merges the shards in priority order with tenants taking turns and never leases more
than asked; a long-poll wakes on any shard; GetStats reports each shard."""

from __future__ import annotations

import asyncio

import pytest
import xxhash
from grpclib.client import Channel
from helpers import enqueue, expect_status, get_job, lease, unique, wait_parked
from silo._proto.silo.admin.v1 import AdminStub, GetStatsRequest
from silo._proto.silo.v1 import (
    EnqueueBatchRequest,
    EnqueueRequest,
    GetClusterRequest,
    JobStatus,
    ReportTaskOutcomeRequest,
    ReportTaskOutcomesRequest,
    SiloStub,
)
from silo.testing import ServerProcess, ServerStartError

SHARDS = 4


def shard_of(tenant: str, count: int = SHARDS) -> int:
    return xxhash.xxh3_64_intdigest(tenant.encode()) % count


def tenants_on_distinct_shards(count: int, prefix: str) -> list[str]:
    """`count` tenants, each on a different shard."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < count:
        t = f"{prefix}-{i}"
        found.setdefault(shard_of(t), t)
        i += 1
    return list(found.values())


@pytest.fixture
async def sharded(make_server) -> ServerProcess:
    server: ServerProcess = await make_server(extra_args=["--shards", str(SHARDS)])
    return server


async def test_jobs_of_many_tenants_run_on_every_shard(sharded: ServerProcess) -> None:
    stub = sharded.stub()
    queue = unique("q")
    tenants = [f"t{i}" for i in range(16)]
    assert len({shard_of(t) for t in tenants}) == SHARDS
    batch = [EnqueueRequest(tenant=t, queue=queue, payload=t.encode()) for t in tenants]
    batch.append(EnqueueRequest(tenant=tenants[0], queue=queue, priority=101))  # bad entry
    results = (await stub.enqueue_batch(EnqueueBatchRequest(jobs=batch))).results
    assert [r.code for r in results[:-1]] == [0] * len(tenants)
    assert results[-1].code == 3 and "jobs[16].priority" in results[-1].message
    tasks = await lease(stub, [queue], max_tasks=100)
    assert sorted(t.tenant for t in tasks) == sorted(tenants)
    for t in tasks:
        assert t.task_id.split("-", 1)[0] == str(shard_of(t.tenant)), "task ids name the shard"
    # One report batch over every shard, plus a task id no shard issued.
    reports = [ReportTaskOutcomeRequest(task_id=t.task_id, worker_id="worker-1") for t in tasks]
    reports.append(ReportTaskOutcomeRequest(task_id="99-nope", worker_id="worker-1", result=b""))
    for r in reports[:-1]:
        r.result = b"done"
    answers = (await stub.report_task_outcomes(ReportTaskOutcomesRequest(reports=reports))).results
    assert [a.code for a in answers] == [0] * len(tasks) + [5]
    for t in tasks:
        assert (await get_job(stub, t.job_id, t.tenant)).status == JobStatus.SUCCEEDED


async def test_a_lease_merges_shards_by_priority_and_never_takes_more(
    sharded: ServerProcess,
) -> None:
    stub = sharded.stub()
    queue = unique("q")
    low, high = tenants_on_distinct_shards(2, unique("prio"))
    for _ in range(5):
        await enqueue(stub, tenant=low, queue=queue, priority=10)
    await enqueue(stub, tenant=high, queue=queue, priority=90)
    first = await lease(stub, [queue], max_tasks=1)
    assert [t.tenant for t in first] == [high], "priority first, across shards"
    rest = await lease(stub, [queue], max_tasks=3)
    assert len(rest) == 3 and {t.tenant for t in rest} == {low}
    assert len(await lease(stub, [queue], max_tasks=10)) == 2


async def test_tenants_of_different_shards_take_turns(sharded: ServerProcess) -> None:
    stub = sharded.stub()
    queue = unique("q")
    big, *small = tenants_on_distinct_shards(3, unique("turns"))
    await stub.enqueue_batch(
        EnqueueBatchRequest(jobs=[EnqueueRequest(tenant=big, queue=queue) for _ in range(20)])
    )
    for t in small:
        await enqueue(stub, tenant=t, queue=queue)
    tasks = await lease(stub, [queue], max_tasks=4)
    assert len(tasks) == 4
    assert {t.tenant for t in tasks} == {big, *small}, "one turn each before the big backlog"


async def test_a_long_poll_wakes_on_any_shard(sharded: ServerProcess) -> None:
    stub = sharded.stub()
    queue = unique("q")
    channel = Channel(sharded.host, sharded.port)
    try:
        admin = AdminStub(channel)
        for tenant in tenants_on_distinct_shards(SHARDS, unique("wake")):
            poll = asyncio.ensure_future(lease(stub, [queue], max_tasks=5, wait_ms=20_000))
            await wait_parked(admin)
            job_id = await enqueue(stub, tenant=tenant, queue=queue)
            tasks = await poll
            assert [t.job_id for t in tasks] == [job_id]
    finally:
        channel.close()


async def test_stats_and_cluster_show_every_shard(sharded: ServerProcess) -> None:
    stub = sharded.stub()
    queue = unique("q")
    tenants = tenants_on_distinct_shards(SHARDS, unique("stats"))
    for t in tenants:
        await enqueue(stub, tenant=t, queue=queue)
    channel = Channel(sharded.host, sharded.port)
    try:
        stats = await AdminStub(channel).get_stats(GetStatsRequest())
    finally:
        channel.close()
    assert stats.settings["shards"] == str(SHARDS)
    assert sorted(s.shard for s in stats.shards) == list(range(SHARDS))
    assert all(s.gauges["ready"] >= 1 for s in stats.shards)
    assert stats.gauges["ready"] == sum(s.gauges["ready"] for s in stats.shards)
    cluster = await stub.get_cluster(GetClusterRequest())
    assert cluster.shard_count == SHARDS
    assert cluster.hash == "xxh3_64"
    assert len(cluster.nodes) == 1
    assert sorted(cluster.nodes[0].shards) == list(range(SHARDS))
    assert cluster.nodes[0].address == sharded.address


async def test_the_shard_count_is_fixed_when_the_store_is_created(
    sharded: ServerProcess, make_server
) -> None:
    stub: SiloStub = sharded.stub()
    tenant = unique("kept")
    job_id = await enqueue(stub, tenant=tenant, queue="q")
    store = sharded.store
    await sharded.stop()
    with pytest.raises(ServerStartError) as info:
        await make_server(store=store, extra_args=["--shards", "3"])
    text = str(info.value)
    assert "shards" in text and "4" in text and "3" in text
    # Without --shards the store's own count is used, and its jobs are where they were.
    again: ServerProcess = await make_server(store=store)
    assert (await get_job(again.stub(), job_id, tenant)).status == JobStatus.PENDING


async def test_a_bad_shard_count_is_refused(make_server) -> None:
    for bad in ("0", "x", "5000"):
        with pytest.raises(ServerStartError) as info:
            await make_server(extra_args=["--shards", bad])
        assert "--shards" in str(info.value)


async def test_bad_task_ids_answer_not_found(sharded: ServerProcess) -> None:
    from grpclib.const import Status
    from silo._proto.silo.v1 import HeartbeatTaskRequest

    stub = sharded.stub()
    for task_id in ("nope", "7-x", "2-0190b2c4"):
        await expect_status(
            stub.heartbeat_task(HeartbeatTaskRequest(task_id=task_id, worker_id="w")),
            Status.NOT_FOUND,
        )
