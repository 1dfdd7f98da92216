"""Tokens, roles and tenants (docs/security.md) against a real `silo serve --auth-file`: the role
table walked for every RPC x every role x a tenant inside and outside the token's, calls without
or with an unknown token, the health service open, no existence oracle across tenants, leases
and sessions that take only the token's tenants' jobs, and the auth file's reload on SIGHUP."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import MakeServer
from grpclib.client import Channel, StreamStreamMethod
from grpclib.const import Status
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse
from secure import PATHS, Outcome, Token, channel, stream, unary, wait_for_log, write_auth
from silo import _native
from silo._proto.silo.admin.v1 import (
    GetConcurrencyKeyRequest,
    GetRateLimitRequest,
    GetStatsRequest,
    SetFaultsRequest,
)
from silo._proto.silo.v1 import (
    BulkJobsRequest,
    CancelRequest,
    DeleteJobRequest,
    EnqueueBatchRequest,
    EnqueueBatchResponse,
    EnqueueRequest,
    EnqueueResult,
    ExpediteJobRequest,
    GetClusterRequest,
    GetJobRequest,
    HeartbeatTaskRequest,
    LeaseTasksRequest,
    LeaseTasksResponse,
    ListJobsRequest,
    ListQueuesRequest,
    ListSchedulesRequest,
    QueueRef,
    ReportTaskOutcomeRequest,
    ReportTaskOutcomesRequest,
    ReportTaskOutcomesResponse,
    RestartJobRequest,
    Schedule,
    ScheduleRef,
    ServerMessage,
    SessionOpen,
    WaitJobRequest,
    WorkerMessage,
)
from silo.server.codec import RawMessage
from silo.testing import ServerProcess

IN, OUT = "acme", "globex"
ROLES = ("produce", "work", "operate", "admin", "none")

#: The role table of docs/security.md#roles, written here apart from the core's (rust/auth.rs):
#: what each RPC needs. An RPC of the core's table missing here fails
#: `test_the_table_covers_every_rpc`.
NEEDS = {
    **dict.fromkeys(
        ["Enqueue", "EnqueueBatch", "EnqueueStream", "Cancel", "GetJob", "WaitJob"], "produce"
    ),
    **dict.fromkeys(
        ["LeaseTasks", "HeartbeatTask", "ReportTaskOutcome", "ReportTaskOutcomes", "WorkerSession"],
        "work",
    ),
    **dict.fromkeys(
        [
            "ListJobs",
            "RestartJob",
            "ExpediteJob",
            "DeleteJob",
            "ListQueues",
            "CancelJobs",
            "RestartJobs",
            "DeleteJobs",
            "PauseQueue",
            "ResumeQueue",
            "PutSchedule",
            "DeleteSchedule",
            "GetSchedule",
            "ListSchedules",
        ],
        "operate",
    ),
    **dict.fromkeys(["GetStats", "SetFaults", "GetConcurrencyKey", "GetRateLimit"], "admin"),
    "GetCluster": "any",
}
#: What each role grants (admin: everything; operate: the job contract).
GRANTS = {
    "produce": {"produce"},
    "work": {"work"},
    "operate": {"produce", "work", "operate"},
    "admin": {"produce", "work", "operate", "admin"},
    "none": set(),
}
#: RPCs whose request names its tenant up front (PERMISSION_DENIED outside the token's).
TENANT_NAMED = {
    rpc
    for rpc in NEEDS
    if rpc
    not in {
        "EnqueueBatch",
        "EnqueueStream",
        "LeaseTasks",
        "HeartbeatTask",
        "ReportTaskOutcome",
        "ReportTaskOutcomes",
        "WorkerSession",
        "GetCluster",
        "GetStats",
        "SetFaults",
    }
}

TOKENS = {
    role: Token(role, f"secret-{role}", [IN], [] if role == "none" else [role]) for role in ROLES
}
ROOT = Token("root", "secret-root", ["*"], ["admin"])


def granted(rpc: str, role: str) -> bool:
    need = NEEDS[rpc]
    return need == "any" or need in GRANTS[role]


def test_the_table_covers_every_rpc() -> None:
    assert set(NEEDS) == {method for _, method, _ in _native.rpcs()}


def test_principals_agree_with_the_table() -> None:
    """The core's table (rust/auth.rs) gives what this file's copy of docs/security.md gives."""
    for role in ROLES:
        p = _native.Principal(role, ["*"], [] if role == "none" else [role])
        for rpc in NEEDS:
            assert p.may_call(rpc) == granted(rpc, role), (rpc, role)


def request(rpc: str, tenant: str, task_id: str = "") -> bytes:
    """A request of `rpc` naming `tenant` (and `task_id` for the task calls)."""
    job = EnqueueRequest(tenant=tenant, queue="matrix")
    messages = {
        "Enqueue": job,
        "EnqueueStream": job,
        "WorkerSession": WorkerMessage(
            open=SessionOpen(worker_id="w", queues=["matrix-empty"], credits=1)
        ),
        "EnqueueBatch": EnqueueBatchRequest(jobs=[job]),
        "Cancel": CancelRequest(id="nope", tenant=tenant),
        "GetJob": GetJobRequest(id="nope", tenant=tenant),
        "WaitJob": WaitJobRequest(id="nope", tenant=tenant),
        "LeaseTasks": LeaseTasksRequest(worker_id="w", max_tasks=1, queues=["matrix-empty"]),
        "HeartbeatTask": HeartbeatTaskRequest(task_id=task_id, worker_id="w"),
        "ReportTaskOutcome": ReportTaskOutcomeRequest(task_id=task_id, worker_id="w", result=b""),
        "ReportTaskOutcomes": ReportTaskOutcomesRequest(
            reports=[ReportTaskOutcomeRequest(task_id=task_id, worker_id="w", result=b"")]
        ),
        "ListJobs": ListJobsRequest(tenant=tenant),
        "RestartJob": RestartJobRequest(id="nope", tenant=tenant),
        "ExpediteJob": ExpediteJobRequest(id="nope", tenant=tenant),
        "DeleteJob": DeleteJobRequest(id="nope", tenant=tenant),
        "ListQueues": ListQueuesRequest(tenant=tenant),
        "CancelJobs": BulkJobsRequest(filter=ListJobsRequest(tenant=tenant)),
        "RestartJobs": BulkJobsRequest(filter=ListJobsRequest(tenant=tenant)),
        "DeleteJobs": BulkJobsRequest(filter=ListJobsRequest(tenant=tenant)),
        "PauseQueue": QueueRef(tenant=tenant, queue="matrix-paused"),
        "ResumeQueue": QueueRef(tenant=tenant, queue="matrix-paused"),
        "PutSchedule": Schedule(
            tenant=tenant, name="matrix", interval_ms=3_600_000, job=EnqueueRequest(queue="m")
        ),
        "DeleteSchedule": ScheduleRef(tenant=tenant, name="nope"),
        "GetSchedule": ScheduleRef(tenant=tenant, name="nope"),
        "ListSchedules": ListSchedulesRequest(tenant=tenant),
        "GetCluster": GetClusterRequest(),
        "GetStats": GetStatsRequest(),
        "SetFaults": SetFaultsRequest(),
        "GetConcurrencyKey": GetConcurrencyKeyRequest(tenant=tenant, key="k"),
        "GetRateLimit": GetRateLimitRequest(tenant=tenant, key="k"),
    }
    return bytes(messages[rpc])


async def auth_server(make_server: MakeServer, tmp_path: Path, *extra: str) -> ServerProcess:
    path = write_auth(tmp_path / "auth.toml", [*TOKENS.values(), ROOT])
    return await make_server(extra_args=["--auth-file", str(path), *extra])


async def call(ch: Channel, rpc: str, body: bytes, token: Token | None) -> Outcome:
    if rpc == "EnqueueStream":
        out, answers = await stream(ch, rpc, [body], token)
        if out.status is Status.OK and answers:
            result = EnqueueResult.parse(answers[0])
            return Outcome(Status(result.code), result.message)
        return out
    if rpc == "WorkerSession":
        out, _ = await stream(ch, rpc, [body], token)
        return out
    out = await unary(ch, rpc, body, token)
    # A batch of one entry: the entry's result is the answer of this case.
    if out.status is Status.OK and rpc == "EnqueueBatch":
        entry = EnqueueBatchResponse.parse(out.reply).results[0]
        return Outcome(Status(entry.code), entry.message)
    if out.status is Status.OK and rpc == "ReportTaskOutcomes":
        report = ReportTaskOutcomesResponse.parse(out.reply).results[0]
        return Outcome(Status(report.code), report.message)
    return out


async def lease_tasks(ch: Channel, queue: str, tenants: list[str]) -> dict[str, str]:
    """Enqueue one job per tenant in `queue` and lease them with the root token: task ids."""
    for t in tenants:
        out = await unary(ch, "Enqueue", bytes(EnqueueRequest(tenant=t, queue=queue)), ROOT)
        assert out.status is Status.OK, out
    out = await unary(
        ch,
        "LeaseTasks",
        bytes(LeaseTasksRequest(worker_id="w", max_tasks=10, queues=[queue])),
        ROOT,
    )
    tasks = LeaseTasksResponse.parse(out.reply).tasks
    return {t.tenant: t.task_id for t in tasks}


async def test_every_rpc_for_every_role_inside_and_outside_its_tenants(
    make_server: MakeServer, tmp_path: Path, record_figure: Callable[[str], None]
) -> None:
    server = await auth_server(make_server, tmp_path, "--fault-injection")
    ch = channel(server.host, server.port)
    try:
        unknown = await unary(ch, "HeartbeatTask", request("HeartbeatTask", IN, "no-such"), ROOT)
        assert unknown.status is Status.NOT_FOUND
        failures: list[str] = []
        cases = 0
        for rpc in NEEDS:
            for role in ROLES:
                for tenant in (IN, OUT):
                    tasks = {}
                    if rpc in {"HeartbeatTask", "ReportTaskOutcome", "ReportTaskOutcomes"}:
                        tasks = await lease_tasks(ch, f"q-{rpc}-{role}-{tenant}", [tenant])
                    body = request(rpc, tenant, tasks.get(tenant, ""))
                    got = await call(ch, rpc, body, TOKENS[role])
                    cases += 1
                    why = expect(rpc, role, tenant, got, unknown)
                    if why:
                        failures.append(f"{rpc} as {role} on {tenant}: {why}")
        assert not failures, "\n".join(failures)
        assert cases == len(NEEDS) * len(ROLES) * 2
        record_figure(
            f"role table: {cases} cases ({len(NEEDS)} RPCs x {len(ROLES)} roles x 2 tenants)"
        )
    finally:
        ch.close()


def expect(rpc: str, role: str, tenant: str, got: Outcome, unknown: Outcome) -> str | None:
    """Why `got` is wrong for this case (None when right)."""
    never = {Status.UNAUTHENTICATED, Status.INTERNAL, Status.UNKNOWN}
    if got.status in never:
        return f"answered {got.status.name}: {got.message}"
    if not granted(rpc, role):
        if got.status is not Status.PERMISSION_DENIED:
            return f"expected PERMISSION_DENIED (role), got {got.status.name}: {got.message}"
        return None
    if tenant == IN:
        if got.status is Status.PERMISSION_DENIED:
            return f"its own tenant was refused: {got.message}"
        return None
    if rpc in TENANT_NAMED or rpc in {"EnqueueBatch", "EnqueueStream"}:
        if got.status is not Status.PERMISSION_DENIED:
            return f"expected PERMISSION_DENIED (tenant), got {got.status.name}: {got.message}"
        return None
    if rpc in {"HeartbeatTask", "ReportTaskOutcome", "ReportTaskOutcomes"}:
        # Another tenant's task answers exactly as a task that does not exist.
        if (got.status, got.message) != (unknown.status, unknown.message):
            return f"expected {unknown} (as for no task), got {got}"
        return None
    return None


async def enqueue_batch_entry_codes(ch: Channel, token: Token) -> list[int]:
    jobs = [EnqueueRequest(tenant=t, queue="batch") for t in (IN, OUT, IN)]
    out = await unary(ch, "EnqueueBatch", bytes(EnqueueBatchRequest(jobs=jobs)), token)
    assert out.status is Status.OK, out
    return [r.code for r in EnqueueBatchResponse.parse(out.reply).results]


async def test_a_forbidden_batch_entry_fails_alone(make_server: MakeServer, tmp_path: Path) -> None:
    server = await auth_server(make_server, tmp_path)
    ch = channel(server.host, server.port)
    try:
        codes = await enqueue_batch_entry_codes(ch, TOKENS["produce"])
        assert codes == [0, Status.PERMISSION_DENIED.value, 0]
        # ReportTaskOutcomes: the other tenant's task is NOT_FOUND, ours is recorded.
        tasks = await lease_tasks(ch, "reports", [IN, OUT])
        reports = [
            ReportTaskOutcomeRequest(task_id=tasks[t], worker_id="w", result=b"") for t in (OUT, IN)
        ]
        out = await unary(
            ch,
            "ReportTaskOutcomes",
            bytes(ReportTaskOutcomesRequest(reports=reports)),
            TOKENS["work"],
        )
        results = ReportTaskOutcomesResponse.parse(out.reply).results
        assert [r.code for r in results] == [Status.NOT_FOUND.value, 0]
    finally:
        ch.close()


async def test_no_token_or_an_unknown_one_is_unauthenticated_and_health_is_open(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = await auth_server(make_server, tmp_path)
    ch = channel(server.host, server.port)
    stranger = Token("stranger", "not-in-the-file", ["*"], ["admin"])
    try:
        for rpc in NEEDS:
            for token in (None, stranger):
                got = await call(ch, rpc, request(rpc, IN), token)
                assert got.status is Status.UNAUTHENTICATED, (rpc, token, got)
        health_channel = Channel(server.host, server.port)
        try:
            reply = await HealthStub(health_channel).Check(HealthCheckRequest(service=""))
            assert reply.status == HealthCheckResponse.SERVING
        finally:
            health_channel.close()
    finally:
        ch.close()


async def test_no_existence_oracle_across_tenants(make_server: MakeServer, tmp_path: Path) -> None:
    """A job of another tenant: PERMISSION_DENIED whether it exists or not, same message."""
    server = await auth_server(make_server, tmp_path)
    ch = channel(server.host, server.port)
    try:
        out = await unary(
            ch, "Enqueue", bytes(EnqueueRequest(id="exists", tenant=OUT, queue="q")), ROOT
        )
        assert out.status is Status.OK
        for rpc, message in [
            ("GetJob", GetJobRequest),
            ("Cancel", CancelRequest),
            ("WaitJob", WaitJobRequest),
            ("RestartJob", RestartJobRequest),
            ("ExpediteJob", ExpediteJobRequest),
            ("DeleteJob", DeleteJobRequest),
        ]:
            there = await unary(ch, rpc, bytes(message(id="exists", tenant=OUT)), TOKENS["admin"])
            absent = await unary(ch, rpc, bytes(message(id="absent", tenant=OUT)), TOKENS["admin"])
            assert there.status is absent.status is Status.PERMISSION_DENIED
            assert there.message == absent.message
    finally:
        ch.close()


async def test_a_restricted_worker_leases_only_its_tenants_jobs(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = await auth_server(make_server, tmp_path)
    ch = channel(server.host, server.port)
    worker = TOKENS["work"]

    async def enqueue(tenant: str, job_id: str, priority: int = 50) -> None:
        req = EnqueueRequest(id=job_id, tenant=tenant, queue="shared", priority=priority)
        assert (await unary(ch, "Enqueue", bytes(req), ROOT)).status is Status.OK

    async def lease(token: Token, wait_ms: int = 0) -> list[str]:
        req = LeaseTasksRequest(worker_id="w", max_tasks=10, queues=["shared"], wait_ms=wait_ms)
        out = await unary(ch, "LeaseTasks", bytes(req), token)
        assert out.status is Status.OK, out
        return [f"{t.tenant}/{t.job_id}" for t in LeaseTasksResponse.parse(out.reply).tasks]

    try:
        # Other tenants' jobs first and at a higher priority: skipped, not taken.
        await enqueue(OUT, "o1", priority=90)
        await enqueue(OUT, "o2")
        await enqueue(IN, "i1")
        assert await lease(worker) == [f"{IN}/i1"]
        assert await lease(worker) == []
        # A parked long-poll is not handed another tenant's job...
        parked = asyncio.ensure_future(lease(worker, wait_ms=20_000))
        await asyncio.sleep(0.2)  # let the call park (no event to await from outside)
        await enqueue(OUT, "o3")
        await enqueue(IN, "i2")
        assert await parked == [f"{IN}/i2"]
        # ... and the other tenant's jobs are all still there for a worker that may take them.
        assert sorted(await lease(ROOT)) == [f"{OUT}/o1", f"{OUT}/o2", f"{OUT}/o3"]
    finally:
        ch.close()


async def test_a_restricted_session_gets_only_its_tenants_tasks(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = await auth_server(make_server, tmp_path)
    ch = channel(server.host, server.port)
    try:
        for tenant, job_id in [(OUT, "o1"), (IN, "i1"), (OUT, "o2"), (IN, "i2")]:
            req = EnqueueRequest(id=job_id, tenant=tenant, queue="sess")
            assert (await unary(ch, "Enqueue", bytes(req), ROOT)).status is Status.OK
        other_task = (await lease_tasks(ch, "sess-other", [OUT]))[OUT]
        method: StreamStreamMethod[bytes, bytes] = StreamStreamMethod(
            ch,
            PATHS["WorkerSession"],
            RawMessage,
            RawMessage,  # type: ignore[arg-type]
        )
        got: list[str] = []
        async with method.open(metadata=TOKENS["work"].header, timeout=30) as s:
            await s.send_message(
                bytes(WorkerMessage(open=SessionOpen(worker_id="w", queues=["sess"], credits=10)))
            )
            while len(got) < 2:
                msg = ServerMessage.parse(await s.recv_message())  # type: ignore[arg-type]
                got.append(f"{msg.task.tenant}/{msg.task.job_id}")
            # Another tenant's task, heartbeated on the session: as for no such task.
            codes = []
            for task_id in (other_task, "no-such-task"):
                beat = HeartbeatTaskRequest(task_id=task_id, worker_id="w")
                await s.send_message(bytes(WorkerMessage(heartbeat=beat)))
                answer = ServerMessage.parse(await s.recv_message())  # type: ignore[arg-type]
                codes.append((answer.heartbeat.code, answer.heartbeat.message))
            assert codes[0] == codes[1] and codes[0][0] == Status.NOT_FOUND.value
            await s.end()
            async for _ in s:
                pass
        assert got == [f"{IN}/i1", f"{IN}/i2"]
        left = await unary(
            ch,
            "LeaseTasks",
            bytes(LeaseTasksRequest(worker_id="w", max_tasks=10, queues=["sess"])),
            ROOT,
        )
        assert {t.job_id for t in LeaseTasksResponse.parse(left.reply).tasks} == {"o1", "o2"}
    finally:
        ch.close()


async def test_sighup_adds_and_revokes_tokens_while_a_worker_stays_connected(
    make_server: MakeServer, tmp_path: Path
) -> None:
    worker = Token("worker", "w-secret", [IN], ["work"])
    producer = Token("producer", "p-secret", [IN], ["produce"])
    path = write_auth(tmp_path / "auth.toml", [worker])
    server = await make_server(extra_args=["--auth-file", str(path)])
    ch = channel(server.host, server.port)
    lease = bytes(LeaseTasksRequest(worker_id="w", max_tasks=1, queues=["hup"], wait_ms=20_000))
    job = bytes(EnqueueRequest(tenant=IN, queue="hup"))
    try:
        assert (await unary(ch, "Enqueue", job, producer)).status is Status.UNAUTHENTICATED
        parked = asyncio.ensure_future(unary(ch, "LeaseTasks", lease, worker))
        write_auth(path, [worker, producer])
        server.send_signal(signal.SIGHUP)
        await wait_for_log(server, "reloaded: 2 token(s)")
        # The new token works at once, on the connection the worker's call is parked on.
        assert (await unary(ch, "Enqueue", job, producer)).status is Status.OK
        got = await parked
        assert got.status is Status.OK and len(LeaseTasksResponse.parse(got.reply).tasks) == 1
        # A bad file keeps the tokens in force, with one error line.
        path.write_text("[[tokens]]\nname = 'x'\n")
        server.send_signal(signal.SIGHUP)
        await wait_for_log(server, "auth file not reloaded")
        assert (await unary(ch, "Enqueue", job, producer)).status is Status.OK
        # Revoking the worker: its next call is refused; the connection stays up.
        write_auth(path, [producer])
        server.send_signal(signal.SIGHUP)
        await wait_for_log(server, "reloaded: 1 token(s)")
        quick = bytes(LeaseTasksRequest(worker_id="w", max_tasks=1, queues=["hup"]))
        assert (await unary(ch, "LeaseTasks", quick, worker)).status is Status.UNAUTHENTICATED
        assert (await unary(ch, "Enqueue", job, producer)).status is Status.OK
    finally:
        ch.close()


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[[tokens]]\nname = "a"\ntoken_sha256 = "00"\ntenants = []\nroles = []\n', "token_sha256"),
        (
            f'[[tokens]]\nname = "a"\ntoken_sha256 = "{"0" * 64}"\ntenants = ["a*b"]\nroles = []\n',
            "tenants[0]",
        ),
        (
            f'[[tokens]]\nname = "a"\ntoken_sha256 = "{"0" * 64}"\n'
            'tenants = []\nroles = ["root"]\n',
            "roles[0]",
        ),
        ('[[tokens]]\nname = "a"\n', "token_sha256: missing"),
        ("not toml [", "not valid TOML"),
    ],
)
async def test_a_bad_auth_file_stops_the_start_with_one_line(
    tmp_path: Path, text: str, named: str
) -> None:
    path = tmp_path / "auth.toml"
    path.write_text(text)
    proc = await asyncio.create_subprocess_exec(
        "python",
        "-m",
        "silo",
        "serve",
        "--store",
        "memory://",
        "--listen",
        "127.0.0.1:0",
        "--auth-file",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 2
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and named in lines[0], lines
    assert "listening" not in out.decode()


async def test_a_network_address_needs_an_auth_file_or_insecure(tmp_path: Path) -> None:
    def serve_sync(*flags: str) -> tuple[int, str]:
        # A thread and Popen, not asyncio's subprocesses: its child watcher sometimes loses a
        # child that exits at once (returncode 255, "Unknown child process pid").
        proc = subprocess.Popen(
            [sys.executable, "-m", "silo", "serve", "--store", "memory://", *flags],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the first line once serving, or "" when it exited
        if line:
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        return (proc.returncode if not line else -1), err

    async def serve(*flags: str) -> tuple[int, str]:
        return await asyncio.to_thread(serve_sync, *flags)

    code, err = await serve("--listen", "0.0.0.0:0")
    assert code == 2 and "--listen 0.0.0.0:0" in err and "--insecure" in err
    path = write_auth(tmp_path / "auth.toml", [ROOT])
    assert (await serve("--listen", "0.0.0.0:0", "--auth-file", str(path)))[0] == -1
    assert (await serve("--listen", "0.0.0.0:0", "--insecure"))[0] == -1
    assert (await serve("--listen", "localhost:0"))[0] == -1
    # The web UI's address too (docs/security.md#defaults): it acts on every job without a token.
    code, err = await serve("--listen", "127.0.0.1:0", "--http", "0.0.0.0:0")
    assert code == 2 and "--http 0.0.0.0:0" in err and "--insecure" in err
    flags = ("--listen", "127.0.0.1:0", "--http", "0.0.0.0:0")
    assert (await serve(*flags, "--auth-file", str(path)))[0] == -1
    assert (await serve(*flags, "--insecure"))[0] == -1


def test_the_token_check_reads_only_bearer_headers(tmp_path: Path) -> None:
    from silo import errors
    from silo.server.auth import Authenticator

    auth = Authenticator.from_file(write_auth(tmp_path / "auth.toml", [ROOT]))
    assert auth.verify({"authorization": "Bearer secret-root"}).name == "root"
    assert auth.verify({"authorization": "bearer  secret-root "}).name == "root"
    for header in [None, "", "secret-root", "Basic secret-root", "Bearer nope", "Bearer "]:
        with pytest.raises(errors.Unauthenticated):
            auth.verify({} if header is None else {"authorization": header})


async def test_cluster_status_passes_its_token(make_server: MakeServer, tmp_path: Path) -> None:
    """`silo cluster status` sends --token (or $SILO_TOKEN): without one the node refuses it;
    with an admin token it prints the node and its shards' counts."""
    server = await auth_server(make_server, tmp_path)
    base = [sys.executable, "-m", "silo", "cluster", "status", "--connect", server.address]

    def run(*extra: str, env_token: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "SILO_TOKEN"}
        if env_token is not None:
            env["SILO_TOKEN"] = env_token
        return subprocess.run(
            [*base, *extra], capture_output=True, text=True, timeout=60, env=env, check=False
        )

    refused = await asyncio.to_thread(run)
    assert refused.returncode == 1
    assert "UNAUTHENTICATED" in refused.stderr, refused.stderr
    for shown in (
        await asyncio.to_thread(run, "--token", ROOT.secret),
        await asyncio.to_thread(run, env_token=ROOT.secret),
    ):
        assert shown.returncode == 0, shown.stderr
        assert "1 node(s)" in shown.stdout and "SHARD" in shown.stdout, shown.stdout
        assert "unreachable" not in shown.stdout, shown.stdout
