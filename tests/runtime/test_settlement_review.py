"""The review of live expiry settlement and perpetual funding (issue 13): funding split by the
positions held at the payment's time, delivery prices and funding amounts checked as money, a
journal row that cannot be applied skipped at restart, one journal transaction per payment,
bounded history paging, continuous Deribit funding in backtests, and the smaller findings."""

from __future__ import annotations

import sqlite3
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import pytest
import structlog.testing
import trio

from tests.support.canned_execution import _deribit, _derive, _Session
from tests.support.flows import restored_flow as make_flow
from tests.support.helpers import PERP as PERP_DEF
from tests.support.reduced_engine import reduced_engine
from tradingd.engine import Fill, Liquidity, Side, VenueError
from tradingd.engine.model import Order
from tradingd.engine.model.ledger import CONTEXT
from tradingd.engine.model.settlement import FundingPayment
from tradingd.engine.runtime import OrderFlow
from tradingd.engine.store.journal import OrderJournal

PERP = PERP_DEF.symbol
S = 1_000_000_000


def trade(flow: OrderFlow, strategy: str, side: Side, size: int | str, ts: int, tid: str) -> None:
    """A fill of `strategy` in the perpetual at time `ts` (its ledger's own booking)."""
    fill = Fill(
        venue="deribit",
        instrument=PERP,
        ts_exchange=None,
        ts_local=ts,
        order_id="o",
        trade_id=tid,
        side=side,
        price=Decimal(90_000),
        size=Decimal(size),
        fee=Decimal(0),
        fee_currency="BTC",
        liquidity=Liquidity.MAKER,
    )
    flow.book(strategy, fill, PERP_DEF, (1.0, 90_000.0, 90_000.0))


def payment(event: str, ts: int, amount: str, position: str | None) -> FundingPayment:
    return FundingPayment(
        "deribit", PERP, event, ts, Decimal(amount), "BTC", None if position is None else Decimal(position)
    )


# -- 1. split by the positions held at the payment's time -----------------------------------------
def test_funding_is_split_by_the_positions_held_at_the_payments_time() -> None:
    """Short 10 USD at the 08:00 payment (+0.0001 BTC received, the venue's position -10), long
    1,000 by the time the venue lists it: the strategy gets +0.0001 BTC (9 USD), not
    0.0001 x 1000 / -10 = -0.01 BTC (-900 USD)."""
    flow = make_flow()
    trade(flow, "s", Side.SELL, 10, 1 * S, "t1")
    trade(flow, "s", Side.BUY, 1010, 10 * S, "t2")  # after the payment
    booked = flow.funding(payment("p1", 5 * S, "0.0001", "-10"))
    assert booked == {"s": Decimal("0.0001") * Decimal("90000.0")}
    assert flow.ledger("s").funding_usd == Decimal("9.00000")


def test_ours_a_part_of_the_venues_position_books_our_part_only() -> None:
    """The account held 300 (100 of ours, the rest someone else's): ours is a third."""
    flow = make_flow()
    trade(flow, "a", Side.BUY, 100, 1 * S, "t1")
    booked = flow.funding(payment("p1", 5 * S, "-0.0003", "300"))
    assert booked == {"a": Decimal("-0.0001") * Decimal("90000.0")}


@pytest.mark.parametrize(
    ("venue_position", "why"),
    [("-10", "the other sign"), ("50", "less than ours"), ("0", "flat at the venue: a position of 0")],
)
def test_positions_that_do_not_fit_the_venues_are_held_never_guessed(venue_position: str, why: str) -> None:
    flow = make_flow()
    trade(flow, "s", Side.BUY, 100, 1 * S, "t1")
    booked = flow.funding(payment("p1", 5 * S, "0.0001", venue_position))
    assert booked == {}, why
    assert flow.ledger("s").realized_usd == 0
    assert set(flow.funding_held) == {("deribit", "p1")}


def test_without_a_venue_position_netting_strategies_share_exactly_the_payment() -> None:
    """Derive reports no position: the account's is the sum of ours (+10 - 4 = 6); each pays by
    its own, and together exactly the payment."""
    flow = make_flow()
    trade(flow, "a", Side.BUY, 10, 1 * S, "t1")
    trade(flow, "b", Side.SELL, 4, 1 * S, "t2")
    booked = flow.funding(payment("p1", 5 * S, "-0.0006", None))
    assert booked is not None
    a = flow.ledger("a").funding_usd
    b = flow.ledger("b").funding_usd
    assert a == Decimal("-0.001") * Decimal("90000.0") and b == Decimal("0.0004") * Decimal("90000.0")
    assert a + b == Decimal("-0.0006") * Decimal("90000.0")


