"""Hostile input at the transport (docs/security.md#limits) against a real `silo serve`: what a
client that no gRPC library would produce gets (tests/raw_h2.py speaks HTTP/2 by hand), and the
caps on connections, streams and long-polls. Each refusal is RESOURCE_EXHAUSTED (or a closed
connection for a frame-level violation) with a log line naming the limit, and the broker keeps
serving afterwards."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from conftest import MakeServer
from grpclib.client import Channel, StreamStreamMethod, UnaryUnaryMethod
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.health.v1.health_pb2 import HealthCheckRequest
from helpers import admin_gauges, unique, wait_for_gauge, wait_parked
from raw_h2 import RawH2, data_frame_header, prefix
from secure import PATHS, channel, stream, unary
from silo._proto.silo.admin.v1 import AdminStub
from silo._proto.silo.v1 import EnqueueRequest, GetJobRequest, LeaseTasksRequest, WaitJobRequest
from silo.server.codec import RawMessage
from silo.testing import ServerProcess

ENQUEUE = "/silo.v1.Silo/Enqueue"
FRAME_SIZE_ERROR = 6


def rss_kib(pid: int) -> int:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def logged(server: ServerProcess, text: str, timeout: float = 10.0) -> None:
    """Wait until the server's log has `text` (its stderr is copied to a file by a thread, so a
    line written just before an answer may land just after it)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while text not in server.stderr_text():
        assert asyncio.get_running_loop().time() < deadline, f"not logged: {text!r}"
        await asyncio.sleep(0.05)


async def still_serving(server: ServerProcess) -> None:
    """An Enqueue and a GetJob of it succeed on a new connection."""
    ch = channel(server.host, server.port)
    try:
        job = unique("alive")
        out = await unary(ch, "Enqueue", bytes(EnqueueRequest(id=job, queue="q", payload=b"x")))
        assert out.status == Status.OK, out
        out = await unary(ch, "GetJob", bytes(GetJobRequest(id=job)))
        assert out.status == Status.OK, out
    finally:
        ch.close()


async def test_health_answers_invalid_argument_to_an_undecodable_request(
    server: ServerProcess,
) -> None:
    ch = channel(server.host, server.port)
    try:
        method: UnaryUnaryMethod[bytes, bytes] = UnaryUnaryMethod(
            ch,
            "/grpc.health.v1.Health/Check",
            RawMessage,
            RawMessage,  # type: ignore[arg-type]
        )
        for _ in range(3):
            with pytest.raises(GRPCError) as caught:
                await method(b"\xff\xff\xff")
            assert caught.value.status == Status.INVALID_ARGUMENT, caught.value
        ok = await method(HealthCheckRequest(service="silo.v1.Silo").SerializeToString())
        assert ok  # SERVING
    finally:
        ch.close()
    assert "Traceback" not in server.stderr_text()


async def test_a_message_over_the_limit_is_refused_from_its_prefix(server: ServerProcess) -> None:
    """70 MiB announced, 5 bytes sent: the answer comes without the body being waited for."""
    raw = await RawH2.open(server.host, server.port)
    try:
        sid = await raw.request(ENQUEUE)
        await raw.send(sid, prefix(70 * 1024 * 1024) + b"\x0a\x01")
        answer = await raw.ended(sid)
        assert answer.status == Status.RESOURCE_EXHAUSTED.value, answer
        assert "exceeds the limit of 67108864 bytes" in answer.message
    finally:
        await raw.close()
    await logged(server, "refused (message_bytes)")
    await still_serving(server)


async def test_a_frame_over_the_advertised_size_closes_the_connection_at_once(
    server: ServerProcess,
) -> None:
    """A DATA frame announcing 1 MiB (the server advertises 16 KiB) and then stalling: the
    connection is closed with FRAME_SIZE_ERROR from the frame's header alone (h2 alone would wait
    for the megabyte)."""
    raw = await RawH2.open(server.host, server.port)
    try:
        sid = await raw.request(ENQUEUE)
        raw.write_raw(data_frame_header(1024 * 1024, sid) + b"\x00" * 100)
        await raw.flush()
        with contextlib.suppress(ConnectionError):
            await raw.writer.drain()
        closed = await raw.closed(timeout=30)
        assert closed.goaway == FRAME_SIZE_ERROR, closed
    finally:
        await raw.close()
    await still_serving(server)


