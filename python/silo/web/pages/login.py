"""Signing in and out of the web UI when the server has an auth file (docs/ui.md#sign-in):
`GET /login` shows the form, `POST /login` turns a token into a session, `POST /logout` ends
it. Without an auth file there is nothing to sign into: `/login` goes to the overview."""

from __future__ import annotations

import math

from aiohttp import web

from silo.web.context import read_form, render, session_of
from silo.web.session import (
    LOGIN_COOKIE,
    LOGIN_TTL_S,
    SESSION_COOKIE,
    SESSION_TTL_S,
    SESSIONS,
    Sessions,
    safe_next,
)

__all__ = ["routes"]

routes = web.RouteTableDef()


def _form(
    request: web.Request, sessions: Sessions, target: str, *, problem: str = "", status: int = 200
) -> web.Response:
    cookie, csrf = sessions.login_form()
    response = render(
        request, "login.html", status=status, login_csrf=csrf, next=target, problem=problem
    )
    sessions.set_cookie(response, LOGIN_COOKIE, cookie, LOGIN_TTL_S)
    return response


@routes.get("/login")
async def login_form(request: web.Request) -> web.Response:
    sessions = request.app.get(SESSIONS)
    target = safe_next(request.query.get("next"))
    if sessions is None:
        raise web.HTTPSeeOther(target)
    return _form(request, sessions, target)


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    sessions = request.app.get(SESSIONS)
    if sessions is None:
        raise web.HTTPSeeOther("/")
    posted = await request.post()
    csrf, token, target = (posted.get(k) for k in ("csrf", "token", "next"))
    posted_csrf = csrf if isinstance(csrf, str) else None
    if not sessions.login_csrf_ok(request.cookies.get(LOGIN_COOKIE), posted_csrf):
        raise web.HTTPForbidden(text="bad or missing csrf token: reload the sign-in page")
    target = safe_next(target if isinstance(target, str) else None)
    # Guessing tokens is slowed per client address (behind a proxy: the proxy's address).
    address = request.remote or ""
    wait_s = math.ceil(sessions.throttle.retry_after(address))
    if wait_s > 0:
        problem = f"too many failed sign-ins: try again in {wait_s} s"
        response = _form(request, sessions, target, problem=problem, status=429)
        response.headers["Retry-After"] = str(wait_s)
        return response
    opened = sessions.sign_in(token.strip()) if isinstance(token, str) and token.strip() else None
    if opened is None:
        sessions.throttle.failed(address)
        return _form(request, sessions, target, problem="unknown token", status=401)
    sessions.throttle.succeeded(address)
    cookie, _ = opened
    response = web.HTTPSeeOther(target)
    sessions.set_cookie(response, SESSION_COOKIE, cookie, SESSION_TTL_S)
    response.del_cookie(LOGIN_COOKIE, path="/")
    raise response


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    await read_form(request)  # the CSRF check: a page elsewhere cannot sign you out
    sessions, session = request.app.get(SESSIONS), session_of(request)
    if sessions is not None and session is not None:
        sessions.sign_out(session)
    response = web.HTTPSeeOther("/login" if sessions is not None else "/")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response
