"""The daemon: `tradingd run`'s process around the live engine: signals, systemd notify and
watchdog, the status file, the kill switch, the journal and recorder it opens.

Depends on: model, venue, store, logs, runtime."""

from .service import Daemon, DaemonPaths, Notifier, book_health, daemon_paths, read_status, risk_limits

__all__ = ["Daemon", "DaemonPaths", "Notifier", "book_health", "daemon_paths", "read_status", "risk_limits"]
