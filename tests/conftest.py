"""Fixtures: real `silo serve` processes on real stores, and gRPC stubs to reach them.

Every test talks to a real broker subprocess over gRPC on loopback; nothing is mocked.
- `store_url` / `store_factory`: a fresh store per call, of the kind `store_kind`: "file" (a
  local directory), "s3" (a new bucket on the session's SeaweedFS server, `s3_server`) or
  "moto" (a bucket on Moto's S3 server, a second dialect; only when asked for).
  `store_env` holds the environment a server needs to reach such a store (AWS_* for S3);
  `make_server` and the module servers pass it on. `store_keys(url, prefix)` lists the objects of
  a store (to watch WAL files, GC, ...).
- Store kinds come from SILO_TEST_STORES (default "file,s3"): a module marked
  `pytestmark = pytest.mark.all_stores` runs once per kind; any other module runs on the first
  kind only. SILO_TEST_STORES=file skips S3 (and the tests that need S3 alone);
  SILO_TEST_STORES=s3 runs everything on S3; SILO_TEST_STORES=file,s3,moto adds Moto.
- `s3` / `private_s3`: the SeaweedFS server itself, shared or for one test alone.
- `record_figure(line)`: a measured figure, repeated in the run's closing summary.
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
from s3server import MotoS3, S3Server, S3ServerError, SeaweedS3
from silo._proto.silo.admin.v1 import AdminStub
from silo._proto.silo.v1 import SiloStub
from silo.testing import ServerProcess

# Store kinds the suite runs against (see the module doc); the first is the kind of unmarked
# modules.
KNOWN_STORE_KINDS = ("file", "s3", "moto")
STORE_KINDS = [
    k.strip() for k in os.environ.get("SILO_TEST_STORES", "file,s3").split(",") if k.strip()
]
ALL_STORES_MARK = "all_stores"


def pytest_configure(config: pytest.Config) -> None:
    unknown = sorted(set(STORE_KINDS) - set(KNOWN_STORE_KINDS))
    if unknown or not STORE_KINDS:
        raise pytest.UsageError(
            f"SILO_TEST_STORES={os.environ.get('SILO_TEST_STORES')!r}: use a comma-separated "
            f"list of {', '.join(KNOWN_STORE_KINDS)}"
        )
    config.addinivalue_line(
        "markers", f"{ALL_STORES_MARK}: run this test once per kind in SILO_TEST_STORES"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Session scope: pytest then groups the tests by store kind, so each kind's servers (and
    # the S3 server) are set up once per run of a kind, not per test.
    if "store_kind" in metafunc.fixturenames:
        marked = metafunc.definition.get_closest_marker(ALL_STORES_MARK) is not None
        kinds = STORE_KINDS if marked else STORE_KINDS[:1]
        metafunc.parametrize("store_kind", kinds, indirect=True, scope="session")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    # Remember each phase's report on the item so fixtures can print server logs on failure.
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


_FIGURES = pytest.StashKey[list[str]]()


@pytest.fixture
def record_figure(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """record_figure(line): a measured figure (counts, requests per job...) to print in the
    run's summary, where it shows even when output capture hides the test's own prints."""

    def record(line: str) -> None:
        print(line)
        request.config.stash.setdefault(_FIGURES, []).append(f"{request.node.nodeid}: {line}")

    return record


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    figures = config.stash.get(_FIGURES, [])
    if figures:
        terminalreporter.section("figures")
        for line in figures:
            terminalreporter.write_line(line)


def _failed(request: pytest.FixtureRequest) -> bool:
    rep = getattr(request.node, "rep_call", None)
    return rep is None or rep.failed


def _print_logs(server: ServerProcess, lines: int = 60) -> None:
    tail = "\n".join(server.stderr_text().splitlines()[-lines:])
    print(f"\n--- silo serve {server.address} (pid {server.pid}) stderr tail ---\n{tail}")


StoreFactory = Callable[[str], str]
StoreKeys = Callable[..., list[str]]

#: The fixture of the server behind each S3 store kind.
_S3_FIXTURES = {"s3": "s3_server", "moto": "moto_server"}


def _start_s3(server: S3Server) -> Iterator[S3Server]:
    try:
        server.start()
    except S3ServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One SeaweedFS S3 server for the whole session, started on first use."""
    yield from _start_s3(SeaweedS3(tmp_path_factory.mktemp("seaweedfs")))


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One Moto S3 server for the whole session (store kind "moto"), started on first use."""
    yield from _start_s3(MotoS3(tmp_path_factory.mktemp("moto")))


def require_s3() -> None:
    """Skip the calling test when SILO_TEST_STORES leaves S3 out."""
    if "s3" not in STORE_KINDS:
        pytest.skip("S3 left out by SILO_TEST_STORES")


@pytest.fixture
def s3(request: pytest.FixtureRequest) -> S3Server:
    """The session's SeaweedFS server, for tests that need S3 whatever the store kind (skipped
    when SILO_TEST_STORES leaves S3 out)."""
    require_s3()
    server: S3Server = request.getfixturevalue("s3_server")
    return server


@pytest.fixture
def private_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A SeaweedFS server for this test alone (to freeze or stop it), skipped like `s3`."""
    require_s3()
    yield from _start_s3(SeaweedS3(tmp_path_factory.mktemp("seaweedfs-private")))


