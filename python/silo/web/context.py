"""What every page and action shares: the broker behind the request, the one form reader (and
its CSRF check), and rendering.

Security by construction (docs/ui.md#security): every broker call of a page or action goes
through `api(request)`, which with an auth file is the broker acting as the session's token
(`Broker.acting_as`: the core checks the RPC's role and the tenants the call names, as for a
gRPC call); every state-changing request is a POST whose form is read by `read_form`, the one
place that checks the `csrf` field; `csrf_token` is the one value templates render in it (the
`csrf()` macro of base.html). Without an auth file there are no sessions: the token is empty,
the check accepts every form and calls are the broker's own (session.py).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import jinja2
from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from silo.broker import Broker
from silo.web.session import SESSION, Session

if TYPE_CHECKING:
    from silo.api import Api

__all__ = [
    "BROKER",
    "CSRF_FIELD",
    "STATE",
    "TEMPLATES",
    "HttpState",
    "api",
    "csrf_token",
    "read_form",
    "render",
    "session_of",
]

#: The form field of the CSRF token in every POST.
CSRF_FIELD: Final = "csrf"


@dataclass
class HttpState:
    """What the HTTP server knows of its broker's life: `draining` once shutdown began (then
    /readyz answers 503)."""

    draining: bool = False


BROKER: Final = web.AppKey("silo.broker", Broker)
STATE: Final = web.AppKey("silo.http_state", HttpState)
TEMPLATES: Final = web.AppKey("silo.templates", jinja2.Environment)


def broker(request: web.Request) -> Broker:
    """The broker this app serves (for /metrics and /readyz, which are not operator calls)."""
    return request.app[BROKER]


def api(request: web.Request) -> Api:
    """The API every page and action calls the broker through (see the module doc)."""
    session: Session | None = request.get(SESSION)
    if session is None:
        return request.app[BROKER]
    return request.app[BROKER].acting_as(session.principal)


def session_of(request: web.Request) -> Session | None:
    """The request's session (None without an auth file)."""
    return request.get(SESSION)


def csrf_token(request: web.Request) -> str:
    """The CSRF token that forms of this request carry (empty without sessions)."""
    session: Session | None = request.get(SESSION)
    return "" if session is None else session.csrf


async def read_form(request: web.Request) -> MultiDictProxy[str]:
    """The posted form of a state-changing request (its text fields), once its `csrf` field is
    checked. Raises HTTPForbidden when the token does not match (never without sessions)."""
    posted = await request.post()
    expected = csrf_token(request)
    got = posted.get(CSRF_FIELD)
    if expected and not (isinstance(got, str) and hmac.compare_digest(got, expected)):
        raise web.HTTPForbidden(text="bad or missing csrf token")
    return MultiDictProxy(MultiDict((k, v) for k, v in posted.items() if isinstance(v, str)))


def render(
    request: web.Request, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    """`template` rendered with `context`, the request and the CSRF token, as an HTML page."""
    env = request.app[TEMPLATES]
    context.setdefault("tenant", request.query.get("tenant", ""))
    context.setdefault("notice", None)
    context.setdefault("nav", "")
    html = env.get_template(template).render(
        request=request, csrf_token=csrf_token(request), session=session_of(request), **context
    )
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
