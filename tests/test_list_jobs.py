"""ListJobs (docs/api.md#listjobs): every filter alone and combined, newest first, tenant
isolation, page tokens, bounded pages for filters the index does not cover, paging through a
backlog that keeps changing, and bad input."""

from __future__ import annotations

import asyncio

import pytest
from grpclib.const import Status
from helpers import (
    enqueue,
    enqueue_many,
    expect_status,
    finish,
    get_job,
    lease,
    list_all,
    now_ms,
    report_failure,
    unique,
)
from silo._proto.silo.v1 import (
    CancelRequest,
    EnqueueRequest,
    JobStatus,
    ListJobsRequest,
    SiloStub,
)

# Core behaviour: runs once per store kind (file and S3), see conftest.
pytestmark = pytest.mark.all_stores


async def ids_of(stub: SiloStub, **fields: object) -> list[str]:
    jobs, _ = await list_all(stub, ListJobsRequest(**fields))  # type: ignore[arg-type]
    return [j.id for j in jobs]


async def test_newest_first_without_attempts(shared_stub: SiloStub, ns) -> None:
    first = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue, payload=b"1")
    batch = await enqueue_many(
        shared_stub,
        [EnqueueRequest(tenant=ns.tenant, queue=ns.queue, payload=b"b") for _ in range(5)],
    )
    last = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue, metadata={"k": "v"})
    page = await shared_stub.list_jobs(ListJobsRequest(tenant=ns.tenant))
    assert [j.id for j in page.jobs] == [last, *reversed(batch), first]
    assert page.next_page_token == ""
    created = [j.created_at_ms for j in page.jobs]
    assert created == sorted(created, reverse=True)
    # A listed job is GetJob's job, without its attempts.
    listed = page.jobs[-1]
    assert listed == await get_job(shared_stub, first, ns.tenant, attempts=False)
    assert (listed.payload, listed.attempts) == (b"1", [])
    assert page.jobs[0].metadata == {"k": "v"}


async def test_each_filter_alone(shared_stub: SiloStub, ns) -> None:
    t, other_q = ns.tenant, unique("queue")
    plain = await enqueue(shared_stub, tenant=t, queue=ns.queue)
    tagged = await enqueue(
        shared_stub, tenant=t, queue=other_q, metadata={"customer": "c42", "tier": "gold"}
    )
    later = await enqueue(shared_stub, tenant=t, queue=ns.queue, start_at_ms=now_ms() + 3_600_000)
    (task,) = await lease(shared_stub, [other_q])
    await report_failure(shared_stub, task)
    await shared_stub.cancel(CancelRequest(id=later, tenant=t))

    assert await ids_of(shared_stub, tenant=t) == [later, tagged, plain]
    assert await ids_of(shared_stub, tenant=t, queue=ns.queue) == [later, plain]
    assert await ids_of(shared_stub, tenant=t, queue=other_q) == [tagged]
    assert await ids_of(shared_stub, tenant=t, statuses=[JobStatus.PENDING]) == [plain]
    assert await ids_of(shared_stub, tenant=t, statuses=[JobStatus.FAILED]) == [tagged]
    assert await ids_of(shared_stub, tenant=t, statuses=[JobStatus.CANCELLED]) == [later]
    assert await ids_of(shared_stub, tenant=t, statuses=[JobStatus.RUNNING]) == []
    assert await ids_of(shared_stub, tenant=t, metadata={"customer": "c42"}) == [tagged]
    assert await ids_of(shared_stub, tenant=t, metadata={"customer": "c43"}) == []
    # created_after_ms is inclusive, created_before_ms exclusive (jobs may share a ms).
    everything, _ = await list_all(shared_stub, ListJobsRequest(tenant=t))
    created = {j.id: j.created_at_ms for j in everything}
    for at in sorted(set(created.values())):
        after = await ids_of(shared_stub, tenant=t, created_after_ms=at)
        assert after == [j.id for j in everything if j.created_at_ms >= at]
        before = await ids_of(shared_stub, tenant=t, created_before_ms=at)
        assert before == [j.id for j in everything if j.created_at_ms < at]
        window = await ids_of(shared_stub, tenant=t, created_after_ms=at, created_before_ms=at + 1)
        assert window == [j.id for j in everything if j.created_at_ms == at]


