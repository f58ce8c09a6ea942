"""The daemon's Polymarket path against the local simulator, over real loopback sockets: both
channels, dynamic subscriptions, books kept equal to the venue's, an order's whole life (validate
-> sign -> REST -> accepted -> user-channel fills -> state), typed refusals, a trade that fails
on chain, recovery from each injected fault with nothing lost, and a restart reconciled from the
order journal against the venue."""

from __future__ import annotations

import io
import itertools
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
import trio

from tests.support.live_support import Probe, until
from tests.support.polymarket_live import API, V, cache, serve_sim, start, venue_book, yes
from tests.support.sessions import venue_session
from tradingd.connectors.polymarket.codec import TradeSettlement, TradeStatus
from tradingd.connectors.polymarket.stream import PolymarketSession, UserConnection
from tradingd.engine import (
    BookUpdate,
    Fill,
    FillReversal,
    OrderRejected,
    OrderState,
    OrderUpdate,
    Status,
    StatusKind,
    Subscription,
    Ticker,
)
from tradingd.engine.logs.setup import configure_logging
from tradingd.engine.runtime.live import LiveEngine
from tradingd.engine.store.journal import OrderJournal
from tradingd.simulators.polymarket.simulator import DEMO_ACCOUNT, PolymarketSimulator

__all__ = ["cache"]  # the fixture (tests/support/polymarket_live), used by name


@pytest.fixture
async def sim(nursery: trio.Nursery) -> tuple[PolymarketSimulator, str]:
    return await serve_sim(nursery)


def session(engine: LiveEngine) -> PolymarketSession:
    return venue_session(engine, V, PolymarketSession)


def user_channel(engine: LiveEngine) -> UserConnection:
    """The session's user channel (it has one: the tests trade with credentials)."""
    user = session(engine).user
    assert user is not None
    return user


async def test_market_data_on_one_market_connection_and_books_equal_to_the_venues(
    sim: tuple[PolymarketSimulator, str], nursery: trio.Nursery, cache: Path
) -> None:
    simulator, base = sim
    token, other = yes(simulator, 0), simulator.feed.markets[2].no
    everything = Probe("all", [Subscription(V, token)])
    tops = Probe("top", [Subscription(V, other, {"ticker"})])
    engine = await start(nursery, base, everything, tops, cache=cache, ping_s=1.0)
    await until(lambda: len(everything.of(BookUpdate, token)) > 5 and bool(tops.of(Ticker, other)))
    books = everything.of(BookUpdate, token)
    assert books[0].snapshot  # every book starts from a snapshot
    for b in books:
        assert b.best_bid is not None and b.best_ask is not None and b.best_bid < b.best_ask
    assert {type(e) for e in tops.events} <= {Ticker, Status} and all(
        e.instrument in (other, "") for e in tops.events
    )
    # One market connection (both strategies' tokens) and one user connection.
    paths = sorted(p.path for p in simulator.sessions.values())
    assert paths == ["/ws/market", "/ws/user"]
    (market_peer,) = [p for p in simulator.sessions.values() if p.path == "/ws/market"]
    assert market_peer.assets == {token, other} and market_peer.custom
    # The tokens' definitions were learned before the strategies started (tick, size, exchange).
    inst = engine.registry.require(V, token)
    assert inst.tick_size == Decimal("0.01") and inst.min_size == 5
    # Books equal to the venue's, level for level, once the market pauses.
    simulator.prepare_burst(0)  # pause the market
    await trio.sleep(0.3)
    mine = session(engine).decoder.book(token)
    assert mine is not None and mine.valid
    assert (mine.bids, mine.asks) == venue_book(simulator, token)
    simulator.resume()
    # PING every second, answered PONG (§2.2 keepalive), and nothing reconnected.
    await until(lambda: session(engine).market.pongs >= 2, within=5)
    assert session(engine).market.stats.connects == 1 and user_channel(engine).stats.connects == 1
    # What the daemon's status file and watchdog read: both connections, added up.
    live = session(engine)
    assert live.connected and live.stats.connects == 2 and live.channels == {token, other, "user"}
    age = live.last_frame_age_s
    assert age is not None and 0 <= age < 2
    # The market catalog found the simulated markets on the simulator's Gamma.
    await until(lambda: len(engine.catalogs[V]) == len(simulator.feed.markets), within=5)


def market_subscribed(probe: Probe) -> list[Status]:
    return [s for s in probe.statuses(StatusKind.SUBSCRIBED) if s.data.get("channel") == "market"]


