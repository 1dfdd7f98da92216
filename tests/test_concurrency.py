"""Concurrency limits (docs/api.md#concurrency-limits, docs/architecture.md#concurrency-limits,
issue 3).

Slot accounting is observed two ways: the tasks the test's workers hold, and the operator view
`silo.admin.v1.Admin/GetConcurrencyKey` (limit, holders = task ids of live attempts, reserved =
due jobs admitted to the ready index, waiters = job ids best first). A slot freed by a call is
handed out in the same actor step that answers the call, so a `LeaseTasks` with `wait_ms=0` right
after it shows exactly what became leasable; transitions that no call causes (lease expiry) are
awaited with a LeaseTasks long-poll.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable

import pytest
from grpclib.client import Channel
from grpclib.const import Status
from helpers import (
    SHORT_LEASE_MS,
    enqueue,
    expect_status,
    get_job,
    heartbeat,
    lease,
    lease_one,
    now_ms,
    report_cancelled,
    report_failure,
    report_result,
    unique,
    wait_parked,
)
from silo._proto.silo.admin.v1 import AdminStub, ConcurrencyKeyState, GetConcurrencyKeyRequest
from silo._proto.silo.v1 import (
    AttemptStatus,
    CancelRequest,
    ConcurrencyLimit,
    EnqueueBatchRequest,
    EnqueueRequest,
    JobStatus,
    ReportTaskOutcomeRequest,
    ReportTaskOutcomesRequest,
    RetryPolicy,
    SiloStub,
    Task,
    TaskFailure,
)
from silo.testing import ServerProcess

RETRY_NOW = RetryPolicy(max_retries=3, schedule_ms=[0])

# ------------------------------------------------------------------------------------ helpers


def limit(key: str, max_concurrency: int) -> ConcurrencyLimit:
    return ConcurrencyLimit(key=key, max_concurrency=max_concurrency)


async def key_state(admin: AdminStub, tenant: str, key: str) -> ConcurrencyKeyState:
    return await admin.get_concurrency_key(GetConcurrencyKeyRequest(tenant=tenant, key=key))


async def assert_key(
    admin: AdminStub,
    tenant: str,
    key: str,
    *,
    holders: Iterable[Task] = (),
    reserved: int = 0,
    waiters: Iterable[str] = (),
    limit: int | None = None,
) -> ConcurrencyKeyState:
    """The key's accounting is exactly this (holders as a set, waiters in order)."""
    state = await key_state(admin, tenant, key)
    want_holders = sorted(t.task_id for t in holders)
    got = (sorted(state.holders), state.reserved, list(state.waiters))
    want = (want_holders, reserved, list(waiters))
    assert got == want, f"key {key!r}: (holders, reserved, waiters) = {got}, expected {want}"
    if limit is not None:
        assert state.limit == limit, f"key {key!r}: limit {state.limit}, expected {limit}"
    return state


async def assert_idle(admin: AdminStub, tenant: str, key: str) -> None:
    """No holder, reservation or waiter is left (nothing leaked)."""
    await assert_key(admin, tenant, key)


async def cancel(stub: SiloStub, job_id: str, tenant: str) -> None:
    await stub.cancel(CancelRequest(id=job_id, tenant=tenant))


def job_ids(tasks: Iterable[Task]) -> list[str]:
    return [t.job_id for t in tasks]


async def run_one_at_a_time(stub: SiloStub, queue: str, live: list[Task]) -> list[str]:
    """Reports the live tasks oldest first, leasing after each report what it made leasable,
    until nothing runs; returns the job ids leased on the way, in order."""
    order: list[str] = []
    live = list(live)
    while live:
        await report_result(stub, live.pop(0))
        new = await lease(stub, [queue], max_tasks=10)
        order += job_ids(new)
        live += new
    return order


@pytest.fixture
async def admin_of() -> AsyncIterator[Callable[[ServerProcess], AdminStub]]:
    """admin_of(server) -> an Admin stub on a channel of this test's loop, closed at teardown."""
    channels: list[Channel] = []

    def make(server: ServerProcess) -> AdminStub:
        channel = Channel(server.host, server.port)
        channels.append(channel)
        return AdminStub(channel)

    yield make
    for channel in channels:
        channel.close()


@pytest.fixture
def admin(
    admin_of: Callable[[ServerProcess], AdminStub], shared_server: ServerProcess
) -> AdminStub:
    return admin_of(shared_server)


@pytest.fixture
def short_admin(
    admin_of: Callable[[ServerProcess], AdminStub], short_lease_server: ServerProcess
) -> AdminStub:
    return admin_of(short_lease_server)


@contextlib.asynccontextmanager
async def keep_alive(stub: SiloStub, tasks: set[str]) -> AsyncIterator[set[str]]:
    """Heartbeats every task id in the (mutable) set until the block ends, like a worker that
    is still busy with them."""

    async def beat() -> None:
        while True:
            for task_id in list(tasks):
                await heartbeat(stub, task_id)
            # The heartbeat cadence of a worker: well inside the short lease.
            await asyncio.sleep(SHORT_LEASE_MS / 4000)

    beater = asyncio.create_task(beat())
    try:
        yield tasks
    finally:
        beater.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beater


