"""Cluster mode (docs/cluster.md): real `silo serve` nodes over one shared store (a local
directory and SeaweedFS S3), coordinated by a real etcd on loopback.

- 3 nodes x 12 shards: one owner per shard; jobs of many tenants enqueued through any node
  all complete.
- kill -9 of a node under load: its shards serve again within --node-ttl + 5 s; every
  acknowledged job completes, none has two outcomes.
- a node paused (SIGSTOP) loses its shards; once they are open elsewhere it acknowledges no
  write from its stale copy, and what it acknowledged before is kept.
- a fourth node joins and leaves under load: shards move with no failed call.
- a bounded chaos loop of kill/restart with the checks after each round.
- nodes that serve TLS (and mTLS) forward calls to each other over TLS; a node whose peer CA
  does not trust the others' certificates answers a forwarded call UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import ssl
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import silo
import xxhash
from cluster import LOST_LEASE_MS, NODE_TTL_S, SHARDS, Load, Nodes, cluster_map, wait_settled
from grpclib.client import Channel
from grpclib.const import Status
from helpers import unique
from secure import Pki, Token, channel, make_pki, stream, unary, write_auth
from silo._proto.silo.admin.v1 import AdminStub, GetStatsRequest
from silo._proto.silo.v1 import (
    EnqueueBatchRequest,
    EnqueueBatchResponse,
    EnqueueRequest,
    EnqueueResult,
    GetJobRequest,
    JobStatus,
    SiloStub,
    WaitJobRequest,
)
from silo.cluster import ClusterClient
from silo.etcd_server import EtcdError, EtcdServer
from silo.testing import ServerProcess
from silo.worker import NODES_EVERY_S
from test_ui_auth import browser_session, sign_in
from web_helpers import table_rows, text_of

pytestmark = [pytest.mark.all_stores, pytest.mark.timeout(300)]

#: A dead node's shards serve again within this (SPEC: --node-ttl + 5 s).
TAKEOVER_LIMIT_S = NODE_TTL_S + 5
#: Rounds of the chaos loop (SILO_CHAOS_ROUNDS overrides).
CHAOS_ROUNDS = int(os.environ.get("SILO_CHAOS_ROUNDS", "20"))


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    try:
        server = EtcdServer(tmp_path_factory.mktemp("etcd")).start()
    except EtcdError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


@pytest.fixture
async def nodes(
    request: pytest.FixtureRequest,
    etcd: EtcdServer,
    store_url: str,
    store_env: dict[str, str],
    tmp_path: Path,
) -> AsyncIterator[Nodes]:
    cluster = Nodes(store_url, etcd.url(unique("cluster")), tmp_path, store_env)
    yield cluster
    failed = getattr(request.node, "rep_call", None)
    if failed is None or failed.failed:
        for node_id, node in cluster.nodes.items():
            tail = "\n".join(node.stderr_text().splitlines()[-40:])
            print(f"\n--- node {node_id} ({node.address}) stderr tail ---\n{tail}")
    await cluster.stop_all()


async def start(cluster: Nodes, count: int) -> dict[int, str]:
    for i in range(count):
        await cluster.add(f"n{i}")
    return await wait_settled(cluster.live())


def tenant_on(shard: int, prefix: str = "t") -> str:
    """A tenant that lives on `shard`."""
    for i in range(100_000):
        t = f"{prefix}-{i}"
        if xxhash.xxh3_64_intdigest(t.encode()) % SHARDS == shard:
            return t
    raise AssertionError("no tenant found")


async def serving_again(cluster: Nodes, shards: set[int], limit: float) -> float:
    """Seconds until an Enqueue to a tenant of each of `shards`, through a live node,
    succeeds; fails after `limit`."""
    start = time.monotonic()
    waiting = set(shards)
    node = cluster.live()[0]
    while waiting:
        for shard in sorted(waiting):
            channel = Channel(node.host, node.port)
            try:
                await asyncio.wait_for(
                    SiloStub(channel).enqueue(
                        EnqueueRequest(tenant=tenant_on(shard), queue="probe")
                    ),
                    limit,
                )
                waiting.discard(shard)
            except Exception:
                pass
            finally:
                channel.close()
        if waiting and time.monotonic() - start > limit:
            raise AssertionError(f"shards {sorted(waiting)} not serving after {limit}s")
        if waiting:
            await asyncio.sleep(0.05)
    return time.monotonic() - start


async def test_three_nodes_twelve_shards_serve_jobs_of_many_tenants(nodes: Nodes) -> None:
    owners = await start(nodes, 3)
    assert sorted(owners) == list(range(SHARDS))
    assert set(owners.values()) == {"n0", "n1", "n2"}
    queue = unique("q")
    load = Load(nodes, queue, tenants=40)
    # Enqueue through every node in turn, one tenant per job, and as one mixed batch.
    for _ in range(60):
        await load.enqueue_one()
    live = nodes.live()
    channel = Channel(live[1].host, live[1].port)
    try:
        batch = [EnqueueRequest(id=f"b{i}", tenant=f"batch-{i}", queue=queue) for i in range(24)]
        results = (await SiloStub(channel).enqueue_batch(EnqueueBatchRequest(jobs=batch))).results
        assert [r.code for r in results] == [0] * 24
        load.acked.update({f"b{i}": f"batch-{i}" for i in range(24)})
        # A mixed batch with a bad entry: errors keep their place in the whole batch.
        bad = [*batch[:2], EnqueueRequest(tenant="x", queue=queue, priority=500)]
        bad[0].id, bad[1].id = "b-again-0", "b1"
        answers = (await SiloStub(channel).enqueue_batch(EnqueueBatchRequest(jobs=bad))).results
        assert [a.code for a in answers] == [0, Status.ALREADY_EXISTS.value, 3]
        assert "jobs[2].priority" in answers[2].message
        load.acked["b-again-0"] = "batch-0"
    finally:
        channel.close()
    load.start(workers=2)
    await load.drain()
    await load.stop()
    await load.check_outcomes()
    assert not load.failures, load.failures[:5]


async def test_a_killed_node_s_shards_serve_again_and_nothing_acked_is_lost(
    nodes: Nodes, record_figure
) -> None:
    owners = await start(nodes, 3)
    load = Load(nodes, unique("q"))
    load.start()
    await asyncio.sleep(1)  # load runs on every node before the kill
    victim = nodes.nodes["n1"]
    lost = {s for s, o in owners.items() if o == "n1"}
    victim.kill9()
    took = await serving_again(nodes, lost, TAKEOVER_LIMIT_S)
    record_figure(f"kill -9: shards {sorted(lost)} serving again after {took:.2f}s")
    await wait_settled(nodes.live())
    await asyncio.sleep(0.5)
    await load.drain()
    await load.stop()
    await load.check_outcomes()


async def test_a_paused_node_loses_its_shards_and_acknowledges_no_stale_write(
    nodes: Nodes,
) -> None:
    owners = await start(nodes, 3)
    paused = nodes.nodes["n2"]
    shard = min(s for s, o in owners.items() if o == "n2")
    tenant = tenant_on(shard)
    stub = SiloStub(paused.channel())
    before = (await stub.enqueue(EnqueueRequest(id="before", tenant=tenant, queue="q"))).id
    paused.send_signal(signal.SIGSTOP)
    try:
        others = [n for n in nodes.live() if n is not paused]
        await serving_again(nodes_without(nodes, paused), {shard}, TAKEOVER_LIMIT_S)
        new_owner = {s: o for s, o in (await _owners(others[0])).items()}[shard]
        assert new_owner != "n2"
    finally:
        paused.send_signal(signal.SIGCONT)
    # The resumed node's copy of the shard is stale: a write through it is either refused
    # or forwarded to the new owner, never acknowledged by the stale copy.
    try:
        await stub.enqueue(EnqueueRequest(id="after", tenant=tenant, queue="q"))
        acked_after = True
    except Exception:
        acked_after = False
    others_stub = SiloStub(Channel(others[0].host, others[0].port))
    try:
        if acked_after:
            job = await others_stub.get_job(GetJobRequest(id="after", tenant=tenant))
            assert job.id == "after", "an acknowledged write is in the shard's real store"
        job = await others_stub.get_job(GetJobRequest(id=before, tenant=tenant))
        assert job.status == JobStatus.PENDING, "what the paused node acknowledged is kept"
    finally:
        others_stub.channel.close()
    await wait_settled(nodes.live())


def nodes_without(cluster: Nodes, gone: object) -> Nodes:
    view = Nodes(cluster.store, cluster.etcd_url, cluster.log_dir, cluster.env)
    view.nodes = {k: v for k, v in cluster.nodes.items() if v is not gone}
    return view


async def _owners(node) -> dict[int, str]:
    m = await cluster_map(node)
    return {s: n.id for n in m.nodes for s in n.shards}


async def test_a_joining_and_leaving_node_moves_shards_with_no_failed_call(
    nodes: Nodes,
) -> None:
    await start(nodes, 3)
    first = nodes.nodes["n0"]
    only_first = nodes_without(nodes, None)
    only_first.nodes = {"n0": first}
    load = Load(nodes, unique("q"), produce_via=only_first)
    load.start()
    await nodes.add("n3")
    owners = await wait_settled(nodes.live())
    assert "n3" in owners.values()
    await asyncio.sleep(0.5)
    await nodes.nodes["n3"].stop()  # SIGTERM: a graceful leave
    owners = await wait_settled(nodes.live())
    assert "n3" not in owners.values()
    await load.drain()
    await load.stop()
    await load.check_outcomes()
    assert not load.failures, load.failures[:5]


async def test_chaos_kill_and_restart_under_load(nodes: Nodes, record_figure) -> None:
    await start(nodes, 3)
    load = Load(nodes, unique("q"))
    load.start()
    rng = random.Random(13)
    takeovers: list[float] = []
    for _ in range(CHAOS_ROUNDS):
        victim_id = rng.choice(sorted(nodes.nodes))
        victim = nodes.nodes[victim_id]
        owners = await _owners(nodes.live()[0])
        lost = {s for s, o in owners.items() if o == victim_id}
        if rng.random() < 0.5:
            victim.kill9()
        else:
            await victim.stop()
        if lost:
            takeovers.append(await serving_again(nodes, lost, TAKEOVER_LIMIT_S + 5))
        await wait_settled(nodes.live())
        await victim.astart()
        await wait_settled(nodes.live())
        assert all(n.is_running() for n in nodes.nodes.values())
    await load.drain()
    await load.stop()
    await load.check_outcomes()
    takeovers.sort()
    if takeovers:
        record_figure(
            f"chaos {CHAOS_ROUNDS} rounds: takeover p50 {takeovers[len(takeovers) // 2]:.2f}s "
            f"max {takeovers[-1]:.2f}s; {len(load.acked)} jobs, {len(load.failures)} retried calls"
        )


async def test_bad_cluster_settings_are_refused(make_server, etcd: EtcdServer) -> None:
    from silo.testing import ServerStartError

    for args, names in [
        (["--cluster", "etcd://127.0.0.1:1"], "--cluster"),
        (["--cluster", "http://x/p"], "--cluster"),
        (["--cluster", etcd.url("p"), "--node-ttl", "0s"], "--node-ttl"),
    ]:
        with pytest.raises(ServerStartError) as info:
            await make_server(extra_args=args)
        assert names in str(info.value)
    # etcd unreachable: the node does not start, with a one-line error naming etcd.
    with pytest.raises(ServerStartError) as info:
        await make_server(extra_args=["--cluster", "etcd://127.0.0.1:1/p"])
    assert "etcd" in str(info.value)


async def forwarded(address: str) -> int:
    """The node's Admin/GetStats `forwarded_calls`: calls it sent on to another node."""
    async with await silo.connect(address) as client:
        stats = await client.get_stats()
    return int(stats["gauges"]["forwarded_calls"])


