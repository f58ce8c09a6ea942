"""The connector when Derive's order answers outrun its private channel (the simulator's `private`
switch, `trail_s`): every `{subaccount}.orders` / `.trades` notification of a call arrives after
the call's answer, as on a real venue where the two travel separately. The answer's news must not
be counted twice when the channel repeats it, and a late "open" must not reopen an order the
answer already closed."""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any

import trio

from tests.support.derive_live import CREDS
from tests.support.live_support import Probe, late_frames_sent, until
from tradingd.connectors.derive.settings import DeriveSettings
from tradingd.engine import Fill, OrderState, OrderUpdate, Subscription, Ticker
from tradingd.engine.runtime.live import LiveEngine
from tradingd.simulators.derive.simulator import DEMO_SUBACCOUNT, DEMO_WALLET, DeriveSimulator, serve

PERP = "ETH-PERP"


async def start(nursery: trio.Nursery, probe: Probe) -> tuple[DeriveSimulator, LiveEngine]:
    simulator = DeriveSimulator(seed=5, step_s=0.05, settle_after_s=0.2)
    binds = await nursery.start(functools.partial(serve, simulator))
    base = binds[0].removeprefix("http://")
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
    return simulator, engine


def states(probe: Probe, cid: Any) -> list[OrderState]:
    return [e.status for e in probe.mine(cid) if isinstance(e, OrderUpdate)]


async def test_the_channel_trailing_the_answers_changes_nothing(nursery: trio.Nursery) -> None:
    probe = Probe("p", [Subscription("derive", PERP, {"ticker"})])
    simulator, engine = await start(nursery, probe)
    await until(lambda: bool(probe.of(Ticker, PERP)))
    simulator.apply_faults({"private": {"trail_s": 0.3}})
    # A fill: the answer brings it first, the channel 0.3 s later.
    late = simulator.late_sent
    filled = await probe.ctx.buy("derive", PERP, Decimal("0.3"))
    assert filled.status is OrderState.FILLED
    await until(lambda: any(isinstance(e, Fill) for e in probe.mine(filled.client_order_id)))
    await late_frames_sent(simulator, late)  # the channel's copies of the order and its trades
    fills = [e for e in probe.mine(filled.client_order_id) if isinstance(e, Fill)]
    assert sum(f.size for f in fills) == Decimal("0.3")
    assert engine.flow.tracker.stats.duplicate_fills == 0
    assert probe.ctx.position("derive", PERP) == Decimal("0.3")
    # A resting order placed and cancelled before the channel has said it was open.
    bid = probe.of(Ticker, PERP)[-1].bid
    assert bid is not None
    late = simulator.late_sent
    resting = await probe.ctx.buy("derive", PERP, Decimal("0.1"), price=Decimal(int(bid * 0.9)))
    assert resting.status is OrderState.OPEN
    done = await probe.ctx.cancel_order(resting.client_order_id or "")
    assert done.status is OrderState.CANCELLED
    await late_frames_sent(simulator, late)  # then the channel: "open", then "cancelled"
    assert states(probe, resting.client_order_id)[-1] is OrderState.CANCELLED
    assert all(o.client_order_id != resting.client_order_id for o in probe.ctx.open_orders("derive"))
    account = simulator.accounts[DEMO_WALLET.lower()]
    assert account.positions[(DEMO_SUBACCOUNT, PERP)] == Decimal("0.3")