# ------------------------------------------------------------------- the limit holds at all


async def test_max_two_of_twelve_never_more_than_two_running(
    shared_stub: SiloStub, admin: AdminStub, ns
) -> None:
    ids = [
        await enqueue(
            shared_stub, tenant=ns.tenant, queue=ns.queue, concurrency_limits=[limit("k", 2)]
        )
        for _ in range(12)
    ]
    # A task counts from the moment its lease is answered until its report is *sent*: a
    # sub-interval of the time the broker holds its slot, so more than 2 counted at once is a
    # real violation, never a race of the test.
    held: set[str] = set()
    done: list[str] = []
    max_seen = 0

    async def worker(name: str) -> None:
        nonlocal max_seen
        while len(done) < len(ids):
            tasks = await lease(
                shared_stub, [ns.queue], worker=name, max_tasks=len(ids), wait_ms=1000
            )
            held.update(t.task_id for t in tasks)
            assert len(held) <= 2, f"{len(held)} tasks of a max-2 key running at once"
            max_seen = max(max_seen, len(held))
            state = await key_state(admin, ns.tenant, "k")
            assert len(state.holders) + state.reserved <= 2, state
            # This worker's tasks are held until it reports them, so they are holders now.
            assert {t.task_id for t in tasks} <= set(state.holders), state
            for t in tasks:
                held.discard(t.task_id)
                await report_result(shared_stub, t, worker=name)
                done.append(t.job_id)

    await asyncio.wait_for(asyncio.gather(*(worker(f"w{i}") for i in range(4))), 60)
    assert max_seen == 2, "the workers never ran two jobs at once: the limit is not 2"
    assert sorted(done) == sorted(ids)
    for job_id in ids:
        job = await get_job(shared_stub, job_id, ns.tenant)
        assert (job.status, job.attempt_count) == (JobStatus.SUCCEEDED, 1)
    await assert_idle(admin, ns.tenant, "k")


async def test_job_status_never_shows_more_running_than_the_limit(
    shared_stub: SiloStub, admin: AdminStub, ns
) -> None:
    ids = [
        await enqueue(
            shared_stub, tenant=ns.tenant, queue=ns.queue, concurrency_limits=[limit("k", 2)]
        )
        for _ in range(12)
    ]
    tasks = await lease(shared_stub, [ns.queue], max_tasks=12)
    assert len(tasks) == 2
    statuses = [(await get_job(shared_stub, j, ns.tenant)).status for j in ids]
    assert statuses.count(JobStatus.RUNNING) == 2
    assert statuses.count(JobStatus.PENDING) == 10
    await assert_key(admin, ns.tenant, "k", holders=tasks, waiters=ids[2:], limit=2)


# ----------------------------------------------------------------- every release path: one slot

# Each path ends the attempt of job "a" while "b" also holds a slot of a max-2 key and three
# jobs wait. Exactly one waiter (the first) must become leasable, and nothing else.
RELEASE_PATHS = [
    "success",
    "failure_with_retry",
    "failure_non_retryable",
    "failure_no_retries_left",
    "cancel_then_ack",
    "cancel_then_result",
    "cancel_then_failure",
]


@pytest.mark.parametrize("path", RELEASE_PATHS)
async def test_each_release_path_frees_exactly_one_slot(
    shared_stub: SiloStub, admin: AdminStub, ns, path: str
) -> None:
    stub, t, q = shared_stub, ns.tenant, ns.queue
    lim = [limit("k", 2)]
    retry = RETRY_NOW if path != "failure_no_retries_left" else None
    await enqueue(stub, id="a", tenant=t, queue=q, concurrency_limits=lim, retry_policy=retry)
    await enqueue(stub, id="b", tenant=t, queue=q, concurrency_limits=lim)
    running = {task.job_id: task for task in await lease(stub, [q], max_tasks=10)}
    assert sorted(running) == ["a", "b"]
    waiters = ["w1", "w2", "w3"]
    for w in waiters:
        await enqueue(stub, id=w, tenant=t, queue=q, concurrency_limits=lim)
    await assert_key(admin, t, "k", holders=running.values(), waiters=waiters, limit=2)
    a = running["a"]

    if path.startswith("cancel"):
        # Cancelling a RUNNING job keeps its slot until the worker reports (docs/api.md#cancel).
        await cancel(stub, "a", t)
        assert await lease(stub, [q], max_tasks=10) == []
        await assert_key(admin, t, "k", holders=running.values(), waiters=waiters)
        assert (await heartbeat(stub, a)).cancelled is True

    if path == "success" or path == "cancel_then_result":
        await report_result(stub, a)
    elif path == "cancel_then_ack":
        await report_cancelled(stub, a)
    elif path in ("failure_with_retry", "failure_no_retries_left", "cancel_then_failure"):
        await report_failure(stub, a)
    elif path == "failure_non_retryable":
        await report_failure(stub, a, non_retryable=True)

    freed = await lease(stub, [q], max_tasks=10)
    assert job_ids(freed) == ["w1"], f"{path}: ending one attempt must admit exactly one waiter"
    # The retry of a failed attempt waits for a slot again, behind the jobs already waiting.
    expect_waiters = ["w2", "w3", "a"] if path == "failure_with_retry" else ["w2", "w3"]
    await assert_key(admin, t, "k", holders=[running["b"], *freed], waiters=expect_waiters)

    job = await get_job(stub, "a", t)
    want_status = {
        "success": JobStatus.SUCCEEDED,
        "failure_with_retry": JobStatus.PENDING,
        "failure_non_retryable": JobStatus.FAILED,
        "failure_no_retries_left": JobStatus.FAILED,
    }.get(path, JobStatus.CANCELLED)
    assert job.status == want_status
    assert job.waiting_on_keys == (["k"] if path == "failure_with_retry" else [])

    # A second report of the ended attempt frees nothing more.
    await expect_status(report_result(stub, a), Status.ALREADY_EXISTS)
    assert await lease(stub, [q], max_tasks=10) == []

    # The rest run one slot at a time in waiter order; nothing is left held.
    assert await run_one_at_a_time(stub, q, [running["b"], *freed]) == expect_waiters
    await assert_idle(admin, t, "k")