async def all_forwarded(cluster: Nodes) -> dict[str, int]:
    return {n.address: await forwarded(n.address) for n in cluster.live()}


def echo_worker(client: silo.Api, queue: str, ran: list[str], concurrency: int = 8) -> silo.Worker:
    async def handle(ctx: silo.TaskContext, payload: bytes) -> bytes:
        ran.append(ctx.task.job_id)
        return payload

    return silo.Worker(client, handlers={queue: handle}, concurrency=concurrency, poll_ms=200)


@contextlib.asynccontextmanager
async def running(worker: silo.Worker) -> AsyncIterator[None]:
    """`worker` runs for the body of the `async with`; it is stopped (and its run awaited) after."""
    run = asyncio.ensure_future(worker.run(handle_signals=False))
    try:
        yield
    finally:
        worker.stop()
        await run


async def all_succeed(client: silo.Api, jobs: dict[str, str]) -> None:
    """Waits for each job (id -> tenant) to end, which must be SUCCEEDED."""
    for job_id, tenant in jobs.items():
        job = await client.wait_job(id=job_id, tenant=tenant, timeout_ms=60_000)
        assert job.status is silo.JobStatus.SUCCEEDED, job_id


async def test_connect_routes_each_call_to_its_owner_and_a_worker_leases_from_every_node(
    nodes: Nodes,
) -> None:
    owners = await start(nodes, 3)
    addresses = [n.address for n in nodes.live()]
    by_id = {node_id: n.address for node_id, n in nodes.nodes.items()}
    queue = unique("routed")
    # Proof that the gauge counts: a single-node client sends a call to a tenant of another
    # node's shard, which that node forwards.
    foreign = next(
        t
        for t in (f"probe-{i}" for i in range(1000))
        if by_id[owners[xxhash.xxh3_64_intdigest(t.encode()) % SHARDS]] != addresses[0]
    )
    before = await forwarded(addresses[0])
    async with await silo.connect(addresses[0]) as single:
        await single.enqueue(tenant=foreign, queue=unique("probe"))
    assert await forwarded(addresses[0]) == before + 1
    baseline = await all_forwarded(nodes)

    async with await silo.connect(addresses) as client:
        assert isinstance(client, ClusterClient) and isinstance(client, silo.Client)
        jobs: dict[str, str] = {}
        for i in range(48):  # streamed Enqueue (one EnqueueStream per node)
            tenant = f"tenant-{i}"
            jobs[(await client.enqueue(tenant=tenant, queue=queue)).id] = tenant
        batch = [silo.NewJob(tenant="tenant-7", queue=queue) for _ in range(5)]
        for result in await client.enqueue_many(batch):
            jobs[result.id] = "tenant-7"
        async with await silo.connect(addresses, streams=False) as unary:
            for i in range(12):
                jobs[(await unary.enqueue(tenant=f"unary-{i}", queue=queue)).id] = f"unary-{i}"
        for job_id, tenant in jobs.items():
            assert (await client.get_job(id=job_id, tenant=tenant)).status is silo.JobStatus.PENDING
        assert len({o for o in owners.values()}) == 3, "every node owns shards"

        ran: list[str] = []
        worker = echo_worker(client, queue, ran)
        async with running(worker):
            await all_succeed(client, jobs)
        assert sorted(ran) == sorted(jobs), "each job ran once"
        assert set(worker._lanes) == set(), "the lease loops ended with the worker"
        # run_until_idle over a cluster: every node's due tasks, then it returns; with fewer
        # slots than nodes, a node's loop waits for the slots the others' calls hold.
        more = [(await client.enqueue(tenant=f"idle-{i}", queue=queue)).id for i in range(24)]
        assert await echo_worker(client, queue, ran, concurrency=2).run_until_idle() == len(more)
        assert set(more) <= set(ran)
    # Enqueue, GetJob, WaitJob, LeaseTasks, heartbeats and outcomes all went to the owner.
    assert await all_forwarded(nodes) == baseline


