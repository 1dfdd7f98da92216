"""`silo.Worker`: leases tasks, runs them, heartbeats them, reports their outcomes
(docs/python.md#workers).

One event loop does everything: a lease loop asks for as many tasks as there are free slots
(one LeaseTasks call, long-polling while none is due), each task runs in its own asyncio task
(a plain `def` in the worker's thread pool), and a reporter sends the outcomes that finished
meanwhile in one ReportTaskOutcomes call. A `cancelled` heartbeat answer cancels the handler and
reports `cancelled`; a lost lease (LeaseNotHeld, TaskNotFound) cancels it and reports nothing.

What a task costs is kept small, because a no-op task's whole cycle should cost the worker a
few tens of µs (BENCHMARKS.md, "The Python API"): one object per task (`_Running`, which is
also the handler's TaskContext), one asyncio task (started eagerly on Python 3.12+, so a handler
that finishes without waiting is never scheduled), and no timer per task: one timer per worker
heartbeats the tasks whose heartbeat is due, so a task that ends before its first heartbeat
costs no timer at all.

Over a `silo.Client` that serves streams, the worker runs on one WorkerSession instead
(python/silo/streams.py, docs/api.md#workersession): the broker pushes tasks while the worker
has free slots (one credit per slot, granted again as tasks finish), and heartbeats and outcomes
go on the same stream; a session that breaks is opened again, and meanwhile heartbeats and
outcomes use the unary calls (the leases belong to the worker, not to the stream).
`run_until_idle` and an embedded `silo.Broker` use the unary calls.

Over a `silo.connect([...])` of several nodes (a `silo.cluster.ClusterClient`), the worker
leases from every node of the cluster map at once (a node leases from its own shards only:
docs/cluster.md#workers): one lease loop per node, all sharing the worker's `concurrency` (a
loop whose last call found nothing asks for one task, the others for a fair part of the free
slots), each task heartbeated and reported to the node that leased it (through the map when
that node is gone). The node list is read again every few seconds: a loop starts for a node
that joined and stops for one that left. A `silo.connect(address)` of one node that turns out to
be a node of a cluster of several (GetCluster, when `run()` starts) is treated the same way,
with a client of every node made from its settings: otherwise the worker would lease only from
that node's shards and the others' jobs would wait for some other worker.

Stopping (`stop()`, SIGTERM or SIGINT): leasing stops, running tasks get `grace` seconds to
finish; those still running then are cancelled and reported as a retryable failure with code
`silo.WorkerShutdown`, so their jobs are retried per policy at once instead of waiting for the
lease to expire. Every outcome is sent before `run()` returns.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import math
import os
import secrets
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from silo import errors
from silo.tasks import TASK_METADATA_KEY, NonRetryable, RawHandler, TaskContext, TaskDef
from silo.types import HeartbeatResult, Report, ReportResult, Task, TaskFailure

if TYPE_CHECKING:
    from silo.api import Api
    from silo.client import Client
    from silo.cluster import ClusterClient
    from silo.streams import SessionClient

__all__ = ["SHUTDOWN_CODE", "UNKNOWN_TASK_CODE", "Worker", "failure_of"]

log = logging.getLogger("silo.worker")

#: Failure code of a task still running when the grace period ended (retried per policy).
SHUTDOWN_CODE: Final = "silo.WorkerShutdown"
#: Failure code of a job whose task this worker does not know (retried per policy, perhaps by a
#: worker that knows it).
UNKNOWN_TASK_CODE: Final = "silo.UnknownTask"
#: Most bytes of a traceback sent as a failure's data (its end is kept: the raising frame).
MAX_TRACEBACK_BYTES: Final = 64 * 1024
#: Most outcomes per ReportTaskOutcomes call, and most tasks per LeaseTasks call (the RPC limits).
MAX_BATCH: Final = 1000
#: Most credit a WorkerSession holds at once (the broker refuses more, docs/api.md#workersession):
#: a worker with more free slots grants the rest as pushed tasks use credit up.
MAX_CREDIT: Final = 1000
#: Pause after a failed LeaseTasks or ReportTaskOutcomes call before trying again, in seconds.
RETRY_PAUSE_S: Final = 1.0
#: Over a cluster: how often the worker reads the node list again, in seconds.
NODES_EVERY_S: Final = 2.0


def failure_of(exc: BaseException) -> TaskFailure:
    """The failure to report for an exception a task raised: code = its qualified class name
    (`__qualname__`: `PaymentDeclined`, `Order.Declined`; the module is in the traceback),
    message, data = the formatted traceback; NonRetryable forbids a retry."""
    code = type(exc).__qualname__
    data = "".join(traceback.format_exception(exc)).encode(errors="replace")
    if len(data) > MAX_TRACEBACK_BYTES:
        data = b"...\n" + data[-MAX_TRACEBACK_BYTES:]
    return TaskFailure(
        code=code,
        message=str(exc),
        data=data,
        non_retryable=isinstance(exc, NonRetryable),
    )


class _UnknownTask(Exception):
    """A job whose task (or queue handler) this worker does not have."""


if sys.version_info >= (3, 12):
    #: Starts a handler's asyncio task eagerly: its first step runs at once (as the current
    #: task), and a handler that finishes without waiting is never scheduled.
    _new_task = functools.partial(asyncio.Task, eager_start=True)
else:
    _new_task = asyncio.Task


class _Running(TaskContext):
    """One task this worker runs. It is also the context its handler gets (one object per
    task): what runs it (a task definition or a raw handler, neither when unknown), the asyncio
    task running it, when its next heartbeat is due, and why it is being stopped (if it is)."""

    __slots__ = ("_abandoned", "_beat_at", "_definition", "_handler", "_job", "_lost", "_worker")

    def __init__(
        self,
        worker: Worker,
        task: Task,
        definition: TaskDef[Any, Any] | None,
        handler: RawHandler | None,
        beat_at: float,
    ) -> None:
        TaskContext.__init__(self, worker.api, task, worker_id=worker.worker_id, loop=worker._loop)
        self._worker = worker
        self._definition = definition
        self._handler = handler
        self._job: asyncio.Future[None] | None = None
        #: Loop time its next heartbeat is due (infinity while one is in flight).
        self._beat_at = beat_at
        self._lost = False  # the lease is gone: report nothing
        self._abandoned = False  # the grace period ended: report a retryable failure

    def _cancel_requested(self) -> None:
        self._worker._cancel(self)


class Worker:
    """Runs the tasks of `tasks` (and the raw `handlers`, by queue) from `api`, up to
    `concurrency` at once (see the module doc).

    queues: the queues to lease from; default the queues of `tasks` and `handlers`
        (["default"] when they name none).
    worker_id: how the broker knows this worker; default `HOST-PID-RANDOM`.
    grace: seconds running tasks get to finish once the worker stops.
    poll_ms: how long one LeaseTasks call waits when no task is due (also the most a stop
        waits for the call in flight).
    threads: size of the thread pool of plain `def` tasks (default: `concurrency`).
    """

    def __init__(
        self,
        api: Api,
        *,
        tasks: Iterable[TaskDef[Any, Any]] = (),
        handlers: Mapping[str, RawHandler] | None = None,
        queues: Sequence[str] | None = None,
        concurrency: int = 10,
        worker_id: str | None = None,
        grace: float = 30.0,
        poll_ms: int = 1000,
        threads: int | None = None,
    ) -> None:
        if concurrency < 1:
            raise errors.InvalidArgument("concurrency: must be at least 1")
        self.api = api
        self.tasks: dict[str, TaskDef[Any, Any]] = {}
        for t in tasks:
            if t.name in self.tasks and self.tasks[t.name] is not t:
                raise errors.InvalidArgument(f"tasks: two tasks are named {t.name!r}")
            self.tasks[t.name] = t
        self.handlers = {(q or "default"): h for q, h in (handlers or {}).items()}
        if queues is None:
            named = {t.queue or "default" for t in self.tasks.values()} | set(self.handlers)
            queues = sorted(named) or ["default"]
        self.queues = list(queues)
        self.concurrency = concurrency
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.grace = grace
        self.poll_ms = poll_ms
        self._threads = threads or concurrency
        self._running: dict[str, _Running] = {}
        self._raw_async = {q: asyncio.iscoroutinefunction(h) for q, h in self.handlers.items()}
        self._beats: set[asyncio.Future[None]] = set()
        #: The one heartbeat timer (None when no heartbeat is due) and the loop time it fires.
        self._beat_timer: asyncio.TimerHandle | None = None
        self._beat_timer_at = math.inf
        self._reports: list[Report] = []
        self._stop = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._idle = asyncio.Event()  # set while no task runs
        self._idle.set()
        self._report_ready = asyncio.Event()
        self._reports_sent = asyncio.Event()
        self._reports_sent.set()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: The WorkerSession while it is open (heartbeats and outcomes go on it), else None.
        self._session: SessionClient | None = None
        #: Credit granted to the session and not yet used by a task.
        self._credit = 0
        #: Over a cluster: the node each running or unreported task was leased from (its
        #: heartbeats and outcome go there), the node loops by address, the slots the loops'
        #: calls in flight asked for, and the loops whose last call found nothing.
        self._leased_from: dict[str, str] = {}
        #: The cluster client made by `run()` for a one-node client of a cluster (closed when
        #: `run()` returns), else None.
        self._found_cluster: ClusterClient | None = None
        self._lanes: dict[str, asyncio.Task[None]] = {}
        self._asked = 0
        self._idle_lanes: set[str] = set()
        #: Loops waiting for a free slot (every slot runs a task or is asked for by a call).
        self._starved = 0
        #: Tasks run and outcomes sent, for logs and tests.
        self.completed = 0

    # ------------------------------------------------------------------ public

    def stop(self) -> None:
        """Stop leasing; `run()` then lets running tasks finish within `grace` and returns.
        Safe to call from a signal handler of the loop or more than once."""
        self._stop.set()
        self._slot_freed.set()

    @property
    def running(self) -> int:
        """How many tasks are running now."""
        return len(self._running)

    async def run(
        self, *, handle_signals: bool = True, on_ready: Callable[[], None] | None = None
    ) -> None:
        """Lease and run tasks until `stop()` (or SIGTERM/SIGINT when `handle_signals` and
        this is the main thread), then finish as the module doc says. `on_ready` is called
        once the signal handlers are installed, before the first lease: from then on a
        SIGTERM stops the worker gracefully (`silo worker` prints its ready line there)."""
        await self._serve(until_idle=False, handle_signals=handle_signals, on_ready=on_ready)

    async def run_until_idle(self) -> int:
        """Run tasks until none is due and none is running (jobs scheduled for later stay);
        how many ran. What `silo.testing.drain` uses."""
        before = self.completed
        await self._serve(until_idle=True, handle_signals=False)
        return self.completed - before

    # ------------------------------------------------------------------ the loops

    async def _serve(
        self,
        *,
        until_idle: bool,
        handle_signals: bool,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop.clear()
        signals = self._install_signals() if handle_signals else []
        if on_ready is not None:
            on_ready()
        reporter = asyncio.create_task(self._report_loop(), name="silo-worker-reports")
        try:
            opener = getattr(self.api, "open_session", None)
            if not until_idle:
                self._found_cluster = await self._find_cluster()
            cluster = self._cluster_client()
            if cluster is not None:
                await self._cluster_loop(cluster, until_idle=until_idle)
            elif callable(opener) and not until_idle:
                await self._session_loop(opener)
            else:
                await self._lease_loop(until_idle=until_idle)
            await self._finish_running()
            await self._flush_reports()
        finally:
            if self._beat_timer is not None:
                self._beat_timer.cancel()
                self._beat_timer, self._beat_timer_at = None, math.inf
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
            for sig in signals:
                self._loop.remove_signal_handler(sig)
            if self._found_cluster is not None:
                found, self._found_cluster = self._found_cluster, None
                await found.close()
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None

    def _install_signals(self) -> list[signal.Signals]:
        assert self._loop is not None
        installed = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._loop.add_signal_handler(sig, self._on_signal, sig)
            except (ValueError, RuntimeError, NotImplementedError):  # not the main thread
                continue
            installed.append(sig)
        return installed

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info(
            "%s: stopping; %d task(s) running get %.0f s to finish",
            sig.name,
            len(self._running),
            self.grace,
        )
        self.stop()

    async def _lease_loop(self, *, until_idle: bool) -> None:
        while not self._stop.is_set():
            free = self.concurrency - len(self._running)
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            # Let the tasks finishing in this loop iteration free their slots first, so that
            # one call leases for all of them.
            await asyncio.sleep(0)
            free = self.concurrency - len(self._running)
            wait_ms = 0 if until_idle else self.poll_ms
            try:
                tasks = await self.api.lease_tasks(
                    worker_id=self.worker_id,
                    max_tasks=min(free, MAX_BATCH),
                    queues=self.queues,
                    wait_ms=wait_ms,
                )
            except errors.Unavailable as exc:
                log.warning("lease_tasks failed (%s); trying again in %.0f s", exc, RETRY_PAUSE_S)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), RETRY_PAUSE_S)
                continue
            now = self._loop.time() if self._loop is not None else 0.0
            for t in tasks:
                self._start(t, now)
            if until_idle and not tasks:
                if not self._running:
                    return
                self._slot_freed.clear()
                await self._slot_freed.wait()

    def _cluster_client(self) -> ClusterClient | None:
        from silo.cluster import ClusterClient

        if self._found_cluster is not None:
            return self._found_cluster
        return self.api if isinstance(self.api, ClusterClient) else None

    async def _find_cluster(self) -> ClusterClient | None:
        """For a client of one node: a client of every node when that node's cluster has
        several (see the module doc), else None. A node that cannot say (unreachable, or a
        broker without GetCluster) is taken for a single broker."""
        from silo.client import Client
        from silo.cluster import ClusterClient

        if not isinstance(self.api, Client) or isinstance(self.api, ClusterClient):
            return None
        try:
            shape = await self.api.get_cluster()
        except errors.SiloError as exc:
            log.info("cannot read the cluster map (%s): leasing from this node only", exc)
            return None
        if len(shape.nodes) <= 1:
            return None
        log.info("the broker is a node of a cluster of %d: leasing from each", len(shape.nodes))
        return self.api.for_nodes([n.address for n in shape.nodes])

    async def _cluster_loop(self, cluster: ClusterClient, *, until_idle: bool) -> None:
        """One lease loop per node of the cluster map until `stop()` (or, `until_idle`, until
        every loop found nothing and no task runs); the node list is read again every
        NODES_EVERY_S seconds."""
        try:
            while not self._stop.is_set():
                try:
                    await cluster.refresh()
                except errors.Unavailable as exc:
                    log.warning("cannot read the cluster map (%s); trying again", exc)
                nodes = cluster.nodes()
                for address in nodes:
                    lane = self._lanes.get(address)
                    if lane is not None and lane.done() and lane.exception() is not None:
                        log.error("the lease loop of %s failed: %r", address, lane.exception())
                    if lane is None or lane.done():
                        self._lanes[address] = asyncio.ensure_future(
                            self._lane(address, cluster.node(address), until_idle=until_idle)
                        )
                for address in [a for a in self._lanes if a not in nodes]:
                    log.info("node %s left the cluster: no more leases from it", address)
                    self._lanes.pop(address).cancel()
                    self._idle_lanes.discard(address)
                lanes = list(self._lanes.values())
                stopped = asyncio.ensure_future(self._stop.wait())
                await asyncio.wait(
                    [*lanes, stopped],
                    timeout=NODES_EVERY_S,
                    return_when=asyncio.ALL_COMPLETED if until_idle else asyncio.FIRST_COMPLETED,
                )
                stopped.cancel()
                if until_idle and all(lane.done() for lane in lanes):
                    return
        finally:
            lanes = list(self._lanes.values())
            self._lanes.clear()
            self._slot_freed.set()
            # The loops end within one long-poll (poll_ms): what they leased still runs.
            for result in await asyncio.gather(*lanes, return_exceptions=True):
                if isinstance(result, Exception):
                    log.error("a lease loop failed: %r", result)

    async def _lane(self, address: str, node: Client, *, until_idle: bool) -> None:
        """Lease from one node of a cluster (see the module doc) until `stop()`."""
        while not self._stop.is_set():
            free = self.concurrency - len(self._running) - self._asked
            if free <= 0:
                self._starved += 1
                self._slot_freed.clear()
                try:
                    await self._slot_freed.wait()
                finally:
                    self._starved -= 1
                continue
            await asyncio.sleep(0)  # let this iteration's finishing tasks free their slots
            free = self.concurrency - len(self._running) - self._asked
            if free <= 0:
                continue
            busy = max(1, len(self._lanes) - len(self._idle_lanes - {address}))
            ask = 1 if address in self._idle_lanes else -(-free // busy)
            ask = min(ask, free, MAX_BATCH)
            self._asked += ask
            try:
                tasks = await node.lease_tasks(
                    worker_id=self.worker_id,
                    max_tasks=ask,
                    queues=self.queues,
                    wait_ms=0 if until_idle else self.poll_ms,
                )
            except errors.Unavailable as exc:
                log.warning("lease_tasks on %s failed (%s); trying again", address, exc)
                self._idle_lanes.add(address)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), RETRY_PAUSE_S)
                continue
            finally:
                self._asked -= ask
                if self._starved:
                    # The slots this call held and did not fill are free again: a loop
                    # waiting for a slot must look (no task finishing would wake it).
                    self._slot_freed.set()
            now = self._loop.time() if self._loop is not None else 0.0
            for t in tasks:
                self._leased_from[t.task_id] = address
                self._start(t, now)
            if tasks:
                self._idle_lanes.discard(address)
            else:
                self._idle_lanes.add(address)
                if until_idle:
                    if not self._running:
                        return
                    self._slot_freed.clear()
                    await self._slot_freed.wait()

    async def _session_loop(self, opener: Any) -> None:
        """Take tasks from a WorkerSession until `stop()`: grant one credit per free slot, open
        the session again when it breaks; fall back to leasing if the broker refuses it."""
        from silo.streams import StreamRefused

        while not self._stop.is_set():
            session: SessionClient | None = opener(
                worker_id=self.worker_id, queues=self.queues, on_task=self._session_task
            )
            if session is None:  # the client has streams off
                await self._lease_loop(until_idle=False)
                return
            self._credit = min(max(0, self.concurrency - len(self._running)), MAX_CREDIT)
            try:
                await session.start(self._credit)
                self._session = session
                await self._grant_while_open(session)
            except StreamRefused:
                log.info("the broker does not serve WorkerSession: leasing instead")
                self._session = None
                await self._lease_loop(until_idle=False)
                return
            except errors.Unavailable as exc:
                log.warning("worker session failed (%s); opening it again", exc)
            finally:
                self._session = None
            if self._stop.is_set():
                # Our side is closed: the broker delivers what it took for us, then ends.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(session.ended(), self.grace)
                await session.close()
                return
            await session.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), RETRY_PAUSE_S)

    async def _grant_while_open(self, session: SessionClient) -> None:
        """Grant credit for every free slot as tasks finish, until `stop()` (then close our
        side) or until the session breaks (Unavailable)."""
        ended = asyncio.ensure_future(session.ended())
        try:
            while not self._stop.is_set():
                free = min(
                    self.concurrency - len(self._running) - self._credit,
                    MAX_CREDIT - self._credit,
                )
                if free > 0:
                    await session.credits(free)
                    self._credit += free
                self._slot_freed.clear()
                freed = asyncio.ensure_future(self._slot_freed.wait())
                await asyncio.wait({freed, ended}, return_when=asyncio.FIRST_COMPLETED)
                freed.cancel()
                if ended.done() and not self._stop.is_set():
                    raise errors.Unavailable("the worker session ended")
            self._session = None  # outcomes from now on go unary: our side closes
            await session.end()
        finally:
            ended.cancel()

    def _session_task(self, task: Task) -> None:
        """A task pushed by the session (it used one credit)."""
        self._credit = max(0, self._credit - 1)
        assert self._loop is not None
        self._start(task, self._loop.time())
        if (
            self._credit <= MAX_CREDIT // 2
            and self.concurrency - len(self._running) - self._credit > 0
        ):
            # More free slots than the session's credit may cover (concurrency > MAX_CREDIT):
            # half of the credit is used, so the grant loop tops it up. Never true otherwise.
            self._slot_freed.set()

    def _start(self, task: Task, now: float) -> None:
        """Start running `task`, leased at loop time `now`."""
        assert self._loop is not None
        name = task.metadata.get(TASK_METADATA_KEY)
        definition = self.tasks.get(name) if name is not None else None
        handler = None if definition is not None else self.handlers.get(task.queue)
        beat_at = now + max(task.heartbeat_interval_ms, 1) / 1000
        running = _Running(self, task, definition, handler, beat_at)
        self._running[task.task_id] = running
        self._idle.clear()
        running._job = _new_task(self._execute(running), loop=self._loop)
        if beat_at < self._beat_timer_at and task.task_id in self._running:
            self._arm_heartbeats(beat_at)

    async def _finish_running(self) -> None:
        if not self._running:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), self.grace)
            return
        log.warning(
            "%d task(s) still running after the %.0f s grace period: reporting them as %s",
            len(self._running),
            self.grace,
            SHUTDOWN_CODE,
        )
        for running in list(self._running.values()):
            running._abandoned = True
            if running._job is not None:
                running._job.cancel()
        await self._idle.wait()

    # ------------------------------------------------------------------ running one task

    async def _execute(self, running: _Running) -> None:
        """Run the task's handler and queue its report (one coroutine per task: the handler
        is awaited here, without a coroutine in between)."""
        task = running.task
        definition = running._definition
        report: Report | None
        try:
            if definition is not None:
                args, kwargs = definition.decode_arguments(task.payload)
                if definition.takes_context:
                    args.insert(0, running)
                if definition.is_async:
                    value = await definition.fn(*args, **kwargs)
                else:
                    value = await self._in_thread(functools.partial(definition.fn, *args, **kwargs))
                result = definition.serializer.dumps(value)
            else:
                result = await self._call_raw_handler(running)
        except asyncio.CancelledError:
            report = self._stopped_report(running)
        except _UnknownTask as exc:
            failure = TaskFailure(code=UNKNOWN_TASK_CODE, message=str(exc))
            report = Report(task_id=task.task_id, worker_id=self.worker_id, failure=failure)
        except Exception as exc:
            report = Report(task_id=task.task_id, worker_id=self.worker_id, failure=failure_of(exc))
        else:
            if running._lost:
                report = None
            elif running.cancelled:
                report = Report(task_id=task.task_id, worker_id=self.worker_id, cancelled=True)
            else:
                report = Report(task_id=task.task_id, worker_id=self.worker_id, result=result)
        del self._running[task.task_id]
        if report is None:
            self._leased_from.pop(task.task_id, None)
        if not self._running:
            self._idle.set()
        self._slot_freed.set()
        if report is not None:
            self._reports.append(report)
            self._reports_sent.clear()
            self._report_ready.set()

    def _stopped_report(self, running: _Running) -> Report | None:
        """The report of a handler that was cancelled: the job's cancel acknowledged, a
        retryable failure after the grace period, nothing when the lease was lost."""
        task_id = running.task.task_id
        if running._lost:
            return None
        if running.cancelled:
            return Report(task_id=task_id, worker_id=self.worker_id, cancelled=True)
        message = f"the worker stopped and the task did not finish within {self.grace:g} s"
        if not running._abandoned:  # cancelled from outside (the worker's own task was cancelled)
            message = "the worker was cancelled before the task finished"
        failure = TaskFailure(code=SHUTDOWN_CODE, message=message)
        return Report(task_id=task_id, worker_id=self.worker_id, failure=failure)

    async def _call_raw_handler(self, running: _Running) -> bytes:
        """Run the raw handler of the task's queue: payload bytes in, result bytes out."""
        task, handler = running.task, running._handler
        if handler is None:
            name = task.metadata.get(TASK_METADATA_KEY)
            raise _UnknownTask(
                f"no task named {name!r} in this worker"
                if name
                else f"no task name and no handler for queue {task.queue!r}"
            )
        if self._raw_async.get(task.queue):
            out = await handler(running, task.payload)  # type: ignore[misc]
        else:
            out = await self._in_thread(functools.partial(handler, running, task.payload))
        if not isinstance(out, bytes | bytearray):
            raise TypeError(
                f"the raw handler of queue {task.queue!r} returned {type(out).__name__}, not bytes"
            )
        return bytes(out)

    def _in_thread(self, call: Callable[[], Any]) -> asyncio.Future[Any]:
        """`call()` in the worker's thread pool."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=self._threads, thread_name_prefix="silo-task"
            )
        assert self._loop is not None
        return self._loop.run_in_executor(self._pool, call)

    def _cancel(self, running: _Running) -> None:
        """The job was cancelled: cancel an async handler (a thread cannot be interrupted; a
        plain `def` handler sees `ctx.cancelled`)."""
        if running._job is None or running._job.done():
            return
        if running._definition is not None:
            is_async = running._definition.is_async
        else:
            is_async = self._raw_async.get(running.task.queue, False)
        if is_async:
            running._job.cancel()

    # ------------------------------------------------------------------ heartbeats

    def _arm_heartbeats(self, when: float) -> None:
        """Make the heartbeat timer fire at loop time `when`."""
        assert self._loop is not None
        if self._beat_timer is not None:
            self._beat_timer.cancel()
        self._beat_timer = self._loop.call_at(when, self._heartbeats_due)
        self._beat_timer_at = when

    def _heartbeats_due(self) -> None:
        """Heartbeat every running task whose heartbeat is due; arm the timer for the next.
        Runs about once per heartbeat interval (not once per task), and looks only at the
        tasks running now."""
        assert self._loop is not None
        self._beat_timer, self._beat_timer_at = None, math.inf
        now = self._loop.time()
        next_at = math.inf
        for running in self._running.values():
            if running._beat_at <= now:
                running._beat_at = math.inf  # until its answer
                beat = self._loop.create_task(self._heartbeat(running))
                self._beats.add(beat)
                beat.add_done_callback(self._beats.discard)
            elif running._beat_at < next_at:
                next_at = running._beat_at
        if next_at < math.inf:
            self._arm_heartbeats(next_at)

    async def _heartbeat(self, running: _Running) -> None:
        task = running.task
        try:
            result = await self._send_heartbeat(task.task_id)
        except (errors.LeaseNotHeld, errors.TaskNotFound) as exc:
            log.warning(
                "task %s of job %s lost its lease (%s): stopping it", task.task_id, task.job_id, exc
            )
            running._lost = True
            if running._job is not None:
                running._job.cancel()
            return
        except errors.SiloError as exc:
            log.warning("heartbeat of task %s failed (%s); trying again", task.task_id, exc)
        else:
            if result.cancelled:
                running.mark_cancelled()
        if task.task_id in self._running:
            assert self._loop is not None
            running._beat_at = self._loop.time() + max(task.heartbeat_interval_ms, 1) / 1000
            if running._beat_at < self._beat_timer_at:
                self._arm_heartbeats(running._beat_at)

    async def _send_heartbeat(self, task_id: str) -> HeartbeatResult:
        """On the session while it is open, else the unary call."""
        if self._session is not None:
            return await self._session.heartbeat(task_id=task_id)
        cluster = self._cluster_client()
        address = self._leased_from.get(task_id)
        if cluster is not None and address is not None:
            with contextlib.suppress(errors.Unavailable):  # gone: the map names the new owner
                return await cluster.node(address).heartbeat_task(
                    task_id=task_id, worker_id=self.worker_id
                )
        return await self.api.heartbeat_task(task_id=task_id, worker_id=self.worker_id)

    # ------------------------------------------------------------------ reports

    async def _send_reports(self, batch: list[Report]) -> Sequence[ReportResult | None]:
        """On the session while it is open (one outcome message each), else one unary
        ReportTaskOutcomes call (over a cluster, one per node). None for an outcome not sent
        (it is sent again); raises Unavailable when none was sent."""
        if self._session is not None:
            return await self._session.report_many(batch)
        cluster = self._cluster_client()
        if cluster is not None:
            return await self._send_reports_to_nodes(cluster, batch)
        return await self.api.report_task_outcomes(reports=batch)

    async def _send_reports_to_nodes(
        self, cluster: ClusterClient, batch: list[Report]
    ) -> list[ReportResult | None]:
        """Each outcome to the node its task was leased from, one call per node at once; the
        outcomes of a node that cannot be reached go by the cluster map (their shard's new
        owner). None for the outcomes that could not be sent either way; raises Unavailable
        when none was sent."""
        groups: dict[str | None, list[int]] = {}
        for i, report in enumerate(batch):
            groups.setdefault(self._leased_from.get(report.task_id), []).append(i)

        async def send(address: str | None, reports: list[Report]) -> list[ReportResult]:
            if address is not None:
                with contextlib.suppress(errors.Unavailable):
                    return await cluster.node(address).report_task_outcomes(reports=reports)
            return await cluster.report_task_outcomes(reports=reports)

        answers = await asyncio.gather(
            *(send(a, [batch[i] for i in slots]) for a, slots in groups.items()),
            return_exceptions=True,
        )
        results: list[ReportResult | None] = [None] * len(batch)
        failure: BaseException | None = None
        for slots, answer in zip(groups.values(), answers, strict=True):
            if isinstance(answer, BaseException):
                if not isinstance(answer, errors.Unavailable):
                    raise answer
                failure = answer
                continue
            for i, result in zip(slots, answer, strict=True):
                results[i] = result
                self._leased_from.pop(batch[i].task_id, None)
        if failure is not None and all(r is None for r in results):
            raise failure
        return results

    async def _report_loop(self) -> None:
        while True:
            if not self._reports:
                self._reports_sent.set()
                self._report_ready.clear()
                await self._report_ready.wait()
                continue
            self._reports_sent.clear()
            batch = self._reports[:MAX_BATCH]
            del self._reports[:MAX_BATCH]
            try:
                results = await self._send_reports(batch)
            except errors.Unavailable as exc:
                log.warning("report_task_outcomes failed (%s); trying again", exc)
                self._reports[:0] = batch
                await asyncio.sleep(RETRY_PAUSE_S)
                continue
            unsent = [r for r, outcome in zip(batch, results, strict=True) if outcome is None]
            self.completed += len(batch) - len(unsent)
            if unsent:
                log.warning("%d outcome(s) could not be sent; trying again", len(unsent))
                self._reports[:0] = unsent
            for report, outcome in zip(batch, results, strict=True):
                if outcome is not None and not outcome.ok:
                    log.warning(
                        "the outcome of task %s was refused (code %d): %s",
                        report.task_id,
                        outcome.code,
                        outcome.message,
                    )
            if unsent:
                await asyncio.sleep(RETRY_PAUSE_S)

    async def _flush_reports(self, timeout: float = 30.0) -> None:
        """Wait until every outcome is sent (at most `timeout` seconds: the broker may be
        unreachable)."""
        self._report_ready.set()
        try:
            await asyncio.wait_for(self._reports_sent.wait(), timeout)
        except TimeoutError:
            log.error("%d outcome(s) could not be sent within %.0f s", len(self._reports), timeout)
