"""The audit log (docs/security.md#audit-log) of a real `silo serve --auth-file`: one line per
operator action that succeeded, naming the token, the tenant and the job, queue or schedule;
nothing for reads or refused calls."""

from __future__ import annotations

import re
import time
from pathlib import Path

from conftest import MakeServer
from grpclib.const import Status
from secure import Token, channel, unary, write_auth
from silo._proto.silo.v1 import (
    BulkJobsRequest,
    CancelRequest,
    DeleteJobRequest,
    EnqueueRequest,
    ExpediteJobRequest,
    GetJobRequest,
    JobStatus,
    ListJobsRequest,
    QueueRef,
    RestartJobRequest,
    Schedule,
    ScheduleRef,
)

OPS = Token("ops-alice", "secret-ops", ["acme"], ["operate"])
OTHER = Token("ops-bob", "secret-bob", ["globex"], ["operate"])


def audit_lines(text: str) -> list[str]:
    return [m.group(0) for m in re.finditer(r"audit rpc=.*", text)]


async def test_each_operator_action_is_one_line_with_the_token_tenant_and_subject(
    make_server: MakeServer, tmp_path: Path
) -> None:
    path = write_auth(tmp_path / "auth.toml", [OPS, OTHER])
    server = await make_server(extra_args=["--auth-file", str(path)])
    ch = channel(server.host, server.port)
    try:
        job = bytes(EnqueueRequest(id="j-1", tenant="acme", queue="mail", payload=b"x"))
        assert (await unary(ch, "Enqueue", job, OPS)).status == Status.OK
        assert (
            await unary(ch, "GetJob", bytes(GetJobRequest(id="j-1", tenant="acme")), OPS)
        ).status == Status.OK
        cancel = bytes(CancelRequest(id="j-1", tenant="acme"))
        denied = await unary(ch, "Cancel", cancel, OTHER)
        assert denied.status == Status.PERMISSION_DENIED, denied
        assert (await unary(ch, "Cancel", cancel, OPS)).status == Status.OK
        restart = bytes(RestartJobRequest(id="j-1", tenant="acme"))
        assert (await unary(ch, "RestartJob", restart, OPS)).status == Status.OK
        job2 = bytes(
            EnqueueRequest(
                id="j-2",
                tenant="acme",
                queue="mail",
                start_at_ms=int(time.time() * 1000) + 3_600_000,
            )
        )
        assert (await unary(ch, "Enqueue", job2, OPS)).status == Status.OK
        expedite = bytes(ExpediteJobRequest(id="j-2", tenant="acme"))
        assert (await unary(ch, "ExpediteJob", expedite, OPS)).status == Status.OK
        bulk = BulkJobsRequest(
            filter=ListJobsRequest(tenant="acme", queue="mail", statuses=[JobStatus.PENDING]),
            limit=10,
        )
        assert (await unary(ch, "CancelJobs", bytes(bulk), OPS)).status == Status.OK
        delete = bytes(DeleteJobRequest(id="j-2", tenant="acme"))
        assert (await unary(ch, "DeleteJob", delete, OPS)).status == Status.OK
        queue = bytes(QueueRef(tenant="acme", queue="mail"))
        assert (await unary(ch, "PauseQueue", queue, OPS)).status == Status.OK
        assert (await unary(ch, "ResumeQueue", queue, OPS)).status == Status.OK
        schedule = Schedule(
            tenant="acme", name="nightly", cron="0 3 * * *", job=EnqueueRequest(queue="mail")
        )
        put = await unary(ch, "PutSchedule", bytes(schedule), OPS)
        assert put.status == Status.OK, put
        ref = bytes(ScheduleRef(tenant="acme", name="nightly"))
        assert (await unary(ch, "DeleteSchedule", ref, OPS)).status == Status.OK
    finally:
        ch.close()
    assert audit_lines(server.stderr_text()) == [
        'audit rpc=Cancel token="ops-alice" tenant="acme" job_ids=["j-1"]',
        'audit rpc=RestartJob token="ops-alice" tenant="acme" job_ids=["j-1"]',
        'audit rpc=ExpediteJob token="ops-alice" tenant="acme" job_ids=["j-2"]',
        'audit rpc=CancelJobs token="ops-alice" tenant="acme" '
        'filter={queue="mail" statuses=["JOB_STATUS_PENDING"]} limit=10 matched=2 changed=2 '
        "more=false",
        'audit rpc=DeleteJob token="ops-alice" tenant="acme" job_ids=["j-2"]',
        'audit rpc=PauseQueue token="ops-alice" tenant="acme" queue="mail"',
        'audit rpc=ResumeQueue token="ops-alice" tenant="acme" queue="mail"',
        'audit rpc=PutSchedule token="ops-alice" tenant="acme" schedule="nightly" '
        'cron="0 3 * * *" interval_ms=0 paused=false',
        'audit rpc=DeleteSchedule token="ops-alice" tenant="acme" schedule="nightly"',
    ]