async def test_ready_waits_for_the_books_the_venue_answers_the_first_subscription_with(
    nursery: trio.Nursery, cache: Path
) -> None:
    # The venue acknowledges no subscription (§2.2): the books it answers with are the sign it
    # took it. This one sends them a second after the subscription (and nothing of the token
    # before them).
    simulator, base = await serve_sim(nursery, dump_delay_s=1.0)
    market = simulator.feed.markets[0]
    token = market.yes
    probe = Probe("p", [Subscription(V, token)])
    # The market is configured: its tokens are known from its definition, without a REST book.
    engine = await start(nursery, base, probe, cache=cache, wait=False, markets=[market.condition_id])
    live = session(engine)
    await until(lambda: any(p.subscribed for p in simulator.sessions.values() if p.path == "/ws/market"))
    subscribed_at = trio.current_time()
    await trio.sleep(0.4)
    assert live.decoder.book(token) is None  # no book yet, so:
    assert not live.market.ready.is_set() and not engine.ready.is_set()
    with trio.fail_after(5):
        await engine.ready.wait()
    assert trio.current_time() - subscribed_at >= 0.9  # the books came a second after
    book = live.decoder.book(token)
    assert book is not None and book.valid  # ready: market data is flowing
    assert book.market == simulator.tokens[token].market
    # The venue's own books, not REST ones, and no complaint.
    assert simulator.requests_for("GET /book") == 0 and simulator.requests_for("POST /books") == 0
    await until(lambda: bool(market_subscribed(probe)))
    (status,) = market_subscribed(probe)
    assert status.data["assets"] == 1 and "late_books" not in status.data


async def test_ready_does_not_wait_forever_for_books_that_do_not_come(
    nursery: trio.Nursery, cache: Path
) -> None:
    simulator, base = await serve_sim(nursery, dump_delay_s=30.0)  # never, for this test
    market = simulator.feed.markets[0]
    probe = Probe("p", [Subscription(V, market.yes), Subscription(V, market.no)])
    began = trio.current_time()
    engine = await start(
        nursery, base, probe, cache=cache, wait=False, markets=[market.condition_id], snapshot_timeout_s=0.5
    )
    with trio.fail_after(5):
        await engine.ready.wait()
    assert trio.current_time() - began >= 0.5
    # Ready anyway, naming the tokens the venue sent no book for; their books are fetched over
    # REST instead.
    await until(lambda: bool(market_subscribed(probe)))
    (status,) = market_subscribed(probe)
    assert status.data["late_books"] == sorted([market.yes, market.no])
    assert "2 without their initial book yet" in status.message
    live = session(engine)
    for token in (market.yes, market.no):
        await until(lambda: (b := live.decoder.book(token)) is not None and b.valid, within=5)  # noqa: B023
    assert simulator.requests_for("POST /books") == 1
    assert live.market.stats.connects == 1  # nothing crashed, nothing reconnected


async def test_subscriptions_follow_strategies_at_run_time(
    sim: tuple[PolymarketSimulator, str], nursery: trio.Nursery, cache: Path
) -> None:
    simulator, base = sim
    token, later = yes(simulator, 0), yes(simulator, 3)
    probe = Probe("p", [Subscription(V, token, {"ticker"})])
    await start(nursery, base, probe, cache=cache)
    (peer,) = [p for p in simulator.sessions.values() if p.path == "/ws/market"]
    assert peer.assets == {token}
    probe.ctx.subscribe([Subscription(V, later, {"book"})])
    # The new token's book and its subscription at the venue both come; in either order (the
    # book may come over REST before the subscribe frame reaches the venue).
    await until(lambda: bool(probe.of(BookUpdate, later)) and later in peer.assets)
    assert probe.of(BookUpdate, later)[0].snapshot
    probe.ctx.unsubscribe([Subscription(V, later, {"book"})])
    await until(lambda: later not in peer.assets)
    # A token the venue does not have is refused, and the strategy hears of it.
    probe.ctx.subscribe([Subscription(V, "12345678901234567890", {"ticker"})])
    await until(lambda: bool(probe.statuses(StatusKind.SUBSCRIPTION_REFUSED)))
    refused = probe.statuses(StatusKind.SUBSCRIPTION_REFUSED)[0]
    assert refused.instrument == "12345678901234567890" and "no order book" in refused.data["reason"]
    assert "12345678901234567890" not in peer.assets


async def test_tokens_beyond_the_per_connection_limit_are_refused_not_dropped(
    sim: tuple[PolymarketSimulator, str], nursery: trio.Nursery, cache: Path
) -> None:
    simulator, base = sim
    first, second = yes(simulator, 0), yes(simulator, 1)
    probe = Probe("p", [Subscription(V, first, {"ticker"}), Subscription(V, second, {"ticker"})])
    await start(nursery, base, probe, cache=cache, max_assets_per_connection=1)
    await until(lambda: bool(probe.statuses(StatusKind.SUBSCRIPTION_REFUSED)))
    (refused,) = probe.statuses(StatusKind.SUBSCRIPTION_REFUSED)
    assert "more than 1 assets" in refused.data["reason"]
    (peer,) = [p for p in simulator.sessions.values() if p.path == "/ws/market"]
    assert peer.assets == {first, second} - {refused.instrument} and len(peer.assets) == 1


