"""A raw HTTP/2 client (h2 over an asyncio socket) for the hostile-input tests: it sends what a
gRPC library never would (a length prefix bigger than what follows, a frame over the advertised
size, a request that stalls half-way) and reports what the server answered."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events


@dataclass
class Answer:
    """What the server did on one stream / the connection."""

    status: int | None = None  # grpc-status
    message: str = ""
    data: bytes = b""
    reset: bool = False
    goaway: int | None = None  # the GOAWAY error code, if the connection was closed with one
    closed: bool = False  # the connection ended
    headers: list[tuple[str, str]] = field(default_factory=list)


class RawH2:
    """One HTTP/2 connection to a gRPC server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.answers: dict[int, Answer] = {}
        self.connection = Answer()
        self._ended: dict[int, asyncio.Event] = {}
        self._reader_task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, host: str, port: int) -> RawH2:
        reader, writer = await asyncio.open_connection(host, port)
        raw = cls(reader, writer)
        raw.conn.initiate_connection()
        await raw.flush()
        raw._reader_task = asyncio.ensure_future(raw._read())
        return raw

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)
            with contextlib.suppress(ConnectionError):
                await self.writer.drain()

    def write_raw(self, data: bytes) -> None:
        """Bytes on the wire as they are (a hand-made frame)."""
        self.writer.write(data)

    async def request(self, path: str, *, metadata: dict[str, str] | None = None) -> int:
        """Open a gRPC request stream (headers only); its stream id."""
        sid = self.conn.get_next_available_stream_id()
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "localhost"),
            ("content-type", "application/grpc+proto"),
            ("te", "trailers"),
            *(metadata or {}).items(),
        ]
        self.conn.send_headers(sid, headers)
        self.answers[sid] = Answer()
        self._ended[sid] = asyncio.Event()
        await self.flush()
        return sid

    async def send(self, sid: int, data: bytes, *, end: bool = False) -> None:
        """Send `data` on a stream as far as the flow-control window lets it (the rest is
        dropped: a hostile client stops there)."""
        window = min(self.conn.local_flow_control_window(sid), len(data))
        max_frame = self.conn.max_outbound_frame_size
        pos = 0
        while pos < window:
            chunk = data[pos : min(pos + max_frame, window)]
            self.conn.send_data(sid, chunk, end_stream=end and pos + len(chunk) == len(data))
            pos += len(chunk)
        if end and not data:
            self.conn.end_stream(sid)
        await self.flush()

    async def ended(self, sid: int, timeout: float = 30.0) -> Answer:
        """Wait until the stream got its status, was reset, or the connection closed."""
        await asyncio.wait_for(self._ended[sid].wait(), timeout)
        return self.answers[sid]

    async def closed(self, timeout: float = 30.0) -> Answer:
        """Wait until the server closed the connection."""
        assert self._reader_task is not None
        await asyncio.wait_for(asyncio.shield(self._reader_task), timeout)
        return self.connection

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(BaseException):
                await self._reader_task
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()

    async def _read(self) -> None:
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                try:
                    events = self.conn.receive_data(data)
                except h2.exceptions.ProtocolError:
                    break
                for event in events:
                    self._event(event)
                await self.flush()
        except (ConnectionError, OSError):
            pass
        finally:
            self.connection.closed = True
            for ended in self._ended.values():
                ended.set()

    def _event(self, event: h2.events.Event) -> None:
        sid = getattr(event, "stream_id", 0)
        answer = self.answers.get(sid)
        if isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
            assert answer is not None
            answer.headers.extend(event.headers)  # type: ignore[arg-type]
            for name, value in event.headers:  # type: ignore[misc]
                if name == "grpc-status":
                    answer.status = int(value)
                elif name == "grpc-message":
                    answer.message = str(value)
        elif isinstance(event, h2.events.DataReceived):
            assert answer is not None
            answer.data += event.data or b""
            self.conn.acknowledge_received_data(event.flow_controlled_length or 0, sid)
        elif isinstance(event, h2.events.StreamEnded) and answer is not None:
            self._ended[sid].set()
        elif isinstance(event, h2.events.StreamReset) and answer is not None:
            answer.reset = True
            self._ended[sid].set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.connection.goaway = int(event.error_code or 0)
            self.connection.closed = True
            for ended in self._ended.values():
                ended.set()


def prefix(length: int) -> bytes:
    """A gRPC message prefix announcing `length` bytes (not compressed)."""
    return b"\x00" + length.to_bytes(4, "big")


def data_frame_header(length: int, stream_id: int) -> bytes:
    """The 9-byte header of a DATA frame of `length` bytes (no flags)."""
    return length.to_bytes(3, "big") + b"\x00\x00" + stream_id.to_bytes(4, "big")
