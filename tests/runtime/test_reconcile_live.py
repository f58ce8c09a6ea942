"""Issue 13: reconciliation against the venues' simulators, over real loopback sockets.

- The venue's word wins and never kills the daemon: an order the venue reports in a state our
  state machine cannot reach (open, then rejected) takes the venue's state, with an alert naming
  both states; an exception in one step of a reconciliation is logged and counted, and the next
  step, the other venue and the daemon go on.
- A reconciliation (open orders, every page of our trades, each missing order's status) runs at
  start and after each reconnect, not when a strategy subscribes on a live connection.
"""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any

import structlog
import trio
from structlog.testing import LogCapture

from tests.support.live_support import Probe, until
from tests.support.sessions import venue_session
from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.connectors.derive.settings import DeriveSettings
from tradingd.connectors.derive.stream import DeriveSession
from tradingd.engine import OrderState, OrderUpdate, StatusKind, Subscription, Ticker
from tradingd.engine.runtime.live import LiveEngine
from tradingd.simulators.deribit.simulator import DEFAULT_ACCOUNTS, DeribitSimulator
from tradingd.simulators.deribit.simulator import serve as serve_deribit
from tradingd.simulators.derive.simulator import (
    DEMO_SESSION_KEY,
    DEMO_SUBACCOUNT,
    DEMO_WALLET,
    DeriveSimulator,
)
from tradingd.simulators.derive.simulator import serve as serve_derive

ETH = "ETH-PERP"  # Derive
BTC = "BTC-PERPETUAL"  # Deribit
CREDS = {
    "DERIVE_WALLET": DEMO_WALLET,
    "DERIVE_SESSION_KEY": DEMO_SESSION_KEY,
    "DERIVE_SUBACCOUNT_ID": str(DEMO_SUBACCOUNT),
    "DERIBIT_CLIENT_ID": next(iter(DEFAULT_ACCOUNTS)),
    "DERIBIT_CLIENT_SECRET": next(iter(DEFAULT_ACCOUNTS.values())),
}


def capturing_log() -> tuple[Any, LogCapture]:
    """The engine's logger, every entry kept (with its level) in the returned capture."""
    capture = LogCapture()
    log = structlog.wrap_logger(
        None, processors=[capture], wrapper_class=structlog.make_filtering_bound_logger(0)
    )
    return log, capture


async def derive_sim(nursery: trio.Nursery) -> tuple[DeriveSimulator, str]:
    simulator = DeriveSimulator(seed=5, step_s=0.05, settle_after_s=0.2)
    binds = await nursery.start(functools.partial(serve_derive, simulator))
    return simulator, binds[0].removeprefix("http://")


async def deribit_sim(nursery: trio.Nursery) -> tuple[DeribitSimulator, str]:
    simulator = DeribitSimulator(seed=5, step_s=0.05, heartbeat_scale=0.1)
    binds = await nursery.start(functools.partial(serve_deribit, simulator))
    return simulator, binds[0].removeprefix("http://")


async def start(nursery: trio.Nursery, probe: Probe, venues: dict[str, Any], log: Any = None) -> LiveEngine:
    engine = LiveEngine([probe], venues, mode="live", environ=CREDS, paper_latency_s=0.0, log=log)
    await nursery.start(engine.run)
    with trio.fail_after(10):
        await engine.ready.wait()
    return engine


def derive_settings(base: str) -> DeriveSettings:
    return DeriveSettings(url=f"ws://{base}/ws", rest_url=f"http://{base}", reconnect_base_s=1.0)


async def drop_derive(simulator: DeriveSimulator, probe: Probe) -> None:
    """Cut Derive's connection; return once the venue has forgotten it and before the session
    is back (its first retry waits at least half of `reconnect_base_s`)."""
    downs = len([s for s in probe.statuses(StatusKind.DISCONNECTED) if s.venue == "derive"])
    simulator.apply_faults({"drop": True})
    await until(
        lambda: (
            len([s for s in probe.statuses(StatusKind.DISCONNECTED) if s.venue == "derive"]) > downs
            and not simulator.sessions
        )
    )


