"""The HTTP application of a broker (docs/ui.md, docs/operations.md#http): routes, error pages,
security headers, and the server that `silo serve --http` and `Broker.serve_http` run in the
broker's own event loop.

Every error becomes a page with the right status, never a traceback: a SiloError gets the HTTP
status of its gRPC status (one table, `HTTP_STATUS`, over python/silo/status.py's), anything else
a 500 page with a fixed message (the traceback goes to the log). Responses carry a
Content-Security-Policy without 'unsafe-inline': scripts and styles come from /static only.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import jinja2
from aiohttp import web
from grpclib.const import Status

from silo import errors
from silo.status import status_for
from silo.web import format as fmt
from silo.web.context import BROKER, STATE, TEMPLATES, HttpState, render
from silo.web.pages import (
    actions,
    bulk,
    cluster,
    health,
    job,
    login,
    overview,
    schedules,
    search,
)
from silo.web.session import METRICS_AUTH, SESSIONS, Sessions, require_session

if TYPE_CHECKING:
    import ssl

    from silo.broker import Broker
    from silo.server.auth import Authenticator

__all__ = ["HTTP_STATUS", "RunningHttp", "create_app", "start_http"]

log = logging.getLogger("silo.web")

HERE: Final = Path(__file__).parent

#: The HTTP status of each gRPC status a broker call can fail with; anything else is a 500.
HTTP_STATUS: Final[Mapping[Status, int]] = {
    Status.INVALID_ARGUMENT: 400,
    Status.UNAUTHENTICATED: 401,
    Status.PERMISSION_DENIED: 403,
    Status.NOT_FOUND: 404,
    Status.ALREADY_EXISTS: 409,
    Status.FAILED_PRECONDITION: 409,
    Status.RESOURCE_EXHAUSTED: 429,
    Status.UNIMPLEMENTED: 501,
    Status.UNAVAILABLE: 503,
}

#: Headers of every response (docs/ui.md#security).
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        "form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_TITLES: Final = {
    400: "Bad request",
    401: "Not signed in",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Not possible now",
    429: "Too many requests",
    500: "Internal error",
    501: "Not available",
    503: "Unavailable",
}


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    """The error page of `status` with `message` (already safe to show)."""
    title = _TITLES.get(status, "Error")
    return render(request, "error.html", status=status, code=status, title=title, message=message)


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or request.path in health.PLAIN_PATHS:
            raise
        return error_page(request, exc.status, exc.text or exc.reason)
    except errors.SiloError as exc:
        status = status_for(type(exc))
        http = HTTP_STATUS.get(status, 500) if status is not None else 500
        if http == 500:
            log.error("%s %s failed: %r", request.method, request.path, exc, exc_info=exc)
            return error_page(request, 500, "internal error (the detail is in the server log)")
        return error_page(request, http, str(exc))
    except Exception as exc:
        log.error("%s %s failed: %r", request.method, request.path, exc, exc_info=exc)
        return error_page(request, 500, "internal error (the detail is in the server log)")


@web.middleware
async def server_timing(request: web.Request, handler: Handler) -> web.StreamResponse:
    """`Server-Timing: app;dur=MS`: how long the page took to make, broker calls included (the
    UI benchmark reads it; browsers' developer tools show it)."""
    started = time.perf_counter()
    response = await handler(request)
    response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.3f}"
    return response


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if SESSIONS in request.app and not request.path.startswith("/static/"):
        # Pages of a session show one token's tenants: no shared cache may keep them.
        response.headers.setdefault("Cache-Control", "no-store")


def _templates(app: web.Application) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(fmt.FILTERS)
    env.globals.update(fmt.GLOBALS)
    static = app.router["static"]

    def static_url(filename: str) -> str:
        return str(static.url_for(filename=filename))

    env.globals["static_url"] = static_url
    env.globals["now_ms"] = lambda: time.time_ns() // 1_000_000
    return env


def create_app(
    broker: Broker,
    *,
    auth: Authenticator | None = None,
    secure: bool = False,
    metrics_public: bool = False,
) -> web.Application:
    """The web UI, /metrics, /healthz and /readyz of `broker`, as an aiohttp application.

    With `auth` (the tokens of an auth file), every page and action needs a session begun by
    signing in with a token, and acts as that token (docs/ui.md#sign-in); `secure`: the session
    cookie is sent only over HTTPS (set it when serving TLS); /metrics needs an `admin` token
    unless `metrics_public`. Without `auth` everything is open (a loopback address, or
    `--insecure`).

    Serve it with `Broker.serve_http`, or with an aiohttp runner and site of your own in the
    broker's event loop. Its links are absolute: serve it at the root of a host or port.
    """
    app = web.Application(middlewares=[server_timing, error_pages, require_session])
    app[BROKER] = broker
    app[STATE] = HttpState()
    if auth is not None:
        app[SESSIONS] = Sessions(auth, secure=secure)
        if not metrics_public:
            app[METRICS_AUTH] = auth
    app.router.add_static("/static/", HERE / "static", name="static", append_version=True)
    app[TEMPLATES] = _templates(app)
    app.on_response_prepare.append(_security_headers)
    for routes in (health, login, overview, search, bulk, job, actions, schedules, cluster):
        app.router.add_routes(routes.routes)
    return app


@dataclass
class RunningHttp:
    """A started HTTP server of a broker; `host`/`port` are the bound address."""

    runner: web.AppRunner
    state: HttpState
    host: str
    port: int

    @property
    def address(self) -> str:
        """The bound address as `HOST:PORT` (an IPv6 host in brackets)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def drain(self) -> None:
        """Shutdown began: /readyz answers 503 from now on; pages still answer."""
        self.state.draining = True

    async def close(self) -> None:
        """Stop listening and close the connections (requests in flight get 2 s)."""
        self.state.draining = True
        await self.runner.cleanup()


async def start_http(
    broker: Broker,
    sock: socket.socket,
    *,
    auth: Authenticator | None = None,
    tls: ssl.SSLContext | None = None,
    metrics_public: bool = False,
) -> RunningHttp:
    """Serve `create_app(broker, ...)` on the bound socket `sock` (taken over) in this event
    loop, over `tls` (None: plaintext), with `auth`'s sign-in (None: open)."""
    app = create_app(broker, auth=auth, secure=tls is not None, metrics_public=metrics_public)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    site = web.SockSite(runner, sock, ssl_context=tls)
    await site.start()
    host, port = sock.getsockname()[:2]
    return RunningHttp(runner, app[STATE], host=host, port=port)
