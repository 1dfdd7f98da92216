"""`silo.Broker`: the whole broker in this process, driven from one asyncio event loop.

`silo.open(store, **settings)` returns one. It satisfies `silo.Api` with typed values (each call
is one native call: no gRPC, no protobuf in Python), it serves the gRPC server's raw path
(`call(rpc, request_bytes)`, python/silo/server/service.py), and `await broker.serve(address)`
lets other processes reach it over gRPC.

How answers arrive: each call hands the native broker a future of the loop; the broker runs the
call on its tokio runtime and queues the future with its answer in a completion queue. The loop
watches the queue's file descriptor (`loop.add_reader`) and settles every queued future in one
native call, so tokio threads never take the GIL and many answers cost one wakeup
(rust/py/completions.rs says why). Typed replies become `silo.types` values there, on the loop
thread (rust/py/convert/).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from silo import _native
from silo.config import DEFAULT_HTTP, DEFAULT_LISTEN, DEFAULT_STORE, ServeConfig, parse_listen
from silo.methods import ApiMethods

if TYPE_CHECKING:
    import socket

    from silo.server.app import RunningServer
    from silo.server.auth import Authenticator
    from silo.server.metrics import BrokerMetrics
    from silo.web import RunningHttp

__all__ = ["ActingAs", "Broker", "open"]

log = logging.getLogger("silo.broker")

T = TypeVar("T")


class Broker(ApiMethods):
    """A broker opened on the running event loop (see the module doc).

    Use it from the loop that opened it only; that loop keeps watching the completion queue
    until it closes, so answers that arrive after `close()` are still delivered. Cancelling the
    task that awaits a call aborts the native call (a parked LeaseTasks then leases nothing for
    it; a state change the shard actor already began still completes, durably).

    Only one process may have a store open: opening it again (here or in `silo serve`) fences
    this broker off; from then on its calls fail with StoreUnavailable and `wait_fenced()`
    returns. Nothing it acknowledged is lost.
    """

    def __init__(
        self, native: _native.Broker, completions: _native.Completions, *, forwards: bool = False
    ) -> None:
        self._native = native
        self._completions = completions
        self._loop = asyncio.get_running_loop()
        #: Whether calls may be forwarded to other nodes (cluster mode): the gRPC server then
        #: hands each call's metadata over with it (docs/cluster.md#routing).
        self.forwards = forwards
        self._servers: list[RunningServer] = []
        self._http: list[RunningHttp] = []
        self._metrics: BrokerMetrics | None = None
        self._closed = False

    @classmethod
    async def open(cls, config: ServeConfig, *, bound: str | None = None) -> Broker:
        """Open (or create) the store of `config` and rebuild the broker's state; `bound` is
        the address a server listens on (the default `--advertise` of a cluster node).

        Raises StoreUnavailable when the store cannot be opened, InvalidArgument for a bad URL.
        """
        loop = asyncio.get_running_loop()
        completions = _native.Completions()
        loop.add_reader(completions.fileno(), completions.drain)
        try:
            native: _native.Broker = await _run(
                loop,
                lambda future: _native.Broker.open(
                    completions, future, config.broker_settings(bound=bound)
                ),
            )
        except BaseException:
            loop.remove_reader(completions.fileno())
            raise
        return cls(native, completions, forwards=config.cluster is not None)

    async def _invoke(self, rpc: str, fields: object) -> Any:
        return await self._invoke_as(rpc, fields, None)

    async def _invoke_as(
        self, rpc: str, fields: object, principal: _native.Principal | None
    ) -> Any:
        future: asyncio.Future[Any] = self._loop.create_future()
        call = self._native.invoke(future, rpc, fields, principal)
        try:
            return await future
        except asyncio.CancelledError:
            call.abort()
            raise

    def acting_as(self, principal: _native.Principal) -> ActingAs:
        """This broker's typed API for calls made with `principal`'s token: each call is
        checked as the gRPC server checks it (the RPC's role, the tenants it names;
        PermissionDenied otherwise, docs/security.md). Calls on the broker itself are trusted.
        The web UI serves each session's requests through one of these."""
        return ActingAs(self, principal)

    def call(
        self,
        rpc: str,
        request: bytes,
        principal: _native.Principal | None = None,
        metadata: list[tuple[str, bytes]] | None = None,
    ) -> Awaitable[bytes]:
        """Serve the unary RPC named `rpc` (e.g. "Enqueue") from its encoded protobuf request,
        for `principal` (a verified token; None: trusted); the encoded reply, or the silo.errors
        exception of the failure. The gRPC server's path (it never decodes a Silo message in
        Python). `metadata` (the caller's) travels with the call if it is forwarded to the node
        that owns its shard, which checks the token again."""
        return self._raw(rpc, request, principal, metadata)

    async def _raw(
        self,
        rpc: str,
        request: bytes,
        principal: _native.Principal | None,
        metadata: list[tuple[str, bytes]] | None = None,
    ) -> bytes:
        future: asyncio.Future[bytes] = self._loop.create_future()
        call = self._native.call(future, rpc, request, principal, metadata)
        try:
            return await future
        except asyncio.CancelledError:
            call.abort()
            raise

    def stream(
        self,
        rpc: str,
        principal: _native.Principal | None = None,
        metadata: list[tuple[str, bytes]] | None = None,
    ) -> NativeStream:
        """Start serving the streaming RPC named `rpc` ("EnqueueStream" or "WorkerSession") from
        raw messages, for `principal` (None: trusted), with the call's `metadata` (passed on
        with requests forwarded to other nodes: docs/cluster.md#routing): the gRPC server's
        stream path (python/silo/server/streams.py)."""
        native = _native.Stream(self._native, rpc, principal, metadata)
        return NativeStream(native, self._loop)

    # Serving gRPC

    async def serve(
        self,
        address: str = DEFAULT_LISTEN,
        *,
        auth_file: str | None = None,
        tls: ssl.SSLContext | None = None,
        insecure: bool = False,
    ) -> RunningServer:
        """Serve this broker over gRPC on `address` (`HOST:PORT`; port 0 picks a free one;
        the returned server's `address` says which): silo.v1.Silo, silo.admin.v1.Admin and the
        health service, as `silo serve` does, with the tokens of `auth_file` (docs/security.md;
        None: no checks) and over `tls` (`silo.tls.server_context`; None: plaintext).
        `close()` stops the server first.

        Raises OSError when the address cannot be bound, ValueError when it is malformed,
        ConfigError (a ValueError) for a non-loopback address without `auth_file` unless
        `insecure`, AuthError (a ValueError) for a bad auth file.
        """
        from silo.server.app import start_server

        sock, auth = _bind_checked(address, auth_file, insecure)
        running = await start_server(
            self, sock, auth=auth, tls=tls, observe=self.metrics.rpc_observer()
        )
        self._servers.append(running)
        return running

    async def serve_http(
        self,
        address: str = DEFAULT_HTTP,
        *,
        auth_file: str | None = None,
        tls: ssl.SSLContext | None = None,
        insecure: bool = False,
        metrics_public: bool = False,
    ) -> RunningHttp:
        """Serve the web UI, `/metrics`, `/healthz` and `/readyz` of this broker on `address`
        (`HOST:PORT`; port 0 picks a free one; the returned server's `address` says which), as
        `silo serve --http` does (docs/ui.md): with `auth_file`, pages need a session signed in
        with one of its tokens and /metrics an `admin` token unless `metrics_public`
        (docs/security.md#web-ui); over `tls` (None: plaintext). `close()` stops it. To mount
        the UI in an aiohttp application of your own instead, use `silo.web.create_app`.

        Raises OSError when the address cannot be bound, ValueError when it is malformed,
        ConfigError (a ValueError) for a non-loopback address without `auth_file` unless
        `insecure`, AuthError (a ValueError) for a bad auth file.
        """
        from silo.web import start_http

        sock, auth = _bind_checked(address, auth_file, insecure)
        running = await start_http(self, sock, auth=auth, tls=tls, metrics_public=metrics_public)
        self._http.append(running)
        return running

    @property
    def metrics(self) -> BrokerMetrics:
        """This broker's Prometheus registry (docs/operations.md#metrics): the core's counters
        and histograms, and the durations of the gRPC calls its `serve()` servers answer."""
        if self._metrics is None:
            from silo.server.metrics import BrokerMetrics

            counting = self.settings().get("metrics") != "false"
            self._metrics = BrokerMetrics(self._native.metrics, counting=counting)
        return self._metrics

    # Lifecycle

    async def wait_fenced(self) -> None:
        """Return once a newer broker has fenced this one off the store: from then on every
        call fails with StoreUnavailable, and the process should stop serving."""
        await _run(self._loop, self._native.wait_fenced)

    def settings(self) -> dict[str, str]:
        """The effective settings (store, flush_interval_ms, lease_ms, ...)."""
        return self._native.settings()

    async def leave(self) -> None:
        """In a cluster, leave it: hand every shard over to the nodes that stay (this node
        forwards the calls it still gets). Without a cluster, nothing."""
        await _run(self._loop, self._native.leave)

    async def close(self) -> None:
        """Stop the gRPC servers of `serve()` (their calls in flight finish first) and the
        HTTP servers of `serve_http()`, finish queued commands, answer parked LeaseTasks, flush
        and close the store. Idempotent."""
        servers, self._servers = self._servers, []
        http, self._http = self._http, []
        for site in http:
            site.drain()
        for server in servers:
            await server.drain()
        self._closed = True
        await _run(self._loop, self._native.close)
        for server in servers:
            await server.close()
        for site in http:
            await site.close()

    @property
    def closed(self) -> bool:
        """Whether `close()` was called."""
        return self._closed


