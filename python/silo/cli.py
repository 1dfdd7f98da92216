"""The `silo` command: `silo serve` runs the broker; `silo worker`, `silo enqueue`, `silo jobs`
and `silo schedules` run tasks and look at jobs and schedules (python/silo/commands.py);
`silo bench SCENARIO` measures a broker.

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

from silo import config
from silo.config import ConfigError, ServeConfig

__all__ = ["main"]

EXIT_USAGE: Final = 2


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
    for setting in config.settings():
        if setting.kind.switch:
            serve.add_argument(
                setting.flag,
                dest=setting.name,
                action="store_const",
                const="1",
                help=setting.help_text,
            )
        else:
            serve.add_argument(
                setting.flag, dest=setting.name, metavar=setting.metavar, help=setting.help_text
            )
    from silo import bench  # light: argparse only, no grpcio
    from silo.commands import add_commands

    add_commands(commands)
    bench.register(commands)
    from silo import cluster_cli

    cluster_cli.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `silo` console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "bench":
        from silo import bench

        return bench.run(args)
    if args.command in ("worker", "enqueue", "jobs", "schedules"):
        from silo.commands import run_command

        code = run_command(args)
        if "silo._native" in sys.modules:
            _exit_now(code)
        return code
    if args.command == "cluster":
        from silo import cluster_cli

        return cluster_cli.run(args)
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse rejects the rest


def _serve(args: argparse.Namespace) -> int:
    flags = {s.name: getattr(args, s.name) for s in config.settings()}
    try:
        serve_config = ServeConfig.from_sources(flags, os.environ)
    except ConfigError as exc:
        print(f"silo serve: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    # The native module reads its log level from the environment when the broker opens
    # (tracing spells "warning" as "warn").
    os.environ["SILO_LOG_LEVEL"] = (
        "warn" if serve_config.log_level == "warning" else serve_config.log_level
    )
    logging.basicConfig(
        level=serve_config.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Imported here so `import silo` and `silo --help` work before the native module is built.
    # uvloop's C event loop and transports cut the per-call cost of the Python side.
    import uvloop

    from silo.server.app import run

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        code = runner.run(run(serve_config))
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
