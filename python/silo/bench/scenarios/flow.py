"""`silo bench flow`: flow control under load (issue 12; docs/architecture.md#flow-control).

Workloads (`--workloads`, all by default):
- `rate`: --rate-jobs jobs over --rate-keys rate-limit keys of --rate-limit per
  --rate-period-ms each, all due at once; long-polling workers drain them. Per key, the achieved
  rate after the first bucketful (server timestamps), as a ratio to the limit.
- `waiting`: lease latency (LeaseTasks max_tasks=1, sequential probes on a queue of its own) on
  an empty broker, then with --waiting-jobs jobs waiting for the tokens of --waiting-keys
  rate-limit keys (one token per key per day: they stay waiting), as a ratio.
- `schedules`: --schedules schedules ticking every second (`interval_ms` 1000, or a per-second
  cron with --schedule-cron) for --schedule-s seconds; the lateness of ticks (the tick's job's
  `created_at_ms` minus its tick time, sampled with GetSchedule + GetJob) and the broker's CPU.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from silo.bench.flow_work import RateWorker, rate_worker
from silo.bench.measure import latency_fields
from silo.bench.procs import DONE, Task
from silo.bench.rpc import SiloClient, pb
from silo.bench.runner import Bench
from silo.bench.scenarios.backlog import probe

#: One token per key per day: jobs beyond the first of each key keep waiting.
_DAY_MS = 86_400_000


def run(bench: Bench) -> None:
    args = bench.args
    for workload in args.workloads:
        {"rate": _rate, "waiting": _waiting, "schedules": _schedules}[workload](bench)


def _lease_ms(bench: Bench) -> int:
    return int(bench.target.stats().settings.get("lease_ms", "30000"))


def _enqueue_all(client: SiloClient, batches: list[bytes], threads: int) -> float:
    """Sends pre-encoded EnqueueBatch requests from `threads` threads; the seconds it took."""
    failures: list[str] = []

    def send(raw: bytes) -> None:
        reply = pb.EnqueueBatchResponse.FromString(client.enqueue_batch_raw(raw, timeout=300))
        failures.extend(r.message for r in reply.results if r.code)

    t0 = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, batches))
    if failures:
        raise RuntimeError(f"{len(failures)} enqueues failed, e.g. {failures[0]}")
    return time.monotonic() - t0


def _rate(bench: Bench) -> None:
    args = bench.args
    client = bench.target.client
    assert client is not None
    queue = f"{bench.queue}-rate"
    keys, limit, period = args.rate_keys, args.rate_limit, args.rate_period_ms
    per_key = args.rate_jobs // keys
    total = per_key * keys
    batches = []
    jobs = [
        pb.EnqueueRequest(
            id=f"k{k:05d}-{i:05d}",
            queue=queue,
            rate_limits=[pb.RateLimit(key=f"k{k:05d}", limit=limit, period_ms=period)],
        )
        for i in range(per_key)
        for k in range(keys)
    ]
    for lo in range(0, len(jobs), 1000):
        batches.append(pb.EnqueueBatchRequest(jobs=jobs[lo : lo + 1000]).SerializeToString())
    seconds = _enqueue_all(client, batches, 4)
    bench.say(f"[rate] enqueued {total:,} jobs over {keys:,} keys in {seconds:.1f}s")
    spec = RateWorker(
        threads=args.rate_workers,
        queue=queue,
        lease_batch=1000,
        wait_ms=1000,
        lease_ms=_lease_ms(bench),
    )
    tasks = [Task(rate_worker, spec, "worker") for _ in range(max(1, args.procs or 1))]
    expected_s = (per_key - limit) * period / limit / 1000
    result = bench.phase(
        "rate drain",
        tasks,
        total=total,
        stop_when=lambda totals, _: totals[DONE] >= total,
        timeout_s=expected_s * 3 + 120,
    )
    starts: dict[str, list[int]] = {}
    for value in result.by_role("worker"):
        for job_id, start in zip(value["ids"], value["starts"], strict=True):
            starts.setdefault(job_id.split("-", 1)[0], []).append(start)
    ratios = []
    over_envelope = 0
    for key_starts in starts.values():
        key_starts.sort()
        if len(key_starts) <= limit:
            continue
        span = key_starts[-1] - key_starts[limit - 1]
        achieved = (len(key_starts) - limit) * period / span if span > 0 else float("inf")
        ratios.append(achieved / limit)
        over_envelope += _envelope_violated(key_starts, limit, period)
    within = sum(1 for r in ratios if abs(r - 1) <= 0.05)
    bench.report.add(
        {
            "phase": f"rate: {total:,} jobs, {keys:,} keys x {limit}/{period} ms",
            "jobs": result.counters[DONE],
            "seconds": round(result.wall_s, 2),
            "ideal_s": round(expected_s, 2),
            "rate_ratio_min": round(min(ratios), 4) if ratios else None,
            "rate_ratio_p50": round(statistics.median(ratios), 4) if ratios else None,
            "rate_ratio_max": round(max(ratios), 4) if ratios else None,
            "keys_within_5pct": within,
            "keys_over_envelope": over_envelope,
            **result.cpu_fields(),
        }
    )


def _envelope_violated(starts: list[int], limit: int, period: int) -> bool:
    """Whether some window [s, s + d] of these sorted starts holds more than the bucket allows:
    limit + limit * d / period."""
    return any(
        j - i + 1 > limit + limit * (starts[j] - starts[i]) / period
        for i in range(len(starts))
        for j in range(i, len(starts))
    )


def _probe_row(bench: Bench, client: SiloClient, queue: str, label: str) -> dict[str, Any]:
    probes = probe(client, queue, bench.args.probes, b"")
    lease = latency_fields(probes["lease"], "lease_")
    stats = bench.target.stats()
    rss = bench.target.rss_bytes(stats)
    row = {
        "phase": label,
        "lease_p50_ms": lease["lease_p50_ms"],
        "lease_p99_ms": lease["lease_p99_ms"],
        "broker_rss_mb": None if rss is None else round(rss / 2**20, 1),
        "gauge_key_waiters": stats.gauges.get("key_waiters"),
        "gauge_rate_limit_keys": stats.gauges.get("rate_limit_keys"),
        "loadgen_cores": None,
    }
    bench.say(f"[{label}] lease p50 {row['lease_p50_ms']:.2f} ms, RSS {row['broker_rss_mb']} MB")
    return row


def _waiting(bench: Bench) -> None:
    args = bench.args
    client = bench.target.client
    assert client is not None
    free = f"{bench.queue}-free"
    limited = f"{bench.queue}-limited"
    empty = _probe_row(bench, client, free, "waiting: lease probes, empty broker")
    bench.report.add(empty)
    keys = args.waiting_keys
    limits = [pb.RateLimit(key=f"w{k:05d}", limit=1, period_ms=_DAY_MS) for k in range(keys)]
    batch = pb.EnqueueBatchRequest(
        jobs=[pb.EnqueueRequest(queue=limited, rate_limits=[limits[i % keys]]) for i in range(1000)]
    ).SerializeToString()
    seconds = _enqueue_all(client, [batch] * (args.waiting_jobs // 1000), 4)
    queued = args.waiting_jobs // 1000 * 1000
    bench.say(f"[waiting] enqueued {queued:,} rate-limited jobs in {seconds:.1f}s")
    # One lease of the limited queue admits what has a token (one job per key) and leaves the
    # rest waiting on their keys: this call reads the whole group into the keys' queues.
    lease = pb.LeaseTasksRequest(worker_id="bench", max_tasks=1000, queues=[limited])
    t0 = time.monotonic()
    first = client.lease_tasks(lease, timeout=600)
    first_s = time.monotonic() - t0
    bench.say(
        f"[waiting] first lease of the limited queue: {len(first.tasks)} tasks in {first_s:.2f}s"
    )
    row = _probe_row(bench, client, free, f"waiting: lease probes, {queued:,} jobs waiting")
    row["first_limited_lease_s"] = round(first_s, 2)
    row["first_limited_lease_tasks"] = len(first.tasks)
    if empty["lease_p50_ms"] and row["lease_p50_ms"]:
        row["lease_p50_vs_empty"] = round(row["lease_p50_ms"] / empty["lease_p50_ms"], 2)
        row["lease_p99_vs_empty"] = round(row["lease_p99_ms"] / empty["lease_p99_ms"], 2)
    bench.report.add(row)


def _schedules(bench: Bench) -> None:
    args = bench.args
    client = bench.target.client
    assert client is not None
    queue = f"{bench.queue}-sched"
    names = [f"s{i:05d}" for i in range(args.schedules)]
    template = pb.EnqueueRequest(queue=queue)

    def put(name: str) -> None:
        if args.schedule_cron:
            s = pb.Schedule(name=name, cron="* * * * * *", job=template)
        else:
            s = pb.Schedule(name=name, interval_ms=1000, job=template)
        client.put_schedule(s, timeout=60)

    t0 = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, names))
    bench.say(f"[schedules] put {len(names):,} schedules in {time.monotonic() - t0:.1f}s")
    time.sleep(2)  # let every schedule reach its first tick before measuring
    late: list[float] = []
    stop = threading.Event()
    errors: list[str] = []

    def sample() -> None:
        rnd = random.Random(7)
        while not stop.is_set():
            name = rnd.choice(names)
            try:
                s = client.get_schedule(pb.ScheduleRef(name=name), timeout=10)
                tick = s.next_run_at_ms - 1000
                job = client.get_job(pb.GetJobRequest(id=f"sched:{name}:{tick}"), timeout=10)
                late.append((job.created_at_ms - tick) / 1000)
            except Exception as exc:  # a tick between the two reads: its job is not there yet
                errors.append(str(exc))
            time.sleep(args.schedule_sample_interval_ms / 1000)

    stats0 = bench.target.stats()
    cpu0, w0 = bench.target.cpu_seconds(), time.monotonic()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    time.sleep(args.schedule_s)
    stop.set()
    sampler.join()
    cpu1, w1 = bench.target.cpu_seconds(), time.monotonic()
    stats1 = bench.target.stats()
    ticks = stats1.gauges.get("schedule_ticks", 0) - stats0.gauges.get("schedule_ticks", 0)
    lateness = latency_fields(late, "lateness_")
    kind = "cron * * * * * *" if args.schedule_cron else "interval 1000 ms"
    bench.report.add(
        {
            "phase": f"schedules: {len(names):,} x {kind}",
            "seconds": round(w1 - w0, 1),
            "ticks": ticks,
            "ticks_per_s": round(ticks / (w1 - w0), 1),
            "samples": len(late),
            "sample_misses": len(errors),
            **lateness,
            "broker_cores": None
            if cpu0 is None or cpu1 is None
            else round((cpu1 - cpu0) / (w1 - w0), 2),
            "loadgen_cores": None,
        }
    )
