"""The max drawdown a report states is the one its own equity series gives, and the one its
drawdown chart draws and names (issue 16: the chart said 3,393.80 and drew about 3,695; the
equity curve gave neither)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.support import deribit_frames as F
from tests.support.results import backtest_result, strategy_result
from tradingd.connectors.deribit import PLUGIN
from tradingd.engine import MarketEvent, Strategy, Subscription, Ticker, TimeInForce
from tradingd.engine.backtest.kernel import (
    BacktestKernel,
    BacktestSettings,
    DataSource,
    StrategyResult,
    StrategySeries,
    max_drawdown,
)
from tradingd.engine.backtest.report import report_dict
from tradingd.engine.reports import html

_S = 1_000_000_000


class BuyOnce(Strategy):
    """Buys one option at the ask on the first ticker, and holds it."""

    def __init__(self) -> None:
        super().__init__("hold")
        self.done = False

    def required_subscriptions(self) -> list[Subscription]:
        return [Subscription("deribit", F.OPTION, {"ticker"})]

    async def on_event(self, event: MarketEvent) -> None:
        if self.done or not isinstance(event, Ticker):
            return
        self.done = True
        await self.ctx.buy("deribit", F.OPTION, "1", price=str(event.ask), time_in_force=TimeInForce.IOC)


def _dip_between_equity_samples(tmp_path: Path) -> Path:
    """An option held while its mark dips from 15 s to 25 s and is back by 26 s: the equity
    curve (every 30 s) never sees the dip, the charts (every 10 s) see it at 20 s."""
    frames: list[tuple[int, bytes]] = [
        (0, F.instruments()),
        (1, F.ticker(F.PERP, 1, bid=89999.5, ask=90000.0, mark=90000.0, index=90000.0)),
        (1_000, F.snapshot(F.OPTION, 1_000, 10, [(0.049, 5.0)], [(0.05, 5.0)])),
    ]
    for sec in range(1, 70):
        ms = sec * 1_000 + 1
        mark = 0.03 if 15 <= sec <= 25 else 0.0495
        frames.append((ms, F.ticker(F.OPTION, ms, bid=0.049, ask=0.05, mark=mark, index=90000.0)))
    return F.write(tmp_path / "dip.rec", frames)


def _run(path: Path) -> dict[str, Any]:
    kernel = BacktestKernel(
        {"deribit": PLUGIN},
        [DataSource("deribit", path)],
        [BuyOnce()],
        BacktestSettings(latency_ms=10, equity_interval_s=30),
    )
    report: dict[str, Any] = report_dict(trio.run(kernel.run))["strategies"]["hold"]
    return report


def _drawn(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, report: dict[str, Any]) -> list[Any]:
    """Render the HTML report and keep the figures instead of their PNG bytes."""
    figures: list[Any] = []

    def keep(fig: Any) -> bytes:
        figures.append(fig)
        return b"\x89PNG"

    monkeypatch.setattr(html, "png_bytes", keep)
    html.render_html({"strategies": {"hold": report}, "equity_interval_s": 30}, tmp_path / "out")
    return figures


def _title_and_plotted(ax: Any) -> tuple[float, float]:
    """The max drawdown a chart's title names, and the deepest point it draws."""
    match = re.search(r"max ([\d,]+\.\d\d) USD", ax.get_title(loc="left"))
    assert match, ax.get_title(loc="left")
    deepest = min(float(p.vertices[:, 1].min()) for c in ax.collections for p in c.get_paths())
    return float(match.group(1).replace(",", "")), -deepest


def test_max_drawdown_is_the_one_of_the_reports_equity_series(tmp_path: Path) -> None:
    s = _run(_dip_between_equity_samples(tmp_path))
    series = s["series"]
    # The dip: 0.0195 BTC of mark on one contract at 90,000 USD.
    assert s["max_drawdown"] > 0.0195 * 90_000
    assert max_drawdown(series["equity"]) == pytest.approx(s["max_drawdown"], abs=1e-6)
    peak, trough = s["max_drawdown_at"]["peak"], s["max_drawdown_at"]["trough"]
    assert peak[1] - trough[1] == pytest.approx(s["max_drawdown"], abs=1e-6)
    assert [peak[0], peak[1]] in [[t, e] for t, e in zip(series["ts"], series["equity"], strict=True)]
    # The equity curve (Sharpe's, every 30 s) is a part of the series: its drawdown is no more.
    assert max_drawdown([e for _, e in s["equity_curve"]]) <= s["max_drawdown"] + 1e-6


def test_the_drawdown_chart_names_what_it_draws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s = _run(_dip_between_equity_samples(tmp_path))
    figures = _drawn(monkeypatch, tmp_path, s)
    overview, strategy = figures
    named, plotted = _title_and_plotted(strategy.axes[1])
    assert named == pytest.approx(plotted, abs=0.005)
    assert named == pytest.approx(s["max_drawdown"], abs=0.005)
    # The overview draws the same drawdown.
    paths = [p for c in overview.axes[1].collections for p in c.get_paths()]
    assert -min(float(p.vertices[:, 1].min()) for p in paths) == pytest.approx(s["max_drawdown"], abs=1e-6)


def _between_samples() -> StrategyResult:
    """A drawdown taken between the chart's samples (at fills), peak 5 at 25 s, trough -7 at 27 s:
    12, where the samples alone (0, 1, -1, 2, 0) give 3."""
    ts = tuple(i * 10 * _S for i in range(5))
    series = StrategySeries(
        step_s=10.0,
        ts=ts,
        equity=(0.0, 1.0, -1.0, 2.0, 0.0),
        positions={"deribit:X": (0.0, 1.0, 1.0, 2.0, 0.0)},
        prices={"deribit:X": (None, 10.0, 9.0, 11.0, 10.0)},
        fills=(),
        fills_dropped=0,
    )
    return strategy_result(
        orders=2,
        fills=2,
        max_drawdown=12.0,
        equity_curve=((0, 0.0), (ts[-1], 0.0)),
        series=series,
        drawdown_points=((25 * _S, 5.0), (27 * _S, -7.0)),
    )


def test_peak_and_trough_between_samples_are_put_in_the_series(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    result = backtest_result({"hold": _between_samples()}, start_ns=0, end_ns=40 * _S)
    s = report_dict(result)["strategies"]["hold"]
    series = s["series"]
    assert series["ts"] == [0, 10 * _S, 20 * _S, 25 * _S, 27 * _S, 30 * _S, 40 * _S]
    assert series["equity"] == [0.0, 1.0, -1.0, 5.0, -7.0, 2.0, 0.0]
    assert series["drawdown_points_added"] == 2
    # Positions as the sample before (drawn as steps: the same picture), marks not sampled.
    assert series["positions"]["deribit:X"] == [0.0, 1.0, 1.0, 1.0, 1.0, 2.0, 0.0]
    assert series["prices"]["deribit:X"] == [None, 10.0, 9.0, None, None, 11.0, 10.0]
    assert max_drawdown(series["equity"]) == s["max_drawdown"] == 12.0
    named, plotted = _title_and_plotted(_drawn(monkeypatch, tmp_path, s)[1].axes[1])
    assert named == plotted == 12.0
