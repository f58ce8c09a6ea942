"""The connector's books against the simulator's public book once our own orders rest in it (the
venue shows every resting order, ours included, in both tokens' views: a Yes bid at p is a No ask
at 1 - p): level for level, on both tokens, while they rest and after they leave."""

from __future__ import annotations

from pathlib import Path

import trio

from tests.support.live_support import Probe, until
from tests.support.polymarket_live import V, cache, serve_sim, start, venue_book
from tests.support.sessions import venue_session
from tradingd.connectors.polymarket.stream import PolymarketSession
from tradingd.engine import BookUpdate, OrderState, Subscription

__all__ = ["cache"]  # the fixture (tests/support/polymarket_live), used by name


async def test_our_resting_orders_are_in_both_books_as_the_venue_shows_them(
    nursery: trio.Nursery, cache: Path
) -> None:
    simulator, base = await serve_sim(nursery)
    market = simulator.feed.markets[0]
    probe = Probe("p", [Subscription(V, market.yes), Subscription(V, market.no)])
    engine = await start(nursery, base, probe, cache=cache)
    live = venue_session(engine, V, PolymarketSession)
    await until(lambda: bool(probe.of(BookUpdate, market.yes)) and bool(probe.of(BookUpdate, market.no)))
    placed = await probe.ctx.buy(V, market.yes, 10, price="0.05")
    assert placed.status is OrderState.OPEN

    def same(token: str) -> bool:
        book = live.decoder.book(token)
        return book is not None and book.valid and (book.bids, book.asks) == venue_book(simulator, token)

    simulator.prepare_burst(0)  # the market pauses
    await until(lambda: same(market.yes) and same(market.no), within=5)
    assert venue_book(simulator, market.yes)[0][500] == 10.0  # our bid, 0.05 in 0.0001 quanta
    assert venue_book(simulator, market.no)[1][9500] == 10.0  # and the No ask it is
    simulator.resume()
    done = await probe.ctx.cancel_order(placed.client_order_id or "")
    assert done.status is OrderState.CANCELLED
    simulator.prepare_burst(0)
    await until(lambda: same(market.yes) and same(market.no), within=5)
    assert 500 not in venue_book(simulator, market.yes)[0] and 9500 not in venue_book(simulator, market.no)[1]
    simulator.resume()
