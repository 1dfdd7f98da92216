"""Test helpers: run enqueued tasks inline (`drain`), and run a real `silo serve` in a
subprocess (`ServerProcess`). The pytest fixture `silo_broker` (python/silo/pytest_plugin.py)
gives a fresh embedded broker on memory:// to each test:

    async def test_add(silo_broker):
        handle = await add.enqueue(silo_broker, 1, 2)
        assert await silo.testing.drain(silo_broker, tasks=[add]) == 1
        assert await handle.result(timeout=5) == 3

`ServerProcess` is what Silo's own tests use, and it is public so that users can test their
workers against a real broker the same way:

    async with ServerProcess(store=str(tmp_path / "store")) as server:
        stub = server.stub()
        await stub.enqueue(EnqueueRequest(payload=b"hi"))

The process lifecycle (start, kill9, terminate, restart) is synchronous and needs no event loop,
so one server can outlive many tests; channels and stubs are asyncio objects bound to the loop
that creates them, and are closed by `close_channels()` (called by `stop()` and `kill9()`).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from grpclib.client import Channel

    from silo._proto.silo.v1 import SiloStub
    from silo.api import Api
    from silo.tasks import RawHandler, TaskDef

__all__ = ["ServerProcess", "ServerStartError", "drain", "free_port"]


def __getattr__(name: str) -> Any:
    """`silo.testing.silo_broker` is the fixture of the pytest plugin
    (python/silo/pytest_plugin.py), imported on first use so that `import silo` needs no
    pytest. Installing Silo registers the plugin already; `from silo.testing import
    silo_broker` or `pytest_plugins = ["silo.testing"]` name it explicitly."""
    if name == "silo_broker":
        from silo.pytest_plugin import silo_broker

        return silo_broker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "silo_broker"})


async def drain(
    api: Api,
    *,
    tasks: Sequence[TaskDef[Any, Any]] = (),
    handlers: Mapping[str, RawHandler] | None = None,
    queues: Sequence[str] | None = None,
    concurrency: int = 1,
) -> int:
    """Run the due jobs of `tasks` (and raw `handlers`) inline, as a `silo.Worker` would,
    until none is due and none is running; how many ran. Jobs scheduled for later (a future
    start, a retry's backoff) stay; a retry due at once runs in the same drain. Failures are
    recorded on the jobs as a worker records them (retries, tracebacks), not raised here."""
    from silo.worker import Worker

    worker = Worker(
        api,
        tasks=tasks,
        handlers=handlers,
        queues=queues,
        concurrency=concurrency,
        worker_id="silo-testing-drain",
    )
    return await worker.run_until_idle()


# The readiness line of `silo serve` (docs/operations.md#running-silo-serve); the server may
# log it on stdout or stderr.
_LISTENING = re.compile(r"listening on (?P<host>\S+):(?P<port>\d+)")
# The line of the HTTP server (`--http`), printed before the readiness line.
_HTTP_ON = re.compile(r"^http on (?P<address>\S+:\d+)$")


class ServerStartError(RuntimeError):
    """`silo serve` exited or stayed silent before logging `listening on HOST:PORT`."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it; another process could take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class _Drain:
    """Reads one pipe of the child line by line into a file, so the child never blocks on a
    full pipe, and signals when the readiness line appears."""

    def __init__(self, pipe: IO[bytes], log_path: Path, ready: threading.Event) -> None:
        self.lines: list[str] = []
        self.log_path = log_path
        self.ready_match: re.Match[str] | None = None
        self.http_match: re.Match[str] | None = None
        self._pipe = pipe
        self._ready = ready
        self._thread = threading.Thread(
            target=self._run, name=f"drain:{log_path.name}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        with self._pipe, self.log_path.open("ab") as log:
            for raw in iter(self._pipe.readline, b""):
                log.write(raw)
                log.flush()
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                self.lines.append(line)
                if self.http_match is None:
                    self.http_match = _HTTP_ON.match(line)
                if self.ready_match is None:
                    match = _LISTENING.search(line)
                    if match is not None:
                        self.ready_match = match
                        self._ready.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


class ServerProcess:
    """One `silo serve` child process on a store, reachable over gRPC on loopback.

    store: the `--store` value (a path, `file:///abs`, `memory://`, `s3://...`); None passes no
        store, so the server uses its default (`./silo-data` relative to `cwd`).
    lease_ms: the `--lease-ms` value; None passes none (the server's default, 30,000).
    extra_args: more `silo serve` flags, e.g. `["--max-payload-bytes", "1024"]`.
    port: the port to listen on; None picks a free one.
    use_env: pass store, listen address and lease through `SILO_*` environment variables
        instead of flags (to test the environment path of the CLI).
    listen: pass the listen address at all; False lets the server use its default
        (set `port` to that default so `address` and `stub()` match).
    env: extra environment variables for the child.
    http: the `--http` value: "off" (the default here: no HTTP server, so that test servers
        need one port only), "127.0.0.1:0" for a free port, or None to pass none (the
        server's default: the listen host and the next port). `http_address` says where it
        serves once started.
    log_dir: where the child's stdout/stderr logs go; default a new temporary directory.

    Attributes: `host`, `port`, `address` ("HOST:PORT"), `store`, `returncode` (after exit),
    `stdout_path` and `stderr_path` (the logs of the current run).
    """

    def __init__(
        self,
        store: str | None,
        *,
        lease_ms: int | None = 30000,
        extra_args: Sequence[str] = (),
        host: str = "127.0.0.1",
        port: int | None = None,
        use_env: bool = False,
        listen: bool = True,
        env: Mapping[str, str] | None = None,
        http: str | None = "off",
        cwd: str | os.PathLike[str] | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.store = store
        self.lease_ms = lease_ms
        self.extra_args = list(extra_args)
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.use_env = use_env
        self.listen = listen
        self.env = dict(env or {})
        self.http = http
        self.cwd = cwd
        self.startup_timeout = startup_timeout
        self.log_dir = (
            Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="silo-test-"))
        )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.returncode: int | None = None
        self.stdout_path = self.log_dir / "none.stdout.log"
        self.stderr_path = self.log_dir / "none.stderr.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._drains: list[_Drain] = []
        self._channels: list[Channel] = []
        self._runs = 0

    # ---------------------------------------------------------------- lifecycle (synchronous)

    @property
    def address(self) -> str:
        """`HOST:PORT` the server listens on."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def command(self) -> list[str]:
        """The argv this server is started with."""
        cmd = [sys.executable, "-m", "silo", "serve"]
        if not self.use_env:
            if self.listen:
                cmd += ["--listen", self.address]
            if self.store is not None:
                cmd += ["--store", self.store]
            if self.lease_ms is not None:
                cmd += ["--lease-ms", str(self.lease_ms)]
            if self.http is not None:
                cmd += ["--http", self.http]
        return cmd + self.extra_args

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        if self.use_env:
            if self.listen:
                env["SILO_LISTEN"] = self.address
            if self.store is not None:
                env["SILO_STORE"] = self.store
            if self.lease_ms is not None:
                env["SILO_LEASE_MS"] = str(self.lease_ms)
            if self.http is not None:
                env["SILO_HTTP"] = self.http
        env.update(self.env)
        return env

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> ServerProcess:
        """Start the child and block until it logs `listening on HOST:PORT`.

        Raises ServerStartError (with the child's output) if it exits first or stays silent
        for `startup_timeout` seconds; the child is killed in the second case.
        """
        if self.is_running():
            raise RuntimeError("server already running")
        self._runs += 1
        stem = f"silo-{self.port}-run{self._runs}"
        self.stdout_path = self.log_dir / f"{stem}.stdout.log"
        self.stderr_path = self.log_dir / f"{stem}.stderr.log"
        self.returncode = None
        ready = threading.Event()
        self._proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self._child_env(),
            cwd=self.cwd,
        )
        assert self._proc.stdout is not None and self._proc.stderr is not None
        self._drains = [
            _Drain(self._proc.stdout, self.stdout_path, ready),
            _Drain(self._proc.stderr, self.stderr_path, ready),
        ]
        deadline = time.monotonic() + self.startup_timeout
        while not ready.wait(0.05):
            if self._proc.poll() is not None:
                self._finish_exit()
                raise ServerStartError(
                    f"silo serve exited with code {self.returncode} before listening\n"
                    f"command: {self.command()}\n{self.output()}"
                )
            if time.monotonic() > deadline:
                self._proc.kill()
                self._proc.wait()
                self._finish_exit()
                raise ServerStartError(
                    f"silo serve did not log 'listening on' within {self.startup_timeout}s\n"
                    f"command: {self.command()}\n{self.output()}"
                )
        return self

    def _finish_exit(self) -> None:
        assert self._proc is not None
        self.returncode = self._proc.wait()
        for drain in self._drains:
            drain.join(10.0)

    @property
    def http_address(self) -> str | None:
        """`HOST:PORT` of the HTTP server (web UI, /metrics), from its `http on` line; None
        when the server serves no HTTP (`--http off`) or is not started."""
        for drain in self._drains:
            if drain.http_match is not None:
                return drain.http_match["address"]
        return None

    @property
    def http_url(self) -> str:
        """`http://HOST:PORT` of the HTTP server; RuntimeError when it serves none."""
        if self.http_address is None:
            raise RuntimeError("this server serves no HTTP (start it with http='127.0.0.1:0')")
        return f"http://{self.http_address}"

    def listening_lines(self) -> list[str]:
        """Every line of this run's output that matches `listening on HOST:PORT`."""
        return [line for d in self._drains for line in d.lines if _LISTENING.search(line)]

    def stdout_text(self) -> str:
        return "\n".join(self._drains[0].lines) if self._drains else ""

    def stderr_text(self) -> str:
        return "\n".join(self._drains[1].lines) if len(self._drains) > 1 else ""

    def output(self) -> str:
        """This run's stdout and stderr so far, for assertion messages."""
        return f"--- stdout ---\n{self.stdout_text()}\n--- stderr ---\n{self.stderr_text()}"

    def kill9(self) -> int:
        """SIGKILL the child (no flush, no goodbye) and wait for it; returns the exit code."""
        if self._proc is None:
            raise RuntimeError("server never started")
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
        self.close_channels()
        self._finish_exit()
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self._proc is None:
            raise RuntimeError("server never started")
        self._proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the child to exit by itself; returns its exit code."""
        if self._proc is None:
            raise RuntimeError("server never started")
        self._proc.wait(timeout)
        self._finish_exit()
        assert self.returncode is not None
        return self.returncode

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM the child and wait for it to exit; returns the exit code.

        The child is SIGKILLed if it does not exit within `timeout` (and the code is then -9).
        """
        self.close_channels()
        if self._proc is None:
            raise RuntimeError("server never started")
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._finish_exit()
        assert self.returncode is not None
        return self.returncode

    def restart(self, *, new_port: bool = False) -> ServerProcess:
        """Start again on the same store, on the same port unless `new_port`.

        A still-running child is stopped with SIGTERM first (use `kill9()` before for a crash).
        """
        if self.is_running():
            self.terminate()
        if new_port:
            self.port = free_port(self.host)
        return self.start()

    # ------------------------------------------------------------------- gRPC (asyncio)

    def channel(self) -> Channel:
        """A new grpclib Channel to this server, bound to the running event loop.

        The server keeps track of it and closes it in `close_channels()`, `stop()` and `kill9()`.
        """
        from grpclib.client import Channel

        channel = Channel(self.host, self.port)
        self._channels.append(channel)
        return channel

    def stub(self) -> SiloStub:
        """A `silo.v1.Silo` client stub over a new channel (see `channel()`)."""
        from silo._proto.silo.v1 import SiloStub

        return SiloStub(self.channel())

    def close_channels(self) -> None:
        """Close every channel made by `channel()`/`stub()` (call it inside their event loop)."""
        channels, self._channels = self._channels, []
        for channel in channels:
            channel.close()

    async def stop(self, timeout: float = 30.0) -> int:
        """Close the channels, SIGTERM the child, wait for it; returns the exit code."""
        self.close_channels()
        return await asyncio.to_thread(self.terminate, timeout)

    async def astart(self) -> ServerProcess:
        """`start()` without blocking the event loop."""
        return await asyncio.to_thread(self.start)

    async def arestart(self, *, new_port: bool = False) -> ServerProcess:
        """`restart()` without blocking the event loop."""
        self.close_channels()
        return await asyncio.to_thread(self.restart, new_port=new_port)

    # ------------------------------------------------------------------ context managers

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is not None:
            self.terminate()

    async def __aenter__(self) -> ServerProcess:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is not None:
            await self.stop()
