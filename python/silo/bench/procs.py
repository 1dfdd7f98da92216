"""Load-generator processes: run workload functions in spawned processes that start together,
count progress in shared memory, and hand back their results and their own CPU time.

A phase is a list of `Task`s, one process each. A task's function runs in its process as
`fn(child, spec)`, usually with several threads (`child.threads`), each a blocking grpcio client
(the C core releases the GIL while a call is in flight). Every process connects first; the phase
starts when all are connected (`child.start_at` is the common start). The parent prints a
progress line every `interval` seconds, may stop the phase (`stop_when`, a timeout), and adds its
own CPU time to the children's (each measures `getrusage(RUSAGE_SELF)` over its workload).

Processes are spawned, not forked: grpcio's threads do not survive a fork.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import queue
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from silo.bench.measure import machine_busy_seconds, proc_cpu_seconds, self_cpu_seconds

__all__ = [
    "AUX",
    "DONE",
    "ERRORS",
    "SENT",
    "Child",
    "PhaseError",
    "PhaseResult",
    "Progress",
    "Task",
    "run_phase",
]

# Counter slots, one row of N_SLOTS per process; the parent sums the rows.
SENT: Final = 0  # jobs enqueued
DONE: Final = 1  # jobs processed (leased and reported, or received)
ERRORS: Final = 2  # failed calls or failed entries of a batch
AUX: Final = 3  # scenario-specific (e.g. small-tenant jobs done)
N_SLOTS: Final = 4

_CTX = multiprocessing.get_context("spawn")
_STARTUP_S: Final = 60.0
_STOP_GRACE_S: Final = 60.0

R = TypeVar("R")


class PhaseError(RuntimeError):
    """A load-generator process failed (its traceback is the message) or hung."""


@dataclass(frozen=True)
class Task:
    """One load-generator process: `fn(child, spec)` (a module-level function) and its role."""

    fn: Callable[[Child, Any], Any]
    spec: Any
    role: str
    #: The server this process calls, when not the phase's (a node of a cluster).
    address: str | None = None


class Child:
    """What a workload function gets in its process: a client, counters, start and stop."""

    def __init__(
        self,
        index: int,
        address: str,
        counters: Any,
        stop: multiprocessing.synchronize.Event,
        start_at: Any,
    ) -> None:
        from silo.bench.rpc import SiloClient

        self.index = index
        self.client = SiloClient(address)
        self._counters = counters
        self._base = index * N_SLOTS
        self._stop = stop
        self._start_at = start_at
        self._lock = threading.Lock()
        self.errors: list[str] = []

    @property
    def start_at(self) -> float:
        """The phase's common start, in time.monotonic() seconds."""
        return float(self._start_at.value)

    def add(self, slot: int, n: int = 1) -> None:
        """Add n to this process's counter `slot` (thread-safe)."""
        with self._lock:
            self._counters[self._base + slot] += n

    def error(self, message: str) -> None:
        """Count one error and remember the first few messages."""
        self.add(ERRORS)
        with self._lock:
            if len(self.errors) < 5:
                self.errors.append(message)

    def stopping(self) -> bool:
        """True once the parent asked the phase to stop."""
        return self._stop.is_set()

    def threads(self, n: int, target: Callable[[int], R]) -> list[R]:
        """Run target(0..n-1) in n threads; their results in order. Re-raises the first
        exception of any thread (after all have finished)."""
        results: list[Any] = [None] * n
        failures: list[BaseException] = []

        def run(i: int) -> None:
            try:
                results[i] = target(i)
            except BaseException as exc:
                failures.append(exc)

        workers = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        if failures:
            raise failures[0]
        return results


def _child_main(
    index: int,
    task: Task,
    address: str,
    counters: Any,
    ready: multiprocessing.synchronize.Semaphore,
    go: multiprocessing.synchronize.Event,
    stop: multiprocessing.synchronize.Event,
    start_at: Any,
    results: Any,
) -> None:
    child: Child | None = None
    try:
        child = Child(index, task.address or address, counters, stop, start_at)
        child.client.wait_ready()
        ready.release()
        go.wait()
        cpu0 = self_cpu_seconds()
        value = task.fn(child, task.spec)
        cpu = self_cpu_seconds() - cpu0
        results.put((index, True, value, cpu, time.monotonic(), child.errors))
    except BaseException:
        results.put((index, False, traceback.format_exc(), 0.0, time.monotonic(), []))
    finally:
        if child is not None:
            child.client.close()


class Progress:
    """Prints the periodic progress lines (to `out`, every `interval` seconds; 0 = never)."""

    def __init__(self, out: Any, interval: float) -> None:
        self.out = out
        self.interval = interval

    def line(self, text: str) -> None:
        print(text, file=self.out, flush=True)


