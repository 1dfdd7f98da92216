"""`silo bench cost`: a steady phase at --rate with Admin/GetStats read before and after:
object-store requests per 1,000 completed jobs, and $ per million jobs at S3 Standard prices."""

from __future__ import annotations

import time
from typing import Any, Final

from silo.bench.runner import Bench
from silo.bench.scenarios.steady import paced_phase

#: S3 Standard request prices (us-east-1), $ per request. LIST and COPY are billed like PUT,
#: HEAD like GET; DELETE is free.
PRICES: Final[dict[str, float]] = {
    "put": 0.005 / 1000,
    "copy": 0.005 / 1000,
    "list": 0.005 / 1000,
    "get": 0.0004 / 1000,
    "head": 0.0004 / 1000,
    "delete": 0.0,
}
#: After the last job, wait this long so flushes triggered by the phase are counted.
SETTLE_S: Final = 2.0


def dollars_per_million(requests: dict[str, int], jobs: int) -> float | None:
    """$ per 1,000,000 jobs for `requests` (kind -> count) spent on `jobs` jobs."""
    if jobs <= 0:
        return None
    cost = sum(PRICES.get(kind, PRICES["put"]) * n for kind, n in requests.items())
    return cost / jobs * 1_000_000


def run(bench: Bench) -> None:
    args = bench.args
    before = bench.target.stats()
    t0 = time.monotonic()
    _, row = paced_phase(bench, f"cost {args.rate:,}/s", float(args.rate))
    time.sleep(SETTLE_S)
    after = bench.target.stats()
    seconds = time.monotonic() - t0
    jobs = int(row["completed"])
    out: dict[str, Any] = {
        k: row[k]
        for k in (
            "phase",
            "rate",
            "jobs",
            "completed",
            "achieved_per_s",
            "start_p50_ms",
            "done_p99_ms",
        )
    }
    if not (before.available and after.available):
        out.update(
            {
                "requests_per_1k_jobs": None,
                "put_per_1k": None,
                "get_per_1k": None,
                "usd_per_million_jobs": None,
            }
        )
        bench.report.notes.append(
            "the broker does not serve Admin/GetStats (UNIMPLEMENTED): object-store request "
            "counts and $ are n/a"
        )
    else:
        kinds = sorted(set(before.object_store_requests) | set(after.object_store_requests))
        delta = {
            k: after.object_store_requests.get(k, 0) - before.object_store_requests.get(k, 0)
            for k in kinds
        }
        per_1k = {k: round(v * 1000 / jobs, 3) if jobs else None for k, v in delta.items()}
        out["requests_per_1k_jobs"] = round(sum(delta.values()) * 1000 / jobs, 3) if jobs else None
        for kind in kinds:
            out[f"{kind}_per_1k"] = per_1k[kind]
        usd = dollars_per_million(delta, jobs)
        out["usd_per_million_jobs"] = None if usd is None else round(usd, 4)
        out["requests_per_s"] = round(sum(delta.values()) / seconds, 2)
        bench.report.extra["object_store_requests"] = {
            "before": before.object_store_requests,
            "after": after.object_store_requests,
            "delta": delta,
            "seconds": seconds,
        }
    out.update({k: row[k] for k in ("errors", "loadgen_cores", "broker_cores")})
    bench.report.add(out)
    if jobs < row["jobs"]:
        bench.report.notes.append(f"only {jobs:,} of {row['jobs']:,} jobs completed")
