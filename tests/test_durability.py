"""Durability (docs/api.md#guarantees, docs/architecture.md#durability): every acknowledged change
survives `kill -9`; RUNNING tasks come back with a fresh lease after a restart."""

from __future__ import annotations

import asyncio

import pytest
from grpclib.const import Status
from helpers import (
    enqueue,
    expect_status,
    get_job,
    heartbeat,
    lease,
    now_ms,
    report_failure,
    report_result,
)
from silo._proto.silo.v1 import (
    AttemptStatus,
    CancelRequest,
    EnqueueBatchRequest,
    EnqueueRequest,
    JobStatus,
    ReportTaskOutcomeRequest,
    RetryPolicy,
)
from silo.testing import ServerProcess

# Core behaviour: runs once per store kind (file and S3), see conftest.
pytestmark = pytest.mark.all_stores


T = "tenant-d"


async def test_acknowledged_changes_survive_kill9(make_server) -> None:
    server: ServerProcess = await make_server()
    stub = server.stub()
    start = now_ms() + 3_600_000
    await enqueue(
        stub, id="pending", tenant=T, queue="q", priority=70, payload=b"P", metadata={"k": "v"}
    )
    await enqueue(stub, id="scheduled", tenant=T, queue="q", start_at_ms=start)
    batch = [
        EnqueueRequest(id=f"b{i:02d}", tenant=T, queue="q", payload=bytes([i])) for i in range(50)
    ]
    await stub.enqueue_batch(EnqueueBatchRequest(jobs=batch))
    await enqueue(stub, id="default-tenant", queue="q2")

    retry = RetryPolicy(max_retries=2, schedule_ms=[3_600_000])
    for job_id in ["succeed", "fail", "running", "cancel-running", "retrying"]:
        await enqueue(stub, id=job_id, tenant=T, queue="work", retry_policy=retry)
    tasks = {t.job_id: t for t in await lease(stub, ["work"], worker="w", max_tasks=10)}
    assert list(tasks) == ["succeed", "fail", "running", "cancel-running", "retrying"]
    await report_result(stub, tasks["succeed"], b"result!", worker="w")
    await report_failure(stub, tasks["fail"], code="fatal", non_retryable=True, worker="w")
    await report_failure(stub, tasks["retrying"], code="again", worker="w")
    retry_at = (await get_job(stub, "retrying", T)).next_attempt_at_ms
    await enqueue(stub, id="pending-cancel", tenant=T, queue="q3")
    await stub.cancel(CancelRequest(id="pending-cancel", tenant=T))
    await stub.cancel(CancelRequest(id="cancel-running", tenant=T))
    await heartbeat(stub, tasks["running"], worker="w", cursor=b"cursor-1")
    server.kill9()  # right after the last answer

    await server.arestart()
    stub = server.stub()

    job = await get_job(stub, "pending", T)
    assert (job.status, job.priority, job.payload, job.metadata) == (
        JobStatus.PENDING,
        70,
        b"P",
        {"k": "v"},
    )
    job = await get_job(stub, "scheduled", T)
    assert (job.status, job.start_at_ms, job.next_attempt_at_ms) == (
        JobStatus.SCHEDULED,
        start,
        start,
    )
    for req in batch:
        assert (await get_job(stub, req.id, T)).payload == req.payload
    assert (await get_job(stub, "default-tenant")).status == JobStatus.PENDING

    job = await get_job(stub, "succeed", T)
    assert (job.status, job.result) == (JobStatus.SUCCEEDED, b"result!")
    job = await get_job(stub, "fail", T)
    assert job.status == JobStatus.FAILED
    assert job.last_failure is not None and job.last_failure.code == "fatal"
    job = await get_job(stub, "retrying", T)
    assert (job.status, job.next_attempt_at_ms) == (JobStatus.SCHEDULED, retry_at)
    assert (await get_job(stub, "pending-cancel", T)).status == JobStatus.CANCELLED
    assert (await get_job(stub, "cancel-running", T)).status == JobStatus.CANCELLED
    job = await get_job(stub, "running", T)
    assert job.status == JobStatus.RUNNING
    assert job.attempts[0].status == AttemptStatus.RUNNING
    assert job.attempts[0].heartbeat_cursor == b"cursor-1"

    # RUNNING tasks come back with a fresh lease, still held by their worker.
    resp = await heartbeat(stub, tasks["running"], worker="w")
    assert resp.cancelled is False
    assert resp.lease_expires_at_ms > now_ms()
    assert (await heartbeat(stub, tasks["cancel-running"], worker="w")).cancelled is True
    await expect_status(
        heartbeat(stub, tasks["running"], worker="other"), Status.FAILED_PRECONDITION
    )
    # Recorded outcomes stay recorded.
    await expect_status(report_result(stub, tasks["succeed"], worker="w"), Status.ALREADY_EXISTS)

    # Nothing is handed out twice: the running task is not re-leased, pending work is, in order.
    assert await lease(stub, ["work", "q3"], worker="w2", max_tasks=10) == []
    leased = await lease(stub, ["q"], worker="w2", max_tasks=1000)
    assert [t.job_id for t in leased] == ["pending"] + [r.id for r in batch]
    old_ids = {t.task_id for t in tasks.values()}
    assert not old_ids & {t.task_id for t in leased}

    await expect_status(stub.enqueue(EnqueueRequest(id="succeed", tenant=T)), Status.ALREADY_EXISTS)
    await report_result(stub, tasks["running"], b"after restart", worker="w")
    job = await get_job(stub, "running", T)
    assert (job.status, job.result) == (JobStatus.SUCCEEDED, b"after restart")


