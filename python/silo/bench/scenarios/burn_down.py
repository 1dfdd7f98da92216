"""`silo bench burn-down`: enqueue --jobs no-op jobs, then drain them with --workers workers;
jobs/s of each phase and end to end. --per-job: one RPC per job in both phases. With --ceiling,
the same two phases run against the ceiling (the no-op server, whose leases never run dry)
first, each for at least --ceiling-min-s, and Silo's rows get the ratios."""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import Any, Final

from silo.bench.measure import latency_fields
from silo.bench.procs import DONE, SENT, PhaseResult, Task
from silo.bench.runner import Bench
from silo.bench.target import PhaseTarget
from silo.bench.work import Drain, EnqueueCount, drain, enqueue_count

__all__ = ["Shape", "compared_burn_down", "run", "shape_of"]


@dataclass(frozen=True)
class Shape:
    """How a burn-down runs: its size, its clients and the size of each call."""

    jobs: int
    per_job: bool
    enqueuers: int
    workers: int
    enqueue_batch: int
    lease_batch: int
    report_batch: int

    @property
    def mode(self) -> str:
        return "per-job" if self.per_job else "batched"


def shape_of(
    jobs: int,
    *,
    per_job: bool,
    enqueuers: int | None = None,
    workers: int | None = None,
    enqueue_batch: int = 1000,
    lease_batch: int = 1000,
    report_batch: int = 1000,
) -> Shape:
    """The burn-down's defaults: 4 enqueuers and 4 workers batched, 32 and 32 per job (and
    every call of one job with --per-job)."""
    return Shape(
        jobs=jobs,
        per_job=per_job,
        enqueuers=enqueuers or (32 if per_job else 4),
        workers=workers or (32 if per_job else 4),
        enqueue_batch=1 if per_job else enqueue_batch,
        lease_batch=1 if per_job else lease_batch,
        report_batch=report_batch,
    )


def _merge(result: PhaseResult, key: str) -> array[float]:
    out: array[float] = array("d")
    for value in result.values:
        out.extend(value[key])
    return out


#: Jobs per enqueue process against the ceiling: more than any phase gets through (the phase
#: ends by its stop condition).
_UNBOUNDED: Final = 1 << 60


