"""A strategy the metrics' daemon test runs in a real `tradingd run` (named in the TOML as
`tests.metrics.churn:Churn`): orders coming and going all the time, so every fault the simulator
fires meets an order path."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs

from tradingd.engine import MarketEvent, Strategy, Subscription, Ticker, TradingError


@attrs.frozen
class ChurnParams:
    venue: str = "deribit"
    instrument: str = "BTC-PERPETUAL"
    size: Decimal = Decimal(10)
    below: float = 0.2  # the bid's distance under the mark: it rests
    every_s: float = 0.3
    oversize_every: int = 4  # every 4th order 100 times the size (refused by `max_order_size`)


class Churn(Strategy):
    """Every `every_s`, on a ticker with a mark: cancels its resting order if it has one, else
    places a resting limit buy. Every refusal or failure is logged, never raised."""

    Params = ChurnParams

    def __init__(self, name: str, params: Any = None) -> None:
        super().__init__(name, params or ChurnParams())
        self.last_ns = 0
        self.placed = 0

    def required_subscriptions(self) -> list[Subscription]:
        return [Subscription(self.params.venue, self.params.instrument, "ticker")]

    async def on_event(self, event: MarketEvent) -> None:
        p = self.params
        now = self.ctx.now_ns()
        if not isinstance(event, Ticker) or not event.mark or now - self.last_ns < p.every_s * 1e9:
            return
        self.last_ns = now
        instrument = self.ctx.instrument(p.venue, p.instrument)
        if instrument is None:
            return
        resting = self.ctx.open_orders(p.venue, p.instrument)
        try:
            if resting:
                await self.ctx.cancel_order(resting[0].client_order_id or "")
                return
            self.placed += 1
            size = p.size * 100 if self.placed % p.oversize_every == 0 else p.size
            price = max(
                instrument.round_price(Decimal(repr(event.mark * (1.0 - p.below)))), instrument.tick_size
            )
            await self.ctx.buy(p.venue, p.instrument, size, price)
        except TradingError as exc:
            self.ctx.log.info("churn.refused", error=type(exc).__name__, reason=str(exc))
