"""Counts and durations as a person reads them, in the daemon's status line (systemd's STATUS=),
`tradingd status` and a backtest's summary and report: "1 strategy", "2 strategies", "3 min 05 s"."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal

__all__ = [
    "RATIO_MIN_SPAN_S",
    "duration",
    "equity_span_s",
    "instrument_text",
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
    symbol (`BTC-PERPETUAL`). Both come from a venue: a character that does not print (an escape
    sequence, a line break) shows as `?`, so that it cannot steer the terminal nor break the line."""
    symbol = key.split(":", 1)[-1]
    name = names.get(key)
    if name is None:
        return _printable(symbol)
    short = symbol if len(symbol) <= 12 else f"{symbol[:4]}...{symbol[-4:]}"
    return _printable(f"{name} ({short})")


def _printable(text: str) -> str:
    """`text` with each character that does not print (`str.isprintable`) shown as `?`."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else "?" for c in text)
