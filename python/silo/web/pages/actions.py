"""Actions on one job: cancel, restart, expedite, delete (docs/ui.md#actions). Each is a POST
that asks for confirmation first (the dialog, or a confirmation page without the script), then
calls the broker and goes back to the job page (to the search after a delete) with a notice. A
refusal (e.g. the job ended meanwhile) shows the broker's reason on an error page."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from silo import errors
from silo.api import Api
from silo.web.context import api, read_form, render
from silo.web.pages.job import JOB_ACTIONS, job_url

__all__ = ["routes"]


routes = web.RouteTableDef()


async def _run(a: Api, action: str, *, id: str, tenant: str) -> None:
    match action:
        case "cancel":
            await a.cancel(id=id, tenant=tenant)
        case "restart":
            await a.restart_job(id=id, tenant=tenant)
        case "expedite":
            await a.expedite_job(id=id, tenant=tenant)
        case "delete":
            await a.delete_job(id=id, tenant=tenant)
        case _:
            raise AssertionError(action)


@routes.post(r"/job/{action:cancel|restart|expedite|delete}")
async def job_action(request: web.Request) -> web.Response:
    name = request.match_info["action"]
    action = JOB_ACTIONS[name]
    form = await read_form(request)
    tenant, job_id = form.get("tenant", ""), form.get("id", "")
    if not job_id:
        raise errors.InvalidArgument("id: give a job id")
    if form.get("confirmed") != "1":
        return render(
            request,
            "confirm.html",
            question=action.question.format(id=job_id),
            url=f"/job/{name}",
            fields=[("tenant", tenant), ("id", job_id)],
            label=action.confirm_label,
            danger=action.danger,
            back=job_url(tenant, job_id),
            tenant=tenant,
        )
    await _run(api(request), name, id=job_id, tenant=tenant)
    if name == "delete":
        fields = [("tenant", tenant)] if tenant else []
        fields += [("done", "delete"), ("id", job_id)]
        raise web.HTTPSeeOther(f"/jobs?{urlencode(fields)}")
    raise web.HTTPSeeOther(job_url(tenant, job_id, done=name))
