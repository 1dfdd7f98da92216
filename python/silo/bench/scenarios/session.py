"""`silo bench session`: workers on WorkerSession against the unary pattern they replace.

- push latency: --workers idle workers, first parked in LeaseTasks(max_tasks=1, --wait-ms), then
  as sessions with one credit; a producer enqueues one job every --interval-ms (--dispatch-jobs
  jobs); the latency from Enqueue's answer (and from its call) to the worker holding the task.
- drain: --jobs jobs enqueued with EnqueueBatch 1000 (4 clients), then --workers workers drain
  them, one outcome per task: the unary pattern (LeaseTasks of --credits tasks, then one
  ReportTaskOutcome per task, in turn) and sessions holding --credits tasks (each task answered
  by its outcome and one credit, at once). Each drain runs against the ceiling first (at least
  --ceiling-min-s and --jobs jobs: its leases and sessions never run dry), then against Silo.
  Reports each drain's jobs/s and end to end (enqueue + drain time), the broker's CPU per job,
  the ratios to the ceiling and the sessions' factor over the unary pattern (BENCHMARKS.md,
  "Streams").
"""

from __future__ import annotations

from array import array
from typing import Any

from silo.bench.measure import latency_fields
from silo.bench.procs import DONE, SENT, PhaseResult, Task
from silo.bench.runner import Bench
from silo.bench.scenarios.dispatch import dispatch_latencies, producer_task
from silo.bench.stream_work import (
    SessionDispatchWorker,
    SessionDrain,
    session_dispatch_worker,
    session_drain,
)
from silo.bench.target import PhaseTarget
from silo.bench.work import (
    DispatchWorker,
    Drain,
    EnqueueCount,
    dispatch_worker,
    drain,
    enqueue_count,
)

__all__ = ["run"]

_ENQUEUERS = 4
_ENQUEUE_BATCH = 1000


def run(bench: Bench) -> None:
    args = bench.args
    if args.dispatch_jobs:
        _push_latency(bench, sessions=False)
        _push_latency(bench, sessions=True)
    unary_name = f"unary: LeaseTasks {args.credits} + ReportTaskOutcome x{args.workers}"
    session_name = f"WorkerSession credits {args.credits} x{args.workers}"
    rows: dict[str, dict[str, Any]] = {}
    for sessions, name in [(False, unary_name), (True, session_name)]:
        kind = "session" if sessions else "unary"
        ceiling = None
        if bench.ceiling is not None:
            ceiling = _drain_phase(
                bench,
                f"ceiling: {name}",
                sessions=sessions,
                queue=f"{bench.queue}-{kind}",
                target=bench.ceiling,
            )
            bench.report.add(ceiling["drain"])
            rows[f"ceiling {kind}"] = ceiling["drain"]
        silo = _burn_down(bench, name, sessions=sessions, queue=f"{bench.queue}-{kind}")
        rows[kind] = silo["drain"]
        rows[f"{kind} end to end"] = silo["end to end"]
        drain_row = bench.report.compare(
            f"{name}: drain", silo["drain"], ceiling["drain"] if ceiling else None
        )
        if sessions:
            drain_row = bench.report.speedup(
                f"Silo: {session_name} / {unary_name}, drain", drain_row, rows["unary"]
            )
        bench.report.add(silo["enqueue"])
        bench.report.add(drain_row)
        end_row = silo["end to end"]
        if sessions:
            end_row = bench.report.speedup(
                f"Silo: {session_name} / {unary_name}, end to end",
                end_row,
                rows["unary end to end"],
            )
        bench.report.add(end_row)
    if bench.ceiling is not None:
        bench.report.speedup(
            f"ceiling: {session_name} / {unary_name}",
            rows["ceiling session"],
            rows["ceiling unary"],
        )
        bench.report.speedup(
            f"Silo: {session_name} / ceiling {unary_name}", rows["session"], rows["ceiling unary"]
        )


def _drain_tasks(bench: Bench, *, sessions: bool, queue: str) -> list[Task]:
    args = bench.args
    if sessions:
        return [
            Task(
                session_drain, SessionDrain(threads=n, queue=queue, credits=args.credits), "worker"
            )
            for n in bench.split(args.workers)
        ]
    return [
        Task(
            drain,
            Drain(threads=n, queue=queue, lease_batch=args.credits, report_batch=1, per_job=True),
            "worker",
        )
        for n in bench.split(args.workers)
    ]


