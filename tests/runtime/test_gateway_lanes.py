"""The gateway's two lanes (cancels first) and the answer "outcome unknown": a fake venue whose
placements block until the test lets them go, so the queue can be filled with slow ones."""

from __future__ import annotations

from decimal import Decimal

import pytest
import trio
import trio.testing

from tests.support.helpers import OPTION, PERP, request
from tests.support.slow_gateway import SlowVenue, _flow, _settle, stalled_gateway
from tradingd.engine import (
    OrderDenied,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderState,
    VenueError,
    VenueRejected,
)
from tradingd.engine.runtime import ExecutionGateway

# ------------------------------------------------------------------------------- cancels first


async def test_a_cancel_goes_before_queued_placements(autojump_clock: trio.testing.MockClock) -> None:
    """A cancel waits only for the request the venue has now, not for the full queue of new
    orders before it (a shutdown's, a failed strategy's, or a strategy pulling its quotes)."""
    async with stalled_gateway(n=4) as (_f, venue, gw, outcomes, nursery):

        async def cancel() -> None:
            outcomes["cancel"] = (await gw.cancel_order("s-rest")).status

        nursery.start_soon(cancel)
    assert venue.calls[:4] == [("place", "s-rest"), ("place", "q-0"), ("cancel", "s-rest"), ("place", "q-1")]
    assert outcomes["cancel"] is OrderState.CANCELLED
    assert all(outcomes[f"q-{i}"] is OrderState.OPEN for i in range(5))  # the others still sent


async def test_the_kill_switch_cancel_goes_first_and_queued_orders_are_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The kill switch (the daemon engages it, then cancels every open order): the cancel is
    sent as soon as the request in flight is answered; the new orders queued behind are refused
    by the pre-trade checks and never sent."""
    async with stalled_gateway(n=4) as (flow, venue, gw, outcomes, nursery):
        flow.risk.halt("test drill")

        async def cancel() -> None:
            outcomes["cancel"] = (await gw.cancel_order("s-rest")).status

        nursery.start_soon(cancel)
    assert venue.calls == [("place", "s-rest"), ("place", "q-0"), ("cancel", "s-rest")]
    assert outcomes["cancel"] is OrderState.CANCELLED
    for i in range(1, 5):
        refused = outcomes[f"q-{i}"]
        assert isinstance(refused, OrderDenied) and "kill switch engaged: test drill" in refused.reason
        assert flow.tracker.get(f"q-{i}") is None


async def test_a_cancel_of_an_order_still_queued_waits_for_its_placement(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Cancels go first, but never before the order they cancel is sent: a strategy's place
    then cancel of one order is kept in its order (the venue would not know the order yet)."""
    async with stalled_gateway(n=2) as (_f, venue, gw, outcomes, nursery):

        async def cancel(cid: str) -> None:
            outcomes[f"cancel {cid}"] = (await gw.cancel_order(cid)).status

        nursery.start_soon(cancel, "q-2")  # queued: its cancel waits behind it
        await _settle()
        nursery.start_soon(cancel, "s-rest")  # resting: its cancel goes first
    assert venue.calls == [
        ("place", "s-rest"),
        ("place", "q-0"),
        ("cancel", "s-rest"),
        ("place", "q-1"),
        ("place", "q-2"),
        ("cancel", "q-2"),
    ]
    assert outcomes["cancel q-2"] is OrderState.CANCELLED


