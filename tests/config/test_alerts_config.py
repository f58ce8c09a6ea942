"""`[alerts]` in a config, checked once, by the config (its schema's validators and the loader):
the defaults as pinned, every key read into the daemon's `AlertOptions`, a relative `url_file`
kept as written (the daemon reads it from the config's folder), and every wrong table one line
naming its key, which `tradingd check-config` prints as it is. A webhook's URL is a secret: one
written in the config is refused and never repeated back."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradingd.cli.main import main
from tradingd.cli.settings import daemon_settings
from tradingd.config import load_config
from tradingd.engine import ConfigError
from tradingd.engine.alerts import AlertOptions, WebhookOptions

LIVE = """
mode = "live"
[venues.deribit]
url = "ws://127.0.0.1:9/ws/api/v2"
rest_url = "http://127.0.0.1:9"
[[strategies]]
name = "once"
class = "tests.support.daemon_strategies:PlaceOnce"
"""

HOOK = '{ format = "slack", url_env = "SLACK_URL" }'
SECRET = "https://hooks.slack.com/services/T000/B000/XXXXXXXXSECRET"


def _config(tmp_path: Path, alerts: str) -> Path:
    path = tmp_path / "live.toml"
    path.write_text(LIVE + "[alerts]\n" + alerts + "\n", encoding="utf-8")
    return path


def test_without_the_table_there_are_no_alerts(tmp_path: Path) -> None:
    path = tmp_path / "live.toml"
    path.write_text(LIVE, encoding="utf-8")
    assert daemon_settings(load_config(path)).alerts is None


def test_the_defaults_as_pinned(tmp_path: Path) -> None:
    settings = daemon_settings(load_config(_config(tmp_path, f"webhooks = [{HOOK}]")))
    assert settings.alerts == AlertOptions(
        webhooks=(WebhookOptions(format="slack", url_env="SLACK_URL"),),
        venue_down_after_s=60.0,
        daily_loss_usd=0.0,
        risk_refusals=10,
        risk_refusals_within_s=60.0,
        dedup_s=600.0,
        max_per_minute=20,
        timeout_s=5.0,
    )


def test_every_key_read_and_a_relative_url_file_kept_as_written(tmp_path: Path) -> None:
    """The daemon's notifier reads `url_file` relative to `DaemonSettings.config_path`'s folder
    (tests/alerts/test_notifier.py): the one place that resolves it."""
    alerts = """
