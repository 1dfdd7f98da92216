"""The native conversions (rust/py/convert/): for every unary reply, a message with every field
set (nested ones too) decodes into a value whose every dataclass field is set and equal to the
wire's. The decoder builds instances without running `__init__` (so no default fills a field it
forgets): this is what catches a field added to a type or to the wire and not to the decoder.
And the client side of the streams: requests framed many at a time, answers decoded from chunks
cut anywhere."""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Mapping
from typing import Any

import betterproto2
import pytest
import silo
from silo import _native
from silo._proto.silo import v1 as wire

#: The reply message of each unary RPC that answers a value, and the Python type it becomes.
REPLIES: dict[str, tuple[type[betterproto2.Message], Any]] = {
    "EnqueueBatch": (wire.EnqueueBatchResponse, list),
    "LeaseTasks": (wire.LeaseTasksResponse, list),
    "HeartbeatTask": (wire.HeartbeatTaskResponse, silo.HeartbeatResult),
    "ReportTaskOutcomes": (wire.ReportTaskOutcomesResponse, list),
    "GetJob": (wire.Job, silo.Job),
    "WaitJob": (wire.Job, silo.Job),
    "RestartJob": (wire.Job, silo.Job),
    "ExpediteJob": (wire.Job, silo.Job),
    "ListJobs": (wire.ListJobsResponse, silo.JobPage),
    "ListQueues": (wire.ListQueuesResponse, list),
    "CancelJobs": (wire.BulkJobsResponse, silo.BulkResult),
    "RestartJobs": (wire.BulkJobsResponse, silo.BulkResult),
    "DeleteJobs": (wire.BulkJobsResponse, silo.BulkResult),
    "PauseQueue": (wire.QueueStats, silo.QueueStats),
    "ResumeQueue": (wire.QueueStats, silo.QueueStats),
    "PutSchedule": (wire.Schedule, silo.Schedule),
    "GetSchedule": (wire.Schedule, silo.Schedule),
    "ListSchedules": (wire.ListSchedulesResponse, silo.SchedulePage),
    "GetCluster": (wire.Cluster, silo.Cluster),
}


