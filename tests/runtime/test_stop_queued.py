"""Issue 13, the orderly stop: orders a strategy queued before it is stopped are not sent once the
stop has begun (the daemon's shutdown, or the strategy's failure under the `cancel` policy),
while those its `on_stop` makes (a flattening order) are; cancels always go. `[daemon]
send_queued_on_stop = true` sends the queued ones as before."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import trio
import trio.testing

from tests.support.helpers import PERP, request, ticker
from tests.support.live_support import Probe, live_deribit
from tests.support.slow_gateway import SlowVenue, _flow, _settle, stalled_gateway
from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.engine import OrderDenied, OrderRejected, OrderState, Subscription
from tradingd.engine.runtime import ExecutionGateway
from tradingd.engine.runtime.live import LiveEngine


async def test_a_stop_refuses_what_was_queued_and_sends_what_comes_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with stalled_gateway(n=3) as (flow, venue, gw, outcomes, nursery):
        assert gw.drop_queued("the daemon is stopping") == 3
        await _settle()
        # Made after the stop began (a strategy's `on_stop` flattening): sent.
        nursery.start_soon(gw.place_order, request("sell", cid="s-flat"))
        nursery.start_soon(gw.cancel_order, "s-rest")  # cancels still go (first)
    assert venue.calls == [("place", "s-rest"), ("place", "q-0"), ("cancel", "s-rest"), ("place", "s-flat")]
    for i in range(1, 4):
        refused = outcomes[f"q-{i}"]
        assert isinstance(refused, OrderDenied) and refused.code == "stopping"
        assert "the daemon is stopping" in str(refused)
        assert flow.tracker.get(f"q-{i}") is None  # never accepted, never sent
    assert flow.tracker.get("s-flat").state is OrderState.OPEN  # type: ignore[union-attr]


async def test_a_caller_still_waiting_for_room_when_the_stop_began_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Refusing the queued requests frees room in the queue: a caller that was waiting for room
    when the stop began must not take it and be sent."""
    # q-1 queued, q-2 waits for room
    async with stalled_gateway(n=2, capacity=1) as (_f, venue, gw, outcomes, _nursery):
        assert gw.queued == 1
        assert gw.drop_queued("the daemon is stopping") == 1
    assert venue.calls == [("place", "s-rest"), ("place", "q-0")]
    assert isinstance(outcomes["q-1"], OrderDenied) and isinstance(outcomes["q-2"], OrderDenied)


async def test_a_stop_of_one_strategy_refuses_only_its_queued_requests(
    autojump_clock: trio.testing.MockClock,
) -> None:
    flow = _flow()
    venue = SlowVenue()
    gw = ExecutionGateway(venue, flow, capacity=8)
    outcomes: dict[str, object] = {}

    async def place(cid: str, strategy: str) -> None:
        try:
            outcomes[cid] = (await gw.place_order(request(cid=cid, strategy=strategy))).status
        except OrderRejected as exc:
            outcomes[cid] = exc

    async with trio.open_nursery() as nursery:
        await nursery.start(gw.run)
        venue.gate = trio.Event()
        for cid, strategy in [("s-0", "s"), ("s-1", "s"), ("t-1", "t"), ("s-2", "s")]:
            nursery.start_soon(place, cid, strategy)
            await _settle()
        assert gw.drop_queued("strategy s failed", strategy="s") == 2
        venue.gate.set()
        await _settle()
        gw.close()
    assert venue.calls == [("place", "s-0"), ("place", "t-1")]
    assert outcomes["t-1"] is OrderState.OPEN
    assert all(isinstance(outcomes[c], OrderDenied) for c in ("s-1", "s-2"))


