"""`silo bench burn-down`: enqueue --jobs no-op jobs, then drain them with --workers workers;
jobs/s of each phase and end to end. --per-job: one RPC per job in both phases."""

from __future__ import annotations

from array import array
from typing import Any

from silo.bench.measure import latency_fields
from silo.bench.procs import DONE, SENT, PhaseResult, Task
from silo.bench.runner import Bench
from silo.bench.work import Drain, EnqueueCount, drain, enqueue_count


def _merge(result: PhaseResult, key: str) -> array[float]:
    out: array[float] = array("d")
    for value in result.values:
        out.extend(value[key])
    return out


def run(bench: Bench) -> None:
    args = bench.args
    per_job = bool(args.per_job)
    enqueuers = args.enqueuers or (32 if per_job else 4)
    workers = args.workers or (32 if per_job else 4)
    batch = 1 if per_job else args.enqueue_batch
    lease_batch = 1 if per_job else args.lease_batch
    bench.report.settings.update(
        {
            "effective_enqueuers": enqueuers,
            "effective_workers": workers,
            "effective_enqueue_batch": batch,
            "effective_lease_batch": lease_batch,
        }
    )
    mode = "per-job" if per_job else "batched"
    shares = bench.split(enqueuers)
    jobs_split = [args.jobs * n // enqueuers for n in shares]
    jobs_split[0] += args.jobs - sum(jobs_split)
    tasks = [
        Task(
            enqueue_count,
            EnqueueCount(
                threads=n, jobs=j, batch=batch, queue=bench.queue, payload_bytes=args.payload_bytes
            ),
            "enqueuer",
        )
        for n, j in zip(shares, jobs_split, strict=True)
    ]
    enq = bench.phase(f"burn-down enqueue ({mode})", tasks, total=args.jobs, count_slot=SENT)
    enqueued = enq.counters[SENT]
    bench.report.add(
        _row(
            f"enqueue ({mode})",
            enqueued,
            enq,
            _merge(enq, "latencies"),
            "Enqueue" if per_job else f"EnqueueBatch {batch}",
        )
    )

    tasks = [
        Task(
            drain,
            Drain(
                threads=n,
                queue=bench.queue,
                lease_batch=lease_batch,
                report_batch=args.report_batch,
                per_job=per_job,
            ),
            "worker",
        )
        for n in bench.split(workers)
    ]
    dr = bench.phase(
        f"burn-down drain ({mode})",
        tasks,
        total=enqueued,
        stop_when=lambda totals, _: totals[DONE] >= enqueued,
    )
    done = dr.counters[DONE]
    bench.report.add(
        _row(
            f"lease ({mode})",
            done,
            dr,
            _merge(dr, "lease_latencies"),
            f"LeaseTasks max {lease_batch}",
        )
    )
    bench.report.add(
        _row(
            f"report ({mode})",
            done,
            dr,
            _merge(dr, "report_latencies"),
            "ReportTaskOutcome" if per_job else f"ReportTaskOutcomes {args.report_batch}",
        )
    )
    total_s = enq.wall_s + dr.wall_s
    bench.report.add(
        {
            "phase": f"end to end ({mode})",
            "jobs": done,
            "seconds": round(total_s, 2),
            "jobs_per_s": round(done / total_s, 1) if total_s else None,
            "errors": enq.counters[2] + dr.counters[2],
            "loadgen_cores": round((enq.loadgen_cpu_s + dr.loadgen_cpu_s) / total_s, 2),
            "loadgen_cpu_s": round(enq.loadgen_cpu_s + dr.loadgen_cpu_s, 2),
            **_broker(enq, dr, total_s),
        }
    )
    if done < enqueued:
        bench.report.notes.append(f"only {done:,} of {enqueued:,} jobs were completed")


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
