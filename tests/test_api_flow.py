"""The flow-control calls of the typed `silo.Api` (python/silo/methods.py) and of `silo.task`
against an embedded broker (`silo.open`) and a remote one (`silo.connect`), same test bodies:
pause and resume, the schedule calls, and the task options `rate_limits=`, `unique_key=` and
`unique_for_ms=`. The wire behaviour itself is tested per RPC (tests/test_pause_queue.py,
test_schedules.py, test_rate_limit.py, test_unique.py); here, the typed values and errors."""

from __future__ import annotations

from datetime import datetime

import pytest
import silo
from conftest import MakeApi
from helpers import now_ms
from silo import CatchUp, JobStatus, NewJob, Overlap, QueueStats, RateLimit, Schedule

HOUR_MS = 3_600_000


@silo.task(queue="flow-rated", rate_limits=[RateLimit(key="mail", limit=2, period_ms=HOUR_MS)])
async def rated(n: int) -> int:
    return n


@silo.task(queue="flow-unique", unique_key=lambda user: f"sync:{user}")
async def sync_user(user: str) -> None:
    return None


@silo.task(queue="flow-window", unique_key="nightly", unique_for_ms=HOUR_MS)
async def nightly() -> None:
    return None


async def test_pause_and_resume(make_api: MakeApi) -> None:
    api = await make_api()
    first = await api.enqueue(queue="pq", tenant="t")
    second = await api.enqueue(queue="pq", tenant="t")
    paused = await api.pause_queue(queue="pq", tenant="t")
    assert isinstance(paused, QueueStats) and (paused.name, paused.paused) == ("pq", True)
    assert await api.lease_tasks(worker_id="w", queues=["pq"], max_tasks=10, wait_ms=300) == []
    # Another tenant's queue of the same name is not paused.
    other = await api.enqueue(queue="pq", tenant="u")
    [task] = await api.lease_tasks(worker_id="w", queues=["pq"], max_tasks=10)
    assert (task.job_id, task.tenant) == (other, "u")
    resumed = await api.resume_queue(queue="pq", tenant="t")
    assert (resumed.name, resumed.paused) == ("pq", False)
    tasks = await api.lease_tasks(worker_id="w", queues=["pq"], max_tasks=10, wait_ms=5000)
    assert [t.job_id for t in tasks] == [first, second], "in order, once resumed"
    with pytest.raises(silo.InvalidArgument, match="queue"):
        await api.pause_queue(queue="x" * 200)


async def test_schedule_calls(make_api: MakeApi) -> None:
    api = await make_api()
    template = NewJob(queue="sq", payload=b"p", metadata={"k": "v"}, priority=7)
    before = now_ms()
    stored = await api.put_schedule(
        Schedule(name="hourly", tenant="t", job=template, interval_ms=HOUR_MS)
    )
    assert isinstance(stored, Schedule)
    assert (stored.name, stored.tenant, stored.interval_ms, stored.cron) == (
        "hourly",
        "t",
        HOUR_MS,
        "",
    )
    assert stored.next_run_at_ms >= before + HOUR_MS - 1000
    assert isinstance(stored.next_run_at, datetime) and stored.next_run_at.tzinfo is not None
    assert (stored.job.queue, stored.job.payload, dict(stored.job.metadata)) == (
        "sq",
        b"p",
        {"k": "v"},
    )
    assert stored.job.priority == 7
    cron = Schedule(
        name="berlin",
        tenant="t",
        job=NewJob(queue="sq"),
        cron="30 2 * * *",
        timezone="Europe/Berlin",
        overlap=Overlap.SKIP,
        catch_up=CatchUp.ALL,
        paused=True,
    )
    await api.put_schedule(cron)
    read = await api.get_schedule(name="berlin", tenant="t")
    assert (read.cron, read.timezone, read.paused) == ("30 2 * * *", "Europe/Berlin", True)
    assert (read.overlap, read.catch_up) == (Overlap.SKIP, CatchUp.ALL)
    assert read.last_job_id == ""
    await api.put_schedule(Schedule(name="alpha", tenant="t", job=template, interval_ms=HOUR_MS))

    names = [s.name async for s in api.list_schedules(tenant="t", page_size=2)]
    assert names == ["alpha", "berlin", "hourly"], "by name, across pages"
    page = await api.list_schedules_page(tenant="t", page_size=2)
    assert [s.name for s in page.schedules] == ["alpha", "berlin"] and page.next_page_token
    assert [s async for s in api.list_schedules(tenant="other")] == []

    # Replacing by (tenant, name).
    replaced = await api.put_schedule(
        Schedule(name="hourly", tenant="t", job=template, interval_ms=2 * HOUR_MS)
    )
    assert replaced.interval_ms == 2 * HOUR_MS
    await api.delete_schedule(name="hourly", tenant="t")
    with pytest.raises(silo.errors.ScheduleNotFound):
        await api.get_schedule(name="hourly", tenant="t")
    with pytest.raises(silo.NotFound):
        await api.delete_schedule(name="hourly", tenant="t")


