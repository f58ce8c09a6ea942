"""The simulators' matching engine: a worked example per rule, then random sequences of every
operation checked against a small brute-force reference (sort everything, walk it) and the book's
invariants (nothing rests crossed, amounts conserved, every match counted once)."""

from __future__ import annotations

import itertools
from decimal import Decimal

import attrs
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.support.examples import examples
from tradingd.simulators.matching import MARKET, Match, OrderBook, Outcome, Resting, SelfTrade, Side

D = Decimal
BUY, SELL = Side.BUY, Side.SELL


def book() -> OrderBook:
    return OrderBook("BTC-PERPETUAL")


def fills(outcome: Outcome | list[Match]) -> list[tuple[str, str, str]]:
    """(maker id, price, amount) per match, as strings so the examples read easily."""
    matches = outcome.matches if isinstance(outcome, Outcome) else outcome
    return [(m.maker_id, str(m.price), str(m.amount)) for m in matches]


def ask(b: OrderBook, order_id: str, price: str, amount: str, owner: str = "mm") -> Resting:
    out = b.submit(order_id=order_id, owner=owner, side=SELL, amount=D(amount), price=D(price))
    assert out.resting is not None and not out.matches
    return out.resting


def bid(b: OrderBook, order_id: str, price: str, amount: str, owner: str = "mm") -> Resting:
    out = b.submit(order_id=order_id, owner=owner, side=BUY, amount=D(amount), price=D(price))
    assert out.resting is not None and not out.matches
    return out.resting


MKT_ASK_100 = f"{MARKET}:sell:100"


# -- priority and order types ----------------------------------------------------------------


def test_best_price_first_at_the_makers_price() -> None:
    b = book()
    ask(b, "a101", "101", "1")
    ask(b, "a100", "100", "1")
    out = b.submit(order_id="t", owner="me", side=BUY, amount=D(2), price=D(105))
    assert fills(out) == [("a100", "100", "1"), ("a101", "101", "1")]
    assert out.resting is None and out.unfilled == 0 and out.rejected is None
    assert b.best(SELL) is None and b.get("a100") is None


def test_earlier_order_first_at_a_price_and_partial_maker_stays_in_front() -> None:
    b = book()
    first = ask(b, "first", "100", "2")
    ask(b, "second", "100", "2")
    out = b.submit(order_id="t", owner="me", side=BUY, amount=D(1), price=D(100))
    assert fills(out) == [("first", "100", "1")]
    assert out.matches[0].maker_remaining == 1 and first.filled == 1
    out = b.submit(order_id="t2", owner="me", side=BUY, amount=D(2), price=D(100))
    assert fills(out) == [("first", "100", "1"), ("second", "100", "1")]
    assert b.levels(SELL) == [(D(100), D(1))]


def test_gtc_rests_the_remainder_and_ioc_drops_it() -> None:
    b = book()
    ask(b, "a", "100", "1")
    out = b.submit(order_id="ioc", owner="me", side=BUY, amount=D(3), price=D(100), tif="ioc")
    assert fills(out) == [("a", "100", "1")] and out.resting is None and out.unfilled == 2
    ask(b, "a2", "100", "1")
    out = b.submit(order_id="gtc", owner="me", side=BUY, amount=D(3), price=D(100))
    assert out.resting is not None and out.unfilled == 0
    assert (out.resting.filled, out.resting.remaining) == (D(1), D(2))
    assert b.levels(BUY) == [(D(100), D(2))] and b.get("gtc") is out.resting


def test_market_order_sweeps_any_price_and_never_rests() -> None:
    b = book()
    ask(b, "a", "100", "1")
    ask(b, "b", "250", "1")
    out = b.submit(order_id="m", owner="me", side=BUY, amount=D(3))
    assert fills(out) == [("a", "100", "1"), ("b", "250", "1")]
    assert out.resting is None and out.unfilled == 1 and b.get("m") is None


def test_fok_fills_whole_or_is_rejected_untouched() -> None:
    b = book()
    ask(b, "a", "100", "1")
    ask(b, "b", "101", "1")
    out = b.submit(order_id="f", owner="me", side=BUY, amount=D(3), price=D(101), tif="fok")
    assert out == Outcome(
        matches=(), resting=None, rejected="fill_or_kill", cancelled_makers=(), unfilled=D(3)
    )
    assert b.levels(SELL) == [(D(100), D(1)), (D(101), D(1))]
    out = b.submit(order_id="f2", owner="me", side=BUY, amount=D(2), price=D(101), tif="fok")
    assert fills(out) == [("a", "100", "1"), ("b", "101", "1")] and out.unfilled == 0


