"""Retry policy (docs/api.md#retry-policy): explicit schedules, exponential backoff, the last
attempt."""

from __future__ import annotations

from helpers import (
    DELAY_TOLERANCE_MS,
    enqueue,
    get_job,
    lease,
    lease_one,
    report_failure,
)
from silo._proto.silo.v1 import AttemptStatus, Job, JobStatus, RetryPolicy, SiloStub


async def fail_every_attempt(stub: SiloStub, ns, policy: RetryPolicy) -> tuple[list[int], Job]:
    """Enqueue a job with `policy`, fail each attempt as soon as it is leased, and return the
    delay the broker scheduled after each failure (next_attempt_at - finished_at) and the final
    job. Checks attempt numbers, is_last_attempt and that no retry starts before its time."""
    job_id = await enqueue(stub, tenant=ns.tenant, queue=ns.queue, retry_policy=policy)
    total = policy.max_retries + 1
    delays: list[int] = []
    not_before = 0
    for attempt in range(1, total + 1):
        task = await lease_one(stub, ns.queue, wait_ms=15_000)
        assert task.job_id == job_id
        assert task.attempt == attempt
        assert task.is_last_attempt is (attempt == total), f"attempt {attempt} of {total}"
        job = await get_job(stub, job_id, ns.tenant)
        assert job.attempts[-1].started_at_ms >= not_before, "retry started before its backoff"
        await report_failure(stub, task, code=f"fail-{attempt}")
        job = await get_job(stub, job_id, ns.tenant)
        assert job.attempt_count == attempt
        assert job.last_failure is not None and job.last_failure.code == f"fail-{attempt}"
        if attempt < total:
            assert job.status in (JobStatus.SCHEDULED, JobStatus.PENDING)
            delays.append(job.next_attempt_at_ms - job.attempts[-1].finished_at_ms)
            not_before = job.next_attempt_at_ms
    return delays, job


def assert_delays(actual: list[int], expected: list[int]) -> None:
    assert len(actual) == len(expected)
    for n, (got, want) in enumerate(zip(actual, expected, strict=True), start=1):
        assert abs(got - want) <= DELAY_TOLERANCE_MS, (
            f"retry {n} waits {got} ms, want {want}: {actual}"
        )


async def test_explicit_schedule(shared_stub: SiloStub, ns) -> None:
    # Retry n waits schedule_ms[min(n-1, len-1)]: the last entry repeats.
    policy = RetryPolicy(max_retries=3, schedule_ms=[150, 400])
    delays, job = await fail_every_attempt(shared_stub, ns, policy)
    assert_delays(delays, [150, 400, 400])
    assert job.status == JobStatus.FAILED
    assert job.attempt_count == 4
    assert job.next_attempt_at_ms == 0
    assert [a.attempt for a in job.attempts] == [1, 2, 3, 4]
    assert [a.status for a in job.attempts] == [AttemptStatus.FAILED] * 4
    assert len({a.task_id for a in job.attempts}) == 4


async def test_explicit_schedule_ignores_backoff_fields(shared_stub: SiloStub, ns) -> None:
    policy = RetryPolicy(
        max_retries=1,
        schedule_ms=[200],
        initial_backoff_ms=60_000,
        backoff_multiplier=10.0,
        max_backoff_ms=100_000,
    )
    delays, _ = await fail_every_attempt(shared_stub, ns, policy)
    assert_delays(delays, [200])


async def test_exponential_backoff_capped(shared_stub: SiloStub, ns) -> None:
    # min(initial * multiplier^(n-1), max): 100, 300, then 900 capped at 500.
    policy = RetryPolicy(
        max_retries=3, initial_backoff_ms=100, backoff_multiplier=3.0, max_backoff_ms=500
    )
    delays, job = await fail_every_attempt(shared_stub, ns, policy)
    assert_delays(delays, [100, 300, 500])
    assert job.status == JobStatus.FAILED


async def test_default_multiplier_is_two(shared_stub: SiloStub, ns) -> None:
    policy = RetryPolicy(max_retries=2, initial_backoff_ms=100)
    delays, _ = await fail_every_attempt(shared_stub, ns, policy)
    assert_delays(delays, [100, 200])


async def test_default_initial_backoff_is_one_second(shared_stub: SiloStub, ns) -> None:
    job_id = await enqueue(
        shared_stub, tenant=ns.tenant, queue=ns.queue, retry_policy=RetryPolicy(max_retries=5)
    )
    task = await lease_one(shared_stub, ns.queue, wait_ms=0)
    assert task.is_last_attempt is False
    await report_failure(shared_stub, task)
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert job.status == JobStatus.SCHEDULED
    delay = job.next_attempt_at_ms - job.attempts[0].finished_at_ms
    assert abs(delay - 1000) <= DELAY_TOLERANCE_MS, delay


async def test_jitter_stays_within_twenty_percent(shared_stub: SiloStub, ns) -> None:
    policy = RetryPolicy(
        max_retries=1, initial_backoff_ms=10_000, backoff_multiplier=1.0, jitter=True
    )
    delays = []
    for _ in range(8):
        job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue, retry_policy=policy)
        task = await lease_one(shared_stub, ns.queue, wait_ms=0)
        await report_failure(shared_stub, task)
        job = await get_job(shared_stub, job_id, ns.tenant)
        assert job.status == JobStatus.SCHEDULED
        delays.append(job.next_attempt_at_ms - job.attempts[0].finished_at_ms)
    assert all(8_000 - DELAY_TOLERANCE_MS <= d <= 12_000 + DELAY_TOLERANCE_MS for d in delays), (
        delays
    )
    assert len(set(delays)) > 1, f"jitter=True gave the same delay eight times: {delays}"


async def test_zero_retries_fails_on_first_failure(shared_stub: SiloStub, ns) -> None:
    policy = RetryPolicy(max_retries=0, schedule_ms=[0])
    delays, job = await fail_every_attempt(shared_stub, ns, policy)
    assert delays == []
    assert job.status == JobStatus.FAILED
    assert job.attempt_count == 1


async def test_retry_waits_in_scheduled_then_runs(shared_stub: SiloStub, ns) -> None:
    job_id = await enqueue(
        shared_stub,
        tenant=ns.tenant,
        queue=ns.queue,
        retry_policy=RetryPolicy(max_retries=1, schedule_ms=[500]),
    )
    task = await lease_one(shared_stub, ns.queue, wait_ms=0)
    await report_failure(shared_stub, task)
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert job.status == JobStatus.SCHEDULED
    due = job.next_attempt_at_ms
    assert await lease(shared_stub, [ns.queue], max_tasks=10) == []
    retry = await lease_one(shared_stub, ns.queue, wait_ms=10_000)
    assert retry.attempt == 2 and retry.task_id != task.task_id
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert job.status == JobStatus.RUNNING
    assert job.attempts[1].started_at_ms >= due
