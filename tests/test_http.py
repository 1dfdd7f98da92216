"""The web UI over plain HTTP (docs/ui.md) against a real `silo serve --http`: every page's
success and error paths, the job actions and their confirmation, values shown as JSON, text or
hex, downloads, and the security-ready shape of every page (CSP, POST forms with a csrf field,
no inline script)."""

from __future__ import annotations

import html
import json
import re
from typing import Any
from urllib.parse import parse_qs

from silo.types import JobStatus, TaskFailure
from web_helpers import finished_job, running_job, table_rows, text_of

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)
POST_FORM = re.compile(r"<form\b[^>]*method=\"post\"[^>]*>(.*?)</form>", re.S | re.I)


async def get(http: Any, path: str, **params: str) -> tuple[int, str, Any]:
    async with http.get(path, params=params, allow_redirects=False) as r:
        return r.status, await r.text(), r.headers


async def post(http: Any, path: str, form: dict[str, str]) -> tuple[int, str, Any]:
    async with http.post(path, data=form, allow_redirects=False) as r:
        return r.status, await r.text(), r.headers


def assert_secure_page(body: str, headers: Any) -> None:
    """The page loads scripts from files only and every POST form carries the csrf field."""
    assert re.fullmatch(r"app;dur=\d+\.\d{3}", headers["Server-Timing"])
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp, csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert not INLINE_SCRIPT.search(body), INLINE_SCRIPT.search(body)
    assert not INLINE_HANDLER.search(body), INLINE_HANDLER.search(body)
    for form in POST_FORM.findall(body):
        assert 'name="csrf"' in form, form


async def test_job_page_shows_status_payload_metadata_and_attempts(ns, http, http_api) -> None:
    payload = json.dumps({"to": "ada@example.com", "n": [1, 2]}).encode()
    result = json.dumps({"sent": True}).encode()
    job_id = await finished_job(
        http_api,
        tenant=ns.tenant,
        queue=ns.queue,
        payload=payload,
        result=result,
        metadata={"customer": "c42"},
    )
    status, body, headers = await get(http, "/job", tenant=ns.tenant, id=job_id)
    assert status == 200, body
    assert_secure_page(body, headers)
    text = text_of(body)
    assert job_id in text and "succeeded" in text and "web-test" in text
    # Pretty JSON: one key per line, indented.
    shown = html.unescape(body)
    assert '\n  "to": "ada@example.com",\n' in shown
    assert '"sent": true' in shown
    assert "customer=c42" in text
    assert "1 of at most 1" in text


async def test_binary_values_show_as_hex_with_their_size(ns, http, http_api) -> None:
    data = bytes([0xFF, 0x00, 0x80, 0x41]) * 8
    job_id = await finished_job(
        http_api,
        tenant=ns.tenant,
        queue=ns.queue,
        failure=TaskFailure(code="Boom", message="it broke", data=data, non_retryable=True),
    )
    status, body, _ = await get(http, "/job", tenant=ns.tenant, id=job_id)
    assert status == 200
    text = text_of(body)
    assert "failed" in text and "Boom" in text and "it broke" in text
    assert "00000000 ff 00 80 41 ff 00 80 41" in text
    assert "32 B" in text


async def test_large_values_are_cut_with_a_download_of_the_whole(ns, http, http_api) -> None:
    payload = ("line of text\n" * 10_000).encode()  # 130 KB of UTF-8 text
    job_id = await http_api.enqueue(tenant=ns.tenant, queue=ns.queue, payload=payload)
    status, body, _ = await get(http, "/job", tenant=ns.tenant, id=job_id)
    assert status == 200
    assert "Showing the first part of 127.0 KiB" in text_of(body)
    assert body.count("line of text") < 10_000
    async with http.get(
        "/job/data", params={"tenant": ns.tenant, "id": job_id, "part": "payload"}
    ) as r:
        assert r.status == 200
        assert r.headers["Content-Disposition"].startswith("attachment;")
        assert ".txt" in r.headers["Content-Disposition"]
        assert await r.read() == payload