venue_down_after_s = 30
daily_loss_usd = 500
risk_refusals = 3
risk_refusals_within_s = 10.5
dedup_s = 0
max_per_minute = 5
timeout_s = 2.5
[[alerts.webhooks]]
format = "telegram"
url_file = "secrets/telegram-url"
[[alerts.webhooks]]
format = "json"
url_env = "J"
[[alerts.webhooks]]
format = "discord"
url_file = "/etc/tradingd/discord-url"
"""
    options = daemon_settings(load_config(_config(tmp_path, alerts))).alerts
    assert options == AlertOptions(
        webhooks=(
            WebhookOptions(format="telegram", url_file="secrets/telegram-url"),
            WebhookOptions(format="json", url_env="J"),
            WebhookOptions(format="discord", url_file="/etc/tradingd/discord-url"),
        ),
        venue_down_after_s=30.0,
        daily_loss_usd=500.0,
        risk_refusals=3,
        risk_refusals_within_s=10.5,
        dedup_s=0.0,
        max_per_minute=5,
        timeout_s=2.5,
    )
    assert isinstance(options.venue_down_after_s, float) and isinstance(options.max_per_minute, int)


def test_no_risk_refusals_turns_the_burst_alert_off(tmp_path: Path) -> None:
    options = daemon_settings(
        load_config(_config(tmp_path, f"webhooks = [{HOOK}]\nrisk_refusals = 0"))
    ).alerts
    assert options is not None and options.risk_refusals == 0


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (f"webhooks = [{HOOK}]\nwebhook = 1", "alerts: unknown key(s) webhook; did you mean 'webhooks'?"),
        (f"webhooks = [{HOOK}]\npager = 1", "alerts: unknown key(s) pager (known: "),
        ("max_per_minute = 3", "alerts.webhooks: required key missing"),
        ("webhooks = []", "alerts.webhooks: expected at least one webhook"),
        ('webhooks = ["SLACK_URL"]', "alerts.webhooks[0]: expected a table"),
        (
            f'webhooks = [{{ format = "slack", url = "{SECRET}" }}]',
            "alerts.webhooks[0].url: a webhook's URL is a secret, never read from the config",
        ),
        (
            'webhooks = [{ format = "slack", url_env = "A", token = "x" }]',
            "alerts.webhooks[0]: unknown key(s) token (known: format, url_env, url_file)",
        ),
        (
            f'webhooks = [{HOOK}, {{ format = "teams", url_env = "T" }}]',
            "alerts.webhooks[1].format: expected one of 'slack', 'discord', 'telegram', 'json', got a "
            "value not shown (it may be a secret)",
        ),
        ('webhooks = [{ url_env = "T" }]', "alerts.webhooks[0].format: required key missing"),
        (
            'webhooks = [{ format = "json", url_env = "A", url_file = "/f" }]',
            "alerts.webhooks[0].url_file: expected exactly one of url_env (an environment variable) or",
        ),
        ('webhooks = [{ format = "json" }]', "alerts.webhooks[0].url_file: expected exactly one of url_env"),
        (
            f'webhooks = [{{ format = "json", url_env = "{SECRET}" }}]',
            "alerts.webhooks[0].url_env: expected an environment variable's name",
        ),
        (
            f'webhooks = [{{ format = "json", url_file = "{SECRET}" }}]',
            "alerts.webhooks[0].url_file: expected a file's path, not a URL",
        ),
        (
            'webhooks = [{ format = "json", url_file = "" }]',
            "alerts.webhooks[0].url_file: expected a file's path",
        ),
        # A URL where another value goes: the key is named, the value never repeated.
        (
            f'webhooks = [{{ format = "{SECRET}", url_env = "S" }}]',
            "alerts.webhooks[0].format: expected one of 'slack', 'discord', 'telegram', 'json', got a "
            "value not shown",
        ),
        (f'webhooks = "{SECRET}"', "alerts.webhooks: expected a list (a TOML array or [[table]]), got a"),
        (f'webhooks = ["{SECRET}"]', "alerts.webhooks[0]: expected a table"),
        (f'webhooks = [{{ format = "json", url_env = ["{SECRET}"] }}]', "alerts.webhooks[0].url_env: "),
        (f"webhooks = [{HOOK}]\ndedup_s = nan", "alerts.dedup_s: expected a finite number, got nan"),
        (f"webhooks = [{HOOK}]\ntimeout_s = inf", "alerts.timeout_s: expected a finite number, got inf"),
        (f"webhooks = [{HOOK}]\ndaily_loss_usd = -inf", "alerts.daily_loss_usd: expected a finite number"),
        (
            f"webhooks = [{HOOK}]\ndaily_loss_usd = -100",
            "alerts.daily_loss_usd: expected a number at least 0",
        ),
        (f"webhooks = [{HOOK}]\ntimeout_s = 0", "alerts.timeout_s: expected a positive number, got 0"),
        (f"webhooks = [{HOOK}]\nvenue_down_after_s = -1.5", "alerts.venue_down_after_s: expected a positive"),
        (f"webhooks = [{HOOK}]\nmax_per_minute = 0", "alerts.max_per_minute: expected a positive number"),
        (f"webhooks = [{HOOK}]\nrisk_refusals = -1", "alerts.risk_refusals: expected a number at least 0"),
        (f"webhooks = [{HOOK}]\nmax_per_minute = 2.5", "alerts.max_per_minute: expected an integer, got 2.5"),
        (f"webhooks = [{HOOK}]\nrisk_refusals = true", "alerts.risk_refusals: expected an integer, got True"),
        (
            f'webhooks = [{HOOK}]\nrisk_refusals_within_s = "60"',
            "alerts.risk_refusals_within_s: expected a number, got '60'",
        ),
    ],
)
def test_a_wrong_table_is_one_line_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: str
) -> None:
    path = _config(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {line}"), message
    assert "\n" not in message
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"tradingd: error: {message}"]
    # A URL written in the config (in any key) is not repeated back.
    assert "XXXXXXXXSECRET" not in err and "hooks.slack.com" not in err
