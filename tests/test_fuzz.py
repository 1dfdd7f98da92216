"""Fuzzing the request decoders of a real `silo serve` as an external client would
(docs/security.md#hostile-input): hypothesis draws requests for every RPC of the core's table
(and the health service) — random bytes, protobuf-shaped messages with random fields, wire types
and nesting, and valid requests with bytes flipped, cut or inserted — and each answer must be a
status other than INTERNAL or UNKNOWN; afterwards the broker still serves and logged no
traceback or panic. The example counts are printed in the run's figures."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import StoreFactory
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.health.v1.health_pb2 import HealthCheckRequest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from secure import PATHS, channel, stream, unary
from silo._proto.silo.v1 import (
    CancelRequest,
    EnqueueBatchRequest,
    EnqueueRequest,
    GetJobRequest,
    HeartbeatTaskRequest,
    LeaseTasksRequest,
    QueueRef,
    ReportTaskOutcomeRequest,
    Schedule,
    SessionOpen,
    WorkerMessage,
)
from silo.testing import ServerProcess

HEALTH = "/grpc.health.v1.Health/Check"
#: Statuses a decoder must never answer.
FORBIDDEN = {Status.INTERNAL, Status.UNKNOWN}
#: Long-polls may wait for the client's deadline (a well-formed request that parks).
LONG_POLLS = {"LeaseTasks", "WaitJob"}
STREAMS = {"EnqueueStream", "WorkerSession"}
METHODS = sorted(PATHS)
EXAMPLES = 300

#: A valid request per kind, for the mutation strategy.
SAMPLES = [
    bytes(EnqueueRequest(id="a", tenant="t", queue="q", payload=b"p", metadata={"k": "v"})),
    bytes(EnqueueBatchRequest(jobs=[EnqueueRequest(queue="q"), EnqueueRequest(queue="r")])),
    bytes(CancelRequest(id="a", tenant="t")),
    bytes(GetJobRequest(id="a")),
    bytes(LeaseTasksRequest(worker_id="w", max_tasks=2, queues=["q"], wait_ms=0)),
    bytes(HeartbeatTaskRequest(task_id="x", worker_id="w")),
    bytes(ReportTaskOutcomeRequest(task_id="x", worker_id="w")),
    bytes(QueueRef(tenant="t", queue="q")),
    bytes(Schedule(tenant="t", name="n", cron="* * * * *", job=EnqueueRequest(queue="q"))),
    bytes(WorkerMessage(open=SessionOpen(worker_id="w", queues=["q"]))),
    HealthCheckRequest(service="silo.v1.Silo").SerializeToString(),
]


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, wire: int, value: bytes | int) -> bytes:
    key = varint((number << 3) | wire)
    if wire == 0:
        assert isinstance(value, int)
        return key + varint(value)
    assert isinstance(value, bytes)
    if wire == 2:
        return key + varint(len(value)) + value
    return key + value  # 1 (8 bytes) and 5 (4 bytes)


def messages() -> st.SearchStrategy[bytes]:
    """Protobuf-shaped messages: fields 1..20 of every wire type, strings, nested messages,
    varints up to 2**64 - 1 (negative int64s, out-of-range enums)."""
    leaf = st.one_of(
        st.tuples(st.integers(1, 20), st.just(0), st.integers(0, 2**64 - 1)),
        st.tuples(st.integers(1, 20), st.just(1), st.binary(min_size=8, max_size=8)),
        st.tuples(st.integers(1, 20), st.just(5), st.binary(min_size=4, max_size=4)),
        st.tuples(st.integers(1, 20), st.just(2), st.binary(max_size=64)),
        st.tuples(st.integers(1, 20), st.just(2), st.text(max_size=40).map(lambda s: s.encode())),
    )

    def encode(fields: list[tuple[int, int, bytes | int]]) -> bytes:
        return b"".join(field(*f) for f in fields)

    flat = st.lists(leaf, max_size=12).map(encode)
    nested = st.recursive(
        flat,
        lambda inner: st.lists(
            st.one_of(leaf, st.tuples(st.integers(1, 20), st.just(2), inner)), max_size=8
        ).map(encode),
        max_leaves=20,
    )
    return nested


def mutations() -> st.SearchStrategy[bytes]:
    """A valid request with a few bytes flipped, inserted or cut off."""

    def mutate(sample: bytes, edits: list[tuple[int, int, int]]) -> bytes:
        data = bytearray(sample)
        for kind, pos, byte in edits:
            if not data:
                break
            i = pos % len(data)
            if kind == 0:
                data[i] ^= byte or 1
            elif kind == 1:
                data.insert(i, byte)
            else:
                del data[i:]
        return bytes(data)

    return st.builds(
        mutate,
        st.sampled_from(SAMPLES),
        st.lists(
            st.tuples(st.integers(0, 2), st.integers(0, 10_000), st.integers(0, 255)),
            min_size=1,
            max_size=4,
        ),
    )


KINDS = {
    "random bytes": st.binary(max_size=512),
    "protobuf-shaped": messages(),
    "mutated requests": mutations(),
}


@pytest.fixture(scope="module")
def fuzzed(
    store_factory: StoreFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, asyncio.AbstractEventLoop, Channel]]:
    """A server, and a loop and channel of this module's own (hypothesis runs sync tests)."""
    log_dir = tmp_path_factory.mktemp("fuzz-logs")
    with ServerProcess(store_factory("fuzz"), log_dir=Path(log_dir)) as server:
        loop = asyncio.new_event_loop()
        ch = loop.run_until_complete(_channel(server))
        yield server, loop, ch
        ch.close()
        loop.close()


