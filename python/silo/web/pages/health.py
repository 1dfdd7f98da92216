"""`/healthz` (the process is up), `/readyz` (the store is open and serving) and `/metrics`
(Prometheus text format): plain text, for probes and scrapers (docs/operations.md#http).

With an auth file, `/metrics` needs `authorization: Bearer <token>` of a token with the `admin`
role (401 without a known token, 403 without the role) unless `--metrics-public`; the probes
stay open (docs/security.md#web-ui)."""

from __future__ import annotations

import asyncio
from typing import Final

from aiohttp import web

from silo import errors
from silo.server.metrics import CONTENT_TYPE
from silo.web.context import STATE, broker
from silo.web.session import METRICS_AUTH

__all__ = ["PLAIN_PATHS", "routes"]

#: How long /readyz waits for the broker to answer before it says 503.
READY_TIMEOUT_S: Final = 2.0
#: Paths answered in plain text (the error pages leave them alone).
PLAIN_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics"})

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """200 while the process runs its event loop."""
    return web.Response(text="ok\n")


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """200 when the broker answers with its store open; 503 while shutting down, after it was
    closed or fenced, during a store outage, or when it does not answer within 2 s."""
    b = broker(request)
    if request.app[STATE].draining or b.closed:
        return _not_ready("the broker is shutting down")
    try:
        await asyncio.wait_for(b.get_stats(), READY_TIMEOUT_S)
    except errors.Unavailable as exc:
        return _not_ready(f"store unavailable: {exc}")
    except TimeoutError:
        return _not_ready(f"the broker did not answer within {READY_TIMEOUT_S:.0f} s")
    return web.Response(text="ready\n")


def _not_ready(reason: str) -> web.Response:
    return web.Response(status=503, text=f"not ready: {' '.join(reason.split())}\n")


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Every metric of the broker in the Prometheus text format (404 with `--metrics off`)."""
    auth = request.app.get(METRICS_AUTH)
    if auth is not None:
        try:
            principal = auth.verify(request.headers)
        except errors.Unauthenticated as exc:
            return web.Response(
                status=401, text=f"{exc}\n", headers={"WWW-Authenticate": 'Bearer realm="silo"'}
            )
        if "admin" not in principal.roles:
            return web.Response(status=403, text="/metrics needs a token with the admin role\n")
    registry = broker(request).metrics
    if not registry.counting:
        return web.Response(status=404, text="metrics are off (--metrics off)\n")
    body = registry.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