async def test_a_worker_given_one_node_of_a_cluster_leases_from_every_node(nodes: Nodes) -> None:
    """python/silo/worker.py: a worker over `silo.connect(one address)` learns at start that
    the node has peers and leases from each, so jobs on every node's shards run."""
    owners = await start(nodes, 3)
    assert len(set(owners.values())) == 3, "every node owns shards"
    first = nodes.live()[0].address
    queue = unique("one-seed")
    async with await silo.connect(first) as client:
        assert not isinstance(client, ClusterClient)
        jobs = {
            (await client.enqueue(tenant=f"seed-{i}", queue=queue)).id: f"seed-{i}"
            for i in range(36)
        }
        ran: list[str] = []
        worker = echo_worker(client, queue, ran)
        async with running(worker):
            await all_succeed(client, jobs)
            assert len(worker._lanes) == 3, "one lease loop per node"
        assert sorted(ran) == sorted(jobs), "each job ran once"
        assert worker._found_cluster is None, "the worker closed the clients it made"


async def test_connect_and_a_worker_carry_on_when_a_node_is_killed(nodes: Nodes) -> None:
    await start(nodes, 3)
    addresses = [n.address for n in nodes.live()]
    queue = unique("failover")
    acked: dict[str, str] = {}

    async def produce(client: silo.Api, count: int, offset: int) -> None:
        for n in range(offset, offset + count):
            job_id, tenant = f"{queue}-{n}", f"tenant-{n % 24}"
            deadline = time.monotonic() + TAKEOVER_LIMIT_S + 20
            while True:
                try:
                    await client.enqueue(
                        id=job_id,
                        tenant=tenant,
                        queue=queue,
                        # A lease lost with the killed node comes back (tests/cluster.py).
                        retry_policy=silo.RetryPolicy(max_retries=5, schedule_ms=(100,)),
                        lease_ms=LOST_LEASE_MS,
                    )
                except silo.errors.JobAlreadyExists:
                    pass  # a retry of one that landed before the node died
                except silo.errors.Unavailable:
                    # Not acknowledged (the stream to the killed node broke): retry by id.
                    assert time.monotonic() < deadline, f"{job_id} never acknowledged"
                    continue
                acked[job_id] = tenant
                break

    async with await silo.connect(addresses, timeout=30) as client:
        ran: list[str] = []
        worker = echo_worker(client, queue, ran)
        async with running(worker):
            await produce(client, 120, 0)
            # A worker in the middle of leasing from every node, a client mid-stream.
            victim = nodes.nodes["n1"]
            victim.kill9()
            await produce(client, 120, 120)
            await wait_settled(nodes.live())
            await all_succeed(client, acked)
            assert victim.address not in client.nodes(), "the map dropped the dead node"
            # The worker reads the node list every NODES_EVERY_S: its loop for the dead node
            # ends at the next read (polled: the worker has no event for it).
            deadline = time.monotonic() + 3 * NODES_EVERY_S
            while victim.address in worker._lanes:
                assert time.monotonic() < deadline, "a lease loop for the dead node stayed"
                await asyncio.sleep(0.1)
        for job_id, tenant in acked.items():
            job = await client.get_job(id=job_id, tenant=tenant, include_attempts=True)
            done = [a for a in job.attempts if a.status is silo.AttemptStatus.SUCCEEDED]
            assert len(done) == 1, f"{job_id}: {len(done)} succeeded attempts"
    assert len(acked) == 240


