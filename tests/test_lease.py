"""LeaseTasks (docs/api.md#leasetasks, docs/api.md#leases): order, fairness, long-poll,
validation, lease expiry and retry."""

from __future__ import annotations

import asyncio
import time

import pytest
from grpclib.const import Status
from helpers import (
    SHORT_LEASE_MS,
    assert_between,
    enqueue,
    expect_status,
    get_job,
    lease,
    lease_one,
    now_ms,
    report_result,
    unique,
    wait_for_status,
    wait_parked,
    wait_unparked,
)
from silo._proto.silo.v1 import (
    AttemptStatus,
    EnqueueBatchRequest,
    EnqueueRequest,
    JobStatus,
    LeaseTasksRequest,
    RetryPolicy,
    SiloStub,
)

# Core behaviour: runs once per store kind (file and S3), see conftest.
pytestmark = pytest.mark.all_stores


# ------------------------------------------------------------------------------------ order


async def test_higher_priority_first(shared_stub: SiloStub, ns) -> None:
    for prio in [10, 100, 1, 90, 50]:
        await enqueue(shared_stub, id=f"p{prio}", tenant=ns.tenant, queue=ns.queue, priority=prio)
    tasks = await lease(shared_stub, [ns.queue], max_tasks=10)
    assert [t.job_id for t in tasks] == ["p100", "p90", "p50", "p10", "p1"]


async def test_priority_beats_waiting_time_one_lease_at_a_time(shared_stub: SiloStub, ns) -> None:
    # The priority-10 job has waited longer; the priority-90 job became due later.
    await enqueue(shared_stub, id="old-low", tenant=ns.tenant, queue=ns.queue, priority=10)
    await enqueue(shared_stub, id="new-high", tenant=ns.tenant, queue=ns.queue, priority=90)
    first = await lease_one(shared_stub, ns.queue, wait_ms=0)
    second = await lease_one(shared_stub, ns.queue, wait_ms=0)
    assert [first.job_id, second.job_id] == ["new-high", "old-low"]


async def test_fifo_within_one_priority(shared_stub: SiloStub, ns) -> None:
    ids = [f"f{i}" for i in range(10)]
    for job_id in ids:
        await enqueue(shared_stub, id=job_id, tenant=ns.tenant, queue=ns.queue, priority=40)
    batch = await lease(shared_stub, [ns.queue], max_tasks=4)
    rest = [(await lease_one(shared_stub, ns.queue, wait_ms=0)).job_id for _ in range(6)]
    assert [t.job_id for t in batch] + rest == ids


async def test_earlier_due_time_first(shared_stub: SiloStub, ns) -> None:
    base = now_ms()
    # Enqueued first but due later.
    await enqueue(shared_stub, id="late", tenant=ns.tenant, queue=ns.queue, start_at_ms=base + 400)
    await enqueue(shared_stub, id="early", tenant=ns.tenant, queue=ns.queue, start_at_ms=base + 200)
    for job_id in ["late", "early"]:
        await wait_for_status(shared_stub, job_id, ns.tenant, [JobStatus.PENDING])
    tasks = await lease(shared_stub, [ns.queue], max_tasks=10)
    assert [t.job_id for t in tasks] == ["early", "late"]


async def test_future_start_not_leased_before_start_at(shared_stub: SiloStub, ns) -> None:
    start = now_ms() + 700
    job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue, start_at_ms=start)
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert job.status == JobStatus.SCHEDULED
    assert job.next_attempt_at_ms == start
    assert await lease(shared_stub, [ns.queue], max_tasks=10) == []
    # The long-poll answers once the start time has come, not before.
    task = await lease_one(shared_stub, ns.queue, wait_ms=10_000)
    assert now_ms() >= start
    assert task.job_id == job_id
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert job.attempts[0].started_at_ms >= start


