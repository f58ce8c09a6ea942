"""Strategies for backtests (`Scripted`: runs a script on each event and records what it saw;
`BuyOnce`: buys 1,000 USD of BTC-PERPETUAL on its first book; `BuyEachToken`: buys every
Polymarket token once at its best ask), and a backtest of Deribit frames from
one recording (`run`); the README's backtest config on a generated sample (`bundled_config_on`)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import trio

from tradingd.config import LoadedConfig
from tradingd.connectors.deribit import PLUGIN
from tradingd.engine import BookUpdate, MarketEvent, Strategy, StrategyContext, Subscription
from tradingd.engine.backtest.kernel import BacktestKernel, BacktestResult, BacktestSettings, DataSource


class Scripted(Strategy):
    """Runs `script(ctx, event)` on each event; records what it saw and when."""

    def __init__(
        self,
        name: str,
        script: Callable[[StrategyContext, MarketEvent], Coroutine[Any, Any, None]],
        subs: list[Subscription],
    ) -> None:
        super().__init__(name)
        self.script = script
        self.subs = subs
        self.seen: list[MarketEvent] = []
        self.log: list[tuple[str, int, Any]] = []

    def required_subscriptions(self) -> list[Subscription]:
        return self.subs

    async def on_event(self, event: MarketEvent) -> None:
        self.seen.append(event)
        await self.script(self.ctx, event)


def run(path: Path, *strategies: Strategy, **settings: Any) -> BacktestResult:
    kernel = BacktestKernel(
        {"deribit": PLUGIN}, [DataSource("deribit", path)], list(strategies), BacktestSettings(**settings)
    )
    return trio.run(kernel.run)


class BuyOnce(Strategy):
    """Buys 1,000 USD of the perpetual on its first book, then holds."""

    def __init__(self) -> None:
        super().__init__("holder")
        self.bought = False

    def required_subscriptions(self) -> list[Subscription]:
        return [Subscription("deribit", "BTC-PERPETUAL")]

    async def on_event(self, event: MarketEvent) -> None:
        if isinstance(event, BookUpdate) and not self.bought:
            self.bought = True
            await self.ctx.buy("deribit", "BTC-PERPETUAL", 1000)


class BuyEachToken(Strategy):
    """Subscribes to every Polymarket token the recording's opening teaches (every kind of data)
    and buys the minimum of each at its first best ask, ioc (most are still held at the end)."""

    def __init__(self, name: str = "s") -> None:
        super().__init__(name)
        self.bought: set[str] = set()

    async def on_start(self) -> None:
        self.ctx.subscribe(Subscription("polymarket", i.symbol) for i in self.ctx.instruments("polymarket"))

    async def on_event(self, event: MarketEvent) -> None:
        if (
            isinstance(event, BookUpdate)
            and event.best_ask is not None
            and event.instrument not in self.bought
        ):
            self.bought.add(event.instrument)
            inst = self.ctx.instrument("polymarket", event.instrument)
            assert inst is not None
            await self.ctx.buy(
                "polymarket", event.instrument, inst.min_size, price=str(event.best_ask), time_in_force="ioc"
            )


_BUNDLED_CONFIG = Path(__file__).resolve().parents[2] / "config" / "backtest-deribit.toml"
# config/backtest.toml's generate lines (the README's example: CrossVenue's samples).
DERIBIT_GENERATE = "generate = { seed = 7, hours = 2.0, strikes = 12 }"
POLYMARKET_GENERATE = 'generate = { seed = 7, hours = 2.0, crypto = "deribit", strikes = 12 }'


def bundled_config_on(folder: Path, hours: float, seed: int) -> Path:
    """The Deribit example (config/backtest-deribit.toml: GammaScalp and Momentum) on `hours` of a
    generated Deribit sample written in `folder`, without its `generate` line (the data is there);
    its path."""
    from tradingd.simulators.deribit import SIMULATOR

    data = folder / "sample.rec.zst"
    SIMULATOR.generate_sample(data, {"hours": hours, "seed": seed})
    text = _BUNDLED_CONFIG.read_text().replace('path = "../data/deribit-sample.rec.zst"', f'path = "{data}"')
    config = folder / "bt.toml"
    config.write_text("\n".join(line for line in text.splitlines() if not line.startswith("generate = ")))
    return config


def config_span(loaded: LoadedConfig) -> tuple[int, int]:
    """The first and last timestamps (ns) of a loaded backtest config's data."""
    from tradingd.engine.backtest.span import data_span
    from tradingd.engine.venue.plugins import load_venue

    bt = loaded.config.backtest
    assert bt is not None
    sources = [DataSource(d.venue, p, d.format) for d, p in zip(bt.data, loaded.data_paths, strict=True)]
    span = data_span({s.venue: load_venue(s.venue) for s in sources}, sources)
    assert span is not None
    return span


def crossvenue_samples(folder: Path, hours: float, seed: int = 7) -> tuple[Path, Path]:
    """`hours` of the bundled samples' kind in `folder`: Deribit with 12 strikes per expiry, and
    Polymarket with its Bitcoin price markets on the same BTC path (generated once per folder)."""
    from tradingd.simulators.deribit import SIMULATOR as DERIBIT
    from tradingd.simulators.polymarket import SIMULATOR as POLYMARKET

    deribit, polymarket = folder / "deribit-12.rec.zst", folder / "polymarket-btc.rec.zst"
    if not deribit.exists():
        DERIBIT.generate_sample(deribit, {"hours": hours, "seed": seed, "strikes": 12})
    if not polymarket.exists():
        POLYMARKET.generate_sample(
            polymarket, {"hours": hours, "seed": seed, "crypto": "deribit", "strikes": 12}
        )
    return deribit, polymarket
