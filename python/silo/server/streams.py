"""The handlers of the streaming RPCs (EnqueueStream, WorkerSession): raw messages in, raw
answers out, through the broker's native stream object.

Per message, Python only routes bytes: the reader pushes each request into the native stream as
it arrives, and the writer sends the answers the native stream hands back in batches (one
native completion per batch). Decoding, validation, encoding and every per-job rule are in the
native module (rust/stream_io.rs, rust/broker/enqueue_stream.rs, rust/broker/worker_session.rs).

Backpressure: the native stream has a window of requests read and not yet answered; when it is
full the reader stops reading, and the client's further messages wait in HTTP/2 flow control.
The writer takes the next answers only after sending the previous ones, so a client that does
not read its answers stalls its own stream, holding bounded server memory
(docs/api.md#streams).

Ends: the client closing its side (the native stream answers what it holds, then ends OK); the
native stream ending with an error (its status, e.g. INVALID_ARGUMENT for a bad session
message); the server draining (`stop`: read no more, answer what was read, end OK); the client
going away (grpclib cancels the handler; the native stream is aborted).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from grpclib.exceptions import GRPCError
from grpclib.server import Stream

from silo.status import to_grpc_error

__all__ = ["StreamApi", "serve_stream"]

RawStream = Stream[bytes, bytes]


class StreamApi(Protocol):
    """One stream served by a broker (`native.NativeStream` satisfies it)."""

    def push(self, request: bytes) -> bool:
        """Queue one raw request; False once the window is full (await `room()`)."""

    def room(self) -> Awaitable[None]:
        """Resolves once the window has room again (or the stream is over)."""

    def close(self) -> None:
        """No more requests come."""

    def next(self) -> Awaitable[list[bytes]]:
        """The next encoded answers, in order; [] once the stream ended OK; raises the
        silo.errors class that ends it."""

    def abort(self) -> None:
        """Stop serving: the client went away."""


async def serve_stream(
    stream: RawStream,
    native: StreamApi,
    *,
    method: str,
    on_stop: Callable[[Callable[[], None]], Callable[[], None]],
) -> None:
    """Serve one streaming RPC on `stream` with `native` until it ends (see the module doc).

    `on_stop(stop)` registers the callback a draining server calls, and returns the function that
    unregisters it.
    """
    handler = asyncio.current_task()
    assert handler is not None
    failure: list[BaseException] = []
    reader = asyncio.ensure_future(_read(stream, native))

    def reader_done(task: asyncio.Future[None]) -> None:
        # A read that failed (a message over the size limit, a broken connection) ends the
        # stream with that failure: the writer may be waiting for answers that never come.
        if not task.cancelled() and task.exception() is not None:
            failure.append(task.exception())  # type: ignore[arg-type]
            handler.cancel()

    reader.add_done_callback(reader_done)

    def stop() -> None:
        reader.cancel()
        native.close()

    unregister = on_stop(stop)
    try:
        send = stream.send_message
        while True:
            try:
                answers = await native.next()
            except asyncio.CancelledError:
                if failure:
                    raise _status(failure[0], method) from failure[0]
                raise
            except Exception as exc:
                raise to_grpc_error(exc, method=method) from exc
            if not answers:
                return
            for answer in answers:
                await send(answer)
    finally:
        unregister()
        reader.cancel()
        native.abort()


async def _read(stream: RawStream, native: StreamApi) -> None:
    """Push every request of `stream` into `native`, pausing while its window is full."""
    recv = stream.recv_message
    push = native.push
    while (request := await recv()) is not None:
        if not push(request):
            await native.room()
    native.close()


def _status(exc: BaseException, method: str) -> GRPCError:
    if isinstance(exc, GRPCError):
        return exc
    return to_grpc_error(exc if isinstance(exc, Exception) else RuntimeError(exc), method=method)
