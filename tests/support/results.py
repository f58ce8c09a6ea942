"""Backtest results built by hand, for the tests of what reads them (the summary, the JSON and HTML
reports): every required field neutral (zero, empty, None), so that a test names only the values
it is about."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tradingd.engine.backtest.kernel import BacktestResult, StrategyResult


def strategy_result(**overrides: Any) -> StrategyResult:
    """A strategy's result that did nothing (no orders, no money, no curve) but for `overrides`."""
    fields: dict[str, Any] = {
        "orders": 0,
        "fills": 0,
        "rejected": 0,
        "errors": 0,
        "fees": Decimal(0),
        "realized_pnl": Decimal(0),
        "unrealized_pnl": Decimal(0),
        "net_pnl": Decimal(0),
        "max_drawdown": 0.0,
        "sharpe": None,
        "turnover": Decimal(0),
        "positions": {},
        "conflated": 0,
        "merged": 0,
        "dropped": 0,
        "equity_curve": (),
    }
    return StrategyResult(**(fields | overrides))


def backtest_result(strategies: dict[str, StrategyResult], **overrides: Any) -> BacktestResult:
    """A run of `strategies` that read nothing (no events, no frames, no time span) but for
    `overrides`."""
    fields: dict[str, Any] = {
        "events": 0,
        "frames": 0,
        "malformed_frames": 0,
        "bad_lines": 0,
        "duration_s": 0.0,
        "start_ns": None,
        "end_ns": None,
        "decoder_stats": {},
    }
    return BacktestResult(strategies=strategies, **(fields | overrides))
