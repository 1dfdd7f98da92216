"""Rate limits (docs/api.md#rate-limits, docs/architecture.md#rate-limits): a token bucket per
(tenant, key), taken at lease. Checked on the server's own timestamps (an attempt's
`started_at_ms`), so a slow client cannot hide a burst."""

from __future__ import annotations

import asyncio

import pytest
from grpclib.const import Status
from helpers import (
    enqueue,
    expect_status,
    get_job,
    lease,
    report_result,
)
from silo._proto.silo.admin.v1 import AdminStub, GetRateLimitRequest
from silo._proto.silo.v1 import (
    EnqueueBatchRequest,
    EnqueueRequest,
    JobStatus,
    RateLimit,
    SiloStub,
)
from silo.testing import ServerProcess

# Core behaviour: runs once per store kind (file and S3), see conftest.
pytestmark = pytest.mark.all_stores

TEN_PER_SECOND = RateLimit(key="ten", limit=10, period_ms=1000)


async def enqueue_many(stub: SiloStub, tenant: str, queue: str, n: int, **fields) -> list[str]:
    jobs = [EnqueueRequest(tenant=tenant, queue=queue, **fields) for _ in range(n)]
    results = (await stub.enqueue_batch(EnqueueBatchRequest(jobs=jobs))).results
    assert all(r.code == 0 for r in results), results
    return [r.id for r in results]


def envelope_violations(starts: list[int], limit: int, period_ms: int) -> list[str]:
    """Windows [s, s + d] of the sorted start times holding more than limit + limit*d/period."""
    bad = []
    for i, first in enumerate(starts):
        for j in range(i, len(starts)):
            d = starts[j] - first
            count = j - i + 1
            if count > limit + limit * d / period_ms:
                bad.append(f"{count} starts in [{first}, {starts[j]}] ({d} ms)")
    return bad


async def test_a_backlog_starts_within_the_bucket_and_at_its_rate(shared_stub, ns) -> None:
    n = 40
    ids = await enqueue_many(shared_stub, ns.tenant, ns.queue, n, rate_limits=[TEN_PER_SECOND])
    first = await lease(shared_stub, [ns.queue], max_tasks=1000)
    assert len(first) == 10, "the first lease of a backlog gets exactly the bucket"
    leased = len(first)
    tasks = list(first)
    while leased < n:
        got = await lease(shared_stub, [ns.queue], max_tasks=1000, wait_ms=5000)
        assert got, "a token is due every 100 ms: a 5 s long-poll always gets one"
        leased += len(got)
        tasks += got
    for t in tasks:
        await report_result(shared_stub, t)
    starts = sorted(
        [(await get_job(shared_stub, i, ns.tenant)).attempts[0].started_at_ms for i in ids]
    )
    assert envelope_violations(starts, 10, 1000) == []
    # Long run: after the first 10, one start per token, 100 ms apart.
    span = starts[-1] - starts[0]
    rate = (n - 10) / (span / 1000)
    assert 8.0 <= rate <= 10.0 + 10 * 1000 / span, f"{rate:.2f} starts/s after the burst"


async def test_get_job_names_the_key_a_job_waits_on(shared_stub, shared_admin, ns) -> None:
    slow = RateLimit(key="slow", limit=1, period_ms=3_600_000)
    a, b = await enqueue_many(shared_stub, ns.tenant, ns.queue, 2, rate_limits=[slow])
    assert [t.job_id for t in await lease(shared_stub, [ns.queue], max_tasks=10)] == [a]
    job = await get_job(shared_stub, b, ns.tenant)
    assert job.status == JobStatus.PENDING
    assert job.waiting_on_rate_limit == "slow"
    assert list(job.rate_limits) == [slow]
    state = await shared_admin.get_rate_limit(GetRateLimitRequest(tenant=ns.tenant, key="slow"))
    assert (state.limit, state.period_ms, list(state.waiters)) == (1, 3_600_000, [b])
    assert 0 <= state.tokens < 0.01
    assert state.next_token_at_ms > 0


