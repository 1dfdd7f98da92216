"""Wire compatibility: Google's grpcio client, generated from proto/ at test time, drives the
broker, unary calls and both streams. This is what a client in another language sees (not
grpclib, not betterproto)."""

from __future__ import annotations

import importlib
import queue
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

    # GetCluster with no field set: a single broker is one node owning every shard.
    cluster = grpcio_stub.GetCluster(m.GetClusterRequest(), timeout=30)
    assert [sorted(n.shards) for n in cluster.nodes] == [list(range(cluster.shard_count))]


def test_enqueue_stream(grpcio_stub, pb: SimpleNamespace, ns) -> None:
    m = pb.m
    requests = [m.EnqueueRequest(id=f"s{i}", tenant=ns.tenant, queue=ns.queue) for i in range(50)]
    requests.insert(10, m.EnqueueRequest(tenant=ns.tenant, queue=ns.queue, priority=500))
    results = list(grpcio_stub.EnqueueStream(iter(requests), timeout=30))
    assert len(results) == 51
    assert [r.id for r in results[:10] + results[11:]] == [f"s{i}" for i in range(50)]
    assert all(r.code == 0 for r in results[:10] + results[11:])
    assert results[10].code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "priority" in results[10].message


def test_worker_session(grpcio_stub, pb: SimpleNamespace, ns) -> None:
    m = pb.m
    job_id = grpcio_stub.Enqueue(
        m.EnqueueRequest(tenant=ns.tenant, queue=ns.queue, payload=b"streamed"), timeout=30
    ).id
    outbox: queue.Queue[object] = queue.Queue()
    outbox.put(
        m.WorkerMessage(open=m.SessionOpen(worker_id="grpcio-w", queues=[ns.queue], credits=1))
    )

    def messages() -> Iterator[object]:
        while (message := outbox.get()) is not None:
            yield message

    replies = grpcio_stub.WorkerSession(messages(), timeout=30)
    first = next(replies)
    assert first.WhichOneof("kind") == "task"
    task = first.task
    assert (task.job_id, task.payload, task.attempt) == (job_id, b"streamed", 1)
    outbox.put(m.WorkerMessage(heartbeat=m.HeartbeatTaskRequest(task_id=task.task_id)))
    hb = next(replies)
    assert hb.WhichOneof("kind") == "heartbeat"
    assert (hb.heartbeat.task_id, hb.heartbeat.code, hb.heartbeat.cancelled) == (
        task.task_id,
        0,
        False,
    )
    outbox.put(
        m.WorkerMessage(outcome=m.ReportTaskOutcomeRequest(task_id=task.task_id, result=b"r"))
    )
    done = next(replies)
    assert done.WhichOneof("kind") == "outcome"
    assert (done.outcome.task_id, done.outcome.code) == (task.task_id, 0)
    outbox.put(None)  # the worker closes its side: the session ends OK
    assert list(replies) == []
    assert replies.code() == grpc.StatusCode.OK
    job = grpcio_stub.GetJob(m.GetJobRequest(id=job_id, tenant=ns.tenant), timeout=30)
    assert job.status == m.JOB_STATUS_SUCCEEDED

    # A session that does not open first ends with INVALID_ARGUMENT naming `open`.
    with pytest.raises(grpc.RpcError) as info:
        list(grpcio_stub.WorkerSession(iter([m.WorkerMessage(credits=1)]), timeout=30))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("open:")
