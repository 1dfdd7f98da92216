"""Runs a broker as a gRPC server (`silo serve`; `silo.Broker.serve` for an embedded one): Silo
and Admin services, standard health service, graceful shutdown.

Startup: bind the sockets (gRPC, and HTTP unless `--http off`), open the store, serve, print
`http on HOST:PORT` (the web UI and /metrics, python/silo/web/) and `listening on HOST:PORT`.
On SIGTERM or SIGINT: /readyz answers 503; refuse new calls (UNAVAILABLE, health NOT_SERVING),
stop the streams (each answers what it read and ends OK), let calls in flight finish, close the
broker (which flushes SlateDB and answers parked LeaseTasks and WaitJob calls), let those answers
go out and the streams' clients read their ends, close the gRPC and HTTP servers, and return 0. A
SIGTERM or SIGINT while the store is still opening gives the opening up and returns 0 at once. If
a newer broker fences this one off the store, the same shutdown runs and the exit code is 1.
Every error is one line on stderr starting with `silo:`.

Security (docs/security.md): with `--auth-file` every call needs a known bearer token and SIGHUP
re-reads the file (a bad file keeps the old tokens); `--tls-cert/--tls-key` serve TLS (gRPC and
HTTP), `--tls-client-ca` requires client certificates, `--tls-peer-ca` names the CAs the
other nodes are checked against when a call is forwarded. Before anything is bound, the server
refuses (exit 2) a non-loopback `--listen` or `--http` without `--auth-file` unless `--insecure`,
an auth file with a bad entry, and unusable TLS files. The transport's limits (limits.py) guard
every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import socket
import ssl
import sys
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

from grpclib.const import Handler as GrpcHandler
from grpclib.health.check import ServiceStatus
from grpclib.health.service import OVERALL, Health
from grpclib.server import Handler, Server

from silo import errors
from silo.config import ConfigError
from silo.server.auth import Authenticator, AuthError
from silo.server.codec import PassthroughCodec
from silo.server.limits import GuardedProtocol, Limits, LimitSettings
from silo.server.service import BrokerApi, CallTracker, Gate, ObserveRpc, services
from silo.server.transport import CoalescingProtocol
from silo.web import start_http

if TYPE_CHECKING:
    from silo.config import ServeConfig

__all__ = [
    "DRAIN_GRACE_S",
    "RunningServer",
    "bind",
    "check_exposure",
    "format_address",
    "is_loopback",
    "run",
    "start_server",
]

log = logging.getLogger("silo.server")

T = TypeVar("T")

#: How long a shutdown waits for calls in flight (other than long-polls and WaitJob, which the
#: broker's close answers) before closing the broker anyway.
DRAIN_GRACE_S: Final = 10.0
#: After the broker is closed, how long the remaining calls get to send their answers.
CLOSE_GRACE_S: Final = 2.0

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
#: A bad setting, auth file or TLS file: nothing was served.
EXIT_USAGE: Final = 2


def format_address(host: str, port: int) -> str:
    """`HOST:PORT`, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (port 0 picks a free one), ready to be served.

    Raises OSError if the address cannot be resolved or bound.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    if not infos:
        raise OSError(f"cannot resolve {host!r}")
    family, type_, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or a name) reaches only this machine: every address it
    resolves to is a loopback address. An unresolvable name is not loopback."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def check_exposure(addresses: Mapping[str, str], *, auth: bool, insecure: bool) -> None:
    """Refuse to serve on a non-loopback address without tokens unless `insecure`: an open
    broker on a network by accident is the classic incident (docs/security.md#defaults).
    `addresses` maps each flag (`--listen`, ...) to its HOST:PORT. Raises ConfigError naming the
    flag."""
    if auth or insecure:
        return
    from silo.config import parse_listen

    for flag, address in addresses.items():
        host, _ = parse_listen(address)
        if not is_loopback(host):
            raise ConfigError(
                f"refusing {flag} {address}: it is not a loopback address and there is no "
                "--auth-file (anyone who reaches it could read, cancel and lease every job); "
                "give --auth-file, or --insecure to serve it open"
            )


