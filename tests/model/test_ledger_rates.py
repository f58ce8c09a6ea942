"""The ledger's rates and arithmetic after review: numpy numbers, a zero rate, the order waiting
fills are booked in, a voided fill's rates, zero sizes, exact closes (numbers by hand)."""

from __future__ import annotations

import decimal
import io
import sqlite3
from collections import deque
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import attrs
import msgspec
import numpy as np
import pytest

from tests.support.helpers import OPTION, PERP, registry, request, ticker
from tests.support.results import backtest_result, strategy_result
from tradingd.engine import Fill, FillReversal, Instrument, InstrumentKind, Liquidity, OrderRequest, Side
from tradingd.engine.backtest.kernel import BacktestResult
from tradingd.engine.backtest.report import print_summary, report_dict
from tradingd.engine.model import InstrumentRegistry, Ledger, MarketState
from tradingd.engine.model.ledger import CONTEXT, Booking
from tradingd.engine.model.money import BadNumber, from_float, to_decimal
from tradingd.engine.runtime import OrderFlow
from tradingd.engine.store.journal import OrderJournal

S = 1_000_000_000
OPT = OPTION.symbol


def ofill(
    side: str,
    size: str,
    price: str,
    *,
    tid: str = "t",
    fee: str = "0",
    idx: float | None = None,
    oid: str | None = None,
    inst: str = OPT,
) -> Fill:
    return Fill(
        venue="deribit",
        instrument=inst,
        ts_exchange=None,
        ts_local=5 * S,
        order_id=oid,
        trade_id=tid,
        side=Side(side),
        price=Decimal(price),
        size=Decimal(size),
        fee=Decimal(fee),
        fee_currency="BTC",
        liquidity=Liquidity.TAKER,
        index_price=idx,
    )


def reversal_of(f: Fill) -> FillReversal:
    return FillReversal(
        venue=f.venue,
        instrument=f.instrument,
        ts_exchange=None,
        ts_local=6 * S,
        order_id=f.order_id,
        client_order_id=f.client_order_id,
        trade_id=f.trade_id,
        side=f.side,
        price=f.price,
        size=f.size,
        fee=f.fee,
        fee_currency=f.fee_currency,
        reason="voided",
    )


def flow_on(journal: OrderJournal | None, market: MarketState | None = None) -> OrderFlow:
    market = market if market is not None else MarketState(registry())
    return OrderFlow(market.registry, market, lambda _: None, journal=journal)


def restored(path: Path) -> OrderFlow:
    market = MarketState(InstrumentRegistry())
    flow = flow_on(None, market)
    flow.restore(OrderJournal(path), now_ns=10 * S)
    return flow


