"""The strategy the deploy tests run in a real `tradingd run` (named in the TOML as
`tests.deploy.strategies:Exercise`): it makes the daemon produce every series the dashboard and
the rules read, including those that exist only once something happened (a fill, a final order
of each kind, a risk refusal, a latency observation)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs

from tradingd.engine import MarketEvent, OrderRejected, Strategy, Subscription, Ticker


@attrs.frozen
class ExerciseParams:
    venue: str = "deribit"
    instrument: str = "BTC-PERPETUAL"
    size: Decimal = Decimal(10)
    refused_size: Decimal = Decimal(1000)  # above the TOML's [strategies.risk] max_order_size


class Exercise(Strategy):
    """On the first ticker with a mark: a marketable buy (it fills: a fill, a position, fees, a
    `filled` final order, both latency histograms), a resting buy then its cancel (a `cancelled`
    final order) and a buy of `refused_size` (refused by the risk check `max_order_size`); then
    it logs `exercise.done` and does nothing more."""

    Params = ExerciseParams

    def __init__(self, name: str, params: Any = None) -> None:
        super().__init__(name, params or ExerciseParams())
        self.started = False

    def required_subscriptions(self) -> list[Subscription]:
        return [Subscription(self.params.venue, self.params.instrument, "ticker")]

    async def on_event(self, event: MarketEvent) -> None:
        p = self.params
        if self.started or not isinstance(event, Ticker) or not event.mark:
            return
        instrument = self.ctx.instrument(p.venue, p.instrument)
        if instrument is None:
            return
        self.started = True
        above = instrument.round_price(Decimal(repr(event.mark * 1.02)))
        below = max(instrument.round_price(Decimal(repr(event.mark * 0.9))), instrument.tick_size)
        filled = await self.ctx.buy(p.venue, p.instrument, p.size, above)
        resting = await self.ctx.buy(p.venue, p.instrument, p.size, below)
        assert resting.client_order_id is not None  # ours: the context named it
        cancelled = await self.ctx.cancel_order(resting.client_order_id)
        try:
            await self.ctx.buy(p.venue, p.instrument, p.refused_size, below)
            refused = ""
        except OrderRejected as exc:
            refused = exc.reason
        self.ctx.log.info(
            "exercise.done", filled=filled.status.value, cancelled=cancelled.status.value, refused=refused
        )
