"""The search form: ListJobs filters from a query string or a posted form, and back.

Every field is checked here or by the broker; a bad one raises InvalidArgument naming the
field as the form labels it, and the page shows the message beside the form (never a 500).
Times are entered as UTC (`YYYY-MM-DDTHH:MM[:SS]`, what `<input type=datetime-local>` sends)
or as Unix milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final
from urllib.parse import urlencode

from multidict import MultiMapping

from silo.errors import InvalidArgument
from silo.types import JobFilter, JobStatus

__all__ = ["DEFAULT_PAGE_SIZE", "STATUSES", "SearchForm", "parse_search", "parse_status"]

#: Rows of a search page unless the form asks for another size (ListJobs allows 1..1000).
DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 1000
#: Every status a job can be in, in lifecycle order.
STATUSES: Final = tuple(s for s in JobStatus if s is not JobStatus.UNSPECIFIED)


def parse_status(text: str) -> JobStatus:
    """A status by name (any case); InvalidArgument naming `status` otherwise."""
    try:
        status = JobStatus[text.strip().upper()]
    except KeyError:
        status = JobStatus.UNSPECIFIED
    if status is JobStatus.UNSPECIFIED:
        names = ", ".join(s.name for s in STATUSES)
        raise InvalidArgument(f"status: unknown status {text!r} (one of {names})")
    return status


def _metadata(text: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise InvalidArgument(f"metadata: line {n} ({line.strip()!r}) is not key=value")
        pairs[key.strip()] = value.strip()
    return pairs


def _time_ms(label: str, text: str) -> int:
    text = text.strip()
    if not text:
        return 0
    if text.isascii() and text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(
            f"{label}: expected a UTC time YYYY-MM-DDTHH:MM or Unix milliseconds, got {text!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    ms = int(when.timestamp() * 1000)
    if ms <= 0:
        raise InvalidArgument(f"{label}: must be after 1970-01-01")
    return ms


def _page_size(text: str) -> int:
    text = text.strip()
    if not text:
        return DEFAULT_PAGE_SIZE
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_PAGE_SIZE:
        raise InvalidArgument(f"page size: expected 1..{MAX_PAGE_SIZE}, got {text!r}")
    return int(text)


@dataclass(frozen=True, slots=True)
class SearchForm:
    """A search as the form holds it: the raw text of every field (to show it again) and,
    once parsed, the filter and the page asked for."""

    tenant: str = ""
    queue: str = ""
    statuses: tuple[str, ...] = ()
    metadata: str = ""
    created_after: str = ""
    created_before: str = ""
    page_size: str = ""
    page_token: str = ""
    filter: JobFilter = field(default_factory=JobFilter)
    size: int = DEFAULT_PAGE_SIZE

    def query(self, *, page_token: str = "", **extra: str) -> str:
        """The query string of this search (for links: another page, a status filter...)."""
        items: list[tuple[str, str]] = [("tenant", self.tenant), ("queue", self.queue)]
        items += [("status", s) for s in self.statuses]
        items += [
            ("meta", self.metadata),
            ("after", self.created_after),
            ("before", self.created_before),
            ("size", self.page_size),
            ("token", page_token),
        ]
        items += list(extra.items())
        return urlencode([(k, v) for k, v in items if v])

    @property
    def is_filtered(self) -> bool:
        """Whether any filter beyond the tenant is set."""
        f = self.filter
        return bool(
            f.queue or f.statuses or f.metadata or f.created_after_ms or f.created_before_ms
        )

    def describe(self) -> str:
        """The filter in words, for confirmations: `queue=emails, status FAILED or CANCELLED`."""
        f = self.filter
        parts = [f"tenant {f.tenant!r}" if f.tenant else "the default tenant"]
        if f.queue:
            parts.append(f"queue {f.queue!r}")
        if f.statuses:
            parts.append("status " + " or ".join(s.name for s in f.statuses))
        parts += [f"{k}={v}" for k, v in f.metadata.items()]
        if self.created_after:
            parts.append(f"created after {self.created_after}")
        if self.created_before:
            parts.append(f"created before {self.created_before}")
        return ", ".join(parts)


def raw_search(values: MultiMapping[str] | Mapping[str, str]) -> SearchForm:
    """The form's raw fields, unparsed (to show them again beside an error)."""

    def one(name: str) -> str:
        value = values.get(name, "")
        return value if isinstance(value, str) else ""

    statuses: tuple[str, ...] = ()
    if isinstance(values, MultiMapping):
        statuses = tuple(s for s in values.getall("status", []) if s)
    elif one("status"):
        statuses = (one("status"),)
    return SearchForm(
        tenant=one("tenant"),
        queue=one("queue").strip(),
        statuses=statuses,
        metadata=one("meta"),
        created_after=one("after").strip(),
        created_before=one("before").strip(),
        page_size=one("size").strip(),
        page_token=one("token").strip(),
    )


def parse_search(values: MultiMapping[str] | Mapping[str, str]) -> SearchForm:
    """The search of a query string or form; InvalidArgument naming the bad field."""
    raw = raw_search(values)
    statuses = tuple(dict.fromkeys(parse_status(s) for s in raw.statuses))
    after = _time_ms("created after", raw.created_after)
    before = _time_ms("created before", raw.created_before)
    if after and before and after >= before:
        raise InvalidArgument("created before: must be later than created after")
    job_filter = JobFilter(
        tenant=raw.tenant,
        queue=raw.queue,
        statuses=statuses,
        metadata=_metadata(raw.metadata),
        created_after_ms=after,
        created_before_ms=before,
    )
    return SearchForm(
        tenant=raw.tenant,
        queue=raw.queue,
        statuses=tuple(s.name for s in statuses),
        metadata=raw.metadata,
        created_after=raw.created_after,
        created_before=raw.created_before,
        page_size=raw.page_size,
        page_token=raw.page_token,
        filter=job_filter,
        size=_page_size(raw.page_size),
    )