@pytest.mark.parametrize("policy", ["cancel", "leave"])
async def test_a_failed_strategys_queued_orders_are_not_sent_under_the_cancel_policy(policy: str) -> None:
    """A strategy fails with orders queued: under `cancel` they would go out after the policy's
    cancels (which go first) and be left working with nobody to manage them; under `leave` the
    strategy's orders are left as they are, queued ones too."""
    engine = LiveEngine(
        [Probe("s"), Probe("t")],
        {"deribit": DeribitSettings()},
        mode="live",
        environ={"DERIBIT_CLIENT_ID": "id", "DERIBIT_CLIENT_SECRET": "zq-s53-x"},  # nothing connects
        on_failure={"s": policy},  # type: ignore[dict-item]
    )
    engine.registry.add(PERP)
    engine.market_state.on_ticker(ticker(PERP.symbol, index=90_000.0, mark=90_010.0))
    venue = SlowVenue()
    gw = engine.gateways["deribit"] = ExecutionGateway(venue, engine.flow)
    outcomes: dict[str, object] = {}

    async def place(cid: str, strategy: str) -> None:
        order = request(size="10", price="90000", instrument=PERP.symbol, cid=cid, strategy=strategy)
        try:
            outcomes[cid] = (await gw.place_order(order)).status
        except OrderRejected as exc:
            outcomes[cid] = exc

    async with trio.open_nursery() as nursery:
        await nursery.start(gw.run)
        venue.gate = trio.Event()
        for cid, strategy in [("t-0", "t"), ("s-1", "s"), ("t-1", "t")]:
            nursery.start_soon(place, cid, strategy)
            await trio.testing.wait_all_tasks_blocked()
        engine._strategy_failed(engine.slots[0], "on_start", RuntimeError("boom"))
        venue.gate.set()
        await trio.testing.wait_all_tasks_blocked()
        gw.close()
    sent = [cid for _, cid in venue.calls]
    if policy == "cancel":
        assert sent == ["t-0", "t-1"] and isinstance(outcomes["s-1"], OrderDenied)
    else:
        assert sent == ["t-0", "s-1", "t-1"]


class _Flattens(Probe):
    """A strategy whose `on_stop` takes a while (a second) and then sends one order of its own
    (a flattening sell, here resting far above the market)."""

    def __init__(self, name: str, subs: list[Subscription]) -> None:
        super().__init__(name, subs)
        self.price = Decimal(0)
        self.flattened: object = None

    async def on_stop(self) -> None:
        await trio.sleep(1.0)
        self.flattened = (await self.ctx.sell("deribit", PERP.symbol, 10, self.price)).status


@pytest.mark.parametrize("send_queued", [False, True])
async def test_a_shutdown_sends_the_on_stop_order_but_not_the_orders_queued_before(
    nursery: trio.Nursery, send_queued: bool
) -> None:
    """Live on the Deribit simulator, orders slowed by the matching-engine rate (2 a second):
    five resting buys are queued behind one in flight when the daemon's stop begins; the
    strategy's `on_stop` takes a second, then sends a sell. Only the buy then in flight and the
    sell reach the venue. Before, the queued buys kept going out while `on_stop` ran, as they
    still do with `send_queued` (`[daemon] send_queued_on_stop = true`)."""

    probe = _Flattens("p", [Subscription("deribit", PERP.symbol)])
    simulator, engine, mark = await live_deribit(nursery, probe, matching_rate=2, matching_burst=1)
    price = Decimal(int(mark * 0.8))  # far under the market: every buy rests
    probe.price = Decimal(int(mark * 1.25))  # far over it: the sell rests
    await probe.ctx.buy("deribit", PERP.symbol, 10, price)
    refused: list[OrderRejected] = []

    async def buy() -> None:
        try:
            await probe.ctx.buy("deribit", PERP.symbol, 10, price)
        except OrderRejected as exc:
            refused.append(exc)

    async with trio.open_nursery() as burst:
        for _ in range(5):
            burst.start_soon(buy)
        await trio.sleep(0.2)
        assert engine.gateways["deribit"].in_flight and engine.gateways["deribit"].queued == 4
        assert await engine.shutdown(cancel_open_orders=True, timeout_s=10, send_queued=send_queued)
    assert simulator.requests_for("private/sell") == 1  # on_stop's
    assert probe.flattened is OrderState.OPEN
    assert all(isinstance(e, OrderDenied) and e.code == "stopping" for e in refused)
    if send_queued:  # sent while on_stop ran (what is left when it is done is still refused)
        assert simulator.requests_for("private/buy") > 2
    else:
        assert simulator.requests_for("private/buy") == 2  # the first, and the one then in flight
        assert len(refused) == 4
    ours = [o for o in simulator.orders.values() if o.label.startswith("p-")]
    assert [o.label for o in ours if o.state == "open"] == []  # the stop cancelled what rests


def test_send_queued_on_stop_is_a_daemon_setting_off_by_default(tmp_path: Path) -> None:
    from tradingd.config import load_daemon_settings

    path = tmp_path / "c.toml"
    path.write_text('mode = "live"\n[daemon]\n')
    assert load_daemon_settings(path).send_queued_on_stop is False
    path.write_text('mode = "live"\n[daemon]\nsend_queued_on_stop = true\n')
    assert load_daemon_settings(path).send_queued_on_stop is True