async def test_a_schedule_ticks_into_a_job(make_api: MakeApi) -> None:
    api = await make_api()
    await api.put_schedule(Schedule(name="tick", job=NewJob(queue="tq"), interval_ms=1000))
    [task] = await api.lease_tasks(worker_id="w", queues=["tq"], wait_ms=10_000)
    assert task.job_id.startswith("sched:tick:")
    assert (await api.get_schedule(name="tick")).last_job_id.startswith("sched:tick:")
    await api.delete_schedule(name="tick")


@pytest.mark.parametrize(
    ("schedule", "named"),
    [
        (Schedule(name="s", job=NewJob(), cron="61 * * * *"), "cron"),
        (Schedule(name="s", job=NewJob(), cron="@daily", timezone="Mars/Base"), "timezone"),
        (Schedule(name="s", job=NewJob(), cron="@daily", interval_ms=1000), "cron"),
        (Schedule(name="s", job=NewJob()), "interval_ms"),
        (Schedule(name="s", job=NewJob(id="fixed"), interval_ms=1000), "job.id"),
        (Schedule(name="", job=NewJob(), interval_ms=1000), "name"),
    ],
)
async def test_bad_schedules_name_the_field(
    make_api: MakeApi, schedule: Schedule, named: str
) -> None:
    api = await make_api()
    with pytest.raises(silo.InvalidArgument, match=named):
        await api.put_schedule(schedule)
    assert [s async for s in api.list_schedules()] == []


async def test_task_rate_limits(make_api: MakeApi) -> None:
    api = await make_api()
    handles = [await rated.enqueue(api, n) for n in range(3)]
    job = await handles[0].job()
    assert job.rate_limits == (RateLimit(key="mail", limit=2, period_ms=HOUR_MS),)
    tasks = await api.lease_tasks(worker_id="w", queues=["flow-rated"], max_tasks=10)
    assert len(tasks) == 2, "the bucket holds 2 tokens"
    waiting = await handles[2].job()
    assert waiting.status is JobStatus.PENDING and waiting.waiting_on_rate_limit == "mail"
    # `_rate_limits` overrides the task's.
    free = await rated.enqueue(api, 9, _rate_limits=())
    [task] = await api.lease_tasks(worker_id="w", queues=["flow-rated"], max_tasks=10)
    assert task.job_id == free.id


async def test_task_unique_keys(make_api: MakeApi) -> None:
    api = await make_api()
    first = await sync_user.enqueue(api, "ann")
    again = await sync_user.enqueue(api, user="ann")
    other = await sync_user.enqueue(api, "bob")
    assert (first.deduplicated, again.deduplicated, other.deduplicated) == (False, True, False)
    assert again.id == first.id and other.id != first.id
    assert (await first.job()).unique_key == "sync:ann"
    forced = await sync_user.enqueue(api, "ann", _unique_key="")
    assert not forced.deduplicated and forced.id != first.id

    # Done: the key is free again (no window).
    tasks = await api.lease_tasks(worker_id="w", queues=["flow-unique"], max_tasks=10)
    for t in tasks:
        await api.report_task_outcome(task_id=t.task_id, worker_id="w", result=b"")
    assert not (await sync_user.enqueue(api, "ann")).deduplicated

    # With unique_for_ms, the key stays taken after the job ended.
    window = await nightly.enqueue(api)
    assert (await window.job()).unique_for_ms == HOUR_MS
    [task] = await api.lease_tasks(worker_id="w", queues=["flow-window"])
    await api.report_task_outcome(task_id=task.task_id, worker_id="w", result=b"")
    later = await nightly.enqueue(api)
    assert later.deduplicated and later.id == window.id
