"""One trade, two fills of ours, end to end against the simulators over loopback; each time
both fills are booked and journaled, and a restart, which reads the trade again from the venue,
books neither again.

- Polymarket: a taker crossing two of our resting maker orders is one trade listing both in
  `maker_orders[]` (VENUES.md §2.2; the captured `GET /data/trades` item `http_trade_report.json`
  lists two maker orders under one trade id).
- Deribit: our own sell crossing our own resting buy (self-trading is allowed unless the account
  sets its prevention, `private/set_self_trading_config`) is one trade: a user trade for each of
  our two orders under its one `trade_id`.
- Derive refuses an order that would cross our own (VENUES.md §3.7 error 11007 "self-cross"): its
  decoder is tested on a frame of the captured shape in `tests/store/test_fill_key.py`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import trio

from tests.support import deribit_live as deribit
from tests.support.live_support import Probe, until
from tests.support.polymarket_live import API, V, cache, serve_sim, start, yes
from tradingd.engine import BookUpdate, Fill, OrderState, Subscription
from tradingd.engine.store.journal import OrderJournal

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


async def test_a_deribit_self_cross_books_both_our_fills_once_across_a_restart(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    simulator, base = await deribit.serve_sim(nursery, self_trading=True)
    perp = deribit.PERP
    path = tmp_path / "journal.sqlite"
    journal = OrderJournal(path)
    first = Probe("p", [Subscription("deribit", perp)])
    async with trio.open_nursery() as daemon:
        engine = await deribit.start(daemon, base, first, journal=journal)
        await until(lambda: bool(first.of(BookUpdate, perp)))
        # A BTC/USD rate known before the market pauses: the taker's fee (in BTC) is booked in
        # USD at the venue's rate, never at an unknown one, so without it the fee would wait
        # for the next ticker, which a paused market never sends.
        await until(lambda: engine.market_state.usd_rate("deribit", "BTC"), what="a BTC/USD rate")
        tick = engine.registry.require("deribit", perp).tick_size

        # The market paused with a spread wider than a tick: our bid inside it is the best bid,
        # and nothing but our own sell trades with it.
        for _ in range(200):
            simulator.prepare_burst(0)
            top = simulator.top(perp)
            if top is not None and top[0] and top[2] and top[2] - top[0] > tick:
                break
            simulator.resume()
            await trio.sleep(0.05)
        else:
            raise AssertionError("the spread never was wider than a tick")
        price = top[0] + tick
        bid = await first.ctx.buy("deribit", perp, 10, price=price)
        assert bid.status is OrderState.OPEN
        ask = await first.ctx.sell("deribit", perp, 10, price=price)  # crosses our own bid
        assert ask.status is OrderState.FILLED
        await until(lambda: len(first.of(Fill)) == 2, what="both sides of the self-trade")
        fills = sorted(
            (f.client_order_id or "", f.side.value, f.trade_id, f.liquidity.value) for f in first.of(Fill)
        )
        (trade_id,) = {f[2] for f in fills}
        assert fills == sorted(
            [
                (bid.client_order_id or "", "buy", trade_id, "maker"),
                (ask.client_order_id or "", "sell", trade_id, "taker"),
            ]
        )
        ledger = engine.flow.ledgers["p"]
        assert ledger.fills == 2 and first.ctx.position("deribit", perp) == 0
        fees = ledger.fees_usd
        assert fees > 0  # the taker's fee, in USD at the rate known before the pause
        # Each side's own fee: the taker's charged, the maker's none (the perpetual's maker fee).
        assert sorted(f.fee > 0 for f in first.of(Fill)) == [False, True]
        assert sorted(c for c, _, _ in journaled_fills(path)) == sorted(
            [bid.client_order_id or "", ask.client_order_id or ""]
        )
        daemon.cancel_scope.cancel()
    journal.close()
    simulator.resume()
    asked = simulator.requests_for("private/get_user_trades_by_currency_and_time")
    second = Probe("p", [Subscription("deribit", perp)])
    engine = await deribit.start(nursery, base, second, journal=OrderJournal(path))
    await until(lambda: "deribit" in engine._caught_up_ns, what="the catch-up of fills")
    assert simulator.requests_for("private/get_user_trades_by_currency_and_time") > asked
    assert second.of(Fill) == [] and len(journaled_fills(path)) == 2
    ledger = engine.flow.ledgers["p"]
    assert ledger.fills == 2 and ledger.fees_usd == fees and second.ctx.position("deribit", perp) == 0
