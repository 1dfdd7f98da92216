"""`silo worker`, `silo enqueue` and `silo jobs` (python/silo/commands.py) as a user runs them:
child processes against a real `silo serve` or on a store of their own. A worker killed with
SIGKILL mid-task: the task comes back when its lease expires and another worker completes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import silo
from conftest import MakeServer
from silo import JobStatus

TASKS = textwrap.dedent(
    """
    import asyncio
    import os

    import silo


    @silo.task(queue="cli", retry=silo.RetryPolicy(max_retries=1, schedule_ms=(0,)))
    async def slow(ctx: silo.TaskContext, word: str) -> str:
        if os.environ.get("SILO_TEST_STARTED"):
            open(os.environ["SILO_TEST_STARTED"], "w").close()
        if ctx.attempt == 1 and os.environ.get("SILO_TEST_HANG"):
            open(os.environ["SILO_TEST_HANG"], "w").close()
            await asyncio.sleep(3600)
        return f"{word} on attempt {ctx.attempt}"
    """
)


@pytest.fixture
def tasks_dir(tmp_path: Path) -> Path:
    (tmp_path / "cli_tasks.py").write_text(TASKS)
    return tmp_path


def silo_cmd(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "silo", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def start_worker(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "silo", "worker", "cli_tasks", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )


def wait_file(path: Path, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)  # the file is the child's only signal


async def test_a_killed_worker_s_task_completes_on_another(
    make_server: MakeServer, tasks_dir: Path
) -> None:
    server = await make_server(lease_ms=900)
    done = silo_cmd(
        tasks_dir,
        "enqueue",
        "--connect",
        server.address,
        "--queue",
        "cli",
        "--task",
        "cli_tasks.slow",
        "--args",
        '["hello"]',
    )
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip()
    hang = tasks_dir / "hanging"
    first = start_worker(tasks_dir, "--connect", server.address, env={"SILO_TEST_HANG": str(hang)})
    try:
        wait_file(hang, first)
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.communicate(timeout=30)
    second = start_worker(tasks_dir, "--connect", server.address)
    try:
        async with await silo.connect(server.address) as api:
            job = await _wait_terminal(api, job_id)
    finally:
        second.send_signal(signal.SIGTERM)
        out = second.communicate(timeout=60)[0]
    assert second.returncode == 0, out
    assert job.status is JobStatus.SUCCEEDED, (job.attempts, job.last_failure)
    assert json.loads(job.result) == "hello on attempt 2"
    assert job.attempts[0].failure is not None
    assert job.attempts[0].failure.code == "lease_expired"


async def _wait_terminal(api: silo.Client, job_id: str, timeout: float = 60.0) -> silo.Job:
    deadline = time.monotonic() + timeout
    while True:
        job = await api.get_job(id=job_id, include_attempts=True)
        if job.terminal:
            return job
        assert time.monotonic() < deadline, f"job still {job.status.name}"
        import asyncio

        await asyncio.sleep(0.05)  # the lease expiry has no event a client can await


def test_worker_and_broker_in_one_process(tasks_dir: Path) -> None:
    store = str(tasks_dir / "store")
    done = silo_cmd(
        tasks_dir,
        "enqueue",
        "--store",
        store,
        "--queue",
        "cli",
        "--task",
        "cli_tasks.slow",
        "--args",
        '["embedded"]',
        "--id",
        "e1",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "e1"
    # A SIGTERM as soon as the ready line shows stops the worker gracefully (exit 0): the line
    # is printed once the signal handlers are installed. Five tries: the race it had was narrow;
    # they lease from another queue so that the job stays for the run below.
    for _ in range(5):
        early = start_worker(tasks_dir, "--store", store, "--queues", "elsewhere")
        try:
            assert early.stdout is not None
            for line in early.stdout:  # log lines, then the worker's own
                if "queues elsewhere" in line:
                    break
            early.send_signal(signal.SIGTERM)
        finally:
            out = early.communicate(timeout=60)[0]
        assert early.returncode == 0, out
    started = tasks_dir / "started"
    worker = start_worker(tasks_dir, "--store", store, env={"SILO_TEST_STARTED": str(started)})
    try:
        # The job was due before the worker started: its first lease takes it, and the
        # SIGTERM once it runs lets it finish and be reported before the worker exits.
        wait_file(started, worker)
        worker.send_signal(signal.SIGTERM)
    finally:
        out = worker.communicate(timeout=60)[0]
    assert worker.returncode == 0, out
    shown = silo_cmd(tasks_dir, "jobs", "show", "e1", "--store", store, "--json")
    assert shown.returncode == 0, shown.stderr
    job = json.loads(shown.stdout)
    assert job["status"] == "SUCCEEDED", job
    assert json.loads(job["result"]) == "embedded on attempt 1"


async def test_jobs_commands(make_server: MakeServer, tasks_dir: Path) -> None:
    server = await make_server()
    connect = ("--connect", server.address)
    done = silo_cmd(
        tasks_dir,
        "enqueue",
        *connect,
        "--queue",
        "q",
        "--payload",
        "hi",
        "--metadata",
        "k=v",
        "--id",
        "j1",
    )
    assert (done.returncode, done.stdout.strip()) == (0, "j1"), done.stderr
    shown = silo_cmd(tasks_dir, "jobs", "show", "j1", *connect)
    assert shown.returncode == 0 and "PENDING" in shown.stdout and "j1" in shown.stdout
    cancelled = silo_cmd(tasks_dir, "jobs", "cancel", "j1", *connect, "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["status"] == "CANCELLED"
    again = silo_cmd(tasks_dir, "jobs", "cancel", "j1", *connect)
    assert again.returncode == 1
    assert (
        again.stderr.startswith("silo jobs: error: job is already")
        and again.stderr.count("\n") == 1
    )
    missing = silo_cmd(tasks_dir, "jobs", "show", "nope", *connect)
    assert (missing.returncode, missing.stderr.strip()) == (1, "silo jobs: error: job not found")
    many = silo_cmd(tasks_dir, "enqueue", *connect, "--queue", "bulk", "--count", "2500")
    assert many.returncode == 0, many.stderr
    assert "enqueued 2500 job(s), 0 refused" in many.stdout


async def test_jobs_list_and_restart(make_server: MakeServer, tasks_dir: Path) -> None:
    server = await make_server()
    connect = ("--connect", server.address)
    async with await silo.connect(server.address) as api:
        for i in range(3):
            await api.enqueue(id=f"r{i}", queue="ops", metadata={"silo.task": "cli_tasks.slow"})
        [task] = await api.lease_tasks(worker_id="w", queues=["ops"])
        assert task.job_id == "r0"
        failure = silo.TaskFailure(code="boom", message="no", non_retryable=True)
        await api.report_task_outcome(task_id=task.task_id, worker_id="w", failure=failure)

    failed = silo_cmd(tasks_dir, "jobs", "list", *connect, "--queue", "ops", "--status", "failed")
    assert failed.returncode == 0, failed.stderr
    listed = silo_cmd(
        tasks_dir, "jobs", "list", *connect, "--queue", "ops", "--status", "FAILED", "--json"
    )
    assert [(j["id"], j["status"]) for j in json.loads(listed.stdout)] == [("r0", "FAILED")]
    # rich draws for 80 columns when its output is not a terminal: room for every column.
    table = silo_cmd(tasks_dir, "jobs", "list", *connect, "--queue", "ops", env={"COLUMNS": "200"})
    assert table.returncode == 0, table.stderr
    for text in ("r0", "r1", "r2", "FAILED", "PENDING", "cli_tasks.slow"):
        assert text in table.stdout
    limited = silo_cmd(tasks_dir, "jobs", "list", *connect, "--limit", "2", "--json")
    assert len(json.loads(limited.stdout)) == 2
    bad = silo_cmd(tasks_dir, "jobs", "list", *connect, "--status", "lost")
    assert bad.returncode == 1 and bad.stderr.startswith("silo jobs: error: --status: no status")

    restarted = silo_cmd(tasks_dir, "jobs", "restart", "r0", *connect, "--json")
    assert restarted.returncode == 0, restarted.stderr
    job = json.loads(restarted.stdout)
    assert (job["status"], job["attempt_count"]) == ("PENDING", 1)
    again = silo_cmd(tasks_dir, "jobs", "restart", "r0", *connect)
    assert again.returncode == 1
    assert again.stderr.startswith("silo jobs: error: ") and again.stderr.count("\n") == 1
