"""What a steady load costs in object-store requests on S3 (issue 4's closing figure): PUTs and
GETs per 1,000 completed jobs at about 200 jobs/s, counted by the broker's instrumented store
(Admin.GetStats). Printed, not asserted: cost goals belong to benchmarks
(docs/testing.md#benchmarks)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from load import Load, LoadSettings, summary, verify, wait_drained, wait_for_progress
from s3server import S3Server
from silo._proto.silo.admin.v1 import AdminStub, GetStatsRequest
from silo._proto.silo.v1 import SiloStub
from silo.testing import ServerProcess

RATE = 200  # jobs/s
WARMUP_S = 3.0
WINDOW_S = 20.0


@pytest.mark.timeout(180)
async def test_object_store_requests_per_1000_jobs_on_s3(
    s3: S3Server, tmp_path: Path, record_figure: Callable[[str], None]
) -> None:
    server = ServerProcess(f"s3://{s3.bucket('cost')}/silo", env=s3.env(), log_dir=tmp_path)
    await server.astart()
    admin = AdminStub(server.channel())
    settings = LoadSettings(
        tenant="cost",
        queue="cost-q",
        workers=2,
        lease_max=64,
        rate=RATE,
        all_workers_batch=True,
        failure_rate=0.0,
        heartbeat_rate=0.0,
    )
    load = Load(server.host, server.port, settings).start()
    ledger = load.ledger
    try:
        await wait_for_progress(ledger, time.monotonic(), 50, 30)
        # Fixed-length measurement window by design (a steady rate over time).
        await asyncio.sleep(WARMUP_S)
        before = await admin.get_stats(GetStatsRequest(), timeout=10)
        done_before = len(ledger.reported)
        t0 = time.monotonic()
        await asyncio.sleep(WINDOW_S)
        after = await admin.get_stats(GetStatsRequest(), timeout=10)
        done_after = len(ledger.reported)
        window = time.monotonic() - t0
        load.stop_producing()
        await wait_drained(admin, timeout_s=60)
        await load.stop()
        verdict = await verify(SiloStub(server.channel()), settings.tenant, ledger)
    finally:
        await load.stop()
        await server.stop()

    completed = done_after - done_before
    requests = {
        kind: after.object_store_requests[kind] - before.object_store_requests.get(kind, 0)
        for kind in sorted(after.object_store_requests)
    }
    per_1000 = {kind: 1000 * n / max(completed, 1) for kind, n in requests.items()}
    flush_ms = after.settings.get("flush_interval_ms")
    print(f"\n{summary(ledger, verdict)}")
    record_figure(
        f"S3 requests per 1,000 completed jobs: PUT {per_1000['put']:.1f}, "
        f"GET {per_1000['get']:.1f} (HEAD {per_1000['head']:.1f}, LIST {per_1000['list']:.1f}, "
        f"DELETE {per_1000['delete']:.1f}); flush_interval_ms={flush_ms}, {RATE} jobs/s offered, "
        f"{completed} jobs completed in {window:.1f}s ({completed / window:.0f} jobs/s), "
        f"requests {requests}"
    )
    assert ledger.unexpected == [], ledger.unexpected[:20]
    assert verdict.lost == [] and verdict.duplicates == [] and verdict.unfinished == []
    # A measurement of a load that did not run would be meaningless.
    assert completed >= RATE * WINDOW_S / 2, f"only {completed} jobs completed in {window:.1f}s"
