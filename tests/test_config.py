"""Settings (python/silo/config.py, docs/operations.md#settings): each is defined once, as a
field of ServeConfig, and its flag, variable, help and the object the core opens with are
derived from it. Pure tests: no server."""

from __future__ import annotations

import json

import pytest
from silo import cli, config
from silo.config import ConfigError, ServeConfig

SETTINGS = list(config.settings())


def test_every_setting_has_a_flag_a_variable_and_help() -> None:
    parser = cli.build_parser()
    serve_help = parser._subparsers._group_actions[0].choices["serve"].format_help()  # type: ignore[union-attr]
    for s in SETTINGS:
        assert s.flag == "--" + s.name.replace("_", "-")
        assert s.env_var == "SILO_" + s.name.upper()
        assert s.flag in serve_help, s.name
        assert s.help


def test_a_flag_beats_its_variable_which_beats_the_default() -> None:
    assert ServeConfig.from_sources({}, {}).lease_ms == 30_000
    assert ServeConfig.from_sources({}, {"SILO_LEASE_MS": "900"}).lease_ms == 900
    both = ServeConfig.from_sources({"lease_ms": "600"}, {"SILO_LEASE_MS": "900"})
    assert both.lease_ms == 600
    assert ServeConfig.from_sources({}, {"SILO_LEASE_MS": ""}).lease_ms == 30_000


@pytest.mark.parametrize(
    ("flags", "env", "named"),
    [
        ({"lease_ms": "2"}, {}, "--lease-ms"),
        ({"lease_ms": "x"}, {}, "--lease-ms"),
        ({}, {"SILO_CACHE_BYTES": "-1"}, "SILO_CACHE_BYTES"),
        ({"listen": "nowhere"}, {}, "--listen"),
        ({"log_level": "loud"}, {}, "--log-level"),
        ({}, {"SILO_FAULT_INJECTION": "maybe"}, "SILO_FAULT_INJECTION"),
        ({"max_payload_bytes": str(config.MAX_MESSAGE_BYTES + 1)}, {}, "--max-payload-bytes"),
        ({"http": "nowhere"}, {}, "--http"),
        ({}, {"SILO_HTTP": "127.0.0.1:99999"}, "SILO_HTTP"),
    ],
)
def test_a_bad_value_names_its_source(
    flags: dict[str, str], env: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=f"^invalid {named} "):
        ServeConfig.from_sources(flags, env)


def test_construction_checks_fields_too() -> None:
    with pytest.raises(ConfigError, match=r"^invalid gc_interval_ms "):
        ServeConfig(gc_interval_ms=0)


def test_the_core_gets_every_broker_setting_and_nothing_else() -> None:
    sent = json.loads(ServeConfig(store="memory://", lease_ms=900).broker_settings())
    assert set(sent) == {s.name for s in SETTINGS if s.broker}
    assert "listen" not in sent and "log_level" not in sent and "http" not in sent
    assert sent["lease_ms"] == 900 and sent["flush_interval_ms"] is None


def test_the_tls_files_reach_the_core_for_forwarding() -> None:
    """A node that serves TLS forwards over TLS (docs/security.md#in-a-cluster): the core gets
    the certificate, key and CAs; --tls-peer-ca comes from its flag or SILO_TLS_PEER_CA and
    needs --tls-cert."""
    env = {"SILO_TLS_PEER_CA": "/pki/peers.pem"}
    flags = {"tls_cert": "/pki/node.pem", "tls_key": "/pki/node.key"}
    sent = json.loads(ServeConfig.from_sources(flags, env).broker_settings())
    assert sent["tls_cert"] == "/pki/node.pem" and sent["tls_key"] == "/pki/node.key"
    assert sent["tls_peer_ca"] == "/pki/peers.pem" and sent["tls_client_ca"] is None
    with pytest.raises(ConfigError, match=r"^invalid --tls-peer-ca: it needs --tls-cert"):
        ServeConfig.from_sources({}, env)


def test_a_bad_setting_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--lease-ms", "2"]) == cli.EXIT_USAGE
    assert "invalid --lease-ms '2'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("7d", 604_800_000),
        ("12h", 43_200_000),
        ("30m", 1_800_000),
        ("45s", 45_000),
        ("250ms", 250),
        ("1500", 1500),
        ("0", 0),
        (" 2D ", 172_800_000),
    ],
)
def test_retention_takes_a_duration(text: str, ms: int) -> None:
    assert ServeConfig.from_sources({"retention": text}, {}).retention == ms


@pytest.mark.parametrize("text", ["-1d", "7w", "d", "1.5h", "soon"])
def test_a_bad_retention_names_its_flag(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^invalid --retention "):
        ServeConfig.from_sources({"retention": text}, {})


def test_retention_defaults_to_a_week_and_its_help_says_so() -> None:
    assert ServeConfig().retention == 7 * 86_400_000
    (retention,) = [s for s in SETTINGS if s.name == "retention"]
    assert retention.help_text.endswith("(default 7d)")


def test_http_defaults_to_the_listen_host_and_the_next_port() -> None:
    assert ServeConfig().http_host_port == ("127.0.0.1", 7071)
    assert ServeConfig(listen="0.0.0.0:9000").http_host_port == ("0.0.0.0", 9001)
    assert ServeConfig(listen="[::1]:9000").http_host_port == ("::1", 9001)
    # A free port when the gRPC port is one (0) or there is no next port.
    assert ServeConfig(listen="127.0.0.1:0").http_host_port == ("127.0.0.1", 0)
    assert ServeConfig(listen="127.0.0.1:65535").http_host_port == ("127.0.0.1", 0)
    assert ServeConfig(http="10.0.0.1:8080").http_host_port == ("10.0.0.1", 8080)
    assert ServeConfig(http="off").http_host_port is None
    assert ServeConfig.from_sources({}, {"SILO_HTTP": "off"}).http_host_port is None
