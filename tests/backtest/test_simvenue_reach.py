"""The simulated venue's `reach` summary and the replay loops' skip of `on_book` built on it.

A random session of orders (limit, market, IOC, FOK, GTD, post-only; edits, cancels, expiries),
book updates (deltas, snapshots, a book that goes invalid or is not there) and trades drives a
`SimulatedVenue` that is always called, as before the skip; at each book update the skip's
verdict (`book_reaches`, and the compiled loop's own check, `_kernel.book_reaches`) is compared
with what the call did: a skipped call must return nothing and change nothing. After every step
the summary must be the one computed afresh from the resting orders and the consumed sizes: a
method that changes them without updating it fails here (whether or not that session met the
update it would have skipped wrongly)."""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.helpers import OPTION, PERP, book, registry, request, trade
from tradingd.connectors.deribit.fees import DeribitFees
from tradingd.engine import Fill, OrderBook, OrderRejected
from tradingd.engine.model import Order, SimulatedVenue
from tradingd.engine.model.events import BookUpdate, PrivateEvent, Side

_kernel: Any = None
if importlib.util.find_spec("tradingd.engine.backtest._kernel") is not None:
    from tradingd.engine.backtest import _kernel

_TICK = 0.0001  # OPTION's finest tick: prices are 460..540 ticks (0.0460..0.0540) around the book
_LO, _HI = 460, 540


def _books() -> dict[str, OrderBook]:
    b = OrderBook(_TICK)
    for t, s in ((480, 1.5), (470, 4.0)):
        b.set_bid(t, s)
    for t, s in ((500, 2.0), (510, 3.0)):
        b.set_ask(t, s)
    return {OPTION.symbol: b}


def _price(b: OrderBook | None, ticks: int) -> float:
    assert b is not None
    return b.price_of(ticks)


def _state(sim: SimulatedVenue) -> Any:
    """Everything a call may change, by value."""
    return (
        {i: [attrs.astuple(r, recurse=False) for r in rs] for i, rs in sim.resting.items()},
        {i: dict(u) for i, u in sim.consumed.items()},
        _summary(sim.reach),
        sorted(sim._by_client),
        repr(sim._ids),
        repr(sim._trade_ids),
    )


def _summary(reach: dict[str, Any]) -> dict[str, Any]:
    """`reach` by value (an entry holds the live `consumed` dict of its instrument)."""
    return {i: e if e is None else (*e[:2], None if e[2] is None else dict(e[2])) for i, e in reach.items()}


def _fresh(sim: SimulatedVenue) -> dict[str, Any]:
    """The summary as the module docstring of simvenue.py defines it, computed afresh."""
    out: dict[str, Any] = {}
    for inst in {*sim.resting, *sim.consumed}:
        orders = sim.resting.get(inst) or []
        used = sim.consumed.get(inst) or {}
        if not orders and not used:
            continue
        if orders and sim.queue_ahead:
            out[inst] = None
            continue
        buys = [r.ticks for r in orders if r.side is Side.BUY]
        sells = [r.ticks for r in orders if r.side is Side.SELL]
        out[inst] = (max(buys, default=None), min(sells, default=None), dict(used) or None)
    return out


_ticks = st.integers(_LO, _HI)
_size = st.sampled_from(["0.1", "0.3", "1", "2", "5"])
_submit = st.tuples(
    st.just("submit"),
    st.sampled_from([OPTION.symbol, OPTION.symbol, OPTION.symbol, PERP.symbol]),
    st.sampled_from(["buy", "sell"]),
    st.one_of(st.none(), _ticks),  # None: a market order
    _size,
    st.sampled_from(["gtc", "gtc", "gtc", "gtc", "gtd", "ioc", "fok", "post"]),
    # Self-trading (`submit(own=...)`): none, with any resting order, with every other one placed.
    st.sampled_from([None, None, "all", "even"]),
)
_level = st.tuples(_ticks, st.sampled_from([0.0, 0.0, 0.5, 1.0, 2.5]))
_update = st.tuples(
    st.just("book"),
    st.lists(_level, max_size=4),
    st.lists(_level, max_size=4),
    st.sampled_from(["delta", "delta", "delta", "snapshot", "invalid", "valid", "perp"]),
)
_op = st.one_of(
    _submit,
    _submit,
    _submit,
    _update,
    _update,
    _update,
    _update,
    st.tuples(st.just("trade"), _ticks, st.sampled_from([0.2, 1.0, 4.0]), st.sampled_from(["buy", "sell"])),
    st.tuples(st.just("cancel"), st.integers(0, 9)),
    st.tuples(st.just("edit"), st.integers(0, 9), st.one_of(st.none(), _ticks), st.one_of(st.none(), _size)),
    st.tuples(st.just("expire"), st.booleans()),
)


_OWN: dict[str | None, Callable[[Order], bool] | None] = {
    None: None,
    "all": lambda o: True,
    "even": lambda o: int(o.request.client_order_id[1:]) % 2 == 0,
}


