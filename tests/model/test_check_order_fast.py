"""`Instrument.check_order`'s fast path (an order that passes returns before any refusal is
built) refuses exactly what the checks one by one refuse, with the same first reason: compared
with those checks as they were written before the fast path, on hostile numbers."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st

from tests.support.helpers import OPTION, PERP
from tradingd.engine.model.errors import OrderDenied
from tradingd.engine.model.instruments import Instrument


def reference(inst: Instrument, price: Decimal | None, size: Decimal) -> None:
    def reject(reason: str) -> OrderDenied:
        return OrderDenied(reason, venue=inst.venue, instrument=inst.symbol, client_order_id="c")

    if not inst.active:
        raise reject(f"instrument {inst.symbol} is not active")
    if not size.is_finite() or size <= 0:
        raise reject(f"size {size} must be positive")
    if size < inst.min_size:
        raise reject(f"size {size} is below the minimum size {inst.min_size}")
    if size % inst.lot != 0:
        what = "size step" if inst.size_step is not None else "minimum size"
        raise reject(f"size {size} is not a multiple of the {what} {inst.lot}")
    if price is not None:
        if not price.is_finite() or price <= 0:
            raise reject(f"price {price} must be positive")
        tick = inst.tick_for(price)
        if price % tick != 0:
            raise reject(f"price {price} is not a multiple of the tick size {tick}")


def outcome(check: Callable[[Instrument, Decimal | None, Decimal], None], *args: Any) -> tuple[str, str]:
    try:
        check(*args)
    except Exception as exc:  # the same type and text, whatever it is
        return type(exc).__name__, str(exc)
    return "ok", ""


def fast(inst: Instrument, price: Decimal | None, size: Decimal) -> None:
    inst.check_order(price, size, client_order_id="c")


INSTRUMENTS = [
    PERP,
    OPTION,  # tick steps: 0.0001 below 0.005, 0.0005 above
    attrs.evolve(PERP, active=False),
    attrs.evolve(OPTION, size_step=Decimal("0.01")),
]
numbers = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.decimals(min_value=Decimal("-1"), max_value=Decimal("200000"), places=4),
    st.sampled_from(
        [
            Decimal("0"),
            Decimal("-0"),
            Decimal("10"),
            Decimal("0.1"),
            Decimal("91250.5"),
            Decimal("0.0055"),
            Decimal("1E+60"),
            Decimal("sNaN"),
            Decimal("120"),
            Decimal("0.005"),
            Decimal("0.05"),
            Decimal("0.03"),
            Decimal("5"),
            Decimal("0.00049"),
        ]
    ),
)


@given(st.sampled_from(INSTRUMENTS), st.one_of(st.none(), numbers), numbers)
def test_the_fast_path_refuses_what_the_checks_refuse(
    inst: Instrument, price: Decimal | None, size: Decimal
) -> None:
    assert outcome(fast, inst, price, size) == outcome(reference, inst, price, size)
