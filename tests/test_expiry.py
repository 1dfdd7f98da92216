"""Expiry and per-job leases (docs/api.md#expiry, docs/api.md#leases): a job whose first
attempt has not started by its `expire_at_ms` fails with code `expired`; a job's `lease_ms`
is its tasks' lease. (Exact timing is tested on the manual clock in rust/shard/tests/flow.rs.)"""

from __future__ import annotations

import pytest
from grpclib.const import Status
from helpers import (
    enqueue,
    expect_status,
    get_job,
    heartbeat,
    lease_one,
    now_ms,
    report_failure,
    wait_for_status,
)
from silo._proto.silo.v1 import EnqueueRequest, JobStatus, RetryPolicy

# Core behaviour: runs once per store kind (file and S3), see conftest.
pytestmark = pytest.mark.all_stores


async def test_a_job_not_started_in_time_fails_expired(shared_stub, ns) -> None:
    soon = now_ms() + 300
    job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue, expire_at_ms=soon)
    job = await wait_for_status(shared_stub, job_id, ns.tenant, [JobStatus.FAILED])
    assert job.last_failure.code == "expired"
    assert job.last_failure.non_retryable
    assert job.attempt_count == 0 and job.expire_at_ms == soon
    assert job.updated_at_ms > soon
    # Nothing is left to lease.
    late = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    assert (await lease_one(shared_stub, ns.queue)).job_id == late


async def test_a_started_job_is_not_expired_and_its_retries_are_not_either(shared_stub, ns) -> None:
    job_id = await enqueue(
        shared_stub,
        tenant=ns.tenant,
        queue=ns.queue,
        expire_at_ms=now_ms() + 300,
        retry_policy=RetryPolicy(max_retries=1, schedule_ms=[600]),
    )
    task = await lease_one(shared_stub, ns.queue)
    await report_failure(shared_stub, task)
    retry = await lease_one(shared_stub, ns.queue, wait_ms=5000)
    assert (retry.job_id, retry.attempt) == (job_id, 2)


async def test_the_expired_code_is_the_brokers(shared_stub, ns) -> None:
    await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue)
    task = await lease_one(shared_stub, ns.queue)
    await expect_status(
        report_failure(shared_stub, task, code="expired"),
        Status.INVALID_ARGUMENT,
        names="failure.code",
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"expire_at_ms": -1}, "expire_at_ms"),
        ({"start_at_ms": 2_000_000_000_000, "expire_at_ms": 1_999_999_999_999}, "expire_at_ms"),
        ({"lease_ms": 999}, "lease_ms"),
        ({"lease_ms": 3_600_001}, "lease_ms"),
        ({"lease_ms": -1}, "lease_ms"),
    ],
)
async def test_bad_expiry_and_lease_fields_name_the_field(shared_stub, fields, field) -> None:
    await expect_status(
        shared_stub.enqueue(EnqueueRequest(**fields)), Status.INVALID_ARGUMENT, names=field
    )


async def test_a_job_lease_ms_is_its_tasks_lease(shared_stub, ns) -> None:
    job_id = await enqueue(shared_stub, tenant=ns.tenant, queue=ns.queue, lease_ms=90_000)
    before = now_ms()
    task = await lease_one(shared_stub, ns.queue)
    assert task.heartbeat_interval_ms == 30_000
    assert before + 90_000 <= task.lease_expires_at_ms <= now_ms() + 90_000
    hb = await heartbeat(shared_stub, task)
    assert hb.lease_expires_at_ms - now_ms() > 60_000, "a heartbeat extends by the job's lease"
    assert (await get_job(shared_stub, job_id, ns.tenant)).lease_ms == 90_000
