"""Schedules (docs/api.md#schedules) end to end on a real broker and a real clock: interval and
cron ticks, one job per tick across kill -9, catch-up after a downtime, overlap skip, the
RPCs and their bad input. DST and exact tick times are tested on the manual clock
(rust/cron.rs and rust/shard/tests/flow.rs)."""

from __future__ import annotations

import asyncio

import pytest
from grpclib.const import Status
from helpers import expect_status, get_job, lease, lease_one, report_result
from silo._proto.silo.v1 import (
    CatchUp,
    EnqueueBatchRequest,
    EnqueueRequest,
    ListSchedulesRequest,
    Overlap,
    Schedule,
    ScheduleRef,
    SiloStub,
)
from silo.testing import ServerProcess

# Core behaviour: runs once per store kind (file and S3), see conftest.
pytestmark = pytest.mark.all_stores


def tick_of(job_id: str) -> int:
    return int(job_id.rsplit(":", 1)[1])


async def jobs_of(stub: SiloStub, queue: str, n: int, *, wait_ms: int = 10_000) -> list[str]:
    """Leases and completes the next `n` jobs of `queue` (long-polling for them)."""
    ids: list[str] = []
    while len(ids) < n:
        tasks = await lease(stub, [queue], max_tasks=n - len(ids), wait_ms=wait_ms)
        assert tasks, f"no tick's job within {wait_ms} ms (got {ids})"
        for t in tasks:
            await report_result(stub, t)
            ids.append(t.job_id)
    return ids


async def test_an_interval_schedule_enqueues_one_job_per_tick(shared_stub, ns) -> None:
    s = Schedule(
        tenant=ns.tenant,
        name="every-second",
        interval_ms=1000,
        job=EnqueueRequest(queue=ns.queue, payload=b"tick", metadata={"from": "schedule"}),
    )
    put = await shared_stub.put_schedule(s)
    assert put.next_run_at_ms > 0 and put.last_job_id == ""
    ids = await jobs_of(shared_stub, ns.queue, 2)
    ticks = [tick_of(i) for i in ids]
    assert ids[0] == f"sched:every-second:{ticks[0]}"
    assert ticks == [put.next_run_at_ms, put.next_run_at_ms + 1000]
    job = await get_job(shared_stub, ids[1], ns.tenant)
    assert (job.payload, job.metadata, job.tenant) == (b"tick", {"from": "schedule"}, ns.tenant)
    assert job.created_at_ms >= ticks[1]
    got = await shared_stub.get_schedule(ScheduleRef(tenant=ns.tenant, name="every-second"))
    assert got.last_job_id in ids or tick_of(got.last_job_id) > ticks[1]
    await shared_stub.delete_schedule(ScheduleRef(tenant=ns.tenant, name="every-second"))


async def test_a_seconds_cron_ticks_on_whole_seconds(shared_stub, ns) -> None:
    s = Schedule(
        tenant=ns.tenant, name="cron", cron="* * * * * *", job=EnqueueRequest(queue=ns.queue)
    )
    await shared_stub.put_schedule(s)
    ticks = [tick_of(i) for i in await jobs_of(shared_stub, ns.queue, 2)]
    assert all(t % 1000 == 0 for t in ticks)
    assert ticks[1] - ticks[0] == 1000
    await shared_stub.delete_schedule(ScheduleRef(tenant=ns.tenant, name="cron"))


async def test_one_job_per_tick_across_kill9_right_after_a_tick(make_server) -> None:
    server: ServerProcess = await make_server()
    stub = server.stub()
    s = Schedule(name="s", interval_ms=1000, catch_up=CatchUp.ALL, job=EnqueueRequest(queue="q"))
    await stub.put_schedule(s)
    before = [tick_of(i) for i in await jobs_of(stub, "q", 2)]
    await asyncio.to_thread(server.kill9)  # right after the second tick's job was answered
    await server.arestart()
    stub = server.stub()
    after = [tick_of(i) for i in await jobs_of(stub, "q", 4)]
    ticks = before + after
    # Catch-up ALL: the ticks of the downtime come too; none twice, none skipped.
    assert ticks == list(range(ticks[0], ticks[0] + 1000 * len(ticks), 1000)), ticks


