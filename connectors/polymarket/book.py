"""The local order book of one Polymarket outcome token (VENUES.md §2.2, §2.3).

Polymarket sends a `book` snapshot (on subscribe, after trades, and as the `GET /book` answer),
then `price_change` messages whose `size` is the level's **new total** ("0" removes it), each
carrying the venue's best bid and ask after the change. `LocalOrderBook` is the engine's integer-
tick `OrderBook` with those operations:

- one price quantum for every token, 0.0001: every tick the venue uses (0.1 down to 0.0001,
  §2.6; 0.005 and 0.0025 too) is a whole number of quanta, so a `tick_size_change` (0.01 -> 0.001
  near 0 and 1) never re-ticks the book, and levels compare exactly whatever the float;
- a snapshot that assumes nothing about the order of the venue's arrays (real ones are sorted
  best **last**, the docs' sample best first, §2.2);
- the venue's hash: kept as `sequence`, and for `GET /book` answers checkable with `summary_hash`
  (SHA1 over a compact JSON in a fixed key order, §2.3);
- `agrees(best_bid, best_ask)`: whether the book's top is what the venue says it is. The venue
  writes an empty side as best bid "0" / best ask "1" (neither is a valid price, §2.6).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any, Final

import orjson

from tradingd.engine.venue import OrderBook

__all__ = ["HASH_FIELDS", "QUANTUM", "TICKS_PER_UNIT", "LocalOrderBook", "on_grid", "summary_hash"]

QUANTUM: Final = 0.0001
TICKS_PER_UNIT: Final = 10_000  # quanta per 1.0 of price: the ticks of price 1
# `GET /book` hash inputs, in the order the server hashes them (§2.3, PM-PY `utilities.py`).
HASH_FIELDS: Final = (
    "market",
    "asset_id",
    "timestamp",
    "hash",
    "bids",
    "asks",
    "min_order_size",
    "tick_size",
    "neg_risk",
    "last_trade_price",
)
_GRID_TOLERANCE: Final = 1e-6  # in quanta: a float off the grid by more is not a venue price


def on_grid(price: float) -> bool:
    """True when `price` is a whole number of quanta (up to float noise) within [0, 1]."""
    x = price * TICKS_PER_UNIT
    return 0.0 <= price <= 1.0 and abs(x - round(x)) <= _GRID_TOLERANCE


def summary_hash(summary: Mapping[str, Any]) -> str:
    """The hash the CLOB puts on a `GET /book` answer: SHA1 hex of the compact JSON of
    `HASH_FIELDS` in that order, `hash` set to "" and levels as `{price, size}` strings exactly as
    sent. Raises KeyError when a field is missing (older answers lack the last four)."""
    payload = {k: summary[k] for k in HASH_FIELDS}
    payload["hash"] = ""
    payload["bids"] = [{"price": lv["price"], "size": lv["size"]} for lv in summary["bids"]]
    payload["asks"] = [{"price": lv["price"], "size": lv["size"]} for lv in summary["asks"]]
    # orjson writes what `json.dumps(separators=(",", ":"), ensure_ascii=False)` writes for
    # strings, booleans and lists of them (tests/connectors/polymarket/test_polymarket_book.py checks it).
    return hashlib.sha1(orjson.dumps(payload)).hexdigest()  # SHA1: the venue's choice, not ours


class LocalOrderBook(OrderBook):
    """The book of one token (`asset_id`) of one market, on 0.0001 quanta. `sequence` holds the
    venue's last hash; `timestamp_ms` the venue time of the last message applied."""

    __slots__ = ("asset_id", "market", "timestamp_ms")

    def __init__(self, asset_id: str, market: str = "") -> None:
        super().__init__(QUANTUM)
        self.asset_id = asset_id
        self.market = market
        self.timestamp_ms = 0

    @property
    def hash(self) -> str | None:
        return None if self.sequence is None else str(self.sequence)

    def snapshot(
        self,
        bids: Iterable[tuple[float, float]],
        asks: Iterable[tuple[float, float]],
        *,
        hash: str | None = None,
        timestamp_ms: int = 0,
    ) -> None:
        """Replace the whole book with these levels, in whatever order they come; a zero size
        is no level. The book is valid afterwards."""
        self.snapshot_ticks(
            [(round(p * TICKS_PER_UNIT), s) for p, s in bids],
            [(round(p * TICKS_PER_UNIT), s) for p, s in asks],
            hash=hash,
            timestamp_ms=timestamp_ms,
        )

    def snapshot_ticks(
        self,
        bids: Iterable[tuple[int, float]],
        asks: Iterable[tuple[int, float]],
        *,
        hash: str | None = None,
        timestamp_ms: int = 0,
    ) -> None:
        """`snapshot` with prices already in quanta (the decoder computes them as it checks
        them). A level given twice keeps its last size."""
        levels = self.bids
        levels.clear()
        for t, size in bids:
            if size > 0:
                levels[t] = size
            else:
                levels.pop(t, None)
        best_bid = max(levels) if levels else None
        levels = self.asks
        levels.clear()
        for t, size in asks:
            if size > 0:
                levels[t] = size
            else:
                levels.pop(t, None)
        self.set_best(best_bid, min(levels) if levels else None)
        self.sequence = hash
        self.timestamp_ms = timestamp_ms
        self.valid = True

    def change(self, side: str, price: float, size: float) -> None:
        """Set one level to its new total `size` (0 removes it): `side` "BUY" is the bid side,
        "SELL" the ask side (§2.2)."""
        ticks = round(price * TICKS_PER_UNIT)
        if side == "BUY":
            self.set_bid(ticks, size)
        elif side == "SELL":
            self.set_ask(ticks, size)
        else:
            raise ValueError(f"side must be BUY or SELL, got {side!r}")

    def agrees(self, best_bid: float | None, best_ask: float | None) -> bool:
        """Whether the book's best bid and ask are the venue's. None skips a side (the venue did
        not say); a best bid <= 0 means no bids, a best ask >= 1 no asks."""
        if best_bid is not None:
            venue = round(best_bid * TICKS_PER_UNIT) if best_bid > 0.0 else None
            if venue != self.best_bid_ticks:
                return False
        if best_ask is not None:
            venue = round(best_ask * TICKS_PER_UNIT) if best_ask < 1.0 else None
            if venue != self.best_ask_ticks:
                return False
        return True

    def __repr__(self) -> str:
        bb, bbs, ba, bas = self.top()
        state = "" if self.valid else ", INVALID"
        return (
            f"LocalOrderBook({self.asset_id[:12]}..., {len(self.bids)} bids, {len(self.asks)} asks, "
            f"{bbs}@{bb} / {bas}@{ba}{state})"
        )