@pytest.mark.parametrize(
    "cancelled", [False, True], ids=["expiry_with_retry", "cancel_then_expiry"]
)
async def test_lease_expiry_frees_exactly_one_slot(
    short_stub: SiloStub, short_admin: AdminStub, ns, cancelled: bool
) -> None:
    stub, admin, t, q = short_stub, short_admin, ns.tenant, ns.queue
    lim = [limit("k", 2)]
    await enqueue(stub, id="a", tenant=t, queue=q, concurrency_limits=lim, retry_policy=RETRY_NOW)
    await enqueue(stub, id="b", tenant=t, queue=q, concurrency_limits=lim)
    running = {task.job_id: task for task in await lease(stub, [q], max_tasks=10)}
    assert sorted(running) == ["a", "b"]
    async with keep_alive(stub, {running["b"].task_id}) as alive:
        for w in ["w1", "w2", "w3"]:
            await enqueue(stub, id=w, tenant=t, queue=q, concurrency_limits=lim)
        if cancelled:
            await cancel(stub, "a", t)
        # "a" is never heartbeated: its lease runs out and its slot goes to w1 at that moment.
        freed = await lease(stub, [q], max_tasks=10, wait_ms=10_000)
        assert job_ids(freed) == ["w1"]
        alive.update(task.task_id for task in freed)
        expect_waiters = ["w2", "w3"] if cancelled else ["w2", "w3", "a"]
        await assert_key(admin, t, "k", holders=[running["b"], *freed], waiters=expect_waiters)

        job = await get_job(stub, "a", t)
        attempt = job.attempts[0]
        assert attempt.status == AttemptStatus.FAILED
        assert attempt.failure.code == "lease_expired"
        assert attempt.finished_at_ms >= running["a"].lease_expires_at_ms, "expired early"
        assert job.status == (JobStatus.CANCELLED if cancelled else JobStatus.PENDING)
        # The expired worker's late report records nothing and frees nothing.
        await expect_status(report_result(stub, running["a"]), Status.FAILED_PRECONDITION)
        assert await lease(stub, [q], max_tasks=10) == []
        await assert_key(admin, t, "k", holders=[running["b"], *freed], waiters=expect_waiters)
        alive.clear()
    for task in [running["b"], *freed]:
        with contextlib.suppress(Exception):
            await report_result(stub, task)


async def test_cancel_of_a_blocked_job_frees_nothing_and_leaves_the_queue(
    shared_stub: SiloStub, admin: AdminStub, ns
) -> None:
    stub, t, q = shared_stub, ns.tenant, ns.queue
    lim = [limit("k", 1)]
    await enqueue(stub, id="a", tenant=t, queue=q, concurrency_limits=lim)
    a = await lease_one(stub, q, wait_ms=0)
    for w in ["w1", "w2", "w3"]:
        await enqueue(stub, id=w, tenant=t, queue=q, concurrency_limits=lim)
    assert (await get_job(stub, "w2", t)).waiting_on_keys == ["k"]

    await cancel(stub, "w2", t)
    job = await get_job(stub, "w2", t)
    assert (job.status, job.waiting_on_keys) == (JobStatus.CANCELLED, [])
    assert await lease(stub, [q], max_tasks=10) == []
    await assert_key(admin, t, "k", holders=[a], waiters=["w1", "w3"])

    await report_result(stub, a)
    order = []
    while tasks := await lease(stub, [q], max_tasks=10):
        assert len(tasks) == 1
        order += job_ids(tasks)
        await report_result(stub, tasks[0])
    assert order == ["w1", "w3"]
    assert (await get_job(stub, "w2", t)).attempt_count == 0
    await assert_idle(admin, t, "k")


