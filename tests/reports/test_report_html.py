"""Report statistics against hand-computed numbers, and the HTML/PNG report of a backtest:
written beside the JSON, drawn again by `tradingd report RUN_DIR`, self-contained."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
import structlog
import trio
from hypothesis import given
from hypothesis import strategies as st

from tests.support import deribit_frames as F
from tradingd.cli.main import main
from tradingd.connectors.deribit import PLUGIN
from tradingd.engine import MarketEvent, Strategy, Subscription, Ticker, TimeInForce
from tradingd.engine.backtest.kernel import (
    BacktestKernel,
    BacktestSettings,
    DataSource,
    _Chart,
    max_drawdown,
    sharpe_ratio,
    sortino_ratio,
)
from tradingd.engine.backtest.report import report_dict
from tradingd.engine.model.pricing import YEAR_SECONDS
from tradingd.engine.reports.html import render_run, write_run_reports
from tradingd.simulators.deribit import SIMULATOR as DERIBIT_SIM

ROOT = Path(__file__).resolve().parent.parent.parent
ANNUAL_60S = math.sqrt(YEAR_SECONDS / 60)


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """`main` configures logging onto this test's captured stderr: undo it afterwards, so later
    tests do not log into a closed stream."""
    yield
    structlog.reset_defaults()


def test_ratios_and_drawdown_by_hand() -> None:
    equity = [0.0, 1.0, 3.0, 2.0, 4.0]  # changes 1, 2, -1, 2: mean 1, sample variance 2
    assert sharpe_ratio(equity, 60) == pytest.approx(1 / math.sqrt(2) * ANNUAL_60S)
    # Downside deviation: sqrt((-1)^2 / 4) = 0.5 (over every interval, target 0).
    assert sortino_ratio(equity, 60) == pytest.approx(1 / 0.5 * ANNUAL_60S)
    assert max_drawdown(equity) == 1.0
    assert max_drawdown([0.0, 5.0, 2.0, 6.0, 1.0]) == 5.0
    assert max_drawdown([-1.0, -3.0, -2.0]) == 3.0  # the start (0) is a peak
    # Flat: no return and no variance -> 0, by the rule, for both ratios.
    assert sharpe_ratio([0.0] * 10, 60) == 0.0 and sortino_ratio([5.0] * 10, 60) == 0.0
    # Undefined: a constant gain has no risk to divide by; gains without a loss, no downside.
    assert sharpe_ratio([0.0, 1.0, 2.0, 3.0], 60) is None
    assert sortino_ratio([0.0, 1.0, 3.0], 60) is None
    assert sharpe_ratio([0.0, 1.0], 60) is None  # one change: no variance to estimate
    # Float noise (residues of summing marks and fees) is no change: flat, 0.
    assert sharpe_ratio([1e6, 1e6 + 1e-10, 1e6, 1e6 + 2e-10], 60) == 0.0
    # The rounding of a constant gain is no variance: still undefined, not a huge ratio.
    assert sharpe_ratio([0.1 * i for i in range(20)], 60) is None


@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=3, max_size=60),
    st.sampled_from([3.0, 0.01, 1e4]),
)
def test_ratios_scale_free_and_drawdown_bounded(equity: list[float], k: float) -> None:
    """The ratios do not depend on the curve's unit (USD or cents), undefined ones included."""
    for ratio in (sharpe_ratio, sortino_ratio):
        s1, s2 = ratio(equity, 60), ratio([k * x for x in equity], 60)
        assert (s1 is None) == (s2 is None)
        if s1 is not None and s2 is not None:
            assert s2 == pytest.approx(s1, rel=1e-6, abs=1e-6)
    dd = max_drawdown(equity)
    assert 0 <= dd <= max(0.0, *equity) - min(0.0, *equity) + 1e-9


def test_chart_series_stay_bounded() -> None:
    chart = _Chart(cap=100)
    for i in range(1000):
        chart.add(i, float(i), {"deribit:X": (float(i % 7), 1.0)} if i >= 500 else {})
    assert len(chart.ts) < 100 and chart.stride == 16
    assert chart.ts == sorted(chart.ts) and chart.ts[0] == 0
    assert len(chart.positions["deribit:X"]) == len(chart.ts) == len(chart.prices["deribit:X"])
    assert chart.positions["deribit:X"][0] == 0.0 and chart.prices["deribit:X"][0] is None  # flat before


