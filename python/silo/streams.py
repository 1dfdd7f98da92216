"""The client side of the streams (docs/api.md#streams): `silo.Client` sends its enqueues on one
EnqueueStream, and `silo.Worker` takes its tasks, and sends its heartbeats and outcomes, on a
WorkerSession when its Api is a `silo.Client`.

Messages are encoded and decoded by the native module (`encode_request`, `decode_reply`) like the
unary calls' are; the stream messages that only wrap a unary call's message (a WorkerMessage's
heartbeat or outcome, a ServerMessage's task, an EnqueueResult as an EnqueueBatch entry) are
framed here as the protobuf field that holds it (a tag and a length), which costs nothing. The
two small answers that have no unary twin (HeartbeatResult, OutcomeResult) are parsed with the
generated betterproto classes.

Both streams answer heartbeats, outcomes and enqueues in the order of the requests, so each
keeps a FIFO of the futures waiting for answers.
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
from h2.exceptions import StreamClosedError

from silo import _native, errors
from silo._proto.silo.v1 import ServerMessage
from silo.server.codec import RawMessage
from silo.status import error_for_status
from silo.types import EnqueueResult, HeartbeatResult, Report, ReportResult, Task

__all__ = ["EnqueueStreamClient", "SessionClient", "StreamRefused", "error_of"]

log = logging.getLogger("silo.streams")

ENQUEUE_STREAM: Final = "/silo.v1.Silo/EnqueueStream"
WORKER_SESSION: Final = "/silo.v1.Silo/WorkerSession"


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


class _OrderedStream:
    """One stream call whose answers come in the order of its requests: each request's future
    waits in a FIFO until the reader resolves it with its raw answer. A stream that ends or
    breaks fails the futures still waiting with Unavailable (their requests were not
    acknowledged) and is opened anew by the next request."""

    def __init__(
        self,
        channel: Channel,
        path: str,
        metadata: Mapping[str, str] | None,
        on_message: Callable[[bytes], bool] | None = None,
        *,
        reopen: bool = True,
    ) -> None:
        self._channel = channel
        #: Whether a request after the end opens the stream anew (not for a session, whose first
        #: message must be its open).
        self._reopen = reopen
        self._opened = False
        self._path = path
        self._metadata = metadata
        #: Messages that are not answers (a session's tasks): handled here, not queued. It
        #: returns True for a message it took.
        self._on_message = on_message
        self._stream: Stream[bytes, bytes] | None = None
        self._context: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: collections.deque[asyncio.Future[bytes]] = collections.deque()
        self._send_lock = asyncio.Lock()

    @property
    def open(self) -> bool:
        return self._stream is not None

    async def _ensure_open(self) -> Stream[bytes, bytes]:
        if self._stream is None:
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
            # The codec passes bytes through (server/codec.py): RawMessage means bytes.
            stream = cast("Stream[bytes, bytes]", await context.__aenter__())
            try:
                await stream.send_request()
            except BaseException:
                await context.__aexit__(None, None, None)
                raise
            self._context, self._stream = context, stream
            self._reader = asyncio.ensure_future(self._read(stream, context))
        return self._stream

    async def send(self, message: bytes, *, answered: bool = True) -> asyncio.Future[bytes] | None:
        """Send one message; its answer's future when `answered` (in request order)."""
        async with self._send_lock:  # one message at a time: frames must not interleave
            try:
                future: asyncio.Future[bytes] | None = None
                stream = await self._ensure_open()
                if answered:
                    future = asyncio.get_running_loop().create_future()
                    self._waiting.append(future)
                await stream.send_message(message)
            except (OSError, StreamTerminatedError, ProtocolError, StreamClosedError) as exc:
                if future is not None:
                    # Not sent: it must not take the place of a later request's answer.
                    with contextlib.suppress(ValueError):
                        self._waiting.remove(future)
                    future.cancel()
                raise errors.Unavailable(f"cannot send on the stream: {exc!r}") from exc
        return future

    async def end(self) -> None:
        """Close our side: the broker answers what it read, then ends the stream."""
        async with self._send_lock:
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

    async def _read(self, stream: Stream[bytes, bytes], context: Any) -> None:
        failure: BaseException = errors.Unavailable(
            "the stream ended before answering: not acknowledged"
        )
        try:
            while (message := await stream.recv_message()) is not None:
                if self._on_message is not None and self._on_message(message):
                    continue
                if self._waiting:
                    future = self._waiting.popleft()
                    if not future.done():
                        future.set_result(message)
            with contextlib.suppress(Exception):
                await stream.end()
            await stream.recv_trailing_metadata()
        except GRPCError as exc:
            if exc.status is Status.UNIMPLEMENTED:
                failure = StreamRefused(f"the broker does not serve {self._path}")
            else:
                failure = error_of(exc.status.value, exc.message or "")
        except (OSError, StreamTerminatedError) as exc:
            failure = errors.Unavailable(f"the stream broke: {exc}")
        except asyncio.CancelledError:
            failure = errors.Unavailable("the stream was closed")
            raise
        finally:
            if self._stream is stream:
                self._stream = None
                self._reader = None
            waiting, self._waiting = self._waiting, collections.deque()
            for future in waiting:
                if not future.done():
                    future.set_exception(failure)
            with contextlib.suppress(Exception):
                await context.__aexit__(None, None, None)


