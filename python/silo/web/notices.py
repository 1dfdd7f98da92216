"""The message a page shows after an action redirected to it (`?done=CODE&...`).

Only sentences of this table are shown, so a crafted link cannot put words of its own on the
page; the values filled in (a queue name, counts) come from the query and are escaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["NOTICES", "notice"]

NOTICES: Final[Mapping[str, str]] = {
    "paused": "Queue “{queue}” paused: workers lease nothing from it until it is resumed.",
    "resumed": "Queue “{queue}” resumed.",
    "cancel": "Job cancelled.",
    "restart": "Job restarted: it runs again with a fresh retry budget.",
    "expedite": "Job expedited: it is due now.",
    "delete": "Job “{id}” deleted.",
    "bulk-cancel": "Cancelled {changed} of {matched} matching jobs.",
    "bulk-restart": "Restarted {changed} of {matched} matching jobs.",
    "bulk-delete": "Deleted {changed} of {matched} matching jobs.",
}

#: Added when a bulk action stopped on its time budget with jobs left to change.
MORE: Final = " More jobs match: run the action again to go on."


def notice(query: Mapping[str, str]) -> str | None:
    """The notice of a redirect's query, or None."""
    template = NOTICES.get(query.get("done", ""))
    if template is None:
        return None
    fields = {
        "queue": query.get("queue", "") or "default",
        "id": query.get("id", ""),
        "changed": _count(query.get("changed", "")),
        "matched": _count(query.get("matched", "")),
    }
    text = template.format(**fields)
    if query.get("more") == "1":
        text += MORE
    return text


def _count(text: str) -> str:
    return f"{int(text):,}" if text.isascii() and text.isdigit() else "?"
