"""The web UI in a real browser: headless Chromium (Debian's `chromium`, driven by PyPI's
playwright launched with its executable, never a downloaded browser) against a real
`silo serve --http` (docs/ui.md). Each test saves screenshots of the pages it visits under
test-artifacts/ui/ (docs/testing.md#browser-tests); no page may log a console error (a
Content-Security-Policy violation would be one).

Skipped when /usr/bin/chromium (or SILO_CHROMIUM) is missing; CI installs it (.ci/run).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import silo.sync
from silo.testing import ServerProcess
from silo.types import JobStatus, TaskFailure

CHROMIUM = os.environ.get("SILO_CHROMIUM", "/usr/bin/chromium")
REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("SILO_TEST_ARTIFACTS", REPO / "test-artifacts")) / "ui"
#: How long the page may take to show a change (live refresh every 2 s, a busy 2-core machine).
SHOWS_WITHIN_MS = 15_000

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no browser at {CHROMIUM}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


class Page:
    """A browser tab on the server's UI that fails the test on any console error."""

    def __init__(self, browser: Any, server: ServerProcess, *, width: int = 1280) -> None:
        self.page = browser.new_page(viewport={"width": width, "height": 900})
        self.base = server.http_url
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def go(self, path: str) -> Any:
        self.page.goto(self.base + path)
        return self.page

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.page.close()
        assert not self.errors, self.errors


@pytest.fixture
def tab(browser: Any, http_server: ServerProcess) -> Iterator[Page]:
    page = Page(browser, http_server)
    yield page
    page.close()


@pytest.fixture
def api(http_server: ServerProcess) -> Iterator[Any]:
    client = silo.sync.connect(http_server.address)
    yield client
    client.close()


def run_once(api: Any, *, tenant: str, queue: str, **outcome: Any) -> str:
    """A job of `queue` (holding no other due job) that ran once with `outcome`."""
    job_id = api.enqueue(tenant=tenant, queue=queue, payload=b'{"n": 1}')
    (task,) = api.lease_tasks(worker_id="browser-test", queues=[queue], wait_ms=5_000)
    assert task.job_id == job_id
    api.report_task_outcome(task_id=task.task_id, worker_id="browser-test", **outcome)
    return job_id


def job_path(tenant: str, job_id: str) -> str:
    from urllib.parse import urlencode

    return "/job?" + urlencode({"tenant": tenant, "id": job_id})


def test_job_page_shows_json_pretty_and_binary_as_hex(tab: Page, api: Any, ns: Any) -> None:
    from playwright.sync_api import expect

    result = json.dumps({"sent": True, "to": ["ada@example.com"]}).encode()
    json_job = run_once(api, tenant=ns.tenant, queue=ns.queue, result=result)
    page = tab.go(job_path(ns.tenant, json_job))
    expect(page.locator("#job-status")).to_have_text("succeeded")
    shown = page.locator("#result pre")
    expect(shown).to_have_class(re.compile("value-json"))
    assert shown.inner_text() == json.dumps(json.loads(result), indent=2)
    tab.shot("job-json")

    binary = bytes(range(256))
    hex_job = run_once(
        api,
        tenant=ns.tenant,
        queue=ns.queue,
        failure=TaskFailure(code="ValueError", message="bad frame", data=binary),
    )
    page = tab.go(job_path(ns.tenant, hex_job))
    expect(page.locator("#job-status")).to_have_text("failed")
    dump = page.locator("#failure pre")
    expect(dump).to_have_class(re.compile("value-hex"))
    assert dump.inner_text().startswith("00000000  00 01 02 03")
    expect(page.locator("#failure .value-head")).to_contain_text("256 B")
    tab.shot("job-hex")


