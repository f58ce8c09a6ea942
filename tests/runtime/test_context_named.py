"""A strategy's request named by its context (`_named`, a field-by-field copy) is the request
`attrs.evolve` would build: equal, of the same class, with the same hash and fields."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradingd.engine.model.events import Side
from tradingd.engine.model.orders import OrderRequest, OrderType, TimeInForce
from tradingd.engine.runtime import context
from tradingd.engine.runtime.context import _named


@st.composite
def requests(draw: st.DrawFn) -> OrderRequest:
    market = draw(st.booleans())
    tif = draw(st.sampled_from([TimeInForce.GTC, TimeInForce.IOC, TimeInForce.GTD]))
    return OrderRequest(
        draw(st.sampled_from(["deribit", "derive", "polymarket"])),
        draw(st.text(min_size=1, max_size=20)),
        draw(st.sampled_from([Side.BUY, Side.SELL, "buy", "sell"])),
        draw(st.decimals(min_value=Decimal("0.001"), max_value=Decimal(10**6), places=3)),
        price=None
        if market
        else draw(st.decimals(min_value=Decimal("0.5"), max_value=Decimal(10**5), places=1)),
        time_in_force=tif,
        post_only=False if market else draw(st.booleans()),
        reduce_only=draw(st.booleans()),
        client_order_id=draw(st.sampled_from(["", "mine-1"])),
        strategy=draw(st.sampled_from(["", "other"])),
        expire_at_ns=draw(st.integers(0, 2**62)) if tif is TimeInForce.GTD else None,
    )


def _fields(r: OrderRequest) -> dict[str, Any]:
    return {a.name: getattr(r, a.name) for a in attrs.fields(OrderRequest)}


@given(requests(), st.text(max_size=30), st.text(max_size=30))
def test_a_named_request_is_the_evolved_request(request: OrderRequest, cid: str, strategy: str) -> None:
    fast = _named(request, cid, strategy)
    ref = attrs.evolve(request, client_order_id=cid, strategy=strategy)
    assert type(fast) is OrderRequest
    assert fast == ref and hash(fast) == hash(ref) and repr(fast) == repr(ref)
    assert _fields(fast) == _fields(ref)
    assert fast.type is ref.type and fast.type in (OrderType.MARKET, OrderType.LIMIT)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        fast.strategy = "x"  # type: ignore[misc]


def test_a_subclass_or_a_checked_field_goes_through_attrs_evolve(monkeypatch: pytest.MonkeyPatch) -> None:
    @attrs.frozen
    class Mine(OrderRequest):
        note: str = "kept"

    sub = Mine("deribit", "BTC-PERPETUAL", "buy", Decimal(10), price=Decimal(100))
    named = _named(sub, "c-1", "s")
    assert type(named) is Mine and named.note == "kept" and named.client_order_id == "c-1"
    calls: list[Any] = []
    real = attrs.evolve

    def spy(inst: Any, **changes: Any) -> Any:
        calls.append(changes)
        return real(inst, **changes)

    monkeypatch.setattr(attrs, "evolve", spy)  # the module context.py calls it through
    plain = OrderRequest("deribit", "BTC-PERPETUAL", "buy", Decimal(10), price=Decimal(100))
    _named(plain, "c-2", "s")
    assert calls == []  # the copy, while both fields are plain
    monkeypatch.setattr(context, "_COPY_PLAIN", False)
    assert _named(plain, "c-3", "s") == real(plain, client_order_id="c-3", strategy="s")
    assert calls == [{"client_order_id": "c-3", "strategy": "s"}]


def test_the_two_fields_named_are_plain_today() -> None:
    # If this fails, a converter or validator was added to them: `_named` falls back to
    # attrs.evolve (correct, slower); see engine/runtime/context.py.
    assert context._COPY_PLAIN
