"""`silo bench enqueue`: closed-loop producers, single Enqueue at each --clients value, then
EnqueueBatch of --batch-size; jobs/s and per-call latency percentiles."""

from __future__ import annotations

from array import array

from silo.bench.measure import latency_fields
from silo.bench.procs import SENT, Task
from silo.bench.runner import Bench
from silo.bench.work import EnqueueFor, enqueue_for


def run(bench: Bench) -> None:
    args = bench.args
    phases = [(f"single x{c}", c, 0) for c in args.clients]
    if args.batch_size:
        phases.append(
            (f"batch {args.batch_size} x{args.batch_clients}", args.batch_clients, args.batch_size)
        )
    for name, clients, batch in phases:
        tasks = [
            Task(
                enqueue_for,
                EnqueueFor(
                    threads=n,
                    batch=batch,
                    queue=bench.queue,
                    payload_bytes=args.payload_bytes,
                    warmup=args.warmup,
                    duration=args.duration,
                ),
                "producer",
            )
            for n in bench.split(clients)
        ]
        result = bench.phase(f"enqueue {name}", tasks, count_slot=SENT)
        lat: array[float] = array("d")
        jobs = 0
        for value in result.values:
            lat.extend(value["latencies"])
            jobs += value["jobs"]
        bench.report.add(
            {
                "phase": name,
                "clients": clients,
                "batch": batch or 1,
                "jobs": jobs,
                "seconds": round(args.duration, 2),
                "jobs_per_s": round(jobs / args.duration, 1) if args.duration else None,
                "calls_per_s": round(len(lat) / args.duration, 1) if args.duration else None,
                **latency_fields(lat),
                "errors": result.counters[2],
                "procs": len(tasks),
                **result.cpu_fields(),
            }
        )
