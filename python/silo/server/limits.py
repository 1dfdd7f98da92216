"""Limits of the gRPC transport against hostile or broken clients (docs/security.md#limits).

What a client cannot do, and where it is stopped:
- hold memory with an HTTP/2 frame larger than the advertised size: `StrictFrameBuffer` refuses
  it as soon as its 9-byte header arrives (h2 itself waits for the whole frame first), and the
  connection is closed with FRAME_SIZE_ERROR;
- send a header block over `MAX_HEADER_LIST_BYTES` (HPACK-decoded size; h2 closes the
  connection);
- send a message over the 64 MiB limit: `read_message` refuses it with RESOURCE_EXHAUSTED from
  its 5-byte length prefix, before reading (or acknowledging) a byte of it;
- hold many large requests at once: each unary request's bytes are taken from a budget of
  `max_inflight_bytes` until the call is answered; a request that does not fit waits up to
  `request_timeout_ms`, then is refused with RESOURCE_EXHAUSTED;
- trickle a request or not read an answer: reading a message (once its prefix came) and sending
  an answer each get `request_timeout_ms`;
- open connections without end: over `max_connections`, a new connection's calls answer
  RESOURCE_EXHAUSTED and it is closed after `REFUSED_LINGER_S`; a connection with no call open
  for `idle_timeout_ms` is closed (GOAWAY);
- park long-polls or open streams without end: LeaseTasks and WaitJob calls per connection and in
  total, EnqueueStream and WorkerSession streams per connection, each over its cap answering
  RESOURCE_EXHAUSTED.

Each refusal counts in `Limits.refused` (by limit name) and logs one line. This module hooks
grpclib 0.4.9 and h2 at their narrowest points (the version is pinned): the protocol class the
server makes per connection, the h2 connection's frame buffer, and the raw h2 stream of a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.protocol import Connection, H2Protocol
from h2.errors import ErrorCodes
from h2.exceptions import FrameTooLargeError, ProtocolError
from h2.frame_buffer import FrameBuffer
from h2.settings import SettingCodes
from hyperframe.frame import Frame

from silo.config import MAX_MESSAGE_BYTES

if TYPE_CHECKING:
    from grpclib.server import Stream

    from silo.config import ServeConfig

__all__ = [
    "MAX_HEADER_LIST_BYTES",
    "REFUSED_LINGER_S",
    "GuardedProtocol",
    "LimitSettings",
    "Limits",
    "StrictFrameBuffer",
]

log = logging.getLogger("silo.server")

#: Largest header block (HPACK-decoded) a client may send: metadata, the token included.
MAX_HEADER_LIST_BYTES: Final = 16 * 1024
#: How long a connection over the cap stays open to answer RESOURCE_EXHAUSTED.
REFUSED_LINGER_S: Final = 1.0


@dataclass(frozen=True, kw_only=True)
class LimitSettings:
    """The transport limits (their ServeConfig fields say what each bounds)."""

    max_connections: int = 1000
    idle_timeout_s: float = 300.0
    request_timeout_s: float = 30.0
    max_long_polls_per_connection: int = 64
    max_long_polls: int = 10_000
    max_streams_per_connection: int = 16
    max_inflight_bytes: int = 128 * 1024 * 1024
    max_message_bytes: int = MAX_MESSAGE_BYTES

    @classmethod
    def of(cls, config: ServeConfig) -> LimitSettings:
        return cls(
            max_connections=config.max_connections,
            idle_timeout_s=config.idle_timeout_ms / 1000,
            request_timeout_s=config.request_timeout_ms / 1000,
            max_long_polls_per_connection=config.max_long_polls_per_connection,
            max_long_polls=config.max_long_polls,
            max_streams_per_connection=config.max_streams_per_connection,
            max_inflight_bytes=config.max_inflight_bytes,
        )


class StrictFrameBuffer(FrameBuffer):
    """h2's frame buffer, refusing a frame over the advertised maximum from its header alone.

    Why: h2's FrameBuffer checks a frame's length only once the whole frame is buffered, so a
    client announcing a 16 MiB frame and sending it slowly (or never) holds 16 MiB per
    connection. The FrameTooLargeError raised here makes h2 close the connection with a
    FRAME_SIZE_ERROR GOAWAY at once (H2Connection.receive_data).
    """

    def __next__(self) -> Frame:
        if len(self._data) >= 9:
            length = int.from_bytes(self._data[:3], "big")
            self._validate_frame_length(length)
        return super().__next__()


class _Budget:
    """Bytes of requests in flight, shared by every connection of a server."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._freed = asyncio.Event()

    async def take(self, n: int, timeout_s: float) -> bool:
        """Take `n` bytes, waiting up to `timeout_s` for room; False if there was none."""
        deadline = time.monotonic() + timeout_s
        while self.used + n > self.capacity:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._freed.wait(), left)
        self.used += n
        return True

    def give(self, n: int) -> None:
        self.used -= n
        self._freed.set()


