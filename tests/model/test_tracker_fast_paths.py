"""The tracker's fast paths for a new order's acknowledgement and a cancel's confirmation
(`OrderTracker.apply_update`) are the general path (`apply_update_general`) in fewer steps:
twin trackers, one fed through each, must give the same events, the same orders, the same
counters and the same state callbacks on any sequence of reports."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.helpers import OPTION, request
from tradingd.engine import Fill, Liquidity, OrderState, OrderUpdate, Side
from tradingd.engine.model import Order, OrderTracker

S = OrderState
CIDS = ("s-1", "s-2", "s-3")
SIZES = st.sampled_from(["-1", "0", "0.5", "1", "2", "3"])
PRICES = st.one_of(st.none(), st.sampled_from(["0.04", "0.05", "0.06"]))


def _update(cid: str, status: OrderState, filled: str, size: str, price: str | None, ts: int) -> OrderUpdate:
    return OrderUpdate(
        venue="deribit",
        instrument=OPTION.symbol,
        ts_exchange=ts if ts % 2 else None,
        ts_local=ts,
        order_id=f"V-{cid}",
        client_order_id=cid,
        status=status,
        side=Side.BUY,
        price=None if price is None else Decimal(price),
        size=Decimal(size),
        filled_size=Decimal(filled),
        avg_fill_price=Decimal("0.05") if filled != "0" else None,
        reason=f"r{ts}" if ts % 3 == 0 else None,
    )


def _fill(cid: str, size: str, trade: str, ts: int) -> Fill:
    return Fill(
        venue="deribit",
        instrument=OPTION.symbol,
        ts_exchange=ts,
        ts_local=ts,
        order_id=f"V-{cid}",
        client_order_id=cid,
        trade_id=trade,
        side=Side.BUY,
        price=Decimal("0.05"),
        size=Decimal(size),
        fee=Decimal("0.0003"),
        fee_currency="BTC",
        liquidity=Liquidity.MAKER,
    )


def _order_state(o: Order) -> tuple[Any, ...]:
    return (o.state, o.price, o.size, o.filled_size, o.fills_size, o.avg_fill_price, o.reason, o.updated_ns)


class _Twin:
    def __init__(self, sizes: list[str]) -> None:
        self.trackers = (OrderTracker(), OrderTracker())
        self.moves: tuple[list[tuple[str, OrderState, OrderState]], ...] = ([], [])
        for t, moves in zip(self.trackers, self.moves, strict=True):
            t.on_state = lambda order, was, moves=moves: moves.append(
                (order.client_order_id, was, order.state)
            )
            for cid, size in zip(CIDS, sizes, strict=False):
                order = t.add(request(size=size, cid=cid), now_ns=1)
                t.set_order_id(order, f"V-{cid}")

    def same(self) -> None:
        a, b = self.trackers
        for cid in CIDS:
            oa, ob = a.get(cid), b.get(cid)
            assert (oa is None) == (ob is None)
            if oa is not None and ob is not None:
                assert _order_state(oa) == _order_state(ob), cid
        assert attrs.asdict(a.stats) == attrs.asdict(b.stats)
        assert self.moves[0] == self.moves[1]


OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("update"),
            st.sampled_from(CIDS),
            st.sampled_from(list(S)),
            st.sampled_from(["-1", "0", "0", "0.5", "1"]),
            SIZES,
            PRICES,
            st.booleans(),
            st.booleans(),
        ),
        st.tuples(st.just("fill"), st.sampled_from(CIDS), st.sampled_from(["0.5", "1"]), st.integers(0, 3)),
        st.tuples(st.just("cancel"), st.sampled_from(CIDS)),  # asked (the flow's `cancel_requested`)
    ),
    max_size=12,
)


@settings(max_examples=400, deadline=None)
@given(sizes=st.lists(st.sampled_from(["0.5", "1", "2"]), min_size=1, max_size=3), ops=OPS)
def test_the_acknowledgement_fast_path_is_the_general_path(
    sizes: list[str], ops: list[tuple[Any, ...]]
) -> None:
    twin = _Twin(sizes)
    a, b = twin.trackers
    for ts, op in enumerate(ops, start=2):
        if op[0] == "update":
            _, cid, status, filled, size, price, verified, use_mark = op
            u = _update(cid, status, filled, size, price, ts)
            out_a = a.apply_update(u, verified=verified, asked=a.mark() - 1 if use_mark else None)
            out_b = b.apply_update_general(u, verified=verified, asked=b.mark() - 1 if use_mark else None)
        elif op[0] == "cancel":
            for t in (a, b):
                order = t.get(op[1])
                if order is not None and order.state.is_live and order.state is not S.PENDING_CANCEL:
                    order.transition(S.PENDING_CANCEL, now_ns=ts)
            out_a = out_b = []
        else:
            _, cid, size, trade = op
            f = _fill(cid, size, f"T{trade}", ts)
            out_a, out_b = a.apply_fill(f), b.apply_fill(f)  # type: ignore[assignment]
        assert out_a == out_b, op
        twin.same()


def test_a_plain_acknowledgement_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    t = OrderTracker()
    order = t.add(request(size="1", cid="s-1"), now_ns=1)
    t.set_order_id(order, "V-s-1")

    def general(*args: object, **kwargs: object) -> list[OrderUpdate]:
        raise AssertionError("the general path was taken")

    monkeypatch.setattr(t, "_update", general)
    out = t.apply_update(_update("s-1", S.OPEN, "0", "1", "0.05", 5))
    assert [u.status for u in out] == [S.OPEN] and order.state is S.OPEN and order.updated_ns == 5


def test_a_plain_cancel_confirmation_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    t = OrderTracker()
    order = t.add(request(size="1", cid="s-1"), now_ns=1)
    t.set_order_id(order, "V-s-1")
    t.apply_update(_update("s-1", S.OPEN, "0", "1", "0.05", 2))
    order.transition(S.PENDING_CANCEL, now_ns=3)

    def general(*args: object, **kwargs: object) -> list[OrderUpdate]:
        raise AssertionError("the general path was taken")

    monkeypatch.setattr(t, "_update", general)
    out = t.apply_update(_update("s-1", S.CANCELLED, "0", "1", "0.05", 6))
    assert [u.status for u in out] == [S.CANCELLED] and order.state is S.CANCELLED and order.reason == "r6"


def test_a_final_state_said_again_as_held_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exact repeat is stale at once; with another filled size it is the general path's (the
    venue's word, tests/runtime/test_order_surprises.py)."""
    t = OrderTracker()
    order = t.add(request(size="1", cid="s-1"), now_ns=1)
    t.set_order_id(order, "V-s-1")
    t.apply_update(_update("s-1", S.OPEN, "0", "1", "0.05", 2))
    t.apply_update(_update("s-1", S.CANCELLED, "0", "1", "0.05", 3))
    taken: list[OrderUpdate] = []

    def general(order: Order, update: OrderUpdate, *args: object) -> list[OrderUpdate]:
        taken.append(update)
        return []

    monkeypatch.setattr(t, "_update", general)
    assert t.apply_update(_update("s-1", S.CANCELLED, "0", "1", "0.05", 4), verified=True) == []
    assert t.stats.stale_updates == 1 and not taken
    t.apply_update(_update("s-1", S.CANCELLED, "0.5", "1", "0.05", 5), verified=True)
    assert [u.filled_size for u in taken] == [Decimal("0.5")]