@pytest.fixture(scope="session")
def store_kind(request: pytest.FixtureRequest) -> str:
    """The kind of store of this test ("file", "s3" or "moto"); see pytest_generate_tests."""
    return str(request.param)


def _s3_of_kind(request: pytest.FixtureRequest, store_kind: str) -> S3Server | None:
    """The S3 server behind a store kind (None for "file"); call during fixture setup."""
    if store_kind not in _S3_FIXTURES:
        return None
    server: S3Server = request.getfixturevalue(_S3_FIXTURES[store_kind])
    return server


@pytest.fixture(scope="session")
def store_factory(
    request: pytest.FixtureRequest, store_kind: str, tmp_path_factory: pytest.TempPathFactory
) -> StoreFactory:
    """make(name) -> the URL of a new, empty store of the session's store kind (for S3 kinds a
    new bucket per store)."""
    s3 = _s3_of_kind(request, store_kind)
    if s3 is not None:

        def make_s3(name: str) -> str:
            return f"s3://{s3.bucket(name)}/silo"

        return make_s3

    def make(name: str) -> str:
        return str(tmp_path_factory.mktemp(name) / "store")

    return make


@pytest.fixture(scope="session")
def store_env(request: pytest.FixtureRequest, store_kind: str) -> dict[str, str]:
    """Environment variables a `silo serve` child needs to reach a store of this kind."""
    s3 = _s3_of_kind(request, store_kind)
    return {} if s3 is None else s3.env()


@pytest.fixture(scope="session")
def store_keys(request: pytest.FixtureRequest, store_kind: str) -> StoreKeys:
    """keys(url, prefix="") -> the object keys (relative to the store's root) that start with
    `prefix` in store `url` of this session's kind, sorted; for a local directory, its files."""
    s3 = _s3_of_kind(request, store_kind)
    if s3 is not None:

        def s3_keys(url: str, prefix: str = "") -> list[str]:
            bucket, _, root = url.removeprefix("s3://").partition("/")
            root = f"{root.strip('/')}/" if root.strip("/") else ""
            return sorted(k.removeprefix(root) for k in s3.keys(bucket, root + prefix))

        return s3_keys

    def file_keys(url: str, prefix: str = "") -> list[str]:
        base = Path(url.removeprefix("file://"))
        if not base.exists():
            return []
        found = (p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())
        return sorted(k for k in found if k.startswith(prefix))

    return file_keys


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
    request: pytest.FixtureRequest,
    store_factory: StoreFactory,
    store_env: dict[str, str],
    tmp_path: Path,
) -> AsyncIterator[MakeServer]:
    """`await make_server(store=..., lease_ms=30000, extra_args=(), **kw)` starts a server for
    this test on `store` (a fresh store if omitted; None passes no --store) with `store_env`
    added to its environment (`env=` entries win); all are stopped at teardown."""
    servers: list[ServerProcess] = []

    async def make(store: str | None = _FRESH, **kwargs: Any) -> ServerProcess:
        kwargs.setdefault("log_dir", tmp_path / f"logs{len(servers)}")
        kwargs["env"] = {**store_env, **(kwargs.get("env") or {})}
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
    store_factory: StoreFactory,
    store_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
    **kwargs: Any,
) -> Iterator[ServerProcess]:
    log_dir = tmp_path_factory.mktemp("server-logs")
    with ServerProcess(store_factory("shared"), log_dir=log_dir, env=store_env, **kwargs) as server:
        yield server


