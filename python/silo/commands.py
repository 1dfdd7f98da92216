"""The `silo worker`, `silo enqueue` and `silo jobs` commands, and the entry of `silo schedules`
(python/silo/commands_schedules.py); python/silo/cli.py parses them.

Each reaches a broker with `--connect HOST:PORT` (a `silo serve`; the default is
127.0.0.1:7070) or `--store URL` (the broker opened in this process: with `silo worker`, the
broker and the worker run in one process). Tables and progress bars are drawn with rich;
`--json` prints JSON instead. Errors are one line on stderr (exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import enum
import importlib
import json
import ssl
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from silo import errors
from silo.api import Api
from silo.config import DEFAULT_LISTEN, ConfigError
from silo.tasks import TASK_METADATA_KEY, TaskDef
from silo.types import Job, JobStatus, NewJob

__all__ = ["add_commands", "run_command"]

EXIT_OK = 0
EXIT_FAILURE = 1


def add_broker_arguments(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--connect",
        metavar="HOST:PORT",
        action="append",
        help=f"a running broker (default {DEFAULT_LISTEN}); the nodes of a cluster as "
        "HOST:PORT,HOST:PORT or a repeated --connect (calls go to the node of their tenant; "
        "`silo worker` leases from every node)",
    )
    where.add_argument(
        "--store", metavar="URL", help="open the broker on this store in this process instead"
    )
    p.add_argument("--lease-ms", type=int, default=None, help="with --store: the lease duration")
    add_security_arguments(p)


def add_security_arguments(p: argparse.ArgumentParser) -> None:
    """--token and the TLS flags of a client (`client_tls` reads them)."""
    sec = p.add_argument_group("with --connect: token and TLS (docs/security.md)")
    sec.add_argument("--token", help="bearer token (default $SILO_TOKEN)")
    sec.add_argument(
        "--tls", action="store_true", help="connect over TLS, trusting the system's CAs"
    )
    sec.add_argument("--tls-ca", metavar="PEM", help="connect over TLS, trusting these CAs")
    sec.add_argument("--tls-cert", metavar="PEM", help="client certificate (mTLS)")
    sec.add_argument("--tls-key", metavar="PEM", help="key of --tls-cert")


def client_tls(args: argparse.Namespace) -> ssl.SSLContext | bool | None:
    """The `tls=` of `silo.connect` the flags ask for (None: plaintext). ConfigError for a file
    that cannot be used."""
    from silo.tls import tls_context

    if args.tls_ca or args.tls_cert or args.tls_key:
        return tls_context(ca=args.tls_ca, cert=args.tls_cert, key=args.tls_key)
    return True if args.tls else None


def add_job_arguments(p: argparse.ArgumentParser) -> None:
    """The fields of a job to enqueue (`silo enqueue`, the template of `silo schedules put`);
    `job_of` reads them."""
    p.add_argument("--queue", default="")
    p.add_argument("--tenant", default="")
    p.add_argument("--priority", type=int, default=0)
    p.add_argument("--payload", default="", help="the payload as text")
    p.add_argument(
        "--task",
        help="a task name (module.function): the payload is then --args/--kwargs, and the "
        "task's defaults (queue, retry, ...) apply when its module imports here",
    )
    p.add_argument("--args", default="[]", help="the task's positional args (JSON list)")
    p.add_argument("--kwargs", default="{}", help="the task's keyword args (JSON object)")
    p.add_argument(
        "--metadata", action="append", default=[], metavar="KEY=VALUE", help="repeatable"
    )


def add_commands(commands: Any) -> None:
    """Add `worker`, `enqueue`, `jobs` and `schedules` to the `silo` command's subparsers."""
    worker = commands.add_parser(
        "worker",
        help="run tasks",
        description="Run the tasks of MODULE (every @silo.task in it, or the task or list of "
        "tasks MODULE:ATTR names) until SIGTERM or SIGINT; running tasks then get --grace "
        "seconds to finish.",
    )
    worker.add_argument("target", metavar="MODULE[:ATTR]")
    add_broker_arguments(worker)
    worker.add_argument("--concurrency", type=int, default=10, help="tasks at once (default 10)")
    worker.add_argument(
        "--grace", type=float, default=30.0, help="seconds to finish at shutdown (default 30)"
    )
    worker.add_argument("--queues", help="comma-separated queues (default: the tasks' queues)")
    worker.add_argument("--worker-id", help="default HOST-PID-RANDOM")

    enqueue = commands.add_parser(
        "enqueue",
        help="enqueue jobs",
        description="Enqueue a job (or --count copies); prints each id (with --count, a "
        "progress bar and the count).",
    )
    add_broker_arguments(enqueue)
    enqueue.add_argument("--id", default="")
    add_job_arguments(enqueue)
    enqueue.add_argument("--count", type=int, default=1, help="enqueue this many copies")

    jobs = commands.add_parser("jobs", help="look at and act on jobs")
    actions = jobs.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="jobs matching filters, newest first")
    add_broker_arguments(listing)
    listing.add_argument("--tenant", default="")
    listing.add_argument("--queue", default="")
    listing.add_argument("--status", default="", help="comma-separated, e.g. FAILED,CANCELLED")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    for name, text in (
        ("show", "one job with its attempts"),
        ("cancel", "cancel a job"),
        ("restart", "run a FAILED or CANCELLED job again"),
        ("wait", "wait until a job ends"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("id")
        action.add_argument("--tenant", default="")
        add_broker_arguments(action)
        action.add_argument("--json", action="store_true")
        if name == "wait":
            action.add_argument("--timeout", type=float, default=300.0, help="seconds")

    from silo.commands_schedules import add_schedules_command

    add_schedules_command(commands)


def run_command(args: argparse.Namespace) -> int:
    """Run `worker`, `enqueue`, `jobs` or `schedules` as parsed; the exit code."""
    import uvloop

    command: Callable[[argparse.Namespace], Coroutine[Any, Any, int]] = {
        "worker": _worker,
        "enqueue": _enqueue,
        "jobs": _jobs,
        "schedules": _schedules,
    }[args.command]
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(command(args))
    except (errors.SiloError, ConfigError, OSError, ValueError, ImportError) as exc:
        print(f"silo {args.command}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_FAILURE


async def _schedules(args: argparse.Namespace) -> int:
    from silo.commands_schedules import run_schedules

    return await run_schedules(args)


@asynccontextmanager
async def api_of(args: argparse.Namespace) -> AsyncIterator[Api]:
    import silo

    api: Api
    if args.store:
        settings = {} if args.lease_ms is None else {"lease_ms": args.lease_ms}
        api = await silo.open(args.store, **settings)
    else:
        api = await silo.connect(addresses_of(args.connect), token=args.token, tls=client_tls(args))
    try:
        yield api
    finally:
        await api.close()


def addresses_of(connect: Sequence[str] | None) -> list[str]:
    """The addresses of `--connect` (repeated, each possibly comma-separated)."""
    found = [a.strip() for flag in connect or () for a in flag.split(",") if a.strip()]
    return found or [DEFAULT_LISTEN]


# ---------------------------------------------------------------------------- worker


def load_tasks(target: str) -> list[TaskDef[Any, Any]]:
    """The tasks `MODULE[:ATTR]` names: every TaskDef of MODULE, or ATTR (a task or an
    iterable of tasks). ImportError / ValueError when there are none."""
    module_name, _, attr = target.partition(":")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # like `python -m`: modules of the current directory
    module = importlib.import_module(module_name)
    if attr:
        value = getattr(module, attr)
        found = [value] if isinstance(value, TaskDef) else list(value)
    else:
        found = [v for v in vars(module).values() if isinstance(v, TaskDef)]
    if not found or not all(isinstance(t, TaskDef) for t in found):
        raise ValueError(f"{target}: no @silo.task found")
    return found


async def _worker(args: argparse.Namespace) -> int:
    import logging

    from silo.worker import Worker

    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tasks = load_tasks(args.target)
    async with api_of(args) as api:
        worker = Worker(
            api,
            tasks=tasks,
            concurrency=args.concurrency,
            grace=args.grace,
            queues=args.queues.split(",") if args.queues else None,
            worker_id=args.worker_id,
        )
        ready_line = (
            f"worker {worker.worker_id}: {len(tasks)} task(s) on queues {', '.join(worker.queues)}"
        )
        # Printed once SIGTERM/SIGINT are handled: a signal sent as soon as the line shows must
        # stop the worker gracefully, not kill it with the default action.
        await worker.run(on_ready=lambda: print(ready_line, flush=True))
    return EXIT_OK


# ---------------------------------------------------------------------------- enqueue


def job_of(args: argparse.Namespace, *, id: str = "") -> NewJob:
    """The job `add_job_arguments`' flags describe."""
    metadata = dict(_pair(m) for m in args.metadata)
    job = NewJob(payload=args.payload.encode())
    if args.task:
        task_args, task_kwargs = json.loads(args.args), json.loads(args.kwargs)
        definition = _find_task(args.task)
        if definition is not None:  # the task's own defaults: queue, retry, priority, ...
            job = definition.new_job(*task_args, **task_kwargs)
        else:
            payload = {"args": task_args, "kwargs": task_kwargs}
            job = NewJob(payload=json.dumps(payload).encode())
        metadata = {**job.metadata, TASK_METADATA_KEY: args.task, **metadata}
    return dataclasses.replace(
        job,
        id=id or job.id,
        tenant=args.tenant or job.tenant,
        queue=args.queue or job.queue,
        priority=args.priority or job.priority,
        metadata=metadata,
    )


async def _enqueue(args: argparse.Namespace) -> int:
    job = job_of(args, id=args.id)
    async with api_of(args) as api:
        if args.count == 1:
            print(await api.enqueue(**_fields(job)))
            return EXIT_OK
        from rich.progress import Progress

        done = failed = 0
        with Progress() as progress:
            bar = progress.add_task("enqueue", total=args.count)
            while done + failed < args.count:
                n = min(1000, args.count - done - failed)
                results = await api.enqueue_many([job] * n)
                ok = sum(r.ok for r in results)
                done, failed = done + ok, failed + n - ok
                progress.update(bar, advance=n)
        print(f"enqueued {done} job(s), {failed} refused")
        return EXIT_OK if not failed else EXIT_FAILURE


def _find_task(name: str) -> TaskDef[Any, Any] | None:
    """The task `name` (`module.function`) when its module imports here, else None."""
    module_name, _, attr = name.rpartition(".")
    if not module_name:
        return None
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        value = getattr(importlib.import_module(module_name), attr, None)
    except ImportError:
        return None
    return value if isinstance(value, TaskDef) else None


def _fields(job: NewJob) -> dict[str, Any]:
    return {f.name: getattr(job, f.name) for f in dataclasses.fields(job)}


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"--metadata {text!r}: expected KEY=VALUE")
    return key, value


# ---------------------------------------------------------------------------- jobs


async def _jobs(args: argparse.Namespace) -> int:
    async with api_of(args) as api:
        if args.action == "list":
            statuses = [_status(s) for s in args.status.split(",") if s.strip()]
            found: list[Job] = []
            async for job in api.list_jobs(
                tenant=args.tenant,
                queue=args.queue,
                statuses=statuses,
                page_size=min(args.limit, 1000),
            ):
                found.append(job)
                if len(found) >= args.limit:
                    break
            _print_jobs(found, as_json=args.json)
            return EXIT_OK
        if args.action == "show":
            job = await api.get_job(id=args.id, tenant=args.tenant, include_attempts=True)
        elif args.action == "cancel":
            await api.cancel(id=args.id, tenant=args.tenant)
            job = await api.get_job(id=args.id, tenant=args.tenant, include_attempts=True)
        elif args.action == "restart":
            job = await api.restart_job(id=args.id, tenant=args.tenant)
        else:
            job = await api.wait_job(
                id=args.id, tenant=args.tenant, timeout_ms=int(min(args.timeout, 300) * 1000)
            )
        _print_job(job, as_json=args.json)
        return EXIT_OK if args.action != "wait" or job.terminal else EXIT_FAILURE


def _status(name: str) -> JobStatus:
    try:
        return JobStatus[name.strip().upper()]
    except KeyError:
        names = ", ".join(s.name for s in JobStatus if s is not JobStatus.UNSPECIFIED)
        raise ValueError(f"--status: no status {name.strip()!r} (one of {names})") from None


def to_json(value: Any) -> Any:
    """A silo.types value as JSON-ready data: enums by name, bytes as UTF-8 text (or
    `{"base64": ...}` when they are not text), datetimes left out (the `_ms` fields say it)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(value).decode()}
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def text_of(data: bytes, limit: int = 60) -> str:
    """Bytes for a table cell: as JSON text, cut at `limit` characters."""
    text = json.dumps(to_json(data)) if data else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def print_rows(
    values: Sequence[Any],
    columns: Sequence[str],
    row: Callable[[Any], Sequence[str]],
    *,
    as_json: bool,
) -> None:
    """`values` as a JSON list, or as a table of `columns` with `row(value)` for each."""
    if as_json:
        print(json.dumps([to_json(v) for v in values], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns)
    for value in values:
        table.add_row(*row(value))
    Console().print(table)


def _print_jobs(jobs: list[Job], *, as_json: bool) -> None:
    def row(job: Job) -> Sequence[str]:
        created = job.created_at.isoformat(timespec="seconds") if job.created_at else ""
        task = job.metadata.get(TASK_METADATA_KEY, "")
        return (
            job.id,
            job.tenant,
            job.queue,
            job.status.name,
            str(job.attempt_count),
            created,
            task,
        )

    columns = ("id", "tenant", "queue", "status", "attempts", "created", "task")
    print_rows(jobs, columns, row, as_json=as_json)


def print_fields(value: Any, fields: Sequence[tuple[str, str]], *, as_json: bool) -> None:
    """`value` as JSON, or `fields` (name, text) as a two-column table."""
    if as_json:
        print(json.dumps(to_json(value), indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("field", "value", show_header=False)
    for name, text in fields:
        table.add_row(name, text)
    Console().print(table)


def _print_job(job: Job, *, as_json: bool) -> None:
    fields = [
        (name, value.name if isinstance(value, enum.Enum) else str(value))
        for name in ("id", "tenant", "queue", "priority", "status", "attempt_count")
        for value in (getattr(job, name),)
    ]
    fields += [("payload", text_of(job.payload)), ("metadata", json.dumps(dict(job.metadata)))]
    if job.result:
        fields.append(("result", text_of(job.result)))
    if job.last_failure is not None:
        fields.append(("last failure", f"{job.last_failure.code}: {job.last_failure.message}"))
    print_fields(job, fields, as_json=as_json)
    if job.attempts and not as_json:
        from rich.console import Console
        from rich.table import Table

        attempts = Table("attempt", "worker", "status", "result / failure")
        for a in job.attempts:
            outcome = (
                text_of(a.result) if a.failure is None else f"{a.failure.code}: {a.failure.message}"
            )
            attempts.add_row(str(a.attempt), a.worker_id, a.status.name, outcome)
        Console().print(attempts)
