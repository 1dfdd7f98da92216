"""`silo bench SCENARIO`: the benchmark harness (see BENCHMARKS.md).

`register(subparsers)` adds the `bench` command to the `silo` parser; `run(args)` runs it.
Importing this package is cheap and needs no grpcio: the load generator (grpcio + Google
protobuf) is imported only when a benchmark runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from silo.bench.options import SCENARIOS, add_common_arguments

__all__ = ["add_arguments", "register", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the SCENARIO subcommands (each with the common flags) to `parser`."""
    scenarios = parser.add_subparsers(dest="scenario", required=True, metavar="SCENARIO")
    for spec in SCENARIOS:
        sub = scenarios.add_parser(spec.name, help=spec.help, description=spec.description)
        spec.add_arguments(sub)
        add_common_arguments(sub)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add `bench` to an argparse subparsers object (e.g. the `silo` command's)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="run a benchmark scenario against a broker",
        description="Benchmark Silo: each scenario prints progress, then its settings and a "
        "summary table (--json for machine-readable output). Without --target it starts "
        "`silo serve` on a fresh temporary store.",
    )
    add_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the benchmark chosen by `args` (parsed by a parser set up with `register`)."""
    try:
        import grpc  # noqa: F401
        from google.protobuf.internal import api_implementation
    except ImportError as exc:
        print(
            f"silo bench: needs grpcio and protobuf ({exc}); pip install grpcio protobuf",
            file=sys.stderr,
        )
        return 1
    if api_implementation.Type() == "python":
        print(
            "silo bench: warning: the pure-Python protobuf runtime is in use; the load "
            "generator may be the bottleneck",
            file=sys.stderr,
        )
    if args.token:
        # The load generators' clients (bench/rpc.py) read it, in this process and its children.
        os.environ["SILO_TOKEN"] = args.token
    if args.tls_ca:
        from silo.bench.rpc import TLS_CA_ENV

        os.environ[TLS_CA_ENV] = os.path.abspath(args.tls_ca)
    from silo.bench.procs import PhaseError
    from silo.bench.runner import main
    from silo.testing import ServerStartError

    try:
        return main(args)
    except ServerStartError as exc:
        print(f"silo bench: could not start the broker: {exc}", file=sys.stderr)
        return 1
    except PhaseError as exc:
        print(f"silo bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("silo bench: interrupted", file=sys.stderr)
        return 130
