"""The operator surface of a broker over HTTP (docs/ui.md, docs/operations.md#http): the web
UI, `/metrics`, `/healthz` and `/readyz`, an aiohttp application served in the broker's event
loop by `silo serve --http` and `silo.Broker.serve_http`, or by your own runner (`create_app`)."""

from __future__ import annotations

from silo.web.app import RunningHttp, create_app, start_http

__all__ = ["RunningHttp", "create_app", "start_http"]