async def test_cancel_of_an_admitted_job_passes_its_reservation_on(
    shared_stub: SiloStub, admin: AdminStub, ns
) -> None:
    stub, t, q = shared_stub, ns.tenant, ns.queue
    lim = [limit("k", 2)]
    await enqueue(stub, id="a", tenant=t, queue=q, concurrency_limits=lim)
    a = await lease_one(stub, q, wait_ms=0)
    # "r" is admitted (a slot reserved, no worker yet); "w" waits.
    await enqueue(stub, id="r", tenant=t, queue=q, concurrency_limits=lim)
    await enqueue(stub, id="w", tenant=t, queue=q, concurrency_limits=lim)
    await assert_key(admin, t, "k", holders=[a], reserved=1, waiters=["w"])
    assert (await get_job(stub, "r", t)).waiting_on_keys == []

    await cancel(stub, "r", t)
    await assert_key(admin, t, "k", holders=[a], reserved=1, waiters=[])
    tasks = await lease(stub, [q], max_tasks=10)
    assert job_ids(tasks) == ["w"]
    await assert_key(admin, t, "k", holders=[a, *tasks])
    for task in [a, *tasks]:
        await report_result(stub, task)
    await assert_idle(admin, t, "k")


# ------------------------------------------------------------------------ several keys per job


async def test_a_job_takes_all_its_slots_at_once(
    shared_stub: SiloStub, admin: AdminStub, ns
) -> None:
    stub, t, q = shared_stub, ns.tenant, ns.queue
    both = [limit("a", 1), limit("b", 1)]
    await enqueue(stub, id="j", tenant=t, queue=q, concurrency_limits=both)
    j = await lease_one(stub, q, wait_ms=0)
    await assert_key(admin, t, "a", holders=[j], limit=1)
    await assert_key(admin, t, "b", holders=[j], limit=1)
    # Either key alone now blocks.
    await enqueue(stub, id="only-a", tenant=t, queue=q, concurrency_limits=[limit("a", 1)])
    await enqueue(stub, id="only-b", tenant=t, queue=q, concurrency_limits=[limit("b", 1)])
    assert await lease(stub, [q], max_tasks=10) == []
    await report_result(stub, j)
    # One release frees both slots.
    assert sorted(job_ids(await lease(stub, [q], max_tasks=10))) == ["only-a", "only-b"]


async def test_a_job_never_holds_one_slot_while_waiting_on_another(
    shared_stub: SiloStub, admin: AdminStub, ns
) -> None:
    stub, t, q = shared_stub, ns.tenant, ns.queue
    await enqueue(stub, id="x", tenant=t, queue=q, concurrency_limits=[limit("b", 1)])
    x = await lease_one(stub, q, wait_ms=0)
    # "j" needs a (free) and b (held by x): it waits on b and holds nothing of a.
    await enqueue(
        stub, id="j", tenant=t, queue=q, concurrency_limits=[limit("a", 1), limit("b", 1)]
    )
    job = await get_job(stub, "j", t)
    assert (job.status, job.waiting_on_keys) == (JobStatus.PENDING, ["b"])
    await assert_key(admin, t, "b", holders=[x], waiters=["j"])
    state = await key_state(admin, t, "a")
    assert (list(state.holders), state.reserved, list(state.waiters)) == ([], 0, [])
    # So a job that needs only a runs at once.
    await enqueue(stub, id="y", tenant=t, queue=q, concurrency_limits=[limit("a", 1)])
    y = await lease_one(stub, q, wait_ms=0)
    assert y.job_id == "y"

    # b frees while a is full: j moves to a's queue, still holding nothing.
    await report_result(stub, x)
    assert await lease(stub, [q], max_tasks=10) == []
    assert (await get_job(stub, "j", t)).waiting_on_keys == ["a"]
    await assert_key(admin, t, "a", holders=[y], waiters=["j"])
    await assert_idle(admin, t, "b")

    # a frees: j takes both slots at once.
    await report_result(stub, y)
    j = await lease_one(stub, q, wait_ms=0)
    assert j.job_id == "j"
    assert (await get_job(stub, "j", t)).waiting_on_keys == []
    await assert_key(admin, t, "a", holders=[j])
    await assert_key(admin, t, "b", holders=[j])
    await report_result(stub, j)
    await assert_idle(admin, t, "a")
    await assert_idle(admin, t, "b")


