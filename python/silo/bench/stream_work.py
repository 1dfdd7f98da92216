"""Stream workloads that run inside load-generator processes (see procs.py): EnqueueStream
producers and WorkerSession workers, over grpcio's stream calls with encoded messages.

Each function is `fn(child, spec)`, like those of work.py. A stream call takes an iterator of
encoded requests, which grpcio consumes in a thread of its own; the answers come back on the
calling thread. Requests that never change are encoded once.
"""

from __future__ import annotations

import queue
import threading
import time
from array import array
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from silo.bench.procs import DONE, SENT, Child
from silo.bench.rpc import pb
from silo.bench.work import STOP_PAYLOAD

__all__ = [
    "SessionDispatchWorker",
    "SessionDrain",
    "StreamEnqueueFor",
    "session_dispatch_worker",
    "session_drain",
    "stream_enqueue_for",
]

#: A stream call's deadline: longer than any phase (the phase ends it by closing its side).
STREAM_TIMEOUT_S: Final = 3600.0
_CREDIT: Final = pb.WorkerMessage(credits=1).SerializeToString()


@dataclass(frozen=True)
class StreamEnqueueFor:
    """`streams` producers, each one EnqueueStream with up to `window` requests in flight (it
    sends the next when an answer frees a slot), for a fixed time. Latencies and jobs count
    only for requests sent in [start + warmup, start + warmup + duration)."""

    streams: int
    window: int
    queue: str
    payload_bytes: int
    warmup: float
    duration: float


def stream_enqueue_for(child: Child, spec: StreamEnqueueFor) -> dict[str, Any]:
    request = pb.EnqueueRequest(queue=spec.queue, payload=bytes(spec.payload_bytes))
    encoded = request.SerializeToString()
    t_lo = child.start_at + spec.warmup
    t_hi = t_lo + spec.duration

    def loop(_: int) -> tuple[array[float], int]:
        slots = threading.Semaphore(spec.window)
        sent: deque[float] = deque()
        lat: array[float] = array("d")
        jobs = 0

        def requests() -> Iterator[bytes]:
            while True:
                while not slots.acquire(timeout=0.1):
                    if child.stopping():
                        return
                now = time.monotonic()
                if now >= t_hi or child.stopping():
                    return
                sent.append(now)
                yield encoded

        for raw in child.client.enqueue_stream_raw(requests(), timeout=STREAM_TIMEOUT_S):
            t1 = time.monotonic()
            t0 = sent.popleft()  # answers come in order
            slots.release()
            result = pb.EnqueueResult.FromString(raw)
            if result.code:
                child.error(f"entry code {result.code}: {result.message}")
                continue
            child.add(SENT)
            if t0 >= t_lo:
                lat.append(t1 - t0)
                jobs += 1
        return lat, jobs

    parts = child.threads(spec.streams, loop)
    lat: array[float] = array("d")
    for part, _ in parts:
        lat.extend(part)
    return {"latencies": lat, "jobs": sum(j for _, j in parts)}


class _Outbox:
    """The messages a session sends: a queue that grpcio's sending thread drains. The session
    ends its side when the phase stops, or on `close`.

    Why a polling watcher (every 50 ms) instead of waiting on the phase's stop event: a
    multiprocessing Event waited on by a thread of a process that exits mid-wait makes the
    parent's `set()` block for good."""

    def __init__(self, child: Child, first: bytes) -> None:
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._queue.put(first)
        self._closed = threading.Event()
        self._watch = threading.Thread(target=self._close_on_stop, args=(child,), daemon=True)
        self._watch.start()

    def _close_on_stop(self, child: Child) -> None:
        while not self._closed.wait(0.05):
            if child.stopping():
                self.close()

    def put(self, message: bytes) -> None:
        self._queue.put(message)

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._queue.put(None)

    def __iter__(self) -> Iterator[bytes]:
        while (message := self._queue.get()) is not None:
            yield message


def _open(worker: str, queue_name: str, credits: int) -> bytes:
    opening = pb.SessionOpen(worker_id=worker, queues=[queue_name], credits=credits)
    return bytes(pb.WorkerMessage(open=opening).SerializeToString())


def _outcome(task_id: str) -> bytes:
    report = pb.ReportTaskOutcomeRequest(task_id=task_id, result=b"")
    return bytes(pb.WorkerMessage(outcome=report).SerializeToString())


@dataclass(frozen=True)
class SessionDrain:
    """`threads` workers, each one WorkerSession holding `credits` tasks at most: for every task
    it sends its outcome and one credit at once, until the phase stops."""

    threads: int
    queue: str
    credits: int


def session_drain(child: Child, spec: SessionDrain) -> dict[str, Any]:
    def loop(i: int) -> array[float]:
        outbox = _Outbox(child, _open(f"bench-session-{child.index}-{i}", spec.queue, spec.credits))
        reported: deque[float] = deque()
        lat: array[float] = array("d")
        for raw in child.client.worker_session_raw(iter(outbox), timeout=STREAM_TIMEOUT_S):
            message = pb.ServerMessage.FromString(raw)
            kind = message.WhichOneof("kind")
            if kind == "task":
                reported.append(time.monotonic())
                outbox.put(_outcome(message.task.task_id))
                outbox.put(_CREDIT)
            elif kind == "outcome":
                lat.append(time.monotonic() - reported.popleft())  # answers come in order
                if message.outcome.code:
                    child.error(f"outcome code {message.outcome.code}: {message.outcome.message}")
                else:
                    child.add(DONE)
        outbox.close()
        return lat

    lat: array[float] = array("d")
    for part in child.threads(spec.threads, loop):
        lat.extend(part)
    return {"report_latencies": lat}


@dataclass(frozen=True)
class SessionDispatchWorker:
    """`threads` idle workers, each a WorkerSession with one credit, until a stop pill: the
    time each task arrives (compare with dispatch_producer's Enqueue times)."""

    threads: int
    queue: str


def session_dispatch_worker(child: Child, spec: SessionDispatchWorker) -> dict[str, Any]:
    def loop(i: int) -> tuple[list[str], array[float]]:
        outbox = _Outbox(child, _open(f"bench-push-{child.index}-{i}", spec.queue, 1))
        ids: list[str] = []
        received: array[float] = array("d")
        for raw in child.client.worker_session_raw(iter(outbox), timeout=STREAM_TIMEOUT_S):
            t = time.monotonic()
            message = pb.ServerMessage.FromString(raw)
            if message.WhichOneof("kind") != "task":
                continue
            task = message.task
            outbox.put(_outcome(task.task_id))
            if task.payload == STOP_PAYLOAD:
                outbox.close()
                continue
            outbox.put(_CREDIT)
            ids.append(task.job_id)
            received.append(t)
            child.add(DONE)
        outbox.close()
        return ids, received

    ids: list[str] = []
    received: array[float] = array("d")
    for part_ids, part_received in child.threads(spec.threads, loop):
        ids.extend(part_ids)
        received.extend(part_received)
    return {"ids": ids, "received": received}