# -- 2. a position closed before the poll -----------------------------------------------------------
def test_funding_on_a_position_closed_before_the_poll_is_booked_to_its_holder() -> None:
    flow = make_flow()
    trade(flow, "s", Side.BUY, 100, 1 * S, "t1")
    trade(flow, "s", Side.SELL, 100, 10 * S, "t2")  # closed before the venue lists the payment
    trade(flow, "late", Side.BUY, 100, 20 * S, "t3")  # a holder of later: none of it
    booked = flow.funding(payment("p2", 5 * S, "-0.0001", "100"))
    assert booked == {"s": Decimal("-0.0001") * Decimal("90000.0")}
    assert flow.ledger("late").funding_usd == 0


class _FundingClient:
    positions: None = None  # a venue's funding history only (engine.venue.spi.VenueExecution)
    delivery: None = None

    @property
    def funding(self) -> _FundingClient:
        return self

    def __init__(self, payments: list[FundingPayment]) -> None:
        self.payments = payments
        self.asked: list[int] = []

    async def funding_payments(self, since_ns: int) -> list[FundingPayment]:
        self.asked.append(since_ns)
        return [p for p in self.payments if p.ts_ns >= since_ns]


def _funding_engine(flow: OrderFlow, client: _FundingClient, now: list[int]) -> Any:
    """A LiveEngine reduced to what `_book_funding` and `settle_once` use."""
    engine = reduced_engine(flow, client, now)
    engine._init_settlements()
    engine._fills_caught_up("deribit", 0, 0)  # the start's catch-up of fills done, connected since
    return engine


def test_the_venue_is_asked_while_a_perpetual_was_held_even_if_none_is_now() -> None:
    flow = make_flow()
    now = [3600 * S]
    trade(flow, "s", Side.BUY, 100, 1000 * S, "t1")
    trade(flow, "s", Side.SELL, 100, 2000 * S, "t2")
    client = _FundingClient([payment("p1", 1500 * S, "-0.0001", "100")])
    engine = _funding_engine(flow, client, now)
    trio.run(engine._book_funding, "deribit")
    assert client.asked, "asked although nothing is held now"
    assert flow.ledger("s").funding_usd == Decimal("-0.0001") * Decimal("90000.0")