@pytest.mark.parametrize("how", ["report", "cancel_admitted", "raise_limit"])
async def test_a_multi_key_waiter_is_admitted_after_its_other_key_went_idle(
    shared_stub: SiloStub, admin: AdminStub, ns, how: str
) -> None:
    """A slot of "a" frees (three ways) while "j" waits on "a" and "j"'s other key "b" has
    meanwhile gone idle (no holder, reservation or waiter): j must become leasable at once."""
    stub, t, q = shared_stub, ns.tenant, ns.queue
    a, b = limit("a", 1), limit("b", 1)
    if how == "cancel_admitted":
        # x takes both slots as a reservation (admitted, no worker yet).
        await enqueue(stub, id="x", tenant=t, queue=q, concurrency_limits=[b, a])
        await enqueue(stub, id="j", tenant=t, queue=q, concurrency_limits=[a, b])
        await assert_key(admin, t, "a", reserved=1, waiters=["j"])
        # Its cancel frees b (which goes idle) and then a, whose slot goes to j.
        await cancel(stub, "x", t)
    else:
        await enqueue(stub, id="y", tenant=t, queue=q, concurrency_limits=[a])
        await enqueue(stub, id="x", tenant=t, queue=q, concurrency_limits=[b])
        running = {task.job_id: task for task in await lease(stub, [q], max_tasks=10)}
        assert sorted(running) == ["x", "y"]
        await enqueue(stub, id="j", tenant=t, queue=q, concurrency_limits=[a, b])
        await assert_key(admin, t, "a", holders=[running["y"]], waiters=["j"])
        await report_result(stub, running["x"])
        await assert_idle(admin, t, "b")
        assert await lease(stub, [q], max_tasks=10) == []
        if how == "report":
            await report_result(stub, running["y"])
        else:
            await enqueue(stub, id="z", tenant=t, queue=q, concurrency_limits=[limit("a", 2)])
    job = await get_job(stub, "j", t)
    assert job.waiting_on_keys == [], f"j still waits on {job.waiting_on_keys} ({how})"
    tasks = await lease(stub, [q], max_tasks=10)
    assert job_ids(tasks) == ["j"], f"{how}: j not leasable; b is {await key_state(admin, t, 'b')}"
    await assert_key(admin, t, "b", holders=tasks, limit=1)


# ----------------------------------------------------------------------------- tenant scoping


async def test_keys_are_scoped_to_the_tenant(shared_stub: SiloStub, admin: AdminStub, ns) -> None:
    stub, q = shared_stub, ns.queue
    t1, t2 = ns.tenant, unique("tenant")
    for t in (t1, t2):
        for i in range(2):
            await enqueue(stub, id=f"j{i}", tenant=t, queue=q, concurrency_limits=[limit("k", 1)])
    # The same key name in two tenants is two keys: one job of each runs.
    tasks = await lease(stub, [q], max_tasks=10)
    assert sorted((task.tenant, task.job_id) for task in tasks) == sorted([(t1, "j0"), (t2, "j0")])
    by_tenant = {task.tenant: task for task in tasks}
    await assert_key(admin, t1, "k", holders=[by_tenant[t1]], waiters=["j1"], limit=1)
    await assert_key(admin, t2, "k", holders=[by_tenant[t2]], waiters=["j1"], limit=1)
    # A limit set in one tenant leaves the other's alone.
    await enqueue(stub, id="raise", tenant=t2, queue=q, concurrency_limits=[limit("k", 5)])
    assert (await key_state(admin, t1, "k")).limit == 1
    assert (await key_state(admin, t2, "k")).limit == 5
    more = await lease(stub, [q], max_tasks=10)
    assert sorted((task.tenant, task.job_id) for task in more) == [(t2, "j1"), (t2, "raise")]
    # Ending t2's attempts frees nothing in t1.
    for task in [by_tenant[t2], *more]:
        await report_result(stub, task)
    assert await lease(stub, [q], max_tasks=10) == []
    await assert_key(admin, t1, "k", holders=[by_tenant[t1]], waiters=["j1"])
    await report_result(stub, by_tenant[t1])
    assert job_ids(await lease(stub, [q], max_tasks=10)) == ["j1"]


# ------------------------------------------------------------------------------ changing limits


async def test_raising_the_limit_admits_waiters_at_once(
    shared_stub: SiloStub, admin: AdminStub, ns
) -> None:
    stub, t, q = shared_stub, ns.tenant, ns.queue
    await enqueue(stub, id="a", tenant=t, queue=q, concurrency_limits=[limit("k", 1)])
    a = await lease_one(stub, q, wait_ms=0)
    for w in ["w1", "w2", "w3"]:
        await enqueue(stub, id=w, tenant=t, queue=q, concurrency_limits=[limit("k", 1)])
    assert await lease(stub, [q], max_tasks=10) == []
    # A parked long-poll is woken by the raise itself.
    parked = asyncio.create_task(lease(stub, [q], max_tasks=10, wait_ms=10_000))
    await wait_parked(admin)
    await enqueue(stub, id="x", tenant=t, queue=q, concurrency_limits=[limit("k", 3)])
    woken = await asyncio.wait_for(parked, 10)
    rest = await lease(stub, [q], max_tasks=10)
    # Two more slots: the two best waiters, in order; x (newest) waits behind w3.
    assert job_ids(woken) + job_ids(rest) == ["w1", "w2"]
    await assert_key(admin, t, "k", holders=[a, *woken, *rest], waiters=["w3", "x"], limit=3)


