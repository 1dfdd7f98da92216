"""ReportTaskOutcome(s) (docs/api.md#reporttaskoutcome): result, failure, cancelled; exactly one
outcome per task."""

from __future__ import annotations

import pytest
from grpclib.const import Status
from helpers import (
    RETRY_NOW,
    assert_between,
    enqueue,
    enqueue_and_lease,
    expect_status,
    get_job,
    heartbeat,
    lease,
    lease_one,
    now_ms,
    report_cancelled,
    report_failure,
    report_result,
)
from silo._proto.silo.v1 import (
    AttemptStatus,
    EnqueueBatchRequest,
    EnqueueRequest,
    JobStatus,
    ReportTaskOutcomeRequest,
    ReportTaskOutcomesRequest,
    RetryPolicy,
    SiloStub,
    TaskCancelled,
    TaskFailure,
)

# Core behaviour: runs once per store kind (file and S3), see conftest.
pytestmark = pytest.mark.all_stores

OK = Status.OK.value


async def test_result_succeeds_the_job(shared_stub: SiloStub, ns) -> None:
    job_id, task = await enqueue_and_lease(shared_stub, ns.tenant, ns.queue, retry_policy=RETRY_NOW)
    before = now_ms()
    await report_result(shared_stub, task, b"\x00the answer\xff")
    after = now_ms()
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert job.status == JobStatus.SUCCEEDED
    assert job.result == b"\x00the answer\xff"
    assert job.next_attempt_at_ms == 0
    assert job.attempt_count == 1
    assert_between(job.updated_at_ms, before, after, "updated_at_ms")
    [attempt] = job.attempts
    assert attempt.status == AttemptStatus.SUCCEEDED
    assert attempt.result == b"\x00the answer\xff"
    assert_between(attempt.finished_at_ms, before, after, "finished_at_ms")
    assert await lease(shared_stub, [ns.queue], max_tasks=10) == []


async def test_empty_result_is_a_success(shared_stub: SiloStub, ns) -> None:
    job_id, task = await enqueue_and_lease(shared_stub, ns.tenant, ns.queue, retry_policy=RETRY_NOW)
    await report_result(shared_stub, task, b"")
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert job.status == JobStatus.SUCCEEDED
    assert job.result == b""
    assert job.attempts[0].status == AttemptStatus.SUCCEEDED


async def test_no_outcome_is_invalid_and_records_nothing(shared_stub: SiloStub, ns) -> None:
    job_id, task = await enqueue_and_lease(shared_stub, ns.tenant, ns.queue)
    bare = ReportTaskOutcomeRequest(task_id=task.task_id, worker_id="worker-1")
    await expect_status(shared_stub.report_task_outcome(bare), Status.INVALID_ARGUMENT)
    assert (await get_job(shared_stub, job_id, ns.tenant)).status == JobStatus.RUNNING
    await report_result(shared_stub, task)
    assert (await get_job(shared_stub, job_id, ns.tenant)).status == JobStatus.SUCCEEDED


async def test_a_worker_cannot_report_the_lease_expired_code(shared_stub: SiloStub, ns) -> None:
    # The broker records `lease_expired` itself; a worker sending it would pass for an expiry.
    job_id, task = await enqueue_and_lease(shared_stub, ns.tenant, ns.queue)
    fake = ReportTaskOutcomeRequest(
        task_id=task.task_id, worker_id="worker-1", failure=TaskFailure(code="lease_expired")
    )
    await expect_status(
        shared_stub.report_task_outcome(fake), Status.INVALID_ARGUMENT, names="failure.code"
    )
    assert (await get_job(shared_stub, job_id, ns.tenant)).status == JobStatus.RUNNING
    await report_result(shared_stub, task)
    second = ReportTaskOutcomeRequest(task_id=task.task_id, worker_id="worker-1", result=b"")
    await expect_status(shared_stub.report_task_outcome(second), Status.ALREADY_EXISTS)


async def test_unknown_task_is_not_found(shared_stub: SiloStub) -> None:
    req = ReportTaskOutcomeRequest(task_id="no-such-task", worker_id="w", result=b"")
    await expect_status(shared_stub.report_task_outcome(req), Status.NOT_FOUND)


async def test_second_report_is_already_exists(shared_stub: SiloStub, ns) -> None:
    job_id, task = await enqueue_and_lease(shared_stub, ns.tenant, ns.queue, retry_policy=RETRY_NOW)
    await report_result(shared_stub, task, b"first")
    await expect_status(report_result(shared_stub, task, b"second"), Status.ALREADY_EXISTS)
    await expect_status(report_failure(shared_stub, task), Status.ALREADY_EXISTS)
    await expect_status(report_cancelled(shared_stub, task), Status.ALREADY_EXISTS)
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert job.status == JobStatus.SUCCEEDED
    assert job.result == b"first"
    assert job.attempt_count == 1


