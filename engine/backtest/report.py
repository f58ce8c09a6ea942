"""The backtest report (DESIGN.md, "backtest report") and the summary printed after a run.

The JSON has `events`, `duration_s`, and per strategy `orders`, `fills`, `fees`, `realized_pnl`,
`unrealized_pnl`, `max_drawdown`, `sharpe`, plus what a reader needs to trust them (frames,
malformed frames, rejections, strategy errors, conflation counts, turnover, open positions, the
equity curve), the trading statistics (`sortino`, `round_trips`, `win_rate`, `avg_holding_s`,
`filled_orders`, `fill_ratio`), `funding` and `waiting_fills` where not zero, and, under
`series`, what the charts of the HTML report are drawn from (equity, positions and marks over
time, every fill as `[ts, instrument, side, price, size, fee_usd, liquidity, tag]`; a fill's fee
in USD is null while no USD rate is known for it, its tag "" when its order had none), so
`tradingd report RUN_DIR` can draw them again from the JSON alone. `warnings` lists, one line
each, what made a strategy or a data file do nothing (kernel module docstring; an empty list
when nothing did). `instrument_names`, when a venue's catalog named some of the instruments
listed (Polymarket tokens), maps `venue:symbol` to that name (`will-btc-hit-100k / Yes`), which
the summary and the charts show; the ids everywhere else stay the venue's own. The names are
for display only: from the recordings' market definitions, else the machine's catalog cache
when it has one (cli/backtest.py `_cached_catalogs`), so they may differ between machines where
the ids do not. Money is USD.
Apart from `duration_s`, the same inputs give the same bytes.

`max_drawdown` is measured on every chart sample and every fill; `max_drawdown_at` gives its
peak and trough ([ts, equity]), which `series` holds, so the drawdown of `series.equity` is
`max_drawdown`. `sharpe` and `sortino` are annualised from the changes of `equity_curve` (every
`equity_interval_s`): `ratios_from` says from how many, over how long (the summary and the page
show them from one day on). `warnings`, when there are some: one line each.
"""

from __future__ import annotations

import bisect
import textwrap
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import orjson

# The figures' text for people is shared with the HTML report, which draws without the kernel:
# in model.words (imported from here too, as before).
from ..model.words import RATIO_MIN_SPAN_S, duration, equity_span_s, instrument_text, qty_text, ratio_text
from ..store.recording import format_ts
from .kernel import BacktestResult, StrategyResult

__all__ = ["print_summary", "report_dict", "write_report"]


def _r(x: float | Decimal) -> float:
    """A number of the JSON contract: a number (money is Decimal in the engine, a JSON number
    here, to the micro-dollar)."""
    return round(float(x), 6)


def _opt_r(x: float | Decimal | None) -> float | None:
    return None if x is None else _r(x)


