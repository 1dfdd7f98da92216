"""A bench run's results: settings next to rows of figures, as a text table and as JSON.

A row is a flat dict whose keys are snake_case JSON names (`jobs_per_s`, `p99_ms`, ...); the
table shows the union of the rows' keys in first-seen order, labelled by COLUMN_LABELS.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["COLUMN_LABELS", "Report", "format_value"]

COLUMN_LABELS: Final[dict[str, str]] = {
    "phase": "phase",
    "jobs": "jobs",
    "seconds": "s",
    "jobs_per_s": "jobs/s",
    "calls_per_s": "calls/s",
    "p50_ms": "p50 ms",
    "p95_ms": "p95 ms",
    "p99_ms": "p99 ms",
    "max_ms": "max ms",
    "errors": "errors",
    "loadgen_cores": "loadgen cores",
    "loadgen_cpu_s": "loadgen cpu s",
    "broker_cores": "broker cores",
    "broker_cpu_s": "broker cpu s",
    "broker_rss_mb": "broker RSS MB",
    "other_cores": "other cores",
    "broker_main_thread_cores": "broker main thread cores",
}


def format_value(value: Any) -> str:
    """Human formatting: thousands separators, 2-3 significant decimals, None -> n/a."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.1f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    return str(value)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


@dataclass
class Report:
    """Everything a run produced. `rows` are the figures, `settings` how they were obtained."""

    scenario: str
    settings: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def to_json(self) -> str:
        doc = {
            "scenario": self.scenario,
            "settings": self.settings,
            "results": self.rows,
            "notes": self.notes,
            **self.extra,
        }
        return json.dumps(_json_safe(doc), indent=2, sort_keys=False)

    def table(self) -> str:
        """The rows as an aligned text table (one line per row)."""
        columns: list[str] = []
        for row in self.rows:
            for key in row:
                if key not in columns:
                    columns.append(key)
        if not columns:
            return "(no results)"
        header = [COLUMN_LABELS.get(c, c.replace("_", " ")) for c in columns]
        cells = [
            [format_value(row.get(c)) if c in row else "-" for c in columns] for row in self.rows
        ]
        widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]

        def line(values: list[str]) -> str:
            parts = [
                v.ljust(w) if i == 0 else v.rjust(w)
                for i, (v, w) in enumerate(zip(values, widths, strict=True))
            ]
            return "  ".join(parts).rstrip()

        rule = "  ".join("-" * w for w in widths)
        return "\n".join([line(header), rule, *(line(r) for r in cells)])

    def summary(self) -> str:
        """Settings, the table, the notes: what a human reads at the end of a run."""
        out = [f"== silo bench {self.scenario}: settings"]
        width = max((len(k) for k in self.settings), default=0)
        out += [f"  {k.ljust(width)}  {format_value(v)}" for k, v in self.settings.items()]
        out += ["", f"== silo bench {self.scenario}: results", self.table()]
        if self.notes:
            out += ["", *(f"note: {n}" for n in self.notes)]
        return "\n".join(out)
