"""The connector against the simulator's switches for an order's two answers arriving in either
order (the HTTP answer of `POST /order`, the user channel's `order` and `trade` events): it must
take the order's fate from whichever comes first, never guess it from the other's absence, and
book each fill once."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import trio

from tests.support.live_support import Probe, late_frames_sent, until
from tests.support.polymarket_live import API, V, cache, serve_sim, start, yes
from tradingd.engine import BookUpdate, Fill, OrderState, Subscription

__all__ = ["cache"]  # the fixture (tests/support/polymarket_live), used by name


@pytest.mark.parametrize("switch", ["user_lag_s", "answer_lag_s"])
async def test_an_order_is_booked_once_whichever_answer_comes_first(
    switch: str, nursery: trio.Nursery, cache: Path
) -> None:
    simulator, base = await serve_sim(nursery)
    token = yes(simulator, 0)
    probe = Probe("p", [Subscription(V, token)])
    engine = await start(nursery, base, probe, cache=cache)
    await until(lambda: bool(probe.of(BookUpdate, token)))
    simulator.apply_faults({switch: 0.4})
    # A resting order: open, whether its answer or its PLACEMENT came first.
    resting = await probe.ctx.buy(V, token, 10, price="0.05")
    assert resting.status is OrderState.OPEN and simulator.orders[resting.order_id or ""].status == "LIVE"
    # A taker order: filled once, its fill booked once, the position the venue's.
    ask = Decimal(repr(probe.of(BookUpdate, token)[-1].best_ask))
    late = simulator.late_sent
    taken = await probe.ctx.buy(V, token, 5, price=ask + Decimal("0.02"))
    await until(
        lambda: (
            (o := engine.flow.tracker.get(taken.client_order_id or "")) is not None
            and o.state is OrderState.FILLED
        ),
        within=5,
    )
    # The late side arrives too, and nothing more is booked: the user channel's messages, sent
    # (one never sent fails here); or the answer, which `buy` has awaited.
    if switch == "user_lag_s":
        await late_frames_sent(simulator, late)
    else:
        await trio.sleep(0.2)  # its user-channel messages went out before it
    fills = [e for e in probe.of(Fill) if e.client_order_id == taken.client_order_id]
    assert sum((f.size for f in fills), Decimal(0)) == 5
    assert probe.ctx.position(V, token) == simulator.accounts[API.key].positions[token] == 5
    assert engine.flow.tracker.stats.duplicate_fills == 0
    # The resting order is still ours to cancel, and cancelled once.
    done = await probe.ctx.cancel_order(resting.client_order_id or "")
    assert (
        done.status is OrderState.CANCELLED and simulator.orders[resting.order_id or ""].status == "CANCELED"
    )
