"""The simulated venue's fill rules (engine/model/simvenue.py docstring), one rule per test."""

from __future__ import annotations

from decimal import Decimal

import attrs
import pytest

from tests.support.helpers import OPTION, PERP, book, request, trade
from tests.support.simulated_venue import make, order
from tradingd.connectors.deribit.fees import DeribitFees
from tradingd.engine import (
    Fill,
    Instrument,
    InstrumentKind,
    Liquidity,
    OrderBook,
    OrderRejected,
    OrderRequest,
    OrderState,
    OrderUpdate,
    PrivateEvent,
    Side,
    TimeInForce,
)
from tradingd.engine.model import InstrumentRegistry, Order, ProportionalFees, SimulatedVenue


def fills(events: list[PrivateEvent]) -> list[tuple[Decimal, Decimal, Liquidity]]:
    return [(e.price, e.size, e.liquidity) for e in events if isinstance(e, Fill)]


def last_state(events: list[PrivateEvent]) -> OrderState:
    return [e for e in events if isinstance(e, OrderUpdate)][-1].status


def test_a_crossing_limit_walks_the_book_up_to_its_price() -> None:
    sim, _ = make()
    out = sim.submit(order(side="buy", size="4", price="0.0510", time_in_force="ioc"), 1)
    assert fills(out) == [
        (Decimal("0.05"), Decimal("2.0"), Liquidity.TAKER),
        (Decimal("0.051"), Decimal("2.0"), Liquidity.TAKER),
    ]
    assert last_state(out) is OrderState.FILLED
    fee = [e.fee for e in out if isinstance(e, Fill)]
    assert fee == [Decimal("0.0006"), Decimal("0.0006")]  # 0.0003 x 2 contracts, under the 12.5% cap


def test_taken_liquidity_is_gone_until_the_feed_updates_the_level() -> None:
    sim, b = make()
    sim.submit(order("a", side="buy", size="4", price="0.051", time_in_force="ioc"), 1)
    out = sim.submit(order("b", side="buy", size="2", price="0.051", time_in_force="ioc"), 2)
    assert fills(out) == [(Decimal("0.051"), Decimal("1.0"), Liquidity.TAKER)]  # only 1 of 3 left
    assert last_state(out) is OrderState.CANCELLED
    # The feed says the level holds 3 again: it is available again.
    b.set_ask(b.to_ticks(0.051), 3.0)
    sim.on_book(book(asks=((0.051, 3.0),)), 3)
    out = sim.submit(order("c", side="buy", size="2", price="0.051", time_in_force="ioc"), 4)
    assert fills(out) == [(Decimal("0.051"), Decimal("2.0"), Liquidity.TAKER)]


def test_market_order_takes_what_is_displayed_and_cancels_the_rest() -> None:
    sim, _ = make()
    out = sim.submit(order(side="sell", size="7", price=None), 1)
    assert fills(out) == [
        (Decimal("0.048"), Decimal("1.5"), Liquidity.TAKER),
        (Decimal("0.047"), Decimal("4.0"), Liquidity.TAKER),
    ]
    update = [e for e in out if isinstance(e, OrderUpdate)][-1]
    assert update.status is OrderState.CANCELLED and update.reason == "no_liquidity"
    assert update.filled_size == Decimal("5.5")


def test_fok_fills_all_or_nothing_and_post_only_never_takes() -> None:
    sim, _ = make()
    out = sim.submit(order("a", side="buy", size="6", price="0.051", time_in_force="fok"), 1)
    assert fills(out) == [] and last_state(out) is OrderState.CANCELLED
    out = sim.submit(order("b", side="buy", size="5", price="0.051", time_in_force="fok"), 1)
    assert sum(f[1] for f in fills(out)) == Decimal(5)
    out = sim.submit(order("c", side="sell", size="1", price="0.047", post_only=True), 1)
    assert last_state(out) is OrderState.REJECTED and fills(out) == []


def test_resting_order_fills_on_trades_from_the_other_side_at_its_price() -> None:
    sim, _ = make()
    out = sim.submit(order(side="buy", size="2", price="0.049"), 1)
    assert last_state(out) is OrderState.OPEN
    assert sim.on_trade(trade(0.049, 0.5, "buy"), 2) == []  # a buyer at our price: not our side
    assert sim.on_trade(trade(0.0495, 5.0, "sell"), 2) == []  # a seller above our bid: no
    out = sim.on_trade(trade(0.049, 0.5, "sell"), 3)  # touched
    assert fills(out) == [(Decimal("0.049"), Decimal("0.5"), Liquidity.MAKER)]
    out = sim.on_trade(trade(0.048, 10.0, "sell"), 4)  # traded through: the rest, at our price
    assert fills(out) == [(Decimal("0.049"), Decimal("1.5"), Liquidity.MAKER)]
    assert last_state(out) is OrderState.FILLED
    assert not sim.has_orders(OPTION.symbol)