def test_fok_does_not_count_own_orders_that_cancel_maker_would_remove() -> None:
    b = book()
    ask(b, "mine", "100", "1", owner="me")
    ask(b, "theirs", "101", "1")
    out = b.submit(
        order_id="f", owner="me", side=BUY, amount=D(2), price=D(101), tif="fok", self_trade="cancel_maker"
    )
    assert out.rejected == "fill_or_kill" and out.cancelled_makers == ()
    assert b.get("mine") is not None  # a rejected order cancels nothing


def test_post_only_is_rejected_if_it_would_take_and_rests_otherwise() -> None:
    b = book()
    ask(b, "a", "100", "1")
    out = b.submit(order_id="p", owner="me", side=BUY, amount=D(1), price=D(100), post_only=True)
    assert out.rejected == "post_only" and out.unfilled == 1 and not out.matches
    assert b.levels(SELL) == [(D(100), D(1))] and b.get("p") is None
    out = b.submit(order_id="p", owner="me", side=BUY, amount=D(1), price=D("99.5"), post_only=True)
    assert out.rejected is None and out.resting is not None and out.resting.post_only
    # crossing only its own order still counts as taking
    out = b.submit(order_id="p2", owner="me", side=SELL, amount=D(1), price=D("99.5"), post_only=True)
    assert out.rejected == "post_only"


# -- self-trade prevention -------------------------------------------------------------------


def test_self_trade_allow_trades_with_own_order() -> None:
    b = book()
    ask(b, "mine", "100", "1", owner="me")
    out = b.submit(order_id="t", owner="me", side=BUY, amount=D(1), price=D(100))
    assert [(m.maker_owner, m.taker_owner) for m in out.matches] == [("me", "me")]


def test_reject_taker_when_the_walk_would_reach_an_own_order() -> None:
    b = book()
    ask(b, "theirs", "100", "1")
    ask(b, "mine", "101", "1", owner="me")
    before = b.levels(SELL)
    out = b.submit(order_id="t", owner="me", side=BUY, amount=D(2), price=D(101), self_trade="reject_taker")
    assert out == Outcome(matches=(), resting=None, rejected="self_trade", cancelled_makers=(), unfilled=D(2))
    assert b.levels(SELL) == before
    # the same taker that stops before reaching its own order trades
    out = b.submit(order_id="t", owner="me", side=BUY, amount=D(1), price=D(101), self_trade="reject_taker")
    assert fills(out) == [("theirs", "100", "1")]
    # an own order outside the limit does not count either
    out = b.submit(order_id="t3", owner="me", side=BUY, amount=D(1), price=D(100), self_trade="reject_taker")
    assert out.rejected is None and out.resting is not None


def test_cancel_maker_removes_own_makers_and_keeps_matching() -> None:
    b = book()
    ask(b, "mine", "100", "1", owner="me")
    ask(b, "theirs", "100", "1")
    ask(b, "mine2", "101", "5", owner="me")
    out = b.submit(order_id="t", owner="me", side=BUY, amount=D(2), price=D(101), self_trade="cancel_maker")
    assert fills(out) == [("theirs", "100", "1")]
    assert [r.order_id for r in out.cancelled_makers] == ["mine", "mine2"]
    assert b.get("mine") is None and b.get("mine2") is None
    assert out.resting is not None and out.resting.remaining == 1 and b.best(BUY) == 101


# -- the market's queue place ----------------------------------------------------------------


def test_client_order_queues_behind_the_market_at_its_level() -> None:
    b = book()
    assert b.set_market_level(SELL, D(100), D(2)) == []
    ask(b, "c", "100", "1")
    out = b.submit(order_id="t", owner="me", side=BUY, amount=D(3), price=D(100))
    assert fills(out) == [(MKT_ASK_100, "100", "2"), ("c", "100", "1")]
    assert out.matches[0].maker_owner == MARKET
    assert b.levels(SELL, clients=False) == [] and b.orders(MARKET) == []


