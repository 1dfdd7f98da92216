"""Helpers of the security tests: auth files, certificates made in the test (`cryptography`),
and raw gRPC calls that report the status code (any RPC, any token)."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grpclib.client import Channel, StreamStreamMethod, UnaryUnaryMethod
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from silo import _native
from silo.server.auth import digest
from silo.server.codec import PassthroughCodec, RawMessage
from silo.server.streams import frame
from silo.testing import ServerProcess

PATHS = {method: f"/{service}/{method}" for service, method, _ in _native.rpcs()}


@dataclass(frozen=True)
class Token:
    """One entry of an auth file, with its secret."""

    name: str
    secret: str
    tenants: Sequence[str]
    roles: Sequence[str]

    @property
    def header(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.secret}"}


def auth_toml(tokens: Iterable[Token]) -> str:
    out = []
    for t in tokens:
        tenants = ", ".join(f'"{x}"' for x in t.tenants)
        roles = ", ".join(f'"{x}"' for x in t.roles)
        out.append(
            f'[[tokens]]\nname = "{t.name}"\ntoken_sha256 = "{digest(t.secret)}"\n'
            f"tenants = [{tenants}]\nroles = [{roles}]\n"
        )
    return "\n".join(out)


def write_auth(path: Path, tokens: Iterable[Token]) -> Path:
    path.write_text(auth_toml(tokens))
    return path


@dataclass
class Outcome:
    """What a raw call answered: its status, message and reply bytes (b"" on error)."""

    status: Status
    message: str
    reply: bytes = b""


async def unary(
    channel: Channel, rpc: str, request: bytes, token: Token | None = None, *, timeout: float = 30
) -> Outcome:
    method: UnaryUnaryMethod[bytes, bytes] = UnaryUnaryMethod(
        channel,
        PATHS[rpc],
        RawMessage,
        RawMessage,  # type: ignore[arg-type]
    )
    try:
        reply = await method(request, metadata=token.header if token else None, timeout=timeout)
    except GRPCError as exc:
        return Outcome(exc.status, exc.message or "")
    return Outcome(Status.OK, "", reply)


async def stream(
    channel: Channel,
    rpc: str,
    requests: Sequence[bytes],
    token: Token | None = None,
    *,
    timeout: float = 30,
) -> tuple[Outcome, list[bytes]]:
    """Send `requests` on a stream RPC, close the sending side, read every answer."""
    method: StreamStreamMethod[bytes, bytes] = StreamStreamMethod(
        channel,
        PATHS[rpc],
        RawMessage,
        RawMessage,  # type: ignore[arg-type]
    )
    answers: list[bytes] = []
    try:
        async with method.open(metadata=token.header if token else None, timeout=timeout) as s:
            for r in requests:
                await s.send_message(r)
            await s.end()
            async for answer in s:
                answers.append(answer)
    except GRPCError as exc:
        return Outcome(exc.status, exc.message or ""), answers
    return Outcome(Status.OK, ""), answers


def channel(host: str, port: int, **kwargs: Any) -> Channel:
    return Channel(host, port, codec=PassthroughCodec(), **kwargs)


__all__ = ["PATHS", "Outcome", "Token", "auth_toml", "channel", "frame", "stream", "unary"]


# ----------------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class Pki:
    """A CA, a server certificate for 127.0.0.1/localhost, a client certificate and a cluster
    node's certificate (server and client, for 127.0.0.1/localhost), as PEM files in one
    directory."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    other_client_cert: Path
    other_client_key: Path
    node_cert: Path
    node_key: Path


def make_pki(directory: Path) -> Pki:
    """Certificates made with `cryptography`, valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(path: Path, k: ec.EllipticCurvePrivateKey) -> Path:
        path.write_bytes(
            k.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return path

    def write_cert(path: Path, c: x509.Certificate) -> Path:
        path.write_bytes(c.public_bytes(serialization.Encoding.PEM))
        return path

    def ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        k = key()
        c = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(name(cn))
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()), False)
            .sign(k, hashes.SHA256())
        )
        return k, c

    def leaf(
        cn: str,
        issuer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
        server: bool,
        client: bool = False,
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """`server`: for 127.0.0.1/localhost, usable by a server; `client`: by a client (a
        cluster node is both: it presents its certificate to its peers)."""
        k = key()
        ca_key, ca_cert = issuer
        usages = [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH] if server else []
        if client or not server:
            usages.append(x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH)
        b = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca_cert.subject)
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        if server:
            b = b.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
        return k, b.sign(ca_key, hashes.SHA256())

    root = ca("silo test CA")
    other = ca("another CA")
    srv = leaf("silo server", root, server=True)
    cli = leaf("silo client", root, server=False)
    stranger = leaf("stranger", other, server=False)
    node = leaf("silo node", root, server=True, client=True)
    d = directory
    return Pki(
        ca=write_cert(d / "ca.pem", root[1]),
        server_cert=write_cert(d / "server.pem", srv[1]),
        server_key=write_key(d / "server.key", srv[0]),
        client_cert=write_cert(d / "client.pem", cli[1]),
        client_key=write_key(d / "client.key", cli[0]),
        other_ca=write_cert(d / "other-ca.pem", other[1]),
        other_client_cert=write_cert(d / "stranger.pem", stranger[1]),
        other_client_key=write_key(d / "stranger.key", stranger[0]),
        node_cert=write_cert(d / "node.pem", node[1]),
        node_key=write_key(d / "node.key", node[0]),
    )


async def wait_for_log(server: ServerProcess, text: str, count: int = 1) -> None:
    """Wait until the server's stderr holds `text` `count` times (a log line is the event)."""
    deadline = time.monotonic() + 20
    while server.stderr_text().count(text) < count:
        assert time.monotonic() < deadline, f"no {text!r} in the log:\n{server.stderr_text()}"
        await asyncio.sleep(0.02)