def _submit_op(
    sim: SimulatedVenue, placed: list[Order], n: int, now: int, op: tuple[Any, ...]
) -> list[PrivateEvent]:
    """A session's "submit" op: order `c{n}` placed (and kept in `placed`); the venue's answer."""
    _, inst, side, ticks, size, tif, own = op
    kw: dict[str, Any] = {}
    if tif == "gtd":
        kw = {"time_in_force": "gtd", "expire_at_ns": now + 3_000}
    elif tif == "post":
        kw = {"post_only": True}
    elif tif != "gtc":
        kw = {"time_in_force": tif}
    if ticks is None:
        kw.pop("post_only", None)
        price = None
    elif inst == PERP.symbol:
        price = str(Decimal(ticks) * 100)  # 40,000..60,000: PERP has no book here
    else:
        price = str(Decimal(ticks) * Decimal("0.0001"))
    o = Order(request(side, size, price, instrument=inst, cid=f"c{n}", **kw), now_ns=now)
    placed.append(o)
    return sim.submit(o, now, own=_OWN[own])


def _book_op(books: dict[str, OrderBook], now: int, op: tuple[Any, ...]) -> BookUpdate:
    """A session's "book" op: the book changed as the decoder would have, and its update."""
    _, bids, asks, how = op
    inst = PERP.symbol if how == "perp" else OPTION.symbol
    b = books.get(inst)
    if how == "invalid" and b is not None:
        b.valid = False
    elif how == "valid" and b is not None:
        b.valid = True
    if how == "snapshot" and b is not None:
        b.clear()
        b.valid = True
    q = _TICK if b is None else None
    bid_levels = tuple((t * q if q else _price(b, t), s) for t, s in bids)
    ask_levels = tuple((t * q if q else _price(b, t), s) for t, s in asks)
    if b is not None:
        b.update(bid_levels, ask_levels)
    return book(inst, now, snapshot=how == "snapshot", bids=bid_levels, asks=ask_levels)


def _run(ops: list[tuple[Any, ...]], queue_ahead: bool, check: Callable[[SimulatedVenue, Any], None]) -> None:
    books: dict[str, OrderBook] = _books()
    sim = SimulatedVenue(
        "deribit", registry(), DeribitFees(), books.get, index=lambda _: 100_000.0, queue_ahead=queue_ahead
    )
    placed: list[Order] = []
    now = 0
    for n, op in enumerate(ops):
        now += 1_000
        kind = op[0]
        if kind == "submit":
            _submit_op(sim, placed, n, now, op)
        elif kind == "book":
            check(sim, _book_op(books, now, op))
        elif kind == "trade":
            _, ticks, size, side = op
            sim.on_trade(trade(ticks * _TICK, size, side, ts=now), now)
        elif kind == "cancel" and placed:
            with contextlib.suppress(OrderRejected):  # no longer open
                sim.cancel(placed[op[1] % len(placed)], now)
        elif kind == "edit" and placed:
            _, i, ticks, size = op
            with contextlib.suppress(OrderRejected):  # no longer open, or below its filled size
                sim.edit(
                    placed[i % len(placed)],
                    now,
                    price=None if ticks is None else Decimal(ticks) * Decimal("0.0001"),
                    size=None if size is None else Decimal(size),
                )
        elif kind == "expire":
            sim.expire(now, OPTION.symbol if op[1] else None)
        assert _summary(sim.reach) == _fresh(sim), f"the summary after {op}"


def _check_skip(sim: SimulatedVenue, u: Any) -> None:
    """The loops' verdict on `u`, then the call made anyway: a skip must lose nothing."""
    inst = u.instrument
    known = inst in sim.reach
    assert known == bool(sim.resting.get(inst) or sim.consumed.get(inst))  # the frame's `fill_used`
    reaches = known and sim.book_reaches(u)
    if known and _kernel is not None:
        assert _kernel.book_reaches(sim, u, OrderBook) is reaches
    before = _state(sim)
    out = sim.on_book(u, u.ts_local)
    if not reaches:
        assert out == []
        assert _state(sim) == before


@pytest.mark.parametrize("queue_ahead", [False, True])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(_op, min_size=10, max_size=80))
def test_a_skipped_book_update_would_have_done_nothing(queue_ahead: bool, ops: list[tuple[Any, ...]]) -> None:
    _run(ops, queue_ahead, _check_skip)