def burn_down(
    bench: Bench,
    shape: Shape,
    *,
    queue: str,
    prefix: str = "",
    target: PhaseTarget | None = None,
    min_s: float | None = None,
) -> dict[str, dict[str, Any]]:
    """Enqueue `shape.jobs` jobs into `queue`, then drain until as many are done, against
    `target` (default the broker). The rows (not yet added) by kind: enqueue, lease, report,
    end to end; their phase names start with `prefix`.

    With `min_s` (against the ceiling, which keeps no jobs and whose leases never run dry), each
    phase runs until it has counted `shape.jobs` jobs and at least `min_s` seconds have passed,
    so that a phase the ceiling does in a fraction of a second is long enough to measure; end
    to end is then the time its two rates take for `shape.jobs` jobs. For Silo that is the
    same figure: its jobs over the enqueue phase's time plus the drain's.
    """
    mode = shape.mode
    ceiling = min_s is not None
    shares = bench.split(shape.enqueuers)
    if ceiling:
        jobs_split = [_UNBOUNDED] * len(shares)
    else:
        jobs_split = [shape.jobs * n // shape.enqueuers for n in shares]
        jobs_split[0] += shape.jobs - sum(jobs_split)
    tasks = [
        Task(
            enqueue_count,
            EnqueueCount(
                threads=n,
                jobs=j,
                batch=shape.enqueue_batch,
                queue=queue,
                payload_bytes=bench.args.payload_bytes,
            ),
            "enqueuer",
        )
        for n, j in zip(shares, jobs_split, strict=True)
    ]
    enq = bench.phase(
        f"{prefix}burn-down enqueue ({mode})",
        tasks,
        total=shape.jobs,
        count_slot=SENT,
        target=target,
        stop_when=(lambda totals, _: totals[SENT] >= shape.jobs) if ceiling else None,
        min_s=min_s or 0.0,
    )
    enqueued = enq.counters[SENT]
    rows: dict[str, dict[str, Any]] = {}
    rows["enqueue"] = _row(
        f"{prefix}enqueue ({mode})",
        enqueued,
        enq,
        _merge(enq, "latencies"),
        "Enqueue" if shape.per_job else f"EnqueueBatch {shape.enqueue_batch}",
    )

    tasks = [
        Task(
            drain,
            Drain(
                threads=n,
                queue=queue,
                lease_batch=shape.lease_batch,
                report_batch=shape.report_batch,
                per_job=shape.per_job,
            ),
            "worker",
        )
        for n in bench.split(shape.workers)
    ]
    goal = shape.jobs if ceiling else enqueued
    dr = bench.phase(
        f"{prefix}burn-down drain ({mode})",
        tasks,
        total=goal,
        stop_when=lambda totals, _: totals[DONE] >= goal,
        target=target,
        min_s=min_s or 0.0,
    )
    # The workers may lease and report a few jobs past the goal before they see the stop;
    # those count in the drain's jobs/s, over the drain's time.
    done = dr.counters[DONE]
    rows["lease"] = _row(
        f"{prefix}lease ({mode})",
        done,
        dr,
        _merge(dr, "lease_latencies"),
        f"LeaseTasks max {shape.lease_batch}",
    )
    rows["report"] = _row(
        f"{prefix}report ({mode})",
        done,
        dr,
        _merge(dr, "report_latencies"),
        "ReportTaskOutcome" if shape.per_job else f"ReportTaskOutcomes {shape.report_batch}",
    )
    wall_s = enq.wall_s + dr.wall_s
    if ceiling:
        jobs = shape.jobs
        total_s = jobs * (enq.wall_s / max(1, enqueued) + dr.wall_s / max(1, done))
    else:
        jobs, total_s = done, wall_s
    rows["end to end"] = {
        "phase": f"{prefix}end to end ({mode})",
        "jobs": jobs,
        "seconds": round(total_s, 2),
        "jobs_per_s": round(jobs / total_s, 1) if total_s else None,
        "errors": enq.counters[2] + dr.counters[2],
        "loadgen_cores": round((enq.loadgen_cpu_s + dr.loadgen_cpu_s) / wall_s, 2),
        "loadgen_cpu_s": round(enq.loadgen_cpu_s + dr.loadgen_cpu_s, 2),
        **_broker(enq, dr, wall_s),
    }
    if not ceiling and done < enqueued:
        bench.report.notes.append(f"{prefix}only {done:,} of {enqueued:,} jobs were completed")
    return rows


def compared_burn_down(
    bench: Bench, shape: Shape, *, queue: str, ceiling_min_s: float, label: str | None = None
) -> None:
    """The burn-down against the ceiling (when there is one; each phase at least
    `ceiling_min_s` long), then against Silo; adds the rows, Silo's with ratios: the enqueue
    phase, the drain and end to end (recorded under `label`, default `burn-down <mode>`)."""
    name = label or f"burn-down {shape.mode}"
    reference = None
    if bench.ceiling is not None:
        reference = burn_down(
            bench,
            shape,
            queue=queue,
            prefix="ceiling: ",
            target=bench.ceiling,
            min_s=ceiling_min_s,
        )
        for row in reference.values():
            bench.report.add(row)
    rows = burn_down(bench, shape, queue=queue)
    labels = {
        "enqueue": f"{name}: enqueue phase",
        "lease": f"{name}: drain phase",
        "end to end": f"{name}: end to end",
    }
    for kind, row in rows.items():
        ref = reference[kind] if reference is not None else None
        if kind in labels:
            row = bench.report.compare(labels[kind], row, ref)
        else:  # the report row shares the drain's jobs/s, hence its ratio: shown, not repeated
            row = bench.report.compare("", row, ref, record=False)
        bench.report.add(row)


def run(bench: Bench) -> None:
    args = bench.args
    shape = shape_of(
        args.jobs,
        per_job=bool(args.per_job),
        enqueuers=args.enqueuers,
        workers=args.workers,
        enqueue_batch=args.enqueue_batch,
        lease_batch=args.lease_batch,
        report_batch=args.report_batch,
    )
    bench.report.settings.update(
        {
            "effective_enqueuers": shape.enqueuers,
            "effective_workers": shape.workers,
            "effective_enqueue_batch": shape.enqueue_batch,
            "effective_lease_batch": shape.lease_batch,
        }
    )
    compared_burn_down(bench, shape, queue=bench.queue, ceiling_min_s=args.ceiling_min_s)


def _broker(a: PhaseResult, b: PhaseResult, seconds: float) -> dict[str, Any]:
    if a.broker_cpu_s is None or b.broker_cpu_s is None:
        return {"broker_cores": None, "broker_cpu_s": None}
    cpu = a.broker_cpu_s + b.broker_cpu_s
    return {"broker_cores": round(cpu / seconds, 2), "broker_cpu_s": round(cpu, 2)}


def _row(name: str, jobs: int, result: PhaseResult, lat: array[float], call: str) -> dict[str, Any]:
    return {
        "phase": name,
        "call": call,
        "jobs": jobs,
        "seconds": round(result.wall_s, 2),
        "jobs_per_s": round(jobs / result.wall_s, 1) if result.wall_s else None,
        "calls_per_s": round(len(lat) / result.wall_s, 1) if result.wall_s else None,
        **latency_fields(lat),
        "errors": result.counters[2],
        **result.cpu_fields(),
    }
