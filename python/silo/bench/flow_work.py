"""Load-generator workloads of `silo bench flow` (see work.py for the conventions).

`rate_worker`: long-polling workers that record each task's start as the broker stamped it
(`lease_expires_at_ms` minus the lease), so per-key rates are measured on the server's clock.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import Any

import grpc

from silo.bench.procs import DONE, Child
from silo.bench.rpc import pb
from silo.bench.work import CALL_TIMEOUT_S, _batch_failures, _FailureStreak, _leased_batches

__all__ = ["RateWorker", "rate_worker"]


@dataclass(frozen=True)
class RateWorker:
    """Workers that lease (long-poll, up to `lease_batch`) and report every task at once until
    the phase stops; `lease_ms` is the broker's lease (to turn a task's expiry into its start)."""

    threads: int
    queue: str
    lease_batch: int
    wait_ms: int
    lease_ms: int


def rate_worker(child: Child, spec: RateWorker) -> dict[str, Any]:
    client = child.client

    def loop(i: int) -> tuple[list[str], array[int]]:
        worker = f"bench-rate-{child.index}-{i}"
        lease = pb.LeaseTasksRequest(
            worker_id=worker, max_tasks=spec.lease_batch, queues=[spec.queue], wait_ms=spec.wait_ms
        ).SerializeToString()
        ids: list[str] = []
        starts: array[int] = array("q")
        streak = _FailureStreak(child)
        for tasks, _ in _leased_batches(child, streak, lease):
            request = pb.ReportTaskOutcomesRequest()
            add = request.reports.add
            for task in tasks:
                ids.append(task.job_id)
                starts.append(task.lease_expires_at_ms - spec.lease_ms)
                add(task_id=task.task_id, worker_id=worker, result=b"")
            try:
                reply = client.report_task_outcomes(request, timeout=CALL_TIMEOUT_S)
            except grpc.RpcError as exc:
                streak.failed(exc)
                continue
            child.add(DONE, len(tasks) - _batch_failures(child, reply))
        return ids, starts

    ids: list[str] = []
    starts: array[int] = array("q")
    for part_ids, part_starts in child.threads(spec.threads, loop):
        ids.extend(part_ids)
        starts.extend(part_starts)
    return {"ids": ids, "starts": starts}