async def test_a_client_that_stalls_mid_request_is_refused(make_server: MakeServer) -> None:
    server = await make_server(extra_args=["--request-timeout-ms", "500"])
    raw = await RawH2.open(server.host, server.port)
    try:
        sid = await raw.request(ENQUEUE)
        await raw.send(sid, prefix(1000) + b"\x0a" * 10)  # 10 bytes of 1,000, then nothing
        answer = await raw.ended(sid)
        assert answer.status == Status.RESOURCE_EXHAUSTED.value, answer
        assert "did not arrive within 500 ms" in answer.message
    finally:
        await raw.close()
    await logged(server, "refused (slow_client)")
    await still_serving(server)


async def test_an_idle_connection_is_closed(make_server: MakeServer) -> None:
    server = await make_server(extra_args=["--idle-timeout-ms", "300"])
    raw = await RawH2.open(server.host, server.port)
    try:
        closed = await raw.closed(timeout=30)
        assert closed.closed and closed.goaway == 0, closed  # GOAWAY NO_ERROR
    finally:
        await raw.close()
    await still_serving(server)


async def test_connections_over_the_cap_are_refused(make_server: MakeServer) -> None:
    server = await make_server(extra_args=["--max-connections", "3"])
    held = [channel(server.host, server.port) for _ in range(3)]
    try:
        for ch in held:
            out = await unary(ch, "Enqueue", bytes(EnqueueRequest(queue="q", payload=b"x")))
            assert out.status == Status.OK, out
        extra = channel(server.host, server.port)
        try:
            out = await unary(extra, "Enqueue", bytes(EnqueueRequest(queue="q", payload=b"x")))
        finally:
            extra.close()
        assert out.status == Status.RESOURCE_EXHAUSTED, out
        assert "at most 3 connections" in out.message
    finally:
        for ch in held:
            ch.close()
    await logged(server, "refused (connections)")


async def test_streams_over_the_cap_per_connection_are_refused(make_server: MakeServer) -> None:
    server = await make_server(extra_args=["--max-streams-per-connection", "2"])
    ch = channel(server.host, server.port)
    try:
        method: StreamStreamMethod[bytes, bytes] = StreamStreamMethod(
            ch,
            PATHS["EnqueueStream"],
            RawMessage,
            RawMessage,  # type: ignore[arg-type]
        )
        async with contextlib.AsyncExitStack() as stack:
            held = []
            for _ in range(2):
                s = await stack.enter_async_context(method.open())
                await s.send_message(bytes(EnqueueRequest(queue="q", payload=b"x")))
                await s.recv_message()  # the stream is open and served
                held.append(s)
            third, _ = await stream(ch, "EnqueueStream", [bytes(EnqueueRequest(queue="q"))])
            assert third.status == Status.RESOURCE_EXHAUSTED, third
            assert "at most 2 EnqueueStream/WorkerSession streams" in third.message
            for s in held:
                await s.end()
                async for _ in s:
                    pass
    finally:
        ch.close()
    await logged(server, "refused (streams_per_connection)")
    await still_serving(server)


async def test_long_polls_over_the_caps_are_refused(make_server: MakeServer) -> None:
    server = await make_server(
        extra_args=["--max-long-polls-per-connection", "2", "--max-long-polls", "3"]
    )
    poll = bytes(LeaseTasksRequest(worker_id="w", max_tasks=1, queues=["none"], wait_ms=30_000))
    a, b = channel(server.host, server.port), channel(server.host, server.port)
    admin_ch = server.channel()
    admin = AdminStub(admin_ch)
    parked = [asyncio.ensure_future(unary(a, "LeaseTasks", poll)) for _ in range(2)]
    try:
        await wait_parked(admin, 2)
        out = await unary(a, "LeaseTasks", poll)
        assert out.status == Status.RESOURCE_EXHAUSTED, out
        assert "on one connection" in out.message
        parked.append(asyncio.ensure_future(unary(b, "LeaseTasks", poll)))
        await wait_parked(admin, 3)
        out = await unary(b, "LeaseTasks", poll)
        assert out.status == Status.RESOURCE_EXHAUSTED, out
        assert "at most 3 LeaseTasks/WaitJob calls" in out.message
    finally:
        for p in parked:
            p.cancel()
        await asyncio.gather(*parked, return_exceptions=True)
        a.close()
        b.close()
        admin_ch.close()
    await logged(server, "refused (long_polls_per_connection)")
    await logged(server, "refused (long_polls)")
    await still_serving(server)