async def test_attempt_values_download_and_cursor_shows(ns, http, http_api) -> None:
    job_id, task = await running_job(http_api, tenant=ns.tenant, queue=ns.queue)
    await http_api.heartbeat_task(
        task_id=task.task_id, worker_id="web-test", cursor=b'{"offset": 42}'
    )
    status, body, _ = await get(http, "/job", tenant=ns.tenant, id=job_id)
    assert status == 200
    assert "heartbeat cursor" in body and '"offset": 42' in html.unescape(body)
    async with http.get(
        "/job/data", params={"tenant": ns.tenant, "id": job_id, "part": "cursor", "attempt": "1"}
    ) as r:
        assert r.status == 200 and await r.read() == b'{"offset": 42}'


async def test_unknown_job_and_bad_addresses_are_error_pages(ns, http) -> None:
    status, body, headers = await get(http, "/job", tenant=ns.tenant, id="no-such-job")
    assert status == 404 and "Not found" in body, body
    assert f"There is no job 'no-such-job' in tenant '{ns.tenant}'." in text_of(body)
    assert_secure_page(body, headers)
    status, body, _ = await get(http, "/job", tenant=ns.tenant)
    assert status == 400 and "id: give a job id" in text_of(body)
    status, body, _ = await get(http, "/job", tenant="t" * 200, id="x")
    assert status == 400 and "tenant" in text_of(body)
    status, body, _ = await get(http, "/no/such/page")
    assert status == 404 and "Not found" in body
    status, body, _ = await get(http, "/job/data", id="x", part="secrets")
    assert status == 400 and "part: expected one of payload, result, failure" in text_of(body)


async def test_downloads_of_missing_attempts_are_404(ns, http, http_api) -> None:
    job_id = await http_api.enqueue(tenant=ns.tenant, queue=ns.queue)
    status, body, _ = await get(
        http, "/job/data", tenant=ns.tenant, id=job_id, part="result", attempt="3"
    )
    assert status == 404 and "no attempt 3" in text_of(body)
    status, body, _ = await get(
        http, "/job/data", tenant=ns.tenant, id=job_id, part="result", attempt="x"
    )
    assert status == 400 and "attempt" in text_of(body)


async def test_cancel_asks_for_confirmation_then_cancels(ns, http, http_api) -> None:
    job_id, _ = await running_job(http_api, tenant=ns.tenant, queue=ns.queue)
    form = {"tenant": ns.tenant, "id": job_id, "csrf": "", "confirmed": ""}
    status, body, headers = await post(http, "/job/cancel", form)
    assert status == 200 and "Are you sure?" in body and f"Cancel job “{job_id}”" in body
    assert 'name="confirmed" value="1"' in body
    assert_secure_page(body, headers)
    assert (await http_api.get_job(id=job_id, tenant=ns.tenant)).status is JobStatus.RUNNING

    status, _, headers = await post(http, "/job/cancel", {**form, "confirmed": "1"})
    assert status == 303
    assert (await http_api.get_job(id=job_id, tenant=ns.tenant)).status is JobStatus.CANCELLED
    status, body, _ = await get(http, headers["Location"])
    assert status == 200 and "Job cancelled." in text_of(body)
    assert "cancelled" in text_of(body)


async def test_an_action_the_job_no_longer_allows_shows_why(ns, http, http_api) -> None:
    job_id = await finished_job(http_api, tenant=ns.tenant, queue=ns.queue, result=b"")
    form = {"tenant": ns.tenant, "id": job_id, "csrf": "", "confirmed": "1"}
    status, body, _ = await post(http, "/job/cancel", form)
    assert status == 409, body
    assert "SUCCEEDED" in text_of(body) or "terminal" in text_of(body).lower()
    status, body, _ = await post(http, "/job/cancel", {**form, "id": "no-such-job"})
    assert status == 404


async def test_actions_are_post_only(ns, http) -> None:
    status, body, _ = await get(http, "/job/cancel", tenant=ns.tenant, id="x")
    assert status == 405 and "Method not allowed" in body


