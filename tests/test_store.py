"""The store under the broker (issue 4): the S3 server keeps the promises SlateDB relies on, a bad
or unreachable store fails `silo serve` cleanly at start, an object-store stall surfaces as
UNAVAILABLE, a second broker fences the first without losing anything it acknowledged, and
garbage collection really deletes obsolete WAL files on local disk and on S3."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import time
from pathlib import Path

import botocore.exceptions
import pytest
from conftest import MakeServer, StoreKeys
from grpclib.const import Status
from helpers import enqueue, expect_status, get_job
from load import Load, LoadSettings, summary, verify, wait_for_progress
from s3server import S3Server
from silo._proto.silo.admin.v1 import AdminStub, GetStatsRequest
from silo._proto.silo.v1 import EnqueueBatchRequest, EnqueueRequest, JobStatus
from silo.testing import ServerProcess, ServerStartError, free_port

pytestmark = pytest.mark.all_stores

# A log line of the broker: Python logging or the native module's tracing (maybe colored).
LOG_LINE = re.compile(r"^(\x1b\[[0-9;]*m)*\d{4}-\d{2}-\d{2}[ T]")
# How long `silo serve` may take to give up on a store it cannot reach at all.
START_FAILURE_BOUND_S = 60.0
# How long a call may wait on an object store that stopped answering before it must answer
# UNAVAILABLE (the issue: "an outage surfaces as UNAVAILABLE instead of a hang").
STALL_BOUND_S = 20.0
# How long `silo serve` may take to leave after SIGTERM, even while it is opening the store.
SIGTERM_BOUND_S = 10.0


# ------------------------------------------------------------------------- S3 server itself


def test_s3_server_enforces_conditional_put(s3: S3Server) -> None:
    # SlateDB's writer fencing and manifest updates rely on create-if-absent (If-None-Match: *)
    # and replace-if-unchanged (If-Match: etag) being enforced by the server.
    client = s3.client()
    bucket = s3.bucket("conditional")
    versioning = client.get_bucket_versioning(Bucket=bucket)
    assert versioning.get("Status") in (None, "Suspended"), versioning
    client.put_object(Bucket=bucket, Key="k", Body=b"first", IfNoneMatch="*")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.put_object(Bucket=bucket, Key="k", Body=b"second", IfNoneMatch="*")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    etag = client.head_object(Bucket=bucket, Key="k")["ETag"]
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.put_object(Bucket=bucket, Key="k", Body=b"third", IfMatch='"0000"')
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    client.put_object(Bucket=bucket, Key="k", Body=b"fourth", IfMatch=etag)
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"fourth"


# ------------------------------------------------------------------------ failing at start


def assert_one_clear_line(server: ServerProcess, expected: str) -> str:
    """The run printed no traceback and exactly one error line (starting with `silo:` and
    naming `expected`); every other line is a log line. Returns the error line."""
    out = server.output()
    assert "Traceback" not in out, out
    errors = [line for line in server.stderr_text().splitlines() if line.startswith("silo:")]
    assert len(errors) == 1, out
    assert expected in errors[0], errors[0]
    strays = [
        line
        for line in server.stderr_text().splitlines()
        if line.strip() and not line.startswith("silo:") and not LOG_LINE.match(line)
    ]
    assert strays == [], f"the error spans more than one line: {strays}"
    return errors[0]


async def start_must_fail(server: ServerProcess) -> float:
    """Start `server`, which must exit non-zero before listening; returns how long it took."""
    started = time.monotonic()
    try:
        with pytest.raises(ServerStartError):
            await server.astart()
    finally:
        if server.is_running():
            server.kill9()
    assert server.returncode not in (None, 0), server.output()
    return time.monotonic() - started


@pytest.mark.parametrize("case", ["path under a regular file", "s3 URL without a bucket"])
async def test_bad_store_fails_at_start(tmp_path: Path, case: str) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    store = str(tmp_path / "a-file" / "store") if case.startswith("path") else "s3:///silo"
    server = ServerProcess(store, log_dir=tmp_path / "logs")
    await start_must_fail(server)
    assert_one_clear_line(server, "a-file" if case.startswith("path") else "bucket")


def s3_env_for(port: int) -> dict[str, str]:
    """AWS_* variables for an S3 endpoint on a loopback port (no real server needed)."""
    return {
        "AWS_ACCESS_KEY_ID": "silo-test",
        "AWS_SECRET_ACCESS_KEY": "silo-test-secret",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ALLOW_HTTP": "true",
    }


async def test_unreachable_s3_fails_at_start(tmp_path: Path) -> None:
    env = s3_env_for(free_port())  # nobody listens there
    server = ServerProcess(
        "s3://nowhere/silo",
        env=env,
        log_dir=tmp_path,
        startup_timeout=START_FAILURE_BOUND_S,
    )
    took = await start_must_fail(server)
    print(f"\nunreachable S3: silo serve gave up after {took:.1f}s")
    assert_one_clear_line(server, "s3://nowhere/silo")


async def test_sigterm_while_opening_an_unresponsive_store(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as hole:
        # The kernel completes connections to a listening socket; nobody ever answers them.
        hole.bind(("127.0.0.1", 0))
        hole.listen(64)
        # Each request may wait far longer than the bound (AWS_TIMEOUT is object_store's own
        # variable), so only acting on the signal ends the run in time, not the open giving up.
        env = s3_env_for(hole.getsockname()[1]) | {"AWS_TIMEOUT": "120s"}
        server = ServerProcess(
            "s3://hole/silo",
            env=env,
            log_dir=tmp_path,
            startup_timeout=SIGTERM_BOUND_S + 2,
        )
        starting = asyncio.ensure_future(server.astart())
        try:
            # The child logs nothing before it opens the store: give it a moment to get there.
            await asyncio.sleep(2.0)
            assert not starting.done(), server.output()
            server.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            with pytest.raises(ServerStartError):
                await starting
            took = time.monotonic() - signalled
        finally:
            if server.is_running():
                server.kill9()
    assert server.returncode in (0, 1), f"exit code {server.returncode} (-9: it was killed)"
    assert took <= SIGTERM_BOUND_S, took
    assert "Traceback" not in server.output(), server.output()


@pytest.mark.parametrize("problem", ["wrong secret key", "no such bucket"])
async def test_bad_s3_store_fails_at_start_with_one_line(
    s3: S3Server, tmp_path: Path, problem: str
) -> None:
    env = s3.env()
    bucket = "silo-missing-bucket"
    if problem == "wrong secret key":
        env["AWS_SECRET_ACCESS_KEY"] = "not-the-secret"
        bucket = s3.bucket("creds")
    server = ServerProcess(f"s3://{bucket}/silo", env=env, log_dir=tmp_path)
    took = await start_must_fail(server)
    assert took < START_FAILURE_BOUND_S
    assert_one_clear_line(server, bucket)


async def test_stalled_s3_answers_unavailable_not_hang(
    private_s3: S3Server, tmp_path: Path
) -> None:
    # A server of its own, frozen (SIGSTOP): it accepts connections and never answers.
    weed = private_s3
    server = ServerProcess(
        f"s3://{weed.bucket('stall')}/silo", env=weed.env(), log_dir=tmp_path / "logs"
    )
    try:
        await server.astart()
        stub = server.stub()
        await enqueue(stub, id="before")
        assert weed.pid is not None
        os.kill(weed.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            await expect_status(
                stub.enqueue(EnqueueRequest(id="during"), timeout=STALL_BOUND_S),
                Status.UNAVAILABLE,
            )
            print(f"\nstalled S3: UNAVAILABLE after {time.monotonic() - started:.1f}s")
        finally:
            os.kill(weed.pid, signal.SIGCONT)
        # Service comes back by itself once the store answers again.
        await stub.enqueue(EnqueueRequest(id="after"), timeout=60)
        assert (await get_job(stub, "before")).status == JobStatus.PENDING
    finally:
        server.kill9()


# ---------------------------------------------------------------------------------- fencing


async def test_second_broker_fences_the_first_under_load(
    make_server: MakeServer, store_url: str
) -> None:
    first = await make_server(store=store_url)
    settings = LoadSettings(tenant="fence", queue="fence-q", workers=1)
    load = Load(first.host, first.port, settings).start()
    try:
        await wait_for_progress(load.ledger, time.monotonic(), 30, 30)
        second = await make_server(store=store_url)
        # The fenced broker refuses its next write and leaves by itself with one clear line.
        code = await asyncio.to_thread(first.wait, 30.0)
    finally:
        await load.stop()
    ledger = load.ledger
    assert code == 1, first.output()
    notices = [line for line in first.stderr_text().splitlines() if line.startswith("silo:")]
    assert len(notices) == 1 and "newer broker" in notices[0], first.output()
    assert "Traceback" not in first.output()
    assert any(k.endswith(":UNAVAILABLE") for k in ledger.not_acked), ledger.not_acked

    # Everything the first broker acknowledged is there for the second.
    stub = second.stub()
    verdict = await verify(stub, settings.tenant, ledger)
    print(f"\nfencing: {summary(ledger, verdict)}")
    assert ledger.unexpected == [], ledger.unexpected[:20]
    assert verdict.lost == [], verdict.lost[:20]
    assert verdict.duplicates == [], verdict.duplicates[:20]
    await enqueue(stub, id="after-fence", tenant=settings.tenant)
    assert (await get_job(stub, "after-fence", settings.tenant)).status == JobStatus.PENDING


# --------------------------------------------------------------------------------------- GC

WAL = "shards/0/wal/"
GC_FLAGS = ["--gc-interval-ms", "200", "--gc-min-age-ms", "500"]
# Large payloads fill the memtable quickly; once it is flushed to L0 the WAL files before it
# are obsolete.
BIG_PAYLOAD = b"x" * (256 << 10)
BIG_BATCH = 48  # 12 MiB per call
MAX_PUSHED = 128 << 20


async def test_gc_deletes_obsolete_wal_files(
    make_server: MakeServer, store_url: str, store_keys: StoreKeys
) -> None:
    server = await make_server(store=store_url, extra_args=GC_FLAGS)
    stub = server.stub()
    ids = [await enqueue(stub, id=f"small-{i:03d}") for i in range(60)]  # one WAL file each
    early = store_keys(store_url, WAL)
    assert len(early) >= 30, early

    # Push large batches until most WAL files written so far are collected (bounded in bytes
    # and time; polled: GC runs on its own timer and announces nothing).
    deadline = time.monotonic() + 60
    pushed = 0
    n = 0
    while len(set(early) - set(store_keys(store_url, WAL))) < len(early) // 2:
        assert time.monotonic() < deadline, (
            f"WAL files not collected after {pushed >> 20} MiB and 60 s: "
            f"{len(store_keys(store_url, WAL))} WAL files, {len(early)} early ones"
        )
        if pushed < MAX_PUSHED:
            batch = [
                EnqueueRequest(id=f"big-{n}-{i}", payload=BIG_PAYLOAD) for i in range(BIG_BATCH)
            ]
            await stub.enqueue_batch(EnqueueBatchRequest(jobs=batch))
            ids.extend(r.id for r in batch)
            pushed += BIG_BATCH * len(BIG_PAYLOAD)
            n += 1
        else:
            await asyncio.sleep(0.2)
    now = store_keys(store_url, WAL)
    gone = sorted(set(early) - set(now))
    stats = await AdminStub(server.channel()).get_stats(GetStatsRequest())
    print(
        f"\nGC: {len(early)} WAL files before, {len(now)} after pushing {pushed >> 20} MiB; "
        f"{len(gone)} of the early ones deleted; object-store requests "
        f"{dict(stats.object_store_requests)}"
    )
    assert len(now) < len(early), (early, now)
    assert stats.object_store_requests["delete"] >= len(gone)

    # What GC left is enough: a crash now loses nothing.
    server.kill9()
    await server.arestart()
    stub = server.stub()
    for job_id in ids[:60] + ids[-3:]:
        assert (await get_job(stub, job_id, attempts=False)).status == JobStatus.PENDING
