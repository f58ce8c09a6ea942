"""GammaScalp's delta from the chain's volatility surface, in backtests of a chain whose every
ticker carries the IV of the chain's own model (tests/support/tardis_chain.py, a flat 60% smile)
and a venue delta the model would never give (0.9 for every call): with the surface it hedges
with the model's delta at today's forward (Black-Scholes at 60%, the witness); without one (too
few strikes to fit, or `use_surface = false`) with the venue's Greeks, or its mark IV."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.support.tardis_chain import FAR_NS, NS, Chain, option_name
from tradingd.connectors.deribit import PLUGIN
from tradingd.engine import YEAR_SECONDS, DataKind, Ticker, VolSurface, bs_greeks
from tradingd.engine.backtest.kernel import BacktestKernel, DataSource
from tradingd.engine.surface import SurfaceSettings
from tradingd.strategies.gamma_scalp import GammaScalp, GammaScalpParams

OPTION = option_name(FAR_NS, 90_000, True)


class Recorded(GammaScalp):
    """GammaScalp, recording after each of its option's tickers the delta it holds, where that
    came from, and the surface in force."""

    def __init__(self, **params: Any) -> None:
        fields: dict[str, Any] = {
            "option": OPTION,
            "option_size": Decimal(5),
            "delta_band": 0.1,
            "min_hedge_interval_s": 5.0,
        }
        super().__init__("g", GammaScalpParams(**{**fields, **params}))
        self.seen: list[tuple[Ticker, float | None, str | None, VolSurface | None]] = []

    async def _on_option_ticker(self, t: Ticker) -> None:
        await super()._on_option_ticker(t)
        surface = self.ctx.surface("BTC", venue="deribit") if self.p.use_surface else None
        self.seen.append((t, self.option_delta, self.delta_source, surface))


def witness(t: Ticker, vol: float = 0.6) -> float:
    """The chain's model delta for the option at the ticker's forward: Black-Scholes, flat vol."""
    assert t.underlying is not None
    return bs_greeks(t.underlying, 90_000.0, (FAR_NS - t.ts_local) / NS / YEAR_SECONDS, vol, call=True).delta


def backtest(data: Path, strategy: GammaScalp, **surface: Any) -> BacktestKernel:
    kernel = BacktestKernel(
        {"deribit": PLUGIN},
        [DataSource("deribit", data, "tardis")],
        [strategy],
        surface_settings=SurfaceSettings(**surface),
    )
    result = trio.run(kernel.run)
    assert result.strategies["g"].errors == 0
    return kernel


def perp_btc(strategy: GammaScalp) -> float:
    """The hedge's delta in BTC (the inverse perpetual is sized in USD)."""
    assert strategy.hedge_price is not None
    return float(strategy.ctx.position("deribit", "BTC-PERPETUAL")) / strategy.hedge_price


@pytest.fixture(scope="module")
def full_chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Chain().write(tmp_path_factory.mktemp("chain"))


def test_it_hedges_with_the_surfaces_delta_at_todays_forward(full_chain: Path) -> None:
    g = Recorded()
    # A minute between fits: the spot moves up to about 1% in it, so the delta at the forward of
    # the fit would be off by more than the fit's error.
    kernel = backtest(full_chain, g, min_refit_interval_s=60.0)
    used = [(t, d, s) for t, d, src, s in g.seen if src == "surface"]
    assert len(used) > 250 and g.seen[-1][2] == "surface"
    assert kernel.surfaces.stats.fits >= 9
    unshifted = []
    for t, delta, surface in used:
        assert surface is not None and delta is not None
        assert delta == pytest.approx(witness(t), abs=1e-4)
        stale = bs_greeks(
            surface.forward(FAR_NS), 90_000.0, (FAR_NS - t.ts_local) / NS / YEAR_SECONDS, 0.6, call=True
        )
        unshifted.append(abs(stale.delta - witness(t)))
    assert max(unshifted) > 0.01  # the forward moved since the fit: the shift was needed
    # Hedged to the model's delta, not the venue's 0.9: 5 calls of delta ~0.5 against the perpetual.
    assert g.hedges > 3 and float(g.ctx.position("deribit", OPTION)) == 5.0
    last = used[-1][0]
    assert perp_btc(g) == pytest.approx(-5 * witness(last), abs=0.1 + 0.01)
    # It asked for the surface: the chain's tickers came to it.
    slot = kernel.slots[0]
    chain = {option_name(e, k, c) for e, k, c in Chain().options()}
    assert {i for _, i, kind in slot.keys if kind is DataKind.TICKER} >= chain


def test_with_use_surface_false_it_hedges_with_the_venues_greeks_and_asks_for_no_surface(
    full_chain: Path,
) -> None:
    g = Recorded(use_surface=False)
    kernel = backtest(full_chain, g)
    assert {src for _, _, src, _ in g.seen} == {"venue"}
    assert {d for _, d, _, _ in g.seen} == {0.9}
    assert perp_btc(g) == pytest.approx(-5 * 0.9, abs=0.1 + 0.01)
    assert kernel.surfaces.stats.fits == 0 and kernel.surfaces.status()["chains"] == {}
    assert {i for _, i, _ in kernel.slots[0].keys} == {"BTC-PERPETUAL", OPTION}


def test_without_a_surface_it_falls_back_to_the_venues_greeks(tmp_path: Path) -> None:
    # Three strikes: fewer than a smile's fit needs (5), so no expiry of the chain is fitted.
    data = Chain(strikes=(85_000, 90_000, 95_000), seconds=120).write(tmp_path / "narrow")
    g = Recorded()
    kernel = backtest(data, g)
    assert all(s is None for _, _, _, s in g.seen)
    assert {src for _, _, src, _ in g.seen} == {"venue"} and {d for _, d, _, _ in g.seen} == {0.9}
    stats = kernel.surfaces.stats
    assert stats.empty_fits > 0 and stats.fits == 0 and stats.fit_failures == 0
    assert perp_btc(g) == pytest.approx(-5 * 0.9, abs=0.1 + 0.01)


def test_without_venue_greeks_nor_surface_it_uses_black_scholes_at_the_mark_iv(tmp_path: Path) -> None:
    data = Chain(strikes=(85_000, 90_000, 95_000), seconds=120, venue_delta=None).write(tmp_path / "bare")
    g = Recorded()
    backtest(data, g)
    assert {src for _, _, src, _ in g.seen} == {"mark_iv"}
    for t, delta, _, _ in g.seen:
        assert t.mark_iv is not None
        assert delta == pytest.approx(witness(t, t.mark_iv), rel=1e-12)