class RoundTrips(Strategy):
    """On given option tickers (by exchange ms): buy 1 at the ask (IOC), sell 1 at the bid (IOC),
    or rest a buy far below (never fills; cancelled on the next action)."""

    def __init__(self, plan: dict[int, str]) -> None:
        super().__init__("rt")
        self.plan = plan
        self.resting: str | None = None

    def required_subscriptions(self) -> list[Subscription]:
        return [Subscription("deribit", F.OPTION, {"ticker"})]

    async def on_event(self, event: MarketEvent) -> None:
        if not isinstance(event, Ticker) or event.ts_exchange is None:
            return
        action = self.plan.get(event.ts_exchange // 1_000_000)
        if action is None:
            return
        if self.resting is not None:
            await self.ctx.cancel_order(self.resting)
            self.resting = None
        if action == "buy":
            await self.ctx.buy("deribit", F.OPTION, "1", price=str(event.ask), time_in_force=TimeInForce.IOC)
        elif action == "sell":
            await self.ctx.sell("deribit", F.OPTION, "1", price=str(event.bid), time_in_force=TimeInForce.IOC)
        else:
            placed = await self.ctx.buy("deribit", F.OPTION, "1", price="0.001")
            self.resting = placed.client_order_id


def test_win_rate_holding_time_and_fill_ratio_by_hand(tmp_path: Path) -> None:
    """Two round trips of one contract, held about 60 s each: bought at 0.05 and sold at 0.049 (a loss
    of 90 USD plus two 27 USD fees), then bought at 0.05 and sold at 0.06 (900 USD less fees):
    win rate 1/2, holding 60 s. Five orders were sent, four filled: fill ratio 0.8."""

    def at(ms: int, bid: float, ask: float, change_id: int) -> list[tuple[int, bytes]]:
        return [
            (ms, F.snapshot(F.OPTION, ms, change_id, [(bid, 5.0)], [(ask, 5.0)])),
            (ms + 1, F.ticker(F.OPTION, ms + 1, bid=bid, ask=ask, mark=(bid + ask) / 2, index=90000.0)),
        ]

    frames = [
        (0, F.instruments()),
        (1, F.ticker(F.PERP, 1, bid=89999.5, ask=90000.0, mark=90000.0, index=90000.0)),
        *at(1_000, 0.049, 0.05, 10),
        *at(61_000, 0.049, 0.05, 11),
        *at(100_000, 0.049, 0.05, 12),
        *at(121_000, 0.049, 0.05, 13),
        *at(181_000, 0.06, 0.061, 14),
    ]
    path = F.write(tmp_path / "rt.rec", frames)
    plan = {1_001: "buy", 61_001: "sell", 100_001: "rest", 121_001: "buy", 181_001: "sell"}
    strategy = RoundTrips(plan)
    kernel = BacktestKernel(
        {"deribit": PLUGIN},
        [DataSource("deribit", path)],
        [strategy],
        BacktestSettings(latency_ms=10, equity_interval_s=30),
    )
    r = trio.run(kernel.run).strategies["rt"]
    assert (r.orders, r.fills, r.filled_orders) == (5, 4, 4)
    assert r.fill_ratio == pytest.approx(4 / 5)
    assert r.round_trips == 2 and r.win_rate == pytest.approx(0.5)
    # A fill is booked when its report reaches the engine: 10 ms there, 10 back. The second buy
    # first cancels the resting order (one more round trip, 20 ms): held 60 s, then 59.98 s.
    assert r.avg_holding_s == pytest.approx((60.0 + 59.98) / 2)
    fee = Decimal("0.0003") * 90000
    assert r.realized_pnl == Decimal("-0.001") * 90000 + Decimal("0.01") * 90000  # exact
    assert r.fees == 4 * fee
    assert r.series is not None
    assert [(f.side, f.price) for f in r.series.fills] == [
        ("buy", 0.05),
        ("sell", 0.049),
        ("buy", 0.05),
        ("sell", 0.06),
    ]
    assert r.series.fills[0].fee_usd == pytest.approx(float(fee)) and r.series.fills[0].liquidity == "taker"
    pos = r.series.positions[f"deribit:{F.OPTION}"]
    assert max(pos) == 1.0 and pos[-1] == 0.0
    assert r.series.step_s == 10.0  # a third of the 30 s equity interval
    assert {t for t, _ in r.equity_curve} <= set(r.series.ts)  # the curve's samples are the charts' too
    # The curve starts flat at the first frame: the first order's cost is its first change.
    assert r.equity_curve[0][1] == 0.0 and r.series.ts[0] == r.equity_curve[0][0]
    assert r.equity_curve[0][0] < r.equity_curve[1][0]


def test_a_strategy_that_never_trades_reports_zero_not_garbage(tmp_path: Path) -> None:
    frames = [(0, F.instruments())] + [
        (i * 30_000, F.ticker(F.PERP, i * 30_000, bid=89999.5, ask=90000.0, mark=90000.0, index=90000.0))
        for i in range(1, 10)
    ]
    path = F.write(tmp_path / "flat.rec", frames)
    kernel = BacktestKernel(
        {"deribit": PLUGIN},
        [DataSource("deribit", path)],
        [RoundTrips({})],
        BacktestSettings(equity_interval_s=30),
    )
    result = trio.run(kernel.run)
    r = result.strategies["rt"]
    assert r.sharpe == 0.0 and r.sortino == 0.0  # flat: no variance, no return
    assert r.win_rate is None and r.avg_holding_s is None and r.fill_ratio is None
    report = report_dict(result)["strategies"]["rt"]
    assert report["sharpe"] == 0.0 and report["fill_ratio"] is None and report["series"]["fills"] == []


@pytest.mark.slow
def test_the_bundled_backtest_renders_and_report_draws_it_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "s.rec.zst"
    DERIBIT_SIM.generate_sample(data, {"hours": 0.25, "seed": 7})
    cfg = tmp_path / "bt.toml"
    text = (ROOT / "config" / "backtest-deribit.toml").read_text()
    cfg.write_text(text.replace('path = "../data/deribit-sample.rec.zst"', f'path = "{data}"'))
    run = tmp_path / "run"
    assert (
        main(["backtest", "--config", str(cfg), "--report", str(run / "report.json"), "--no-progress"]) == 0
    )
    capsys.readouterr()
    written = render_run(run)  # what `tradingd backtest` writes after its JSON (write_run_reports)
    names = sorted(p.name for p in written)
    assert names == ["report-gamma_btc.png", "report-momentum_eth.png", "report.html", "report.png"]
    for p in written:
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 20_000
    page = (run / "report.html").read_text()
    # Self-contained: every image inline, nothing fetched.
    assert page.count('src="data:image/png;base64,') == 3
    assert not re.search(r"(src|href)=[\"']?https?:", page)
    report = orjson.loads((run / "report.json").read_bytes())
    for name, s in report["strategies"].items():
        assert f"<td>{name}</td><td>{s['net_pnl']:,.2f}</td>" in page
        assert s["series"]["ts"] and len(s["series"]["equity"]) == len(s["series"]["ts"])
        assert s["fills"] == 0 or s["series"]["fills"]
    # `tradingd report RUN_DIR` draws the same bytes again from the JSON alone.
    before = {p.name: p.read_bytes() for p in written}
    for p in written:
        p.unlink()
    assert main(["report", str(run)]) == 0
    assert sorted(capsys.readouterr().out.split()) == sorted(str(run / n) for n in names)
    assert {p.name: p.read_bytes() for p in written} == before
    assert main(["report", str(tmp_path)]) == 1
    assert "no report.json" in capsys.readouterr().err


def test_write_run_reports_writes_json_then_charts(tmp_path: Path) -> None:
    frames = [
        (0, F.instruments()),
        (1, F.ticker(F.PERP, 1, bid=89999.5, ask=90000.0, mark=90000.0, index=90000.0)),
        (60_000, F.ticker(F.PERP, 60_000, bid=89999.5, ask=90000.0, mark=90000.0, index=90000.0)),
    ]
    path = F.write(tmp_path / "w.rec", frames)
    kernel = BacktestKernel({"deribit": PLUGIN}, [DataSource("deribit", path)], [RoundTrips({})])
    out = write_run_reports(tmp_path / "r" / "x.json", trio.run(kernel.run))
    assert [p.name for p in out] == ["x.html", "x.png", "x-rt.png"]
    assert (tmp_path / "r" / "x.json").exists()
