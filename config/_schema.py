"""The TOML schema: attrs classes, structured with cattrs (see `config._loader`).

A config names the mode, the venues, the strategies with their parameters, risk limits and, for
backtests, the data. Secrets never live here: venue credentials come from the environment or from
credential files (see each venue's section of the README).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal
from typing import Any, Literal

import attrs

from tradingd.engine.metrics import parse_listen
from tradingd.engine.surface.model import MAX_IV, MAX_REFIT_INTERVAL_S, MIN_IV

__all__ = [
    "AlertsConfig",
    "BacktestConfig",
    "CatalogConfig",
    "Config",
    "DaemonConfig",
    "DataFileConfig",
    "LimitsConfig",
    "LoggingConfig",
    "MetricsConfig",
    "RecordingConfig",
    "StrategyConfig",
    "SurfaceConfig",
    "WebhookConfig",
    "utc_ns",
]

Mode = Literal["backtest", "live", "paper"]


@attrs.frozen
class LoggingConfig:
    """`[logging]`: JSON lines by default; `pretty` for people; `auto` = pretty on a terminal.
    `file`: also append every line, as JSON, to this file (relative to the config file's
    folder; reopened on SIGHUP, for logrotate)."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "pretty"] = "auto"
    file: str | None = None


def _positive(_: Any, attribute: attrs.Attribute[Any], value: float | Decimal | None) -> None:
    # `not value > 0` (rather than `value <= 0`) also refuses NaN, which compares false.
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError(f"{attribute.name}: expected a positive number, got {value}")


@attrs.frozen
class InstrumentLimitsConfig:
    max_order_size: Decimal | None = attrs.field(default=None, validator=_positive)
    max_order_notional_usd: float | None = attrs.field(default=None, validator=_positive)
    max_position: Decimal | None = attrs.field(default=None, validator=_positive)


@attrs.frozen
class LimitsConfig:
    """`[risk]` (all strategies together) or `[strategies.risk]` (one strategy); `instruments`
    overrides the per-order limits per instrument name. Sizes are in the instrument's own unit
    (USD for inverse perpetuals, coins for options); omitted limits do not apply."""

    max_order_size: Decimal | None = attrs.field(default=None, validator=_positive)
    max_order_notional_usd: float | None = attrs.field(default=None, validator=_positive)
    max_position: Decimal | None = attrs.field(default=None, validator=_positive)
    max_open_orders: int | None = attrs.field(default=None, validator=_positive)
    max_orders_per_minute: int | None = attrs.field(default=None, validator=_positive)
    max_daily_loss_usd: float | None = attrs.field(default=None, validator=_positive)
    instruments: dict[str, InstrumentLimitsConfig] = attrs.field(factory=dict)


@attrs.frozen
class DataFileConfig:
    """`[[backtest.data]]`: one data file of one venue. `format` is "recording" (the recording
    format of DESIGN.md) or another format the venue reads (see its README section). With
    `generate`, a missing recording is synthesized (offline, deterministically) on first use."""

    venue: str
    path: str
    generate: dict[str, Any] | None = None
    format: str = "recording"


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_TIME_FORMS = "an ISO 8601 time in UTC (2026-11-24T06:00:00Z, 2026-11-24 06:00, 2026-11-24)"


