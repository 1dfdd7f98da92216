"""The server's coalescing transport (python/silo/server/transport.py): the buffering logic alone,
over a fake transport that records what it is asked to do. The real path (grpclib over uvloop on
loopback) is exercised by every server test."""

from __future__ import annotations

import asyncio
from typing import Any

from silo.server.transport import FLUSH_NOW_BYTES, CoalescingProtocol, CoalescingTransport


class FakeTransport(asyncio.Transport):
    """Records writes and calls; `closing` can be set to play a lost connection."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.calls: list[str] = []
        self.closing = False
        self.protocol: asyncio.BaseProtocol | None = None
        self.buffered = 0

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))
        self.calls.append("write")

    def write_eof(self) -> None:
        self.calls.append("write_eof")

    def close(self) -> None:
        self.closing = True
        self.calls.append("close")

    def abort(self) -> None:
        self.closing = True
        self.calls.append("abort")

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1234)}.get(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.protocol is not None
        return self.protocol


def wrap() -> tuple[CoalescingTransport, FakeTransport]:
    inner = FakeTransport()
    return CoalescingTransport(inner, asyncio.get_running_loop()), inner


async def next_iteration() -> None:
    """Let the loop run the callbacks scheduled so far (the flush among them)."""
    await asyncio.sleep(0)


async def test_writes_of_one_iteration_leave_in_one_write() -> None:
    t, inner = wrap()
    t.write(b"headers")
    t.write(b"message")
    t.write(b"trailers")
    assert inner.writes == []
    assert t.get_write_buffer_size() == len(b"headersmessagetrailers")
    await next_iteration()
    assert inner.writes == [b"headersmessagetrailers"]
    assert t.get_write_buffer_size() == 0


async def test_each_iteration_is_flushed_separately_and_in_order() -> None:
    t, inner = wrap()
    t.write(b"a")
    await next_iteration()
    t.write(b"b")
    t.write(b"c")
    await next_iteration()
    await next_iteration()  # nothing buffered: no empty write
    assert inner.writes == [b"a", b"bc"]


async def test_buffer_size_counts_the_wrapped_transport_too() -> None:
    t, inner = wrap()
    inner.buffered = 100
    t.write(b"xyz")
    assert t.get_write_buffer_size() == 103


async def test_a_large_write_goes_out_at_once_with_what_came_before() -> None:
    t, inner = wrap()
    t.write(b"head")
    big = b"x" * FLUSH_NOW_BYTES
    t.write(big)
    assert inner.writes == [b"head" + big]
    t.write(b"tail")
    await next_iteration()
    assert inner.writes == [b"head" + big, b"tail"]


async def test_mutable_buffers_are_copied_at_write() -> None:
    t, inner = wrap()
    data = bytearray(b"abc")
    t.write(data)
    t.write(memoryview(b"def"))
    data[:] = b"zzz"
    await next_iteration()
    assert inner.writes == [b"abcdef"]


async def test_empty_writes_are_ignored() -> None:
    t, inner = wrap()
    t.write(b"")
    t.writelines([b"", b"a", b"b"])
    await next_iteration()
    assert inner.writes == [b"ab"]


async def test_close_hands_over_the_buffer_first() -> None:
    t, inner = wrap()
    t.write(b"last answer")
    t.close()
    assert inner.calls == ["write", "close"]
    assert inner.writes == [b"last answer"]
    assert t.is_closing()
    await next_iteration()  # the cancelled flush writes nothing more
    assert inner.calls == ["write", "close"]


async def test_writes_after_close_go_straight_to_the_wrapped_transport() -> None:
    t, inner = wrap()
    t.close()
    t.write(b"late")
    assert inner.calls == ["close", "write"]


async def test_abort_discards_the_buffer() -> None:
    t, inner = wrap()
    t.write(b"never sent")
    t.abort()
    await next_iteration()
    assert inner.calls == ["abort"]
    assert t.get_write_buffer_size() == 0


async def test_a_closing_transport_gets_nothing_more() -> None:
    t, inner = wrap()
    t.write(b"to a gone peer")
    inner.closing = True  # the connection was lost before the flush
    await next_iteration()
    assert inner.writes == []
    assert t.get_write_buffer_size() == 0


async def test_write_eof_hands_over_the_buffer_first() -> None:
    t, inner = wrap()
    t.write(b"end")
    t.write_eof()
    assert inner.calls == ["write", "write_eof"]


async def test_other_methods_are_the_wrapped_transports() -> None:
    t, inner = wrap()
    assert t.get_extra_info("peername") == ("127.0.0.1", 1234)
    assert t.get_extra_info("socket", "none") == "none"
    assert t.wrapped is inner


class RecordingProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.BaseTransport | None = None
        self.events: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.events.append(f"data {data!r}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append("lost")


async def test_protocol_hands_a_coalescing_transport_and_steps_aside() -> None:
    inner = FakeTransport()
    protocol = RecordingProtocol()
    adapter = CoalescingProtocol(protocol)
    adapter.connection_made(inner)
    assert inner.protocol is protocol  # reads and flow control now reach it directly
    assert isinstance(protocol.transport, CoalescingTransport)
    assert protocol.transport.wrapped is inner
    protocol.transport.write(b"a")
    protocol.transport.write(b"b")
    await next_iteration()
    assert inner.writes == [b"ab"]


async def test_real_connection_round_trip() -> None:
    """Over a real loopback socket: the peer receives the writes of one iteration intact."""
    loop = asyncio.get_running_loop()

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, CoalescingTransport)
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.transport.write(b"<")
            self.transport.write(data)
            self.transport.write(b">")

    server = await loop.create_server(lambda: CoalescingProtocol(Echo()), "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(6), 10) == b"<ping>"
        writer.close()
        await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()
