"""Runs one scenario: broker up, settings recorded, phases run with progress, summary and JSON.

Each scenario module (silo.bench.scenarios.<name>) has `run(bench: Bench) -> None`, which runs
phases through `bench.phase(...)` and adds rows to `bench.report`. With the `ceiling` scenario or
`--ceiling`, `bench.ceiling` is the no-op server (noop.py) in its own process, started next to
the broker for the whole run; a phase runs against it with `bench.phase(..., target=bench.ceiling)`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import importlib.metadata
import os
import platform
import sys
import uuid
from collections.abc import Sequence
from typing import Any, Final

from silo.bench.options import SCENARIOS
from silo.bench.procs import DONE, PhaseResult, Progress, StopWhen, Task, run_phase
from silo.bench.report import Report
from silo.bench.target import CeilingTarget, Perf, PhaseTarget, PySpy, Target

__all__ = ["Bench", "main"]

#: Flags recorded in the settings under `scenario_*` (all others are common flags).
_COMMON: Final = {
    "command",
    "scenario",
    "target",
    "store",
    "flush_interval_ms",
    "serve_arg",
    "broker_pid",
    "keep_store",
    "json",
    "progress_s",
    "py_spy",
    "py_spy_native",
    "py_spy_rate",
    "func",
}


class Bench:
    """What a scenario works with: flags, the broker, the report, and the phase runner."""

    def __init__(
        self,
        args: argparse.Namespace,
        target: Target,
        report: Report,
        out: Any,
        ceiling: CeilingTarget | None = None,
    ):
        self.args = args
        self.target = target
        self.ceiling = ceiling
        self.report = report
        self.out = out
        self.progress = Progress(out, args.progress_s)
        self.queue: str = args.queue or f"bench-{uuid.uuid4().hex[:8]}"
        self.cores = os.cpu_count() or 1

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def split(self, clients: int, procs: int | None = None) -> list[int]:
        """Clients per load-generator process: `procs` (default --procs, else the machine's
        cores) processes, never more than clients, the clients spread evenly."""
        n = max(1, min(clients, procs or self.args.procs or self.cores))
        return [clients // n + (1 if i < clients % n else 0) for i in range(n)]

    def phase(
        self,
        name: str,
        tasks: Sequence[Task],
        *,
        total: int | None = None,
        count_slot: int = DONE,
        unit: str = "jobs",
        stop_when: StopWhen | None = None,
        timeout_s: float | None = None,
        target: PhaseTarget | None = None,
        min_s: float = 0.0,
    ) -> PhaseResult:
        """Run one phase in load-generator processes (procs.run_phase), with progress lines,
        against `target` (default the broker; `self.ceiling` for the ceiling)."""
        server: PhaseTarget = self.target if target is None else target
        self.say(f"[{name}] starting: {len(tasks)} load-generator process(es)")
        result = run_phase(
            name,
            tasks,
            address=server.address,
            progress=self.progress,
            broker_cpu=server.cpu_seconds,
            broker_main_cpu=server.main_thread_cpu_seconds,
            broker_rss=lambda: server.rss_bytes() if server.pid else None,
            count_slot=count_slot,
            total=total,
            unit=unit,
            stop_when=stop_when,
            timeout_s=timeout_s,
            min_s=min_s,
        )
        extra = (
            f", {result.counters[2]:,} errors (first: {result.errors[:1]})" if result.errors else ""
        )
        self.say(f"[{name}] done in {result.wall_s:.2f}s{extra}")
        if result.timed_out:
            self.report.notes.append(f"{name}: stopped by its timeout")
        if result.errors:
            self.report.notes.append(
                f"{name}: {result.counters[2]:,} errors, e.g. {result.errors[0]}"
            )
        return result


def _machine() -> dict[str, Any]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": model, "os": platform.platform()}


def _versions() -> dict[str, Any]:
    import grpc
    from google.protobuf import __version__ as pb_version
    from google.protobuf.internal import api_implementation

    try:
        from silo import _native

        silo_version = getattr(_native, "__version__", "unknown")
    except ImportError:
        silo_version = "unknown"
    return {
        "silo": silo_version,
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "protobuf": f"{pb_version} ({api_implementation.Type()})",
        "server_stack": ", ".join(
            f"{name} {_dist_version(name)}" for name in ("grpclib", "uvloop")
        ),
    }


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def main(args: argparse.Namespace) -> int:
    """Run `silo bench SCENARIO` with parsed flags; the process exit code."""
    out = sys.stderr if args.json == "-" else sys.stdout
    spec = next(s for s in SCENARIOS if s.name == args.scenario)
    module = importlib.import_module(f"silo.bench.scenarios.{spec.name.replace('-', '_')}")
    report = Report(scenario=spec.name)
    report.settings["started_at"] = datetime.datetime.now(datetime.UTC).isoformat(
        timespec="seconds"
    )
    report.settings.update(_machine())
    report.settings.update(_versions())
    report.settings["loadgen"] = "grpcio sync clients in threads, spawned processes"
    for key, value in sorted(vars(args).items()):
        if key not in _COMMON and not callable(value):
            report.settings[key] = value
    spy: PySpy | None = None
    perf: Perf | None = None
    with contextlib.ExitStack() as stack:
        target = stack.enter_context(Target(args, out))
        report.settings.update(target.settings())
        ceiling: CeilingTarget | None = None
        if spec.name == "ceiling" or getattr(args, "ceiling", False):
            ceiling = stack.enter_context(CeilingTarget(args.payload_bytes, out))
            report.settings.update(ceiling.settings())
        bench = Bench(args, target, report, out, ceiling)
        report.settings["queue"] = bench.queue
        if args.py_spy:
            if target.pid is None:
                print(
                    "silo bench: --py-spy needs a broker started by the bench or --broker-pid",
                    file=sys.stderr,
                )
                return 2
            spy = PySpy(
                target.pid, args.py_spy, rate=args.py_spy_rate, native=args.py_spy_native, out=out
            )
        if args.perf:
            if target.pid is None:
                print(
                    "silo bench: --perf needs a broker started by the bench or --broker-pid",
                    file=sys.stderr,
                )
                return 2
            perf = Perf(target.pid, args.perf, rate=args.perf_rate, out=out)
        interrupted = False
        try:
            module.run(bench)
        except KeyboardInterrupt:
            # A long run stopped by hand still reports what it measured so far.
            interrupted = True
            report.notes.append("interrupted: the figures above are the phases that finished")
        finally:
            if spy is not None:
                report.extra["profile"] = spy.stop()
            if perf is not None:
                report.extra["perf"] = perf.stop()
    print(report.summary(), file=out, flush=True)
    if "profile" in report.extra:
        print(_profile_text(report.extra["profile"]), file=out, flush=True)
    if "perf" in report.extra:
        print(_perf_text(report.extra["perf"]), file=out, flush=True)
    if args.json == "-":
        print(report.to_json(), flush=True)
    elif args.json:
        with open(args.json, "w") as f:
            f.write(report.to_json() + "\n")
        print(f"wrote {args.json}", file=out, flush=True)
    return 130 if interrupted else 0


def _perf_text(perf: dict[str, Any]) -> str:
    lines = ["\n== perf: top native symbols by self time (% samples)"]
    lines += [f"  {pct:5.1f}%  {symbol}" for symbol, pct in perf["self"]]
    lines.append("== by inclusive time")
    lines += [f"  {pct:5.1f}%  {symbol}" for symbol, pct in perf["inclusive"]]
    return "\n".join(lines)


def _profile_text(profile: dict[str, Any]) -> str:
    if not profile.get("samples"):
        return "py-spy: no samples"
    lines = [f"\n== py-spy: {profile['samples']:,} samples; top frames by self time (% samples)"]
    lines += [f"  {pct:5.1f}%  {frame}" for frame, pct in profile["self"]]
    lines.append("== by inclusive time")
    lines += [f"  {pct:5.1f}%  {frame}" for frame, pct in profile["inclusive"]]
    return "\n".join(lines)
