"""`silo bench backlog`: fill the queue to each --steps size, then probe single Enqueue,
LeaseTasks(max_tasks=1) and ReportTaskOutcome latency (sequential calls) and the broker's RSS.

The probes keep the backlog size: each step enqueues --probes jobs and leases and completes
--probes jobs from the head of the queue.
"""

from __future__ import annotations

import time
from typing import Any

from silo.bench.measure import latency_fields, self_cpu_seconds
from silo.bench.procs import SENT
from silo.bench.rpc import SiloClient, pb
from silo.bench.runner import Bench
from silo.bench.work import fill_tasks


def probe(client: SiloClient, queue: str, n: int, payload: bytes) -> dict[str, list[float]]:
    """Sequential calls: `n` single Enqueues, `n` LeaseTasks(max_tasks=1), a report of each
    task leased; their latencies in seconds (also used by `silo bench flow`)."""
    enqueue: list[float] = []
    lease: list[float] = []
    report: list[float] = []
    request = pb.EnqueueRequest(queue=queue, payload=payload).SerializeToString()
    for _ in range(n):
        t0 = time.monotonic()
        client.enqueue_raw(request, timeout=60)
        enqueue.append(time.monotonic() - t0)
    lease_request = pb.LeaseTasksRequest(
        worker_id="bench-probe", max_tasks=1, queues=[queue]
    ).SerializeToString()
    task_ids: list[str] = []
    for _ in range(n):
        t0 = time.monotonic()
        raw = client.lease_tasks_raw(lease_request, timeout=60)
        lease.append(time.monotonic() - t0)
        task_ids.extend(t.task_id for t in pb.LeaseTasksResponse.FromString(raw).tasks)
    for task_id in task_ids:
        t0 = time.monotonic()
        client.report_task_outcome(
            pb.ReportTaskOutcomeRequest(task_id=task_id, worker_id="bench-probe", result=b""),
            timeout=60,
        )
        report.append(time.monotonic() - t0)
    return {"enqueue": enqueue, "lease": lease, "report": report, "leased": [float(len(task_ids))]}


def run(bench: Bench) -> None:
    args = bench.args
    client = bench.target.client
    assert client is not None
    queued = 0
    first_lease_p50: float | None = None
    deadline = time.monotonic() + args.time_budget_s if args.time_budget_s else None
    for step in sorted(args.steps):
        row: dict[str, Any] = {"phase": f"backlog {step:,}", "queued": step}
        budget_spent = False
        if step > queued:
            need = step - queued
            tasks = fill_tasks(
                bench.split(args.fill_clients),
                need,
                batch=args.fill_batch,
                queue=bench.queue,
                payload_bytes=args.payload_bytes,
            )
            remaining = None if deadline is None else max(1.0, deadline - time.monotonic())
            fill = bench.phase(
                f"fill to {step:,}", tasks, total=need, count_slot=SENT, timeout_s=remaining
            )
            queued += fill.counters[SENT]
            if fill.timed_out:
                budget_spent = True
                row["phase"] = f"backlog {queued:,} (budget spent before {step:,})"
                row["queued"] = queued
            row["fill_jobs_per_s"] = round(fill.counters[SENT] / fill.wall_s, 1)
            row.update(
                {
                    f"fill_{k}": v
                    for k, v in fill.cpu_fields().items()
                    if k in ("loadgen_cores", "broker_cores")
                }
            )
            if args.settle_s:
                time.sleep(args.settle_s)
        cpu0, broker0, t0 = self_cpu_seconds(), bench.target.cpu_seconds(), time.monotonic()
        cpu0, broker0, t0 = self_cpu_seconds(), bench.target.cpu_seconds(), time.monotonic()
        probes = probe(client, bench.queue, args.probes, bytes(args.payload_bytes))
        span = time.monotonic() - t0
        cpu1, broker1 = self_cpu_seconds(), bench.target.cpu_seconds()
        span = time.monotonic() - t0
        cpu1, broker1 = self_cpu_seconds(), bench.target.cpu_seconds()
        leased = int(probes["leased"][0])
        if leased < args.probes:
            bench.report.notes.append(
                f"step {step:,}: only {leased} of {args.probes} lease probes got a task"
            )
        e = latency_fields(probes["enqueue"], "enqueue_")
        lease = latency_fields(probes["lease"], "lease_")
        r = latency_fields(probes["report"], "report_")
        stats = bench.target.stats()
        rss = bench.target.rss_bytes(stats)
        row.update(
            {
                "enqueue_p50_ms": e["enqueue_p50_ms"],
                "enqueue_p99_ms": e["enqueue_p99_ms"],
                "lease_p50_ms": lease["lease_p50_ms"],
                "lease_p99_ms": lease["lease_p99_ms"],
                "report_p50_ms": r["report_p50_ms"],
                "report_p99_ms": r["report_p99_ms"],
                "broker_rss_mb": None if rss is None else round(rss / 2**20, 1),
                "loadgen_cores": round((cpu1 - cpu0) / span, 2),
                "broker_cores": None
                if broker0 is None or broker1 is None
                else round((broker1 - broker0) / span, 2),
            }
        )
        for gauge in ("ready", "scheduled", "running"):
            if gauge in stats.gauges:
                row[f"gauge_{gauge}"] = stats.gauges[gauge]
        bench.say(
            f"[{row['phase']}] enqueue p50 {_ms(e['enqueue_p50_ms'])}  lease p50 "
            f"{_ms(lease['lease_p50_ms'])}  RSS {row['broker_rss_mb']} MB"
        )
        bench.report.add(row)
        p50 = lease["lease_p50_ms"]
        if first_lease_p50 is None:
            first_lease_p50 = p50
        elif p50 is not None and first_lease_p50:
            row["lease_p50_vs_first"] = round(p50 / first_lease_p50, 2)
        if budget_spent:
            bench.report.notes.append(
                f"--time-budget-s {args.time_budget_s:g} ran out at {queued:,} queued jobs; "
                "later steps were skipped"
            )
            break


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} ms"
