"""Sign-in to the web UI of a real `silo serve --http --auth-file` (docs/ui.md#sign-in,
docs/security.md#web-ui): no page or action without a session, the session cookie's flags,
CSRF refused, a session sees and acts on its token's tenants only, a token revoked by SIGHUP
ends its sessions, /metrics needs an admin token, security headers on every response.
The same in a browser: test_ui_auth_browser.py."""

from __future__ import annotations

import re
import signal
from collections.abc import AsyncIterator, Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
import silo
from secure import Token, wait_for_log, write_auth
from silo.testing import ServerProcess
from silo.types import JobStatus
from silo.web import create_app
from silo.web.session import OPEN_PATHS, SESSION_COOKIE

ADMIN = Token("root", "root-secret", ["*"], ["admin"])
ALICE = Token("alice", "alice-secret", ["ui-a"], ["operate"])
BOB = Token("bob", "bob-secret", ["ui-b"], ["operate"])
TOKENS = [ADMIN, ALICE, BOB]
CSRF = re.compile(r'name="csrf" value="([^"]*)"')


@pytest.fixture(scope="module")
def auth_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_auth(tmp_path_factory.mktemp("auth") / "auth.toml", TOKENS)


@pytest.fixture(scope="module")
def ui_server(
    store_factory: Any,
    store_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
    auth_path: Path,
) -> Iterator[ServerProcess]:
    """One server with an auth file and HTTP for the module."""
    log_dir = tmp_path_factory.mktemp("server-logs")
    with ServerProcess(
        store_factory("ui-auth"),
        log_dir=log_dir,
        env=store_env,
        http="127.0.0.1:0",
        extra_args=["--auth-file", str(auth_path)],
    ) as server:
        yield server


@pytest.fixture
async def admin(ui_server: ServerProcess) -> AsyncIterator[Any]:
    client = await silo.connect(ui_server.address, token=ADMIN.secret)
    try:
        yield client
    finally:
        await client.close()


def browser_session(server: ServerProcess) -> aiohttp.ClientSession:
    # unsafe=True: keep cookies of an IP address (127.0.0.1), as a browser does.
    return aiohttp.ClientSession(server.http_url, cookie_jar=aiohttp.CookieJar(unsafe=True))


async def sign_in(http: aiohttp.ClientSession, token: Token) -> aiohttp.ClientResponse:
    async with http.get("/login", allow_redirects=False) as r:
        assert r.status == 200
        csrf = CSRF.search(await r.text())
    assert csrf is not None
    form = {"csrf": csrf[1], "token": token.secret, "next": "/jobs"}
    async with http.post("/login", data=form, allow_redirects=False) as r:
        await r.read()
        return r


@pytest.fixture
async def alice(ui_server: ServerProcess) -> AsyncIterator[aiohttp.ClientSession]:
    async with browser_session(ui_server) as http:
        r = await sign_in(http, ALICE)
        assert r.status == 303, r
        yield http


async def page_csrf(http: aiohttp.ClientSession, path: str = "/?tenant=ui-a") -> str:
    async with http.get(path, allow_redirects=False) as r:
        assert r.status == 200, await r.text()
        found = CSRF.search(await r.text())
    assert found is not None
    return found[1]


def every_route() -> list[tuple[str, str]]:
    """(method, path) of every page and action of the UI app's router (so a page added later
    is covered), with sample path parameters; the open paths and static files left out."""
    app = create_app(cast(Any, None))
    out = []
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method == "HEAD" or path.startswith("/static") or path in OPEN_PATHS:
            continue
        out.append((route.method, path.replace("{action}", "cancel")))
    return out


def test_the_route_list_holds_every_action() -> None:
    routes = every_route()
    assert ("POST", "/logout") in routes and ("POST", "/jobs/bulk") in routes
    assert ("GET", "/job/data") in routes and ("POST", "/job/cancel") in routes
    assert ("GET", "/schedules") in routes and ("POST", "/queues/pause") in routes


