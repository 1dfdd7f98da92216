"""`silo bench ceiling`: Silo's jobs/s as a ratio to the ceiling, measured in the same run.

The ceiling is a no-op server (noop.py) on the stack of `silo serve`, in its own process. Each
workload runs its phases against the ceiling, then the same phases against Silo:
- enqueue: single Enqueue, --clients closed-loop clients, --duration seconds;
- per-job: burn-down of --per-job-jobs with one RPC per job (Enqueue, LeaseTasks(1),
  ReportTaskOutcome), 32 enqueuers, 32 workers;
- batched: burn-down of --jobs (EnqueueBatch 1000 x4, LeaseTasks 1000 and ReportTaskOutcomes
  1000, 4 workers);
  against the ceiling each burn-down phase runs for at least --ceiling-min-s seconds (and at
  least the same jobs), since it does in a fraction of a second what takes Silo seconds;
- enqueue-batch: EnqueueBatch of --batch-size, --batch-clients clients, --duration seconds.
Each workload uses its own queue on the broker. EnqueueBatch runs last by default because it
leaves the largest backlog behind.
"""

from __future__ import annotations

from silo.bench.runner import Bench
from silo.bench.scenarios.burn_down import compared_burn_down, shape_of
from silo.bench.scenarios.enqueue import compared_enqueue


def run(bench: Bench) -> None:
    args = bench.args
    assert bench.ceiling is not None, "the runner starts the ceiling for this scenario"
    for workload in args.workloads:
        queue = f"{bench.queue}-{workload}"
        if workload == "enqueue":
            compared_enqueue(
                bench,
                f"single x{args.clients}",
                f"single Enqueue x{args.clients}",
                args.clients,
                0,
                queue=queue,
                duration=args.duration,
                warmup=args.warmup,
            )
        elif workload == "enqueue-batch":
            compared_enqueue(
                bench,
                f"batch {args.batch_size} x{args.batch_clients}",
                f"EnqueueBatch {args.batch_size} x{args.batch_clients}",
                args.batch_clients,
                args.batch_size,
                queue=queue,
                duration=args.duration,
                warmup=args.warmup,
            )
        else:
            per_job = workload == "per-job"
            shape = shape_of(args.per_job_jobs if per_job else args.jobs, per_job=per_job)
            compared_burn_down(bench, shape, queue=queue, ceiling_min_s=args.ceiling_min_s)
