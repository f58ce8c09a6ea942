"""The market time a backtest's data covers: the first and last receive time of its data files,
read without decoding a frame (a sweep's walk-forward plans its windows from it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import zstandard

from ..model.errors import DataError
from ..store.recorder import recording_files
from ..store.recording import open_binary, parse_ts, unfinished
from ..venue.spi import VenuePlugin
from .kernel import DataSource

__all__ = ["data_span"]

_BLOCK = 1 << 22


def _line_ts(line: bytes) -> int | None:
    """A recording line's receive time; None for a bare frame or a line that is none."""
    sp = line.find(b" ", 0, 40)
    if sp < 0:
        return None
    try:
        return parse_ts(line[:sp])
    except ValueError:
        return None


def _first_ts(lines: list[bytes]) -> int | None:
    for line in lines:
        ts = _line_ts(line)
        if ts is not None:
            return ts
    return None


def _file_span(path: Path) -> tuple[int, int] | None:
    """The first and last timestamped line of one recording file (`.zst`/`.gz` decompressed,
    nothing else parsed: only the first lines and each block's last are looked at). A torn last
    line of a `.zst` cut short is no line, as for the reader."""
    stream, _ = open_binary(path)
    first: int | None = None
    last: int | None = None
    tail = b""
    try:
        read = getattr(stream, "read1", stream.read)
        while True:
            chunk = read(_BLOCK)
            if not chunk:
                break
            buf = tail + chunk
            cut = buf.rfind(b"\n")
            if cut < 0:
                tail = buf
                continue
            tail = buf[cut + 1 :]
            lines = buf[:cut].split(b"\n")
            if first is None:
                first = _first_ts(lines)
            found = _first_ts(lines[::-1])
            if found is not None:
                last = found
        if tail and not unfinished(stream):
            found = _line_ts(tail)
            if found is not None:
                last = found
                if first is None:
                    first = found
    except (OSError, EOFError, zstandard.ZstdError) as exc:
        raise DataError(f"{path}: unreadable: {exc}") from exc
    finally:
        stream.close()
    if first is None or last is None:
        return None
    return first, last


def _recording_span(path: Path, venue: str) -> tuple[int, int] | None:
    """A recording file's span, or a `tradingd record` directory's: its first file with a frame
    and its last (the files are read in time order, as the kernel reads them)."""
    if not path.is_dir():
        return _file_span(path)
    files = recording_files(path, venue)
    if not files:
        raise DataError(f"{path}: no recording files of {venue} (expected {venue}-<time>.rec.zst)")
    first = next((s for s in map(_file_span, files) if s is not None), None)
    if first is None:
        return None
    last = next(s for s in map(_file_span, reversed(files)) if s is not None)
    return first[0], last[1]


def data_span(plugins: Mapping[str, VenuePlugin], sources: Sequence[DataSource]) -> tuple[int, int] | None:
    """The first and last receive time (ns since the epoch) of the frames of `sources`: the
    earliest first and the latest last over them; None when none holds a frame. Recordings are
    read without decoding (only their lines' timestamps); another format through its venue's
    plugin (`open_data`), whose receive times it gives. A file that cannot be read raises
    `DataError` naming it."""
    spans: list[tuple[int, int]] = []
    for src in sources:
        if src.format == "recording":
            span = _recording_span(src.path, src.venue)
        else:
            first: int | None = None
            last: int | None = None
            for ts, _ in plugins[src.venue].open_data(src.path, src.format):
                if ts is None:
                    continue
                if first is None:
                    first = ts
                last = ts
            span = None if first is None or last is None else (first, last)
        if span is not None:
            spans.append(span)
    if not spans:
        return None
    return min(s[0] for s in spans), max(s[1] for s in spans)
