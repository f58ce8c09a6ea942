"""One instrument's public market in the simulator: its order book (the shared matching engine's
`OrderBook`, holding the synthetic market's levels and the clients' orders), and what Deribit's
book channels carry of it (VENUES.md §1.6): the `change_id` chain and the levels last published,
so each change lists only the levels that changed, as `[action, price, amount]`.

Client orders show in the public book, as on Deribit (its book is one book for everyone).
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any, Final

import attrs

from ..matching import OrderBook, Side
from .instruments import Listing
from .wire import num

__all__ = ["MarketBook"]

_ZERO: Final = Decimal(0)


@attrs.define(eq=False)
class MarketBook:
    listing: Listing
    _ob: OrderBook
    change_id: int
    published: dict[Side, dict[Decimal, Decimal]] = attrs.field(factory=lambda: {Side.BUY: {}, Side.SELL: {}})
    top: tuple[Decimal, Decimal, Decimal, Decimal] = (_ZERO, _ZERO, _ZERO, _ZERO)
    trade_seq: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1))
    pulled: set[Side] = attrs.field(factory=set)  # sides the market stopped quoting (`no_quotes`)
    # The market's level changes not yet given to the order book (`defer_market_level`).
    _deferred: dict[tuple[Side, Decimal], Decimal] = attrs.field(factory=dict)
    # The levels as `change` last read them, best first (what `published` holds, in order).
    shown: dict[Side, list[tuple[Decimal, Decimal]]] = attrs.field(
        factory=lambda: {Side.BUY: [], Side.SELL: []}
    )

    @classmethod
    def create(cls, listing: Listing, change_id: int) -> MarketBook:
        return cls(listing, OrderBook(listing.name), change_id)

    @property
    def book(self) -> OrderBook:
        """The order book, with the market's deferred levels given to it first."""
        if self._deferred:
            deferred, self._deferred = self._deferred, {}
            for (side, price), amount in deferred.items():
                # Deferred only while no client order rests (`defer_market_level`): nothing matches.
                self._ob.set_market_level(side, price, amount)
        return self._ob

    def has_clients(self) -> bool:
        """Whether a client order rests here (the deferred market levels do not matter to it)."""
        return bool(self._ob.orders())

    def defer_market_level(self, side: Side, price: Decimal, amount: Decimal) -> None:
        """Set a market level later, when the book is next used. Only while no client order
        rests (`has_clients`): then the level meets nobody, and the public book is the
        market's, which `market_change` keeps in `published`. The common case of a feed
        message (most books hold no client order) then costs a dict write per level."""
        self._deferred[(side, price)] = amount

    def levels(self, side: Side, depth: int | None = None) -> list[tuple[Decimal, Decimal]]:
        """The public levels (the market's and the clients'), best first."""
        return self.book.levels(side, depth)

    def snapshot(self, ts_ms: int) -> dict[str, Any]:
        """A `book.{instrument}.{interval}` snapshot at the current `change_id` (no
        `prev_change_id`: §1.6 says it is absent from the first message)."""
        return {
            "type": "snapshot",
            "timestamp": ts_ms,
            "instrument_name": self.listing.name,
            "change_id": self.change_id,
            "bids": [["new", num(p), num(a)] for p, a in self.levels(Side.BUY)],
            "asks": [["new", num(p), num(a)] for p, a in self.levels(Side.SELL)],
        }

    def listing_change(self, ts_ms: int) -> dict[str, Any]:
        """What a client subscribed at a new listing's birth first gets: a `change` from
        `prev_change_id: 0` that builds the whole book from empty."""
        data = self.snapshot(ts_ms)
        data["type"] = "change"
        data["prev_change_id"] = 0
        return data

    def change(self, ts_ms: int) -> dict[str, Any] | None:
        """The change since the last one published (None: the public book did not change), with
        the next `change_id`; the published levels move on."""
        sides: dict[Side, list[list[Any]]] = {}
        for side in (Side.BUY, Side.SELL):
            now = dict(self.levels(side))
            before = self.published[side]
            out: list[list[Any]] = []
            for price in before:
                if price not in now:
                    out.append(["delete", num(price), 0.0])
            for price, amount in now.items():
                old = before.get(price)
                if old is None:
                    out.append(["new", num(price), num(amount)])
                elif old != amount:
                    out.append(["change", num(price), num(amount)])
            self.published[side] = now
            sides[side] = out
        if not sides[Side.BUY] and not sides[Side.SELL]:
            return None
        return self._change(ts_ms, sides[Side.BUY], sides[Side.SELL])

    def market_change(
        self, ts_ms: int, bids: list[tuple[str, Decimal, Decimal]], asks: list[tuple[str, Decimal, Decimal]]
    ) -> dict[str, Any]:
        """The change of a feed message that met no client order: the public book is the
        market's, so the feed's own `[action, price, amount]` levels are the change (no scan of
        the book: the common case, kept cheap)."""
        for side, levels in ((Side.BUY, bids), (Side.SELL, asks)):
            shown = self.published[side]
            for _, price, amount in levels:
                if amount:
                    shown[price] = amount
                else:
                    shown.pop(price, None)
        return self._change(
            ts_ms, [[a, num(p), num(q)] for a, p, q in bids], [[a, num(p), num(q)] for a, p, q in asks]
        )

    def _change(self, ts_ms: int, bids: list[list[Any]], asks: list[list[Any]]) -> dict[str, Any]:
        """The next `change` of the chain: `prev_change_id` is the last one sent."""
        prev = self.change_id
        self.change_id += 1
        return {
            "type": "change",
            "timestamp": ts_ms,
            "prev_change_id": prev,
            "instrument_name": self.listing.name,
            "change_id": self.change_id,
            "bids": bids,
            "asks": asks,
        }

    def best(self, *, published: bool = False) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """(bid, bid amount, ask, ask amount); an empty side is 0 / 0, as Deribit's ticker and
        quote write it (the real captures of tests/fixtures/deribit/README.md). `published`: read
        from the levels last published, which a change just brought up to date."""
        if published:
            bids, asks = self.published[Side.BUY], self.published[Side.SELL]
            bid_p = max(bids) if bids else None
            ask_p = min(asks) if asks else None
            return (
                _ZERO if bid_p is None else bid_p,
                _ZERO if bid_p is None else bids[bid_p],
                _ZERO if ask_p is None else ask_p,
                _ZERO if ask_p is None else asks[ask_p],
            )
        top_bids = self.levels(Side.BUY, 1)
        top_asks = self.levels(Side.SELL, 1)
        bid, bid_amount = top_bids[0] if top_bids else (_ZERO, _ZERO)
        ask, ask_amount = top_asks[0] if top_asks else (_ZERO, _ZERO)
        return bid, bid_amount, ask, ask_amount
