"""GetJob (docs/api.md#getjob): not found, with and without attempts, timestamps through the
lifecycle."""

from __future__ import annotations

from grpclib.const import Status
from helpers import (
    assert_between,
    enqueue,
    expect_status,
    get_job,
    heartbeat,
    lease_one,
    now_ms,
    report_failure,
    report_result,
    unique,
)
from silo._proto.silo.v1 import AttemptStatus, GetJobRequest, JobStatus, RetryPolicy, SiloStub


async def test_missing_job_is_not_found(shared_stub: SiloStub, ns) -> None:
    await expect_status(get_job(shared_stub, "no-such-job", ns.tenant), Status.NOT_FOUND)
    job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    await expect_status(get_job(shared_stub, job_id, unique("tenant")), Status.NOT_FOUND)
    await expect_status(get_job(shared_stub, job_id, ""), Status.NOT_FOUND)


async def test_attempts_only_when_asked(shared_stub: SiloStub, ns) -> None:
    job_id = await enqueue(
        shared_stub,
        tenant=ns.tenant,
        queue=ns.queue,
        retry_policy=RetryPolicy(max_retries=1, schedule_ms=[0]),
    )
    t1 = await lease_one(shared_stub, ns.queue, worker="w1", wait_ms=0)
    await report_failure(shared_stub, t1, code="first", worker="w1")
    t2 = await lease_one(shared_stub, ns.queue, worker="w2", wait_ms=10_000)
    await report_result(shared_stub, t2, b"second", worker="w2")

    bare = await shared_stub.get_job(GetJobRequest(id=job_id, tenant=ns.tenant))
    assert list(bare.attempts) == []
    assert bare.attempt_count == 2
    assert bare.status == JobStatus.SUCCEEDED
    assert bare.result == b"second"

    full = await get_job(shared_stub, job_id, ns.tenant, attempts=True)
    assert [(a.attempt, a.task_id, a.worker_id, a.status) for a in full.attempts] == [
        (1, t1.task_id, "w1", AttemptStatus.FAILED),
        (2, t2.task_id, "w2", AttemptStatus.SUCCEEDED),
    ]
    a1, a2 = full.attempts
    assert a1.failure is not None and a1.failure.code == "first"
    assert a1.result == b""
    assert a2.result == b"second"
    assert a2.failure is None or a2.failure.code == ""
    assert a1.started_at_ms <= a1.finished_at_ms <= a2.started_at_ms <= a2.finished_at_ms
    # The failure of attempt 1 stays the job's last failure after the success.
    assert full.last_failure is not None and full.last_failure.code == "first"


async def test_timestamps_through_the_lifecycle(shared_stub: SiloStub, ns) -> None:
    t0 = now_ms()
    job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue, payload=b"p")
    t1 = now_ms()
    job = await get_job(shared_stub, job_id, ns.tenant)
    created = job.created_at_ms
    assert_between(created, t0, t1, "created_at_ms")
    assert_between(job.start_at_ms, t0, t1, "start_at_ms")
    assert job.updated_at_ms == created
    assert job.status == JobStatus.PENDING
    assert job.next_attempt_at_ms == job.start_at_ms

    t2 = now_ms()
    task = await lease_one(shared_stub, ns.queue, wait_ms=0)
    t3 = now_ms()
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert job.status == JobStatus.RUNNING
    assert job.created_at_ms == created
    assert_between(job.updated_at_ms, t2, t3, "updated_at_ms after lease")
    leased_at = job.updated_at_ms
    assert job.next_attempt_at_ms == 0

    # A heartbeat is not a status change.
    await heartbeat(shared_stub, task, cursor=b"c")
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert job.updated_at_ms == leased_at

    t4 = now_ms()
    await report_result(shared_stub, task, b"r")
    t5 = now_ms()
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert job.status == JobStatus.SUCCEEDED
    assert job.created_at_ms == created
    assert_between(job.updated_at_ms, t4, t5, "updated_at_ms after report")
    assert job.next_attempt_at_ms == 0
    assert_between(job.attempts[0].finished_at_ms, t4, t5, "finished_at_ms")


async def test_future_start_shows_start_at(shared_stub: SiloStub, ns) -> None:
    start = now_ms() + 3_600_000
    before = now_ms()
    job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue, start_at_ms=start)
    after = now_ms()
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert job.start_at_ms == start
    assert job.next_attempt_at_ms == start
    assert job.status == JobStatus.SCHEDULED
    assert_between(job.created_at_ms, before, after, "created_at_ms")


async def test_job_echoes_what_was_enqueued(shared_stub: SiloStub, ns) -> None:
    policy = RetryPolicy(
        max_retries=4,
        initial_backoff_ms=250,
        backoff_multiplier=1.5,
        max_backoff_ms=9_000,
        jitter=True,
    )
    metadata = {"a": "1", "ключ": "значение", "emoji": "🙂"}
    job_id = await enqueue(
        shared_stub,
        tenant=ns.tenant,
        queue=ns.queue,
        priority=3,
        payload=bytes(range(256)),
        metadata=metadata,
        retry_policy=policy,
    )
    job = await get_job(shared_stub, job_id, ns.tenant, attempts=False)
    assert (job.id, job.tenant, job.queue, job.priority) == (job_id, ns.tenant, ns.queue, 3)
    assert job.payload == bytes(range(256))
    assert job.metadata == metadata
    assert job.retry_policy is not None
    rp = job.retry_policy
    assert (rp.max_retries, rp.initial_backoff_ms, rp.backoff_multiplier, rp.max_backoff_ms) == (
        4,
        250,
        1.5,
        9_000,
    )
    assert rp.jitter is True
    assert list(rp.schedule_ms) == []
    assert job.result == b""
    assert job.last_failure is None or job.last_failure.code == ""
