"""The operator calls of the typed `silo.Api` (python/silo/methods.py) against an embedded broker
(`silo.open`) and a remote one (`silo.connect`): ListJobs, ListQueues, RestartJob, ExpediteJob,
DeleteJob and the bulk calls answer typed values and raise the documented classes. The wire
behaviour itself is tested per RPC (tests/test_list_jobs.py, ...); the full API is py-perf's."""

from __future__ import annotations

import pytest
import silo
from conftest import MakeApi
from helpers import now_ms
from silo import BulkResult, JobFilter, JobStatus, QueueStats, TaskFailure


async def fail(api: silo.Api, queue: str, n: int) -> list[str]:
    """Leases `n` jobs of `queue` and fails each for good; their ids."""
    tasks = await api.lease_tasks(worker_id="w", queues=[queue], max_tasks=n)
    assert len(tasks) == n
    for t in tasks:
        failure = TaskFailure(code="boom", message="no", non_retryable=True)
        await api.report_task_outcome(task_id=t.task_id, worker_id="w", failure=failure)
    return [t.job_id for t in tasks]


async def test_search_counts_and_operator_calls(make_api: MakeApi) -> None:
    api = await make_api()
    ids = [
        await api.enqueue(id=f"j{i}", tenant="t", queue="q", metadata={"c": str(i % 2)})
        for i in range(4)
    ]
    later = await api.enqueue(id="later", tenant="t", queue="q", start_at_ms=now_ms() + 3_600_000)
    failed = await fail(api, "q", 2)  # the two oldest, FIFO
    assert failed == ["j0", "j1"]

    listed = [j.id async for j in api.list_jobs(tenant="t", page_size=2)]
    assert listed == ["later", *reversed(ids)], "newest first, across pages"
    page = await api.list_jobs_page(tenant="t", statuses=[JobStatus.FAILED], metadata={"c": "1"})
    assert [j.id for j in page.jobs] == ["j1"] and page.next_page_token == ""
    assert page.jobs[0].status is JobStatus.FAILED and page.jobs[0].attempts == ()

    (queue,) = await api.list_queues(tenant="t")
    assert isinstance(queue, QueueStats) and (queue.name, queue.paused) == ("q", False)
    assert dict(queue.counts) == {
        "SCHEDULED": 1,
        "PENDING": 2,
        "RUNNING": 0,
        "SUCCEEDED": 0,
        "FAILED": 2,
        "CANCELLED": 0,
    }

    restarted = await api.restart_job(id="j0", tenant="t")
    assert (restarted.status, restarted.attempt_count) == (JobStatus.PENDING, 1)
    expedited = await api.expedite_job(id=later, tenant="t")
    assert expedited.status is JobStatus.PENDING
    await api.delete_job(id="j1", tenant="t")
    with pytest.raises(silo.JobNotFound):
        await api.get_job(id="j1", tenant="t")
    with pytest.raises(silo.errors.InvalidJobState):
        await api.delete_job(id="j0", tenant="t")  # PENDING again: not ended
    with pytest.raises(silo.errors.InvalidJobState):
        await api.restart_job(id="j2", tenant="t")
    with pytest.raises(silo.InvalidArgument, match="page_token"):
        await api.list_jobs_page(tenant="t", page_token="not-a-token")


async def test_bulk_calls(make_api: MakeApi) -> None:
    api = await make_api()
    for i in range(5):
        await api.enqueue(id=f"j{i}", tenant="t", queue="q", metadata={"batch": "b"})
    await fail(api, "q", 3)
    failed = JobFilter(tenant="t", statuses=(JobStatus.FAILED,), metadata={"batch": "b"})
    first = await api.restart_jobs(filter=failed, limit=2)
    assert first == BulkResult(matched=2, changed=2, more=True)
    rest = await api.restart_jobs(filter=failed, limit=2)
    assert (rest.changed, rest.more) == (1, False)
    cancelled = await api.cancel_jobs(filter=JobFilter(tenant="t", queue="q"))
    assert (cancelled.changed, cancelled.more) == (5, False)
    deleted = await api.delete_jobs(filter=JobFilter(tenant="t"))
    assert (deleted.matched, deleted.changed, deleted.more) == (5, 5, False)
    assert await api.list_queues(tenant="t") == []
    with pytest.raises(silo.InvalidArgument, match="limit"):
        await api.delete_jobs(filter=JobFilter(tenant="t"), limit=10_001)