def test_worker_command_takes_every_address() -> None:
    from silo.commands import addresses_of

    assert addresses_of(["a:1,b:2", "c:3"]) == ["a:1", "b:2", "c:3"]
    assert addresses_of(None) == ["127.0.0.1:7070"]


CLI_TASKS = """
import silo


@silo.task(queue="cli-cluster")
async def shout(word: str) -> str:
    return word.upper()
"""


async def test_silo_worker_with_every_address_runs_every_node_s_jobs(
    nodes: Nodes, tmp_path: Path
) -> None:
    await start(nodes, 3)
    a, b, c = (n.address for n in nodes.live())
    (tmp_path / "cluster_tasks.py").write_text(CLI_TASKS)
    worker = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "silo", "worker", "cluster_tasks"),
        *("--connect", f"{a},{b}", "--connect", c),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with await silo.connect([a, b, c]) as client:
            jobs = {}
            for i in range(24):  # tenants on every node's shards
                job = silo.NewJob(
                    tenant=f"cli-{i}",
                    queue="cli-cluster",
                    payload=b'{"args": ["hi"], "kwargs": {}}',
                    metadata={"silo.task": "cluster_tasks.shout"},
                )
                jobs[(await client.enqueue_many([job]))[0].id] = f"cli-{i}"
            for job_id, tenant in jobs.items():
                done = await client.wait_job(id=job_id, tenant=tenant, timeout_ms=60_000)
                assert done.status is silo.JobStatus.SUCCEEDED, (job_id, done.last_failure)
                assert json.loads(done.result) == "HI"
    finally:
        worker.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(worker.communicate(), 60)
    assert worker.returncode == 0, out.decode(errors="replace")


