"""Polymarket tokens are 77-digit ids: a backtest's summary and charts name them as the venue's
catalog does (the market's slug and the outcome, the id shortened after it), while the JSON
report keeps every id exactly as the venue wrote it (DESIGN.md's report contract) and lists the
names beside them, under `instrument_names`, which the HTML report draws from."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
import trio

from tradingd.cli.recorded import recorded_catalogs
from tradingd.connectors.polymarket import PLUGIN as POLYMARKET
from tradingd.engine import BookUpdate, MarketEvent, Strategy, Subscription
from tradingd.engine.backtest.kernel import BacktestKernel, BacktestResult, DataSource, StrategyResult
from tradingd.engine.backtest.report import print_summary, report_dict
from tradingd.engine.model.words import instrument_text
from tradingd.engine.reports.html import render_html
from tradingd.simulators.polymarket import SIMULATOR as POLYMARKET_SIM


class _BuyEach(Strategy):
    """Buys the minimum of every token at its first ask (most are still held at the end)."""

    def __init__(self) -> None:
        super().__init__("s")
        self.bought: set[str] = set()

    async def on_start(self) -> None:
        self.ctx.subscribe(Subscription("polymarket", i.symbol) for i in self.ctx.instruments("polymarket"))

    async def on_event(self, event: MarketEvent) -> None:
        if (
            isinstance(event, BookUpdate)
            and event.best_ask is not None
            and event.instrument not in self.bought
        ):
            self.bought.add(event.instrument)
            inst = self.ctx.instrument("polymarket", event.instrument)
            assert inst is not None
            await self.ctx.buy(
                "polymarket", event.instrument, inst.min_size, price=str(event.best_ask), time_in_force="ioc"
            )


def test_the_summary_and_charts_name_polymarket_tokens_and_the_report_keeps_their_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "pm.rec.zst"
    POLYMARKET_SIM.generate_sample(path, {"hours": 0.2, "seed": 3})
    (catalog,) = recorded_catalogs([("polymarket", path)], {"polymarket": POLYMARKET}).values()
    kernel = BacktestKernel(
        {"polymarket": POLYMARKET},
        [DataSource("polymarket", path)],
        [_BuyEach()],
        catalogs={"polymarket": catalog},
    )
    result = trio.run(kernel.run)
    s = result.strategies["s"]
    assert s.positions and s.series is not None and s.series.fills
    expected = {}
    for key in {*s.positions, *(f.instrument for f in s.series.fills)}:
        token = key.removeprefix("polymarket:")
        market = catalog.find_by_token_id(token)
        assert market is not None and len(token) == 77
        expected[key] = f"{market.slug} / {market.outcome_of(token)}"
    assert dict(result.instrument_names) == expected

    # The JSON report: every id as it was, the names beside them.
    report = orjson.loads(orjson.dumps(report_dict(result)))
    entry = report["strategies"]["s"]
    assert set(entry["positions"]) == set(s.positions)
    assert {row[1] for row in entry["series"]["fills"]} == {f.instrument for f in s.series.fills}
    assert report["instrument_names"] == expected

    # The summary: each holding by its name, the id shortened after it, never the 77 digits.
    monkeypatch.setenv("COLUMNS", "200")
    out = io.StringIO()
    print_summary(result, out)
    text = out.getvalue()
    for key in s.positions:
        token = key.removeprefix("polymarket:")
        assert f"  {expected[key]} ({token[:4]}...{token[-4:]}) " in text, text
        assert token not in text

    # The HTML page (drawn from the JSON alone): held positions and fills by name.
    render_html(report, tmp_path / "html")
    page = (tmp_path / "html" / "report.html").read_text()
    for key, name in expected.items():
        token = key.removeprefix("polymarket:")
        assert f"{name} ({token[:4]}...{token[-4:]})" in page
        assert token not in page


def test_a_name_or_id_that_does_not_print_cannot_steer_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """A catalog's slug or outcome, or an id, with an escape sequence or a line break: shown with
    `?` for each character that does not print, one holding a line, nothing for the terminal."""
    token = "7" * 77
    names = {f"polymarket:{token}": "will-it\x1b[2J-happen\n / Ye\ts", "deribit:BTC\x1b]0;x\x07": "x"}
    assert instrument_text(f"polymarket:{token}", names) == "will-it?[2J-happen? / Ye?s (7777...7777)"
    assert instrument_text("deribit:ETH\r\n-PERP", names) == "ETH??-PERP"
    result = BacktestResult(
        events=1,
        frames=1,
        malformed_frames=0,
        bad_lines=0,
        duration_s=1.0,
        start_ns=0,
        end_ns=10**9,
        strategies={
            "s": StrategyResult(
                orders=1,
                fills=1,
                rejected=0,
                errors=0,
                fees=Decimal(0),
                realized_pnl=Decimal(0),
                unrealized_pnl=Decimal(0),
                net_pnl=Decimal(0),
                max_drawdown=0.0,
                sharpe=None,
                turnover=Decimal(0),
                positions={f"polymarket:{token}": "5", "deribit:ETH\r\n-PERP": "1"},
                conflated=0,
                merged=0,
                dropped=0,
                equity_curve=((0, 0.0), (10**9, 0.0)),
            )
        },
        decoder_stats={},
        instrument_names=names,
    )
    monkeypatch.setenv("COLUMNS", "200")
    out = io.StringIO()
    print_summary(result, out)
    text = out.getvalue()
    assert "\x1b" not in text and "\r" not in text and "\t" not in text, repr(text)
    assert "  will-it?[2J-happen? / Ye?s (7777...7777) 5\n" in text, text
    assert "  ETH??-PERP 1\n" in text, text