async def test_no_page_or_action_without_a_session(ui_server: ServerProcess, admin: Any) -> None:
    job_id = await admin.enqueue(tenant="ui-a", queue="nosession")
    async with browser_session(ui_server) as http:
        forged = f"{'x' * 40}.{'y' * 43}"
        for cookies in ({}, {SESSION_COOKIE: forged}):
            for method, path in every_route():
                form = {"tenant": "ui-a", "id": job_id, "queue": "nosession", "confirmed": "1"}
                async with http.request(
                    method,
                    path,
                    params={"tenant": "ui-a", "id": job_id} if method == "GET" else None,
                    data=form if method == "POST" else None,
                    cookies=cookies,
                    allow_redirects=False,
                ) as r:
                    body = await r.text()
                    where = f"{method} {path} {cookies}"
                    if method == "GET" and not path.startswith("/fragments/"):
                        assert r.status == 303, where
                        assert r.headers["Location"].startswith(f"/login?next={path}"), where
                    else:
                        assert r.status == 401, where
                        assert "sign in" in body, where
                    assert job_id not in body and "nosession" not in body, where
    # Nothing was done: the job is still waiting, its queue not paused.
    got = await admin.get_job(id=job_id, tenant="ui-a")
    assert got.status is JobStatus.PENDING
    queues = await admin.list_queues(tenant="ui-a")
    assert not any(q.paused for q in queues if q.name == "nosession")


async def test_sign_in_sets_a_strict_httponly_cookie_and_sign_out_ends_the_session(
    ui_server: ServerProcess,
) -> None:
    async with browser_session(ui_server) as http:
        # A wrong token: the form again, 401, and no session.
        r = await sign_in(http, Token("eve", "guess", ["*"], ["admin"]))
        assert r.status == 401 and SESSION_COOKIE not in r.cookies
        r = await sign_in(http, ALICE)
        assert r.status == 303 and r.headers["Location"] == "/jobs"
        raw = next(v for v in r.headers.getall("Set-Cookie") if v.startswith(SESSION_COOKIE))
        morsel = SimpleCookie(raw)[SESSION_COOKIE]
        assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == "/"
        assert not morsel["secure"]  # plaintext HTTP here; test_tls.py has the TLS case
        cookie = morsel.value
        async with http.get("/jobs?tenant=ui-a", allow_redirects=False) as page:
            assert page.status == 200
            assert "alice" in await page.text()  # who is signed in, with a sign-out button
        csrf = await page_csrf(http)
        # Signing out needs the CSRF token too (a page elsewhere cannot sign you out).
        async with http.post("/logout", data={}, allow_redirects=False) as out:
            assert out.status == 403
        async with http.post("/logout", data={"csrf": csrf}, allow_redirects=False) as out:
            assert out.status == 303 and out.headers["Location"] == "/login"
        # The old cookie, replayed, no longer opens anything: the session ended on the server.
        async with http.get(
            "/jobs?tenant=ui-a", cookies={SESSION_COOKIE: cookie}, allow_redirects=False
        ) as page:
            assert page.status == 303 and page.headers["Location"].startswith("/login")


