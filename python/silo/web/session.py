"""Sign-in to the web UI when `silo serve --auth-file` is set (docs/ui.md#sign-in,
docs/security.md#web-ui): sessions, their cookie and CSRF tokens, and the middleware that lets
no page or action through without a session.

A session begins when a token of the auth file is typed into the sign-in form. Its cookie holds
the session id, the token's SHA-256 digest (the auth file's own `token_sha256`, not the token)
and its expiry, signed with HMAC-SHA256 under a key drawn at random when the process starts: a
restart ends every session. The server also remembers each live session id, so signing out
ends the session for good (not only in this browser), and at most `MAX_SESSIONS` live at once
(the oldest goes first). Beside the id it keeps, in memory only, the token typed in: the cluster
page asks the other nodes for their shards' counts with it, as a client of theirs would. Each
request looks the digest up in the auth file's current version, so a token removed by SIGHUP
stops its sessions at their next request.

CSRF: every state-changing request is a POST whose form carries `csrf`, an HMAC of the session
id under the same key (checked by `context.read_form`); the sign-in form, which comes before any
session, carries an HMAC of a random value its page set in a short-lived cookie.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web

from silo import _native
from silo.server.auth import Authenticator, digest

__all__ = [
    "LOGIN_COOKIE",
    "LOGIN_TTL_S",
    "MAX_SESSIONS",
    "SIGN_IN_FAILURES",
    "SIGN_IN_WINDOW_S",
    "SignInThrottle",
    "METRICS_AUTH",
    "OPEN_PATHS",
    "SESSION",
    "SESSIONS",
    "SESSION_COOKIE",
    "SESSION_TTL_S",
    "Session",
    "Sessions",
    "require_session",
    "safe_next",
]

#: The cookie of a session, and the one of the sign-in form (its CSRF value).
SESSION_COOKIE: Final = "silo_session"
LOGIN_COOKIE: Final = "silo_login"
#: How long a session lasts after sign-in, whatever it does.
SESSION_TTL_S: Final = 12 * 3600
#: How long the sign-in form stays good for.
LOGIN_TTL_S: Final = 3600
#: Live sessions remembered at once; beyond it, the oldest ends.
MAX_SESSIONS: Final = 10_000
#: Failed sign-ins one client address may make within `SIGN_IN_WINDOW_S` before `/login`
#: answers 429 without looking at the token (docs/security.md#web-ui).
SIGN_IN_FAILURES: Final = 10
SIGN_IN_WINDOW_S: Final = 60.0
#: Client addresses whose failures are remembered at once (the oldest are forgotten first).
MAX_THROTTLED_ADDRESSES: Final = 10_000
#: What needs no session: probes, the static files, the sign-in page, and /metrics (which
#: checks its own bearer token, docs/security.md#web-ui).
OPEN_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics", "/login"})
#: Pages that show one tenant: without `?tenant=`, a token that may not see the default tenant
#: is sent to its first named tenant instead of a refusal.
_TENANT_PAGES: Final = frozenset({"/", "/jobs", "/schedules"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Session:
    """A signed-in browser: its id, the token's principal, the CSRF token of its forms, and the
    token itself (for calls to the other nodes of a cluster; never rendered)."""

    id: str
    principal: _native.Principal
    csrf: str
    token: str = field(repr=False)


class SignInThrottle:
    """Failed sign-ins per client address over a sliding window: an address with `limit`
    failures in the last `window_s` seconds is refused until the oldest of them leaves the
    window. `clock` is injected so the window can be tested without waiting."""

    def __init__(
        self,
        limit: int = SIGN_IN_FAILURES,
        window_s: float = SIGN_IN_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit, self._window, self._clock = limit, window_s, clock
        self._failures: dict[str, deque[float]] = {}  # address -> failure times, oldest first

    def retry_after(self, address: str) -> float:
        """Seconds until `address` may try again (0: it may now)."""
        times = self._failures.get(address)
        if times is None:
            return 0.0
        now = self._clock()
        while times and times[0] <= now - self._window:
            times.popleft()
        if not times:
            del self._failures[address]
            return 0.0
        return times[0] + self._window - now if len(times) >= self._limit else 0.0

    def failed(self, address: str) -> None:
        times = self._failures.pop(address, None) or deque(maxlen=self._limit)
        times.append(self._clock())
        self._failures[address] = times  # re-inserted: the dict's order is last failure first
        while len(self._failures) > MAX_THROTTLED_ADDRESSES:
            del self._failures[next(iter(self._failures))]

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)


class Sessions:
    """The sessions of one HTTP server over `auth`'s tokens; `secure`: cookies only over TLS."""

    def __init__(self, auth: Authenticator, *, secure: bool) -> None:
        self.auth = auth
        self.secure = secure
        self.throttle = SignInThrottle()
        self._key = secrets.token_bytes(32)
        # id -> (expiry in epoch seconds, the token signed in with)
        self._live: OrderedDict[str, tuple[int, str]] = OrderedDict()

    def _mac(self, purpose: bytes, data: bytes) -> bytes:
        return hmac.new(self._key, purpose + b"\0" + data, hashlib.sha256).digest()

    def sign_in(self, token: str) -> tuple[str, _native.Principal] | None:
        """A new session's cookie value and principal, or None for a token the auth file does
        not hold."""
        sha = digest(token)
        principal = self.auth.table.by_digest.get(sha)
        if principal is None:
            return None
        sid = secrets.token_urlsafe(18)
        expires = int(time.time()) + SESSION_TTL_S
        self._live[sid] = (expires, token)
        while len(self._live) > MAX_SESSIONS:
            self._live.popitem(last=False)
        payload = json.dumps({"s": sid, "d": sha, "e": expires}, separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(self._mac(b'session', payload))}", principal

    def resolve(self, cookie: str | None) -> Session | None:
        """The session of a cookie value: None unless the signature holds, the session is live
        and unexpired, and its token is still in the auth file."""
        if not cookie or cookie.count(".") != 1:
            return None
        body, sig = cookie.split(".")
        try:
            payload, mac = _unb64(body), _unb64(sig)
            fields = json.loads(payload)
            sid, sha, expires = fields["s"], fields["d"], fields["e"]
        except (ValueError, binascii.Error, KeyError, TypeError):
            return None
        if not hmac.compare_digest(mac, self._mac(b"session", payload)):
            return None
        live = self._live.get(sid) if isinstance(sid, str) else None
        if live is None or not isinstance(sha, str) or live[0] != expires:
            return None
        if expires <= time.time():
            self._live.pop(sid, None)
            return None
        principal = self.auth.table.by_digest.get(sha)
        if principal is None:  # revoked (SIGHUP): the session ends with it
            self._live.pop(sid, None)
            return None
        return Session(sid, principal, _b64(self._mac(b"csrf", sid.encode())), live[1])

    def sign_out(self, session: Session) -> None:
        self._live.pop(session.id, None)

    def login_form(self) -> tuple[str, str]:
        """A fresh sign-in form: the value of its cookie and the CSRF token the form carries."""
        nonce = secrets.token_urlsafe(18)
        expires = int(time.time()) + LOGIN_TTL_S
        value = f"{nonce}.{expires}"
        return value, _b64(self._mac(b"login", value.encode()))

    def login_csrf_ok(self, cookie: str | None, posted: str | None) -> bool:
        """Whether a posted sign-in form's CSRF token belongs to this browser's form cookie."""
        if not cookie or not posted or cookie.count(".") != 1:
            return False
        try:
            expires = int(cookie.split(".")[1])
        except ValueError:
            return False
        expected = _b64(self._mac(b"login", cookie.encode()))
        return expires > time.time() and hmac.compare_digest(expected, posted)

    def set_cookie(self, response: web.StreamResponse, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=self.secure or None,
        )


