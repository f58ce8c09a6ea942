"""`tradingd decode --venue V [PATH|-]`: decode raw frames, or recording lines (`<timestamp>
<frame>`), into normalized events, one JSON object a line on stdout. A file may be `.zst`/`.gz`
(a recording still being written is decoded up to its last complete block); `-` or no PATH reads
stdin. A line that cannot be decoded is named on stderr and skipped; then the exit status is 1."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import IO, Any

import orjson
import zstandard

from tradingd.engine.model.errors import MalformedFrame
from tradingd.engine.model.events import event_to_dict
from tradingd.engine.model.instruments import InstrumentRegistry
from tradingd.engine.store.recording import open_binary, parse_ts, unfinished
from tradingd.engine.venue.plugins import load_venue

from .exits import EXIT_FAILURE

__all__ = ["cmd_decode"]


class _Unreadable(Exception):
    """The rest of a data file cannot be read (a corrupt or truncated compressed file)."""


def _readable_lines(stream: IO[bytes], path: str) -> Iterator[bytes]:
    """The lines of `stream`; a file that breaks part way (corrupt or truncated `.zst`/`.gz`)
    ends the lines with `_Unreadable`, after every line read before it."""
    try:
        yield from stream
    except (OSError, EOFError, zstandard.ZstdError) as exc:
        raise _Unreadable(f"{path}: unreadable from here on ({type(exc).__name__}: {exc})") from None


def _default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return float(o)
    raise TypeError


def cmd_decode(args: argparse.Namespace) -> int:
    plugin = load_venue(args.venue)
    decoder = plugin.decoder(InstrumentRegistry())
    out = sys.stdout.buffer
    stream: IO[bytes] | None = None
    if args.path in (None, "-"):
        lines: Iterable[bytes] = sys.stdin.buffer
        close: Callable[[], None] = lambda: None  # noqa: E731
    else:
        stream, _ = open_binary(args.path)
        lines, close = _readable_lines(stream, args.path), stream.close
    bad = 0
    dumps = orjson.dumps
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
            unknown_before = decoder.stats.unknown_channel
            try:
                events = decoder.decode(frame, ts)
            except MalformedFrame as exc:
                bad += 1
                print(f"line {lineno}: malformed frame: {exc}", file=sys.stderr)
                continue
            if decoder.stats.unknown_channel != unknown_before:
                channel = decoder.last_unknown_channel
                print(f"line {lineno}: unknown channel {channel!r} (not decoded)", file=sys.stderr)
            for ev in events:
                out.write(dumps(event_to_dict(ev), default=_default) + b"\n")
        out.flush()
    except BrokenPipeError:
        return 0
    except _Unreadable as exc:
        out.flush()
        bad += 1
        print(f"line {lineno + 1}: {exc}", file=sys.stderr)
    finally:
        close()
    if stream is not None and unfinished(stream):
        print(
            f"{args.path}: ends inside a zstd frame (still being written, or cut short):"
            f" decoded up to its last complete block, line {lineno}",
            file=sys.stderr,
        )
    if bad:
        print(f"{bad} line(s) could not be decoded", file=sys.stderr)
        return EXIT_FAILURE
    return 0