def test_every_round_looks_a_day_back_so_a_payment_listed_late_is_booked() -> None:
    """The first round finds nothing; the venue then lists a payment of 10 minutes before it
    (later than the old one-minute margin): the next round still finds it, and books it once."""
    flow = make_flow()
    day = 86_400 * S
    now = [10 * day]
    trade(flow, "s", Side.BUY, 100, now[0] - day // 2, "t1")
    client = _FundingClient([])
    engine = _funding_engine(flow, client, now)
    trio.run(engine._book_funding, "deribit")
    client.payments.append(payment("late", now[0] - 600 * S, "-0.0001", "100"))
    now[0] += 60 * S
    trio.run(engine._book_funding, "deribit")
    assert client.asked[-1] <= now[0] - day
    assert flow.ledger("s").funding_usd == Decimal("-0.0001") * Decimal("90000.0")
    trio.run(engine._book_funding, "deribit")
    assert flow.ledger("s").funding_usd == Decimal("-0.0001") * Decimal("90000.0")  # once


def _journaled_fill(path: Path) -> tuple[OrderFlow, OrderJournal, Order]:
    """A flow journaling to `path` that has bought 20 of the (inverse) perpetual at 8954."""
    from tests.support.flows import fill
    from tests.support.flows import make_flow as flow_with
    from tests.support.helpers import request

    journal = OrderJournal(path)
    flow = flow_with(journal)
    order = flow.accept(request("buy", "20", "8954", instrument=PERP, cid="s-1"), now_ns=1 * S)
    flow.assign_order_id(order, "V1")
    flow.on_fill(fill("T1", "20", "8954", oid="V1", liquidity=Liquidity.TAKER))
    return flow, journal, order


# -- 3. a delivery price that is no price -----------------------------------------------------------
def test_a_delivery_price_of_zero_is_refused_before_the_journal_and_restore_survives_an_old_row(
    tmp_path: Path,
) -> None:
    from tests.support.flows import make_flow as flow_with

    path = tmp_path / "j.sqlite"
    flow, journal, _ = _journaled_fill(path)
    assert flow.settle("deribit", PERP, 0.0, now_ns=2 * S) is None  # an inverse contract: no price
    assert flow.settle("deribit", PERP, float("nan"), now_ns=2 * S) is None
    assert flow.settlements_refused == 2
    assert flow.position("s", "deribit", PERP) == 20
    assert [e.kind for e in OrderJournal(path).ledger()] == ["fill"]
    # A journal an older tradingd left with such a row: the restart goes on without it.
    inst = flow.registry.get("deribit", PERP)
    assert inst is not None
    journal.settlement("s", inst, 0.0, (1.0, 90_000.0, 90_000.0), 3 * S)
    journal.close()
    restored = flow_with(None)
    counts = restored.restore(OrderJournal(path), now_ns=4 * S)
    assert counts["ledger"] == 1 and restored.restore_skipped == 1
    assert restored.position("s", "deribit", PERP) == 20


@pytest.mark.parametrize(
    ("instrument", "price"),
    [(PERP, 0.0), (PERP, -5.0), (PERP, 1e30), ("BTC-11DEC26-90000-C", -0.1), ("BTC-11DEC26-90000-C", 1e30)],
)
def test_deribit_refuses_a_delivery_price_that_is_no_price(instrument: str, price: float) -> None:
    body = {
        "settlements": [
            {"type": "delivery", "timestamp": 1, "instrument_name": instrument, "mark_price": price}
        ]
    }
    with pytest.raises(VenueError):
        trio.run(_deribit(_Session(body)).delivery_price, instrument)


def test_deribit_delivers_an_option_out_of_the_money_at_zero() -> None:
    name = "BTC-11DEC26-90000-C"
    body = {"settlements": [{"type": "delivery", "timestamp": 1, "instrument_name": name, "mark_price": 0.0}]}
    assert trio.run(_deribit(_Session(body)).delivery_price, name) == 0


# -- 5. Derive's money as money ---------------------------------------------------------------------


@pytest.mark.parametrize("settled", ["Infinity", "-1e9", "NaN", "1e30", "0"])
def test_derive_refuses_a_settlement_price_that_is_no_price(settled: str) -> None:
    body = {
        "instrument_name": "ETH-X-3500-C",
        "option_details": {"strike": "3500", "option_type": "C", "settlement_price": settled},
    }
    with pytest.raises(VenueError):
        trio.run(_derive(_Session(body)).delivery_price, "ETH-X-3500-C")


def test_derive_refuses_funding_records_that_are_no_money_and_keeps_the_others() -> None:
    events = [
        {"funding": f, "instrument_name": "ETH-PERP", "timestamp": 1_000 + i}
        for i, f in enumerate(["NaN", "Infinity", "-1e30", "0.25"])
    ]
    ex = _derive(_Session({"events": events, "pagination": {"count": 4, "num_pages": 1}}))
    got = trio.run(ex.funding_payments, 0)
    assert [(p.event_id, p.amount) for p in got] == [("ETH-PERP:1003", Decimal("0.25"))]
    assert ex.funding_refused == 3


# -- 6. bounded paging, and a venue that stalls -----------------------------------------------------
def test_deribit_settlement_history_stops_on_a_repeated_token_and_at_a_page_cap() -> None:
    item = {"type": "settlement", "timestamp": 2_000_000_000_000, "instrument_name": PERP, "funding": 0.001}
    repeated = _Session({"settlements": [item], "continuation": "same"})
    trio.run(_deribit(repeated).funding_payments, 1_000_000_000_000 * 1_000_000)
    assert repeated.calls == 2

    class Fresh(_Session):
        async def call_retrying(self, method: str, params: dict[str, Any]) -> bytes:
            self.body = {"settlements": [item], "continuation": f"t{self.calls}"}
            return await super().call_retrying(method, params)

    endless = Fresh({})
    trio.run(_deribit(endless).funding_payments, 1_000_000_000_000 * 1_000_000)
    assert endless.calls <= 20


def test_one_venue_that_stalls_does_not_hold_the_others_settlements() -> None:
    flow = make_flow()
    engine = _funding_engine(flow, _FundingClient([]), [0])
    engine.venues = {"stuck": None, "ok": None}
    engine.mode = "paper"
    engine.settle_venue_timeout_s = 0.2
    done: list[str] = []

    async def settle_expired(name: str) -> None:
        if name == "stuck":
            await trio.sleep_forever()
        done.append(name)

    engine._settle_expired = settle_expired

    async def main() -> None:
        with trio.fail_after(5):
            await engine.settle_once()

    trio.run(main)
    assert done == ["ok"]


# -- 7. one transaction per payment; an indexed lookup ----------------------------------------------
class _CrashingDb:
    """A connection that fails (as a crash would) when the share of strategy "b" is written."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.armed = True

    def execute(self, sql: str, args: Any = ()) -> Any:
        if self.armed and any(a == "p1#b" for a in args):
            self.armed = False
            raise sqlite3.OperationalError("disk I/O error")
        return self.db.execute(sql, args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


def test_a_crash_between_two_shares_loses_neither(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = OrderJournal(path)
    first = make_flow(journal)
    trade(first, "a", Side.BUY, 100, 1 * S, "t1")
    trade(first, "b", Side.BUY, 300, 1 * S, "t2")
    real = journal._db
    journal._db = _CrashingDb(real)  # type: ignore[assignment]
    first.funding(payment("p1", 5 * S, "-0.0004", "400"))
    journal._db = real
    journal.close()
    # Restarted (the process died with the failed write): the venue lists the payment again.
    second = make_flow(OrderJournal(path))
    trade(second, "a", Side.BUY, 100, 1 * S, "t1")
    trade(second, "b", Side.BUY, 300, 1 * S, "t2")
    second.funding(payment("p1", 5 * S, "-0.0004", "400"))
    rows = sorted((e.strategy, e.price) for e in OrderJournal(path).ledger() if e.kind == "funding")
    assert rows == [("a", Decimal("-0.0001")), ("b", Decimal("-0.0003"))]


def test_funding_known_seeks_the_index_rather_than_scanning(tmp_path: Path) -> None:
    journal = OrderJournal(tmp_path / "j.sqlite")
    flow = make_flow(journal)
    trade(flow, "a", Side.BUY, 100, 1 * S, "t1")
    flow.funding(payment("p1", 5 * S, "-0.0001", "100"))
    seen: list[str] = []
    journal._db.set_trace_callback(seen.append)
    assert journal.funding_known("deribit", "p1") and not journal.funding_known("deribit", "p")
    journal._db.set_trace_callback(None)
    (query, *_) = [q for q in seen if "kind = 'funding'" in q]
    plan = " ".join(str(r[-1]) for r in journal._db.execute("EXPLAIN QUERY PLAN " + query))
    assert "ledger_key" in plan and "trade_id>" in plan.replace(" ", ""), plan


# -- 4. continuous Deribit funding in backtests -----------------------------------------------------
ACCRUAL_DATA = Path(__file__).resolve().parent.parent / "fixtures" / "tardis" / "funding_accrual"


def test_a_backtest_accrues_deribit_funding_continuously_from_real_shaped_tardis_rows() -> None:
    """Tardis' Deribit rows name no funding time: funding accrues from each ticker's 8-hour
    rate over the span to the next (Deribit "Funding Specifications": rate x position in coin x
    span / 8 h), reported each minute and paid on the position held then. The fixture: 10
    minutes, 30 spans of 10 s at -0.00001568 then 30 at 0.0000211, 1,000 USD of the inverse
    perpetual bought 0.5 s in and held; the mark the backtest holds is the book's mid (7,987.75,
    as in `test_settlement`'s backtest), the USD rate the index (7,989.28)."""
    from tests.support.backtests import BuyOnce
    from tradingd.connectors.deribit import PLUGIN
    from tradingd.engine.backtest.kernel import BacktestKernel, BacktestSettings, DataSource

    kernel = BacktestKernel(
        {"deribit": PLUGIN}, [DataSource("deribit", ACCRUAL_DATA, "tardis")], [BuyOnce()], BacktestSettings()
    )
    result = trio.run(kernel.run).strategies["holder"]
    assert result.positions == {f"deribit:{PERP}": "1000"}
    accrued = (30 * 10 * -0.00001568 + 30 * 10 * 0.0000211) / (8 * 3600)
    expected = -1000 / 7987.75 * accrued * 7989.28  # long, net positive rate: paid
    assert expected < 0
    assert abs(float(result.funding) - expected) < 1e-12
    assert abs(float(result.realized_pnl) - expected) < 1e-12


# -- smaller findings --------------------------------------------------------------------------------
def test_the_simulators_linear_perpetual_pays_funding_in_usdc_at_the_mark() -> None:
    """BTC_USDC-PERPETUAL: 2 BTC long at a mark of 90,000 and a rate of 0.0001 pays
    2 x 90,000 x 0.0001 = 18 USDC (not 0.0002 "USDC")."""
    from tradingd.simulators.deribit.simulator import DeribitSimulator

    sim = DeribitSimulator(seed=5)
    name = "BTC_USDC-PERPETUAL"
    sim.add_instrument(  # a get_instruments item, as Deribit lists its linear perpetual (§1.8)
        {
            "instrument_name": name,
            "kind": "future",
            "base_currency": "BTC",
            "quote_currency": "USDC",
            "counter_currency": "USDC",
            "settlement_currency": "USDC",
            "instrument_type": "linear",
            "settlement_period": "perpetual",
            "expiration_timestamp": 32503708800000,
            "tick_size": 0.5,
            "min_trade_amount": 0.001,
            "contract_size": 0.001,
        }
    )
    sim.tickers[name] = {"mark_price": 90_000.0, "index_price": 90_000.0}
    acct = next(iter(sim.accounts.values()))
    acct.positions[name] = Decimal(2)
    (paid,) = sim.pay_funding(name, 0.0001).values()
    assert abs(paid - -18.0) < 1e-9


def test_migrating_a_schema_1_ledger_creates_the_missing_tables_with_the_version(tmp_path: Path) -> None:
    """A schema-1 file left part way (its ledger written, not the rest): the migration's one
    transaction leaves every table and version 2 together, never version 2 without them."""
    from tradingd.engine.store.journal import _LEDGER_TABLE, _migrate_v1

    db = sqlite3.connect(tmp_path / "old.sqlite", isolation_level=None)
    db.execute(_LEDGER_TABLE.format(name="ledger"))
    db.execute("CREATE UNIQUE INDEX ledger_key ON ledger (kind, venue, trade_id)")
    _migrate_v1(db)
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"orders", "events", "instruments", "meta", "ledger"} <= tables
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2


