"""Settings of `silo serve`, each defined once, as a field of ServeConfig.

A field says its name, type, default, help text, how a flag or variable is parsed and checked,
and whether the Rust core needs it. Everything else is derived from the fields: the flags of
`silo serve` (`lease_ms` -> `--lease-ms`), the environment variables (`SILO_LEASE_MS`), the help
text, and the one JSON object the native broker is opened with (`ServeConfig.broker_settings`),
which the core reads into `BrokerConfig` (rust/broker.rs) and echoes back in Admin/GetStats
`settings`. Adding a setting takes three places: a field here, a field of `BrokerConfig`, and
the code that uses it (docs/operations.md#settings).

Precedence: a flag beats its environment variable, which beats the default. Every value is
checked when the config is built; a bad one raises ConfigError with a one-line message naming
where it came from (`--lease-ms`, `SILO_LEASE_MS` or the field name).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "DEFAULT_HTTP",
    "DEFAULT_LISTEN",
    "DEFAULT_STORE",
    "HTTP_OFF",
    "LOG_LEVELS",
    "MAX_MESSAGE_BYTES",
    "ConfigError",
    "ServeConfig",
    "Setting",
    "env_var",
    "flag",
    "parse_cluster",
    "parse_listen",
    "settings",
]

DEFAULT_STORE: Final = "./silo-data"
DEFAULT_LISTEN: Final = "127.0.0.1:7070"
#: Where `silo serve` serves HTTP when neither `--http` nor `--listen` is given.
DEFAULT_HTTP: Final = "127.0.0.1:7071"
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
#: Largest gRPC message the server accepts (docs/api.md#limits), so also the payload limit's
#: ceiling.
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


@dataclass(frozen=True)
class Kind:
    """How a setting's text is parsed and its value checked (ValueError when bad)."""

    parse: Callable[[str], Any]
    check: Callable[[Any], None]
    #: A switch is a flag without a value (`--fault-injection`); its variable takes 1/0.
    switch: bool = False
    #: How the help shows a value (the default); None: as it is.
    show: Callable[[Any], str] | None = None


@dataclass(frozen=True)
class Setting:
    """One setting as `silo serve` presents it, derived from a ServeConfig field."""

    name: str
    default: Any
    help: str
    kind: Kind
    #: Whether the value crosses into the Rust core (BrokerConfig) and shows in GetStats.
    broker: bool

    @property
    def flag(self) -> str:
        return flag(self.name)

    @property
    def env_var(self) -> str:
        return env_var(self.name)

    @property
    def metavar(self) -> str:
        """lease_ms -> MS, store -> STORE."""
        return self.name.rsplit("_", 1)[-1].upper()

    @property
    def help_text(self) -> str:
        """The help line of the flag, with its default (a None default is described in `help`)."""
        if self.kind.switch or self.default is None:
            return self.help
        shown = self.kind.show(self.default) if self.kind.show else self.default
        return f"{self.help} (default {shown})"


def _setting(default: Any, help: str, kind: Kind, *, broker: bool = True) -> Any:
    """Declare a ServeConfig field as a setting."""
    return dataclasses.field(
        default=default, metadata={"help": help, "kind": kind, "broker": broker}
    )


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


#: `--http off`: no HTTP server.
HTTP_OFF: Final = "off"


def _check_http(value: Any) -> None:
    if value is None or value == HTTP_OFF:
        return
    if not isinstance(value, str):
        raise ValueError(f"expected HOST:PORT or {HTTP_OFF}")
    parse_listen(value)


