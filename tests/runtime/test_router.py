"""MarketRouter and Mailbox: routing, dynamic subscriptions, and a slow strategy that must not
stall the others."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from tests.support.helpers import book, ticker, trade
from tradingd.engine import (
    BookUpdate,
    DataKind,
    MarketEvent,
    OrderBook,
    OrderState,
    OrderUpdate,
    Status,
    StatusKind,
    Strategy,
    Subscription,
    Ticker,
    Trade,
)
from tradingd.engine.runtime import MarketRouter
from tradingd.engine.runtime.mailbox import Mailbox, merge_book_updates
from tradingd.engine.runtime.router import run_strategy


class Recorder(Strategy):
    def __init__(self, name: str, subs: Iterable[Subscription] = (), delay: float = 0.0) -> None:
        super().__init__(name)
        self.subs = list(subs)
        self.delay = delay
        self.seen: list[MarketEvent] = []

    def required_subscriptions(self) -> list[Subscription]:
        return self.subs

    async def on_event(self, event: MarketEvent) -> None:
        self.seen.append(event)
        if self.delay:
            await trio.sleep(self.delay)


def make(router: MarketRouter, name: str, *subs: Subscription, delay: float = 0.0) -> Recorder:  # type: ignore[type-arg]
    strat = Recorder(name, subs, delay)
    router.add(router.new_slot(strat))
    return strat


def test_routes_by_instrument_and_kind_only() -> None:
    router: MarketRouter = MarketRouter()  # type: ignore[type-arg]
    a = make(router, "a", Subscription("deribit", "X", {"ticker"}))
    b = make(router, "b", Subscription("deribit", "X"), Subscription("deribit", "Y", {"trades"}))
    assert router.dispatch(ticker("X")) == 2
    assert router.dispatch(trade(1.0, 1.0, "buy", instrument="X")) == 1  # a asked for tickers only
    assert router.dispatch(ticker("Y")) == 0
    assert router.dispatch(Ticker(venue="derive", instrument="X", ts_exchange=None, ts_local=1)) == 0
    assert router.unrouted == 2
    assert [type(e) for e in router.slot("a").mailbox.drain()] == [Ticker]  # type: ignore[union-attr]
    assert [type(e) for e in router.slot("b").mailbox.drain()] == [Ticker, Trade]  # type: ignore[union-attr]
    del a, b


def test_status_and_private_events_find_their_strategies() -> None:
    router: MarketRouter = MarketRouter()  # type: ignore[type-arg]
    make(router, "a", Subscription("deribit", "X", {"ticker"}))
    make(router, "b", Subscription("deribit", "Y", {"book"}))
    make(router, "c", Subscription("derive", "Z"))
    gap = Status(venue="deribit", instrument="Y", ts_exchange=None, ts_local=1, status=StatusKind.BOOK_GAP)
    down = Status(
        venue="deribit", instrument="", ts_exchange=None, ts_local=1, status=StatusKind.DISCONNECTED
    )
    mine = OrderUpdate(
        venue="derive", instrument="Z", ts_exchange=None, ts_local=1, strategy="a", status=OrderState.OPEN
    )
    assert [s.name for s in router.route(gap)] == ["b"]
    assert [s.name for s in router.route(down)] == ["a", "b"]
    assert [s.name for s in router.route(mine)] == ["a"]  # by owner, not by subscription


async def test_merged_subscriptions_follow_strategies_at_run_time() -> None:
    router: MarketRouter = MarketRouter()  # type: ignore[type-arg]
    make(router, "a", Subscription("deribit", "X", {"ticker", "book"}))
    make(router, "b", Subscription("deribit", "X", {"ticker"}))
    assert router.merged("deribit") == {("X", DataKind.TICKER), ("X", DataKind.BOOK)}
    v0 = router.version("deribit")
    seen: list[frozenset[tuple[str, DataKind]]] = []

    async def connection() -> None:  # what a venue connection does with the merged set
        version = v0
        for _ in range(2):
            version = await router.wait_changed("deribit", version)
            seen.append(router.merged("deribit"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection)
        await trio.testing.wait_all_tasks_blocked()
        router.unsubscribe("a", [Subscription("deribit", "X", {"ticker"})])  # b still needs it
        assert router.version("deribit") == v0  # the merged set did not change
        router.subscribe("b", [Subscription("deribit", "Y", {"trades"})])
        await trio.testing.wait_all_tasks_blocked()
        router.remove("a")
    assert seen == [
        {("X", DataKind.TICKER), ("X", DataKind.BOOK), ("Y", DataKind.TRADES)},
        {("X", DataKind.TICKER), ("Y", DataKind.TRADES)},
    ]
    assert router.venues() == ["deribit"]


async def test_a_slow_strategy_does_not_stall_the_others(autojump_clock: trio.testing.MockClock) -> None:
    router: MarketRouter = MarketRouter(mailbox_capacity=32)  # type: ignore[type-arg]
    sub = Subscription("deribit", "X")
    fast = make(router, "fast", sub)
    slow = make(router, "slow", sub, delay=1.0)  # one second per event
    send, receive = trio.open_memory_channel[list[MarketEvent]](0)
    events: list[MarketEvent] = []
    for i in range(100):
        events.append(ticker("X", ts=i, bid=float(i)))
        events.append(trade(1.0, 1.0, "buy", instrument="X", ts=i))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(router.run, receive)
        for slot in router.slots():
            nursery.start_soon(run_strategy, slot)
        t0 = trio.current_time()
        async with send:
            for i in range(0, len(events), 2):  # one frame: a ticker and a trade
                await send.send(events[i : i + 2])
                await trio.sleep(0.001)  # frames arrive over time, a millisecond apart
        # The router took every frame without waiting for the slow strategy (1 s per event)...
        assert trio.current_time() - t0 < 0.11  # 100 frames, 1 ms apart
        await trio.testing.wait_all_tasks_blocked()
        # ...and the fast one has seen everything already.
        assert len(fast.seen) == 200
        await trio.sleep(60)
        for slot in router.slots():
            slot.mailbox.close()
    slow_slot = router.slot("slow")
    assert slow_slot is not None
    stats = slow_slot.mailbox.stats
    tickers = [e for e in slow.seen if isinstance(e, Ticker)]
    trades = [e for e in slow.seen if isinstance(e, Trade)]
    # Tickers were conflated: the slow strategy saw few, the newest last, and the rest were counted.
    assert tickers[-1].bid == 99.0
    assert len(tickers) + stats.conflated == 100
    assert stats.conflated > 90
    # Trades are kept in order up to the capacity, then dropped and counted.
    assert len(trades) + stats.dropped == 100
    assert stats.dropped > 0 and len(trades) >= 32
    fast_slot = router.slot("fast")
    assert fast_slot is not None and fast_slot.mailbox.stats.dropped == 0
    assert [t.ts_local for t in trades] == sorted(t.ts_local for t in trades)


def test_mailbox_never_drops_private_or_status_events() -> None:
    box = Mailbox(capacity=1)
    for i in range(50):
        box.put(OrderUpdate(venue="v", instrument="X", ts_exchange=None, ts_local=i, status=OrderState.OPEN))
        box.put(Status(venue="v", instrument="", ts_exchange=None, ts_local=i))
    assert len(box) == 100
    assert len(box.drain(1000)) == 100
    assert box.stats.dropped == 0


def test_mailbox_keeps_time_order_when_conflating() -> None:
    box = Mailbox()
    box.put(ticker("X", ts=1, bid=1.0))
    box.put(trade(1.0, 1.0, "sell", instrument="X", ts=2))
    box.put(ticker("X", ts=3, bid=2.0))
    out = box.drain()
    assert [e.ts_local for e in out] == [2, 3]  # the stale ticker is gone, the new one comes after the trade
    assert box.stats.conflated == 1 and len(box) == 0


levels = st.lists(st.tuples(st.integers(1, 30).map(float), st.sampled_from([0.0, 1.0, 2.5, 7.0])), max_size=8)


@given(st.lists(st.tuples(st.booleans(), levels, levels), min_size=1, max_size=6))
def test_merged_book_updates_equal_applying_them_in_turn(msgs: list[tuple[bool, list, list]]) -> None:  # type: ignore[type-arg]
    def apply(b: OrderBook, u: BookUpdate) -> None:
        if u.snapshot:
            b.clear()
        for p, s in u.bids:
            b.set_bid(b.to_ticks(p), s)
        for p, s in u.asks:
            b.set_ask(b.to_ticks(p), s)

    updates = [
        book("X", snapshot=snap, bids=tuple(dict(bids).items()), asks=tuple(dict(asks).items()))
        for snap, bids, asks in msgs
    ]
    base = OrderBook(1.0)
    base.set_bid(5, 3.0)
    base.set_ask(9, 4.0)
    one_by_one = OrderBook(1.0)
    one_by_one.set_bid(5, 3.0)
    one_by_one.set_ask(9, 4.0)
    merged = updates[0]
    for u in updates[1:]:
        merged = merge_book_updates(merged, u)
    for u in updates:
        apply(one_by_one, u)
    apply(base, merged)
    assert base.bids == one_by_one.bids
    assert base.asks == one_by_one.asks


@pytest.mark.parametrize("capacity", [0, -1])
def test_mailbox_capacity_must_be_positive(capacity: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Mailbox(capacity)
