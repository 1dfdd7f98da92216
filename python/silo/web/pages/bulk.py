"""Bulk actions on every job matching a search: cancel, restart, delete (docs/ui.md#bulk).

One POST runs the action to the end: CancelJobs/RestartJobs/DeleteJobs with the search's filter,
called again while the broker answers `more` (each call changes at most 10,000 jobs), within a
time budget; when the budget runs out with jobs left, the page says so and the operator runs it
again. Jobs the action does not apply to are skipped by the broker (e.g. cancel on a terminal
job). Asks for confirmation first (the dialog, or a confirmation page without the script).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from silo import errors
from silo.api import Api
from silo.types import BulkResult, JobFilter
from silo.web.context import api, read_form, render
from silo.web.forms import parse_search

__all__ = ["BULK_ACTIONS", "BULK_BUDGET_S", "routes"]

#: How long one POST keeps calling the bulk RPC before it reports what is left.
BULK_BUDGET_S: Final = 10.0
#: Jobs changed per call (the RPC's maximum).
BULK_LIMIT: Final = 10_000

Call = Callable[[Api, JobFilter], Awaitable[BulkResult]]


@dataclass(frozen=True, slots=True)
class BulkAction:
    label: str  # the button
    verb: str  # the question: "cancel every job matching ..."
    call: Call
    danger: bool


BULK_ACTIONS: Final[Mapping[str, BulkAction]] = {
    "restart": BulkAction(
        "Restart all",
        "Restart every failed or cancelled job matching",
        lambda a, f: a.restart_jobs(filter=f, limit=BULK_LIMIT),
        danger=False,
    ),
    "cancel": BulkAction(
        "Cancel all",
        "Cancel every scheduled, pending or running job matching",
        lambda a, f: a.cancel_jobs(filter=f, limit=BULK_LIMIT),
        danger=True,
    ),
    "delete": BulkAction(
        "Delete all",
        "Delete every finished job (succeeded, failed or cancelled) matching",
        lambda a, f: a.delete_jobs(filter=f, limit=BULK_LIMIT),
        danger=True,
    ),
}

routes = web.RouteTableDef()


@routes.post("/jobs/bulk")
async def bulk(request: web.Request) -> web.Response:
    form = await read_form(request)
    name = form.get("action", "")
    action = BULK_ACTIONS.get(name)
    if action is None:
        raise errors.InvalidArgument(f"action: expected one of {', '.join(BULK_ACTIONS)}")
    search = parse_search(form)
    if form.get("confirmed") != "1":
        return render(
            request,
            "confirm.html",
            question=f"{action.verb} {search.describe()}?",
            url="/jobs/bulk",
            fields=[(k, v) for k, v in form.items() if k not in ("confirmed", "csrf")],
            label=action.label,
            danger=action.danger,
            back=f"/jobs?{search.query()}",
            tenant=search.tenant,
        )
    matched = changed = 0
    more = True
    deadline = time.monotonic() + BULK_BUDGET_S
    while more and time.monotonic() < deadline:
        result = await action.call(api(request), search.filter)
        matched += result.matched
        changed += result.changed
        more = result.more
    extra = {"done": f"bulk-{name}", "changed": str(changed), "matched": str(matched)}
    if more:
        extra["more"] = "1"
    raise web.HTTPSeeOther(f"/jobs?{search.query(**extra)}")
