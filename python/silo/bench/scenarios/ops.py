"""`silo bench ops`: operator reads as the store grows. Makes --failed FAILED jobs tagged
`customer=c42`, then fills one queue to each --steps size (jobs stored in all) and probes, with
sequential calls (--probes each): ListJobs(status=FAILED, page 50), ListJobs(metadata
customer=c42, page 50), ListJobs(queue, the newest page of 50), ListQueues and GetJob of jobs
picked at random points in the store's history. Every row after the first carries each
probe's latency as a ratio to the first row's (`*_vs_first`): a page's cost must grow with the
page, not with the jobs stored (issue 11's target: at most 1.5 from 10k to 1M).

With --ui the broker serves the web UI too, and each row also times its pages (sequential
GETs, --probes each): the overview (`/`), a status search (`/jobs?status=FAILED`), a metadata
search (`/jobs?meta=customer=c42`) and a job page (`/job?id=...`). A page's time is the
server's own (its `Server-Timing: app` header: routing, broker calls and template, without the
network). A first row probes the empty broker, before any job exists; later rows carry each
page's time as a ratio to it (`*_vs_empty`; the job page, which an empty broker lacks, to the
first row with jobs). Issue 11's target: the pages at 1M stored under 3x the empty broker's.
"""

from __future__ import annotations

import http.client
import random
import re
import time
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

from silo.bench.measure import latency_fields, self_cpu_seconds
from silo.bench.procs import SENT
from silo.bench.rpc import SiloClient, pb
from silo.bench.runner import Bench
from silo.bench.work import fill_tasks

#: The probes, in the order they run and print.
PROBES: Final = ("list_failed", "list_metadata", "list_queue", "list_queues", "get_job")
PAGE: Final = 50
CUSTOMER: Final = {"customer": "c42"}
#: The UI pages --ui times, in the order they run and print.
PAGES: Final = ("ui_overview", "ui_search", "ui_search_meta", "ui_job")
_SERVER_TIMING: Final = re.compile(r"\bapp;dur=([0-9.]+)")


def _make_failed(client: SiloClient, queue: str, n: int) -> int:
    """`n` jobs tagged customer=c42 in `queue`, leased and failed for good."""
    jobs = [pb.EnqueueRequest(queue=queue, metadata=CUSTOMER) for _ in range(n)]
    for i in range(0, n, 1000):
        client.enqueue_batch(pb.EnqueueBatchRequest(jobs=jobs[i : i + 1000]), timeout=60)
    failed = 0
    while failed < n:
        lease = pb.LeaseTasksRequest(worker_id="bench-ops", max_tasks=1000, queues=[queue])
        tasks = client.lease_tasks(lease, timeout=60).tasks
        if not tasks:
            break
        failure = pb.TaskFailure(code="bench", non_retryable=True)
        reports = [
            pb.ReportTaskOutcomeRequest(task_id=t.task_id, worker_id="bench-ops", failure=failure)
            for t in tasks
        ]
        client.report_task_outcomes(pb.ReportTaskOutcomesRequest(reports=reports), timeout=60)
        failed += len(tasks)
    return failed


def _random_ids(client: SiloClient, since_ms: int, n: int) -> list[str]:
    """Ids of `n` jobs found at random creation times since `since_ms` (one ListJobs each)."""
    ids: list[str] = []
    now = time.time_ns() // 1_000_000
    for _ in range(n * 3):
        before = random.randint(since_ms + 1, now + 1)
        page = client.list_jobs(pb.ListJobsRequest(created_before_ms=before, page_size=1))
        ids.extend(j.id for j in page.jobs)
        if len(ids) == n:
            break
    return ids


def _probe(client: SiloClient, queue: str, ids: list[str], n: int) -> dict[str, list[float]]:
    """Times `n` sequential calls of each probe; checks each answer is what it should be."""
    calls: dict[str, Callable[[int], Any]] = {
        "list_failed": lambda _: client.list_jobs(
            pb.ListJobsRequest(statuses=[pb.JOB_STATUS_FAILED], page_size=PAGE), timeout=60
        ),
        "list_metadata": lambda _: client.list_jobs(
            pb.ListJobsRequest(metadata=CUSTOMER, page_size=PAGE), timeout=60
        ),
        "list_queue": lambda _: client.list_jobs(
            pb.ListJobsRequest(queue=queue, page_size=PAGE), timeout=60
        ),
        "list_queues": lambda _: client.list_queues(pb.ListQueuesRequest(), timeout=60),
        "get_job": lambda i: client.get_job(pb.GetJobRequest(id=ids[i % len(ids)]), timeout=60),
    }
    out: dict[str, list[float]] = {}
    for name in PROBES:
        if name == "get_job" and not ids:
            continue
        times: list[float] = []
        for i in range(n):
            t0 = time.monotonic()
            reply = calls[name](i)
            times.append(time.monotonic() - t0)
            if name.startswith("list_") and name != "list_queues" and len(reply.jobs) != PAGE:
                raise RuntimeError(f"{name}: a page of {len(reply.jobs)} jobs, not {PAGE}")
        out[name] = times
    return out