async def test_lowering_the_limit_preempts_nothing_and_admits_no_one_until_under_it(
    shared_stub: SiloStub, admin: AdminStub, ns
) -> None:
    stub, t, q = shared_stub, ns.tenant, ns.queue
    for i in range(3):
        await enqueue(stub, id=f"r{i}", tenant=t, queue=q, concurrency_limits=[limit("k", 3)])
    running = await lease(stub, [q], max_tasks=10)
    assert len(running) == 3
    await enqueue(stub, id="x", tenant=t, queue=q, concurrency_limits=[limit("k", 1)])
    await enqueue(stub, id="y", tenant=t, queue=q, concurrency_limits=[limit("k", 1)])
    await assert_key(admin, t, "k", holders=running, waiters=["x", "y"], limit=1)
    # The running jobs go on undisturbed.
    for task in running:
        assert (await heartbeat(stub, task)).cancelled is False
    # 3 -> 2 -> 1 running: still not under the limit of 1.
    for n in range(2):
        await report_result(stub, running[n])
        assert await lease(stub, [q], max_tasks=10) == []
        await assert_key(admin, t, "k", holders=running[n + 1 :], waiters=["x", "y"])
    await report_result(stub, running[2])
    x = await lease(stub, [q], max_tasks=10)
    assert job_ids(x) == ["x"]
    await assert_key(admin, t, "k", holders=x, waiters=["y"], limit=1)
    for task in running:
        assert (await get_job(stub, task.job_id, t)).status == JobStatus.SUCCEEDED


# ---------------------------------------------------------------------------- who gets the slot


async def test_freed_slot_goes_to_the_highest_priority_waiter(
    shared_stub: SiloStub, admin: AdminStub, ns
) -> None:
    stub, t, q = shared_stub, ns.tenant, ns.queue
    lim = [limit("k", 1)]
    await enqueue(stub, id="a", tenant=t, queue=q, concurrency_limits=lim, priority=100)
    current = await lease_one(stub, q, wait_ms=0)
    # Enqueue order differs from priority order; equal priorities keep their order.
    for job_id, prio in [("p10", 10), ("p90", 90), ("p50", 50), ("p90-later", 90), ("p1", 1)]:
        await enqueue(stub, id=job_id, tenant=t, queue=q, concurrency_limits=lim, priority=prio)
    expected = ["p90", "p90-later", "p50", "p10", "p1"]
    await assert_key(admin, t, "k", holders=[current], waiters=expected)
    order = []
    for _ in expected:
        await report_result(stub, current)
        tasks = await lease(stub, [q], max_tasks=10)
        assert len(tasks) == 1
        current = tasks[0]
        order.append(current.job_id)
    assert order == expected


async def test_a_blocked_key_never_delays_other_jobs(
    shared_stub: SiloStub, admin: AdminStub, ns
) -> None:
    stub, t, q = shared_stub, ns.tenant, ns.queue
    await enqueue(stub, id="a", tenant=t, queue=q, concurrency_limits=[limit("hot", 1)])
    a = await lease_one(stub, q, wait_ms=0)
    # A long line of top-priority jobs blocked on "hot" sits ahead in priority...
    batch = [
        EnqueueRequest(
            id=f"hot{i}", tenant=t, queue=q, priority=100, concurrency_limits=[limit("hot", 1)]
        )
        for i in range(200)
    ]
    await stub.enqueue_batch(EnqueueBatchRequest(jobs=batch))
    # ...yet low-priority jobs of another key and of no key are leased at once.
    await enqueue(
        stub, id="cold", tenant=t, queue=q, priority=1, concurrency_limits=[limit("c", 1)]
    )
    await enqueue(stub, id="free", tenant=t, queue=q, priority=1)
    assert sorted(job_ids(await lease(stub, [q], max_tasks=10))) == ["cold", "free"]
    # A long-poll wakes for a new free job while the key stays blocked.
    parked = asyncio.create_task(lease(stub, [q], max_tasks=10, wait_ms=10_000))
    await wait_parked(admin)
    await enqueue(stub, id="late", tenant=t, queue=q, priority=1)
    assert job_ids(await asyncio.wait_for(parked, 10)) == ["late"]
    state = await assert_key(admin, t, "hot", holders=[a], waiters=[f"hot{i}" for i in range(200)])
    assert state.limit == 1


async def test_batched_reports_free_one_slot_per_ended_attempt(
    shared_stub: SiloStub, admin: AdminStub, ns
) -> None:
    stub, t, q = shared_stub, ns.tenant, ns.queue
    lim = [limit("k", 2)]
    for job_id in ["a", "b"]:
        await enqueue(stub, id=job_id, tenant=t, queue=q, concurrency_limits=lim)
    running = {task.job_id: task for task in await lease(stub, [q], max_tasks=10)}
    for job_id, prio in [("w10", 10), ("w90", 90), ("w50", 50)]:
        await enqueue(stub, id=job_id, tenant=t, queue=q, concurrency_limits=lim, priority=prio)
    a, b = running["a"], running["b"]
    reports = [
        ReportTaskOutcomeRequest(task_id=a.task_id, worker_id="worker-1", result=b""),
        ReportTaskOutcomeRequest(
            task_id=b.task_id, worker_id="worker-1", failure=TaskFailure(code="x")
        ),
        # The same attempt again: refused, and it frees nothing a second time.
        ReportTaskOutcomeRequest(task_id=a.task_id, worker_id="worker-1", result=b""),
    ]
    resp = await stub.report_task_outcomes(ReportTaskOutcomesRequest(reports=reports))
    assert [r.code for r in resp.results] == [0, 0, Status.ALREADY_EXISTS.value]
    # Two attempts ended in one step: the two best waiters, in order, and no more.
    tasks = await lease(stub, [q], max_tasks=10)
    assert job_ids(tasks) == ["w90", "w50"]
    await assert_key(admin, t, "k", holders=tasks, waiters=["w10"])


