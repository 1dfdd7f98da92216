"""Helpers of the web UI tests (test_http*.py, test_ui_browser.py): job states, page text."""

from __future__ import annotations

import html
import re
from typing import Any

from silo.types import Task, TaskFailure


async def running_job(api: Any, *, tenant: str, queue: str, **fields: Any) -> tuple[str, Task]:
    """Enqueue a job into `queue` (which must hold no other due job) and lease it: RUNNING."""
    job_id = await api.enqueue(tenant=tenant, queue=queue, **fields)
    tasks = await api.lease_tasks(worker_id="web-test", queues=[queue], wait_ms=5_000)
    assert [t.job_id for t in tasks] == [job_id], tasks
    return job_id, tasks[0]


async def finished_job(
    api: Any,
    *,
    tenant: str,
    queue: str,
    result: bytes | None = None,
    failure: TaskFailure | None = None,
    **fields: Any,
) -> str:
    """A job of `queue` that ran once and ended with `result` (SUCCEEDED) or `failure`
    (FAILED: give no retry policy)."""
    job_id, task = await running_job(api, tenant=tenant, queue=queue, **fields)
    await api.report_task_outcome(
        task_id=task.task_id, worker_id="web-test", result=result, failure=failure
    )
    return job_id


def text_of(page: str) -> str:
    """The visible text of an HTML page, whitespace folded (for `in` assertions)."""
    no_tags = re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S))
    return " ".join(html.unescape(no_tags).split())


def table_rows(page: str, table_class: str) -> list[list[str]]:
    """The body rows of the page's `<table class="{table_class}">`, each as its cells' visible
    text (header cells included, in order)."""
    found = re.search(rf'<table class="{table_class}">(.*?)</table>', page, flags=re.S)
    assert found is not None, f"no table {table_class!r} on the page"
    body = re.search(r"<tbody>(.*?)</tbody>", found[1], flags=re.S)
    assert body is not None
    rows = re.findall(r"<tr\b[^>]*>(.*?)</tr>", body[1], flags=re.S)
    return [
        [text_of(c) for c in re.findall(r"<t[hd]\b[^>]*>(.*?)</t[hd]>", r, flags=re.S)]
        for r in rows
    ]
