"""`silo bench stream-enqueue`: one producer process with --window requests in flight on one
EnqueueStream, against single Enqueue from --clients closed-loop clients; each against the
ceiling (the no-op server) first, then Silo. Reports jobs/s, per-request latency, the broker's
CPU per job, each ratio to its ceiling and the stream's factor over unary Enqueue (BENCHMARKS.md,
"Streams")."""

from __future__ import annotations

from typing import Any

from silo.bench.measure import latency_fields
from silo.bench.procs import SENT, Task
from silo.bench.runner import Bench
from silo.bench.scenarios.enqueue import enqueue_phase, measured
from silo.bench.stream_work import StreamEnqueueFor, stream_enqueue_for
from silo.bench.target import PhaseTarget

__all__ = ["run", "stream_enqueue_phase"]


def stream_enqueue_phase(
    bench: Bench, name: str, *, queue: str, target: PhaseTarget | None = None
) -> dict[str, Any]:
    """One phase of --streams EnqueueStream producers in one process; its row, not yet added."""
    args = bench.args
    spec = StreamEnqueueFor(
        streams=args.streams,
        window=args.window,
        queue=queue,
        payload_bytes=args.payload_bytes,
        warmup=args.warmup,
        duration=args.duration,
    )
    result = bench.phase(
        f"enqueue {name}",
        [Task(stream_enqueue_for, spec, "producer")],
        count_slot=SENT,
        target=target,
    )
    lat, jobs = measured(result)
    return {
        "phase": name,
        "streams": args.streams,
        "window": args.window,
        "jobs": jobs,
        "seconds": round(args.duration, 2),
        "jobs_per_s": round(jobs / args.duration, 1) if args.duration else None,
        **latency_fields(lat),
        "errors": result.counters[2],
        **result.cpu_fields(),
        # Over the whole phase (warmup too), so per job of the whole phase.
        **result.cpu_per_job_fields(result.counters[SENT]),
    }


def _unary(bench: Bench, name: str, *, queue: str, target: PhaseTarget | None) -> dict[str, Any]:
    args = bench.args
    return enqueue_phase(
        bench,
        name,
        args.clients,
        0,
        queue=queue,
        duration=args.duration,
        warmup=args.warmup,
        target=target,
    )


def run(bench: Bench) -> None:
    args = bench.args
    unary_name = f"single Enqueue x{args.clients}"
    stream_name = f"EnqueueStream x{args.streams} window {args.window}"
    queue = bench.queue
    rows: dict[str, dict[str, Any]] = {}
    if bench.ceiling is not None:
        rows["ceiling unary"] = _unary(
            bench, f"ceiling: {unary_name}", queue=queue, target=bench.ceiling
        )
        bench.report.add(rows["ceiling unary"])
    rows["unary"] = _unary(bench, unary_name, queue=queue, target=None)
    bench.report.add(bench.report.compare(unary_name, rows["unary"], rows.get("ceiling unary")))
    if bench.ceiling is not None:
        rows["ceiling stream"] = stream_enqueue_phase(
            bench, f"ceiling: {stream_name}", queue=queue, target=bench.ceiling
        )
        bench.report.add(
            bench.report.speedup(
                f"ceiling: {stream_name} / {unary_name}",
                rows["ceiling stream"],
                rows["ceiling unary"],
            )
        )
    rows["stream"] = stream_enqueue_phase(bench, stream_name, queue=queue)
    row = bench.report.compare(stream_name, rows["stream"], rows.get("ceiling stream"))
    row = bench.report.speedup(f"Silo: {stream_name} / {unary_name}", row, rows["unary"])
    bench.report.add(row)
    if bench.ceiling is not None:
        bench.report.speedup(
            f"Silo: {stream_name} / ceiling {unary_name}", rows["stream"], rows["ceiling unary"]
        )
