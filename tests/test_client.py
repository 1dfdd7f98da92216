"""silo.Client (python/silo/client.py) specifics, against a real broker: the README's example
runs as written, an unreachable broker is Unavailable, bad addresses are refused. The typed
API itself is tested on both kinds of broker in test_api.py and test_worker.py."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import silo
from silo.testing import ServerProcess, free_port

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_example() -> str:
    """The first Python code block of the README."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README.md has no python example"
    return str(blocks[0])


def test_the_readme_example_runs(server: ServerProcess, tmp_path: Path) -> None:
    code = readme_example()
    assert "127.0.0.1:7070" in code
    script = tmp_path / "readme_example.py"
    script.write_text(code.replace("127.0.0.1:7070", server.address))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "sent to a@b.c on attempt 1", done.stdout


async def test_no_broker_is_unavailable() -> None:
    async with await silo.connect(f"127.0.0.1:{free_port()}", timeout=10) as client:
        with pytest.raises(silo.Unavailable):
            await client.get_job(id="x")


@pytest.mark.parametrize("address", ["nowhere", "", "host:99999"])
async def test_a_bad_address_is_refused(address: str) -> None:
    with pytest.raises(silo.InvalidArgument, match="address"):
        await silo.connect(address)


async def test_raw_calls_and_tokens(server: ServerProcess) -> None:
    async with await silo.connect([server.address], token="secret") as client:
        assert client.addresses == (server.address,)
        with pytest.raises(ValueError, match="no RPC named"):
            await client.call("Nope", b"")
        with pytest.raises(silo.JobNotFound):  # refined from NOT_FOUND for GetJob
            await client.call("GetJob", b"\x0a\x01x")  # GetJobRequest{id: "x"}
        job_id = await client.enqueue(queue="q")
        reply = await client.call("GetJob", silo._native.encode_request("GetJob", {"id": job_id}))
        assert silo._native.decode_reply("GetJob", reply).id == job_id
