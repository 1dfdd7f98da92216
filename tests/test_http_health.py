"""The HTTP server of `silo serve` and `Broker.serve_http` (docs/operations.md#http): where it
listens (`--http`, its default beside `--listen`, `off`), its `http on` line, `/healthz`, and
`/readyz` (503 once fenced by a newer broker, and while shutting down)."""

from __future__ import annotations

import socket
import subprocess
import sys

import aiohttp
import pytest
import silo
from silo.testing import ServerProcess, free_port


async def status_of(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.text()


def _port_pair() -> int:
    """A free port whose next port is free too (the default HTTP port beside gRPC's)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two consecutive free ports")


async def test_http_defaults_to_the_next_port_and_says_where(make_server) -> None:
    port = _port_pair()
    server: ServerProcess = await make_server(port=port, http=None)
    assert server.http_address == f"127.0.0.1:{port + 1}"
    assert "http on 127.0.0.1:" in server.stdout_text()
    assert await status_of(f"{server.http_url}/healthz") == (200, "ok\n")
    assert await status_of(f"{server.http_url}/readyz") == (200, "ready\n")


async def test_a_free_grpc_port_gets_a_free_http_port(make_server) -> None:
    server: ServerProcess = await make_server(port=0, http=None)
    assert server.http_address is not None
    host, _, port = server.http_address.rpartition(":")
    assert host == "127.0.0.1" and int(port) > 0
    assert (await status_of(f"{server.http_url}/healthz"))[0] == 200


async def test_http_off_serves_no_http(make_server) -> None:
    server: ServerProcess = await make_server(http="off")
    assert server.http_address is None
    assert "http on" not in server.stdout_text()


async def test_http_can_be_set_by_its_variable(make_server) -> None:
    port = free_port()
    server: ServerProcess = await make_server(
        http=None, use_env=True, env={"SILO_HTTP": f"127.0.0.1:{port}"}
    )
    assert server.http_address == f"127.0.0.1:{port}"


def test_a_taken_http_port_fails_the_start(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "-m", "silo", "serve", "--store", str(tmp_path / "s"),
             "--listen", f"127.0.0.1:{free_port()}", "--http", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert out.returncode == 1, out
    assert f"silo: cannot serve http on 127.0.0.1:{port}" in out.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "silo", "serve", "--http", "nowhere"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "invalid --http 'nowhere'" in bad.stderr


async def test_readyz_is_503_once_a_newer_broker_fenced_this_one(tmp_path) -> None:
    store = str(tmp_path / "store")
    first = await silo.open(store)
    try:
        http = await first.serve_http("127.0.0.1:0")
        url = f"http://{http.address}"
        assert await status_of(f"{url}/readyz") == (200, "ready\n")
        second = await silo.open(store)
        try:
            # The first broker learns it was fenced on its next write.
            with pytest.raises(silo.StoreUnavailable):
                await first.enqueue(payload=b"x")
            status, text = await status_of(f"{url}/readyz")
            assert status == 503 and text.startswith("not ready: store unavailable"), text
            assert (await status_of(f"{url}/healthz"))[0] == 200
        finally:
            await second.close()
    finally:
        await first.close()


async def test_readyz_is_503_while_shutting_down(tmp_path) -> None:
    broker = await silo.open(str(tmp_path / "store"))
    try:
        http = await broker.serve_http("127.0.0.1:0")
        url = f"http://{http.address}"
        http.drain()  # what the shutdown does first
        status, text = await status_of(f"{url}/readyz")
        assert (status, text) == (503, "not ready: the broker is shutting down\n")
    finally:
        await broker.close()
    with pytest.raises(aiohttp.ClientConnectionError):
        await status_of(f"{url}/healthz")
