"""Polymarket tokens are 77-digit ids: a backtest's summary and charts name them as the venue's
catalog does (the market's slug and the outcome, the id shortened after it), while the JSON
report keeps every id exactly as the venue wrote it (DESIGN.md's report contract) and lists the
names beside them, under `instrument_names`, which the HTML report draws from."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest
import trio

from tradingd.cli.recorded import recorded_catalogs
from tradingd.connectors.polymarket import PLUGIN as POLYMARKET
from tradingd.engine import BookUpdate, MarketEvent, Strategy, Subscription
from tradingd.engine.backtest.kernel import BacktestKernel, DataSource
from tradingd.engine.backtest.report import print_summary, report_dict
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
