"""Deribit wire frames for tests, in the shapes of VENUES.md §1 (compact JSON, as on the wire)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tradingd.engine.store import RecordingWriter

T0_MS = 1_795_478_400_000  # 2026-11-24T00:00:00Z
OPTION = "BTC-25DEC26-90000-C"
PERP = "BTC-PERPETUAL"

# VENUES.md §1, "User trade sample (official, one item shown)": a `user.trades.*` item.
USER_TRADE: dict[str, Any] = {
    "trade_seq": 30289432,
    "trade_id": "48079254",
    "timestamp": 1590484156350,
    "tick_direction": 0,
    "state": "filled",
    "reduce_only": False,
    "price": 8954,
    "post_only": False,
    "order_type": "market",
    "order_id": "4008965646",
    "matching_id": None,
    "mark_price": 8952.86,
    "liquidity": "T",
    "instrument_name": "BTC-PERPETUAL",
    "index_price": 8956.73,
    "fee_currency": "BTC",
    "fee": 0.00000168,
    "direction": "sell",
    "amount": 20,
}


def _note(channel: str, data: Any) -> bytes:
    return orjson.dumps(
        {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}}
    )


def instruments(expiry_ms: int = 1_798_185_600_000) -> bytes:
    items = [
        {
            "kind": "option",
            "instrument_name": OPTION,
            "tick_size": 0.0001,
            "tick_size_steps": [{"above_price": 0.005, "tick_size": 0.0005}],
            "contract_size": 1.0,
            "min_trade_amount": 0.1,
            "maker_commission": 0.0003,
            "taker_commission": 0.0003,
            "instrument_type": "reversed",
            "quote_currency": "BTC",
            "base_currency": "BTC",
            "settlement_currency": "BTC",
            "counter_currency": "USD",
            "expiration_timestamp": expiry_ms,
            "strike": 90000.0,
            "option_type": "call",
            "settlement_period": "month",
            "is_active": True,
        },
        {
            "kind": "future",
            "instrument_name": PERP,
            "tick_size": 0.5,
            "tick_size_steps": [],
            "contract_size": 10.0,
            "min_trade_amount": 10.0,
            "maker_commission": 0.0,
            "taker_commission": 0.0005,
            "instrument_type": "reversed",
            "quote_currency": "USD",
            "base_currency": "BTC",
            "settlement_currency": "BTC",
            "counter_currency": "USD",
            "expiration_timestamp": 32503708800000,
            "settlement_period": "perpetual",
            "is_active": True,
        },
    ]
    return orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": items})


def ticker(inst: str, ms: int, *, bid: float | None, ask: float | None, mark: float, index: float) -> bytes:
    data = {
        "timestamp": ms,
        "state": "open",
        "instrument_name": inst,
        "best_bid_price": bid,
        "best_bid_amount": 5.0,
        "best_ask_price": ask,
        "best_ask_amount": 5.0,
        "mark_price": mark,
        "index_price": index,
        "last_price": mark,
        "open_interest": 1.0,
    }
    if inst == OPTION:
        data.update(
            mark_iv=50.0,
            bid_iv=49.0,
            ask_iv=51.0,
            underlying_price=index,
            greeks={"delta": 0.6, "gamma": 0.00003, "vega": 100.0, "theta": -50.0, "rho": 10.0},
        )
    return _note(f"ticker.{inst}.100ms", data)


def snapshot(
    inst: str, ms: int, change_id: int, bids: list[tuple[float, float]], asks: list[tuple[float, float]]
) -> bytes:
    return _note(
        f"book.{inst}.100ms",
        {
            "type": "snapshot",
            "timestamp": ms,
            "instrument_name": inst,
            "change_id": change_id,
            "bids": [["new", p, s] for p, s in bids],
            "asks": [["new", p, s] for p, s in asks],
        },
    )


def change(inst: str, ms: int, change_id: int, bids: list[list[Any]], asks: list[list[Any]]) -> bytes:
    return _note(
        f"book.{inst}.100ms",
        {
            "type": "change",
            "timestamp": ms,
            "instrument_name": inst,
            "change_id": change_id,
            "prev_change_id": change_id - 1,
            "bids": bids,
            "asks": asks,
        },
    )


def trade(inst: str, ms: int, price: float, amount: float, direction: str, trade_id: str) -> bytes:
    return _note(
        f"trades.{inst}.100ms",
        [
            {
                "trade_seq": 1,
                "trade_id": trade_id,
                "timestamp": ms,
                "tick_direction": 0,
                "price": price,
                "mark_price": price,
                "instrument_name": inst,
                "index_price": 90000.0,
                "direction": direction,
                "amount": amount,
            }
        ],
    )


def write(path: Path, frames: list[tuple[int, bytes]]) -> Path:
    """A recording of (ms since T0, frame): each line received 1 ms after the exchange time."""
    with RecordingWriter(path) as w:
        for offset_ms, frame in frames:
            w.write((T0_MS + offset_ms + 1) * 1_000_000, frame)
    return path
