"""Derive reports the subaccount's positions (`private/get_positions`, VENUES.md §3.6): a
reconciliation compares them with ours, and a position the venue no longer holds (closed outside
the daemon) is alerted, critical, with both figures; the ledger moves only by fills (issue 16)."""

from __future__ import annotations

import functools
from decimal import Decimal

import structlog
import trio

from tests.support.derive_live import CREDS
from tests.support.live_support import Probe, until
from tradingd.connectors.derive.settings import DeriveSettings
from tradingd.engine import Subscription, Ticker
from tradingd.engine.runtime.live import LiveEngine
from tradingd.simulators.derive.simulator import DEMO_SUBACCOUNT, DEMO_WALLET, DeriveSimulator, serve

PERP = "ETH-PERP"


async def test_a_position_the_venue_no_longer_holds_is_alerted_and_left(nursery: trio.Nursery) -> None:
    simulator = DeriveSimulator(seed=5, step_s=0.05, settle_after_s=0.2)
    binds = await nursery.start(functools.partial(serve, simulator))
    base = binds[0].removeprefix("http://")
    probe = Probe("p", [Subscription("derive", PERP)])
    engine = LiveEngine(
        [probe],
        {"derive": DeriveSettings(url=f"ws://{base}/ws", rest_url=f"http://{base}")},
        mode="live",
        environ=CREDS,
        paper_latency_s=0.0,
    )
    engine.position_recheck_s = 0.05
    await nursery.start(engine.run)
    with trio.fail_after(10):
        await engine.ready.wait()
    await until(lambda: bool(probe.of(Ticker, PERP)), what="a ticker")
    await probe.ctx.buy("derive", PERP, Decimal("0.3"))
    await until(lambda: probe.ctx.position("derive", PERP) == Decimal("0.3"), what="the fill")
    account = simulator.accounts[DEMO_WALLET.lower()]
    await until(lambda: account.positions.get((DEMO_SUBACCOUNT, PERP)) == Decimal("0.3"), what="the venue's")
    asked = simulator.requests_for("private/get_positions")
    with structlog.testing.capture_logs() as logs:
        simulator.drop_all()  # the reconnection reconciles: both hold 0.3, nothing to say
        await until(lambda: simulator.requests_for("private/get_positions") > asked, what="positions asked")
        await until(lambda: engine.position_checks >= 2, what="the check done")
        assert engine.position_mismatches == 0
        account.positions[(DEMO_SUBACCOUNT, PERP)] = Decimal(0)  # closed outside the daemon
        simulator.drop_all()
        await until(lambda: engine.position_mismatches == 1, what="the mismatch alerted", within=20)
    (alert,) = [e for e in logs if e["event"] == "position.mismatch"]
    assert alert["instrument"] == PERP
    assert (Decimal(alert["engine"]), Decimal(alert["venue_holds"])) == (Decimal("0.3"), Decimal(0))
    assert alert["action"].startswith("alerted: the venue reports holding nothing of what we hold")
    assert probe.ctx.position("derive", PERP) == Decimal("0.3")  # not rewritten