@settings(max_examples=300, deadline=None)
@given(
    size=st.sampled_from(["0.5", "1", "2"]),
    acked=st.booleans(),
    early=st.lists(st.tuples(st.sampled_from(["0.5", "1"]), st.integers(0, 2)), max_size=2),
    filled=st.sampled_from(["-1", "0", "0", "0.5", "1", "2"]),
    new_size=SIZES,
    price=PRICES,
    verified=st.booleans(),
    use_mark=st.booleans(),
)
def test_a_cancel_confirmation_is_taken_as_the_general_path_takes_it(
    size: str,
    acked: bool,
    early: list[tuple[str, int]],
    filled: str,
    new_size: str,
    price: str | None,
    verified: bool,
    use_mark: bool,
) -> None:
    """One order, perhaps acknowledged and partly filled, whose cancel was asked: the venue's
    "cancelled" (with any filled size, size and price) through each path."""
    twin = _Twin([size])
    a, b = twin.trackers
    for t in (a, b):
        if acked:
            t.apply_update(_update("s-1", S.OPEN, "0", size, "0.05", 2))
        for n, (fill_size, trade) in enumerate(early):
            t.apply_fill(_fill("s-1", fill_size, f"T{trade}", 3 + n))
        order = t.get("s-1")
        assert order is not None
        if order.state.is_live and order.state is not S.PENDING_CANCEL:
            order.transition(S.PENDING_CANCEL, now_ns=6)
    u = _update("s-1", S.CANCELLED, filled, new_size, price, 9)
    out_a = a.apply_update(u, verified=verified, asked=a.mark() - 1 if use_mark else None)
    out_b = b.apply_update_general(u, verified=verified, asked=b.mark() - 1 if use_mark else None)
    assert out_a == out_b
    twin.same()
