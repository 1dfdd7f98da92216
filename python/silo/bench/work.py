"""Workloads that run inside load-generator processes (see procs.py): producers and workers.

Each function is `fn(child, spec)`; it runs `spec.threads` blocking grpcio clients in threads
and returns plain data (arrays of latencies in seconds, counts) for the parent to merge. Requests
that never change are encoded once and sent as bytes. Timed payloads start with the send time as
a little-endian double of time.monotonic() (system-wide on Linux, so comparable across
processes).
"""

from __future__ import annotations

import functools
import struct
import threading
import time
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import grpc

from silo.bench.procs import AUX, DONE, SENT, Child, Task
from silo.bench.rpc import pb

__all__ = [
    "DispatchProducer",
    "Drain",
    "EnqueueCount",
    "EnqueueFor",
    "PacedProducer",
    "TimedWorker",
    "dispatch_producer",
    "dispatch_worker",
    "drain",
    "enqueue_count",
    "enqueue_for",
    "paced_producer",
    "timed_worker",
]

CALL_TIMEOUT_S: Final = 120.0
_STAMP: Final = struct.Struct("<d")
STOP_PAYLOAD: Final = b"silo-bench-stop"
#: A thread gives up after this many failed calls in a row (the broker is gone).
_MAX_CONSECUTIVE_ERRORS: Final = 50


def stamped(size: int, now: float) -> bytes:
    """A payload of `size` bytes (at least 8) starting with the time `now`."""
    return _STAMP.pack(now) + bytes(max(0, size - _STAMP.size))


def stamp_of(payload: bytes) -> float:
    return float(_STAMP.unpack_from(payload)[0])


def _rpc_error(child: Child, exc: grpc.RpcError, streak: int) -> int:
    code = exc.code() if isinstance(exc, grpc.Call) else None
    details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
    child.error(f"{code}: {details}")
    if streak + 1 >= _MAX_CONSECUTIVE_ERRORS:
        raise RuntimeError(f"{streak + 1} calls failed in a row; last: {code}: {details}")
    time.sleep(0.01)
    return streak + 1


def _batch_failures(child: Child, reply: Any) -> int:
    failed = 0
    for result in reply.results:
        if result.code:
            failed += 1
            child.error(f"entry code {result.code}: {result.message}")
    return failed


class _FailureStreak:
    """The failed calls in a row of one worker thread, shared by its leases and its reports:
    `failed` logs one (and raises after too many in a row), `reset` follows a lease that
    answered."""

    def __init__(self, child: Child) -> None:
        self.child = child
        self.count = 0

    def failed(self, exc: grpc.RpcError) -> None:
        self.count = _rpc_error(self.child, exc, self.count)

    def reset(self) -> None:
        self.count = 0


