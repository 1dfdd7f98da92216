"""Client-side routing over a cluster (docs/cluster.md#clients): `silo.connect([a, b, ...])`
returns a `ClusterClient`, which reads the cluster map (GetCluster), sends each call straight to
the node that serves its tenant (`xxh3_64(tenant) mod shard_count`, the server's hash) or its
task (a task id names its shard), over one `silo.Client` per node, and reads the map again when
a node is unreachable, answers UNAVAILABLE, or the map is older than `refresh_s`.

Any node answers any call (it forwards to the owner), so routing is an optimisation: a stale
map costs a forward, never a wrong answer. A call that failed where it certainly was not
applied (the node refused the connection, or answered that the call's shard is unavailable) is
sent again where the new map points, or to any other node; a read is sent again after any
failure. A write whose connection broke after it was sent raises
Unavailable (not acknowledged: retry it with its id).
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import xxhash

from silo import errors
from silo.client import Client
from silo.config import parse_listen
from silo.types import Cluster

if TYPE_CHECKING:
    from silo.streams import SessionClient
    from silo.types import Task

__all__ = ["ClusterClient", "ClusterMap", "shard_of_task", "shard_of_tenant"]

log = logging.getLogger("silo.cluster")

#: The tenant hash this client computes: a tenant is on shard `xxh3_64(tenant) mod
#: shard_count` (GetCluster's `hash` must name the same).
TENANT_HASH: Final = "xxh3_64"

#: Calls routed by their `tenant` field.
_BY_TENANT: Final = frozenset(
    {
        "Enqueue",
        "Cancel",
        "GetJob",
        "WaitJob",
        "ListJobs",
        "RestartJob",
        "ExpediteJob",
        "DeleteJob",
        "ListQueues",
        "PauseQueue",
        "ResumeQueue",
        "PutSchedule",
        "GetSchedule",
        "DeleteSchedule",
        "ListSchedules",
        "GetConcurrencyKey",
        "GetRateLimit",
    }
)
#: Calls routed by their filter's tenant.
_BY_FILTER: Final = frozenset({"CancelJobs", "RestartJobs", "DeleteJobs"})
#: Calls routed by the shard their task id names.
_BY_TASK: Final = frozenset({"HeartbeatTask", "ReportTaskOutcome"})
#: Calls sent again after any failure: they change nothing (or nothing twice).
_IDEMPOTENT: Final = frozenset(
    {
        "GetJob",
        "WaitJob",
        "ListJobs",
        "ListQueues",
        "GetSchedule",
        "ListSchedules",
        "GetCluster",
        "GetStats",
        "GetConcurrencyKey",
        "GetRateLimit",
        "HeartbeatTask",
    }
)


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
    """Which node address serves each shard, and the live nodes' addresses."""

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

    def for_tenant(self, tenant: str) -> str | None:
        return self.owners.get(shard_of_tenant(tenant, self.shard_count))

    def for_task(self, task_id: str) -> str | None:
        shard = shard_of_task(task_id, self.shard_count)
        return None if shard is None else self.owners.get(shard)


def _field(fields: object, name: str) -> Any:
    if isinstance(fields, dict):
        return fields.get(name)
    return getattr(fields, name, None)


#: How a node says a call's shard is moving or unreachable (rust/error.rs ShardUnavailable):
#: nothing was applied.
_SHARD_UNAVAILABLE: Final = re.compile(r"shard \d+ is unavailable: ")


def _not_applied(exc: errors.Unavailable) -> bool:
    """Whether a failed call certainly was not applied: the node answered that its shard is
    unavailable (docs/api.md#status-codes: nothing was applied) or refused the connection."""
    if isinstance(exc, errors.ShardUnavailable) or _SHARD_UNAVAILABLE.match(str(exc)):
        return True
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return True
        cause = cause.__cause__
    return False