async def test_pause_and_resume_a_queue(ns, http, http_api) -> None:
    form = {"tenant": ns.tenant, "queue": ns.queue, "csrf": ""}
    status, _, headers = await post(http, "/queues/pause", form)
    assert status == 303 and "done=paused" in headers["Location"]
    job_id = await http_api.enqueue(tenant=ns.tenant, queue=ns.queue)
    assert await http_api.lease_tasks(worker_id="w", queues=[ns.queue]) == []
    status, body, _ = await get(http, headers["Location"])
    assert f"Queue “{ns.queue}” paused" in text_of(body)
    status, _, headers = await post(http, "/queues/resume", form)
    assert status == 303 and "done=resumed" in headers["Location"]
    tasks = await http_api.lease_tasks(worker_id="w", queues=[ns.queue])
    assert [t.job_id for t in tasks] == [job_id]


async def test_notices_show_only_their_own_sentences(ns, http) -> None:
    _, body, _ = await get(http, "/", tenant=ns.tenant, done="<b>pwned</b>")
    assert "pwned" not in body
    _, body, _ = await get(http, "/", tenant=ns.tenant, done="paused", queue="<b>q</b>")
    assert "<b>q</b>" not in body and "&lt;b&gt;q&lt;/b&gt;" in body


async def test_search_shows_bad_filters_beside_the_form(ns, http) -> None:
    cases = {
        "status": ("BOGUS", "status: unknown status 'BOGUS'"),
        "after": ("yesterday", "created after: expected a UTC time"),
        "size": ("5000", "page size: expected 1..1000"),
        "meta": ("customer", "metadata: line 1 ('customer') is not key=value"),
    }
    for field, (value, message) in cases.items():
        status, body, headers = await get(http, "/jobs", tenant=ns.tenant, **{field: value})
        assert status == 400, (field, body)
        assert message in text_of(body), (field, text_of(body))
        assert f'value="{ns.tenant}"' in body  # the form keeps what was typed
        assert_secure_page(body, headers)
    status, body, _ = await get(
        http, "/jobs", tenant=ns.tenant, after="2026-01-02T00:00", before="2026-01-01T00:00"
    )
    assert status == 400 and "created before: must be later" in text_of(body)


async def test_schedules_page(ns, http, http_api) -> None:
    from silo.types import NewJob, Schedule

    await http_api.put_schedule(
        Schedule(name="nightly", tenant=ns.tenant, cron="0 3 * * *", job=NewJob(queue=ns.queue))
    )
    status, body, headers = await get(http, "/schedules", tenant=ns.tenant)
    assert status == 200
    assert_secure_page(body, headers)
    text = text_of(body)
    assert "nightly" in text and "0 3 * * *" in text and ns.queue in text
    status, body, _ = await get(http, "/schedules", tenant=ns.tenant + "-none")
    assert status == 200 and "No schedules" in body


async def test_static_files_are_served_with_their_types(http) -> None:
    _, body, _ = await get(http, "/")
    css = re.search(r'href="(/static/silo\.css[^"]*)"', body)
    js = re.search(r'src="(/static/silo\.js[^"]*)"', body)
    assert css and js, body
    async with http.get(css.group(1)) as r:
        assert r.status == 200 and r.content_type == "text/css"
    async with http.get(js.group(1)) as r:
        assert r.status == 200 and "javascript" in r.content_type


async def test_the_cluster_page_of_a_single_broker(ns, http, http_api) -> None:
    """One node owning the one shard, with the shard's counts (docs/ui.md#cluster); the
    multi-node page is tested in test_cluster.py."""
    job_id, _ = await running_job(http_api, tenant=ns.tenant, queue=ns.queue)
    status, body, headers = await get(http, "/cluster")
    assert status == 200, body
    assert_secure_page(body, headers)
    assert "1 node, 1 shard" in text_of(body)
    assert 'href="/cluster" aria-current="page"' in body
    [node] = table_rows(body, "nodes")  # `silo serve` alone: its id is its address
    assert node == [f"{node[1]} this node", node[1], "1", "0"], node
    [shard] = table_rows(body, "shards")
    assert shard[:2] == ["0", node[1]] and all(c.isdigit() for c in shard[2:]), shard
    assert int(shard[4]) >= 1  # Running: our job, at least
    assert "Moving" not in text_of(body)
    assert (await http_api.get_job(id=job_id, tenant=ns.tenant)).status is JobStatus.RUNNING


