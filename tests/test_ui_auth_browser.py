"""Sign-in to the web UI in a real browser (headless Chromium, as test_ui_browser.py) against a
real `silo serve --http --auth-file` (docs/ui.md#sign-in): a page asked for without a session
goes to the sign-in form; signed in as tenant A's token, the browser sees and cancels A's job
and is refused B's pages and B's job (which it cannot tell from a missing one); the session
cookie is HttpOnly and SameSite=Strict; signing out ends it. Screenshots go to
test-artifacts/ui/ like the other browser tests'.

Skipped when /usr/bin/chromium (or SILO_CHROMIUM) is missing; CI installs it (.ci/run).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import silo.sync
from secure import Token, write_auth
from silo.testing import ServerProcess
from silo.types import JobStatus
from test_ui_browser import CHROMIUM, Page, browser

__all__ = ["browser"]  # the module-scoped fixture of test_ui_browser.py, shared

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no browser at {CHROMIUM}")

ADMIN = Token("root", "root-secret", ["*"], ["admin"])
ALICE = Token("alice", "alice-secret", ["web-a"], ["operate"])
BOB = Token("bob", "bob-secret", ["web-b"], ["operate"])


@pytest.fixture(scope="module")
def auth_server(
    store_factory: Any, store_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    path = write_auth(tmp_path_factory.mktemp("auth") / "auth.toml", [ADMIN, ALICE, BOB])
    with ServerProcess(
        store_factory("ui-auth-browser"),
        log_dir=tmp_path_factory.mktemp("server-logs"),
        env=store_env,
        http="127.0.0.1:0",
        extra_args=["--auth-file", str(path)],
    ) as server:
        yield server


@pytest.fixture
def admin(auth_server: ServerProcess) -> Iterator[Any]:
    client = silo.sync.connect(auth_server.address, token=ADMIN.secret)
    yield client
    client.close()


@pytest.fixture
def tab(browser: Any, auth_server: ServerProcess) -> Iterator[Page]:
    page = Page(browser, auth_server)
    yield page
    page.close()


def sign_in(tab: Page, token: Token, then: str) -> Any:
    from playwright.sync_api import expect

    page = tab.go(then)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Token").fill(token.secret)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".signed-in .who")).to_have_text(token.name)
    return page


def test_a_session_of_tenant_a_sees_and_acts_on_a_only(tab: Page, admin: Any) -> None:
    from playwright.sync_api import expect

    mine = admin.enqueue(tenant="web-a", queue="browser", metadata={"owner": "alice"})
    theirs = admin.enqueue(tenant="web-b", queue="browser", metadata={"owner": "bob"})

    # No session: the job page sends the browser to the sign-in form, and a wrong token stays.
    page = tab.go(f"/job?tenant=web-a&id={mine}")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    tab.shot("sign-in")
    page.get_by_label("Token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("unknown token")

    # Signed in, the browser lands on the page it asked for.
    page.get_by_label("Token").fill(ALICE.secret)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#job-status")).to_have_text("pending")
    expect(page.locator(".signed-in .who")).to_have_text("alice")
    tab.shot("signed-in-job")

    # The session cookie: HttpOnly (no script reads it), SameSite=Strict, and no Secure flag
    # on plain HTTP (test_tls.py checks it over TLS).
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "silo_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]
    assert "silo_session" not in page.evaluate("document.cookie")

    # The overview without a tenant shows the token's tenant.
    page = tab.go("/")
    expect(page.locator(".tenant-chip")).to_have_text("tenant: web-a")
    expect(page.get_by_role("rowheader", name="browser")).to_be_visible()

    # Tenant B: refused, whether the job exists or not, and nothing of it shows.
    refusals = []
    for job_id in (theirs, "no-such-job"):
        page = tab.go(f"/job?tenant=web-b&id={job_id}")
        expect(page.locator("h1")).to_have_text("Not allowed")
        refusals.append(page.locator(".error-message").inner_text().replace(job_id, "ID"))
        assert "bob" not in page.content()
    assert refusals[0] == refusals[1]
    tab.shot("other-tenant-job")
    page = tab.go("/?tenant=web-b")
    expect(page.locator(".problem")).to_be_visible()
    assert page.get_by_role("rowheader", name="browser").count() == 0
    tab.shot("other-tenant-queues")

    # Its own job: cancelled through the dialog (the form carries the session's CSRF token).
    page = tab.go(f"/job?tenant=web-a&id={mine}")
    page.get_by_role("button", name="Cancel", exact=True).click()
    page.locator("dialog#confirm").get_by_role("button", name="Cancel job").click()
    expect(page.locator("#job-status")).to_have_text("cancelled")
    assert admin.get_job(id=mine, tenant="web-a").status is JobStatus.CANCELLED
    assert admin.get_job(id=theirs, tenant="web-b").status is JobStatus.PENDING

    # Signing out ends the session: the next page asks for a token again.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page = tab.go(f"/job?tenant=web-a&id={mine}")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    tab.shot("signed-out")
    # The refusals above (the wrong token's 401, tenant B's 403s): the browser logs each.
    tab.errors = [e for e in tab.errors if "401" not in e and "403" not in e]


def test_two_tenants_in_two_browsers(browser: Any, auth_server: ServerProcess, admin: Any) -> None:
    from playwright.sync_api import expect

    a_job = admin.enqueue(tenant="web-a", queue="two")
    b_job = admin.enqueue(tenant="web-b", queue="two")
    a, b = Page(browser, auth_server), Page(browser, auth_server)
    try:
        pa = sign_in(a, ALICE, "/jobs?tenant=web-a")
        pb = sign_in(b, BOB, "/jobs?tenant=web-b")
        expect(pa.get_by_role("link", name=a_job)).to_be_visible()
        expect(pb.get_by_role("link", name=b_job)).to_be_visible()
        assert pa.get_by_role("link", name=b_job).count() == 0
        assert pb.get_by_role("link", name=a_job).count() == 0
        b.shot("tenant-b-jobs")
        pa = a.go("/jobs?tenant=web-b")
        expect(pa.locator("h1")).to_have_text("Not allowed")
        a.errors = [e for e in a.errors if "403" not in e]
    finally:
        a.close()
        b.close()
