"""Every Python code block of docs/python.md and the README runs as written (each in a fresh
interpreter; a block that defines `test_*` functions runs under pytest, with the silo_broker
plugin), so the documentation cannot drift from the API. A block that reaches a broker at
127.0.0.1:7070 runs against a fresh `silo serve` (its address put in the code's place), and
what a block says it prints (`print(...)  # what`) must be among the lines it printed. The
auth file of docs/security.md loads."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MakeServer

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "docs" / "python.md", ROOT / "README.md"]
#: The broker address the examples use, as `silo serve` listens by default.
DEFAULT_ADDRESS = "127.0.0.1:7070"


def blocks() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for i, code in enumerate(re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)):
            found.append((f"{doc.name}#{i}", code))
    return found


def test_the_readme_shows_a_worker_against_silo_serve() -> None:
    """The README's example is the task/worker quickstart against a running broker."""
    readme = [code for name, code in blocks() if name.startswith("README")]
    assert readme and DEFAULT_ADDRESS in readme[0] and "silo.Worker" in readme[0]


@pytest.mark.parametrize("code", [c for _, c in blocks()], ids=[n for n, _ in blocks()])
async def test_the_block_runs(code: str, tmp_path: Path, make_server: MakeServer) -> None:
    if DEFAULT_ADDRESS in code:
        server = await make_server()
        code = code.replace(DEFAULT_ADDRESS, server.address)
    script = tmp_path / "test_block.py"
    script.write_text(code)
    if re.search(r"^(async )?def test_", code, flags=re.M):
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(script),
            "-o",
            "asyncio_mode=auto",
        ]
    else:
        command = [sys.executable, str(script)]
    done = await asyncio.to_thread(
        subprocess.run,
        command,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    printed = done.stdout.splitlines()
    for said in re.findall(r"^\s*print\(.*\)\s+# (.*)$", code, flags=re.M):
        assert said in printed, f"the block says it prints {said!r}; it printed {printed}"


def test_the_auth_file_example_of_security_md_loads(tmp_path: Path) -> None:
    """docs/security.md's auth file is one the broker accepts, with the roles it says."""
    from silo.server.auth import digest, load

    doc = (ROOT / "docs" / "security.md").read_text()
    (example,) = re.findall(r"```toml\n(.*?)```", doc, flags=re.S)
    path = tmp_path / "tokens.toml"
    path.write_text(example)
    table = load(path)
    assert len(table) == 3
    oncall = table.by_digest[digest("oncall")]
    assert oncall.name == "oncall"
    assert table.by_digest[digest("test")].name == "billing-producer"
    assert table.by_digest[digest("eu-workers")].name == "eu-workers"
