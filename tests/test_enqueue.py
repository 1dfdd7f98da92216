"""Enqueue (docs/api.md#enqueue): defaults, every validation bound, duplicates and what GetJob
shows after."""

from __future__ import annotations

import pytest
from grpclib.const import Status
from helpers import (
    assert_between,
    enqueue,
    expect_status,
    get_job,
    lease,
    lease_one,
    now_ms,
    report_result,
    unique,
)
from silo._proto.silo.v1 import (
    ConcurrencyLimit,
    EnqueueRequest,
    JobStatus,
    RetryPolicy,
    SiloStub,
)
from silo.testing import ServerProcess

# Core behaviour: runs once per store kind (file and S3), see conftest.
pytestmark = pytest.mark.all_stores


async def test_enqueue_stores_every_field(shared_stub: SiloStub, ns) -> None:
    policy = RetryPolicy(max_retries=3, schedule_ms=[100, 200])
    before = now_ms()
    job_id = await enqueue(
        shared_stub,
        id="job-1",
        tenant=ns.tenant,
        queue=ns.queue,
        priority=70,
        payload=b"\x00\x01payload\xff",
        metadata={"customer": "acme", "région": "été"},
        retry_policy=policy,
    )
    after = now_ms()
    assert job_id == "job-1"
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert job.id == "job-1"
    assert job.tenant == ns.tenant
    assert job.queue == ns.queue
    assert job.priority == 70
    assert job.status == JobStatus.PENDING
    assert job.payload == b"\x00\x01payload\xff"
    assert job.metadata == {"customer": "acme", "région": "été"}
    assert job.retry_policy is not None
    assert job.retry_policy.max_retries == 3
    assert list(job.retry_policy.schedule_ms) == [100, 200]
    assert list(job.concurrency_limits) == []
    assert job.attempt_count == 0
    assert list(job.attempts) == []
    assert_between(job.created_at_ms, before, after, "created_at_ms")
    # start_at 0 means "now": the job is due from its enqueue.
    assert_between(job.start_at_ms, before, after, "start_at_ms")
    assert_between(job.updated_at_ms, before, after, "updated_at_ms")
    assert_between(job.next_attempt_at_ms, before, after, "next_attempt_at_ms")


async def test_default_id_is_random_and_sortable(shared_stub: SiloStub, ns) -> None:
    ids = [await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue) for _ in range(8)]
    assert all(ids), ids
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids), f"generated ids do not sort in creation order: {ids}"
    for job_id in ids:
        assert (await get_job(shared_stub, job_id, ns.tenant)).id == job_id
    # Random, not a per-tenant counter: another tenant's first id differs from this one's.
    other = await enqueue(shared_stub, tenant=unique("tenant"), queue=ns.queue)
    assert other not in ids


async def test_empty_queue_is_default(stub: SiloStub) -> None:
    # A fresh server: the default queue must hold only this test's jobs.
    a = await enqueue(stub, id="a")
    b = await enqueue(stub, id="b", queue="default")
    await enqueue(stub, id="c", queue="other")
    assert (await get_job(stub, a)).queue == "default"
    assert (await get_job(stub, b)).queue == "default"
    tasks = await lease(stub, ["default"], max_tasks=10)
    assert [t.job_id for t in tasks] == ["a", "b"]
    assert [t.queue for t in tasks] == ["default", "default"]


async def test_priority_zero_means_fifty(shared_stub: SiloStub, ns) -> None:
    job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue, priority=0)
    assert (await get_job(shared_stub, job_id, ns.tenant)).priority == 50
    task = await lease_one(shared_stub, ns.queue)
    assert task.priority == 50


@pytest.mark.parametrize("priority", [1, 50, 100])
async def test_priority_in_range_is_kept(shared_stub: SiloStub, ns, priority: int) -> None:
    job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue, priority=priority)
    assert (await get_job(shared_stub, job_id, ns.tenant)).priority == priority


# The bounds themselves are unit tests in rust/validate.rs; the cases here check, end to end,
# that the server answers INVALID_ARGUMENT naming the field and stores nothing.


@pytest.mark.parametrize("priority", [101, 2**32 - 1])
async def test_priority_over_100_is_invalid(shared_stub: SiloStub, ns, priority: int) -> None:
    req = EnqueueRequest(id="p", tenant=ns.tenant, queue=ns.queue, priority=priority)
    await expect_status(shared_stub.enqueue(req), Status.INVALID_ARGUMENT, names="priority")
    await expect_status(get_job(shared_stub, "p", ns.tenant), Status.NOT_FOUND)


