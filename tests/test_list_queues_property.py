"""ListQueues counts always equal what ListJobs finds (docs/architecture.md#indexes-and-counts).

A Hypothesis state machine drives one real broker with random enqueues (due now or later, with
or without retries, tagged or not, with a unique key or not, some already expired so that flow
control's expiry fails them at once), leases, reports of every kind, cancels, restarts,
expedites, deletes, bulk calls and queue pauses, and after every step checks, for each queue
of the example's tenant: ListQueues' count of each status equals the number of jobs ListJobs
finds with that status in that queue, the tenant-wide status listings agree with them, and
GetJob shows every listed job in the status it was listed under. Each example uses its own
tenant, so examples never interact. Synchronous (grpcio through `helpers.SyncWire`): no event
loop is shared with pytest-asyncio.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from helpers import STATUS_NAMES, SyncWire, now_ms
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from silo._proto.silo.v1 import (
    BulkJobsRequest,
    BulkJobsResponse,
    CancelRequest,
    CancelResponse,
    DeleteJobRequest,
    DeleteJobResponse,
    EnqueueRequest,
    EnqueueResponse,
    ExpediteJobRequest,
    GetJobRequest,
    Job,
    JobStatus,
    LeaseTasksRequest,
    LeaseTasksResponse,
    ListJobsRequest,
    ListJobsResponse,
    ListQueuesRequest,
    ListQueuesResponse,
    QueueRef,
    QueueStats,
    ReportTaskOutcomeRequest,
    ReportTaskOutcomeResponse,
    RestartJobRequest,
    RetryPolicy,
    Task,
    TaskCancelled,
    TaskFailure,
)
from silo.testing import ServerProcess

MAX_EXAMPLES = int(os.environ.get("SILO_PROP_EXAMPLES", "25"))
STEPS = int(os.environ.get("SILO_PROP_STEPS", "30"))
QUEUES = ("qa", "qb")
SILO = "/silo.v1.Silo/"
# Codes an operation may answer when the random job is in a state it does not apply to.
REFUSED = {grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND}


class Wire(SyncWire):
    def ok(self, method: str, request: Any, reply: type[Any]) -> Any:
        code, resp = self.attempt(SILO + method, request, reply)
        assert code is grpc.StatusCode.OK or code in REFUSED, f"{method}: {code}"
        return resp

    def list_all(self, req: ListJobsRequest) -> list[Job]:
        jobs: list[Job] = []
        while True:
            page = self.call(SILO + "ListJobs", req, ListJobsResponse)
            jobs.extend(page.jobs)
            if not page.next_page_token:
                return jobs
            req.page_token = page.next_page_token


class CountsMachine(RuleBasedStateMachine):
    def __init__(self, wire: Wire) -> None:
        super().__init__()
        self.wire = wire
        self.tenant = f"prop-{uuid.uuid4().hex[:10]}"
        self.jobs: list[str] = []
        self.tasks: list[Task] = []

    # ------------------------------------------------------------------------------ rules

    @rule(
        queue=st.sampled_from(QUEUES),
        later=st.booleans(),
        retries=st.integers(0, 2),
        tag=st.sampled_from(["", "a", "b"]),
        unique=st.sampled_from(["", "", "u"]),
        expired=st.booleans(),
    )
    def enqueue(
        self, queue: str, later: bool, retries: int, tag: str, unique: str, expired: bool
    ) -> None:
        req = EnqueueRequest(
            tenant=self.tenant,
            queue=queue,
            start_at_ms=now_ms() + 3_600_000 if later else 0,
            retry_policy=RetryPolicy(max_retries=retries, schedule_ms=[0]) if retries else None,
            metadata={"tag": tag} if tag else {},
            unique_key=unique,
            # A deadline already past: expiry fails the job in the enqueue's own step.
            expire_at_ms=1 if expired and not later else 0,
        )
        self.jobs.append(self.wire.call(SILO + "Enqueue", req, EnqueueResponse).id)

    @rule(queue=st.sampled_from(QUEUES), pause=st.booleans())
    def pause(self, queue: str, pause: bool) -> None:
        ref = QueueRef(tenant=self.tenant, queue=queue)
        stats = self.wire.call(SILO + ("PauseQueue" if pause else "ResumeQueue"), ref, QueueStats)
        assert stats.paused == pause

    @rule(queue=st.sampled_from(QUEUES), n=st.integers(1, 3))
    def lease(self, queue: str, n: int) -> None:
        req = LeaseTasksRequest(worker_id="w", max_tasks=n, queues=[queue])
        self.tasks.extend(self.wire.call(SILO + "LeaseTasks", req, LeaseTasksResponse).tasks)

    # No preconditions on what the broker answered (leases): a replay would draw differently.
    @rule(i=st.integers(0, 99), kind=st.sampled_from(["ok", "fail", "fatal", "gave_up"]))
    def report(self, i: int, kind: str) -> None:
        if not self.tasks:
            return
        task = self.tasks.pop(i % len(self.tasks))
        req = ReportTaskOutcomeRequest(task_id=task.task_id, worker_id="w")
        if kind == "ok":
            req.result = b"r"
        elif kind == "gave_up":
            req.cancelled = TaskCancelled()
        else:
            req.failure = TaskFailure(code="x", non_retryable=kind == "fatal")
        self.wire.ok("ReportTaskOutcome", req, ReportTaskOutcomeResponse)

    @rule(i=st.integers(0, 99), op=st.sampled_from(["cancel", "restart", "expedite", "delete"]))
    def operate(self, i: int, op: str) -> None:
        if not self.jobs:
            return
        job_id = self.jobs[i % len(self.jobs)]
        ref = {"id": job_id, "tenant": self.tenant}
        if op == "cancel":
            self.wire.ok("Cancel", CancelRequest(**ref), CancelResponse)
        elif op == "restart":
            self.wire.ok("RestartJob", RestartJobRequest(**ref), Job)
        elif op == "expedite":
            self.wire.ok("ExpediteJob", ExpediteJobRequest(**ref), Job)
        else:
            self.wire.ok("DeleteJob", DeleteJobRequest(**ref), DeleteJobResponse)

    @rule(
        action=st.sampled_from(["CancelJobs", "RestartJobs", "DeleteJobs"]),
        status=st.sampled_from([0, *range(1, 7)]),
        queue=st.sampled_from(["", *QUEUES]),
        limit=st.integers(1, 4),
    )
    def bulk(self, action: str, status: int, queue: str, limit: int) -> None:
        flt = ListJobsRequest(
            tenant=self.tenant, queue=queue, statuses=[JobStatus(status)] if status else []
        )
        resp = self.wire.call(
            SILO + action, BulkJobsRequest(filter=flt, limit=limit), BulkJobsResponse
        )
        assert resp.changed <= min(resp.matched, limit)

    # -------------------------------------------------------------------------- invariant

    @invariant()
    def counts_equal_listings(self) -> None:
        queues = self.wire.call(
            SILO + "ListQueues", ListQueuesRequest(tenant=self.tenant), ListQueuesResponse
        ).queues
        counted = {q.name: dict(q.counts) for q in queues}
        assert set(counted) <= set(QUEUES)
        # A queue is listed while it has jobs, or while it is paused.
        assert all(q.paused or any(q.counts.values()) for q in queues)
        for number, name in enumerate(STATUS_NAMES, start=1):
            status = JobStatus(number)
            listed = self.wire.list_all(ListJobsRequest(tenant=self.tenant, statuses=[status]))
            by_queue = {q: [j for j in listed if j.queue == q] for q in QUEUES}
            for queue in QUEUES:
                count = counted.get(queue, {}).get(name, 0)
                assert count == len(by_queue[queue]), (queue, name, count, len(by_queue[queue]))
                per_queue = self.wire.list_all(
                    ListJobsRequest(tenant=self.tenant, queue=queue, statuses=[status])
                )
                assert [j.id for j in per_queue] == [j.id for j in by_queue[queue]]
            for job in listed:
                assert job.status == status
                got = self.wire.call(
                    SILO + "GetJob", GetJobRequest(id=job.id, tenant=self.tenant), Job
                )
                assert got.status == status, (job.id, got.status, status)
        everything = self.wire.list_all(ListJobsRequest(tenant=self.tenant))
        assert len(everything) == sum(sum(c.values()) for c in counted.values())


@pytest.fixture(scope="module")
def prop_server(
    store_factory: Callable[[str], str],
    store_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerProcess]:
    log_dir: Path = tmp_path_factory.mktemp("counts-prop-logs")
    with ServerProcess(store_factory("counts-prop"), log_dir=log_dir, env=store_env) as server:
        yield server


@pytest.mark.timeout(600)
def test_list_queues_counts_equal_list_jobs_after_random_operations(
    prop_server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    wire = Wire(prop_server.address)
    started = time.monotonic()
    try:
        run_state_machine_as_test(
            lambda: CountsMachine(wire),
            settings=settings(
                max_examples=MAX_EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                # A real broker in real time: no shrinking pass and no example database (see
                # test_concurrency_property.py); a failing sequence is printed as found.
                phases=[Phase.explicit, Phase.generate],
                database=None,
            ),
        )
    finally:
        wire.close()
        with capsys.disabled():
            print(f"\ncounts property: {time.monotonic() - started:.0f} s")
