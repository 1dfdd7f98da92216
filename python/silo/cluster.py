"""Client-side routing over a cluster (docs/cluster.md#clients): the cluster map from GetCluster,
the node that serves a tenant (`xxh3_64(tenant) mod shard_count`, the server's hash) or a task
(its id names its shard), one channel per node, and a refresh of the map when a node is
unreachable or answers UNAVAILABLE.

Any node answers any call (it forwards), so routing is an optimisation: a stale map costs a
forward, never a wrong answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import xxhash
from grpclib.client import Channel

from silo import errors
from silo._proto.silo.v1 import Cluster, GetClusterRequest, SiloStub
from silo.config import parse_listen

__all__ = ["ClusterMap", "Router", "shard_of_task", "shard_of_tenant"]

T = TypeVar("T")

#: The tenant hash this client computes (GetCluster's `hash` must say the same).
TENANT_HASH = "xxh3_64(tenant) mod shard_count"


def shard_of_tenant(tenant: str, shard_count: int) -> int:
    """The shard of a tenant, as the server computes it (rust/routing.rs)."""
    if shard_count <= 1:
        return 0
    return xxhash.xxh3_64_intdigest(tenant.encode()) % shard_count


def shard_of_task(task_id: str, shard_count: int) -> int | None:
    """The shard a task id names (`<shard>-<uuid>`), or None."""
    if shard_count <= 1:
        return 0
    prefix, sep, _ = task_id.partition("-")
    if not sep or not prefix.isascii() or not prefix.isdigit():
        return None
    shard = int(prefix)
    return shard if shard < shard_count else None


@dataclass(frozen=True)
class ClusterMap:
    """Which node address serves each shard."""

    shard_count: int
    owners: dict[int, str] = field(default_factory=dict)
    addresses: tuple[str, ...] = ()

    @classmethod
    def of(cls, cluster: Cluster) -> ClusterMap:
        if cluster.hash and cluster.hash != TENANT_HASH:
            raise errors.InvalidArgument(
                f"cluster: the servers hash tenants by {cluster.hash!r}; this client by "
                f"{TENANT_HASH!r}"
            )
        owners = {s: n.address for n in cluster.nodes for s in n.shards if n.address}
        addresses = tuple(n.address for n in cluster.nodes if n.address)
        return cls(max(cluster.shard_count, 1), owners, addresses)


class Router:
    """Channels to the nodes of a cluster and the map to pick one per call.

    `seeds` are the addresses given to `silo.connect`; the map adds the nodes it names.
    """

    def __init__(self, seeds: Sequence[str], *, timeout: float | None = None) -> None:
        if not seeds:
            raise errors.InvalidArgument("address: give at least one HOST:PORT")
        for address in seeds:
            parse_listen(address)
        self._seeds = list(dict.fromkeys(seeds))
        self._timeout = timeout
        self._stubs: dict[str, tuple[Channel, SiloStub]] = {}
        self._map: ClusterMap | None = None
        self._refreshing: asyncio.Lock | None = None
        self._turn = 0

    def stub(self, address: str) -> SiloStub:
        """The stub of a node (its channel made on first use)."""
        if address not in self._stubs:
            host, port = parse_listen(address)
            channel = Channel(host, port)
            self._stubs[address] = (channel, SiloStub(channel, timeout=self._timeout))
        return self._stubs[address][1]

    def nodes(self) -> list[str]:
        """Every node address known: the seeds and the map's nodes."""
        known = list(self._seeds)
        if self._map is not None:
            known += [a for a in self._map.addresses if a not in known]
        return known

    def next_node(self) -> str:
        """The nodes in turn (for calls served by any node, like LeaseTasks)."""
        nodes = self.nodes()
        self._turn = (self._turn + 1) % len(nodes)
        return nodes[self._turn]

    async def refresh(self) -> ClusterMap:
        """Reads the map from the first node that answers GetCluster.
        Raises Unavailable when none does."""
        if self._refreshing is None:
            self._refreshing = asyncio.Lock()
        async with self._refreshing:
            last: Exception | None = None
            for address in self.nodes():
                try:
                    cluster = await self.stub(address).get_cluster(GetClusterRequest())
                except Exception as exc:
                    last = exc
                    continue
                self._map = ClusterMap.of(cluster)
                return self._map
            raise errors.Unavailable(f"no node of the cluster answers: {last}")

    async def _map_now(self) -> ClusterMap:
        return self._map if self._map is not None else await self.refresh()

    async def for_tenant(self, tenant: str) -> str:
        m = await self._map_now()
        return m.owners.get(shard_of_tenant(tenant, m.shard_count), self._seeds[0])

    async def for_task(self, task_id: str) -> str:
        m = await self._map_now()
        shard = shard_of_task(task_id, m.shard_count)
        return m.owners.get(shard, self._seeds[0]) if shard is not None else self._seeds[0]

    async def call(
        self,
        route: Callable[[], Awaitable[str]],
        run: Callable[[SiloStub], Awaitable[T]],
    ) -> T:
        """Runs `run` on the node `route` names; if that node is unreachable or answers
        UNAVAILABLE, refreshes the map and tries once more where it now points."""
        address = await route()
        try:
            return await run(self.stub(address))
        except errors.Unavailable:
            await self.refresh()
            again = await route()
            if again == address:
                again = next((a for a in self.nodes() if a != address), address)
            return await run(self.stub(again))

    def close(self) -> None:
        for channel, _ in self._stubs.values():
            channel.close()
        self._stubs.clear()