async def test_the_order_heartbeat_is_a_dead_man_switch(nursery: trio.Nursery, cache: Path) -> None:
    simulator, base = await serve_sim(nursery, heartbeat_timeout_s=1.0)
    token = yes(simulator, 0)
    probe = Probe("p", [Subscription(V, token, {"ticker"})])
    async with trio.open_nursery() as daemon:
        engine = await start(daemon, base, probe, cache=cache, order_heartbeat_s=0.2)
        placed = await probe.ctx.buy(V, token, 10, price="0.05")
        # Heartbeats for longer than the venue's timeout: the order rests on.
        await until(lambda: session(engine).heartbeats_sent >= 8)
        assert simulator.orders[placed.order_id or ""].status == "LIVE"
        daemon.cancel_scope.cancel()  # the daemon dies: no more heartbeats
    await until(lambda: simulator.orders[placed.order_id or ""].status == "CANCELED", within=5)


async def test_an_order_from_validation_to_confirmed_fills(
    sim: tuple[PolymarketSimulator, str], nursery: trio.Nursery, cache: Path
) -> None:
    simulator, base = sim
    token = yes(simulator, 0)
    probe = Probe("p", [Subscription(V, token)])
    engine = await start(nursery, base, probe, cache=cache)
    await until(lambda: bool(probe.of(BookUpdate, token)))
    resting = await probe.ctx.buy(V, token, 10, price="0.05")
    assert resting.status is OrderState.OPEN and resting.order_id in simulator.orders
    cancelled = await probe.ctx.cancel_order(resting.client_order_id or "")
    assert (
        cancelled.status is OrderState.CANCELLED
        and simulator.orders[resting.order_id or ""].status == "CANCELED"
    )
    # A taker order: accepted, its fill from the user channel, then filled, in that order.
    ask = Decimal(repr(probe.of(BookUpdate, token)[-1].best_ask))
    filled = await probe.ctx.buy(V, token, 5, price=ask + Decimal("0.02"))
    assert filled.status is OrderState.FILLED and filled.filled_size == 5
    mine = probe.mine(filled.client_order_id)
    kinds = [type(e).__name__ if not isinstance(e, OrderUpdate) else e.status.value for e in mine]
    assert kinds.index("open") < kinds.index("Fill") < kinds.index("filled")
    assert probe.ctx.position(V, token) == 5
    (fill,) = [e for e in mine if isinstance(e, Fill)]
    assert fill.order_id == filled.order_id and fill.fee > 0  # crypto fees: the taker pays
    # The trade settles on chain: matched, mined, confirmed, each delivered to the strategy.
    await until(lambda: any(e.status is TradeStatus.CONFIRMED for e in probe.of(TradeSettlement)))
    assert [e.status for e in probe.of(TradeSettlement)] == [
        TradeStatus.MATCHED,
        TradeStatus.MINED,
        TradeStatus.CONFIRMED,
    ]
    assert engine.flow.tracker.stats.duplicate_fills == 0