async def test_refuse_new_refuses_queued_orders_and_lets_cancels_through(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """What the daemon's stop does once its strategies stopped: their queued orders are refused
    at once (never sent after the open orders are cancelled), while cancels still go."""
    async with stalled_gateway(n=4) as (flow, venue, gw, outcomes, nursery):
        assert gw.queued == 4
        assert gw.refuse_new("the daemon is stopping") == 4
        assert gw.queued == 0
        with pytest.raises(OrderDenied, match="not sent: the daemon is stopping"):
            await gw.place_order(request(cid="late"))
        nursery.start_soon(gw.cancel_order, "s-rest")
    assert venue.calls == [("place", "s-rest"), ("place", "q-0"), ("cancel", "s-rest")]
    assert all(isinstance(outcomes[f"q-{i}"], OrderDenied) for i in range(1, 5))
    assert flow.tracker.get("s-rest").state is OrderState.CANCELLED  # type: ignore[union-attr]


# ------------------------------------------------------------------------------ outcome unknown


@pytest.mark.parametrize("action", ["place", "edit", "cancel"])
async def test_a_request_without_an_answer_is_outcome_unknown_not_a_refusal(
    action: str, autojump_clock: trio.testing.MockClock
) -> None:
    """The venue never answers (the connector times out): the caller hears
    `OrderOutcomeUnknown`, which is not a refusal; the order stays tracked, as it was, and a
    second placement under the same id is refused (never sent twice)."""
    flow = _flow()
    venue = SlowVenue()
    gw = ExecutionGateway(venue, flow)
    async with trio.open_nursery() as nursery:
        await nursery.start(gw.run)
        if action != "place":
            await gw.place_order(request(cid="s-1"))
        venue.silent.add("s-1")
        calls = {
            "place": lambda: gw.place_order(request(cid="s-1")),
            "edit": lambda: gw.edit_order("s-1", price=Decimal("0.06")),
            "cancel": lambda: gw.cancel_order("s-1"),
        }
        with pytest.raises(OrderOutcomeUnknown) as info:
            await calls[action]()
        with pytest.raises(OrderDenied, match="duplicate client order id"):
            await gw.place_order(request(cid="s-1"))
        gw.close()
    exc = info.value
    assert not isinstance(exc, OrderRejected)
    assert isinstance(exc, VenueError) and exc.code == "timeout"
    assert exc.client_order_id == "s-1" and exc.instrument == OPTION.symbol
    assert isinstance(exc.__cause__, VenueError) and "no answer" in str(exc.__cause__)
    order = flow.tracker.get("s-1")
    assert order is not None
    expected = {
        "place": OrderState.PENDING_NEW,
        "edit": OrderState.OPEN,
        "cancel": OrderState.PENDING_CANCEL,
    }[action]
    assert order.state is expected
    assert [c for c in venue.calls if c[1] == "s-1"][-1] == (action, "s-1")  # sent once


async def test_a_request_never_sent_is_a_refusal_of_the_venue_side() -> None:
    """No connection: nothing reached the venue, so the outcome is known (not done): a
    `VenueRejected` "not_sent", for a cancel too (the order stays as it was)."""
    flow = _flow()
    venue = SlowVenue()
    gw = ExecutionGateway(venue, flow)
    async with trio.open_nursery() as nursery:
        await nursery.start(gw.run)
        await gw.place_order(request(cid="s-1"))
        venue.unavailable = True
        with pytest.raises(VenueRejected) as placed:
            await gw.place_order(request(cid="s-2"))
        with pytest.raises(VenueRejected) as cancelled:
            await gw.cancel_order("s-1")
        gw.close()
    assert placed.value.code == cancelled.value.code == "not_sent"
    assert isinstance(placed.value, VenueError) and isinstance(placed.value, OrderRejected)
    assert flow.tracker.get("s-2").state is OrderState.REJECTED  # type: ignore[union-attr]
    assert flow.tracker.get("s-1").state is OrderState.OPEN  # type: ignore[union-attr]


# ------------------------------------------------------------------- the daemon's orderly stop


async def test_a_stop_sends_no_queued_order_and_leaves_none_open(nursery: trio.Nursery) -> None:
    """Live on the Deribit simulator, orders slowed by the matching-engine rate (2 a second):
    a strategy queued five resting buys behind one resting and is stopped; the daemon's orderly
    stop with `cancel_open_orders` must leave nothing open. Before, the queued buys were sent
    after the stop began (ahead of the cancels, in one queue) and, not among the orders the
    stop cancelled, stayed open at the venue."""
    import functools

    from tests.support.live_support import Probe, live_deribit
    from tradingd.engine import Subscription

    probe = Probe("p", [Subscription("deribit", PERP.symbol)])
    simulator, engine, mark = await live_deribit(nursery, probe, matching_rate=2, matching_burst=1)
    price = Decimal(int(mark * 0.8))  # far under the market: every buy rests
    await probe.ctx.buy("deribit", PERP.symbol, 10, price)
    with trio.CancelScope() as strategy:  # the strategy, stopped with requests queued
        async with trio.open_nursery() as burst:
            for _ in range(5):
                burst.start_soon(functools.partial(probe.ctx.buy, "deribit", PERP.symbol, 10, price))
            await trio.sleep(0.2)
            strategy.cancel()
    assert engine.gateways["deribit"].in_flight  # one with the venue, the rest queued
    assert await engine.shutdown(cancel_open_orders=True, timeout_s=10)
    ours = [o for o in simulator.orders.values() if o.label.startswith("p-")]
    assert [o.label for o in ours if o.state == "open"] == []
    assert simulator.requests_for("private/buy") == 2  # the first, and the one then in flight
    assert engine.flow.tracker.open_orders() == []


async def test_an_order_the_venue_does_not_answer_in_time_is_outcome_unknown_then_settled(
    nursery: trio.Nursery,
) -> None:
    """Live on the Deribit simulator, which stalls (sends nothing) right after the order
    arrives: the strategy hears `OrderOutcomeUnknown` (not a refusal) when the request times
    out; the order stays tracked, is not sent again, and the venue's word settles it (it is
    resting) once the simulator speaks again."""

    from tests.support.live_support import Probe, live_deribit, until
    from tradingd.engine import Subscription

    probe = Probe("p", [Subscription("deribit", PERP.symbol)])
    simulator, engine, mark = await live_deribit(nursery, probe, request_timeout_s=0.5, reconnect_base_s=0.05)
    simulator.faults.stall(1.5)
    with pytest.raises(OrderOutcomeUnknown) as info:
        await probe.ctx.buy("deribit", PERP.symbol, 10, Decimal(int(mark * 0.8)))
    assert not isinstance(info.value, OrderRejected) and info.value.code == "timeout"
    cid = info.value.client_order_id or ""
    order = engine.flow.tracker.get(cid)
    assert order is not None and order.state is OrderState.PENDING_NEW  # tracked, fate unknown
    await until(lambda: order.state is OrderState.OPEN, within=15, what="the venue's word")
    assert simulator.requests_for("private/buy") == 1  # never sent again
    assert [o.state for o in simulator.orders.values() if o.label == cid] == ["open"]
