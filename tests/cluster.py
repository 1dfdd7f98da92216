"""Helpers of the cluster tests: a cluster of real `silo serve` nodes on one store and one real
etcd, a producer and workers that retry across nodes like a client would, and the checks made
after each disturbance (docs/cluster.md, docs/testing.md#cluster-tests)."""

from __future__ import annotations

import asyncio
import itertools
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError
from silo._proto.silo.v1 import (
    AttemptStatus,
    Cluster,
    EnqueueRequest,
    GetClusterRequest,
    GetJobRequest,
    JobStatus,
    LeaseTasksRequest,
    ReportTaskOutcomeRequest,
    RetryPolicy,
    SiloStub,
)
from silo.streams import is_lost_connection
from silo.testing import ServerProcess

#: A short membership lease keeps the suite quick (docs/cluster.md#sizing).
NODE_TTL_S = 2
SHARDS = 12
#: What a client treats as "try again" (the node is down, or a shard is moving).
RETRYABLE = (GRPCError, StreamTerminatedError, ConnectionError, OSError, asyncio.TimeoutError)


#: A kill -9 between a lease's durable write and its answer leaves a task leased to no worker:
#: it comes back when the lease expires (docs/api.md#leases), as a failed `lease_expired`
#: attempt, so the load's jobs have a short lease and retries (every acked job must succeed).
LOST_LEASE_MS = 5_000
LOST_LEASE_RETRY = RetryPolicy(max_retries=5, schedule_ms=[100])


def retryable(exc: Exception) -> bool:
    """One of RETRYABLE, or grpclib's AttributeError for a connection lost while a call opened
    its stream (`silo.streams.is_lost_connection`)."""
    return isinstance(exc, RETRYABLE) or is_lost_connection(exc)


def node_args(etcd_url: str, node_id: str, shards: int = SHARDS) -> list[str]:
    return [
        "--cluster",
        etcd_url,
        "--node-id",
        node_id,
        "--node-ttl",
        f"{NODE_TTL_S}s",
        "--shards",
        str(shards),
    ]


class Nodes:
    """The cluster's nodes by id, each a ServerProcess; stubs are made per call (channels of
    killed nodes are closed by ServerProcess)."""

    def __init__(
        self,
        store: str,
        etcd_url: str,
        log_dir: Path,
        env: dict[str, str],
        extra_args: Sequence[str] = (),
    ) -> None:
        self.store = store
        self.extra_args = list(extra_args)
        self.etcd_url = etcd_url
        self.log_dir = log_dir
        self.env = env
        self.nodes: dict[str, ServerProcess] = {}

    async def add(self, node_id: str) -> ServerProcess:
        server = ServerProcess(
            self.store,
            extra_args=[*node_args(self.etcd_url, node_id), *self.extra_args],
            log_dir=self.log_dir / node_id,
            env=self.env,
        )
        self.nodes[node_id] = server
        return await server.astart()

    def live(self) -> list[ServerProcess]:
        return [n for n in self.nodes.values() if n.is_running()]

    def stub(self, node: ServerProcess) -> SiloStub:
        return SiloStub(node.channel())

    async def stop_all(self) -> None:
        for n in self.nodes.values():
            if n.is_running():
                await n.stop()


async def cluster_map(
    node: ServerProcess,
    metadata: dict[str, str] | None = None,
    tls: ssl.SSLContext | None = None,
) -> Cluster:
    channel = Channel(node.host, node.port, ssl=tls)
    try:
        return await asyncio.wait_for(
            SiloStub(channel).get_cluster(GetClusterRequest(), metadata=metadata), 5
        )
    finally:
        channel.close()


async def wait_settled(
    nodes: list[ServerProcess],
    *,
    timeout: float = 30.0,
    metadata: dict[str, str] | None = None,
    tls: ssl.SSLContext | None = None,
) -> dict[int, str]:
    """Wait until every node reports the same map in which each shard has exactly one owner,
    one of `nodes` (rendezvous may leave a node without shards); returns shard -> node id.
    `metadata`: the calls' (a token, for nodes with an auth file); `tls`: the client's TLS
    context (nodes that serve TLS)."""
    ids = {n.address: None for n in nodes}
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            maps = [await cluster_map(n, metadata, tls) for n in nodes]
            owners = [{s: node.id for node in m.nodes for s in node.shards} for m in maps]
            counts = [sum(len(node.shards) for node in m.nodes) for m in maps]
            addresses = {node.address for m in maps for node in m.nodes if node.shards}
            last = owners[0]
            if (
                all(o == owners[0] for o in owners)
                and counts == [SHARDS] * len(maps)
                and sorted(owners[0]) == list(range(SHARDS))
                and addresses <= set(ids)
            ):
                return owners[0]
        except Exception as exc:
            if not retryable(exc):
                raise
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"the cluster did not settle within {timeout}s: {last}")
        # Polling: ownership changes have no event a client can subscribe to.
        await asyncio.sleep(0.1)