async def test_the_sign_in_form_needs_its_csrf_token_and_goes_only_to_this_site(
    ui_server: ServerProcess,
) -> None:
    async with browser_session(ui_server) as http:
        form = {"token": ALICE.secret, "next": "/"}
        async with http.post("/login", data=form, allow_redirects=False) as r:
            assert r.status == 403 and SESSION_COOKIE not in r.cookies
        async with http.get("/login?next=//evil.example/x", allow_redirects=False) as r:
            page = await r.text()
        csrf = CSRF.search(page)
        assert csrf is not None and 'name="next" value="/"' in page
        form = {"csrf": csrf[1], "token": ALICE.secret, "next": "https://evil.example/"}
        async with http.post("/login", data=form, allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/"


async def test_a_state_change_without_the_session_csrf_token_is_refused(
    ui_server: ServerProcess, admin: Any, alice: aiohttp.ClientSession
) -> None:
    job_id = await admin.enqueue(tenant="ui-a", queue="csrf")
    form = {"tenant": "ui-a", "id": job_id, "confirmed": "1"}
    async with browser_session(ui_server) as other:
        assert (await sign_in(other, ALICE)).status == 303
        foreign = await page_csrf(other)  # the same token's other session
    for csrf in (None, "", "x" * 43, foreign):
        data = dict(form) if csrf is None else {**form, "csrf": csrf}
        async with alice.post("/job/cancel", data=data, allow_redirects=False) as r:
            assert r.status == 403, csrf
            assert "csrf" in await r.text()
    assert (await admin.get_job(id=job_id, tenant="ui-a")).status is JobStatus.PENDING
    data = {**form, "csrf": await page_csrf(alice)}
    async with alice.post("/job/cancel", data=data, allow_redirects=False) as r:
        assert r.status == 303, await r.text()
    assert (await admin.get_job(id=job_id, tenant="ui-a")).status is JobStatus.CANCELLED


async def test_a_session_sees_and_acts_on_its_tokens_tenants_only(
    admin: Any, alice: aiohttp.ClientSession
) -> None:
    mine = await admin.enqueue(tenant="ui-a", queue="scoped", payload=b"mine")
    theirs = await admin.enqueue(tenant="ui-b", queue="scoped", payload=b"theirs")
    # Without ?tenant=, the pages go to the token's tenant, not to a refusal.
    async with alice.get("/", allow_redirects=False) as r:
        assert r.status == 303 and r.headers["Location"] == "/?tenant=ui-a"
    async with alice.get("/job", params={"tenant": "ui-a", "id": mine}) as r:
        assert r.status == 200 and mine in await r.text()
    # Tenant ui-b: refused, and a job that exists looks like one that does not.
    answers = {}
    for job_id in (theirs, "no-such-job"):
        for path in ("/job", "/job/data"):
            params = {"tenant": "ui-b", "id": job_id}
            if path == "/job/data":
                params["part"] = "payload"
            async with alice.get(path, params=params, allow_redirects=False) as r:
                body = await r.text()
                assert r.status == 403, (path, body)
                assert "theirs" not in body
                answers[job_id, path] = body.replace(job_id, "ID")
    assert answers[theirs, "/job"] == answers["no-such-job", "/job"]
    for path in ("/?tenant=ui-b", "/jobs?tenant=ui-b", "/schedules?tenant=ui-b"):
        async with alice.get(path, allow_redirects=False) as r:
            assert r.status == 403, path
            assert theirs not in await r.text()
    async with alice.get("/fragments/queues?tenant=ui-b") as r:
        assert r.status == 403
    csrf = await page_csrf(alice)
    for action in ("cancel", "restart", "expedite", "delete"):
        data = {"tenant": "ui-b", "id": theirs, "confirmed": "1", "csrf": csrf}
        async with alice.post(f"/job/{action}", data=data, allow_redirects=False) as r:
            assert r.status == 403, action
    data = {"tenant": "ui-b", "queue": "scoped", "csrf": csrf}
    async with alice.post("/queues/pause", data=data, allow_redirects=False) as r:
        assert r.status == 403
    data = {"tenant": "ui-b", "action": "cancel", "confirmed": "1", "csrf": csrf}
    async with alice.post("/jobs/bulk", data=data, allow_redirects=False) as r:
        assert r.status in (400, 403), await r.text()
    got = await admin.get_job(id=theirs, tenant="ui-b")
    assert got.status is JobStatus.PENDING
    assert not any(q.paused for q in await admin.list_queues(tenant="ui-b"))


async def test_a_token_removed_by_sighup_ends_its_sessions(
    ui_server: ServerProcess, auth_path: Path
) -> None:
    carol = Token("carol", "carol-secret", ["ui-a"], ["operate"])
    reloads = ui_server.stderr_text().count("reloaded:")
    write_auth(auth_path, [*TOKENS, carol])
    ui_server.send_signal(signal.SIGHUP)
    await wait_for_log(ui_server, "reloaded:", reloads + 1)
    try:
        async with browser_session(ui_server) as http:
            assert (await sign_in(http, carol)).status == 303
            async with http.get("/jobs?tenant=ui-a", allow_redirects=False) as r:
                assert r.status == 200
            write_auth(auth_path, TOKENS)
            ui_server.send_signal(signal.SIGHUP)
            await wait_for_log(ui_server, "reloaded:", reloads + 2)
            async with http.get("/jobs?tenant=ui-a", allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"].startswith("/login")
            assert (await sign_in(http, carol)).status == 401
    finally:
        write_auth(auth_path, TOKENS)


async def test_metrics_need_an_admin_token_and_the_probes_stay_open(
    ui_server: ServerProcess,
) -> None:
    async with aiohttp.ClientSession(ui_server.http_url) as http:
        for path in ("/healthz", "/readyz"):
            async with http.get(path) as r:
                assert r.status == 200, path
        async with http.get("/metrics") as r:
            assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
            assert "silo_" not in await r.text()
        wrong = {"Authorization": "Bearer nope"}
        async with http.get("/metrics", headers=wrong) as r:
            assert r.status == 401
        async with http.get("/metrics", headers=ALICE.header) as r:
            assert r.status == 403 and "silo_" not in await r.text()
        async with http.get("/metrics", headers=ADMIN.header) as r:
            assert r.status == 200 and "silo_" in await r.text()
    # A session is not a bearer token: a signed-in operator still gets 401.
    async with browser_session(ui_server) as http:
        assert (await sign_in(http, ADMIN)).status == 303
        async with http.get("/metrics") as r:
            assert r.status == 401


async def test_metrics_public_opens_metrics_only(make_server: Any, tmp_path: Path) -> None:
    path = write_auth(tmp_path / "auth.toml", TOKENS)
    server = await make_server(
        http="127.0.0.1:0", extra_args=["--auth-file", str(path), "--metrics-public"]
    )
    async with aiohttp.ClientSession(server.http_url) as http:
        async with http.get("/metrics") as r:
            assert r.status == 200 and "silo_" in await r.text()
        async with http.get("/jobs", allow_redirects=False) as r:
            assert r.status == 303


async def test_every_response_carries_the_security_headers(
    ui_server: ServerProcess, alice: aiohttp.ClientSession
) -> None:
    async with browser_session(ui_server) as anonymous:
        checks = [
            (anonymous, "GET", "/login"),
            (anonymous, "GET", "/jobs"),  # the redirect to the sign-in form
            (anonymous, "POST", "/queues/pause"),  # 401
            (anonymous, "GET", "/healthz"),
            (anonymous, "GET", "/metrics"),
            (alice, "GET", "/jobs?tenant=ui-a"),
            (alice, "GET", "/job?tenant=ui-b&id=x"),  # 403
            (alice, "GET", "/nowhere"),  # 404
        ]
        for http, method, path in checks:
            async with http.request(method, path, allow_redirects=False) as r:
                h = r.headers
                assert h["X-Frame-Options"] == "DENY", path
                assert h["X-Content-Type-Options"] == "nosniff", path
                csp = h["Content-Security-Policy"]
                assert "script-src 'self'" in csp and "unsafe-inline" not in csp, path
                assert "frame-ancestors 'none'" in csp, path
                if http is alice:
                    assert h["Cache-Control"] == "no-store", path


async def test_an_embedded_broker_serves_the_same_sign_in(tmp_path: Path) -> None:
    from silo.config import ConfigError

    auth = write_auth(tmp_path / "auth.toml", TOKENS)
    broker = await silo.open(str(tmp_path / "store"))
    try:
        with pytest.raises(ConfigError, match="--auth-file"):
            await broker.serve_http("0.0.0.0:0")
        running = await broker.serve_http("127.0.0.1:0", auth_file=str(auth))
        async with aiohttp.ClientSession(
            f"http://{running.address}", cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as http:
            async with http.get("/jobs", allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"].startswith("/login")
            async with http.get("/metrics") as r:
                assert r.status == 401
            assert (await sign_in(http, ALICE)).status == 303
            async with http.get("/jobs?tenant=ui-a", allow_redirects=False) as r:
                assert r.status == 200 and "alice" in await r.text()
    finally:
        await broker.close()


def test_the_sign_in_throttle_counts_failures_per_address_over_a_sliding_window() -> None:
    from silo.web.session import SignInThrottle

    now = [1000.0]
    throttle = SignInThrottle(limit=3, window_s=60, clock=lambda: now[0])
    for _ in range(2):
        throttle.failed("10.0.0.1")
        now[0] += 1
    assert throttle.retry_after("10.0.0.1") == 0  # 2 of 3
    throttle.failed("10.0.0.1")  # at 1002: the third within the window
    assert throttle.retry_after("10.0.0.1") == 58  # until the first (1000) is 60 s old
    assert throttle.retry_after("10.0.0.2") == 0  # another address is not slowed
    now[0] = 1030.0
    assert throttle.retry_after("10.0.0.1") == 30
    now[0] = 1060.0  # the first failure left the window: 2 of 3 again
    assert throttle.retry_after("10.0.0.1") == 0
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 1  # 1001 + 60 - 1060
    throttle.succeeded("10.0.0.1")  # a good token clears the address
    assert throttle.retry_after("10.0.0.1") == 0


async def test_repeated_failed_sign_ins_are_answered_429_even_with_a_good_token(
    store_factory: Any,
    store_env: dict[str, str],
    tmp_path: Path,
    auth_path: Path,
) -> None:
    """Its own server: the failures it makes would slow the module's other sign-ins."""
    from silo.web.session import SIGN_IN_FAILURES

    with ServerProcess(
        store_factory("ui-auth-throttle"),
        log_dir=tmp_path,
        env=store_env,
        http="127.0.0.1:0",
        extra_args=["--auth-file", str(auth_path)],
    ) as server:
        async with browser_session(server) as signed_in:
            assert (await sign_in(signed_in, ALICE)).status == 303
            async with browser_session(server) as http:
                for _ in range(SIGN_IN_FAILURES):
                    r = await sign_in(http, Token("eve", "guess", ["*"], ["admin"]))
                    assert r.status == 401
                refused = await sign_in(http, ALICE)
                assert refused.status == 429 and SESSION_COOKIE not in refused.cookies
                assert 0 < int(refused.headers["Retry-After"]) <= 60
            # A session opened before is not touched by the throttle.
            async with signed_in.get("/jobs?tenant=ui-a", allow_redirects=False) as r:
                assert r.status == 200