def test_market_level_shrink_keeps_its_place_grow_goes_to_the_back_zero_removes() -> None:
    b = book()
    b.set_market_level(SELL, D(100), D(5))
    ask(b, "c", "100", "1")
    b.set_market_level(SELL, D(100), D(2))  # shrink: still ahead of c
    out = b.submit(order_id="t", owner="me", side=BUY, amount=D(1), price=D(100), tif="ioc")
    assert fills(out) == [(MKT_ASK_100, "100", "1")]
    b.set_market_level(SELL, D(100), D(4))  # grow (1 -> 4): behind c now
    out = b.submit(order_id="t2", owner="me", side=BUY, amount=D(2), price=D(100), tif="ioc")
    assert fills(out) == [("c", "100", "1"), (MKT_ASK_100, "100", "1")]
    assert b.levels(SELL, clients=False) == [(D(100), D(3))]
    b.set_market_level(SELL, D(100), D(0))
    assert b.levels(SELL) == [] and b.best(SELL) is None


def test_equal_prices_written_differently_are_one_level() -> None:
    b = book()
    b.set_market_level(SELL, D(100), D(1))
    ask(b, "c", "100.00", "1")
    b.set_market_level(SELL, D("1E+2"), D(3))  # grows the same level: behind c now
    assert b.levels(SELL) == [(D(100), D(4))] and len(b.orders(MARKET)) == 1
    out = b.submit(order_id="t", owner="me", side=BUY, amount=D(2), price=D("100.0"))
    assert fills(out) == [("c", "100.00", "1"), (MKT_ASK_100, "100", "1")]


def test_levels_aggregate_best_first_with_or_without_clients() -> None:
    b = book()
    b.set_market_level(BUY, D(99), D(3))
    b.set_market_level(BUY, D(98), D(1))
    bid(b, "c1", "99", "1")
    bid(b, "c2", "100", "2")
    assert b.levels(BUY) == [(D(100), D(2)), (D(99), D(4)), (D(98), D(1))]
    assert b.levels(BUY, 2) == [(D(100), D(2)), (D(99), D(4))]
    assert b.levels(BUY, clients=False) == [(D(99), D(3)), (D(98), D(1))]
    assert b.best(BUY) == 100 and b.best(SELL) is None
    assert [r.order_id for r in b.orders()] == ["c1", "c2"] and b.orders("nobody") == []


def test_new_market_liquidity_trades_with_crossing_clients_first() -> None:
    b = book()
    bid(b, "low", "100", "1")
    bid(b, "high", "101", "1")
    bid(b, "low2", "100", "1")
    bid(b, "out", "99", "1")
    b.set_market_level(BUY, D(102), D(7))  # the market never trades with itself
    matches = b.set_market_level(SELL, D(100), D(4))
    assert fills(matches) == [("high", "101", "1"), ("low", "100", "1"), ("low2", "100", "1")]
    assert {(m.taker_id, m.taker_owner, m.side) for m in matches} == {(MKT_ASK_100, MARKET, SELL)}
    assert b.levels(SELL, clients=False) == [(D(100), D(1))]
    # the feed's own crossed book simply rests crossed
    assert b.levels(BUY, clients=False)[0] == (D(102), D(7)) and b.best(BUY) == 102
    assert [r.order_id for r in b.orders()] == ["out"]


def test_market_trade_fills_better_prices_then_only_beyond_the_markets_queue() -> None:
    b = book()
    ask(b, "early", "100", "1")  # ahead of the market at 100
    b.set_market_level(SELL, D(100), D(2))
    ask(b, "late", "100", "5")  # behind it
    ask(b, "better", "99", "1")
    ask(b, "worse", "101", "1")
    matches = b.market_trade(BUY, D(100), D(3))
    assert fills(matches) == [("better", "99", "1"), ("early", "100", "1")]
    assert {(m.taker_owner, m.side) for m in matches} == {(MARKET, BUY)}
    assert b.levels(SELL, clients=False) == [(D(100), D(2))]  # the market's liquidity is not consumed
    matches = b.market_trade(BUY, D(100), D(4))
    assert fills(matches) == [("late", "100", "2")]  # 4 printed, the market's 2 ahead took the first 2
    assert b.get("late") is not None and b.get("late").remaining == 3  # type: ignore[union-attr]
    assert b.get("worse") is not None
    assert b.market_trade(SELL, D(100), D(9)) == []  # no client bids


