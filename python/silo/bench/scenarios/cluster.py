"""`silo bench cluster`: a cluster of `silo serve` nodes on this machine (one real etcd, one
shared `file://` store of --shards shards, docs/cluster.md), fresh for each --nodes count:

- burn-down through N nodes: --jobs jobs enqueued (EnqueueBatch of 1,000) and drained (lease
  and report batches of 1,000), each load process on one node with a tenant that node owns (so
  nothing is forwarded, as `silo.connect([...])` routes); jobs/s and the nodes' CPU per job
  (the scaling figure on one machine: it should stay flat as nodes are added);
- single Enqueue at --clients clients spread over the N nodes, each to its tenant's owner:
  calls/s and the ratio to one node;
- with two or more nodes, the same single Enqueue with every call sent to a node that does not
  own its tenant (each call forwarded once): the forwarding cost in CPU µs per call and
  calls/s.

The broker CPU is the sum over the nodes (read from /proc).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import silo
from silo.bench.measure import latency_fields, proc_cpu_seconds, proc_rss_bytes
from silo.bench.procs import DONE, SENT, PhaseResult, Task
from silo.bench.runner import Bench
from silo.bench.scenarios.enqueue import measured
from silo.bench.work import Drain, EnqueueCount, EnqueueFor, drain, enqueue_count, enqueue_for
from silo.cluster import ClusterMap, shard_of_tenant
from silo.etcd_server import EtcdServer
from silo.testing import ServerProcess

__all__ = ["Nodes", "run"]


class Nodes:
    """N nodes of one cluster on a fresh store; a PhaseTarget whose CPU and RSS are the sums
    over the nodes."""

    def __init__(self, count: int, bench: Bench, etcd: EtcdServer, workdir: Path) -> None:
        self.count = count
        self._bench = bench
        self._etcd = etcd
        self._workdir = workdir
        self.servers: list[ServerProcess] = []
        self.map: ClusterMap | None = None

    def __enter__(self) -> Nodes:
        args = self._bench.args
        store = str(self._workdir / "store")
        prefix = f"bench-{self.count}-{int(time.time() * 1000)}"
        for i in range(self.count):
            server = ServerProcess(
                store,
                lease_ms=None,
                extra_args=[
                    "--cluster",
                    self._etcd.url(prefix),
                    "--node-id",
                    f"n{i}",
                    "--node-ttl",
                    args.node_ttl,
                    "--shards",
                    str(args.shards),
                    *args.serve_arg,
                ],
                log_dir=self._workdir / f"logs-n{i}",
                http="off",
            )
            self.servers.append(server.start())
        self.map = asyncio.run(self._settled())
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self.servers:
            if server.is_running():
                server.terminate()

    async def _settled(self, timeout: float = 60.0) -> ClusterMap:
        """The cluster map once every shard has an owner and every node owns some (polled:
        ownership has no event a client can wait on)."""
        deadline = time.monotonic() + timeout
        async with await silo.connect(self.address) as client:
            while True:
                m = ClusterMap.of(await client.get_cluster())
                owners = set(m.owners.values())
                if len(m.owners) == m.shard_count and len(owners) == self.count:
                    return m
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the cluster did not settle in {timeout:g}s: {m}")
                await asyncio.sleep(0.1)

    @property
    def addresses(self) -> list[str]:
        return [s.address for s in self.servers]

    @property
    def address(self) -> str:
        return self.servers[0].address

    @property
    def pid(self) -> int | None:
        return self.servers[0].pid

    def tenant_on(self, address: str, n: int = 0) -> str:
        """The n-th tenant (of `tenant-0`, `tenant-1`, ...) whose shard `address` owns."""
        assert self.map is not None
        found = -1
        for i in range(100_000):
            tenant = f"tenant-{i}"
            if self.map.owners.get(shard_of_tenant(tenant, self.map.shard_count)) == address:
                found += 1
                if found == n:
                    return tenant
        raise RuntimeError(f"no tenant of {address}")

    def _sum(self, values: list[float | int | None]) -> float | None:
        if any(v is None for v in values):
            return None
        return float(sum(v for v in values if v is not None))

    def cpu_seconds(self) -> float | None:
        return self._sum([proc_cpu_seconds(s.pid) if s.pid else None for s in self.servers])

    def main_thread_cpu_seconds(self) -> float | None:
        return self._sum([proc_cpu_seconds(s.pid, s.pid) if s.pid else None for s in self.servers])

    def rss_bytes(self) -> int | None:
        total = self._sum([proc_rss_bytes(s.pid) if s.pid else None for s in self.servers])
        return None if total is None else int(total)

    def forwarded(self) -> int:
        """Calls the nodes forwarded since they started (Admin/GetStats `forwarded_calls`)."""

        async def read() -> int:
            total = 0
            for address in self.addresses:
                async with await silo.connect(address) as client:
                    total += int((await client.get_stats())["gauges"]["forwarded_calls"])
            return total

        return asyncio.run(read())


def _row(result: PhaseResult, jobs: int, **fields: Any) -> dict[str, Any]:
    return {
        **fields,
        "jobs": jobs,
        "seconds": round(result.wall_s, 2),
        "jobs_per_s": round(jobs / result.wall_s, 1) if result.wall_s else None,
        "errors": result.counters[2],
        **result.cpu_fields(),
        **result.cpu_per_job_fields(jobs),
    }


def burn_down(bench: Bench, nodes: Nodes) -> dict[str, Any]:
    """Enqueue --jobs through the nodes (each load process to its own node, a tenant of it),
    then drain them; rows per phase and end to end."""
    args, n = bench.args, nodes.count
    counts = [args.jobs // n + (1 if i < args.jobs % n else 0) for i in range(n)]
    fill = [
        Task(
            enqueue_count,
            EnqueueCount(
                threads=2,
                jobs=c,
                batch=1000,
                queue=bench.queue,
                payload_bytes=args.payload_bytes,
                tenant=nodes.tenant_on(a),
            ),
            "filler",
            address=a,
        )
        for a, c in zip(nodes.addresses, counts, strict=True)
    ]
    label = f"{n} node(s)"
    enq = bench.phase(f"{label}: enqueue", fill, count_slot=SENT, total=args.jobs, target=nodes)
    workers = [
        Task(
            drain,
            Drain(threads=2, queue=bench.queue, lease_batch=1000, report_batch=1000, per_job=False),
            "worker",
            address=a,
        )
        for a in nodes.addresses
    ]
    dr = bench.phase(f"{label}: drain", workers, total=args.jobs, target=nodes)
    done = dr.counters[DONE]
    rows = [
        _row(enq, enq.counters[SENT], phase=f"burn-down {label}: enqueue", nodes=n),
        _row(dr, done, phase=f"burn-down {label}: drain", nodes=n),
    ]
    wall = enq.wall_s + dr.wall_s
    cpu = [r.broker_cpu_s for r in (enq, dr)]
    total_cpu = None if None in cpu else sum(c for c in cpu if c is not None)
    rows.append(
        {
            "phase": f"burn-down {label}: end to end",
            "nodes": n,
            "jobs": done,
            "seconds": round(wall, 2),
            "jobs_per_s": round(done / wall, 1) if wall else None,
            "loadgen_cores": round((enq.loadgen_cpu_s + dr.loadgen_cpu_s) / wall, 2)
            if wall
            else None,
            "loadgen_cpu_s": round(enq.loadgen_cpu_s + dr.loadgen_cpu_s, 2),
            "broker_cpu_s": None if total_cpu is None else round(total_cpu, 2),
            "broker_us_per_job": None
            if total_cpu is None or not done
            else round(total_cpu * 1e6 / done, 1),
        }
    )
    for row in rows:
        bench.report.add(row)
    return rows[-1]


def single_enqueue(bench: Bench, nodes: Nodes, *, forwarded: bool) -> dict[str, Any]:
    """Single Enqueue at --clients closed-loop clients spread over the nodes, each process's
    tenant owned by its node (or, `forwarded`, by the next node: every call is forwarded)."""
    args, n = bench.args, nodes.count
    addresses = nodes.addresses
    shares = bench.split(args.clients, max(n, min(args.clients, bench.cores)))
    tasks = []
    for i, threads in enumerate(shares):
        address = addresses[i % n]
        owner = addresses[(i + 1) % n] if forwarded else address
        tasks.append(
            Task(
                enqueue_for,
                EnqueueFor(
                    threads=threads,
                    batch=0,
                    queue=bench.queue,
                    payload_bytes=args.payload_bytes,
                    warmup=args.warmup,
                    duration=args.duration,
                    tenant=nodes.tenant_on(owner, i // n),
                ),
                "producer",
                address=address,
            )
        )
    how = "each call forwarded" if forwarded else "to the owner"
    name = f"single Enqueue x{args.clients}, {n} node(s), {how}"
    before = nodes.forwarded()
    result = bench.phase(name, tasks, count_slot=SENT, target=nodes)
    sent = nodes.forwarded() - before
    lat, jobs = measured(result)
    row = {
        "phase": name,
        "nodes": n,
        "clients": args.clients,
        "jobs": jobs,
        "seconds": round(args.duration, 2),
        "jobs_per_s": round(jobs / args.duration, 1) if args.duration else None,
        **latency_fields(lat),
        "errors": result.counters[2],
        "forwarded_calls": sent,
        **result.cpu_fields(),
        **result.cpu_per_job_fields(result.counters[SENT]),
    }
    return row


def run(bench: Bench) -> None:
    args = bench.args
    with tempfile.TemporaryDirectory(prefix="silo-bench-cluster-") as tmp:
        etcd = EtcdServer(Path(tmp) / "etcd").start()
        try:
            single: dict[int, dict[str, Any]] = {}
            for count in args.nodes:
                with Nodes(count, bench, etcd, Path(tmp) / f"nodes-{count}") as nodes:
                    bench.say(f"{count} node(s) settled: {nodes.addresses}")
                    burn_down(bench, nodes)
                    row = single_enqueue(bench, nodes, forwarded=False)
                    if 1 in single:
                        row["ratio_to_1_node"] = _ratio(row, single[1])
                    single[count] = row
                    bench.report.add(row)
                    if count >= 2 and count == min(c for c in args.nodes if c >= 2):
                        fwd = single_enqueue(bench, nodes, forwarded=True)
                        fwd["ratio_to_direct"] = _ratio(fwd, row)
                        direct_us = row.get("broker_us_per_job")
                        fwd_us = fwd.get("broker_us_per_job")
                        if direct_us is not None and fwd_us is not None:
                            fwd["forward_cost_us"] = round(fwd_us - direct_us, 1)
                        bench.report.add(fwd)
        finally:
            etcd.stop()


def _ratio(row: dict[str, Any], reference: dict[str, Any]) -> float | None:
    a, b = row.get("jobs_per_s"), reference.get("jobs_per_s")
    return round(a / b, 2) if a and b else None
