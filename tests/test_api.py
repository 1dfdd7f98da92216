"""The typed `silo.Api` (python/silo/methods.py, rust/py/convert/), the same test body against an
embedded broker (`silo.open`) and a remote one (`silo.connect` to `silo serve`): every field of
NewJob, Job, Task and Attempt round-trips as typed values, bad input raises InvalidArgument
naming the field, and failures raise the silo.errors class each method documents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import silo
from conftest import MakeApi
from helpers import now_ms
from silo import (
    AttemptStatus,
    ConcurrencyLimit,
    Job,
    JobStatus,
    NewJob,
    Report,
    RetryPolicy,
    Task,
    TaskFailure,
)


async def test_every_field_round_trips(make_api: MakeApi) -> None:
    api = await make_api()
    policy = RetryPolicy(
        max_retries=2,
        schedule_ms=(0, 5),
        initial_backoff_ms=10,
        backoff_multiplier=3.0,
        max_backoff_ms=99,
        jitter=True,
    )
    limits = (ConcurrencyLimit("k1", 3), ConcurrencyLimit("k2", 1))
    before = now_ms()
    enqueued = await api.enqueue(
        id="j1",
        tenant="t",
        queue="q",
        priority=70,
        start_at=datetime.now(UTC) - timedelta(seconds=1),
        retry_policy=policy,
        concurrency_limits=limits,
        payload=b"\x00payload",
        metadata={"a": "1", "b": "é"},
    )
    assert enqueued == "j1" and enqueued.id == "j1" and enqueued.deduplicated is False
    job = await api.get_job(id="j1", tenant="t")
    assert isinstance(job, Job)
    assert (job.id, job.tenant, job.queue, job.priority) == ("j1", "t", "q", 70)
    assert job.status is JobStatus.PENDING
    assert (job.payload, dict(job.metadata)) == (b"\x00payload", {"a": "1", "b": "é"})
    assert job.retry_policy == policy
    assert job.concurrency_limits == limits
    assert job.created_at_ms >= before and job.created_at is not None
    assert job.created_at.tzinfo is not None
    assert job.start_at_ms <= job.created_at_ms
    assert job.attempt_count == 0 and job.attempts == () and job.last_failure is None

    [task] = await api.lease_tasks(worker_id="w", max_tasks=5, queues=["q"])
    assert isinstance(task, Task)
    assert (task.job_id, task.tenant, task.queue, task.priority) == ("j1", "t", "q", 70)
    assert (task.payload, dict(task.metadata), task.attempt) == (b"\x00payload", job.metadata, 1)
    assert task.heartbeat_interval_ms == 10_000 and task.is_last_attempt is False
    assert task.lease_expires_at_ms > before and task.heartbeat_cursor == b""
    beat = await api.heartbeat_task(task_id=task.task_id, worker_id="w", cursor=b"c1")
    assert beat.cancelled is False and beat.lease_expires_at_ms >= task.lease_expires_at_ms
    failure = TaskFailure(code="E", message="m", data=b"\x01tb", non_retryable=False)
    await api.report_task_outcome(task_id=task.task_id, worker_id="w", failure=failure)

    [retry] = await api.lease_tasks(worker_id="w", queues=["q"], wait_ms=5000)
    assert (retry.attempt, retry.heartbeat_cursor) == (2, b"c1")
    await api.report_task_outcome(task_id=retry.task_id, worker_id="w", result=b"")
    job = await api.get_job(id="j1", tenant="t", include_attempts=True)
    assert job.status is JobStatus.SUCCEEDED and job.terminal
    assert job.last_failure == failure
    first, second = job.attempts
    assert (first.attempt, first.task_id, first.worker_id) == (1, task.task_id, "w")
    assert first.status is AttemptStatus.FAILED and first.failure == failure
    assert first.heartbeat_cursor == b"c1" and first.finished_at is not None
    assert second.status is AttemptStatus.SUCCEEDED and second.result == b""


async def test_batches_answer_one_result_per_entry(make_api: MakeApi) -> None:
    api = await make_api()
    results = await api.enqueue_many(
        [NewJob(id="a", queue="q"), NewJob(id="a", queue="q"), NewJob(queue="q", priority=500)]
    )
    assert [r.ok for r in results] == [True, False, False]
    assert results[0].id == "a"
    assert results[1].code == 6  # ALREADY_EXISTS
    assert results[2].code == 3 and "jobs[2].priority" in results[2].message
    [task] = await api.lease_tasks(worker_id="w", max_tasks=5, queues=["q"])
    outcomes = await api.report_task_outcomes(
        reports=[
            Report(task_id=task.task_id, worker_id="w", result=b"r"),
            Report(task_id="no-such-task", worker_id="w", cancelled=True),
        ]
    )
    assert [o.ok for o in outcomes] == [True, False]
    assert (await api.get_job(id="a")).result == b"r"


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"priority": "high"}, "priority"),
        ({"priority": -1}, "priority"),
        ({"priority": 101}, "priority"),
        ({"payload": "text"}, "payload"),
        ({"metadata": {"k": 1}}, "metadata"),
        ({"metadata": ["k"]}, "metadata"),
        ({"queue": 7}, "queue"),
        ({"start_at_ms": -5}, "start_at_ms"),
        ({"start_at_ms": 1, "start_at": datetime.now(UTC)}, "start_at"),
        ({"retry_policy": RetryPolicy(max_retries=-1)}, "retry_policy.max_retries"),
        ({"concurrency_limits": [ConcurrencyLimit("k", 0)]}, "concurrency_limits[0]"),
        ({"concurrency_limits": [ConcurrencyLimit("k", "x")]}, "concurrency_limits[0]"),  # type: ignore[arg-type]
        ({"id": "x" * 128}, "id"),
    ],
)
async def test_bad_input_names_the_field(
    make_api: MakeApi, fields: dict[str, Any], named: str
) -> None:
    api = await make_api()
    with pytest.raises(silo.InvalidArgument, match=named.replace("[", r"\[").replace("]", r"\]")):
        await api.enqueue(**fields)
    async for job in _jobs(api):
        pytest.fail(f"bad input stored a job: {job}")


async def _jobs(api: Any) -> Any:
    # Nothing was stored: the default queue has nothing to lease.
    for task in await api.lease_tasks(worker_id="w", max_tasks=10):
        yield task


async def test_bad_input_in_other_calls(make_api: MakeApi) -> None:
    api = await make_api()
    with pytest.raises(silo.InvalidArgument, match=r"jobs\[1\]\.payload"):
        await api.enqueue_many([NewJob(), NewJob(payload="x")])  # type: ignore[arg-type]
    with pytest.raises(silo.InvalidArgument, match="outcome"):
        await api.report_task_outcome(task_id="t", worker_id="w")
    with pytest.raises(silo.InvalidArgument, match="outcome"):
        await api.report_task_outcome(task_id="t", worker_id="w", result=b"", cancelled=True)
    with pytest.raises(silo.InvalidArgument, match=r"reports\[0\]\.outcome"):
        await api.report_task_outcomes(reports=[Report(task_id="t", worker_id="w")])
    with pytest.raises(silo.InvalidArgument, match="max_tasks"):
        await api.lease_tasks(worker_id="w", max_tasks=1001)
    with pytest.raises(silo.InvalidArgument, match=r"queues\[0\]"):
        await api.lease_tasks(worker_id="w", queues=[1])  # type: ignore[list-item]
    with pytest.raises(silo.InvalidArgument, match="cursor"):
        await api.heartbeat_task(task_id="t", worker_id="w", cursor="c")  # type: ignore[arg-type]
    with pytest.raises(silo.InvalidArgument, match="include_attempts"):
        await api.get_job(id="x", include_attempts="yes")  # type: ignore[arg-type]


async def test_failures_raise_the_documented_classes(make_api: MakeApi) -> None:
    api = await make_api()
    with pytest.raises(silo.JobNotFound):
        await api.get_job(id="missing")
    with pytest.raises(silo.JobNotFound):
        await api.cancel(id="missing")
    await api.enqueue(id="once", queue="q")
    with pytest.raises(silo.JobAlreadyExists):
        await api.enqueue(id="once", queue="q")
    [task] = await api.lease_tasks(worker_id="w", queues=["q"])
    with pytest.raises(silo.LeaseNotHeld):
        await api.heartbeat_task(task_id=task.task_id, worker_id="someone-else")
    with pytest.raises(silo.TaskNotFound):
        await api.heartbeat_task(task_id="no-such-task", worker_id="w")
    with pytest.raises(silo.TaskNotFound):
        await api.report_task_outcome(task_id="no-such-task", worker_id="w", result=b"")
    await api.report_task_outcome(task_id=task.task_id, worker_id="w", cancelled=True)
    with pytest.raises(silo.OutcomeAlreadyRecorded):
        await api.report_task_outcome(task_id=task.task_id, worker_id="w", result=b"")
    with pytest.raises(silo.JobTerminal):
        await api.cancel(id="once")


async def test_both_kinds_satisfy_the_protocol(make_api: MakeApi) -> None:
    api = await make_api()
    assert isinstance(api, silo.Api)
    async with api as same:
        assert same is api
    await api.close()  # idempotent


async def test_admin_stats(make_api: MakeApi) -> None:
    api = await make_api(lease_ms=900)
    stats = await api.get_stats()
    assert stats["settings"]["lease_ms"] == "900"
    assert "ready" in stats["gauges"]