@pytest.fixture(scope="module")
def shared_server(
    store_factory: StoreFactory,
    store_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerProcess]:
    """One default server for the whole test module; use `ns` to keep tests apart."""
    yield from _module_server(store_factory, store_env, tmp_path_factory)


@pytest.fixture(scope="module")
def short_lease_server(
    store_factory: StoreFactory,
    store_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerProcess]:
    """One server per module with a lease of SHORT_LEASE_MS, for expiry tests."""
    yield from _module_server(store_factory, store_env, tmp_path_factory, lease_ms=SHORT_LEASE_MS)


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
async def shared_admin(shared_server: ServerProcess) -> AsyncIterator[AdminStub]:
    """An Admin stub to `shared_server` on a channel of this test's event loop."""
    channel = Channel(shared_server.host, shared_server.port)
    try:
        yield AdminStub(channel)
    finally:
        channel.close()


@pytest.fixture
async def short_stub(
    request: pytest.FixtureRequest, short_lease_server: ServerProcess
) -> AsyncIterator[SiloStub]:
    """A stub to `short_lease_server` on a channel of this test's event loop."""
    async with _module_stub(request, short_lease_server) as s:
        yield s


# ---------------------------------------------------------------- the public Python API

#: How `make_api` reaches a broker: in process (`silo.open`) or over gRPC (`silo.connect` to a
#: `silo serve` child).
API_KINDS = ("open", "connect")


@pytest.fixture(params=API_KINDS)
def api_kind(request: pytest.FixtureRequest) -> str:
    """ "open" or "connect": tests that take `make_api` run once with each."""
    return str(request.param)


MakeApi = Callable[..., Awaitable[Any]]


@pytest.fixture
async def make_api(
    api_kind: str, store_factory: StoreFactory, make_server: MakeServer
) -> AsyncIterator[MakeApi]:
    """`await make_api(lease_ms=...)`: a `silo.Api` on a fresh store, embedded (`silo.open`)
    or remote (`silo.connect` to its own `silo serve`) per `api_kind`; closed at teardown."""
    import silo

    opened: list[Any] = []

    async def make(*, lease_ms: int = 30_000) -> Any:
        if api_kind == "open":
            api: Any = await silo.open(store_factory("api"), lease_ms=lease_ms)
        else:
            server = await make_server(lease_ms=lease_ms)
            api = await silo.connect(server.address)
        opened.append(api)
        return api

    yield make
    for api in opened:
        await api.close()


# ---------------------------------------------------------------- the HTTP surface (web UI)


@pytest.fixture(scope="module")
def http_server(
    store_factory: StoreFactory,
    store_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerProcess]:
    """One server per module serving HTTP too (`--http 127.0.0.1:0`; its `http_url`); use `ns`
    to keep tests apart."""
    yield from _module_server(store_factory, store_env, tmp_path_factory, http="127.0.0.1:0")


@pytest.fixture
async def http(http_server: ServerProcess) -> AsyncIterator[Any]:
    """An aiohttp client session on `http_server` (no redirects followed: tests look at them)."""
    import aiohttp

    async with aiohttp.ClientSession(http_server.http_url) as session:
        yield session


@pytest.fixture
async def http_api(http_server: ServerProcess) -> AsyncIterator[Any]:
    """A `silo.Client` of `http_server`, to put jobs in the states a test needs."""
    import silo

    client = await silo.connect(http_server.address)
    try:
        yield client
    finally:
        await client.close()