async def test_cluster_status_shows_nodes_owners_and_counts(nodes: Nodes) -> None:
    from silo.cluster_cli import status

    owners = await start(nodes, 3)
    text = await status(nodes.live()[0].address)
    assert "3 node(s), 12 shard(s)" in text
    for node_id in set(owners.values()):
        assert node_id in text
    assert "READY" in text and "SHARD" in text


async def two_nodes(cluster: Nodes, token: Token) -> tuple[dict[int, str], ServerProcess, int]:
    """Starts nodes n0 and n1 (their calls made with `token`): the shard owners once settled,
    n0, and a shard n1 owns."""
    for i in range(2):
        await cluster.add(f"n{i}")
    owners = await wait_settled(cluster.live(), metadata=token.header)
    remote = next(s for s, node in owners.items() if node != "n0")
    return owners, cluster.nodes["n0"], remote


async def signed_in_page(node: ServerProcess, token: Token, path: str) -> str:
    """The web UI page `path` of `node` as a browser signed in with `token` sees it."""
    async with browser_session(node) as http:
        assert (await sign_in(http, token)).status == 303
        async with http.get(path) as r:
            page = await r.text()
            assert r.status == 200, page
    return page


async def test_the_web_ui_shows_the_nodes_the_shard_owners_and_every_shard_s_counts(
    etcd: EtcdServer, store_url: str, store_env: dict[str, str], tmp_path: Path
) -> None:
    """docs/ui.md#cluster: a node's /cluster page lists every node and the shards it owns, and
    each shard's counts, the other node's asked over gRPC with the session's token; a token
    without the admin role sees the map and no counts."""
    root = Token("root", "secret-root", ["*"], ["admin"])
    a = Token("a", "secret-a", ["a-*"], ["produce", "operate", "work"])
    auth = write_auth(tmp_path / "auth.toml", [root, a])
    cluster = Nodes(
        store_url,
        etcd.url(unique("cluster")),
        tmp_path,
        store_env,
        ["--auth-file", str(auth), "--http", "127.0.0.1:0"],
    )
    try:
        owners, n0, remote = await two_nodes(cluster, root)
        async with await silo.connect(n0.address, token=root.secret) as client:
            for _ in range(3):  # forwarded to the other node, which owns the shard
                await client.enqueue(tenant=tenant_on(remote, "a"), queue="ui-cluster")
        page = await signed_in_page(n0, root, "/cluster")
        assert f"2 nodes, {SHARDS} shards" in text_of(page)
        nodes = {row[0].removesuffix(" this node"): row for row in table_rows(page, "nodes")}
        assert set(nodes) == {"n0", "n1"} and nodes["n0"][0] == "n0 this node"
        for node_id, row in nodes.items():
            assert row[3] == ", ".join(str(s) for s, n in sorted(owners.items()) if n == node_id)
        shards = table_rows(page, "shards")
        assert [(int(r[0]), r[1]) for r in shards] == sorted(owners.items())
        assert all(len(r) == 6 and all(c.isdigit() for c in r[2:]) for r in shards), shards
        assert shards[remote][2] == "3", shards[remote]  # Ready, as the owner counts it

        page = await signed_in_page(n0, a, "/cluster")
        assert "Per-shard counts need a token with the admin role" in text_of(page)
        assert all(len(r) == 2 for r in table_rows(page, "shards"))
    finally:
        await cluster.stop_all()


