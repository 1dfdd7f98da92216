"""The `silo` command: `silo serve` runs the broker; `silo bench SCENARIO` measures one.

Exit codes: 0 after a clean shutdown, 1 when the broker cannot start (store, address, native
module), 2 for bad usage or a bad setting. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import Final, NoReturn

from silo.config import DEFAULT_LISTEN, DEFAULT_STORE, LOG_LEVELS, ConfigError, ServeConfig, flag

__all__ = ["main"]

EXIT_USAGE: Final = 2

_SERVE_HELP: Final = {
    "store": f"store URL: a directory, file:///abs/path, memory:// or s3://bucket/prefix "
    f"(default {DEFAULT_STORE})",
    "listen": f"HOST:PORT to serve gRPC on; port 0 picks a free one (default {DEFAULT_LISTEN})",
    "lease_ms": "lease duration of a task without heartbeat, in ms (default 30000)",
    "flush_interval_ms": "SlateDB WAL flush interval in ms (default: the store's preset)",
    "max_payload_bytes": "largest job payload accepted, in bytes (default 1048576)",
    "log_level": f"one of {', '.join(LOG_LEVELS)} (default info)",
    "store_max_retries": "object-store retries per call before it fails with UNAVAILABLE "
    "(default 3)",
    "cache_bytes": "SlateDB in-memory block cache, in bytes (default 67108864)",
    "gc_interval_ms": "how often obsolete store files are collected, in ms (default 60000)",
    "gc_min_age_ms": "how old an obsolete store file must be to be deleted, in ms (default 300000)",
    "fault_injection": "let Admin.SetFaults inject object-store faults (tests only; "
    "SILO_FAULT_INJECTION=1)",
}
#: Serve flags that take no value: giving the flag means "true".
_SWITCHES: Final = frozenset({"fault_injection"})


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `silo`; every serve flag also reads SILO_<NAME>."""
    parser = argparse.ArgumentParser(
        prog="silo", description="Silo: a durable background-job broker on object storage."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the broker",
        description="Run the broker. Each flag can also be set by its environment variable "
        "SILO_<NAME> (e.g. SILO_LEASE_MS); a flag wins over the variable.",
    )
    for name, text in _SERVE_HELP.items():
        if name in _SWITCHES:
            serve.add_argument(flag(name), dest=name, action="store_const", const="1", help=text)
        else:
            metavar = name.split("_")[-1].upper()
            serve.add_argument(flag(name), dest=name, metavar=metavar, help=text)
    from silo import bench  # light: argparse only, no grpcio

    bench.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `silo` console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "bench":
        from silo import bench

        return bench.run(args)
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse rejects the rest


def _serve(args: argparse.Namespace) -> int:
    flags = {name: getattr(args, name) for name in _SERVE_HELP}
    try:
        config = ServeConfig.from_sources(flags, os.environ)
    except ConfigError as exc:
        print(f"silo serve: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    # The native module reads its log level from the environment when the broker opens
    # (tracing spells "warning" as "warn").
    os.environ["SILO_LOG_LEVEL"] = "warn" if config.log_level == "warning" else config.log_level
    logging.basicConfig(
        level=config.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Imported here so `import silo` and `silo --help` work before the native module is built.
    # uvloop's C event loop and transports cut the per-call cost of the Python side.
    import uvloop

    from silo.server.app import run

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        code = runner.run(run(config))
    if "silo._native" in sys.modules:
        _exit_now(code)
    return code


def _exit_now(code: int) -> NoReturn:
    """Flush the logs and standard streams, then exit without interpreter finalization.

    Why: worker threads of the native module's tokio runtime may still be dropping Python
    references when the interpreter finalizes, which aborts the process now and then with
    "PyGILState_Release: thread state ... must be current when releasing" (a known
    pyo3-async-runtimes limitation: its runtime cannot be shut down). The broker is closed and
    flushed by now, so nothing is lost by skipping finalization.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
