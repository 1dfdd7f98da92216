"""Tokens of `silo serve --auth-file` (docs/security.md): the file, the check of each call's
bearer token, and the reload on SIGHUP.

The file is TOML, an array of tables `[[tokens]]`; each entry has `token_sha256` (the hex
SHA-256 digest of the token: the file holds no secret), `name` (in logs and the audit log),
`tenants` (exact names, `prefix*` patterns, `*` for all) and `roles` (`produce`, `work`,
`operate`, `admin`). Each entry becomes one `silo._native.Principal` when the file is loaded.

A call's token is verified here, once, before its request is read: the `authorization: Bearer
<token>` header is hashed and looked up (no or unknown token: UNAUTHENTICATED). The principal
then goes with the call into the core, which checks the RPC's role and the tenants the request
names (rust/auth.rs). The health service needs no token.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from silo import _native, errors

__all__ = ["AuthError", "AuthTable", "Authenticator", "digest", "load"]

log = logging.getLogger("silo.server")

_HEX: Final = re.compile(r"[0-9a-f]{64}")
_FIELDS: Final = ("token_sha256", "name", "tenants", "roles")
#: Verified tokens remembered (token -> principal), so a call costs a dict lookup instead of a
#: hash; forgotten all at once when full or when the file is reloaded.
_CACHE_SIZE: Final = 4096
_BEARER: Final = "bearer "


class AuthError(ValueError):
    """The auth file is unreadable or an entry is bad; str() is one line naming the file, the
    entry and the field."""


def digest(token: str) -> str:
    """The hex SHA-256 digest of a token, as `token_sha256` holds it."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class AuthTable:
    """The principals of one version of the auth file, by token digest."""

    path: str
    by_digest: Mapping[str, _native.Principal]

    def __len__(self) -> int:
        return len(self.by_digest)


def load(path: str | Path) -> AuthTable:
    """Read and check the auth file. Raises AuthError naming the entry and field."""
    where = str(path)
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise AuthError(f"auth file {where}: cannot read it: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise AuthError(f"auth file {where}: not valid TOML: {exc}") from None
    extra = sorted(set(doc) - {"tokens"})
    if extra:
        raise AuthError(f"auth file {where}: unknown key {extra[0]!r} (expected [[tokens]])")
    entries = doc.get("tokens", [])
    if not isinstance(entries, list):
        raise AuthError(f"auth file {where}: tokens must be an array of tables ([[tokens]])")
    by_digest: dict[str, _native.Principal] = {}
    names: set[str] = set()
    for i, entry in enumerate(entries):
        principal, sha = _entry(where, i, entry)
        label = f"auth file {where}: tokens[{i}] (name {principal.name!r})"
        if sha in by_digest:
            raise AuthError(f"{label}: token_sha256: the same token as {by_digest[sha].name!r}")
        if principal.name in names:
            raise AuthError(f"{label}: name: another entry has this name")
        names.add(principal.name)
        by_digest[sha] = principal
    return AuthTable(where, by_digest)


def _entry(where: str, i: int, entry: Any) -> tuple[_native.Principal, str]:
    label = f"auth file {where}: tokens[{i}]"
    if not isinstance(entry, dict):
        raise AuthError(f"{label}: expected a table")
    name = entry.get("name")
    if isinstance(name, str) and name:
        label += f" (name {name!r})"
    for key in entry:
        if key not in _FIELDS:
            raise AuthError(f"{label}: unknown field {key!r} (expected {', '.join(_FIELDS)})")
    for key in _FIELDS:
        if key not in entry:
            raise AuthError(f"{label}: {key}: missing")
    if not isinstance(name, str) or not name.strip():
        raise AuthError(f"{label}: name: expected a non-empty string")
    sha = entry["token_sha256"]
    if not isinstance(sha, str) or not _HEX.fullmatch(sha.lower()):
        raise AuthError(f"{label}: token_sha256: expected 64 hex digits (sha256 of the token)")
    lists: dict[str, list[str]] = {}
    for key in ("tenants", "roles"):
        value = entry[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise AuthError(f"{label}: {key}: expected a list of strings")
        lists[key] = value
    try:
        principal = _native.Principal(name, lists["tenants"], lists["roles"])
    except errors.InvalidArgument as exc:
        raise AuthError(f"{label}: {exc}") from None
    return principal, sha.lower()


class Authenticator:
    """The token check of a running server: `verify` once per call; `reload` swaps in a new
    version of the file (calls in flight keep the principal they were verified with)."""

    def __init__(self, table: AuthTable) -> None:
        self._table = table
        self._verified: dict[str, _native.Principal] = {}

    @classmethod
    def from_file(cls, path: str | Path) -> Authenticator:
        """Raises AuthError (the server exits 2 with its line)."""
        return cls(load(path))

    @property
    def table(self) -> AuthTable:
        return self._table

    def verify(self, metadata: Mapping[str, Any]) -> _native.Principal:
        """The principal of a call's `authorization: Bearer <token>` header; Unauthenticated
        without one, or for a token the file does not hold."""
        header = metadata.get("authorization")
        if not isinstance(header, str) or header[: len(_BEARER)].lower() != _BEARER:
            raise errors.Unauthenticated("authorization: send `Bearer <token>`")
        token = header[len(_BEARER) :].strip()
        principal = self._verified.get(token)
        if principal is None:
            principal = self._table.by_digest.get(digest(token))
            if principal is None:
                raise errors.Unauthenticated("authorization: unknown token")
            if len(self._verified) >= _CACHE_SIZE:
                self._verified.clear()
            self._verified[token] = principal
        return principal

    def reload(self) -> bool:
        """Re-read the file (SIGHUP). A bad file keeps the current tokens and logs one error
        line; True when the new version is in force."""
        try:
            table = load(self._table.path)
        except AuthError as exc:
            log.error("auth file not reloaded, the previous tokens stay in force: %s", exc)
            return False
        self._table = table
        self._verified = {}
        log.info("auth file %s reloaded: %d token(s)", table.path, len(table))
        return True
