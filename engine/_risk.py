"""Pre-trade checks: every order passes them before anything is signed or sent.

In order: the instrument is known and active; price and size fit its tick size and minimum size;
then each applicable set of limits (the engine-wide `[risk]` table, then the strategy's own, each
with per-instrument overrides): order size, order notional in USD, and the position the strategy
would reach if this order and all its working orders on the same side filled. A refusal raises
`OrderRejected` whose reason names the check and the numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal

import attrs

from ._errors import OrderRejected
from ._events import Side
from ._instruments import Instrument, InstrumentRegistry
from ._market import MarketState, notional_usd
from ._orders import OrderRequest, OrderTracker

__all__ = ["Limits", "RiskChecker", "RiskLimits"]


@attrs.frozen
class Limits:
    """One set of limits; None means "no limit"."""

    max_order_size: Decimal | None = None
    max_order_notional_usd: float | None = None
    max_position: Decimal | None = None

    def overridden_by(self, other: Limits) -> Limits:
        return Limits(
            max_order_size=other.max_order_size if other.max_order_size is not None else self.max_order_size,
            max_order_notional_usd=(
                other.max_order_notional_usd
                if other.max_order_notional_usd is not None
                else self.max_order_notional_usd
            ),
            max_position=other.max_position if other.max_position is not None else self.max_position,
        )


@attrs.frozen
class RiskLimits:
    """Limits for any instrument, with overrides for named instruments."""

    default: Limits = Limits()
    instruments: Mapping[str, Limits] = attrs.field(factory=dict)

    def for_instrument(self, symbol: str) -> Limits:
        specific = self.instruments.get(symbol)
        return self.default if specific is None else self.default.overridden_by(specific)


class RiskChecker:
    """Runs the checks of the module docstring against the engine's live state."""

    def __init__(
        self,
        registry: InstrumentRegistry,
        market: MarketState,
        tracker: OrderTracker,
        position_of: Callable[[str, str, str], Decimal],
        *,
        engine_limits: RiskLimits | None = None,
        strategy_limits: Mapping[str, RiskLimits] | None = None,
    ) -> None:
        self.registry = registry
        self.market = market
        self.tracker = tracker
        self.position_of = position_of  # (strategy, venue, instrument) -> net position
        self.engine_limits = engine_limits or RiskLimits()
        self.strategy_limits = dict(strategy_limits or {})
        self.rejections = 0

    def check(
        self, req: OrderRequest, *, replaces: Decimal = Decimal(0), adds: Decimal | None = None
    ) -> Instrument:
        """Return the order's instrument, or raise `OrderRejected` with the reason.

        For an edit, `replaces` is the order's remaining size now (already among the working
        orders) and `adds` its remaining size after the edit; for a new order, `adds` is its size."""
        try:
            inst = self.registry.require(req.venue, req.instrument, client_order_id=req.client_order_id)
            inst.check_order(req.price, req.size, client_order_id=req.client_order_id)
            new = req.size if adds is None else adds
            self._check_limits(
                req, inst, self.engine_limits.for_instrument(req.instrument), "engine", replaces, new
            )
            own = self.strategy_limits.get(req.strategy)
            if own is not None:
                self._check_limits(
                    req, inst, own.for_instrument(req.instrument), f"strategy {req.strategy}", replaces, new
                )
        except OrderRejected:
            self.rejections += 1
            raise
        return inst

    def _reject(self, req: OrderRequest, reason: str) -> OrderRejected:
        return OrderRejected(
            reason, venue=req.venue, instrument=req.instrument, client_order_id=req.client_order_id
        )

    def _check_limits(
        self,
        req: OrderRequest,
        inst: Instrument,
        limits: Limits,
        scope: str,
        replaces: Decimal,
        adds: Decimal,
    ) -> None:
        if limits.max_order_size is not None and req.size > limits.max_order_size:
            raise self._reject(req, f"max_order_size ({scope}): {req.size} > {limits.max_order_size}")
        if limits.max_order_notional_usd is not None:
            price = float(req.price) if req.price is not None else self.market.mark(req.venue, req.instrument)
            notional = notional_usd(inst, float(req.size), price, self.market.usd_rate(req.venue, inst.base))
            if notional is None:
                raise self._reject(req, f"max_order_notional_usd ({scope}): no price to value the order yet")
            if notional > limits.max_order_notional_usd:
                raise self._reject(
                    req,
                    f"max_order_notional_usd ({scope}): {notional:.2f} > {limits.max_order_notional_usd:.2f}",
                )
        if limits.max_position is not None:
            pos = self.position_of(req.strategy, req.venue, req.instrument)
            working = sum(
                (
                    o.remaining
                    for o in self.tracker.open_orders(req.strategy)
                    if o.request.instrument == req.instrument
                    and o.request.venue == req.venue
                    and o.request.side is req.side
                ),
                Decimal(0),
            )
            sign = 1 if req.side is Side.BUY else -1
            worst = pos + sign * (working - replaces + adds)
            if abs(worst) > limits.max_position and abs(worst) > abs(pos):
                raise self._reject(
                    req,
                    f"max_position ({scope}): position {pos} with working {working} and this order "
                    f"would reach {worst}, beyond {limits.max_position}",
                )