class _Server(Server):
    """grpclib's Server, plus coalesced writes, the transport's limits, and closing the client
    connections at shutdown.

    Why: each connection's protocol gets a transport that sends everything written in one loop
    iteration at once (transport.py: an answer is one send() instead of three), and registers
    with the server's `Limits` (limits.py: caps, timeouts, strict frame sizes). grpclib's
    close() cancels handlers but leaves connections open, and on Python >= 3.12 `wait_closed()`
    waits for every connection to drop, so a connected idle worker would hang the shutdown.
    This relies on grpclib 0.4.9's `_protocol_factory` (the version is pinned).
    """

    def __init__(self, *args: Any, limits: Limits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._protocols: weakref.WeakSet[GuardedProtocol] = weakref.WeakSet()

    # The factory goes to loop.create_server, which takes any asyncio protocol. Built as
    # grpclib's own factory builds its H2Protocol, with our subclass of it.
    def _protocol_factory(self) -> CoalescingProtocol:  # type: ignore[override]
        self.__gc_step__()
        handler = Handler(self._mapping, self._codec, self._status_details_codec, self.__dispatch__)
        self._handlers.add(handler)
        protocol = GuardedProtocol(handler, self._config, self._h2_config, limits=self.limits)
        self._protocols.add(protocol)
        return CoalescingProtocol(protocol)

    def close_connections(self) -> None:
        """Close every client connection; streams still open are terminated."""
        for protocol in list(self._protocols):
            processor = getattr(protocol, "processor", None)  # set once the connection is made
            if processor is not None:
                processor.close("the broker is shutting down")

    async def wait_streams_closed(self, timeout_s: float) -> None:
        """Wait up to `timeout_s` until no client connection has an HTTP/2 stream still open on
        the client's side (a stream the server ended whose client has not closed its half yet).

        Why: grpclib's client drops what it has received but not yet read when its connection
        closes, so a stream ended with OK at shutdown (a WorkerSession, an EnqueueStream) must
        stay connected until its client has read the end. grpclib has no event for that, hence
        the short polls (shutdown only, bounded by `timeout_s`).
        """
        poll_s = 0.01
        for _ in range(max(1, round(timeout_s / poll_s))):
            if not self._open_streams():
                return
            await asyncio.sleep(poll_s)

    def _open_streams(self) -> int:
        open_streams = 0
        for protocol in list(self._protocols):
            processor = getattr(protocol, "processor", None)
            if processor is not None and not processor.connection.is_closing():
                open_streams += processor.connection._connection.open_inbound_streams
        return open_streams


@dataclass
class RunningServer:
    """A started gRPC server over a broker; `host`/`port` are the bound address."""

    server: _Server
    tracker: CallTracker
    health: ServiceStatus
    host: str
    port: int
    gate: Gate

    @property
    def limits(self) -> Limits:
        """The transport's limits, with their gauges and refusal counters."""
        return self.gate.limits

    @property
    def address(self) -> str:
        """The bound address as `HOST:PORT`."""
        return format_address(self.host, self.port)

    async def drain(self, grace_s: float = DRAIN_GRACE_S) -> bool:
        """Refuse new calls, stop the streams (each reads no more and ends OK once it answered
        what it read) and wait up to `grace_s` for the calls in flight, LeaseTasks long-polls
        and WaitJob calls excepted; True if they all finished.

        Does not close the broker or the listener: close the broker (which answers the parked
        long-polls), then call `close()`.
        """
        self.tracker.drain()
        self.health.set(False)
        try:
            await asyncio.wait_for(self.tracker.wait_idle(include_long_polls=False), grace_s)
        except TimeoutError:
            return False
        return True

    async def close(self, grace_s: float = CLOSE_GRACE_S) -> None:
        """Wait up to `grace_s` for the remaining calls and for the clients of ended streams to
        read their ends, then close the listener and every connection; calls still running then
        are cancelled."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.tracker.wait_idle(), grace_s)
        self.server.close()
        await self.server.wait_streams_closed(max(0.0, deadline - loop.time()))
        self.server.close_connections()
        await self.server.wait_closed()


class _CheckedHealth:
    """The standard health service behind the transport's limits: its request is read through
    `Limits.stream_message` (the size limit from the length prefix; no auth, by design)."""

    def __init__(self, health: Health, limits: Limits) -> None:
        self._health = health
        self._limits = limits

    def __mapping__(self) -> dict[str, GrpcHandler]:
        out = {}
        for path, h in self._health.__mapping__().items():
            out[path] = GrpcHandler(
                self._wrap(path, h.func), h.cardinality, h.request_type, h.reply_type
            )
        return out

    def _wrap(self, path: str, func: Callable[[Any], Awaitable[None]]) -> Any:
        limits = self._limits

        async def handle(stream: Any) -> None:
            limits.check_connection(stream)
            await func(_LimitedStream(stream, limits, path))

        return handle


class _LimitedStream:
    """A grpclib server stream whose `recv_message` reads through the limits (see
    _CheckedHealth); everything else is the stream's."""

    def __init__(self, stream: Any, limits: Limits, method: str) -> None:
        self._s = stream
        self._limits = limits
        self._method = method

    async def recv_message(self) -> Any:
        data = await self._limits.stream_message(self._s, self._method)
        if data is None:
            return None
        return self._s._codec.decode(data, self._s._recv_type)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s, name)


