"""Template filters: times (stored as Unix ms, shown in UTC), durations and status classes."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

__all__ = ["FILTERS", "ago", "duration", "status_class", "utc"]


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
}
