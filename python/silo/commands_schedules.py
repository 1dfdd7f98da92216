"""`silo schedules list|show|put|delete`: the schedules of SPEC's flow control (docs/api.md,
"Schedules") from the command line, through `silo.Api` like the other commands
(python/silo/commands.py: `--connect` or `--store`, rich tables or `--json`, one-line errors).

`put` takes the template job with the flags of `silo enqueue` (`--queue`, `--task`, `--args`,
`--payload`, ...) and the schedule's own: `--cron` or `--every-ms`, `--timezone`,
`--overlap`, `--catch-up`, `--paused`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from silo.commands import (
    EXIT_OK,
    add_broker_arguments,
    add_job_arguments,
    api_of,
    job_of,
    print_fields,
    print_rows,
    text_of,
)
from silo.tasks import TASK_METADATA_KEY
from silo.types import CatchUp, Overlap, Schedule

__all__ = ["add_schedules_command", "run_schedules"]


def add_schedules_command(commands: Any) -> None:
    """Add `schedules` (list, show, put, delete) to the `silo` command's subparsers."""
    schedules = commands.add_parser(
        "schedules",
        help="look at and change cron and interval schedules",
        description="Each tick of a schedule enqueues one job `sched:<name>:<tick ms>` made "
        "from its template job.",
    )
    actions = schedules.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the schedules of a tenant, by name")
    add_broker_arguments(listing)
    listing.add_argument("--tenant", default="")
    listing.add_argument("--json", action="store_true")

    show = actions.add_parser("show", help="one schedule with its next run")
    show.add_argument("name")
    show.add_argument("--tenant", default="")
    add_broker_arguments(show)
    show.add_argument("--json", action="store_true")

    put = actions.add_parser(
        "put",
        help="create or replace a schedule",
        description="Create or replace the schedule NAME (by tenant and name). Exactly one of "
        "--cron and --every-ms. The job each tick enqueues is given as to `silo enqueue`.",
    )
    put.add_argument("name")
    add_broker_arguments(put)
    add_job_arguments(put)
    when = put.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help="5 or 6 fields, or a name such as @daily")
    when.add_argument("--every-ms", type=int, help="an interval in milliseconds")
    put.add_argument("--timezone", default="", help="IANA name for --cron (default UTC)")
    put.add_argument(
        "--overlap",
        choices=[o.name.lower() for o in Overlap],
        default="allow",
        help="a tick while the previous job is not done: allow (default) or skip",
    )
    put.add_argument(
        "--catch-up",
        choices=[c.name.lower() for c in CatchUp],
        default="one",
        help="ticks missed while no broker ran: one (default), none or all",
    )
    put.add_argument("--paused", action="store_true", help="store it paused (no ticks)")
    put.add_argument("--json", action="store_true")

    delete = actions.add_parser("delete", help="remove a schedule (its jobs stay)")
    delete.add_argument("name")
    delete.add_argument("--tenant", default="")
    add_broker_arguments(delete)


async def run_schedules(args: argparse.Namespace) -> int:
    """Run `silo schedules ACTION` as parsed; the exit code (errors raise, as in
    commands.run_command)."""
    async with api_of(args) as api:
        if args.action == "list":
            found = [s async for s in api.list_schedules(tenant=args.tenant)]
            _print_schedules(found, as_json=args.json)
        elif args.action == "show":
            schedule = await api.get_schedule(name=args.name, tenant=args.tenant)
            _print_schedule(schedule, as_json=args.json)
        elif args.action == "put":
            stored = await api.put_schedule(_schedule_of(args))
            _print_schedule(stored, as_json=args.json)
        else:
            await api.delete_schedule(name=args.name, tenant=args.tenant)
            print(f"deleted schedule {args.name}")
    return EXIT_OK


def _schedule_of(args: argparse.Namespace) -> Schedule:
    job = job_of(args)
    return Schedule(
        name=args.name,
        tenant=job.tenant,
        job=job,
        cron=args.cron or "",
        interval_ms=args.every_ms or 0,
        timezone=args.timezone,
        paused=args.paused,
        overlap=Overlap[args.overlap.upper()],
        catch_up=CatchUp[args.catch_up.upper()],
    )


def _when(schedule: Schedule) -> str:
    if schedule.cron:
        return f"{schedule.cron} ({schedule.timezone or 'UTC'})"
    return f"every {schedule.interval_ms} ms"


def _next_run(schedule: Schedule) -> str:
    if schedule.paused:
        return "paused"
    at = schedule.next_run_at
    return at.isoformat(timespec="seconds") if at else ""


def _print_schedules(schedules: list[Schedule], *, as_json: bool) -> None:
    def row(s: Schedule) -> Sequence[str]:
        task = s.job.metadata.get(TASK_METADATA_KEY, "")
        return (s.name, s.tenant, _when(s), _next_run(s), s.job.queue, task, s.last_job_id)

    columns = ("name", "tenant", "when", "next run", "queue", "task", "last job")
    print_rows(schedules, columns, row, as_json=as_json)


def _print_schedule(s: Schedule, *, as_json: bool) -> None:
    fields = (
        ("name", s.name),
        ("tenant", s.tenant),
        ("when", _when(s)),
        ("next run", _next_run(s)),
        ("overlap", s.overlap.name),
        ("catch up", s.catch_up.name),
        ("last job", s.last_job_id),
        ("queue", s.job.queue),
        ("priority", str(s.job.priority)),
        ("metadata", json.dumps(dict(s.job.metadata))),
        ("payload", text_of(s.job.payload)),
    )
    print_fields(s, fields, as_json=as_json)
