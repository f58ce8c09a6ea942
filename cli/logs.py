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
above. `--since`/`--until` take an ISO-8601 time (UTC if no zone) or a duration ago (`10m`).

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
import datetime as dt
import os
import sys
from collections.abc import Iterator
from typing import Any

from tradingd.engine.logs.tail import (
    LEVELS,
    LogFilter,
    LogView,
    follow_file,
    parse_time,
    read_file,
    read_stream,
)

__all__ = ["add_log_commands"]

_EXIT_USAGE = 2
_EXIT_INTERRUPTED = 130
_EXAMPLES = """examples:
  journalctl -o cat -f -u tradingd | tradingd logs --level warning
  tradingd logs /var/log/tradingd/tradingd.log -f --strategy gamma_btc --event 'order.*'
  tradingd logs tradingd.log --since 2h --venue deribit --json | jq .client_order_id
  tradingd logs tradingd.log.2.gz --since 2026-11-24T06:00Z --until 2026-11-24T07:00Z
"""


def _time(text: str) -> dt.datetime:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _level(text: str) -> int:
    rank = LEVELS.get(text.lower())
    if rank is None:
        raise argparse.ArgumentTypeError(
            f"expected a level (debug, info, warning, error, critical), got {text!r}"
        )
    return rank


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a number of lines (0 or more), got {text!r}")
    return n


def _where(text: str) -> tuple[str, str]:
    key, sep, pattern = text.partition("=")
    key = key.strip()
    if not key:
        raise argparse.ArgumentTypeError(f"expected KEY=GLOB or KEY, got {text!r}")
    return key, pattern if sep else "*"


def add_log_commands(sub: Any) -> None:
    """Add `logs` to the `tradingd` parser's subparsers."""
    p = sub.add_parser(
        "logs",
        help="tail structured logs (a file, or stdin): filter, pretty-print",
        description="Read tradingd's JSON log lines from a file or stdin, keep the ones the "
        "filters accept, and print them pretty (or, with --json, unchanged).",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "path",
        nargs="?",
        metavar="PATH",
        help="a log file (.gz/.zst too), or - for stdin (the default when stdin is not a terminal)",
    )
    p.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="keep printing lines as they are appended (follows logrotate, like tail -F)",
    )
    p.add_argument("-n", "--lines", type=_count, metavar="N", help="start N lines before the end of the file")
    p.add_argument(
        "--level", type=_level, metavar="L", help="this level and above: debug, info, warning, error"
    )
    for name, what in (
        ("venue", "venue"),
        ("strategy", "strategy"),
        ("event", "event name, e.g. order.fill or 'order.*'"),
        ("instrument", "instrument, e.g. BTC-PERPETUAL or 'BTC-*'"),
    ):
        p.add_argument(
            f"--{name}",
            action="append",
            metavar=name[0].upper(),
            help=f"only this {what} (exact or a glob; repeat for any of several)",
        )
    p.add_argument(
        "--where",
        action="append",
        type=_where,
        metavar="KEY=GLOB",
        help="only lines whose KEY matches (KEY alone: that has KEY); e.g. client_order_id=gamma_btc-7",
    )
    p.add_argument(
        "--grep",
        action="append",
        metavar="TEXT",
        help="only lines containing TEXT (in the raw line; repeat for any of several)",
    )
    p.add_argument(
        "--since",
        type=_time,
        metavar="T",
        help="from this time: ISO-8601 (UTC if no zone), or 10m, 2h, 1d ago",
    )
    p.add_argument("--until", type=_time, metavar="T", help="up to this time (same forms as --since)")
    p.add_argument(
        "--json", action="store_true", help="print the kept lines unchanged (JSON lines, for pipelines)"
    )
    p.add_argument("--no-color", action="store_true", help="no colours even on a terminal")
    p.add_argument(
        "--no-text",
        action="store_true",
        help="hide lines that are not JSON objects (by default shown as they are: they may be a crash)",
    )
    p.set_defaults(func=cmd_logs)


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
    return code
