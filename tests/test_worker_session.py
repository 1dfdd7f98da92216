"""WorkerSession (docs/api.md#workersession): tasks pushed within the credit granted, the §2 order
with tenants taking turns, heartbeats and outcomes answered with the unary calls' codes, a broken
stream or a killed worker leaving tasks leased until they expire, SIGTERM ending sessions OK, and
bad messages."""

from __future__ import annotations

import asyncio
import itertools
import signal
import sys
import textwrap

from conftest import MakeServer, Namespace
from grpclib.client import Channel
from grpclib.const import Status
from helpers import (
    RETRY_NOW,
    SHORT_LEASE_MS,
    admin_gauges,
    enqueue,
    expect_status,
    get_job,
    heartbeat,
    lease_one,
    wait_for_gauge,
    wait_for_status,
)
from silo._proto.silo.admin.v1 import AdminStub
from silo._proto.silo.v1 import (
    AttemptStatus,
    CancelRequest,
    EnqueueBatchRequest,
    EnqueueRequest,
    JobStatus,
    QueueRef,
    ReportTaskOutcomeRequest,
    ServerMessage,
    SessionOpen,
    SiloStub,
    TaskCancelled,
    TaskFailure,
    WorkerMessage,
)
from silo.testing import ServerProcess
from stream_client import WORKER_SESSION, end_status, raw_stream, worker_session

OK, INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION = 0, 3, 5, 6, 9


def admin_of(stub: SiloStub) -> AdminStub:
    return AdminStub(stub.channel)


async def statuses(stub: SiloStub, tenant: str, ids: list[str]) -> list[JobStatus]:
    return [(await get_job(stub, i, tenant, attempts=False)).status for i in ids]


async def test_a_session_holds_no_more_tasks_than_its_credit(
    shared_stub: SiloStub, ns: Namespace
) -> None:
    ids = [f"j{i}" for i in range(5)]
    async with worker_session(shared_stub, [ns.queue], credits=2) as session:
        # The session's turn comes in the step that enqueues: it takes what its credit allows.
        jobs = [EnqueueRequest(id=i, tenant=ns.tenant, queue=ns.queue) for i in ids]
        await shared_stub.enqueue_batch(EnqueueBatchRequest(jobs=jobs))
        first = [await session.task(), await session.task()]
        assert [t.job_id for t in first] == ids[:2]
        running, pending = JobStatus.RUNNING, JobStatus.PENDING
        assert await statuses(shared_stub, ns.tenant, ids) == [running] * 2 + [pending] * 3
        # An outcome frees no credit: only credits do.
        for task in first:
            await session.report(task.task_id, result=b"done")
            assert (await session.outcome_result()).code == OK
        assert await statuses(shared_stub, ns.tenant, ids[2:]) == [pending] * 3
        assert session.tasks == []
        await session.credits(1)
        assert (await session.task()).job_id == "j2"
        assert await statuses(shared_stub, ns.tenant, ids[3:]) == [pending] * 2
        await session.credits(5)
        assert [(await session.task()).job_id for _ in range(2)] == ["j3", "j4"]
        assert await end_status(session.stream) == (Status.OK, None)


async def test_an_idle_session_gets_a_task_as_soon_as_it_is_enqueued(
    shared_stub: SiloStub, shared_admin: AdminStub, ns: Namespace
) -> None:
    async with worker_session(shared_stub, [ns.queue], worker_id="idle-w", credits=1) as session:
        await wait_for_gauge(
            admin_gauges(shared_admin),
            "worker_sessions",
            lambda n: n >= 1,
            what="the session never opened",
        )
        job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue, payload=b"go")
        task = await session.task()
        assert (task.job_id, task.payload, task.attempt) == (job_id, b"go", 1)
        job = await get_job(shared_stub, job_id, ns.tenant)
        # A task's worker is the session's.
        assert (job.status, job.attempts[0].worker_id) == (JobStatus.RUNNING, "idle-w")
        await session.report(task.task_id, result=b"r")
        assert (await session.outcome_result()).code == OK
        assert (await get_job(shared_stub, job_id, ns.tenant)).status == JobStatus.SUCCEEDED


