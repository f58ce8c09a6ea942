"""The `tradingd` command line (DESIGN.md, "command line").

Every command turns bad input into one line on stderr and a non-zero exit: 2 for a usage or
config error, 1 for a failure while running (a data file, a venue), 78 (`EX_CONFIG`) when a venue
refused the credentials at start (`tradingd run`: a wrong secret is not fixed by restarting, so
the systemd unit says `RestartPreventExitStatus=78`). `--traceback` shows the Python traceback as
well, for bug reports.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from tradingd.engine.model.errors import (
    ConfigError,
    CredentialsRefused,
    DataError,
    MalformedFrame,
    StrategyError,
    TradingError,
)
from tradingd.engine.model.events import event_to_dict

from .catalog import add_catalog_commands
from .data import add_data_commands
from .logs import add_log_commands
from .service import add_service_commands

__all__ = ["main"]

_EXIT_USAGE = 2
_EXIT_FAILURE = 1
EXIT_CREDENTIALS = 78  # sysexits.h EX_CONFIG; deploy/tradingd.service: RestartPreventExitStatus=78


class _UsageError(Exception):
    pass


def _limits(cfg: Any) -> Any:
    from tradingd.engine.daemon.service import risk_limits

    return risk_limits(cfg)


def _ensure_data(loaded: Any, err: Callable[[str], None]) -> None:
    """Synthesize missing data files that have a `generate` table (the bundled sample)."""
    from tradingd.engine.venue.plugins import load_venue

    bt = loaded.config.backtest
    for spec, path in zip(bt.data, loaded.data_paths, strict=True):
        if path.exists():
            continue
        if spec.generate is None or spec.format != "recording":
            raise DataError(f"data file {path} does not exist (add a `generate` table to synthesize it)")
        err(f"generating the sample recording {path} (first run only; deterministic, offline)...")
        t0 = time.perf_counter()
        try:
            frames = load_venue(spec.venue).generate_sample(path, spec.generate)
        except (ValueError, TypeError) as exc:
            raise ConfigError(str(exc), file=str(loaded.path), path="backtest.data.generate") from None
        err(f"  {frames:,} frames in {time.perf_counter() - t0:.1f} s")


def _cached_catalogs(loaded: Any, venues: set[str]) -> dict[str, Any]:
    """Catalogs for a backtest: as cached (never refreshed: a backtest does not depend on
    today's venue data), for the venues that have one and a cache on disk."""
    from tradingd.engine.venue.plugins import load_catalog_class

    out: dict[str, Any] = {}
    for venue in sorted(venues):
        cls = load_catalog_class(venue)
        if cls is None:
            continue
        configured = loaded.config.catalog.polymarket_cache if venue == "polymarket" else None
        path = loaded.path.parent / Path(configured).expanduser() if configured else None
        catalog = cls(path)
        if catalog.cache_path.exists():
            out[venue] = cls.from_cache(path)
    return out


def cmd_backtest(args: argparse.Namespace) -> int:
    import trio

    from tradingd.config import load_config
    from tradingd.engine.backtest.kernel import BacktestKernel, BacktestSettings, DataSource
    from tradingd.engine.backtest.report import print_summary
    from tradingd.engine.logs.setup import configure_logging
    from tradingd.engine.reports.html import write_run_reports
    from tradingd.engine.venue.plugins import load_venue

    loaded = load_config(args.config)
    cfg = loaded.config
    configure_logging(args.log_level or cfg.logging.level, args.log_format or cfg.logging.format, sys.stderr)
    if cfg.backtest is None:
        raise ConfigError("no [backtest] table", file=str(loaded.path), path="backtest")

    def err(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    _ensure_data(loaded, err)
    bt = cfg.backtest
    sources = [DataSource(d.venue, p, d.format) for d, p in zip(bt.data, loaded.data_paths, strict=True)]
    plugins = {s.venue: load_venue(s.venue) for s in sources}
    settings = BacktestSettings(
        latency_ms=bt.latency_ms,
        response_latency_ms=bt.response_latency_ms,
        equity_interval_s=bt.equity_interval_s,
        queue_ahead=bt.queue_ahead,
        mailbox_capacity=bt.mailbox_capacity,
    )
    progress_cm: Any = None
    progress_cb = None
    if sys.stderr.isatty() and not args.no_progress:
        from rich.progress import BarColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

        progress_cm = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            "[progress.percentage]{task.percentage:>3.0f}%",
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=True,
        )
        task = progress_cm.add_task("backtest", total=1)

        def progress_cb(done: int, total: int) -> None:
            progress_cm.update(task, completed=done, total=max(total, 1))

    kernel = BacktestKernel(
        plugins,
        sources,
        loaded.build_strategies(),
        settings,
        fee_overrides={s.venue: loaded.settings_of(s.venue).fees for s in sources},
        engine_limits=_limits(cfg.risk),
        strategy_limits={s.name: _limits(s.risk) for s in cfg.strategies if s.enabled},
        progress=progress_cb,
        catalogs=_cached_catalogs(loaded, {s.venue for s in sources}),
        on_failure={s.name: s.on_failure for s in cfg.strategies if s.enabled},
    )
    if progress_cm is not None:
        with progress_cm:
            result = trio.run(kernel.run)
    else:
        result = trio.run(kernel.run)
    print_summary(result, sys.stdout)
    if args.report:
        # The JSON report, then report.html and the PNGs beside it.
        written = write_run_reports(args.report, result)
        print(f"report written to {args.report} (and {', '.join(p.name for p in written)})", file=sys.stderr)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from tradingd.config import load_config
    from tradingd.engine.daemon.service import run_daemon
    from tradingd.engine.logs.setup import configure_logging, reopen_logs, route_uncaught_exceptions

    loaded = load_config(args.config)
    cfg = loaded.config
    if cfg.mode == "backtest":
        raise ConfigError(
            "mode is 'backtest': run it with `tradingd backtest`", file=str(loaded.path), path="mode"
        )
    log_file = None if cfg.logging.file is None else loaded.path.parent / cfg.logging.file
    configure_logging(
        args.log_level or cfg.logging.level,
        args.log_format or cfg.logging.format,
        sys.stdout,
        path=log_file,
    )
    # From here on every error is a (redacted) log line on stdout, even what is printed to stderr.
    route_uncaught_exceptions(stderr=True)
    return run_daemon(loaded, reopen_logs=reopen_logs)


def cmd_record(args: argparse.Namespace) -> int:
    import attrs

    from tradingd.config import load_config
    from tradingd.engine.daemon.service import run_daemon
    from tradingd.engine.logs.setup import configure_logging, reopen_logs, route_uncaught_exceptions
    from tradingd.engine.store.recorder import SessionRecorder

    loaded = load_config(args.config)
    cfg = loaded.config
    if not loaded.venue_settings:
        raise ConfigError("no [venues.*] to record from", file=str(loaded.path), path="venues")
    if args.duration is not None and args.duration <= 0:
        raise _UsageError(f"--duration: expected a positive number of seconds, got {args.duration:g}")
    # Market data only: the strategies run in paper mode (their subscriptions, fixed or chosen at
    # run time, are what the connections carry), no order reaches a venue, no credentials.
    # Its status file goes beside the recording, not over that of a daemon on the same config.
    out = Path(args.out).resolve()
    daemon = attrs.evolve(cfg.daemon, status_file=str(out / "status.json"))
    paper = attrs.evolve(loaded, config=attrs.evolve(cfg, mode="paper", daemon=daemon))
    log_file = None if cfg.logging.file is None else loaded.path.parent / cfg.logging.file
    configure_logging(
        args.log_level or cfg.logging.level,
        args.log_format or cfg.logging.format,
        sys.stderr,
        path=log_file,
    )
    route_uncaught_exceptions()
    recorder = SessionRecorder(
        out,
        rotate_s=cfg.recording.rotate_s,
        rotate_bytes=cfg.recording.rotate_bytes,
        config_path=loaded.path,
        strict=True,
    )
    code = run_daemon(paper, recorder=recorder, stop_after_s=args.duration, reopen_logs=reopen_logs)
    manifest = recorder.manifest(final=True)
    for venue, v in manifest["venues"].items():
        print(
            f"{venue}: {v['frames']:,} frames in {len(v['files'])} file(s), "
            f"{v['dropped']:,} dropped -> {recorder.directory}",
            file=sys.stderr,
        )
    return code


def cmd_simulate(args: argparse.Namespace) -> int:
    import signal

    import trio

    from tradingd.engine.logs.setup import configure_logging
    from tradingd.engine.sim.server import require_server
    from tradingd.engine.venue.plugins import load_venue

    plugin = load_venue(args.venue)
    simulate = getattr(plugin, "simulate", None)
    if simulate is None:
        raise _UsageError(f"there is no simulator for {args.venue} yet")
    require_server()  # one line naming the extra, before anything starts
    configure_logging(args.log_level or "info", args.log_format or "auto", sys.stderr)

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                binds = await nursery.start(
                    lambda task_status: simulate(
                        host=args.host, port=args.port, seed=args.seed, task_status=task_status
                    )
                )
                for line in plugin.simulator_banner(binds) if hasattr(plugin, "simulator_banner") else binds:
                    print(line, flush=True)
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break

    try:
        trio.run(main)
    except* OSError as group:
        exc = group.exceptions[0]
        while isinstance(exc, BaseExceptionGroup):
            exc = exc.exceptions[0]
        raise _UsageError(f"cannot listen on {args.host}:{args.port}: {exc}") from None
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from tradingd.config import load_config

    loaded = load_config(args.path)
    cfg = loaded.config
    data = ""
    if cfg.backtest is not None:
        missing = [
            str(p)
            for d, p in zip(cfg.backtest.data, loaded.data_paths, strict=True)
            if not p.exists() and d.generate is None
        ]
        if missing:
            raise DataError(f"{args.path}: data file(s) missing: {', '.join(missing)}")
        data = f", {len(loaded.data_paths)} data file(s)"
    strategies = ", ".join(f"{n} ({c.__name__})" for n, c in loaded.strategy_classes.items())
    print(f"{args.path}: OK: mode {cfg.mode}, strategies: {strategies}{data}")
    return 0


class _Unreadable(Exception):
    """The rest of a data file cannot be read (a corrupt or truncated compressed file)."""


def _readable_lines(stream: Any, path: str) -> Any:
    """The lines of `stream`; a file that breaks part way (corrupt or truncated `.zst`/`.gz`)
    ends the lines with `_Unreadable`, after every line read before it."""
    import zstandard

    try:
        yield from stream
    except (OSError, EOFError, zstandard.ZstdError) as exc:
        raise _Unreadable(f"{path}: unreadable from here on ({type(exc).__name__}: {exc})") from None


def cmd_decode(args: argparse.Namespace) -> int:
    from tradingd.engine.model.instruments import InstrumentRegistry
    from tradingd.engine.store.recording import open_binary, parse_ts, unfinished
    from tradingd.engine.venue.plugins import load_venue

    plugin = load_venue(args.venue)
    decoder = plugin.decoder(InstrumentRegistry())
    out = sys.stdout.buffer
    if args.path in (None, "-"):
        lines: Any = sys.stdin.buffer
        close: Callable[[], None] = lambda: None  # noqa: E731
    else:
        stream, _ = open_binary(args.path)
        lines, close = _readable_lines(stream, args.path), stream.close
    bad = 0
    dumps = orjson.dumps

    def default(o: Any) -> Any:
        if isinstance(o, Decimal):
            return float(o)
        raise TypeError

    lineno = 0
    try:
        for lineno, raw in enumerate(lines, 1):
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            if not line[:1].isdigit():  # a bare frame (JSON, or a text frame like Polymarket's PONG)
                ts, frame = time.time_ns(), line
            else:
                sp = line.find(b" ")
                try:
                    if sp < 0:
                        raise ValueError("expected a frame or '<timestamp> <frame>'")
                    ts, frame = parse_ts(line[:sp]), line[sp + 1 :]
                except ValueError as exc:
                    bad += 1
                    print(f"line {lineno}: not a frame or recording line: {exc}", file=sys.stderr)
                    continue
            unknown_before = getattr(decoder.stats, "unknown_channel", 0)
            try:
                events = decoder.decode(frame, ts)
            except MalformedFrame as exc:
                bad += 1
                print(f"line {lineno}: malformed frame: {exc}", file=sys.stderr)
                continue
            if decoder.stats.unknown_channel != unknown_before:
                channel = getattr(decoder, "last_unknown_channel", None)
                print(f"line {lineno}: unknown channel {channel!r} (not decoded)", file=sys.stderr)
            for ev in events:
                out.write(dumps(event_to_dict(ev), default=default) + b"\n")
        out.flush()
    except BrokenPipeError:
        return 0
    except _Unreadable as exc:
        out.flush()
        bad += 1
        print(f"line {lineno + 1}: {exc}", file=sys.stderr)
    finally:
        close()
    if args.path not in (None, "-") and unfinished(stream):
        print(
            f"{args.path}: ends inside a zstd frame (still being written, or cut short):"
            f" decoded up to its last complete block, line {lineno}",
            file=sys.stderr,
        )
    if bad:
        print(f"{bad} line(s) could not be decoded", file=sys.stderr)
        return _EXIT_FAILURE
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from tradingd.engine.venue.plugins import load_venue

    plugin = load_venue(args.venue)
    options: dict[str, Any] = {}
    if args.hours is not None:
        options["hours"] = args.hours
    if args.seed is not None:
        options["seed"] = args.seed
    if args.start is not None:
        options["start"] = args.start
    t0 = time.perf_counter()
    try:
        frames = plugin.generate_sample(Path(args.out), options)
    except (ValueError, TypeError) as exc:
        raise _UsageError(str(exc)) from None
    print(f"wrote {frames:,} frames to {args.out} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tradingd",
        description="A trio trading daemon: many strategies, one WebSocket per venue, "
        "the same strategy code live and in backtests.",
    )
    p.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="override the config's level"
    )
    p.add_argument(
        "--log-format", choices=["auto", "json", "pretty"], help="override the config's log format"
    )
    p.add_argument(
        "--traceback", action="store_true", help="show Python tracebacks on errors (for bug reports)"
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    b = sub.add_parser("backtest", help="replay the configured recordings through the strategies")
    b.add_argument("--config", required=True, help="the TOML config (mode and [backtest] data)")
    b.add_argument(
        "--report", help="write the JSON report here, and report.html with its PNG charts beside it"
    )
    b.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    b.set_defaults(func=cmd_backtest)

    d = sub.add_parser("decode", help="decode raw frames (or recording lines) into normalized JSON events")
    d.add_argument("--venue", required=True, help="the venue whose frames these are (e.g. deribit)")
    d.add_argument("path", nargs="?", help="a file (.zst/.gz recognised) or - for stdin (the default)")
    d.set_defaults(func=cmd_decode)

    c = sub.add_parser("check-config", help="validate a config file; exit 0 or name the bad key")
    c.add_argument("path")
    c.set_defaults(func=cmd_check_config)

    g = sub.add_parser("generate", help="write a synthetic recording (deterministic, offline)")
    g.add_argument("--venue", required=True)
    g.add_argument("--out", required=True, help="output file (.zst or .gz compresses)")
    g.add_argument("--hours", type=float)
    g.add_argument("--seed", type=int)
    g.add_argument("--start", help="ISO-8601 UTC start time, e.g. 2026-11-24T00:00:00Z")
    g.set_defaults(func=cmd_generate)

    r = sub.add_parser("run", help="the daemon: live or paper trading, as the config's mode says")
    r.add_argument("--config", required=True, help="the TOML config (mode = live or paper)")
    r.set_defaults(func=cmd_run)

    rc = sub.add_parser(
        "record",
        help="record the raw frames of the configured subscriptions (strategies run in paper mode)",
        description="Connect to the configured venues, run the configured strategies in paper mode "
        "(their subscriptions are what is recorded; no order reaches a venue), and write every raw "
        "frame into DIR as hourly .rec.zst files with a manifest.json. SIGINT/SIGTERM stop it.",
    )
    rc.add_argument("--config", required=True, help="a TOML config with [venues.*] and strategies")
    rc.add_argument("--out", required=True, metavar="DIR", help="the recording directory")
    rc.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long")
    rc.set_defaults(func=cmd_record)

    m = sub.add_parser("simulate", help="run a local simulator of a venue on 127.0.0.1")
    m.add_argument("venue", help="the venue to simulate (e.g. deribit)")
    m.add_argument("--port", type=int, default=8765)
    m.add_argument("--host", default="127.0.0.1", help="the address to listen on (loopback by default)")
    m.add_argument("--seed", type=int, default=7, help="the synthetic market's seed")
    m.set_defaults(func=cmd_simulate)

    # -- more commands register here (one call each) -----------------------------------------
    add_catalog_commands(sub)
    add_data_commands(sub)
    add_log_commands(sub)
    add_service_commands(sub)
    return p


def _report(exc: BaseException | None, message: str) -> None:
    """One line for the user on stderr. Once the command's output is the structured log (the
    daemon), it is also a log line, with its traceback redacted like any other (never raw text),
    and the plain line goes to the real stderr (`sys.stderr` then turns text into log lines):
    the line a person reads in `systemctl status` or a terminal."""
    from tradingd.engine.logs.setup import uncaught_exceptions_routed

    if uncaught_exceptions_routed():
        import structlog

        fields: dict[str, Any] = {"message": message}
        if exc is not None:
            fields["error"] = type(exc).__name__
            fields["exc_info"] = exc
        structlog.get_logger("tradingd").critical("tradingd.exit_on_error", **fields)
        print(f"tradingd: {message}", file=sys.__stderr__ or sys.stderr, flush=True)
        return
    print(f"tradingd: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return _EXIT_USAGE
    try:
        code: int = args.func(args)
        return code
    except KeyboardInterrupt:
        _report(None, "interrupted")
        return 130
    except (ConfigError, _UsageError, StrategyError) as exc:
        if args.traceback:
            raise
        _report(None, f"error: {exc}")
        return _EXIT_USAGE
    except CredentialsRefused as exc:
        if args.traceback:
            raise
        _report(None, f"error: {exc}")  # names what to check, never a value
        return EXIT_CREDENTIALS
    except TradingError as exc:
        if args.traceback:
            raise
        _report(None, f"error: {exc}")
        return _EXIT_FAILURE
    except Exception as exc:  # never a raw traceback for the user; --traceback for the detail
        if args.traceback:
            raise
        from tradingd.engine.logs.setup import uncaught_exceptions_routed

        if uncaught_exceptions_routed():  # the daemon: the traceback goes to the log, redacted
            _report(exc, f"internal error: {type(exc).__name__}")
        else:
            _report(None, f"internal error: {exc!r} (run with --traceback for details)")
        return _EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
