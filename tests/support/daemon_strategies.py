"""Strategies the daemon tests run in a real `tradingd run` subprocess (named in the TOML as
`tests.support.daemon_strategies:PlaceOnce`), against any venue's simulator."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs

from tradingd.engine import MarketEvent, OrderRejected, Strategy, Subscription, Ticker

# A live daemon's config with one `PlaceOnce` on Deribit, whose venue URLs lead nowhere (port 9):
# for tests that build the daemon in process and drive it by hand (its state, metrics, risk day).
LIVE_ONCE_CONFIG = """
mode = "live"
[venues.deribit]
url = "ws://127.0.0.1:9/ws/api/v2"
rest_url = "http://127.0.0.1:9"
currencies = ["BTC"]
[daemon]
state_dir = "state"
[[strategies]]
name = "once"
class = "tests.support.daemon_strategies:PlaceOnce"
"""


@attrs.frozen
class PlaceOnceParams:
    venue: str = "deribit"
    instrument: str = "BTC-PERPETUAL"
    size: Decimal = Decimal(10)
    below: float = 0.1  # the bid's distance under the reference price (0: marketable, above it)
    after_s: float = 0.0  # wait this long after the first ticker before placing


class PlaceOnce(Strategy):
    """Places one limit buy on the first ticker with a price, unless it already has an order or
    a position (after a restart, restored from the journal): so a restart must never make a
    second. The reference price is the venue's mark, else the mid (Polymarket sends no mark);
    the limit is rounded down to the instrument's tick."""

    Params = PlaceOnceParams

    def __init__(self, name: str, params: Any = None) -> None:
        super().__init__(name, params or PlaceOnceParams())
        self.placed = False

    def required_subscriptions(self) -> list[Subscription]:
        p = self.params
        return [Subscription(p.venue, p.instrument, "ticker")]

    async def on_event(self, event: MarketEvent) -> None:
        p = self.params
        if self.placed or not isinstance(event, Ticker):
            return
        reference = event.mark or event.mid
        if not reference:
            return
        self.placed = True
        if p.after_s:
            await self.ctx.sleep(p.after_s)
        if self.ctx.open_orders(p.venue, p.instrument) or self.ctx.position(p.venue, p.instrument) != 0:
            self.ctx.log.info("place_once.already", open=len(self.ctx.open_orders()))
            return
        instrument = self.ctx.instrument(p.venue, p.instrument)
        if instrument is None:
            self.ctx.log.warning("place_once.unknown_instrument", instrument=p.instrument)
            return
        factor = 1.0 - p.below if p.below > 0 else 1.02
        price = max(instrument.round_price(Decimal(repr(reference * factor))), instrument.tick_size)
        try:
            update = await self.ctx.buy(p.venue, p.instrument, p.size, price)
            self.ctx.log.info(
                "place_once.placed", status=update.status.value, order_id=update.order_id, price=str(price)
            )
        except OrderRejected as exc:
            self.ctx.log.warning("place_once.refused", reason=exc.reason)


class _Noisy:
    """An object whose finalizer raises: Python reports that through `sys.unraisablehook`."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __del__(self) -> None:
        raise RuntimeError(f"finalizer failed: {self.text}")


class FailOnStart(Strategy):
    """Raises in `on_start` (with the account's secret in the message, as a careless strategy
    might), after a thread of its own died and a finalizer raised; then `KeyboardInterrupt` in
    `on_stop`. Every one of these must become a redacted JSON line, none a raw traceback."""

    def required_subscriptions(self) -> list[Subscription]:
        return [Subscription("deribit", "BTC-PERPETUAL", "ticker")]

    async def on_start(self) -> None:
        import os
        import threading

        secret = os.environ.get("DERIBIT_CLIENT_SECRET", "")

        def die() -> None:
            raise ValueError(f"thread died holding client_secret={secret}")

        thread = threading.Thread(target=die, name="strategy-thread")
        thread.start()
        thread.join()
        _Noisy(secret)  # dropped at once: its __del__ raises
        raise RuntimeError(f"cannot start: the secret is {secret}")

    async def on_event(self, event: MarketEvent) -> None:
        raise AssertionError("a strategy that failed to start never receives an event")

    async def on_stop(self) -> None:
        raise KeyboardInterrupt  # a strategy's, not a signal: contained


class ExitOnEvent(PlaceOnce):
    """Places its one resting order like `PlaceOnce`, then raises `SystemExit` on the next
    ticker: it is stopped, its order cancelled (the default `on_failure`)."""

    async def on_event(self, event: MarketEvent) -> None:
        if self.placed and isinstance(event, Ticker) and self.ctx.open_orders():
            raise SystemExit(3)
        await super().on_event(event)


class ExitHangOnStop(ExitOnEvent):
    """`ExitOnEvent` whose `on_stop` never returns: the `cancel` policy must still cancel its
    resting order (its own deadline, after `on_stop`'s)."""

    async def on_stop(self) -> None:
        import trio

        await trio.sleep_forever()


@attrs.frozen
class PlaceSeveralParams:
    venue: str = "deribit"
    instrument: str = "BTC-PERPETUAL"
    size: Decimal = Decimal(10)
    count: int = 1
    below: float = 0.1  # the bids' distance under the mark: they rest


class PlaceSeveral(Strategy):
    """Places `count` resting limit buys of `size`, one after another, on the first ticker with
    a mark; each refusal is logged (`place_several.refused`) and the next is tried."""

    Params = PlaceSeveralParams

    def __init__(self, name: str, params: Any = None) -> None:
        super().__init__(name, params or PlaceSeveralParams())
        self.placed = False
        self.refusals: list[OrderRejected] = []

    def required_subscriptions(self) -> list[Subscription]:
        return [Subscription(self.params.venue, self.params.instrument, "ticker")]

    async def on_event(self, event: MarketEvent) -> None:
        p = self.params
        if self.placed or not isinstance(event, Ticker) or not event.mark:
            return
        instrument = self.ctx.instrument(p.venue, p.instrument)
        if instrument is None:
            return
        self.placed = True
        price = max(instrument.round_price(Decimal(repr(event.mark * (1.0 - p.below)))), instrument.tick_size)
        for _ in range(p.count):
            try:
                await self.ctx.buy(p.venue, p.instrument, p.size, price)
            except OrderRejected as exc:
                self.refusals.append(exc)
                self.ctx.log.warning("place_several.refused", reason=exc.reason)