async def test_a_heartbeat_tells_of_a_cancel(shared_stub: SiloStub, ns: Namespace) -> None:
    job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    async with worker_session(shared_stub, [ns.queue]) as session:
        task = await session.task()
        await session.heartbeat(task.task_id, cursor=b"page-1")
        first = await session.heartbeat_result()
        assert (first.task_id, first.code, first.cancelled) == (task.task_id, OK, False)
        assert first.lease_expires_at_ms > 0
        await shared_stub.cancel(CancelRequest(id=job_id, tenant=ns.tenant))
        await session.heartbeat(task.task_id)
        second = await session.heartbeat_result()
        assert (second.code, second.cancelled) == (OK, True)
        await session.report(task.task_id, cancelled=TaskCancelled())
        assert (await session.outcome_result()).code == OK
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert job.status == JobStatus.CANCELLED
    assert job.attempts[0].heartbeat_cursor == b"page-1"
    assert job.attempts[0].status == AttemptStatus.CANCELLED


async def test_outcomes_and_heartbeats_carry_the_codes_of_the_unary_calls(
    shared_stub: SiloStub, ns: Namespace
) -> None:
    for i in range(3):
        await enqueue(shared_stub, id=f"o{i}", tenant=ns.tenant, queue=ns.queue)
    other_queue = f"{ns.queue}-other"
    await enqueue(shared_stub, id="foreign", tenant=ns.tenant, queue=other_queue)
    foreign = await lease_one(shared_stub, other_queue, worker="someone-else", wait_ms=0)
    async with worker_session(shared_stub, [ns.queue], worker_id="w", credits=3) as session:
        tasks = [await session.task() for _ in range(3)]
        failure = TaskFailure(code="boom", message="m", non_retryable=True)
        reports = [
            (tasks[0].task_id, {"result": b"ok"}),
            (tasks[1].task_id, {"failure": failure}),
            (tasks[2].task_id, {"cancelled": TaskCancelled()}),
            (tasks[0].task_id, {"result": b"again"}),
            ("no-such-task", {"result": b""}),
            (foreign.task_id, {"result": b""}),
            (tasks[1].task_id, {}),
        ]
        for task_id, outcome in reports:
            await session.report(task_id, **outcome)
        got = [await session.outcome_result() for _ in reports]
        assert [(r.task_id, r.code) for r in got] == [
            (tasks[0].task_id, OK),
            (tasks[1].task_id, OK),
            (tasks[2].task_id, OK),
            (tasks[0].task_id, ALREADY_EXISTS),
            ("no-such-task", NOT_FOUND),
            (foreign.task_id, FAILED_PRECONDITION),
            (tasks[1].task_id, INVALID_ARGUMENT),
        ]
        assert got[6].message.startswith("outcome.outcome"), got[6].message
        for task_id in ["no-such-task", foreign.task_id, tasks[0].task_id]:
            await session.heartbeat(task_id)
        hb = [await session.heartbeat_result() for _ in range(3)]
        assert [r.code for r in hb] == [NOT_FOUND, FAILED_PRECONDITION, FAILED_PRECONDITION]
        assert hb[1].message and hb[2].message
    # The same calls, unary, answer the same codes.
    await expect_status(
        shared_stub.report_task_outcome(
            ReportTaskOutcomeRequest(task_id=tasks[0].task_id, worker_id="w", result=b"")
        ),
        Status.ALREADY_EXISTS,
    )
    await expect_status(heartbeat(shared_stub, "no-such-task", worker="w"), Status.NOT_FOUND)
    await expect_status(
        heartbeat(shared_stub, foreign.task_id, worker="w"), Status.FAILED_PRECONDITION
    )
    statuses_ = await statuses(shared_stub, ns.tenant, ["o0", "o1", "o2"])
    assert statuses_ == [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED]


async def test_tenants_and_sessions_take_turns(shared_stub: SiloStub, ns: Namespace) -> None:
    big = [EnqueueRequest(tenant=f"{ns.tenant}-big", queue=ns.queue) for _ in range(20)]
    small = [EnqueueRequest(tenant=f"{ns.tenant}-small", queue=ns.queue) for _ in range(3)]
    await shared_stub.enqueue_batch(EnqueueBatchRequest(jobs=big))
    await shared_stub.enqueue_batch(EnqueueBatchRequest(jobs=small))
    async with worker_session(shared_stub, [ns.queue], credits=1) as session:
        tenants = []
        for _ in range(8):
            tenants.append((await session.task()).tenant.rsplit("-", 1)[1])
            await session.credits(1)
    assert tenants == ["big", "small", "big", "small", "big", "small", "big", "big"]

    # Two sessions waiting on one queue get its tasks in turn.
    queue = f"{ns.queue}-turns"
    async with (
        worker_session(shared_stub, [queue], worker_id="a", credits=10) as a,
        worker_session(shared_stub, [queue], worker_id="b", credits=10) as b,
    ):
        await wait_for_gauge(
            admin_gauges(admin_of(shared_stub)),
            "worker_sessions",
            lambda n: n >= 2,
            what="the sessions never opened",
        )
        got = []
        for i in range(6):
            job_id = await enqueue(shared_stub, id=f"turn-{i}", tenant=ns.tenant, queue=queue)
            job = await wait_for_status(shared_stub, job_id, ns.tenant, [JobStatus.RUNNING])
            got.append(job.attempts[0].worker_id)
        assert sorted(got) == ["a", "a", "a", "b", "b", "b"]
        assert all(x != y for x, y in itertools.pairwise(got)), got
        assert len([await a.task() for _ in range(3)]) == len([await b.task() for _ in range(3)])


