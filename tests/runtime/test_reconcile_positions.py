"""Positions reconciled with the venue (issue 16, the live tour): a daemon restarted against a
venue that no longer holds what its journal says (here a fresh simulator) alerts the mismatch and
takes the venue's word: the position goes flat, no PnL is booked for the difference (no price is
known), and the adjustment is journaled, so the next restart restores the flat position and
finds nothing to say. Deribit and Derive report positions (`private/get_positions`); Polymarket's
share balances are tested in tests/connectors/polymarket/test_polymarket_positions.py."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog
import trio

from tests.support import deribit_live as deribit
from tests.support.live_support import Probe, until
from tradingd.engine import Subscription, Ticker
from tradingd.engine.runtime.flow import ADJUSTED
from tradingd.engine.runtime.live import LiveEngine
from tradingd.engine.store.journal import OrderJournal

PERP = deribit.PERP


def _checked(engine: LiveEngine) -> None:
    engine.position_recheck_s = 0.05  # Deribit books the position with the fill: no mining to wait for


async def test_a_restart_against_a_venue_holding_nothing_alerts_and_goes_flat_without_pnl(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    path = tmp_path / "journal.sqlite"
    journal = OrderJournal(path)
    first = Probe("p", [Subscription("deribit", PERP)])
    async with trio.open_nursery() as daemon:
        _, base = await deribit.serve_sim(daemon)
        engine = await deribit.start(daemon, base, first, journal=journal)
        await until(lambda: engine.market_state.usd_rate("deribit", "BTC"), what="a BTC/USD rate")
        ticker = await until(lambda: [t for t in first.of(Ticker, PERP) if t.ask], what="an ask")
        inst = engine.registry.require("deribit", PERP)
        await first.ctx.buy("deribit", PERP, Decimal(20), inst.round_price(Decimal(repr(ticker[-1].ask)) * 2))
        await until(lambda: first.ctx.position("deribit", PERP) == 20, what="the fill")
        realized = engine.flow.ledger("p").realized_usd
        daemon.cancel_scope.cancel()  # the daemon and its venue go away
    journal.close()

    # A fresh simulator: the account holds nothing. The restart restores 20 from the journal.
    with structlog.testing.capture_logs() as logs:
        async with trio.open_nursery() as daemon:
            fresh, base = await deribit.serve_sim(daemon)
            second = Probe("p", [Subscription("deribit", PERP)])
            engine = await deribit.start(daemon, base, second, journal=OrderJournal(path))
            _checked(engine)
            await until(lambda: engine.position_mismatches == 1, what="the mismatch alerted")
            assert second.ctx.position("deribit", PERP) == 0  # the venue's word
            assert engine.flow.ledger("p").realized_usd == realized  # nothing booked for it
            assert fresh.requests_for("private/get_positions") >= 1
            daemon.cancel_scope.cancel()
    (alert,) = [e for e in logs if e["event"] == "position.mismatch"]
    assert (alert["venue"], alert["instrument"]) == ("deribit", PERP)
    assert (Decimal(alert["engine"]), Decimal(alert["venue_holds"])) == (Decimal(20), Decimal(0))
    assert alert["log_level"] == "critical" and alert["action"].startswith("adjusted to the venue's figure")
    notes: list[dict[str, Any]] = OrderJournal(path).events(kind=ADJUSTED)
    assert [(n["strategy"], n["instrument"], Decimal(n["before"]), Decimal(n["after"])) for n in notes] == [
        ("p", PERP, Decimal(20), Decimal(0))
    ]

    # The next restart, against the same (flat) venue: flat from the journal, nothing to say.
    third = Probe("p", [Subscription("deribit", PERP)])
    async with trio.open_nursery() as daemon:
        fresh, base = await deribit.serve_sim(daemon)
        engine = await deribit.start(daemon, base, third, journal=OrderJournal(path))
        _checked(engine)
        assert third.ctx.position("deribit", PERP) == 0
        await until(lambda: engine.reconciliations >= 1, what="a reconciliation")
        assert engine.position_mismatches == 0
        daemon.cancel_scope.cancel()


async def test_a_venue_holding_more_than_we_booked_is_alerted_and_left_as_it_is(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """More than we hold, the other side: the ledger would need a cost basis for the difference,
    and there is no price to take it from. Alerted, left as it is (the action says why)."""
    simulator, base = await deribit.serve_sim(nursery)
    probe = Probe("p", [Subscription("deribit", PERP)])
    engine = await deribit.start(nursery, base, probe)
    _checked(engine)
    ticker = await until(lambda: [t for t in probe.of(Ticker, PERP) if t.ask], what="an ask")
    inst = engine.registry.require("deribit", PERP)
    await probe.ctx.buy("deribit", PERP, Decimal(20), inst.round_price(Decimal(repr(ticker[-1].ask)) * 2))
    await until(lambda: probe.ctx.position("deribit", PERP) == 20, what="the fill")
    (account,) = simulator.accounts.values()
    account.positions[PERP] = Decimal(50)  # traded outside the daemon
    with structlog.testing.capture_logs() as logs:
        simulator.drop_all()  # the reconnection reconciles
        await until(lambda: engine.position_mismatches == 1, what="the mismatch alerted", within=20)
    (alert,) = [e for e in logs if e["event"] == "position.mismatch"]
    assert (Decimal(alert["engine"]), Decimal(alert["venue_holds"])) == (Decimal(20), Decimal(50))
    assert alert["action"].startswith("not adjusted: the venue holds more")
    assert probe.ctx.position("deribit", PERP) == 20