async def test_filters_combined_are_anded(shared_stub: SiloStub, ns) -> None:
    t, q2 = ns.tenant, unique("queue")
    reqs = [
        EnqueueRequest(id=f"{q}-{c}-{i}", tenant=t, queue=q, metadata={"c": c, "n": str(i % 2)})
        for q in (ns.queue, q2)
        for c in ("a", "b")
        for i in range(4)
    ]
    await enqueue_many(shared_stub, reqs)
    # Fail every job of customer a in queue 1 (leased all together: queue 1 holds 8 jobs).
    tasks = await lease(shared_stub, [ns.queue], max_tasks=8)
    for task in tasks:
        if task.metadata["c"] == "a":
            await report_failure(shared_stub, task)
    both = await ids_of(
        shared_stub,
        tenant=t,
        queue=ns.queue,
        statuses=[JobStatus.FAILED, JobStatus.RUNNING],
        metadata={"c": "a", "n": "1"},
    )
    assert both == [f"{ns.queue}-a-3", f"{ns.queue}-a-1"]
    running_b = await ids_of(shared_stub, tenant=t, queue=ns.queue, statuses=[JobStatus.RUNNING])
    assert sorted(running_b) == sorted(f"{ns.queue}-b-{i}" for i in range(4))
    pending = await ids_of(shared_stub, tenant=t, statuses=[JobStatus.PENDING], metadata={"c": "b"})
    assert pending == [f"{q2}-b-{i}" for i in reversed(range(4))]
    # Several statuses are one newest-first merge.
    merged = await ids_of(shared_stub, tenant=t, statuses=[JobStatus.PENDING, JobStatus.FAILED])
    expected = [r.id for r in reversed(reqs) if r.queue == q2 or r.metadata["c"] == "a"]
    assert merged == expected


async def test_tenants_are_isolated(shared_stub: SiloStub, ns) -> None:
    other = unique("tenant")
    mine = await enqueue(shared_stub, id="same-id", tenant=ns.tenant, queue=ns.queue)
    theirs = await enqueue(shared_stub, id="same-id", tenant=other, queue=ns.queue)
    assert mine == theirs == "same-id"
    for tenant in (ns.tenant, other):
        jobs, _ = await list_all(shared_stub, ListJobsRequest(tenant=tenant))
        assert [(j.id, j.tenant) for j in jobs] == [("same-id", tenant)]
    assert await ids_of(shared_stub, tenant=unique("tenant")) == []


async def test_pages_follow_tokens_exactly_once(shared_stub: SiloStub, ns) -> None:
    ids = await enqueue_many(
        shared_stub, [EnqueueRequest(tenant=ns.tenant, queue=ns.queue) for _ in range(25)]
    )
    jobs, pages = await list_all(shared_stub, ListJobsRequest(tenant=ns.tenant, page_size=10))
    assert [j.id for j in jobs] == list(reversed(ids))
    assert pages == 3
    # page_size 0 is 100.
    page = await shared_stub.list_jobs(ListJobsRequest(tenant=ns.tenant))
    assert len(page.jobs) == 25 and page.next_page_token == ""


