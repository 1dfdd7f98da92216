"""A load generator that keeps a ledger of what the broker acknowledged, and the checks that
hold that ledger against the store afterwards (crash-loop and outage tests).

Producers enqueue jobs with ids of their own, so every job ever sent is known; workers lease,
sometimes heartbeat with a cursor, and report a success (result `r:<task id>`) or a retryable
failure (code `flaky`). Every call has a timeout. A call that fails with UNAVAILABLE, a broken or
refused connection or a timeout is "not acknowledged": its change may or may not have happened,
and the ledger says so. Any other error is recorded as unexpected.

`verify()` then reads every job back (GetJob with attempts) and counts what was lost (an
acknowledged enqueue, lease, cursor or outcome missing from the store) and what was duplicated (a
task with two acknowledged outcomes, a task id in two attempts, a job that ran after it
succeeded).
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError
from silo._proto.silo.admin.v1 import AdminStub, GetStatsRequest
from silo._proto.silo.v1 import (
    AttemptStatus,
    EnqueueBatchRequest,
    EnqueueRequest,
    GetJobRequest,
    HeartbeatTaskRequest,
    Job,
    JobStatus,
    LeaseTasksRequest,
    ReportTaskOutcomeRequest,
    ReportTaskOutcomesRequest,
    RetryPolicy,
    SiloStub,
    Task,
    TaskFailure,
)

T = TypeVar("T")

#: Errors after which a call's effect is unknown (the broker crashed, restarted or lost its store).
NOT_ACKNOWLEDGED = (OSError, StreamTerminatedError, ProtocolError, TimeoutError)
TERMINAL = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}
FAILURE_CODE = "flaky"
# Immediate retries, plenty of them: crashes and outages expire leases, and every job must end.
RETRY = RetryPolicy(max_retries=25, schedule_ms=[0])
#: Most enqueues a paced producer has waiting for an answer.
MAX_IN_FLIGHT = 512


def result_of(task_id: str) -> bytes:
    return f"r:{task_id}".encode()


def cursor_of(task_id: str) -> bytes:
    return f"c:{task_id}".encode()


@dataclass
class Ledger:
    """What the load sent and what the broker acknowledged."""

    #: Every job id an enqueue was sent for (acknowledged or not).
    sent: set[str] = field(default_factory=set)
    #: Job ids whose enqueue answered OK.
    enqueued: set[str] = field(default_factory=set)
    #: task id -> job id of every task handed out by an acknowledged LeaseTasks.
    leased: dict[str, str] = field(default_factory=dict)
    #: task id -> cursor of an acknowledged heartbeat.
    cursors: dict[str, bytes] = field(default_factory=dict)
    #: task id -> ("result", bytes) or ("failure", code) of an acknowledged report.
    reported: dict[str, tuple[str, bytes | str]] = field(default_factory=dict)
    #: Reports answered OK for a task that already had an acknowledged outcome.
    double_acks: list[str] = field(default_factory=list)
    #: Calls whose effect is unknown, by "<rpc>:<error>".
    not_acked: Counter[str] = field(default_factory=Counter)
    #: Answers the contract does not allow here, e.g. INTERNAL, or NOT_FOUND for a leased task.
    unexpected: list[str] = field(default_factory=list)
    #: Duration of each call that was not acknowledged (seconds), to tell errors from hangs.
    failed_call_s: list[float] = field(default_factory=list)
    #: (monotonic time, rpc, ok) of every finished call, to see when service stopped or resumed.
    timeline: list[tuple[float, str, bool]] = field(default_factory=list)

    def acked_since(self, t: float) -> int:
        return sum(1 for when, _, ok in self.timeline if ok and when >= t)


@dataclass
class LoadSettings:
    tenant: str
    queue: str
    producers: int = 3
    #: One more producer that sends EnqueueBatch calls of this many jobs (0: none).
    batch_size: int = 10
    workers: int = 2
    lease_max: int = 16
    call_timeout_s: float = 10.0
    #: None: `producers` closed loops, each sending its next call once the last is answered.
    #: A number: an open loop sending single Enqueue calls at this rate (jobs/s) whatever the
    #: answers (at most MAX_IN_FLIGHT at once); `producers` and `batch_size` are then unused.
    rate: float | None = None
    #: Workers report with ReportTaskOutcomes; False: every other worker reports one by one.
    all_workers_batch: bool = False
    failure_rate: float = 0.15
    heartbeat_rate: float = 0.25
    payload: bytes = b"payload"
    seed: int = 0


class Load:
    """Producers and workers against the broker at host:port, until `stop()`.

    Channels reconnect by themselves after the broker restarts on the same port.
    """

    def __init__(self, host: str, port: int, settings: LoadSettings) -> None:
        self.host = host
        self.port = port
        self.s = settings
        self.ledger = Ledger()
        self.rng = random.Random(settings.seed)
        self.producing = True
        self._stop = asyncio.Event()
        self._channels: list[Channel] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._next_id = 0

    # ------------------------------------------------------------------------- lifecycle

    def stub(self) -> SiloStub:
        channel = Channel(self.host, self.port)
        self._channels.append(channel)
        return SiloStub(channel)

    def start(self) -> Load:
        if self.s.rate is not None:
            self._spawn(self._paced_producer(self.s.rate))
        else:
            for _ in range(self.s.producers):
                self._spawn(self._producer(batch=1))
            if self.s.batch_size:
                self._spawn(self._producer(batch=self.s.batch_size))
        for i in range(self.s.workers):
            batched = self.s.all_workers_batch or i % 2 == 1
            self._spawn(self._worker(f"worker-{i}", batched=batched))
        return self

    def _spawn(self, coro: Awaitable[None]) -> None:
        self._tasks.append(asyncio.ensure_future(coro))

    def stop_producing(self) -> None:
        self.producing = False

    async def stop(self) -> None:
        """Stop every producer and worker and close the channels (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        try:
            await asyncio.wait_for(asyncio.gather(*self._tasks), 2 * self.s.call_timeout_s + 5)
        finally:
            for channel in self._channels:
                channel.close()

    # ------------------------------------------------------------------------ one call

    async def call(self, rpc: str, make: Callable[[], Awaitable[T]]) -> T | None:
        """Run one call with the timeout; None if not acknowledged (recorded in the ledger).

        GRPCError other than UNAVAILABLE is re-raised for the caller to judge.
        """
        start = time.monotonic()
        try:
            out = await asyncio.wait_for(make(), self.s.call_timeout_s)
        except GRPCError as exc:
            if exc.status is not Status.UNAVAILABLE:
                self.ledger.timeline.append((time.monotonic(), rpc, False))
                raise
            self._not_acked(rpc, "UNAVAILABLE", start)
            return None
        except NOT_ACKNOWLEDGED as exc:
            self._not_acked(rpc, type(exc).__name__, start)
            return None
        self.ledger.timeline.append((time.monotonic(), rpc, True))
        return out

    def _not_acked(self, rpc: str, what: str, start: float) -> None:
        now = time.monotonic()
        self.ledger.not_acked[f"{rpc}:{what}"] += 1
        self.ledger.failed_call_s.append(now - start)
        self.ledger.timeline.append((now, rpc, False))

    async def _pause(self, seconds: float) -> None:
        """Back off after a failed call (the broker is restarting or its store is down), or
        pace the producers; returns early when the load stops."""
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            pass

    # ------------------------------------------------------------------------- producers

    def _new_request(self) -> EnqueueRequest:
        self._next_id += 1
        job_id = f"job-{self._next_id:06d}"
        self.ledger.sent.add(job_id)
        return EnqueueRequest(
            id=job_id,
            tenant=self.s.tenant,
            queue=self.s.queue,
            retry_policy=RETRY,
            payload=self.s.payload,
        )

    async def _producer(self, *, batch: int) -> None:
        """Closed loop: the next call once the last one is answered."""
        stub = self.stub()
        while not self._stop.is_set():
            if not self.producing:
                await self._pause(0.05)
                continue
            if batch == 1:
                ok = await self._enqueue_one(stub)
            else:
                ok = await self._enqueue_batch(stub, batch)
            if not ok:
                await self._pause(0.05)

    async def _paced_producer(self, rate: float) -> None:
        """Open loop: one Enqueue every 1/rate s, not waiting for answers."""
        stub = self.stub()
        in_flight: set[asyncio.Task[bool]] = set()
        interval = 1.0 / rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            next_at += interval
            await self._pause(max(0.0, next_at - time.monotonic()))
            if self._stop.is_set() or not self.producing or len(in_flight) >= MAX_IN_FLIGHT:
                continue
            task = asyncio.ensure_future(self._enqueue_one(stub))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:
            await asyncio.gather(*in_flight)

    async def _enqueue_one(self, stub: SiloStub) -> bool:
        req = self._new_request()
        try:
            answer = await self.call("Enqueue", functools.partial(stub.enqueue, req))
        except GRPCError as exc:
            self.ledger.unexpected.append(f"Enqueue {req.id}: {exc.status.name} {exc.message}")
            return False
        if answer is None:
            return False
        self.ledger.enqueued.add(req.id)
        return True

    async def _enqueue_batch(self, stub: SiloStub, size: int) -> bool:
        jobs = [self._new_request() for _ in range(size)]
        try:
            answer = await self.call(
                "EnqueueBatch", lambda: stub.enqueue_batch(EnqueueBatchRequest(jobs=jobs))
            )
        except GRPCError as exc:
            self.ledger.unexpected.append(f"EnqueueBatch: {exc.status.name} {exc.message}")
            return False
        if answer is None:
            return False
        for req, res in zip(jobs, answer.results, strict=True):
            if res.code == Status.OK.value:
                self.ledger.enqueued.add(req.id)
            else:
                self.ledger.unexpected.append(f"EnqueueBatch {req.id}: {res.code} {res.message}")
        return True

    # --------------------------------------------------------------------------- workers

    def _outcome(self, task: Task, worker_id: str) -> ReportTaskOutcomeRequest:
        """A success, or now and then a retryable failure."""
        if self.rng.random() < self.s.failure_rate:
            failure = TaskFailure(code=FAILURE_CODE, message="try again")
            return ReportTaskOutcomeRequest(
                task_id=task.task_id, worker_id=worker_id, failure=failure
            )
        return ReportTaskOutcomeRequest(
            task_id=task.task_id, worker_id=worker_id, result=result_of(task.task_id)
        )

    async def _worker(self, worker_id: str, *, batched: bool) -> None:
        stub = self.stub()
        # Reports whose answer was lost: sent again (the same outcome) until answered.
        unanswered: dict[str, ReportTaskOutcomeRequest] = {}
        while not self._stop.is_set():
            if unanswered:
                await self._report(stub, worker_id, unanswered, batched=batched)
                if unanswered:
                    await self._pause(0.05)
                    continue
            req = LeaseTasksRequest(
                worker_id=worker_id, max_tasks=self.s.lease_max, queues=[self.s.queue], wait_ms=200
            )
            try:
                answer = await self.call("LeaseTasks", functools.partial(stub.lease_tasks, req))
            except GRPCError as exc:
                self.ledger.unexpected.append(f"LeaseTasks: {exc.status.name} {exc.message}")
                await self._pause(0.05)
                continue
            if answer is None:
                await self._pause(0.05)
                continue
            for task in answer.tasks:
                self.ledger.leased[task.task_id] = task.job_id
            for task in answer.tasks:
                if self.rng.random() < self.s.heartbeat_rate:
                    await self._heartbeat(stub, worker_id, task)
                unanswered[task.task_id] = self._outcome(task, worker_id)
            await self._report(stub, worker_id, unanswered, batched=batched)

    async def _heartbeat(self, stub: SiloStub, worker_id: str, task: Task) -> None:
        cursor = cursor_of(task.task_id)
        req = HeartbeatTaskRequest(task_id=task.task_id, worker_id=worker_id, cursor=cursor)
        try:
            answer = await self.call("HeartbeatTask", functools.partial(stub.heartbeat_task, req))
        except GRPCError as exc:
            # FAILED_PRECONDITION: the lease ended (e.g. it expired while the broker was down).
            if exc.status is not Status.FAILED_PRECONDITION:
                self.ledger.unexpected.append(f"HeartbeatTask {task.task_id}: {exc.status.name}")
            return
        if answer is not None:
            self.ledger.cursors[task.task_id] = cursor

    async def _report(
        self,
        stub: SiloStub,
        worker_id: str,
        pending: dict[str, ReportTaskOutcomeRequest],
        *,
        batched: bool,
    ) -> None:
        """Send the pending reports; drop each one that got a definite answer."""
        if batched:
            reqs = list(pending.values())
            try:
                answer = await self.call(
                    "ReportTaskOutcomes",
                    lambda: stub.report_task_outcomes(ReportTaskOutcomesRequest(reports=reqs)),
                )
            except GRPCError as exc:
                self.ledger.unexpected.append(f"ReportTaskOutcomes: {exc.status.name}")
                pending.clear()
                return
            if answer is None:
                return
            for req, res in zip(reqs, answer.results, strict=True):
                self._judge_report(req, res.code, res.message)
                del pending[req.task_id]
            return
        for task_id, req in list(pending.items()):
            try:
                ok = await self.call(
                    "ReportTaskOutcome", functools.partial(stub.report_task_outcome, req)
                )
            except GRPCError as exc:
                self._judge_report(req, exc.status.value, exc.message or "")
                del pending[task_id]
                continue
            if ok is None:
                return  # keep the rest for later, in order
            self._judge_report(req, Status.OK.value, "")
            del pending[task_id]

    def _judge_report(self, req: ReportTaskOutcomeRequest, code: int, message: str) -> None:
        task_id = req.task_id
        if code == Status.OK.value:
            if task_id in self.ledger.reported:
                self.ledger.double_acks.append(task_id)
            outcome: tuple[str, bytes | str]
            if req.failure is not None:
                outcome = ("failure", req.failure.code)
            else:
                outcome = ("result", req.result or b"")
            self.ledger.reported[task_id] = outcome
        elif code in (Status.ALREADY_EXISTS.value, Status.FAILED_PRECONDITION.value):
            # ALREADY_EXISTS: an earlier send of this very report was applied though its answer
            # was lost. FAILED_PRECONDITION: the lease expired meanwhile; nothing recorded.
            pass
        else:
            self.ledger.unexpected.append(f"report {task_id}: code {code} {message}")


# ------------------------------------------------------------------------------ checks


@dataclass
class Verdict:
    """What `verify` found; `lost` and `duplicates` list one line per problem."""

    jobs_found: int = 0
    lost: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    attempts: int = 0


async def read_jobs(stub: SiloStub, tenant: str, ids: set[str]) -> dict[str, Job]:
    """GetJob (with attempts) for every id; ids that do not exist are left out."""
    found: dict[str, Job] = {}
    sem = asyncio.Semaphore(16)

    async def one(job_id: str) -> None:
        async with sem:
            try:
                job = await stub.get_job(
                    GetJobRequest(id=job_id, tenant=tenant, include_attempts=True), timeout=30
                )
            except GRPCError as exc:
                if exc.status is Status.NOT_FOUND:
                    return
                raise
            found[job_id] = job

    await asyncio.gather(*(one(i) for i in sorted(ids)))
    return found


async def verify(stub: SiloStub, tenant: str, ledger: Ledger) -> Verdict:
    """Hold the ledger against the store (see the module doc)."""
    jobs = await read_jobs(stub, tenant, ledger.sent)
    v = Verdict(jobs_found=len(jobs))
    v.duplicates.extend(f"task {t}: two reports answered OK" for t in ledger.double_acks)
    for job_id in sorted(ledger.enqueued - jobs.keys()):
        v.lost.append(f"job {job_id}: enqueue acknowledged, job not found")
    attempt_of: dict[str, Any] = {}
    for job in jobs.values():
        v.statuses[job.status.name] += 1
        v.attempts += len(job.attempts)
        if job.status not in TERMINAL:
            v.unfinished.append(f"job {job.id}: {job.status.name}")
        succeeded_at: int | None = None
        for att in sorted(job.attempts, key=lambda a: a.attempt):
            if att.task_id in attempt_of:
                v.duplicates.append(f"task {att.task_id}: in two attempts")
            attempt_of[att.task_id] = (job, att)
            if succeeded_at is not None:
                v.duplicates.append(
                    f"job {job.id}: attempt {att.attempt} after attempt {succeeded_at} succeeded"
                )
            if att.status == AttemptStatus.SUCCEEDED:
                succeeded_at = att.attempt
        if job.status == JobStatus.SUCCEEDED:
            last = max(job.attempts, key=lambda a: a.attempt, default=None)
            if last is None or last.status != AttemptStatus.SUCCEEDED or job.result != last.result:
                v.lost.append(f"job {job.id}: SUCCEEDED but its last attempt disagrees")
    for task_id, job_id in sorted(ledger.leased.items()):
        if task_id not in attempt_of:
            v.lost.append(f"task {task_id} of job {job_id}: lease acknowledged, no attempt")
    for task_id, (kind, value) in sorted(ledger.reported.items()):
        found = attempt_of.get(task_id)
        if found is None:
            v.lost.append(f"task {task_id}: outcome acknowledged, no attempt")
            continue
        _, att = found
        if kind == "result":
            kept = att.status == AttemptStatus.SUCCEEDED and att.result == value
        else:
            kept = (
                att.status == AttemptStatus.FAILED
                and att.failure is not None
                and att.failure.code == value
            )
        if not kept:
            v.lost.append(
                f"task {task_id}: acknowledged {kind} {value!r}, attempt is {att.status.name} "
                f"result={att.result!r} failure={att.failure}"
            )
    for task_id, cursor in sorted(ledger.cursors.items()):
        found = attempt_of.get(task_id)
        if found is None or found[1].heartbeat_cursor != cursor:
            got = None if found is None else found[1].heartbeat_cursor
            v.lost.append(f"task {task_id}: cursor {cursor!r} acknowledged, attempt has {got!r}")
    return v


async def wait_for_progress(ledger: Ledger, since: float, count: int, timeout_s: float) -> None:
    """Wait until `count` calls were acknowledged after `since` (polled: the ledger is plain
    data the load fills in)."""
    deadline = time.monotonic() + timeout_s
    while ledger.acked_since(since) < count:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"only {ledger.acked_since(since)} calls acknowledged in {timeout_s}s after a "
                f"restart; not acknowledged so far: {dict(ledger.not_acked)}"
            )
        await asyncio.sleep(0.02)