def test_market_trade_counts_the_markets_queue_only_at_the_print_price() -> None:
    b = book()
    b.set_market_level(SELL, D(99), D(5))
    ask(b, "behind_at_99", "99", "1")
    # a buy printed at 100 went through everything at 99, the market's 5 as well as the client's 1
    assert fills(b.market_trade(BUY, D(100), D(1))) == [("behind_at_99", "99", "1")]


# -- amend -----------------------------------------------------------------------------------


def test_amend_decrease_keeps_priority_increase_and_price_change_lose_it() -> None:
    b = book()
    a = ask(b, "a", "100", "3")
    ask(b, "b", "100", "3")
    seq = a.seq
    out = b.amend("a", amount=D(2))
    assert out.resting is a and a.seq == seq and a.amount == 2 and not out.matches
    out = b.amend("a", amount=D(4))
    assert a.seq > seq and b.orders() == [b.get("b"), a]
    taken = b.submit(order_id="t", owner="me", side=BUY, amount=D(1), price=D(100))
    assert fills(taken) == [("b", "100", "1")]
    b.amend("b", price=D("100.5"))
    b.amend("b", price=D(100))  # back at 100, but now behind a
    taken = b.submit(order_id="t2", owner="me", side=BUY, amount=D(1), price=D(100))
    assert fills(taken) == [("a", "100", "1")]


def test_amend_to_a_crossing_price_matches_as_a_taker() -> None:
    b = book()
    ask(b, "a", "101", "1")
    c = bid(b, "c", "100", "3", owner="me")
    out = b.amend("c", price=D(102))
    assert fills(out) == [("a", "101", "1")] and out.matches[0].taker_id == "c"
    assert out.resting is c and c.price == 102 and c.filled == 1 and c.remaining == 2
    assert b.best(BUY) == 102 and b.best(SELL) is None
    ask(b, "d", "103", "2")
    out = b.amend("c", price=D(103))
    assert out.resting is None and b.get("c") is None and c.filled == 3


def test_amend_refusals() -> None:
    b = book()
    ask(b, "a", "101", "1")
    c = bid(b, "c", "100", "3")
    b.market_trade(SELL, D(100), D(1))
    assert c.filled == 1
    with pytest.raises(ValueError, match="filled"):
        b.amend("c", amount=D(1))
    with pytest.raises(KeyError):
        b.amend("nope", amount=D(1))
    p = b.submit(order_id="p", owner="me", side=BUY, amount=D(1), price=D(99), post_only=True).resting
    assert p is not None
    out = b.amend("p", price=D(101))
    assert out.rejected == "post_only" and out.resting is p and p.price == 99 and not out.matches


# -- bad numbers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "price"),
    [
        *[("0", "100"), ("-1", "100"), ("NaN", "100"), ("Infinity", "100"), ("sNaN", "100")],
        *[("1", "0"), ("1", "-100"), ("1", "NaN"), ("1", "-Infinity")],
    ],
)
def test_bad_numbers_are_value_errors_that_leave_the_book_alone(amount: str, price: str) -> None:
    b = book()
    ask(b, "a", "100", "1")
    bid(b, "c", "99", "1")
    before = snapshot(b)
    with pytest.raises(ValueError):
        b.submit(order_id="x", owner="me", side=BUY, amount=D(amount), price=D(price))
    with pytest.raises(ValueError):
        b.amend("c", amount=D(amount), price=D(price))
    with pytest.raises(ValueError):
        b.market_trade(SELL, D(price), D(amount))
    with pytest.raises(ValueError):
        b.set_market_level(SELL, D(price), D(amount) if amount != "0" else D(-1))
    assert snapshot(b) == before


def test_duplicate_ids_and_nonsense_arguments_are_value_errors() -> None:
    b = book()
    bid(b, "c", "99", "1")
    with pytest.raises(ValueError, match="duplicate"):
        b.submit(order_id="c", owner="me", side=BUY, amount=D(1), price=D(98))
    with pytest.raises(ValueError, match="market"):
        b.submit(order_id="x", owner=MARKET, side=BUY, amount=D(1), price=D(98))
    with pytest.raises(ValueError, match="post-only"):
        b.submit(order_id="x", owner="me", side=BUY, amount=D(1), post_only=True)
    with pytest.raises(TypeError):
        b.submit(order_id="x", owner="me", side=BUY, amount=1, price=D(98))  # type: ignore[arg-type]
    assert [r.order_id for r in b.orders()] == ["c"]


# -- random sequences against a brute-force reference ----------------------------------------


