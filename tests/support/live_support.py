"""What the live tests share: a strategy that records everything it is sent, and polling for a
condition with a bound."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import trio

from tradingd.engine import MarketEvent, Status, StatusKind, Strategy, Subscription

T = TypeVar("T")


class Probe(Strategy):
    """Records every event; the tests act through its context."""

    def __init__(self, name: str = "probe", subs: Iterable[Subscription] = ()) -> None:
        super().__init__(name)
        self.subs = list(subs)
        self.events: list[MarketEvent] = []

    def required_subscriptions(self) -> list[Subscription]:
        return self.subs

    async def on_event(self, event: MarketEvent) -> None:
        self.events.append(event)

    def of(self, cls: type[MarketEvent], instrument: str | None = None) -> list[Any]:
        return [
            e
            for e in self.events
            if isinstance(e, cls) and (instrument is None or e.instrument == instrument)
        ]

    def statuses(self, kind: StatusKind) -> list[Status]:
        return [e for e in self.of(Status) if e.status is kind]

    def mine(self, client_order_id: str | None) -> list[Any]:
        return [e for e in self.events if getattr(e, "client_order_id", None) == client_order_id]


async def until(predicate: Callable[[], T], within: float = 10.0, what: str = "", every: float = 0.02) -> T:
    """Poll `predicate` until it is truthy and return its value; an AssertionError naming
    `what` (or the predicate) after `within` seconds."""
    try:
        with trio.fail_after(within):
            while True:
                value = predicate()
                if value:
                    return value
                await trio.sleep(every)
    except trio.TooSlowError:
        raise AssertionError(f"not within {within} s: {what or predicate}") from None


async def paper_deribit(nursery: trio.Nursery, base: str, probe: Strategy) -> tuple[Any, Any]:
    """A paper `LiveEngine` on the Deribit simulator at `base` with `probe`, ready: the engine and
    its Deribit session."""
    from tradingd.connectors.deribit.settings import DeribitSettings
    from tradingd.engine.runtime.live import LiveEngine

    engine = LiveEngine(
        [probe],
        {"deribit": DeribitSettings(url=f"ws://{base}/ws/api/v2", rest_url=f"http://{base}")},
        mode="paper",
        environ={},
        paper_latency_s=0.0,
    )
    await nursery.start(engine.run)
    with trio.fail_after(10):
        await engine.ready.wait()
    return engine, engine.venues["deribit"]


async def live_deribit(nursery: trio.Nursery, probe: Probe, **settings: Any) -> tuple[Any, Any, float]:
    """A live `LiveEngine` with `probe` on a Deribit simulator of its own (the demo account,
    heartbeats scaled down), ready and with BTC-PERPETUAL's first mark: the simulator, the
    engine and that mark. `settings` go to `DeribitSettings` (a slow matching rate, short
    timeouts)."""
    import functools

    from tradingd.connectors.deribit.settings import DeribitSettings
    from tradingd.engine import Ticker
    from tradingd.engine.runtime.live import LiveEngine
    from tradingd.simulators.deribit.simulator import DEFAULT_ACCOUNTS, DeribitSimulator, serve

    simulator = DeribitSimulator(seed=5, step_s=0.05, heartbeat_scale=0.1)
    base = (await nursery.start(functools.partial(serve, simulator)))[0].removeprefix("http://")
    client_id, secret = next(iter(DEFAULT_ACCOUNTS.items()))
    engine = LiveEngine(
        [probe],
        {"deribit": DeribitSettings(url=f"ws://{base}/ws/api/v2", rest_url=f"http://{base}", **settings)},
        mode="live",
        environ={"DERIBIT_CLIENT_ID": client_id, "DERIBIT_CLIENT_SECRET": secret},
    )
    await nursery.start(engine.run)
    with trio.fail_after(10):
        await engine.ready.wait()
    perp = "BTC-PERPETUAL"
    ticks = await until(lambda: [t for t in probe.of(Ticker, perp) if t.mark])
    return simulator, engine, ticks[-1].mark


async def late_frames_sent(simulator: Any, before: int, within: float = 5.0) -> None:
    """Wait until a simulator holding notifications back (Deribit's `user_delay_s`, Derive's
    `private` trail, Polymarket's `user_lag_s`) has sent more than `before` of them, holds none
    still, and every peer's outbox is drained onto the wire; then a moment for the client's
    reader, on the same trio loop, to take them. A notification that never comes due fails
    here, so a test asserting what the late frames did not change cannot pass without them."""

    def sent() -> bool:
        drained = all(p.outbox.statistics().current_buffer_used == 0 for p in simulator.sessions.values())
        return bool(simulator.late_sent > before and not simulator.late_pending and drained)

    await until(sent, within, "the late notifications sent")
    await trio.sleep(0.1)
