"""An order's `tag` (the strategy's note on why it traded): validated where the request is made,
logged with the order, journaled with its request, carried to the backtest's fills and the
report's rows (an 8th element), shown in the HTML report; a report from before tags (7-element
rows) still draws. And `StrategyContext.fee`: what the venue's schedule charges, as booked."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
import trio
from hypothesis import given
from hypothesis import strategies as st

from tests.support import deribit_frames as F
from tests.support.flows import make_flow
from tests.support.helpers import PERP, request
from tradingd.connectors.deribit import PLUGIN
from tradingd.engine import (
    BookUpdate,
    Fill,
    MarketEvent,
    OrderRequest,
    Strategy,
    StrategyError,
    Subscription,
    Ticker,
    TimeInForce,
)
from tradingd.engine.backtest.kernel import BacktestKernel, BacktestSettings, DataSource
from tradingd.engine.backtest.report import report_dict
from tradingd.engine.reports.html import render_run
from tradingd.engine.store.journal import OrderJournal

S = 1_000_000_000


# -- the request -----------------------------------------------------------------------------


def _req(tag: object) -> OrderRequest:
    return OrderRequest(venue="deribit", instrument="X", side="buy", size="1", price="1", tag=tag)  # type: ignore[arg-type]


def test_a_tag_is_short_printable_text_or_refused() -> None:
    assert _req("").tag == "" and OrderRequest(venue="d", instrument="X", side="buy", size="1").tag == ""
    assert _req("gap=+0.0620 p_model=0.4410").tag == "gap=+0.0620 p_model=0.4410"
    assert len(_req("x" * 200).tag) == 200
    with pytest.raises(ValueError, match="at most 200 printable characters, got 201 characters"):
        _req("x" * 201)
    with pytest.raises(ValueError, match="not printable"):
        _req("two\nlines")
    with pytest.raises(TypeError, match="expected a string, got float"):
        _req(0.06)


@given(st.text(max_size=260))
def test_any_text_is_taken_exactly_when_it_is_at_most_200_printable_characters(text: str) -> None:
    fits = len(text) <= 200 and text.isprintable()
    try:
        made = _req(text)
    except ValueError:
        assert not fits
    else:
        assert fits and made.tag == text


# -- the log line and the journal --------------------------------------------------------------


def test_the_order_sent_line_carries_the_tag_when_there_is_one() -> None:
    flow = make_flow(None)
    with structlog.testing.capture_logs() as logs:
        flow.accept(request(size="10", price="90000", instrument=PERP.symbol, cid="s-1", tag="why"), now_ns=S)
        flow.accept(request(size="10", price="90000", instrument=PERP.symbol, cid="s-2"), now_ns=S)
    sent = [e for e in logs if e["event"] == "order.sent"]
    assert [e["client_order_id"] for e in sent] == ["s-1", "s-2"]
    assert sent[0]["tag"] == "why" and "tag" not in sent[1]


def test_the_journal_keeps_the_tag_and_reads_requests_written_before_tags(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    flow = make_flow(OrderJournal(path))
    flow.accept(
        request(size="10", price="90000", instrument=PERP.symbol, cid="s-1", tag="gap=+0.05"), now_ns=S
    )
    flow.accept(request(size="10", price="90000", instrument=PERP.symbol, cid="s-2"), now_ns=S)
    assert {r.request.client_order_id: r.request.tag for r in OrderJournal(path).orders()} == {
        "s-1": "gap=+0.05",
        "s-2": "",
    }
    # A journal written before tags existed: its requests have no "tag" key.
    db = sqlite3.connect(path)
    (old,) = db.execute("SELECT request FROM orders WHERE client_order_id = 's-1'").fetchone()
    stripped = {k: v for k, v in orjson.loads(old).items() if k != "tag"}
    assert len(stripped) == len(orjson.loads(old)) - 1
    db.execute(
        "UPDATE orders SET request = ? WHERE client_order_id = 's-1'", (orjson.dumps(stripped).decode(),)
    )
    db.commit()
    db.close()
    restored = {r.request.client_order_id: r.request for r in OrderJournal(path).orders()}
    assert restored["s-1"].tag == "" and restored["s-1"].price == Decimal("90000")


# -- the backtest's fills, the report's rows, the HTML table -----------------------------------


class Tagged(Strategy):
    """On the first option ticker, buys 1 at the ask with a tag; on the next, sells it back at the
    bid without one."""

    def __init__(self, tag: str) -> None:
        super().__init__("tagged")
        self.tag = tag
        self.step = 0

    def required_subscriptions(self) -> list[Subscription]:
        return [Subscription("deribit", F.OPTION, {"ticker"})]

    async def on_event(self, event: MarketEvent) -> None:
        if not isinstance(event, Ticker) or event.ask is None or event.bid is None:
            return
        self.step += 1
        if self.step == 1:
            await self.ctx.buy(
                "deribit", F.OPTION, "1", price=str(event.ask), time_in_force="ioc", tag=self.tag
            )
        elif self.step == 2:
            await self.ctx.sell("deribit", F.OPTION, "1", price=str(event.bid), time_in_force=TimeInForce.IOC)


def _frames() -> list[tuple[int, bytes]]:
    out = [
        (0, F.instruments()),
        (1, F.ticker(F.PERP, 1, bid=89999.5, ask=90000.0, mark=90000.0, index=90000.0)),
    ]
    for i, ms in enumerate((1_000, 61_000)):
        out.append((ms, F.snapshot(F.OPTION, ms, 10 + i, [(0.049, 5.0)], [(0.05, 5.0)])))
        out.append((ms + 1, F.ticker(F.OPTION, ms + 1, bid=0.049, ask=0.05, mark=0.0495, index=90000.0)))
    return out


def test_fills_carry_their_orders_tag_to_the_report_and_its_page(tmp_path: Path) -> None:
    tag = "gap=+0.0620 p_model=0.4410 <b>&"  # escaped on the page
    kernel = BacktestKernel(
        {"deribit": PLUGIN},
        [DataSource("deribit", F.write(tmp_path / "t.rec", _frames()))],
        [Tagged(tag)],
        BacktestSettings(latency_ms=10),
    )
    result = trio.run(kernel.run)
    series = result.strategies["tagged"].series
    assert series is not None
    assert [(f.side, f.tag) for f in series.fills] == [("buy", tag), ("sell", "")]
    report = report_dict(result)
    rows = report["strategies"]["tagged"]["series"]["fills"]
    assert [len(r) for r in rows] == [8, 8]
    assert [(r[2], r[6], r[7]) for r in rows] == [("buy", "taker", tag), ("sell", "taker", "")]
    run = tmp_path / "run"
    run.mkdir()
    (run / "report.json").write_bytes(orjson.dumps(report))
    render_run(run)
    page = (run / "report.html").read_text()
    assert "<th>tag</th>" in page
    assert "<td class='tag'>gap=+0.0620 p_model=0.4410 &lt;b&gt;&amp;</td>" in page
    assert page.count("<td class='tag'>") == 2  # the untagged sell has an empty cell


def test_a_report_from_before_tags_still_draws(tmp_path: Path) -> None:
    kernel = BacktestKernel(
        {"deribit": PLUGIN},
        [DataSource("deribit", F.write(tmp_path / "t.rec", _frames()))],
        [Tagged("")],
    )
    report: dict[str, Any] = report_dict(trio.run(kernel.run))
    rows = report["strategies"]["tagged"]["series"]["fills"]
    report["strategies"]["tagged"]["series"]["fills"] = [r[:7] for r in rows]  # the old shape
    run = tmp_path / "run"
    run.mkdir()
    (run / "report.json").write_bytes(orjson.dumps(report))
    render_run(run)
    page = (run / "report.html").read_text()
    assert "<th>liquidity</th></tr>" in page and "<th>tag</th>" not in page
    assert page.count("<td>taker</td></tr>") == 2  # both fills listed, no tag cell


# -- the fee a strategy can ask for ------------------------------------------------------------


def test_ctx_fee_is_what_the_simulated_venue_books(tmp_path: Path) -> None:
    """Polymarket's taker fee, size x rate x p(1-p) floored to 0.00001 pUSD (connectors/polymarket
    /fees.py), asked before the order and then booked on its fill; Deribit's option fee likewise."""
    from tradingd.connectors.polymarket import PLUGIN as POLYMARKET
    from tradingd.simulators.polymarket import SIMULATOR as POLYMARKET_SIM

    path = tmp_path / "pm.rec.zst"
    POLYMARKET_SIM.generate_sample(path, {"hours": 0.1, "seed": 3})
    asked: list[tuple[str, Decimal, Decimal, tuple[Decimal, str], Decimal | None]] = []
    fills: list[Fill] = []
    errors: list[str] = []

    class Asks(Strategy):
        async def on_start(self) -> None:
            self.ctx.subscribe(
                Subscription("polymarket", i.symbol) for i in self.ctx.instruments("polymarket")
            )
            for venue, symbol in (("deribit", "BTC-PERPETUAL"), ("polymarket", "no-such-token")):
                try:
                    self.ctx.fee(venue, symbol, "0.5", "1")
                except StrategyError as exc:
                    errors.append(str(exc))

        async def on_event(self, event: MarketEvent) -> None:
            if isinstance(event, Fill):
                fills.append(event)
            elif isinstance(event, BookUpdate) and event.best_ask is not None and not asked:
                inst = self.ctx.instrument("polymarket", event.instrument)
                assert inst is not None
                price, size = Decimal(str(event.best_ask)), inst.min_size * 3
                asked.append(
                    (
                        event.instrument,
                        price,
                        size,
                        self.ctx.fee("polymarket", event.instrument, price, size),
                        inst.taker_fee,
                    )
                )
                await self.ctx.buy("polymarket", event.instrument, size, price=price, time_in_force="ioc")

    kernel = BacktestKernel({"polymarket": POLYMARKET}, [DataSource("polymarket", path)], [Asks("a")])
    trio.run(kernel.run)
    (token, price, size, (fee, currency), rate) = asked[0]
    assert rate is not None and rate > 0, "the sample's market charges no taker fee: nothing to compare"
    by_hand = (size * rate * price * (1 - price)).quantize(Decimal("0.00001"), rounding="ROUND_DOWN")
    assert fee == by_hand > 0 and currency == "pUSD"
    mine = [f for f in fills if f.instrument == token]
    assert mine and sum(f.size for f in mine) == size
    assert sum(f.fee for f in mine) == fee  # one fill at the ask: the same fee, to the unit
    assert errors[0].startswith("no fee schedule for 'deribit'")
    assert errors[1] == "unknown instrument polymarket:no-such-token: no fee to compute"