@dataclass
class Load:
    """A producer enqueueing jobs of many tenants through the live nodes in turn, with explicit
    ids and retries (so an ambiguous failure never loses or doubles a job), and workers leasing
    from every live node and reporting success. `acked` are the ids the cluster acknowledged;
    `failures` counts calls that failed (each is retried)."""

    nodes: Nodes
    queue: str
    tenants: int = 24
    #: The nodes the producer calls (default: every live node); workers use every live node.
    produce_via: Nodes | None = None
    acked: dict[str, str] = field(default_factory=dict)  # job id -> tenant
    failures: list[str] = field(default_factory=list)
    reported: int = 0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    def start(self, *, workers: int = 2, pace_s: float = 0.01) -> None:
        self._tasks.append(asyncio.ensure_future(self._produce(pace_s)))
        for w in range(workers):
            self._tasks.append(asyncio.ensure_future(self._work(f"worker-{w}")))

    async def stop(self) -> None:
        self._stop.set()
        self._tasks[0].cancel()
        for result in await asyncio.gather(*self._tasks, return_exceptions=True):
            if isinstance(result, Exception):
                raise result

    async def _call(self, make: Any, via: Nodes | None = None) -> Any:
        """Run `make(stub)` on the live nodes (of `via`, default all) in turn until it answers;
        UNAVAILABLE and broken connections are retried (and counted)."""
        for attempt in itertools.count():
            live = (via or self.nodes).live()
            if not live:
                await asyncio.sleep(0.05)
                continue
            node = live[attempt % len(live)]
            channel = Channel(node.host, node.port)
            try:
                return await asyncio.wait_for(make(SiloStub(channel)), 15)
            except Exception as exc:
                if not retryable(exc):
                    raise
                if isinstance(exc, GRPCError) and exc.status is not Status.UNAVAILABLE:
                    raise
                self.failures.append(f"{time.strftime('%H:%M:%S')} {node.address}: {exc!r}")
                # Back off a little: the shard is moving or the node is gone.
                await asyncio.sleep(0.05)
            finally:
                channel.close()
        raise AssertionError("unreachable")

    async def enqueue_one(self) -> str:
        n = next(self._seq)
        tenant = f"tenant-{n % self.tenants}"
        job_id = f"{self.queue}-{n}"
        try:
            await self._call(
                lambda s: s.enqueue(
                    EnqueueRequest(
                        id=job_id,
                        tenant=tenant,
                        queue=self.queue,
                        retry_policy=LOST_LEASE_RETRY,
                        lease_ms=LOST_LEASE_MS,
                    )
                ),
                self.produce_via,
            )
        except GRPCError as exc:
            if exc.status is not Status.ALREADY_EXISTS:  # a retry of one that landed
                raise
        self.acked[job_id] = tenant
        return job_id

    async def _produce(self, pace_s: float) -> None:
        while not self._stop.is_set():
            await self.enqueue_one()
            await asyncio.sleep(pace_s)

    async def _work(self, worker: str) -> None:
        while not self._stop.is_set():
            req = LeaseTasksRequest(
                worker_id=worker, max_tasks=16, queues=[self.queue], wait_ms=200
            )
            live = self.nodes.live()
            if not live:
                await asyncio.sleep(0.05)
            for node in live:
                channel = Channel(node.host, node.port)
                try:
                    tasks = (await asyncio.wait_for(SiloStub(channel).lease_tasks(req), 10)).tasks
                    for t in tasks:
                        await self._report(worker, t.task_id)
                except Exception as exc:
                    if not retryable(exc):
                        raise
                    await asyncio.sleep(0.05)
                finally:
                    channel.close()

    async def _report(self, worker: str, task_id: str) -> None:
        report = ReportTaskOutcomeRequest(task_id=task_id, worker_id=worker, result=b"ok")
        try:
            await self._call(lambda s: s.report_task_outcome(report))
            self.reported += 1
        except GRPCError as exc:
            # ALREADY_EXISTS: a retry of a report that landed; FAILED_PRECONDITION: the lease
            # ran out while the shard moved (the job runs again); both are fine here.
            if exc.status not in (Status.ALREADY_EXISTS, Status.FAILED_PRECONDITION):
                raise

    async def drain(self, *, timeout: float = 60.0) -> None:
        """Keep the workers running (no new jobs) until every acknowledged job succeeded."""
        self._tasks[0].cancel()
        deadline = time.monotonic() + timeout
        pending = dict(self.acked)
        while pending:
            for job_id, tenant in list(pending.items()):
                job = await self._call(
                    lambda s, j=job_id, t=tenant: s.get_job(GetJobRequest(id=j, tenant=t))
                )
                if job.status == JobStatus.SUCCEEDED:
                    del pending[job_id]
            if pending and time.monotonic() > deadline:
                raise AssertionError(f"{len(pending)} acknowledged jobs never succeeded")
            # Polling: the workers finish them in the background.
            await asyncio.sleep(0.2)

    async def check_outcomes(self) -> None:
        """Every acknowledged job is SUCCEEDED with exactly one succeeded attempt."""
        for job_id, tenant in self.acked.items():
            job = await self._call(
                lambda s, j=job_id, t=tenant: s.get_job(
                    GetJobRequest(id=j, tenant=t, include_attempts=True)
                )
            )
            assert job.status == JobStatus.SUCCEEDED, f"{job_id}: {job.status!r}"
            done = [a for a in job.attempts if a.status == AttemptStatus.SUCCEEDED]
            assert len(done) == 1, f"{job_id}: {len(done)} succeeded attempts"
