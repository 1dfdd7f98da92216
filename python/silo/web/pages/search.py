"""Job search: every ListJobs filter (queue, several statuses, metadata pairs, a created
window), newest first, a page at a time with the broker's opaque token (docs/ui.md#search).

A page may come back short, even empty, with a token: the broker bounds the work of one page
(docs/api.md#listjobs), so the page says it is still scanning and offers the next one rather
than looking like the end.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from silo import errors
from silo.web.context import api, render
from silo.web.forms import STATUSES, SearchForm, parse_search, raw_search
from silo.web.notices import notice
from silo.web.pages.bulk import BULK_ACTIONS

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.get("/jobs", name="jobs")
async def search(request: web.Request) -> web.Response:
    context: dict[str, Any] = {
        "statuses": STATUSES,
        "bulk_actions": BULK_ACTIONS,
        "notice": notice(request.query),
        "nav": "jobs",
    }
    form: SearchForm = raw_search(request.query)
    try:
        form = parse_search(request.query)
        f = form.filter
        page = await api(request).list_jobs_page(
            tenant=f.tenant,
            queue=f.queue,
            statuses=f.statuses,
            metadata=f.metadata,
            created_after_ms=f.created_after_ms,
            created_before_ms=f.created_before_ms,
            page_size=form.size,
            page_token=form.page_token,
        )
    except errors.InvalidArgument as exc:
        return render(
            request, "search.html", form=form, page=None, error=str(exc), status=400, **context
        )
    except errors.Unimplemented as exc:
        return render(request, "search.html", form=form, page=None, error=str(exc), **context)
    scanning = bool(page.next_page_token) and len(page.jobs) < form.size
    return render(
        request,
        "search.html",
        form=form,
        page=page,
        error=None,
        scanning=scanning,
        tenant=form.tenant,
        **context,
    )
