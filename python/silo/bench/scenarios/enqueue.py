"""`silo bench enqueue`: closed-loop producers, single Enqueue at each --clients value, then
EnqueueBatch of --batch-size; jobs/s and per-call latency percentiles. With --ceiling, each
phase runs against the ceiling (the no-op server) first, and Silo's row gets the ratio."""

from __future__ import annotations

from array import array
from typing import Any

from silo.bench.measure import latency_fields
from silo.bench.procs import SENT, PhaseResult, Task
from silo.bench.runner import Bench
from silo.bench.target import PhaseTarget
from silo.bench.work import EnqueueFor, enqueue_for

__all__ = ["compared_enqueue", "enqueue_phase", "measured", "run"]


def measured(result: PhaseResult) -> tuple[array[float], int]:
    """The latencies and jobs that the producers of a timed phase measured (after warmup)."""
    lat: array[float] = array("d")
    jobs = 0
    for value in result.values:
        lat.extend(value["latencies"])
        jobs += value["jobs"]
    return lat, jobs


def enqueue_phase(
    bench: Bench,
    name: str,
    clients: int,
    batch: int,
    *,
    queue: str,
    duration: float,
    warmup: float,
    target: PhaseTarget | None = None,
) -> dict[str, Any]:
    """One closed-loop phase (batch 0 = single Enqueue, else EnqueueBatch of `batch`) against
    `target` (default the broker); its row, not yet added."""
    tasks = [
        Task(
            enqueue_for,
            EnqueueFor(
                threads=n,
                batch=batch,
                queue=queue,
                payload_bytes=bench.args.payload_bytes,
                warmup=warmup,
                duration=duration,
            ),
            "producer",
        )
        for n in bench.split(clients)
    ]
    result = bench.phase(f"enqueue {name}", tasks, count_slot=SENT, target=target)
    lat, jobs = measured(result)
    return {
        "phase": name,
        "clients": clients,
        "batch": batch or 1,
        "jobs": jobs,
        "seconds": round(duration, 2),
        "jobs_per_s": round(jobs / duration, 1) if duration else None,
        "calls_per_s": round(len(lat) / duration, 1) if duration else None,
        **latency_fields(lat),
        "errors": result.counters[2],
        "procs": len(tasks),
        **result.cpu_fields(),
        # Over the whole phase (warmup too), so per job of the whole phase.
        **result.cpu_per_job_fields(result.counters[SENT]),
    }


def compared_enqueue(
    bench: Bench,
    name: str,
    label: str,
    clients: int,
    batch: int,
    *,
    queue: str,
    duration: float,
    warmup: float,
) -> None:
    """The phase against the ceiling (when there is one), then against Silo; adds both rows,
    Silo's with the ratio (recorded as `label`)."""
    reference = None
    if bench.ceiling is not None:
        reference = enqueue_phase(
            bench,
            f"ceiling: {name}",
            clients,
            batch,
            queue=queue,
            duration=duration,
            warmup=warmup,
            target=bench.ceiling,
        )
        bench.report.add(reference)
    row = enqueue_phase(bench, name, clients, batch, queue=queue, duration=duration, warmup=warmup)
    bench.report.add(bench.report.compare(label, row, reference))


def run(bench: Bench) -> None:
    args = bench.args
    phases = [(f"single x{c}", f"single Enqueue x{c}", c, 0) for c in args.clients]
    if args.batch_size:
        name = f"batch {args.batch_size} x{args.batch_clients}"
        label = f"EnqueueBatch {args.batch_size} x{args.batch_clients}"
        phases.append((name, label, args.batch_clients, args.batch_size))
    for name, label, clients, batch in phases:
        compared_enqueue(
            bench,
            name,
            label,
            clients,
            batch,
            queue=bench.queue,
            duration=args.duration,
            warmup=args.warmup,
        )
