"""Polymarket frames for decoder tests: the captured fixtures (`load`, `frame`), any message as the wire
carries it (`wire`), the sample market's ids, and all a frame may change in a decoder (`state_of`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tradingd.connectors.polymarket.codec import PolymarketDecoder

FIXTURES = Path(__file__).parent.parent / "fixtures" / "polymarket"
T = 1_700_000_000_123_456_789
TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
MARKET = "0xdd22472e552920b8438158ea7238bfadfa4f736aa4cee91a6b86c39ead110917"
OWNER = "00000000-0000-0000-0000-000000000001"


def load(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


def wire(msg: Any) -> bytes:
    return orjson.dumps(msg)


def frame(name: str) -> bytes:
    return wire(load(name))


def state_of(dec: PolymarketDecoder) -> Any:
    """Everything a frame may change, as plain data."""
    return (
        {
            k: (dict(b.bids), dict(b.asks), b.sequence, b.valid, b.timestamp_ms)
            for k, b in dec.books().items()
        },
        sorted((i.symbol, i.tick_size, i.min_size, i.active, i.taker_fee) for i in dec.registry),
        sorted((o.token_id, o.neg_risk, o.fees) for o in dec.outcomes),
        dict(dec._trades),
        (dec.legacy_price_changes, dec.failed_fills, dec.last_unknown_channel),
        (dec.stats.ignored_changes, dec.stats.gaps, dec.stats.skipped_instruments, dec.stats.unknown_channel),
        dec.stats.control,
    )