def test_queue_ahead_waits_for_the_displayed_size_first() -> None:
    sim, _ = make(queue_ahead=True)
    sim.submit(order(side="buy", size="1", price="0.048"), 1)  # 1.5 displayed ahead of us
    assert sim.on_trade(trade(0.048, 1.0, "sell"), 2) == []
    out = sim.on_trade(trade(0.048, 1.0, "sell"), 3)
    assert fills(out) == [(Decimal("0.048"), Decimal("0.5"), Liquidity.MAKER)]


def test_the_book_moving_through_a_resting_order_fills_it_from_the_displayed_size() -> None:
    sim, b = make()
    sim.submit(order(side="sell", size="3", price="0.052"), 1)
    b.set_bid(b.to_ticks(0.053), 2.0)  # someone bids above our offer: they would have hit us
    out = sim.on_book(book(bids=((0.053, 2.0),)), 2)
    assert fills(out) == [(Decimal("0.052"), Decimal("2.0"), Liquidity.MAKER)]
    assert last_state(out) is OrderState.PARTIALLY_FILLED


def test_cancel_expire_and_refusals() -> None:
    sim, _ = make()
    o = order(side="buy", size="1", price="0.040")
    sim.submit(o, 1)
    out = sim.cancel(o, 2)
    assert last_state(out) is OrderState.CANCELLED
    with pytest.raises(OrderRejected, match="not open"):
        sim.cancel(o, 3)
    g = order("g", side="buy", size="1", price="0.040", time_in_force="gtd", expire_at_ns=10)
    sim.submit(g, 4)
    assert sim.expire(9) == []
    assert last_state(sim.expire(10)) is OrderState.EXPIRED
    unknown = Order(request(instrument="NOPE"), now_ns=0)
    assert last_state(sim.submit(unknown, 1)) is OrderState.REJECTED


@pytest.mark.parametrize(
    ("inst", "price", "size", "liq", "expected"),
    [
        (OPTION, "0.05", "2", Liquidity.TAKER, Decimal("0.0006")),  # 0.0003 per contract
        (OPTION, "0.0008", "2", Liquidity.TAKER, Decimal("0.0002")),  # capped at 12.5% of the price
        (PERP, "100000", "10000", Liquidity.TAKER, Decimal("0.00005")),  # 0.05% of 10000 USD, in BTC
        (PERP, "100000", "10000", Liquidity.MAKER, Decimal("0")),
    ],
)
def test_deribit_fee_schedule(inst: object, price: str, size: str, liq: Liquidity, expected: Decimal) -> None:
    fee, ccy = DeribitFees().fee(inst, Decimal(price), Decimal(size), liq, 100_000.0)  # type: ignore[arg-type]
    assert fee == expected and ccy == "BTC"
    overridden, _ = DeribitFees(future_taker="0.001").fee(
        PERP, Decimal(price), Decimal(size), Liquidity.TAKER, None
    )
    assert overridden == Decimal(size) * Decimal("0.001") / Decimal(price)


def test_a_limit_takes_only_the_levels_it_reaches_best_first_on_either_side() -> None:
    # Levels beyond the limit are never taken, whatever their order in the book's dicts (the
    # venue picks the reachable levels without sorting the whole side).
    sim, b = make()
    b.set_bid(b.to_ticks(0.049), 1.0)  # inserted last, the best bid
    b.set_bid(b.to_ticks(0.046), 9.0)  # below the sell's limit
    out = sim.submit(order("a", side="sell", size="9", price="0.047", time_in_force="ioc"), 1)
    assert fills(out) == [
        (Decimal("0.049"), Decimal("1.0"), Liquidity.TAKER),
        (Decimal("0.048"), Decimal("1.5"), Liquidity.TAKER),
        (Decimal("0.047"), Decimal("4.0"), Liquidity.TAKER),
    ]
    assert last_state(out) is OrderState.CANCELLED
    # The feed refreshes one bid level: that one is available again, the others stay taken.
    sim.on_book(book(bids=((0.048, 1.5),)), 2)
    out = sim.submit(order("a2", side="sell", size="9", price="0.047", time_in_force="ioc"), 3)
    assert fills(out) == [(Decimal("0.048"), Decimal("1.5"), Liquidity.TAKER)]
    # A resting buy the asks move onto: filled from the levels at or below its price, best first.
    sim, b = make()
    sim.submit(order("b", side="buy", size="9", price="0.0495"), 2)
    b.set_ask(b.to_ticks(0.049), 1.0)
    b.set_ask(b.to_ticks(0.0485), 2.0)
    out = sim.on_book(book(asks=((0.049, 1.0), (0.0485, 2.0))), 3)
    assert fills(out) == [
        (Decimal("0.0495"), Decimal("2.0"), Liquidity.MAKER),
        (Decimal("0.0495"), Decimal("1.0"), Liquidity.MAKER),
    ]
    assert last_state(out) is OrderState.PARTIALLY_FILLED