def _leased_batches(
    child: Child,
    streak: _FailureStreak,
    lease: bytes,
    *,
    idle_lease: bytes | None = None,
    max_empty: int = 0,
    latencies: array[float] | None = None,
) -> Iterator[tuple[Sequence[Any], float]]:
    """The worker loop: lease with the encoded LeaseTasksRequest `lease` until the phase stops
    (or the caller stops iterating), yielding each non-empty answer's tasks and the time it
    arrived.

    After an empty answer the next lease sends `idle_lease` (if given) instead; with
    `max_empty` > 0 that many empty answers in a row end the loop. A failed lease counts in
    `streak`; `latencies` (if given) gets the duration of every lease that answered.
    """
    empty = 0
    while not child.stopping() and (max_empty == 0 or empty < max_empty):
        request = idle_lease if empty and idle_lease is not None else lease
        t0 = time.monotonic()
        try:
            raw = child.client.lease_tasks_raw(request, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as exc:
            streak.failed(exc)
            continue
        received = time.monotonic()
        if latencies is not None:
            latencies.append(received - t0)
        streak.reset()
        tasks = pb.LeaseTasksResponse.FromString(raw).tasks
        if not tasks:
            empty += 1
            continue
        empty = 0
        yield tasks, received


# ----------------------------------------------------------------------------- producers


@dataclass(frozen=True)
class EnqueueFor:
    """Closed loop for a fixed time: each thread sends its next call when the last answered.

    batch 0 = single Enqueue; else EnqueueBatch of `batch` jobs. Latencies and jobs count only
    for calls started in the window [start + warmup, start + warmup + duration).
    """

    threads: int
    batch: int
    queue: str
    payload_bytes: int
    warmup: float
    duration: float
    tenant: str = ""


def enqueue_for(child: Child, spec: EnqueueFor) -> dict[str, Any]:
    job = pb.EnqueueRequest(queue=spec.queue, tenant=spec.tenant, payload=bytes(spec.payload_bytes))
    if spec.batch:
        request = pb.EnqueueBatchRequest(jobs=[job] * spec.batch).SerializeToString()
        call = child.client.enqueue_batch_raw
    else:
        request = job.SerializeToString()
        call = child.client.enqueue_raw
    per_call = max(1, spec.batch)
    t_lo = child.start_at + spec.warmup
    t_hi = t_lo + spec.duration

    def loop(_: int) -> tuple[array[float], int]:
        lat: array[float] = array("d")
        jobs = streak = 0
        while not child.stopping():
            t0 = time.monotonic()
            if t0 >= t_hi:
                break
            try:
                reply = call(request, timeout=CALL_TIMEOUT_S)
            except grpc.RpcError as exc:
                streak = _rpc_error(child, exc, streak)
                continue
            t1 = time.monotonic()
            streak = 0
            ok = per_call
            if spec.batch:
                ok -= _batch_failures(child, pb.EnqueueBatchResponse.FromString(reply))
            child.add(SENT, ok)
            if t0 >= t_lo:
                lat.append(t1 - t0)
                jobs += ok
        return lat, jobs

    parts = child.threads(spec.threads, loop)
    lat: array[float] = array("d")
    for part, _ in parts:
        lat.extend(part)
    return {"latencies": lat, "jobs": sum(j for _, j in parts)}


@dataclass(frozen=True)
class EnqueueCount:
    """Enqueue `jobs` jobs (this process's share) in batches of `batch` (1 = single Enqueue),
    `threads` clients; `tenant` for all, or `tenant_prefix` + a number per `jobs_per_tenant`."""

    threads: int
    jobs: int
    batch: int
    queue: str
    payload_bytes: int
    tenant: str = ""


def fill_tasks(
    shares: Sequence[int],
    jobs: int,
    *,
    batch: int,
    queue: str,
    payload_bytes: int,
    tenant: str = "",
) -> list[Task]:
    """The load-generator processes that enqueue `jobs` jobs together: one per entry of
    `shares` (its clients, from `Bench.split`), each enqueuing its share of the jobs."""
    clients = sum(shares)
    counts = [jobs * n // clients for n in shares]
    counts[0] += jobs - sum(counts)
    return [
        Task(
            enqueue_count,
            EnqueueCount(
                threads=n,
                jobs=j,
                batch=batch,
                queue=queue,
                payload_bytes=payload_bytes,
                tenant=tenant,
            ),
            "filler",
        )
        for n, j in zip(shares, counts, strict=True)
    ]


def enqueue_count(child: Child, spec: EnqueueCount) -> dict[str, Any]:
    single = spec.batch <= 1
    job = pb.EnqueueRequest(queue=spec.queue, tenant=spec.tenant, payload=bytes(spec.payload_bytes))
    full = (
        job.SerializeToString()
        if single
        else pb.EnqueueBatchRequest(jobs=[job] * spec.batch).SerializeToString()
    )
    size = 1 if single else spec.batch
    calls = -(-spec.jobs // size)
    call = child.client.enqueue_raw if single else child.client.enqueue_batch_raw

    def loop(i: int) -> array[float]:
        lat: array[float] = array("d")
        streak = 0
        mine = range(i, calls, spec.threads)
        for k in mine:
            if child.stopping():
                break
            n = min(size, spec.jobs - k * size)
            request = (
                full if n == size else pb.EnqueueBatchRequest(jobs=[job] * n).SerializeToString()
            )
            while True:
                t0 = time.monotonic()
                try:
                    reply = call(request, timeout=CALL_TIMEOUT_S)
                except grpc.RpcError as exc:
                    streak = _rpc_error(child, exc, streak)
                    continue
                break
            lat.append(time.monotonic() - t0)
            streak = 0
            ok = n
            if not single:
                ok -= _batch_failures(child, pb.EnqueueBatchResponse.FromString(reply))
            child.add(SENT, ok)
        return lat

    lat: array[float] = array("d")
    for part in child.threads(spec.threads, loop):
        lat.extend(part)
    return {"latencies": lat}


@dataclass(frozen=True)
class PacedProducer:
    """Open-loop arrivals: job k of `total` is due at start + lead + k / rate.

    Jobs go out in ticks of `batch` jobs (1 = single Enqueue); this process sends the ticks
    j = `first` mod `stride`. One pacing thread sends each tick when it is due as an
    asynchronous grpcio call, so a slow answer never delays the next arrival; at most
    `max_in_flight` calls are outstanding (beyond that the schedule slips, which the lags
    show). The payload carries the send time. Tenant: `tenant`, or, with `jobs_per_tenant` > 0,
    `tenant_prefix` + str(k // jobs_per_tenant).
    """

    total: int
    rate: float
    batch: int
    first: int
    stride: int
    queue: str
    payload_bytes: int
    max_in_flight: int = 10_000
    lead: float = 0.2
    tenant: str = ""
    tenant_prefix: str = ""
    jobs_per_tenant: int = 0


def paced_producer(child: Child, spec: PacedProducer) -> dict[str, Any]:
    size = max(1, spec.batch)
    ticks = -(-spec.total // size)
    t0 = child.start_at + spec.lead
    single = spec.batch <= 1
    client = child.client
    slots = threading.BoundedSemaphore(spec.max_in_flight)
    lock = threading.Lock()
    lags: array[float] = array("d")
    lat: array[float] = array("d")
    last_end = [0.0]
    failures = [0]

    def tenant_of(k: int) -> str:
        if spec.jobs_per_tenant > 0:
            return f"{spec.tenant_prefix}{k // spec.jobs_per_tenant}"
        return spec.tenant

    def answered(sent: float, due: float, jobs: int, future: Any) -> None:
        end = time.monotonic()
        try:
            exc = future.exception()
            if exc is not None:
                failures[0] += 1
                code = exc.code() if isinstance(exc, grpc.Call) else None
                child.error(f"{code}: {exc.details() if isinstance(exc, grpc.Call) else exc}")
                return
            ok = jobs if single else jobs - _batch_failures(child, future.result())
            with lock:
                lags.append(sent - due)
                lat.append(end - sent)
                last_end[0] = max(last_end[0], end)
            child.add(SENT, ok)
        finally:
            slots.release()

    for j in range(spec.first, ticks, spec.stride):
        if child.stopping() or failures[0] >= _MAX_CONSECUTIVE_ERRORS:
            break
        due = t0 + j * size / spec.rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        lo, hi = j * size, min(spec.total, (j + 1) * size)
        slots.acquire()
        now = time.monotonic()
        payload = stamped(spec.payload_bytes, now)
        if single:
            future = client.enqueue.future(
                pb.EnqueueRequest(queue=spec.queue, tenant=tenant_of(lo), payload=payload),
                timeout=CALL_TIMEOUT_S,
            )
        else:
            request = pb.EnqueueBatchRequest()
            add = request.jobs.add
            for k in range(lo, hi):
                add(queue=spec.queue, tenant=tenant_of(k), payload=payload)
            future = client.enqueue_batch.future(request, timeout=CALL_TIMEOUT_S)
        future.add_done_callback(functools.partial(answered, now, due, hi - lo))
    for _ in range(spec.max_in_flight):  # wait for every call still in flight
        slots.acquire()
    if failures[0] >= _MAX_CONSECUTIVE_ERRORS:
        raise RuntimeError(f"{failures[0]} enqueue calls failed; first: {child.errors[:1]}")
    with lock:
        return {"lags": lags, "latencies": lat, "first_due": t0, "last_end": last_end[0]}


# ------------------------------------------------------------------------------- workers


@dataclass(frozen=True)
class Drain:
    """Workers that lease and report until the queue is empty (two empty leases in a row) or
    the phase stops. per_job: LeaseTasks(max_tasks=1) and one ReportTaskOutcome per task."""

    threads: int
    queue: str
    lease_batch: int
    report_batch: int
    per_job: bool


def drain(child: Child, spec: Drain) -> dict[str, Any]:
    client = child.client

    def loop(i: int) -> tuple[array[float], array[float]]:
        worker = f"bench-drain-{child.index}-{i}"
        lease = pb.LeaseTasksRequest(
            worker_id=worker, max_tasks=spec.lease_batch, queues=[spec.queue]
        ).SerializeToString()
        lease_wait = pb.LeaseTasksRequest(
            worker_id=worker, max_tasks=spec.lease_batch, queues=[spec.queue], wait_ms=200
        ).SerializeToString()
        lease_lat: array[float] = array("d")
        report_lat: array[float] = array("d")
        streak = _FailureStreak(child)
        batches = _leased_batches(
            child, streak, lease, idle_lease=lease_wait, max_empty=2, latencies=lease_lat
        )
        for tasks, _ in batches:
            if spec.per_job:
                for task in tasks:
                    request = pb.ReportTaskOutcomeRequest(
                        task_id=task.task_id, worker_id=worker, result=b""
                    )
                    t0 = time.monotonic()
                    try:
                        client.report_task_outcome(request, timeout=CALL_TIMEOUT_S)
                    except grpc.RpcError as exc:
                        streak.failed(exc)
                        continue
                    report_lat.append(time.monotonic() - t0)
                    child.add(DONE)
                continue
            for lo in range(0, len(tasks), spec.report_batch):
                chunk = tasks[lo : lo + spec.report_batch]
                request = pb.ReportTaskOutcomesRequest()
                add = request.reports.add
                for task in chunk:
                    add(task_id=task.task_id, worker_id=worker, result=b"")
                t0 = time.monotonic()
                try:
                    reply = client.report_task_outcomes(request, timeout=CALL_TIMEOUT_S)
                except grpc.RpcError as exc:
                    streak.failed(exc)
                    continue
                report_lat.append(time.monotonic() - t0)
                child.add(DONE, len(chunk) - _batch_failures(child, reply))
        return lease_lat, report_lat

    lease_lat: array[float] = array("d")
    report_lat: array[float] = array("d")
    for part_lease, part_report in child.threads(spec.threads, loop):
        lease_lat.extend(part_lease)
        report_lat.extend(part_report)
    return {"lease_latencies": lease_lat, "report_latencies": report_lat}


@dataclass(frozen=True)
class TimedWorker:
    """Long-polling workers that record enqueue->start (lease answer received) and
    enqueue->completion (report answered) from the payload's stamp, until the phase stops.
    Jobs of `big_tenant` (if set) are recorded apart and counted only in DONE; the others are
    also counted in AUX."""

    threads: int
    queue: str
    lease_batch: int
    wait_ms: int
    big_tenant: str | None = None


def timed_worker(child: Child, spec: TimedWorker) -> dict[str, Any]:
    client = child.client

    def loop(i: int) -> dict[str, array[float]]:
        worker = f"bench-worker-{child.index}-{i}"
        lease = pb.LeaseTasksRequest(
            worker_id=worker, max_tasks=spec.lease_batch, queues=[spec.queue], wait_ms=spec.wait_ms
        ).SerializeToString()
        out = {k: array("d") for k in ("start", "done", "big_start", "big_done")}
        streak = _FailureStreak(child)
        for tasks, received in _leased_batches(child, streak, lease):
            stamps: list[tuple[float, bool]] = []
            request = pb.ReportTaskOutcomesRequest()
            add = request.reports.add
            for task in tasks:
                big = spec.big_tenant is not None and task.tenant == spec.big_tenant
                sent = stamp_of(task.payload)
                stamps.append((sent, big))
                out["big_start" if big else "start"].append(received - sent)
                add(task_id=task.task_id, worker_id=worker, result=b"")
            try:
                reply = client.report_task_outcomes(request, timeout=CALL_TIMEOUT_S)
            except grpc.RpcError as exc:
                streak.failed(exc)
                continue
            completed = time.monotonic()
            failed = _batch_failures(child, reply)
            small = 0
            for sent, big in stamps:
                out["big_done" if big else "done"].append(completed - sent)
                small += not big
            child.add(DONE, len(tasks) - failed)
            child.add(AUX, small)
        return out

    merged = {k: array("d") for k in ("start", "done", "big_start", "big_done")}
    for part in child.threads(spec.threads, loop):
        for k, v in part.items():
            merged[k].extend(v)
    return merged


# ------------------------------------------------------------------------------ dispatch


@dataclass(frozen=True)
class DispatchProducer:
    """Enqueue `jobs` jobs one at a time, one every `interval` seconds; then `pills` jobs
    whose payload tells the workers to stop."""

    jobs: int
    interval: float
    queue: str
    payload_bytes: int
    pills: int
    lead: float = 0.5


def dispatch_producer(child: Child, spec: DispatchProducer) -> dict[str, Any]:
    client = child.client
    ids: list[str] = []
    sent: array[float] = array("d")
    answered: array[float] = array("d")
    start = child.start_at + spec.lead  # let every worker park its long-poll first
    for k in range(spec.jobs):
        if child.stopping():
            break
        delay = start + k * spec.interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t0 = time.monotonic()
        try:
            reply = client.enqueue(
                pb.EnqueueRequest(queue=spec.queue, payload=stamped(spec.payload_bytes, t0)),
                timeout=CALL_TIMEOUT_S,
            )
        except grpc.RpcError as exc:
            _rpc_error(child, exc, 0)
            continue
        t1 = time.monotonic()
        ids.append(reply.id)
        sent.append(t0)
        answered.append(t1)
        child.add(SENT)
    time.sleep(0.2)
    for _ in range(spec.pills):
        client.enqueue(
            pb.EnqueueRequest(queue=spec.queue, payload=STOP_PAYLOAD), timeout=CALL_TIMEOUT_S
        )
    return {"ids": ids, "sent": sent, "answered": answered}


@dataclass(frozen=True)
class DispatchWorker:
    """`threads` workers, each parked in LeaseTasks(max_tasks=1, wait_ms) until a stop pill."""

    threads: int
    queue: str
    wait_ms: int


def dispatch_worker(child: Child, spec: DispatchWorker) -> dict[str, Any]:
    client = child.client

    def loop(i: int) -> tuple[list[str], array[float]]:
        worker = f"bench-dispatch-{child.index}-{i}"
        lease = pb.LeaseTasksRequest(
            worker_id=worker, max_tasks=1, queues=[spec.queue], wait_ms=spec.wait_ms
        ).SerializeToString()
        ids: list[str] = []
        received: array[float] = array("d")
        for tasks, t in _leased_batches(child, _FailureStreak(child), lease):
            stop = False
            for task in tasks:
                client.report_task_outcome(
                    pb.ReportTaskOutcomeRequest(task_id=task.task_id, worker_id=worker, result=b""),
                    timeout=CALL_TIMEOUT_S,
                )
                if task.payload == STOP_PAYLOAD:
                    stop = True
                    continue
                ids.append(task.job_id)
                received.append(t)
                child.add(DONE)
            if stop:
                break
        return ids, received

    ids: list[str] = []
    received: array[float] = array("d")
    for part_ids, part_received in child.threads(spec.threads, loop):
        ids.extend(part_ids)
        received.extend(part_received)
    return {"ids": ids, "received": received}
