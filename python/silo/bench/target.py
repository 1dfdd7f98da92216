"""The servers the load goes to: the broker under test (a `silo serve` subprocess on a fresh
store, or one given by --target) and, for a ratio, the ceiling (a no-op server, noop.py).

For a broker it started (or one named by --broker-pid) the bench reads CPU time and RSS from
/proc; otherwise RSS comes from Admin/GetStats when the broker serves it, and CPU is unknown.
The ceiling is always a subprocess of the bench, so its CPU and RSS are always known.
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, Protocol, TextIO

from silo.bench.measure import proc_cpu_seconds, proc_rss_bytes
from silo.bench.rpc import AdminStats, SiloClient
from silo.testing import ServerProcess, ServerStartError

__all__ = ["CeilingTarget", "PhaseTarget", "PySpy", "Target"]


class PhaseTarget(Protocol):
    """What a phase needs of the server it loads: where it is and what it costs."""

    @property
    def address(self) -> str: ...
    @property
    def pid(self) -> int | None: ...
    def cpu_seconds(self) -> float | None: ...
    def main_thread_cpu_seconds(self) -> float | None: ...
    def rss_bytes(self) -> int | None: ...


class Target:
    """Where the load goes. Use as a context manager: a started broker is stopped on exit and
    its temporary store removed (unless keep_store)."""

    def __init__(self, args: argparse.Namespace, out: Any) -> None:
        self._out = out
        self._keep = bool(args.keep_store)
        self._tmp: Path | None = None
        self.server: ServerProcess | None = None
        self.pid: int | None = args.broker_pid
        self.store: str | None = None
        #: Whether the broker started here serves HTTP too (`silo bench ops --ui`).
        self._http = bool(getattr(args, "ui", False))
        if args.target:
            self.address: str = args.target
            self.mode = "attached"
            self._serve_args: list[str] = []
        else:
            self.mode = "subprocess"
            self._serve_args = list(args.serve_arg)
            if args.flush_interval_ms is not None:
                self._serve_args += ["--flush-interval-ms", str(args.flush_interval_ms)]
            self.store = args.store
            self.address = ""
        self.client: SiloClient | None = None

    def __enter__(self) -> Target:
        if self.mode == "subprocess":
            self._tmp = Path(tempfile.mkdtemp(prefix="silo-bench-"))
            if self.store is None:
                self.store = str(self._tmp / "store")
            self.server = ServerProcess(
                self.store,
                lease_ms=None,
                extra_args=self._serve_args,
                log_dir=self._tmp / "logs",
                http="127.0.0.1:0" if self._http else "off",
            )
            try:
                self.server.start()
            except BaseException:
                self.server = None
                shutil.rmtree(self._tmp, ignore_errors=True)
                raise
            self.address = self.server.address
            self.pid = self.server.pid
            print(
                f"started silo serve (pid {self.pid}) on {self.store} at {self.address}",
                file=self._out,
                flush=True,
            )
        self.client = SiloClient(self.address)
        self.client.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.close()
        if self.server is not None:
            _stop(self.server, "silo serve", self._out, timeout=60)
        if self._tmp is not None:
            if self._keep:
                print(f"kept store and logs in {self._tmp}", file=self._out, flush=True)
            else:
                shutil.rmtree(self._tmp, ignore_errors=True)

    @property
    def http_url(self) -> str:
        """`http://HOST:PORT` of the web UI of the broker started here (with `ops --ui`)."""
        if self.server is None:
            raise RuntimeError("--ui needs a broker started by the bench (not --target)")
        return self.server.http_url

    # ------------------------------------------------------------------------ observations

    def stats(self) -> AdminStats:
        assert self.client is not None
        return self.client.stats()

    def cpu_seconds(self) -> float | None:
        """CPU seconds the broker process has used so far; None when its pid is unknown."""
        return proc_cpu_seconds(self.pid) if self.pid is not None else None

    def main_thread_cpu_seconds(self) -> float | None:
        """CPU seconds of the broker's main thread (the Python event loop: grpclib, handlers,
        and every native call made from Python); None when the pid is unknown."""
        return proc_cpu_seconds(self.pid, thread=self.pid) if self.pid is not None else None

    def rss_bytes(self, stats: AdminStats | None = None) -> int | None:
        """The broker's RSS: /proc when the pid is known, else Admin/GetStats, else None."""
        if self.pid is not None:
            rss = proc_rss_bytes(self.pid)
            if rss is not None:
                return rss
        stats = stats if stats is not None else self.stats()
        return stats.rss_bytes

    def settings(self) -> dict[str, Any]:
        """What the report records about the broker: its effective settings (Admin/GetStats,
        else the `broker settings:` line `silo serve` logs at startup) and how it runs."""
        out: dict[str, Any] = {"broker": self.mode, "address": self.address}
        stats = self.stats()
        broker_settings: dict[str, Any] = dict(stats.settings)
        if not broker_settings and self.server is not None:
            broker_settings = _logged_settings(self.server.stderr_text())
        out.update({f"broker_{k}": v for k, v in sorted(broker_settings.items())})
        if "broker_store" not in out:
            out["broker_store"] = self.store
        out["admin_stats"] = "available" if stats.available else "n/a (UNIMPLEMENTED)"
        out["build_profile"] = broker_settings.get("build_profile") or _build_profile()
        if self.server is not None:
            out["serve_command"] = " ".join(self.server.command()[1:])
        return out


