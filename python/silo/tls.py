"""TLS contexts of the server (`silo serve --tls-cert/--tls-key/--tls-client-ca`) and of clients
(`silo.tls_context`, `silo.connect(..., tls=...)`), both speaking HTTP/2 (ALPN `h2`) over TLS
1.2 or newer (docs/security.md#tls)."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path

from silo.config import ConfigError

__all__ = ["HTTP_ALPN", "check_peer_ca", "server_context", "tls_context"]

_ALPN = ("h2",)
#: What the HTTP server (web UI, /metrics) offers: aiohttp speaks HTTP/1.1 only.
HTTP_ALPN = ("http/1.1",)


def server_context(
    *,
    cert: str | Path,
    key: str | Path,
    client_ca: str | Path | None = None,
    alpn: Sequence[str] = _ALPN,
) -> ssl.SSLContext:
    """The server's context: its certificate chain and key; with `client_ca`, clients must
    present a certificate signed by one of its CAs (mTLS). `alpn`: the protocols offered
    (gRPC's `h2` by default; the HTTP server, which speaks HTTP/1.1, offers `http/1.1`).

    Raises ConfigError naming the flag whose file cannot be read or used.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(list(alpn))
    try:
        ctx.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"invalid --tls-cert/--tls-key ({cert}, {key}): {exc}") from None
    if client_ca is not None:
        try:
            ctx.load_verify_locations(cafile=str(client_ca))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"invalid --tls-client-ca {client_ca}: {exc}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def check_peer_ca(peer_ca: str | Path) -> None:
    """Check `--tls-peer-ca` before the broker opens: a readable PEM file of CA certificates
    (the core's forwarder verifies the other nodes' certificates against them).

    Raises ConfigError naming the flag when the file cannot be read or holds no certificate.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        ctx.load_verify_locations(cafile=str(peer_ca))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"invalid --tls-peer-ca {peer_ca}: {exc}") from None


def tls_context(
    *,
    ca: str | Path | None = None,
    cert: str | Path | None = None,
    key: str | Path | None = None,
    server_name_check: bool = True,
) -> ssl.SSLContext:
    """A client context for `silo.connect(..., tls=...)`: trusts `ca` (a PEM file of CA
    certificates; default: the system's), presents `cert`/`key` when the broker requires client
    certificates (mTLS). `server_name_check=False` skips the host name check (a certificate
    issued for another name); the chain is still verified.

    Raises ConfigError naming the file that cannot be read or used.
    """
    try:
        ctx = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=None if ca is None else str(ca)
        )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"tls: CA file {ca}: {exc}") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(list(_ALPN))
    ctx.check_hostname = server_name_check
    if (cert is None) != (key is None):
        raise ConfigError("tls: give a client certificate and its key together")
    if cert is not None and key is not None:
        try:
            ctx.load_cert_chain(certfile=str(cert), keyfile=str(key))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"tls: client certificate {cert}: {exc}") from None
    return ctx