async def test_a_taker_buy_then_an_exit_of_the_whole_position_leaves_nothing_anywhere(
    sim: tuple[PolymarketSimulator, str], nursery: trio.Nursery, cache: Path
) -> None:
    """Issue 13: under CLOB V2 the venue charges a taker's fee in pUSD on both sides and credits
    a taker buy every share it matched (connectors/polymarket/fees.py; the simulator charges by
    the venue's documents, not our fee code, and its trade records say `fee_rate_bps` "0" as the
    captured V2 fill's did). The engine holds what the venue credited (a hundredth more is
    refused, in the venue's words); an exit of that whole position is accepted; both end flat;
    and the engine booked the pUSD the venue moved: its fees are the venue's, and realized PnL
    - fees is the account's balance change."""
    simulator, base = sim
    token = yes(simulator, 0)  # a market with crypto fees
    probe = Probe("p", [Subscription(V, token)])
    await start(nursery, base, probe, cache=cache)
    await until(lambda: bool(probe.of(BookUpdate, token)))
    account = simulator.accounts[API.key]
    cash0 = account.balance
    ask = Decimal(repr(probe.of(BookUpdate, token)[-1].best_ask))
    bought = await probe.ctx.buy(V, token, 7, price=ask + Decimal("0.02"))
    assert bought.status is OrderState.FILLED and bought.filled_size == 7
    held = probe.ctx.positions().positions[(V, token)]
    assert held == account.positions[token] == 7  # every share matched, at both
    bid = Decimal(repr(probe.of(BookUpdate, token)[-1].best_bid))
    # One hundredth of a share more than the engine holds is more than the venue holds.
    with pytest.raises(OrderRejected) as info:
        await probe.ctx.sell(V, token, held + Decimal("0.01"), price=bid - Decimal("0.02"))
    assert (info.value.code, info.value.venue_message) == (
        400,
        "not enough balance / allowance: the balance is not enough -> "
        "balance: 7000000, order amount: 7010000",
    )
    sold = await probe.ctx.sell(V, token, held, price=bid - Decimal("0.02"))
    assert sold.status is OrderState.FILLED and sold.filled_size == held
    assert account.positions[token] == 0 and probe.ctx.position(V, token) == 0
    charged = sum((t.fee for t in account.trades), Decimal(0))
    assert charged > 0  # both legs took liquidity and paid
    view = probe.ctx.positions()  # float today, Decimal after the ledger's rewrite: compare as floats
    assert float(view.fees) == pytest.approx(float(charged), abs=1e-9)
    moved = float(account.balance - cash0)
    assert float(view.realized_pnl) - float(view.fees) == pytest.approx(moved, abs=1e-9)


async def test_a_trade_that_fails_on_chain_is_taken_back(
    sim: tuple[PolymarketSimulator, str], nursery: trio.Nursery, cache: Path
) -> None:
    simulator, base = sim
    token = yes(simulator, 0)
    probe = Probe("p", [Subscription(V, token)])
    await start(nursery, base, probe, cache=cache)
    await until(lambda: bool(probe.of(BookUpdate, token)))
    simulator.apply_faults({"fail_trades": 1})
    ask = Decimal(repr(probe.of(BookUpdate, token)[-1].best_ask))
    filled = await probe.ctx.buy(V, token, 5, price=ask + Decimal("0.02"))
    assert filled.status is OrderState.FILLED and probe.ctx.position(V, token) == 5
    await until(lambda: bool(probe.of(FillReversal)))
    (reversal,) = probe.of(FillReversal)
    (fill,) = probe.of(Fill)
    assert (reversal.trade_id, reversal.size, reversal.client_order_id) == (
        fill.trade_id,
        5,
        filled.client_order_id,
    )
    assert probe.ctx.position(V, token) == 0  # the fill that never happened is out of the position
    statuses = [e.status for e in probe.of(TradeSettlement)]
    assert statuses == [TradeStatus.MATCHED, TradeStatus.RETRYING, TradeStatus.FAILED]
    assert simulator.accounts[API.key].positions[token] == 0  # and the venue agrees


async def test_refusals_are_typed_and_nothing_is_resent(
    sim: tuple[PolymarketSimulator, str], nursery: trio.Nursery, cache: Path
) -> None:
    simulator, base = sim
    token = yes(simulator, 0)
    probe = Probe("p", [Subscription(V, token, {"ticker"})])
    engine = await start(nursery, base, probe, cache=cache)
    simulator.apply_faults({"reject": {"count": 1}})
    with pytest.raises(OrderRejected) as info:
        await probe.ctx.buy(V, token, 10, price="0.05")
    assert info.value.code == "INVALID_ORDER_NOT_ENOUGH_BALANCE"
    with pytest.raises(OrderRejected, match="tick size"):  # ours, before signing
        await probe.ctx.buy(V, token, 10, price="0.055")
    placed = await probe.ctx.buy(V, token, 10, price="0.05")
    with pytest.raises(OrderRejected, match="no order amendment"):
        await probe.ctx.edit_order(placed.client_order_id or "", price="0.04")
    assert simulator.requests_for("POST /order") == 2
    simulator.apply_faults({"rate_limit": 1})
    with pytest.raises(OrderRejected) as info:
        await probe.ctx.buy(V, token, 10, price="0.05")
    assert info.value.code == 429
    again = await probe.ctx.buy(V, token, 10, price="0.05")
    assert again.status is OrderState.OPEN
    assert [o.state for o in engine.flow.tracker.orders()].count(
        OrderState.REJECTED
    ) == 2  # the tick: never tracked