def test_the_skip_skips_most_updates_of_a_bid_under_the_ask() -> None:
    """The point of it: an order resting away from the touch costs no `on_book` call, the update
    that moves the ask onto it is not skipped (and fills it), and then only the updates that set
    the level it took from are not."""
    books = _books()
    sim = SimulatedVenue("deribit", registry(), DeribitFees(), books.get, index=lambda _: 100_000.0)
    sim.submit(Order(request("buy", "0.4", "0.0490", cid="b"), now_ns=0), 0)
    assert sim.reach == {OPTION.symbol: (490, None, None)}
    b = books[OPTION.symbol]
    b.update((), ((0.0505, 1.0),))
    assert not sim.book_reaches(book(asks=((0.0505, 1.0),)))
    b.update((), ((0.0490, 0.5),))
    u = book(asks=((0.0490, 0.5),))
    b.valid = False  # after a gap: nothing fills from this book until a snapshot
    assert not sim.book_reaches(u) and sim.on_book(u, 1) == []
    if _kernel is not None:
        assert not _kernel.book_reaches(sim, u, OrderBook)
    b.valid = True
    assert sim.book_reaches(u)
    if _kernel is not None:
        assert _kernel.book_reaches(sim, u, OrderBook)
    assert [e.size for e in sim.on_book(u, 1) if isinstance(e, Fill)] == [Decimal("0.4")]
    # The size taken at 490 waits for the feed: an update of 490 is not skipped, one of 505 is.
    assert sim.reach == {OPTION.symbol: (None, None, {(1, 490): 0.4})}
    later = book(asks=((0.0505, 2.0),))
    assert not sim.book_reaches(later)
    assert sim.book_reaches(book(asks=((0.0490, 0.0),)))
    if _kernel is not None:
        assert not _kernel.book_reaches(sim, later, OrderBook)
        assert _kernel.book_reaches(sim, book(asks=((0.0490, 0.0),)), OrderBook)
    assert sim.on_book(book(asks=((0.0490, 0.0),)), 2) == [] and sim.reach == {}


def test_a_sell_is_reached_by_a_bid_at_its_price() -> None:
    books = _books()
    sim = SimulatedVenue("deribit", registry(), DeribitFees(), books.get, index=lambda _: 100_000.0)
    sim.submit(Order(request("sell", "1", "0.0495", cid="a"), now_ns=0), 0)
    sim.submit(Order(request("sell", "1", "0.0497", cid="b"), now_ns=0), 0)
    assert sim.reach == {OPTION.symbol: (None, 495, None)}
    b = books[OPTION.symbol]
    for ticks, reaches in ((494, False), (495, True)):
        b.update(((b.price_of(ticks), 1.0),), ())
        u = book(bids=((b.price_of(ticks), 1.0),))
        assert sim.book_reaches(u) is reaches
        if _kernel is not None:
            assert _kernel.book_reaches(sim, u, OrderBook) is reaches


@pytest.mark.skipif(_kernel is None, reason="the compiled loop is not built")
def test_the_book_helper_refuses_an_event_of_another_class() -> None:
    """`_kernel.book_reaches` takes any object; its C path reads the book's slots around the
    event's attribute reads, which on another class may run code (a property) that replaces them:
    the loop hands it exact `BookUpdate`s only, and so must the helper."""
    books = _books()
    sim = SimulatedVenue("deribit", registry(), DeribitFees(), books.get, index=lambda _: 100_000.0)
    sim.submit(Order(request("buy", "0.4", "0.0490", cid="b"), now_ns=0), 0)

    class Duck:
        instrument = OPTION.symbol
        snapshot = False
        bids: tuple[Any, ...] = ()
        asks: tuple[Any, ...] = ()

    with pytest.raises(TypeError, match="a BookUpdate is expected"):
        _kernel.book_reaches(sim, Duck(), OrderBook)


_FOREIGN = """
from decimal import Decimal
from tests.backtest.test_simvenue_reach import _books, _kernel
from tests.support.helpers import book, registry, request
from tradingd.connectors.deribit.fees import DeribitFees
from tradingd.engine import OrderBook
from tradingd.engine.model import Order, SimulatedVenue

class Other:
    __slots__ = tuple(f"m{i}" for i in range(64))

books = _books()
sim = SimulatedVenue("deribit", registry(), DeribitFees(), books.get, index=lambda _: 100_000.0)
sim.submit(Order(request("buy", "0.4", "0.0490", cid="b"), now_ns=0), 0)
u = book(asks=((0.0505, 1.0),))
print(_kernel.book_reaches(sim, u, OrderBook))
for name in ("_ba", "_bb", "valid", "_inv"):  # members of another class: no offsets of a book's
    setattr(OrderBook, name, Other.__dict__[f"m{55 + len(name)}"])
try:
    print(sim.book_reaches(u))
except TypeError as exc:
    print("method", "doesn't apply" in str(exc))
try:
    print(_kernel.book_reaches(sim, u, OrderBook))
except TypeError as exc:
    print("method", "doesn't apply" in str(exc))
"""


@pytest.mark.skipif(_kernel is None, reason="the compiled loop is not built")
def test_the_book_check_reads_no_member_of_another_class() -> None:
    """A member descriptor set on `OrderBook` from another class (its offset not one of a book's)
    is not read by offset: the check is the method's, which refuses it as Python does. In a child:
    read by offset, it is memory past the book's."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", _FOREIGN], cwd=root, capture_output=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert proc.stdout.decode().splitlines() == ["False", "method True", "method True"]