async def _ticks_across_downtime(
    server: ServerProcess, policy: CatchUp
) -> tuple[list[int], list[int], int, int]:
    """Runs a 1 s schedule, stops the broker for 3.5 s and restarts it. Returns the ticks whose
    jobs the first firing after the restart made, every tick made after the stop, the last
    tick seen before the stop, and the time of that first firing (those jobs' created_at_ms)."""
    stub = server.stub()
    s = Schedule(name="s", interval_ms=1000, catch_up=policy, job=EnqueueRequest(queue="q"))
    await stub.put_schedule(s)
    last = tick_of((await jobs_of(stub, "q", 1))[0])
    await server.stop()
    await asyncio.sleep(3.5)  # the downtime itself is what the test is about
    await server.astart()
    stub = server.stub()
    # Wait for a regular tick after the restart: by then the catch-up firing has happened.
    tasks = await lease(stub, ["q"], max_tasks=100, wait_ms=10_000)
    while True:
        more = await lease(stub, ["q"], max_tasks=100, wait_ms=3_000)
        tasks += more
        if not more or len(tasks) > 1:
            break
    created = {tick_of(t.job_id): (await get_job(stub, t.job_id)).created_at_ms for t in tasks}
    first = min(created.values())
    at_first = sorted(t for t, c in created.items() if c == first)
    return at_first, sorted(created), last, first


@pytest.mark.parametrize("policy", [CatchUp.ONE, CatchUp.NONE, CatchUp.ALL])
async def test_catch_up_after_a_downtime(make_server, policy: CatchUp) -> None:
    server: ServerProcess = await make_server()
    at_first, made, last, first = await _ticks_across_downtime(server, policy)
    missed = list(range(last + 1000, first + 1, 1000))  # due when the broker came back
    assert len(missed) >= 3, (last, first)
    late = [t for t in missed if first - t > 1000]  # more than a second late by then
    if policy == CatchUp.ALL:
        assert at_first == missed, "every missed tick, once"
    elif policy == CatchUp.ONE:
        assert at_first == [missed[-1]], "the missed ticks, as one job for the latest"
    else:
        assert not set(late) & set(made), f"a tick of the downtime ran: {made}"
        assert set(at_first) <= set(missed) - set(late)
    assert len(made) == len(set(made))


async def test_overlap_skip_skips_ticks_while_the_last_job_is_open(shared_stub, ns) -> None:
    s = Schedule(
        tenant=ns.tenant,
        name="skip",
        interval_ms=1000,
        overlap=Overlap.SKIP,
        job=EnqueueRequest(queue=ns.queue),
    )
    put = await shared_stub.put_schedule(s)
    task = await lease_one(shared_stub, ns.queue)
    first = tick_of(task.job_id)
    # Ticks come and go while the first job runs: wait until the schedule has moved 2 on.
    ref = ScheduleRef(tenant=ns.tenant, name="skip")
    for _ in range(200):
        if (await shared_stub.get_schedule(ref)).next_run_at_ms >= first + 3000:
            break
        await asyncio.sleep(0.05)  # polling: a skipped tick has no event to await
    else:
        raise AssertionError("the schedule did not move on while its job ran")
    for skipped in (first + 1000, first + 2000):
        await expect_status(
            get_job(shared_stub, f"sched:skip:{skipped}", ns.tenant), Status.NOT_FOUND
        )
    assert (await shared_stub.get_schedule(ref)).last_job_id == task.job_id
    await report_result(shared_stub, task)
    nxt = await lease_one(shared_stub, ns.queue)
    assert tick_of(nxt.job_id) >= first + 3000
    assert put.overlap == Overlap.SKIP
    await shared_stub.delete_schedule(ref)


