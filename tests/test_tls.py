"""TLS and mTLS (docs/security.md#tls) against a real `silo serve --tls-cert/--tls-key
[--tls-client-ca]`, with certificates made in the test: round trips through the typed client
(unary and streams) and the CLI, plaintext and TLS clients on the wrong port failing cleanly,
client certificates required and checked."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import silo
from conftest import MakeServer
from secure import Pki, Token, make_pki, write_auth
from silo.testing import ServerProcess

TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls_args(pki: Pki, *, mtls: bool = False) -> list[str]:
    args = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    return [*args, "--tls-client-ca", str(pki.ca)] if mtls else args


async def round_trip(server: ServerProcess, **connect: object) -> None:
    """Enqueue (on the stream), get the job back (unary), lease and report it."""
    async with await silo.connect(server.address, timeout=TIMEOUT_S, **connect) as client:  # type: ignore[arg-type]
        job_id = (await client.enqueue(queue="tls", payload=b"p")).id
        assert (await client.get_job(id=job_id)).payload == b"p"
        tasks = await client.lease_tasks(worker_id="w", queues=["tls"], max_tasks=1)
        assert [t.job_id for t in tasks] == [job_id]
        await client.report_task_outcome(task_id=tasks[0].task_id, worker_id="w", result=b"r")
        assert (await client.get_job(id=job_id)).status == silo.JobStatus.SUCCEEDED


async def refused(server: ServerProcess, **connect: object) -> BaseException:
    """A call that must fail (not hang): the error it raised."""
    client = await silo.connect(server.address, timeout=TIMEOUT_S, streams=False, **connect)  # type: ignore[arg-type]
    try:
        with pytest.raises(Exception) as info:
            await asyncio.wait_for(client.get_job(id="x"), TIMEOUT_S * 2)
        assert not isinstance(info.value, TimeoutError), "the call hung"
        return info.value
    finally:
        await client.close()


async def test_tls_round_trip_and_a_plaintext_client_fails_cleanly(
    make_server: MakeServer, pki: Pki
) -> None:
    server = await make_server(extra_args=tls_args(pki))
    await round_trip(server, tls=silo.tls_context(ca=pki.ca))
    error = await refused(server)  # plaintext HTTP/2 on the TLS port
    assert isinstance(error, silo.Unavailable), repr(error)
    # A client that does not trust the server's CA refuses it.
    error = await refused(server, tls=silo.tls_context(ca=pki.other_ca))
    assert isinstance(error, silo.Unavailable), repr(error)
    # The server is still serving.
    await round_trip(server, tls=silo.tls_context(ca=pki.ca))


async def test_a_tls_client_on_a_plaintext_port_fails_cleanly(
    make_server: MakeServer, pki: Pki
) -> None:
    server = await make_server()
    error = await refused(server, tls=silo.tls_context(ca=pki.ca))
    assert isinstance(error, silo.Unavailable), repr(error)
    await round_trip(server)


async def test_mtls_requires_a_client_certificate_of_its_ca(
    make_server: MakeServer, pki: Pki
) -> None:
    server = await make_server(extra_args=tls_args(pki, mtls=True))
    for tls in (
        silo.tls_context(ca=pki.ca),  # no client certificate
        silo.tls_context(ca=pki.ca, cert=pki.other_client_cert, key=pki.other_client_key),
    ):
        error = await refused(server, tls=tls)
        assert isinstance(error, silo.Unavailable), repr(error)
    await round_trip(
        server, tls=silo.tls_context(ca=pki.ca, cert=pki.client_cert, key=pki.client_key)
    )


async def test_tls_with_tokens_and_the_cli(
    make_server: MakeServer, pki: Pki, tmp_path: Path
) -> None:
    token = Token("cli", "cli-secret", ["*"], ["operate"])
    auth = write_auth(tmp_path / "auth.toml", [token])
    server = await make_server(extra_args=[*tls_args(pki), "--auth-file", str(auth)])
    tls = silo.tls_context(ca=pki.ca)
    await round_trip(server, tls=tls, token=token.secret)
    error = await refused(server, tls=tls)
    assert isinstance(error, silo.Unauthenticated), repr(error)

    def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "silo", *args, "--connect", server.address,
             "--tls-ca", str(pki.ca)],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip

    done = await asyncio.to_thread(cli, "enqueue", "--queue", "cli", "--token", token.secret)
    assert done.returncode == 0, done.stderr
    import os

    env = {**os.environ, "SILO_TOKEN": token.secret}
    listed = await asyncio.to_thread(cli, "jobs", "list", "--queue", "cli", "--json", env=env)
    assert listed.returncode == 0 or "not implemented" in listed.stderr, listed.stderr
    denied = await asyncio.to_thread(cli, "enqueue", "--queue", "cli")
    assert denied.returncode == 1 and "token" in denied.stderr.lower(), denied.stderr


def test_unusable_tls_files_stop_the_start(tmp_path: Path, pki: Pki) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    for args, named in [
        (["--tls-cert", str(pki.server_cert)], "--tls-cert/--tls-key"),
        (["--tls-cert", str(tmp_path / "none.pem"), "--tls-key", str(pki.server_key)], "tls"),
        ([*tls_args(pki), "--tls-client-ca", str(tmp_path / "none.pem")], "--tls-client-ca"),
        (["--tls-client-ca", str(pki.ca)], "--tls-client-ca"),
        ([*tls_args(pki), "--tls-peer-ca", str(tmp_path / "none.pem")], "--tls-peer-ca"),
        ([*tls_args(pki), "--tls-peer-ca", str(garbage)], "--tls-peer-ca"),
        ([*tls_args(pki), "--tls-peer-ca", str(pki.server_key)], "--tls-peer-ca"),
        (["--tls-peer-ca", str(pki.ca)], "--tls-peer-ca"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "silo", "serve", "--store", "memory://",
             "--listen", "127.0.0.1:0", *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and named in lines[0], (args, lines)


async def test_the_web_ui_over_tls_sends_its_session_cookie_secure_only(
    make_server: MakeServer, pki: Pki, tmp_path: Path
) -> None:
    import re
    import ssl
    from http.cookies import SimpleCookie

    import aiohttp

    token = Token("ui", "ui-secret", ["*"], ["operate"])
    auth = write_auth(tmp_path / "auth.toml", [token])
    server = await make_server(
        http="127.0.0.1:0", extra_args=[*tls_args(pki), "--auth-file", str(auth)]
    )
    base = f"https://{server.http_address}"
    trust = ssl.create_default_context(cafile=str(pki.ca))
    async with aiohttp.ClientSession(
        base, connector=aiohttp.TCPConnector(ssl=trust), cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as http:
        async with http.get("/login") as r:
            assert r.status == 200
            csrf = re.search(r'name="csrf" value="([^"]*)"', await r.text())
        assert csrf is not None
        form = {"csrf": csrf[1], "token": token.secret, "next": "/"}
        async with http.post("/login", data=form, allow_redirects=False) as r:
            assert r.status == 303
            raw = next(v for v in r.headers.getall("Set-Cookie") if v.startswith("silo_session"))
        morsel = SimpleCookie(raw)["silo_session"]
        assert morsel["secure"] and morsel["httponly"] and morsel["samesite"] == "Strict"
    # Plain HTTP on the TLS port gets nothing.
    async with aiohttp.ClientSession() as plain:
        with pytest.raises(aiohttp.ClientError):
            async with plain.get(f"http://{server.http_address}/healthz") as r:
                await r.read()