async def test_a_state_the_state_machine_cannot_reach_is_the_venues_and_the_daemon_goes_on(
    nursery: trio.Nursery,
) -> None:
    derive, derive_base = await derive_sim(nursery)
    deribit, deribit_base = await deribit_sim(nursery)
    probe = Probe("p", [Subscription("derive", ETH, {"ticker"}), Subscription("deribit", BTC, {"ticker"})])
    log, capture = capturing_log()
    venues = {
        "derive": derive_settings(derive_base),
        "deribit": DeribitSettings(url=f"ws://{deribit_base}/ws/api/v2", rest_url=f"http://{deribit_base}"),
    }
    engine = await start(nursery, probe, venues, log)
    await until(lambda: probe.of(Ticker, ETH) and probe.of(Ticker, BTC) and engine.reconciliations >= 2)
    low = Decimal(int(probe.of(Ticker, ETH)[-1].bid * 0.9))  # far below the market: rests
    resting = await probe.ctx.buy("derive", ETH, Decimal("0.5"), price=low)
    assert resting.status is OrderState.OPEN and resting.order_id is not None
    before = engine.reconciliations
    await drop_derive(derive, probe)
    # While nobody listens the venue ends the order as `rejected` (VENUES.md §3.6 `order_status`;
    # a trigger order whose trigger fails reads so): off the book, answered so by `get_order`.
    derive.venue_cancel(order_id=resting.order_id, reason="validation_failed")
    derive.orders[resting.order_id].state = "rejected"
    # Derive comes back and reconciles: open -> rejected is no move of our state machine.
    await until(lambda: engine.reconciliations > before, what="Derive reconciled after the reconnect")
    tracker = engine.flow.tracker
    order = tracker.get(resting.client_order_id or "")
    assert order is not None
    await until(lambda: order.state is OrderState.REJECTED, what="the venue's state taken")
    assert order not in tracker.open_orders()
    assert tracker.stats.venue_overrides == 1 and engine.reconcile_failures == 0
    (alert,) = [e for e in capture.entries if e["event"] == "order.venue_state_taken"]
    assert alert["log_level"] == "critical"
    assert (alert["ours"], alert["venue_state"]) == ("open", "rejected")
    assert (alert["venue"], alert["client_order_id"], alert["order_id"]) == (
        "derive",
        resting.client_order_id,
        resting.order_id,
    )
    # The strategy hears the venue's state.
    await until(
        lambda: any(
            isinstance(e, OrderUpdate) and e.status is OrderState.REJECTED
            for e in probe.mine(resting.client_order_id)
        )
    )
    # The daemon runs on: the other venue trades, and so does Derive.
    bought = await probe.ctx.buy("deribit", BTC, 10)
    assert bought.status is OrderState.FILLED and deribit.orders[bought.order_id or ""].state == "filled"
    again = await probe.ctx.buy("derive", ETH, Decimal("0.1"), price=low)
    assert again.status is OrderState.OPEN
    assert not [e for e in capture.entries if e["log_level"] == "error" and "exc_info" in e]


async def test_a_reconciliation_step_that_raises_is_logged_and_counted_and_the_rest_goes_on(
    nursery: trio.Nursery,
) -> None:
    derive, derive_base = await derive_sim(nursery)
    probe = Probe("p", [Subscription("derive", ETH, {"ticker"})])
    log, capture = capturing_log()
    engine = await start(nursery, probe, {"derive": derive_settings(derive_base)}, log)
    await until(lambda: probe.of(Ticker, ETH) and engine.reconciliations >= 1)
    low = Decimal(int(probe.of(Ticker, ETH)[-1].bid * 0.9))
    resting = await probe.ctx.buy("derive", ETH, Decimal("0.5"), price=low)
    assert resting.order_id is not None
    client = engine.venues["derive"].execution()

    async def broken(since_ns: int) -> list[Any]:
        raise KeyError("trade_id")  # a bug in a venue's reading of its trade history, say

    client.recent_fills = broken  # type: ignore[method-assign]  # a bug planted in the venue's reader
    await drop_derive(derive, probe)
    derive.apply_faults({"cancel": {"order_id": resting.order_id, "reason": "insufficient_margin"}})
    before = engine.reconciliations
    await until(lambda: engine.reconciliations > before and engine.reconcile_failures == 1)
    # The step after the broken one ran: the order the venue cancelled meanwhile was asked about.
    order = engine.flow.tracker.get(resting.client_order_id or "")
    assert order is not None
    await until(lambda: order.state is OrderState.CANCELLED, what="the next step ran")
    (failed,) = [e for e in capture.entries if e["event"] == "reconcile.step_failed"]
    assert failed["log_level"] == "error" and failed["step"] == "fills" and failed["venue"] == "derive"
    assert failed["exc_info"] is True
    # The daemon trades on.
    again = await probe.ctx.buy("derive", ETH, Decimal("0.1"), price=low)
    assert again.status is OrderState.OPEN


