"""Small measuring tools: latency percentiles, process CPU time and RSS from /proc, clocks.

All timestamps are `time.monotonic()` seconds: CLOCK_MONOTONIC is system-wide on Linux, so a
time taken in one load-generator process can be compared with one taken in another.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterable, Sequence
from typing import Final

__all__ = [
    "PERCENTILES",
    "latency_fields",
    "machine_busy_seconds",
    "percentile",
    "proc_cpu_seconds",
    "proc_rss_bytes",
    "self_cpu_seconds",
]

PERCENTILES: Final = (50, 95, 99)
_CLK_TCK: Final = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending sequence (empty -> nan)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * pct // 100))  # ceil(n * pct / 100), at least 1
    return sorted_values[min(len(sorted_values), int(rank)) - 1]


def latency_fields(seconds: Iterable[float], prefix: str = "") -> dict[str, float | None]:
    """{prefix+"p50_ms": .., "p95_ms": .., "p99_ms": .., "max_ms": ..} of latencies in seconds;
    None values when there is no sample."""
    values = sorted(seconds)
    out: dict[str, float | None] = {}
    for pct in PERCENTILES:
        out[f"{prefix}p{pct}_ms"] = percentile(values, pct) * 1000 if values else None
    out[f"{prefix}max_ms"] = values[-1] * 1000 if values else None
    return out


def self_cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (all threads)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def proc_cpu_seconds(pid: int, thread: int | None = None) -> float | None:
    """User + system CPU seconds of process `pid` (all threads), or of one of its threads,
    from /proc; None if unknown."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    try:
        with open(path, "rb") as f:
            text = f.read().decode()
    except OSError:
        return None
    # Field 2 (comm) may contain spaces; the fields after its closing parenthesis are fixed.
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLK_TCK


def machine_busy_seconds() -> float | None:
    """CPU seconds all cores of the machine have been busy (not idle or iowait) since boot,
    from /proc/stat; None if unknown. Its rate minus the broker's and the load generator's is
    what other processes took during a phase (a shared machine disturbs the figures)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(x) for x in fields[1:]]
    # user nice system idle iowait irq softirq steal (guest time is included in user).
    busy = sum(ticks[:3]) + sum(ticks[5:8])
    return busy / _CLK_TCK


def proc_rss_bytes(pid: int) -> int | None:
    """Resident set size of process `pid` (VmRSS of /proc/PID/status); None if unknown."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
