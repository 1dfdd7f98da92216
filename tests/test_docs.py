"""Every Python code block of docs/python.md and the README runs as written (each in a fresh
interpreter; a block that defines `test_*` functions runs under pytest, with the silo_broker
plugin), so the documentation cannot drift from the API."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "docs" / "python.md", ROOT / "README.md"]


def blocks() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for i, code in enumerate(re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)):
            found.append((f"{doc.name}#{i}", code))
    return found


@pytest.mark.parametrize("code", [c for _, c in blocks()], ids=[n for n, _ in blocks()])
def test_the_block_runs(code: str, tmp_path: Path) -> None:
    if "127.0.0.1:7070" in code:
        pytest.skip("needs a running broker: tests/test_client.py runs it against one")
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
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
