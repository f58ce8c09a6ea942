"""Statistics of an equity curve, and a portfolio's from its strategies': what a sweep ranks
trials by when its objective names the `"total"` (every strategy together), and what a
walk-forward's stitched out-of-sample curve is measured with. The same definitions as each
strategy's in the backtest report (`backtest.sharpe_ratio`, `sortino_ratio`, `max_drawdown`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from ..backtest import max_drawdown, sharpe_ratio, sortino_ratio

# The strategies' statistics that add up across a portfolio (the report's names).
ADDITIVE = (
    "orders",
    "fills",
    "rejected",
    "errors",
    "filled_orders",
    "round_trips",
    "fees",
    "realized_pnl",
    "unrealized_pnl",
    "net_pnl",
    "turnover",
)


def curve_stats(curve: Sequence[tuple[int, float]], interval_s: float) -> dict[str, float | None]:
    """`net_pnl` (the curve's last value: equity is PnL from 0 at the start), `max_drawdown`,
    `sharpe` and `sortino` (annualised, from the changes between samples `interval_s` apart;
    None when undefined, as in the report)."""
    values = [v for _, v in curve]
    return {
        "net_pnl": values[-1] if values else 0.0,
        "max_drawdown": max_drawdown(values),
        "sharpe": sharpe_ratio(values, interval_s),
        "sortino": sortino_ratio(values, interval_s),
    }


def summed_curve(curves: Iterable[Sequence[tuple[int, float]]]) -> tuple[tuple[int, float], ...]:
    """The portfolio's equity curve: at every time any strategy's curve has a point, the sum of
    each strategy's latest value (0 before its first point: flat until it starts)."""
    curves = [c for c in curves if c]
    if not curves:
        return ()
    times = sorted({t for c in curves for t, _ in c})
    at = [0] * len(curves)
    last = [0.0] * len(curves)
    out: list[tuple[int, float]] = []
    for t in times:
        for i, c in enumerate(curves):
            while at[i] < len(c) and c[at[i]][0] <= t:
                last[i] = c[at[i]][1]
                at[i] += 1
        out.append((t, sum(last)))
    return tuple(out)


def total_stats(
    strategies: Mapping[str, Mapping[str, Any]], curve: Sequence[tuple[int, float]], interval_s: float
) -> dict[str, Any]:
    """The `"total"` entry of a trial's statistics: the additive ones summed (money exactly, as
    the report's floats of Decimals allow: summed as Decimal of their text), then the curve's."""
    out: dict[str, Any] = {}
    for name in ADDITIVE:
        values = [s[name] for s in strategies.values() if s.get(name) is not None]
        if all(isinstance(v, int) for v in values):
            out[name] = sum(values)
        else:
            out[name] = float(sum((Decimal(str(v)) for v in values), Decimal(0)))
    stats = curve_stats(curve, interval_s)
    # The curve's last value is the same net PnL sampled; the strategies' own sum is exact.
    stats.pop("net_pnl")
    out.update(stats)
    return out
