"""`silo cluster status`: the cluster's nodes, which shards each owns, and each shard's counts
(GetCluster from any node, Admin/GetStats from each node; docs/cluster.md#operating)."""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import sys
from typing import Final

from grpclib.client import Channel
from grpclib.exceptions import GRPCError

from silo._proto.silo.admin.v1 import AdminStub, GetStatsRequest, ShardStats
from silo._proto.silo.v1 import GetClusterRequest, SiloStub
from silo.client import TOKEN_VAR
from silo.commands import add_security_arguments, client_tls
from silo.config import DEFAULT_LISTEN, parse_listen

__all__ = ["COLUMNS", "Dial", "node_stats", "register", "run", "status"]

#: The per-shard gauges the table shows, in order.
COLUMNS: Final = ("ready", "scheduled", "running", "lease_waiters")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cluster = commands.add_parser("cluster", help="look at a cluster of silo nodes")
    actions = cluster.add_subparsers(dest="cluster_command", required=True, metavar="ACTION")
    status = actions.add_parser(
        "status", help="nodes, shard owners and per-shard counts (any node answers)"
    )
    status.add_argument(
        "--connect", default=DEFAULT_LISTEN, metavar="HOST:PORT", help="a node of the cluster"
    )
    add_security_arguments(status)


def run(args: argparse.Namespace) -> int:
    try:
        tls = client_tls(args)
        token = args.token or os.environ.get(TOKEN_VAR)
        text = asyncio.run(status(args.connect, token=token, tls=tls))
    except (OSError, ValueError) as exc:
        print(f"silo cluster status: error: {exc}", file=sys.stderr)
        return 1
    print(text)
    return 0


class Dial:
    """How to reach the nodes: the bearer token (None: none) and the TLS of every channel."""

    def __init__(self, token: str | None, tls: ssl.SSLContext | bool | None) -> None:
        self.metadata = {"authorization": f"Bearer {token}"} if token else None
        self.tls = tls

    def channel(self, address: str) -> Channel:
        host, port = parse_listen(address)
        return Channel(host, port, ssl=self.tls or None)


async def node_stats(address: str, dial: Dial) -> list[ShardStats] | str:
    """The per-shard stats of the node at `address` (Admin/GetStats), or why there are none
    (`unreachable (...)`, `refused (...)` for an error the node answered)."""
    channel = dial.channel(address)
    try:
        stats = await asyncio.wait_for(
            AdminStub(channel, metadata=dial.metadata).get_stats(GetStatsRequest()), 5
        )
        return list(stats.shards)
    except GRPCError as exc:
        return f"refused ({exc.status.name}: {exc.message})"
    except Exception as exc:
        return f"unreachable ({type(exc).__name__})"
    finally:
        channel.close()


async def status(
    address: str, *, token: str | None = None, tls: ssl.SSLContext | bool | None = None
) -> str:
    """The status tables of the cluster `address` belongs to, as text. GetCluster needs any
    valid token and Admin/GetStats an `admin` one when the nodes check tokens
    (docs/security.md); `tls` as for `silo.connect`."""
    dial = Dial(token, tls)
    channel = dial.channel(address)
    try:
        cluster = await asyncio.wait_for(
            SiloStub(channel, metadata=dial.metadata).get_cluster(GetClusterRequest()), 5
        )
    except Exception as exc:
        raise OSError(f"cannot reach {address}: {exc}") from exc
    finally:
        channel.close()
    lines = [
        f"{len(cluster.nodes)} node(s), {cluster.shard_count} shard(s), "
        f"tenant shard = {cluster.hash}(tenant) mod {cluster.shard_count}",
        "",
    ]
    rows: list[tuple[str, ...]] = [("NODE", "ADDRESS", "SHARDS")]
    rows += [(n.id, n.address, ",".join(map(str, sorted(n.shards))) or "-") for n in cluster.nodes]
    owned = {s for n in cluster.nodes for s in n.shards}
    moving = [s for s in range(cluster.shard_count) if s not in owned]
    lines += _table(rows)
    if moving:
        lines.append(f"moving (no owner right now): {','.join(map(str, moving))}")
    lines.append("")
    shard_rows: list[tuple[str, ...]] = [("SHARD", "NODE", *(c.upper() for c in COLUMNS))]
    stats = await asyncio.gather(*(node_stats(n.address, dial) for n in cluster.nodes))
    for node, got in zip(cluster.nodes, stats, strict=True):
        if isinstance(got, str):
            shard_rows += [(str(s), node.id, got, "", "", "") for s in sorted(node.shards)]
            continue
        for shard in sorted(got, key=lambda s: s.shard):
            shard_rows.append(
                (str(shard.shard), node.id, *(str(shard.gauges.get(c, 0)) for c in COLUMNS))
            )
    lines += _table(shard_rows)
    return "\n".join(lines)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