async def test_enqueues_acknowledged_before_a_crash_are_kept(make_server) -> None:
    server: ServerProcess = await make_server()
    stub = server.stub()
    acked: list[str] = []
    errors_before_kill: list[BaseException] = []
    killed = False

    async def producer(k: int) -> None:
        nonlocal killed
        for i in range(100):
            if killed:
                return
            job_id = f"s{k}-{i}"
            try:
                await stub.enqueue(EnqueueRequest(id=job_id, tenant=T, queue="q", payload=b"x"))
            except Exception as exc:  # after the kill every call fails, whatever the error
                if not killed:
                    errors_before_kill.append(exc)
                return
            acked.append(job_id)  # an answer is an acknowledgement, even one read after the kill
            if len(acked) >= 150 and not killed:
                killed = True
                server.kill9()  # right after this answer, with other calls in flight

    await asyncio.gather(*(producer(k) for k in range(8)))
    assert not errors_before_kill, errors_before_kill
    assert killed and len(acked) >= 150

    await server.arestart()
    stub = server.stub()
    for job_id in acked:
        assert (await get_job(stub, job_id, T, attempts=False)).status == JobStatus.PENDING


async def test_reports_acknowledged_before_a_crash_are_kept(make_server) -> None:
    server: ServerProcess = await make_server()
    stub = server.stub()
    jobs = [EnqueueRequest(id=f"r{i:03d}", tenant=T, queue="q") for i in range(200)]
    await stub.enqueue_batch(EnqueueBatchRequest(jobs=jobs))
    tasks = await lease(stub, ["q"], worker="w", max_tasks=200)
    assert len(tasks) == 200
    acked: list[str] = []
    killed = False
    pending = list(tasks)

    async def reporter() -> None:
        nonlocal killed
        while pending and not killed:
            task = pending.pop(0)
            try:
                await stub.report_task_outcome(
                    ReportTaskOutcomeRequest(
                        task_id=task.task_id, worker_id="w", result=task.job_id.encode()
                    )
                )
            except Exception:  # only after the kill
                assert killed
                return
            acked.append(
                task.job_id
            )  # an answer is an acknowledgement, even one read after the kill
            if len(acked) >= 60 and not killed:
                killed = True
                server.kill9()  # right after this answer

    await asyncio.gather(*(reporter() for _ in range(8)))
    assert killed

    await server.arestart()
    stub = server.stub()
    by_job = {t.job_id: t for t in tasks}
    for job_id in by_job:
        job = await get_job(stub, job_id, T)
        if job_id in acked:
            assert (job.status, job.result) == (JobStatus.SUCCEEDED, job_id.encode())
        else:
            assert job.status in (JobStatus.RUNNING, JobStatus.SUCCEEDED)
            if job.status == JobStatus.RUNNING:
                # Its worker still holds it and can finish it after the restart.
                await report_result(stub, by_job[job_id], job_id.encode(), worker="w")
    assert await lease(stub, ["q"], worker="w2", max_tasks=200) == []


async def test_running_task_gets_a_fresh_lease_after_restart(make_server) -> None:
    server: ServerProcess = await make_server(lease_ms=3_000)
    stub = server.stub()
    job_id = await enqueue(stub, tenant=T, queue="q")
    [task] = await lease(stub, ["q"], worker="w", max_tasks=1)
    server.kill9()
    # The broker must be down while the old lease's expiry passes: there is no event to await
    # on a dead process.
    await asyncio.sleep(max(0.0, (task.lease_expires_at_ms - now_ms()) / 1000) + 0.3)
    assert now_ms() > task.lease_expires_at_ms

    restarted_at = now_ms()
    await server.arestart()
    stub = server.stub()
    resp = await heartbeat(stub, task, worker="w")
    assert resp.cancelled is False
    assert resp.lease_expires_at_ms > now_ms()
    assert resp.lease_expires_at_ms >= restarted_at + 3_000
    job = await get_job(stub, job_id, T)
    assert (job.status, job.attempt_count) == (JobStatus.RUNNING, 1)
    await report_result(stub, task, b"ok", worker="w")
    assert (await get_job(stub, job_id, T)).status == JobStatus.SUCCEEDED


async def test_restart_after_restart(make_server) -> None:
    server: ServerProcess = await make_server()
    done: list[str] = []
    for cycle in range(3):
        stub = server.stub()
        jobs = [EnqueueRequest(id=f"c{cycle}-{i:02d}", tenant=T, queue="q") for i in range(20)]
        results = (await stub.enqueue_batch(EnqueueBatchRequest(jobs=jobs))).results
        assert all(r.code == 0 for r in results)
        tasks = await lease(stub, ["q"], worker="w", max_tasks=10)
        for task in tasks:
            await report_result(stub, task, worker="w")
            done.append(task.job_id)
        server.kill9()
        await server.arestart()
    stub = server.stub()
    for job_id in done:
        assert (await get_job(stub, job_id, T)).status == JobStatus.SUCCEEDED
    remaining = await lease(stub, ["q"], worker="w", max_tasks=1000)
    expected = [f"c{c}-{i:02d}" for c in range(3) for i in range(20)]
    assert [t.job_id for t in remaining] == [j for j in expected if j not in done]
    assert len(done) == 30
