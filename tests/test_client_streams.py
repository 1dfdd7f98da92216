"""The Python SDK on the streams (python/silo/streams.py): `silo.Client.enqueue` over one
EnqueueStream and `silo.Worker` over a WorkerSession, against a real `silo serve`."""

from __future__ import annotations

import asyncio

import pytest
import silo
from conftest import MakeServer, Namespace
from helpers import wait_for_gauge
from silo.testing import ServerProcess


def gauges_of(client: silo.Client):  # type: ignore[no-untyped-def]
    async def read() -> dict[str, int]:
        stats = await client.get_stats()
        return dict(stats["gauges"])

    return read


async def test_enqueue_goes_out_on_one_stream_and_raises_as_the_unary_call(
    shared_server: ServerProcess, ns: Namespace
) -> None:
    async with await silo.connect(shared_server.address) as client:
        ids = await asyncio.gather(
            *(client.enqueue(id=f"s{i}", tenant=ns.tenant, queue=ns.queue) for i in range(100))
        )
        assert ids == [f"s{i}" for i in range(100)]
        stats = await client.get_stats()
        assert stats["gauges"]["streams"] >= 1, "the client holds its EnqueueStream open"
        with pytest.raises(silo.errors.JobAlreadyExists):
            await client.enqueue(id="s7", tenant=ns.tenant, queue=ns.queue)
        with pytest.raises(silo.errors.InvalidArgument, match=r"^priority"):
            await client.enqueue(tenant=ns.tenant, queue=ns.queue, priority=101)
        # The stream goes on after the errors.
        generated = await client.enqueue(tenant=ns.tenant, queue=ns.queue, payload=b"p")
        job = await client.get_job(id=generated, tenant=ns.tenant)
        assert job.payload == b"p"


async def test_streams_off_keeps_enqueue_unary(make_server: MakeServer) -> None:
    server = await make_server()
    async with await silo.connect(server.address, streams=False) as client:
        await client.enqueue(queue="q")
        assert (await client.get_stats())["gauges"]["streams"] == 0


@silo.task(queue="sdk-streams")
async def double(x: int) -> int:
    return 2 * x


async def test_a_worker_over_a_client_runs_on_a_session(make_server: MakeServer) -> None:
    server = await make_server()
    async with await silo.connect(server.address) as client:
        worker = silo.Worker(client, tasks=[double], concurrency=4)
        run = asyncio.ensure_future(worker.run(handle_signals=False))
        try:
            await wait_for_gauge(
                gauges_of(client), "worker_sessions", lambda n: n == 1, what="no session opened"
            )
            handles = [await double.enqueue(client, i) for i in range(30)]
            assert [await h.result(timeout=30) for h in handles] == [2 * i for i in range(30)]
            gauges = await gauges_of(client)()
            assert gauges["lease_waiters"] == 0, "the worker does not long-poll"
        finally:
            worker.stop()
            await run
        assert worker.completed == 30
        await wait_for_gauge(
            gauges_of(client), "worker_sessions", lambda n: n == 0, what="the session stayed"
        )


#: Opened by the test below once every task of it runs.
gate = asyncio.Event()


@silo.task(queue="sdk-streams-wide")
async def wait_at_gate(x: int) -> int:
    await gate.wait()
    return x


async def test_a_worker_with_more_slots_than_a_session_s_credit_fills_them_all(
    make_server: MakeServer,
) -> None:
    """A session holds at most 1,000 credits (docs/api.md#workersession): a worker with 1,500
    slots grants 1,000, then more as pushed tasks use them, until 1,100 tasks run at once."""
    server = await make_server()
    gate.clear()
    async with await silo.connect(server.address) as client:
        worker = silo.Worker(client, tasks=[wait_at_gate], concurrency=1500)
        run = asyncio.ensure_future(worker.run(handle_signals=False))
        try:
            handles = await asyncio.gather(*(wait_at_gate.enqueue(client, i) for i in range(1100)))
            await wait_for_gauge(
                gauges_of(client),
                "running",
                lambda n: n == 1100,
                what="the worker did not take all 1,100 tasks at once",
                timeout=60,
            )
            gauges = await gauges_of(client)()
            assert gauges["worker_sessions"] == 1 and gauges["lease_waiters"] == 0
            gate.set()
            # One at a time: a connection may hold 64 parked WaitJob calls.
            assert [await h.result(timeout=60) for h in handles] == list(range(1100))
        finally:
            gate.set()
            worker.stop()
            await run
        assert worker.completed == 1100


async def test_a_worker_opens_its_session_again_after_a_broker_restart(
    make_server: MakeServer,
) -> None:
    server = await make_server()
    async with await silo.connect(server.address) as client:
        worker = silo.Worker(client, tasks=[double], concurrency=2)
        run = asyncio.ensure_future(worker.run(handle_signals=False))
        try:
            first = await double.enqueue(client, 1)
            assert await first.result(timeout=30) == 2
            server.kill9()
            await server.arestart()
            # The client's stream broke with the broker; the next enqueue opens another, and
            # the worker's session comes back on its own.
            second = await double.enqueue(client, 21)
            assert await second.result(timeout=60) == 42
            await wait_for_gauge(
                gauges_of(client), "worker_sessions", lambda n: n == 1, what="no new session"
            )
        finally:
            worker.stop()
            await run