async def test_a_filter_the_index_does_not_cover_answers_short_pages(
    shared_stub: SiloStub, ns
) -> None:
    """The metadata index finds 3,000 candidates; only the 5 oldest are in the queue asked for.
    Each page scans a bounded number of entries, so the first pages come back empty with a
    token instead of reading every candidate."""
    t, rare = ns.tenant, unique("rare")
    tag = {"batch": ns.queue}
    old = await enqueue_many(
        shared_stub, [EnqueueRequest(tenant=t, queue=rare, metadata=tag) for _ in range(5)]
    )
    await enqueue_many(
        shared_stub,
        [EnqueueRequest(tenant=t, queue=ns.queue, metadata=tag) for _ in range(3000)],
    )
    req = ListJobsRequest(tenant=t, queue=rare, metadata=tag, page_size=10)
    first = await shared_stub.list_jobs(req)
    assert first.jobs == [] and first.next_page_token != ""
    jobs, pages = await list_all(shared_stub, req)
    assert [j.id for j in jobs] == list(reversed(old))
    assert pages >= 3, f"{pages} pages: a page scanned more than its budget"


async def test_paging_while_jobs_change_status_yields_each_job_once(
    shared_stub: SiloStub, ns
) -> None:
    ids = await enqueue_many(
        shared_stub, [EnqueueRequest(tenant=ns.tenant, queue=ns.queue) for _ in range(2100)]
    )
    stop = asyncio.Event()

    async def work() -> None:
        while not stop.is_set():
            tasks = await lease(shared_stub, [ns.queue], max_tasks=50, worker="w")
            if not tasks:
                return
            await finish(shared_stub, tasks)

    worker = asyncio.create_task(work())
    try:
        for fields in ({}, {"queue": ns.queue}):
            seen, pages = await list_all(
                shared_stub, ListJobsRequest(tenant=ns.tenant, page_size=100, **fields)
            )
            assert [j.id for j in seen] == list(reversed(ids))
            assert pages == 21
    finally:
        stop.set()
        await worker
    statuses = {j.status for j in seen}
    assert statuses <= {JobStatus.PENDING, JobStatus.RUNNING, JobStatus.SUCCEEDED}


async def test_a_token_is_valid_under_another_filter(shared_stub: SiloStub, ns) -> None:
    """A token is a position (newest first by creation), not a cursor of one index."""
    ids = await enqueue_many(
        shared_stub, [EnqueueRequest(tenant=ns.tenant, queue=ns.queue) for _ in range(4)]
    )
    page = await shared_stub.list_jobs(ListJobsRequest(tenant=ns.tenant, page_size=2))
    rest = await shared_stub.list_jobs(
        ListJobsRequest(
            tenant=ns.tenant,
            queue=ns.queue,
            statuses=[JobStatus.PENDING],
            page_token=page.next_page_token,
        )
    )
    assert [j.id for j in rest.jobs] == [ids[1], ids[0]]


@pytest.mark.parametrize(
    ("fields", "names"),
    [
        ({"page_token": "not-a-token"}, "page_token"),
        ({"page_token": "AQ"}, "page_token"),
        ({"page_size": 1001}, "page_size"),
        ({"statuses": [0]}, "statuses[0]"),
        ({"statuses": [JobStatus.FAILED, 7]}, "statuses[1]"),
        ({"tenant": "t" * 128}, "tenant"),
        ({"queue": "q\n"}, "queue"),
        ({"metadata": {"": "v"}}, "metadata"),
        ({"metadata": {"k": "v" * 1025}}, "metadata[k]"),
        ({"created_after_ms": -1}, "created_after_ms"),
        ({"created_before_ms": -5}, "created_before_ms"),
    ],
)
async def test_bad_input_is_invalid_argument(
    shared_stub: SiloStub, ns, fields: dict[str, object], names: str
) -> None:
    req = ListJobsRequest(**{"tenant": ns.tenant, **fields})  # type: ignore[arg-type]
    await expect_status(shared_stub.list_jobs(req), Status.INVALID_ARGUMENT, names=names)


async def test_page_size_1000_is_the_maximum(shared_stub: SiloStub, ns) -> None:
    await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    page = await shared_stub.list_jobs(ListJobsRequest(tenant=ns.tenant, page_size=1000))
    assert len(page.jobs) == 1