class ClusterClient(Client):
    """The `silo.Client` of the nodes of a cluster (see the module doc): `silo.connect` returns
    one for two or more addresses. `seeds` are those addresses; the map adds the nodes it names.
    It holds one `Client` per node instead of a connection of its own.

    Calls without a tenant go to any node: LeaseTasks to the nodes in turn (each node leases
    from its own shards; `silo.Worker` leases from every node at once), GetCluster, GetStats
    and SetFaults to the first node that answers (`node(address)` is the client of one node).
    `refresh_s`: the map is read again in the background when it is older than this.
    """

    def __init__(
        self,
        seeds: Sequence[str],
        *,
        token: str | None = None,
        tls: bool | ssl.SSLContext | None = None,
        timeout: float | None = 60.0,
        streams: bool = True,
        refresh_s: float = 5.0,
    ) -> None:
        # No super().__init__(): a ClusterClient has no connection of its own; every call goes
        # through the Client of the node it is routed to (`node`).
        if not seeds:
            raise errors.InvalidArgument("address: give at least one HOST:PORT")
        for address in seeds:
            try:
                parse_listen(address)
            except ValueError as exc:
                raise errors.InvalidArgument(f"address: {address!r}: {exc}") from None
        self.addresses = tuple(dict.fromkeys(seeds))
        self._options: dict[str, Any] = {
            "token": token,
            "tls": tls,
            "timeout": timeout,
            "streams": streams,
        }
        self.refresh_s = refresh_s
        self.streams = streams
        self._clients: dict[str, Client] = {}
        self._map: ClusterMap | None = None
        self._map_at = float("-inf")
        self._refreshing: asyncio.Lock | None = None
        self._background: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Future[None]] = set()
        self._turn = 0

    # ------------------------------------------------------------------ nodes and the map

    def node(self, address: str) -> Client:
        """The client of one node (made on first use)."""
        client = self._clients.get(address)
        if client is None:
            client = Client(address, **self._options)
            self._clients[address] = client
        return client

    def nodes(self) -> list[str]:
        """The live nodes by the map (the seeds until a map was read)."""
        if self._map is not None and self._map.addresses:
            return list(self._map.addresses)
        return list(self.addresses)

    @property
    def cluster_map(self) -> ClusterMap | None:
        """The map last read (None before the first call)."""
        return self._map

    async def refresh(self) -> ClusterMap:
        """Read the map from the first node that answers GetCluster (the map's nodes, then the
        seeds). Raises Unavailable when none does."""
        if self._refreshing is None:
            self._refreshing = asyncio.Lock()
        started = asyncio.get_running_loop().time()
        async with self._refreshing:
            if self._map is not None and self._map_at >= started:
                return self._map  # another caller read it while we waited
            last: Exception | None = None
            for address in dict.fromkeys(self.nodes() + list(self.addresses)):
                try:
                    cluster: Cluster = await self.node(address)._invoke("GetCluster", {})
                except errors.Unavailable as exc:
                    last = exc
                    continue
                self._map = ClusterMap.of(cluster)
                self._map_at = asyncio.get_running_loop().time()
                self._forget_gone()
                return self._map
            raise errors.Unavailable(f"no node of the cluster answers: {last}")

    def _forget_gone(self) -> None:
        """Close the clients of nodes neither in the map nor among the seeds."""
        keep = set(self.nodes()) | set(self.addresses)
        for address in [a for a in self._clients if a not in keep]:
            closing = asyncio.ensure_future(self._clients.pop(address).close())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    def _refresh_soon(self) -> None:
        """Read the map again in the background (once at a time)."""
        if self._background is not None and not self._background.done():
            return
        self._background = asyncio.ensure_future(self._refresh_quietly())

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh()
        except errors.SiloError as exc:
            log.warning("cannot read the cluster map: %s", exc)

    # ------------------------------------------------------------------ routing

    def _owner(self, rpc: str, fields: object) -> str | None:
        """The node that serves the call's shard by the map, None for any node."""
        m = self._map
        if m is None:
            return None
        if rpc in _BY_TENANT:
            return m.for_tenant(_field(fields, "tenant") or "")
        if rpc in _BY_TASK:
            return m.for_task(_field(fields, "task_id") or "")
        if rpc in _BY_FILTER:
            return m.for_tenant(_field(_field(fields, "filter"), "tenant") or "")
        if rpc == "EnqueueBatch":
            jobs = _field(fields, "jobs") or ()
            return _most(m.for_tenant(_field(j, "tenant") or "") for j in jobs)
        if rpc == "ReportTaskOutcomes":
            reports = _field(fields, "reports") or ()
            return _most(m.for_task(_field(r, "task_id") or "") for r in reports)
        return None

    def _any(self, rpc: str, tried: Sequence[str]) -> str:
        """A node for a call any node serves: LeaseTasks in turn, others the first one."""
        nodes = [a for a in self.nodes() if a not in tried] or [
            a for a in self.addresses if a not in tried
        ]
        if not nodes:
            nodes = self.nodes()
        if rpc == "LeaseTasks":
            self._turn += 1
            return nodes[self._turn % len(nodes)]
        return nodes[0]

    async def _invoke(self, rpc: str, fields: object) -> Any:
        if self._map is None:
            try:
                await self.refresh()
            except errors.Unavailable:
                pass  # the call below says so, naming its node
        elif asyncio.get_running_loop().time() - self._map_at > self.refresh_s:
            self._refresh_soon()
        tried: list[str] = []
        while True:
            address = self._owner(rpc, fields)
            if address is None or address in tried:
                address = self._any(rpc, tried)
            tried.append(address)
            try:
                return await self.node(address)._invoke(rpc, fields)
            except errors.Unavailable as exc:
                retry = rpc in _IDEMPOTENT or _not_applied(exc)
                if not retry or len(tried) > len(set(self.nodes()) | set(self.addresses)):
                    self._refresh_soon()
                    raise
                log.info("%s on %s failed (%s): reading the map, trying again", rpc, address, exc)
                try:
                    await self.refresh()
                except errors.Unavailable:
                    raise exc from None

    async def call(self, rpc: str, request: bytes, *, wait_s: float = 0.0) -> bytes:
        """The unary RPC `rpc` on its encoded request, sent to the first live node (which
        forwards it to the owner when the call is another node's): the encoded reply."""
        return await self.node(self._any(rpc, ())).call(rpc, request, wait_s=wait_s)

    def open_session(
        self, *, worker_id: str, queues: Sequence[str], on_task: Callable[[Task], None]
    ) -> SessionClient | None:
        """None: a session is served by one node's shards, so `silo.Worker` leases from every
        node instead (docs/cluster.md#clients)."""
        return None

    async def close(self) -> None:
        """Close every node's connection. Idempotent."""
        if self._background is not None:
            self._background.cancel()
            self._background = None
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()


def _most(owners: Any) -> str | None:
    """The node most entries of a batch live on (the node splits the rest)."""
    counts = Counter(o for o in owners if o is not None)
    return counts.most_common(1)[0][0] if counts else None
