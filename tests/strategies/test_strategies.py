"""The example strategies on each kind of hedge: what they hold must make sense in the units of
the instruments (an inverse perpetual sized in USD, a linear one sized in the coin)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tradingd.engine.backtest.kernel import BacktestKernel, DataSource
from tradingd.strategies.gamma_scalp import GammaScalp, GammaScalpParams


@pytest.mark.parametrize(
    ("venue", "underlying", "hedge", "spot_scale"),
    [("deribit", "BTC", "BTC-PERPETUAL", "usd"), ("derive", "ETH", "ETH-PERP", "coin")],
)
async def test_gamma_scalp_hedges_to_about_the_option_delta_on_either_kind_of_perpetual(
    tmp_path: Path, venue: str, underlying: str, hedge: str, spot_scale: str
) -> None:
    from tradingd.engine.sim.plugins import load_simulator
    from tradingd.engine.venue.plugins import load_venue

    plugin = load_venue(venue)
    data = tmp_path / f"{venue}.rec.zst"
    load_simulator(venue).generate_sample(data, {"hours": 0.1, "seed": 2})
    strat = GammaScalp(
        "g",
        GammaScalpParams(
            venue=venue, underlying=underlying, hedge=hedge, option_size=Decimal(2), delta_band=0.2,
            target_days=20, min_hedge_interval_s=1,
        ),
    )  # fmt: skip
    result = await BacktestKernel({venue: plugin}, [DataSource(venue, data)], [strat]).run()
    assert result.strategies["g"].errors == 0 and strat.option is not None and strat.hedges > 0
    delta = strat.net_delta()
    assert delta is not None and abs(delta) <= 0.2 + 0.05  # hedged back inside the band
    perp = float(strat.ctx.position(venue, hedge))
    assert strat.hedge_price is not None
    perp_delta = perp / strat.hedge_price if spot_scale == "usd" else perp
    assert 0 < abs(perp_delta) <= 2 * 1.0  # at most the options' full delta (2 x 1), not price x more
