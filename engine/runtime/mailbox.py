"""A strategy's inbox: bounded, never blocking the router, and explicit about what it merges.

A trio memory channel either blocks the sender when full (one slow strategy would stall the
router and every other strategy) or drops blindly. The mailbox instead applies a policy per
event type, so a slow strategy sees fewer, fresher events and nothing that matters is lost:

- `Ticker`: conflated per (venue, instrument): a newer ticker replaces one still waiting.
- `BookUpdate`: merged per (venue, instrument): the levels of both messages are combined (the
  newer wins per price) and the top of book is the newer one's, so the strategy's view is exact.
- `Trade`: kept in order; beyond `capacity` waiting trades, new trades are dropped and counted.
- `Status`, `OrderUpdate`, `Fill`: never dropped, never merged (they are rare and must arrive).

A superseded event's slot is left as a tombstone and the new one is appended, so events still
come out in the order they happened. Every merge and drop is counted in `stats`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import attrs
import msgspec
import structlog
import trio

from ..model.events import BookUpdate, Level, MarketEvent, Ticker, Trade

__all__ = ["Mailbox", "MailboxStats", "log_drops", "merge_book_updates"]


@attrs.define
class MailboxStats:
    received: int = 0
    delivered: int = 0
    conflated: int = 0  # tickers replaced by a newer one before delivery
    merged: int = 0  # book updates folded into a newer one before delivery
    dropped: int = 0  # trades dropped because `capacity` trades were already waiting
    high_water: int = 0  # most events waiting at once


def _merge_levels(old: tuple[Level, ...], new: tuple[Level, ...], *, drop_zero: bool) -> tuple[Level, ...]:
    levels = dict(old)
    levels.update(new)
    if drop_zero:
        return tuple((p, s) for p, s in levels.items() if s > 0)
    return tuple(levels.items())


def merge_book_updates(old: BookUpdate, new: BookUpdate) -> BookUpdate:
    """One `BookUpdate` equivalent to applying `old` then `new`."""
    if new.snapshot:
        return new
    snapshot = old.snapshot
    return msgspec.structs.replace(
        new,
        snapshot=snapshot,
        bids=_merge_levels(old.bids, new.bids, drop_zero=snapshot),
        asks=_merge_levels(old.asks, new.asks, drop_zero=snapshot),
    )


def log_drops(
    strategy: str, log: structlog.typing.FilteringBoundLogger | None = None
) -> Callable[[MailboxStats], None]:
    """An `on_drop` callback that logs dropped trades: at the 1st, 2nd, 4th, 8th... drop, loud at
    first and quieter as they continue (every drop is counted in the stats either way)."""
    logger = log or structlog.get_logger("tradingd.mailbox")

    def on_drop(stats: MailboxStats) -> None:
        n = stats.dropped
        if n & (n - 1) == 0:
            logger.warning("mailbox.dropped_trades", strategy=strategy, dropped=n)

    return on_drop


class Mailbox:
    """Bounded, conflating queue of events for one strategy (policy in the module docstring)."""

    __slots__ = (
        "_closed",
        "_live",
        "_pending",
        "_trades",
        "_waiter",
        "capacity",
        "entries",
        "on_drop",
        "stats",
    )

    def __init__(
        self, capacity: int = 1024, *, on_drop: Callable[[MailboxStats], None] | None = None
    ) -> None:
        if capacity < 1:
            raise ValueError("mailbox capacity must be at least 1")
        self.capacity = capacity
        self.on_drop = on_drop
        self.stats = MailboxStats()
        # Entries are [event | None, conflation key | None]; None marks a superseded event, which
        # a newer entry always follows: `entries` is empty exactly when no event waits (a test
        # without a call, for the backtest kernel's hot path). Never rebound.
        self.entries: deque[list[object]] = deque()
        self._pending: dict[tuple[object, str, str], list[object]] = {}
        self._trades = 0
        self._live = 0
        self._waiter: trio.Event | None = None
        self._closed = False

    def __len__(self) -> int:
        """Events waiting (superseded ones not counted)."""
        return self._live

    def put(self, event: MarketEvent) -> None:
        """Queue `event` under the policy. Never blocks, never raises for a full box."""
        stats = self.stats
        stats.received += 1
        cls = event.__class__
        if cls is Ticker or cls is BookUpdate:
            key = (cls, event.venue, event.instrument)
            old = self._pending.get(key)
            if old is not None:
                old_event = old[0]
                old[0] = None
                self._live -= 1
                if cls is Ticker:
                    stats.conflated += 1
                else:
                    assert isinstance(old_event, BookUpdate)
                    assert isinstance(event, BookUpdate)
                    event = merge_book_updates(old_event, event)
                    stats.merged += 1
            entry: list[object] = [event, key]
            self._pending[key] = entry
        elif cls is Trade:
            if self._trades >= self.capacity:
                stats.dropped += 1
                if self.on_drop is not None:
                    self.on_drop(stats)
                return
            self._trades += 1
            entry = [event, None]
        else:
            entry = [event, None]
        self.entries.append(entry)
        self._live += 1
        if self._live > stats.high_water:
            stats.high_water = self._live
        if self._waiter is not None:
            self._waiter.set()

    def get_nowait(self) -> MarketEvent | None:
        """The next event, or None when nothing is waiting."""
        q = self.entries
        while q:
            entry = q.popleft()
            event = entry[0]
            if event is None:
                continue
            key = entry[1]
            if key is not None:
                if self._pending.get(key) is entry:  # type: ignore[call-overload]
                    del self._pending[key]  # type: ignore[arg-type]
            elif event.__class__ is Trade:
                self._trades -= 1
            self._live -= 1
            self.stats.delivered += 1
            return event  # type: ignore[return-value]
        return None

    def drain(self, limit: int = 256) -> list[MarketEvent]:
        """Up to `limit` waiting events, oldest first (possibly none)."""
        out: list[MarketEvent] = []
        get = self.get_nowait
        while len(out) < limit:
            event = get()
            if event is None:
                break
            out.append(event)
        return out

    async def get_batch(self, limit: int = 256) -> list[MarketEvent]:
        """Wait until something is waiting, then return up to `limit` events.
        Raises `trio.EndOfChannel` once the mailbox is closed and empty."""
        while True:
            batch = self.drain(limit)
            if batch:
                return batch
            if self._closed:
                raise trio.EndOfChannel
            self._waiter = trio.Event()
            try:
                await self._waiter.wait()
            finally:
                self._waiter = None

    def close(self) -> None:
        """No more events will come; a waiting `get_batch` returns what is left, then ends."""
        self._closed = True
        if self._waiter is not None:
            self._waiter.set()
