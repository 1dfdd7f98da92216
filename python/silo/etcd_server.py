"""A real etcd for the cluster tests (tests/test_cluster.py) and `silo bench cluster`: Debian's
`etcd-server` (`/usr/bin/etcd`) as a child process on free loopback ports with a data directory
of its own, like tests/s3server.py starts SeaweedFS.

Elections and heartbeats are short (50 ms / 500 ms) so that leases of one second are allowed
(etcd refuses a TTL under 1.5 election timeouts).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from silo.testing import free_port


class EtcdError(RuntimeError):
    """etcd is missing, exited early or never became healthy."""


def etcd_binary() -> str:
    found = shutil.which("etcd")
    if found is None:
        raise EtcdError("etcd is not installed: apt-get install etcd-server (Debian)")
    return found


class EtcdServer:
    """One etcd member on 127.0.0.1; `url(prefix)` is a `--cluster` value for silo serve."""

    def __init__(self, workdir: Path, *, startup_timeout: float = 30.0) -> None:
        self.workdir = workdir
        self.startup_timeout = startup_timeout
        self.port = 0
        self.log_path = workdir / "etcd.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, prefix: str) -> str:
        return f"etcd://{self.endpoint}/{prefix}"

    def start(self) -> EtcdServer:
        """Start etcd and block until /health answers true; EtcdError with the log otherwise."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        peer = free_port()
        client_url = f"http://127.0.0.1:{self.port}"
        peer_url = f"http://127.0.0.1:{peer}"
        argv = [
            etcd_binary(),
            "--name=silo-test",
            f"--data-dir={self.workdir / 'data'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=silo-test={peer_url}",
            "--heartbeat-interval=50",
            "--election-timeout=500",
            "--log-level=warn",
        ]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self._proc.poll() is not None:
                raise EtcdError(f"etcd exited with {self._proc.returncode}\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{client_url}/health", timeout=1) as resp:
                    if b'"true"' in resp.read():
                        return self
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise EtcdError(
                    f"etcd not healthy within {self.startup_timeout}s\n{self.log_tail()}"
                )
            # Readiness poll: etcd offers no event to wait on.
            time.sleep(0.05)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