async def test_tenants_take_turns_within_a_priority(shared_stub: SiloStub, ns) -> None:
    a, b, c = unique("ta"), unique("tb"), unique("tc")
    # Tenant a's whole backlog is enqueued before b's and c's first jobs.
    for i in range(6):
        await enqueue(shared_stub, id=f"a{i}", tenant=a, queue=ns.queue)
    for i in range(3):
        await enqueue(shared_stub, id=f"b{i}", tenant=b, queue=ns.queue)
    for i in range(3):
        await enqueue(shared_stub, id=f"c{i}", tenant=c, queue=ns.queue)
    tasks = await lease(shared_stub, [ns.queue], max_tasks=6)
    tenants = [t.tenant for t in tasks]
    assert set(tenants[:3]) == {a, b, c}, f"first three leases not one per tenant: {tenants}"
    assert set(tenants[3:6]) == {a, b, c}, f"second round not one per tenant: {tenants}"
    # Each tenant's own jobs stay FIFO.
    for tenant, prefix in [(a, "a"), (b, "b"), (c, "c")]:
        mine = [t.job_id for t in tasks if t.tenant == tenant]
        assert mine == [f"{prefix}0", f"{prefix}1"]


async def test_tenants_take_turns_across_single_leases(shared_stub: SiloStub, ns) -> None:
    a, b = unique("ta"), unique("tb")
    for i in range(5):
        await enqueue(shared_stub, id=f"a{i}", tenant=a, queue=ns.queue)
    await enqueue(shared_stub, id="b0", tenant=b, queue=ns.queue)
    first = await lease_one(shared_stub, ns.queue, wait_ms=0)
    second = await lease_one(shared_stub, ns.queue, wait_ms=0)
    assert {first.tenant, second.tenant} == {a, b}


async def test_priority_still_wins_over_tenant_turns(shared_stub: SiloStub, ns) -> None:
    a, b = unique("ta"), unique("tb")
    await enqueue(shared_stub, id="b-low", tenant=b, queue=ns.queue, priority=10)
    for i in range(3):
        await enqueue(shared_stub, id=f"a-high{i}", tenant=a, queue=ns.queue, priority=90)
    tasks = await lease(shared_stub, [ns.queue], max_tasks=10)
    assert [t.job_id for t in tasks] == ["a-high0", "a-high1", "a-high2", "b-low"]


async def test_several_queues_are_merged_in_order(shared_stub: SiloStub, ns) -> None:
    q1, q2, q3 = ns.queue + "-1", ns.queue + "-2", ns.queue + "-3"
    await enqueue(shared_stub, id="q1-p10", tenant=ns.tenant, queue=q1, priority=10)
    await enqueue(shared_stub, id="q2-p90", tenant=ns.tenant, queue=q2, priority=90)
    await enqueue(shared_stub, id="q1-p50", tenant=ns.tenant, queue=q1, priority=50)
    await enqueue(shared_stub, id="q3-p100", tenant=ns.tenant, queue=q3, priority=100)
    await enqueue(shared_stub, id="q2-p50", tenant=ns.tenant, queue=q2, priority=50)
    tasks = await lease(shared_stub, [q1, q2], max_tasks=10)
    assert [t.job_id for t in tasks] == ["q2-p90", "q1-p50", "q2-p50", "q1-p10"]
    assert [t.queue for t in tasks] == [q2, q1, q2, q1]
    # The queue not named was not touched.
    assert (await get_job(shared_stub, "q3-p100", ns.tenant)).status == JobStatus.PENDING


async def test_no_queues_means_default(stub: SiloStub) -> None:
    # A fresh server: this test uses the default queue.
    await enqueue(stub, id="d1")
    await enqueue(stub, id="other", queue="other")
    await enqueue(stub, id="d2", queue="default")
    tasks = await lease(stub, [], max_tasks=10)
    assert [t.job_id for t in tasks] == ["d1", "d2"]
    assert {t.queue for t in tasks} == {"default"}


# -------------------------------------------------------------------------------- long-poll


async def test_long_poll_wakes_on_enqueue(shared_stub: SiloStub, shared_admin, ns) -> None:
    poll = asyncio.ensure_future(lease(shared_stub, [ns.queue], max_tasks=5, wait_ms=10_000))
    await wait_parked(shared_admin)
    assert not poll.done(), "LeaseTasks with wait_ms and nothing ready answered at once"
    started = time.monotonic()
    job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue, payload=b"wake")
    tasks = await asyncio.wait_for(poll, timeout=5)
    elapsed = time.monotonic() - started
    assert [t.job_id for t in tasks] == [job_id]
    assert tasks[0].payload == b"wake"
    assert elapsed < 2.0, f"long-poll answered {elapsed:.2f}s after the enqueue"


