"""`silo bench tenants`: one tenant with a --big-tenant-jobs backlog, then workers drain while
the jobs of --tenants small tenants (--jobs-per-tenant each) arrive at --small-rate; the small
tenants' enqueue->start latency shows whether round-robin across tenants holds."""

from __future__ import annotations

from array import array

from silo.bench.measure import latency_fields
from silo.bench.procs import AUX, SENT, Task
from silo.bench.runner import Bench
from silo.bench.work import (
    PacedProducer,
    TimedWorker,
    fill_tasks,
    paced_producer,
    timed_worker,
)

BIG_TENANT = "bench-big"
SMALL_PREFIX = "bench-small-"


def run(bench: Bench) -> None:
    args = bench.args
    if args.payload_bytes < 8:
        raise SystemExit("silo bench: --payload-bytes must be at least 8 (the send time)")
    big_tenant = f"{BIG_TENANT}-{bench.queue}"
    if args.big_tenant_jobs:
        # The big backlog is stamped with its enqueue time too (the fill payload is zeros, so
        # its "enqueue->start" is meaningless); only its throughput is reported.
        tasks = fill_tasks(
            bench.split(4),
            args.big_tenant_jobs,
            batch=args.fill_batch,
            queue=bench.queue,
            payload_bytes=args.payload_bytes,
            tenant=big_tenant,
        )
        fill = bench.phase("fill big tenant", tasks, total=args.big_tenant_jobs, count_slot=SENT)
        bench.report.add(
            {
                "phase": "fill big tenant",
                "jobs": fill.counters[SENT],
                "seconds": round(fill.wall_s, 2),
                "jobs_per_s": round(fill.counters[SENT] / fill.wall_s, 1),
                **fill.cpu_fields(),
            }
        )
    total_small = args.tenants * args.jobs_per_tenant
    rate = float(args.small_rate)
    batch = max(1, round(rate / 100))
    producers = [
        Task(
            paced_producer,
            PacedProducer(
                total=total_small,
                rate=rate,
                batch=batch,
                first=0,
                stride=1,
                queue=bench.queue,
                payload_bytes=args.payload_bytes,
                tenant_prefix=f"{SMALL_PREFIX}{bench.queue}-",
                jobs_per_tenant=args.jobs_per_tenant,
            ),
            "producer",
        )
    ]
    workers = [
        Task(
            timed_worker,
            TimedWorker(
                threads=n,
                queue=bench.queue,
                lease_batch=args.lease_batch,
                wait_ms=1000,
                big_tenant=big_tenant,
            ),
            "worker",
        )
        for n in bench.split(args.workers)
    ]
    producer_ids = set(range(len(producers)))

    def stop_when(totals: list[int], finished: set[int]) -> bool:
        return producer_ids <= finished and totals[AUX] >= totals[SENT]

    result = bench.phase(
        "tenants drain",
        [*producers, *workers],
        total=total_small,
        count_slot=AUX,
        unit="small jobs",
        stop_when=stop_when,
        timeout_s=total_small / rate + 120,
    )
    start: array[float] = array("d")
    done: array[float] = array("d")
    big = 0
    for value in result.by_role("worker"):
        start.extend(value["start"])
        done.extend(value["done"])
        big += len(value["big_start"])
    s = latency_fields(start, "start_")
    d = latency_fields(done, "done_")
    bench.report.add(
        {
            "phase": f"{args.tenants:,} small tenants x{args.jobs_per_tenant}",
            "jobs": len(start),
            "seconds": round(result.wall_s, 2),
            "small_per_s": round(len(start) / result.wall_s, 1),
            **s,
            "done_p50_ms": d["done_p50_ms"],
            "done_p99_ms": d["done_p99_ms"],
            "big_done": big,
            "big_per_s": round(big / result.wall_s, 1),
            "errors": result.counters[2],
            **result.cpu_fields(),
        }
    )
    if big == 0 and args.big_tenant_jobs:
        bench.report.notes.append("the big tenant got no task while the small tenants ran")
