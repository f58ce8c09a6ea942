"""Issue 13: a fill carries the index price the venue reported with it (Deribit's and Derive's
trades do), so the ledger converts it to USD at its own rate, even before the engine has seen
any index price. An odd index price only loses the rate, never the fill."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tests.support.deribit_frames import USER_TRADE as DERIBIT_TRADE
from tradingd.connectors.deribit.codec import DeribitDecoder
from tradingd.connectors.derive.codec import DeriveDecoder
from tradingd.engine import Fill
from tradingd.engine.model import InstrumentRegistry

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def _deribit_fill(trade: dict[str, Any]) -> Fill:
    frame = {
        "jsonrpc": "2.0",
        "method": "subscription",
        "params": {"channel": "user.trades.any.any.raw", "data": [trade]},
    }
    (fill,) = DeribitDecoder(InstrumentRegistry()).decode(orjson.dumps(frame), 1)
    assert isinstance(fill, Fill)
    return fill


def _derive_fill(trade: dict[str, Any]) -> Fill:
    frame = {"method": "subscription", "params": {"channel": "42.trades", "data": [trade]}}
    (fill,) = DeriveDecoder(InstrumentRegistry()).decode(orjson.dumps(frame), 1)
    assert isinstance(fill, Fill)
    return fill


def test_a_deribit_fill_carries_its_trades_index_price() -> None:
    assert _deribit_fill(DERIBIT_TRADE).index_price == 8956.73
    without = {k: v for k, v in DERIBIT_TRADE.items() if k != "index_price"}
    assert _deribit_fill(without).index_price is None
    for odd in (None, 0, -1, "8956.73", True, [1]):
        fill = _deribit_fill({**DERIBIT_TRADE, "index_price": odd})
        assert fill.index_price is None and fill.size == 20


def test_a_derive_fill_carries_its_trades_index_price() -> None:
    trade = orjson.loads((FIXTURES / "derive/perps/http_private_trade_eth.json").read_bytes())
    assert _derive_fill(trade).index_price == 3500.0
    without = {k: v for k, v in trade.items() if k != "index_price"}
    assert _derive_fill(without).index_price is None
    # "0" is what a venue (and the simulator) sends when it has no index price.
    for odd in ("0", "NaN", "Infinity", "-5", "x", None, True, {"a": 1}):
        fill = _derive_fill({**trade, "index_price": odd})
        assert fill.index_price is None and str(fill.size) == "0.5"
