"""Template filters: times (stored as Unix ms, shown in UTC), durations, status classes, and the
two pieces every table row repeats (a status badge, a time element), made here in Python
rather than by template macros: a page of 500 rows calls them thousands of times."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup, escape

__all__ = [
    "FILTERS",
    "GLOBALS",
    "ago",
    "badge",
    "duration",
    "job_url",
    "status_class",
    "utc",
    "when",
]


def utc(ms: int) -> str:
    """`2026-12-03 13:47:53 UTC`; an em dash for 0 (unset)."""
    if not ms:
        return "—"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def utc_precise(ms: int) -> str:
    """ISO 8601 with milliseconds (for `<time datetime>` and tooltips)."""
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def duration(ms: int) -> str:
    """A length of time for a reader: 850 ms, 12.3 s, 4 min 05 s, 3 h 02 min, 2 d 4 h."""
    ms = max(0, int(ms))
    if ms < 1000:
        return f"{ms} ms"
    s = ms / 1000
    if s < 60:
        return f"{s:.1f} s"
    m, s = divmod(int(s), 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h} h {m:02d} min"
    d, h = divmod(h, 24)
    return f"{d} d {h} h"


def ago(ms: int, now_ms: int | None = None) -> str:
    """`3 min 05 s ago` or `in 12.0 s` relative to now; empty for 0."""
    if not ms:
        return ""
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    if ms <= now:
        return f"{duration(now - ms)} ago"
    return f"in {duration(ms - now)}"


def status_class(status: Any) -> str:
    """The CSS class of a job or attempt status (an enum or its name): `st-failed`."""
    name = getattr(status, "name", str(status))
    return f"st-{name.lower()}"


def badge(status: Any) -> Markup:
    """The coloured badge of a job or attempt status: `<span class="badge st-failed">failed`."""
    name = escape(getattr(status, "name", str(status)).lower())
    return Markup(f'<span class="badge st-{name}">{name}</span>')


def when(ms: int, zone: bool = True) -> Markup:
    """A `<time>` of Unix ms: the UTC time (without " UTC" when not `zone`: a table whose
    heading says it), the precise time and how long ago as its tooltip; a muted dash for 0."""
    if not ms:
        return Markup('<span class="muted">—</span>')
    shown = utc(ms) if zone else utc(ms).removesuffix(" UTC")
    # Markup.format is slow (string.Formatter in Python); these values are ours, escaped anyway.
    precise, shown, since = escape(utc_precise(ms)), escape(shown), escape(ago(ms))
    return Markup(f'<time datetime="{precise}" title="{precise} · {since}">{shown}</time>')


def job_url(tenant: str, job_id: str) -> str:
    """The address of a job's page."""
    return "/job?" + urlencode({"tenant": tenant, "id": job_id})


def thousands(n: int) -> str:
    """`1,234,567`."""
    return f"{n:,}"


FILTERS = {
    "utc": utc,
    "utc_precise": utc_precise,
    "duration": duration,
    "ago": ago,
    "status_class": status_class,
    "thousands": thousands,
    "badge": badge,
    "when": when,
}

GLOBALS = {"job_url": job_url}
