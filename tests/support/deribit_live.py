"""The Deribit simulator served on loopback for a test (`serve_sim`), the credentials of its first
account (`CREDS`), and a live engine started against it with them (`start`)."""

from __future__ import annotations

import functools
from typing import Any

import trio

from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.engine import Strategy
from tradingd.engine.runtime.live import LiveEngine, Mode
from tradingd.engine.store.journal import OrderJournal
from tradingd.simulators.deribit.simulator import DEFAULT_ACCOUNTS, DeribitSimulator, serve

PERP = "BTC-PERPETUAL"
CREDS = {
    "DERIBIT_CLIENT_ID": next(iter(DEFAULT_ACCOUNTS)),
    "DERIBIT_CLIENT_SECRET": next(iter(DEFAULT_ACCOUNTS.values())),
}


async def serve_sim(nursery: trio.Nursery, **options: Any) -> tuple[DeribitSimulator, str]:
    simulator = DeribitSimulator(seed=5, step_s=0.05, heartbeat_scale=0.1, **options)
    binds = await nursery.start(functools.partial(serve, simulator))
    return simulator, binds[0].removeprefix("http://")


async def start(
    nursery: trio.Nursery,
    base: str,
    *strategies: Strategy,
    mode: Mode = "live",
    journal: OrderJournal | None = None,
    **settings: Any,
) -> LiveEngine:
    """A live engine with `strategies` on the simulator at `base`, run in `nursery`, once it is ready
    (within 10 s). `settings`: the venue's, beyond its URLs."""
    engine = LiveEngine(
        list(strategies),
        {"deribit": DeribitSettings(url=f"ws://{base}/ws/api/v2", rest_url=f"http://{base}", **settings)},
        mode=mode,
        environ=CREDS,
        paper_latency_s=0.0,
        journal=journal,
    )
    await nursery.start(engine.run)
    with trio.fail_after(10):
        await engine.ready.wait()
    return engine