@dataclass
class PhaseResult:
    """What a phase produced: each task's return value, times, CPU and counter totals."""

    name: str
    values: list[Any]
    roles: list[str]
    wall_s: float  # common start -> the last process's end
    loadgen_cpu_s: float  # every load-generator process plus the parent
    broker_cpu_s: float | None
    counters: list[int]
    timed_out: bool
    broker_main_cpu_s: float | None = None  # the broker's main (Python event loop) thread
    machine_cpu_s: float | None = None  # every process on the machine
    errors: list[str] = field(default_factory=list)

    def by_role(self, role: str) -> list[Any]:
        return [v for v, r in zip(self.values, self.roles, strict=True) if r == role]

    @property
    def loadgen_cores(self) -> float:
        return self.loadgen_cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def broker_cores(self) -> float | None:
        if self.broker_cpu_s is None or self.wall_s <= 0:
            return None
        return self.broker_cpu_s / self.wall_s

    @property
    def other_cores(self) -> float | None:
        """Cores used by processes other than the broker and the load generator (needs the
        broker's pid), e.g. other work on a shared machine."""
        if self.machine_cpu_s is None or self.broker_cpu_s is None or self.wall_s <= 0:
            return None
        other = self.machine_cpu_s - self.broker_cpu_s - self.loadgen_cpu_s
        return max(0.0, other / self.wall_s)

    def cpu_fields(self) -> dict[str, Any]:
        """The CPU figures every row carries."""
        other = self.other_cores
        return {
            "loadgen_cores": round(self.loadgen_cores, 2),
            "loadgen_cpu_s": round(self.loadgen_cpu_s, 2),
            "broker_cores": None if self.broker_cores is None else round(self.broker_cores, 2),
            "broker_cpu_s": None if self.broker_cpu_s is None else round(self.broker_cpu_s, 2),
            "broker_main_thread_cores": None
            if self.broker_main_cpu_s is None or self.wall_s <= 0
            else round(self.broker_main_cpu_s / self.wall_s, 2),
            "other_cores": None if other is None else round(other, 2),
        }

    def cpu_per_job_fields(self, jobs: int) -> dict[str, Any]:
        """The broker's CPU per job of the phase, in µs: the whole process, and its main thread
        (the Python event loop: grpclib, h2 and the handlers)."""

        def per_job(cpu_s: float | None) -> float | None:
            return None if cpu_s is None or jobs <= 0 else round(cpu_s * 1e6 / jobs, 1)

        return {
            "broker_us_per_job": per_job(self.broker_cpu_s),
            "broker_main_us_per_job": per_job(self.broker_main_cpu_s),
        }


StopWhen = Callable[[list[int], set[int]], bool]


