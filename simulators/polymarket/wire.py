"""The simulated CLOB's JSON: every message shape it sends, in one place, written from VENUES.md §2.2
-2.3, the venue's documents and the real captures (`tests/fixtures/polymarket/`, the `nt_py_*`
files of NautilusTrader's live captures): numbers as decimal strings, timestamps as ms strings
(user-channel `created_at`, `last_update`, `match_time` in seconds, as captured), books with their
best levels last.

The simulator builds these from its own state (`simulator.py`) and the synthetic market's generator
its market-channel frames (`generator.py`: both are "the venue"); the shapes are checked against
the captures in `tests/simulators/polymarket/test_wire.py`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import orjson

__all__ = [
    "best_bid_ask",
    "book",
    "book_event",
    "book_summary",
    "cursor_page",
    "fmt",
    "last_trade_price",
    "levels",
    "maker_order",
    "market_resolved",
    "open_order",
    "order_event",
    "price_change",
    "price_change_entry",
    "summary_hash",
    "tick_size_change",
    "trade",
]


FIRST_CURSOR = "MA=="  # base64 "0"
END_CURSOR = "LTE="  # base64 "-1": no more pages (§2.3)


def cursor_page(items: Sequence[Any], cursor: str | None, size: int) -> dict[str, Any] | None:
    """The page of `items` a `next_cursor` asks for (§2.3: the cursor is the base64 offset;
    "LTE=" after the last page), `{limit, next_cursor, count, data}`; None for a cursor that is
    not one (unreadable or negative): the venue's 400 "invalid next_cursor"."""
    try:
        start = int(base64.b64decode(cursor or FIRST_CURSOR, validate=True).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if start < 0:
        return None
    page = list(items[start : start + size])
    end = start + len(page)
    return {
        "limit": size,
        "next_cursor": END_CURSOR if end >= len(items) else base64.b64encode(str(end).encode()).decode(),
        "count": len(page),
        "data": page,
    }


def fmt(d: Decimal) -> str:
    """A Decimal as the venue writes numbers: `0.5`, `100`, `12.34`."""
    s = format(d.normalize(), "f")
    return s if s != "-0" else "0"


def levels(prices: Iterable[tuple[Decimal, Decimal]], *, descending: bool) -> list[dict[str, str]]:
    """`[{price, size}]` in the venue's order: bids ascending, asks descending (best last)."""
    ordered = sorted(prices, key=lambda level: level[0], reverse=descending)
    return [{"price": fmt(p), "size": fmt(s)} for p, s in ordered]


def summary_hash(summary: Mapping[str, Any]) -> str:
    """The hash of a `GET /book` summary (VENUES.md §2.3, PM-PY `utilities`): SHA1 hex of the
    compact JSON of the summary with `hash` emptied, keys in the order `market, asset_id,
    timestamp, hash, bids, asks, min_order_size, tick_size, neg_risk, last_trade_price`."""
    keyed = {
        "market": summary["market"],
        "asset_id": summary["asset_id"],
        "timestamp": summary["timestamp"],
        "hash": "",
        "bids": summary["bids"],
        "asks": summary["asks"],
        "min_order_size": summary["min_order_size"],
        "tick_size": summary["tick_size"],
        "neg_risk": summary["neg_risk"],
        "last_trade_price": summary["last_trade_price"],
    }
    return hashlib.sha1(orjson.dumps(keyed)).hexdigest()


def book_summary(
    *,
    market: str,
    asset_id: str,
    timestamp_ms: int,
    bids: Iterable[tuple[Decimal, Decimal]],
    asks: Iterable[tuple[Decimal, Decimal]],
    min_order_size: Decimal,
    tick_size: Decimal,
    neg_risk: bool,
    last_trade_price: str,
) -> dict[str, Any]:
    """`GET /book` (§2.3): the summary with its hash, fields in the hashed order."""
    summary: dict[str, Any] = {
        "market": market,
        "asset_id": asset_id,
        "timestamp": str(timestamp_ms),
        "hash": "",
        "bids": levels(bids, descending=False),
        "asks": levels(asks, descending=True),
        "min_order_size": fmt(min_order_size),
        "tick_size": fmt(tick_size),
        "neg_risk": neg_risk,
        "last_trade_price": last_trade_price,
    }
    summary["hash"] = summary_hash(summary)
    return summary


def book(
    *,
    asset_id: str,
    market: str,
    bids: list[dict[str, str]],
    asks: list[dict[str, str]],
    timestamp: str,
    hash: str,
) -> dict[str, Any]:
    """The market channel's `book` event (§2.2): levels `[{price, size}]`, best last."""
    return {
        "event_type": "book",
        "asset_id": asset_id,
        "market": market,
        "bids": bids,
        "asks": asks,
        "timestamp": timestamp,
        "hash": hash,
    }


def book_event(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The `book` event of a `GET /book` summary: the same levels and hash."""
    return book(
        asset_id=summary["asset_id"],
        market=summary["market"],
        bids=summary["bids"],
        asks=summary["asks"],
        timestamp=summary["timestamp"],
        hash=summary["hash"],
    )


def price_change_entry(
    *,
    asset_id: str,
    price: str,
    size: str,
    side: str,
    hash: str,
    best_bid: str,
    best_ask: str,
) -> dict[str, str]:
    """One entry of a `price_change` (§2.2, the schema live since 2025-09-15): `size` the level's
    new total ("0" removes it), `side` BUY for the bids, the token's best bid and ask after it."""
    return {
        "asset_id": asset_id,
        "price": price,
        "size": size,
        "side": side,
        "hash": hash,
        "best_bid": best_bid,
        "best_ask": best_ask,
    }


def price_change(*, market: str, entries: list[dict[str, str]], timestamp: str) -> dict[str, Any]:
    """`price_change` (§2.2), keys in the documented order."""
    return {"market": market, "price_changes": entries, "timestamp": timestamp, "event_type": "price_change"}


def best_bid_ask(
    *, market: str, asset_id: str, best_bid: str, best_ask: str, spread: str, timestamp: str
) -> dict[str, str]:
    """`best_bid_ask` (§2.2, a custom feature)."""
    return {
        "event_type": "best_bid_ask",
        "market": market,
        "asset_id": asset_id,
        "best_bid": best_bid,
        "best_ask": best_ask,
        "spread": spread,
        "timestamp": timestamp,
    }


def tick_size_change(
    *, asset_id: str, market: str, old_tick_size: str, new_tick_size: str, timestamp: str
) -> dict[str, str]:
    """`tick_size_change` (§2.2): sent when the book's price crosses 0.96 or 0.04."""
    return {
        "event_type": "tick_size_change",
        "asset_id": asset_id,
        "market": market,
        "old_tick_size": old_tick_size,
        "new_tick_size": new_tick_size,
        "timestamp": timestamp,
    }


def market_resolved(
    *,
    id: str,
    market: str,
    assets_ids: list[str],
    winning_asset_id: str,
    winning_outcome: str,
    timestamp: str,
    tags: list[str],
) -> dict[str, Any]:
    """`market_resolved` (§2.2, a custom feature; NautilusTrader's capture adds `tags`)."""
    return {
        "event_type": "market_resolved",
        "id": id,
        "market": market,
        "assets_ids": assets_ids,
        "winning_asset_id": winning_asset_id,
        "winning_outcome": winning_outcome,
        "timestamp": timestamp,
        "tags": tags,
    }


def last_trade_price(
    *,
    asset_id: str,
    market: str,
    price: Decimal | str,
    side: str,
    size: Decimal | str,
    timestamp_ms: int | str,
    fee_rate_bps: str = "0",
) -> dict[str, Any]:
    """`last_trade_price` (§2.2), keys in the documented order. `fee_rate_bps` "0" unless the
    caller says otherwise: under V2 fees are not signed and the captured prints say "0"."""
    return {
        "asset_id": asset_id,
        "event_type": "last_trade_price",
        "fee_rate_bps": fee_rate_bps,
        "market": market,
        "price": price if isinstance(price, str) else fmt(price),
        "side": side,
        "size": size if isinstance(size, str) else fmt(size),
        "timestamp": str(timestamp_ms),
    }


def open_order(
    *,
    order_id: str,
    status: str,
    owner: str,
    maker_address: str,
    market: str,
    asset_id: str,
    side: str,
    original_size: Decimal,
    size_matched: Decimal,
    price: Decimal,
    outcome: str,
    expiration: int,
    order_type: str,
    associate_trades: Sequence[str],
    created_at_s: int,
) -> dict[str, Any]:
    """An order as `GET /data/orders` and `GET /data/order/{id}` show it (§2.3; the captured
    `http_open_order.json`: `created_at` a number of seconds)."""
    return {
        "id": order_id,
        "status": status,
        "owner": owner,
        "maker_address": maker_address,
        "market": market,
        "asset_id": asset_id,
        "side": side,
        "original_size": fmt(original_size),
        "size_matched": fmt(size_matched),
        "price": fmt(price),
        "outcome": outcome,
        "expiration": str(expiration),
        "order_type": order_type,
        "associate_trades": list(associate_trades),
        "created_at": created_at_s,
    }


def order_event(rest_form: Mapping[str, Any], *, kind: str, timestamp_ms: int) -> dict[str, Any]:
    """The user channel's `order` event (§2.2: `type` PLACEMENT | UPDATE | CANCELLATION) of an
    order's REST form: `event_type`, `type`, `order_owner` added, `created_at` a string of
    seconds and `timestamp` ms (the live capture `nt_py_order_placement.json`)."""
    return {
        **rest_form,
        "event_type": "order",
        "type": kind,
        "order_owner": rest_form["owner"],
        "created_at": str(rest_form["created_at"]),
        "timestamp": str(timestamp_ms),
        # null, not [], while the order has no trade: both captured placements and the docs'
        # sample (tests/simulators/polymarket/test_judge_user_channel.py).
        "associate_trades": list(rest_form["associate_trades"]) or None,
    }


def maker_order(
    *,
    order_id: str,
    owner: str,
    maker_address: str,
    matched_amount: Decimal,
    price: Decimal,
    asset_id: str,
    outcome: str,
    side: str,
) -> dict[str, Any]:
    """One entry of a trade's `maker_orders[]` (§2.2; `http_trade_report.json`)."""
    return {
        "order_id": order_id,
        "owner": owner,
        "maker_address": maker_address,
        "matched_amount": fmt(matched_amount),
        "price": fmt(price),
        "asset_id": asset_id,
        "outcome": outcome,
        "side": side,
        "fee_rate_bps": "0",
    }


def trade(
    *,
    trade_id: str,
    taker_order_id: str,
    market: str,
    asset_id: str,
    side: str,
    size: Decimal,
    price: Decimal,
    status: str,
    match_s: int,
    last_update_s: int,
    outcome: str,
    owner: str,
    maker_address: str,
    transaction_hash: str,
    maker_orders: Sequence[Mapping[str, Any]],
    trader_side: str,
    timestamp_ms: int,
    rest: bool = False,
) -> dict[str, Any]:
    """One of an account's trades: the user channel's `trade` event (§2.2; the live captures
    `nt_py_user_trade*.json`), or (`rest`) a `GET /data/trades` item, which has no `event_type`,
    `type`, `trade_owner` or `timestamp` (`http_trades_page.json`). `fee_rate_bps` is "0": the
    captured V2 taker fill's record said so while a fee was charged (py-clob-client-v2 #107)."""
    item: dict[str, Any] = {
        "event_type": "trade",
        "type": "TRADE",
        "id": trade_id,
        "taker_order_id": taker_order_id,
        "market": market,
        "asset_id": asset_id,
        "side": side,
        "size": fmt(size),
        "price": fmt(price),
        "fee_rate_bps": "0",
        "status": status,
        "match_time": str(match_s),
        "last_update": str(last_update_s),
        "outcome": outcome,
        "owner": owner,
        "trade_owner": owner,
        "maker_address": maker_address,
        "transaction_hash": transaction_hash,
        "bucket_index": 0,
        "maker_orders": [dict(m) for m in maker_orders],
        "trader_side": trader_side,
        "timestamp": str(timestamp_ms),
    }
    if rest:
        for key in ("event_type", "type", "trade_owner", "timestamp"):
            del item[key]
    return item