def test_no_order_is_taken_on_an_instrument_past_its_expiry_or_no_longer_active() -> None:
    # Its last recorded book is still in memory: an order reaching the venue after the expiry
    # (sent before it, in flight) would fill against it, a position no settlement closes.
    sim, _ = make()
    expiry = OPTION.expiry_ns
    assert expiry is not None
    before = sim.submit(order("a", side="buy", size="1", price="0.05"), expiry - 1)
    assert fills(before) == [(Decimal("0.05"), Decimal("1"), Liquidity.TAKER)]
    for at in (expiry, expiry + 1):
        out = sim.submit(order(f"b{at}", side="buy", size="1", price="0.051"), at)
        assert fills(out) == [] and last_state(out) is OrderState.REJECTED
        assert [e.reason for e in out if isinstance(e, OrderUpdate)] == ["instrument_expired"]
    # A resting order cannot be edited into the book after the expiry either.
    resting = order("c", side="buy", size="1", price="0.040")
    sim.submit(resting, expiry - 1)
    with pytest.raises(OrderRejected, match="instrument_expired"):
        sim.edit(resting, expiry, price=Decimal("0.051"), size=None)
    assert sim.has_orders(OPTION.symbol)  # left as it was, for the expiry to end it
    # A market resolved (its tokens made inactive): the same.
    sim, _ = make()
    sim.registry.add(attrs.evolve(OPTION, expiry_ns=None, active=False))
    out = sim.submit(order("d", side="buy", size="1", price="0.051"), 1)
    assert fills(out) == [] and [e.reason for e in out if isinstance(e, OrderUpdate)] == [
        "instrument_not_active"
    ]


def test_an_edit_never_makes_a_post_only_order_take() -> None:
    sim, _ = make()
    o = order(side="buy", size="1", price="0.048", post_only=True)
    assert last_state(sim.submit(o, 1)) is OrderState.OPEN
    with pytest.raises(OrderRejected, match="post-only") as refused:
        sim.edit(o, 2, price=Decimal("0.051"), size=None)  # through the 0.050 ask
    assert refused.value.code == "post_only_reject"
    # Refused whole: still resting at its price and size, nothing filled or taken.
    [r] = sim.resting[OPTION.symbol]
    assert (r.price, r.size, r.filled) == (Decimal("0.048"), Decimal("1"), Decimal(0))
    assert not sim.consumed.get(OPTION.symbol)
    # An edit that stays out of the book is taken, and it rests as a maker.
    out = sim.edit(o, 3, price=Decimal("0.049"), size=Decimal("2"))
    assert fills(out) == [] and last_state(out) is OrderState.OPEN
    # The same edit of an order that is not post-only takes the ask, as a new order would.
    p = order("p", side="buy", size="1", price="0.048")
    sim.submit(p, 4)
    out = sim.edit(p, 5, price=Decimal("0.051"), size=None)
    assert fills(out) == [(Decimal("0.05"), Decimal("1"), Liquidity.TAKER)]