async def test_second_report_after_failure_is_already_exists(shared_stub: SiloStub, ns) -> None:
    job_id, task = await enqueue_and_lease(shared_stub, ns.tenant, ns.queue, retry_policy=RETRY_NOW)
    await report_failure(shared_stub, task)
    # Even once its retry is running, the old task's outcome stays the one recorded.
    retry = await lease_one(shared_stub, ns.queue, wait_ms=10_000)
    await expect_status(report_result(shared_stub, task), Status.ALREADY_EXISTS)
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert job.status == JobStatus.RUNNING
    assert job.attempts[0].status == AttemptStatus.FAILED
    assert job.attempts[1].task_id == retry.task_id


async def test_foreign_worker_is_refused_and_nothing_recorded(shared_stub: SiloStub, ns) -> None:
    job_id, task = await enqueue_and_lease(shared_stub, ns.tenant, ns.queue, worker="owner")
    await expect_status(
        report_result(shared_stub, task, b"stolen", worker="intruder"), Status.FAILED_PRECONDITION
    )
    await expect_status(
        report_failure(shared_stub, task, worker="intruder"), Status.FAILED_PRECONDITION
    )
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert job.status == JobStatus.RUNNING
    assert job.attempts[0].status == AttemptStatus.RUNNING
    await report_result(shared_stub, task, b"mine", worker="owner")
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert (job.status, job.result) == (JobStatus.SUCCEEDED, b"mine")


async def test_expired_lease_is_refused_and_nothing_recorded(short_stub: SiloStub, ns) -> None:
    job_id, first = await enqueue_and_lease(
        short_stub, ns.tenant, ns.queue, retry_policy=RETRY_NOW, worker="w1"
    )
    # Await the expiry through its retry: once attempt 2 is leased, attempt 1's lease is gone.
    second = await lease_one(short_stub, ns.queue, worker="w1", wait_ms=10_000)
    await expect_status(report_result(short_stub, first, worker="w1"), Status.FAILED_PRECONDITION)
    job = await get_job(short_stub, job_id, ns.tenant)
    assert job.status == JobStatus.RUNNING
    assert job.attempts[0].status == AttemptStatus.FAILED
    assert job.attempts[0].failure is not None
    assert job.attempts[0].failure.code == "lease_expired"
    assert job.attempts[0].result == b""
    await report_result(short_stub, second, b"done", worker="w1")
    assert (await get_job(short_stub, job_id, ns.tenant)).status == JobStatus.SUCCEEDED


async def test_failure_with_retries_left_schedules_a_retry(shared_stub: SiloStub, ns) -> None:
    job_id, task = await enqueue_and_lease(
        shared_stub,
        ns.tenant,
        ns.queue,
        retry_policy=RetryPolicy(max_retries=1, schedule_ms=[60_000]),
    )
    await report_failure(shared_stub, task, code="E42", message="disk full", data=b"\x01\x02")
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert job.status == JobStatus.SCHEDULED
    assert job.attempt_count == 1
    [attempt] = job.attempts
    assert attempt.status == AttemptStatus.FAILED
    assert attempt.failure is not None
    assert (attempt.failure.code, attempt.failure.message, attempt.failure.data) == (
        "E42",
        "disk full",
        b"\x01\x02",
    )
    assert job.last_failure is not None and job.last_failure.code == "E42"
    assert job.next_attempt_at_ms >= attempt.finished_at_ms + 60_000 - 50
    assert await lease(shared_stub, [ns.queue], max_tasks=10) == []


async def test_non_retryable_failure_fails_the_job(shared_stub: SiloStub, ns) -> None:
    job_id, task = await enqueue_and_lease(shared_stub, ns.tenant, ns.queue, retry_policy=RETRY_NOW)
    await report_failure(shared_stub, task, code="bad_input", non_retryable=True)
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert job.status == JobStatus.FAILED
    assert job.next_attempt_at_ms == 0
    assert job.last_failure is not None
    assert job.last_failure.code == "bad_input"
    assert job.last_failure.non_retryable is True
    assert await lease(shared_stub, [ns.queue], max_tasks=10, wait_ms=200) == []


async def test_failure_without_retry_policy_fails_the_job(shared_stub: SiloStub, ns) -> None:
    job_id, task = await enqueue_and_lease(shared_stub, ns.tenant, ns.queue)
    await report_failure(shared_stub, task, code="oops")
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert job.status == JobStatus.FAILED
    assert job.last_failure is not None and job.last_failure.code == "oops"
    assert job.attempts[0].status == AttemptStatus.FAILED


