"""What the venue simulators share that is no venue's: a generated sample's options
(`tradingd generate`'s `[generate]` table) and its writing, and reading a wire number as a
Decimal."""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Protocol

from tradingd.engine.store import RecordingWriter

__all__ = ["DEFAULT_OPTIONS", "MAX_HOURS", "Feed", "FeedMaker", "dec", "parse_options", "write_sample"]

DEFAULT_OPTIONS: Final[Mapping[str, Any]] = {"seed": 7, "hours": 2.0, "start": "2026-11-24T00:00:00Z"}
# The first option expiry of the Deribit and Derive markets is at least 3 days after the start
# and the model does not expire options, so a sample may not run longer than that.
MAX_HOURS: Final = 72.0
_MS: Final = 1_000_000
# Frames between two progress reports: about 30 a second at the generators' speed, and no
# measurable cost.
_PROGRESS_EVERY: Final = 1024


def parse_options(options: Mapping[str, Any]) -> tuple[int, float, int]:
    """(seed, hours, start in ns) from a config's `generate` table; every key is optional.
    Raises ValueError naming unknown keys or the key whose value is wrong."""
    unknown = sorted(str(k) for k in options if k not in DEFAULT_OPTIONS)
    if unknown:
        known = ", ".join(sorted(DEFAULT_OPTIONS))
        raise ValueError(f"unknown generator option(s) {', '.join(unknown)} (known: {known})")
    merged = {**DEFAULT_OPTIONS, **options}
    seed = merged["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"generator option seed must be an integer, got {seed!r}")
    hours = merged["hours"]
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not 0 < hours <= MAX_HOURS:
        raise ValueError(f"generator option hours must be a number in (0, {MAX_HOURS:g}], got {hours!r}")
    start = merged["start"]
    if not isinstance(start, str):
        raise ValueError(f"generator option start must be an ISO-8601 UTC string, got {start!r}")
    try:
        when = dt.datetime.fromisoformat(start)
    except ValueError:
        raise ValueError(f"generator option start is not an ISO-8601 time: {start!r}") from None
    if when.tzinfo is None:
        raise ValueError(f"generator option start must say its time zone (end in Z): {start!r}")
    # Whole milliseconds: the venues' timestamps are ms, and the stream's steps start here.
    start_ms = calendar.timegm(when.utctimetuple()) * 1000 + when.microsecond // 1000
    return seed, float(hours), start_ms * _MS


class Feed(Protocol):
    """A venue's synthetic stream: (receive time in ns, frame) for `hours` from its start."""

    def frames(self, hours: float) -> Iterable[tuple[int, bytes]]: ...


class FeedMaker(Protocol):
    """A feed class's `create`."""

    def __call__(self, *, seed: int, start_ns: int) -> Feed: ...


def write_sample(
    path: Path,
    options: Mapping[str, Any],
    create: FeedMaker,
    progress: Callable[[float, float], None] | None = None,
) -> int:
    """Write the recording of the feed `create(seed=, start_ns=)` builds from `options`
    (`parse_options`) to `path` (zstd when it ends in `.zst`, gzip for `.gz`; written to a
    temporary file and renamed into place); return its number of frames. The same options give
    byte-identical files. `progress(done, total)`, if given, is told the market time written
    (seconds from the start, never decreasing) every `_PROGRESS_EVERY` frames and at the end."""
    seed, hours, start_ns = parse_options(options)
    feed = create(seed=seed, start_ns=start_ns)
    total_s = hours * 3600.0
    with RecordingWriter(path, level=1) as writer:
        write = writer.write
        if progress is None:
            for ts, frame in feed.frames(hours):
                write(ts, frame)
        else:
            done_s = 0.0
            for n, (ts, frame) in enumerate(feed.frames(hours), 1):
                write(ts, frame)
                if n % _PROGRESS_EVERY == 0:
                    # Receive times are not sorted within a step: the furthest one reached.
                    done_s = max(done_s, min((ts - start_ns) / 1e9, total_s))
                    progress(done_s, total_s)
        count: int = writer.frames
    if progress is not None:
        progress(total_s, total_s)
    return count


def dec(value: Any) -> Decimal:
    """A wire number (a JSON number or a numeric string) as an exact Decimal: a float by its
    shortest repr, so 0.1 is Decimal("0.1")."""
    return Decimal(str(value))
