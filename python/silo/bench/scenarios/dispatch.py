"""`silo bench dispatch`: an idle broker with --workers parked in LeaseTasks(wait_ms); one job
every --interval-ms; latency from Enqueue's answer (and from its call) to the worker's receipt."""

from __future__ import annotations

from silo.bench.measure import latency_fields
from silo.bench.procs import DONE, PhaseResult, Task
from silo.bench.runner import Bench
from silo.bench.work import DispatchProducer, DispatchWorker, dispatch_producer, dispatch_worker

__all__ = ["dispatch_latencies", "producer_task", "run"]


def producer_task(bench: Bench, *, jobs: int, queue: str, pills: int) -> Task:
    """The producer of a dispatch phase: `jobs` jobs into `queue`, one every --interval-ms,
    then `pills` stop pills (one per worker)."""
    spec = DispatchProducer(
        jobs=jobs,
        interval=bench.args.interval_ms / 1000,
        queue=queue,
        payload_bytes=bench.args.payload_bytes,
        pills=pills,
    )
    return Task(dispatch_producer, spec, "producer")


def dispatch_latencies(result: PhaseResult) -> tuple[dict[str, float], list[float], list[float]]:
    """Of a phase of dispatch_producer and workers reporting (ids, received): when Enqueue
    answered each job, and each job's latency from that answer and from Enqueue's call to a
    worker holding its task."""
    [produced] = result.by_role("producer")
    answered = dict(zip(produced["ids"], produced["answered"], strict=True))
    sent = dict(zip(produced["ids"], produced["sent"], strict=True))
    from_answer: list[float] = []
    from_call: list[float] = []
    for value in result.by_role("worker"):
        for job_id, received in zip(value["ids"], value["received"], strict=True):
            if job_id in answered:
                from_answer.append(received - answered[job_id])
                from_call.append(received - sent[job_id])
    return answered, from_answer, from_call


def run(bench: Bench) -> None:
    args = bench.args
    workers = bench.split(args.workers)
    tasks = [
        Task(
            dispatch_worker,
            DispatchWorker(threads=n, queue=bench.queue, wait_ms=args.wait_ms),
            "worker",
        )
        for n in workers
    ]
    tasks.insert(0, producer_task(bench, jobs=args.jobs, queue=bench.queue, pills=sum(workers)))
    timeout = args.jobs * args.interval_ms / 1000 + 60 + args.wait_ms / 1000
    result = bench.phase("dispatch", tasks, total=args.jobs, timeout_s=timeout)
    answered, from_answer, from_call = dispatch_latencies(result)
    a = latency_fields(from_answer)
    c = latency_fields(from_call, "from_call_")
    early = sum(1 for x in from_answer if x < 0)
    bench.report.add(
        {
            "phase": f"dispatch x{sum(workers)} workers",
            "jobs": len(from_answer),
            "seconds": round(result.wall_s, 2),
            **a,
            "from_call_p50_ms": c["from_call_p50_ms"],
            "from_call_p99_ms": c["from_call_p99_ms"],
            "before_answer": early,
            "errors": result.counters[2],
            **result.cpu_fields(),
        }
    )
    if result.counters[DONE] < len(answered):
        bench.report.notes.append(
            f"only {result.counters[DONE]:,} of {len(answered):,} jobs reached a worker"
        )
    if early:
        bench.report.notes.append(
            f"{early} task(s) reached a worker before the producer saw Enqueue's answer "
            "(negative latency from the answer; counted as measured)"
        )
