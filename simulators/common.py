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

__all__ = [
    "CRYPTO_CHOICES",
    "DEFAULT_OPTIONS",
    "MAX_HOURS",
    "MAX_STRIKES",
    "VENUE_OPTIONS",
    "Feed",
    "dec",
    "parse_options",
    "venue_options",
    "write_sample",
]

DEFAULT_OPTIONS: Final[Mapping[str, Any]] = {"seed": 7, "hours": 2.0, "start": "2026-11-24T00:00:00Z"}
# Options only some venues' generators take, with their defaults (the defaults write the same
# bytes as before the option existed). deribit `strikes`: strikes per expiry (4: two each side of
# spot; more: a chain wide enough for a smile). polymarket `crypto`: "deribit" adds Bitcoin price
# markets priced from the BTC path of the deribit sample of the same seed and start, whose
# `strikes` it must be told (the path depends on the instruments the market quotes); with it,
# `mispriced` (a probability, -1 to 1; default 0, none): the "above" market nearest the money
# quoted that far from the model's probability from the start (polymarket/crypto.py), a gap to
# trade on at once.
VENUE_OPTIONS: Final[Mapping[str, Mapping[str, Any]]] = {
    "deribit": {"strikes": 4},
    "polymarket": {"crypto": "none", "strikes": 4, "mispriced": 0.0},
}
CRYPTO_CHOICES: Final = ("none", "deribit")
# Deribit instrument ids leave 99 per currency for options: 2 expiries x 2 rights x 24 strikes.
MAX_STRIKES: Final = 24
# The first option expiry of the Deribit and Derive markets is at least 3 days after the start
# and the model does not expire options, so a sample may not run longer than that.
MAX_HOURS: Final = 72.0
_MS: Final = 1_000_000
# Frames between two progress reports: about 30 a second at the generators' speed, and no
# measurable cost.
_PROGRESS_EVERY: Final = 1024


def parse_options(options: Mapping[str, Any], *, venue: str | None = None) -> tuple[int, float, int]:
    """(seed, hours, start in ns) from a config's `generate` table; every key is optional.
    `venue`'s own keys (`VENUE_OPTIONS`) are checked too (`venue_options` reads them); without a
    venue only the common ones are known. Raises ValueError naming unknown keys or the key whose
    value is wrong, in one line."""
    own = VENUE_OPTIONS.get(venue or "", {})
    unknown = sorted(str(k) for k in options if k not in DEFAULT_OPTIONS and k not in own)
    if unknown:
        known = ", ".join(sorted([*DEFAULT_OPTIONS, *own]))
        elsewhere = []
        for k in unknown:
            owners = [f"{v}'s" for v, keys in VENUE_OPTIONS.items() if k in keys and v != venue]
            if owners:
                elsewhere.append(f"{k} is {' and '.join(owners)}")
        hint = f"; {', '.join(elsewhere)}" if elsewhere else ""
        raise ValueError(f"unknown generator option(s) {', '.join(unknown)} (known: {known}{hint})")
    venue_options(options, venue)
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


def venue_options(options: Mapping[str, Any], venue: str | None) -> dict[str, Any]:
    """`venue`'s own generator options (`VENUE_OPTIONS`) from `options`, defaults filled in and
    checked; keys of no concern to `venue` are left to `parse_options`. ValueError in one line."""
    own = VENUE_OPTIONS.get(venue or "", {})
    merged = {key: options.get(key, default) for key, default in own.items()}
    if "strikes" in merged:
        strikes = merged["strikes"]
        if isinstance(strikes, bool) or not isinstance(strikes, int) or not 4 <= strikes <= MAX_STRIKES:
            raise ValueError(
                f"generator option strikes must be an integer from 4 to {MAX_STRIKES}, got {strikes!r}"
            )
    if "crypto" in merged:
        crypto = merged["crypto"]
        if crypto not in CRYPTO_CHOICES:
            choices = " or ".join(f'"{c}"' for c in CRYPTO_CHOICES)
            raise ValueError(f"generator option crypto must be {choices}, got {crypto!r}")
        if crypto == "none" and "strikes" in options:
            raise ValueError(
                "generator option strikes (of the deribit sample whose BTC path to follow) "
                'needs crypto = "deribit"'
            )
        if crypto == "none" and "mispriced" in options:
            raise ValueError(
                'generator option mispriced (of a Bitcoin price market) needs crypto = "deribit"'
            )
    if "mispriced" in merged:
        mispriced = merged["mispriced"]
        if (
            isinstance(mispriced, bool)
            or not isinstance(mispriced, int | float)
            or not -1.0 < mispriced < 1.0
        ):
            raise ValueError(
                f"generator option mispriced must be a probability between -1 and 1, got {mispriced!r}"
            )
    return merged


class Feed(Protocol):
    """A venue's synthetic stream: (receive time in ns, frame) for `hours` from its start."""

    def frames(self, hours: float) -> Iterable[tuple[int, bytes]]: ...


def write_sample(
    path: Path,
    options: Mapping[str, Any],
    create: Callable[..., Feed],
    progress: Callable[[float, float], None] | None = None,
    *,
    venue: str | None = None,
) -> int:
    """Write the recording of the feed `create(seed=, start_ns=, **venue options)` builds from
    `options` (`parse_options`, `venue_options` of `venue`) to `path` (zstd when it ends in
    `.zst`, gzip for `.gz`; written to a temporary file and renamed into place); return its
    number of frames. The same options give
    byte-identical files. `progress(done, total)`, if given, is told the market time written
    (seconds from the start, never decreasing) every `_PROGRESS_EVERY` frames and at the end."""
    seed, hours, start_ns = parse_options(options, venue=venue)
    feed = create(seed=seed, start_ns=start_ns, **venue_options(options, venue))
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