async def test_a_dropped_connection_loses_nothing(
    sim: tuple[PolymarketSimulator, str], nursery: trio.Nursery, cache: Path
) -> None:
    simulator, base = sim
    token = yes(simulator, 0)
    probe = Probe("p", [Subscription(V, token)])
    engine = await start(nursery, base, probe, cache=cache, reconnect_base_s=1.0)
    await until(lambda: len(probe.of(BookUpdate, token)) > 2)
    resting = await probe.ctx.buy(V, token, 10, price="0.05")
    other = await probe.ctx.buy(V, token, 10, price="0.04")
    books_before = len(probe.of(BookUpdate, token))
    simulator.drop_all()
    await until(lambda: len(probe.statuses(StatusKind.DISCONNECTED)) >= 2)
    await until(lambda: not simulator.sessions)
    # While we are away, the first order fills (a seller hits it): the user channel cannot say so.
    sim_order = simulator.orders[resting.order_id or ""]
    simulator.trade(token, "sell", "0.05", "50")  # another participant's sale, through our bid
    assert sim_order.status == "MATCHED"
    live = session(engine)
    await until(lambda: live.market.stats.connects == 2 and user_channel(engine).stats.connects == 2)
    # The trade reported while we were away is recovered (by the user connection, and by the
    # engine's reconciliation), once; the order is filled.
    await until(lambda: probe.ctx.position(V, token) == 10 and user_channel(engine).recovered_trades >= 1)
    order = engine.flow.tracker.get(resting.client_order_id or "")
    assert order is not None and order.state is OrderState.FILLED and order.fills_size == 10
    # (The engine's reconciliation reads the trades again: a fill it knows is not booked twice.)
    assert len([e for e in probe.of(Fill) if e.client_order_id == resting.client_order_id]) == 1
    # The books start again from fresh snapshots; the other order is still ours and cancellable.
    await until(lambda: bool(probe.statuses(StatusKind.BOOK_RESYNC)))
    await until(lambda: len(probe.of(BookUpdate, token)) > books_before + 2)
    assert probe.of(BookUpdate, token)[books_before].snapshot
    await until(lambda: engine.reconciliations >= 2)
    still = engine.flow.tracker.get(other.client_order_id or "")
    assert still is not None and still.state is OrderState.OPEN
    done = await probe.ctx.cancel_order(other.client_order_id or "")
    assert done.status is OrderState.CANCELLED


async def test_a_restart_reconciles_orders_and_fills_with_the_venue(
    sim: tuple[PolymarketSimulator, str], nursery: trio.Nursery, cache: Path, tmp_path: Path
) -> None:
    simulator, base = sim
    token = yes(simulator, 0)
    path = tmp_path / "journal.sqlite"
    journal = OrderJournal(path)
    first = Probe("p", [Subscription(V, token)])
    async with trio.open_nursery() as daemon:
        await start(daemon, base, first, cache=cache, journal=journal)
        await until(lambda: bool(first.of(BookUpdate, token)))
        hit = await first.ctx.buy(V, token, 10, price="0.05")
        gone = await first.ctx.buy(V, token, 10, price="0.04")
        kept = await first.ctx.buy(V, token, 10, price="0.03")
        # A taker order that fills now; its trade will fail on chain after the daemon is gone.
        simulator.apply_faults({"fail_trades": 1})
        ask = Decimal(repr(first.of(BookUpdate, token)[-1].best_ask))
        voided = await first.ctx.buy(V, token, 5, price=ask + Decimal("0.02"))
        assert voided.status is OrderState.FILLED and first.ctx.position(V, token) == 5
        daemon.cancel_scope.cancel()  # the daemon dies: no orderly stop, nothing cancelled
    journal.close()
    # While it is down, one order fills (a seller hits it), another is cancelled elsewhere, and
    # the taker trade fails on chain.
    simulator.trade(token, "sell", "0.05", "10")  # another participant's sale, through our bid
    account = simulator.accounts[API.key]
    assert simulator._cancel_ids(account, [gone.order_id or ""])["canceled"] == [gone.order_id]
    assert simulator.orders[hit.order_id or ""].status == "MATCHED"
    await until(lambda: "FAILED" in [t.status for t in simulator.trades.values()])
    # The restart: the journal's orders and positions, then the venue's word on each order.
    second = Probe("p", [Subscription(V, token, {"ticker"})])
    engine = await start(nursery, base, second, cache=cache, journal=OrderJournal(path))
    tracker = engine.flow.tracker

    def state(placed: OrderUpdate) -> OrderState | None:
        order = tracker.get(placed.client_order_id or "")
        return None if order is None else order.state

    await until(
        lambda: (
            (state(hit), state(gone), state(kept))
            == (OrderState.FILLED, OrderState.CANCELLED, OrderState.OPEN)
        )
    )
    filled = tracker.get(hit.client_order_id or "")
    assert filled is not None and filled.fills_size == 10
    # The fill whose trade failed is out of the order and the position; the one made while we
    # were away is in, once.
    await until(lambda: bool(second.of(FillReversal)))
    (reversal,) = second.of(FillReversal)
    assert reversal.client_order_id == voided.client_order_id and reversal.size == 5
    assert second.ctx.position(V, token) == 10 == account.positions[token]
    assert [e.client_order_id for e in second.of(Fill)] == [hit.client_order_id]
    assert simulator.requests_for("POST /order") == 4  # nothing was sent again
    done = await second.ctx.cancel_order(kept.client_order_id or "")
    assert done.status is OrderState.CANCELLED


