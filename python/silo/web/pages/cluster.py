"""The cluster page: the nodes, the shards each owns, and each shard's counts
(docs/ui.md#cluster). The map is GetCluster (any token may read it); the counts are
Admin/GetStats, which needs the `admin` role: this node's from the broker in this process,
each other node's over gRPC, as `silo cluster status` asks them, with the session's token and
the TLS this node uses towards its peers."""

from __future__ import annotations

import asyncio
import functools
import ssl
from dataclasses import dataclass

from aiohttp import web

from silo import errors
from silo.cluster_cli import COLUMNS, Dial, node_stats
from silo.tls import tls_context
from silo.types import Cluster
from silo.web.context import api, render, session_of

__all__ = ["COLUMNS", "NodeRow", "ShardRow", "routes"]

routes = web.RouteTableDef()

#: What the counts columns are called on the page, in COLUMNS' order.
HEADINGS = ("Ready", "Scheduled", "Running", "Waiting workers")


@dataclass(frozen=True, slots=True)
class NodeRow:
    """A node as the page shows it: `here` for the node serving this page."""

    id: str
    address: str
    shards: tuple[int, ...]
    here: bool


@dataclass(frozen=True, slots=True)
class ShardRow:
    """A shard: its owner (None while it moves) and its counts, or why they are missing."""

    shard: int
    node: str | None
    counts: tuple[int, ...] | None
    problem: str | None


@routes.get("/cluster")
async def cluster(request: web.Request) -> web.Response:
    the_api = api(request)
    shape: Cluster = await the_api.get_cluster()
    try:
        stats = await the_api.get_stats()
    except errors.PermissionDenied:
        stats = None
    settings = stats["settings"] if stats is not None else {}
    here_id = settings.get("node_id", "null")
    nodes = [
        NodeRow(
            id=n.id,
            address=n.address,
            shards=tuple(sorted(n.shards)),
            here=here_id in ("null", n.id),
        )
        for n in shape.nodes
    ]
    counts: dict[int, tuple[int, ...] | str] = {}
    if stats is not None:
        for shard, gauges in stats["shards"].items():
            counts[int(shard)] = tuple(int(gauges.get(c, 0)) for c in COLUMNS)
        others = [n for n in nodes if not n.here]
        if others:
            session = session_of(request)
            dial = Dial(session.token if session is not None else None, _peer_tls(settings))
            answers = await asyncio.gather(*(node_stats(n.address, dial) for n in others))
            for node, got in zip(others, answers, strict=True):
                for shard in node.shards:
                    counts[shard] = got if isinstance(got, str) else "not served there right now"
                if not isinstance(got, str):
                    for s in got:
                        counts[s.shard] = tuple(int(s.gauges.get(c, 0)) for c in COLUMNS)
    owner = {s: n.id for n in nodes for s in n.shards}
    rows = []
    for shard in range(shape.shard_count):
        value = counts.get(shard)
        rows.append(
            ShardRow(
                shard=shard,
                node=owner.get(shard),
                counts=value if isinstance(value, tuple) else None,
                problem=value if isinstance(value, str) else None,
            )
        )
    totals = tuple(sum(r.counts[i] for r in rows if r.counts) for i in range(len(COLUMNS)))
    return render(
        request,
        "cluster.html",
        cluster=shape,
        nodes=nodes,
        rows=rows,
        totals=totals,
        headings=HEADINGS,
        counts_shown=stats is not None,
        moving=[r.shard for r in rows if r.node is None],
        nav="cluster",
    )


def _peer_tls(settings: dict[str, str]) -> ssl.SSLContext | None:
    """The TLS this node reaches its peers with (docs/security.md#in-a-cluster): none when it
    serves none; else its certificate as the client's, and the peers checked against
    `--tls-peer-ca`, else `--tls-client-ca`, else the system's CAs."""
    cert, key = settings.get("tls_cert", "null"), settings.get("tls_key", "null")
    if cert == "null" or key == "null":
        return None
    ca = next(
        (
            settings.get(k)
            for k in ("tls_peer_ca", "tls_client_ca")
            if settings.get(k, "null") != "null"
        ),
        None,
    )
    return _client_context(ca, cert, key)


@functools.lru_cache(maxsize=4)
def _client_context(ca: str | None, cert: str, key: str) -> ssl.SSLContext:
    return tls_context(ca=ca, cert=cert, key=key)
