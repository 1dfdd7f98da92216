"""Object-store outage under load (issue 4): with every object-store call failing for 5 s
(Admin.SetFaults, `--fault-injection`), calls answer UNAVAILABLE promptly instead of hanging;
once the store is back the broker serves again within a bounded time, and nothing it
acknowledged is lost or duplicated."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from conftest import MakeServer
from load import Load, LoadSettings, summary, verify, wait_drained, wait_for_progress
from silo._proto.silo.admin.v1 import AdminStub, GetStatsRequest, SetFaultsRequest
from silo._proto.silo.v1 import SiloStub

pytestmark = [pytest.mark.all_stores, pytest.mark.timeout(180)]

OUTAGE_S = 5.0
# Writes issued just before the faults start may still complete; after this much time into the
# outage none can (every WAL flush fails).
SETTLE_S = 1.0
# The broker reopens its store at most once a second after a failure; a few seconds is plenty.
RECOVERY_BOUND_S = 15.0
CALL_TIMEOUT_S = 10.0
WRITES = {"Enqueue", "EnqueueBatch", "ReportTaskOutcome", "ReportTaskOutcomes", "HeartbeatTask"}


async def test_store_outage_answers_unavailable_then_recovers_losing_nothing(
    make_server: MakeServer, store_kind: str, record_figure: Callable[[str], None]
) -> None:
    server = await make_server(lease_ms=3_000, extra_args=["--fault-injection"])
    admin = AdminStub(server.channel())
    settings = LoadSettings(tenant="outage", queue="outage-q", call_timeout_s=CALL_TIMEOUT_S)
    load = Load(server.host, server.port, settings).start()
    try:
        await wait_for_progress(load.ledger, time.monotonic(), 30, 30)
        before = await admin.get_stats(GetStatsRequest(), timeout=10)

        t_fault = time.monotonic()
        await admin.set_faults(SetFaultsRequest(error_rate=1.0), timeout=10)
        # The outage lasts a fixed time by design; the load keeps calling meanwhile.
        await asyncio.sleep(OUTAGE_S)
        t_clear = time.monotonic()
        await admin.set_faults(SetFaultsRequest(), timeout=10)

        await wait_for_progress(load.ledger, t_clear, 30, RECOVERY_BOUND_S)
        load.stop_producing()
        await wait_drained(admin, timeout_s=60)
        await load.stop()
        verdict = await verify(SiloStub(server.channel()), settings.tenant, load.ledger)
        after = await admin.get_stats(GetStatsRequest(), timeout=10)
    finally:
        await load.stop()

    ledger = load.ledger
    during = [(t, rpc, ok) for t, rpc, ok in ledger.timeline if t_fault + SETTLE_S <= t <= t_clear]
    refused = [rpc for _, rpc, ok in during if not ok]
    acked_writes = [rpc for _, rpc, ok in during if ok and rpc in WRITES]
    first_ok = min(
        (t for t, rpc, ok in ledger.timeline if ok and rpc in WRITES and t > t_clear),
        default=None,
    )
    recovery_s = None if first_ok is None else first_ok - t_clear
    print(
        f"\nobject-store requests {dict(before.object_store_requests)} -> "
        f"{dict(after.object_store_requests)}\n{summary(ledger, verdict)}"
    )
    record_figure(
        f"outage on {store_kind}: {len(refused)} calls refused UNAVAILABLE during {OUTAGE_S}s, "
        f"longest refused call {max(ledger.failed_call_s, default=0):.2f}s, first write "
        f"acknowledged {recovery_s if recovery_s is None else round(recovery_s, 2)}s after the "
        f"store came back; acked={len(ledger.enqueued)} lost={len(verdict.lost)} "
        f"duplicates={len(verdict.duplicates)}"
    )
    assert ledger.unexpected == [], ledger.unexpected[:20]
    assert refused, "no call was refused while every object-store call failed"
    assert any(k.endswith(":UNAVAILABLE") for k in ledger.not_acked), ledger.not_acked
    assert acked_writes == [], f"writes acknowledged while the store was down: {acked_writes}"
    # Refused, not hung: no call ran into its timeout.
    timeouts = {k: n for k, n in ledger.not_acked.items() if k.endswith(":TimeoutError")}
    assert timeouts == {}, f"calls hung for {CALL_TIMEOUT_S}s: {timeouts}"
    assert recovery_s is not None and recovery_s <= RECOVERY_BOUND_S
    assert verdict.lost == [], verdict.lost[:20]
    assert verdict.duplicates == [], verdict.duplicates[:20]
    assert verdict.unfinished == [], verdict.unfinished[:20]
