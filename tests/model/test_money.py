"""Issue 13: one set of converters from numbers to money (engine/model/money.py), used across the
engine; each refuses what is not a finite number and names what it was for."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from tradingd.engine import InstrumentFilter, OrderRequest, Side


def test_the_converters_are_exact_and_refuse_what_is_not_a_finite_number() -> None:
    from tradingd.engine.model.money import BadNumber, from_float, optional, positive, to_decimal

    assert to_decimal(0.1) == Decimal("0.1")  # the float's shortest repr, not its 55 binary digits
    assert to_decimal("0.05") == Decimal("0.05") and to_decimal(3) == 3
    assert from_float(91253.74) == Decimal("91253.74")
    assert optional(None) is None and positive("2") == 2
    for bad in (math.nan, math.inf, "NaN", "-Infinity", "abc", True, None, [1]):
        with pytest.raises(BadNumber, match="order size: expected a"):
            to_decimal(bad, "order size")
    with pytest.raises(BadNumber, match="mark: expected a finite number, got nan"):
        from_float(math.nan, "mark")
    with pytest.raises(BadNumber, match="spot: expected a positive number, got 0"):
        positive(0, "spot")
    # Both a ValueError and a TypeError: callers catching either hear of it.
    assert issubclass(BadNumber, ValueError) and issubclass(BadNumber, TypeError)


def test_an_order_of_nan_is_refused_where_it_is_made_naming_the_field() -> None:
    for field in ("size", "price"):
        kw = {"size": Decimal(1), "price": Decimal("0.05"), field: math.nan}
        with pytest.raises(ValueError, match=f"order {field}: expected a finite number, got nan"):
            OrderRequest(venue="deribit", instrument="x", side=Side.BUY, **kw)  # type: ignore[arg-type]
        kw[field] = Decimal("Infinity")
        with pytest.raises(ValueError, match=f"order {field}: expected a finite number"):
            OrderRequest(venue="deribit", instrument="x", side=Side.BUY, **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="strike: expected a finite number"):
        InstrumentFilter(min_strike="NaN")