SESSIONS: Final = web.AppKey("silo.sessions", Sessions)
#: The tokens /metrics checks (unset: /metrics is open, without an auth file or with
#: `--metrics-public`).
METRICS_AUTH: Final = web.AppKey("silo.metrics_auth", Authenticator)
#: The request's session (only set with an auth file): a typed key where aiohttp has them
#: (3.14: a plain string key warns).
SESSION: Final[Any] = (
    web.RequestKey("silo.session", Session) if hasattr(web, "RequestKey") else "silo.session"
)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this server, never another site."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


@web.middleware
async def require_session(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Without an auth file: nothing. With one: every page and action needs a session (a page
    asked for without one is sent to the sign-in form; anything else is 401)."""
    sessions = request.app.get(SESSIONS)
    if sessions is None or request.path in OPEN_PATHS or request.path.startswith("/static/"):
        return await handler(request)
    session = sessions.resolve(request.cookies.get(SESSION_COOKIE))
    if session is None:
        if request.method in ("GET", "HEAD") and not request.path.startswith("/fragments/"):
            raise web.HTTPSeeOther("/login?" + urlencode({"next": request.path_qs}))
        raise web.HTTPUnauthorized(text="sign in first (your session ended or never began)")
    if (
        request.method == "GET"
        and request.path in _TENANT_PAGES
        and "tenant" not in request.query
        and not session.principal.allows_tenant("")
    ):
        named = [t for t in session.principal.tenants if not t.endswith("*")]
        if named:
            query = urlencode([*request.query.items(), ("tenant", named[0])])
            raise web.HTTPSeeOther(f"{request.path}?{query}")
    request[SESSION] = session
    return await handler(request)
