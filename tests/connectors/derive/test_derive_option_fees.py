"""The `max_fee` the connector signs for an option order (§3.6: refused when below the venue's
estimate of the fee per unit). Derive caps an option's fee at `mark_price_fee_rate_cap` of the
option's value ("Option fees are capped at 12.5% of the value of the option", help.derive.xyz
"What are the fees?"), i.e. at its MARK price: a bid resting far below the mark is charged (and
estimated) against the mark's cap, not against its own low limit price."""

from __future__ import annotations

import functools
from decimal import Decimal

import trio

from tests.support.derive_live import CREDS
from tests.support.live_support import Probe, until
from tradingd.connectors.derive.settings import DeriveSettings
from tradingd.engine import OrderState, Subscription, Ticker
from tradingd.engine.runtime.live import LiveEngine
from tradingd.simulators.derive.simulator import DeriveSimulator, serve


async def test_a_low_bid_on_an_option_signs_a_max_fee_the_venue_accepts(nursery: trio.Nursery) -> None:
    simulator = DeriveSimulator(seed=5, step_s=0.05)
    binds = await nursery.start(functools.partial(serve, simulator))
    base = binds[0].removeprefix("http://")
    # The dearest ETH option: its fee is the uncapped 0.5 + 0.04% of the index, far under 12.5%
    # of its mark; 12.5% of a $5 limit price would be under half of it.
    option = max(
        (i["instrument_name"] for i in simulator.instrument_items if i["instrument_type"] == "option"),
        key=lambda name: Decimal(simulator.tickers[name]["M"]) if name.startswith("ETH") else Decimal(0),
    )
    probe = Probe(
        "p", [Subscription("derive", option, {"ticker"}), Subscription("derive", "ETH-PERP", {"ticker"})]
    )
    engine = LiveEngine(
        [probe],
        {"derive": DeriveSettings(url=f"ws://{base}/ws", rest_url=f"http://{base}")},
        mode="live",
        environ=CREDS,
        paper_latency_s=0.0,
    )
    await nursery.start(engine.run)
    with trio.fail_after(10):
        await engine.ready.wait()
    await until(lambda: bool(probe.of(Ticker, option)) and bool(probe.of(Ticker, "ETH-PERP")))
    placed = await probe.ctx.buy("derive", option, Decimal("1"), price=Decimal("5"))
    assert placed.status is OrderState.OPEN
    (order,) = [o for o in simulator.orders.values() if o.instrument == option]
    mark = Decimal(simulator.tickers[option]["M"])
    assert order.max_fee >= min(Decimal("0.5") + Decimal("0.0004") * 3000, Decimal("0.125") * mark)
