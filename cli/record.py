"""`tradingd record --config FILE --out DIR [--duration S]`: record the raw frames of the
configured subscriptions into DIR (hourly `.rec.zst` files and a `manifest.json`). The
strategies run in paper mode (their subscriptions are what is recorded; no order reaches a
venue, no credentials are needed). SIGINT/SIGTERM, or `--duration`, stop it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import attrs

from tradingd.config import load_config
from tradingd.engine.daemon.service import read_status, run_daemon
from tradingd.engine.logs.setup import configure_logging, reopen_logs, route_uncaught_exceptions
from tradingd.engine.model.errors import ConfigError
from tradingd.engine.model.words import plural
from tradingd.engine.store.recorder import SessionRecorder

from .exits import UsageError
from .settings import daemon_settings

__all__ = ["cmd_record"]


def cmd_record(args: argparse.Namespace) -> int:
    loaded = load_config(args.config)
    cfg = loaded.config
    if not loaded.venue_settings:
        raise ConfigError("no [venues.*] to record from", file=str(loaded.path), path="venues")
    if args.duration is not None and args.duration <= 0:
        raise UsageError(f"--duration: expected a positive number of seconds, got {args.duration:g}")
    # Market data only: the strategies run in paper mode (their subscriptions, fixed or chosen at
    # run time, are what the connections carry), no order reaches a venue, no credentials.
    # Its status file goes beside the recording, not over that of a daemon on the same config.
    out = Path(args.out).resolve()
    daemon = attrs.evolve(cfg.daemon, status_file=str(out / "status.json"))
    paper = attrs.evolve(loaded, config=attrs.evolve(cfg, mode="paper", daemon=daemon))
    # Likewise its log file: `[logging] file` is the daemon's (the tour's configs have one); the
    # recorder's paper orders would mix with the live ones there. It goes beside the recording.
    configure_logging(
        args.log_level or cfg.logging.level,
        args.log_format or cfg.logging.format,
        sys.stderr,
        path=None if loaded.log_file is None else out / "record.log",
    )
    route_uncaught_exceptions()
    recorder = SessionRecorder(
        out,
        rotate_s=cfg.recording.rotate_s,
        rotate_bytes=cfg.recording.rotate_bytes,
        config_path=loaded.path,
        strict=True,
    )
    settings = daemon_settings(paper)
    code = run_daemon(settings, recorder=recorder, stop_after_s=args.duration, reopen_logs=reopen_logs)
    manifest = recorder.manifest(final=True)
    for venue, v in manifest["venues"].items():
        print(
            f"{venue}: {v['frames']:,} frames in {len(v['files'])} file(s), "
            f"{v['dropped']:,} dropped -> {recorder.directory}",
            file=sys.stderr,
        )
    _say_unfilled(out / "status.json")
    return code


def _say_unfilled(status_file: Path) -> None:
    """Paper orders that could not fill for want of a book (the run's status file): the recording
    holds no book of those instruments either, so a backtest of it cannot fill them. Said at the
    end, where it is read, as well as in the log when it first happened (`paper.no_book`)."""
    try:
        unbooked = read_status(status_file).get("paper_no_book") or {}
    except (OSError, ValueError):
        return  # no status file written: nothing ran to say anything of
    for where, orders in unbooked.items():
        print(
            f"{where}: {plural(orders, 'paper order')} could not fill: no order book of it was received,"
            " so this recording holds none and a backtest of it cannot fill them either"
            " (subscribe its `book` channel)",
            file=sys.stderr,
        )