class ConnState:
    """What one connection has open (the caps per connection)."""

    def __init__(self, refused: bool) -> None:
        self.refused = refused
        self.long_polls = 0
        self.streams = 0
        self.idle_timer: asyncio.TimerHandle | None = None
        self.opened = time.monotonic()


class Limits:
    """The limits of one server: connection states, caps, the byte budget and the refusal
    counters (see the module doc)."""

    def __init__(self, settings: LimitSettings | None = None) -> None:
        self.settings = settings or LimitSettings()
        self.refused: Counter[str] = Counter()
        self.long_polls = 0
        self._budget = _Budget(self.settings.max_inflight_bytes)
        self._states: weakref.WeakKeyDictionary[Connection, ConnState] = weakref.WeakKeyDictionary()
        self._protocols: set[GuardedProtocol] = set()

    # --------------------------------------------------------------------- gauges

    @property
    def connections(self) -> int:
        """Client connections open now (refused ones included until they close)."""
        return len(self._protocols)

    @property
    def inflight_bytes(self) -> int:
        return self._budget.used

    def gauges(self) -> dict[str, int]:
        """Gauges and refusal counters, for logs, tests and /metrics."""
        out = {
            "connections": self.connections,
            "long_polls": self.long_polls,
            "inflight_bytes": self.inflight_bytes,
        }
        out.update({f"refused_{name}": n for name, n in self.refused.items()})
        return out

    def _refuse(self, limit: str, message: str) -> GRPCError:
        self.refused[limit] += 1
        log.warning("refused (%s): %s", limit, message)
        return GRPCError(Status.RESOURCE_EXHAUSTED, message)

    # ---------------------------------------------------------------- connections

    def connection_made(self, protocol: GuardedProtocol) -> None:
        over = len(self._protocols) >= self.settings.max_connections
        self._protocols.add(protocol)
        state = ConnState(refused=over)
        self._states[protocol.connection] = state
        h2 = protocol.connection._connection
        strict = StrictFrameBuffer(server=True)
        strict.max_frame_size = h2.incoming_buffer.max_frame_size
        h2.incoming_buffer = strict
        h2.update_settings({SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST_BYTES})
        protocol.connection.flush()
        loop = asyncio.get_running_loop()
        if over:
            self.refused["connections"] += 1
            log.warning(
                "refused (connections): %d connections open, the cap is %d",
                len(self._protocols) - 1,
                self.settings.max_connections,
            )
            state.idle_timer = loop.call_later(REFUSED_LINGER_S, protocol.goaway, "too many")
        else:
            state.idle_timer = loop.call_later(
                self.settings.idle_timeout_s, self._check_idle, protocol
            )

    def connection_lost(self, protocol: GuardedProtocol) -> None:
        self._protocols.discard(protocol)
        state = self._states.pop(protocol.connection, None)
        if state is not None and state.idle_timer is not None:
            state.idle_timer.cancel()

    def _check_idle(self, protocol: GuardedProtocol) -> None:
        """Close the connection if it had no call open for the idle timeout; else look again
        when it could next be idle that long."""
        state = self._states.get(protocol.connection)
        if state is None:
            return
        conn = protocol.connection
        idle = self.settings.idle_timeout_s
        last = max(
            state.opened,
            conn.last_stream_created or 0.0,
            conn.last_data_received or 0.0,
            conn.last_data_sent or 0.0,
        )
        wait = last + idle - time.monotonic()
        if protocol.processor.streams:
            wait = idle  # a call is open: not idle
        if wait > 0:
            state.idle_timer = asyncio.get_running_loop().call_later(
                wait, self._check_idle, protocol
            )
            return
        self.refused["idle"] += 1
        log.info("closing a connection idle for %.0f s", idle)
        protocol.goaway("idle")

    def protocol_error(self, exc: ProtocolError) -> None:
        """Count and log a connection closed for breaking HTTP/2 (`frame_size` for a frame over
        the advertised size)."""
        limit = "frame_size" if isinstance(exc, FrameTooLargeError) else "protocol"
        self.refused[limit] += 1
        log.warning("refused (%s): connection closed: %s", limit, exc)

    def all_protocols(self) -> list[GuardedProtocol]:
        return list(self._protocols)

    # -------------------------------------------------------------------- calls

    def _state(self, stream: Stream[Any, Any]) -> ConnState:
        state = self._states.get(stream._stream.connection)
        return state if state is not None else ConnState(refused=False)

    def check_connection(self, stream: Stream[Any, Any]) -> None:
        """RESOURCE_EXHAUSTED for a call on a connection over the connection cap."""
        if self._state(stream).refused:
            raise GRPCError(
                Status.RESOURCE_EXHAUSTED,
                f"the broker serves at most {self.settings.max_connections} connections; "
                "retry later",
            )

    @contextlib.contextmanager
    def long_poll(self, stream: Stream[Any, Any], method: str) -> Any:
        """Count a LeaseTasks/WaitJob call open; RESOURCE_EXHAUSTED over a cap."""
        state = self._state(stream)
        s = self.settings
        if state.long_polls >= s.max_long_polls_per_connection:
            raise self._refuse(
                "long_polls_per_connection",
                f"{method}: at most {s.max_long_polls_per_connection} LeaseTasks/WaitJob calls "
                "may be open at once on one connection",
            )
        if self.long_polls >= s.max_long_polls:
            raise self._refuse(
                "long_polls",
                f"{method}: the broker holds at most {s.max_long_polls} LeaseTasks/WaitJob "
                "calls open at once",
            )
        state.long_polls += 1
        self.long_polls += 1
        try:
            yield
        finally:
            state.long_polls -= 1
            self.long_polls -= 1

    @contextlib.contextmanager
    def stream(self, stream: Stream[Any, Any], method: str) -> Any:
        """Count a streaming RPC open; RESOURCE_EXHAUSTED over the cap per connection."""
        state = self._state(stream)
        cap = self.settings.max_streams_per_connection
        if state.streams >= cap:
            raise self._refuse(
                "streams_per_connection",
                f"{method}: at most {cap} EnqueueStream/WorkerSession streams may be open at "
                "once on one connection",
            )
        state.streams += 1
        try:
            yield
        finally:
            state.streams -= 1

    # ----------------------------------------------------------------- messages

    @contextlib.asynccontextmanager
    async def request(self, stream: Stream[Any, Any], method: str) -> AsyncIterator[bytes | None]:
        """Read a unary call's request (None if the client sent none) and hold its bytes in the
        budget until the block ends (the call is answered)."""
        s = self.settings
        deadline = time.monotonic() + s.request_timeout_s
        try:
            length = await asyncio.wait_for(self._prefix(stream, method), s.request_timeout_s)
        except TimeoutError:
            raise self._slow(method) from None
        if length is None:
            yield None
            return
        if not await self._budget.take(length, max(0.0, deadline - time.monotonic())):
            raise self._refuse(
                "inflight_bytes",
                f"{method}: the broker has {self._budget.used} request bytes in flight (the cap "
                f"is {s.max_inflight_bytes}); retry later",
            )
        try:
            try:
                data = await asyncio.wait_for(
                    stream._stream.recv_data(length), max(0.0, deadline - time.monotonic())
                )
            except TimeoutError:
                raise self._slow(method) from None
            yield bytes(data)
        finally:
            self._budget.give(length)

    async def stream_message(self, stream: Stream[Any, Any], method: str) -> bytes | None:
        """Read the next message of a streaming call (None at the end of its input): waits for a
        message as long as it takes, then for its body at most the request timeout."""
        length = await self._prefix(stream, method)
        if length is None:
            return None
        try:
            data = await asyncio.wait_for(
                stream._stream.recv_data(length), self.settings.request_timeout_s
            )
        except TimeoutError:
            raise self._slow(method) from None
        return bytes(data)

    async def _prefix(self, stream: Stream[Any, Any], method: str) -> int | None:
        """The length of the next message from its 5-byte prefix; RESOURCE_EXHAUSTED for one over
        the message limit (nothing of it read), None at the end of the input."""
        meta = await stream._stream.recv_data(5)
        if not meta:
            return None
        if len(meta) < 5:
            raise GRPCError(Status.INVALID_ARGUMENT, "request: truncated message prefix")
        if meta[0]:
            raise GRPCError(Status.UNIMPLEMENTED, "request: compressed messages are not supported")
        length = int.from_bytes(meta[1:5], "big")
        limit = self.settings.max_message_bytes
        if length > limit:
            raise self._refuse(
                "message_bytes",
                f"{method}: message of {length} bytes exceeds the limit of {limit} bytes",
            )
        return length

    def _slow(self, method: str) -> GRPCError:
        ms = round(self.settings.request_timeout_s * 1000)
        return self._refuse("slow_client", f"{method}: the request did not arrive within {ms} ms")

    async def send(self, stream: Stream[Any, Any], method: str, send: Any) -> None:
        """Await `send` (an answer going out); a client that does not take it within the
        request timeout loses the call: its stream is reset."""
        try:
            await asyncio.wait_for(send, self.settings.request_timeout_s)
        except TimeoutError:
            self.refused["slow_reader"] += 1
            log.warning("%s: the client did not read its answer in time; stream reset", method)
            stream._stream.reset_nowait(ErrorCodes.CANCEL)
            raise