class _NoopProcess(ServerProcess):
    """`python -m silo.bench.noop` as a child process, with ServerProcess's start (wait for
    `listening on`), logs and stop."""

    def __init__(self, payload_bytes: int, log_dir: Path) -> None:
        super().__init__(None, lease_ms=None, log_dir=log_dir)
        self.payload_bytes = payload_bytes

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "silo.bench.noop",
            "--listen",
            self.address,
            "--payload-bytes",
            str(self.payload_bytes),
        ]


class CeilingTarget:
    """The ceiling: the no-op server of noop.py (the stack of `silo serve` without the broker)
    in its own process, so phases against it get the same CPU columns as against Silo. Use as
    a context manager; the process is stopped on exit."""

    def __init__(self, payload_bytes: int, out: Any) -> None:
        self._out = out
        self._payload_bytes = payload_bytes
        self._tmp: Path | None = None
        self.server: _NoopProcess | None = None
        self.address = ""
        self.pid: int | None = None

    def __enter__(self) -> CeilingTarget:
        self._tmp = Path(tempfile.mkdtemp(prefix="silo-bench-ceiling-"))
        server = _NoopProcess(self._payload_bytes, self._tmp)
        try:
            server.start()
        except ServerStartError as exc:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise ServerStartError(f"the ceiling (no-op server) did not start: {exc}") from exc
        self.server = server
        self.address = server.address
        self.pid = server.pid
        client = SiloClient(self.address)
        try:
            client.wait_ready()
        finally:
            client.close()
        print(
            f"started the ceiling, a no-op server (pid {self.pid}) at {self.address}",
            file=self._out,
            flush=True,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            _stop(self.server, "the ceiling server", self._out, timeout=30)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def cpu_seconds(self) -> float | None:
        return proc_cpu_seconds(self.pid) if self.pid is not None else None

    def main_thread_cpu_seconds(self) -> float | None:
        return proc_cpu_seconds(self.pid, thread=self.pid) if self.pid is not None else None

    def rss_bytes(self) -> int | None:
        return proc_rss_bytes(self.pid) if self.pid is not None else None

    def settings(self) -> dict[str, Any]:
        """What the report records about the ceiling."""
        assert self.server is not None
        return {
            "ceiling_server": " ".join(self.server.command()[1:]),
            "ceiling_address": self.address,
        }


def _stop(server: ServerProcess, what: str, out: TextIO, *, timeout: float) -> None:
    """Terminate a server the bench started; a non-zero exit prints its log tail."""
    code = server.terminate(timeout=timeout)
    if code != 0:
        print(
            f"warning: {what} exited with code {code}; log tail:\n"
            + "\n".join(server.stderr_text().splitlines()[-20:]),
            file=out,
            flush=True,
        )


def _logged_settings(stderr: str) -> dict[str, Any]:
    for line in stderr.splitlines():
        _, sep, rest = line.partition("broker settings: ")
        if sep:
            try:
                value = ast.literal_eval(rest.strip())
            except (ValueError, SyntaxError):
                return {}
            return dict(value) if isinstance(value, dict) else {}
    return {}


def _build_profile() -> str:
    """The build profile of silo._native when we can tell: a debug build keeps debug symbols
    and assertions, so its `.so` is several times larger; say "unknown" otherwise."""
    try:
        import silo._native as native
    except ImportError:
        return "unknown (silo._native not importable)"
    profile = getattr(native, "BUILD_PROFILE", None) or getattr(native, "__build_profile__", None)
    if isinstance(profile, str):
        return profile
    return "unknown (pyproject's maturin profile is release)"


class PySpy:
    """`py-spy record` on the broker for the whole run, in raw (collapsed stacks) format.

    `stop()` ends the recording (SIGINT makes py-spy write its output) and returns a summary of
    the top frames by self time and by inclusive time.
    """

    def __init__(self, pid: int, path: str, *, rate: int, native: bool, out: Any) -> None:
        exe = shutil.which("py-spy")
        if exe is None:
            raise RuntimeError("py-spy not found on PATH (pip install py-spy)")
        self.path = path
        cmd = [
            exe,
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--output",
            path,
            "--threads",
        ]
        # Native stacks need the process paused while sampling; Python-only sampling does not.
        cmd.append("--native" if native else "--nonblocking")
        self._out = out
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        print(f"py-spy recording pid {pid} -> {path}", file=out, flush=True)

    def stop(self, top: int = 25) -> dict[str, Any]:
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
        try:
            output, _ = self._proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            output, _ = self._proc.communicate()
        if not os.path.exists(self.path):
            text = output.decode(errors="replace")[-2000:]
            print(f"py-spy wrote no profile:\n{text}", file=self._out, flush=True)
            return {}
        return summarize_collapsed(Path(self.path).read_text(), top=top)


class Perf:
    """`perf record` (DWARF call graphs) on the broker for the whole run: where the native
    (Rust, SlateDB, libc) time goes, which py-spy cannot see in threads without Python frames.

    `stop()` ends the recording and returns the top symbols by self and by inclusive samples.
    """

    def __init__(self, pid: int, path: str, *, rate: int, out: Any) -> None:
        exe = shutil.which("perf")
        if exe is None:
            raise RuntimeError("perf not found on PATH (apt-get install linux-perf)")
        self.exe = exe
        self.path = path
        self._out = out
        cmd = [
            exe,
            "record",
            "-F",
            str(rate),
            "--call-graph",
            "dwarf,16384",
            "-p",
            str(pid),
            "-o",
            path,
        ]
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        print(f"perf recording pid {pid} -> {path}", file=out, flush=True)

    def stop(self, top: int = 30) -> dict[str, Any]:
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
        try:
            self._proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.communicate()
        return {
            "self": self._report(["--no-children"], top),
            "inclusive": self._report(["--children"], top),
        }

    def _report(self, mode: list[str], top: int) -> list[tuple[str, float]]:
        cmd = [
            self.exe,
            "report",
            "-i",
            self.path,
            "--stdio",
            *mode,
            "--sort",
            "symbol",
            "-g",
            "none",
            "--percent-limit",
            "0.5",
        ]
        try:
            text = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
        except (OSError, subprocess.TimeoutExpired):
            return []
        rows: list[tuple[str, float]] = []
        for line in text.splitlines():
            parts = line.split()
            if not parts or line.startswith("#") or not parts[0].endswith("%"):
                continue
            # --children: "incl% self% [.] symbol"; --no-children: "self% [.] symbol"
            marker = line.find("] ")
            if marker < 0:
                continue
            symbol = line[marker + 2 :].strip()
            if symbol.startswith("0x"):
                continue  # unresolved frames
            rows.append((symbol[:160], float(parts[0].rstrip("%"))))
            if len(rows) >= top:
                break
        return rows


def summarize_collapsed(text: str, *, top: int = 25) -> dict[str, Any]:
    """Top frames of collapsed stacks (`root;...;leaf COUNT` per line): by self samples (the
    leaf) and by inclusive samples (anywhere in the stack, counted once per stack)."""
    self_counts: Counter[str] = Counter()
    incl_counts: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        n = int(count_text)
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        total += n
        # With --threads each stack starts with a `thread (TID)` frame; a stack of that frame
        # alone is a thread sampled outside Python (e.g. a tokio worker) and stays in the counts.
        self_counts[frames[-1]] += n
        for frame in set(frames):
            incl_counts[frame] += n
    if total == 0:
        return {"samples": 0}
    return {
        "samples": total,
        "self": [(f, round(100 * n / total, 1)) for f, n in self_counts.most_common(top)],
        "inclusive": [(f, round(100 * n / total, 1)) for f, n in incl_counts.most_common(top)],
    }
