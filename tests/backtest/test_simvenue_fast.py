"""The simulated venue's fast paths, each held to its general path.

- `on_trade`'s exit for a trade that reaches no resting order (told from `reach`, without the
  instrument's lookup), against `_trade` (every resting order in turn);
- `_opposite_levels`' test of the best level a plain `OrderBook` keeps, against the scan of the
  side's levels that any other book gets.

A random session (the ops of tests/backtest/test_simvenue_reach.py: orders of every kind, edits,
cancels, expiries, book updates and trades; here also trades of the perpetual, which has no book,
trades at prices with no tick, and instruments leaving the registry) drives two venues side by
side, one of them on the general paths: every call must answer the same, and leave the same
state."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.backtest.test_simvenue_reach import (
    _HI,
    _LO,
    _TICK,
    _book_op,
    _books,
    _op,
    _submit_op,
    _summary,
)
from tests.support.helpers import OPTION, PERP, registry, trade
from tradingd.connectors.deribit.fees import DeribitFees
from tradingd.engine import OrderBook, OrderRejected
from tradingd.engine.model import InstrumentRegistry, Order, SimulatedVenue
from tradingd.engine.model.events import PrivateEvent, Side, Trade


class _General(SimulatedVenue):
    """The venue on its general paths: every trade through `_trade`, and the levels an order
    reaches told by scanning the side, whatever the book."""

    def on_trade(self, trade: Trade, now: int) -> list[PrivateEvent]:
        return self._trade(trade, now)

    def _opposite_levels(
        self, book: OrderBook, side: Side, limit: int | None = None
    ) -> tuple[int, list[tuple[int, float]]]:
        if limit is None:
            return super()._opposite_levels(book, side, None)
        if side is Side.BUY:
            asks = book.asks
            if not asks or min(asks) > limit:
                return 1, []
            return 1, [(t, asks[t]) for t in sorted([t for t in asks if t <= limit])]
        bids = book.bids
        if not bids or max(bids) < limit:
            return 0, []
        return 0, [(t, bids[t]) for t in sorted([t for t in bids if t >= limit], reverse=True)]


def _state(sim: SimulatedVenue) -> Any:
    """Everything a call may change, by value (an order by its client order id: each venue has
    its own `Order`s)."""
    resting = {
        i: [(r.order.client_order_id, *attrs.astuple(r, recurse=False)[1:]) for r in rs]
        for i, rs in sim.resting.items()
    }
    return (
        resting,
        {i: dict(u) for i, u in sim.consumed.items()},
        _summary(sim.reach),
        sorted(sim._by_client),
        repr(sim._ids),
        repr(sim._trade_ids),
    )


def _venue(cls: type[SimulatedVenue], queue_ahead: bool) -> tuple[SimulatedVenue, dict[str, OrderBook]]:
    books = _books()
    sim = cls(
        "deribit", registry(), DeribitFees(), books.get, index=lambda _: 100_000.0, queue_ahead=queue_ahead
    )
    return sim, books


def _step(
    sim: SimulatedVenue,
    books: dict[str, OrderBook],
    placed: list[Order],
    n: int,
    now: int,
    op: tuple[Any, ...],
) -> Any:
    """One op of test_simvenue_reach's sessions on `sim`; what the call answered (or raised)."""
    kind = op[0]
    if kind == "submit":
        return _submit_op(sim, placed, n, now, op)
    if kind == "book":
        return sim.on_book(_book_op(books, now, op), now)
    if kind == "trade":
        _, ticks, size, side, *more = op  # test_simvenue_reach's trades: the option, at a tick
        inst, price = more or (OPTION.symbol, None)
        if price is None:
            price = ticks * 100.0 if inst == PERP.symbol else ticks * _TICK
        try:
            return sim.on_trade(trade(price, size, side, instrument=inst, ts=now), now)
        except (ValueError, OverflowError) as exc:  # a price with no tick (NaN, inf)
            return repr(exc)
    if kind == "unlist":  # the instrument gone from the registry; its orders and book stay
        sim.registry = InstrumentRegistry(i for i in sim.registry if i.symbol != op[1])
        return None
    if kind == "cancel" and placed:
        try:
            return sim.cancel(placed[op[1] % len(placed)], now)
        except OrderRejected as exc:
            return repr(exc)
    if kind == "edit" and placed:
        _, i, ticks, size = op
        try:
            return sim.edit(
                placed[i % len(placed)],
                now,
                price=None if ticks is None else Decimal(ticks) * Decimal("0.0001"),
                size=None if size is None else Decimal(size),
            )
        except OrderRejected as exc:
            return repr(exc)
    if kind == "expire":
        return sim.expire(now, OPTION.symbol if op[1] else None)
    return None


def _session(ops: list[tuple[Any, ...]], queue_ahead: bool) -> list[tuple[Any, Any]]:
    """The session on both venues: (answer, state) after each op, fast then general."""
    fast, fast_books = _venue(SimulatedVenue, queue_ahead)
    general, general_books = _venue(_General, queue_ahead)
    fast_placed: list[Order] = []
    general_placed: list[Order] = []
    out = []
    for n, op in enumerate(ops):
        now = (n + 1) * 1_000
        got = _step(fast, fast_books, fast_placed, n, now, op)
        want = _step(general, general_books, general_placed, n, now, op)
        assert got == want, f"{op}: {got} != {want}"
        assert _state(fast) == _state(general), f"the state after {op}"
        out.append((got, _state(fast)))
    return out


