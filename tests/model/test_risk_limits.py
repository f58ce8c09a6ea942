"""Risk limits are numbers or absent: a NaN limit is never "no limit" (issue 12, section 3)."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from tests.support.helpers import OPTION, PERP, registry, request, ticker
from tradingd.engine import OrderRejected, OrderRequest
from tradingd.engine.model import Limits, MarketState, RiskLimits
from tradingd.engine.runtime import OrderFlow

_S = 1_000_000_000
HUGE = "5000000"  # the order that went through under a NaN limit


def _flow(limits: Limits, *, index: float = 90_000.0) -> OrderFlow:
    reg = registry()
    market = MarketState(reg)
    market.on_ticker(ticker(PERP.symbol, index=index, mark=index))
    market.on_ticker(ticker(OPTION.symbol, index=index, mark=0.05))
    return OrderFlow(reg, market, lambda _: None, strategy_limits={"s": RiskLimits(limits)})


def _huge() -> OrderRequest:
    return request("buy", HUGE, "90000", instrument=PERP.symbol, cid="s-bt-1")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_order_notional_usd", math.nan),
        ("max_order_notional_usd", math.inf),
        ("max_daily_loss_usd", math.nan),
        ("max_daily_loss_usd", -math.inf),
        ("max_order_size", Decimal("NaN")),
        ("max_position", Decimal("Infinity")),
        ("max_open_orders", math.nan),
        ("max_order_size", Decimal(-1)),
    ],
)
def test_a_non_finite_limit_is_refused_when_the_limits_are_built(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"{field}: expected a finite number"):
        Limits(**{field: value})  # type: ignore[arg-type]


def test_an_order_for_5_000_000_is_refused_by_a_finite_notional_limit() -> None:
    flow = _flow(Limits(max_order_notional_usd=200_000.0))
    with pytest.raises(OrderRejected, match=r"max_order_notional_usd \(strategy s\)"):
        flow.accept(_huge(), now_ns=1 * _S)


def test_an_order_that_cannot_be_valued_is_refused_by_a_notional_limit() -> None:
    """A NaN index makes the order's notional NaN, which compares false with the limit: the
    order must be refused (no value, no pass), not let through."""
    flow = _flow(Limits(max_order_notional_usd=200_000.0), index=math.nan)
    option = request("buy", HUGE, "0.05", instrument=OPTION.symbol, cid="s-bt-1")  # valued x index
    with pytest.raises(OrderRejected, match="max_order_notional_usd"):
        flow.accept(option, now_ns=1 * _S)


def test_engine_limits_set_after_checks_that_found_none_are_applied() -> None:
    """`RiskChecker.check` remembers engine limits that limit nothing (no instrument overrides):
    an override added to them since, or other limits put in their place, still refuse."""
    reg = registry()
    market = MarketState(reg)
    market.on_ticker(ticker(PERP.symbol, index=90_000.0, mark=90_000.0))
    flow = OrderFlow(reg, market, lambda _: None)
    risk = flow.risk
    big = request("buy", "100", "90000", instrument=PERP.symbol, cid="s-bt-1")
    risk.check(big, now_ns=_S)
    risk.check(big, now_ns=_S)  # the remembered case
    risk.engine_limits.instruments[PERP.symbol] = Limits(max_order_size=Decimal(10))  # type: ignore[index]
    with pytest.raises(OrderRejected, match="max_order_size"):
        risk.check(big, now_ns=_S)
    del risk.engine_limits.instruments[PERP.symbol]  # type: ignore[attr-defined]
    risk.check(big, now_ns=_S)
    risk.engine_limits = RiskLimits(Limits(max_order_size=Decimal(10)))
    with pytest.raises(OrderRejected, match="max_order_size"):
        risk.check(big, now_ns=_S)
    assert risk.refusals["s"]["max_order_size"] == 2
