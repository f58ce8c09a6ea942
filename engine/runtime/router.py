"""The MarketRouter: merged subscriptions per venue, and fan-out of events to strategies.

Each strategy subscribes to (venue, instrument, kind) keys. The router counts them, so each venue
connection asks for the union once (one connection carries every strategy's data), follows
subscription changes at run time (connections wait on `wait_changed`), and routes every event to
exactly the strategies subscribed to its instrument and kind. Private events (orders, fills) go to
the strategy that owns the order; status events to the strategies concerned by their instrument
(or by their venue, for venue-wide status).

Live, `dispatch` puts events into each strategy's `Mailbox` (never blocking: a slow strategy
cannot stall the others); the backtest kernel uses the same tables through `route`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Generic, TypeVar

import structlog
import trio

from ..model.events import DataKind, MarketEvent, PrivateEvent, Status, Subscription
from .mailbox import Mailbox, log_drops
from .strategy import Strategy

__all__ = ["MarketRouter", "StrategySlot", "run_strategy"]

Key = tuple[str, str, DataKind]

log = structlog.get_logger("tradingd.router")


class StrategySlot:
    """A strategy as the router sees it: its mailbox and what it subscribed to."""

    __slots__ = ("errors", "handling_ns", "keys", "mailbox", "name", "strategy")

    def __init__(self, strategy: Strategy, mailbox: Mailbox) -> None:
        self.name = strategy.name
        self.strategy = strategy
        self.mailbox = mailbox
        self.keys: set[Key] = set()
        self.errors = 0  # exceptions raised by the strategy's on_event
        # When the event the strategy is handling now was received (its `ts_local`); 0 between
        # batches of events. An order placed meanwhile answers it (the tick-to-order histogram).
        self.handling_ns = 0

    def __repr__(self) -> str:
        return f"StrategySlot({self.name!r}, {len(self.keys)} subscriptions)"


SlotT = TypeVar("SlotT", bound=StrategySlot)


class MarketRouter(Generic[SlotT]):
    """Subscriptions and routing for a set of strategies (see the module docstring)."""

    def __init__(self, *, mailbox_capacity: int = 1024) -> None:
        self.mailbox_capacity = mailbox_capacity
        self._slots: dict[str, SlotT] = {}
        self._counts: Counter[Key] = Counter()
        self.routes: dict[Key, tuple[SlotT, ...]] = {}  # (venue, instrument, kind) -> strategies
        self._by_instrument: dict[tuple[str, str], tuple[SlotT, ...]] = {}
        self._by_venue: dict[str, tuple[SlotT, ...]] = {}
        self._versions: Counter[str] = Counter()
        self._changed = trio.Event()
        self.unrouted = 0  # events no strategy was subscribed to

    # -- strategies -------------------------------------------------------------------------
    def add(self, slot: SlotT) -> SlotT:
        """Register a strategy (by its slot) and its `required_subscriptions`."""
        if slot.name in self._slots:
            raise ValueError(f"a strategy named {slot.name!r} is already running")
        self._slots[slot.name] = slot
        self.subscribe(slot.name, slot.strategy.required_subscriptions())
        return slot

    def new_slot(self, strategy: Strategy) -> StrategySlot:
        """A plain slot with a mailbox of the router's capacity, drops logged."""
        return StrategySlot(strategy, Mailbox(self.mailbox_capacity, on_drop=log_drops(strategy.name, log)))

    def remove(self, name: str) -> SlotT:
        """Unregister a strategy; its subscriptions leave the merged sets."""
        slot = self._slots[name]
        self._unsubscribe_keys(slot, set(slot.keys))
        del self._slots[name]
        slot.mailbox.close()
        self._rebuild()
        return slot

    def slots(self) -> list[SlotT]:
        return list(self._slots.values())

    def slot(self, name: str) -> SlotT | None:
        return self._slots.get(name)

    # -- subscriptions ----------------------------------------------------------------------
    def subscribe(self, name: str, subscriptions: Iterable[Subscription]) -> None:
        slot = self._slots[name]
        touched: set[str] = set()
        for sub in subscriptions:
            for key in sub.routing_keys():
                if key not in slot.keys:
                    slot.keys.add(key)
                    self._counts[key] += 1
                    if self._counts[key] == 1:
                        touched.add(key[0])
        self._rebuild()
        self._bump(touched)

    def unsubscribe(self, name: str, subscriptions: Iterable[Subscription]) -> None:
        slot = self._slots[name]
        keys = {k for sub in subscriptions for k in sub.routing_keys()} & slot.keys
        self._unsubscribe_keys(slot, keys)
        self._rebuild()

    def _unsubscribe_keys(self, slot: StrategySlot, keys: set[Key]) -> None:
        touched: set[str] = set()
        for key in keys:
            slot.keys.discard(key)
            self._counts[key] -= 1
            if self._counts[key] <= 0:
                del self._counts[key]
                touched.add(key[0])
        self._bump(touched)

    def _bump(self, venues: set[str]) -> None:
        if not venues:
            return
        for v in venues:
            self._versions[v] += 1
        self._changed.set()
        self._changed = trio.Event()

    def venues(self) -> list[str]:
        """Venues some strategy has data subscriptions on, sorted."""
        return sorted({k[0] for k in self._counts})

    def merged(self, venue: str) -> frozenset[tuple[str, DataKind]]:
        """The union of every strategy's subscriptions on `venue`: (instrument, kind) pairs."""
        return frozenset((k[1], k[2]) for k in self._counts if k[0] == venue)

    def version(self, venue: str) -> int:
        """Increases each time `merged(venue)` changes."""
        return self._versions[venue]

    async def wait_changed(self, venue: str, seen_version: int) -> int:
        """Wait until the merged set of `venue` differs from the one at `seen_version`;
        returns the new version."""
        while self._versions[venue] == seen_version:
            await self._changed.wait()
        return self._versions[venue]

    def _rebuild(self) -> None:
        routes: dict[Key, list[SlotT]] = {}
        by_instrument: dict[tuple[str, str], list[SlotT]] = {}
        by_venue: dict[str, list[SlotT]] = {}
        for slot in self._slots.values():  # insertion order: deterministic fan-out order
            seen_instr: set[tuple[str, str]] = set()
            for key in sorted(slot.keys):
                routes.setdefault(key, []).append(slot)
                ik = (key[0], key[1])
                if ik not in seen_instr:
                    seen_instr.add(ik)
                    by_instrument.setdefault(ik, []).append(slot)
            for venue in sorted({k[0] for k in slot.keys}):
                by_venue.setdefault(venue, []).append(slot)
        # Updated in place: the backtest kernel keeps a reference to `routes` across changes.
        self.routes.clear()
        self.routes.update((k, tuple(v)) for k, v in routes.items())
        self._by_instrument = {k: tuple(v) for k, v in by_instrument.items()}
        self._by_venue = {k: tuple(v) for k, v in by_venue.items()}

    # -- routing ----------------------------------------------------------------------------
    def route(self, event: MarketEvent) -> tuple[SlotT, ...]:
        """The strategies `event` goes to (possibly none)."""
        kind = event.kind
        if kind is not None:
            return self.routes.get((event.venue, event.instrument, kind), ())
        if isinstance(event, PrivateEvent):
            slot = self._slots.get(event.strategy or "")
            return (slot,) if slot is not None else ()
        if isinstance(event, Status) and not event.instrument:
            return self._by_venue.get(event.venue, ())
        return self._by_instrument.get((event.venue, event.instrument), ())

    def dispatch(self, event: MarketEvent) -> int:
        """Put `event` into the mailbox of each strategy it is routed to; returns how many."""
        slots = self.route(event)
        for slot in slots:
            slot.mailbox.put(event)
        if not slots:
            self.unrouted += 1
        return len(slots)

    async def run(self, events: trio.MemoryReceiveChannel[list[MarketEvent]]) -> None:
        """The router task: fan out batches of events from the venue connections until the
        channel closes."""
        dispatch = self.dispatch
        receive_nowait = events.receive_nowait
        async with events:
            async for batch in events:
                while True:
                    for event in batch:
                        dispatch(event)
                    try:  # everything already waiting, before yielding again
                        batch = receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break


async def run_strategy(slot: StrategySlot, *, batch: int = 256) -> None:
    """A strategy's own task: take events from its mailbox and await `on_event` for each, one
    at a time, until the mailbox is closed. An exception from the strategy is logged with its
    traceback and counted (`slot.errors`); the strategy keeps receiving events."""
    strategy = slot.strategy
    mailbox = slot.mailbox
    while True:
        slot.handling_ns = 0  # an order placed while it waits (a task of its own) answers none
        try:
            events = await mailbox.get_batch(batch)
        except trio.EndOfChannel:
            return
        for event in events:
            slot.handling_ns = event.ts_local
            try:
                await strategy.on_event(event)
            except Exception as exc:
                slot.errors += 1
                if slot.errors <= 20 or slot.errors % 1000 == 0:
                    log.error(
                        "strategy.error",
                        strategy=slot.name,
                        errors=slot.errors,
                        error=repr(exc),
                        exc_info=exc,
                    )