async def wait_drained(admin: AdminStub, *, timeout_s: float) -> dict[str, int]:
    """Wait until the broker holds no ready, scheduled or running job; returns the gauges.

    Polls Admin.GetStats: the end of a backlog is not an event a client can wait on.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        stats = await admin.get_stats(GetStatsRequest(), timeout=10)
        gauges = dict(stats.gauges)
        if gauges.get("ready", 0) + gauges.get("scheduled", 0) + gauges.get("running", 0) == 0:
            return gauges
        if time.monotonic() > deadline:
            raise AssertionError(f"not drained after {timeout_s}s: {gauges}")
        await asyncio.sleep(0.2)


def summary(ledger: Ledger, verdict: Verdict) -> str:
    """The counts a test prints (and the lead quotes)."""
    outcomes = Counter(kind for kind, _ in ledger.reported.values())
    return (
        f"sent={len(ledger.sent)} acked_enqueues={len(ledger.enqueued)} "
        f"jobs_found={verdict.jobs_found} acked_leases={len(ledger.leased)} "
        f"acked_outcomes={len(ledger.reported)} (results={outcomes['result']} "
        f"failures={outcomes['failure']}) acked_cursors={len(ledger.cursors)} "
        f"attempts={verdict.attempts} lost={len(verdict.lost)} "
        f"duplicates={len(verdict.duplicates)} unfinished={len(verdict.unfinished)} "
        f"final={dict(verdict.statuses)} not_acked={dict(ledger.not_acked)}"
    )