def _drain_phase(
    bench: Bench,
    name: str,
    *,
    sessions: bool,
    queue: str,
    target: PhaseTarget | None = None,
    goal: int | None = None,
) -> dict[str, Any]:
    """Workers drain until `goal` jobs (default --jobs) are done (against the ceiling: and at
    least --ceiling-min-s); the drain's row under "drain" and the phase under "result"."""
    args = bench.args
    goal = args.jobs if goal is None else goal
    result = bench.phase(
        f"drain {name}",
        _drain_tasks(bench, sessions=sessions, queue=queue),
        total=goal,
        stop_when=lambda totals, _: totals[DONE] >= goal,
        target=target,
        min_s=args.ceiling_min_s if target is not None else 0.0,
    )
    done = result.counters[DONE]
    lat: array[float] = array("d")
    for value in result.values:
        lat.extend(value["report_latencies"])
    row = {
        "phase": f"{name}: drain",
        "jobs": done,
        "seconds": round(result.wall_s, 2),
        "jobs_per_s": round(done / result.wall_s, 1) if result.wall_s else None,
        **latency_fields(lat),
        "errors": result.counters[2],
        **result.cpu_fields(),
        **result.cpu_per_job_fields(done),
    }
    return {"drain": row, "result": result}


def _burn_down(bench: Bench, name: str, *, sessions: bool, queue: str) -> dict[str, Any]:
    """Enqueue --jobs jobs (EnqueueBatch), then drain them: the rows of both and end to end."""
    args = bench.args
    shares = bench.split(_ENQUEUERS)
    jobs_split = [args.jobs * n // _ENQUEUERS for n in shares]
    jobs_split[0] += args.jobs - sum(jobs_split)
    enqueue_tasks = [
        Task(
            enqueue_count,
            EnqueueCount(
                threads=n,
                jobs=j,
                batch=_ENQUEUE_BATCH,
                queue=queue,
                payload_bytes=args.payload_bytes,
            ),
            "enqueuer",
        )
        for n, j in zip(shares, jobs_split, strict=True)
    ]
    enq = bench.phase(f"enqueue for {name}", enqueue_tasks, total=args.jobs, count_slot=SENT)
    enqueued = enq.counters[SENT]
    dr = _drain_phase(bench, name, sessions=sessions, queue=queue, goal=enqueued)
    result: PhaseResult = dr["result"]
    done = result.counters[DONE]
    wall = enq.wall_s + result.wall_s
    cpu = None
    if enq.broker_cpu_s is not None and result.broker_cpu_s is not None:
        cpu = enq.broker_cpu_s + result.broker_cpu_s
    if done < enqueued:
        bench.report.notes.append(f"{name}: only {done:,} of {enqueued:,} jobs were completed")
    return {
        "enqueue": {
            "phase": f"{name}: enqueue (EnqueueBatch {_ENQUEUE_BATCH} x{_ENQUEUERS})",
            "jobs": enqueued,
            "seconds": round(enq.wall_s, 2),
            "jobs_per_s": round(enqueued / enq.wall_s, 1) if enq.wall_s else None,
            "errors": enq.counters[2],
            **enq.cpu_fields(),
        },
        "drain": dr["drain"],
        "end to end": {
            "phase": f"{name}: end to end",
            "jobs": done,
            "seconds": round(wall, 2),
            "jobs_per_s": round(done / wall, 1) if wall else None,
            "errors": enq.counters[2] + result.counters[2],
            "loadgen_cores": round((enq.loadgen_cpu_s + result.loadgen_cpu_s) / wall, 2)
            if wall
            else None,
            "broker_cpu_s": None if cpu is None else round(cpu, 2),
            "broker_us_per_job": None if cpu is None or not done else round(cpu * 1e6 / done, 1),
        },
    }


def _push_latency(bench: Bench, *, sessions: bool) -> None:
    """Idle workers (long-polls, or sessions with one credit) and one job every
    --interval-ms: Enqueue's answer (and call) to the worker holding the task."""
    args = bench.args
    queue = f"{bench.queue}-push-{'session' if sessions else 'poll'}"
    workers = bench.split(args.workers)
    tasks = [
        Task(session_dispatch_worker, SessionDispatchWorker(threads=n, queue=queue), "worker")
        if sessions
        else Task(
            dispatch_worker, DispatchWorker(threads=n, queue=queue, wait_ms=args.wait_ms), "worker"
        )
        for n in workers
    ]
    tasks.insert(0, producer_task(bench, jobs=args.dispatch_jobs, queue=queue, pills=sum(workers)))
    name = "WorkerSession (1 credit)" if sessions else f"LeaseTasks(1, wait_ms={args.wait_ms})"
    timeout = args.dispatch_jobs * args.interval_ms / 1000 + 60 + args.wait_ms / 1000
    result = bench.phase(f"push {name}", tasks, total=args.dispatch_jobs, timeout_s=timeout)
    _, from_answer, from_call = dispatch_latencies(result)
    call = latency_fields(from_call, "from_call_")
    bench.report.add(
        {
            "phase": f"push latency: {name} x{sum(workers)}",
            "jobs": len(from_answer),
            **latency_fields(from_answer),
            "from_call_p50_ms": call["from_call_p50_ms"],
            "from_call_p99_ms": call["from_call_p99_ms"],
            "errors": result.counters[2],
            **result.cpu_fields(),
        }
    )