async def test_a_gap_resnapshots_that_book_only(
    sim: tuple[PolymarketSimulator, str], nursery: trio.Nursery, cache: Path
) -> None:
    simulator, base = sim
    token = yes(simulator, 0)
    probe = Probe("p", [Subscription(V, token, {"book"})])
    engine = await start(nursery, base, probe, cache=cache)
    await until(lambda: len(probe.of(BookUpdate, token)) > 2)
    fetched = simulator.requests_for("GET /book")  # the token's definition, at subscription
    simulator.apply_faults({"gap": token})
    await until(lambda: bool(probe.statuses(StatusKind.BOOK_GAP)), within=15)
    gap = probe.statuses(StatusKind.BOOK_GAP)[0]
    assert gap.instrument == token and gap.data["reason"] == "best_bid_ask_mismatch"
    await until(lambda: bool(probe.statuses(StatusKind.BOOK_RESYNC)))
    live = session(engine)
    assert live.market.stats.connects == 1  # no reconnect: that book was fetched again
    assert live.market.stats.resubscribed_books == 1 and simulator.requests_for("GET /book") == fetched + 1
    book = live.decoder.book(token)
    assert book is not None and book.valid


async def test_a_stalled_feed_is_detected_and_the_session_replaced(
    sim: tuple[PolymarketSimulator, str], nursery: trio.Nursery, cache: Path
) -> None:
    simulator, base = sim
    token = yes(simulator, 0)
    probe = Probe("p", [Subscription(V, token, {"book"})])
    engine = await start(nursery, base, probe, cache=cache, stale_after_s=1.0, reconnect_base_s=0.05)
    simulator.apply_faults({"stall_s": 2.5})
    await until(lambda: bool(probe.statuses(StatusKind.FEED_STALE)), within=5)
    assert probe.statuses(StatusKind.FEED_STALE)[0].data["silent_s"] >= 1.0
    await until(lambda: session(engine).market.stats.connects >= 2, within=10)
    count = len(probe.of(BookUpdate, token))
    await until(lambda: len(probe.of(BookUpdate, token)) > count + 2)  # data flows again


async def test_garbage_frames_are_counted_and_survived(
    sim: tuple[PolymarketSimulator, str], nursery: trio.Nursery, cache: Path
) -> None:
    simulator, base = sim
    token = yes(simulator, 0)
    probe = Probe("p", [Subscription(V, token, {"book"})])
    engine = await start(nursery, base, probe, cache=cache)
    simulator.apply_faults({"garbage": 2})
    live = session(engine)
    await until(lambda: live.market.stats.malformed >= 2 and user_channel(engine).stats.malformed >= 2)
    count = len(probe.of(BookUpdate, token))
    await until(lambda: len(probe.of(BookUpdate, token)) > count + 2)
    assert live.market.stats.connects == 1 and user_channel(engine).stats.connects == 1


async def test_tick_size_change_and_resolution_live(nursery: trio.Nursery, cache: Path) -> None:
    # Seed 4's Fed market crosses 0.96 about 1,660 steps in; the hourly market resolves at 2,160.
    simulator, base = await serve_sim(nursery, seed=4, hours=0.2)
    for _ in range(1600):
        simulator.step()  # fast-forward, nobody connected yet
    # Held there until the burst: stepping on in real time, the Fed market crossed 0.96 (60
    # steps, 3 s) before a slowly starting engine (a loaded machine) had checked the old tick.
    simulator.prepare_burst(0)
    fed, hourly = yes(simulator, 1), yes(simulator, 6)
    probe = Probe("p", [Subscription(V, fed), Subscription(V, hourly)])
    engine = await start(nursery, base, probe, cache=cache)
    await until(lambda: bool(probe.of(BookUpdate, hourly)))
    assert engine.registry.require(V, fed).tick_size == Decimal("0.01")
    with pytest.raises(OrderRejected, match="tick size"):
        await probe.ctx.buy(V, fed, 10, price="0.905")
    ask = Decimal(repr(probe.of(BookUpdate, hourly)[-1].best_ask))
    await probe.ctx.buy(V, hourly, 5, price=min(ask + Decimal("0.02"), Decimal("0.99")))
    assert probe.ctx.position(V, hourly) == 5
    simulator.prepare_burst(600)
    await simulator.burst()
    simulator.resume()
    await until(
        lambda: (
            bool(probe.statuses(StatusKind.TICK_SIZE_CHANGE))
            and bool(probe.statuses(StatusKind.MARKET_RESOLVED))
        )
    )
    change = next(s for s in probe.statuses(StatusKind.TICK_SIZE_CHANGE) if s.instrument == fed)
    assert (change.data["old_tick_size"], change.data["new_tick_size"]) == (0.01, 0.001)
    assert engine.registry.require(V, fed).tick_size == Decimal("0.001")
    near = await probe.ctx.buy(V, fed, 10, price="0.905")  # a price on the new, finer tick
    assert near.status is OrderState.OPEN
    # The hourly market resolved: the position is settled at its payout, and the venue agrees.
    resolved = next(s for s in probe.statuses(StatusKind.MARKET_RESOLVED) if s.instrument == hourly)
    assert probe.ctx.position(V, hourly) == 0
    assert hourly not in simulator.accounts[API.key].positions
    assert resolved.data["payout"] in (0.0, 1.0)