def test_an_outcome_share_is_sold_only_when_held() -> None:
    # Polymarket refuses a sell of shares the account does not hold ("not enough balance /
    # allowance"); the simulated venue sold them, a short position in a share the venue has
    # no such thing as.
    token = Instrument(
        venue="polymarket",
        symbol="71321045679252212594626385532706912750332728571942532289631379312455583992563",
        kind=InstrumentKind.OUTCOME,
        base="0xdd22",
        quote="PUSD",
        settle="PUSD",
        tick_size="0.01",
        min_size="5",
        size_step="0.01",
    )
    b = OrderBook(0.01)
    b.set_bid(b.to_ticks(0.40), 100.0)
    b.set_ask(b.to_ticks(0.42), 100.0)
    sim = SimulatedVenue("polymarket", InstrumentRegistry([token]), ProportionalFees(), {token.symbol: b}.get)

    def req(cid: str, side: str, size: str, price: str, tif: str = "gtc") -> Order:
        return Order(
            OrderRequest(
                venue="polymarket",
                instrument=token.symbol,
                side=Side(side),
                size=Decimal(size),
                price=Decimal(price),
                client_order_id=cid,
                strategy="s",
                time_in_force=TimeInForce(tif),
            ),
            now_ns=0,
        )

    def reasons(out: list[PrivateEvent]) -> list[str | None]:
        return [e.reason for e in out if isinstance(e, OrderUpdate) and e.status is OrderState.REJECTED]

    out = sim.submit(req("short", "sell", "5", "0.40", "ioc"), 1)
    assert fills(out) == [] and reasons(out) == ["not_enough_balance"]
    assert fills(sim.submit(req("buy", "buy", "10", "0.42", "ioc"), 2)) == [
        (Decimal("0.42"), Decimal("10"), Liquidity.TAKER)
    ]
    resting = req("rest", "sell", "6", "0.45")  # holds 6 of the 10 shares while it rests
    assert last_state(sim.submit(resting, 3)) is OrderState.OPEN
    assert reasons(sim.submit(req("more", "sell", "5", "0.40", "ioc"), 4)) == ["not_enough_balance"]
    with pytest.raises(OrderRejected) as refused:  # growing the resting sell past the shares
        sim.edit(resting, 5, price=None, size=Decimal("11"))
    assert refused.value.code == "not_enough_balance"
    out = sim.submit(req("rest4", "sell", "4", "0.40", "ioc"), 6)  # the 4 shares not held by it
    assert fills(out) == [(Decimal("0.40"), Decimal("4"), Liquidity.TAKER)]
    sim.cancel(resting, 7)  # its 6 shares are free again
    assert fills(sim.submit(req("last", "sell", "6", "0.40", "ioc"), 8)) == [
        (Decimal("0.40"), Decimal("6"), Liquidity.TAKER)
    ]
    assert sim.held[token.symbol] == 0


def test_outcome_shares_are_held_per_account_not_per_strategy() -> None:
    # Polymarket checks a sell against the wallet's shares, whichever strategy of ours bought
    # them: B sells the 10 A bought (filled, B's own ledger short 10, the account flat); a
    # further sell by either is refused, the account never short a share. (Pins the documented
    # scope of "never a short position": per account, not per strategy.)
    token = Instrument(
        venue="polymarket",
        symbol="7132104567925221259462638553270691275033272857194253228963137931245558399256",
        kind=InstrumentKind.OUTCOME,
        base="0xdd22",
        quote="PUSD",
        settle="PUSD",
        tick_size="0.01",
        min_size="5",
        size_step="0.01",
    )
    b = OrderBook(0.01)
    b.set_bid(b.to_ticks(0.40), 100.0)
    b.set_ask(b.to_ticks(0.42), 100.0)
    sim = SimulatedVenue("polymarket", InstrumentRegistry([token]), ProportionalFees(), {token.symbol: b}.get)

    def req(strategy: str, cid: str, side: str, size: str, price: str) -> Order:
        return Order(
            OrderRequest(
                venue="polymarket",
                instrument=token.symbol,
                side=Side(side),
                size=Decimal(size),
                price=Decimal(price),
                client_order_id=cid,
                strategy=strategy,
                time_in_force=TimeInForce.IOC,
            ),
            now_ns=0,
        )

    assert fills(sim.submit(req("a", "a1", "buy", "10", "0.42"), 1)) == [
        (Decimal("0.42"), Decimal("10"), Liquidity.TAKER)
    ]
    assert fills(sim.submit(req("b", "b1", "sell", "10", "0.40"), 2)) == [
        (Decimal("0.40"), Decimal("10"), Liquidity.TAKER)
    ]
    for i, strategy in enumerate("ab"):
        out = sim.submit(req(strategy, f"{strategy}2", "sell", "5", "0.40"), 3 + i)
        assert fills(out) == [] and last_state(out) is OrderState.REJECTED
    assert sim.held[token.symbol] == 0