async def _channel(server: ServerProcess) -> Channel:
    return channel(server.host, server.port)


async def call(ch: Channel, method: str, body: bytes) -> Status:
    """The status one fuzzed request got."""
    if method == "Health":
        from secure import RawMessage, UnaryUnaryMethod

        health: UnaryUnaryMethod[bytes, bytes] = UnaryUnaryMethod(
            ch,
            HEALTH,
            RawMessage,
            RawMessage,  # type: ignore[arg-type]
        )
        try:
            await health(body, timeout=5)
        except Exception as exc:
            return getattr(exc, "status", Status.UNKNOWN)
        return Status.OK
    if method in STREAMS:
        out, _ = await stream(ch, method, [body], timeout=5)
        return out.status
    return (await unary(ch, method, body, timeout=2 if method in LONG_POLLS else 10)).status


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_no_request_gets_internal_or_unknown(
    kind: str,
    fuzzed: tuple[ServerProcess, asyncio.AbstractEventLoop, Channel],
    record_figure: Callable[[str], None],
) -> None:
    server, loop, ch = fuzzed
    seen: Counter[Status] = Counter()
    bad: list[tuple[str, bytes, Status]] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(method=st.sampled_from([*METHODS, "Health"]), body=KINDS[kind])
    def one(method: str, body: bytes) -> None:
        status = loop.run_until_complete(call(ch, method, body))
        seen[status] += 1
        if status in FORBIDDEN or (status == Status.DEADLINE_EXCEEDED and method not in LONG_POLLS):
            bad.append((method, body, status))

    one()
    record_figure(
        f"fuzz {kind}: {sum(seen.values())} examples over {len(METHODS) + 1} methods, "
        + ", ".join(f"{s.name} {n}" for s, n in seen.most_common())
    )
    assert not bad, bad[:5]
    assert server.is_running()
    enqueued = loop.run_until_complete(
        unary(ch, "Enqueue", bytes(EnqueueRequest(queue="after-fuzz", payload=b"x")))
    )
    assert enqueued.status == Status.OK, enqueued
    log = server.stderr_text()
    assert "Traceback" not in log and "panicked" not in log
