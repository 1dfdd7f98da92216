"""Wire compatibility: Google's grpcio client, generated from proto/ at test time, drives the
broker. This is what a client in another language sees (not grpclib, not betterproto)."""

from __future__ import annotations

import importlib
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace

import grpc
import pytest
from grpc_tools import protoc
from silo.testing import ServerProcess

PROTO = Path(__file__).resolve().parent.parent / "proto" / "silo" / "v1" / "silo.proto"


@pytest.fixture(scope="module")
def pb(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """silo.proto compiled by grpc_tools.protoc (python_out + grpc_python_out) and imported.

    The file is compiled under another name so its modules cannot clash with the `silo`
    package; its `package silo.v1` (and so every wire name) is unchanged.
    """
    out = tmp_path_factory.mktemp("grpcio_stubs")
    shutil.copy(PROTO, out / "silo_wire.proto")
    include = Path(protoc.__file__).parent / "_proto"
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{out}",
            f"-I{include}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            str(out / "silo_wire.proto"),
        ]
    )
    assert rc == 0, "grpc_tools.protoc failed"
    sys.path.insert(0, str(out))
    try:
        messages: ModuleType = importlib.import_module("silo_wire_pb2")
        services: ModuleType = importlib.import_module("silo_wire_pb2_grpc")
    finally:
        sys.path.remove(str(out))
    return SimpleNamespace(m=messages, s=services)


@pytest.fixture
def grpcio_stub(shared_server: ServerProcess, pb: SimpleNamespace) -> Iterator[object]:
    with grpc.insecure_channel(shared_server.address) as channel:
        yield pb.s.SiloStub(channel)


def test_enqueue_lease_report_get_job(grpcio_stub, pb: SimpleNamespace, ns) -> None:
    m = pb.m
    resp = grpcio_stub.Enqueue(
        m.EnqueueRequest(
            tenant=ns.tenant,
            queue=ns.queue,
            priority=60,
            payload=b"from grpcio",
            metadata={"lang": "c++"},
            retry_policy=m.RetryPolicy(max_retries=1, schedule_ms=[0]),
        ),
        timeout=30,
    )
    job_id = resp.id
    assert job_id

    leased = grpcio_stub.LeaseTasks(
        m.LeaseTasksRequest(
            worker_id="grpcio-worker", max_tasks=10, queues=[ns.queue], wait_ms=5000
        ),
        timeout=30,
    )
    [task] = leased.tasks
    assert (task.job_id, task.tenant, task.queue, task.priority) == (
        job_id,
        ns.tenant,
        ns.queue,
        60,
    )
    assert task.payload == b"from grpcio"
    assert dict(task.metadata) == {"lang": "c++"}
    assert task.attempt == 1 and not task.is_last_attempt

    hb = grpcio_stub.HeartbeatTask(
        m.HeartbeatTaskRequest(task_id=task.task_id, worker_id="grpcio-worker", cursor=b"cur"),
        timeout=30,
    )
    assert not hb.cancelled and hb.lease_expires_at_ms > 0

    # An empty result is still a present oneof: a success.
    report = m.ReportTaskOutcomeRequest(task_id=task.task_id, worker_id="grpcio-worker", result=b"")
    assert report.WhichOneof("outcome") == "result"
    grpcio_stub.ReportTaskOutcome(report, timeout=30)

    job = grpcio_stub.GetJob(
        m.GetJobRequest(id=job_id, tenant=ns.tenant, include_attempts=True), timeout=30
    )
    assert job.status == m.JOB_STATUS_SUCCEEDED
    assert m.JobStatus.Name(job.status) == "JOB_STATUS_SUCCEEDED"
    assert job.result == b""
    assert job.attempt_count == 1
    [attempt] = job.attempts
    assert attempt.status == m.ATTEMPT_STATUS_SUCCEEDED
    assert attempt.task_id == task.task_id
    assert attempt.heartbeat_cursor == b"cur"
    assert job.retry_policy.max_retries == 1


def test_batches_and_failure(grpcio_stub, pb: SimpleNamespace, ns) -> None:
    m = pb.m
    jobs = [m.EnqueueRequest(id=f"g{i}", tenant=ns.tenant, queue=ns.queue) for i in range(3)]
    jobs.append(m.EnqueueRequest(id="g0", tenant=ns.tenant, queue=ns.queue))
    results = grpcio_stub.EnqueueBatch(m.EnqueueBatchRequest(jobs=jobs), timeout=30).results
    assert [r.code for r in results] == [0, 0, 0, grpc.StatusCode.ALREADY_EXISTS.value[0]]

    tasks = grpcio_stub.LeaseTasks(
        m.LeaseTasksRequest(worker_id="w", max_tasks=10, queues=[ns.queue]), timeout=30
    ).tasks
    assert [t.job_id for t in tasks] == ["g0", "g1", "g2"]
    reports = [
        m.ReportTaskOutcomeRequest(task_id=tasks[0].task_id, worker_id="w", result=b"ok"),
        m.ReportTaskOutcomeRequest(
            task_id=tasks[1].task_id,
            worker_id="w",
            failure=m.TaskFailure(code="bad", message="m", data=b"d", non_retryable=True),
        ),
        m.ReportTaskOutcomeRequest(
            task_id=tasks[2].task_id, worker_id="w", cancelled=m.TaskCancelled()
        ),
    ]
    out = grpcio_stub.ReportTaskOutcomes(m.ReportTaskOutcomesRequest(reports=reports), timeout=30)
    assert [r.code for r in out.results] == [0, 0, 0]
    statuses = [
        grpcio_stub.GetJob(m.GetJobRequest(id=f"g{i}", tenant=ns.tenant), timeout=30).status
        for i in range(3)
    ]
    assert statuses == [m.JOB_STATUS_SUCCEEDED, m.JOB_STATUS_FAILED, m.JOB_STATUS_CANCELLED]


def test_error_status_codes(grpcio_stub, pb: SimpleNamespace, ns) -> None:
    m = pb.m
    with pytest.raises(grpc.RpcError) as info:
        grpcio_stub.GetJob(m.GetJobRequest(id="missing", tenant=ns.tenant), timeout=30)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND

    with pytest.raises(grpc.RpcError) as info:
        grpcio_stub.Enqueue(
            m.EnqueueRequest(tenant=ns.tenant, queue=ns.queue, priority=101), timeout=30
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "priority" in info.value.details().lower()

    with pytest.raises(grpc.RpcError) as info:
        grpcio_stub.Cancel(m.CancelRequest(id="missing", tenant=ns.tenant), timeout=30)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND

    # RPCs of later issues answer UNIMPLEMENTED over the wire.
    with pytest.raises(grpc.RpcError) as info:
        grpcio_stub.ListJobs(m.ListJobsRequest(tenant=ns.tenant), timeout=30)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