async def start_server(
    broker: BrokerApi,
    sock: socket.socket,
    *,
    auth: Authenticator | None = None,
    tls: ssl.SSLContext | None = None,
    limits: LimitSettings | None = None,
    observe: ObserveRpc | None = None,
) -> RunningServer:
    """Serve `broker` on the bound socket `sock` (taken over: closing the server closes it),
    with `auth`'s tokens (None: no checks), over `tls` (None: plaintext), within `limits`.
    `observe` learns each unary call's duration (the broker's `silo_rpc_duration_seconds`).

    Serves silo.v1.Silo, silo.admin.v1.Admin and grpc.health.v1.Health; health answers SERVING
    for "" and "silo.v1.Silo" until the server drains, and needs no token.
    """
    tracker = CallTracker()
    server_limits = Limits(limits)
    gate = Gate(server_limits, auth)
    silo, admin = services(broker, tracker, gate, observe)
    health_status = ServiceStatus()
    health_status.set(True)
    health = Health({silo: [health_status], OVERALL: [health_status]})
    server = _Server(
        [silo, admin, _CheckedHealth(health, server_limits)],
        codec=PassthroughCodec(),
        limits=server_limits,
    )
    await server.start(sock=sock, ssl=tls)
    host, port = sock.getsockname()[:2]
    return RunningServer(server, tracker, health_status, host=host, port=port, gate=gate)