@attrs.frozen
class Snap:
    order_id: str
    owner: str
    side: Side
    price: Decimal
    seq: int
    filled: Decimal
    remaining: Decimal


def snapshot(b: OrderBook) -> list[Snap]:
    entries = b.orders() + b.orders(MARKET)
    return sorted(
        (Snap(r.order_id, r.owner, r.side, r.price, r.seq, r.filled, r.remaining) for r in entries),
        key=lambda s: s.seq,
    )


def ranked(snaps: list[Snap], maker_side: Side, limit: Decimal | None) -> list[Snap]:
    """The makers a taker with `limit` meets, in price-time priority: the reference, by sorting."""

    def crosses(s: Snap) -> bool:
        return limit is None or (s.price <= limit if maker_side is SELL else s.price >= limit)

    side_snaps = [s for s in snaps if s.side is maker_side and crosses(s)]
    return sorted(side_snaps, key=lambda s: (s.price if maker_side is SELL else -s.price, s.seq))


def walk(
    makers: list[Snap], owner: str, amount: Decimal, mode: SelfTrade
) -> tuple[str | None, list[tuple[str, Decimal, Decimal]], list[str], Decimal]:
    """(reject reason, (maker, price, amount) matches, cancelled own makers, amount left)."""
    left = amount
    out: list[tuple[str, Decimal, Decimal]] = []
    cancelled: list[str] = []
    for m in makers:
        if left == 0:
            break
        if m.owner == owner and mode == "reject_taker":
            return "self_trade", [], [], amount
        if m.owner == owner and mode == "cancel_maker":
            cancelled.append(m.order_id)
            continue
        q = min(left, m.remaining)
        out.append((m.order_id, m.price, q))
        left -= q
    return None, out, cancelled, left


PRICES = st.sampled_from([D(p) for p in ("98", "99", "99.5", "100", "100.5", "101", "102")])
AMOUNTS = st.sampled_from([D(a) for a in ("0.5", "1", "2", "3")])
OWNERS = st.sampled_from(["alice", "bob"])


