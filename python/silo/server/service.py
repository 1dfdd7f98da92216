"""grpclib services `silo.v1.Silo` and `silo.admin.v1.Admin`: each unary RPC hands its raw
request to one broker call; each streaming RPC is served by streams.py over a native stream.

Handlers do no per-job work: the request bytes go to the native broker, which decodes,
validates, runs the operation durably and encodes the reply; this module only routes calls,
counts the ones in flight for a graceful shutdown, and maps errors through status.py.

Before a request is read, a call passes the transport's limits (limits.py: the connection cap,
long-polls and streams open) and, with an auth file, the token check (auth.py: UNAUTHENTICATED
without a known token); its principal then goes with the request into the core, which checks
the RPC's role and the tenants it names (docs/security.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from grpclib.const import Cardinality, Handler, Status
from grpclib.exceptions import GRPCError
from grpclib.server import Stream

from silo import _native, errors
from silo.server.auth import Authenticator
from silo.server.codec import RawMessage
from silo.server.limits import Limits
from silo.server.streams import StreamApi, serve_stream
from silo.status import to_grpc_error

__all__ = ["ADMIN_SERVICE", "SILO_SERVICE", "BrokerApi", "CallTracker", "RawService", "services"]

SILO_SERVICE = "silo.v1.Silo"
ADMIN_SERVICE = "silo.admin.v1.Admin"

RawStream = Stream[bytes, bytes]
Principal = _native.Principal
Metadata = list[tuple[str, bytes]]
RawCall = Callable[[bytes, Principal | None, Metadata | None], Awaitable[bytes]]
OpenStream = Callable[[Principal | None, Metadata | None], StreamApi]
#: observe(method, code, seconds): one call ended (metrics.BrokerMetrics.observe_rpc).
ObserveRpc = Callable[[str, str, float], None]


class BrokerApi(Protocol):
    """What the services need from a broker: `silo.Broker` satisfies it.

    `call(rpc, request, principal, metadata)` takes the method name of a unary RPC (e.g.
    "Enqueue"), its encoded request, the caller's verified token (None without an auth file)
    and (when `forwards`) the caller's metadata, and returns the encoded reply, raising
    silo.errors classes on failure (Unimplemented for an RPC the broker does not serve yet,
    PermissionDenied for a call outside the token's roles or tenants). `forwards`: the broker
    may forward calls to other nodes (a cluster), which then need the caller's metadata: the
    owner checks the token again (docs/cluster.md#routing). `stream(rpc, principal, metadata)`
    starts serving a streaming RPC ("EnqueueStream", "WorkerSession") and returns its stream
    (streams.StreamApi); `metadata` as for `call` (what forwarded stream requests carry).
    """

    forwards: bool

    def call(
        self,
        rpc: str,
        request: bytes,
        principal: Principal | None = None,
        metadata: Metadata | None = None,
    ) -> Awaitable[bytes]: ...

    def stream(
        self, rpc: str, principal: Principal | None = None, metadata: Metadata | None = None
    ) -> StreamApi: ...


class Gate:
    """What every call passes before its request is read: the transport's limits and, with an
    auth file, the token check. One per server, shared by its services."""

    def __init__(self, limits: Limits, auth: Authenticator | None = None) -> None:
        self.limits = limits
        self.auth = auth

    def admit(self, stream: RawStream, method: str) -> Principal | None:
        """The call's principal (None without an auth file). RESOURCE_EXHAUSTED on a connection
        over the cap; UNAUTHENTICATED without a known token."""
        self.limits.check_connection(stream)
        if self.auth is None:
            return None
        try:
            return self.auth.verify(stream.metadata or {})
        except errors.Unauthenticated as exc:
            raise to_grpc_error(exc, method=method) from None


class CallTracker:
    """Counts the calls in flight across services and refuses new ones once draining; stops the
    streams when the drain begins."""

    #: Calls that may legitimately wait a long time (LeaseTasks long-polls, up to 60 s; WaitJob,
    #: up to 300 s); the broker's close answers them, so a drain need not wait for them.
    LONG_POLLS = frozenset({f"/{SILO_SERVICE}/LeaseTasks", f"/{SILO_SERVICE}/WaitJob"})

    def __init__(self) -> None:
        self.draining = False
        self._in_flight = 0
        self._long_polls = 0
        self._changed = asyncio.Event()
        self._stream_stops: set[Callable[[], None]] = set()

    @property
    def in_flight(self) -> int:
        """Number of calls currently being served (long-polls included)."""
        return self._in_flight

    def enter(self, route: str) -> None:
        """Count a call in; UNAVAILABLE if draining."""
        if self.draining:
            raise GRPCError(Status.UNAVAILABLE, "the broker is shutting down")
        self._in_flight += 1
        if route in self.LONG_POLLS:
            self._long_polls += 1

    def leave(self, route: str) -> None:
        """Count a call out (it answered or failed)."""
        self._in_flight -= 1
        if route in self.LONG_POLLS:
            self._long_polls -= 1
        self._changed.set()

    def on_stop(self, stop: Callable[[], None]) -> Callable[[], None]:
        """Register a stream's `stop` (read no more, answer what was read, end OK), called when
        the drain begins; returns the function that unregisters it."""
        self._stream_stops.add(stop)
        return lambda: self._stream_stops.discard(stop)

    def drain(self) -> None:
        """Refuse new calls from now on and stop every open stream."""
        self.draining = True
        for stop in list(self._stream_stops):
            stop()

    async def wait_idle(self, *, include_long_polls: bool = True) -> None:
        """Return once no call is in flight (or only long-polls, when not included)."""
        while self._in_flight - (0 if include_long_polls else self._long_polls) > 0:
            self._changed.clear()
            await self._changed.wait()


class RawService:
    """grpclib servable for one gRPC service whose RPCs pass raw bytes to the broker.

    Contract: every unary route answers the broker's reply bytes or the status of its error
    (status.py); a route whose call is None answers UNIMPLEMENTED; every streaming route is
    served by streams.serve_stream over the stream its opener starts; while the tracker drains,
    new calls answer UNAVAILABLE, unary calls in flight run to completion and streams stop
    reading and end once they answered what they read. `observe`, when given, learns each
    call's method, status code name and duration (a stream's, from its opening to its end).
    """

    def __init__(
        self,
        name: str,
        routes: Mapping[str, RawCall | None],
        tracker: CallTracker,
        streams: Mapping[str, OpenStream] | None = None,
        gate: Gate | None = None,
        observe: ObserveRpc | None = None,
        *,
        pass_metadata: bool = False,
    ) -> None:
        self.name = name
        self._routes = dict(routes)
        self._streams = dict(streams or {})
        self._tracker = tracker
        self._pass_metadata = pass_metadata
        self._gate = gate or Gate(Limits())
        self._observe = observe

    def __mapping__(self) -> dict[str, Handler]:
        unary = {
            f"/{self.name}/{method}": Handler(
                self._handler(f"/{self.name}/{method}", method, call),
                Cardinality.UNARY_UNARY,
                RawMessage,
                RawMessage,
            )
            for method, call in self._routes.items()
        }
        streaming = {
            f"/{self.name}/{method}": Handler(
                self._stream_handler(f"/{self.name}/{method}", method, open_stream),
                Cardinality.STREAM_STREAM,
                RawMessage,
                RawMessage,
            )
            for method, open_stream in self._streams.items()
        }
        return unary | streaming

    def _stream_handler(
        self, route: str, method: str, open_stream: OpenStream
    ) -> Callable[[RawStream], Awaitable[None]]:
        tracker, gate = self._tracker, self._gate
        limits = gate.limits
        pass_metadata = self._pass_metadata

        async def serve(stream: RawStream) -> None:
            tracker.enter(route)
            try:
                principal = gate.admit(stream, method)
                metadata = _metadata(stream.metadata) if pass_metadata else None
                with limits.stream(stream, method):
                    await serve_stream(
                        stream,
                        open_stream(principal, metadata),
                        method=method,
                        on_stop=tracker.on_stop,
                        recv=functools.partial(limits.stream_message, stream, method),
                        send=functools.partial(limits.send, stream, method),
                    )
            finally:
                tracker.leave(route)

        return _timed(method, serve, self._observe, type(self).__name__)

    def _handler(
        self, route: str, method: str, call: RawCall | None
    ) -> Callable[[RawStream], Awaitable[None]]:
        tracker, gate = self._tracker, self._gate
        pass_metadata = self._pass_metadata
        limits = gate.limits
        long_poll = route in CallTracker.LONG_POLLS

        async def serve(stream: RawStream) -> None:
            tracker.enter(route)
            try:
                principal = gate.admit(stream, method)
                if call is None:
                    raise to_grpc_error(
                        errors.Unimplemented(f"{method} is not implemented yet"), method=method
                    )
                polling: Any = limits.long_poll(stream, method) if long_poll else _NOTHING
                with polling:
                    async with limits.request(stream, method) as request:
                        if request is None:  # the client closed its side without a message
                            raise to_grpc_error(
                                errors.InvalidArgument("request: missing message"), method=method
                            )
                        try:
                            reply = await call(
                                request,
                                principal,
                                _metadata(stream.metadata) if pass_metadata else None,
                            )
                        except Exception as exc:
                            raise to_grpc_error(exc, method=method) from exc
                        await limits.send(stream, method, stream.send_message(reply))
            finally:
                tracker.leave(route)

        return _timed(method, serve, self._observe, type(self).__name__)


def _timed(
    method: str,
    serve: Callable[[RawStream], Awaitable[None]],
    observe: ObserveRpc | None,
    owner: str,
) -> Callable[[RawStream], Awaitable[None]]:
    """`serve`, telling `observe` (when given) how the call ended and how long it took."""
    if observe is None:
        handle = serve
    else:

        async def handle(stream: RawStream) -> None:
            started = time.perf_counter()
            code = "OK"
            try:
                await serve(stream)
            except GRPCError as exc:
                code = exc.status.name
                raise
            except asyncio.CancelledError:
                code = "CANCELLED"
                raise
            except BaseException:
                code = "UNKNOWN"
                raise
            finally:
                observe(method, code, time.perf_counter() - started)

    handle.__name__ = method
    handle.__qualname__ = f"{owner}.{method}"
    return handle


def _metadata(metadata: Mapping[str, str | bytes] | None) -> Metadata:
    """A call's metadata as (key, bytes) pairs, as the native broker forwards it."""
    if not metadata:
        return []
    items = metadata.items() if not hasattr(metadata, "allitems") else metadata.allitems()
    return [(k, v.encode() if isinstance(v, str) else v) for k, v in items]


#: The context of a call that is not a long-poll.
_NOTHING: Any = contextlib.nullcontext()


def services(
    broker: BrokerApi,
    tracker: CallTracker,
    gate: Gate | None = None,
    observe: ObserveRpc | None = None,
) -> tuple[RawService, RawService]:
    """The Silo and Admin services over `broker`, sharing `tracker`, `gate` (and `observe`): one
    route per RPC of the core's table (`silo._native.rpcs()`, rust/rpc.rs), unary or streaming."""
    from silo._native import rpcs

    gate = gate or Gate(Limits())
    routes: dict[str, dict[str, RawCall | None]] = {SILO_SERVICE: {}, ADMIN_SERVICE: {}}
    streams: dict[str, dict[str, OpenStream]] = {SILO_SERVICE: {}, ADMIN_SERVICE: {}}
    for service, method, streaming in rpcs():
        if streaming:
            streams[service][method] = functools.partial(broker.stream, method)
        else:
            routes[service][method] = functools.partial(broker.call, method)
    forwards = getattr(broker, "forwards", False)
    return (
        RawService(
            SILO_SERVICE,
            routes[SILO_SERVICE],
            tracker,
            streams[SILO_SERVICE],
            gate,
            observe,
            pass_metadata=forwards,
        ),
        RawService(
            ADMIN_SERVICE,
            routes[ADMIN_SERVICE],
            tracker,
            streams[ADMIN_SERVICE],
            gate,
            observe,
            pass_metadata=forwards,
        ),
    )
