"""The job page: status, payload, metadata, retry policy, concurrency and rate limits and what
the job waits on, attempts with worker, times, result or failure and heartbeat cursor; values
shown by web/values.py, each with a download link (docs/ui.md#job)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

from aiohttp import web

from silo import errors
from silo.types import Attempt, Job, JobStatus
from silo.web.context import api, render
from silo.web.notices import notice
from silo.web.values import Shown, show

__all__ = ["JOB_ACTIONS", "JobAction", "job_url", "routes"]

routes = web.RouteTableDef()

#: The values a download can ask for: of the job, or of one attempt (`attempt=N`).
JOB_PARTS: Final = ("payload", "result", "failure")
ATTEMPT_PARTS: Final = ("result", "failure", "cursor")


@dataclass(frozen=True, slots=True)
class JobAction:
    """An action of the job page: its button, its question and the confirming button."""

    button: str
    question: str
    confirm_label: str
    danger: bool


#: The actions on one job, in the order the page shows those its status allows.
JOB_ACTIONS: Final[Mapping[str, JobAction]] = {
    "expedite": JobAction(
        "Run now", "Make job “{id}” due now instead of at its scheduled time?", "Run now", False
    ),
    "cancel": JobAction(
        "Cancel",
        "Cancel job “{id}”? A running attempt is told on its next heartbeat.",
        "Cancel job",
        True,
    ),
    "restart": JobAction(
        "Restart", "Restart job “{id}” with a fresh retry budget?", "Restart job", False
    ),
    "delete": JobAction(
        "Delete",
        "Delete job “{id}” with its attempts? This cannot be undone.",
        "Delete job",
        True,
    ),
}


def job_url(tenant: str, id: str, **extra: str) -> str:
    """The job page's address (ids may hold any character, so they go in the query)."""
    fields = [("tenant", tenant)] if tenant else []
    fields += [("id", id), *extra.items()]
    return f"/job?{urlencode(fields)}"


def data_url(job: Job, part: str, attempt: int = 0) -> str:
    fields = [("tenant", job.tenant)] if job.tenant else []
    fields += [("id", job.id), ("part", part)]
    if attempt:
        fields.append(("attempt", str(attempt)))
    return f"/job/data?{urlencode(fields)}"


@dataclass(frozen=True, slots=True)
class AttemptView:
    attempt: Attempt
    result: Shown
    failure: Shown
    cursor: Shown

    @property
    def duration_ms(self) -> int | None:
        a = self.attempt
        return a.finished_at_ms - a.started_at_ms if a.finished_at_ms else None


def _max_attempts(job: Job) -> int:
    return 1 + (job.retry_policy.max_retries if job.retry_policy else 0)


def _actions(job: Job) -> list[str]:
    """The actions the job's status allows, in the order the page shows them."""
    s = job.status
    actions = []
    if s is JobStatus.SCHEDULED:
        actions.append("expedite")
    if not s.terminal:
        actions.append("cancel")
    if s in (JobStatus.FAILED, JobStatus.CANCELLED):
        actions.append("restart")
    if s.terminal:
        actions.append("delete")
    return actions


def _ref(request: web.Request) -> tuple[str, str]:
    tenant = request.query.get("tenant", "")
    job_id = request.query.get("id", "")
    if not job_id:
        raise errors.InvalidArgument("id: give a job id")
    return tenant, job_id


async def _get_job(request: web.Request, tenant: str, job_id: str, attempts: bool) -> Job:
    """The job, or the 404 page naming what was looked for."""
    try:
        return await api(request).get_job(id=job_id, tenant=tenant, include_attempts=attempts)
    except errors.JobNotFound:
        where = f"tenant {tenant!r}" if tenant else "the default tenant"
        raise web.HTTPNotFound(text=f"There is no job {job_id!r} in {where}.") from None


@routes.get("/job", name="job")
async def job_page(request: web.Request) -> web.Response:
    tenant, job_id = _ref(request)
    job = await _get_job(request, tenant, job_id, True)
    attempts = [
        AttemptView(
            attempt=a,
            result=show(a.result),
            failure=show(a.failure.data if a.failure else b""),
            cursor=show(a.heartbeat_cursor),
        )
        for a in reversed(job.attempts)
    ]
    return render(
        request,
        "job.html",
        job=job,
        tenant=tenant,
        payload=show(job.payload),
        result=show(job.result),
        failure=show(job.last_failure.data if job.last_failure else b""),
        attempts=attempts,
        max_attempts=_max_attempts(job),
        actions=[(name, JOB_ACTIONS[name]) for name in _actions(job)],
        data_url=data_url,
        notice=notice(request.query),
        nav="jobs",
    )


def _filename(job_id: str, part: str, attempt: int, data: bytes) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", job_id)[:80] or "job"
    suffix = {"json": "json", "text": "txt"}.get(show(data[:65536]).kind, "bin")
    at = f"-attempt{attempt}" if attempt else ""
    return f"{stem}{at}-{part}.{suffix}"


@routes.get("/job/data")
async def job_data(request: web.Request) -> web.Response:
    """One value of a job or attempt, whole, as a download."""
    tenant, job_id = _ref(request)
    part = request.query.get("part", "")
    attempt_text = request.query.get("attempt", "")
    attempt_no = int(attempt_text) if attempt_text.isascii() and attempt_text.isdigit() else 0
    if attempt_text and not attempt_no:
        raise errors.InvalidArgument("attempt: expected a positive attempt number")
    parts = ATTEMPT_PARTS if attempt_no else JOB_PARTS
    if part not in parts:
        raise errors.InvalidArgument(f"part: expected one of {', '.join(parts)}")
    job = await _get_job(request, tenant, job_id, bool(attempt_no))
    if attempt_no:
        found = [a for a in job.attempts if a.attempt == attempt_no]
        if not found:
            raise web.HTTPNotFound(text=f"job {job_id!r} has no attempt {attempt_no}")
        a = found[0]
        data = {
            "result": a.result,
            "failure": a.failure.data if a.failure else b"",
            "cursor": a.heartbeat_cursor,
        }[part]
    else:
        data = {
            "payload": job.payload,
            "result": job.result,
            "failure": job.last_failure.data if job.last_failure else b"",
        }[part]
    name = _filename(job_id, part, attempt_no, data)
    return web.Response(
        body=data,
        content_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