async def test_long_poll_takes_every_ready_task(shared_stub: SiloStub, shared_admin, ns) -> None:
    poll = asyncio.ensure_future(lease(shared_stub, [ns.queue], max_tasks=10, wait_ms=10_000))
    await wait_parked(shared_admin)
    assert not poll.done()
    jobs = [EnqueueRequest(id=f"b{i}", tenant=ns.tenant, queue=ns.queue) for i in range(3)]
    await shared_stub.enqueue_batch(EnqueueBatchRequest(jobs=jobs))
    tasks = await asyncio.wait_for(poll, timeout=5)
    assert [t.job_id for t in tasks] == ["b0", "b1", "b2"]


async def test_long_poll_times_out_empty(shared_stub: SiloStub, ns) -> None:
    started = time.monotonic()
    tasks = await lease(shared_stub, [ns.queue], max_tasks=5, wait_ms=400)
    elapsed = time.monotonic() - started
    assert tasks == []
    assert 0.35 <= elapsed < 5, f"wait_ms=400 answered after {elapsed:.3f}s"


async def test_wait_zero_answers_at_once(shared_stub: SiloStub, ns) -> None:
    started = time.monotonic()
    assert await lease(shared_stub, [ns.queue], max_tasks=5, wait_ms=0) == []
    assert time.monotonic() - started < 1.0


async def test_longest_wait_answers_at_once_when_a_task_is_ready(shared_stub: SiloStub, ns) -> None:
    job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    started = time.monotonic()
    tasks = await lease(shared_stub, [ns.queue], max_tasks=5, wait_ms=60_000)
    assert [t.job_id for t in tasks] == [job_id]
    assert time.monotonic() - started < 5.0


async def test_two_parked_workers_do_not_share_a_task(
    shared_stub: SiloStub, shared_admin, ns
) -> None:
    polls = [
        asyncio.ensure_future(
            lease(shared_stub, [ns.queue], worker=f"w{i}", max_tasks=5, wait_ms=3_000)
        )
        for i in range(2)
    ]
    await wait_parked(shared_admin, 2)
    job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    results = await asyncio.wait_for(asyncio.gather(*polls), timeout=10)
    leased = [t.job_id for tasks in results for t in tasks]
    assert leased == [job_id]


async def test_abandoned_long_poll_leases_nothing(shared_stub: SiloStub, shared_admin, ns) -> None:
    # The caller gives up (deadline) while parked: the server cancels the call, and the broker
    # must then not lease a task to the worker that is gone.
    req = LeaseTasksRequest(worker_id="gone", max_tasks=5, queues=[ns.queue], wait_ms=10_000)
    with pytest.raises(TimeoutError):  # grpclib's client raises this for its own deadline
        await shared_stub.lease_tasks(req, timeout=0.3)
    # The client's deadline fires first; the server must then unpark the call.
    await wait_unparked(shared_admin)
    job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    task = await lease_one(shared_stub, ns.queue, worker="here", wait_ms=5_000)
    assert task.job_id == job_id


# ------------------------------------------------------------------------------ the task


async def test_task_fields(shared_stub: SiloStub, ns) -> None:
    job_id = await enqueue(
        shared_stub,
        tenant=ns.tenant,
        queue=ns.queue,
        priority=77,
        payload=b"data",
        metadata={"k": "v"},
    )
    before = now_ms()
    task = await lease_one(shared_stub, ns.queue, worker="w-fields", wait_ms=0)
    after = now_ms()
    assert task.task_id
    assert task.job_id == job_id
    assert task.tenant == ns.tenant
    assert task.queue == ns.queue
    assert task.priority == 77
    assert task.payload == b"data"
    assert task.metadata == {"k": "v"}
    assert task.attempt == 1
    assert task.heartbeat_cursor == b""
    assert task.is_last_attempt is True  # no retry policy: no retries
    assert task.heartbeat_interval_ms == 10_000  # a third of the default 30,000 ms lease
    assert_between(task.lease_expires_at_ms, before + 30_000, after + 30_000, "lease_expires_at_ms")

    job = await get_job(shared_stub, job_id, ns.tenant)
    assert job.status == JobStatus.RUNNING
    assert job.attempt_count == 1
    assert job.next_attempt_at_ms == 0
    assert_between(job.updated_at_ms, before, after, "updated_at_ms")
    [attempt] = job.attempts
    assert attempt.attempt == 1
    assert attempt.task_id == task.task_id
    assert attempt.worker_id == "w-fields"
    assert attempt.status == AttemptStatus.RUNNING
    assert_between(attempt.started_at_ms, before, after, "started_at_ms")
    assert attempt.finished_at_ms == 0


