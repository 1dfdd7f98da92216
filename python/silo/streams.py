"""The client side of the streams (docs/api.md#streams): `silo.Client` sends its enqueues on one
EnqueueStream, and `silo.Worker` takes its tasks, and sends its heartbeats and outcomes, on a
WorkerSession when its Api is a `silo.Client`.

What a message costs here is kept to a few µs, because a stream only pays off if its messages
are cheap: the native module encodes and frames requests many at a time (`encode_frames`: a
batch of outcomes is one `bytes`), the requests of callers of one event-loop iteration go out in
one HTTP/2 send, and the reader takes every byte received so far at once and decodes the whole
chunk of answers and pushed tasks in one native call (`decode_frames`). One grpclib
`send_message` and one parse per message cost a worker several times more per task on a
session than the batched unary calls did (BENCHMARKS.md, "The Python API"). grpclib has no
public call for either bulk path; this uses its 0.4.9 internals (pinned in pyproject.toml), as
the server's stream path does (python/silo/server/streams.py).

Both streams answer heartbeats, outcomes and enqueues in the order of the requests, so each
keeps a FIFO of the futures waiting for answers (one future per batch of requests).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, cast

from grpclib.client import Channel, Stream
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError
from grpclib.metadata import decode_grpc_message
from h2.exceptions import StreamClosedError

from silo import _native, errors
from silo.server.codec import RawMessage
from silo.status import error_for_status
from silo.types import EnqueueResult, HeartbeatResult, Report, ReportResult, Task

__all__ = ["EnqueueStreamClient", "SessionClient", "StreamRefused", "error_of"]

log = logging.getLogger("silo.streams")

ENQUEUE_STREAM: Final = "/silo.v1.Silo/EnqueueStream"
WORKER_SESSION: Final = "/silo.v1.Silo/WorkerSession"

#: What breaks a send on a stream (the connection or the stream went away).
_SEND_ERRORS: Final = (OSError, StreamTerminatedError, ProtocolError, StreamClosedError)


def is_lost_connection(exc: BaseException) -> bool:
    """Whether `exc` says the connection to the broker is gone: a send error, or the
    AttributeError grpclib 0.4 raises when the connection is lost while a call is opening a
    stream on it (its `_transport` is already deleted; seen when a node is killed mid-call)."""
    if isinstance(exc, AttributeError):
        return "_transport" in str(exc)
    return isinstance(exc, _SEND_ERRORS)


class StreamRefused(errors.Unavailable):
    """The broker does not serve this stream (UNIMPLEMENTED): use the unary calls."""


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """`payload` as the length-delimited protobuf field `number` (a message in a message)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _frame(message: bytes) -> bytes:
    """`message` as it goes on a gRPC stream: a 0 byte (not compressed), its length, itself."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def error_of(
    code: int, message: str, refine: Sequence[type[errors.SiloError]] = ()
) -> errors.SiloError:
    """The silo.errors exception of a stream answer's gRPC `code`, as the unary call's status
    would give (refined to the first class of `refine` with that status; InternalError when the
    code has no row)."""
    try:
        status = Status(code)
    except ValueError:
        status = Status.UNKNOWN
    return error_for_status(status, message, refine=refine) or errors.InternalError(message)


async def _recv_chunk(stream: Stream[bytes, bytes]) -> bytes:
    """Every byte of the response stream received and not read yet, waiting for some if there is
    none; b"" once the stream has ended. What grpclib's Buffer.read does for an exact size,
    done for all it holds (grpclib 0.4.9's `Stream._stream.buffer`), so that a chunk of many
    messages is read, acknowledged for flow control and decoded at once."""
    buffer: Any = stream._stream.buffer
    with stream._wrapper:  # its reset or loss raises here, as in recv_message
        chunks: list[Any] = [chunk.data for chunk in buffer._acked]
        buffer._acked.clear()
        buffer._acked_size = 0
        unacked = buffer._unacked
        while True:
            if chunks and unacked.empty():
                break
            if buffer._eof and unacked.empty():
                break
            data, _size, ack_size = await unacked.get() if not chunks else unacked.get_nowait()
            if ack_size:
                chunks.append(data)
                buffer._ack_callback(ack_size)
            # A DATA frame without data (or the end marker) has nothing to read.
    return b"".join(chunks)


class _Waiter:
    """A future waiting for the answers to `count` requests sent together."""

    __slots__ = ("answers", "count", "future")

    def __init__(self, future: asyncio.Future[list[Any]], count: int) -> None:
        self.future = future
        self.count = count
        self.answers: list[Any] = []


class _OrderedStream:
    """One stream call whose answers come in the order of its requests: each batch of requests
    has a future in a FIFO until the reader resolves it with the batch's answers. A stream that
    ends or breaks fails the futures still waiting with Unavailable (their requests were not
    acknowledged) and is opened anew by the next request (unless `reopen` is False)."""

    def __init__(
        self,
        channel: Channel,
        path: str,
        rpc: str,
        metadata: Mapping[str, str] | None,
        on_task: Callable[[Task], None] | None = None,
        *,
        reopen: bool = True,
    ) -> None:
        self._channel = channel
        self._reopen = reopen
        self._opened = False
        self._path = path
        self._rpc = rpc
        self._metadata = metadata
        #: Tasks pushed on a session (not answers): handed to this instead of the FIFO.
        self._on_task = on_task
        self._stream: Stream[bytes, bytes] | None = None
        self._context: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: collections.deque[_Waiter] = collections.deque()
        self._open_lock = asyncio.Lock()
        #: Framed requests not sent yet, and the waiters among them, in order (one send each
        #: loop iteration: see `send`).
        self._outbox: list[bytes] = []
        self._outbox_waiters: list[_Waiter] = []
        self._sending = False

    @property
    def open(self) -> bool:
        return self._stream is not None

    async def _ensure_open(self) -> Stream[bytes, bytes]:
        stream = self._stream
        if stream is None:
            async with self._open_lock:  # one opening for callers that come meanwhile
                stream = self._stream or await self._open()
        return stream

    async def _open(self) -> Stream[bytes, bytes]:
        if self._opened and not self._reopen:
            raise errors.Unavailable("the stream has ended")
        self._opened = True
        context = self._channel.request(
            self._path,
            Cardinality.STREAM_STREAM,
            RawMessage,
            RawMessage,
            metadata=self._metadata,
        )
        try:
            # The codec passes bytes through (server/codec.py): RawMessage means bytes.
            stream = cast("Stream[bytes, bytes]", await context.__aenter__())
            await stream.send_request()
        except BaseException as exc:
            await context.__aexit__(None, None, None)
            if is_lost_connection(exc):
                raise errors.Unavailable(f"cannot open the stream: {exc!r}") from exc
            raise
        self._context, self._stream = context, stream
        self._reader = asyncio.ensure_future(self._read(stream, context))
        return stream

    async def send(self, frames: bytes, answers: int = 0) -> asyncio.Future[list[Any]] | None:
        """Send framed requests (`answers` of them answered): the future of their answers, in
        order. Requests sent in one loop iteration, by any caller, go out in one HTTP/2 send.
        Raises Unavailable when the stream cannot be opened or the send fails (nothing sent is
        then acknowledged: the stream is dropped, so no later answer is taken for them)."""
        stream = await self._ensure_open()
        future: asyncio.Future[list[Any]] | None = None
        if answers:
            future = asyncio.get_running_loop().create_future()
            waiter = _Waiter(future, answers)
            self._waiting.append(waiter)
            self._outbox_waiters.append(waiter)
        self._outbox.append(frames)
        if not self._sending:
            self._sending = True
            try:
                await self._flush(stream)
            finally:
                self._sending = False
        return future

    async def _flush(self, stream: Stream[bytes, bytes]) -> None:
        while self._outbox:
            await asyncio.sleep(0)  # the other requests of this loop iteration join the send
            data = b"".join(self._outbox)
            waiters = self._outbox_waiters
            self._outbox, self._outbox_waiters = [], []
            try:
                with stream._wrapper:
                    await stream._stream.send_data(data)
            except _SEND_ERRORS as exc:
                # A broker that refused the stream (a token, a limit) sent its status before
                # the reset the send ran into: that status is the answer, not a broken stream.
                status = received_status(stream)
                failure: errors.SiloError
                if status is None or status[0] is Status.OK:
                    failure = errors.Unavailable(f"cannot send on the stream: {exc!r}")
                elif status[0] is Status.UNIMPLEMENTED:
                    failure = StreamRefused(f"the broker does not serve {self._path}")
                else:
                    failure = error_of(status[0].value, status[1])
                for waiter in waiters:
                    if not waiter.future.done():
                        waiter.future.set_exception(failure)
                await self.close()
                raise failure from exc

    async def end(self) -> None:
        """Close our side: the broker answers what it read, then ends the stream."""
        if self._stream is not None:
            with contextlib.suppress(Exception):
                await self._stream.end()

    async def wait_ended(self) -> None:
        """Wait until the reader has seen the end of the stream."""
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._reader)

    async def close(self) -> None:
        """Drop the stream (its waiting futures fail with Unavailable)."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    def _take(self, answer: Any) -> None:
        if self._on_task is not None and isinstance(answer, Task):
            self._on_task(answer)
            return
        if not self._waiting:
            log.warning("%s: an answer nobody waits for (dropped)", self._path)
            return
        waiter = self._waiting[0]
        waiter.answers.append(answer)
        if len(waiter.answers) == waiter.count:
            self._waiting.popleft()
            if not waiter.future.done():
                waiter.future.set_result(waiter.answers)

    async def _read(self, stream: Stream[bytes, bytes], context: Any) -> None:
        failure: BaseException = errors.Unavailable(
            "the stream ended before answering: not acknowledged"
        )
        try:
            await stream.recv_initial_metadata()
            rest = b""
            while chunk := await _recv_chunk(stream):
                data = rest + chunk if rest else chunk
                answers, used = _native.decode_frames(self._rpc, data)
                rest = data[used:]
                for answer in answers:
                    self._take(answer)
            with contextlib.suppress(Exception):
                await stream.end()
            await stream.recv_trailing_metadata()
        except GRPCError as exc:
            if exc.status is Status.UNIMPLEMENTED:
                failure = StreamRefused(f"the broker does not serve {self._path}")
            else:
                failure = error_of(exc.status.value, exc.message or "")
        except (OSError, StreamTerminatedError) as exc:
            status = received_status(stream)
            if status is None:
                failure = errors.Unavailable(f"the stream broke: {exc}")
            elif status[0] is Status.UNIMPLEMENTED:
                failure = StreamRefused(f"the broker does not serve {self._path}")
            else:
                failure = error_of(status[0].value, status[1])
        except asyncio.CancelledError:
            failure = errors.Unavailable("the stream was closed")
            raise
        finally:
            if self._stream is stream:
                self._stream = None
                self._reader = None
            waiting, self._waiting = self._waiting, collections.deque()
            for waiter in waiting:
                if not waiter.future.done():
                    waiter.future.set_exception(failure)
            with contextlib.suppress(Exception):
                await context.__aexit__(None, None, None)


def received_status(stream: Stream[Any, Any]) -> tuple[Status, str] | None:
    """The status the broker ended a stream with, if it arrived before the stream was reset.

    Why: a server that ends a stream with an error while the client still sends (a refused
    token, a limit) sends its status, then resets the stream (RST_STREAM NO_ERROR, as gRPC
    servers do); grpclib's client may see the reset first and raise StreamTerminatedError
    although the status is there. Reads grpclib 0.4.9's `Stream._stream` (the version is
    pinned).
    """
    h2 = getattr(stream, "_stream", None)
    for headers in (getattr(h2, "trailers", None), getattr(h2, "headers", None)):
        for name, value in headers or ():
            if name == "grpc-status":
                message = dict(headers or ()).get("grpc-message", "")
                try:
                    return Status(int(value)), decode_grpc_message(message)
                except ValueError:
                    return None
    return None


async def _answers(future: asyncio.Future[list[Any]] | None, timeout: float | None) -> list[Any]:
    """The answers of a batch of requests, waiting at most `timeout` seconds (the requests stay
    in line: their answers, when they come, are dropped)."""
    assert future is not None, "answered requests have a future"
    try:
        return await asyncio.wait_for(asyncio.shield(future), timeout)
    except TimeoutError:
        raise errors.Unavailable(
            f"no answer within {timeout:g} s: the request is not acknowledged"
        ) from None


class EnqueueStreamClient:
    """`silo.Client.enqueue` over one EnqueueStream: each enqueue is one message on the stream
    and is answered, in order, once durable; many may be in flight (one per concurrent caller),
    and those of one loop iteration go out together. Raises as the unary Enqueue would
    (JobAlreadyExists, InvalidArgument...), Unavailable when the stream broke before the answer
    (not acknowledged), StreamRefused when the broker does not serve EnqueueStream."""

    def __init__(
        self, channel: Channel, metadata: Mapping[str, str] | None, timeout: float | None
    ) -> None:
        self._stream = _OrderedStream(channel, ENQUEUE_STREAM, "EnqueueStream", metadata)
        self._timeout = timeout

    async def enqueue(self, fields: object) -> EnqueueResult:
        """Enqueue one job (`Api.enqueue`'s keyword arguments or a NewJob): its result (code 0
        or the error's). Raises InvalidArgument for a field of the wrong type before sending."""
        frames = _native.encode_frames("enqueue", (fields,))
        [result] = await _answers(await self._stream.send(frames, 1), self._timeout)
        assert isinstance(result, EnqueueResult)
        return result

    async def close(self) -> None:
        await self._stream.close()


class SessionClient:
    """A worker's WorkerSession: `on_task(task)` is called for every task pushed; `credits(n)`
    grants more; `heartbeat` and `report_many` are answered as HeartbeatTask and
    ReportTaskOutcome would be. `end()` closes the worker's side: the broker delivers the tasks
    it already took for the session, answers what it read, and ends the session; `ended()`
    waits for that."""

    def __init__(
        self,
        channel: Channel,
        metadata: Mapping[str, str] | None,
        *,
        worker_id: str,
        queues: Sequence[str],
        on_task: Callable[[Task], None],
        timeout: float | None,
    ) -> None:
        self.worker_id = worker_id
        self._queues = list(queues)
        self._timeout = timeout
        self._stream = _OrderedStream(
            channel, WORKER_SESSION, "WorkerSession", metadata, on_task, reopen=False
        )

    @property
    def open(self) -> bool:
        """Whether the session's stream is open (a broken one is not)."""
        return self._stream.open

    async def start(self, credits: int) -> None:
        """Open the session with `credits` (raises Unavailable when the broker is
        unreachable)."""
        opening = _field(1, self.worker_id.encode())
        for queue in self._queues:
            opening += _field(2, queue.encode())
        if credits:
            opening += _varint(3 << 3) + _varint(credits)
        await self._stream.send(_frame(_field(1, opening)))

    async def credits(self, n: int) -> None:
        """Grant `n` more tasks."""
        await self._stream.send(_frame(_varint(2 << 3) + _varint(n)))

    async def heartbeat(self, *, task_id: str, cursor: bytes = b"") -> HeartbeatResult:
        """Extend a task's lease (storing `cursor` when non-empty). Raises TaskNotFound,
        LeaseNotHeld as HeartbeatTask would."""
        frames = _native.encode_frames("heartbeat", ({"task_id": task_id, "cursor": cursor},))
        [answer] = await _answers(await self._stream.send(frames, 1), self._timeout)
        code, message, cancelled, lease_expires_at_ms = answer
        if code:
            raise error_of(code, message, (errors.TaskNotFound, errors.LeaseNotHeld))
        return HeartbeatResult(cancelled=cancelled, lease_expires_at_ms=lease_expires_at_ms)

    async def report_many(self, reports: Sequence[Report]) -> list[ReportResult]:
        """Send the reports as outcome messages, all at once; one result per report, in
        order."""
        if not reports:
            return []
        frames = _native.encode_frames("outcome", reports)
        results = await _answers(await self._stream.send(frames, len(reports)), self._timeout)
        return cast("list[ReportResult]", results)

    async def end(self) -> None:
        await self._stream.end()

    async def ended(self) -> None:
        await self._stream.wait_ended()

    async def close(self) -> None:
        await self._stream.close()
