"""A bench run's results: settings next to rows of figures, as a text table and as JSON.

A row is a flat dict whose keys are snake_case JSON names (`jobs_per_s`, `p99_ms`, ...); the
table shows the union of the rows' keys in first-seen order (a key new in a later row goes right
after its predecessor in that row), labelled by COLUMN_LABELS.

Ratios: a row measured against Silo and the same phase measured against the ceiling (the no-op
server, noop.py) make a `Ratio`; `Report.compare` adds the ceiling's jobs/s and the ratio to the
Silo row and keeps the ratio for the summary's headline section and the JSON's `ratios`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["COLUMN_LABELS", "Ratio", "Report", "Speedup", "format_value", "ratio"]

COLUMN_LABELS: Final[dict[str, str]] = {
    "phase": "phase",
    "jobs": "jobs",
    "seconds": "s",
    "jobs_per_s": "jobs/s",
    "ceiling_jobs_per_s": "ceiling jobs/s",
    "ratio_to_ceiling": "ratio to ceiling",
    "x_unary": "x unary",
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
    "broker_us_per_job": "broker µs/job",
    "broker_main_us_per_job": "main thread µs/job",
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


def ratio(silo: float | None, ceiling: float | None) -> float | None:
    """silo / ceiling, rounded to 3 decimals; None when either is unknown or the ceiling is 0."""
    if silo is None or ceiling is None or ceiling <= 0:
        return None
    return round(silo / ceiling, 3)


@dataclass(frozen=True)
class Ratio:
    """Silo's jobs/s in one workload next to the ceiling's in the same workload and run."""

    name: str
    silo_jobs_per_s: float | None
    ceiling_jobs_per_s: float | None

    @property
    def ratio(self) -> float | None:
        return ratio(self.silo_jobs_per_s, self.ceiling_jobs_per_s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "silo_jobs_per_s": self.silo_jobs_per_s,
            "ceiling_jobs_per_s": self.ceiling_jobs_per_s,
            "ratio": self.ratio,
        }


@dataclass(frozen=True)
class Speedup:
    """A stream workload's jobs/s next to the unary workload it replaces, in the same run and
    against the same server (Silo, or the ceiling)."""

    name: str
    jobs_per_s: float | None
    unary_jobs_per_s: float | None

    @property
    def factor(self) -> float | None:
        return ratio(self.jobs_per_s, self.unary_jobs_per_s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "jobs_per_s": self.jobs_per_s,
            "unary_jobs_per_s": self.unary_jobs_per_s,
            "factor": self.factor,
        }


@dataclass
class Report:
    """Everything a run produced. `rows` are the figures, `settings` how they were obtained."""

    scenario: str
    settings: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    ratios: list[Ratio] = field(default_factory=list)
    speedups: list[Speedup] = field(default_factory=list)

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def speedup(self, name: str, row: dict[str, Any], unary: dict[str, Any]) -> dict[str, Any]:
        """`row` (a stream workload) with `x_unary`, its jobs/s over `unary`'s, recorded under
        `name` for the summary and the JSON's `speedups`. Does not add the row."""
        s = Speedup(name, row.get("jobs_per_s"), unary.get("jobs_per_s"))
        self.speedups.append(s)
        return {**row, "x_unary": s.factor}

    def compare(
        self,
        name: str,
        silo: dict[str, Any],
        ceiling: dict[str, Any] | None,
        *,
        record: bool = True,
    ) -> dict[str, Any]:
        """`silo` (a row) with `ceiling_jobs_per_s` and `ratio_to_ceiling` right after its
        `jobs_per_s`, the ratio recorded under `name` (unless not `record`); `silo` itself when
        there is no ceiling row. Does not add the row."""
        if ceiling is None:
            return silo
        r = Ratio(name, silo.get("jobs_per_s"), ceiling.get("jobs_per_s"))
        if record:
            self.ratios.append(r)
        out: dict[str, Any] = {}
        for key, value in silo.items():
            out[key] = value
            if key == "jobs_per_s":
                out["ceiling_jobs_per_s"] = r.ceiling_jobs_per_s
                out["ratio_to_ceiling"] = r.ratio
        if "ratio_to_ceiling" not in out:
            out["ceiling_jobs_per_s"] = r.ceiling_jobs_per_s
            out["ratio_to_ceiling"] = r.ratio
        return out

    def to_json(self) -> str:
        doc = {
            "scenario": self.scenario,
            "settings": self.settings,
            "results": self.rows,
            "ratios": [r.to_dict() for r in self.ratios],
            "speedups": [s.to_dict() for s in self.speedups],
            "notes": self.notes,
            **self.extra,
        }
        return json.dumps(_json_safe(doc), indent=2, sort_keys=False)

    def table(self) -> str:
        """The rows as an aligned text table (one line per row)."""
        columns: list[str] = []
        for row in self.rows:
            previous: str | None = None
            for key in row:
                if key not in columns:
                    at = columns.index(previous) + 1 if previous is not None else len(columns)
                    columns.insert(at, key)
                previous = key
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
        if self.ratios:
            out += ["", *self.ratio_lines()]
        if self.speedups:
            out += ["", *self.speedup_lines()]
        if self.notes:
            out += ["", *(f"note: {n}" for n in self.notes)]
        return "\n".join(out)

    def speedup_lines(self) -> list[str]:
        """Each stream workload against the unary workload it replaces."""
        out = [f"== silo bench {self.scenario}: streams / unary calls (same run, same server)"]
        width = max(len(s.name) for s in self.speedups)
        for s in self.speedups:
            out.append(
                f"  {s.name.ljust(width)}  {format_value(s.factor):>6}x"
                f"   ({format_value(s.jobs_per_s)} jobs/s against "
                f"{format_value(s.unary_jobs_per_s)} jobs/s)"
            )
        return out

    def ratio_lines(self) -> list[str]:
        """The headline: each workload's jobs/s against Silo and against the ceiling."""
        out = [
            f"== silo bench {self.scenario}: Silo / ceiling (the ceiling is a no-op server on "
            "the stack of `silo serve`, measured in this run)"
        ]
        width = max(len(r.name) for r in self.ratios)
        for r in self.ratios:
            silo = format_value(r.silo_jobs_per_s)
            ceiling = format_value(r.ceiling_jobs_per_s)
            out.append(
                f"  {r.name.ljust(width)}  {format_value(r.ratio):>6}"
                f"   ({silo} jobs/s against {ceiling} jobs/s)"
            )
        return out