# Trades of either instrument (the perpetual has no book: its resting orders have no ticks a
# trade's price converts to), at prices with no tick too; and an instrument unlisted.
_trade = st.tuples(
    st.just("trade"),
    st.integers(_LO, _HI),
    st.sampled_from([0.2, 1.0, 4.0]),
    st.sampled_from(["buy", "sell"]),
    st.sampled_from([OPTION.symbol, OPTION.symbol, PERP.symbol]),
    st.sampled_from([None, None, None, None, math.nan, math.inf, -math.inf]),
)
_unlist = st.tuples(st.just("unlist"), st.sampled_from([OPTION.symbol, PERP.symbol]))


@pytest.mark.parametrize("unlisting", [False, True])
@pytest.mark.parametrize("queue_ahead", [False, True])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_fast_paths_answer_as_the_general_ones(
    queue_ahead: bool, unlisting: bool, data: st.DataObject
) -> None:
    """`unlisting`: sessions in which instruments may also leave the registry (rare ops would
    leave most sessions without one, frequent ones most sessions without the instrument)."""
    ops = st.one_of(_op, _op, _op, _trade, _unlist) if unlisting else st.one_of(_op, _op, _op, _trade)
    _session(data.draw(st.lists(ops, min_size=10, max_size=80)), queue_ahead)


def _trades_at_the_touch() -> list[tuple[Any, ...]]:
    """A bid and an offer resting, then trades on each side at, through and short of them."""
    ops: list[tuple[Any, ...]] = [
        ("submit", OPTION.symbol, "buy", 490, "1", "gtc", None),
        ("submit", OPTION.symbol, "sell", 495, "1", "gtc", None),
    ]
    for ticks in (491, 490, 489, 494, 495, 496):
        for side in ("buy", "sell"):
            ops.append(("trade", ticks, 0.2, side))
    return ops


def test_trades_at_the_touch_fill_as_the_general_path_fills() -> None:
    """The exits' edges, named (hypothesis finds them too): a sell at the bid and a buy at the
    offer fill, one tick short does not."""
    got = _session(_trades_at_the_touch(), False)
    fills = [len(answer) for answer, _ in got[2:]]
    # (ticks, aggressor): 491 buy, sell; 490 buy, sell; 489 ...; 494 ...; 495 ...; 496 ...
    assert fills == [0, 0, 0, 2, 0, 2, 0, 0, 2, 0, 2, 0]


_levels = st.lists(st.tuples(st.integers(460, 540), st.sampled_from([0.0, 0.5, 1.0])), max_size=8)


@settings(max_examples=300, deadline=None)
@given(
    bids=_levels,
    asks=_levels,
    cleared=st.booleans(),
    more=st.lists(
        st.tuples(st.booleans(), st.integers(460, 540), st.sampled_from([0.0, 0.5, 1.0])), max_size=8
    ),
    bulk=st.booleans(),
    limit=st.integers(455, 545),
    side=st.sampled_from([Side.BUY, Side.SELL]),
)
def test_the_levels_reached_on_a_plain_book_are_those_scanned(
    bids: list[tuple[int, float]],
    asks: list[tuple[int, float]],
    cleared: bool,
    more: list[tuple[bool, int, float]],
    bulk: bool,
    limit: int,
    side: Side,
) -> None:
    """A book built by its own methods, as the feeds build it: in bulk (`update`), perhaps
    `clear()`ed (a snapshot), then level by level (`set_bid`/`set_ask`) or, as the compiled
    decoder does, written into `bids`/`asks` directly and then given its best levels
    (`set_best`); removals included. The fast path reads the best level the book keeps."""
    b = OrderBook(_TICK)
    b.update([(b.price_of(t), s) for t, s in bids], [(b.price_of(t), s) for t, s in asks])
    if cleared:
        b.clear()
    if bulk:
        for is_bid, t, s in more:
            levels = b.bids if is_bid else b.asks
            if s > 0:
                levels[t] = s
            else:
                levels.pop(t, None)
        b.set_best(max(b.bids, default=None), min(b.asks, default=None))
    else:
        for is_bid, t, s in more:
            (b.set_bid if is_bid else b.set_ask)(t, s)
    fast, _ = _venue(SimulatedVenue, False)
    general, _ = _venue(_General, False)
    assert fast._opposite_levels(b, side, limit) == general._opposite_levels(b, side, limit)


def test_trades_at_a_price_with_no_tick_answer_as_the_general_path() -> None:
    """The review's cases, named: with a bid resting, a trade at NaN or inf is refused as the
    general path refuses it (no tick to compare); once the instrument is unlisted, it reaches
    nothing (the general path looks the instrument up before converting the price)."""
    ops: list[tuple[Any, ...]] = [("submit", OPTION.symbol, "buy", 490, "1", "gtc", None)]
    for price in (math.nan, math.inf, -math.inf):
        for side in ("buy", "sell"):
            ops.append(("trade", 490, 0.2, side, OPTION.symbol, price))
    ops.append(("unlist", OPTION.symbol))
    for price in (math.nan, -math.inf):
        ops.append(("trade", 490, 0.2, "sell", OPTION.symbol, price))
    answers = [answer for answer, _ in _session(ops, False)]
    refused = [a.split("(")[0] if isinstance(a, str) else a for a in answers[1:7]]
    assert refused == ["ValueError"] * 2 + ["OverflowError"] * 4
    assert answers[8:] == [[], []]
