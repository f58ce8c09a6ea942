"""The market connection's liveness comes from market data, not from `PONG`: Polymarket is known
to keep a market socket open and answering `PING` while it sends no book data for hours
(py-clob-client #292), which the simulator's `silent` switch reproduces. A silence is first a
question (a subscription of one of the connection's tokens again, which the venue answers with its
book): a socket that does not answer is replaced, a healthy one on a quiet market stays up."""

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
        snapshot_timeout_s=0.5,  # how long the silence's question waits for its answer
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


async def test_a_healthy_connection_on_a_quiet_market_is_asked_and_stays_up(
    nursery: trio.Nursery, cache: Path
) -> None:
    # The simulator's market never steps: after the subscription's books, no change, no trade,
    # for any token (a market of illiquid tokens), while the connection itself is healthy.
    simulator, base = await serve_sim(nursery, step_s=1_000.0)
    token = yes(simulator, 0)
    probe = Probe("p", [Subscription(V, token, {"book"})])
    engine = await start(
        nursery,
        base,
        probe,
        cache=cache,
        ping_s=1.0,
        stale_after_s=2.0,
        market_stale_after_s=1.0,
        snapshot_timeout_s=0.5,
    )
    live = venue_session(engine, V, PolymarketSession)
    market = live.market
    books = len(probe.of(BookUpdate, token))
    await trio.sleep(4.0)  # about three silence windows
    # Asked each time, answered each time with the token's (current, unchanged) book: no
    # reconnection, no stale feed, the token still subscribed.
    assert market.quiet_probes >= 2
    assert market.stats.connects == 1 and market.stats.stale == 0
    assert not probe.statuses(StatusKind.FEED_STALE)
    assert len(probe.of(BookUpdate, token)) > books
    assert market_peers(simulator) == [{token}]
    book = live.decoder.book(token)
    assert book is not None and book.valid