class BookMachine(RuleBasedStateMachine):
    """Every operation against a reference computed from a snapshot taken just before it, then
    the shadow of each order's remaining (moved only by the matches reported) against the book."""

    def __init__(self) -> None:
        super().__init__()
        self.book = book()
        self.ids = itertools.count()
        self.shadow: dict[str, Decimal] = {}  # client order id -> remaining, from the reports
        self.market_shadow: dict[tuple[Side, Decimal], Decimal] = {}

    @initialize(
        bids=st.lists(AMOUNTS, min_size=2, max_size=2),
        asks=st.lists(AMOUNTS, min_size=2, max_size=2),
        clients=st.lists(st.tuples(OWNERS, st.sampled_from(list(Side)), PRICES, AMOUNTS), max_size=6),
    )
    def seed(
        self, bids: list[Decimal], asks: list[Decimal], clients: list[tuple[str, Side, Decimal, Decimal]]
    ) -> None:
        """Start from a quoted market with a few client orders in it, so that short runs already
        exercise queues, crossings and the queue model, not an empty book."""
        for price, amount in zip((D(99), D(98)), bids, strict=True):
            self.set_market_level(BUY, price, amount)
        for price, amount in zip((D(101), D(102)), asks, strict=True):
            self.set_market_level(SELL, price, amount)
        for owner, side, price, amount in clients:
            self.submit(owner, side, amount, price, "gtc", False, "allow")

    def apply(self, matches: tuple[Match, ...] | list[Match], taker_amount: Decimal | None) -> None:
        """Move the shadows by the matches: each one exactly once, from its own maker."""
        for m in matches:
            if m.maker_owner == MARKET:
                key = (m.side.opposite, m.price)
                self.market_shadow[key] -= m.amount
                assert self.market_shadow[key] == m.maker_remaining
                if m.maker_remaining == 0:
                    del self.market_shadow[key]
            else:
                self.shadow[m.maker_id] -= m.amount
                assert self.shadow[m.maker_id] == m.maker_remaining
                if m.maker_remaining == 0:
                    del self.shadow[m.maker_id]
            assert m.amount > 0
        if taker_amount is not None:
            assert sum((m.amount for m in matches), D(0)) <= taker_amount

    @rule(
        owner=OWNERS,
        side=st.sampled_from(list(Side)),
        amount=AMOUNTS,
        price=st.one_of(st.none(), PRICES),
        tif=st.sampled_from(["gtc", "ioc", "fok"]),
        post_only=st.booleans(),
        mode=st.sampled_from(["allow", "reject_taker", "cancel_maker"]),
    )
    def submit(
        self,
        owner: str,
        side: Side,
        amount: Decimal,
        price: Decimal | None,
        tif: str,
        post_only: bool,
        mode: SelfTrade,
    ) -> None:
        if price is None:
            post_only = False
        before = snapshot(self.book)
        makers = ranked(before, side.opposite, price)
        reason, expected, cancelled, left = walk(makers, owner, amount, mode)
        if post_only and makers:
            reason = "post_only"
        elif reason is None and tif == "fok" and left > 0:
            reason = "fill_or_kill"
        order_id = f"o{next(self.ids)}"
        out = self.book.submit(
            order_id=order_id,
            owner=owner,
            side=side,
            amount=amount,
            price=price,
            tif=tif,  # type: ignore[arg-type]
            post_only=post_only,
            self_trade=mode,
        )
        assert out.rejected == reason
        event(f"submit {reason or 'matches'} {min(len(out.matches), 2)} cancels {len(out.cancelled_makers)}")
        if reason is not None:
            assert (out.matches, out.resting, out.cancelled_makers, out.unfilled) == ((), None, (), amount)
            assert snapshot(self.book) == before
            return
        assert [(m.maker_id, m.price, m.amount) for m in out.matches] == expected
        assert {(m.taker_id, m.taker_owner, m.side) for m in out.matches} <= {(order_id, owner, side)}
        assert [r.order_id for r in out.cancelled_makers] == cancelled
        for gone in cancelled:
            del self.shadow[gone]
        self.apply(out.matches, amount)
        rests = left > 0 and tif == "gtc" and price is not None
        assert (out.resting is not None) == rests
        if out.resting is not None:
            assert out.resting.remaining == left and out.resting.filled == amount - left
            self.shadow[order_id] = left
        assert out.filled + (out.resting.remaining if out.resting else 0) + out.unfilled == amount

    @rule(pick=st.integers(min_value=0, max_value=50))
    def cancel(self, pick: int) -> None:
        orders = self.book.orders()
        if not orders:
            assert self.book.cancel("o-none") is None
            return
        target = orders[pick % len(orders)]
        assert self.book.cancel(target.order_id) is target
        assert self.book.get(target.order_id) is None and self.book.cancel(target.order_id) is None
        del self.shadow[target.order_id]

    @rule(
        pick=st.integers(min_value=0, max_value=50),
        price=st.one_of(st.none(), PRICES),
        amount=st.one_of(st.none(), AMOUNTS),
    )
    def amend(self, pick: int, price: Decimal | None, amount: Decimal | None) -> None:
        orders = self.book.orders()
        if not orders:
            return
        target = orders[pick % len(orders)]
        before = snapshot(self.book)
        old = next(s for s in before if s.order_id == target.order_id)
        new_price = old.price if price is None else price
        new_amount = target.amount if amount is None else amount
        if new_amount <= old.filled:
            with pytest.raises(ValueError, match="filled"):
                self.book.amend(target.order_id, price=price, amount=amount)
            assert snapshot(self.book) == before
            return
        others = [s for s in before if s.order_id != target.order_id]
        makers = ranked(others, old.side.opposite, new_price)
        out = self.book.amend(target.order_id, price=price, amount=amount)
        event(f"amend {out.rejected or 'matches'} {min(len(out.matches), 2)}")
        if target.post_only and new_price != old.price and makers:
            assert out.rejected == "post_only" and out.resting is target
            assert snapshot(self.book) == before
            return
        assert out.rejected is None
        keeps_place = new_price == old.price and new_amount <= old.filled + old.remaining
        _, expected, _, left = walk(makers, old.owner, new_amount - old.filled, "allow")
        assert [(m.maker_id, m.price, m.amount) for m in out.matches] == expected
        if keeps_place:
            assert not expected and target.seq == old.seq
        else:
            assert target.seq > max(s.seq for s in before) or out.resting is None
        self.apply(out.matches, new_amount - old.filled)
        if left == 0:
            assert out.resting is None and self.book.get(target.order_id) is None
            del self.shadow[target.order_id]
        else:
            assert out.resting is target and target.remaining == left and target.amount == new_amount
            self.shadow[target.order_id] = left

    @rule(side=st.sampled_from(list(Side)), price=PRICES, amount=st.one_of(st.just(D(0)), AMOUNTS))
    def set_market_level(self, side: Side, price: Decimal, amount: Decimal) -> None:
        before = snapshot(self.book)
        clients = [s for s in before if s.owner != MARKET]
        _, expected, _, left = walk(ranked(clients, side.opposite, price), MARKET, amount, "allow")
        old = next((s for s in before if s.owner == MARKET and s.side is side and s.price == price), None)
        matches = self.book.set_market_level(side, price, amount)
        event(f"set_market_level matches {min(len(matches), 2)}")
        assert [(m.maker_id, m.price, m.amount) for m in matches] == expected
        assert all(m.taker_owner == MARKET and m.side is side for m in matches)
        self.apply(matches, amount)
        now = next((r for r in self.book.orders(MARKET) if r.side is side and r.price == price), None)
        if left == 0:
            assert now is None
            self.market_shadow.pop((side, price), None)
            return
        assert now is not None and now.remaining == left
        self.market_shadow[(side, price)] = left
        if old is not None and left <= old.remaining:
            assert now.seq == old.seq
        else:
            assert now.seq > max((s.seq for s in before), default=0)

    @rule(side=st.sampled_from(list(Side)), price=PRICES, amount=AMOUNTS)
    def market_trade(self, side: Side, price: Decimal, amount: Decimal) -> None:
        self.check_market_trade(side, price, amount)

    @rule(
        pick=st.integers(min_value=0, max_value=50),
        through=st.sampled_from([D(0), D(0), D("0.5"), D(1)]),
        amount=AMOUNTS,
    )
    def market_trade_near_a_client(self, pick: int, through: Decimal, amount: Decimal) -> None:
        """A print at a client order's price, or a little through it: random prices seldom reach
        the few client orders resting, and the queue model lives at exactly those prices."""
        orders = self.book.orders()
        if not orders:
            return
        target = orders[pick % len(orders)]
        aggressor = target.side.opposite
        price = target.price + through if aggressor is BUY else target.price - through
        self.check_market_trade(aggressor, price, amount)

    def check_market_trade(self, side: Side, price: Decimal, amount: Decimal) -> None:
        before = snapshot(self.book)
        budget = amount
        expected: list[tuple[str, Decimal, Decimal]] = []
        for s in ranked(before, side.opposite, price):
            if budget == 0:
                break
            if s.owner == MARKET:
                if s.price == price:
                    budget -= min(budget, s.remaining)
                continue
            expected.append((s.order_id, s.price, min(budget, s.remaining)))
            budget -= expected[-1][2]
        matches = self.book.market_trade(side, price, amount)
        assert [(m.maker_id, m.price, m.amount) for m in matches] == expected
        event(f"market_trade fills {min(len(matches), 2)}")
        self.apply(matches, amount)
        assert [s for s in snapshot(self.book) if s.owner == MARKET] == [
            s for s in before if s.owner == MARKET
        ]

    @invariant()
    def book_is_consistent(self) -> None:
        clients = self.book.orders()
        market = self.book.orders(MARKET)
        everything = clients + market
        assert {r.order_id: r.remaining for r in clients} == self.shadow
        assert {(r.side, r.price): r.remaining for r in market} == self.market_shadow
        for r in everything:
            assert r.remaining > 0 and 0 <= r.filled < r.amount
        for r in clients:
            assert self.book.get(r.order_id) is r
            others = [o.price for o in everything if o.side is not r.side]
            if r.side is BUY:
                assert all(p > r.price for p in others), "a client bid rests crossed"
            else:
                assert all(p < r.price for p in others), "a client ask rests crossed"
        for side in Side:
            mine = [r for r in everything if r.side is side]
            totals: dict[Decimal, Decimal] = {}
            for r in mine:
                totals[r.price] = totals.get(r.price, D(0)) + r.remaining
            order = sorted(totals, reverse=side is BUY)
            assert self.book.levels(side) == [(p, totals[p]) for p in order]
            assert self.book.best(side) == (order[0] if order else None)
            market_levels = sorted(
                ((r.price, r.remaining) for r in market if r.side is side), reverse=side is BUY
            )
            assert self.book.levels(side, clients=False) == market_levels


TestBookMachine = BookMachine.TestCase
TestBookMachine.settings = settings(
    max_examples=examples(75),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