# ---------------------------------------------------------------- queues, search, bulk (ListJobs)


async def test_overview_lists_queues_with_their_counts(ns, http, http_api) -> None:
    done = f"{ns.queue}-a"
    paused = f"{ns.queue}-b"
    await finished_job(http_api, tenant=ns.tenant, queue=done, result=b"ok")
    await http_api.enqueue(tenant=ns.tenant, queue=done)
    await http_api.enqueue(tenant=ns.tenant, queue=paused)
    await http_api.pause_queue(tenant=ns.tenant, queue=paused)
    for path in ("/", "/fragments/queues"):
        status, body, headers = await get(http, path, tenant=ns.tenant)
        assert status == 200, body
        assert_secure_page(body, headers)
        rows = re.findall(r"<tr(?: class=\"paused\")?>\s*<th scope=\"row\">(.*?)</tr>", body, re.S)
        by_queue = {text_of(r).split()[0]: text_of(r) for r in rows}
        assert by_queue[done].split()[1:8] == ["0", "1", "0", "1", "0", "0", "2"], by_queue
        assert "paused" in by_queue[paused] and "Resume" in by_queue[paused]
        assert "Pause" in by_queue[done]
        assert f"queue={done}&amp;status=SUCCEEDED" in body  # counts link to their search


async def test_overview_of_a_tenant_without_jobs_says_so(ns, http) -> None:
    status, body, _ = await get(http, "/", tenant=ns.tenant)
    assert status == 200 and "No queues yet" in body
    status, body, _ = await get(http, "/", tenant="x" * 200)
    assert status == 400 and "tenant" in text_of(body)


async def test_search_by_each_filter(ns, http, http_api) -> None:
    failure = TaskFailure(code="E", non_retryable=True)
    failed = await finished_job(
        http_api, tenant=ns.tenant, queue=ns.queue, failure=failure, metadata={"c": "42"}
    )
    succeeded = await finished_job(
        http_api, tenant=ns.tenant, queue=ns.queue, result=b"", metadata={"c": "42"}
    )
    other = await http_api.enqueue(tenant=ns.tenant, queue=f"{ns.queue}-2", metadata={"c": "7"})

    async def found(**params: str) -> list[str]:
        status, body, headers = await get(http, "/jobs", tenant=ns.tenant, **params)
        assert status == 200, body
        assert_secure_page(body, headers)
        return re.findall(r'<td class="id"><a href="/job\?[^"]*" title="([^"]+)"', body)

    assert await found() == [other, succeeded, failed]  # newest first
    assert await found(status="FAILED") == [failed]
    assert await found(status=["FAILED", "pending"]) == [other, failed]  # type: ignore[arg-type]
    assert await found(meta="c=42") == [succeeded, failed]
    assert await found(meta="c=42\n\n") == [succeeded, failed]
    assert await found(queue=ns.queue) == [succeeded, failed]
    assert await found(after="4102444800000") == []
    assert await found(before="2000-01-01T00:00") == []
    assert await found(queue=ns.queue, meta="c=7") == []


async def test_search_pages_through_every_job_once(ns, http, http_api) -> None:
    ids = [await http_api.enqueue(tenant=ns.tenant, queue=ns.queue) for _ in range(7)]
    seen: list[str] = []
    params: dict[str, str] = {"tenant": ns.tenant, "queue": ns.queue, "size": "3"}
    for _ in range(10):
        status, body, _ = await get(http, "/jobs", **params)
        assert status == 200
        seen += re.findall(r'<td class="id"><a href="/job\?[^"]*" title="([^"]+)"', body)
        more = re.search(r'<a href="/jobs\?([^"]+)" rel="next">', body)
        if more is None:
            break
        params = {k: v[0] for k, v in parse_qs(html.unescape(more.group(1))).items()}
        assert params["size"] == "3" and params["token"]
    assert seen == list(reversed(ids))
    status, body, _ = await get(http, "/jobs", tenant=ns.tenant, token="not-a-token")
    assert status == 400 and "page_token" in text_of(body)