class ActingAs(ApiMethods):
    """The typed API of a broker for one token (`Broker.acting_as`). Closing it closes nothing:
    the broker belongs to its opener."""

    def __init__(self, broker: Broker, principal: _native.Principal) -> None:
        self.broker = broker
        self.principal = principal

    async def _invoke(self, rpc: str, fields: object) -> Any:
        return await self.broker._invoke_as(rpc, fields, self.principal)

    async def close(self) -> None:
        """Nothing to release (the broker stays open)."""


class NativeStream:
    """One stream RPC served by the native broker; satisfies silo.server.streams.StreamApi.

    `push(request)` hands over one raw request (False once the stream's window is full: await
    `room()` before reading more), and `wake()` hands what was pushed to the native side (once
    per loop iteration); `next()` returns the next answers in order, framed as gRPC messages on
    the wire, b"" once the stream ended OK, or raises the silo.errors class that ends it;
    `close()` says no more requests come; `abort()` stops it (the client went away). Use it
    from the broker's loop.
    """

    def __init__(self, native: _native.Stream, loop: asyncio.AbstractEventLoop) -> None:
        self._native = native
        self._loop = loop
        self.push = native.push
        self.wake = native.wake
        self.close = native.close
        self.abort = native.abort

    async def room(self) -> None:
        """Return once the window has room again (or the stream is over)."""
        await _run(self._loop, self._native.room)

    async def next(self) -> bytes:
        """The next answers, framed as gRPC messages on the wire (b"" once the stream ended
        OK)."""
        future: asyncio.Future[bytes] = self._loop.create_future()
        self._native.next(future)
        return await future