def run_phase(
    name: str,
    tasks: Sequence[Task],
    *,
    address: str,
    progress: Progress,
    broker_cpu: Callable[[], float | None],
    broker_main_cpu: Callable[[], float | None] = lambda: None,
    broker_rss: Callable[[], int | None] = lambda: None,
    count_slot: int = DONE,
    total: int | None = None,
    unit: str = "jobs",
    stop_when: StopWhen | None = None,
    timeout_s: float | None = None,
    min_s: float = 0.0,
) -> PhaseResult:
    """Run `tasks` (one process each) to completion; see the module doc.

    stop_when(counter_totals, finished_task_indices) is polled every 50 ms once `min_s`
    seconds have passed; once it is true (or `timeout_s` passed) the children see
    `child.stopping()`. Raises PhaseError if a process
    fails, and KeyboardInterrupt passes through after the children are terminated.
    """
    n = len(tasks)
    counters = _CTX.RawArray("q", n * N_SLOTS)
    ready = _CTX.Semaphore(0)
    go = _CTX.Event()
    stop = _CTX.Event()
    start_at = _CTX.RawValue("d", 0.0)
    results: Any = _CTX.Queue()
    procs = [
        _CTX.Process(
            target=_child_main,
            args=(i, t, address, counters, ready, go, stop, start_at, results),
            name=f"silo-bench-{name}-{i}",
            daemon=True,
        )
        for i, t in enumerate(tasks)
    ]
    values: list[Any] = [None] * n
    ends: list[float] = [0.0] * n
    finished: set[int] = set()
    errors: list[str] = []
    child_cpu = 0.0
    timed_out = False
    try:
        for p in procs:
            p.start()
        _await_ready(procs, ready, results, n)
        parent_cpu0 = self_cpu_seconds()
        broker_cpu0 = broker_cpu()
        main0 = broker_main_cpu()
        machine0 = machine_busy_seconds()
        children_cpu0 = _children_cpu(procs)
        t0 = time.monotonic()
        start_at.value = t0
        go.set()
        last_print, last_count = t0, 0
        stop_deadline: float | None = None
        while len(finished) < n:
            try:
                index, ok, value, cpu, end, errs = results.get(timeout=0.05)
            except queue.Empty:
                pass
            else:
                if not ok:
                    raise PhaseError(
                        f"load-generator process {index} ({tasks[index].role}) failed:\n{value}"
                    )
                values[index], ends[index] = value, end
                child_cpu += cpu
                errors.extend(errs)
                finished.add(index)
                continue
            now = time.monotonic()
            totals = _totals(counters, n)
            if not stop.is_set():
                if stop_when is not None and now - t0 >= min_s and stop_when(totals, finished):
                    stop.set()
                elif timeout_s is not None and now - t0 > timeout_s:
                    timed_out = True
                    stop.set()
                if stop.is_set():
                    stop_deadline = now + _STOP_GRACE_S
            if stop_deadline is not None and now > stop_deadline:
                raise PhaseError(f"{name}: load-generator processes did not stop")
            for i, p in enumerate(procs):
                if i not in finished and not p.is_alive() and p.exitcode not in (None, 0):
                    raise PhaseError(
                        f"{name}: load-generator process {i} died (exit code {p.exitcode})"
                    )
            if progress.interval > 0 and now - last_print >= progress.interval:
                count = totals[count_slot]
                rate = (count - last_count) / (now - last_print)
                cores = (
                    _children_cpu(procs) - children_cpu0 + self_cpu_seconds() - parent_cpu0
                ) / (now - t0)
                progress.line(
                    _progress_text(
                        name,
                        now - t0,
                        count,
                        total,
                        unit,
                        rate,
                        totals[ERRORS],
                        cores,
                        broker_cpu,
                        broker_cpu0,
                        broker_rss(),
                    )
                )
                last_print, last_count = now, count
        broker_cpu1 = broker_cpu()
        main1 = broker_main_cpu()
        machine1 = machine_busy_seconds()
        wall = max(ends) - t0
        loadgen_cpu = child_cpu + (self_cpu_seconds() - parent_cpu0)
        for p in procs:
            p.join(10)
        return PhaseResult(
            name=name,
            values=values,
            roles=[t.role for t in tasks],
            wall_s=wall,
            loadgen_cpu_s=loadgen_cpu,
            broker_cpu_s=None
            if broker_cpu0 is None or broker_cpu1 is None
            else broker_cpu1 - broker_cpu0,
            counters=_totals(counters, n),
            timed_out=timed_out,
            broker_main_cpu_s=None if main0 is None or main1 is None else main1 - main0,
            machine_cpu_s=None if machine0 is None or machine1 is None else machine1 - machine0,
            errors=errors,
        )
    finally:
        stop.set()
        go.set()
        for p in procs:
            if p.is_alive():
                p.join(0.5)
            if p.is_alive():
                p.terminate()
                p.join(5)
        results.close()
        results.cancel_join_thread()


def _await_ready(procs: list[Any], ready: Any, results: Any, n: int) -> None:
    deadline = time.monotonic() + _STARTUP_S
    for _ in range(n):
        while not ready.acquire(timeout=0.1):
            try:
                index, _ok, value, *_ = results.get_nowait()
            except queue.Empty:
                pass
            else:
                raise PhaseError(f"load-generator process {index} failed to start:\n{value}")
            if any(not p.is_alive() for p in procs):
                raise PhaseError("a load-generator process exited during startup")
            if time.monotonic() > deadline:
                raise PhaseError("load-generator processes could not connect to the broker")


def _totals(counters: Any, n: int) -> list[int]:
    return [sum(counters[i * N_SLOTS + s] for i in range(n)) for s in range(N_SLOTS)]


def _children_cpu(procs: list[Any]) -> float:
    """CPU seconds the (live) child processes have used so far, from /proc."""
    total = 0.0
    for p in procs:
        cpu = proc_cpu_seconds(p.pid) if p.pid is not None else None
        total += cpu or 0.0
    return total


def _progress_text(
    name: str,
    elapsed: float,
    count: int,
    total: int | None,
    unit: str,
    rate: float,
    errors: int,
    loadgen_cores: float | None,
    broker_cpu: Callable[[], float | None],
    broker_cpu0: float | None,
    rss: int | None,
) -> str:
    done = f"{count:,}" + (f"/{total:,}" if total else "")
    parts = [f"[{name}] {elapsed:6.1f}s", f"{done} {unit}", f"{rate:,.0f} {unit}/s"]
    if errors:
        parts.append(f"{errors:,} errors")
    if loadgen_cores is not None:
        parts.append(f"loadgen {loadgen_cores:.2f} cores")
    cpu = broker_cpu()
    if cpu is not None and broker_cpu0 is not None and elapsed > 0:
        parts.append(f"broker {(cpu - broker_cpu0) / elapsed:.2f} cores")
    if rss is not None:
        parts.append(f"RSS {rss / 2**20:,.0f} MB")
    return "  ".join(parts)
