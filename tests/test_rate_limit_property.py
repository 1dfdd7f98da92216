"""Rate limits under random interleavings (issue 12; docs/architecture.md#rate-limits): a
Hypothesis state machine drives one real broker with random enqueues (rate-limit keys, a
concurrency key, first-attempt deadlines, retries), leases, reports, cancels, lease expiries,
time passing and `kill -9` restarts, and checks after every step that the token buckets hold:

- per key, the bucket never holds more than its limit, never goes below zero (the limits of
  one example never change), and the admitted jobs' reservations never exceed its whole
  tokens;
- the attempts that started (server timestamps: a task's `lease_expires_at_ms` minus the
  lease) stay within the envelope in every window: at most `limit + limit * d / period_ms`
  starts in any span of d ms, across restarts, expiries and cancels;
- a key with an unreserved token has no waiter, and its waiters are open jobs of this example
  that `GetJob` shows waiting on it;
- no job starts after it was cancelled or expired, and an expired job never started;
- at teardown, workers that keep working finish every job and every key ends idle, with no
  key state left in memory.

Same harness as tests/test_concurrency_property.py, whose `prop_server` fixture and sync
client it uses (a short-lease broker for the module, a tenant per example).
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field

import grpc
import pytest
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from silo._proto.silo.admin.v1 import GetRateLimitRequest, RateLimitState
from silo._proto.silo.v1 import (
    CancelRequest,
    ConcurrencyLimit,
    EnqueueRequest,
    JobStatus,
    LeaseTasksRequest,
    RateLimit,
    ReportTaskOutcomeRequest,
    RetryPolicy,
    Task,
    TaskFailure,
)
from silo.testing import ServerProcess
from test_concurrency_property import LEASE_MS, Wire, now_ms
from test_concurrency_property import prop_server as prop_server  # the module's broker

KEYS = ("r1", "r2")
# (limit, period_ms) choices for a key: fast enough to drain in seconds.
CONFIGS = [(1, 200), (2, 400), (3, 300), (1, 500)]
MAX_EXAMPLES = int(os.environ.get("SILO_RATE_PROP_EXAMPLES", "40"))
STEPS = int(os.environ.get("SILO_RATE_PROP_STEPS", "40"))
MAX_RESTARTS = 1
DRAIN_WAIT_S = 30.0
OK = grpc.StatusCode.OK


@dataclass
class MJob:
    id: str
    keys: tuple[str, ...]
    expire_at_ms: int
    max_attempts: int
    state: str = "waiting"  # waiting | running | done
    task: str | None = None
    cancelled: bool = False
    attempts: int = 0


@dataclass
class RunStats:
    examples: int = 0
    steps: int = 0
    jobs: int = 0
    starts: int = 0
    expired_jobs: int = 0
    lease_expiries: int = 0
    restarts: int = 0
    checks: int = 0
    max_waiters: int = 0


@dataclass
class Env:
    server: ServerProcess
    wire: Wire
    stats: RunStats = field(default_factory=RunStats)

    def restart(self) -> None:
        self.wire.close()
        self.server.kill9()
        self.server.restart()
        self.wire = Wire(self.server.address)
        self.stats.restarts += 1


class RateMachine(RuleBasedStateMachine):
    def __init__(self, env: Env) -> None:
        super().__init__()
        self.env = env
        env.stats.examples += 1
        tag = uuid.uuid4().hex[:10]
        self.tenant = f"rate-{tag}"
        self.queue = f"q-{tag}"
        self.worker = f"w-{tag}"
        self.configs: dict[str, tuple[int, int]] = {}
        self.jobs: dict[str, MJob] = {}
        self.tasks: dict[str, str] = {}  # live task id -> job id
        self.starts: dict[str, list[int]] = {k: [] for k in KEYS}
        self.restarts = 0

    @property
    def wire(self) -> Wire:
        return self.env.wire

    def _step(self) -> None:
        self.env.stats.steps += 1

    def _bucket(self, key: str) -> RateLimitState:
        req = GetRateLimitRequest(tenant=self.tenant, key=key)
        return self.wire.call("/silo.admin.v1.Admin/GetRateLimit", req, RateLimitState)

    @initialize(c1=st.sampled_from(CONFIGS), c2=st.sampled_from(CONFIGS))
    def choose_limits(self, c1: tuple[int, int], c2: tuple[int, int]) -> None:
        self.configs = {"r1": c1, "r2": c2}

    # ------------------------------------------------------------------------------- rules

    @rule(
        keys=st.lists(st.sampled_from(KEYS), max_size=2, unique=True),
        slot=st.booleans(),
        expire_in=st.sampled_from([0, 0, 150, 400]),
        retries=st.sampled_from([0, 0, 1]),
        count=st.integers(1, 3),
    )
    def enqueue(
        self, keys: list[str], slot: bool, expire_in: int, retries: int, count: int
    ) -> None:
        self._step()
        for _ in range(count):
            job_id = f"j{len(self.jobs):03d}"
            limits = [
                RateLimit(key=k, limit=self.configs[k][0], period_ms=self.configs[k][1])
                for k in keys
            ]
            expire_at = now_ms() + expire_in if expire_in else 0
            req = EnqueueRequest(
                id=job_id,
                tenant=self.tenant,
                queue=self.queue,
                rate_limits=limits,
                concurrency_limits=[ConcurrencyLimit(key="c", max_concurrency=2)] if slot else [],
                retry_policy=RetryPolicy(max_retries=retries, schedule_ms=[0]) if retries else None,
                expire_at_ms=expire_at,
            )
            assert self.wire.enqueue(req) == job_id
            self.jobs[job_id] = MJob(job_id, tuple(keys), expire_at, 1 + retries)
            self.env.stats.jobs += 1

    @rule(max_tasks=st.sampled_from([1, 3, 1000]))
    def lease(self, max_tasks: int) -> None:
        self._step()
        req = LeaseTasksRequest(worker_id=self.worker, max_tasks=max_tasks, queues=[self.queue])
        self._took(self.wire.lease(req))

    def _took(self, tasks: list[Task]) -> None:
        for t in tasks:
            job = self.jobs[t.job_id]
            started = t.lease_expires_at_ms - LEASE_MS
            assert job.state != "done", f"{job.id} started after it ended: {job}"
            assert not job.cancelled, f"{job.id} started after it was cancelled"
            if job.attempts == 0 and job.expire_at_ms:
                assert started <= job.expire_at_ms, (
                    f"{job.id} first started at {started}, after its expiry {job.expire_at_ms}"
                )
            if job.state == "running":  # its previous attempt's lease expired
                assert job.task is not None
                self.tasks.pop(job.task, None)
                self.env.stats.lease_expiries += 1
            job.state, job.task, job.attempts = "running", t.task_id, t.attempt
            self.tasks[t.task_id] = job.id
            for k in job.keys:
                self.starts[k].append(started)
            self.env.stats.starts += 1

    @rule(i=st.integers(0, 1000), outcome=st.sampled_from(["result", "failure"]))
    def report(self, i: int, outcome: str) -> None:
        self._step()
        if not self.tasks:
            return  # no precondition: live tasks depend on timing
        task_id = sorted(self.tasks)[i % len(self.tasks)]
        req = ReportTaskOutcomeRequest(task_id=task_id, worker_id=self.worker)
        if outcome == "result":
            req.result = b""
        else:
            req.failure = TaskFailure(code="boom")
        code = self.wire.report(req)
        job = self.jobs[self.tasks.pop(task_id)]
        if code != OK:
            assert code == grpc.StatusCode.FAILED_PRECONDITION, code  # its lease expired
            return
        job.task = None
        if job.cancelled or outcome == "result" or job.attempts >= job.max_attempts:
            job.state = "done"
        else:
            job.state = "waiting"

    @precondition(lambda self: self.jobs)
    @rule(i=st.integers(0, 1000))
    def cancel(self, i: int) -> None:
        self._step()
        job = self.jobs[sorted(self.jobs)[i % len(self.jobs)]]
        code = self.wire.cancel(CancelRequest(id=job.id, tenant=self.tenant))
        if code == OK:
            job.cancelled = True
            if job.state == "waiting":
                job.state = "done"
        else:
            assert code == grpc.StatusCode.FAILED_PRECONDITION, code
            self._sync(job)
            assert job.state == "done" or job.cancelled, f"cancel of an open job refused: {job}"

    @rule(ms=st.sampled_from([50, 150, 400]))
    def wait(self, ms: int) -> None:
        """Time passes (tokens refill, deadlines and leases run out): the schedule is random."""
        self._step()
        time.sleep(ms / 1000)

    @precondition(lambda self: self.restarts < MAX_RESTARTS)
    @rule()
    def restart(self) -> None:
        """kill -9 and restart on the same store: buckets and taken tokens survive."""
        self._step()
        self.restarts += 1
        self.env.restart()

    # --------------------------------------------------------------------------- checking

    def _sync(self, job: MJob) -> None:
        """Learns what the broker did on its own: an expiry, a lease that ran out."""
        if job.state == "done":
            return
        server = self.wire.get_job(self.tenant, job.id)
        failure = server.last_failure
        if server.status == JobStatus.FAILED and failure is not None and failure.code == "expired":
            assert job.attempts == 0 and server.attempt_count == 0, f"{job.id} expired after it ran"
            job.state = "done"
            self.env.stats.expired_jobs += 1
        elif server.status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED):
            if job.task is not None:
                self.tasks.pop(job.task, None)
            job.state, job.task = "done", None
        elif job.state == "running" and job.task is not None:
            attempt = next(a for a in server.attempts if a.task_id == job.task)
            if attempt.failure is not None and attempt.failure.code == "lease_expired":
                self.tasks.pop(job.task, None)
                job.state, job.task = "waiting", None
                self.env.stats.lease_expiries += 1

    @invariant()
    def buckets_hold(self) -> None:
        if not self.configs:
            return
        self.env.stats.checks += 1
        for job in list(self.jobs.values()):
            self._sync(job)
        for key in KEYS:
            limit, period = self.configs[key]
            state = self._bucket(key)
            if state.limit == 0:
                assert not self.starts[key], f"{key} has starts but no bucket"
                continue
            assert (state.limit, state.period_ms) == (limit, period), state
            assert -1e-9 <= state.tokens <= limit + 1e-9, f"{key}: {state.tokens} tokens of {limit}"
            assert state.reserved <= int(state.tokens + 1e-9), (
                f"{key}: reserved over tokens: {state}"
            )
            if state.tokens - state.reserved >= 1:
                assert not state.waiters, f"{key} has a free token and waiters: {state}"
            self.env.stats.max_waiters = max(self.env.stats.max_waiters, len(state.waiters))
            for waiter in state.waiters:
                job = self.jobs[waiter]
                assert key in job.keys and not job.cancelled, f"{key} waiter {job}"
                server = self.wire.get_job(self.tenant, waiter)
                if server.waiting_on_rate_limit != key:
                    # A token came between the two reads: it must have left the queue.
                    assert waiter not in self._bucket(key).waiters, (waiter, server.status)
            starts = sorted(self.starts[key])
            for i, first in enumerate(starts):
                for j in range(i, len(starts)):
                    d = starts[j] - first
                    assert j - i + 1 <= limit + limit * d / period, (
                        f"{key} ({limit} per {period} ms): {j - i + 1} starts within {d} ms: "
                        f"{starts[i : j + 1]}"
                    )

    def teardown(self) -> None:
        """Workers that keep working finish every job; every key ends idle."""
        deadline = time.monotonic() + DRAIN_WAIT_S
        while any(j.state != "done" for j in self.jobs.values()):
            assert time.monotonic() < deadline, [j for j in self.jobs.values() if j.state != "done"]
            for task_id in list(self.tasks):
                req = ReportTaskOutcomeRequest(task_id=task_id, worker_id=self.worker, result=b"")
                code = self.wire.report(req)
                job = self.jobs[self.tasks.pop(task_id)]
                if code == OK:
                    job.state, job.task = "done", None
            req = LeaseTasksRequest(
                worker_id=self.worker, max_tasks=1000, queues=[self.queue], wait_ms=200
            )
            self._took(self.wire.lease(req))
            for job in self.jobs.values():
                self._sync(job)
        if self.configs:
            self.buckets_hold()
            for key in KEYS:
                state = self._bucket(key)
                assert (state.reserved, list(state.waiters)) == (0, []), f"{key} not idle: {state}"
        gauges = self.wire.gauges()
        assert gauges["rate_limit_keys"] == 0, f"{gauges['rate_limit_keys']} rate keys kept"
        assert gauges["key_waiters"] == 0


@pytest.mark.timeout(900)
def test_rate_limits_hold_under_random_interleavings(
    prop_server: ServerProcess, record_property, capsys: pytest.CaptureFixture[str]
) -> None:
    env = Env(prop_server, Wire(prop_server.address))
    started = time.monotonic()
    try:
        run_state_machine_as_test(
            lambda: RateMachine(env),
            settings=settings(
                max_examples=MAX_EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                # As in the concurrency property: real time, so no shrinking and no database.
                phases=[Phase.explicit, Phase.generate],
                database=None,
            ),
        )
    finally:
        env.wire.close()
        elapsed = time.monotonic() - started
        stats = env.stats
        for name, value in vars(stats).items():
            record_property(name, value)
        with capsys.disabled():
            print(
                f"\nrate-limit property: {stats.examples} examples, {stats.steps} steps, "
                f"{stats.jobs} jobs, {stats.starts} starts, {stats.expired_jobs} expired jobs, "
                f"{stats.lease_expiries} lease expiries, {stats.restarts} restarts, "
                f"{stats.checks} checks, up to {stats.max_waiters} waiters on a key, "
                f"in {elapsed:.0f} s"
            )
    assert stats.examples >= MAX_EXAMPLES // 2
    if stats.steps >= 400:
        assert stats.restarts > 0 and stats.expired_jobs > 0 and stats.max_waiters > 0
