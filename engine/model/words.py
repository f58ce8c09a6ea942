"""Counts and durations as a person reads them, in the daemon's status line (systemd's STATUS=),
`tradingd status` and a backtest's summary and report: "1 strategy", "2 strategies", "3 min 05 s"."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping, Sequence
from decimal import Decimal

__all__ = [
    "RATIO_MIN_SPAN_S",
    "duration",
    "equity_span_s",
    "instrument_text",
    "line_text",
    "plural",
    "qty_text",
    "ratio_text",
]


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """`n` and its noun, singular for exactly one: `plural(1, "strategy", "strategies")` is
    "1 strategy". `nouns` where adding an "s" is wrong; thousands separated ("12,345 frames")."""
    return f"{n:,} {noun if n == 1 else (nouns or noun + 's')}"


def duration(seconds: float) -> str:
    """A span for people, to the precision that matters at its size: "0.4 s", "45 s",
    "3 min 05 s", "2 h 07 min", "3 d 4 h". Never cut: a long span gets a larger unit."""
    s = max(0.0, seconds)
    if s < 10:
        return f"{s:.1f} s"
    whole = int(s)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    if whole < 86_400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 86_400} d {whole % 86_400 // 3600} h"


# Annualised ratios from less than a day of data: two hours of one-minute changes scaled by
# sqrt(minutes per year) turn a few bad minutes into "-383", a figure no one can use (pyfolio,
# QuantStats and backtrader's SharpeRatio also want days of returns). People see them from one
# day of equity on; the JSON keeps the value always, with what it was computed from.
RATIO_MIN_SPAN_S = 86_400.0


def equity_span_s(curve: Sequence[tuple[int, float]] | Sequence[Sequence[float]]) -> float:
    """The replay time an equity curve covers, in seconds (0 for fewer than two samples)."""
    return (curve[-1][0] - curve[0][0]) / 1e9 if len(curve) >= 2 else 0.0


def ratio_text(value: float | None, span_s: float) -> str:
    """Sharpe or Sortino for people: n/a when undefined or from less than a day of equity."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if span_s < RATIO_MIN_SPAN_S:
        return "n/a (< 1 day)"
    return f"{value:,.2f}"


def qty_text(text: str) -> str:
    """A position for people: thousands separated, every digit kept (`-463,590.0`)."""
    try:
        return format(Decimal(text), ",f")
    except (ArithmeticError, ValueError):
        return text


def instrument_text(key: str, names: Mapping[str, str]) -> str:
    """An instrument of a report for people, from its `venue:symbol` key: the name a venue's
    catalog gave it (`names`, a report's `instrument_names`) with its id shortened after it
    (`will-btc-hit-100k / Yes (7123...4567)`: a Polymarket token id has 77 digits), else its
    symbol (`BTC-PERPETUAL`). Both come from a venue: shown through `line_text`, so that they
    can neither steer the terminal nor break the line."""
    symbol = key.split(":", 1)[-1]
    name = names.get(key)
    if name is None:
        return line_text(symbol)
    short = symbol if len(symbol) <= 12 else f"{symbol[:4]}...{symbol[-4:]}"
    return line_text(f"{name} ({short})")


# Format characters that reorder the text after them up to the end of a paragraph: the
# embeddings and overrides (U+202A-U+202E) and the isolates (U+2066-U+2069). On a terminal, or
# on a line of a summary, they turn what follows around (a figure read backwards).
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# What `line_text` shows as `?`: controls (C0, DEL and C1, among them ESC, CR, LF, tab, and
# NEL), the line and paragraph separators, and the lone halves of a surrogate pair (from a JSON
# `\ud800`: they cannot be written out as UTF-8, so printing one would raise).
_REPLACED = frozenset({"Cc", "Zl", "Zp", "Cs"})


def line_text(text: str) -> str:
    """Text from outside (a venue's name or id, a warning naming one) for one line of a terminal
    or a chart: each character that can steer a terminal or break the line shows as `?` (a
    control, ESC and the C1 controls among them; U+2028 and U+2029; a bidi embedding, override or
    isolate, U+202A-U+202E and U+2066-U+2069), and any other space (U+00A0, U+202F, U+3000) is a
    plain space. Everything else is kept as written: letters and marks, the joiners inside an
    emoji (U+200C, U+200D), the right-to-left and left-to-right marks (U+200E, U+200F), a soft
    hyphen."""
    if text.isprintable():  # nothing but letters, marks, symbols and " ": the usual case
        return text
    return "".join(_line_char(c) for c in text)


def _line_char(c: str) -> str:
    if c.isprintable():
        return c
    category = unicodedata.category(c)
    if category in _REPLACED or c in _BIDI_CONTROLS:
        return "?"
    if category == "Zs":
        return " "
    return c