async def _answer(future: asyncio.Future[bytes], timeout: float | None) -> bytes:
    """A request's answer, waiting at most `timeout` seconds (the request stays in line: its
    answer, when it comes, is dropped)."""
    try:
        return await asyncio.wait_for(asyncio.shield(future), timeout)
    except TimeoutError:
        raise errors.Unavailable(
            f"no answer within {timeout:g} s: the request is not acknowledged"
        ) from None


class EnqueueStreamClient:
    """`silo.Client.enqueue` over one EnqueueStream: each enqueue is one message on the stream
    and is answered, in order, once durable; many may be in flight (one per concurrent caller).
    Raises as the unary Enqueue would (JobAlreadyExists, InvalidArgument...), Unavailable when
    the stream broke before the answer (not acknowledged), StreamRefused when the broker does not
    serve EnqueueStream."""

    def __init__(
        self, channel: Channel, metadata: Mapping[str, str] | None, timeout: float | None
    ) -> None:
        self._stream = _OrderedStream(channel, ENQUEUE_STREAM, metadata)
        self._timeout = timeout

    async def enqueue(self, request: bytes) -> EnqueueResult:
        """Enqueue one encoded EnqueueRequest: its result (code 0 or the error's)."""
        future = await self._stream.send(request)
        assert future is not None
        answer = await _answer(future, self._timeout)
        # An EnqueueResult is the entry of an EnqueueBatchResponse (field 1).
        [result] = _native.decode_reply("EnqueueBatch", _field(1, answer))
        assert isinstance(result, EnqueueResult)
        return result

    async def close(self) -> None:
        await self._stream.close()


class SessionClient:
    """A worker's WorkerSession: `on_task(task)` is called for every task pushed; `credits(n)`
    grants more; `heartbeat` and `report` are answered as HeartbeatTask and ReportTaskOutcome
    would be (raising their errors). `end()` closes the worker's side: the broker delivers the
    tasks it already took for the session, answers what it read, and ends the session;
    `ended()` waits for that."""

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
        self._on_task = on_task
        self._timeout = timeout
        self._stream = _OrderedStream(
            channel, WORKER_SESSION, metadata, self._message, reopen=False
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
        await self._stream.send(_field(1, opening), answered=False)

    async def credits(self, n: int) -> None:
        """Grant `n` more tasks."""
        await self._stream.send(_varint(2 << 3) + _varint(n), answered=False)

    async def heartbeat(self, *, task_id: str, cursor: bytes = b"") -> HeartbeatResult:
        request = _native.encode_request("HeartbeatTask", {"task_id": task_id, "cursor": cursor})
        future = await self._stream.send(_field(3, request))
        assert future is not None
        answer = ServerMessage.parse(await _answer(future, self._timeout)).heartbeat
        assert answer is not None, "a heartbeat is answered by a HeartbeatResult"
        if answer.code:
            raise error_of(answer.code, answer.message, (errors.TaskNotFound, errors.LeaseNotHeld))
        return HeartbeatResult(
            cancelled=answer.cancelled, lease_expires_at_ms=answer.lease_expires_at_ms
        )

    async def report_many(self, reports: Sequence[Report]) -> list[ReportResult]:
        """Send each report as one outcome message; one result per report, in order."""
        futures = []
        for report in reports:
            request = _native.encode_request("ReportTaskOutcome", report)
            future = await self._stream.send(_field(4, request))
            assert future is not None
            futures.append(future)
        results = []
        for future in futures:
            answer = ServerMessage.parse(await _answer(future, self._timeout)).outcome
            assert answer is not None, "an outcome is answered by an OutcomeResult"
            results.append(ReportResult(code=answer.code, message=answer.message))
        return results

    async def end(self) -> None:
        await self._stream.end()

    async def ended(self) -> None:
        await self._stream.wait_ended()

    async def close(self) -> None:
        await self._stream.close()

    def _message(self, raw: bytes) -> bool:
        # A ServerMessage holding a task (field 1) is, byte for byte, a LeaseTasksResponse with
        # one task.
        if not raw or raw[0] != 0x0A:
            return False
        for task in _native.decode_reply("LeaseTasks", raw):
            self._on_task(task)
        return True