# ------------------------------------------------------------------------------------ restart


async def test_restart_keeps_holders_and_waiters_in_order(make_server, admin_of) -> None:
    server: ServerProcess = await make_server()
    stub = server.stub()
    t, q = "tenant-r", "q"
    # The first job sets the limit to 3, the later ones to 2 (the most recent wins).
    await enqueue(stub, id="a", tenant=t, queue=q, concurrency_limits=[limit("k", 3)])
    await enqueue(stub, id="b", tenant=t, queue=q, concurrency_limits=[limit("k", 2)])
    running = {task.job_id: task for task in await lease(stub, [q], max_tasks=10)}
    assert sorted(running) == ["a", "b"]
    for job_id, prio in [("w10", 10), ("w90", 90), ("w50", 50), ("w90-later", 90)]:
        lim = [limit("k", 2)]
        await enqueue(stub, id=job_id, tenant=t, queue=q, concurrency_limits=lim, priority=prio)
    waiters = ["w90", "w90-later", "w50", "w10"]
    admin = admin_of(server)
    await assert_key(admin, t, "k", holders=running.values(), waiters=waiters, limit=2)

    server.kill9()
    await server.arestart()
    stub, admin = server.stub(), admin_of(server)
    # RUNNING attempts still hold their slots; waiters still wait, in order; none is leasable.
    await assert_key(admin, t, "k", holders=running.values(), waiters=waiters, limit=2)
    assert await lease(stub, [q], max_tasks=10) == []
    for job_id in waiters:
        job = await get_job(stub, job_id, t)
        assert (job.status, job.waiting_on_keys) == (JobStatus.PENDING, ["k"])
    # The restored holders are live attempts: they heartbeat and report as before.
    assert (await heartbeat(stub, running["a"])).cancelled is False
    await report_result(stub, running["a"])
    w90 = await lease(stub, [q], max_tasks=10)
    assert job_ids(w90) == ["w90"]

    # A release and a grant made durable before a crash survive it.
    server.kill9()
    await server.arestart()
    stub, admin = server.stub(), admin_of(server)
    await assert_key(admin, t, "k", holders=[running["b"], *w90], waiters=waiters[1:], limit=2)
    assert await lease(stub, [q], max_tasks=10) == []
    assert await run_one_at_a_time(stub, q, [running["b"], *w90]) == waiters[1:]
    await assert_idle(admin, t, "k")


async def test_restart_keeps_the_slot_of_a_cancelled_running_job(make_server, admin_of) -> None:
    server: ServerProcess = await make_server()
    stub = server.stub()
    t, q = "tenant-c", "q"
    await enqueue(stub, id="a", tenant=t, queue=q, concurrency_limits=[limit("k", 1)])
    a = await lease_one(stub, q, wait_ms=0)
    await enqueue(stub, id="w", tenant=t, queue=q, concurrency_limits=[limit("k", 1)])
    await cancel(stub, "a", t)
    server.kill9()
    await server.arestart()
    stub, admin = server.stub(), admin_of(server)
    await assert_key(admin, t, "k", holders=[a], waiters=["w"], limit=1)
    assert (await heartbeat(stub, a)).cancelled is True
    await report_cancelled(stub, a)
    assert job_ids(await lease(stub, [q], max_tasks=10)) == ["w"]


# -------------------------------------------------------------------------- high cardinality


async def gauge(admin: AdminStub, name: str) -> int:
    return (await admin.get_stats()).gauges[name]


async def test_keys_cost_memory_only_while_in_use(make_server, admin_of) -> None:
    server: ServerProcess = await make_server()
    stub, admin = server.stub(), admin_of(server)
    t, q, n = "tenant-m", "q", 500
    assert await gauge(admin, "concurrency_keys") == 0
    jobs = [
        EnqueueRequest(id=f"j{i}", tenant=t, queue=q, concurrency_limits=[limit(f"u{i}", 1)])
        for i in range(n)
    ]
    await stub.enqueue_batch(EnqueueBatchRequest(jobs=jobs))
    tasks = await lease(stub, [q], max_tasks=1000)
    assert len(tasks) == n
    assert await gauge(admin, "concurrency_keys") == n
    reports = [
        ReportTaskOutcomeRequest(task_id=x.task_id, worker_id="worker-1", result=b"") for x in tasks
    ]
    await stub.report_task_outcomes(ReportTaskOutcomesRequest(reports=reports))
    assert await gauge(admin, "concurrency_keys") == 0
    # A job that is not due yet costs no key state either.
    later = now_ms() + 3_600_000
    await enqueue(stub, tenant=t, queue=q, concurrency_limits=[limit("x", 1)], start_at_ms=later)
    assert await gauge(admin, "concurrency_keys") == 0


