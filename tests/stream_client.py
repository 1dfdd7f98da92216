"""Test clients of the streaming RPCs (EnqueueStream, WorkerSession) over grpclib, and a raw one
that sends bytes the betterproto messages cannot express (malformed protobuf)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import h2.exceptions
from grpclib.client import Channel, Stream
from grpclib.config import Configuration
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError
from silo._proto.silo.v1 import (
    EnqueueRequest,
    EnqueueResult,
    HeartbeatResult,
    HeartbeatTaskRequest,
    OutcomeResult,
    ReportTaskOutcomeRequest,
    ServerMessage,
    SessionOpen,
    SiloStub,
    Task,
    WorkerMessage,
)
from silo.server.codec import PassthroughCodec, RawMessage

ENQUEUE_STREAM = "/silo.v1.Silo/EnqueueStream"
WORKER_SESSION = "/silo.v1.Silo/WorkerSession"

#: How long a test waits for one message before it calls the stream stuck (a hang, not a
#: timing assertion).
RECV_TIMEOUT_S = 20.0


async def end_status(stream: Stream[Any, Any]) -> tuple[Status, str | None]:
    """Close our side if still open, drain what is left and return how the server ended the
    stream: (status, message)."""
    try:
        with contextlib.suppress(ProtocolError, h2.exceptions.StreamClosedError):
            await stream.end()
        # No wait_for here (the suite's timeout catches a hang): once our side is ended the
        # server may close the connection, and grpclib's client then drops what it has not
        # read; plain awaits of data already received do not yield to the loop in between.
        while await stream.recv_message() is not None:
            pass
        await stream.recv_trailing_metadata()
    except GRPCError as exc:
        return exc.status, exc.message
    return Status.OK, None


async def _finish(stream: Stream[Any, Any]) -> None:
    """Leave a stream as grpclib's client wants it at exit: ended on our side, trailers read
    (a test that already did so, or cancelled the stream, loses nothing)."""
    if stream._cancel_done:  # reset by the test: nothing more comes
        return
    with contextlib.suppress(GRPCError, ProtocolError, StreamTerminatedError, asyncio.TimeoutError):
        await end_status(stream)


@contextlib.asynccontextmanager
async def enqueue_stream(
    stub: SiloStub, **kwargs: Any
) -> AsyncIterator[Stream[EnqueueRequest, EnqueueResult]]:
    """An EnqueueStream call on `stub`'s channel."""
    async with stub.channel.request(
        ENQUEUE_STREAM, Cardinality.STREAM_STREAM, EnqueueRequest, EnqueueResult, **kwargs
    ) as stream:
        await stream.send_request()
        yield stream
        await _finish(stream)


async def recv(stream: Stream[Any, Any]) -> Any:
    """The next message (fails the test if the stream ends or stays silent)."""
    message = await asyncio.wait_for(stream.recv_message(), RECV_TIMEOUT_S)
    assert message is not None, "the stream ended"
    return message


class Session:
    """A WorkerSession from the worker's side."""

    def __init__(self, stream: Stream[WorkerMessage, ServerMessage], worker_id: str) -> None:
        self.stream = stream
        self.worker_id = worker_id
        #: Tasks received while waiting for another kind of message, oldest first.
        self.tasks: list[Task] = []

    async def send(self, **kind: Any) -> None:
        await self.stream.send_message(WorkerMessage(**kind))

    async def credits(self, n: int) -> None:
        await self.send(credits=n)

    async def heartbeat(self, task_id: str, *, cursor: bytes = b"", worker_id: str = "") -> None:
        await self.send(
            heartbeat=HeartbeatTaskRequest(task_id=task_id, worker_id=worker_id, cursor=cursor)
        )

    async def report(self, task_id: str, **outcome: Any) -> None:
        """outcome: result=b"...", failure=TaskFailure(...) or cancelled=TaskCancelled()."""
        await self.send(outcome=ReportTaskOutcomeRequest(task_id=task_id, **outcome))

    async def recv(self) -> ServerMessage:
        message: ServerMessage = await recv(self.stream)
        return message

    async def task(self) -> Task:
        """The next task pushed (one received earlier first)."""
        if self.tasks:
            return self.tasks.pop(0)
        message = await self.recv()
        assert message.task is not None, f"expected a task, got {message}"
        return message.task

    async def answer(self) -> HeartbeatResult | OutcomeResult:
        """The next heartbeat or outcome answer; tasks pushed meanwhile are kept in `tasks`."""
        while True:
            message = await self.recv()
            if message.task is not None:
                self.tasks.append(message.task)
                continue
            result = message.heartbeat or message.outcome
            assert result is not None, f"unexpected message {message}"
            return result

    async def heartbeat_result(self) -> HeartbeatResult:
        result = await self.answer()
        assert isinstance(result, HeartbeatResult), f"expected a heartbeat result, got {result}"
        return result

    async def outcome_result(self) -> OutcomeResult:
        result = await self.answer()
        assert isinstance(result, OutcomeResult), f"expected an outcome result, got {result}"
        return result


@contextlib.asynccontextmanager
async def worker_session(
    stub: SiloStub,
    queues: list[str],
    *,
    worker_id: str = "session-worker",
    credits: int = 1,
    **kwargs: Any,
) -> AsyncIterator[Session]:
    """A WorkerSession on `stub`'s channel, opened with `queues` and `credits`."""
    async with stub.channel.request(
        WORKER_SESSION, Cardinality.STREAM_STREAM, WorkerMessage, ServerMessage, **kwargs
    ) as stream:
        await stream.send_message(
            WorkerMessage(open=SessionOpen(worker_id=worker_id, queues=queues, credits=credits))
        )
        yield Session(stream, worker_id)
        await _finish(stream)


@contextlib.asynccontextmanager
async def raw_stream(
    host: str, port: int, path: str, *, config: Configuration | None = None
) -> AsyncIterator[Stream[bytes, bytes]]:
    """A streaming call that sends and receives raw bytes, on a channel of its own."""
    channel = Channel(host, port, codec=PassthroughCodec(), config=config)
    try:
        async with channel.request(path, Cardinality.STREAM_STREAM, RawMessage, RawMessage) as s:
            await s.send_request()
            yield s
            await _finish(s)
    finally:
        channel.close()
