"""`buy` and `sell` without options place what `order` places (their shortcut past `order`'s
coroutine), raise what it raises, and go through a context's own `order` when it has one."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from tradingd.engine.model.events import OrderUpdate, Side
from tradingd.engine.model.orders import OrderRequest
from tradingd.engine.runtime.strategy import StrategyContext


class _Placing(StrategyContext):
    """Records what reaches `place_order`; the rest is not needed here."""

    def __init__(self) -> None:
        self.placed: list[OrderRequest] = []

    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        self.placed.append(request)
        return None  # type: ignore[return-value]


# The context's other abstract methods are never called here.
_Placing.__abstractmethods__ = frozenset()


def _run(ctx: StrategyContext, call: Any) -> tuple[str, Any]:
    async def go() -> None:
        await call(ctx)

    try:
        trio.run(go)
    except Exception as exc:
        return ("raised", (type(exc), str(exc)))
    assert isinstance(ctx, _Placing)
    return ("placed", repr(ctx.placed))


_sizes = st.one_of(
    st.integers(-1, 20), st.decimals(allow_nan=False, places=2), st.sampled_from(["5", "x", 1.5])
)
_prices = st.one_of(st.none(), st.decimals(allow_nan=True, places=1), st.sampled_from(["90000.5", "bad"]))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([Side.BUY, Side.SELL]), _sizes, _prices)
def test_buy_and_sell_place_what_order_places(side: Side, size: object, price: object) -> None:
    def short(ctx: StrategyContext) -> Any:
        call = ctx.buy if side is Side.BUY else ctx.sell
        return call("deribit", "BTC-PERPETUAL", size, price)  # type: ignore[arg-type]

    def long(ctx: StrategyContext) -> Any:
        return ctx.order(side, "deribit", "BTC-PERPETUAL", size, price)  # type: ignore[arg-type]

    assert repr(_run(_Placing(), short)) == repr(_run(_Placing(), long))  # type: ignore[abstract]


def test_options_and_an_own_order_go_through_order() -> None:
    calls: list[tuple[Any, ...]] = []

    class Own(_Placing):
        async def order(self, *args: Any, **kw: Any) -> OrderUpdate:
            calls.append((args, kw))
            return await super().order(*args, **kw)

    ctx = Own()  # type: ignore[abstract]
    trio.run(lambda: ctx.buy("deribit", "X", 1, Decimal(2)))
    trio.run(lambda: ctx.sell("deribit", "X", 1, None))
    assert [c[0][0] for c in calls] == [Side.BUY, Side.SELL] and len(ctx.placed) == 2
    plain = _Placing()  # type: ignore[abstract]
    trio.run(lambda: plain.buy("deribit", "X", 1, Decimal(2), tag="why", post_only=True))
    assert plain.placed[0].tag == "why" and plain.placed[0].post_only
    with pytest.raises(TypeError, match="order"):
        trio.run(lambda: plain.buy("deribit", "X", 1, Decimal(2), colour="red"))


def test_an_order_replaced_on_the_instance_is_gone_through() -> None:
    """A spy or a wrapper set on the context itself (not on its class) sees `buy` and `sell`."""
    calls: list[Side] = []
    ctx = _Placing()  # type: ignore[abstract]
    original = ctx.order

    async def spy(side: Side, *args: Any, **kw: Any) -> OrderUpdate:
        calls.append(side)
        return await original(side, *args, **kw)

    ctx.order = spy  # type: ignore[method-assign, assignment]
    trio.run(lambda: ctx.buy("deribit", "X", 1, Decimal(2)))
    trio.run(lambda: ctx.sell("deribit", "X", 1, None))
    assert calls == [Side.BUY, Side.SELL] and len(ctx.placed) == 2
