"""What a config's `[alerts]` table says (`AlertOptions`): the one options type of alerts, which
`DaemonSettings.alerts` carries (engine.daemon.settings re-exports it). The table is checked by
the config (config._schema `AlertsConfig`, each problem one line naming its key) and built into
these by the command line (cli.settings): the engine reads no TOML and checks nothing again.

    [alerts]
    webhooks = [ { format = "slack", url_env = "TRADINGD_SLACK_URL" },
                 { format = "telegram", url_file = "/etc/tradingd/telegram-url" } ]
    venue_down_after_s = 60.0        # a venue down or stale this long -> alert
    daily_loss_usd = 0               # 0: off; > 0: today's PnL below -X (engine, each strategy)
    risk_refusals = 10               # this many risk refusals ...
    risk_refusals_within_s = 60.0    # ... within this: one alert (0 refusals: off)
    dedup_s = 600.0                  # the same alert (kind + subject) again within this: suppressed
    max_per_minute = 20              # all alerts together; beyond it suppressed, then one summary
    timeout_s = 5.0                  # each webhook POST

A webhook's URL is a secret (a Slack or Discord webhook's path, a Telegram bot token): the
table names where it is, an environment variable (`url_env`) or a file (`url_file`), never the
URL itself, so the config can live in git. A relative `url_file` is read from the folder of
`DaemonSettings.config_path` (the notifier resolves it: the one place).
"""

from __future__ import annotations

from typing import Literal, get_args

import attrs

__all__ = ["FORMATS", "AlertOptions", "WebhookFormat", "WebhookOptions"]

WebhookFormat = Literal["slack", "discord", "telegram", "json"]
FORMATS: tuple[str, ...] = get_args(WebhookFormat)


@attrs.frozen
class WebhookOptions:
    """One webhook: its body's format and where its URL is (exactly one of `url_env`, the name of
    an environment variable, and `url_file`, a file's path, relative to the config's folder)."""

    format: WebhookFormat
    url_env: str | None = None
    url_file: str | None = None

    @property
    def source(self) -> str:
        """Where the URL comes from, for people and logs (never the URL): `$NAME` or the file."""
        return f"${self.url_env}" if self.url_env is not None else f"file {self.url_file}"


@attrs.frozen
class AlertOptions:
    """The `[alerts]` table (module docstring); absent table: no alerts."""

    webhooks: tuple[WebhookOptions, ...]
    venue_down_after_s: float = 60.0
    daily_loss_usd: float = 0.0
    risk_refusals: int = 10
    risk_refusals_within_s: float = 60.0
    dedup_s: float = 600.0
    max_per_minute: int = 20
    timeout_s: float = 5.0
