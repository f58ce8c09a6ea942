"""Strategies the daemon tests run in a real `tradingd run` subprocess (named in the TOML as
`tests.daemon_strategies:PlaceOnce`)."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import attrs

from engine import MarketEvent, OrderRejected, Strategy, Subscription, Ticker


@attrs.frozen
class PlaceOnceParams:
    venue: str = "deribit"
    instrument: str = "BTC-PERPETUAL"
    size: Decimal = Decimal(10)
    below: float = 0.1  # the bid's distance under the mark (0: marketable, above the mark)
    after_s: float = 0.0  # wait this long after the first ticker before placing


class PlaceOnce(Strategy):
    """Places one limit buy on the first ticker, unless it already has an order or a position
    (after a restart, restored from the journal): so a restart must never make a second."""

    Params = PlaceOnceParams

    def __init__(self, name: str, params: Any = None) -> None:
        super().__init__(name, params or PlaceOnceParams())
        self.placed = False

    def required_subscriptions(self) -> list[Subscription]:
        p = self.params
        return [Subscription(p.venue, p.instrument, "ticker")]

    async def on_event(self, event: MarketEvent) -> None:
        p = self.params
        if self.placed or not isinstance(event, Ticker) or not event.mark:
            return
        self.placed = True
        if p.after_s:
            await self.ctx.sleep(p.after_s)
        if self.ctx.open_orders(p.venue, p.instrument) or self.ctx.position(p.venue, p.instrument) != 0:
            self.ctx.log.info("place_once.already", open=len(self.ctx.open_orders()))
            return
        factor = 1.0 - p.below if p.below > 0 else 1.02
        price = Decimal(math.floor(event.mark * factor * 2) / 2)  # BTC-PERPETUAL tick 0.5
        try:
            update = await self.ctx.buy(p.venue, p.instrument, p.size, price)
            self.ctx.log.info("place_once.placed", status=update.status.value, order_id=update.order_id)
        except OrderRejected as exc:
            self.ctx.log.warning("place_once.refused", reason=exc.reason)
