"""The core's RPC table (rust/rpc.rs, `silo._native.rpcs()`) is the protos' services exactly:
the server routes every unary RPC from it, so an RPC missing there would never be served."""

from __future__ import annotations

import re
from pathlib import Path

from silo._native import rpcs

ROOT = Path(__file__).resolve().parent.parent
PROTOS = {
    "silo.v1.Silo": ROOT / "proto/silo/v1/silo.proto",
    "silo.admin.v1.Admin": ROOT / "proto/silo/admin/v1/admin.proto",
}
_RPC = re.compile(r"^\s*rpc\s+(\w+)\s*\(\s*(stream\s+)?\w+\s*\)", re.MULTILINE)


def test_the_table_lists_every_rpc_of_the_protos_and_nothing_else() -> None:
    declared = {
        (service, match[1], bool(match[2]))
        for service, path in PROTOS.items()
        for match in _RPC.finditer(path.read_text())
    }
    assert len(declared) > 20, "the proto parser found too few RPCs"
    assert set(rpcs()) == declared
    assert len(rpcs()) == len(declared), "an RPC appears twice in the table"