async def test_paper_mode_needs_no_credentials_and_sends_nothing(
    sim: tuple[PolymarketSimulator, str], nursery: trio.Nursery, cache: Path
) -> None:
    simulator, base = sim
    token = yes(simulator, 0)
    probe = Probe("p", [Subscription(V, token)])
    engine = await start(nursery, base, probe, mode="paper", environ={}, cache=cache)
    assert session(engine).user is None
    assert [p.path for p in simulator.sessions.values()] == ["/ws/market"]
    await until(lambda: len(probe.of(BookUpdate, token)) > 1)
    filled = await probe.ctx.buy(V, token, 10, price="0.99")
    assert filled.status is OrderState.FILLED and (filled.order_id or "").startswith("SIM-")
    assert probe.ctx.position(V, token) == 10
    assert simulator.orders == {} and simulator.requests_for("POST /order") == 0


async def test_secrets_never_reach_the_logs(
    sim: tuple[PolymarketSimulator, str], nursery: trio.Nursery, cache: Path
) -> None:
    simulator, base = sim
    token = yes(simulator, 0)
    out = io.StringIO()
    out.buffer = io.BytesIO()  # type: ignore[misc]
    out.isatty = lambda: False  # type: ignore[method-assign]
    configure_logging("debug", "json", out)
    try:
        probe = Probe("p", [Subscription(V, token, {"ticker"})])
        engine = await start(nursery, base, probe, cache=cache, reconnect_base_s=0.05)
        await probe.ctx.buy(V, token, 10, price="0.05")
        with pytest.raises(OrderRejected):
            await probe.ctx.buy(V, token, 10, price="0.055")
        simulator.drop_all()
        await until(lambda: user_channel(engine).stats.connects == 2)
        session(engine).log.info("debug.dump", credentials=repr(session(engine).credentials))
        logged = out.buffer.getvalue() + out.getvalue().encode()
    finally:
        structlog.reset_defaults()
    assert b"order.sent" in logged and b"session.disconnected" in logged  # the log did capture
    for secret in (
        DEMO_ACCOUNT.private_key,
        DEMO_ACCOUNT.private_key.removeprefix("0x"),
        API.secret,
        API.passphrase,
    ):
        assert secret.encode() not in logged and secret.upper().encode() not in logged


# -- issue 12: broken books from the venue, and our maker orders by address ----------------------


def _market_peer(simulator: PolymarketSimulator) -> Any:
    (peer,) = [p for p in simulator.sessions.values() if p.path == "/ws/market"]
    return peer


def _crossed_book(token: str, market: str) -> dict[str, Any]:
    return {
        "event_type": "book",
        "asset_id": token,
        "market": market,
        "bids": [{"price": "0.6", "size": "10"}],
        "asks": [{"price": "0.4", "size": "10"}],
        "timestamp": "1700000000000",
    }


def _gaps(probe: Probe, reason: str) -> list[Status]:
    return [s for s in probe.statuses(StatusKind.BOOK_GAP) if s.data.get("reason") == reason]