async def test_a_blocked_key_does_not_delay_other_keys(shared_stub, ns) -> None:
    blocked = RateLimit(key="blocked", limit=1, period_ms=3_600_000)
    fast = RateLimit(key="fast", limit=1000, period_ms=1000)
    expected = []
    for _ in range(5):  # interleaved in one queue: each blocked job is ahead of others
        expected.append(
            await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue, rate_limits=[blocked])
        )
        expected.append(
            await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue, rate_limits=[fast])
        )
        expected.append(await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue))
    got = [t.job_id for t in await lease(shared_stub, [ns.queue], max_tasks=100)]
    assert got == [expected[0]] + [j for i, j in enumerate(expected) if i % 3 != 0]


async def test_changing_the_limit_takes_effect(shared_stub, shared_admin, ns) -> None:
    hourly = RateLimit(key="k", limit=1, period_ms=3_600_000)
    await enqueue_many(shared_stub, ns.tenant, ns.queue, 3, rate_limits=[hourly])
    assert len(await lease(shared_stub, [ns.queue], max_tasks=10)) == 1
    # The last enqueue wins: 20 per second from now on (tokens held are kept: none).
    quick = RateLimit(key="k", limit=20, period_ms=1000)
    await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue, rate_limits=[quick])
    state = await shared_admin.get_rate_limit(GetRateLimitRequest(tenant=ns.tenant, key="k"))
    assert (state.limit, state.period_ms) == (20, 1000)
    got = []
    while len(got) < 3:
        got += await lease(shared_stub, [ns.queue], max_tasks=10, wait_ms=5000)
    job = await get_job(shared_stub, got[-1].job_id, ns.tenant)
    # Three tokens at 20/s: 150 ms, where the old rate would have taken three hours.
    assert job.attempts[0].started_at_ms - state.next_token_at_ms < 1000


async def test_tokens_survive_kill9(make_server) -> None:
    server: ServerProcess = await make_server()
    stub = server.stub()
    hourly = RateLimit(key="k", limit=2, period_ms=3_600_000)
    await enqueue_many(stub, "t", "q", 4, rate_limits=[hourly])
    assert len(await lease(stub, ["q"], max_tasks=10)) == 2
    await asyncio.to_thread(server.kill9)
    await server.arestart()
    stub = server.stub()
    assert await lease(stub, ["q"], max_tasks=10) == [], "a restart refills no bucket"
    admin = AdminStub(server.channel())
    state = await admin.get_rate_limit(GetRateLimitRequest(tenant="t", key="k"))
    assert state.tokens < 0.01
    assert len(state.waiters) == 2


@pytest.mark.parametrize(
    ("limit", "field"),
    [
        (RateLimit(key="", limit=1, period_ms=1), "rate_limits[0].key"),
        (RateLimit(key="k" * 128, limit=1, period_ms=1), "rate_limits[0].key"),
        (RateLimit(key="k", limit=0, period_ms=1), "rate_limits[0].limit"),
        (RateLimit(key="k", limit=1, period_ms=0), "rate_limits[0].period_ms"),
        (RateLimit(key="k", limit=1, period_ms=86_400_001), "rate_limits[0].period_ms"),
    ],
)
async def test_bad_rate_limits_name_the_field(shared_stub, limit, field) -> None:
    req = EnqueueRequest(rate_limits=[limit])
    await expect_status(shared_stub.enqueue(req), Status.INVALID_ARGUMENT, names=field)


async def test_more_than_eight_rate_limits_are_refused(shared_stub) -> None:
    limits = [RateLimit(key=f"k{i}", limit=1, period_ms=1000) for i in range(9)]
    req = EnqueueRequest(rate_limits=limits)
    await expect_status(shared_stub.enqueue(req), Status.INVALID_ARGUMENT, names="rate_limits")


async def test_get_rate_limit_checks_its_input(shared_admin) -> None:
    req = GetRateLimitRequest(tenant="t", key="")
    await expect_status(shared_admin.get_rate_limit(req), Status.INVALID_ARGUMENT, names="key")
    unknown = await shared_admin.get_rate_limit(GetRateLimitRequest(tenant="t", key="never"))
    assert (unknown.limit, unknown.tokens, list(unknown.waiters)) == (0, 0.0, [])
