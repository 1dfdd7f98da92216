"""`/metrics` of a real `silo serve --http` (docs/operations.md#metrics): it parses with
prometheus-client's own parser, its counters move when jobs run, its histograms count commits
and RPCs, and its labels stay bounded (no tenant label; at most 200 queue labels)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

import aiohttp
import silo
import xxhash
from prometheus_client.parser import text_string_to_metric_families
from silo.testing import ServerProcess
from silo.types import NewJob, TaskFailure

#: The shortest per-job lease (docs/api.md): the expiry the test waits for.
MIN_JOB_LEASE_MS = 1000

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(url: str) -> Samples:
    """Every sample of /metrics by (name, sorted labels), parsed by prometheus-client."""
    async with aiohttp.ClientSession() as s, s.get(f"{url}/metrics") as r:
        assert r.status == 200
        assert r.content_type == "text/plain"
        text = await r.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_counters_move_when_jobs_run(ns, http_server: ServerProcess) -> None:
    q = ns.queue
    before = await scrape(http_server.http_url)
    async with await silo.connect(http_server.address, streams=False) as api:
        # The last job's lease is short: it is never reported, and expires.
        ids = [await api.enqueue(tenant=ns.tenant, queue=q) for _ in range(3)]
        ids.append(await api.enqueue(tenant=ns.tenant, queue=q, lease_ms=MIN_JOB_LEASE_MS))
        tasks = await api.lease_tasks(worker_id="w", queues=[q], max_tasks=4)
        assert sorted(t.job_id for t in tasks) == sorted(ids)
        ok, bad, gave_up, lost = sorted(tasks, key=lambda t: ids.index(t.job_id))
        await api.report_task_outcome(task_id=ok.task_id, worker_id="w", result=b"")
        failure = TaskFailure(code="E", non_retryable=True)
        await api.report_task_outcome(task_id=bad.task_id, worker_id="w", failure=failure)
        await api.report_task_outcome(task_id=gave_up.task_id, worker_id="w", cancelled=True)
        job = await api.wait_job(id=lost.job_id, tenant=ns.tenant, timeout_ms=30_000)
        assert job.terminal, job
        try:
            await api.get_job(id="no-such-job", tenant=ns.tenant)
        except silo.JobNotFound:
            pass
    after = await scrape(http_server.http_url)
    assert delta(before, after, "silo_jobs_enqueued_total", queue=q) == 4
    assert delta(before, after, "silo_tasks_leased_total", queue=q) == 4
    for outcome in ("succeeded", "failed", "cancelled", "lease_expired"):
        finished = delta(before, after, "silo_tasks_finished_total", queue=q, outcome=outcome)
        assert finished == 1, outcome
    # Every enqueue, lease and report waited for a durable write.
    assert delta(before, after, "silo_commit_duration_seconds_count") >= 4
    assert delta(before, after, "silo_commit_batch_size_sum") >= 4
    assert value(after, "silo_commit_batch_size_bucket", le="+Inf") == value(
        after, "silo_commit_batch_size_count"
    )
    assert delta(before, after, "silo_object_store_requests_total", op="put") >= 1
    rpc = "silo_rpc_duration_seconds_count"
    assert delta(before, after, rpc, method="Enqueue", code="OK") == 4
    assert delta(before, after, rpc, method="ReportTaskOutcome", code="OK") == 3
    assert delta(before, after, rpc, method="GetJob", code="NOT_FOUND") == 1


async def test_a_stream_is_timed_once_when_it_ends(make_server) -> None:
    """docs/operations.md#metrics: an EnqueueStream counts in silo_rpc_duration_seconds when
    the client closes it (the scrape is polled: the server ends its side just after)."""

    def streams(samples: Samples) -> float:
        return sum(
            v
            for (name, pairs), v in samples.items()
            if name == "silo_rpc_duration_seconds_count"
            and dict(pairs).get("method") == "EnqueueStream"
        )

    server: ServerProcess = await make_server(http="127.0.0.1:0")
    assert streams(await scrape(server.http_url)) == 0
    async with await silo.connect(server.address) as api:
        await api.enqueue(queue="q")
        assert streams(await scrape(server.http_url)) == 0, "still open: not counted"
    deadline = time.monotonic() + 10
    while streams(await scrape(server.http_url)) == 0:
        assert time.monotonic() < deadline, "the closed stream was never counted"
        await asyncio.sleep(0.05)
    assert streams(await scrape(server.http_url)) == 1


async def test_no_tenant_label_and_at_most_200_queue_labels(make_server) -> None:
    server: ServerProcess = await make_server(http="127.0.0.1:0")
    async with await silo.connect(server.address) as api:
        for tenant in ("a", "b"):
            jobs = [NewJob(tenant=tenant, queue=f"q{i:04d}") for i in range(1000)]
            results = await api.enqueue_many(jobs)
            assert all(r.ok for r in results)
    samples = await scrape(server.http_url)
    labels: dict[str, set[str]] = defaultdict(set)
    for (name, pairs), _ in samples.items():
        for key, label in pairs:
            labels[key].add(label)
            assert key != "tenant", name
    queues = {
        dict(pairs)["queue"]: v
        for (name, pairs), v in samples.items()
        if name == "silo_jobs_enqueued_total"
    }
    assert len(queues) == 201, len(queues)
    assert queues["_other"] == 1600
    assert sum(queues.values()) == 2000
    assert all(v == 2 for q, v in queues.items() if q != "_other")


async def test_a_node_of_several_shards_keeps_the_queue_label_bound(make_server) -> None:
    """Each of 4 shards names its first 200 queues; the node's sum still names at most 200
    (docs/operations.md#metrics) and counts every job."""
    server: ServerProcess = await make_server(http="127.0.0.1:0", extra_args=["--shards", "4"])
    tenants = {}
    for i in range(10_000):  # a tenant on each shard
        tenants.setdefault(xxhash.xxh3_64_intdigest(f"m{i}".encode()) % 4, f"m{i}")
        if len(tenants) == 4:
            break
    async with await silo.connect(server.address) as api:
        for tenant in tenants.values():
            jobs = [NewJob(tenant=tenant, queue=f"{tenant}-q{i}") for i in range(250)]
            assert all(r.ok for r in await api.enqueue_many(jobs))
        per_shard = (await api.get_stats())["shards"]
        assert len(per_shard) == 4
    samples = await scrape(server.http_url)
    queues = {
        dict(pairs)["queue"]: v
        for (name, pairs), v in samples.items()
        if name == "silo_jobs_enqueued_total"
    }
    assert len(queues) == 201, len(queues)
    assert sum(queues.values()) == 1000
    assert queues["_other"] == 1000 - 200


async def test_metrics_of_an_idle_broker_parse(http_server: ServerProcess) -> None:
    samples: Any = await scrape(http_server.http_url)
    names = {name for name, _ in samples}
    for family in (
        "silo_commit_batch_size_count",
        "silo_commit_duration_seconds_bucket",
        "silo_object_store_requests_total",
    ):
        assert family in names, family


async def jobs_gauge(server: ServerProcess) -> dict[str, int]:
    """`silo_jobs{status}` of a server, by upper-case status name."""
    samples = await scrape(server.http_url)
    return {
        dict(pairs)["status"].upper(): int(v)
        for (name, pairs), v in samples.items()
        if name == "silo_jobs"
    }


async def listed_counts(api: silo.Client, tenants: list[str]) -> dict[str, int]:
    """The jobs per status that ListQueues reports, summed over `tenants`' queues."""
    total: dict[str, int] = defaultdict(int)
    for tenant in tenants:
        for q in await api.list_queues(tenant=tenant):
            for status, n in q.counts.items():
                total[status] += n
    return total


async def test_jobs_gauge_follows_every_change_and_equals_list_queues(make_server) -> None:
    # A fresh broker: the gauge is broker-wide, so absolute figures can be checked.
    server: ServerProcess = await make_server(http="127.0.0.1:0")
    tenants = ["a", "b"]
    statuses = ("SCHEDULED", "PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")

    async def check(api: silo.Client, **expected: int) -> None:
        want = {s: expected.get(s.lower(), 0) for s in statuses}
        assert await jobs_gauge(server) == want
        listed = await listed_counts(api, tenants)
        assert {s: listed.get(s, 0) for s in statuses} == want

    async with await silo.connect(server.address, streams=False) as api:
        await check(api)
        later = 4_000_000_000_000
        await api.enqueue(id="s", tenant="a", queue="q1", start_at_ms=later)
        for i in range(3):
            await api.enqueue(id=f"p{i}", tenant="a", queue="q1")
        await api.enqueue(id="b0", tenant="b", queue="q2")
        await check(api, scheduled=1, pending=4)
        tasks = await api.lease_tasks(worker_id="w", queues=["q1"], max_tasks=3)
        assert len(tasks) == 3
        await check(api, scheduled=1, pending=1, running=3)
        t0, t1, t2 = sorted(tasks, key=lambda t: t.job_id)
        await api.report_task_outcome(task_id=t0.task_id, worker_id="w", result=b"ok")
        failure = TaskFailure(code="E", non_retryable=True)
        await api.report_task_outcome(task_id=t1.task_id, worker_id="w", failure=failure)
        await api.cancel(id=t2.job_id, tenant="a")
        await check(api, scheduled=1, pending=1, succeeded=1, failed=1, cancelled=1)
        await api.report_task_outcome(task_id=t2.task_id, worker_id="w", cancelled=True)
        await api.expedite_job(id="s", tenant="a")
        await check(api, pending=2, succeeded=1, failed=1, cancelled=1)
        await api.restart_job(id=t1.job_id, tenant="a")
        await api.delete_job(id=t0.job_id, tenant="a")
        await check(api, pending=3, cancelled=1)
    # The gauge is stored with the counts: a crash and a restart give the same figures.
    server.kill9()
    await asyncio.to_thread(server.restart)
    async with await silo.connect(server.address, streams=False) as api:
        await check(api, pending=3, cancelled=1)


async def test_metrics_off_answers_404_and_the_broker_serves_on(make_server) -> None:
    server: ServerProcess = await make_server(http="127.0.0.1:0", extra_args=("--metrics", "off"))
    async with await silo.connect(server.address, streams=False) as api:
        await api.enqueue(tenant="t", queue="q")
        assert [q.counts["PENDING"] for q in await api.list_queues(tenant="t")] == [1]
    async with aiohttp.ClientSession() as s, s.get(f"{server.http_url}/metrics") as r:
        assert r.status == 404
        assert "--metrics off" in await r.text()
