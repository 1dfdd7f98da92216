"""silo.Client, the README's example client (python/silo/client.py), against a real broker:
each method does what its RPC does, failures arrive as the silo.errors classes the method
documents, and the README's example runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from silo import Client, errors
from silo._proto.silo.v1 import EnqueueRequest, JobStatus, TaskFailure
from silo.client import outcome_request
from silo.testing import ServerProcess, free_port

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_example() -> str:
    """The first Python code block of the README."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README.md has no python example"
    return str(blocks[0])


def test_the_readme_example_runs(server: ServerProcess) -> None:
    code = readme_example()
    assert "127.0.0.1:7070" in code
    code = code.replace("127.0.0.1:7070", server.address)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    # The example enqueues, leases, reports a result and prints the job's status.
    assert done.stdout.strip() == str(JobStatus.SUCCEEDED), done.stdout


async def test_one_job_through_every_method(server: ServerProcess) -> None:
    async with Client(server.address, timeout=30) as client:
        job_id = await client.enqueue(queue="q", payload=b"p", metadata={"k": "v"})
        job = await client.get_job(id=job_id)
        assert (job.status, job.payload, dict(job.metadata)) == (
            JobStatus.PENDING,
            b"p",
            {"k": "v"},
        )
        [task] = await client.lease_tasks(worker_id="w", max_tasks=5, queues=["q"])
        assert task.job_id == job_id
        beat = await client.heartbeat_task(task_id=task.task_id, worker_id="w", cursor=b"c1")
        assert beat.cancelled is False
        await client.report_task_outcome(task_id=task.task_id, worker_id="w", result=b"r")
        job = await client.get_job(id=job_id, include_attempts=True)
        assert job.status == JobStatus.SUCCEEDED
        assert [a.result for a in job.attempts] == [b"r"]


async def test_batches(server: ServerProcess) -> None:
    async with Client(server.address, timeout=30) as client:
        results = await client.enqueue_batch(
            jobs=[EnqueueRequest(id=f"b{i}", queue="q") for i in range(3)]
        )
        assert [r.id for r in results] == ["b0", "b1", "b2"]
        tasks = await client.lease_tasks(worker_id="w", max_tasks=3, queues=["q"])
        failure = TaskFailure(code="boom", message="no")
        reports = [
            outcome_request(task_id=tasks[0].task_id, worker_id="w", result=b"ok"),
            outcome_request(task_id=tasks[1].task_id, worker_id="w", failure=failure),
            outcome_request(task_id="no-such-task", worker_id="w", result=b"x"),
        ]
        codes = [r.code for r in await client.report_task_outcomes(reports=reports)]
        assert codes[:2] == [0, 0]
        assert codes[2] != 0  # that entry failed alone
        assert (await client.get_job(id="b0")).status == JobStatus.SUCCEEDED


async def test_failures_raise_the_documented_classes(server: ServerProcess) -> None:
    async with Client(server.address, timeout=30) as client:
        with pytest.raises(errors.JobNotFound):
            await client.get_job(id="missing")
        await client.enqueue(id="once", queue="q")
        with pytest.raises(errors.JobAlreadyExists):
            await client.enqueue(id="once", queue="q")
        with pytest.raises(errors.InvalidArgument, match="priority"):
            await client.enqueue(queue="q", priority=101)
        [task] = await client.lease_tasks(worker_id="w", queues=["q"])
        with pytest.raises(errors.LeaseNotHeld):
            await client.heartbeat_task(task_id=task.task_id, worker_id="someone-else")
        with pytest.raises(errors.TaskNotFound):
            await client.report_task_outcome(task_id="no-such-task", worker_id="w", result=b"")
        await client.report_task_outcome(task_id=task.task_id, worker_id="w", cancelled=True)
        with pytest.raises(errors.OutcomeAlreadyRecorded):
            await client.report_task_outcome(task_id=task.task_id, worker_id="w", result=b"")
        with pytest.raises(errors.JobTerminal):
            await client.cancel(id="once")


def test_an_outcome_needs_exactly_one_kind() -> None:
    with pytest.raises(errors.InvalidArgument, match="exactly one"):
        outcome_request(task_id="t", worker_id="w")
    with pytest.raises(errors.InvalidArgument, match="exactly one"):
        outcome_request(task_id="t", worker_id="w", result=b"", cancelled=True)


async def test_no_broker_is_unavailable() -> None:
    async with Client(f"127.0.0.1:{free_port()}", timeout=10) as client:
        with pytest.raises(errors.Unavailable):
            await client.get_job(id="x")