async def test_idle_connections_stalled_frames_and_parked_long_polls_leave_memory_bounded(
    make_server: MakeServer,
) -> None:
    """500 idle connections, 10 connections announcing a 16 MiB frame and stalling, and 1,000
    parked long-polls: the broker's RSS grows by well under what buffering them would take
    (10 x 16 MiB alone), and it serves throughout."""
    server = await make_server()
    assert server.pid is not None
    await still_serving(server)
    before = rss_kib(server.pid)
    raws: list[RawH2] = []
    channels: list[Channel] = []
    polls: list[asyncio.Future[object]] = []
    admin_ch = server.channel()
    try:
        for _ in range(500):
            raws.append(await RawH2.open(server.host, server.port))
        stalled = []
        for _ in range(10):
            raw = await RawH2.open(server.host, server.port)
            sid = await raw.request(ENQUEUE)
            raw.write_raw(data_frame_header(16 * 1024 * 1024 - 1, sid) + b"\x00" * 16384)
            await raw.flush()
            stalled.append(raw)
        for raw in stalled:
            assert (await raw.closed(timeout=30)).goaway == FRAME_SIZE_ERROR
            await raw.close()
        poll = bytes(LeaseTasksRequest(worker_id="w", max_tasks=1, queues=["none"], wait_ms=60_000))
        for _ in range(20):  # 50 long-polls per connection (the cap is 64)
            ch = channel(server.host, server.port)
            channels.append(ch)
            polls.extend(asyncio.ensure_future(unary(ch, "LeaseTasks", poll)) for _ in range(50))
        await wait_parked(AdminStub(admin_ch), 1000)
        await still_serving(server)
        grown_mib = (rss_kib(server.pid) - before) / 1024
        # Buffering the stalled frames alone would be 160 MiB.
        assert grown_mib < 120, f"RSS grew by {grown_mib:.0f} MiB"
        print(f"RSS grew by {grown_mib:.1f} MiB with 500 idle connections, 1,000 long-polls")
    finally:
        for p in polls:
            p.cancel()
        # Every cancelled call has ended before its channel closes (no task or socket left for
        # the garbage collector to warn about).
        await asyncio.gather(*polls, return_exceptions=True)
        for raw in raws:
            await raw.close()
        for ch in channels:
            ch.close()
        admin_ch.close()
    await still_serving(server)


async def test_request_bytes_in_flight_are_capped(make_server: MakeServer) -> None:
    """A 40 MiB WaitJob (its padding an unknown field) holds its bytes while it waits; a second
    40 MiB request does not fit in the 64 MiB budget and is refused once its wait for room ends,
    without a byte of its body read."""
    server = await make_server(
        extra_args=["--max-inflight-bytes", str(64 * 1024 * 1024), "--request-timeout-ms", "5000"]
    )
    ch = channel(server.host, server.port)
    held = None
    try:
        out = await unary(ch, "Enqueue", bytes(EnqueueRequest(id="slow", queue="never")))
        assert out.status == Status.OK, out
        padding = field_bytes(15, b"\x00" * (40 * 1024 * 1024))
        wait = bytes(WaitJobRequest(id="slow", timeout_ms=30_000)) + padding
        held = asyncio.ensure_future(unary(ch, "WaitJob", wait, timeout=60))
        admin_ch = server.channel()
        try:
            await wait_for_gauge(
                admin_gauges(AdminStub(admin_ch)),
                "job_waiters",
                lambda n: n == 1,
                what="the padded WaitJob never waited",
            )
        except AssertionError:
            raise AssertionError(
                f"WaitJob: {held.result() if held.done() else 'pending'}"
            ) from None
        finally:
            admin_ch.close()
        raw = await RawH2.open(server.host, server.port)
        try:
            sid = await raw.request(ENQUEUE)
            await raw.send(sid, prefix(40 * 1024 * 1024))
            answer = await raw.ended(sid)
        finally:
            await raw.close()
        assert answer.status == Status.RESOURCE_EXHAUSTED.value, answer
        assert "request bytes in flight" in answer.message
    finally:
        if held is not None:
            held.cancel()
            await asyncio.gather(held, return_exceptions=True)
        ch.close()
    await logged(server, "refused (inflight_bytes)")
    await still_serving(server)


def field_bytes(number: int, value: bytes) -> bytes:
    """A length-delimited protobuf field (an unknown one pads a request)."""
    key, length = (number << 3) | 2, len(value)
    out = bytearray([key])
    while True:
        byte, length = length & 0x7F, length >> 7
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out) + value