def test_cancel_a_running_job_through_the_dialog(tab: Page, api: Any, ns: Any) -> None:
    from playwright.sync_api import expect

    job_id = api.enqueue(tenant=ns.tenant, queue=ns.queue, metadata={"customer": "c42"})
    (task,) = api.lease_tasks(worker_id="browser-test", queues=[ns.queue], wait_ms=5_000)
    api.heartbeat_task(task_id=task.task_id, worker_id="browser-test", cursor=b"page=7")
    page = tab.go(job_path(ns.tenant, job_id))
    expect(page.locator("#job-status")).to_have_text("running")
    tab.shot("job-running")
    page.get_by_role("button", name="Cancel", exact=True).click()
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"Cancel job “{job_id}”?")
    tab.shot("confirm-dialog")
    # Escape keeps the job as it is.
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert api.get_job(id=job_id, tenant=ns.tenant).status is JobStatus.RUNNING

    page.get_by_role("button", name="Cancel", exact=True).click()
    dialog.get_by_role("button", name="Cancel job").click()
    expect(page.locator("#job-status")).to_have_text("cancelled")
    expect(page.locator(".notice")).to_have_text("Job cancelled.")
    assert api.get_job(id=job_id, tenant=ns.tenant).status is JobStatus.CANCELLED
    tab.shot("job-cancelled")


def test_unknown_job_is_a_clear_404(tab: Page, ns: Any) -> None:
    from playwright.sync_api import expect

    page = tab.go(job_path(ns.tenant, "no-such-job"))
    expect(page.locator("h1")).to_have_text("Not found")
    expect(page.locator(".error-message")).to_contain_text("no job 'no-such-job'")
    tab.shot("not-found")
    # The page asked for one missing job: the browser logs the 404 itself.
    tab.errors = [e for e in tab.errors if "404" not in e]


def test_the_cluster_page_from_the_menu(tab: Page, api: Any, ns: Any) -> None:
    from playwright.sync_api import expect

    api.enqueue(tenant=ns.tenant, queue=ns.queue)
    page = tab.go(f"/?tenant={ns.tenant}")
    page.get_by_role("link", name="Cluster").click()
    expect(page.locator("h1")).to_have_text("Cluster")
    expect(page.locator("table.nodes tbody tr")).to_have_count(1)
    expect(page.locator("table.nodes .here-badge")).to_have_text("this node")
    expect(page.locator("table.shards thead th")).to_have_count(6)
    ready = page.locator("table.shards tbody tr").first.locator("td").nth(1)
    assert int(ready.inner_text().replace(",", "")) >= 1
    tab.shot("cluster")


def test_the_job_box_and_its_shortcut(tab: Page, api: Any, ns: Any) -> None:
    from playwright.sync_api import expect

    job_id = api.enqueue(tenant=ns.tenant, queue=ns.queue, start_at_ms=4_102_444_800_000)
    page = tab.go(f"/schedules?tenant={ns.tenant}")
    page.keyboard.press("/")
    expect(page.locator("#goto-id")).to_be_focused()
    page.keyboard.type(job_id)
    page.keyboard.press("Enter")
    expect(page.locator("#job-status")).to_have_text("scheduled")
    expect(page.get_by_role("button", name="Run now")).to_be_visible()


def test_narrow_screens_get_one_column(
    browser: Any, http_server: ServerProcess, api: Any, ns: Any
) -> None:
    result = json.dumps({"ok": True}).encode()
    job_id = run_once(api, tenant=ns.tenant, queue=ns.queue, result=result)
    tab = Page(browser, http_server, width=400)
    try:
        page = tab.go(job_path(ns.tenant, job_id))
        widths = page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1] + 1, widths  # nothing wider than the screen
        tab.shot("job-narrow")
    finally:
        tab.close()


# ---------------------------------------------------------------- queues, search, bulk (ListJobs)


