"""The tenant's schedules (cron or interval), a page at a time: when each runs next, the job it
enqueues and the last one it did (docs/ui.md#schedules)."""

from __future__ import annotations

from aiohttp import web

from silo import errors
from silo.web.context import api, render

__all__ = ["routes"]

PAGE_SIZE = 100

routes = web.RouteTableDef()


@routes.get("/schedules")
async def schedules(request: web.Request) -> web.Response:
    tenant = request.query.get("tenant", "")
    token = request.query.get("token", "")
    try:
        page = await api(request).list_schedules_page(
            tenant=tenant, page_size=PAGE_SIZE, page_token=token
        )
    except (errors.InvalidArgument, errors.Unimplemented) as exc:
        status = 400 if isinstance(exc, errors.InvalidArgument) else 200
        return render(
            request, "schedules.html", page=None, error=str(exc), status=status, nav="schedules"
        )
    return render(request, "schedules.html", page=page, error=None, nav="schedules")