async def test_is_last_attempt_false_while_retries_remain(shared_stub: SiloStub, ns) -> None:
    await enqueue(
        shared_stub, tenant=ns.tenant, queue=ns.queue, retry_policy=RetryPolicy(max_retries=1)
    )
    task = await lease_one(shared_stub, ns.queue, wait_ms=0)
    assert task.is_last_attempt is False


async def test_task_ids_unique_and_task_leased_once(shared_stub: SiloStub, ns) -> None:
    for i in range(20):
        await enqueue(shared_stub, id=f"u{i}", tenant=ns.tenant, queue=ns.queue)
    first = await lease(shared_stub, [ns.queue], worker="w1", max_tasks=10)
    second = await lease(shared_stub, [ns.queue], worker="w2", max_tasks=20)
    assert len(first) == 10 and len(second) == 10
    assert {t.job_id for t in first}.isdisjoint({t.job_id for t in second})
    assert len({t.task_id for t in first + second}) == 20
    assert await lease(shared_stub, [ns.queue], worker="w3", max_tasks=20) == []


async def test_max_tasks_caps_the_answer(shared_stub: SiloStub, ns) -> None:
    for _ in range(3):
        await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    assert len(await lease(shared_stub, [ns.queue], max_tasks=1)) == 1
    assert len(await lease(shared_stub, [ns.queue], max_tasks=1000)) == 2


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize("max_tasks", [0, 1001, 100_000])
async def test_max_tasks_out_of_range_is_invalid(shared_stub: SiloStub, ns, max_tasks: int) -> None:
    await enqueue(shared_stub, id="keep", tenant=ns.tenant, queue=ns.queue)
    req = LeaseTasksRequest(worker_id="w", max_tasks=max_tasks, queues=[ns.queue])
    await expect_status(shared_stub.lease_tasks(req), Status.INVALID_ARGUMENT, names="max_tasks")
    # Nothing was leased by the refused call.
    assert (await get_job(shared_stub, "keep", ns.tenant)).status == JobStatus.PENDING


async def test_negative_wait_ms_is_invalid(shared_stub: SiloStub, ns) -> None:
    req = LeaseTasksRequest(worker_id="w", max_tasks=1, queues=[ns.queue], wait_ms=-1)
    await expect_status(shared_stub.lease_tasks(req), Status.INVALID_ARGUMENT, names="wait_ms")


@pytest.mark.parametrize(
    "worker_id",
    ["", "w" * 128, "é" * 128, "w\n1", "w\x00", "w\x7f"],
    ids=["empty", "len128", "len128-unicode", "newline", "nul", "del"],
)
async def test_bad_worker_id_is_invalid(shared_stub: SiloStub, ns, worker_id: str) -> None:
    await enqueue(shared_stub, id="keep", tenant=ns.tenant, queue=ns.queue)
    req = LeaseTasksRequest(worker_id=worker_id, max_tasks=1, queues=[ns.queue])
    await expect_status(shared_stub.lease_tasks(req), Status.INVALID_ARGUMENT, names="worker_id")
    assert (await get_job(shared_stub, "keep", ns.tenant)).status == JobStatus.PENDING


@pytest.mark.parametrize("worker_id", ["w" * 127, "é" * 127, "w"])
async def test_worker_id_up_to_127_chars(shared_stub: SiloStub, ns, worker_id: str) -> None:
    await enqueue(shared_stub, id="j", tenant=ns.tenant, queue=ns.queue)
    task = await lease_one(shared_stub, ns.queue, worker=worker_id, wait_ms=0)
    job = await get_job(shared_stub, task.job_id, ns.tenant)
    assert job.attempts[0].worker_id == worker_id


