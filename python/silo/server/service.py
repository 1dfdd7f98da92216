"""grpclib services `silo.v1.Silo` and `silo.admin.v1.Admin`: each RPC hands its raw request to
one broker call.

Handlers do no per-job work: the request bytes go to the native broker, which decodes,
validates, runs the operation durably and encodes the reply; this module only routes calls,
counts the ones in flight for a graceful shutdown, and maps errors through status.py.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from grpclib.const import Cardinality, Handler, Status
from grpclib.exceptions import GRPCError
from grpclib.server import Stream

from silo import errors
from silo.server.codec import RawMessage
from silo.status import to_grpc_error

__all__ = ["ADMIN_SERVICE", "SILO_SERVICE", "BrokerApi", "CallTracker", "RawService", "services"]

SILO_SERVICE = "silo.v1.Silo"
ADMIN_SERVICE = "silo.admin.v1.Admin"

RawStream = Stream[bytes, bytes]
RawCall = Callable[[bytes], Awaitable[bytes]]


class BrokerApi(Protocol):
    """What the services need from a broker: `silo.Broker` satisfies it.

    `call(rpc, request)` takes the method name of a unary RPC (e.g. "Enqueue") and its encoded
    request and returns the encoded reply, raising silo.errors classes on failure (Unimplemented
    for an RPC the broker does not serve yet).
    """

    def call(self, rpc: str, request: bytes) -> Awaitable[bytes]: ...


class CallTracker:
    """Counts the calls in flight across services and refuses new ones once draining."""

    #: Calls that may legitimately wait a long time (LeaseTasks long-polls, up to 60 s; WaitJob,
    #: up to 300 s); the broker's close answers them, so a drain need not wait for them.
    LONG_POLLS = frozenset({f"/{SILO_SERVICE}/LeaseTasks", f"/{SILO_SERVICE}/WaitJob"})

    def __init__(self) -> None:
        self.draining = False
        self._in_flight = 0
        self._long_polls = 0
        self._changed = asyncio.Event()

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

    async def wait_idle(self, *, include_long_polls: bool = True) -> None:
        """Return once no call is in flight (or only long-polls, when not included)."""
        while self._in_flight - (0 if include_long_polls else self._long_polls) > 0:
            self._changed.clear()
            await self._changed.wait()


class RawService:
    """grpclib servable for one gRPC service whose unary RPCs pass raw bytes to broker calls.

    Contract: every route answers the broker's reply bytes or the status of its error
    (status.py); a route whose call is None answers UNIMPLEMENTED; while the tracker drains,
    new calls answer UNAVAILABLE and calls in flight run to completion.
    """

    def __init__(
        self, name: str, routes: Mapping[str, RawCall | None], tracker: CallTracker
    ) -> None:
        self.name = name
        self._routes = dict(routes)
        self._tracker = tracker

    def __mapping__(self) -> dict[str, Handler]:
        return {
            f"/{self.name}/{method}": Handler(
                self._handler(f"/{self.name}/{method}", method, call),
                Cardinality.UNARY_UNARY,
                RawMessage,
                RawMessage,
            )
            for method, call in self._routes.items()
        }

    def _handler(
        self, route: str, method: str, call: RawCall | None
    ) -> Callable[[RawStream], Awaitable[None]]:
        tracker = self._tracker

        async def handle(stream: RawStream) -> None:
            tracker.enter(route)
            try:
                if call is None:
                    raise to_grpc_error(
                        errors.Unimplemented(f"{method} is not implemented yet"), method=method
                    )
                request = await stream.recv_message()
                if request is None:  # the client closed its side without a message
                    raise to_grpc_error(
                        errors.InvalidArgument("request: missing message"), method=method
                    )
                try:
                    reply = await call(request)
                except Exception as exc:
                    raise to_grpc_error(exc, method=method) from exc
                await stream.send_message(reply)
            finally:
                tracker.leave(route)

        handle.__name__ = method
        handle.__qualname__ = f"{type(self).__name__}.{method}"
        return handle


def services(broker: BrokerApi, tracker: CallTracker) -> tuple[RawService, RawService]:
    """The Silo and Admin services over `broker`, sharing `tracker`: one route per unary RPC of
    the core's table (`silo._native.rpcs()`, rust/rpc.rs). Streaming RPCs have no route yet
    (grpclib answers UNIMPLEMENTED for them)."""
    from silo._native import rpcs

    routes: dict[str, dict[str, RawCall | None]] = {SILO_SERVICE: {}, ADMIN_SERVICE: {}}
    for service, method, streaming in rpcs():
        if not streaming:
            routes[service][method] = functools.partial(broker.call, method)
    return (
        RawService(SILO_SERVICE, routes[SILO_SERVICE], tracker),
        RawService(ADMIN_SERVICE, routes[ADMIN_SERVICE], tracker),
    )