async def test_bulk_restart_asks_then_restarts_every_failed_job(ns, http, http_api) -> None:
    failure = TaskFailure(code="E", non_retryable=True)
    failed = [
        await finished_job(http_api, tenant=ns.tenant, queue=ns.queue, failure=failure)
        for _ in range(3)
    ]
    form = {
        "action": "restart",
        "tenant": ns.tenant,
        "queue": ns.queue,
        "status": "FAILED",
        "csrf": "",
        "confirmed": "",
    }
    status, body, headers = await post(http, "/jobs/bulk", form)
    assert status == 200, body
    assert_secure_page(body, headers)
    assert (
        f"Restart every failed or cancelled job matching tenant '{ns.tenant}', "
        f"queue '{ns.queue}', status FAILED?" in html.unescape(text_of(body))
    )
    assert (await http_api.get_job(id=failed[0], tenant=ns.tenant)).status is JobStatus.FAILED
    status, _, headers = await post(http, "/jobs/bulk", {**form, "confirmed": "1"})
    assert status == 303, headers
    _, body, _ = await get(http, headers["Location"])
    assert "Restarted 3 of 3 matching jobs." in text_of(body)
    for job_id in failed:
        job = await http_api.get_job(id=job_id, tenant=ns.tenant)
        assert job.status is JobStatus.PENDING, job


async def test_bulk_cancel_then_delete(ns, http, http_api) -> None:
    ids = [await http_api.enqueue(tenant=ns.tenant, queue=ns.queue) for _ in range(3)]
    form = {"tenant": ns.tenant, "queue": ns.queue, "csrf": "", "confirmed": "1"}
    status, _, headers = await post(http, "/jobs/bulk", {**form, "action": "cancel"})
    assert status == 303 and "done=bulk-cancel" in headers["Location"]
    assert "changed=3" in headers["Location"]
    statuses = {(await http_api.get_job(id=i, tenant=ns.tenant)).status for i in ids}
    assert statuses == {JobStatus.CANCELLED}
    status, _, headers = await post(http, "/jobs/bulk", {**form, "action": "delete"})
    assert status == 303 and "changed=3" in headers["Location"]
    status, body, _ = await get(http, "/job", tenant=ns.tenant, id=ids[0])
    assert status == 404
    status, body, _ = await post(http, "/jobs/bulk", {**form, "action": "explode"})
    assert status == 400 and "action: expected one of" in text_of(body)
    status, body, _ = await post(http, "/jobs/bulk", {**form, "action": "cancel", "status": "X"})
    assert status == 400 and "unknown status" in text_of(body)


async def test_restart_expedite_and_delete_one_job(ns, http, http_api) -> None:
    failure = TaskFailure(code="E", non_retryable=True)
    failed = await finished_job(http_api, tenant=ns.tenant, queue=ns.queue, failure=failure)
    form = {"tenant": ns.tenant, "csrf": "", "confirmed": "1"}
    status, _, headers = await post(http, "/job/restart", {**form, "id": failed})
    assert status == 303 and "done=restart" in headers["Location"]
    _, body, _ = await get(http, headers["Location"])
    assert "Job restarted" in text_of(body) and "pending" in text_of(body)

    later = await http_api.enqueue(
        tenant=ns.tenant, queue=f"{ns.queue}-later", start_at_ms=4_102_444_800_000
    )
    _, body, _ = await get(http, "/job", tenant=ns.tenant, id=later)
    assert "Run now" in body
    status, _, _ = await post(http, "/job/expedite", {**form, "id": later})
    assert status == 303
    assert (await http_api.get_job(id=later, tenant=ns.tenant)).status is JobStatus.PENDING

    gone = await finished_job(http_api, tenant=ns.tenant, queue=f"{ns.queue}-3", result=b"")
    status, _, headers = await post(http, "/job/delete", {**form, "id": gone})
    assert status == 303 and headers["Location"].startswith("/jobs?")
    _, body, _ = await get(http, headers["Location"])
    assert f"Job “{gone}” deleted." in text_of(body)
    status, _, _ = await get(http, "/job", tenant=ns.tenant, id=gone)
    assert status == 404
