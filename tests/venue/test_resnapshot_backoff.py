"""Issue 12, follow-up: a book the venue keeps sending broken (crossed) is not resnapshotted in a
loop. The shared mechanism (engine.venue.session: `dispatch`, the subscription follower) spaces out a
book's resnapshots, 1 s doubling to 60 s, and starts again once a snapshot of it has held."""

from __future__ import annotations

import functools
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from tests.support.live_support import Probe, paper_deribit, until
from tradingd.engine import BookUpdate, MarketEvent, Status, StatusKind, Subscription
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.runtime.router import MarketRouter
from tradingd.engine.venue.session import VenueSession
from tradingd.simulators.deribit.simulator import DeribitSimulator, serve

BOOK = "BTC-PERPETUAL"


def crossed(instrument: str = BOOK, venue: str = "stub") -> Status:
    return Status(
        venue=venue,
        instrument=instrument,
        ts_exchange=None,
        ts_local=0,
        status=StatusKind.BOOK_GAP,
        message=f"book {instrument}: crossed",
        data={"reason": "crossed"},
    )


def snapshot(instrument: str = BOOK) -> BookUpdate:
    return BookUpdate(
        venue="stub",
        instrument=instrument,
        ts_exchange=1,
        ts_local=1,
        bids=((100.0, 1.0),),
        asks=((101.0, 1.0),),
        snapshot=True,
    )


class _Sink:
    async def market(self, events: list[MarketEvent]) -> None:
        await trio.sleep(0.01)  # the way to the router takes a little time, as it does

    def private(self, events: list[Any]) -> None:
        return None


class _Venue(VenueSession):
    """The shared mechanism alone: each resnapshot is answered by the venue with `answer`."""

    venue = "stub"

    def __init__(self) -> None:
        super().__init__(decoder=None, registry=InstrumentRegistry(), router=MarketRouter(), sink=_Sink())  # type: ignore[arg-type]
        self.resnapshots: list[float] = []
        self.answer: list[MarketEvent] = [crossed()]  # a venue whose book stays crossed

    async def _sync_subscriptions(self) -> None:
        if not self._gaps:
            return
        self._gaps.clear()
        self.resnapshots.append(trio.current_time())
        await self.dispatch(self.answer)  # the venue's snapshot, straight back


async def test_a_book_that_stays_crossed_is_resnapshotted_with_a_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    venue = _Venue()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(venue._follow_subscriptions)
        start = trio.current_time()
        await venue.dispatch([crossed()])
        await trio.sleep(20)
        nursery.cancel_scope.cancel()
    waits = [round(t - start, 1) for t in venue.resnapshots]
    # At once, then 1 s after it, then 2, 4, 8 s: five in 20 s, not one per round trip (2,000).
    assert waits == [0.0, 1.0, 3.0, 7.0, 15.0], waits
    assert venue.stats.deferred_resnapshots == 5  # the fifth's answer waits for 31 s


async def test_the_backoff_stops_at_a_minute(autojump_clock: trio.testing.MockClock) -> None:
    venue = _Venue()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(venue._follow_subscriptions)
        await venue.dispatch([crossed()])
        await trio.sleep(600)
        nursery.cancel_scope.cancel()
    gaps = [round(b - a, 1) for a, b in zip(venue.resnapshots, venue.resnapshots[1:], strict=False)]
    assert gaps[:7] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0] and set(gaps[6:]) == {60.0}, gaps


async def test_a_snapshot_that_held_starts_the_backoff_again(autojump_clock: trio.testing.MockClock) -> None:
    venue = _Venue()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(venue._follow_subscriptions)
        await venue.dispatch([crossed()])
        await trio.sleep(20)  # resnapshots at 0, 1, 3, 7, 15: the next would wait 16 s
        venue.answer = [snapshot()]  # the venue mends the book
        await trio.sleep(16)
        assert len(venue.resnapshots) == 6
        await trio.sleep(30)  # the good snapshot holds for longer than the wait
        mended = trio.current_time()
        await venue.dispatch([crossed()])  # a new problem: resnapshotted at once
        await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    assert len(venue.resnapshots) == 7 and venue.resnapshots[-1] - mended < 0.1