async def open(store: str = DEFAULT_STORE, **settings: Any) -> Broker:
    """Open the broker on `store` in this process: a directory path, `file:///abs/path`,
    `memory://` or `s3://bucket/prefix` (docs/operations.md#stores). `settings` are those of
    `silo serve` by field name (`lease_ms=`, `flush_interval_ms=`, `max_payload_bytes=`, ...,
    docs/operations.md#settings).

    Raises ConfigError (a ValueError) for a bad setting, StoreUnavailable when the store cannot
    be opened. Opening a store fences off any broker that had it open.
    """
    return await Broker.open(ServeConfig(store=store, **settings))


async def _run(loop: asyncio.AbstractEventLoop, start: Callable[[asyncio.Future[T]], Any]) -> T:
    """Start a native call that settles the future it is given and await it; cancelling aborts
    the call."""
    future: asyncio.Future[T] = loop.create_future()
    call = start(future)
    try:
        return await future
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            call.abort()
        raise


def _bind_checked(
    address: str, auth_file: str | None, insecure: bool
) -> tuple[socket.socket, Authenticator | None]:
    """The listening socket of `Broker.serve`/`serve_http` on `address`, after the safe-default
    check (a non-loopback address needs `auth_file` unless `insecure`: docs/security.md), and
    the tokens of `auth_file` (None: no checks)."""
    from silo.server.app import bind, check_exposure
    from silo.server.auth import Authenticator

    host, port = parse_listen(address)
    check_exposure({"address": address}, auth=auth_file is not None, insecure=insecure)
    auth = None if auth_file is None else Authenticator.from_file(auth_file)
    return bind(host, port), auth
