"""The backtest report (DESIGN.md, "backtest report") and the summary printed after a run.

The JSON has `events`, `duration_s`, and per strategy `orders`, `fills`, `fees`, `realized_pnl`,
`unrealized_pnl`, `max_drawdown`, `sharpe`, plus what a reader needs to trust them (frames,
malformed frames, rejections, strategy errors, conflation counts, turnover, open positions, the
equity curve), the trading statistics (`sortino`, `round_trips`, `win_rate`, `avg_holding_s`,
`filled_orders`, `fill_ratio`), `funding` and `waiting_fills` where not zero, and, under
`series`, what the charts of the HTML report are drawn from (equity, positions and marks over
time, every fill; a fill's fee in USD is null while no USD rate is known for it), so
`tradingd report RUN_DIR` can draw them again from the JSON alone. `warnings` lists, one line
each, what made a strategy or a data file do nothing (kernel module docstring). Money is USD. Apart from
`duration_s`, the same inputs give the same bytes.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import orjson

from ..store.recording import format_ts
from .kernel import BacktestResult

__all__ = ["print_summary", "report_dict", "write_report"]


def _r(x: float | Decimal) -> float:
    """A number of the JSON contract: a number (money is Decimal in the engine, a JSON number
    here, to the micro-dollar)."""
    return round(float(x), 6)


def _opt_r(x: float | Decimal | None) -> float | None:
    return None if x is None else _r(x)


def _opt(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else round(x, digits)


def _series(series: Any) -> dict[str, Any]:
    return {
        "step_s": series.step_s,
        "ts": list(series.ts),
        "equity": [_r(x) for x in series.equity],
        "positions": {k: [_r(x) for x in v] for k, v in series.positions.items()},
        "prices": {k: [_opt(x, 10) for x in v] for k, v in series.prices.items()},
        "fills": [
            [f.ts, f.instrument, f.side, f.price, f.size, _opt_r(f.fee_usd), f.liquidity]
            for f in series.fills
        ],
        "fills_not_kept": series.fills_dropped,
    }


def report_dict(result: BacktestResult, *, include_curves: bool = True) -> dict[str, Any]:
    strategies: dict[str, Any] = {}
    for name, s in result.strategies.items():
        entry: dict[str, Any] = {
            "orders": s.orders,
            "fills": s.fills,
            "rejected": s.rejected,
            "errors": s.errors,
            "fees": _r(s.fees),
            "realized_pnl": _r(s.realized_pnl),
            "unrealized_pnl": _r(s.unrealized_pnl),
            "net_pnl": _r(s.net_pnl),
            "max_drawdown": _r(s.max_drawdown),
            "sharpe": None if s.sharpe is None else round(s.sharpe, 6),
            "sortino": _opt(s.sortino),
            "round_trips": s.round_trips,
            "win_rate": _opt(s.win_rate),
            "avg_holding_s": _opt(s.avg_holding_s, 3),
            "filled_orders": s.filled_orders,
            "fill_ratio": _opt(s.fill_ratio),
            "turnover": _r(s.turnover),
            "positions": s.positions,
            "conflated": s.conflated,
            "merged": s.merged,
            "dropped": s.dropped,
        }
        # Only when there is some (reports of runs without stay byte for byte as they were):
        # funding received (negative: paid), part of realized_pnl, and fills whose USD value
        # never found a rate (in positions, not in the PnL).
        if s.funding != 0:
            entry["funding"] = _r(s.funding)
        if s.waiting_fills:
            entry["waiting_fills"] = s.waiting_fills
        if s.failure is not None:  # stopped by a failure (only then: reports stay as they were)
            entry["failure"] = s.failure.as_dict()
        if include_curves:
            entry["equity_curve"] = [[ts, _r(eq)] for ts, eq in s.equity_curve]
            if s.series is not None:
                entry["series"] = _series(s.series)
        strategies[name] = entry
    return {
        "events": result.events,
        "frames": result.frames,
        "malformed_frames": result.malformed_frames,
        "bad_lines": result.bad_lines,
        # The data files with something to say (a clean run's report does not depend on where
        # its data was): bad lines, malformed frames, and any .zst that ends inside a frame
        # (cut short) with the last receive time read from it.
        "data_files": [
            {
                "venue": f.venue,
                "path": f.path,
                "bad_lines": f.bad_lines,
                "malformed_frames": f.malformed_frames,
                "unfinished": [
                    {"file": p, "last": None if last is None else format_ts(last)} for p, last in f.unfinished
                ],
            }
            for f in result.files
            if f.bad_lines or f.malformed_frames or f.unfinished
        ],
        "duration_s": round(result.duration_s, 3),
        "start": None if result.start_ns is None else format_ts(result.start_ns),
        "end": None if result.end_ns is None else format_ts(result.end_ns),
        "currency": "USD",
        "equity_interval_s": result.equity_interval_s,
        "decoders": result.decoder_stats,
        "strategies": strategies,
        # What made a strategy or a data file do nothing, one line each (as in the summary).
        "warnings": list(result.warnings),
    }


def write_report(path: str | Path, result: BacktestResult) -> None:
    data = orjson.dumps(report_dict(result), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(data + b"\n")


def print_summary(result: BacktestResult, stream: IO[str]) -> None:
    """A table of the run for people (rich; plain text when not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    # On a terminal use its width; in a pipe or a log, do not wrap the table.
    console = Console(file=stream, highlight=False, width=None if stream.isatty() else 160)
    span = ""
    if result.start_ns is not None and result.end_ns is not None:
        span = f"{format_ts(result.start_ns)[:19]} -> {format_ts(result.end_ns)[:19]}"
    rate = result.events / result.duration_s if result.duration_s > 0 else 0.0
    console.print(
        f"backtest: {result.events:,} events from {result.frames:,} frames ({span}) "
        f"in {result.duration_s:.2f} s = {rate:,.0f} events/s"
    )
    if result.malformed_frames or result.bad_lines:
        console.print(f"  malformed frames: {result.malformed_frames:,}, bad lines: {result.bad_lines:,}")
    for data in result.files:
        if data.bad_lines or data.malformed_frames:
            console.print(
                f"  {data.path}: bad lines {data.bad_lines:,}, malformed frames {data.malformed_frames:,}",
                markup=False,
            )
        for p, last in data.unfinished:
            upto = "nothing" if last is None else format_ts(last)[:19]
            console.print(
                f"  warning: {p} ends inside a zstd frame (cut short, or still being written):"
                f" read up to {upto}",
                markup=False,
            )
    table = Table(title=None, show_lines=False)
    for col in (
        "strategy",
        "orders",
        "fills",
        "rejected",
        "fees $",
        "realized $",
        "unrealized $",
        "net $",
        "max DD $",
        "sharpe",
        "errors",
    ):
        table.add_column(col, justify="left" if col == "strategy" else "right")
    for name, s in result.strategies.items():
        table.add_row(
            name,
            f"{s.orders:,}",
            f"{s.fills:,}",
            f"{s.rejected:,}",
            f"{s.fees:,.2f}",
            f"{s.realized_pnl:,.2f}",
            f"{s.unrealized_pnl:,.2f}",
            f"{s.net_pnl:,.2f}",
            f"{s.max_drawdown:,.2f}",
            "n/a" if s.sharpe is None else f"{s.sharpe:.2f}",
            f"{s.errors:,}",
        )
    console.print(table)
    for name, s in result.strategies.items():
        trips = (
            f"{s.round_trips:,} round trips, win rate "
            + ("n/a" if s.win_rate is None else f"{100 * s.win_rate:.0f}%")
            + ", average holding "
            + ("n/a" if s.avg_holding_s is None else f"{s.avg_holding_s:,.0f} s")
        )
        ratio = "n/a" if s.fill_ratio is None else f"{100 * s.fill_ratio:.0f}%"
        sortino = "n/a" if s.sortino is None else f"{s.sortino:.2f}"
        console.print(
            f"  {name}: sortino {sortino}, {trips}, fill ratio {ratio} ({s.filled_orders:,} of"
            f" {s.orders:,} orders), turnover ${s.turnover:,.0f}"
        )
        if s.failure is not None:
            f = s.failure
            console.print(
                f"  {name} FAILED in {f.phase} ({f.error}: {f.message}): stopped, the others went on"
            )
        if s.funding != 0:
            console.print(f"  {name} funding: {s.funding:,.2f} $ (in realized)")
        if s.waiting_fills:
            console.print(
                f"  {name}: {s.waiting_fills:,} fills never found a USD rate: in positions, not in the PnL"
            )
        if s.positions:
            held = ", ".join(f"{k.split(':', 1)[1]} {v}" for k, v in sorted(s.positions.items()))
            console.print(f"  {name} holds: {held}")
        if s.conflated or s.merged or s.dropped:
            console.print(
                f"  {name} mailbox: {s.conflated:,} tickers conflated, {s.merged:,} book updates merged, "
                f"{s.dropped:,} trades dropped"
            )
    if result.warnings:  # what did nothing (kernel `_warnings`), after the numbers it explains
        console.print("warnings:")
        for line in result.warnings:
            console.print(f"  {line}", markup=False)