async def test_reconciles_once_per_connection_not_per_subscription_change(nursery: trio.Nursery) -> None:
    derive, derive_base = await derive_sim(nursery)
    probe = Probe("p", [Subscription("derive", ETH, {"ticker"})])
    engine = await start(nursery, probe, {"derive": derive_settings(derive_base)})
    await until(lambda: probe.of(Ticker, ETH) and engine.reconciliations == 1)
    asked = derive.requests_for("private/get_open_orders")
    assert asked == 1
    # A strategy subscribes to another instrument on the live connection: no reconciliation.
    subscribed = len(probe.statuses(StatusKind.SUBSCRIBED))
    probe.ctx.subscribe([Subscription("derive", "BTC-PERP", {"ticker"})])
    await until(lambda: probe.of(Ticker, "BTC-PERP"), what="the new subscription's data")
    await until(lambda: len(probe.statuses(StatusKind.SUBSCRIBED)) > subscribed)
    probe.ctx.unsubscribe([Subscription("derive", "BTC-PERP", {"ticker"})])
    await until(lambda: len(probe.statuses(StatusKind.SUBSCRIBED)) > subscribed + 1)
    await trio.sleep(0.3)  # a reconciliation started by either would have asked by now
    assert derive.requests_for("private/get_open_orders") == asked
    assert engine.reconciliations == 1
    # The connection drops and comes back: exactly one reconciliation.
    await drop_derive(derive, probe)
    session = venue_session(engine, "derive", DeriveSession)
    await until(lambda: session.stats.connects == 2 and engine.reconciliations == 2)
    await trio.sleep(0.3)
    assert derive.requests_for("private/get_open_orders") == asked + 1
    assert engine.reconciliations == 2


async def test_an_order_the_venue_lists_as_working_that_we_hold_final_works_again(
    nursery: trio.Nursery,
) -> None:
    derive, derive_base = await derive_sim(nursery)
    probe = Probe("p", [Subscription("derive", ETH, {"ticker"})])
    log, capture = capturing_log()
    engine = await start(nursery, probe, {"derive": derive_settings(derive_base)}, log)
    await until(lambda: probe.of(Ticker, ETH) and engine.reconciliations >= 1)
    low = Decimal(int(probe.of(Ticker, ETH)[-1].bid * 0.9))
    resting = await probe.ctx.buy("derive", ETH, Decimal("0.5"), price=low)
    order = engine.flow.tracker.get(resting.client_order_id or "")
    assert order is not None and order.state is OrderState.OPEN
    # We hold it cancelled (a cancel answered, say) while the venue still rests it: a state the
    # venue's open orders list cannot take us back from on their own (a listing may be older
    # than what we hold), so the venue is asked about that order, and its answer wins.
    order.state = OrderState.CANCELLED
    asked = derive.requests_for("private/get_order")
    before = engine.reconciliations
    await drop_derive(derive, probe)
    await until(lambda: engine.reconciliations > before, what="Derive reconciled after the reconnect")
    await until(lambda: order.state is OrderState.OPEN, what="the venue's state taken")
    assert derive.requests_for("private/get_order") == asked + 1
    assert engine.flow.tracker.open_orders() == [order]  # the kill switch and the risk checks see it
    assert engine.flow.tracker.stats.venue_overrides == 1
    (alert,) = [e for e in capture.entries if e["event"] == "order.venue_state_taken"]
    assert alert["log_level"] == "critical" and alert["verified"] is True
    assert (alert["ours"], alert["venue_state"]) == ("cancelled", "open")
    # It is managed again: cancelled for real.
    done = await probe.ctx.cancel_order(resting.client_order_id or "")
    assert done.status is OrderState.CANCELLED and derive.orders[resting.order_id or ""].state == "cancelled"
