"""The Polymarket simulator served on loopback for a test (`serve_sim`), a live engine against it with
the demo account's credentials (`start`), the catalog cache a test gives it (the `cache` fixture) and
a market's YES token (`yes`)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import trio

from tradingd.connectors.polymarket.settings import PolymarketSettings
from tradingd.connectors.polymarket.signing import ApiCredentials
from tradingd.engine import Strategy
from tradingd.engine.runtime.live import LiveEngine, Mode
from tradingd.engine.store.journal import OrderJournal
from tradingd.engine.venue import CatalogSettings
from tradingd.simulators.polymarket.simulator import DEMO_ACCOUNT, DEMO_API, PolymarketSimulator, serve

# The demo account's API key in the connector's own record (the simulator keeps its own).
API = ApiCredentials(DEMO_API.key, DEMO_API.secret, DEMO_API.passphrase)
CREDS = {
    "POLYMARKET_PRIVATE_KEY": DEMO_ACCOUNT.private_key,
    "POLYMARKET_API_KEY": API.key,
    "POLYMARKET_API_SECRET": API.secret,
    "POLYMARKET_API_PASSPHRASE": API.passphrase,
}
V = "polymarket"


async def serve_sim(nursery: trio.Nursery, **options: Any) -> tuple[PolymarketSimulator, str]:
    simulator = PolymarketSimulator(**{"seed": 5, "step_s": 0.05, "mine_s": 0.1, "confirm_s": 0.1, **options})
    binds = await nursery.start(functools.partial(serve, simulator))
    return simulator, binds[0].removeprefix("http://")


async def start(
    nursery: trio.Nursery,
    base: str,
    *strategies: Strategy,
    mode: Mode = "live",
    environ: dict[str, str] | None = None,
    cache: Path | None = None,
    journal: OrderJournal | None = None,
    wait: bool = True,
    ready_within: float = 10.0,
    **settings: Any,
) -> LiveEngine:
    """A live engine with `strategies` on the simulator at `base`, run in `nursery`; with `wait`,
    once it is ready (within `ready_within` seconds). `settings`: the venue's, beyond its URLs."""
    engine = LiveEngine(
        list(strategies),
        {V: PolymarketSettings(url=f"ws://{base}/ws", rest_url=f"http://{base}", **settings)},
        mode=mode,
        environ=CREDS if environ is None else environ,
        paper_latency_s=0.0,
        # The market catalog reads the simulator's Gamma (never the network, never ~/.cache).
        catalog_settings={V: CatalogSettings(cache=cache, source_url=f"http://{base}/gamma")},
        journal=journal,
    )
    await nursery.start(engine.run)
    if wait:
        with trio.fail_after(ready_within):
            await engine.ready.wait()
    return engine


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "catalog.jsonl"


def yes(sim: PolymarketSimulator, i: int = 0) -> str:
    return sim.feed.markets[i].yes


def venue_book(sim: PolymarketSimulator, token: str) -> tuple[dict[int, float], dict[int, float]]:
    """The simulator's public book of `token` in the connector book's terms (price in 0.0001
    quanta -> size): what the market channel showed of it, for a level-by-level comparison."""
    bids, asks = sim.levels(token)
    return (
        {int(p * 10_000): float(s) for p, s in bids.items()},
        {int(p * 10_000): float(s) for p, s in asks.items()},
    )
