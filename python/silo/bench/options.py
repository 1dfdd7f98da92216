"""The flags of `silo bench SCENARIO`: one place for the whole command-line surface.

This module imports nothing heavy (no grpcio), so registering `bench` on the `silo` parser costs
nothing for `silo serve`. Sizes accept `1000`, `1_000`, `10k`, `1M`, `2.5M`;
lists are comma-separated (`0,1M,5M`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "CEILING_WORKLOADS",
    "SCENARIOS",
    "ScenarioSpec",
    "add_common_arguments",
    "parse_size",
    "parse_sizes",
]

_SUFFIXES: Final = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}


def parse_size(text: str) -> int:
    """`10k` -> 10000, `1M` -> 1000000, `1_000` -> 1000; argparse-friendly (ArgumentTypeError)."""
    raw = text.strip().replace("_", "")
    scale = 1
    if raw and raw[-1].lower() in _SUFFIXES:
        scale = _SUFFIXES[raw[-1].lower()]
        raw = raw[:-1]
    try:
        value = float(raw) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1000, 10k, 1M)") from None
    if value < 0 or value != int(value):
        raise argparse.ArgumentTypeError(f"not a whole non-negative size: {text!r}")
    return int(value)


def parse_sizes(text: str) -> list[int]:
    """Comma-separated sizes: `0,1M,5M,10M` -> [0, 1000000, 5000000, 10000000] (digit groups
    inside one size use `_`, since `,` separates the items)."""
    return [parse_size(item) for item in text.split(",") if item.strip()]


def _positive(text: str) -> int:
    value = parse_size(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    """Flags every scenario takes: where the broker is, output, load-generator shape."""
    g = p.add_argument_group("broker")
    g.add_argument(
        "--target",
        metavar="HOST:PORT",
        help="benchmark an already running broker; default: start `silo serve` on a fresh store",
    )
    g.add_argument(
        "--store",
        metavar="URL",
        help="store of the broker started by the bench (default: a new temporary directory; "
        "s3://bucket/prefix for S3). Ignored with --target",
    )
    g.add_argument(
        "--flush-interval-ms",
        type=_positive,
        metavar="N",
        help="passed to `silo serve --flush-interval-ms` (default: the store's preset)",
    )
    g.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="one more argument for `silo serve` (repeatable), e.g. --serve-arg=--lease-ms=60000",
    )
    g.add_argument(
        "--token",
        metavar="TOKEN",
        help="bearer token sent with every call (default: $SILO_TOKEN); for a broker with "
        "--auth-file, e.g. --serve-arg=--auth-file=PATH",
    )
    g.add_argument(
        "--tls-ca",
        metavar="PEM",
        help="connect over TLS, trusting these CAs; for a broker serving TLS, e.g. "
        "--serve-arg=--tls-cert=CERT --serve-arg=--tls-key=KEY",
    )
    g.add_argument(
        "--broker-pid",
        type=int,
        metavar="PID",
        help="with --target on this machine: read the broker's CPU and RSS from /proc/PID",
    )
    g.add_argument(
        "--keep-store", action="store_true", help="keep the temporary store and broker logs"
    )
    o = p.add_argument_group("output")
    o.add_argument(
        "--json",
        metavar="PATH",
        help="also write the results as JSON to PATH; `-` writes JSON to stdout and the "
        "human-readable progress and summary to stderr",
    )
    o.add_argument(
        "--progress-s",
        type=_seconds,
        default=2.0,
        metavar="S",
        help="seconds between progress lines (default 2; 0 disables them)",
    )
    o.add_argument(
        "--py-spy",
        metavar="PATH",
        help="profile the broker subprocess with py-spy for the whole run: raw collapsed stacks "
        "go to PATH and the top frames are printed at the end",
    )
    o.add_argument(
        "--py-spy-native",
        action="store_true",
        help="with --py-spy: also sample native (Rust/C) frames (slower sampling)",
    )
    o.add_argument(
        "--py-spy-rate", type=_positive, default=250, metavar="HZ", help="py-spy samples/s"
    )
    o.add_argument(
        "--perf",
        metavar="PATH",
        help="record the broker subprocess with `perf record --call-graph dwarf` into PATH "
        "and print the top native symbols at the end (Rust/SlateDB threads)",
    )
    o.add_argument(
        "--perf-rate", type=_positive, default=99, metavar="HZ", help="perf samples/s (99)"
    )
    lg = p.add_argument_group("load generator")
    lg.add_argument(
        "--procs",
        type=_positive,
        metavar="N",
        help="load-generator processes per client role (default: the machine's cores, at most "
        "the number of clients)",
    )
    lg.add_argument(
        "--payload-bytes",
        type=parse_size,
        default=16,
        metavar="N",
        help="payload size of each job (default 16; timed scenarios need at least 8)",
    )
    lg.add_argument("--queue", help="queue name (default: a new unique name per run)")


# Flags that several scenarios share, defined once.


def _worker_flags(p: argparse.ArgumentParser) -> None:
    """--workers and --lease-batch of the scenarios whose workers long-poll for batches."""
    p.add_argument(
        "--workers", type=_positive, default=4, metavar="N", help="concurrent workers (4)"
    )
    p.add_argument(
        "--lease-batch", type=_positive, default=100, metavar="N", help="max_tasks (100)"
    )


def _wait_ms_flag(p: argparse.ArgumentParser, *, default: int) -> None:
    p.add_argument(
        "--wait-ms",
        type=parse_size,
        default=default,
        metavar="MS",
        help=f"long-poll wait ({default})",
    )


def _probe_and_fill_flags(p: argparse.ArgumentParser) -> None:
    """The flags of the scenarios that fill a queue step by step and probe it after each step
    (backlog, ops)."""
    p.add_argument(
        "--probes",
        type=_positive,
        default=200,
        metavar="N",
        help="sequential probe calls per step and kind (default 200)",
    )
    _fill_batch_flag(p)
    p.add_argument(
        "--fill-clients", type=_positive, default=4, metavar="N", help="fill clients (4)"
    )
    p.add_argument(
        "--settle-s",
        type=_seconds,
        default=2.0,
        metavar="S",
        help="idle seconds after each fill before probing (default 2)",
    )


def _fill_batch_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--fill-batch", type=_positive, default=1000, metavar="B", help="EnqueueBatch size (1000)"
    )


def _timed_flags(p: argparse.ArgumentParser, *, duration: float) -> None:
    """--duration and --warmup of the closed-loop phases that run for a fixed time."""
    p.add_argument(
        "--duration",
        type=_seconds,
        default=duration,
        metavar="S",
        help=f"seconds per phase ({duration:g})",
    )
    p.add_argument(
        "--warmup", type=_seconds, default=1.0, metavar="S", help="unmeasured seconds first (1)"
    )


def _ceiling_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ceiling",
        action="store_true",
        help="also run each phase against the ceiling (a no-op server on the stack of "
        "`silo serve`, in its own process) just before Silo, and print Silo's jobs/s as a "
        "ratio to it",
    )


def _ceiling_min_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ceiling-min-s",
        type=_seconds,
        default=3.0,
        metavar="S",
        help="each burn-down phase against the ceiling runs at least S seconds, and for at "
        "least the jobs Silo gets (default 3)",
    )


#: The workloads of `silo bench ceiling`, in the order they run.
CEILING_WORKLOADS: Final = ("enqueue", "per-job", "batched", "enqueue-batch")


def _workloads(text: str) -> list[str]:
    names = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [n for n in names if n not in CEILING_WORKLOADS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"workloads are a comma-separated subset of {','.join(CEILING_WORKLOADS)}"
        )
    return [w for w in CEILING_WORKLOADS if w in names]


def _ceiling(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workloads",
        type=_workloads,
        default=list(CEILING_WORKLOADS),
        metavar="W,W",
        help="which of enqueue (single Enqueue), per-job (burn-down, one RPC per job), batched "
        "(burn-down) and enqueue-batch (EnqueueBatch) to run (default all, in that order)",
    )
    p.add_argument(
        "--clients",
        type=_positive,
        default=50,
        metavar="N",
        help="concurrent single-Enqueue clients (default 50)",
    )
    p.add_argument(
        "--batch-size",
        type=_positive,
        default=100,
        metavar="B",
        help="jobs per EnqueueBatch (default 100)",
    )
    p.add_argument(
        "--batch-clients",
        type=_positive,
        default=4,
        metavar="N",
        help="concurrent EnqueueBatch clients (default 4)",
    )
    p.add_argument(
        "--duration",
        type=_seconds,
        default=5.0,
        metavar="S",
        help="seconds per enqueue phase (default 5)",
    )
    p.add_argument(
        "--warmup", type=_seconds, default=1.0, metavar="S", help="unmeasured seconds first (1)"
    )
    p.add_argument(
        "--per-job-jobs",
        type=_positive,
        default=10_000,
        metavar="N",
        help="jobs of the per-job burn-down: 32 enqueuers, 32 workers (default 10k)",
    )
    p.add_argument(
        "--jobs",
        type=_positive,
        default=200_000,
        metavar="N",
        help="jobs of the batched burn-down: EnqueueBatch 1000 x4, 4 workers leasing and "
        "reporting 1000 at a time (default 200k)",
    )
    _ceiling_min_flag(p)


def _enqueue(p: argparse.ArgumentParser) -> None:
    _ceiling_flag(p)
    p.add_argument(
        "--clients",
        type=parse_sizes,
        default=[8, 50],
        metavar="N,N",
        help="concurrent single-Enqueue clients, one phase per value (default 8,50; empty skips)",
    )
    p.add_argument(
        "--batch-size",
        type=parse_size,
        default=100,
        metavar="B",
        help="jobs per EnqueueBatch in the batch phase (default 100; 0 skips the phase)",
    )
    p.add_argument(
        "--batch-clients",
        type=_positive,
        default=4,
        metavar="N",
        help="concurrent EnqueueBatch clients (default 4)",
    )
    _timed_flags(p, duration=10.0)


def _burn_down(p: argparse.ArgumentParser) -> None:
    _ceiling_flag(p)
    _ceiling_min_flag(p)
    p.add_argument(
        "--jobs", type=_positive, default=1_000_000, metavar="N", help="jobs (default 1M)"
    )
    p.add_argument(
        "--per-job",
        action="store_true",
        help="one RPC per job: single Enqueue, LeaseTasks(max_tasks=1), single ReportTaskOutcome",
    )
    p.add_argument(
        "--enqueue-batch", type=_positive, default=1000, metavar="B", help="(default 1000)"
    )
    p.add_argument(
        "--enqueuers",
        type=_positive,
        metavar="N",
        help="concurrent enqueue clients (default 4 batched, 32 per-job)",
    )
    p.add_argument(
        "--workers",
        type=_positive,
        metavar="N",
        help="concurrent workers (default 4 batched, 32 per-job)",
    )
    p.add_argument(
        "--lease-batch",
        type=_positive,
        default=1000,
        metavar="N",
        help="max_tasks per LeaseTasks (default 1000; 1 with --per-job)",
    )
    p.add_argument(
        "--report-batch",
        type=_positive,
        default=1000,
        metavar="N",
        help="reports per ReportTaskOutcomes (default 1000)",
    )


def _steady(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rates",
        type=parse_sizes,
        default=[100, 1000, 10_000],
        metavar="R,R",
        help="arrival rates in jobs/s, one phase each (default 100,1000,10000)",
    )
    _paced(p, duration=20.0)


def _paced(p: argparse.ArgumentParser, *, duration: float) -> None:
    p.add_argument(
        "--duration",
        type=_seconds,
        default=duration,
        metavar="S",
        help=f"seconds of arrivals per phase (default {duration:g})",
    )
    p.add_argument(
        "--enqueue-batch",
        type=parse_size,
        default=0,
        metavar="B",
        help="jobs per EnqueueBatch sent by the producers; 1 = single Enqueue; 0 (default) = "
        "single Enqueue up to 1,000 jobs/s, else batches of rate/100 (100 batches/s)",
    )
    p.add_argument(
        "--producers",
        type=_positive,
        default=1,
        metavar="N",
        help="producer processes; each paces its share of the arrivals with asynchronous calls, "
        "so slow answers never hold arrivals back (default 1)",
    )
    p.add_argument(
        "--max-in-flight",
        type=_positive,
        default=10_000,
        metavar="N",
        help="enqueue calls outstanding per producer process before the schedule slips (10000)",
    )
    _worker_flags(p)
    _wait_ms_flag(p, default=1000)


def _dispatch(p: argparse.ArgumentParser) -> None:
    p.add_argument("--jobs", type=_positive, default=500, metavar="N", help="jobs (500)")
    p.add_argument(
        "--interval-ms",
        type=_seconds,
        default=20.0,
        metavar="MS",
        help="pause between enqueues (default 20)",
    )
    p.add_argument(
        "--workers",
        type=_positive,
        default=4,
        metavar="N",
        help="long-polling workers (LeaseTasks max_tasks=1) (default 4)",
    )
    _wait_ms_flag(p, default=10_000)


def _backlog(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--steps",
        type=parse_sizes,
        default=[0, 1_000_000, 5_000_000, 10_000_000],
        metavar="N,N",
        help="queued jobs at which to measure (default 0,1M,5M,10M)",
    )
    _probe_and_fill_flags(p)
    p.add_argument(
        "--time-budget-s",
        type=_seconds,
        default=0.0,
        metavar="S",
        help="stop filling after S seconds in all, probe at the size reached and end there "
        "(default 0 = no budget)",
    )


def _tenants(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tenants", type=_positive, default=100_000, metavar="N", help="small tenants (100k)"
    )
    p.add_argument(
        "--jobs-per-tenant", type=_positive, default=10, metavar="N", help="(default 10)"
    )
    p.add_argument(
        "--big-tenant-jobs",
        type=parse_size,
        default=1_000_000,
        metavar="N",
        help="backlog of the one huge tenant, enqueued first (default 1M)",
    )
    p.add_argument(
        "--small-rate",
        type=_positive,
        default=2000,
        metavar="R",
        help="arrival rate of the small tenants' jobs in jobs/s while workers drain (2000)",
    )
    _worker_flags(p)
    _fill_batch_flag(p)


def _cost(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rate", type=_positive, default=1000, metavar="R", help="arrival rate, jobs/s (1000)"
    )
    _paced(p, duration=60.0)


def _python_api(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--jobs", type=_positive, default=100_000, metavar="N", help="no-op jobs worked (100k)"
    )
    p.add_argument(
        "--enqueue-jobs", type=_positive, default=20_000, metavar="N", help="jobs per enqueue phase"
    )
    p.add_argument(
        "--clients", type=_positive, default=64, metavar="N", help="enqueuing coroutines (64)"
    )
    p.add_argument(
        "--concurrency", type=_positive, default=1000, metavar="N", help="worker slots (1000)"
    )
    p.add_argument("--no-dramatiq", action="store_true", help="skip the Dramatiq comparison")


def _stream_enqueue(p: argparse.ArgumentParser) -> None:
    _ceiling_flag(p)
    p.add_argument(
        "--clients",
        type=_positive,
        default=64,
        metavar="N",
        help="closed-loop single-Enqueue clients of the unary phase (default 64)",
    )
    p.add_argument(
        "--streams",
        type=_positive,
        default=1,
        metavar="N",
        help="EnqueueStream producers, all in one process (default 1)",
    )
    p.add_argument(
        "--window",
        type=_positive,
        default=64,
        metavar="N",
        help="requests each stream keeps in flight (default 64)",
    )
    _timed_flags(p, duration=5.0)


def _session(p: argparse.ArgumentParser) -> None:
    _ceiling_flag(p)
    _ceiling_min_flag(p)
    p.add_argument(
        "--jobs", type=_positive, default=20_000, metavar="N", help="jobs per drain (20k)"
    )
    p.add_argument(
        "--workers", type=_positive, default=4, metavar="N", help="concurrent workers (4)"
    )
    p.add_argument(
        "--credits",
        type=_positive,
        default=32,
        metavar="N",
        help="tasks a worker holds: a session's credits, the unary workers' max_tasks (32)",
    )
    p.add_argument(
        "--dispatch-jobs",
        type=parse_size,
        default=200,
        metavar="N",
        help="jobs of each push-latency phase (200; 0 skips them)",
    )
    p.add_argument(
        "--interval-ms",
        type=_seconds,
        default=20.0,
        metavar="MS",
        help="pause between the push-latency phases' enqueues (default 20)",
    )
    _wait_ms_flag(p, default=10_000)


def _ops(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--steps",
        type=parse_sizes,
        default=[10_000, 1_000_000],
        metavar="N,N",
        help="jobs stored at which to probe (default 10k,1M)",
    )
    p.add_argument(
        "--failed",
        type=_positive,
        default=100,
        metavar="N",
        help="FAILED jobs tagged customer=c42, made first (default 100)",
    )
    _probe_and_fill_flags(p)
    p.add_argument(
        "--ui",
        action="store_true",
        help="serve the web UI too and time its pages: on the empty broker, then at each step",
    )


@dataclass(frozen=True)
class ScenarioSpec:
    """One scenario: its name, one-line help, a description, and its own flags."""

    name: str
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]


_FLOW_WORKLOADS: Final = ("rate", "waiting", "schedules")


def _flow_workloads(text: str) -> list[str]:
    chosen = [w.strip() for w in text.split(",") if w.strip()]
    unknown = [w for w in chosen if w not in _FLOW_WORKLOADS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"workloads are a comma-separated subset of {','.join(_FLOW_WORKLOADS)}"
        )
    return chosen


def _flow(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workloads",
        type=_flow_workloads,
        default=list(_FLOW_WORKLOADS),
        metavar="LIST",
        help="which of rate,waiting,schedules to run (default: all)",
    )
    p.add_argument("--rate-jobs", type=_positive, default=100_000, metavar="N", help="(100k)")
    p.add_argument("--rate-keys", type=_positive, default=1000, metavar="N", help="(1000)")
    p.add_argument(
        "--rate-limit", type=_positive, default=5, metavar="N", help="tokens per period (5)"
    )
    p.add_argument("--rate-period-ms", type=_positive, default=1000, metavar="MS", help="(1000)")
    p.add_argument(
        "--rate-workers", type=_positive, default=4, metavar="N", help="worker threads (4)"
    )
    p.add_argument("--waiting-jobs", type=_positive, default=1_000_000, metavar="N", help="(1M)")
    p.add_argument("--waiting-keys", type=_positive, default=1000, metavar="N", help="(1000)")
    p.add_argument(
        "--probes", type=_positive, default=200, metavar="N", help="lease probes per row (200)"
    )
    p.add_argument("--schedules", type=_positive, default=10_000, metavar="N", help="(10k)")
    p.add_argument(
        "--schedule-s", type=_seconds, default=20.0, metavar="S", help="measured seconds (20)"
    )
    p.add_argument(
        "--schedule-cron",
        action="store_true",
        help="per-second cron schedules (every tick at the same instant) instead of 1 s intervals",
    )
    p.add_argument(
        "--schedule-sample-interval-ms",
        type=_positive,
        default=20,
        metavar="MS",
        help="pause between lateness samples (20)",
    )


def _cluster(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--nodes",
        type=parse_sizes,
        default=[1, 2, 3],
        metavar="N,N",
        help="cluster sizes, one fresh cluster each (default 1,2,3)",
    )
    p.add_argument("--shards", type=_positive, default=12, metavar="N", help="(default 12)")
    p.add_argument("--node-ttl", default="5s", metavar="TTL", help="--node-ttl of the nodes (5s)")
    p.add_argument(
        "--jobs", type=_positive, default=50_000, metavar="N", help="burn-down jobs (default 50k)"
    )
    p.add_argument(
        "--clients",
        type=_positive,
        default=50,
        metavar="N",
        help="single-Enqueue clients over all nodes (default 50)",
    )
    _timed_flags(p, duration=5.0)


SCENARIOS: Final[tuple[ScenarioSpec, ...]] = (
    ScenarioSpec(
        "python-api",
        "silo.open / silo.connect / silo.Worker side by side, and against Dramatiq on Redis",
        "Embedded enqueue vs enqueue over gRPC (single and enqueue_many of 1,000), then N no-op "
        "async tasks worked by one silo.Worker over gRPC and embedded, and by Dramatiq (its "
        "default worker processes) on a local redis-server with AOF everysec: jobs/s, CPU per "
        "job, and the ratios (BENCHMARKS.md).",
        _python_api,
    ),
    ScenarioSpec(
        "ceiling",
        "Silo's jobs/s as a ratio to a no-op server on the same stack, measured in the same run",
        "The headline figures. For each workload (single Enqueue, burn-down with one RPC per "
        "job, batched burn-down, EnqueueBatch) runs the phases against the ceiling, a no-op "
        "server that answers fixed replies through the gRPC stack of `silo serve` (grpclib, "
        "uvloop, the raw codec) in its own process, then against Silo, and prints Silo's "
        "jobs/s as a ratio to the ceiling's: a figure that survives a change of machine "
        "better than jobs/s do.",
        _ceiling,
    ),
    ScenarioSpec(
        "enqueue",
        "N clients x single Enqueue, then EnqueueBatch of B: jobs/s and latency",
        "Closed-loop producers: each client sends its next call when the previous one "
        "answered. One phase per --clients value with single Enqueue, then one phase with "
        "EnqueueBatch of --batch-size.",
        _enqueue,
    ),
    ScenarioSpec(
        "burn-down",
        "enqueue N no-op jobs, then W workers drain them: jobs/s per phase and end to end",
        "Phase 1 enqueues --jobs jobs (EnqueueBatch of --enqueue-batch); phase 2 runs "
        "--workers workers that lease up to --lease-batch tasks and report them with "
        "ReportTaskOutcomes until the queue is empty. --per-job uses one RPC per job instead.",
        _burn_down,
    ),
    ScenarioSpec(
        "steady",
        "fixed arrival rates with workers keeping up: enqueue->start/completion latency",
        "Open-loop producers enqueue at each --rates value for --duration seconds (the "
        "payload carries the send time); long-polling workers lease, record enqueue->start, "
        "report, and record enqueue->completion.",
        _steady,
    ),
    ScenarioSpec(
        "dispatch",
        "idle broker, long-polling workers: Enqueue's answer -> worker receives the task",
        "Workers park in LeaseTasks(wait_ms); a producer enqueues one job every "
        "--interval-ms; the latency is from Enqueue's answer (and from its call) to the worker "
        "receiving the task.",
        _dispatch,
    ),
    ScenarioSpec(
        "backlog",
        "enqueue/lease latency and broker RSS as the queue grows (0, 1M, 5M, 10M)",
        "Fills the queue to each --steps value with EnqueueBatch, waits --settle-s, then "
        "probes single Enqueue, LeaseTasks(max_tasks=1) and ReportTaskOutcome latency "
        "(sequential, --probes each) and reads the broker's RSS.",
        _backlog,
    ),
    ScenarioSpec(
        "tenants",
        "many small tenants next to one huge backlog: the small tenants' dispatch latency",
        "Enqueues --big-tenant-jobs for one tenant, then workers drain while the jobs of "
        "--tenants small tenants arrive at --small-rate; reports the small tenants' "
        "enqueue->start latency (fairness) and the big tenant's throughput meanwhile.",
        _tenants,
    ),
    ScenarioSpec(
        "stream-enqueue",
        "one producer on EnqueueStream (64 in flight) against single Enqueue from 64 clients",
        "A unary phase (--clients closed-loop clients, single Enqueue) and a stream phase "
        "(--streams EnqueueStream producers in one process, each keeping --window requests in "
        "flight), each for --duration seconds: jobs/s, per-request latency, the broker's CPU per "
        "job, and the stream's factor over unary. With --ceiling each runs against the no-op "
        "server first.",
        _stream_enqueue,
    ),
    ScenarioSpec(
        "session",
        "workers on WorkerSession against LeaseTasks + one ReportTaskOutcome per task",
        "Push latency of idle long-polls and idle sessions (Enqueue's answer -> the worker "
        "holds the task), then two burn-downs of --jobs jobs, one outcome per task: --workers "
        "unary workers (LeaseTasks of --credits, one ReportTaskOutcome per task) and --workers "
        "sessions holding --credits tasks. Drain and end-to-end jobs/s, the broker's CPU per "
        "job, and the sessions' factor over unary. With --ceiling each drain runs against the "
        "no-op server first.",
        _session,
    ),
    ScenarioSpec(
        "cost",
        "object-store requests per 1,000 jobs at a steady rate, and $ per million jobs",
        "Runs a steady phase at --rate and reads Admin/GetStats before and after: requests by "
        "kind per 1,000 completed jobs and $ per million jobs at S3 Standard prices "
        "(PUT/COPY/LIST $0.005 per 1,000, GET/HEAD $0.0004 per 1,000, DELETE free).",
        _cost,
    ),
    ScenarioSpec(
        "flow",
        "flow control: per-key rate-limit accuracy, leases beside 1M waiting jobs, schedules",
        "rate: jobs over many rate-limit keys, drained by long-polling workers; the achieved "
        "rate per key (server timestamps) against its limit. waiting: lease latency on an "
        "empty broker, then with many jobs waiting for rate-limit tokens. schedules: many "
        "schedules ticking every second; tick lateness and the broker's CPU.",
        _flow,
    ),
    ScenarioSpec(
        "ops",
        "operator reads as the store grows: ListJobs by status, metadata and queue, "
        "ListQueues, GetJob",
        "Makes --failed FAILED jobs tagged customer=c42, fills one queue to each --steps "
        "size and probes ListJobs(status=FAILED, page 50), ListJobs(metadata customer=c42, "
        "page 50), ListJobs(queue, newest page of 50), ListQueues and GetJob (sequential, "
        "--probes each); the last row is each probe's latency at the largest step as a ratio "
        "to the smallest.",
        _ops,
    ),
    ScenarioSpec(
        "cluster",
        "burn-down and single Enqueue through 1, 2 and 3 cluster nodes; the forwarding cost",
        "Starts etcd and, for each --nodes count, a fresh cluster of that many `silo serve` "
        "nodes on one local store of --shards shards. Per cluster: a burn-down of --jobs jobs "
        "(each load process on one node, with a tenant that node owns) with the nodes' CPU "
        "per job, and single Enqueue at --clients clients sent to their tenant's owner (calls/s "
        "and the ratio to one node); with 2+ nodes the same with every call sent to a node "
        "that does not own the tenant (forwarded): the CPU each forward adds per call.",
        _cluster,
    ),
)
