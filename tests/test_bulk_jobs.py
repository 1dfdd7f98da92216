"""CancelJobs, RestartJobs, DeleteJobs (docs/api.md#bulk-calls): an action on every job a
ListJobs filter matches, bounded by `limit` per call and resumable with `more`; jobs the action
does not apply to are skipped; counts and ListJobs agree afterwards."""

from __future__ import annotations

import pytest
from grpclib.const import Status
from helpers import (
    enqueue,
    enqueue_and_lease,
    enqueue_many,
    expect_status,
    failed_job,
    finish,
    lease,
    list_all,
    queue_counts,
    report_failure,
)
from silo._proto.silo.v1 import (
    BulkJobsRequest,
    BulkJobsResponse,
    CancelRequest,
    EnqueueRequest,
    JobStatus,
    ListJobsRequest,
    SiloStub,
)

# Core behaviour: runs once per store kind (file and S3), see conftest.
pytestmark = pytest.mark.all_stores


def bulk(tenant: str, limit: int = 0, **filter_fields: object) -> BulkJobsRequest:
    return BulkJobsRequest(filter=ListJobsRequest(tenant=tenant, **filter_fields), limit=limit)  # type: ignore[arg-type]


def result(resp: BulkJobsResponse) -> tuple[int, int, bool]:
    return resp.matched, resp.changed, resp.more


async def test_cancel_jobs_cancels_what_it_applies_to(shared_stub: SiloStub, ns) -> None:
    t, q = ns.tenant, ns.queue
    done, task = await enqueue_and_lease(shared_stub, t, q)
    await finish(shared_stub, [task], worker="worker-1")
    running, _ = await enqueue_and_lease(shared_stub, t, q)
    waiting = await enqueue_many(shared_stub, [EnqueueRequest(tenant=t, queue=q) for _ in range(3)])
    resp = await shared_stub.cancel_jobs(bulk(t, queue=q))
    # Five match; the SUCCEEDED one is skipped.
    assert result(resp) == (5, 4, False)
    assert await queue_counts(shared_stub, t) == {q: {"SUCCEEDED": 1, "CANCELLED": 4}}
    cancelled, _ = await list_all(
        shared_stub, ListJobsRequest(tenant=t, statuses=[JobStatus.CANCELLED])
    )
    assert {j.id for j in cancelled} == {running, *waiting}
    assert done not in {j.id for j in cancelled}
    assert await lease(shared_stub, [q], max_tasks=10) == []
    # Nothing left to cancel: matched, but no change and no more.
    assert result(await shared_stub.cancel_jobs(bulk(t, queue=q))) == (5, 0, False)


async def test_limit_bounds_each_call_and_more_says_go_on(shared_stub: SiloStub, ns) -> None:
    t, q = ns.tenant, ns.queue
    await enqueue_many(shared_stub, [EnqueueRequest(tenant=t, queue=q) for _ in range(25)])
    req = bulk(t, limit=10, statuses=[JobStatus.PENDING])
    assert result(await shared_stub.cancel_jobs(req)) == (10, 10, True)
    assert result(await shared_stub.cancel_jobs(req)) == (10, 10, True)
    assert result(await shared_stub.cancel_jobs(req)) == (5, 5, False)
    assert result(await shared_stub.cancel_jobs(req)) == (0, 0, False)
    assert await queue_counts(shared_stub, t) == {q: {"CANCELLED": 25}}


async def test_restart_jobs_retries_all_failed_of_a_customer(shared_stub: SiloStub, ns) -> None:
    t, q = ns.tenant, ns.queue
    c42 = [await failed_job(shared_stub, t, q, metadata={"customer": "c42"}) for _ in range(4)]
    other = await failed_job(shared_stub, t, q, metadata={"customer": "c7"})
    pending = await enqueue(shared_stub, tenant=t, queue=q, metadata={"customer": "c42"})
    resp = await shared_stub.restart_jobs(
        bulk(t, statuses=[JobStatus.FAILED], metadata={"customer": "c42"})
    )
    assert result(resp) == (4, 4, False)
    assert await queue_counts(shared_stub, t) == {q: {"PENDING": 5, "FAILED": 1}}
    tasks = await lease(shared_stub, [q], max_tasks=10)
    assert sorted(t.job_id for t in tasks) == sorted([*c42, pending])
    assert {t.attempt for t in tasks if t.job_id in c42} == {2}
    assert other not in {t.job_id for t in tasks}


async def test_delete_jobs_leaves_counts_and_lists_in_agreement(shared_stub: SiloStub, ns) -> None:
    t, q = ns.tenant, ns.queue
    await enqueue_many(shared_stub, [EnqueueRequest(tenant=t, queue=q) for _ in range(6)])
    tasks = await lease(shared_stub, [q], max_tasks=6)
    await finish(shared_stub, tasks[:3], worker="worker-1")
    for task in tasks[3:5]:
        await report_failure(shared_stub, task)
    still_running = tasks[5].job_id
    await shared_stub.cancel(CancelRequest(id=still_running, tenant=t))  # its attempt still runs
    resp = await shared_stub.delete_jobs(bulk(t, queue=q))
    assert result(resp) == (6, 5, False), "the cancelled job whose attempt runs is skipped"
    assert await queue_counts(shared_stub, t) == {q: {"CANCELLED": 1}}
    jobs, _ = await list_all(shared_stub, ListJobsRequest(tenant=t))
    assert [j.id for j in jobs] == [still_running]


async def test_a_bulk_call_goes_past_one_scan(shared_stub: SiloStub, ns) -> None:
    """More jobs than one bounded shard command scans: the call goes on from where each command
    stopped until its limit or the end of the range."""
    t, q = ns.tenant, ns.queue
    await enqueue_many(shared_stub, [EnqueueRequest(tenant=t, queue=q) for _ in range(2500)])
    assert result(await shared_stub.cancel_jobs(bulk(t))) == (2500, 2500, False)
    assert await queue_counts(shared_stub, t) == {q: {"CANCELLED": 2500}}
    resp = await shared_stub.delete_jobs(bulk(t, limit=2400, statuses=[JobStatus.CANCELLED]))
    assert result(resp) == (2400, 2400, True)
    assert result(await shared_stub.delete_jobs(bulk(t))) == (100, 100, False)
    assert await queue_counts(shared_stub, t) == {}


@pytest.mark.parametrize("rpc", ["cancel_jobs", "restart_jobs", "delete_jobs"])
@pytest.mark.parametrize(
    ("req", "names"),
    [
        (BulkJobsRequest(limit=10_001), "limit"),
        (BulkJobsRequest(filter=ListJobsRequest(statuses=[9])), "filter.statuses[0]"),
        (BulkJobsRequest(filter=ListJobsRequest(tenant="t" * 128)), "filter.tenant"),
        (BulkJobsRequest(filter=ListJobsRequest(created_after_ms=-1)), "filter.created_after_ms"),
    ],
)
async def test_bad_input_is_invalid_argument(
    shared_stub: SiloStub, rpc: str, req: BulkJobsRequest, names: str
) -> None:
    await expect_status(getattr(shared_stub, rpc)(req), Status.INVALID_ARGUMENT, names=names)


async def test_page_fields_of_the_filter_are_ignored(shared_stub: SiloStub, ns) -> None:
    await enqueue_many(
        shared_stub, [EnqueueRequest(tenant=ns.tenant, queue=ns.queue) for _ in range(3)]
    )
    req = bulk(ns.tenant, limit=10_000, page_size=5000, page_token="not a token")
    assert result(await shared_stub.cancel_jobs(req)) == (3, 3, False)
