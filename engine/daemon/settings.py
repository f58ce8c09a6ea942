"""What `tradingd run` is given: typed settings, built by the command line from a config.

The engine reads no config file and imports nothing of `config/`: `tradingd.cli` loads the TOML
(`tradingd.config`), checks it, and hands the daemon a `DaemonSettings`, so the seam between the
two is typed and points one way (config -> cli -> engine).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import attrs

# `[alerts]`' options are the alerts room's own (one type, re-exported here with the settings).
from ..alerts.options import AlertOptions, WebhookFormat, WebhookOptions
from ..model.risk import RiskLimits
from ..runtime.strategy import FailurePolicy, Strategy
from ..surface.model import SurfaceSettings
from ..venue.catalog import CatalogSettings

__all__ = [
    "AlertOptions",
    "CatalogSettings",
    "DaemonOptions",
    "DaemonSettings",
    "MetricsOptions",
    "RecordingOptions",
    "WebhookFormat",
    "WebhookOptions",
]


@attrs.frozen
class DaemonOptions:
    """How the daemon keeps its state and stops (a config's `[daemon]` table, field for field).
    Relative paths are relative to the config file's folder; None takes systemd's directories
    (`daemon_paths`)."""

    state_dir: str | None = None
    journal: str | None = None
    journal_sync: Literal["normal", "full"] = "normal"
    status_file: str | None = None
    kill_switch_file: str | None = None
    shutdown_timeout_s: float = 10.0
    cancel_on_shutdown: bool = False
    send_queued_on_stop: bool = False
    foreign_orders: Literal["report", "cancel"] = "report"
    watchdog_stale_s: float = 120.0
    strategy_start_wait_s: float = 30.0
    position_check_interval_s: float = 300.0


@attrs.frozen
class RecordingOptions:
    """Record every raw frame of every venue connection beside trading (`[recording]`)."""

    directory: Path
    rotate_s: float = 3600.0
    rotate_bytes: int = 256 * 1024 * 1024


@attrs.frozen
class MetricsOptions:
    """Serve Prometheus metrics (`[metrics]`): `listen` is `host:port` (`[::1]:9464` for IPv6),
    checked by the config (engine.metrics `parse_listen`)."""

    listen: str = "127.0.0.1:9464"


@attrs.frozen
class DaemonSettings:
    """Everything the daemon runs: the strategies (built), each venue's settings (the plugin's
    own `Settings` instance), the risk limits, the catalogs and the daemon's own options."""

    config_path: Path  # relative paths are taken from its folder; the recording names it
    mode: Literal["live", "paper"]
    strategies: Sequence[Strategy]
    venues: Mapping[str, object]
    options: DaemonOptions = DaemonOptions()
    recording: RecordingOptions | None = None  # None: no recording beside trading
    engine_limits: RiskLimits = attrs.field(factory=RiskLimits)
    strategy_limits: Mapping[str, RiskLimits] = attrs.field(factory=dict)
    on_failure: Mapping[str, FailurePolicy] = attrs.field(factory=dict)
    catalogs: Mapping[str, CatalogSettings] = attrs.field(factory=dict)  # by venue
    metrics: MetricsOptions | None = None  # None: no metrics server (no thread, no port)
    alerts: AlertOptions | None = None  # None: no alerts
    surface: SurfaceSettings = attrs.field(factory=SurfaceSettings)  # `[surface]` (`ctx.surface`)
