"""Coalesced writes: everything one connection writes in one event-loop iteration leaves in one
send().

Why: grpclib writes a unary answer as three transport writes (response headers, message,
trailers), each one a `send()` syscall, and on loopback each `send()` also runs the receiver's
TCP stack; that was ~29 % of the server's main thread (BENCHMARKS.md, "Where the time goes").
Buffering the writes and handing them over once per loop iteration makes one answer (or several
answers completed together) one syscall, at the cost of at most one loop iteration of delay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Final, cast

__all__ = ["FLUSH_NOW_BYTES", "CoalescingProtocol", "CoalescingTransport"]

#: Buffered bytes at which a write is handed over at once instead of at the end of the loop
#: iteration: keeps the buffer small and lets the wrapped transport's flow control
#: (pause_writing) act at the same point it would without the buffer. asyncio's default
#: high-water mark.
FLUSH_NOW_BYTES: Final = 64 * 1024


class CoalescingTransport(asyncio.Transport):
    """A transport that buffers writes and hands them to the wrapped `transport` in one write,
    from a `loop.call_soon` callback scheduled by the first write after a flush.

    Contract:
    - bytes reach the wrapped transport in the order written; a write that brings the buffer to
      FLUSH_NOW_BYTES or more is handed over at once (with what was buffered before it);
    - `close()` and `write_eof()` hand over what is buffered first; `abort()` discards it;
    - once the wrapped transport is closing (closed, aborted, or its connection lost), buffered
      bytes are discarded at the next flush: the peer is gone;
    - after `close()`, `abort()` or `write_eof()`, writes go straight to the wrapped transport,
      which answers them as it would have without this wrapper;
    - `get_write_buffer_size()` counts the buffered bytes; every other method is the wrapped
      transport's, and flow control (pause_writing/resume_writing) reaches the protocol from the
      wrapped transport unchanged.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._chunks: list[bytes] = []
        self._size = 0
        self._flush_handle: asyncio.Handle | None = None
        self._bypass = False

    @property
    def wrapped(self) -> asyncio.Transport:
        """The transport the bytes go to."""
        return self._transport

    # ---------------------------------------------------------------------------- writing

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._bypass:
            self._transport.write(data)
            return
        if not data:
            return
        # The caller may reuse a mutable buffer after write() returns (as with any transport).
        chunk = data if isinstance(data, bytes) else bytes(data)
        self._chunks.append(chunk)
        self._size += len(chunk)
        if self._size >= FLUSH_NOW_BYTES:
            self._flush()
        elif self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in list_of_data:
            self.write(data)

    def write_eof(self) -> None:
        self._flush()
        self._bypass = True
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def get_write_buffer_size(self) -> int:
        return self._size + self._transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def _flush(self) -> None:
        """Hand the buffer to the wrapped transport in one write (discard it if that transport
        is closing)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._chunks:
            return
        chunks = self._chunks
        self._chunks = []
        self._size = 0
        if self._transport.is_closing():
            return
        self._transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    # ------------------------------------------------------------------------- closing

    def close(self) -> None:
        self._flush()
        self._bypass = True
        self._transport.close()

    def abort(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._chunks = []
        self._size = 0
        self._bypass = True
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    # ------------------------------------------------------------------------- delegated

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()


class CoalescingProtocol(asyncio.Protocol):
    """Hands `protocol` a CoalescingTransport over the connection's transport, then steps out
    of the way: once connected, the transport calls `protocol` directly (set_protocol), so
    reads, flow control and connection loss cost nothing extra.

    Use it as what the protocol factory returns: `lambda: CoalescingProtocol(make_protocol())`.
    """

    def __init__(self, protocol: asyncio.Protocol) -> None:
        self.protocol = protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's does not register as an asyncio.Transport subclass).
        stream = cast(asyncio.Transport, transport)
        stream.set_protocol(self.protocol)
        self.protocol.connection_made(CoalescingTransport(stream, asyncio.get_running_loop()))

    # Not reached once connected (the transport calls `protocol` directly); kept so that a
    # transport that ignored set_protocol would still be served.
    def data_received(self, data: bytes) -> None:
        self.protocol.data_received(data)

    def eof_received(self) -> bool | None:
        return self.protocol.eof_received()

    def pause_writing(self) -> None:
        self.protocol.pause_writing()

    def resume_writing(self) -> None:
        self.protocol.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.protocol.connection_lost(exc)
