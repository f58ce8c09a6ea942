"""A strategy's surfaces and trades depend only on the data and its own calls: in a backtest of a
chain whose tickers carry its own model's IVs (tests/support/tardis_chain.py), GammaScalp hedging
with the surface's delta gets the same surfaces (each call's `as_of_ns` and `report()`) and the
same result (orders, fills, fees, PnL, its equity curve) whether other strategies ask for the
same chain's surface at other instants beside it, or on a venue or underlying with no chain, or
not; two strategies asking at the same instants share the fits (run once) and get the same
surfaces as each alone."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.support.tardis_chain import FAR_NS, NEAR_NS, Chain, option_name
from tradingd.connectors.deribit import PLUGIN
from tradingd.engine import DataKind, MarketEvent, Strategy, StrategyError, Subscription, Ticker, VolSurface
from tradingd.engine.backtest.kernel import BacktestKernel, BacktestResult, DataSource
from tradingd.engine.surface import SurfaceSettings
from tradingd.strategies.gamma_scalp import GammaScalp, GammaScalpParams

OPTION = option_name(FAR_NS, 90_000, True)
OTHER = option_name(NEAR_NS, 85_000, False)  # a ticker of its own: other instants than OPTION's
# Refits as often as the chain allows (no move thresholds, 7 s apart): the more looks, the more
# a shared refit timing would move them.
SETTINGS = SurfaceSettings(min_refit_interval_s=7.0, min_iv_change=0.0, min_forward_change=0.0)


class Recorded(GammaScalp):
    """GammaScalp, recording each surface its delta was taken from: (clock, as_of_ns, surface)."""

    def __init__(self, name: str = "a") -> None:
        params = GammaScalpParams(
            option=OPTION, option_size=Decimal(5), delta_band=0.02, min_hedge_interval_s=3.0
        )
        super().__init__(name, params)
        self.used: list[tuple[int, int, VolSurface]] = []

    def _surface_delta(self, t: Ticker, surface: VolSurface) -> float | None:
        self.used.append((self.ctx.now_ns(), surface.as_of_ns, surface))
        return super()._surface_delta(t, surface)


class Other(Strategy):
    """Asks for the BTC surface at its own instants: on every perpetual ticker and on `OTHER`'s."""

    def __init__(self, name: str = "b") -> None:
        super().__init__(name)
        self.got: list[VolSurface | None] = []

    def required_subscriptions(self) -> list[Subscription]:
        return [
            Subscription("deribit", "BTC-PERPETUAL", {DataKind.TICKER}),
            Subscription("deribit", OTHER, {DataKind.TICKER}),
        ]

    async def on_event(self, event: MarketEvent) -> None:
        if isinstance(event, Ticker) and event.instrument in ("BTC-PERPETUAL", OTHER):
            self.got.append(await self.ctx.surface_async("BTC", venue="deribit"))


class WrongVenue(Strategy):
    """Asks on a venue that is not configured, and for an underlying the venue lists no option of
    (a chain with nothing in it), on every perpetual ticker."""

    def __init__(self, name: str = "c") -> None:
        super().__init__(name)
        self.refused = 0
        self.empty = 0

    def required_subscriptions(self) -> list[Subscription]:
        return [Subscription("deribit", "BTC-PERPETUAL", {DataKind.TICKER})]

    async def on_event(self, event: MarketEvent) -> None:
        if not isinstance(event, Ticker):
            return
        try:
            self.ctx.surface("BTC", venue="deribt")
        except StrategyError:
            self.refused += 1
        if await self.ctx.surface_async("ETH", venue="deribit") is None:
            self.empty += 1


def run(data: Path, *strategies: Strategy) -> tuple[BacktestKernel, BacktestResult]:
    kernel = BacktestKernel(
        {"deribit": PLUGIN},
        [DataSource("deribit", data, "tardis")],
        list(strategies),
        surface_settings=SETTINGS,
    )
    return kernel, trio.run(kernel.run)


def surfaces(a: Recorded) -> list[tuple[int, int, dict[str, Any]]]:
    reports: dict[int, dict[str, Any]] = {}  # one report per surface object (a fit)
    return [(now, as_of, reports.setdefault(id(s), s.report())) for now, as_of, s in a.used]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Chain(seconds=400).write(tmp_path_factory.mktemp("chain"))


def test_a_strategys_surfaces_and_trades_do_not_depend_on_the_others(chain: Path) -> None:
    alone = Recorded()
    _, solo = run(chain, alone)
    beside, other, wrong = Recorded(), Other(), WrongVenue()
    kernel, together = run(chain, beside, other, wrong)
    # The others did ask, at other instants, and the wrong ones were answered as such.
    assert sum(s is not None for s in other.got) > 100 and wrong.refused > 100 and wrong.empty > 100
    asked_by_b = {s.as_of_ns for s in other.got if s is not None}
    asked_by_a = {as_of for _, as_of, _ in beside.used}
    assert asked_by_b - asked_by_a, "the other strategy's fits are at other instants"
    # The surfaces GammaScalp used: the same at the same instants, from fits at the same instants.
    assert len(alone.used) > 100 and len({as_of for _, as_of, _ in alone.used}) > 20
    assert surfaces(beside) == surfaces(alone)
    # Its trades and result: the same.
    assert together.strategies["a"].errors == 0 and together.strategies["a"].fills > 3
    assert together.strategies["a"] == solo.strategies["a"]
    # The service's counters: per chain and strategy; no fit for the chain with no option.
    status = kernel.surfaces.status()
    per = status["chains"]["deribit:BTC"]["strategies"]
    assert set(per) == {"a", "b"} and per["a"]["fits"] == len({as_of for _, as_of, _ in alone.used})
    assert status["chains"]["deribit:ETH"]["strategies"]["c"]["fits"] == 0
    assert status["fits"] == per["a"]["fits"] + per["b"]["fits"]


def test_two_strategies_asking_at_the_same_instants_share_each_fit(chain: Path) -> None:
    alone = Recorded()
    solo_kernel, solo = run(chain, alone)
    first, second = Recorded("a"), Recorded("twin")
    kernel, together = run(chain, first, second)
    assert surfaces(first) == surfaces(alone) == surfaces(second)
    # Each fit ran once: the second asker took the first's (the same objects).
    assert [s for _, _, s in first.used] == [s for _, _, s in second.used]
    assert all(a is b for (_, _, a), (_, _, b) in zip(first.used, second.used, strict=True))
    fits = solo_kernel.surfaces.stats.fits
    assert kernel.surfaces.stats.fits == fits and kernel.surfaces.stats.shared_fits == fits
    assert together.strategies["a"] == solo.strategies["a"]