async def test_a_forwarded_call_is_checked_on_both_nodes_with_the_caller_s_token(
    etcd: EtcdServer, store_url: str, store_env: dict[str, str], tmp_path: Path
) -> None:
    """docs/security.md#in-a-cluster: the node a call reaches checks its token and tenant
    before it forwards; the owner gets the caller's metadata and checks the token again (a
    forward without it would be UNAUTHENTICATED there)."""
    a = Token("a", "secret-a", ["a-*"], ["produce", "operate", "work"])
    b = Token("b", "secret-b", ["b-*"], ["produce", "operate", "work"])
    auth = write_auth(tmp_path / "auth.toml", [a, b])
    cluster = Nodes(
        store_url, etcd.url(unique("cluster")), tmp_path, store_env, ["--auth-file", str(auth)]
    )
    try:
        owners, n0, remote = await two_nodes(cluster, a)
        local = next((s for s, node in owners.items() if node == "n0"), remote)
        tenant = tenant_on(remote, "a")
        ch = channel(n0.host, n0.port)
        try:
            job = EnqueueRequest(id="fwd-1", tenant=tenant, queue="q")
            enqueued = await unary(ch, "Enqueue", bytes(job), a)
            assert enqueued.status == Status.OK, enqueued.message
            got = await unary(ch, "GetJob", bytes(GetJobRequest(tenant=tenant, id="fwd-1")), a)
            assert got.status == Status.OK, got.message
            # Another tenant's token is refused before the call leaves n0; no token at all too.
            denied = await unary(ch, "GetJob", bytes(GetJobRequest(tenant=tenant, id="fwd-1")), b)
            assert denied.status == Status.PERMISSION_DENIED, denied.message
            anonymous = await unary(ch, "Enqueue", bytes(job))
            assert anonymous.status == Status.UNAUTHENTICATED
            # A batch over both nodes' shards: each entry checked, the forwarded part accepted
            # by its owner, the other tenant's entry refused alone.
            batch = EnqueueBatchRequest(
                jobs=[
                    EnqueueRequest(tenant=tenant_on(local, "a"), queue="q"),
                    EnqueueRequest(tenant=tenant, queue="q"),
                    EnqueueRequest(tenant=tenant_on(remote, "b"), queue="q"),
                ]
            )
            answered = await unary(ch, "EnqueueBatch", bytes(batch), a)
            assert answered.status == Status.OK, answered.message
            codes = [r.code for r in EnqueueBatchResponse.parse(answered.reply).results]
            assert codes == [0, 0, Status.PERMISSION_DENIED.value]
        finally:
            ch.close()
    finally:
        await cluster.stop_all()