@pytest.mark.parametrize("field", ["id", "tenant", "queue"])
@pytest.mark.parametrize("value", ["x" * 127, "é" * 127, "日" * 127, "a", "a b-c.d/e:f"])
async def test_name_fields_accept_1_to_127_chars(
    shared_stub: SiloStub, ns, field: str, value: str
) -> None:
    fields = {"id": unique("id"), "tenant": ns.tenant, "queue": ns.queue, field: value}
    job_id = await enqueue(shared_stub, **fields)
    job = await get_job(shared_stub, job_id, fields["tenant"])
    assert getattr(job, field) == value


@pytest.mark.parametrize("field", ["id", "tenant", "queue"])
@pytest.mark.parametrize(
    "value",
    ["é" * 128, "a\nb"],
    ids=["len128", "newline"],
)
async def test_name_fields_reject_long_or_control_chars(
    shared_stub: SiloStub, ns, field: str, value: str
) -> None:
    job_id = unique("id")
    fields = {"id": job_id, "tenant": ns.tenant, "queue": ns.queue, field: value}
    await expect_status(
        shared_stub.enqueue(EnqueueRequest(**fields)), Status.INVALID_ARGUMENT, names=field
    )
    if field == "queue":
        await expect_status(get_job(shared_stub, job_id, ns.tenant), Status.NOT_FOUND)


async def test_empty_tenant_is_the_default_tenant(shared_stub: SiloStub, ns) -> None:
    job_id = unique("id")
    await enqueue(shared_stub, id=job_id, tenant="", queue=ns.queue)
    job = await get_job(shared_stub, job_id, "")
    assert job.tenant == ""
    await expect_status(get_job(shared_stub, job_id, ns.tenant), Status.NOT_FOUND)


async def test_duplicate_id_is_already_exists_whatever_the_status(
    shared_stub: SiloStub, ns
) -> None:
    await enqueue(shared_stub, id="dup", tenant=ns.tenant, queue=ns.queue, payload=b"first")
    again = EnqueueRequest(id="dup", tenant=ns.tenant, queue=ns.queue, payload=b"second")
    await expect_status(shared_stub.enqueue(again), Status.ALREADY_EXISTS)
    assert (await get_job(shared_stub, "dup", ns.tenant)).payload == b"first"

    # Still a duplicate once the job has run to completion.
    task = await lease_one(shared_stub, ns.queue)
    await report_result(shared_stub, task)
    assert (await get_job(shared_stub, "dup", ns.tenant)).status == JobStatus.SUCCEEDED
    await expect_status(shared_stub.enqueue(again), Status.ALREADY_EXISTS)
    # Nothing new was queued by the refused enqueues.
    assert await lease(shared_stub, [ns.queue], max_tasks=10) == []


async def test_same_id_in_another_tenant_is_another_job(shared_stub: SiloStub, ns) -> None:
    other = unique("tenant")
    await enqueue(shared_stub, id="same", tenant=ns.tenant, queue=ns.queue, payload=b"1")
    await enqueue(shared_stub, id="same", tenant=other, queue=ns.queue, payload=b"2")
    assert (await get_job(shared_stub, "same", ns.tenant)).payload == b"1"
    assert (await get_job(shared_stub, "same", other)).payload == b"2"


async def test_negative_start_at_is_invalid(shared_stub: SiloStub, ns) -> None:
    req = EnqueueRequest(id="neg", tenant=ns.tenant, queue=ns.queue, start_at_ms=-1)
    await expect_status(shared_stub.enqueue(req), Status.INVALID_ARGUMENT, names="start_at")
    await expect_status(get_job(shared_stub, "neg", ns.tenant), Status.NOT_FOUND)


async def test_past_start_at_is_due_now(shared_stub: SiloStub, ns) -> None:
    job_id = await enqueue(
        shared_stub, tenant=ns.tenant, queue=ns.queue, start_at_ms=now_ms() - 60_000
    )
    assert (await get_job(shared_stub, job_id, ns.tenant)).status == JobStatus.PENDING
    task = await lease_one(shared_stub, ns.queue, wait_ms=0)
    assert task.job_id == job_id


async def test_future_start_at_is_scheduled(shared_stub: SiloStub, ns) -> None:
    start = now_ms() + 3_600_000
    job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue, start_at_ms=start)
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert job.status == JobStatus.SCHEDULED
    assert job.start_at_ms == start
    assert job.next_attempt_at_ms == start
    assert await lease(shared_stub, [ns.queue], max_tasks=10) == []


