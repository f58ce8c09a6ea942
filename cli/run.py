"""`tradingd run --config FILE`: the daemon. Live or paper trading, as the config's `mode`
says, until SIGTERM/SIGINT; logs are the structured log on stdout (and the config's log file),
SIGHUP reopens that file. Exit 78 when a venue refused the credentials at start."""

from __future__ import annotations

import argparse
import sys

from tradingd.config import load_config
from tradingd.engine.daemon.service import run_daemon
from tradingd.engine.logs.setup import configure_logging, reopen_logs, route_uncaught_exceptions
from tradingd.engine.model.errors import ConfigError

from .settings import daemon_settings

__all__ = ["cmd_run"]


def cmd_run(args: argparse.Namespace) -> int:
    loaded = load_config(args.config)
    cfg = loaded.config
    if cfg.mode == "backtest":
        raise ConfigError(
            "mode is 'backtest': run it with `tradingd backtest`", file=str(loaded.path), path="mode"
        )
    configure_logging(
        args.log_level or cfg.logging.level,
        args.log_format or cfg.logging.format,
        sys.stdout,
        path=loaded.log_file,
    )
    # From here on every error is a (redacted) log line on stdout, even what is printed to stderr.
    route_uncaught_exceptions(stderr=True)
    return run_daemon(daemon_settings(loaded), reopen_logs=reopen_logs)