async def test_forwarded_stream_entries_keep_the_caller_s_token_and_owner_refusals_pass_through(
    etcd: EtcdServer, store_url: str, store_env: dict[str, str], tmp_path: Path
) -> None:
    """docs/security.md#in-a-cluster: an EnqueueStream's requests for another node's shard
    travel with the stream's metadata (the owner checks the token again), and what an owner
    refuses (UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED) reaches the caller with
    its own code, not as UNAVAILABLE. The two nodes get different auth files to make the owner
    refuse what the first node accepts."""
    a = Token("a", "secret-a", ["a-*"], ["produce", "operate", "work"])
    root = Token("root", "secret-root", ["*"], ["admin"])
    # Token "c" may act on a-* on n0 but only on "z" on n1; token "d" is known to n0 only.
    c0 = Token("c", "secret-c", ["a-*"], ["produce"])
    c1 = Token("c", "secret-c", ["z"], ["produce"])
    d = Token("d", "secret-d", ["a-*"], ["produce"])
    auth0 = write_auth(tmp_path / "auth0.toml", [a, root, c0, d])
    auth1 = write_auth(tmp_path / "auth1.toml", [a, root, c1])
    cluster = Nodes(store_url, etcd.url(unique("cluster")), tmp_path, store_env)
    try:
        cluster.extra_args = ["--auth-file", str(auth0)]
        await cluster.add("n0")
        cluster.extra_args = ["--auth-file", str(auth1), "--max-long-polls", "1"]
        await cluster.add("n1")
        owners = await wait_settled(cluster.live(), metadata=a.header)
        n0, n1 = cluster.nodes["n0"], cluster.nodes["n1"]
        remote = next(s for s, node in owners.items() if node == "n1")
        local = next((s for s, node in owners.items() if node == "n0"), None)
        tenant = tenant_on(remote, "a")
        ch, ch1 = channel(n0.host, n0.port), channel(n1.host, n1.port)
        try:
            # A stream through n0 with entries for both nodes' shards and one out of scope.
            tenants = [tenant, *([tenant_on(local, "a")] if local is not None else []), "b-1"]
            requests = [bytes(EnqueueRequest(tenant=t, queue="s")) for t in tenants]
            out, answers = await stream(ch, "EnqueueStream", requests, a)
            assert out.status == Status.OK, out.message
            results = [EnqueueResult.parse(r) for r in answers]
            codes = [r.code for r in results]
            expected = [0] * (len(tenants) - 1) + [Status.PERMISSION_DENIED.value]
            assert codes == expected, [(r.code, r.message) for r in results]
            get = GetJobRequest(tenant=tenant, id=results[0].id)
            got = await unary(ch1, "GetJob", bytes(get), a)
            assert got.status == Status.OK, got.message

            # n0 accepts these tokens; the owner n1 refuses them, and the caller sees why.
            job = bytes(EnqueueRequest(tenant=tenant, queue="s"))
            for token, code in ((c0, Status.PERMISSION_DENIED), (d, Status.UNAUTHENTICATED)):
                unary_out = await unary(ch, "Enqueue", job, token)
                assert unary_out.status == code, (token.name, unary_out)
                assert "forwarding" not in unary_out.message
                out, answers = await stream(ch, "EnqueueStream", [job], token)
                assert out.status == Status.OK, out.message
                assert [EnqueueResult.parse(r).code for r in answers] == [code.value], token.name

            # RESOURCE_EXHAUSTED: n1 allows one long-poll. A WaitJob parked on n1 directly
            # (the stream's job stays PENDING: nothing leases queue "s"); the next one, through
            # n0, is refused by n1 and the refusal comes back as it was.
            wait = bytes(WaitJobRequest(tenant=tenant, id=results[0].id, timeout_ms=60_000))
            parked = asyncio.ensure_future(unary(ch1, "WaitJob", wait, a))
            admin_ch = Channel(n1.host, n1.port)
            try:
                admin = AdminStub(admin_ch)
                deadline = time.monotonic() + 30
                while True:
                    stats = await admin.get_stats(GetStatsRequest(), metadata=root.header)
                    if stats.gauges.get("job_waiters", 0) >= 1:
                        break
                    assert time.monotonic() < deadline, "the WaitJob never parked on n1"
                    await asyncio.sleep(0.02)
                refused = await unary(ch, "WaitJob", wait, a)
                assert refused.status == Status.RESOURCE_EXHAUSTED, refused
                assert not parked.done()
            finally:
                parked.cancel()
                with contextlib.suppress(BaseException):
                    await parked
                admin_ch.close()
        finally:
            ch.close()
            ch1.close()
    finally:
        await cluster.stop_all()


# ----------------------------------------------------------------- forwarding over TLS / mTLS


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def node_tls_args(pki: Pki, *, mtls: bool = False, peer_ca: Path | None = None) -> list[str]:
    """The TLS flags of a node: its certificate names 127.0.0.1 (its advertise host) and may
    act as a client (docs/cluster.md#node-certificates). Peers are checked against
    --tls-peer-ca (`peer_ca`, default the test CA), or under mTLS against --tls-client-ca (its
    default)."""
    args = ["--tls-cert", str(pki.node_cert), "--tls-key", str(pki.node_key)]
    if mtls:
        return [*args, "--tls-client-ca", str(pki.ca)]
    return [*args, "--tls-peer-ca", str(peer_ca or pki.ca)]


async def forwarded_over(node: ServerProcess, tls: ssl.SSLContext) -> int:
    """`forwarded_calls` of a node that serves TLS."""
    async with await silo.connect(node.address, tls=tls) as client:
        stats = await client.get_stats()
    return int(stats["gauges"]["forwarded_calls"])


async def tls_cluster(
    etcd: EtcdServer, store_url: str, store_env: dict[str, str], tmp_path: Path,
    args: dict[str, list[str]], tls: ssl.SSLContext,
) -> tuple[Nodes, dict[int, str]]:  # fmt: skip
    """Nodes started with their own extra flags (`args`: node id -> flags), once settled."""
    cluster = Nodes(store_url, etcd.url(unique("cluster")), tmp_path, store_env)
    for node_id, extra in args.items():
        cluster.extra_args = extra
        await cluster.add(node_id)
    return cluster, await wait_settled(cluster.live(), tls=tls)


