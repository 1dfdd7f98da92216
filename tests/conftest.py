"""Fixtures: real `silo serve` processes on real stores, and gRPC stubs to reach them.

Every test talks to a real broker subprocess over gRPC on loopback; nothing is mocked.
- `store_url` / `store_factory`: a fresh store per call, parametrized by store kind so that a
  later issue can add `s3://` by extending STORE_KINDS (or SILO_TEST_STORES) without copying tests.
- `make_server` / `server` / `stub`: a server for this test alone (for tests that restart, kill,
  change flags or need an empty default queue).
- `shared_server` / `shared_stub` and `short_lease_server` / `short_stub`: one server per test
  module, for tests that isolate themselves with the unique tenant and queue of `ns`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from grpclib.client import Channel
from helpers import SHORT_LEASE_MS, unique
from silo._proto.silo.v1 import SiloStub
from silo.testing import ServerProcess

# Store kinds the suite runs against; "file" is a local directory store.
STORE_KINDS = [k.strip() for k in os.environ.get("SILO_TEST_STORES", "file").split(",") if k]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    # Remember each phase's report on the item so fixtures can print server logs on failure.
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    rep = getattr(request.node, "rep_call", None)
    return rep is None or rep.failed


def _print_logs(server: ServerProcess, lines: int = 60) -> None:
    tail = "\n".join(server.stderr_text().splitlines()[-lines:])
    print(f"\n--- silo serve {server.address} (pid {server.pid}) stderr tail ---\n{tail}")


StoreFactory = Callable[[str], str]


@pytest.fixture(scope="session", params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def store_factory(store_kind: str, tmp_path_factory: pytest.TempPathFactory) -> StoreFactory:
    """make(name) -> the URL of a new, empty store of the session's store kind."""

    def make(name: str) -> str:
        if store_kind == "file":
            return str(tmp_path_factory.mktemp(name) / "store")
        raise pytest.UsageError(f"unknown store kind {store_kind!r}")

    return make


@pytest.fixture
def store_url(store_factory: StoreFactory) -> str:
    """A fresh, empty store for this test."""
    return store_factory("store")


@dataclass(frozen=True)
class Namespace:
    """A tenant and a queue no other test uses, to share one server safely."""

    tenant: str
    queue: str


@pytest.fixture
def ns() -> Namespace:
    return Namespace(tenant=unique("tenant"), queue=unique("queue"))


MakeServer = Callable[..., Awaitable[ServerProcess]]

# make_server's "no store given": a fresh store (None means "pass no --store at all").
_FRESH: Any = "<fresh store>"


@pytest.fixture
async def make_server(
    request: pytest.FixtureRequest, store_factory: StoreFactory, tmp_path: Path
) -> AsyncIterator[MakeServer]:
    """`await make_server(store=..., lease_ms=30000, extra_args=(), **kw)` starts a server for
    this test on `store` (a fresh store if omitted; None passes no --store); all are stopped at
    teardown."""
    servers: list[ServerProcess] = []

    async def make(store: str | None = _FRESH, **kwargs: Any) -> ServerProcess:
        kwargs.setdefault("log_dir", tmp_path / f"logs{len(servers)}")
        server = ServerProcess(store_factory("store") if store is _FRESH else store, **kwargs)
        servers.append(server)
        return await server.astart()

    yield make
    for server in servers:
        if _failed(request):
            _print_logs(server)
        await server.stop()


@pytest.fixture
async def server(make_server: MakeServer) -> ServerProcess:
    """A server with default settings on a fresh store, for this test alone."""
    return await make_server()


@pytest.fixture
async def stub(server: ServerProcess) -> SiloStub:
    return server.stub()


def _module_server(
    request: pytest.FixtureRequest,
    store_factory: StoreFactory,
    tmp_path_factory: pytest.TempPathFactory,
    **kwargs: Any,
) -> Iterator[ServerProcess]:
    log_dir = tmp_path_factory.mktemp("server-logs")
    with ServerProcess(store_factory("shared"), log_dir=log_dir, **kwargs) as server:
        yield server


@pytest.fixture(scope="module")
def shared_server(
    request: pytest.FixtureRequest,
    store_factory: StoreFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerProcess]:
    """One default server for the whole test module; use `ns` to keep tests apart."""
    yield from _module_server(request, store_factory, tmp_path_factory)


@pytest.fixture(scope="module")
def short_lease_server(
    request: pytest.FixtureRequest,
    store_factory: StoreFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerProcess]:
    """One server per module with a lease of SHORT_LEASE_MS, for expiry tests."""
    yield from _module_server(request, store_factory, tmp_path_factory, lease_ms=SHORT_LEASE_MS)


@asynccontextmanager
async def _module_stub(
    request: pytest.FixtureRequest, server: ServerProcess
) -> AsyncIterator[SiloStub]:
    # Not server.channel(): a module server outlives this test's loop, the channel must not.
    channel = Channel(server.host, server.port)
    try:
        yield SiloStub(channel)
    finally:
        channel.close()
        if _failed(request):
            _print_logs(server)


@pytest.fixture
async def shared_stub(
    request: pytest.FixtureRequest, shared_server: ServerProcess
) -> AsyncIterator[SiloStub]:
    """A stub to `shared_server` on a channel of this test's event loop."""
    async with _module_stub(request, shared_server) as s:
        yield s


@pytest.fixture
async def short_stub(
    request: pytest.FixtureRequest, short_lease_server: ServerProcess
) -> AsyncIterator[SiloStub]:
    """A stub to `short_lease_server` on a channel of this test's event loop."""
    async with _module_stub(request, short_lease_server) as s:
        yield s
