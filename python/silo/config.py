"""Settings of `silo serve`: one frozen dataclass, each field set by a flag or a SILO_* env var.

Precedence: a flag beats its environment variable, which beats the default. Every value is
checked when the config is built; a bad one raises ConfigError with a one-line message naming
where it came from (`--lease-ms`, `SILO_LEASE_MS` or the field name).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "DEFAULT_LISTEN",
    "DEFAULT_STORE",
    "LOG_LEVELS",
    "MAX_MESSAGE_BYTES",
    "ConfigError",
    "ServeConfig",
    "env_var",
    "flag",
    "parse_listen",
]

DEFAULT_STORE: Final = "./silo-data"
DEFAULT_LISTEN: Final = "127.0.0.1:7070"
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
#: Largest gRPC message the server accepts (SPEC.md §3), so also the payload limit's ceiling.
MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024


class ConfigError(ValueError):
    """A setting has a bad value; str() is one line that names the flag, variable or field."""


def flag(field_name: str) -> str:
    """The command-line flag of a ServeConfig field: lease_ms -> --lease-ms."""
    return "--" + field_name.replace("_", "-")


def env_var(field_name: str) -> str:
    """The environment variable of a ServeConfig field: lease_ms -> SILO_LEASE_MS."""
    return "SILO_" + field_name.upper()


def parse_listen(listen: str) -> tuple[str, int]:
    """Split `HOST:PORT` (IPv6 as `[::1]:7070`) into host and port; ValueError if malformed."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not host:
        raise ValueError("expected HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("expected HOST:PORT (write an IPv6 host in brackets)")
    if not host:
        raise ValueError("expected HOST:PORT")
    port = _int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError("port must be 0..65535")
    return host, port


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """Settings of one `silo serve` process (SPEC.md §5). Construction validates every field.

    store: a directory path, file:///abs/path, memory:// or s3://bucket/prefix.
    listen: HOST:PORT to serve gRPC on (port 0 picks a free port).
    lease_ms: how long a leased task stays leased without a heartbeat.
    flush_interval_ms: SlateDB WAL flush interval; None picks the store's preset.
    max_payload_bytes: the largest job payload Enqueue accepts.
    log_level: one of LOG_LEVELS.
    store_max_retries: object-store retries per call before the call fails with UNAVAILABLE.
    cache_bytes: SlateDB's in-memory block cache.
    gc_interval_ms, gc_min_age_ms: garbage collection of obsolete store files (how often, and
        how old a file must be).
    fault_injection: let Admin.SetFaults inject object-store faults (tests only).
    """

    store: str = DEFAULT_STORE
    listen: str = DEFAULT_LISTEN
    lease_ms: int = 30_000
    flush_interval_ms: int | None = None
    max_payload_bytes: int = 1024 * 1024
    log_level: str = "info"
    store_max_retries: int = 3
    cache_bytes: int = 64 * 1024 * 1024
    gc_interval_ms: int = 60_000
    gc_min_age_ms: int = 300_000
    fault_injection: bool = False

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            try:
                _FIELDS[f.name].check(value)
            except ValueError as exc:
                raise ConfigError(f"invalid {f.name} {value!r}: {exc}") from None

    @property
    def host_port(self) -> tuple[str, int]:
        """`listen` split into host and port."""
        return parse_listen(self.listen)

    @classmethod
    def from_sources(cls, flags: Mapping[str, str | None], env: Mapping[str, str]) -> ServeConfig:
        """Build from flag values (field name -> text, None when not given) and the environment.

        Raises ConfigError naming the flag or variable whose value is bad. An empty environment
        variable counts as unset.
        """
        values: dict[str, Any] = {}
        for name, spec in _FIELDS.items():
            text = flags.get(name)
            source = flag(name)
            if text is None:
                text = env.get(env_var(name)) or None
                source = env_var(name)
            if text is None:
                continue
            try:
                value = spec.parse(text)
                spec.check(value)
            except ValueError as exc:
                raise ConfigError(f"invalid {source} {text!r}: {exc}") from None
            values[name] = value
        return cls(**values)


@dataclass(frozen=True)
class _FieldSpec:
    parse: Callable[[str], Any]
    check: Callable[[Any], None]


def _int(text: str) -> int:
    digits = text.strip()
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError("expected a non-negative integer")
    return int(digits)


_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


def _bool(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError("expected 1/true/yes/on or 0/false/no/off")


def _check_bool(value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError("expected a boolean")


def _check_non_negative(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("expected a non-negative integer")


def _check_store(value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a path or URL")


def _check_listen(value: Any) -> None:
    if not isinstance(value, str):
        raise ValueError("expected HOST:PORT")
    parse_listen(value)


def _check_positive(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError("expected a positive integer")


def _check_optional_positive(value: Any) -> None:
    if value is not None:
        _check_positive(value)


def _check_payload(value: Any) -> None:
    _check_positive(value)
    if value > MAX_MESSAGE_BYTES:
        raise ValueError(f"must be at most {MAX_MESSAGE_BYTES} (the gRPC message limit)")


def _check_log_level(value: Any) -> None:
    if value not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")


_FIELDS: Final[Mapping[str, _FieldSpec]] = {
    "store": _FieldSpec(str, _check_store),
    "listen": _FieldSpec(str, _check_listen),
    "lease_ms": _FieldSpec(_int, _check_positive),
    "flush_interval_ms": _FieldSpec(_int, _check_optional_positive),
    "max_payload_bytes": _FieldSpec(_int, _check_payload),
    "log_level": _FieldSpec(str.lower, _check_log_level),
    "store_max_retries": _FieldSpec(_int, _check_non_negative),
    "cache_bytes": _FieldSpec(_int, _check_non_negative),
    "gc_interval_ms": _FieldSpec(_int, _check_positive),
    "gc_min_age_ms": _FieldSpec(_int, _check_non_negative),
    "fault_injection": _FieldSpec(_bool, _check_bool),
}
