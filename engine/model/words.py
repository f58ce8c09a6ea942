"""Counts and durations as a person reads them, in the daemon's status line (systemd's STATUS=),
`tradingd status` and a backtest's summary and report: "1 strategy", "2 strategies", "3 min 05 s"."""

from __future__ import annotations

__all__ = ["duration", "plural"]


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
