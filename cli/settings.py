"""The engine's typed settings, made of a loaded config: the one place where `config/`'s
classes (the TOML as written) become the engine's (what it runs). The engine reads no config."""

from __future__ import annotations

from pathlib import Path

import attrs

from tradingd.config import (
    AlertsConfig,
    CatalogConfig,
    DaemonConfig,
    LimitsConfig,
    LoadedConfig,
    SurfaceConfig,
)
from tradingd.engine.daemon.settings import (
    AlertOptions,
    DaemonOptions,
    DaemonSettings,
    MetricsOptions,
    RecordingOptions,
    WebhookOptions,
)
from tradingd.engine.model.risk import Limits, RiskLimits
from tradingd.engine.surface import SurfaceSettings
from tradingd.engine.venue.catalog import CatalogSettings
from tradingd.engine.venue.plugins import available_venues

__all__ = [
    "alert_options",
    "catalog_settings",
    "daemon_options",
    "daemon_settings",
    "risk_limits",
    "surface_settings",
]


def _limits(c: object) -> Limits:
    # `[risk]` and its per-instrument tables carry a subset of the engine's limits, by name.
    return Limits(**{f.name: getattr(c, f.name, None) for f in attrs.fields(Limits)})


def risk_limits(cfg: LimitsConfig) -> RiskLimits:
    """A `[risk]` table as the engine's limits."""
    return RiskLimits(default=_limits(cfg), instruments={k: _limits(v) for k, v in cfg.instruments.items()})


def surface_settings(cfg: SurfaceConfig) -> SurfaceSettings:
    """`[surface]` as the engine's settings (the same fields, one for one)."""
    return SurfaceSettings(**attrs.asdict(cfg, recurse=False))


def daemon_options(cfg: DaemonConfig) -> DaemonOptions:
    """`[daemon]` as the daemon's options (the same fields, one for one)."""
    return DaemonOptions(**attrs.asdict(cfg, recurse=False))


def alert_options(cfg: AlertsConfig) -> AlertOptions:
    """`[alerts]` as the daemon's options, checked by the config already. `url_file` stays as
    written: the notifier reads a relative one from `DaemonSettings.config_path`'s folder (`~`
    expanded), the one place that resolves it."""
    hooks = tuple(
        WebhookOptions(format=h.format, url_env=h.url_env, url_file=h.url_file) for h in cfg.webhooks
    )
    fields = attrs.asdict(cfg, recurse=False)
    fields["webhooks"] = hooks
    return AlertOptions(**fields)


def catalog_settings(catalog: CatalogConfig, base: Path, venue: str) -> CatalogSettings:
    """`[catalog]` for one venue's catalog. The cache path is taken as `tradingd catalog` takes
    it: relative to the config file's folder `base`, `~` expanded (a daemon's working directory
    is `/` under systemd)."""
    configured = catalog.cache_of(venue)
    return CatalogSettings(
        cache=None if not configured else base / Path(configured).expanduser(),
        refresh_after_s=catalog.refresh_after_s,
        source_url=catalog.source_of(venue),
    )


def daemon_settings(loaded: LoadedConfig) -> DaemonSettings:
    """What `tradingd run` (and `tradingd record`) runs, made of a loaded live or paper config."""
    cfg = loaded.config
    if cfg.mode == "backtest":
        raise ValueError("a backtest config does not run as a daemon")
    base = loaded.path.parent
    rec = cfg.recording
    enabled = [s for s in cfg.strategies if s.enabled]
    return DaemonSettings(
        config_path=loaded.path,
        mode=cfg.mode,
        strategies=loaded.build_strategies(),
        venues=dict(loaded.venue_settings),
        options=daemon_options(cfg.daemon),
        recording=None
        if not rec.enabled
        else RecordingOptions(base / rec.dir, rotate_s=rec.rotate_s, rotate_bytes=rec.rotate_bytes),
        engine_limits=risk_limits(cfg.risk),
        strategy_limits={s.name: risk_limits(s.risk) for s in enabled},
        on_failure={s.name: s.on_failure for s in enabled},
        metrics=None if cfg.metrics is None else MetricsOptions(listen=cfg.metrics.listen),
        alerts=None if cfg.alerts is None else alert_options(cfg.alerts),
        surface=surface_settings(cfg.surface),
        # Every venue the engine may connect: a venue a strategy subscribes to needs no table of
        # its own, and its catalog still reads `[catalog]`.
        catalogs={
            venue: catalog_settings(cfg.catalog, base, venue)
            for venue in set(loaded.venue_settings) | set(available_venues())
        },
    )
