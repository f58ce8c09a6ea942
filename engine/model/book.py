"""A price-level order book on integer ticks.

Prices are kept as integer multiples of a price quantum (the instrument's finest tick), so that
levels compare exactly whatever the float the venue sent (0.2395 and 0.23950000000000002 are the
same level). Best bid/ask are cached and only recomputed when the best level is removed, which
keeps an update O(1) in the common case.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from decimal import Decimal

__all__ = ["OrderBook"]


def _decimals(quantum: float) -> int:
    exp = Decimal(repr(quantum)).normalize().as_tuple().exponent
    return max(0, -int(exp))


class OrderBook:
    """Bids and asks as {tick: size}. Not thread-safe; owned by one decoder."""

    __slots__ = ("_ba", "_bb", "_int_inv", "_inv", "_nd", "asks", "bids", "quantum", "sequence", "valid")

    def __init__(self, quantum: float) -> None:
        if not (quantum > 0 and math.isfinite(quantum)):
            raise ValueError(f"price quantum must be positive and finite, got {quantum!r}")
        self.quantum = float(quantum)
        self._inv = 1.0 / self.quantum
        self._nd = _decimals(self.quantum)
        # When 1/quantum is an integer (0.5, 0.0001, 0.05...), ticks / inverse is the double
        # nearest the decimal price (one correctly rounded division); otherwise round().
        inverse = round(self._inv)
        self._int_inv = inverse if inverse > 0 and abs(self._inv - inverse) < 1e-9 * inverse else 0
        self.bids: dict[int, float] = {}
        self.asks: dict[int, float] = {}
        self._bb: int | None = None
        self._ba: int | None = None
        self.sequence: int | str | None = None
        # False after a sequence gap: the book must not be used until a fresh snapshot.
        self.valid = True

    @property
    def inverse_quantum(self) -> float:
        """1 / quantum: `round(price * inverse_quantum)` is `to_ticks(price)` without the call."""
        return self._inv

    def to_ticks(self, price: float) -> int:
        return round(price * self._inv)

    def price_of(self, ticks: int) -> float:
        if self._int_inv:
            return ticks / self._int_inv
        return round(ticks * self.quantum, self._nd)

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self._bb = None
        self._ba = None

    def set_bid(self, ticks: int, size: float) -> None:
        """Set the bid level at `ticks` to `size` (0 removes it)."""
        bids = self.bids
        if size > 0:
            bids[ticks] = size
            if self._bb is None or ticks > self._bb:
                self._bb = ticks
        elif bids.pop(ticks, None) is not None and ticks == self._bb:
            self._bb = max(bids) if bids else None

    def set_ask(self, ticks: int, size: float) -> None:
        """Set the ask level at `ticks` to `size` (0 removes it)."""
        asks = self.asks
        if size > 0:
            asks[ticks] = size
            if self._ba is None or ticks < self._ba:
                self._ba = ticks
        elif asks.pop(ticks, None) is not None and ticks == self._ba:
            self._ba = min(asks) if asks else None

    def update(self, bids: Iterable[tuple[float, float]], asks: Iterable[tuple[float, float]]) -> None:
        """Set levels given as (price, size) pairs, as venues send them; size 0 removes a level.
        The best bid/ask are recomputed at most once per side, not once per removed level."""
        inv = self._inv
        levels = self.bids
        best = self._bb
        stale = False
        for price, size in bids:
            t = round(price * inv)
            if size > 0:
                levels[t] = size
                if best is None or t > best:
                    best = t
            elif levels.pop(t, None) is not None and t == best:
                stale = True
        self._bb = (max(levels) if levels else None) if stale else best
        levels = self.asks
        best = self._ba
        stale = False
        for price, size in asks:
            t = round(price * inv)
            if size > 0:
                levels[t] = size
                if best is None or t < best:
                    best = t
            elif levels.pop(t, None) is not None and t == best:
                stale = True
        self._ba = (min(levels) if levels else None) if stale else best

    def set_best(self, bid_ticks: int | None, ask_ticks: int | None) -> None:
        """For a decoder that writes `bids`/`asks` in bulk (its hot path): the best levels it
        computed along the way. They must be the max of `bids` and the min of `asks`."""
        self._bb = bid_ticks
        self._ba = ask_ticks

    @property
    def best_bid_ticks(self) -> int | None:
        return self._bb

    @property
    def best_ask_ticks(self) -> int | None:
        return self._ba

    def top(self) -> tuple[float | None, float | None, float | None, float | None]:
        """(best bid, its size, best ask, its size); None for an empty side."""
        bb, ba = self._bb, self._ba
        return (
            None if bb is None else self.price_of(bb),
            None if bb is None else self.bids[bb],
            None if ba is None else self.price_of(ba),
            None if ba is None else self.asks[ba],
        )

    def iter_bids(self) -> Iterator[tuple[int, float]]:
        """Bid levels best first, as (ticks, size)."""
        bids = self.bids
        for t in sorted(bids, reverse=True):
            yield t, bids[t]

    def iter_asks(self) -> Iterator[tuple[int, float]]:
        """Ask levels best first, as (ticks, size)."""
        asks = self.asks
        for t in sorted(asks):
            yield t, asks[t]

    def depth(self, n: int | None = None) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """The top `n` levels of each side (all when None) as (price, size), best first."""
        bids = [(self.price_of(t), s) for t, s in self.iter_bids()][:n]
        asks = [(self.price_of(t), s) for t, s in self.iter_asks()][:n]
        return bids, asks

    def is_crossed(self) -> bool:
        return self._bb is not None and self._ba is not None and self._bb >= self._ba

    @property
    def levels(self) -> int:
        """How many levels the book holds (both sides). (No `__len__`: an empty book is still
        a book, and must not be falsy.)"""
        return len(self.bids) + len(self.asks)

    def __repr__(self) -> str:
        bb, bbs, ba, bas = self.top()
        return f"OrderBook({len(self.bids)} bids, {len(self.asks)} asks, {bbs}@{bb} / {bas}@{ba})"