def utc_ns(value: object) -> int:
    """A time as a person writes it in a config or on the command line, in ns since the epoch:
    an ISO 8601 string, or a TOML date-time or date. Without a zone it is UTC (as recordings'
    and logs' times are); with one it is converted. Raises ValueError naming the forms taken."""
    when: dt.datetime
    if isinstance(value, dt.datetime):
        when = value
    elif isinstance(value, dt.date):  # a TOML date: its midnight
        when = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"expected {_TIME_FORMS}, got {value!r}") from None
    else:
        raise TypeError(f"expected {_TIME_FORMS}, got {value!r}")
    when = when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _window_bound(name: str, value: object) -> int | None:
    """`[backtest] start` or `end` in ns; its name in the message (the loader attributes
    "start: expected ..." to the key `backtest.start`)."""
    try:
        return None if value is None else utc_ns(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: {exc}") from None


def _start_ns(value: object) -> int | None:
    return _window_bound("start", value)


def _end_ns(value: object) -> int | None:
    return _window_bound("end", value)


def _after_start(inst: BacktestConfig, _: attrs.Attribute[Any], end: int | None) -> None:
    if end is not None and inst.start is not None and end <= inst.start:
        raise ValueError(f"end: expected a time after start ({_iso(inst.start)}), got {_iso(end)}")


def _iso(ns: int) -> str:
    when = _EPOCH + dt.timedelta(microseconds=ns // 1_000)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + (f".{when.microsecond:06d}" if when.microsecond else "") + "Z"


@attrs.frozen
class BacktestConfig:
    """`[backtest]`: the recordings to replay and how the simulated venues behave. `start` /
    `end`: the market-time window the strategies trade in (`utc_ns`: ISO 8601 strings or TOML
    date-times, UTC when they name no zone; kept in ns since the epoch); the data before `start`
    only warms the books up. None: the data's first / last frame."""

    data: list[DataFileConfig]
    latency_ms: float = 20.0
    response_latency_ms: float | None = None
    equity_interval_s: float = 60.0
    queue_ahead: bool = False
    mailbox_capacity: int = 1024
    # `Any` to cattrs (a string or a TOML date-time comes as it is), an int once converted.
    start: Any = attrs.field(default=None, converter=_start_ns)
    end: Any = attrs.field(default=None, converter=_end_ns, validator=_after_start)


@attrs.frozen
class RecordingConfig:
    """`[recording]`: in `live`/`paper` mode, also record every raw frame of every venue
    connection (as `tradingd record` does) into `dir`, rotated by time or size."""

    enabled: bool = False
    dir: str = "recordings"
    rotate_s: float = 3600.0
    rotate_bytes: int = 256 * 1024 * 1024


@attrs.frozen
class DaemonConfig:
    """`[daemon]`: how `tradingd run` keeps its state and stops. Relative paths are relative to
    the config file. Defaults follow systemd: the state directory is `$STATE_DIRECTORY`
    (`StateDirectory=`), else `$XDG_STATE_HOME/tradingd` (`~/.local/state/tradingd`); the status
    file goes to `$RUNTIME_DIRECTORY` when systemd gives one."""

    state_dir: str | None = None
    journal: str | None = None  # default <state_dir>/journal.sqlite (live mode only)
    journal_sync: Literal["normal", "full"] = "normal"  # full: survive a power cut, fsync per write
    status_file: str | None = None  # default $RUNTIME_DIRECTORY/status.json or <state_dir>/status.json
    kill_switch_file: str | None = None  # default <state_dir>/KILL
    shutdown_timeout_s: float = attrs.field(default=10.0, validator=_positive)
    cancel_on_shutdown: bool = False
    # New orders and edits strategies queued before a stop and not sent yet: refused (false), or
    # still sent while the strategies stop (true). Orders a strategy's `on_stop` makes are sent.
    send_queued_on_stop: bool = False
    foreign_orders: Literal["report", "cancel"] = "report"  # open orders at the venue not ours
    watchdog_stale_s: float = 120.0  # no frame from a venue for this long withholds WATCHDOG=1; 0: off
    # Strategies start once every venue is up, or after this long at most (a venue that is down
    # must not hold the others).
    strategy_start_wait_s: float = attrs.field(default=30.0, validator=_positive)
    # Positions are checked against the venue at each (re)connection and every this long while
    # connected (an account changed under a daemon that stays up: a manual trade, another daemon).
    position_check_interval_s: float = attrs.field(default=300.0, validator=_positive)


def _listen(_: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    try:
        parse_listen(value)
    except ValueError as exc:
        raise ValueError(f"{attribute.name}: {exc}") from None


@attrs.frozen
class MetricsConfig:
    """`[metrics]`: serve Prometheus metrics on `listen` (`host:port`; IPv6 as `[::1]:9464`).
    Without the table, no metrics are served. Another host than the loopback is allowed, written
    out (`0.0.0.0:9464`): the metrics name the strategies, venues and positions."""

    listen: str = attrs.field(default="127.0.0.1:9464", validator=_listen)


def _not_negative(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{attribute.name}: expected a number at least 0, got {value}")


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env_name(_: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
    # Not repeated back: what is written where a name belongs may be the URL itself (a secret).
    if value is not None and not _ENV_NAME.fullmatch(value):
        raise ValueError(
            f"{attribute.name}: expected an environment variable's name (letters, digits and _, "
            "not a digit first), holding the webhook's URL"
        )


def _one_source(inst: WebhookConfig, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not value.strip():
        raise ValueError(f"{attribute.name}: expected a file's path, got {value!r}")
    if value is not None and "://" in value:
        # A URL where the file's path belongs: the secret itself, never repeated (nor read as a
        # path whose "does not exist" would print it at the start).
        raise ValueError(f"{attribute.name}: expected a file's path, not a URL: the file holds the URL")
    if (inst.url_env is None) == (value is None):
        raise ValueError(
            f"{attribute.name}: expected exactly one of url_env (an environment variable) or "
            "url_file (a file) holding the webhook's URL"
        )


@attrs.frozen
class WebhookConfig:
    """`[[alerts.webhooks]]`: where alerts go, in `format`. The URL is a secret (a Slack or
    Discord webhook, a Telegram bot token): it comes from the environment variable `url_env` or
    the file `url_file` (relative to the config's folder), exactly one, never the config."""

    format: Literal["slack", "discord", "telegram", "json"]
    url_env: str | None = attrs.field(default=None, validator=_env_name)
    url_file: str | None = attrs.field(default=None, validator=_one_source)


def _some(_: Any, attribute: attrs.Attribute[Any], value: list[Any]) -> None:
    if not value:
        raise ValueError(
            f'{attribute.name}: expected at least one webhook ([[alerts.webhooks]] format = "slack", '
            'url_env = "NAME")'
        )


@attrs.frozen
class AlertsConfig:
    """`[alerts]`: post alerts to `webhooks` when something needs a person (engine.alerts).
    `daily_loss_usd` 0 is off, `risk_refusals` 0 too. The one check of the table: the engine's
    `AlertOptions` (engine.alerts) is built of it (cli.settings) and checks nothing again."""

    webhooks: list[WebhookConfig] = attrs.field(validator=_some)
    venue_down_after_s: float = attrs.field(default=60.0, validator=_positive)
    daily_loss_usd: float = attrs.field(default=0.0, validator=_not_negative)
    risk_refusals: int = attrs.field(default=10, validator=_not_negative)  # 0: no burst alert
    risk_refusals_within_s: float = attrs.field(default=60.0, validator=_positive)
    dedup_s: float = attrs.field(default=600.0, validator=_not_negative)
    max_per_minute: int = attrs.field(default=20, validator=_positive)
    timeout_s: float = attrs.field(default=5.0, validator=_positive)


@attrs.frozen
class CatalogConfig:
    """`[catalog]`: the Polymarket market catalog (`tradingd catalog ...`, strategies' discovery).
    `polymarket_cache` None means the user cache folder (see README, "Market discovery")."""

    polymarket_cache: str | None = None
    refresh_after_s: float = 86_400.0
    gamma_url: str = "https://gamma-api.polymarket.com"

    def cache_of(self, venue: str) -> str | None:
        """The cache file configured for `venue`'s catalog, as written (None: its default). The
        keys name their venue (`polymarket_cache`: Polymarket's is the one catalog today); the
        command line asks by venue, so it names none."""
        return {"polymarket": self.polymarket_cache}.get(venue)

    def source_of(self, venue: str) -> str | None:
        """The API `venue`'s catalog refreshes from (None: the catalog's own default)."""
        return {"polymarket": self.gamma_url}.get(venue)


def _at_least_5(_: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    # Raw SVI has five parameters: an expiry fitted from fewer distinct strikes is not determined.
    if value < 5:
        raise ValueError(
            f"{attribute.name}: expected an integer at least 5 (raw SVI has 5 parameters), got {value}"
        )


def _at_most_a_year(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    # The engine holds the refit intervals in integer ns; past a year they mean nothing anyway.
    if math.isfinite(value) and value > MAX_REFIT_INTERVAL_S:
        raise ValueError(
            f"{attribute.name}: expected at most a year ({MAX_REFIT_INTERVAL_S:.0f} s), got {value}"
        )


def _an_iv_cap(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    # Past 1000% (MAX_IV) IV^2 t can overflow the fit; at or under one vol point (MIN_IV, the least
    # IV the fit takes) no quote is left (engine/surface/model.py says why each).
    if math.isfinite(value) and value > 0 and not MIN_IV < value <= MAX_IV:
        raise ValueError(
            f"{attribute.name}: expected an IV above {MIN_IV:g} and at most {MAX_IV:g} (1000%), got {value}"
        )


def _not_below_min_refit(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    # A chain cannot be refitted more often than `min_refit_interval_s` allows.
    least = instance.min_refit_interval_s
    if least > MAX_REFIT_INTERVAL_S:
        return  # refused as such (one line: the key that is wrong)
    if math.isfinite(value) and value < least:
        raise ValueError(
            f"{attribute.name}: expected a number at least min_refit_interval_s ({least}), got {value}"
        )


@attrs.frozen
class SurfaceConfig:
    """`[surface]`: how the engine fits a volatility surface to each option chain a strategy asks
    for (`ctx.surface("BTC")`, engine.surface). The same fields as the engine's `SurfaceSettings`
    (cli.settings builds it of this table). `min_refit_interval_s`: event time between two fits
    of one chain (the market's clock in a backtest); `min_quotes`: distinct strikes an expiry needs
    to be fitted; `max_iv`: quotes with a mark IV at or above this fraction are dropped (Deribit's
    500% wings, at most 10: 1000%); `min_expiry_s`: expiries closer than this are skipped. A due
    refit happens only when the chain moved since its last fit: its options changed, a quote's mark
    IV moved by `min_iv_change` or more (absolute, a fraction: 0.002 is a fifth of a vol point), or
    a quote's forward by `min_forward_change` or more (relative); 0 for both: any new ticker refits.
    A chain quoted anew is refitted at least every `max_refit_interval_s` (at least
    `min_refit_interval_s`; both at most a year) however little it moved
    (engine.surface.SurfaceSettings says why each)."""

    min_refit_interval_s: float = attrs.field(default=5.0, validator=[_positive, _at_most_a_year])
    min_quotes: int = attrs.field(default=5, validator=_at_least_5)
    max_iv: float = attrs.field(default=5.0, validator=[_positive, _an_iv_cap])
    min_expiry_s: float = attrs.field(default=3600.0, validator=_positive)
    min_iv_change: float = attrs.field(default=0.002, validator=_not_negative)
    min_forward_change: float = attrs.field(default=0.0005, validator=_not_negative)
    max_refit_interval_s: float = attrs.field(
        default=60.0, validator=[_positive, _at_most_a_year, _not_below_min_refit]
    )


@attrs.frozen
class StrategyConfig:
    """`[[strategies]]`: `class` is an entry-point name (`gamma_scalp`) or `module:Class`;
    `params` is structured into the strategy's own `Params` class.

    `on_failure`: what happens to the strategy's open orders when it fails. A strategy fails
    when `on_start` or `on_stop` raises, or `on_event` raises something that is not an ordinary
    `Exception` (`SystemExit`, `KeyboardInterrupt`: a strategy's, never a real signal); an
    ordinary exception from `on_event` is logged and counted and the strategy goes on. A failed
    strategy is stopped (no more events, `on_stop` still called once), shown as failed in
    `tradingd status` and the backtest result, logged at `critical` with its traceback, and the
    other strategies go on. "cancel" (the default: nothing is left managing those orders, as
    the kill switch does) cancels its open orders; "leave" leaves them working (for orders
    meant to rest, e.g. a passive quote someone watches)."""

    name: str
    class_: str
    params: dict[str, Any] = attrs.field(factory=dict)
    risk: LimitsConfig = LimitsConfig()
    enabled: bool = True
    on_failure: Literal["cancel", "leave"] = "cancel"


@attrs.frozen
class Config:
    mode: Mode
    strategies: list[StrategyConfig]
    # `[venues.<name>]`: structured by the venue plugin's own `Settings` class (see the loader).
    venues: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    risk: LimitsConfig = LimitsConfig()
    backtest: BacktestConfig | None = None
    logging: LoggingConfig = LoggingConfig()
    catalog: CatalogConfig = CatalogConfig()
    recording: RecordingConfig = RecordingConfig()
    daemon: DaemonConfig = DaemonConfig()
    metrics: MetricsConfig | None = None  # None: no metrics served
    alerts: AlertsConfig | None = None  # None: no alerts
    surface: SurfaceConfig = SurfaceConfig()
