"""CrossVenue in paper mode on loopback against both venue simulators, as `tradingd simulate
deribit --strikes 12` and `tradingd simulate polymarket --crypto deribit --strikes 12` serve them:
the Polymarket catalog (read from the simulator's Gamma) holds the Bitcoin price markets, the
strategy matches them, the engine fits a surface on the 12-strike Deribit chain (the default
4-strike chain is too narrow: a fit needs 5 strikes per expiry), and the markets are priced on it.

The witnesses are the generator's own: the price markets its Gamma lists (`feed.price_legs`),
the chain it quotes (`feed.results`). Trades: an entry needs the surface's probability to be
`fee + margin` above an ask. The synthetic mispricing opens such a gap a few times an hour per
market (`simulators/polymarket/crypto.py`), at a time the random walk decides: waiting for it, the
first fill came 9-50 s after the start, and once not in 150 s. So the simulator starts one market
mispriced (`mispriced`, as `tradingd simulate polymarket --mispriced` does): the "above" market
nearest the money is quoted 10 points under the model's probability, a gap of about 7 points
over the fee at the ask, which closes over minutes. Its YES is bought on the first pricing, and
the fill is waited for in that market (the margin is 0, as a gap just over the fee is enough)."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
import trio

from tests.support.live_support import until
from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.connectors.polymarket.settings import PolymarketSettings
from tradingd.engine import Fill, MarketEvent
from tradingd.engine.runtime.live import LiveEngine
from tradingd.engine.venue import CatalogSettings
from tradingd.simulators.deribit.simulator import DeribitSimulator
from tradingd.simulators.deribit.simulator import serve as serve_deribit
from tradingd.simulators.polymarket.crypto import ATM_LEG
from tradingd.simulators.polymarket.simulator import PolymarketSimulator
from tradingd.simulators.polymarket.simulator import serve as serve_polymarket
from tradingd.strategies.cross_venue import CrossVenue, CrossVenueParams

STRIKES = 12
# Both simulators run their market at twice the wall clock (Deribit's feed steps 100 ms,
# Polymarket's 250 ms): the same ratio keeps their BTC on one path.
SPEED = 2.0
# Connect, catalog, match, first fit and pricing take about 6 s; this bounds each step.
WITHIN_S = 30.0
# The Polymarket simulator's "above" market nearest the money (`ATM_LEG`) starts this far from
# the model's probability: YES cheap. At twice the wall clock its gap stays over the fee for
# about a minute (the mispricing's time constant is 150 s of market time).
MISPRICED = -0.10
# The first paper fill, in the mispriced market, comes on its first pricing (within a second of
# the markets priced); this bounds it, from the markets priced.
FILL_WITHIN_S = 30.0
_TAG = re.compile(r"^gap=[+-]\d\.\d{4} p_model=\d\.\d{4} bid=\S+ ask=\S+ fee=\d\.\d{4} (YES|NO)$")


class Recorded(CrossVenue):
    """CrossVenue, keeping the fills it is told of (the engine's paper fills)."""

    def __init__(self, name: str, params: CrossVenueParams) -> None:
        super().__init__(name, params)
        self.fills: list[Fill] = []

    async def on_event(self, event: MarketEvent) -> None:
        if isinstance(event, Fill):
            self.fills.append(event)
        await super().on_event(event)


async def test_cross_venue_trades_on_paper_against_both_simulators(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # One start instant for both, as the generator's samples share one `start`.
    start = time.time_ns()
    deribit = DeribitSimulator(
        seed=5, strikes=STRIKES, step_s=0.1 / SPEED, heartbeat_scale=0.1, clock=_from(start)
    )
    polymarket = PolymarketSimulator(
        seed=5,
        crypto="deribit",
        strikes=STRIKES,
        step_s=0.25 / SPEED,
        mine_s=0.1,
        confirm_s=0.1,
        clock=_from(start),
        mispriced=MISPRICED,
    )
    # The mispriced market, quoted MISPRICED from the model at once (before the market steps).
    chosen = polymarket.feed.price_legs[ATM_LEG]
    assert chosen.spec.price is not None and chosen.spec.price.condition == "above"
    assert chosen.p == pytest.approx(chosen.model_p + MISPRICED, abs=1e-9)
    d_base = (await nursery.start(functools.partial(serve_deribit, deribit)))[0].removeprefix("http://")
    p_base = (await nursery.start(functools.partial(serve_polymarket, polymarket)))[0].removeprefix("http://")

    # The generator's witnesses: what its Gamma lists and what its chain quotes.
    legs = {m.condition_id for m in polymarket.feed.price_legs}
    assert len(legs) == 15
    assert {str(m["conditionId"]) for m in polymarket.gamma.markets} >= legs
    btc_options = [
        i for r in deribit.feed.results for i in r if i["kind"] == "option" and i["base_currency"] == "BTC"
    ]
    per_expiry: dict[int, set[float]] = {}
    for item in btc_options:
        per_expiry.setdefault(item["expiration_timestamp"], set()).add(item["strike"])
    assert sorted(len(s) for s in per_expiry.values()) == [STRIKES, STRIKES]

    strat = Recorded("cv", CrossVenueParams(margin=0.0, exit_gap=0.0, cooldown_s=1.0, max_markets=15))
    engine = LiveEngine(
        [strat],
        {
            "deribit": DeribitSettings(url=f"ws://{d_base}/ws/api/v2", rest_url=f"http://{d_base}"),
            "polymarket": PolymarketSettings(url=f"ws://{p_base}/ws", rest_url=f"http://{p_base}"),
        },
        mode="paper",
        environ={},
        paper_latency_s=0.0,
        catalog_settings={
            "polymarket": CatalogSettings(
                cache=tmp_path / "catalog.jsonl", source_url=f"http://{p_base}/gamma"
            )
        },
    )
    began = time.monotonic()
    await nursery.start(engine.run)
    with trio.fail_after(15):
        await engine.ready.wait()

    # Matched: every price market the generator lists, and no other market of its Gamma.
    await until(lambda: strat.matched == len(legs), within=WITHIN_S, what="the price markets matched")
    assert {w.pm.market.condition_id for w in strat.watched.values()} == legs
    # A surface fitted on the 12-strike chain: both expiries, each from all its strikes.
    await until(lambda: strat.surface is not None, within=WITHIN_S, what="a surface fitted")
    assert strat.surface is not None and len(strat.surface.slices) == 2
    chain = engine.surfaces.status()["chains"]["deribit:BTC"]
    assert chain["expiries"] == 2 and chain["skipped_expiries"] == 0
    # Priced: the surface priced markets, and nothing was refused as outside the surface.
    await until(lambda: strat.priced >= len(legs), within=WITHIN_S, what="the markets priced")
    assert strat.skips["outside_surface"] == 0
    fitted = time.monotonic() - began
    # Trades: the mispriced market's YES is bought; every order carries its tag, and its paper
    # fills are booked.
    await until(
        lambda: any(f.instrument == chosen.yes for f in strat.fills),
        within=FILL_WITHIN_S,
        what="a paper fill of the mispriced market's YES",
    )
    first = time.monotonic() - began
    orders = {o.client_order_id: o for o in engine.flow.tracker.orders()}
    for fill in strat.fills:
        assert fill.client_order_id is not None
        order = orders[fill.client_order_id]
        assert order.request.venue == "polymarket" and order.request.tag is not None
        match = _TAG.match(order.request.tag)
        assert match, order.request.tag
        assert fill.price == order.request.price and Decimal(0) < fill.size <= order.request.size
        token = strat.by_token[order.request.instrument]
        assert match.group(1) == ("YES" if token[1] else "NO")
        assert fill.fee > 0  # the price markets' crypto taker fee, booked on the paper fill
    assert strat.trades["entry"] >= 1
    print(f"matched/fitted/priced in {fitted:.1f} s, first fill of the mispriced market in {first:.1f} s")


def _from(start: int) -> Callable[[], int]:
    """A clock whose first reading is `start`, then the wall clock: both simulators' markets begin
    at the same instant (their BTC path is one)."""
    first = [start]

    def clock() -> int:
        return first.pop() if first else time.time_ns()

    return clock
