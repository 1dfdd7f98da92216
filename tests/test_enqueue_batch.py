"""EnqueueBatch (docs/api.md#enqueuebatch): one result per job in order, each alone, limits for
the whole call."""

from __future__ import annotations

from grpclib.const import Status
from helpers import enqueue, expect_status, get_job, lease, unique
from silo._proto.silo.v1 import (
    ConcurrencyLimit,
    EnqueueBatchRequest,
    EnqueueRequest,
    JobStatus,
    SiloStub,
)

OK = Status.OK.value


async def test_empty_batch_answers_empty_list(shared_stub: SiloStub) -> None:
    resp = await shared_stub.enqueue_batch(EnqueueBatchRequest(jobs=[]))
    assert list(resp.results) == []


async def test_each_job_succeeds_or_fails_alone_in_order(shared_stub: SiloStub, ns) -> None:
    await enqueue(shared_stub, id="existing", tenant=ns.tenant, queue=ns.queue)
    t, q = ns.tenant, ns.queue
    jobs = [
        EnqueueRequest(id="a", tenant=t, queue=q, payload=b"first a"),
        EnqueueRequest(id="b", tenant=t, queue=q, priority=101),
        EnqueueRequest(tenant=t, queue=q, payload=b"generated"),
        EnqueueRequest(id="a", tenant=t, queue=q, payload=b"second a"),
        EnqueueRequest(
            id="c",
            tenant=t,
            queue=q,
            concurrency_limits=[ConcurrencyLimit(key="k", max_concurrency=0)],
        ),
        EnqueueRequest(id="existing", tenant=t, queue=q),
        EnqueueRequest(id="d", tenant=t, queue="q\nbad"),
        EnqueueRequest(id="e", tenant=t, queue=q, payload=b"last"),
    ]
    results = list((await shared_stub.enqueue_batch(EnqueueBatchRequest(jobs=jobs))).results)
    assert [r.code for r in results] == [
        OK,
        Status.INVALID_ARGUMENT.value,
        OK,
        Status.ALREADY_EXISTS.value,
        Status.INVALID_ARGUMENT.value,
        Status.ALREADY_EXISTS.value,
        Status.INVALID_ARGUMENT.value,
        OK,
    ], results
    assert results[0].id == "a"
    assert results[2].id and results[2].id not in {"a", "b", "c", "d", "e", "existing"}
    assert results[7].id == "e"
    assert "priority" in results[1].message.lower()
    assert "concurrency" in results[4].message.lower()
    assert "queue" in results[6].message.lower()

    assert (await get_job(shared_stub, "a", t)).payload == b"first a"
    assert (await get_job(shared_stub, results[2].id, t)).payload == b"generated"
    assert (await get_job(shared_stub, "e", t)).payload == b"last"
    for missing in ["b", "c", "d"]:
        await expect_status(get_job(shared_stub, missing, t), Status.NOT_FOUND)
    # Exactly the accepted jobs were queued, in batch order.
    tasks = await lease(shared_stub, [q], max_tasks=100)
    assert [task.job_id for task in tasks] == ["existing", "a", results[2].id, "e"]


async def test_batch_applies_defaults(stub: SiloStub) -> None:
    # A fresh server: this test uses the default queue.
    results = list(
        (
            await stub.enqueue_batch(
                EnqueueBatchRequest(jobs=[EnqueueRequest(id="d1"), EnqueueRequest(priority=0)])
            )
        ).results
    )
    assert [r.code for r in results] == [OK, OK]
    for r in results:
        job = await get_job(stub, r.id)
        assert job.queue == "default"
        assert job.priority == 50
        assert job.tenant == ""
        assert job.status == JobStatus.PENDING
    tasks = await lease(stub, [], max_tasks=10)
    assert [t.job_id for t in tasks] == [results[0].id, results[1].id]


async def test_thousand_jobs_accepted_and_leased_in_order(shared_stub: SiloStub, ns) -> None:
    jobs = [
        EnqueueRequest(id=f"j{i:04d}", tenant=ns.tenant, queue=ns.queue, payload=str(i).encode())
        for i in range(1000)
    ]
    results = list((await shared_stub.enqueue_batch(EnqueueBatchRequest(jobs=jobs))).results)
    assert len(results) == 1000
    assert all(r.code == OK for r in results), [r for r in results if r.code != OK][:3]
    assert [r.id for r in results] == [j.id for j in jobs]
    tasks = await lease(shared_stub, [ns.queue], max_tasks=1000)
    assert [t.job_id for t in tasks] == [j.id for j in jobs]
    assert [t.payload for t in tasks] == [j.payload for j in jobs]


async def test_over_thousand_jobs_is_invalid_and_stores_nothing(shared_stub: SiloStub, ns) -> None:
    jobs = [EnqueueRequest(id=f"j{i}", tenant=ns.tenant, queue=ns.queue) for i in range(1001)]
    await expect_status(
        shared_stub.enqueue_batch(EnqueueBatchRequest(jobs=jobs)), Status.INVALID_ARGUMENT
    )
    for i in [0, 500, 1000]:
        await expect_status(get_job(shared_stub, f"j{i}", ns.tenant), Status.NOT_FOUND)
    assert await lease(shared_stub, [ns.queue], max_tasks=1000) == []


async def test_repeated_id_in_one_batch_second_is_already_exists(shared_stub: SiloStub, ns) -> None:
    other_tenant = unique("tenant")
    jobs = [
        EnqueueRequest(id="r", tenant=ns.tenant, queue=ns.queue, payload=b"1"),
        EnqueueRequest(id="r", tenant=other_tenant, queue=ns.queue, payload=b"2"),
        EnqueueRequest(id="r", tenant=ns.tenant, queue=ns.queue, payload=b"3"),
    ]
    results = list((await shared_stub.enqueue_batch(EnqueueBatchRequest(jobs=jobs))).results)
    assert [r.code for r in results] == [OK, OK, Status.ALREADY_EXISTS.value]
    assert (await get_job(shared_stub, "r", ns.tenant)).payload == b"1"
    assert (await get_job(shared_stub, "r", other_tenant)).payload == b"2"


async def test_batch_payload_limit_per_job(shared_stub: SiloStub, ns) -> None:
    mib = 1024 * 1024
    # Five full payloads: a 5 MiB message, over gRPC's usual 4 MiB default; the server accepts
    # messages up to 64 MiB so full batches fit.
    jobs = [
        EnqueueRequest(id=f"big{i}", tenant=ns.tenant, queue=ns.queue, payload=bytes([i]) * mib)
        for i in range(5)
    ]
    jobs.append(
        EnqueueRequest(id="over", tenant=ns.tenant, queue=ns.queue, payload=b"x" * (mib + 1))
    )
    results = list((await shared_stub.enqueue_batch(EnqueueBatchRequest(jobs=jobs))).results)
    assert [r.code for r in results] == [OK] * 5 + [Status.INVALID_ARGUMENT.value]
    assert "payload" in results[5].message.lower()
    assert (await get_job(shared_stub, "big4", ns.tenant)).payload == bytes([4]) * mib
