"""`silo serve` (docs/operations.md#running-silo-serve): flags and SILO_* variables, health, the
listening line, graceful shutdown, and a second server on the same store."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse
from helpers import enqueue, expect_status, get_job, lease, lease_one, now_ms, wait_parked
from silo._proto.silo.admin.v1 import AdminStub
from silo._proto.silo.v1 import EnqueueRequest, JobStatus
from silo.testing import ServerProcess, ServerStartError


def _dir_has_files(path: Path) -> bool:
    return path.is_dir() and any(p.is_file() for p in path.rglob("*"))


def test_help_lists_the_flags() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "silo", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    for flag in ["--store", "--listen", "--lease-ms", "--max-payload-bytes"]:
        assert flag in out.stdout


async def test_logs_one_listening_line(make_server) -> None:
    server: ServerProcess = await make_server()
    lines = server.listening_lines()
    assert len(lines) == 1, server.output()
    assert lines[0].rstrip().endswith(f"listening on {server.address}"), lines[0]


async def test_flags_take_effect(make_server, tmp_path: Path) -> None:
    store = tmp_path / "flag-store"
    server: ServerProcess = await make_server(store=str(store), lease_ms=9_000)
    stub = server.stub()
    await enqueue(stub, id="j")
    before = now_ms()
    task = await lease_one(stub, "default", wait_ms=0)
    assert task.heartbeat_interval_ms == 3_000
    assert before + 9_000 - 2 <= task.lease_expires_at_ms <= now_ms() + 9_000 + 2
    assert _dir_has_files(store), "the store directory was not written"


async def test_environment_variables_take_effect(make_server, tmp_path: Path) -> None:
    store = tmp_path / "env-store"
    server: ServerProcess = await make_server(
        store=str(store), lease_ms=6_000, use_env=True, env={"SILO_MAX_PAYLOAD_BYTES": "100"}
    )
    assert "--store" not in server.command() and "--listen" not in server.command()
    stub = server.stub()
    await enqueue(stub, id="j", payload=b"x" * 100)
    over = EnqueueRequest(id="k", payload=b"x" * 101)
    await expect_status(stub.enqueue(over), Status.INVALID_ARGUMENT, names="payload")
    task = await lease_one(stub, "default", wait_ms=0)
    assert task.heartbeat_interval_ms == 2_000
    assert _dir_has_files(store)


async def test_default_store_is_silo_data_in_the_working_directory(
    make_server, tmp_path: Path
) -> None:
    server: ServerProcess = await make_server(store=None, cwd=tmp_path)
    stub = server.stub()
    await enqueue(stub, id="here")
    assert await server.stop() == 0
    assert _dir_has_files(tmp_path / "silo-data")
    await server.arestart()
    assert (await get_job(server.stub(), "here")).status == JobStatus.PENDING


async def test_file_url_store(make_server, tmp_path: Path) -> None:
    directory = tmp_path / "url-store"
    url = directory.as_uri()  # file:///abs/path
    assert url.startswith("file:///")
    server: ServerProcess = await make_server(store=url)
    await enqueue(server.stub(), id="via-url")
    assert await server.stop() == 0
    assert _dir_has_files(directory)
    # The plain path names the same store.
    again: ServerProcess = await make_server(store=str(directory))
    assert (await get_job(again.stub(), "via-url")).status == JobStatus.PENDING


async def test_default_listen_address_and_lease(make_server) -> None:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 7070)) == 0:
            pytest.skip("127.0.0.1:7070 is in use on this machine")
    server: ServerProcess = await make_server(port=7070, listen=False, lease_ms=None)
    assert "--listen" not in server.command() and "--lease-ms" not in server.command()
    assert server.listening_lines()[0].rstrip().endswith("listening on 127.0.0.1:7070")
    stub = server.stub()
    await enqueue(stub, id="j")
    before = now_ms()
    task = await lease_one(stub, "default", wait_ms=0)
    assert task.heartbeat_interval_ms == 10_000
    assert task.lease_expires_at_ms >= before + 30_000 - 2


@pytest.mark.parametrize("service", ["", "silo.v1.Silo"])
async def test_health_service_serving(make_server, service: str) -> None:
    server: ServerProcess = await make_server()
    health = HealthStub(server.channel())
    resp = await health.Check(HealthCheckRequest(service=service))
    assert resp.status == HealthCheckResponse.SERVING


async def test_health_unknown_service_not_found(make_server) -> None:
    server: ServerProcess = await make_server()
    health = HealthStub(server.channel())
    with pytest.raises(GRPCError) as info:
        await health.Check(HealthCheckRequest(service="no.such.Service"))
    assert info.value.status is Status.NOT_FOUND


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_exits_zero_and_keeps_data(make_server, sig: signal.Signals) -> None:
    server: ServerProcess = await make_server()
    stub = server.stub()
    await enqueue(stub, id="kept", payload=b"data")
    server.close_channels()
    server.send_signal(sig)
    code = await asyncio.to_thread(server.wait, 30.0)
    assert code == 0, server.output()
    await server.arestart()
    assert (await get_job(server.stub(), "kept")).payload == b"data"


async def test_sigterm_finishes_calls_in_flight(make_server) -> None:
    server: ServerProcess = await make_server()
    stub = server.stub()
    poll = asyncio.ensure_future(lease(stub, ["default"], max_tasks=1, wait_ms=10_000))
    await wait_parked(AdminStub(server.channel()))
    assert not poll.done()
    server.send_signal(signal.SIGTERM)
    tasks = await asyncio.wait_for(poll, timeout=20)  # an answer, not an error
    assert tasks == []
    code = await asyncio.to_thread(server.wait, 30.0)
    assert code == 0, server.output()


async def test_bad_store_url_fails_cleanly(tmp_path: Path) -> None:
    server = ServerProcess("bogus-scheme://nowhere", log_dir=tmp_path, startup_timeout=60)
    try:
        with pytest.raises(ServerStartError):
            await server.astart()
    finally:
        if server.is_running():
            server.kill9()
    assert server.returncode not in (None, 0)
    assert "Traceback" not in server.stderr_text(), server.output()


async def test_second_server_on_the_same_store_never_corrupts_it(
    make_server, store_url: str
) -> None:
    first: ServerProcess = await make_server(store=store_url)
    stub_a = first.stub()
    await enqueue(stub_a, id="from-a", payload=b"a")

    try:
        second: ServerProcess | None = await make_server(store=store_url)
    except ServerStartError:
        second = None  # the newcomer refused to start: the first must keep serving

    if second is None:
        await enqueue(stub_a, id="a-still-serving")
        acknowledged = ["from-a", "a-still-serving"]
        refused: list[str] = []
    else:
        stub_b = second.stub()
        assert (await get_job(stub_b, "from-a")).payload == b"a"
        await enqueue(stub_b, id="from-b", payload=b"b")
        # The older writer is fenced: its next write fails cleanly instead of being lost. It
        # answers UNAVAILABLE, or it has noticed the fence first and exited with code 1.
        try:
            await stub_a.enqueue(EnqueueRequest(id="a-after-fence"))
        except GRPCError as err:
            assert err.status is Status.UNAVAILABLE, err
        except (OSError, StreamTerminatedError):
            assert first.wait(30) == 1, first.output()
        else:
            pytest.fail("the fenced broker acknowledged a write")
        acknowledged = ["from-a", "from-b"]
        refused = ["a-after-fence"]
        await second.stop()
    first.kill9()

    third: ServerProcess = await make_server(store=store_url)
    stub_c = third.stub()
    for job_id in acknowledged:
        assert (await get_job(stub_c, job_id)).status == JobStatus.PENDING
    for job_id in refused:
        await expect_status(get_job(stub_c, job_id), Status.NOT_FOUND)
    # The store still takes writes and serves leases.
    await enqueue(stub_c, id="from-c")
    leased = await lease(stub_c, ["default"], max_tasks=10)
    assert [t.job_id for t in leased] == [*acknowledged, "from-c"]
