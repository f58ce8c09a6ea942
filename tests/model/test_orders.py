"""The order state machine, the tracker's reading of venue reports, instrument validation."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.support.helpers import OPTION, PERP, request
from tradingd.engine import (
    Fill,
    IllegalTransition,
    Liquidity,
    OrderRejected,
    OrderRequest,
    OrderState,
    OrderUpdate,
    Side,
)
from tradingd.engine.model import Order, OrderTracker
from tradingd.engine.model.orders import _ALLOWED

S = OrderState


def update(
    status: OrderState, filled: str = "0", *, cid: str = "s-bt-1", oid: str | None = "V1", ts: int = 2
) -> OrderUpdate:
    return OrderUpdate(
        venue="deribit",
        instrument=OPTION.symbol,
        ts_exchange=ts,
        ts_local=ts,
        order_id=oid,
        client_order_id=cid,
        status=status,
        side=Side.BUY,
        price=Decimal("0.05"),
        size=Decimal("1"),
        filled_size=Decimal(filled),
    )


def fill(size: str, trade_id: str, *, cid: str | None = None, oid: str | None = "V1", ts: int = 3) -> Fill:
    return Fill(
        venue="deribit",
        instrument=OPTION.symbol,
        ts_exchange=ts,
        ts_local=ts,
        order_id=oid,
        client_order_id=cid,
        trade_id=trade_id,
        side=Side.BUY,
        price=Decimal("0.05"),
        size=Decimal(size),
        fee=Decimal("0.0003"),
        fee_currency="BTC",
        liquidity=Liquidity.TAKER,
    )


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("target", list(S))
def test_state_machine_allows_exactly_its_table(current: OrderState, target: OrderState) -> None:
    order = Order(request(), now_ns=0)
    order.state = current
    if target in _ALLOWED[current]:
        order.transition(target, now_ns=1)
        assert order.state is target
    else:
        with pytest.raises(IllegalTransition) as info:
            order.transition(target, now_ns=1)
        assert order.state is current  # unchanged
        assert info.value.current == current.value


def test_final_states_are_final_and_the_table_is_sane() -> None:
    for state in (S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED):
        assert state.is_final and not _ALLOWED[state]
    assert S.REJECTED in _ALLOWED[S.PENDING_NEW]
    assert S.REJECTED not in _ALLOWED[S.OPEN]  # a live order is never "rejected" afterwards
    assert S.FILLED in _ALLOWED[S.PENDING_CANCEL]  # filled while the cancel travelled


def test_record_fill_dedups_and_averages() -> None:
    order = Order(request(size="1"), now_ns=0)
    order.transition(S.OPEN, now_ns=1)
    assert order.record_fill("a", Decimal("0.4"), Decimal("0.05"), now_ns=2)
    assert not order.record_fill("a", Decimal("0.4"), Decimal("0.05"), now_ns=3)  # same trade again
    assert (order.state, order.filled_size) == (S.PARTIALLY_FILLED, Decimal("0.4"))
    assert order.record_fill("b", Decimal("0.6"), Decimal("0.06"), now_ns=4)
    assert order.state is S.FILLED
    assert order.avg_fill_price == Decimal("0.056")


def test_tracker_refuses_a_duplicate_client_order_id() -> None:
    t = OrderTracker()
    t.add(request(), now_ns=0)
    with pytest.raises(OrderRejected, match="duplicate client order id"):
        t.add(request(), now_ns=1)


def test_fill_before_ack_still_shows_open_then_filled() -> None:
    t = OrderTracker()
    t.add(request(), now_ns=0)
    events = t.apply_fill(fill("1", "x", cid="s-bt-1"))
    assert [type(e).__name__ for e in events] == ["OrderUpdate", "Fill", "OrderUpdate"]
    assert [e.status for e in events if isinstance(e, OrderUpdate)] == [S.OPEN, S.FILLED]
    assert events[1].strategy == "s"
    # The acknowledgement arrives late: stale, nothing delivered, nothing changed.
    assert t.apply_update(update(S.OPEN)) == []
    assert t.get("s-bt-1").state is S.FILLED  # type: ignore[union-attr]
    assert t.stats.stale_updates == 1


def test_order_report_ahead_of_its_fills_counts_once() -> None:
    t = OrderTracker()
    t.add(request(), now_ns=0)
    out = t.apply_update(update(S.FILLED, "1"))
    assert [u.status for u in out] == [S.OPEN, S.FILLED]
    order = t.get("s-bt-1")
    assert order is not None and order.order_id == "V1"
    # The fill, by venue order id only: booked (for positions) without another state change.
    events = t.apply_fill(fill("1", "x", oid="V1"))
    assert len(events) == 1
    assert isinstance(events[0], Fill) and events[0].client_order_id == "s-bt-1"
    assert order.fills_size == Decimal(1) and order.filled_size == Decimal(1)
    # The same fill reported again (notification after the response): dropped.
    assert t.apply_fill(fill("1", "x", oid="V1")) == []
    assert t.stats.duplicate_fills == 1


def test_partial_then_cancel_then_a_late_fill() -> None:
    t = OrderTracker()
    t.add(request(size="1"), now_ns=0)
    t.apply_update(update(S.OPEN))
    events = t.apply_fill(fill("0.4", "a"))
    assert [e.status for e in events if isinstance(e, OrderUpdate)] == [S.PARTIALLY_FILLED]
    out = t.apply_update(update(S.CANCELLED, "0.4"))
    assert [u.status for u in out] == [S.CANCELLED]
    events = t.apply_fill(fill("0.1", "b"))  # happened before the cancel, reported after
    assert isinstance(events[0], Fill)  # the position must still see it
    last = events[-1]
    assert isinstance(last, OrderUpdate)
    assert last.status is S.CANCELLED and last.filled_size == Decimal("0.5")
    assert t.stats.late_fills == 1


def test_unknown_orders_are_counted_not_raised() -> None:
    t = OrderTracker()
    assert t.apply_update(update(S.OPEN, cid="nobody", oid="V9")) == []
    assert t.apply_fill(fill("1", "z", oid="V9")) == []
    assert t.stats.unknown_orders == 2


def test_request_validation() -> None:
    with pytest.raises(ValueError, match="market order takes no price"):
        request(price="1", type="market")
    with pytest.raises(ValueError, match="cannot be post-only"):
        request(price=None, post_only=True)
    with pytest.raises(ValueError, match="GTD"):
        request(time_in_force="gtd")
    assert request(price=None).type.value == "market"
    assert request().type.value == "limit"
    with pytest.raises(TypeError, match="decimal number"):
        OrderRequest(venue="deribit", instrument=OPTION.symbol, side=Side.BUY, size=True)
    assert OrderRequest(venue="deribit", instrument="x", side="sell", size=0.1).size == Decimal("0.1")


@pytest.mark.parametrize(
    ("price", "size", "error"),
    [
        ("0.0042", "0.1", None),  # below 0.005 the tick is 0.0001
        ("0.0052", "0.1", "multiple of the tick size 0.0005"),  # above it, 0.0005
        ("0.0060", "0.3", None),
        ("0.006", "0.05", "below the minimum size"),
        ("0.006", "0.15", "not a multiple of the minimum size"),
        ("-0.006", "0.1", "must be positive"),
    ],
)
def test_option_tick_steps_and_sizes(price: str, size: str, error: str | None) -> None:
    if error is None:
        OPTION.check_order(Decimal(price), Decimal(size))
    else:
        with pytest.raises(OrderRejected, match=error):
            OPTION.check_order(Decimal(price), Decimal(size))


def test_perpetual_contract_multiples_and_rounding() -> None:
    PERP.check_order(Decimal("91250.5"), Decimal("120"))
    with pytest.raises(OrderRejected, match="tick size 0.5"):
        PERP.check_order(Decimal("91250.25"), Decimal("120"))
    with pytest.raises(OrderRejected, match="multiple of the minimum size 10"):
        PERP.check_order(None, Decimal("125"))
    assert OPTION.round_price(0.00517, up=True) == Decimal("0.0055")
    assert OPTION.round_price(0.00517) == Decimal("0.0050")
    assert OPTION.round_price(0.00437) == Decimal("0.0043")
    assert PERP.round_size(127) == Decimal(120)


def test_a_size_step_finer_than_the_minimum() -> None:
    import attrs as _attrs

    outcome = _attrs.evolve(
        OPTION, symbol="TOKEN", min_size="5", size_step="0.01", tick_size="0.01", tick_size_steps=()
    )
    outcome.check_order(Decimal("0.42"), Decimal("7.13"))  # above the minimum, on the 0.01 grid
    with pytest.raises(OrderRejected, match="below the minimum size 5"):
        outcome.check_order(Decimal("0.42"), Decimal("4.99"))
    with pytest.raises(OrderRejected, match="multiple of the size step 0.01"):
        outcome.check_order(Decimal("0.42"), Decimal("7.005"))
    assert outcome.round_size(7.129) == Decimal("7.12")
    assert OPTION.lot == OPTION.min_size and outcome.lot == Decimal("0.01")
    with pytest.raises(ValueError, match="tick_size must be positive"):
        _attrs.evolve(OPTION, tick_size="0")
    with pytest.raises(ValueError, match="size_step must be positive"):
        _attrs.evolve(OPTION, size_step="-1")