def _page_paths(ids: list[str]) -> dict[str, Callable[[int], str]]:
    paths: dict[str, Callable[[int], str]] = {
        "ui_overview": lambda _: "/",
        "ui_search": lambda _: "/jobs?status=FAILED",
        "ui_search_meta": lambda _: "/jobs?" + urlencode({"meta": "customer=c42"}),
    }
    if ids:
        paths["ui_job"] = lambda i: "/job?" + urlencode({"id": ids[i % len(ids)]})
    return paths


def _ui_probe(url: str, ids: list[str], n: int) -> dict[str, list[float]]:
    """The server's render time (seconds, from `Server-Timing`) of `n` sequential GETs of each
    page, over one keep-alive connection; a page that is not 200 stops the bench."""
    where = urlsplit(url)
    conn = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=60)
    out: dict[str, list[float]] = {}
    try:
        for name, path in _page_paths(ids).items():
            times: list[float] = []
            for i in range(n):
                conn.request("GET", path(i))
                reply = conn.getresponse()
                reply.read()
                timing = _SERVER_TIMING.search(reply.getheader("Server-Timing") or "")
                if reply.status != 200 or timing is None:
                    raise RuntimeError(f"{name}: GET {path(i)} answered {reply.status}")
                times.append(float(timing.group(1)) / 1000)
            out[name] = times
    finally:
        conn.close()
    return out


def _ui_fields(row: dict[str, Any], pages: dict[str, list[float]], base: dict[str, Any]) -> None:
    """Adds each page's p50/p99 to `row`, with its ratio to `base` where it has the page."""
    for name, times in pages.items():
        lat = latency_fields(times)
        for pct in ("p50", "p99"):
            row[f"{name}_{pct}_ms"] = lat[f"{pct}_ms"]
            first = base.get(f"{name}_{pct}_ms")
            if first:
                row[f"{name}_{pct}_vs_empty"] = round(lat[f"{pct}_ms"] / first, 2)


def run(bench: Bench) -> None:
    args = bench.args
    client = bench.target.client
    assert client is not None
    ui_url = bench.target.http_url if args.ui else None
    # The pages' base figures: the empty broker's (the job page's: the first row with jobs).
    base: dict[str, Any] = {}
    if ui_url is not None:
        empty: dict[str, Any] = {"phase": "ui of the empty broker", "stored": 0}
        _ui_fields(empty, _ui_probe(ui_url, [], args.probes), {})
        bench.say(f"[{empty['phase']}] {_pages_line(empty)}")
        bench.report.add(empty)
        base = dict(empty)
    started_ms = time.time_ns() // 1_000_000
    failed = _make_failed(client, f"{bench.queue}-failed", args.failed)
    stored = failed
    bench.say(f"[setup] {failed} FAILED jobs tagged customer=c42")
    rows: list[dict[str, Any]] = []
    for step in sorted(args.steps):
        if step > stored:
            need = step - stored
            tasks = fill_tasks(
                bench.split(args.fill_clients),
                need,
                batch=args.fill_batch,
                queue=bench.queue,
                payload_bytes=args.payload_bytes,
            )
            fill = bench.phase(f"fill to {step:,}", tasks, total=need, count_slot=SENT)
            stored += fill.counters[SENT]
            if args.settle_s:
                time.sleep(args.settle_s)
        ids = _random_ids(client, started_ms, args.probes)
        cpu0, broker0, t0 = self_cpu_seconds(), bench.target.cpu_seconds(), time.monotonic()
        probes = _probe(client, bench.queue, ids, args.probes)
        span = time.monotonic() - t0
        cpu1, broker1 = self_cpu_seconds(), bench.target.cpu_seconds()
        row: dict[str, Any] = {"phase": f"ops at {stored:,} stored", "stored": stored}
        for name, times in probes.items():
            lat = latency_fields(times)
            row[f"{name}_p50_ms"] = lat["p50_ms"]
            row[f"{name}_p99_ms"] = lat["p99_ms"]
            if rows and rows[0].get(f"{name}_p50_ms"):
                for pct in ("p50", "p99"):
                    first = rows[0][f"{name}_{pct}_ms"]
                    row[f"{name}_{pct}_vs_first"] = round(lat[f"{pct}_ms"] / first, 2)
        row["loadgen_cores"] = round((cpu1 - cpu0) / span, 2)
        row["broker_cores"] = (
            None if broker0 is None or broker1 is None else round((broker1 - broker0) / span, 2)
        )
        line = "  ".join(f"{n} p50 {_ms(row.get(f'{n}_p50_ms'))}" for n in PROBES)
        if ui_url is not None:
            if rows and "ui_job_p50_ms" in rows[0]:
                base.setdefault("ui_job_p50_ms", rows[0]["ui_job_p50_ms"])
                base.setdefault("ui_job_p99_ms", rows[0]["ui_job_p99_ms"])
            _ui_fields(row, _ui_probe(ui_url, ids, args.probes), base)
            line += "\n  " + _pages_line(row)
        bench.say(f"[{row['phase']}] {line}")
        bench.report.add(row)
        rows.append(row)


def _pages_line(row: dict[str, Any]) -> str:
    return "  ".join(
        f"{n} p50 {_ms(row.get(f'{n}_p50_ms'))}" + _ratio(row.get(f"{n}_p50_vs_empty"))
        for n in PAGES
        if f"{n}_p50_ms" in row
    )


def _ratio(value: float | None) -> str:
    return "" if value is None else f" ({value}x)"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} ms"