def filled(cls: type[betterproto2.Message], depth: int = 0) -> betterproto2.Message:
    """An instance of `cls` with every field set to a value that is not its default."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        values[field.name] = _value(hints[field.name], field.name, depth)
    return cls(**values)


def _value(hint: Any, name: str, depth: int) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:  # X | None
        return _value(next(a for a in args if a is not type(None)), name, depth)
    if origin is list:
        return [_value(args[0], name, depth), _value(args[0], name, depth)]
    if origin is dict:
        return {"k1": _value(args[1], name, depth), "k2": _value(args[1], name, depth)}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return list(hint)[1]
    if isinstance(hint, type) and issubclass(hint, betterproto2.Message):
        return filled(hint, depth + 1)
    if hint is bool:
        return True
    if hint is int:
        return 7 + depth
    if hint is float:
        return 1.5
    if hint is str:
        return f"{name}-{depth}"
    if hint is bytes:
        return f"{name}-{depth}".encode()
    raise AssertionError(f"no sample value for {hint!r}")


def assert_same(value: Any, message: Any, where: str) -> None:
    """`value` (a silo.types value) carries every field of the wire `message`, equal."""
    if isinstance(message, betterproto2.Message):
        assert dataclasses.is_dataclass(value), where
        names = {f.name for f in dataclasses.fields(value)}
        for field in dataclasses.fields(value):
            assert hasattr(value, field.name), f"{where}.{field.name} is not set"
        for field in dataclasses.fields(message):
            assert field.name in names, f"{where}: the wire's {field.name} is not carried"
            assert_same(
                getattr(value, field.name),
                getattr(message, field.name),
                f"{where}.{field.name}",
            )
    elif isinstance(message, list):
        assert isinstance(value, list | tuple), where
        assert len(value) == len(message), where
        for i, (v, m) in enumerate(zip(value, message, strict=True)):
            assert_same(v, m, f"{where}[{i}]")
    elif isinstance(message, dict):
        assert isinstance(value, Mapping), where
        assert dict(value) == message, where
    elif isinstance(message, enum.Enum):
        assert isinstance(value, enum.Enum) and value.value == message.value, where
    else:
        assert value == message and type(value) is type(message), where


@pytest.mark.parametrize("rpc", sorted(REPLIES))
def test_every_field_of_a_reply_is_decoded(rpc: str) -> None:
    message_class, python_type = REPLIES[rpc]
    message = filled(message_class)
    value = _native.decode_reply(rpc, bytes(message))
    assert isinstance(value, python_type)
    if python_type is list:
        [(_, items)] = [(f.name, getattr(message, f.name)) for f in dataclasses.fields(message)]
        assert_same(value, items, rpc)
    else:
        assert_same(value, message, rpc)


def test_enqueue_reply_is_an_id_with_deduplicated() -> None:
    value = _native.decode_reply("Enqueue", bytes(wire.EnqueueResponse(id="j", deduplicated=True)))
    assert isinstance(value, silo.Enqueued)
    assert (value, value.id, value.deduplicated) == ("j", "j", True)


def test_decoded_values_behave_as_dataclasses() -> None:
    """Values made without `__init__` compare, hash, print and stay frozen like any other."""
    message = filled(wire.Task)
    [task] = _native.decode_reply("LeaseTasks", bytes(wire.LeaseTasksResponse(tasks=[message])))
    again = silo.Task(**{f.name: getattr(task, f.name) for f in dataclasses.fields(task)})
    assert task == again and repr(task) == repr(again)
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.task_id = "x"  # type: ignore[misc]
    assert dataclasses.replace(task, attempt=9).attempt == 9


def _framed(*messages: betterproto2.Message) -> bytes:
    return b"".join(b"\x00" + len(bytes(m)).to_bytes(4, "big") + bytes(m) for m in messages)


def test_stream_answers_decode_in_chunks_cut_anywhere() -> None:
    """decode_frames takes whole messages from the front of a chunk and leaves a cut one for the
    next chunk, wherever the chunk ends."""
    task = filled(wire.Task)
    data = _framed(
        wire.ServerMessage(task=task),
        wire.ServerMessage(
            heartbeat=wire.HeartbeatResult(
                task_id="t", code=9, cancelled=True, lease_expires_at_ms=5, message="m"
            )
        ),
        wire.ServerMessage(outcome=wire.OutcomeResult(task_id="t", code=6, message="again")),
    )
    for cut in range(len(data) + 1):
        answers, used = _native.decode_frames("WorkerSession", data[:cut])
        more, rest = _native.decode_frames("WorkerSession", data[used:])
        assert used + rest == len(data)
        decoded = answers + more
        assert len(decoded) == 3
        assert_same(decoded[0], task, "task")
        assert decoded[1] == (9, "m", True, 5)
        assert decoded[2] == silo.ReportResult(code=6, message="again")
    [result], used = _native.decode_frames(
        "EnqueueStream",
        _framed(wire.EnqueueResult(id="j", code=6, message="exists", deduplicated=True)),
    )
    assert result == silo.EnqueueResult(id="j", code=6, message="exists", deduplicated=True)


def test_stream_requests_encode_many_at_once() -> None:
    reports = [
        silo.Report(task_id="a", worker_id="w", result=b"r"),
        silo.Report(task_id="b", worker_id="w", failure=silo.TaskFailure(code="E", data=b"tb")),
        silo.Report(task_id="c", worker_id="w", cancelled=True),
    ]
    data = _native.encode_frames("outcome", reports)
    messages = [wire.WorkerMessage.parse(m) for m in _split(data)]
    outcomes = [m.outcome for m in messages]
    assert [o.task_id for o in outcomes if o is not None] == ["a", "b", "c"]
    assert outcomes[0] is not None and outcomes[0].result == b"r"
    assert outcomes[1] is not None and outcomes[1].failure is not None
    assert outcomes[1].failure.code == "E" and outcomes[1].failure.data == b"tb"
    assert outcomes[2] is not None and outcomes[2].cancelled is not None
    [heartbeat] = _split(_native.encode_frames("heartbeat", [{"task_id": "t", "cursor": b"c"}]))
    assert wire.WorkerMessage.parse(heartbeat).heartbeat == wire.HeartbeatTaskRequest(
        task_id="t", cursor=b"c"
    )
    [enqueue] = _split(_native.encode_frames("enqueue", [silo.NewJob(queue="q", priority=7)]))
    assert wire.EnqueueRequest.parse(enqueue) == wire.EnqueueRequest(queue="q", priority=7)


def _split(data: bytes) -> list[bytes]:
    """The messages of framed stream data."""
    out = []
    while data:
        assert data[0] == 0  # not compressed
        size = int.from_bytes(data[1:5], "big")
        out.append(data[5 : 5 + size])
        data = data[5 + size :]
    return out


def test_stream_requests_name_a_bad_field() -> None:
    with pytest.raises(silo.InvalidArgument, match=r"^priority: expected an int, got str"):
        _native.encode_frames("enqueue", [{"queue": "q", "priority": "high"}])
    with pytest.raises(silo.InvalidArgument, match="outcome"):
        _native.encode_frames("outcome", [silo.Report(task_id="a", worker_id="w")])
    with pytest.raises(ValueError, match="no stream request kind"):
        _native.encode_frames("nope", [])
    with pytest.raises(ValueError, match="no stream answers"):
        _native.decode_frames("Enqueue", b"")