def _check_positive(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError("expected a positive integer")


#: The shortest lease: a worker heartbeats every third of it.
MIN_LEASE_MS: Final = 3


def _check_lease(value: Any) -> None:
    _check_positive(value)
    if value < MIN_LEASE_MS:
        raise ValueError(f"must be at least {MIN_LEASE_MS}")


def _check_optional_positive(value: Any) -> None:
    if value is not None:
        _check_positive(value)


def _check_payload(value: Any) -> None:
    _check_positive(value)
    if value > MAX_MESSAGE_BYTES:
        raise ValueError(f"must be at most {MAX_MESSAGE_BYTES} (the gRPC message limit)")


def _check_optional_path(value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ValueError("expected a file path")


def _check_log_level(value: Any) -> None:
    if value not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")


#: Duration units of `--retention` and their length in ms.
_DURATION_UNITS: Final = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def _duration_ms(text: str) -> int:
    """`7d`, `12h`, `30m`, `45s`, `250ms` or plain milliseconds, as ms."""
    word = text.strip().lower()
    for unit in sorted(_DURATION_UNITS, key=len, reverse=True):
        if word.endswith(unit) and word[: -len(unit)].strip():
            return _int(word[: -len(unit)]) * _DURATION_UNITS[unit]
    try:
        return _int(word)
    except ValueError:
        raise ValueError("expected a duration: N (ms), Ns, Nm, Nh or Nd") from None


def _show_duration(ms: int) -> str:
    """The largest unit that divides `ms` exactly: 604800000 -> 7d."""
    for unit, size in sorted(_DURATION_UNITS.items(), key=lambda u: u[1], reverse=True):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return str(ms)


def _check_optional_shards(value: Any) -> None:
    if value is not None:
        _check_positive(value)
        if value > MAX_SHARDS:
            raise ValueError(f"must be at most {MAX_SHARDS}")


def parse_cluster(url: str) -> tuple[list[tuple[str, int]], str]:
    """Split `etcd://HOST:PORT[,HOST:PORT...]/PREFIX` into endpoints and prefix; ValueError if
    malformed."""
    rest = url.removeprefix("etcd://")
    if rest == url:
        raise ValueError("expected etcd://HOST:PORT[,HOST:PORT...]/PREFIX")
    hosts, sep, prefix = rest.partition("/")
    if not sep or not prefix.strip("/"):
        raise ValueError("expected etcd://HOST:PORT[,HOST:PORT...]/PREFIX (a prefix is needed)")
    return [parse_listen(h) for h in hosts.split(",")], prefix.strip("/")


def _check_optional_cluster(value: Any) -> None:
    if value is not None:
        if not isinstance(value, str):
            raise ValueError("expected etcd://HOST:PORT[,HOST:PORT...]/PREFIX")
        parse_cluster(value)


def _check_optional_listen(value: Any) -> None:
    if value is not None:
        _check_listen(value)


def _check_optional_name(value: Any) -> None:
    if value is not None and (
        not isinstance(value, str) or not 0 < len(value) <= 127 or not value.isprintable()
    ):
        raise ValueError("expected 1..127 printable characters")


def _duration_s(text: str) -> int:
    """`5s`, `1500ms`, `1m`, or a plain number of seconds -> milliseconds."""
    word = text.strip().lower()
    if any(word.endswith(unit) for unit in _DURATION_UNITS):
        return _duration_ms(word)
    return _int(word) * 1000


def _check_node_ttl(value: Any) -> None:
    _check_positive(value)
    if value < 1000:
        raise ValueError("must be at least 1s (etcd leases count whole seconds)")


#: Largest shard count of a store (rust/store/layout.rs MAX_SHARDS).
MAX_SHARDS: Final = 1024

_STORE: Final = Kind(str, _check_store)
_LISTEN: Final = Kind(str, _check_listen)
_HTTP: Final = Kind(str, _check_http)
_LOG_LEVEL: Final = Kind(str.lower, _check_log_level)
_POSITIVE: Final = Kind(_int, _check_positive)
_LEASE: Final = Kind(_int, _check_lease)
_OPTIONAL_POSITIVE: Final = Kind(_int, _check_optional_positive)
_NON_NEGATIVE: Final = Kind(_int, _check_non_negative)
_PAYLOAD: Final = Kind(_int, _check_payload)
_SWITCH: Final = Kind(_bool, _check_bool, switch=True)
_ON_OFF: Final = Kind(_bool, _check_bool, show=lambda on: "on" if on else "off")
_DURATION: Final = Kind(_duration_ms, _check_non_negative, show=_show_duration)
_SHARDS: Final = Kind(_int, _check_optional_shards)
_CLUSTER: Final = Kind(str, _check_optional_cluster)
_ADVERTISE: Final = Kind(str, _check_optional_listen)
_NODE_ID: Final = Kind(str, _check_optional_name)
_NODE_TTL: Final = Kind(_duration_s, _check_node_ttl, show=_show_duration)
_OPTIONAL_PATH: Final = Kind(str, _check_optional_path)


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """Settings of one `silo serve` process (docs/operations.md#settings). Construction
    validates every field; each field is one setting (see the module docstring)."""

    store: str = _setting(
        DEFAULT_STORE,
        "store URL: a directory, file:///abs/path, memory:// or s3://bucket/prefix",
        _STORE,
    )
    listen: str = _setting(
        DEFAULT_LISTEN,
        "HOST:PORT to serve gRPC on; port 0 picks a free one",
        _LISTEN,
        broker=False,
    )
    http: str | None = _setting(
        None,
        "HOST:PORT of the web UI, /metrics, /healthz and /readyz, or `off` (default: the "
        "--listen host and the next port; a free port when the gRPC port is 0)",
        _HTTP,
        broker=False,
    )
    lease_ms: int = _setting(30_000, "lease duration of a task without heartbeat, in ms", _LEASE)
    flush_interval_ms: int | None = _setting(
        None, "SlateDB WAL flush interval in ms (default: the store's preset)", _OPTIONAL_POSITIVE
    )
    max_payload_bytes: int = _setting(
        1024 * 1024, "largest job payload accepted, in bytes", _PAYLOAD
    )
    log_level: str = _setting("info", f"one of {', '.join(LOG_LEVELS)}", _LOG_LEVEL, broker=False)
    store_max_retries: int = _setting(
        3, "object-store retries per call before it fails with UNAVAILABLE", _NON_NEGATIVE
    )
    cache_bytes: int = _setting(
        64 * 1024 * 1024, "SlateDB in-memory block cache, in bytes", _NON_NEGATIVE
    )
    gc_interval_ms: int = _setting(
        60_000, "how often obsolete store files are collected, in ms", _POSITIVE
    )
    gc_min_age_ms: int = _setting(
        300_000, "how old an obsolete store file must be to be deleted, in ms", _NON_NEGATIVE
    )
    fault_injection: bool = _setting(
        False,
        "let Admin.SetFaults inject object-store faults (tests only; SILO_FAULT_INJECTION=1); "
        "with --auth-file it also needs an admin token",
        _SWITCH,
    )
    retention: int = _setting(
        7 * 86_400_000,
        "how long a finished job is kept before it is deleted: N (ms), Ns, Nm, Nh or Nd; "
        "0 keeps jobs forever",
        _DURATION,
    )
    # Security (docs/security.md): tokens, TLS, what may listen where.
    auth_file: str | None = _setting(
        None,
        "TOML file of [[tokens]] (token_sha256, name, tenants, roles); every call then needs "
        "`authorization: Bearer <token>`; re-read on SIGHUP (default: no tokens, no checks)",
        _OPTIONAL_PATH,
        broker=False,
    )
    insecure: bool = _setting(
        False,
        "allow a non-loopback --listen without --auth-file (anyone who reaches the port can "
        "read, cancel and lease every job)",
        _SWITCH,
        broker=False,
    )
    # The TLS files also reach the core: a node that serves TLS forwards calls to its peers
    # over TLS, presenting its certificate (docs/security.md#in-a-cluster).
    tls_cert: str | None = _setting(
        None,
        "PEM certificate chain: serve over TLS (with --tls-key); in a cluster also the node's "
        "client certificate towards its peers",
        _OPTIONAL_PATH,
    )
    tls_key: str | None = _setting(None, "PEM private key of --tls-cert", _OPTIONAL_PATH)
    tls_client_ca: str | None = _setting(
        None,
        "PEM CA certificates: require a client certificate signed by one of them (mTLS)",
        _OPTIONAL_PATH,
    )
    tls_peer_ca: str | None = _setting(
        None,
        "PEM CA certificates the other nodes' certificates are checked against when a call is "
        "forwarded (default: --tls-client-ca, else the system's CAs)",
        _OPTIONAL_PATH,
    )
    # Hostile-input limits of the gRPC transport (docs/security.md#limits).
    max_connections: int = _setting(
        1000,
        "client connections served at once; more are answered RESOURCE_EXHAUSTED",
        _POSITIVE,
        broker=False,
    )
    idle_timeout_ms: int = _setting(
        300_000,
        "close a connection with no call open for this long, in ms",
        _POSITIVE,
        broker=False,
    )
    request_timeout_ms: int = _setting(
        30_000,
        "longest time a client may take to send a request or read an answer, in ms",
        _POSITIVE,
        broker=False,
    )
    max_long_polls_per_connection: int = _setting(
        64,
        "LeaseTasks and WaitJob calls open at once on one connection",
        _POSITIVE,
        broker=False,
    )
    max_long_polls: int = _setting(
        10_000, "LeaseTasks and WaitJob calls open at once in total", _POSITIVE, broker=False
    )
    max_streams_per_connection: int = _setting(
        16,
        "EnqueueStream and WorkerSession streams open at once on one connection",
        _POSITIVE,
        broker=False,
    )
    max_inflight_bytes: int = _setting(
        # A full 64 MiB EnqueueBatch peaks near 12x its size in RSS while it is stored
        # (docs/security.md#limits): two at once, not four.
        128 * 1024 * 1024,
        "request bytes read and not yet answered, in total; a message that would pass it waits "
        "no longer than --request-timeout-ms, then is refused with RESOURCE_EXHAUSTED",
        _POSITIVE,
        broker=False,
    )
    metrics_public: bool = _setting(
        False,
        "serve /metrics without a token even with --auth-file (default: it needs a token with "
        "the admin role)",
        _SWITCH,
        broker=False,
    )
    metrics: bool = _setting(
        True,
        "count what /metrics exports: `on` or `off` (off: the core counts nothing, no RPC is "
        "timed and /metrics answers 404; to measure what the counting costs)",
        _ON_OFF,
    )

    shards: int | None = _setting(
        None,
        "shards of a new store (default 1); an existing store keeps its count, and a different "
        "value is an error",
        _SHARDS,
    )
    cluster: str | None = _setting(
        None,
        "join a cluster coordinated by etcd: etcd://HOST:PORT[,HOST:PORT...]/PREFIX "
        "(docs/cluster.md)",
        _CLUSTER,
    )
    node_id: str | None = _setting(
        None, "this node's id in the cluster (default: its --advertise address)", _NODE_ID
    )
    advertise: str | None = _setting(
        None,
        "HOST:PORT other nodes and clients reach this node on (default: the --listen address)",
        _ADVERTISE,
    )
    node_ttl: int = _setting(
        5000,
        "how long a silent node keeps its shards: its etcd lease, e.g. 5s (whole seconds)",
        _NODE_TTL,
    )

    def __post_init__(self) -> None:
        for s in settings():
            value = getattr(self, s.name)
            try:
                s.kind.check(value)
            except ValueError as exc:
                raise ConfigError(f"invalid {s.name} {value!r}: {exc}") from None
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("invalid --tls-cert/--tls-key: give both or neither")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ConfigError("invalid --tls-client-ca: it needs --tls-cert and --tls-key")
        if self.tls_peer_ca is not None and self.tls_cert is None:
            raise ConfigError("invalid --tls-peer-ca: it needs --tls-cert and --tls-key")
        if self.max_inflight_bytes < MAX_MESSAGE_BYTES:
            raise ConfigError(
                f"invalid max_inflight_bytes {self.max_inflight_bytes}: must be at least "
                f"{MAX_MESSAGE_BYTES} (one message of the largest size)"
            )

    @property
    def tls(self) -> bool:
        """Whether the server speaks TLS."""
        return self.tls_cert is not None

    @property
    def host_port(self) -> tuple[str, int]:
        """`listen` split into host and port."""
        return parse_listen(self.listen)

    @property
    def http_host_port(self) -> tuple[str, int] | None:
        """Where the HTTP server listens (docs/operations.md#http), None with `--http off`: the
        `http` setting, else the `listen` host and the next port (a free port when the gRPC
        port is 0 or the last one)."""
        if self.http == HTTP_OFF:
            return None
        if self.http is not None:
            return parse_listen(self.http)
        host, port = self.host_port
        return host, (port + 1 if 0 < port < 65535 else 0)

    def broker_settings(self, *, bound: str | None = None) -> str:
        """The settings the Rust core is opened with, as one JSON object (field name -> value).

        `bound` is the address the server actually listens on (`--listen` with port 0 picks
        one): it is the default `advertise` address, and the default node id is the advertise
        address.
        """
        values = {s.name: getattr(self, s.name) for s in settings() if s.broker}
        if values["advertise"] is None:
            values["advertise"] = bound
        if values["node_id"] is None:
            values["node_id"] = values["advertise"]
        return json.dumps(values)

    @classmethod
    def from_sources(cls, flags: Mapping[str, str | None], env: Mapping[str, str]) -> ServeConfig:
        """Build from flag values (field name -> text, None when not given) and the environment.

        Raises ConfigError naming the flag or variable whose value is bad. An empty environment
        variable counts as unset.
        """
        values: dict[str, Any] = {}
        for s in settings():
            text = flags.get(s.name)
            source = s.flag
            if text is None:
                text = env.get(s.env_var) or None
                source = s.env_var
            if text is None:
                continue
            try:
                value = s.kind.parse(text)
                s.kind.check(value)
            except ValueError as exc:
                raise ConfigError(f"invalid {source} {text!r}: {exc}") from None
            values[s.name] = value
        return cls(**values)


def settings() -> Iterator[Setting]:
    """Every setting of `silo serve`, in the order `--help` lists them."""
    for f in dataclasses.fields(ServeConfig):
        yield Setting(
            name=f.name,
            default=f.default,
            help=f.metadata["help"],
            kind=f.metadata["kind"],
            broker=f.metadata["broker"],
        )
