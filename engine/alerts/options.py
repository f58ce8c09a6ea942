"""What a config's `[alerts]` table says (`AlertOptions`), and the check that turns a TOML table
into one (`alert_options_from_table`): every problem one line naming the key.

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
URL itself, so the config can live in git.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Literal, get_args

import attrs

from ..model.errors import ConfigError

__all__ = ["FORMATS", "AlertOptions", "WebhookFormat", "WebhookOptions", "alert_options_from_table"]

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


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WEBHOOK_KEYS = ("format", "url_env", "url_file")
# key -> (kind, the smallest value allowed, whether that smallest value itself is allowed)
_NUMBERS: dict[str, tuple[type, float, bool]] = {
    "venue_down_after_s": (float, 0.0, False),
    "daily_loss_usd": (float, 0.0, True),
    "risk_refusals": (int, 0, True),
    "risk_refusals_within_s": (float, 0.0, False),
    "dedup_s": (float, 0.0, True),
    "max_per_minute": (int, 1, True),
    "timeout_s": (float, 0.0, False),
}


def _error(path: str, message: str) -> ConfigError:
    return ConfigError(message, path=path)


def _number(path: str, value: Any, kind: type, low: float, inclusive: bool) -> float | int:
    # bool is an int to Python, never a number to a person writing TOML.
    if isinstance(value, bool) or not isinstance(value, int | float):
        what = "an integer" if kind is int else "a number"
        raise _error(path, f"expected {what}, got {type(value).__name__}")
    if kind is int and not isinstance(value, int):
        raise _error(path, f"expected an integer, got {value!r}")
    if not math.isfinite(value):
        # A NaN limit is no limit: nan < x and nan > x are both false.
        raise _error(path, f"expected a finite number, got {value!r}")
    if value < low or (value == low and not inclusive):
        bound = f">= {low:g}" if inclusive else f"> {low:g}"
        raise _error(path, f"expected a number {bound}, got {value!r}")
    return int(value) if kind is int else float(value)


def _webhook(path: str, table: Any) -> WebhookOptions:
    if not isinstance(table, Mapping):
        raise _error(path, f"expected a table {{ format = ..., url_env = ... }}, got {type(table).__name__}")
    for key in table:
        if key == "url":
            raise _error(
                f"{path}.url",
                "a webhook's URL is a secret: name an environment variable (url_env) or a file "
                "(url_file) that holds it, never the URL in the config",
            )
        if key not in _WEBHOOK_KEYS:
            raise _error(f"{path}.{key}", f"unknown key (known: {', '.join(_WEBHOOK_KEYS)})")
    fmt = table.get("format")
    if fmt not in FORMATS:
        got = "nothing" if fmt is None else repr(fmt)
        raise _error(f"{path}.format", f"expected one of {', '.join(FORMATS)}, got {got}")
    env, file = table.get("url_env"), table.get("url_file")
    if (env is None) == (file is None):
        raise _error(path, "give exactly one of url_env (an environment variable's name) and url_file")
    if env is not None and (not isinstance(env, str) or not _ENV_NAME.fullmatch(env)):
        raise _error(f"{path}.url_env", f"expected an environment variable's name, got {env!r}")
    if file is not None and (not isinstance(file, str) or not file.strip()):
        raise _error(f"{path}.url_file", f"expected a file's path, got {file!r}")
    return WebhookOptions(format=fmt, url_env=env, url_file=file)


def alert_options_from_table(table: Mapping[str, Any], *, path: str = "alerts") -> AlertOptions:
    """The `[alerts]` table checked (module docstring): `ConfigError` naming the key
    (`alerts.webhooks[1].format`) for an unknown key, a wrong type, a number that is NaN,
    infinite or out of range, a webhook with both or neither of url_env/url_file, a URL written
    in the config, an unknown format."""
    known = ("webhooks", *_NUMBERS)
    for key in table:
        if key not in known:
            raise _error(f"{path}.{key}", f"unknown key (known: {', '.join(known)})")
    hooks = table.get("webhooks")
    if not isinstance(hooks, list | tuple) or not hooks:
        raise _error(
            f"{path}.webhooks",
            'expected a list of webhooks, at least one: [{ format = "slack", url_env = "NAME" }]',
        )
    webhooks = tuple(_webhook(f"{path}.webhooks[{i}]", hook) for i, hook in enumerate(hooks))
    defaults = AlertOptions(webhooks=webhooks)

    def number(key: str) -> float:
        if key not in table:
            return float(getattr(defaults, key))
        return _number(f"{path}.{key}", table[key], *_NUMBERS[key])

    return AlertOptions(
        webhooks=webhooks,
        venue_down_after_s=number("venue_down_after_s"),
        daily_loss_usd=number("daily_loss_usd"),
        risk_refusals=int(number("risk_refusals")),
        risk_refusals_within_s=number("risk_refusals_within_s"),
        dedup_s=number("dedup_s"),
        max_per_minute=int(number("max_per_minute")),
        timeout_s=number("timeout_s"),
    )
