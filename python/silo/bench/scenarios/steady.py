"""`silo bench steady`: open-loop arrivals at each --rates value with workers keeping up;
enqueue->start and enqueue->completion latency (the payload carries the send time)."""

from __future__ import annotations

from array import array
from typing import Any

from silo.bench.measure import latency_fields
from silo.bench.procs import DONE, SENT, PhaseResult, Task
from silo.bench.runner import Bench
from silo.bench.work import PacedProducer, TimedWorker, paced_producer, timed_worker

#: Time the workers get after the last arrival to finish what is queued.
DRAIN_GRACE_S = 60.0


def enqueue_batch_for(rate: float, flag: int) -> int:
    """--enqueue-batch 0 (auto): single Enqueue up to 1,000 jobs/s, else 100 batches/s."""
    if flag:
        return flag
    return 1 if rate <= 1000 else max(1, round(rate / 100))


def paced_phase(bench: Bench, name: str, rate: float) -> tuple[PhaseResult, dict[str, Any]]:
    """Run one steady phase at `rate` jobs/s for --duration seconds; the phase and its row."""
    args = bench.args
    if args.payload_bytes < 8:
        raise SystemExit("silo bench: --payload-bytes must be at least 8 (the send time)")
    total = max(1, round(rate * args.duration))
    batch = enqueue_batch_for(rate, args.enqueue_batch)
    producers = [
        Task(
            paced_producer,
            PacedProducer(
                total=total,
                rate=rate,
                batch=batch,
                first=i,
                stride=args.producers,
                queue=bench.queue,
                payload_bytes=args.payload_bytes,
                max_in_flight=args.max_in_flight,
            ),
            "producer",
        )
        for i in range(args.producers)
    ]
    workers = [
        Task(
            timed_worker,
            TimedWorker(
                threads=n, queue=bench.queue, lease_batch=args.lease_batch, wait_ms=args.wait_ms
            ),
            "worker",
        )
        for n in bench.split(args.workers)
    ]
    producer_ids = set(range(len(producers)))

    def stop_when(totals: list[int], finished: set[int]) -> bool:
        return producer_ids <= finished and totals[DONE] >= totals[SENT]

    result = bench.phase(
        name,
        [*producers, *workers],
        total=total,
        stop_when=stop_when,
        timeout_s=args.duration + DRAIN_GRACE_S,
    )
    lags: array[float] = array("d")
    enq: array[float] = array("d")
    first_due, last_end = float("inf"), 0.0
    for value in result.by_role("producer"):
        lags.extend(value["lags"])
        enq.extend(value["latencies"])
        first_due = min(first_due, value["first_due"])
        last_end = max(last_end, value["last_end"])
    start: array[float] = array("d")
    done: array[float] = array("d")
    for value in result.by_role("worker"):
        start.extend(value["start"])
        done.extend(value["done"])
    sent = result.counters[SENT]
    span = last_end - first_due
    s = latency_fields(start, "start_")
    d = latency_fields(done, "done_")
    e = latency_fields(enq, "enqueue_")
    lag = latency_fields(lags, "lag_")
    row = {
        "phase": name,
        "rate": rate,
        "enqueue_batch": batch,
        "jobs": sent,
        "completed": result.counters[DONE],
        "achieved_per_s": round(sent / span, 1) if span > 0 else None,
        "start_p50_ms": s["start_p50_ms"],
        "start_p95_ms": s["start_p95_ms"],
        "start_p99_ms": s["start_p99_ms"],
        "done_p50_ms": d["done_p50_ms"],
        "done_p99_ms": d["done_p99_ms"],
        "enqueue_p50_ms": e["enqueue_p50_ms"],
        "enqueue_p99_ms": e["enqueue_p99_ms"],
        "lag_p99_ms": lag["lag_p99_ms"],
        "errors": result.counters[2],
        **result.cpu_fields(),
    }
    if lag["lag_p99_ms"] is not None and lag["lag_p99_ms"] > 50:
        bench.report.notes.append(
            f"{name}: producers fell behind the schedule (p99 lag {lag['lag_p99_ms']:.0f} ms); "
            "the offered rate was not reached (raise --producers, --max-in-flight or "
            "--enqueue-batch)"
        )
    return result, row


def run(bench: Bench) -> None:
    for rate in bench.args.rates:
        _, row = paced_phase(bench, f"steady {rate:,}/s", float(rate))
        bench.report.add(row)