def seed_tenant(api: Any, tenant: str, queue: str) -> None:
    """A tenant whose overview has something to show: three queues in several states."""
    failure = TaskFailure(code="TimeoutError", message="upstream timed out", non_retryable=True)
    for _ in range(2):
        run_once(api, tenant=tenant, queue=f"{queue}-emails", result=b'{"sent": true}')
    run_once(api, tenant=tenant, queue=f"{queue}-emails", failure=failure)
    for n in range(3):
        api.enqueue(tenant=tenant, queue=f"{queue}-reports", metadata={"customer": f"c{n}"})
    api.enqueue(tenant=tenant, queue=f"{queue}-reports", start_at_ms=4_102_444_800_000)
    api.enqueue(tenant=tenant, queue=f"{queue}-webhooks")


def test_overview_counts_refresh_live_and_queues_pause(tab: Page, api: Any, ns: Any) -> None:
    from playwright.sync_api import expect

    seed_tenant(api, ns.tenant, ns.queue)
    page = tab.go(f"/?tenant={ns.tenant}")
    row = page.locator("tr", has=page.get_by_role("rowheader", name=f"{ns.queue}-webhooks"))
    pending = row.locator("td").nth(1)
    expect(pending).to_have_text("1")
    tab.shot("overview")
    # A job enqueued elsewhere shows up without reloading the page.
    for _ in range(2):
        api.enqueue(tenant=ns.tenant, queue=f"{ns.queue}-webhooks")
    expect(pending).to_have_text("3", timeout=SHOWS_WITHIN_MS)

    row.get_by_role("button", name="Pause").click()
    expect(page.locator(".notice")).to_contain_text("paused")
    row = page.locator("tr", has=page.get_by_role("rowheader", name=f"{ns.queue}-webhooks"))
    expect(row.locator(".paused-badge")).to_have_text("paused")
    assert api.lease_tasks(worker_id="w", queues=[f"{ns.queue}-webhooks"]) == []
    tab.shot("overview-paused")
    row.get_by_role("button", name="Resume").click()
    expect(page.locator(".notice")).to_contain_text("resumed")
    assert len(api.lease_tasks(worker_id="w", queues=[f"{ns.queue}-webhooks"])) == 1


def test_search_by_status_and_by_metadata(tab: Page, api: Any, ns: Any) -> None:
    from playwright.sync_api import expect

    seed_tenant(api, ns.tenant, ns.queue)
    page = tab.go(f"/jobs?tenant={ns.tenant}")
    page.get_by_label("failed").check()
    page.get_by_role("button", name="Search").click()
    rows = page.locator("table.jobs tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".badge")).to_have_text("failed")
    tab.shot("search-status")

    page.get_by_label("failed").uncheck()
    page.get_by_label("Metadata").fill("customer=c1")
    page.get_by_role("button", name="Search").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("customer=c1")
    tab.shot("search-metadata")
    rows.first.locator("td.id a").click()
    expect(page.locator("#job-status")).to_have_text("pending")


def test_bulk_restart_of_failed_jobs(tab: Page, api: Any, ns: Any) -> None:
    from playwright.sync_api import expect

    failure = TaskFailure(code="ConnectionError", message="refused", non_retryable=True)
    failed = [run_once(api, tenant=ns.tenant, queue=ns.queue, failure=failure) for _ in range(3)]
    page = tab.go(f"/jobs?tenant={ns.tenant}&queue={ns.queue}&status=FAILED")
    expect(page.locator("table.jobs tbody tr")).to_have_count(3)
    page.get_by_role("button", name="Restart all").click()
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_contain_text("Restart every failed or cancelled job matching")
    expect(dialog).to_contain_text("status FAILED")
    tab.shot("bulk-confirm")
    dialog.get_by_role("button", name="Restart all").click()
    expect(page.locator(".notice")).to_have_text("Restarted 3 of 3 matching jobs.")
    expect(page.locator(".empty")).to_contain_text("No jobs match")
    tab.shot("bulk-restarted")
    for job_id in failed:
        assert api.get_job(id=job_id, tenant=ns.tenant).status is JobStatus.PENDING
