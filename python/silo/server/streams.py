"""The handlers of the streaming RPCs (EnqueueStream, WorkerSession): raw messages in, raw
answers out, through the broker's native stream object.

Per message, Python only routes bytes: the reader pushes each request into the native stream as
it arrives (waking the native side once per event-loop iteration), and the writer sends the
answers the native stream hands back in batches, already framed, one `send_data` per batch.
Decoding, validation, encoding and every per-job rule are in the native module
(rust/stream_io.rs, rust/broker/enqueue_stream.rs, rust/broker/worker_session.rs).

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

__all__ = ["StreamApi", "frame", "serve_stream"]

RawStream = Stream[bytes, bytes]


class StreamApi(Protocol):
    """One stream served by a broker (`native.NativeStream` satisfies it)."""

    def push(self, request: bytes) -> bool:
        """Queue one raw request; False once the window is full (await `room()`)."""

    def wake(self) -> None:
        """Hand the requests pushed so far to the broker (once per loop iteration)."""

    def room(self) -> Awaitable[None]:
        """Resolves once the window has room again (or the stream is over)."""

    def close(self) -> None:
        """No more requests come."""

    def next(self) -> Awaitable[bytes]:
        """The next answers, in order, framed as gRPC messages on the wire (`frame`); b"" once
        the stream ended OK; raises the silo.errors class that ends it."""

    def abort(self) -> None:
        """Stop serving: the client went away."""


async def serve_stream(
    stream: RawStream,
    native: StreamApi,
    *,
    method: str,
    on_stop: Callable[[Callable[[], None]], Callable[[], None]],
    recv: Callable[[], Awaitable[bytes | None]] | None = None,
    send: Callable[[Awaitable[None]], Awaitable[None]] | None = None,
) -> None:
    """Serve one streaming RPC on `stream` with `native` until it ends (see the module doc).

    `on_stop(stop)` registers the callback a draining server calls, and returns the function that
    unregisters it. `recv()` reads the next raw request (None at the end; default
    `stream.recv_message`), `send(sending)` awaits a batch of answers going out (default: just
    awaits it): the server's transport limits (limits.py) come in through them.
    """
    handler = asyncio.current_task()
    assert handler is not None
    failure: list[BaseException] = []
    reader = asyncio.ensure_future(_read(recv or stream.recv_message, native))

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
        send_frames: Callable[[bytes], Awaitable[None]] | None = None
        while True:
            try:
                frames = await native.next()
            except asyncio.CancelledError:
                if failure:
                    raise _status(failure[0], method) from failure[0]
                raise
            except Exception as exc:
                raise to_grpc_error(exc, method=method) from exc
            if not frames:
                return
            if send_frames is None:
                send_frames = await _frame_sender(stream)
            if send is None:
                await send_frames(frames)
            else:
                await send(send_frames(frames))
    finally:
        unregister()
        reader.cancel()
        native.abort()


async def _read(recv: Callable[[], Awaitable[bytes | None]], native: StreamApi) -> None:
    """Push every request read by `recv` into `native`, pausing while its window is full.

    The requests read in one event-loop iteration are handed over with one `wake`, scheduled by
    the first of them (`loop.call_soon`), like the coalesced writes of transport.py: waking the
    native side costs a syscall, so it is paid per iteration, not per message.
    """
    loop = asyncio.get_running_loop()
    push = native.push
    scheduled = False

    def wake() -> None:
        nonlocal scheduled
        scheduled = False
        native.wake()

    while (request := await recv()) is not None:
        room = push(request)
        if not scheduled:
            scheduled = True
            loop.call_soon(wake)
        if not room:
            await native.room()
    native.close()


async def _frame_sender(stream: RawStream) -> Callable[[bytes], Awaitable[None]]:
    """Send the response headers; return what sends a batch of framed messages at once.

    Why not `stream.send_message` per answer: gRPC messages are length-prefixed frames in one
    HTTP/2 data stream, so a batch framed by the native module goes out as one `send_data`
    (chunked by grpclib to the peer's window and frame size) instead of one per message. grpclib
    has no public call for that; this uses its 0.4.9 `Stream._stream` (the version is pinned).
    """
    await stream.send_initial_metadata()
    h2_stream = stream._stream
    return h2_stream.send_data


def frame(messages: list[bytes]) -> bytes:
    """`messages` as they go on the wire of a gRPC stream: each a 0 byte (not compressed), its
    length as a big-endian u32, then the message (the native module frames its own answers)."""
    return b"".join(b"\x00" + len(m).to_bytes(4, "big") + m for m in messages)


def _status(exc: BaseException, method: str) -> GRPCError:
    if isinstance(exc, GRPCError):
        return exc
    return to_grpc_error(exc if isinstance(exc, Exception) else RuntimeError(exc), method=method)