async def test_metadata_bounds_accepted(shared_stub: SiloStub, ns) -> None:
    cases = [
        {f"k{i}": str(i) for i in range(32)},
        {"k" * 127: "v"},
        {"é" * 127: "v"},
        {"k": "v" * 1024},
        {"k": "é" * 1024},
    ]
    for metadata in cases:
        job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue, metadata=metadata)
        assert (await get_job(shared_stub, job_id, ns.tenant)).metadata == metadata


@pytest.mark.parametrize(
    "metadata",
    [{f"k{i}": "v" for i in range(33)}, {"a\x00b": "v"}, {"k": "é" * 1025}],
    ids=["33-entries", "key-nul", "value-1025-unicode"],
)
async def test_metadata_out_of_bounds_is_invalid(
    shared_stub: SiloStub, ns, metadata: dict[str, str]
) -> None:
    req = EnqueueRequest(id="m", tenant=ns.tenant, queue=ns.queue, metadata=metadata)
    await expect_status(shared_stub.enqueue(req), Status.INVALID_ARGUMENT, names="metadata")
    await expect_status(get_job(shared_stub, "m", ns.tenant), Status.NOT_FOUND)


async def test_concurrency_limits_are_stored(shared_stub: SiloStub, ns) -> None:
    limits = [ConcurrencyLimit(key=f"k{i}", max_concurrency=i + 1) for i in range(7)] + [
        ConcurrencyLimit(key="é" * 127, max_concurrency=1)
    ]
    job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue, concurrency_limits=limits)
    job = await get_job(shared_stub, job_id, ns.tenant)
    assert [(c.key, c.max_concurrency) for c in job.concurrency_limits] == [
        (c.key, c.max_concurrency) for c in limits
    ]


@pytest.mark.parametrize(
    "limits",
    [
        [ConcurrencyLimit(key=f"k{i}", max_concurrency=1) for i in range(9)],
        [ConcurrencyLimit(key="k", max_concurrency=0)],
    ],
    ids=["9-limits", "max-0"],
)
async def test_concurrency_limits_out_of_bounds_are_invalid(
    shared_stub: SiloStub, ns, limits: list[ConcurrencyLimit]
) -> None:
    req = EnqueueRequest(id="c", tenant=ns.tenant, queue=ns.queue, concurrency_limits=limits)
    await expect_status(shared_stub.enqueue(req), Status.INVALID_ARGUMENT, names="concurrency")
    await expect_status(get_job(shared_stub, "c", ns.tenant), Status.NOT_FOUND)
    assert await lease(shared_stub, [ns.queue], max_tasks=10) == []


async def test_invalid_enqueue_stores_nothing(shared_stub: SiloStub, ns) -> None:
    bad = EnqueueRequest(id="x", tenant=ns.tenant, queue=ns.queue, priority=101)
    await expect_status(shared_stub.enqueue(bad), Status.INVALID_ARGUMENT)
    assert await lease(shared_stub, [ns.queue], max_tasks=10) == []
    # The id is still free.
    assert await enqueue(shared_stub, id="x", tenant=ns.tenant, queue=ns.queue) == "x"


async def test_default_payload_limit_is_one_mebibyte(shared_stub: SiloStub, ns) -> None:
    mib = 1024 * 1024
    payload = bytes(range(256)) * (mib // 256)
    job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue, payload=payload)
    assert (await get_job(shared_stub, job_id, ns.tenant)).payload == payload
    over = EnqueueRequest(id="big", tenant=ns.tenant, queue=ns.queue, payload=payload + b"x")
    await expect_status(shared_stub.enqueue(over), Status.INVALID_ARGUMENT, names="payload")
    await expect_status(get_job(shared_stub, "big", ns.tenant), Status.NOT_FOUND)


async def test_payload_limit_flag(make_server) -> None:
    server: ServerProcess = await make_server(extra_args=["--max-payload-bytes", "1024"])
    stub = server.stub()
    assert await enqueue(stub, id="at", payload=b"a" * 1024) == "at"
    assert (await get_job(stub, "at")).payload == b"a" * 1024
    task = await lease_one(stub, "default")
    assert task.payload == b"a" * 1024
    over = EnqueueRequest(id="over", payload=b"a" * 1025)
    await expect_status(stub.enqueue(over), Status.INVALID_ARGUMENT, names="payload")
    await expect_status(get_job(stub, "over"), Status.NOT_FOUND)
    # Far over the limit (but well under the 64 MiB message cap) is still INVALID_ARGUMENT.
    huge = EnqueueRequest(id="huge", payload=b"a" * (5 * 1024 * 1024))
    await expect_status(stub.enqueue(huge), Status.INVALID_ARGUMENT, names="payload")