async def test_a_crossed_book_from_the_venue_is_fetched_again_never_used(
    sim: tuple[PolymarketSimulator, str], nursery: trio.Nursery, cache: Path
) -> None:
    simulator, base = sim
    token = yes(simulator, 0)
    probe = Probe("p", [Subscription(V, token, {"book"})])
    engine = await start(nursery, base, probe, cache=cache)
    live = session(engine)
    await until(lambda: len(probe.of(BookUpdate, token)) > 2)
    fetched = simulator.requests_for("GET /book")
    book = live.decoder.book(token)
    assert book is not None
    simulator.send(_market_peer(simulator), orjson.dumps(_crossed_book(token, book.market)))
    await until(lambda: bool(_gaps(probe, "crossed")))
    await until(lambda: bool(probe.statuses(StatusKind.BOOK_RESYNC)))
    # That book alone was fetched again (GET /book), without reconnecting.
    assert simulator.requests_for("GET /book") == fetched + 1 and live.market.stats.resubscribed_books == 1
    assert live.market.stats.connects == 1
    book = live.decoder.book(token)
    assert book is not None and book.valid
    bb, _, ba, _ = book.top()
    assert bb is not None and ba is not None and bb < ba
    # No strategy ever saw the crossed levels.
    updates = probe.of(BookUpdate, token)
    assert not [
        u for u in updates if u.best_bid is not None and u.best_ask is not None and u.best_bid >= u.best_ask
    ]


async def test_a_broken_rest_snapshot_is_not_fetched_again_in_a_loop(
    sim: tuple[PolymarketSimulator, str], nursery: trio.Nursery, cache: Path
) -> None:
    simulator, base = sim
    token = yes(simulator, 0)
    probe = Probe("p", [Subscription(V, token, {"book"})])
    engine = await start(nursery, base, probe, cache=cache, snapshot_timeout_s=0.5)
    live = session(engine)
    await until(lambda: len(probe.of(BookUpdate, token)) > 2)
    book = live.decoder.book(token)
    assert book is not None
    crossed = orjson.dumps(_crossed_book(token, book.market))
    rest, call = live.rest, live.rest.call
    asked: list[float] = []

    async def crossed_books(method: str, path: str, **kw: Any) -> bytes:
        if (method, path) == ("GET", "/book"):
            asked.append(trio.current_time())
            return crossed  # the venue's REST book is crossed too
        return await call(method, path, **kw)

    rest.call = crossed_books  # type: ignore[method-assign]
    simulator.prepare_burst(0)  # the market pauses: no trade's `book` event mends the book meanwhile
    simulator.send(_market_peer(simulator), crossed)
    await until(lambda: bool(asked))
    await trio.sleep(1.2)
    # Asked again every snapshot_timeout_s (0.5 s), not as fast as the answers come.
    assert 2 <= len(asked) <= 4, asked
    assert min(b - a for a, b in itertools.pairwise(asked)) >= 0.45
    rest.call = call  # type: ignore[method-assign]
    simulator.resume()
    await until(lambda: bool(probe.statuses(StatusKind.BOOK_RESYNC)), within=5)
    book = live.decoder.book(token)
    assert book is not None and book.valid and live.market.stats.connects == 1


async def test_changes_for_a_token_without_a_book_are_reported_and_its_book_fetched(
    sim: tuple[PolymarketSimulator, str], nursery: trio.Nursery, cache: Path
) -> None:
    simulator, base = sim
    token = yes(simulator, 0)
    probe = Probe("p", [Subscription(V, token, {"book"})])
    engine = await start(nursery, base, probe, cache=cache, snapshot_timeout_s=0.5)
    live = session(engine)
    await until(lambda: len(probe.of(BookUpdate, token)) > 2)
    await trio.sleep(0.6)  # past the subscription's own check for missing books
    simulator.prepare_burst(0)  # the market pauses: only the change sent below comes
    fetched = simulator.requests_for("GET /book")
    book = live.decoder.book(token)
    assert book is not None
    live.decoder._books.pop(token)  # as if its snapshot had never come
    change = {
        "event_type": "price_change",
        "market": book.market,
        "timestamp": "1700000000000",
        "price_changes": [{"asset_id": token, "price": "0.01", "size": "5", "side": "BUY"}],
    }
    simulator.send(_market_peer(simulator), orjson.dumps(change))
    await until(lambda: bool(_gaps(probe, "no_book")))
    await until(lambda: bool(probe.statuses(StatusKind.BOOK_RESYNC)))
    assert len(_gaps(probe, "no_book")) == 1 and live.decoder.bookless_changes >= 1
    assert simulator.requests_for("GET /book") == fetched + 1 and live.market.stats.connects == 1
    book = live.decoder.book(token)
    assert book is not None and book.valid
    simulator.resume()


async def test_the_session_knows_our_maker_orders_by_our_address(
    sim: tuple[PolymarketSimulator, str], nursery: trio.Nursery, cache: Path
) -> None:
    simulator, base = sim
    engine = await start(
        nursery, base, Probe("p", [Subscription(V, yes(simulator, 0), {"ticker"})]), cache=cache
    )
    live = session(engine)
    assert live.decoder.api_key == API.key
    assert live.signer is not None and live.signer.address.lower() in live.decoder.addresses
    assert live.execution().decoder is live.decoder