def test_the_whole_position_of_one_strategy_gets_the_whole_payment_to_the_last_digit() -> None:
    """One strategy held all of the account's position over the session Deribit's funding accrued
    in (split by time-weighted position): its share is the payment itself, not the payment times
    its weight divided by itself (rounded twice at 34 digits: -2.191159853218583700000000000000001E-7
    for -2.1911598532185837E-7, seen in tests/model/test_settlement.py)."""
    flow = make_flow()
    trade(flow, "p", Side.BUY, 7, 5 * S, "t1")
    amount = Decimal("-2.1911598532185837E-7")
    # Held for 9 s of a 13 s session, 9 of 11, 7 of 9: weights of 34 digits.
    for event, span in (("p1", 13 * S), ("p2", 11 * S), ("p3", 9 * S)):
        due = FundingPayment("deribit", PERP, event, 14 * S, amount, "BTC", None, span_ns=span)
        with structlog.testing.capture_logs() as logs:
            assert flow.funding(due) is not None, span
        shares = [Decimal(e["share"]) for e in logs if e["event"] == "position.funding"]
        assert shares == [amount], span


def test_netting_strategies_share_exactly_the_payment_whatever_the_digits() -> None:
    """Shares of a payment add up to it exactly at the ledger's 34 digits, even when each share
    is rounded there: long 18, short 104 and short 52 once split as amount x 18 / -138 and so on,
    whose sum missed the payment by one in the last digit."""
    flow = make_flow()
    trade(flow, "a", Side.BUY, 18, 1 * S, "t1")
    trade(flow, "b", Side.SELL, 104, 1 * S, "t2")
    trade(flow, "c", Side.SELL, 52, 1 * S, "t3")
    amount = Decimal("-2.1911598532185837E-7")
    with structlog.testing.capture_logs() as logs:
        assert flow.funding(payment("p1", 5 * S, str(amount), None)) is not None
    shares = {e["strategy"]: Decimal(e["share"]) for e in logs if e["event"] == "position.funding"}
    assert set(shares) == {"a", "b", "c"}
    with localcontext(CONTEXT):
        assert sum(shares.values(), Decimal(0)) == amount


def test_a_journaled_fill_at_a_price_of_zero_on_an_inverse_contract_is_skipped_at_restore_whole(
    tmp_path: Path,
) -> None:
    """A journal an older tradingd wrote with a fill at price 0 on an inverse contract (it
    journaled the fill, then its ledger raised): the restart skips that row whole (alerted,
    `restore_skipped`), where the ledger added its quantity and count before dividing by the
    price (half booked) and, below 0, booked a cost basis that means nothing."""
    from tests.support.flows import fill
    from tests.support.flows import make_flow as flow_with

    path = tmp_path / "j.sqlite"
    _, journal, order = _journaled_fill(path)
    for tid, price in (("T2", "0"), ("T3", "-5")):
        journal.fill(fill(tid, "10", price, oid="V1"), order, (1.0, 90_000.0, 90_000.0))
    journal.close()
    restored = flow_with(None)
    counts = restored.restore(OrderJournal(path), now_ns=4 * S)
    assert restored.restore_skipped == 2 and counts["ledger"] == 1
    assert restored.position("s", "deribit", PERP) == 20
    assert restored.ledger("s").fills == 1
