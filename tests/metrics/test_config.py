"""`[metrics]` and `[alerts]` in a config: absent is off, every mistake one line naming its key
(`tradingd check-config` says it), and a webhook's URL is never read from the config."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradingd.cli.main import main
from tradingd.cli.settings import daemon_settings
from tradingd.config import load_config
from tradingd.engine import ConfigError
from tradingd.engine.daemon.settings import AlertOptions, MetricsOptions, WebhookOptions
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


def test_without_the_tables_there_are_no_metrics_and_no_alerts(tmp_path: Path) -> None:
    settings = daemon_settings(load_config(_config(tmp_path, "")))
    assert settings.metrics is None and settings.alerts is None


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


def test_an_alerts_table_becomes_the_daemons_options_with_files_read_from_the_configs_folder(
    tmp_path: Path,
) -> None:
    extra = """
[alerts]
venue_down_after_s = 30
daily_loss_usd = 500
risk_refusals = 5
risk_refusals_within_s = 10
dedup_s = 60
max_per_minute = 3
timeout_s = 2
[[alerts.webhooks]]
format = "slack"
url_env = "TRADINGD_SLACK_URL"
[[alerts.webhooks]]
format = "telegram"
url_file = "secrets/telegram-url"
"""
    settings = daemon_settings(load_config(_config(tmp_path, extra)))
    assert settings.alerts == AlertOptions(
        webhooks=(
            WebhookOptions(format="slack", url_env="TRADINGD_SLACK_URL"),
            WebhookOptions(format="telegram", url_file=str(tmp_path / "secrets" / "telegram-url")),
        ),
        venue_down_after_s=30.0,
        daily_loss_usd=500.0,
        risk_refusals=5,
        risk_refusals_within_s=10.0,
        dedup_s=60.0,
        max_per_minute=3,
        timeout_s=2.0,
    )


@pytest.mark.parametrize(("table", "says"), [("", "required key missing"), ("webhooks = []", "at least one")])
def test_alerts_without_a_webhook_are_refused(tmp_path: Path, table: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, f"[alerts]\n{table}\n"))
    assert info.value.path == "alerts.webhooks" and says in info.value.message


@pytest.mark.parametrize(
    ("table", "path", "says"),
    [
        ('format = "slack"', "alerts.webhooks[0].url_file", "exactly one of url_env"),
        ('format = "slack"\nurl_env = "A"\nurl_file = "f"', "alerts.webhooks[0].url_file", "exactly one"),
        ('format = "pager"\nurl_env = "A"', "alerts.webhooks[0].format", "expected one of 'slack'"),
        ('format = "json"\nurl_env = "NOT A NAME"', "alerts.webhooks[0].url_env", "environment variable"),
        ('format = "json"\nurl_file = ""', "alerts.webhooks[0].url_file", "expected a file's path"),
    ],
)
def test_a_bad_webhook_is_one_line_naming_the_key(tmp_path: Path, table: str, path: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, f"[[alerts.webhooks]]\n{table}\n"))
    assert info.value.path == path and says in info.value.message


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("venue_down_after_s", "0", "expected a positive number"),
        ("daily_loss_usd", "-1", "expected a number at least 0"),
        ("risk_refusals", "0", "expected a positive number"),
        ("max_per_minute", "1.5", "expected an integer"),
        ("timeout_s", "nan", "expected a finite number"),
    ],
)
def test_a_bad_alert_bound_is_one_line_naming_the_key(
    tmp_path: Path, key: str, value: str, says: str
) -> None:
    hook = '[[alerts.webhooks]]\nformat = "json"\nurl_env = "HOOK"\n'
    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, f"[alerts]\n{key} = {value}\n{hook}"))
    assert info.value.path == f"alerts.{key}" and says in info.value.message


def test_a_webhook_url_in_the_config_is_refused_and_never_repeated(tmp_path: Path) -> None:
    secret = "https://hooks.slack.com/services/T000/B000/XXXXXXXXSECRET"
    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, f'[[alerts.webhooks]]\nformat = "slack"\nurl = "{secret}"\n'))
    assert info.value.path == "alerts.webhooks[0].url"
    assert "url_env" in str(info.value) and secret not in str(info.value)
    assert "XXXXXXXXSECRET" not in str(info.value)
