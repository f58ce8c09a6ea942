"""`[alerts]` as a TOML table (`alert_options_from_table`, for the config loader to call): the
defaults as pinned, and every wrong table one line naming its key."""

from __future__ import annotations

import tomllib

import pytest

import tradingd.engine.alerts as alerts
from tradingd.engine.alerts import AlertOptions, WebhookOptions, alert_options_from_table
from tradingd.engine.model.errors import ConfigError

HOOK = '{ format = "slack", url_env = "SLACK_URL" }'


def table(text: str) -> dict[str, object]:
    return tomllib.loads("[alerts]\n" + text)["alerts"]  # type: ignore[no-any-return]


def test_the_defaults_as_pinned() -> None:
    options = alert_options_from_table(table(f"webhooks = [{HOOK}]"))
    assert options == AlertOptions(
        webhooks=(WebhookOptions(format="slack", url_env="SLACK_URL"),),
        venue_down_after_s=60.0,
        daily_loss_usd=0.0,
        risk_refusals=10,
        risk_refusals_within_s=60.0,
        dedup_s=600.0,
        max_per_minute=20,
        timeout_s=5.0,
    )


def test_every_key_read() -> None:
    options = alert_options_from_table(
        table(
            'webhooks = [{ format = "telegram", url_file = "/etc/tradingd/tg" }, '
            '{ format = "json", url_env = "J" }, { format = "discord", url_env = "D" }]\n'
            "venue_down_after_s = 30\ndaily_loss_usd = 500\nrisk_refusals = 3\n"
            "risk_refusals_within_s = 10.5\ndedup_s = 0\nmax_per_minute = 5\ntimeout_s = 2.5\n"
        )
    )
    assert options.webhooks == (
        WebhookOptions(format="telegram", url_file="/etc/tradingd/tg"),
        WebhookOptions(format="json", url_env="J"),
        WebhookOptions(format="discord", url_env="D"),
    )
    assert (options.venue_down_after_s, options.daily_loss_usd, options.risk_refusals) == (30.0, 500.0, 3)
    assert (options.risk_refusals_within_s, options.dedup_s, options.max_per_minute) == (10.5, 0.0, 5)
    assert options.timeout_s == 2.5
    assert isinstance(options.venue_down_after_s, float) and isinstance(options.max_per_minute, int)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"webhooks = [{HOOK}]\nwebhook = 1",
            "alerts.webhook: unknown key (known: webhooks, venue_down_after_s",
        ),
        ("max_per_minute = 3", "alerts.webhooks: expected a list of webhooks, at least one"),
        ("webhooks = []", "alerts.webhooks: expected a list of webhooks, at least one"),
        ('webhooks = ["SLACK_URL"]', "alerts.webhooks[0]: expected a table"),
        (
            'webhooks = [{ format = "slack", url = "https://hooks.slack.com/services/T/B/X" }]',
            "alerts.webhooks[0].url: a webhook's URL is a secret: name an environment variable (url_env)",
        ),
        (
            'webhooks = [{ format = "slack", url_env = "A", token = "x" }]',
            "alerts.webhooks[0].token: unknown key (known: format, url_env, url_file)",
        ),
        (
            f'webhooks = [{HOOK}, {{ format = "teams", url_env = "T" }}]',
            "alerts.webhooks[1].format: expected one of slack, discord, telegram, json, got 'teams'",
        ),
        ('webhooks = [{ url_env = "T" }]', "alerts.webhooks[0].format: expected one of slack, discord"),
        (
            'webhooks = [{ format = "json", url_env = "A", url_file = "/f" }]',
            "alerts.webhooks[0]: give exactly one of url_env (an environment variable's name) and url_file",
        ),
        ('webhooks = [{ format = "json" }]', "alerts.webhooks[0]: give exactly one of url_env"),
        (
            'webhooks = [{ format = "json", url_env = "https://x/y" }]',
            "alerts.webhooks[0].url_env: expected an environment variable's name, got 'https://x/y'",
        ),
        (
            'webhooks = [{ format = "json", url_file = "" }]',
            "alerts.webhooks[0].url_file: expected a file's path",
        ),
        (f"webhooks = [{HOOK}]\ndedup_s = nan", "alerts.dedup_s: expected a finite number, got nan"),
        (f"webhooks = [{HOOK}]\ntimeout_s = inf", "alerts.timeout_s: expected a finite number, got inf"),
        (f"webhooks = [{HOOK}]\ndaily_loss_usd = -inf", "alerts.daily_loss_usd: expected a finite number"),
        (
            f"webhooks = [{HOOK}]\ndaily_loss_usd = -100",
            "alerts.daily_loss_usd: expected a number >= 0, got -100",
        ),
        (f"webhooks = [{HOOK}]\ntimeout_s = 0", "alerts.timeout_s: expected a number > 0, got 0"),
        (
            f"webhooks = [{HOOK}]\nvenue_down_after_s = -1.5",
            "alerts.venue_down_after_s: expected a number > 0",
        ),
        (f"webhooks = [{HOOK}]\nmax_per_minute = 0", "alerts.max_per_minute: expected a number >= 1, got 0"),
        (f"webhooks = [{HOOK}]\nmax_per_minute = 2.5", "alerts.max_per_minute: expected an integer, got 2.5"),
        (f"webhooks = [{HOOK}]\nrisk_refusals = true", "alerts.risk_refusals: expected an integer, got bool"),
        (
            f'webhooks = [{HOOK}]\nrisk_refusals_within_s = "60"',
            "alerts.risk_refusals_within_s: expected a number, got str",
        ),
    ],
)
def test_a_wrong_table_is_one_line_naming_the_key(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        alert_options_from_table(table(text))
    message = str(caught.value)
    assert message.startswith(expected), message
    assert "\n" not in message
    assert "hooks.slack.com" not in message  # a URL written in the config is not repeated back


def test_the_public_names() -> None:
    assert sorted(alerts.__all__) == [
        "Alert",
        "AlertKind",
        "AlertNotifier",
        "AlertOptions",
        "AlertWatcher",
        "FORMATS",
        "KINDS",
        "SUPPRESS_REASONS",
        "Severity",
        "WebhookFormat",
        "WebhookOptions",
        "alert_options_from_table",
        "webhook_body",
    ]
    assert alerts.FORMATS == ("slack", "discord", "telegram", "json")
    assert alerts.SUPPRESS_REASONS == ("dedup", "rate", "queue_full")
