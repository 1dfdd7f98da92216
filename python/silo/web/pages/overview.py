"""The overview: a tenant's queues with their jobs per status, refreshed live, and pausing or
resuming a queue (docs/ui.md#overview). Tenants may be millions: the page names one (the tenant
box) and never lists them all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from silo import errors
from silo.types import QueueStats
from silo.web.context import api, read_form, render
from silo.web.forms import STATUSES
from silo.web.notices import notice

__all__ = ["QueueRow", "Queues", "routes"]

routes = web.RouteTableDef()


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One queue as the table shows it."""

    name: str
    paused: bool
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @classmethod
    def of(cls, stats: QueueStats) -> QueueRow:
        counts = {s.name: int(stats.counts.get(s.name, 0)) for s in STATUSES}
        return cls(name=stats.name, paused=stats.paused, counts=counts)


@dataclass(frozen=True, slots=True)
class Queues:
    """The queue table: its rows, or why there are none (`problem`) and the page's status."""

    rows: list[QueueRow]
    problem: str | None = None
    status: int = 200

    @property
    def totals(self) -> dict[str, int]:
        return {s.name: sum(r.counts[s.name] for r in self.rows) for s in STATUSES}


async def _queues(request: web.Request, tenant: str) -> Queues:
    """The tenant's queues, or none and why (a bad tenant: 400; a tenant the session's token
    may not see: 403; a broker without ListQueues)."""
    try:
        stats = await api(request).list_queues(tenant=tenant)
    except errors.InvalidArgument as exc:
        return Queues([], str(exc), 400)
    except errors.PermissionDenied as exc:  # a session whose token may not see this tenant
        return Queues([], str(exc), 403)
    except errors.Unimplemented as exc:
        return Queues([], str(exc))
    return Queues(sorted((QueueRow.of(s) for s in stats), key=lambda r: r.name))


async def _render_queues(request: web.Request, template: str, **extra: Any) -> web.Response:
    """`template` with the queue table of the tenant the query names."""
    tenant = request.query.get("tenant", "")
    queues = await _queues(request, tenant)
    return render(
        request,
        template,
        tenant=tenant,
        queues=queues,
        statuses=STATUSES,
        status=queues.status,
        **extra,
    )


@routes.get("/", name="overview")
async def overview(request: web.Request) -> web.Response:
    return await _render_queues(request, "overview.html", notice=notice(request.query))


@routes.get("/fragments/queues")
async def queue_rows(request: web.Request) -> web.Response:
    """The rows of the queue table (the overview's script swaps them in every few seconds)."""
    return await _render_queues(request, "_queues.html")


async def _pause_or_resume(request: web.Request, *, pause: bool) -> web.Response:
    form = await read_form(request)
    tenant, queue = form.get("tenant", ""), form.get("queue", "")
    if pause:
        await api(request).pause_queue(queue=queue, tenant=tenant)
    else:
        await api(request).resume_queue(queue=queue, tenant=tenant)
    done = "paused" if pause else "resumed"
    fields = (("tenant", tenant), ("done", done), ("queue", queue))
    query = urlencode([(k, v) for k, v in fields if v])
    raise web.HTTPSeeOther(f"/?{query}")


@routes.post("/queues/pause")
async def pause(request: web.Request) -> web.Response:
    return await _pause_or_resume(request, pause=True)


@routes.post("/queues/resume")
async def resume(request: web.Request) -> web.Response:
    return await _pause_or_resume(request, pause=False)