async def test_keys_of_cancelled_waiters_are_forgotten(make_server, admin_of) -> None:
    """Jobs that wait on a full shared key and also name a key of their own, then are
    cancelled: once nothing runs, no key state may remain (memory ∝ keys in use)."""
    server: ServerProcess = await make_server()
    stub, admin = server.stub(), admin_of(server)
    t, q, n = "tenant-m", "q", 200
    await enqueue(stub, id="h", tenant=t, queue=q, concurrency_limits=[limit("shared", 1)])
    holder = await lease_one(stub, q, wait_ms=0)
    jobs = [
        EnqueueRequest(
            id=f"j{i}",
            tenant=t,
            queue=q,
            concurrency_limits=[limit("shared", 1), limit(f"own{i}", 1)],
        )
        for i in range(n)
    ]
    await stub.enqueue_batch(EnqueueBatchRequest(jobs=jobs))
    for i in range(n):
        await cancel(stub, f"j{i}", t)
    await report_result(stub, holder)
    await assert_idle(admin, t, "shared")
    assert await gauge(admin, "concurrency_keys") == 0, "key state kept for keys nobody uses"


# --------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        ([limit(f"k{i}", 1) for i in range(9)], "concurrency_limits"),
        ([limit("", 1)], "concurrency_limits[0].key"),
        ([limit("ok", 1), limit("x" * 128, 1)], "concurrency_limits[1].key"),
        ([limit("bad\nkey", 1)], "concurrency_limits[0].key"),
        ([limit("k", 0)], "concurrency_limits[0].max_concurrency"),
    ],
    ids=["nine_limits", "empty_key", "key_128_chars", "control_char_key", "max_concurrency_0"],
)
async def test_invalid_limits_are_rejected_naming_the_field(
    shared_stub: SiloStub, ns, limits: list[ConcurrencyLimit], field: str
) -> None:
    req = EnqueueRequest(id="bad", tenant=ns.tenant, queue=ns.queue, concurrency_limits=limits)
    await expect_status(shared_stub.enqueue(req), Status.INVALID_ARGUMENT, names=field)
    await expect_status(get_job(shared_stub, "bad", ns.tenant), Status.NOT_FOUND)
    # In a batch, the bad entry fails alone.
    good = EnqueueRequest(id="good", tenant=ns.tenant, queue=ns.queue)
    resp = await shared_stub.enqueue_batch(EnqueueBatchRequest(jobs=[req, good]))
    assert [r.code for r in resp.results] == [Status.INVALID_ARGUMENT.value, 0]
    assert field.lower() in resp.results[0].message.lower()
    await expect_status(get_job(shared_stub, "bad", ns.tenant), Status.NOT_FOUND)


async def test_boundary_limits_are_accepted(shared_stub: SiloStub, admin: AdminStub, ns) -> None:
    eight = [limit(f"k{i}", 1) for i in range(7)] + [limit("x" * 127, 1)]
    await enqueue(shared_stub, id="j", tenant=ns.tenant, queue=ns.queue, concurrency_limits=eight)
    task = await lease_one(shared_stub, ns.queue, wait_ms=0)
    for lim in eight:
        await assert_key(admin, ns.tenant, lim.key, holders=[task], limit=1)


# --------------------------------------------------------------------------- waiting_on_keys


async def test_waiting_on_keys_shows_the_key_a_pending_job_waits_on(
    shared_stub: SiloStub, ns
) -> None:
    stub, t, q = shared_stub, ns.tenant, ns.queue
    lim = [limit("k", 1)]
    await enqueue(stub, id="free", tenant=t, queue=q)
    await enqueue(stub, id="first", tenant=t, queue=q, concurrency_limits=lim)
    await enqueue(stub, id="blocked", tenant=t, queue=q, concurrency_limits=lim)
    future = now_ms() + 3_600_000
    await enqueue(stub, id="later", tenant=t, queue=q, concurrency_limits=lim, start_at_ms=future)

    def view(job) -> tuple[JobStatus, list[str]]:
        return job.status, list(job.waiting_on_keys)

    # Admitted (waiting only for a worker) and key-less jobs wait on no key.
    assert view(await get_job(stub, "free", t)) == (JobStatus.PENDING, [])
    assert view(await get_job(stub, "first", t)) == (JobStatus.PENDING, [])
    assert view(await get_job(stub, "blocked", t)) == (JobStatus.PENDING, ["k"])
    assert view(await get_job(stub, "later", t)) == (JobStatus.SCHEDULED, [])
    tasks = {task.job_id: task for task in await lease(stub, [q], max_tasks=10)}
    assert sorted(tasks) == ["first", "free"]
    assert view(await get_job(stub, "first", t)) == (JobStatus.RUNNING, [])
    assert view(await get_job(stub, "blocked", t)) == (JobStatus.PENDING, ["k"])
    await report_result(stub, tasks["first"])
    # Granted a slot: no longer waiting on the key, only for a worker.
    assert view(await get_job(stub, "blocked", t)) == (JobStatus.PENDING, [])
    blocked = await lease_one(stub, q, wait_ms=0)
    await report_result(stub, blocked)
    assert view(await get_job(stub, "blocked", t)) == (JobStatus.SUCCEEDED, [])
