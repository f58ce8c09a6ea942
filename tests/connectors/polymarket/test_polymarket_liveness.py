"""The market connection's liveness comes from market data, not from `PONG`: Polymarket is known
to keep a market socket open and answering `PING` while it sends no book data for hours
(py-clob-client #292), which the simulator's `silent` switch reproduces."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tests.support.live_support import Probe, until
from tests.support.polymarket_live import V, cache, serve_sim, start, yes
from tests.support.sessions import venue_session
from tradingd.connectors.polymarket.stream import PolymarketSession
from tradingd.engine import BookUpdate, StatusKind, Subscription
from tradingd.simulators.polymarket.simulator import PolymarketSimulator

__all__ = ["cache"]  # the fixture (tests/support/polymarket_live), used by name


@pytest.fixture
async def sim(nursery: trio.Nursery) -> tuple[PolymarketSimulator, str]:
    return await serve_sim(nursery)


def market_peers(simulator: PolymarketSimulator) -> list[set[str]]:
    return [p.assets for p in simulator.sessions.values() if p.path == "/ws/market"]


async def test_a_market_socket_that_only_answers_ping_is_replaced_and_resubscribed(
    sim: tuple[PolymarketSimulator, str], nursery: trio.Nursery, cache: Path
) -> None:
    simulator, base = sim
    token = yes(simulator, 0)
    probe = Probe("p", [Subscription(V, token, {"book"})])
    # PING every second, answered: the connection as a whole is never silent for `stale_after_s`.
    engine = await start(
        nursery,
        base,
        probe,
        cache=cache,
        ping_s=1.0,
        stale_after_s=2.0,
        market_stale_after_s=1.5,
        reconnect_base_s=0.05,
    )
    live = venue_session(engine, V, PolymarketSession)
    market = live.market
    assert market.stats.connects == 1
    pongs = market.pongs
    simulator.apply_faults({"silent": True})
    await until(lambda: bool(probe.statuses(StatusKind.FEED_STALE)), within=6)
    stale = probe.statuses(StatusKind.FEED_STALE)[0]
    assert stale.data["market_data"] is True and stale.data["silent_s"] >= 1.5
    assert market.pongs > pongs  # the venue kept answering PING all along
    await until(lambda: market.stats.connects >= 2, within=5)
    # The new connection subscribes the token again (its books come when the venue speaks again).
    await until(lambda: market_peers(simulator) == [{token}], within=5)
    simulator.apply_faults({"silent": False})
    count = len(probe.of(BookUpdate, token))
    await until(lambda: len(probe.of(BookUpdate, token)) > count + 2, within=10)
    book = live.decoder.book(token)
    assert book is not None and book.valid


async def test_a_quiet_connection_without_subscriptions_is_not_stale(
    sim: tuple[PolymarketSimulator, str], nursery: trio.Nursery, cache: Path
) -> None:
    _, base = sim
    # No strategy asks for anything: only PONGs come, and that is all that is expected.
    engine = await start(nursery, base, cache=cache, ping_s=1.0, stale_after_s=2.0, market_stale_after_s=1.0)
    market = venue_session(engine, V, PolymarketSession).market
    await trio.sleep(2.5)
    assert market.pongs >= 1 and market.stats.connects == 1 and market.stats.stale == 0