def ledger_rows(path: Path) -> list[tuple[str, str | None, float | None, float | None, float | None]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(
            "SELECT kind, trade_id, rate_quote, rate_settle, rate_fee FROM ledger ORDER BY seq"
        ).fetchall()
    finally:
        db.close()


# -- 1. numpy numbers ----------------------------------------------------------------------------
def test_numpy_numbers_convert_to_the_decimal_they_show() -> None:
    assert OrderRequest(
        venue="deribit", instrument=OPT, side="buy", size=1, price=np.float64(0.05)
    ).price == (Decimal("0.05"))
    assert to_decimal(np.float64(0.1)) == Decimal("0.1")
    assert from_float(np.float64(97123.5)) == Decimal("97123.5")
    assert to_decimal(np.float32(0.05)) == Decimal("0.05")
    assert to_decimal(np.int64(3)) == Decimal(3)
    with pytest.raises(BadNumber, match="size"):
        to_decimal(np.float64("nan"), "size")
    with pytest.raises(BadNumber, match="bool"):
        to_decimal(np.bool_(True))


# -- 2. a rate of 0 is no rate -------------------------------------------------------------------
def test_a_zero_index_is_never_journaled_and_a_restart_books_what_live_booked(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = OrderJournal(path)
    market = MarketState(registry())
    flow = flow_on(journal, market)
    market.on_ticker(ticker(PERP.symbol, index=0.0, mark=0.0))  # the venue had no index
    order = flow.accept(request(size="1", price="0.05", cid="s-1"), now_ns=1 * S)
    flow.assign_order_id(order, "V1")
    flow.on_fill(ofill("buy", "1", "0.05", tid="T1", oid="V1", fee="0.0001"))
    assert flow.waiting_fills() == 1
    assert ledger_rows(path)[0][2:] == (None, None, None)  # not 0.0
    market.on_ticker(ticker(PERP.symbol, index=100_000.0, mark=100_000.0))
    live = flow.ledger("s")
    assert live.fees_usd == Decimal("10") and flow.waiting_fills() == 0
    assert ledger_rows(path)[0][2:] == (100_000.0, 100_000.0, 100_000.0)
    journal.close()

    again = restored(path)
    again.market.on_ticker(ticker(OPT, index=50_000.0, mark=0.05))  # another run's first index
    assert again.ledger("s").fees_usd == Decimal("10") and again.waiting_fills() == 0


def test_a_zero_rate_from_an_older_journal_is_replaced_once_a_rate_is_known(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = OrderJournal(path)
    flow = flow_on(journal)
    order = flow.accept(request(size="1", price="0.05", cid="s-1"), now_ns=1 * S)
    flow.assign_order_id(order, "V1")
    flow.on_fill(ofill("buy", "1", "0.05", tid="T1", oid="V1", fee="0.0001"))
    journal.close()
    db = sqlite3.connect(path)  # what an older version wrote: a rate of 0
    db.execute("UPDATE ledger SET rate_quote = 0.0, rate_settle = 0.0, rate_fee = 0.0")
    db.commit()
    db.close()
    again = restored(path)
    assert again.waiting_fills() == 1
    again.market.on_ticker(ticker(OPT, index=80_000.0, mark=0.05))
    assert again.ledger("s").fees_usd == Decimal("8")
    assert ledger_rows(path)[0][2:] == (80_000.0, 80_000.0, 80_000.0)
    third = restored(path)
    third.market.on_ticker(ticker(OPT, index=50_000.0, mark=0.05))
    assert third.ledger("s").fees_usd == Decimal("8")


def test_a_fill_without_a_trade_id_gets_its_rates_journaled(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = OrderJournal(path)
    flow = flow_on(journal)
    order = flow.accept(request(size="1", price="0.05", cid="s-1"), now_ns=1 * S)
    flow.assign_order_id(order, "V1")
    flow.on_fill(ofill("buy", "1", "0.05", tid="", oid="V1", fee="0.0001"))
    assert flow.waiting_fills() == 1
    flow.market.on_ticker(ticker(OPT, index=100_000.0, mark=0.05))
    assert ledger_rows(path) == [("fill", None, 100_000.0, 100_000.0, 100_000.0)]
    journal.close()
    again = restored(path)
    again.market.on_ticker(ticker(OPT, index=50_000.0, mark=0.05))
    assert again.ledger("s").fees_usd == Decimal("10")


# -- 3. waiting fills drain at the earliest known rate -------------------------------------------
def test_a_waiting_fill_is_booked_at_the_index_a_later_fill_carried() -> None:
    market = MarketState(registry())
    ledger = Ledger("s", market)
    ledger.on_fill(ofill("buy", "0.05", "0.05", tid="1"), OPTION)  # no rate anywhere
    assert ledger.waiting == 1
    ledger.on_fill(ofill("sell", "0.05", "0.05", tid="2", idx=100_000.0), OPTION)
    assert ledger.waiting == 0  # the first no longer waits: a rate is known
    assert ledger.realized_usd == 0  # both at 100k, not the first at a later 120k
    market.on_ticker(ticker(PERP.symbol, index=120_000.0, mark=120_000.0))
    assert ledger.realized_usd == 0
    # The fill's index is for booking only, not a mark.
    assert market.usd_rate("deribit", "BTC") == 120_000.0


def test_another_strategys_waiting_fill_is_booked_at_a_fill_index_too() -> None:
    market = MarketState(registry())
    a, b = Ledger("a", market), Ledger("b", market)
    a.on_fill(ofill("buy", "1", "0.05", tid="1"), OPTION)
    b.on_fill(ofill("buy", "1", "0.06", tid="2", idx=90_000.0), OPTION)
    assert a.waiting == 0 and a.positions[("deribit", OPT)].cost == Decimal("4500")  # 0.05 x 90k


def test_a_repeated_fill_with_an_index_books_its_own_waiting_entry(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = OrderJournal(path)
    flow = flow_on(journal)
    order = flow.accept(request(size="1", price="0.05", cid="s-1"), now_ns=1 * S)
    flow.assign_order_id(order, "V1")
    flow.on_fill(ofill("buy", "1", "0.05", tid="T1", oid="V1", fee="0.0001"))
    assert flow.waiting_fills() == 1
    journal.close()
    again = restored(path)
    again.journal = again.tracker.archive = OrderJournal(path)
    assert again.waiting_fills() == 1
    # The venue's catch-up of the same trade, with its index: not booked twice, but priced.
    assert again.on_fill(ofill("buy", "1", "0.05", tid="T1", oid="V1", fee="0.0001", idx=70_000.0)) is None
    ledger = again.ledger("s")
    assert again.waiting_fills() == 0 and ledger.fills == 1
    assert ledger.fees_usd == Decimal("7") and ledger.position("deribit", OPT) == 1


# -- 4. a reversal at the fill's rates -----------------------------------------------------------
def test_a_reversal_takes_the_fill_back_at_the_rates_it_was_booked_at() -> None:
    market = MarketState(registry())
    market.on_ticker(ticker(PERP.symbol, index=100_000.0, mark=100_000.0))
    ledger = Ledger("s", market)
    ledger.on_fill(ofill("buy", "1", "0.05", tid="a"), OPTION)
    market.on_ticker(ticker(PERP.symbol, index=110_000.0, mark=110_000.0))
    b = ofill("buy", "1", "0.05", tid="b", fee="0.0003")
    ledger.on_fill(b, OPTION)
    market.on_ticker(ticker(PERP.symbol, index=120_000.0, mark=120_000.0))
    ledger.reverse(reversal_of(b), OPTION)
    pos = ledger.positions[("deribit", OPT)]
    assert (pos.booked, pos.cost, pos.turnover_usd) == (Decimal(1), Decimal("5000"), Decimal("5000"))
    assert ledger.fees_usd == 0 and ledger.realized_usd == 0


def test_a_reversal_is_journaled_and_restored_at_the_fills_rates(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = OrderJournal(path)
    market = MarketState(registry())
    flow = flow_on(journal, market)
    market.on_ticker(ticker(OPT, index=100_000.0, mark=0.05))
    order = flow.accept(request(size="2", price="0.05", cid="s-1"), now_ns=1 * S)
    flow.assign_order_id(order, "V1")
    first = ofill("buy", "1", "0.05", tid="T1", oid="V1", fee="0.0003")
    flow.on_fill(first)
    market.on_ticker(ticker(OPT, index=130_000.0, mark=0.05))
    booked = flow.on_reversal(reversal_of(msgspec.structs.replace(first, client_order_id="s-1")))
    assert booked is not None
    assert [r[2:] for r in ledger_rows(path)] == [(100_000.0,) * 3, (100_000.0,) * 3]
    ledger = flow.ledger("s")
    assert (ledger.fees_usd, ledger.realized_usd, ledger.position("deribit", OPT)) == (Decimal(0),) * 3
    journal.close()
    again = restored(path).ledger("s")
    assert (again.fees_usd, again.realized_usd, again.position("deribit", OPT)) == (Decimal(0),) * 3


def test_a_reversal_of_a_waiting_fill_waits_and_takes_its_rates() -> None:
    market = MarketState(registry())
    ledger = Ledger("s", market)
    f = ofill("buy", "1", "0.05", tid="w", fee="0.0003")
    ledger.on_fill(f, OPTION)
    ledger.reverse(reversal_of(f), OPTION)
    assert ledger.waiting == 2
    market.on_ticker(ticker(OPT, index=100_000.0, mark=0.05))
    assert ledger.waiting == 0 and ledger.fees_usd == 0 and ledger.position("deribit", OPT) == 0


# -- 5. zero sizes, failing listeners ------------------------------------------------------------
SHARE = Instrument(
    venue="polymarket",
    symbol="123",
    kind=InstrumentKind.SPOT,
    base="123",
    quote="PUSD",
    settle="PUSD",
    tick_size="0.01",
    min_size="1",
    contract_size="1",
)


def share_fill(side: str, size: str, price: str, fee: str = "0", fee_currency: str = "123") -> Fill:
    return Fill(
        venue="polymarket",
        instrument="123",
        ts_exchange=None,
        ts_local=0,
        trade_id="t",
        side=Side(side),
        price=Decimal(price),
        size=Decimal(size),
        fee=Decimal(fee),
        fee_currency=fee_currency,
        liquidity=Liquidity.TAKER,
    )


def test_an_apply_of_size_zero_changes_nothing() -> None:
    ledger = Ledger("s", MarketState(InstrumentRegistry([SHARE])))
    ledger.on_fill(share_fill("sell", "10", "0.5", fee_currency="PUSD"), SHARE)
    ledger.on_fill(share_fill("buy", "10", "0.4"), SHARE)  # closes; its in-kind fee is 0
    assert ledger.realized_usd == Decimal("1") and ledger.position("polymarket", "123") == 0
    pos = ledger.positions[("polymarket", "123")]
    assert pos.apply(Decimal(0), Decimal("0.3"), Decimal(1), Decimal(1)) == 0 and pos.cost == 0


def test_a_failing_rate_listener_is_alerted_and_the_others_still_hear() -> None:
    market = MarketState(registry())
    heard: list[tuple[str, str]] = []

    def broken(venue: str, currency: str) -> None:
        raise ZeroDivisionError("a ledger bug")

    market.on_first_rate[:0] = [broken]
    market.on_first_rate.append(lambda v, c: heard.append((v, c)))
    market.on_ticker(ticker(PERP.symbol, index=100_000.0, mark=100_000.0))  # does not raise
    assert heard == [("deribit", "BTC")] and market.listener_errors == 1
    assert market.usd_rate("deribit", "BTC") == 100_000.0


# -- 6. exact: a cost basis, the ledger's own context ---------------------------------------------
def test_averaging_up_then_closing_all_realizes_exactly() -> None:
    market = MarketState(registry())
    market.on_ticker(ticker(PERP.symbol, index=1.0, mark=1.0))
    ledger = Ledger("s", market)
    ledger.on_fill(ofill("buy", "1", "1"), OPTION)
    ledger.on_fill(ofill("buy", "2", "2"), OPTION)
    assert ledger.on_fill(ofill("sell", "3", "2"), OPTION) == Decimal(1)
    # Inverse: 30 USD at 3, 40 at 7, all 70 sold at 2: the coins they cost (10 + 40/7, to 34
    # digits) less the 35 coins the sale brings, at 1 USD per coin; flat with no basis left.
    ledger.on_fill(ofill("buy", "30", "3", inst=PERP.symbol), PERP)
    ledger.on_fill(ofill("buy", "40", "7", inst=PERP.symbol), PERP)
    realized = ledger.on_fill(ofill("sell", "70", "2", inst=PERP.symbol), PERP)
    assert realized == Decimal("-19.28571428571428571428571428571429")  # 15.71428... - 35
    assert ledger.positions[("deribit", PERP.symbol)].cost == 0


def test_a_strategys_decimal_context_does_not_change_the_ledger() -> None:
    def run() -> tuple[Decimal, Decimal]:
        market = MarketState(registry())
        market.on_ticker(ticker(PERP.symbol, index=97_123.45, mark=97_123.45))
        ledger = Ledger("s", market)
        ledger.on_fill(ofill("buy", "1.3", "0.0512", fee="0.00031"), OPTION)
        ledger.on_fill(ofill("buy", "0.7", "0.0533"), OPTION)
        ledger.on_fill(ofill("sell", "1.1", "0.0611"), OPTION)
        return ledger.realized_usd, ledger.fees_usd

    expected = run()
    with decimal.localcontext() as ctx:
        ctx.prec = 6
        ctx.rounding = decimal.ROUND_DOWN
        assert run() == expected


# -- minor ---------------------------------------------------------------------------------------
def test_a_fee_in_contracts_counts_the_contract_size() -> None:
    lots = attrs.evolve(SHARE, contract_size="10")
    ledger = Ledger("s", MarketState(InstrumentRegistry([lots])))
    ledger.on_fill(share_fill("buy", "5", "0.5", fee="1"), lots)
    assert ledger.fees_usd == Decimal("5")  # 1 contract = 10 shares at 0.5 pUSD


def test_a_coin_quoted_pairs_fill_index_is_not_a_usd_rate() -> None:
    eth_btc = Instrument(
        venue="deribit",
        symbol="ETH_BTC",
        kind=InstrumentKind.SPOT,
        base="ETH",
        quote="BTC",
        settle="BTC",
        tick_size="0.00001",
        min_size="0.0001",
    )
    eth_perp = attrs.evolve(PERP, symbol="ETH-PERPETUAL", base="ETH", settle="ETH")
    market = MarketState(InstrumentRegistry([eth_btc, PERP, eth_perp]))
    ledger = Ledger("s", market)
    f = Fill(
        venue="deribit",
        instrument="ETH_BTC",
        ts_exchange=None,
        ts_local=0,
        trade_id="e",
        side=Side.BUY,
        price=Decimal("0.03"),
        size=Decimal("1"),
        fee=Decimal("0.01"),
        fee_currency="ETH",
        liquidity=Liquidity.TAKER,
        index_price=0.03,  # ETH in BTC: not USD per ETH
    )
    market.on_ticker(ticker(PERP.symbol, index=100_000.0, mark=100_000.0))
    ledger.on_fill(f, eth_btc)
    assert ledger.waiting == 1  # its ETH fee not booked at 0.03 USD per ETH
    market.on_ticker(ticker("ETH-PERPETUAL", index=3_000.0, mark=3_000.0))
    assert ledger.waiting == 0 and ledger.fees_usd == Decimal("30")
    assert ledger.positions[("deribit", "ETH_BTC")].avg == Decimal("3000")  # 0.03 x 100k


def test_a_ticker_before_its_instrument_is_known_does_not_hide_the_rate_for_ever() -> None:
    reg = InstrumentRegistry([OPTION])
    market = MarketState(reg)
    ledger = Ledger("s", market)
    ledger.on_fill(ofill("buy", "1", "0.05"), OPTION)
    market.on_ticker(ticker(PERP.symbol, index=100_000.0, mark=100_000.0))  # PERP not known yet
    reg.add(PERP)
    market.on_ticker(ticker(PERP.symbol, index=100_000.0, mark=100_000.0))
    assert market.usd_rate("deribit", "BTC") == 100_000.0 and ledger.waiting == 0


def test_a_delivery_price_is_booked_and_journaled_as_the_venue_gave_it(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = OrderJournal(path)
    market = MarketState(registry())
    market.on_ticker(ticker(OPT, index=100_000.0, mark=0.05))
    flow = flow_on(journal, market)
    order = flow.accept(request(size="1", price="0.05", cid="s-1"), now_ns=1 * S)
    flow.assign_order_id(order, "V1")
    flow.on_fill(ofill("buy", "1", "0.05", tid="T1", oid="V1"))
    price = Decimal("0.0512345678901234567")  # more digits than a float has
    settled = flow.settle("deribit", OPT, price, now_ns=7 * S)
    assert settled is not None
    realized = settled["s"]
    assert realized == price * 100_000 - 5000
    journal.close()
    assert restored(path).ledger("s").realized_usd == realized


def test_the_waiting_warning_names_only_a_fill_that_waits() -> None:
    events: list[str] = []

    class Log:
        def __getattr__(self, level: str) -> object:
            return lambda event, **kw: events.append(event)

    market = MarketState(registry())
    flow = OrderFlow(market.registry, market, lambda _: None, log=Log())  # type: ignore[arg-type]
    for n, cid in enumerate(("s-1", "s-2")):
        order = flow.accept(request(size="1", price="0.05", cid=cid), now_ns=1 * S)
        flow.assign_order_id(order, f"V{n}")
    flow.on_fill(ofill("buy", "1", "0.05", tid="T1", oid="V0"))
    assert events.count("fill.waiting_for_rate") == 1
    # A fill carrying its index: booked, and it books the one before it.
    flow.on_fill(ofill("buy", "1", "0.05", tid="T2", oid="V1", idx=100_000.0))
    assert events.count("fill.waiting_for_rate") == 1 and flow.waiting_fills() == 0


def _result(**kw: object) -> BacktestResult:
    s = strategy_result(
        orders=1,
        fills=1,
        fees=Decimal(1),
        realized_pnl=Decimal(2),
        net_pnl=Decimal(1),
        turnover=Decimal(10),
        **kw,
    )
    return backtest_result({"x": s}, events=1, frames=1, duration_s=1.0)


def test_the_report_shows_funding_and_waiting_fills_only_when_there_are_some() -> None:
    plain = report_dict(_result())["strategies"]["x"]
    assert "funding" not in plain and "waiting_fills" not in plain
    some = report_dict(_result(funding=Decimal("-1.25"), waiting_fills=2))["strategies"]["x"]
    assert some["funding"] == -1.25 and some["waiting_fills"] == 2
    assert {k: v for k, v in some.items() if k not in ("funding", "waiting_fills")} == plain
    out = io.StringIO()
    print_summary(_result(funding=Decimal("-1.25"), waiting_fills=2), out)
    assert "funding: -1.25" in out.getvalue() and "2 fills never found a USD rate" in out.getvalue()


def test_a_charted_fill_fee_is_unknown_not_zero_while_no_rate_is_known(tmp_path: Path) -> None:
    from tradingd.connectors.deribit import PLUGIN
    from tradingd.engine import MarketEvent, Strategy
    from tradingd.engine.backtest.kernel import BacktestKernel, BacktestSettings, DataSource

    class Idle(Strategy):
        async def on_event(self, event: MarketEvent) -> None:
            return None

    data = tmp_path / "empty.rec"
    data.write_text("")
    kernel = BacktestKernel(
        {"deribit": PLUGIN}, [DataSource("deribit", data)], [Idle("i")], BacktestSettings()
    )
    kernel.registry.add(OPTION)
    (slot,) = kernel.slots
    f = msgspec.structs.replace(ofill("buy", "1", "0.05", fee="0.0003"), strategy="i")
    kernel.flow.ledger("i").on_fill(f, OPTION)
    kernel._record_fill(slot, f)
    assert slot.fills[-1].fee_usd is None  # not 0: no BTC rate yet
    kernel.market.on_ticker(ticker(OPT, index=100_000.0, mark=0.05))
    kernel._record_fill(slot, msgspec.structs.replace(f, trade_id="t2"))
    assert slot.fills[-1].fee_usd == pytest.approx(30.0)


class _NoScan(deque[Booking]):
    """A waiting queue that refuses to be walked: what must not grow with the queue."""

    def __iter__(self) -> Iterator[Booking]:
        raise AssertionError("the whole waiting queue was walked")


def test_whether_a_fill_waits_does_not_walk_the_waiting_queue() -> None:
    # With no USD rate for a whole run (an L2-only recording), every fill waits: asking whether
    # the one just booked waits must not cost the length of the queue (quadratic in the fills).
    market = MarketState(registry())
    ledger = Ledger("s", market)
    fills = [ofill("buy", "1", "0.05", tid=str(n)) for n in range(3)]
    for f in fills[:2]:
        ledger.on_fill(f, OPTION)
    pos = ledger.positions[("deribit", OPT)]
    pos.waiting = _NoScan(pos.waiting)
    ledger.on_fill(fills[2], OPTION)
    assert ledger.waiting == 3
    assert ledger.waits(fills[2])
    # A fill booked at once (a rate known, the queue drained) does not wait.
    booked = ofill("sell", "1", "0.05", tid="9", idx=100_000.0)
    ledger.on_fill(booked, OPTION)
    assert ledger.waiting == 0 and not ledger.waits(booked)


def test_equity_with_nothing_open_is_computed_at_the_ledgers_34_digits() -> None:
    # equity_usd's shortcut (nothing booked open: no unrealized PnL) must round as the ledger's
    # context does, whatever the ambient one, and as the full sum does.
    market = MarketState(registry())
    ledger = Ledger("s", market)
    ledger.on_fill(ofill("buy", "1", "0.05", tid="1"), OPTION)  # a position, waiting: booked 0
    ledger.realized_usd = Decimal("1234567890.123456789012345678901234567")
    ledger.fees_usd = Decimal("0.000000000000000000000000000000777")
    with decimal.localcontext(decimal.Context(prec=5)):
        equity = ledger.equity_usd()
    with decimal.localcontext(CONTEXT):
        expected = ledger.realized_usd + Decimal(0) - ledger.fees_usd
    assert equity == expected and str(equity) == str(expected)
    assert str(expected) != str(ledger.realized_usd - ledger.fees_usd)  # it did round
