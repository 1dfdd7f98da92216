"""HeartbeatTask (docs/api.md#heartbeattask, docs/api.md#leases): lease extension, refusals, and
the cursor handed to later attempts."""

from __future__ import annotations

import asyncio

from grpclib.const import Status
from helpers import (
    SHORT_LEASE_MS,
    assert_between,
    enqueue,
    expect_status,
    get_job,
    heartbeat,
    lease,
    lease_one,
    now_ms,
    report_failure,
    report_result,
)
from silo._proto.silo.v1 import AttemptStatus, JobStatus, RetryPolicy, SiloStub

RETRY_NOW = RetryPolicy(max_retries=5, schedule_ms=[0])


async def test_heartbeat_extends_the_lease(shared_stub: SiloStub, ns) -> None:
    await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    task = await lease_one(shared_stub, ns.queue, wait_ms=0)
    before = now_ms()
    resp = await heartbeat(shared_stub, task)
    after = now_ms()
    assert resp.cancelled is False
    assert_between(resp.lease_expires_at_ms, before + 30_000, after + 30_000, "lease_expires_at_ms")
    assert resp.lease_expires_at_ms >= task.lease_expires_at_ms


async def test_heartbeats_keep_a_task_alive_past_its_lease(short_stub: SiloStub, ns) -> None:
    job_id = await enqueue(short_stub, tenant=ns.tenant, queue=ns.queue, retry_policy=RETRY_NOW)
    task = await lease_one(short_stub, ns.queue, wait_ms=0)
    deadline = task.lease_expires_at_ms + 2 * SHORT_LEASE_MS
    while now_ms() < deadline:
        # A worker's pace: heartbeat every heartbeat_interval_ms (a third of the lease).
        await asyncio.sleep(task.heartbeat_interval_ms / 1000)
        resp = await heartbeat(short_stub, task)
        assert resp.cancelled is False
    # The task outlived three lease durations and was never handed to anyone else.
    assert await lease(short_stub, [ns.queue], worker="other", max_tasks=10) == []
    await report_result(short_stub, task, b"done")
    job = await get_job(short_stub, job_id, ns.tenant)
    assert job.status == JobStatus.SUCCEEDED
    assert job.attempt_count == 1


async def test_unknown_task_is_not_found(shared_stub: SiloStub) -> None:
    await expect_status(heartbeat(shared_stub, "no-such-task"), Status.NOT_FOUND)


async def test_foreign_worker_is_refused(shared_stub: SiloStub, ns) -> None:
    job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    task = await lease_one(shared_stub, ns.queue, worker="owner", wait_ms=0)
    await expect_status(heartbeat(shared_stub, task, worker="intruder"), Status.FAILED_PRECONDITION)
    # The owner still holds the lease.
    assert (await heartbeat(shared_stub, task, worker="owner")).cancelled is False
    await report_result(shared_stub, task, worker="owner")
    assert (await get_job(shared_stub, job_id, ns.tenant)).status == JobStatus.SUCCEEDED


async def test_expired_lease_is_refused(short_stub: SiloStub, ns) -> None:
    await enqueue(short_stub, tenant=ns.tenant, queue=ns.queue, retry_policy=RETRY_NOW)
    first = await lease_one(short_stub, ns.queue, worker="w1", wait_ms=0)
    # Await the expiry through its retry: once attempt 2 is leased, attempt 1's lease is gone.
    second = await lease_one(short_stub, ns.queue, worker="w1", wait_ms=10_000)
    assert second.attempt == 2
    await expect_status(heartbeat(short_stub, first, worker="w1"), Status.FAILED_PRECONDITION)
    # The new attempt is unaffected.
    assert (await heartbeat(short_stub, second, worker="w1")).cancelled is False


async def test_heartbeat_after_outcome_is_refused(shared_stub: SiloStub, ns) -> None:
    await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    task = await lease_one(shared_stub, ns.queue, wait_ms=0)
    await report_result(shared_stub, task)
    await expect_status(heartbeat(shared_stub, task), Status.FAILED_PRECONDITION)


async def test_cursor_is_handed_to_the_next_attempt(shared_stub: SiloStub, ns) -> None:
    job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue, retry_policy=RETRY_NOW)
    t1 = await lease_one(shared_stub, ns.queue, wait_ms=0)
    assert t1.heartbeat_cursor == b""
    await heartbeat(shared_stub, t1, cursor=b"page-1")
    await heartbeat(shared_stub, t1, cursor=b"page-2\x00\xff")

    # Shown on the running attempt.
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert job.attempts[0].heartbeat_cursor == b"page-2\x00\xff"

    await report_failure(shared_stub, t1)
    t2 = await lease_one(shared_stub, ns.queue, wait_ms=10_000)
    assert t2.attempt == 2
    assert t2.heartbeat_cursor == b"page-2\x00\xff"

    # An empty cursor stores nothing: the last cursor any earlier attempt sent still wins.
    await heartbeat(shared_stub, t2)
    await report_failure(shared_stub, t2)
    t3 = await lease_one(shared_stub, ns.queue, wait_ms=10_000)
    assert t3.attempt == 3
    assert t3.heartbeat_cursor == b"page-2\x00\xff"

    await heartbeat(shared_stub, t3, cursor=b"page-3")
    await report_failure(shared_stub, t3)
    t4 = await lease_one(shared_stub, ns.queue, wait_ms=10_000)
    assert t4.heartbeat_cursor == b"page-3"

    job = await get_job(shared_stub, job_id, ns.tenant)
    cursors = [a.heartbeat_cursor for a in job.attempts]
    assert cursors[0] == b"page-2\x00\xff"
    assert cursors[2] == b"page-3"
    assert cursors[1] in (b"", b"page-2\x00\xff")
    assert [a.status for a in job.attempts] == [AttemptStatus.FAILED] * 3 + [AttemptStatus.RUNNING]


async def test_cursor_survives_lease_expiry(short_stub: SiloStub, ns) -> None:
    await enqueue(short_stub, tenant=ns.tenant, queue=ns.queue, retry_policy=RETRY_NOW)
    t1 = await lease_one(short_stub, ns.queue, wait_ms=0)
    await heartbeat(short_stub, t1, cursor=b"resume-here")
    # The worker dies: the lease expires and the retry resumes from the cursor.
    t2 = await lease_one(short_stub, ns.queue, wait_ms=10_000)
    assert t2.attempt == 2
    assert t2.heartbeat_cursor == b"resume-here"


async def test_refused_heartbeat_stores_no_cursor(shared_stub: SiloStub, ns) -> None:
    job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue, retry_policy=RETRY_NOW)
    t1 = await lease_one(shared_stub, ns.queue, worker="owner", wait_ms=0)
    await heartbeat(shared_stub, t1, worker="owner", cursor=b"mine")
    await expect_status(
        heartbeat(shared_stub, t1, worker="intruder", cursor=b"theirs"),
        Status.FAILED_PRECONDITION,
    )
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert job.attempts[0].heartbeat_cursor == b"mine"
