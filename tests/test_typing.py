"""mypy strict on a small user program of the public API: the package is typed (py.typed), and
`handle.result()` is typed as the task's return type."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

PROGRAM = textwrap.dedent(
    """
    import asyncio

    import silo


    @silo.task(queue="emails", retry=silo.RetryPolicy(max_retries=5), priority=50)
    async def send_email(ctx: silo.TaskContext, to: str, subject: str) -> dict[str, bool]:
        await ctx.heartbeat(cursor=b"page-3")
        return {"sent": True}


    @silo.task
    def add(a: int, b: int) -> int:
        return a + b


    async def main(api: silo.Api) -> None:
        handle = await send_email.enqueue(api, to="a@b.c", subject="hi")
        sent: dict[str, bool] = await handle.result(timeout=30)
        total = await (await add.enqueue(api, 1, 2)).result()
        reveal_type(total)
        job: silo.Job = await api.get_job(id=handle.id)
        status: silo.JobStatus = job.status
        await silo.Worker(api, tasks=[send_email, add], concurrency=100).run()
        print(sent, status)


    async def entry() -> None:
        async with await silo.open("memory://") as broker:
            await main(broker)
        async with await silo.connect("127.0.0.1:7070") as client:
            await main(client)
    """
)

WRONG = textwrap.dedent(
    """
    import silo


    @silo.task
    async def add(a: int, b: int) -> int:
        return a + b


    async def main(api: silo.Api) -> None:
        text: str = await (await add.enqueue(api, 1, 2)).result()
        await add.enqueue(api, "one", 2)
    """
)


def mypy(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    program = tmp_path / "user_program.py"
    program.write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(program)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )


def test_a_user_program_passes_mypy_strict(tmp_path: Path) -> None:
    done = mypy(tmp_path, PROGRAM)
    assert re.search(r'Revealed type is "(builtins\.)?int"', done.stdout), done.stdout
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert errors == [], done.stdout


def test_mypy_catches_wrong_types(tmp_path: Path) -> None:
    done = mypy(tmp_path, WRONG)
    assert done.returncode == 1
    assert 'Incompatible types in assignment (expression has type "int"' in done.stdout
    assert 'Argument 2 to "enqueue" of "TaskDef" has incompatible type "str"' in done.stdout