def _opt(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else round(x, digits)


def _max_drawdown(s: StrategyResult) -> float:
    """To the micro-dollar, as the series' points give it (peak and trough rounded first)."""
    if s.drawdown_points is None:
        return _r(s.max_drawdown)
    (_, peak), (_, trough) = s.drawdown_points
    return _r(_r(peak) - _r(trough))


def _series(series: Any, points: tuple[tuple[int, float], tuple[int, float]] | None) -> dict[str, Any]:
    """The chart series, with the max drawdown's peak and trough put in where the samples do not
    hold them (a fill between samples, a thinned series): the drawdown drawn, and the one any
    reader recomputes from `equity`, is then `max_drawdown`. An added point's positions are
    those of the sample before it (positions are drawn as steps: the same picture) and its marks
    are null (not sampled)."""
    ts = list(series.ts)
    equity = [_r(x) for x in series.equity]
    positions = {k: [_r(x) for x in v] for k, v in series.positions.items()}
    prices = {k: [_opt(x, 10) for x in v] for k, v in series.prices.items()}
    added = 0

    def put(t: int, value: float, lo: int, *, after_equal: bool) -> int:
        """Index of the point (t, value) at or after `lo`: a sample's, or one inserted there."""
        nonlocal added
        first, last = bisect.bisect_left(ts, t), bisect.bisect_right(ts, t)
        for j in range(max(first, lo), last):
            if equity[j] == value:
                return j
        # A fill and a sample of the same nanosecond: the peak goes after the samples of its
        # time, the trough before them, an order in which no such sample makes the drawdown
        # deeper than the one the kernel measured in the order it saw them.
        where = max(lo, last if after_equal else first)
        ts.insert(where, t)
        equity.insert(where, value)
        for v in positions.values():
            v.insert(where, v[where - 1] if where else 0.0)
        for pv in prices.values():
            pv.insert(where, None)
        added += 1
        return where

    if points is not None and ts:
        (peak_ts, peak), (trough_ts, trough) = points
        at = put(peak_ts, _r(peak), 0, after_equal=True)
        put(trough_ts, _r(trough), at + 1, after_equal=False)
    return {
        "step_s": series.step_s,
        "ts": ts,
        "equity": equity,
        "positions": positions,
        "prices": prices,
        "drawdown_points_added": added,
        "fills": [
            [f.ts, f.instrument, f.side, f.price, f.size, _opt_r(f.fee_usd), f.liquidity, f.tag]
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
            "max_drawdown": _max_drawdown(s),
            # Where it was taken ([ts, equity] of its peak and trough; both are in `series`).
            "max_drawdown_at": (
                None
                if s.drawdown_points is None
                else {
                    "peak": [s.drawdown_points[0][0], _r(s.drawdown_points[0][1])],
                    "trough": [s.drawdown_points[1][0], _r(s.drawdown_points[1][1])],
                }
            ),
            "sharpe": None if s.sharpe is None else round(s.sharpe, 6),
            "sortino": _opt(s.sortino),
            # What the two ratios come from (people see them from one day of equity on).
            "ratios_from": {
                "interval_s": result.equity_interval_s,
                "changes": max(0, len(s.equity_curve) - 1),
                "span_s": round(equity_span_s(s.equity_curve), 3),
                "annualised": True,
            },
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
                entry["series"] = _series(s.series, s.drawdown_points)
        strategies[name] = entry
    out: dict[str, Any] = {
        "events": result.events,
        "frames": result.frames,
        "malformed_frames": result.malformed_frames,
        "bad_lines": result.bad_lines,
        # Only the data files with something to say: bad lines, malformed frames, and any .zst
        # that ends inside a frame (cut short) with the last receive time read from it. A clean
        # run's report names no path, so it does not depend on where its data was (DESIGN.md:
        # same inputs, same bytes; the README's Reports section says so); `decoders` has the
        # counts of every venue's frames.
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
    # Only when a catalog named some (reports of other runs stay byte for byte as they were):
    # the names of the instruments, for people; every id above stays the venue's own.
    if result.instrument_names:
        out["instrument_names"] = dict(result.instrument_names)
    return out


def write_report(path: str | Path, result: BacktestResult) -> None:
    data = orjson.dumps(report_dict(result), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(data + b"\n")


def ratio_caveat(span_s: float, interval_s: float) -> str:
    """The line under a table whose ratios were not shown for a short run."""
    return (
        f"sharpe, sortino: n/a under 1 day of equity (this run: {duration(span_s)} of"
        f" {interval_s:g}-second changes); annualised from so little they mean little."
        " report.json has them."
    )


def _duration_text(seconds: float | None) -> str:
    return "n/a" if seconds is None else duration(seconds)


def _pct(x: float | None) -> str:
    """A share for people, to the percent; 0% and 100% only when exact (438 of 440 orders filled
    is "99.5%", not "100%": a person reads 100% as all)."""
    if x is None:
        return "n/a"
    text = f"{100 * x:.0f}%"
    if text in ("0%", "100%") and x not in (0, 1):
        return f"{100 * x:.1f}%" if 0.0005 <= x <= 0.9995 else ("<0.1%" if x < 0.5 else ">99.9%")
    return text


# The summary's rows: one line per statistic, one column per strategy. The labels say what is
# counted (a partly filled order makes several fills, so fills can outnumber orders).
_ROWS: tuple[tuple[str, Callable[[StrategyResult, float], str]], ...] = (
    ("orders sent", lambda s, _: f"{s.orders:,}"),
    (
        "orders filled (any part)",
        lambda s, _: f"{s.filled_orders:,}" + ("" if s.fill_ratio is None else f" ({_pct(s.fill_ratio)})"),
    ),
    ("fills (each partial counts)", lambda s, _: f"{s.fills:,}"),
    ("rejected", lambda s, _: f"{s.rejected:,}"),
    ("errors", lambda s, _: f"{s.errors:,}"),
    ("fees $", lambda s, _: f"{s.fees:,.2f}"),
    ("realized $", lambda s, _: f"{s.realized_pnl:,.2f}"),
    ("unrealized $", lambda s, _: f"{s.unrealized_pnl:,.2f}"),
    ("net PnL $", lambda s, _: f"{s.net_pnl:,.2f}"),
    ("max drawdown $", lambda s, _: f"{s.max_drawdown:,.2f}"),
    ("sharpe (annualised)", lambda s, span: ratio_text(s.sharpe, span)),
    ("sortino (annualised)", lambda s, span: ratio_text(s.sortino, span)),
    ("round trips", lambda s, _: f"{s.round_trips:,}"),
    ("win rate", lambda s, _: _pct(s.win_rate)),
    ("average holding", lambda s, _: _duration_text(s.avg_holding_s)),
    ("turnover $", lambda s, _: f"{s.turnover:,.0f}"),
)


def _table(names: list[str], cells: dict[str, list[str]]) -> Any:
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("", justify="left", no_wrap=True)
    for name in names:
        # no_wrap + fold: a number is never cut with an ellipsis (the layout keeps it in width).
        table.add_column(name, justify="right", no_wrap=True, overflow="fold")
    for i, (label, _) in enumerate(_ROWS):
        table.add_row(label, *(cells[name][i] for name in names))
    return table


def _strategy_tables(console: Any, cells: dict[str, list[str]]) -> list[Any] | None:
    """Tables with strategies as columns, as many per table as the width holds; None when not
    even one strategy fits (a very narrow terminal: the caller prints `label: value` lines)."""
    width = console.width
    wide = console.options.update_width(10 * width)  # a measure is clamped to the width it is given

    def fits(names: list[str]) -> bool:
        return bool(console.measure(_table(names, cells), options=wide).maximum <= width)

    out: list[Any] = []
    group: list[str] = []
    for name in cells:
        trial = [*group, name]
        if fits(trial):
            group = trial
            continue
        if not group:
            return None
        out.append(_table(group, cells))
        group = [name]
        if not fits(group):
            return None
    if group:
        out.append(_table(group, cells))
    return out


def _broken_pipe() -> None:
    raise BrokenPipeError("the summary's reader went away")


def print_summary(result: BacktestResult, stream: IO[str]) -> None:
    """The run for people: what was replayed, one table with a column per strategy (split into
    several, or `label: value` lines, so that it fits the width: never a cut number), what each
    strategy holds, and the warnings. Rich: colours on a terminal, its width; plain text in a
    pipe, `COLUMNS` wide (80 unless set)."""
    from rich.console import Console

    console = Console(file=stream, highlight=False)
    # Rich ends the process on a closed pipe (`| head`); the caller decides (the report is
    # still to be written).
    console.on_broken_pipe = _broken_pipe  # type: ignore[method-assign]
    if result.start_ns is not None and result.end_ns is not None:
        span = (
            f"{format_ts(result.start_ns)[:19]} -> {format_ts(result.end_ns)[:19]} UTC"
            f" ({duration((result.end_ns - result.start_ns) / 1e9)} of data)"
        )
    else:
        span = "no data"
    rate = result.events / result.duration_s if result.duration_s > 0 else 0.0
    console.print(f"backtest: {span}", markup=False)
    console.print(
        f"  {result.events:,} events from {result.frames:,} frames, replayed in {result.duration_s:.2f} s"
        f" ({rate:,.0f} events/s)"
    )
    if result.malformed_frames or result.bad_lines:
        console.print(f"  malformed frames: {result.malformed_frames:,}, bad lines: {result.bad_lines:,}")
    for data in result.files:
        if data.bad_lines or data.malformed_frames:
            console.print(
                f"  {data.path}: bad lines {data.bad_lines:,}, malformed frames {data.malformed_frames:,}",
                markup=False,
                soft_wrap=True,  # a path is not broken by a newline (the terminal wraps it)
            )
        for p, last in data.unfinished:
            upto = "nothing" if last is None else format_ts(last)[:19]
            console.print(
                f"  warning: {p} ends inside a zstd frame (cut short, or still being written):"
                f" read up to {upto}",
                markup=False,
                soft_wrap=True,
            )
    spans = {name: equity_span_s(s.equity_curve) for name, s in result.strategies.items()}
    cells = {name: [fn(s, spans[name]) for _, fn in _ROWS] for name, s in result.strategies.items()}
    if cells:
        console.print()
        tables = _strategy_tables(console, cells)
        if tables is None:
            for name, values in cells.items():
                console.print(f"{name}:", markup=False)
                for (label, _), value in zip(_ROWS, values, strict=True):
                    console.print(f"  {label}: {value}", markup=False)
        else:
            for i, table in enumerate(tables):
                if i:
                    console.print()
                console.print(table)
    short = [
        span
        for name, span in spans.items()
        if span < RATIO_MIN_SPAN_S
        and (result.strategies[name].sharpe is not None or result.strategies[name].sortino is not None)
    ]
    if short:
        console.print(ratio_caveat(max(short), result.equity_interval_s), markup=False)
    for name, s in result.strategies.items():
        if s.failure is not None:
            f = s.failure
            console.print(
                f"{name} FAILED in {f.phase} ({f.error}: {f.message}): stopped, the others went on",
                markup=False,
            )
        if s.funding != 0:
            console.print(f"{name} funding: {s.funding:,.2f} $ (in realized)", markup=False)
        if s.waiting_fills:
            console.print(
                f"{name}: {s.waiting_fills:,} fills never found a USD rate: in positions, not in the PnL",
                markup=False,
            )
        if s.positions:  # one a line: a long list wraps badly
            console.print(f"{name} holds at the end:", markup=False)
            for key, qty in sorted(s.positions.items()):
                shown = instrument_text(key, result.instrument_names)
                console.print(f"  {shown} {qty_text(qty)}", markup=False, soft_wrap=True)
        if s.conflated or s.merged or s.dropped:
            console.print(
                f"{name} mailbox: {s.conflated:,} tickers conflated, {s.merged:,} book updates merged, "
                f"{s.dropped:,} trades dropped",
                markup=False,
            )
    if result.warnings:  # what did nothing (kernel `_warnings`), after the numbers it explains
        console.print()
        console.print(f"[bold yellow]warnings ({len(result.warnings)}):[/]")
        # A hanging indent: a wrapped warning (a long path) goes on under its text, not under
        # the bullet, and a word too long for the line breaks there rather than off the edge.
        width = max(20, console.width - 4)
        for line in result.warnings:
            wrapped = textwrap.wrap(line, width, break_long_words=True, break_on_hyphens=False) or [""]
            console.print(
                "\n".join(["  - " + wrapped[0], *("    " + rest for rest in wrapped[1:])]), markup=False
            )
