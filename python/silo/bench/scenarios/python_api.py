"""`silo bench python-api`: the public Python API (silo.open, silo.connect, silo.Worker) side by
side with gRPC and with Dramatiq on Redis, in one run (BENCHMARKS.md, "The Python API").

Phases (each in this process, one event loop, uvloop):
- enqueue: single `enqueue` from --clients coroutines, embedded (`silo.open` on a fresh
  directory store), over gRPC (`silo.connect` to the bench's broker: one EnqueueStream) and
  over unary gRPC Enqueue (`streams=False`); then `enqueue_many` of 1,000, embedded and over
  gRPC. Reported: jobs/s and the event-loop thread's CPU µs per job.
- work: --jobs no-op `async def` tasks enqueued first, then one `silo.Worker`
  (--concurrency) works them until all are done: over gRPC against the bench's broker (on a
  WorkerSession, then with `streams=False` on batched LeaseTasks/ReportTaskOutcomes), and
  embedded (broker and worker in this process, as `silo worker --store`). Reported: jobs/s,
  this process's CPU µs per job (and the broker's, over gRPC).
- dramatiq (unless --no-dramatiq): the same --jobs no-op jobs with Dramatiq on a local
  `redis-server` (AOF everysec) started for the run, worked by `dramatiq` with its default
  worker processes; jobs/s until Redis holds no message, and the workers' CPU per job.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import silo
from silo.bench.runner import Bench

NOOP_MODULE = "silo_bench_noop"
NOOP_SOURCE = textwrap.dedent(
    """
    import silo


    @silo.task(queue="bench-noop")
    async def noop() -> None:
        return None
    """
)


def run(bench: Bench) -> None:
    args = bench.args
    work_dir = Path(tempfile.mkdtemp(prefix="silo-bench-pyapi-"))
    (work_dir / f"{NOOP_MODULE}.py").write_text(NOOP_SOURCE)
    sys.path.insert(0, str(work_dir))
    try:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_enqueue_phases(bench, work_dir))
            runner.run(_work_phase(bench, work_dir, embedded=False))
            runner.run(_work_phase(bench, work_dir, embedded=False, streams=False))
            runner.run(_work_phase(bench, work_dir, embedded=True))
        if not args.no_dramatiq:
            _dramatiq_phase(bench, work_dir)
    finally:
        sys.path.remove(str(work_dir))
        shutil.rmtree(work_dir, ignore_errors=True)
    rows = {row["phase"]: row for row in bench.report.rows}

    def ratio(a: str, b: str) -> None:
        if a in rows and b in rows and rows[b]["jobs_per_s"]:
            value = rows[a]["jobs_per_s"] / rows[b]["jobs_per_s"]
            bench.report.notes.append(f"{a} / {b}: {value:.2f}x")

    ratio("enqueue embedded", "enqueue grpc")
    ratio("enqueue embedded", "enqueue grpc unary")
    ratio("enqueue_many embedded", "enqueue_many grpc")
    ratio("work grpc", "work dramatiq")
    ratio("work grpc unary", "work dramatiq")
    ratio("work embedded", "work dramatiq")


def _cpu() -> tuple[float, float]:
    return time.thread_time(), time.process_time()


def _row(
    bench: Bench, phase: str, jobs: int, wall: float, cpu: tuple[float, float], **extra: Any
) -> None:
    loop_cpu = time.thread_time() - cpu[0]
    process_cpu = time.process_time() - cpu[1]
    row = {
        "phase": phase,
        "jobs": jobs,
        "jobs_per_s": round(jobs / wall, 1),
        "loop_thread_cpu_us_per_job": round(loop_cpu / jobs * 1e6, 2),
        "process_cpu_us_per_job": round(process_cpu / jobs * 1e6, 2),
        **extra,
    }
    bench.report.add(row)
    bench.say(f"[{phase}] {row}")


class _BrokerCpu:
    """The CPU the bench's `silo serve` spends from now on, per job (for remote phases only:
    an embedded broker's CPU is in this process's)."""

    def __init__(self, bench: Bench, *, remote: bool) -> None:
        self._bench = bench
        self._start = bench.target.cpu_seconds() if remote else None

    def per_job(self, jobs: int) -> dict[str, Any]:
        after = self._bench.target.cpu_seconds() if self._start is not None else None
        if self._start is None or after is None:
            return {}
        return {"broker_cpu_us_per_job": round((after - self._start) / jobs * 1e6, 2)}


async def _enqueue_phases(bench: Bench, work_dir: Path) -> None:
    args = bench.args
    broker = await silo.open(str(work_dir / "enqueue-store"))
    client = await silo.connect(bench.target.address)
    unary = await silo.connect(bench.target.address, streams=False)
    try:
        for name, api in (("embedded", broker), ("grpc", client), ("grpc unary", unary)):
            queue = f"{bench.queue}-enqueue-{name}"
            per_client = max(1, args.enqueue_jobs // args.clients)

            async def producer(api: Any = api, queue: str = queue, n: int = per_client) -> None:
                for _ in range(n):
                    await api.enqueue(queue=queue, payload=b"x" * 16)

            await asyncio.gather(*(producer() for _ in range(min(args.clients, 8))))  # warm-up
            broker_cpu = _BrokerCpu(bench, remote=api is not broker)
            cpu, start = _cpu(), time.perf_counter()
            await asyncio.gather(*(producer() for _ in range(args.clients)))
            jobs = per_client * args.clients
            wall = time.perf_counter() - start
            _row(bench, f"enqueue {name}", jobs, wall, cpu, **broker_cpu.per_job(jobs))
        for name, api in (("embedded", broker), ("grpc", client)):
            jobs = [silo.NewJob(queue=f"{bench.queue}-many-{name}", payload=b"x" * 16)] * 1000
            calls = max(1, args.enqueue_jobs // 1000)
            broker_cpu = _BrokerCpu(bench, remote=api is not broker)
            cpu, start = _cpu(), time.perf_counter()
            for _ in range(calls):
                await api.enqueue_many(jobs)
            wall = time.perf_counter() - start
            extra = broker_cpu.per_job(calls * 1000)
            _row(bench, f"enqueue_many {name}", calls * 1000, wall, cpu, **extra)
    finally:
        await unary.close()
        await client.close()
        await broker.close()


async def _work_phase(
    bench: Bench, work_dir: Path, *, embedded: bool, streams: bool = True
) -> None:
    args = bench.args
    noop = __import__(NOOP_MODULE).noop
    api: Any
    if embedded:
        api = await silo.open(str(work_dir / "work-store"))
    else:
        api = await silo.connect(bench.target.address, streams=streams)
    name = "embedded" if embedded else "grpc" if streams else "grpc unary"
    try:
        for start in range(0, args.jobs, 1000):
            n = min(1000, args.jobs - start)
            await api.enqueue_many([noop.new_job()] * n)
        worker = silo.Worker(api, tasks=[noop], concurrency=args.concurrency, poll_ms=200)
        broker_cpu = _BrokerCpu(bench, remote=not embedded)
        cpu, started = _cpu(), time.perf_counter()
        running = asyncio.create_task(worker.run(handle_signals=False))
        while worker.completed < args.jobs:  # noqa: ASYNC110 (a progress check)
            await asyncio.sleep(0.05)
        wall = time.perf_counter() - started
        worker.stop()
        await running
        extra = broker_cpu.per_job(args.jobs)
        gauges = (await api.get_stats())["gauges"]
        extra["left_ready_running"] = (gauges.get("ready", 0), gauges.get("running", 0))
        _row(bench, f"work {name}", args.jobs, wall, cpu, **extra)
    finally:
        await api.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


DRAMATIQ_SOURCE = textwrap.dedent(
    """
    import os

    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    dramatiq.set_broker(RedisBroker(url=os.environ["SILO_BENCH_REDIS"]))


    @dramatiq.actor
    def noop():
        return None
    """
)


def _dramatiq_phase(bench: Bench, work_dir: Path) -> None:
    args = bench.args
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        bench.report.notes.append("dramatiq: skipped (no redis-server on PATH)")
        return
    (work_dir / "dramatiq_noop.py").write_text(DRAMATIQ_SOURCE)
    port = _free_port()
    redis = subprocess.Popen(
        [
            redis_server,
            "--port",
            str(port),
            "--dir",
            str(work_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
    )
    env = {
        **os.environ,
        "SILO_BENCH_REDIS": f"redis://127.0.0.1:{port}/0",
        "PYTHONPATH": str(work_dir),
    }
    try:
        import redis as redis_client

        r = redis_client.Redis(port=port)
        for _ in range(100):
            try:
                r.ping()
                break
            except redis_client.ConnectionError:
                time.sleep(0.05)  # redis-server starting; it has no readiness signal to await
        subprocess.run(
            [
                sys.executable,
                "-c",
                f"import dramatiq_noop as m\nfor _ in range({args.jobs}): m.noop.send()",
            ],
            env=env,
            cwd=work_dir,
            check=True,
        )
        started = time.perf_counter()
        workers = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "dramatiq_noop"],
            env=env,
            cwd=work_dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while r.hlen("dramatiq:default.msgs") > 0:
            time.sleep(0.05)  # progress check of the store; Dramatiq's own pace is measured
        wall = time.perf_counter() - started
        cpu = _children_cpu(workers.pid)
        workers.terminate()
        workers.wait(60)
        row = {
            "phase": "work dramatiq",
            "jobs": args.jobs,
            "jobs_per_s": round(args.jobs / wall, 1),
            "process_cpu_us_per_job": round(cpu / args.jobs * 1e6, 2) if cpu else None,
        }
        bench.report.add(row)
        bench.say(f"[work dramatiq] {row}")
    finally:
        redis.terminate()
        redis.wait(30)


def _children_cpu(pid: int) -> float | None:
    """CPU seconds of a process tree (the dramatiq master and its worker processes)."""
    try:
        out = subprocess.run(
            ["ps", "-o", "pid=,ppid=,times=", "-e"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    rows = [line.split() for line in out.splitlines() if line.strip()]
    tree, total = {pid}, 0.0
    changed = True
    while changed:
        changed = False
        for p, pp, _ in rows:
            if int(pp) in tree and int(p) not in tree:
                tree.add(int(p))
                changed = True
    for p, _, t in rows:
        if int(p) in tree:
            total += float(t)
    return total
