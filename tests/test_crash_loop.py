"""Crash loop on S3 (docs/api.md#guarantees: durability, exactly-once outcome): a load of
enqueues, leases, heartbeats and reports runs while the broker is `kill -9`-ed and restarted 20
times; afterwards everything the broker acknowledged is in the store, no task has two outcomes,
and every job finishes."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from grpclib.client import Channel
from load import Load, LoadSettings, summary, verify, wait_drained, wait_for_progress
from s3server import S3Server
from silo._proto.silo.admin.v1 import AdminStub
from silo._proto.silo.v1 import SiloStub
from silo.testing import ServerProcess

KILLS = 20
# Short enough that tasks whose lease answer died with the broker are retried soon; long enough
# that a worker reports a task it holds well before its lease ends, even across a restart.
LEASE_MS = 2_000
# Acknowledged calls each run of the broker must serve before it is killed (so every cycle has
# real load in flight), then a random extra delay so kills land at different points.
PROGRESS_PER_RUN = 25
MAX_EXTRA_DELAY_S = 0.6


@pytest.mark.timeout(300)
async def test_kill9_restart_loop_on_s3_loses_and_duplicates_nothing(
    s3: S3Server, tmp_path: Path, record_figure: Callable[[str], None]
) -> None:
    seed = int(os.environ.get("SILO_CRASH_SEED", time.time_ns() % 1_000_000))
    print(f"\ncrash loop seed={seed} (SILO_CRASH_SEED to replay the kill points)")
    rng = random.Random(seed)
    store = f"s3://{s3.bucket('crash-loop')}/silo"
    server = ServerProcess(store, lease_ms=LEASE_MS, env=s3.env(), log_dir=tmp_path)
    await server.astart()
    settings = LoadSettings(tenant="crash", queue="crash-q", seed=seed)
    load = Load(server.host, server.port, settings).start()
    started = time.monotonic()
    try:
        for _ in range(KILLS):
            await wait_for_progress(load.ledger, time.monotonic(), PROGRESS_PER_RUN, 30)
            # A random kill point within the load (not a wait for anything).
            await asyncio.sleep(rng.uniform(0, MAX_EXTRA_DELAY_S))
            server.kill9()
            await server.arestart()
        await wait_for_progress(load.ledger, time.monotonic(), PROGRESS_PER_RUN, 30)
        load.stop_producing()
        channel = Channel(server.host, server.port)
        try:
            # Workers keep going until every job is finished (orphaned leases expire first).
            await wait_drained(AdminStub(channel), timeout_s=90)
            await load.stop()
            verdict = await verify(SiloStub(channel), settings.tenant, load.ledger)
        finally:
            channel.close()
    except BaseException:
        print(server.output()[-4000:])
        raise
    finally:
        await load.stop()
        await server.stop()
    ledger = load.ledger
    elapsed = time.monotonic() - started
    print(f"crash loop: {summary(ledger, verdict)}")
    record_figure(
        f"crash loop on S3: {KILLS} kill -9 + restart in {elapsed:.0f}s (seed {seed}): "
        f"acked={len(ledger.enqueued)} lost={len(verdict.lost)} "
        f"duplicates={len(verdict.duplicates)}; acked outcomes={len(ledger.reported)}, "
        f"acked leases={len(ledger.leased)}, acked cursors={len(ledger.cursors)}, "
        f"unfinished={len(verdict.unfinished)}, calls not acknowledged="
        f"{sum(ledger.not_acked.values())}"
    )
    assert ledger.unexpected == [], ledger.unexpected[:20]
    assert verdict.lost == [], verdict.lost[:20]
    assert verdict.duplicates == [], verdict.duplicates[:20]
    assert verdict.unfinished == [], verdict.unfinished[:20]
    # The kills really hit calls in flight, and the load really ran.
    assert sum(ledger.not_acked.values()) >= KILLS, ledger.not_acked
    assert len(ledger.enqueued) >= KILLS * PROGRESS_PER_RUN // 2
    assert len(ledger.reported) > 0
