"""Unique jobs (docs/api.md#unique-jobs): while a job holds a unique key of its tenant (not
terminal, or within its `unique_for_ms` window), an enqueue of the key stores nothing and
answers the holder's id with `deduplicated = true`."""

from __future__ import annotations

import asyncio

import pytest
from grpclib.client import Channel
from grpclib.const import Status
from helpers import enqueue, expect_status, get_job, lease_one, now_ms, report_result
from silo._proto.silo.v1 import (
    EnqueueBatchRequest,
    EnqueueRequest,
    SiloStub,
)

# Core behaviour: runs once per store kind (file and S3), see conftest.
pytestmark = pytest.mark.all_stores


async def test_an_active_holder_dedups_and_a_terminal_one_frees_the_key(shared_stub, ns) -> None:
    req = EnqueueRequest(tenant=ns.tenant, queue=ns.queue, unique_key="report-42", payload=b"1")
    first = await shared_stub.enqueue(req)
    assert not first.deduplicated
    again = await shared_stub.enqueue(req)
    assert (again.id, again.deduplicated) == (first.id, True)
    # While it runs, too.
    task = await lease_one(shared_stub, ns.queue)
    assert (await shared_stub.enqueue(req)).id == first.id
    await report_result(shared_stub, task)
    after = await shared_stub.enqueue(req)
    assert not after.deduplicated and after.id != first.id
    job = await get_job(shared_stub, after.id, ns.tenant)
    assert job.unique_key == "report-42"


async def test_an_explicit_id_is_checked_first_and_a_dedup_stores_nothing(shared_stub, ns) -> None:
    holder = await enqueue(shared_stub, id="holder", tenant=ns.tenant, unique_key="u")
    await expect_status(
        shared_stub.enqueue(EnqueueRequest(id="holder", tenant=ns.tenant, unique_key="u")),
        Status.ALREADY_EXISTS,
    )
    dup = await shared_stub.enqueue(EnqueueRequest(id="other", tenant=ns.tenant, unique_key="u"))
    assert (dup.id, dup.deduplicated) == (holder, True)
    await expect_status(get_job(shared_stub, "other", ns.tenant), Status.NOT_FOUND)
    # Keys are per tenant.
    elsewhere = await shared_stub.enqueue(EnqueueRequest(tenant=ns.tenant + "-b", unique_key="u"))
    assert not elsewhere.deduplicated


async def test_the_window_keeps_the_key_after_the_job_ends(shared_stub, ns) -> None:
    window = 1500
    req = EnqueueRequest(tenant=ns.tenant, queue=ns.queue, unique_key="w", unique_for_ms=window)
    first = await shared_stub.enqueue(req)
    created = (await get_job(shared_stub, first.id, ns.tenant)).created_at_ms
    await report_result(shared_stub, await lease_one(shared_stub, ns.queue))
    assert (await shared_stub.enqueue(req)).deduplicated, "terminal, but inside its window"
    # Time itself is what is awaited: the window ends at created + unique_for_ms.
    await asyncio.sleep(max(0, created + window - now_ms() + 20) / 1000)
    fresh = await shared_stub.enqueue(req)
    assert not fresh.deduplicated and fresh.id != first.id


async def test_batch_entries_dedup_against_each_other_in_order(shared_stub, ns) -> None:
    jobs = [
        EnqueueRequest(tenant=ns.tenant, unique_key="b"),
        EnqueueRequest(tenant=ns.tenant, unique_key="b"),
        EnqueueRequest(tenant=ns.tenant, unique_key="c"),
        EnqueueRequest(tenant=ns.tenant, unique_key="x" * 128),
    ]
    results = (await shared_stub.enqueue_batch(EnqueueBatchRequest(jobs=jobs))).results
    assert [(r.code, r.deduplicated) for r in results[:3]] == [(0, False), (0, True), (0, False)]
    assert results[1].id == results[0].id
    assert results[3].code == Status.INVALID_ARGUMENT.value
    assert "jobs[3].unique_key" in results[3].message


async def test_twenty_concurrent_clients_store_one_job(shared_server, ns) -> None:
    channels = [Channel(shared_server.host, shared_server.port) for _ in range(20)]
    try:
        req = EnqueueRequest(tenant=ns.tenant, queue=ns.queue, unique_key="once")
        answers = await asyncio.gather(*(SiloStub(c).enqueue(req) for c in channels))
    finally:
        for c in channels:
            c.close()
    assert len({a.id for a in answers}) == 1
    assert sum(not a.deduplicated for a in answers) == 1


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"unique_key": "k" * 128}, "unique_key"),
        ({"unique_key": "a\nb"}, "unique_key"),
        ({"unique_key": "k", "unique_for_ms": -1}, "unique_for_ms"),
        ({"unique_for_ms": 10}, "unique_for_ms"),
    ],
)
async def test_bad_unique_fields_name_the_field(shared_stub, fields, field) -> None:
    await expect_status(
        shared_stub.enqueue(EnqueueRequest(**fields)), Status.INVALID_ARGUMENT, names=field
    )


async def test_a_unique_key_survives_a_restart(make_server) -> None:
    server = await make_server()
    stub = server.stub()
    first = await stub.enqueue(EnqueueRequest(tenant="t", unique_key="k"))
    await asyncio.to_thread(server.kill9)
    await server.arestart()
    stub = server.stub()
    again = await stub.enqueue(EnqueueRequest(tenant="t", unique_key="k"))
    assert (again.id, again.deduplicated) == (first.id, True)
