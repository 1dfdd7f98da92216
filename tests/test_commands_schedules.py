"""`silo schedules list|show|put|delete` (python/silo/commands_schedules.py) as a user runs
them: child processes against a real `silo serve`, checked against what the typed API reads
back."""

from __future__ import annotations

import json
from pathlib import Path

import silo
from conftest import MakeServer
from silo import CatchUp, Overlap
from test_commands import silo_cmd


async def test_schedules_commands(make_server: MakeServer, tmp_path: Path) -> None:
    server = await make_server()
    connect = ("--connect", server.address)
    put = silo_cmd(
        tmp_path,
        "schedules",
        "put",
        "report",
        *connect,
        "--every-ms",
        "60000",
        "--queue",
        "reports",
        "--task",
        "app.tasks.report",
        "--args",
        '["daily"]',
        "--metadata",
        "k=v",
        "--json",
    )
    assert put.returncode == 0, put.stderr
    stored = json.loads(put.stdout)
    assert stored["name"] == "report" and stored["interval_ms"] == 60000
    assert stored["job"]["queue"] == "reports"
    assert stored["job"]["metadata"] == {"silo.task": "app.tasks.report", "k": "v"}
    assert stored["next_run_at_ms"] > 0

    nightly = silo_cmd(
        tmp_path,
        "schedules",
        "put",
        "nightly",
        *connect,
        "--cron",
        "0 3 * * *",
        "--timezone",
        "Europe/Berlin",
        "--overlap",
        "skip",
        "--catch-up",
        "none",
        "--paused",
        "--queue",
        "batch",
        "--payload",
        "go",
    )
    assert nightly.returncode == 0, nightly.stderr
    assert "0 3 * * * (Europe/Berlin)" in nightly.stdout and "paused" in nightly.stdout

    async with await silo.connect(server.address) as api:
        read = await api.get_schedule(name="nightly")
        assert (read.cron, read.timezone, read.paused) == ("0 3 * * *", "Europe/Berlin", True)
        assert (read.overlap, read.catch_up) == (Overlap.SKIP, CatchUp.NONE)
        assert (read.job.queue, read.job.payload) == ("batch", b"go")
        report = await api.get_schedule(name="report")
        assert json.loads(report.job.payload) == {"args": ["daily"], "kwargs": {}}

    # rich draws for 80 columns when its output is not a terminal: room for every column.
    table = silo_cmd(tmp_path, "schedules", "list", *connect, env={"COLUMNS": "200"})
    assert table.returncode == 0, table.stderr
    assert "nightly" in table.stdout and "every 60000 ms" in table.stdout
    listed = silo_cmd(tmp_path, "schedules", "list", *connect, "--json")
    assert [s["name"] for s in json.loads(listed.stdout)] == ["nightly", "report"]
    shown = silo_cmd(tmp_path, "schedules", "show", "report", *connect, "--json")
    assert json.loads(shown.stdout) == stored

    deleted = silo_cmd(tmp_path, "schedules", "delete", "report", *connect)
    assert (deleted.returncode, deleted.stdout.strip()) == (0, "deleted schedule report")
    for gone in (
        silo_cmd(tmp_path, "schedules", "show", "report", *connect),
        silo_cmd(tmp_path, "schedules", "delete", "report", *connect),
    ):
        assert gone.returncode == 1
        assert gone.stderr.startswith("silo schedules: error: ") and gone.stderr.count("\n") == 1
    left = silo_cmd(tmp_path, "schedules", "list", *connect, "--json")
    assert [s["name"] for s in json.loads(left.stdout)] == ["nightly"]


async def test_schedules_put_refuses_bad_input(make_server: MakeServer, tmp_path: Path) -> None:
    server = await make_server()
    connect = ("--connect", server.address)
    bad_cron = silo_cmd(tmp_path, "schedules", "put", "s", *connect, "--cron", "61 * * * *")
    assert bad_cron.returncode == 1
    assert bad_cron.stderr.startswith("silo schedules: error: ") and "cron" in bad_cron.stderr
    bad_zone = silo_cmd(
        tmp_path, "schedules", "put", "s", *connect, "--cron", "@daily", "--timezone", "Mars/Base"
    )
    assert bad_zone.returncode == 1 and "timezone" in bad_zone.stderr
    both = silo_cmd(
        tmp_path, "schedules", "put", "s", *connect, "--cron", "@daily", "--every-ms", "5"
    )
    assert both.returncode == 2 and "not allowed with" in both.stderr
    neither = silo_cmd(tmp_path, "schedules", "put", "s", *connect)
    assert neither.returncode == 2
    listed = silo_cmd(tmp_path, "schedules", "list", *connect, "--json")
    assert json.loads(listed.stdout) == []  # nothing was stored


def test_schedules_on_a_store_of_their_own(tmp_path: Path) -> None:
    """With --store the broker runs in the command's process: a schedule put by one command is
    there for the next."""
    store = ("--store", str(tmp_path / "store"))
    put = silo_cmd(tmp_path, "schedules", "put", "tick", *store, "--every-ms", "1000", "--json")
    assert put.returncode == 0, put.stderr
    listed = silo_cmd(tmp_path, "schedules", "list", *store, "--json")
    assert [s["name"] for s in json.loads(listed.stdout)] == ["tick"]