async def test_put_get_list_and_delete(shared_stub, ns) -> None:
    names = [f"s{i:02d}" for i in range(5)]
    for name in names:
        s = Schedule(tenant=ns.tenant, name=name, cron="@daily", timezone="Europe/Berlin")
        await shared_stub.put_schedule(s)
    got = await shared_stub.get_schedule(ScheduleRef(tenant=ns.tenant, name="s03"))
    assert (got.cron, got.timezone, got.paused) == ("@daily", "Europe/Berlin", False)
    assert got.next_run_at_ms > 0
    # Replace: paused, so it has no next run.
    paused = Schedule(tenant=ns.tenant, name="s03", interval_ms=60_000, paused=True)
    got = await shared_stub.put_schedule(paused)
    assert (got.cron, got.interval_ms, got.next_run_at_ms) == ("", 60_000, 0)
    seen: list[str] = []
    token = ""
    while True:
        req = ListSchedulesRequest(tenant=ns.tenant, page_size=2, page_token=token)
        page = await shared_stub.list_schedules(req)
        assert len(page.schedules) <= 2
        seen += [s.name for s in page.schedules]
        token = page.next_page_token
        if not token:
            break
    assert seen == names
    await shared_stub.delete_schedule(ScheduleRef(tenant=ns.tenant, name="s00"))
    for call in (shared_stub.get_schedule, shared_stub.delete_schedule):
        await expect_status(call(ScheduleRef(tenant=ns.tenant, name="s00")), Status.NOT_FOUND)
    other = await shared_stub.list_schedules(ListSchedulesRequest(tenant=ns.tenant + "-x"))
    assert list(other.schedules) == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * * *"}, "cron"),
        ({"cron": "@sometimes"}, "cron"),
        ({}, "cron"),
        ({"cron": "@daily", "interval_ms": 1000}, "cron"),
        ({"interval_ms": 999}, "interval_ms"),
        ({"interval_ms": 1000, "timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"interval_ms": 1000, "name": ""}, "name"),
        ({"interval_ms": 1000, "name": "n" * 101}, "name"),
        ({"interval_ms": 1000, "job": EnqueueRequest(id="x")}, "job.id"),
        ({"interval_ms": 1000, "job": EnqueueRequest(tenant="other")}, "job.tenant"),
        ({"interval_ms": 1000, "job": EnqueueRequest(priority=101)}, "job.priority"),
        ({"interval_ms": 1000, "job": EnqueueRequest(start_at_ms=5)}, "job.start_at_ms"),
    ],
)
async def test_bad_schedules_name_the_field(shared_stub, fields, field) -> None:
    s = Schedule(**{"name": "bad", **fields})
    await expect_status(shared_stub.put_schedule(s), Status.INVALID_ARGUMENT, names=field)


async def test_bad_list_requests_name_the_field(shared_stub) -> None:
    for req, field in [
        (ListSchedulesRequest(page_size=1001), "page_size"),
        (ListSchedulesRequest(page_token="garbage"), "page_token"),
    ]:
        await expect_status(shared_stub.list_schedules(req), Status.INVALID_ARGUMENT, names=field)
    await expect_status(
        shared_stub.get_schedule(ScheduleRef(name="")), Status.INVALID_ARGUMENT, names="name"
    )


async def test_tick_ids_are_reserved(shared_stub, ns) -> None:
    """A client cannot take a tick's id, so a tick can never find its id taken and be lost."""
    req = EnqueueRequest(id="sched:nightly:1000", tenant=ns.tenant, queue=ns.queue)
    await expect_status(shared_stub.enqueue(req), Status.INVALID_ARGUMENT, names="id")
    batch = await shared_stub.enqueue_batch(EnqueueBatchRequest(jobs=[req]))
    assert batch.results[0].code == Status.INVALID_ARGUMENT.value
    assert "id" in batch.results[0].message
    await expect_status(get_job(shared_stub, req.id, ns.tenant), Status.NOT_FOUND)