async def test_a_broken_stream_leaves_its_tasks_leased(
    shared_stub: SiloStub, shared_server: ServerProcess, ns: Namespace
) -> None:
    job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    channel = Channel(shared_server.host, shared_server.port)
    try:
        async with worker_session(SiloStub(channel), [ns.queue], worker_id="gone") as session:
            task = await session.task()
            await session.stream.cancel()
    finally:
        channel.close()
    # Still the worker's: a lost connection does not prove the worker stopped.
    assert (await get_job(shared_stub, job_id, ns.tenant)).status == JobStatus.RUNNING
    assert not (await heartbeat(shared_stub, task, worker="gone")).cancelled
    await shared_stub.report_task_outcome(
        ReportTaskOutcomeRequest(task_id=task.task_id, worker_id="gone", result=b"late")
    )
    assert (await get_job(shared_stub, job_id, ns.tenant)).status == JobStatus.SUCCEEDED


# The worker process of the next test: opens a session, prints its task's id, then hangs.
_WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from grpclib.client import Channel
    from grpclib.const import Cardinality
    from silo._proto.silo.v1 import ServerMessage, SessionOpen, WorkerMessage

    async def main(host, port, queue):
        channel = Channel(host, int(port))
        async with channel.request("/silo.v1.Silo/WorkerSession", Cardinality.STREAM_STREAM,
                                   WorkerMessage, ServerMessage) as stream:
            open_ = SessionOpen(worker_id="doomed", queues=[queue], credits=1)
            await stream.send_message(WorkerMessage(open=open_))
            message = await stream.recv_message()
            print(message.task.task_id, flush=True)
            await asyncio.Event().wait()

    asyncio.run(main(*sys.argv[1:]))
    """
)


async def test_a_killed_worker_s_task_comes_back_after_its_lease(
    short_stub: SiloStub, short_lease_server: ServerProcess, ns: Namespace
) -> None:
    job_id = await enqueue(short_stub, tenant=ns.tenant, queue=ns.queue, retry_policy=RETRY_NOW)
    server = short_lease_server
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _WORKER,
        server.host,
        str(server.port),
        ns.queue,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert worker.stdout is not None
        line = await asyncio.wait_for(worker.stdout.readline(), 30)
        first_task = line.decode().strip()
        assert first_task, "the worker got no task"
    finally:
        worker.kill()  # kill -9, mid-task
        await worker.wait()
    async with worker_session(short_stub, [ns.queue], worker_id="rescuer") as session:
        task = await session.task()
    assert (task.job_id, task.attempt) == (job_id, 2)
    job = await get_job(short_stub, job_id, ns.tenant)
    first = job.attempts[0]
    assert (first.task_id, first.worker_id) == (first_task, "doomed")
    assert first.failure is not None and first.failure.code == "lease_expired"
    assert first.finished_at_ms - first.started_at_ms >= SHORT_LEASE_MS - 5


async def test_sigterm_ends_sessions_ok_after_answering_what_they_read(
    make_server: MakeServer,
) -> None:
    server = await make_server()
    stub = server.stub()
    job_id = await enqueue(stub, tenant="t", queue="q")
    async with (
        worker_session(stub, ["q"], credits=1) as busy,
        worker_session(stub, ["idle-queue"], credits=5) as idle,
    ):
        task = await busy.task()
        await wait_for_gauge(
            admin_gauges(admin_of(stub)), "worker_sessions", lambda n: n == 2, what="no sessions"
        )
        await busy.report(task.task_id, result=b"before the end")
        server.send_signal(signal.SIGTERM)
        answers = []
        while (message := await asyncio.wait_for(busy.stream.recv_message(), 30)) is not None:
            answers.append(message)
        assert await end_status(busy.stream) == (Status.OK, None)
        assert await end_status(idle.stream) == (Status.OK, None)
    assert server.wait(30) == 0
    await server.arestart()
    job = await get_job(server.stub(), job_id, "t")
    # The outcome was either read before the drain (answered OK and durable) or never read.
    if answers:
        assert [m.outcome.code for m in answers if m.outcome] == [OK]
        assert job.status == JobStatus.SUCCEEDED
    else:
        assert job.status == JobStatus.RUNNING


async def test_a_session_must_start_with_a_valid_open(
    shared_stub: SiloStub, shared_server: ServerProcess
) -> None:
    bad_firsts = [
        (WorkerMessage(credits=3), "open"),
        (WorkerMessage(open=SessionOpen(credits=1)), "open.worker_id"),
        (WorkerMessage(open=SessionOpen(worker_id="w", credits=1001)), "open.credits"),
        (WorkerMessage(open=SessionOpen(worker_id="w", queues=["x" * 128])), "open.queues[0]"),
    ]
    for first, field in bad_firsts:
        async with raw_stream(shared_server.host, shared_server.port, WORKER_SESSION) as stream:
            await stream.send_message(bytes(first))
            status, message = await end_status(stream)
        assert status is Status.INVALID_ARGUMENT, (first, status, message)
        assert message is not None and message.startswith(f"{field}:"), message
    # A stream that ends before any message, and one whose first message does not decode.
    for first_bytes in [None, b"\xff\xff"]:
        async with raw_stream(shared_server.host, shared_server.port, WORKER_SESSION) as stream:
            if first_bytes is not None:
                await stream.send_message(first_bytes)
            status, message = await end_status(stream)
        assert status is Status.INVALID_ARGUMENT, message


async def test_bad_messages_mid_session(
    shared_stub: SiloStub, shared_server: ServerProcess, ns: Namespace
) -> None:
    await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    async with worker_session(shared_stub, [ns.queue], worker_id="w") as session:
        task = await session.task()
        # Heartbeats and outcomes fail alone, naming the field; the session goes on.
        await session.heartbeat("")
        await session.heartbeat(task.task_id, worker_id="not-me")
        await session.report(task.task_id, failure=TaskFailure(code="lease_expired"))
        await session.heartbeat(task.task_id)
        got = [await session.answer() for _ in range(4)]
        assert [r.code for r in got] == [INVALID_ARGUMENT] * 3 + [OK]
        fields = [r.message.split(":")[0] for r in got[:3]]
        assert fields == ["heartbeat.task_id", "heartbeat.worker_id", "outcome.failure.code"]
        assert await end_status(session.stream) == (Status.OK, None)
    # A message the session cannot answer ends it with INVALID_ARGUMENT naming the field.
    enders = [
        (WorkerMessage(open=SessionOpen(worker_id="w")), "open"),
        (WorkerMessage(), "kind"),
        (WorkerMessage(credits=1000), "credits"),
    ]
    opening = bytes(WorkerMessage(open=SessionOpen(worker_id="w", queues=[ns.queue], credits=1)))
    for message, field in enders:
        async with raw_stream(shared_server.host, shared_server.port, WORKER_SESSION) as stream:
            await stream.send_message(opening)
            await stream.send_message(bytes(message))
            status, text = await end_status(stream)
        assert status is Status.INVALID_ARGUMENT, (message, status, text)
        assert text is not None and text.startswith(f"{field}:"), text
    async with raw_stream(shared_server.host, shared_server.port, WORKER_SESSION) as stream:
        await stream.send_message(opening)
        await stream.send_message(b"\xff\xff")
        status, text = await end_status(stream)
    assert status is Status.INVALID_ARGUMENT and text is not None and text.startswith("request:")
    assert ServerMessage  # the raw answers above are ServerMessage bytes (none expected)


async def test_a_paused_queue_pushes_nothing_to_a_session_until_resumed(
    shared_stub: SiloStub, ns: Namespace
) -> None:
    ref = QueueRef(tenant=ns.tenant, queue=ns.queue)
    await shared_stub.pause_queue(ref)
    job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    async with worker_session(shared_stub, [ns.queue], credits=5) as session:
        # A heartbeat's answer comes from a step at or after the one that opened the session,
        # whose turn would have leased the job: it is still PENDING.
        await session.heartbeat("no-such-task")
        assert (await session.heartbeat_result()).code == NOT_FOUND
        assert (await get_job(shared_stub, job_id, ns.tenant)).status == JobStatus.PENDING
        assert session.tasks == []
        await shared_stub.resume_queue(ref)
        assert (await session.task()).job_id == job_id