async def test_other_books_are_not_held_back_by_a_broken_one(autojump_clock: trio.testing.MockClock) -> None:
    venue = _Venue()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(venue._follow_subscriptions)
        await venue.dispatch([crossed()])
        await trio.sleep(1.5)
        venue.answer = [snapshot("ETH-PERPETUAL")]
        before = len(venue.resnapshots)
        at = trio.current_time()
        await venue.dispatch([crossed("ETH-PERPETUAL")])
        await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    assert len(venue.resnapshots) == before + 1 and venue.resnapshots[-1] - at < 0.1


async def test_a_venue_repeating_a_frame_the_decoder_trips_on_gets_the_same_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from tests.support.helpers import OPTION, PERP
    from tradingd.engine.venue.plugins import DecoderFault

    venue = _Venue()
    venue.registry.add(attrs.evolve(PERP, venue="stub"))
    venue.registry.add(attrs.evolve(OPTION, venue="stub"))
    fault = DecoderFault(
        "decoder fault OverflowError",
        venue="stub",
        error_type="OverflowError",
        books=(PERP.symbol, OPTION.symbol),
    )
    resnapshots: list[tuple[float, list[str]]] = []

    async def answer_with_a_fault() -> None:
        if venue._gaps:
            resnapshots.append((trio.current_time(), sorted(venue._gaps)))
            venue._gaps.clear()
            await trio.sleep(0.01)
            venue.malformed(fault)  # every book's snapshot comes back with the same frame
            await venue._report_fault_gaps()  # what the receive loop does after the frame

    venue._sync_subscriptions = answer_with_a_fault  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(venue._follow_subscriptions)
        start = trio.current_time()
        venue.malformed(fault)
        await venue._report_fault_gaps()
        await trio.sleep(20)
        nursery.cancel_scope.cancel()
    assert [round(t - start, 1) for t, _ in resnapshots] == [0.0, 1.0, 3.0, 7.0, 15.0]
    assert all(books == sorted([PERP.symbol, OPTION.symbol]) for _, books in resnapshots)


# -------------------------------------------------------- against the Deribit simulator


@pytest.fixture
async def sim(nursery: trio.Nursery) -> tuple[DeribitSimulator, str]:
    simulator = DeribitSimulator(seed=5, step_s=0.05, heartbeat_scale=0.1)
    binds = await nursery.start(functools.partial(serve, simulator))
    return simulator, binds[0].removeprefix("http://")


async def test_a_venue_that_keeps_its_book_crossed_is_not_resubscribed_in_a_loop(
    sim: tuple[DeribitSimulator, str], nursery: trio.Nursery
) -> None:
    _, base = sim
    probe = Probe("p", [Subscription("deribit", BOOK, {"book"})])
    _, live = await paper_deribit(nursery, base, probe)
    await until(lambda: probe.of(BookUpdate, BOOK))
    decode = live.decoder.decode
    channel = f"book.{BOOK}."
    broken = False

    def stays_crossed(frame: Any, now: int) -> list[MarketEvent]:
        # From now on the venue's book is crossed: every snapshot of it, and the first change
        # of a book thought whole, is a broken book (what the codec reports, codec.py
        # `_crossed`); the changes after that are ignored until a snapshot.
        nonlocal broken
        text = frame if isinstance(frame, str) else bytes(frame).decode()
        if channel not in text:
            return decode(frame, now)  # type: ignore[no-any-return]
        if '"snapshot"' in text or not broken:
            broken = True
            return [crossed(venue="deribit")]
        return []

    live.decoder.decode = stays_crossed  # the session's next frame meets it
    before = live.stats.resubscribed_books
    await until(lambda: live.stats.resubscribed_books > before, what="the first resnapshot")
    began = trio.current_time()
    await trio.sleep(3.5)
    resubscribes = live.stats.resubscribed_books - before
    # At once, then 1 s and 3 s after it (the next would be at 7 s): about one per second at
    # most, where a resubscription per round trip made dozens.
    assert 2 <= resubscribes <= 4, (resubscribes, trio.current_time() - began)
    assert live.stats.connects == 1 and live.connected