class GuardedProtocol(H2Protocol):
    """grpclib's per-connection protocol, registered with the server's `Limits` (see the module
    doc): caps, idle timer, strict frame sizes, header size."""

    def __init__(self, *args: Any, limits: Limits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.limits.connection_made(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.limits.connection_lost(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """grpclib's, except that a protocol error (a frame over the advertised size, a header
        block over the limit, ...) sends the GOAWAY h2 prepared before the connection closes
        (grpclib closes it at once, so the client never learns why), and counts and logs it."""
        try:
            events = self.connection.feed(data)
        except ProtocolError as exc:
            self.limits.protocol_error(exc)
            with contextlib.suppress(Exception):
                self.connection.flush()
            self.processor.close("Protocol error")
            return
        self.connection.flush()
        for event in events:
            self.processor.process(event)
        self.connection.flush()

    def goaway(self, reason: str) -> None:
        """Send GOAWAY and close the connection (its open calls are cancelled)."""
        h2 = self.connection._connection
        with contextlib.suppress(Exception):
            h2.close_connection(
                error_code=ErrorCodes.NO_ERROR
                if reason == "idle"
                else ErrorCodes.ENHANCE_YOUR_CALM,
                additional_data=reason.encode(),
            )
            self.connection.flush()
        self.processor.close(reason)