# --------------------------------------------------------------------------- lease expiry


async def test_expired_lease_is_retried_as_a_new_attempt(short_stub: SiloStub, ns) -> None:
    job_id = await enqueue(
        short_stub,
        tenant=ns.tenant,
        queue=ns.queue,
        retry_policy=RetryPolicy(max_retries=1, schedule_ms=[0]),
    )
    first = await lease_one(short_stub, ns.queue, worker="w1", wait_ms=0)
    assert first.attempt == 1 and first.is_last_attempt is False
    assert abs(first.heartbeat_interval_ms - SHORT_LEASE_MS / 3) <= 1
    # Nobody heartbeats: the lease expires and the retry becomes leasable.
    second = await lease_one(short_stub, ns.queue, worker="w2", wait_ms=10_000)
    assert now_ms() >= first.lease_expires_at_ms - 2
    assert second.job_id == job_id
    assert second.task_id != first.task_id
    assert second.attempt == 2
    assert second.is_last_attempt is True

    job = await get_job(short_stub, job_id, ns.tenant)
    assert job.status == JobStatus.RUNNING
    assert job.attempt_count == 2
    a1, a2 = job.attempts
    assert (a1.attempt, a1.task_id, a1.worker_id) == (1, first.task_id, "w1")
    assert a1.status == AttemptStatus.FAILED
    assert a1.failure is not None and a1.failure.code == "lease_expired"
    assert a1.finished_at_ms >= first.lease_expires_at_ms - 2
    assert (a2.attempt, a2.task_id, a2.worker_id, a2.status) == (
        2,
        second.task_id,
        "w2",
        AttemptStatus.RUNNING,
    )
    assert job.last_failure is not None and job.last_failure.code == "lease_expired"


async def test_expired_lease_without_retries_fails_the_job(short_stub: SiloStub, ns) -> None:
    job_id = await enqueue(short_stub, tenant=ns.tenant, queue=ns.queue)
    task = await lease_one(short_stub, ns.queue, wait_ms=0)
    job = await wait_for_status(short_stub, job_id, ns.tenant, [JobStatus.FAILED])
    assert job.last_failure is not None and job.last_failure.code == "lease_expired"
    [attempt] = job.attempts
    assert attempt.task_id == task.task_id
    assert attempt.status == AttemptStatus.FAILED
    assert attempt.failure is not None and attempt.failure.code == "lease_expired"
    assert job.next_attempt_at_ms == 0
    assert await lease(short_stub, [ns.queue], max_tasks=10) == []


async def test_expired_lease_waits_for_the_backoff(short_stub: SiloStub, ns) -> None:
    job_id = await enqueue(
        short_stub,
        tenant=ns.tenant,
        queue=ns.queue,
        retry_policy=RetryPolicy(max_retries=2, schedule_ms=[60_000]),
    )
    await lease_one(short_stub, ns.queue, wait_ms=0)
    job = await wait_for_status(short_stub, job_id, ns.tenant, [JobStatus.SCHEDULED])
    finished = job.attempts[0].finished_at_ms
    assert abs(job.next_attempt_at_ms - (finished + 60_000)) <= 50
    assert await lease(short_stub, [ns.queue], max_tasks=10) == []


async def test_report_before_expiry_prevents_retry(short_stub: SiloStub, ns) -> None:
    job_id = await enqueue(
        short_stub,
        tenant=ns.tenant,
        queue=ns.queue,
        retry_policy=RetryPolicy(max_retries=1, schedule_ms=[0]),
    )
    task = await lease_one(short_stub, ns.queue, wait_ms=0)
    await report_result(short_stub, task)
    # Long enough for the old lease to have expired twice over: nothing may come back.
    assert await lease(short_stub, [ns.queue], max_tasks=10, wait_ms=2 * SHORT_LEASE_MS) == []
    job = await get_job(short_stub, job_id, ns.tenant)
    assert job.status == JobStatus.SUCCEEDED
    assert job.attempt_count == 1