@pytest.mark.parametrize("mtls", [False, True], ids=["tls", "mtls"])
async def test_calls_are_forwarded_between_nodes_over_tls(
    mtls: bool,
    etcd: EtcdServer,
    store_url: str,
    store_env: dict[str, str],
    tmp_path: Path,
    pki: Pki,
) -> None:
    """docs/security.md#in-a-cluster: a node that serves TLS forwards a call for another node's
    shard over TLS, checking the peer's certificate against its CA; under mTLS it presents its
    own certificate, which the peer requires. Its web UI's cluster page asks the peer for its
    shards' counts over the same TLS."""
    tls = (
        silo.tls_context(ca=pki.ca, cert=pki.client_cert, key=pki.client_key)
        if mtls
        else silo.tls_context(ca=pki.ca)
    )
    args = [*node_tls_args(pki, mtls=mtls), "--http", "127.0.0.1:0"]
    cluster, owners = await tls_cluster(
        etcd, store_url, store_env, tmp_path, {"n0": args, "n1": args}, tls
    )
    try:
        n0 = cluster.nodes["n0"]
        remote = next(s for s, node in owners.items() if node != "n0")
        tenant = tenant_on(remote)
        before = await forwarded_over(n0, tls)
        ch = channel(n0.host, n0.port, ssl=tls)
        try:
            job = EnqueueRequest(id="tls-1", tenant=tenant, queue="q", payload=b"p")
            enqueued = await unary(ch, "Enqueue", bytes(job))
            assert enqueued.status == Status.OK, enqueued.message
            got = await unary(ch, "GetJob", bytes(GetJobRequest(tenant=tenant, id="tls-1")))
            assert got.status == Status.OK, got.message
            out, answers = await stream(
                ch, "EnqueueStream", [bytes(EnqueueRequest(tenant=tenant, queue="s"))]
            )
            assert out.status == Status.OK, out.message
            results = [EnqueueResult.parse(a) for a in answers]
            assert [r.code for r in results] == [0], [(r.code, r.message) for r in results]
        finally:
            ch.close()
        # Three calls went on to n1: the Enqueue, the GetJob and the stream's entry.
        assert await forwarded_over(n0, tls) >= before + 3
        async with aiohttp.ClientSession(f"https://{n0.http_address}") as http:
            async with http.get("/cluster", ssl=tls) as r:
                page = await r.text()
                assert r.status == 200, page
        row = table_rows(page, "shards")[remote]
        assert row[:3] == [str(remote), "n1", "2"], row  # two jobs ready on n1's shard
    finally:
        await cluster.stop_all()


async def test_a_node_that_does_not_trust_its_peer_answers_unavailable(
    etcd: EtcdServer, store_url: str, store_env: dict[str, str], tmp_path: Path, pki: Pki
) -> None:
    """A node whose --tls-peer-ca did not sign the other nodes' certificates cannot forward:
    the call is answered UNAVAILABLE at once, naming the certificate, instead of hanging; the
    other way round forwarding works."""
    tls = silo.tls_context(ca=pki.ca)
    cluster, owners = await tls_cluster(
        etcd, store_url, store_env, tmp_path,
        {
            "n0": node_tls_args(pki, peer_ca=pki.other_ca),
            "n1": node_tls_args(pki),
        },
        tls,
    )  # fmt: skip
    try:
        n0, n1 = cluster.nodes["n0"], cluster.nodes["n1"]
        on_n1 = tenant_on(next(s for s, node in owners.items() if node == "n1"))
        before = await forwarded_over(n0, tls)
        ch = channel(n0.host, n0.port, ssl=tls)
        try:
            get = bytes(GetJobRequest(tenant=on_n1, id="none"))
            refused = await unary(ch, "GetJob", get)
        finally:
            ch.close()
        assert refused.status == Status.UNAVAILABLE, refused
        assert "certificate" in refused.message.lower(), refused.message
        assert await forwarded_over(n0, tls) > before
        on_n0 = next((s for s, node in owners.items() if node == "n0"), None)
        if on_n0 is not None:  # n1 trusts n0: its calls for n0's shards are forwarded
            ch1 = channel(n1.host, n1.port, ssl=tls)
            try:
                get = bytes(GetJobRequest(tenant=tenant_on(on_n0), id="none"))
                missing = await unary(ch1, "GetJob", get)
            finally:
                ch1.close()
            assert missing.status == Status.NOT_FOUND, missing
    finally:
        await cluster.stop_all()
