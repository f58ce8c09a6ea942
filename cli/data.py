"""Commands about data and results: `tradingd report RUN_DIR` and `tradingd data inspect PATH`.

Registered by `add_data_commands(sub)` from `engine/_cli.py`; errors are the CLI's (one line,
non-zero exit).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import attrs
import orjson

__all__ = ["add_data_commands"]


def _logging(args: argparse.Namespace) -> None:
    from tradingd.engine.logs.setup import configure_logging

    configure_logging(args.log_level or "warning", args.log_format or "auto", sys.stderr)


def cmd_report(args: argparse.Namespace) -> int:
    from tradingd.engine.reports.html import render_run

    _logging(args)
    for path in render_run(args.run):
        print(path)
    return 0


def _open_source(plugin: Any, path: Path, fmt: str) -> Any:
    from tradingd.engine.store.recorder import RecordingSet
    from tradingd.engine.store.recording import RecordingReader

    if fmt == "recording":
        return RecordingSet(path, plugin.name) if path.is_dir() else RecordingReader(path)
    return plugin.open_data(path, fmt)


def cmd_data_inspect(args: argparse.Namespace) -> int:
    """Replay a data file through its venue's decoder (no strategy) and say what it holds."""
    from tradingd.engine.model.errors import ConfigError, MalformedFrame
    from tradingd.engine.model.instruments import InstrumentRegistry
    from tradingd.engine.store.recording import format_ts
    from tradingd.engine.venue.plugins import load_venue

    _logging(args)
    plugin = load_venue(args.venue)
    formats = ("recording", *getattr(plugin, "data_formats", ()))
    if args.format not in formats:
        raise ConfigError(f"{args.venue} reads no {args.format!r} data (it reads: {', '.join(formats)})")
    reader = _open_source(plugin, Path(args.path), args.format)
    registry = InstrumentRegistry()
    decoder = plugin.decoder(registry)
    frames = malformed = 0
    first: int | None = None
    last: int | None = None
    events: dict[str, int] = {}
    for ts, frame in reader:
        frames += 1
        if ts is not None:
            first = ts if first is None else first
            last = ts
        try:
            got = decoder.decode(frame, ts or 0)
        except MalformedFrame:
            malformed += 1
            continue
        for ev in got:
            events[ev.type] = events.get(ev.type, 0) + 1
    kinds: dict[str, int] = {}
    for inst in registry:
        kinds[inst.kind.value] = kinds.get(inst.kind.value, 0) + 1
    source_stats: Any = getattr(reader, "stats", None)
    info = {
        "path": str(args.path),
        "venue": args.venue,
        "format": args.format,
        "first": None if first is None else format_ts(first),
        "last": None if last is None else format_ts(last),
        "frames": frames,
        "malformed_frames": malformed,
        "bad_lines": reader.bad_lines,
        "events": dict(sorted(events.items())),
        "instruments": dict(sorted(kinds.items())),
        "source": attrs.asdict(source_stats) if attrs.has(type(source_stats)) else None,
    }
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(info, option=orjson.OPT_INDENT_2) + b"\n")
        return 0
    print(f"{info['path']} ({args.venue}, {args.format}): {info['first']} -> {info['last']}")
    print(f"  frames {frames:,} (malformed {malformed:,}, bad lines {reader.bad_lines:,})")
    print("  events: " + (", ".join(f"{k} {n:,}" for k, n in info["events"].items()) or "none"))
    print("  instruments: " + (", ".join(f"{k} {n:,}" for k, n in info["instruments"].items()) or "none"))
    if info["source"]:
        print("  source: " + ", ".join(f"{k} {v:,}" for k, v in info["source"].items()))
    return 0


def add_data_commands(sub: Any) -> None:
    """Add `report` and `data` to the `tradingd` sub-command parser."""
    r = sub.add_parser(
        "report",
        help="draw a backtest's HTML and PNG report again from its JSON report",
        description="Reads RUN_DIR/report.json (or the JSON file named) and writes report.html "
        "(self-contained) and the PNG charts beside it.",
    )
    r.add_argument("run", metavar="RUN_DIR", help="a run directory holding report.json, or a JSON report")
    r.set_defaults(func=cmd_report)

    d = sub.add_parser("data", help="data files for backtests: what one holds")
    dsub = d.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    i = dsub.add_parser(
        "inspect",
        help="replay a data file through its venue's decoder and say what it holds",
        description="Recordings (a file, or a `tradingd record` directory) and the venue's other "
        "formats (Deribit: Tardis.dev CSV files, `--format tardis`).",
    )
    i.add_argument("path", help="a data file or directory")
    i.add_argument("--venue", required=True, help="the venue whose data it is (e.g. deribit)")
    i.add_argument("--format", default="recording", help="recording (default) or a venue format, e.g. tardis")
    i.add_argument("--json", action="store_true", help="print JSON")
    i.set_defaults(func=cmd_data_inspect)
