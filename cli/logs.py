"""`tradingd logs`: tail, filter and pretty-print the daemon's structured logs (DESIGN.md,
command line).

    tradingd logs [PATH|-] [-f] [-n N] [--level L] [--venue V] [--strategy S] [--event E]
                  [--instrument I] [--where KEY=GLOB] [--grep TEXT] [--since T] [--until T]
                  [--json] [--no-color] [--no-text]

PATH is a log file (`.gz`/`.zst` are read too) or `-` for stdin; without PATH, stdin is read
when it is not a terminal (`journalctl -o cat -f -u tradingd | tradingd logs --level warning`).
`--follow` keeps reading a file as it grows, across logrotate (like `tail -F`); stdin is always
read as a stream, each line printed as it arrives.

Filters: every given filter must hold; a repeated one means any of its values. `--event`,
`--venue`, `--strategy`, `--instrument` and `--where KEY=GLOB` take exact text or a glob
(`order.*`, `BTC-*`); `--where KEY` alone requires the key. `--level` keeps that level and
above. `--since`/`--until` take an ISO-8601 time (UTC if no zone) or a duration ago (`10m`);
a backtest's lines carry the replay's market time (`"clock": "sim"`): give them market times.

Output: pretty (the daemon's own console look; colours on a terminal unless `--no-color` or
NO_COLOR is set), or `--json`: the kept lines' original bytes, unchanged, so `tradingd logs`
chains with itself, jq or grep. Lines that are not JSON objects (a traceback printed by
something else) are shown as they are in pretty mode (`--no-text` hides them) and left out of
`--json` output, with their count on stderr.

Exit status: 0 (also when the reader of the output goes away: `tradingd logs ... | head`),
1 the file cannot be read, 2 usage, 130 interrupted (Ctrl-C ends `--follow`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator

from tradingd.engine.logs.tail import (
    LogFilter,
    LogView,
    follow_file,
    read_file,
    read_stream,
)

__all__ = ["cmd_logs"]

_EXIT_USAGE = 2
_EXIT_INTERRUPTED = 130


def _filter(args: argparse.Namespace) -> LogFilter:
    fields: dict[str, list[str]] = {}
    for name in ("venue", "strategy", "event", "instrument"):
        for value in getattr(args, name) or ():
            fields.setdefault(name, []).append(value)
    for key, pattern in args.where or ():
        fields.setdefault(key, []).append(pattern)
    return LogFilter(
        min_level=args.level, fields=fields, grep=args.grep or (), since=args.since, until=args.until
    )


def _usage(message: str) -> int:
    print(f"tradingd: error: logs: {message}", file=sys.stderr)
    return _EXIT_USAGE


def _quiet_stdout() -> None:
    """The reader of stdout went away: point fd 1 at /dev/null so the interpreter's final
    flush does not print a BrokenPipeError of its own."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real fd (captured in tests): nothing to do
        pass


def cmd_logs(args: argparse.Namespace) -> int:
    try:
        flt = _filter(args)
    except ValueError as exc:
        return _usage(str(exc))
    path = args.path
    if path is None:
        if sys.stdin is None or sys.stdin.isatty():
            return _usage("give a log file, or pipe logs in (journalctl -o cat -u tradingd | tradingd logs)")
        path = "-"
    out = sys.stdout.buffer
    colors = not args.json and not args.no_color and "NO_COLOR" not in os.environ and sys.stdout.isatty()
    view = LogView(out, flt, json=args.json, colors=colors, text=not args.no_text)

    def notice(message: str) -> None:
        print(f"tradingd logs: {message}", file=sys.stderr, flush=True)

    batches: Iterator[list[bytes]]
    if path == "-":
        if args.lines is not None:
            return _usage("--lines needs a file (stdin is read as a stream)")
        batches = read_stream(sys.stdin.buffer)
    elif args.follow:
        if path.endswith((".gz", ".zst")):
            return _usage(f"cannot follow a compressed file ({path}); drop --follow")
        batches = follow_file(path, lines=args.lines, notice=notice)
    else:
        batches = read_file(path, lines=args.lines)
    code = 0
    try:
        for batch in batches:
            view.feed(batch)
            out.flush()
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except KeyboardInterrupt:
        code = _EXIT_INTERRUPTED
        try:
            out.flush()
        except BrokenPipeError:
            _quiet_stdout()
    finally:
        if hasattr(batches, "close"):
            batches.close()
    if args.json and view.not_json:
        notice(f"{view.not_json:,} line(s) were not JSON log objects (left out of the --json output)")
    if flt.timed and not view.lines_shown and view.sim_first is not None:
        notice(
            f"no line in that time window: this log's times are simulated (a backtest's market time,"
            f" clock=sim), from {view.sim_first} to {view.sim_last}"
        )
    return code
