"""`[metrics]` in a config: absent is off, every mistake one line naming its key (`tradingd
check-config` says it). `[alerts]`: tests/config/test_alerts_config.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradingd.cli.main import main
from tradingd.cli.settings import daemon_settings
from tradingd.config import load_config
from tradingd.engine import ConfigError
from tradingd.engine.daemon.settings import MetricsOptions
from tradingd.engine.metrics import format_address, parse_listen

LIVE = """
mode = "live"
[venues.deribit]
url = "ws://127.0.0.1:9/ws/api/v2"
rest_url = "http://127.0.0.1:9"
[[strategies]]
name = "once"
class = "tests.support.daemon_strategies:PlaceOnce"
"""


def _config(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "live.toml"
    path.write_text(LIVE + extra, encoding="utf-8")
    return path


def test_without_the_table_there_are_no_metrics(tmp_path: Path) -> None:
    assert daemon_settings(load_config(_config(tmp_path, ""))).metrics is None


def test_an_empty_metrics_table_serves_on_the_loopback_default(tmp_path: Path) -> None:
    settings = daemon_settings(load_config(_config(tmp_path, "[metrics]\n")))
    assert settings.metrics == MetricsOptions(listen="127.0.0.1:9464")


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("127.0.0.1:9464", "127.0.0.1", 9464),
        ("[::1]:9464", "::1", 9464),
        ("localhost:1", "localhost", 1),
        ("0.0.0.0:65535", "0.0.0.0", 65535),  # another host than the loopback, written out
        ("metrics.example.org:9464", "metrics.example.org", 9464),
    ],
)
def test_listen_takes_host_and_port(tmp_path: Path, listen: str, host: str, port: int) -> None:
    assert parse_listen(listen) == (host, port)
    settings = daemon_settings(load_config(_config(tmp_path, f'[metrics]\nlisten = "{listen}"\n')))
    assert settings.metrics == MetricsOptions(listen=listen)
    assert format_address(host, port) == listen


@pytest.mark.parametrize(
    ("listen", "says"),
    [
        ("9464", "expected host:port"),
        (":9464", "expected host:port"),  # no host: never every address by default
        ("127.0.0.1", "expected host:port"),
        ("127.0.0.1:0", "expected a port from 1 to 65535, got 0"),
        ("127.0.0.1:70000", "expected a port from 1 to 65535, got 70000"),
        ("::1:9464", "expected host:port"),  # IPv6 in brackets only
        ("[::zz]:9464", "expected an IPv6 address in brackets"),
        ("300.1.1.1:9464", "expected an IPv4 address or a host name"),
        ("bad host:9464", "expected host:port"),
        ("127.0.0.1:port", "expected host:port"),
    ],
)
def test_a_bad_listen_is_one_line_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], listen: str, says: str
) -> None:
    path = _config(tmp_path, f'[metrics]\nlisten = "{listen}"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.path == "metrics.listen" and says in info.value.message
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "metrics.listen" in err and says in err


def test_listen_must_be_a_string(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a string") as info:
        load_config(_config(tmp_path, "[metrics]\nlisten = 9464\n"))
    assert info.value.path == "metrics.listen"