async def test_cancelled_outcome_on_a_live_job_cancels_it(shared_stub: SiloStub, ns) -> None:
    job_id, task = await enqueue_and_lease(shared_stub, ns.tenant, ns.queue, retry_policy=RETRY_NOW)
    await report_cancelled(shared_stub, task)
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert job.status == JobStatus.CANCELLED
    assert job.attempts[0].status == AttemptStatus.CANCELLED
    assert job.next_attempt_at_ms == 0
    # The worker gave the job up: no retry follows.
    assert await lease(shared_stub, [ns.queue], max_tasks=10, wait_ms=200) == []
    await expect_status(heartbeat(shared_stub, task), Status.FAILED_PRECONDITION)


# ------------------------------------------------------------------------ ReportTaskOutcomes


async def test_batch_reports_succeed_or_fail_alone(shared_stub: SiloStub, ns) -> None:
    ids = [
        await enqueue(shared_stub, id=f"j{i}", tenant=ns.tenant, queue=ns.queue) for i in range(4)
    ]
    tasks = await lease(shared_stub, [ns.queue], worker="w", max_tasks=4)
    assert [t.job_id for t in tasks] == ids
    t0, t1, t2, t3 = tasks
    reports = [
        ReportTaskOutcomeRequest(task_id=t0.task_id, worker_id="w", result=b"r0"),
        ReportTaskOutcomeRequest(task_id="no-such-task", worker_id="w", result=b""),
        ReportTaskOutcomeRequest(task_id=t1.task_id, worker_id="w"),  # no outcome
        ReportTaskOutcomeRequest(
            task_id=t1.task_id, worker_id="w", failure=TaskFailure(code="f1", non_retryable=True)
        ),
        ReportTaskOutcomeRequest(task_id=t0.task_id, worker_id="w", result=b"again"),
        ReportTaskOutcomeRequest(task_id=t2.task_id, worker_id="intruder", result=b"x"),
        ReportTaskOutcomeRequest(task_id=t3.task_id, worker_id="w", cancelled=TaskCancelled()),
        ReportTaskOutcomeRequest(task_id=t2.task_id, worker_id="w", result=b""),
    ]
    resp = await shared_stub.report_task_outcomes(ReportTaskOutcomesRequest(reports=reports))
    assert [r.code for r in resp.results] == [
        OK,
        Status.NOT_FOUND.value,
        Status.INVALID_ARGUMENT.value,
        OK,
        Status.ALREADY_EXISTS.value,
        Status.FAILED_PRECONDITION.value,
        OK,
        OK,
    ], list(resp.results)
    for r in resp.results:
        if r.code != OK:
            assert r.message
    jobs = [await get_job(shared_stub, job_id, ns.tenant) for job_id in ids]
    assert [(j.status, j.result) for j in jobs] == [
        (JobStatus.SUCCEEDED, b"r0"),
        (JobStatus.FAILED, b""),
        (JobStatus.SUCCEEDED, b""),
        (JobStatus.CANCELLED, b""),
    ]


async def test_empty_report_batch(shared_stub: SiloStub) -> None:
    resp = await shared_stub.report_task_outcomes(ReportTaskOutcomesRequest(reports=[]))
    assert list(resp.results) == []


async def test_report_batch_over_1000_is_invalid_and_records_nothing(
    shared_stub: SiloStub, ns
) -> None:
    job_id, task = await enqueue_and_lease(shared_stub, ns.tenant, ns.queue, worker="w")
    reports = [ReportTaskOutcomeRequest(task_id=task.task_id, worker_id="w", result=b"x")]
    reports += [
        ReportTaskOutcomeRequest(task_id=f"missing-{i}", worker_id="w", result=b"")
        for i in range(1000)
    ]
    await expect_status(
        shared_stub.report_task_outcomes(ReportTaskOutcomesRequest(reports=reports)),
        Status.INVALID_ARGUMENT,
    )
    assert (await get_job(shared_stub, job_id, ns.tenant)).status == JobStatus.RUNNING


async def test_report_batch_of_1000(shared_stub: SiloStub, ns) -> None:
    jobs = [EnqueueRequest(id=f"k{i:04d}", tenant=ns.tenant, queue=ns.queue) for i in range(1000)]
    await shared_stub.enqueue_batch(EnqueueBatchRequest(jobs=jobs))
    tasks = await lease(shared_stub, [ns.queue], worker="w", max_tasks=1000)
    assert len(tasks) == 1000
    reports = [
        ReportTaskOutcomeRequest(task_id=t.task_id, worker_id="w", result=t.job_id.encode())
        for t in tasks
    ]
    resp = await shared_stub.report_task_outcomes(ReportTaskOutcomesRequest(reports=reports))
    assert [r.code for r in resp.results] == [OK] * 1000
    for job_id in ["k0000", "k0500", "k0999"]:
        job = await get_job(shared_stub, job_id, ns.tenant)
        assert (job.status, job.result) == (JobStatus.SUCCEEDED, job_id.encode())
