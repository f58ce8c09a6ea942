"""`limit_or_market` (each field written through its slot) is `OrderRequest(...)` as
`StrategyContext.order` calls it: the same request, or the same error, whatever it is given."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradingd.engine.model import orders
from tradingd.engine.model.events import Side
from tradingd.engine.model.orders import OrderRequest, OrderType, TimeInForce, limit_or_market

_numbers = st.one_of(
    st.integers(-3, 30),
    st.decimals(allow_nan=True, allow_infinity=True, places=3),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from(["10", " 2.5 ", "1e3", "abc", "", "NaN", True, None, b"1", [1]]),
)
_args = st.tuples(
    st.sampled_from(["deribit", "derive", ""]),
    st.sampled_from(["BTC-PERPETUAL", "x"]),
    st.sampled_from([Side.BUY, Side.SELL, "buy", "sell", "BUY", 1, None]),
    _numbers,
    st.one_of(st.none(), _numbers),
    st.sampled_from([TimeInForce.GTC, TimeInForce.IOC, TimeInForce.GTD, "fok", "gtc", "day", 0]),
    st.sampled_from([False, True, 0, 1]),
    st.sampled_from([False, True]),
    st.sampled_from(["", "why", "x" * 200, "x" * 201, "a\nb", "é", 5, None]),
)


def _outcome(build: Any) -> tuple[str, Any]:
    try:
        req = build()
    except Exception as exc:
        return ("raised", (type(exc), str(exc)))
    assert type(req) is OrderRequest
    return (
        "built",
        (attrs.astuple(req, recurse=False), [type(v) for v in attrs.astuple(req, recurse=False)]),
    )


@settings(max_examples=500, deadline=None)
@given(_args)
def test_limit_or_market_is_the_request_order_builds(args: tuple[Any, ...]) -> None:
    venue, instrument, side, size, price, tif, post_only, reduce_only, tag = args
    fast = _outcome(
        lambda: limit_or_market(venue, instrument, side, size, price, tif, post_only, reduce_only, tag)
    )
    general = _outcome(
        lambda: OrderRequest(
            venue=venue,
            instrument=instrument,
            side=side,
            size=size,
            price=price,
            time_in_force=tif,
            post_only=post_only,
            reduce_only=reduce_only,
            type=OrderType.MARKET if price is None else OrderType.LIMIT,
            tag=tag,
        )
    )
    assert repr(fast) == repr(general)  # (repr: a NaN among the arguments is equal to itself)


def test_a_disabled_validator_is_skipped_by_both() -> None:
    attrs.validators.set_disabled(True)
    try:
        long = "x" * 300
        fast = limit_or_market("deribit", "x", Side.BUY, 1, Decimal(1), TimeInForce.GTC, False, False, long)
        assert fast == OrderRequest(venue="deribit", instrument="x", side=Side.BUY, size=1, price=1, tag=long)
    finally:
        attrs.validators.set_disabled(False)


def test_the_fast_path_is_taken_for_the_request_as_it_is() -> None:
    """The shape check holds for `OrderRequest` today (else the fast path is never taken and the
    comparison above proves nothing)."""
    assert orders._FAST_REQUEST


def _changed(name: str, **changes: Any) -> tuple[attrs.Attribute[Any], ...]:
    return tuple(a.evolve(**changes) if a.name == name else a for a in attrs.fields(OrderRequest))


@pytest.mark.parametrize(
    ("name", "changes"),
    [
        ("client_order_id", {"default": "x"}),
        ("strategy", {"default": "s"}),
        ("expire_at_ns", {"default": 0}),
        ("post_only", {"default": True}),
        ("tag", {"default": "t"}),
        ("price", {"default": attrs.NOTHING}),
        ("strategy", {"kw_only": True}),
        ("strategy", {"alias": "owner"}),
        ("client_order_id", {"init": False}),
        ("type", {"default": OrderType.LIMIT}),
    ],
)
def test_a_field_changed_in_what_init_takes_turns_fast_off(name: str, changes: dict[str, Any]) -> None:
    """The fast path writes "", "" and None itself and passes every field by its name:
    a default, keyword-only, alias or init=False changed on the request brings `__init__` back."""
    assert orders._fast_request(OrderRequest, attrs.fields(OrderRequest))  # as it is
    assert not orders._fast_request(OrderRequest, _changed(name, **changes))


def test_a_pre_init_turns_the_fast_path_off() -> None:
    @attrs.frozen
    class WithPreInit(OrderRequest):
        def __attrs_pre_init__(self) -> None:
            pass

        def __attrs_post_init__(self) -> None:
            pass

    assert not orders._fast_request(WithPreInit, attrs.fields(OrderRequest))


def test_the_general_path_when_the_fast_path_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(orders, "_FAST_REQUEST", False)
    monkeypatch.setattr(orders, "_new", None)  # not reached
    got = limit_or_market("deribit", "x", Side.BUY, 1, Decimal(1), TimeInForce.GTC, False, False, "t")
    assert got == OrderRequest(venue="deribit", instrument="x", side=Side.BUY, size=1, price=1, tag="t")


@pytest.mark.parametrize("value", [math.nan, Decimal("NaN"), "inf"])
def test_a_number_that_is_no_number_is_refused_the_same(value: Any) -> None:
    with pytest.raises(ValueError) as fast:
        limit_or_market("deribit", "x", Side.BUY, value, None, TimeInForce.GTC, False, False, "")
    with pytest.raises(ValueError) as general:
        OrderRequest(venue="deribit", instrument="x", side=Side.BUY, size=value, type=OrderType.MARKET)
    assert (type(fast.value), str(fast.value)) == (type(general.value), str(general.value))