async def run(config: ServeConfig) -> int:
    """Run `silo serve` until SIGTERM or SIGINT (exit code 0) or until fenced (1).

    Exit 1 with one line on stderr if the address cannot be bound, the native module is missing
    or the store cannot be opened; exit 0 if SIGTERM or SIGINT arrives while the store opens.
    """
    try:
        from silo.broker import Broker
    except ImportError as exc:
        return _fail(f"the native module is not built ({exc}); run `make install`")

    try:
        exposed = {"--listen": config.listen}
        if config.http_host_port is not None:
            exposed["--http"] = format_address(*config.http_host_port)
        check_exposure(
            exposed,
            auth=config.auth_file is not None,
            insecure=config.insecure,
        )
        auth = None if config.auth_file is None else Authenticator.from_file(config.auth_file)
        tls = _server_tls(config)
        http_tls = _server_tls(config, http=True)
        if config.tls_peer_ca is not None:
            from silo.tls import check_peer_ca

            check_peer_ca(config.tls_peer_ca)
    except (ConfigError, AuthError) as exc:
        _fail(str(exc))
        return EXIT_USAGE
    stop = _install_stop_signals()  # before the store opens, so an early SIGTERM is clean too
    if auth is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, auth.reload)
        log.info("auth file %s: %d token(s); SIGHUP re-reads it", config.auth_file, len(auth.table))
    host, port = config.host_port
    try:
        sock = bind(host, port)
    except OSError as exc:
        return _fail(f"cannot listen on {config.listen}: {exc}")
    http_sock: socket.socket | None = None
    http_address = config.http_host_port
    if http_address is not None:
        try:
            http_sock = bind(*http_address)
        except OSError as exc:
            sock.close()
            where = format_address(*http_address)
            return _fail(f"cannot serve http on {where}: {exc} (set --http, or --http off)")

    try:
        bound = format_address(*sock.getsockname()[:2])
        broker = await _unless_stopped(Broker.open(config, bound=bound), stop)
    except errors.SiloError as exc:
        _close_all(sock, http_sock)
        return _fail(f"cannot open store {config.store!r}: {exc}")
    if broker is None:
        _close_all(sock, http_sock)
        log.info("stopped while the store was opening; nothing was served")
        return EXIT_OK

    log.info("broker settings: %s", broker.settings())
    running = await start_server(
        broker,
        sock,
        auth=auth,
        tls=tls,
        limits=LimitSettings.of(config),
        observe=broker.metrics.rpc_observer(),
    )
    http = None
    if http_sock is not None:
        http = await start_http(
            broker, http_sock, auth=auth, tls=http_tls, metrics_public=config.metrics_public
        )
    exit_code = EXIT_OK
    if not stop.is_set():
        if http is not None:
            print(f"http on {http.address}", flush=True)
        print(f"listening on {running.address}", flush=True)
        fenced = asyncio.ensure_future(broker.wait_fenced())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({fenced, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if fenced.done():
            exit_code = _fail(
                f"a newer broker opened store {config.store!r}; this one stops serving"
            )
        else:
            fenced.cancel()

    if broker.forwards:
        # A cluster node hands its shards over while it still serves (forwarding what it
        # gets to their new owners), then drains (docs/cluster.md#membership).
        log.info("leaving the cluster: handing shards over")
        await broker.leave()
    log.info("shutting down: draining %d call(s) in flight", running.tracker.in_flight)
    if http is not None:
        http.drain()
    if not await running.drain():
        log.warning("calls still in flight after %.0f s; closing the broker", DRAIN_GRACE_S)
    try:
        await broker.close()
    except errors.SiloError as exc:
        exit_code = _fail(f"error while closing the store: {exc}")
    await running.close()
    if http is not None:
        await http.close()
    log.info("stopped")
    return exit_code


async def _unless_stopped(opening: Awaitable[T], stop: asyncio.Event) -> T | None:
    """The result of `opening` (the broker's store opening), or None if `stop` is set first.

    Raises what `opening` raises. An opening given up is cancelled, which drops the native
    future wherever it stands (pyo3-async-runtimes). That leaves nothing half-written: each
    object-store write is whole or absent (an S3 PUT is atomic, a local file is renamed into
    place) and SlateDB is built to resume after a process that stops at any point, which is what
    the next broker on the store does.
    """
    task = asyncio.ensure_future(opening)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done():  # opened (or failed), even if a stop came as well: the caller shuts it down
        return task.result()
    task.cancel()
    return None


def _server_tls(config: ServeConfig, *, http: bool = False) -> ssl.SSLContext | None:
    """The TLS context of the gRPC server, or with `http` of the HTTP server (HTTP/1.1)."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    from silo.tls import HTTP_ALPN, server_context

    return server_context(
        cert=config.tls_cert,
        key=config.tls_key,
        client_ca=config.tls_client_ca,
        **({"alpn": HTTP_ALPN} if http else {}),
    )


def _close_all(*socks: socket.socket | None) -> None:
    for sock in socks:
        if sock is not None:
            sock.close()


def _install_stop_signals() -> asyncio.Event:
    """An event set by the first SIGTERM or SIGINT (instead of KeyboardInterrupt)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _fail(message: str) -> int:
    """Print `message` as one `silo:` line on stderr and return the failure exit code.

    Why one line: store errors may carry a server's multi-line answer (an S3 XML error body);
    its whitespace, newlines included, is folded so that the error stays one line to read and
    to grep.
    """
    print(f"silo: {' '.join(message.split())}", file=sys.stderr, flush=True)
    return EXIT_FAILURE
