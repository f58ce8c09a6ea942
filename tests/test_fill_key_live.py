"""One trade, two fills of ours, end to end against the Polymarket simulator over loopback: a
taker crossing two of our resting maker orders is one trade listing both in `maker_orders[]`
(VENUES.md §2.2; the captured `GET /data/trades` item `http_trade_report.json` lists two maker
orders under one trade id). Both fills are booked and journaled, and a restart, which reads the
trade again from the venue, books neither again.

(Deribit's and Derive's simulators match client orders against the market only, never against
each other: a self-cross is tested at the decoder, order-flow and journal level in
`tests/test_fill_key.py`.)"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import trio

from engine import BookUpdate, Fill, Subscription
from engine._journal import OrderJournal
from tests.live_support import Probe, until
from tests.test_polymarket_live import API, V, cache, serve_sim, start, yes

__all__ = ["cache"]  # the fixture, shared with the Polymarket live tests


def journaled_fills(path: Path) -> list[tuple[str, str, str]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(
            "SELECT client_order_id, trade_id, size FROM ledger WHERE kind = 'fill' ORDER BY seq"
        ).fetchall()
    finally:
        db.close()


async def test_a_taker_crossing_two_of_our_maker_orders_books_both_once_across_a_restart(
    nursery: trio.Nursery, cache: Path, tmp_path: Path
) -> None:
    simulator, base = await serve_sim(nursery)
    token = yes(simulator, 0)
    path = tmp_path / "journal.sqlite"
    journal = OrderJournal(path)
    first = Probe("p", [Subscription(V, token)])
    async with trio.open_nursery() as daemon:
        await start(daemon, base, first, cache=cache, journal=journal)
        await until(lambda: bool(first.of(BookUpdate, token)))
        one = await first.ctx.buy(V, token, 10, price="0.05")
        two = await first.ctx.buy(V, token, 15, price="0.05")
        # Another participant sells 25 at 0.05: one match, both our bids its makers.
        printed = simulator.trade(token, "sell", "0.05", "25")
        assert len(printed["trades"]) == 1
        assert printed["orders"] == sorted([one.order_id or "", two.order_id or ""])
        (trade_id,) = printed["trades"]
        await until(lambda: len(first.of(Fill)) == 2, what="both fills of the trade")
        assert sorted((f.client_order_id, f.trade_id, f.size) for f in first.of(Fill)) == sorted(
            [(one.client_order_id, trade_id, 10), (two.client_order_id, trade_id, 15)]
        )
        await until(lambda: first.ctx.position(V, token) == 25, what="the position of both fills")
        assert sorted(journaled_fills(path)) == sorted(
            [(one.client_order_id, trade_id, "10"), (two.client_order_id, trade_id, "15")]
        )
        daemon.cancel_scope.cancel()  # the daemon dies
    journal.close()
    # The restart: positions from the journal; the venue's trades read again (the catch-up of
    # fills lists this trade, with both our maker orders) book nothing twice.
    asked = simulator.requests_for("GET /data/trades")
    second = Probe("p", [Subscription(V, token)])
    engine = await start(nursery, base, second, cache=cache, journal=OrderJournal(path))
    await until(lambda: V in engine._caught_up_ns, what="the catch-up of fills")
    assert simulator.requests_for("GET /data/trades") > asked
    assert second.ctx.position(V, token) == 25 == simulator.accounts[API.key].positions[token]
    assert second.of(Fill) == []
    assert len(journaled_fills(path)) == 2
    for placed in (one, two):
        order = engine.flow.tracker.get(placed.client_order_id or "")
        assert order is not None and order.has_fill(trade_id)
