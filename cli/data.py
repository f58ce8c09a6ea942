"""`tradingd data inspect PATH --venue V [--format F] [--json]`: replay a data file (a recording,
a `tradingd record` directory, or another format the venue reads, e.g. Deribit's Tardis.dev CSV)
through its venue's decoder, without a strategy, and say what it holds: its time span, frames
(malformed, bad lines), events by type and instruments by kind. A terminal shows a progress
bar (in bytes of the file) while it reads; `--no-progress` hides it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import attrs
import orjson

from tradingd.engine.logs.setup import configure_logging
from tradingd.engine.model.errors import ConfigError, MalformedFrame
from tradingd.engine.model.instruments import InstrumentRegistry
from tradingd.engine.store.recorder import RecordingSet
from tradingd.engine.store.recording import RecordingReader, format_time
from tradingd.engine.venue.plugins import load_venue

from .progress import progress, wanted

__all__ = ["cmd_data_inspect"]

_PROGRESS_EVERY = 4096  # frames between two updates of the bar (a few hundred a second)


def _open_source(plugin: Any, path: Path, fmt: str) -> Any:
    if fmt == "recording":
        return RecordingSet(path, plugin.name) if path.is_dir() else RecordingReader(path)
    return plugin.open_data(path, fmt)


def cmd_data_inspect(args: argparse.Namespace) -> int:
    """Replay a data file through its venue's decoder (no strategy) and say what it holds."""
    configure_logging(args.log_level or "warning", args.log_format or "auto", sys.stderr)
    plugin = load_venue(args.venue)
    formats = ("recording", *plugin.data_formats)
    if args.format not in formats:
        raise ConfigError(f"{args.venue} reads no {args.format!r} data (it reads: {', '.join(formats)})")
    reader = _open_source(plugin, Path(args.path), args.format)
    registry = InstrumentRegistry()
    decoder = plugin.decoder(registry)
    frames = malformed = 0
    first: int | None = None
    last: int | None = None
    events: dict[str, int] = {}
    with progress(f"reading {Path(args.path).name}", enabled=wanted(args.no_progress)) as bar:
        for ts, frame in reader:
            frames += 1
            if frames % _PROGRESS_EVERY == 0:
                bar(reader.bytes_read, reader.size)  # every reader counts the bytes it has read
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
        # ISO 8601 UTC to the microsecond, as the logs' `ts` (not the recording lines' 7 decimals)
        "first": None if first is None else format_time(first),
        "last": None if last is None else format_time(last),
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