async def test_ctx_fee_in_paper_mode_is_what_the_paper_fill_books(nursery: trio.Nursery) -> None:
    """The live engine lends each venue's fee model too: paper mode's fill of a tagged order books
    the fee `ctx.fee` answered for it (Deribit's perpetual: 0.05% taker of the USD size, in BTC at
    the fill's price, by the schedule's own arithmetic in connectors/deribit/fees.py)."""
    import functools

    from tests.support.live_support import Probe, paper_deribit, until
    from tradingd.engine import OrderState
    from tradingd.simulators.deribit.simulator import DeribitSimulator, serve

    simulator = DeribitSimulator(seed=5, step_s=0.05, heartbeat_scale=0.1)
    binds = await nursery.start(functools.partial(serve, simulator))
    probe = Probe("p", [Subscription("deribit", "BTC-PERPETUAL", {"book", "ticker"})])
    engine, live = await paper_deribit(nursery, str(binds[0]).removeprefix("http://"), probe)

    def book_ready() -> bool:
        book = live.decoder.book("BTC-PERPETUAL")
        return book is not None and bool(book.valid)

    await until(book_ready, what="the perpetual's book")
    asks = await until(lambda: [t.ask for t in probe.of(Ticker, "BTC-PERPETUAL") if t.ask], what="an ask")
    answer = await probe.ctx.buy(
        "deribit", "BTC-PERPETUAL", 100, price=str(round(asks[-1] * 1.01)), time_in_force="ioc", tag="paper"
    )
    assert answer.status is OrderState.FILLED
    (fill,) = await until(lambda: probe.mine(answer.client_order_id) and probe.of(Fill), what="the fill")
    assert (fill.fee, fill.fee_currency) == probe.ctx.fee("deribit", "BTC-PERPETUAL", fill.price, fill.size)
    assert fill.fee > 0
    order = engine.flow.tracker.get(answer.client_order_id)
    assert order is not None and order.request.tag == "paper"
