"""The daemon: `tradingd run`'s process around the live engine: signals, systemd notify and
watchdog, the status file, the kill switch, the journal and recorder it opens; its typed
settings (`DaemonSettings`, built by the CLI from the config: the engine never reads config/).

Depends on: model, venue, store, logs, runtime, metrics, alerts, surface."""

from .service import Daemon, DaemonPaths, Notifier, book_health, daemon_paths, read_status, run_daemon
from .settings import (
    AlertOptions,
    DaemonOptions,
    DaemonSettings,
    MetricsOptions,
    RecordingOptions,
    WebhookOptions,
)

__all__ = [
    "AlertOptions",
    "Daemon",
    "DaemonOptions",
    "DaemonPaths",
    "DaemonSettings",
    "MetricsOptions",
    "Notifier",
    "RecordingOptions",
    "WebhookOptions",
    "book_health",
    "daemon_paths",
    "read_status",
    "run_daemon",
]
