"""The Derive decoder reads Derive's channels only: Deribit frames on channels of the same names
(`ticker.BTC-PERPETUAL.100ms`, `trades.BTC-PERPETUAL.100ms`, `trades.option.BTC.raw`) were
decoded as Derive tickers and trades (`tradingd decode --venue derive` on Deribit data printed
Deribit tickers labelled derive; issue 16). They are unknown channels now, and the real Derive
frames (tests/fixtures/derive) decode as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tradingd.connectors.derive.codec import DeriveDecoder
from tradingd.engine.model import InstrumentRegistry

ROOT = Path(__file__).resolve().parent.parent.parent.parent
DERIBIT = ROOT / "tests" / "fixtures" / "deribit"
DERIVE = ROOT / "tests" / "fixtures" / "derive"
T = 1_790_000_000_000_000_000


def _frame(path: Path, channel: str | None = None) -> bytes:
    msg: Any = orjson.loads(path.read_bytes())
    if channel is not None:
        msg["params"]["channel"] = channel
    return orjson.dumps(msg)


def _notification(channel: str, data: Any) -> bytes:
    return orjson.dumps({"method": "subscription", "params": {"channel": channel, "data": data}})


@pytest.mark.parametrize(
    ("fixture", "channel"),
    [
        ("ws_ticker.json", None),  # ticker.BTC-PERPETUAL.100ms
        ("ws_ticker.json", "ticker.BTC-PERPETUAL.raw"),
        ("ws_trades.json", None),  # trades.BTC-PERPETUAL.100ms
        ("ws_trades.json", "trades.option.BTC.100ms"),
        ("ws_trades.json", "trades.future.BTC.raw"),
        ("ws_trades.json", "trades.option.BTC.raw"),
    ],
)
def test_deribit_frames_are_unknown_channels(fixture: str, channel: str | None) -> None:
    dec = DeriveDecoder(InstrumentRegistry())
    frame = _frame(DERIBIT / fixture, channel)
    assert dec.decode(frame, T) == []
    assert dec.stats.unknown_channel == 1
    assert dec.last_unknown_channel == (channel or orjson.loads(frame)["params"]["channel"])


def test_derive_frames_still_decode() -> None:
    dec = DeriveDecoder(InstrumentRegistry())
    trade = orjson.loads((DERIVE / "perps" / "ws_trade_eth.json").read_bytes())
    legacy = orjson.loads((DERIVE / "perps" / "ws_ticker_eth.json").read_bytes())
    frames = [
        (DERIVE / "bourse" / "ws_trades_eth_perp_mainnet.json").read_bytes(),  # trades.ETH-PERP
        (DERIVE / "bourse" / "ws_ticker_slim_eth_perp_demo.json").read_bytes(),
        _notification("trades.perp.ETH", [{**trade, "trade_id": "t-2"}]),
        _notification("trades.perp.ETH.settled", [{**trade, "trade_id": "t-3"}]),
        _notification("trades.erc20.ETH.timed_out", [{**trade, "trade_id": "t-4"}]),
        _notification("ticker.ETH-PERP.1000", legacy),  # the deprecated ticker, intervals in ms
    ]
    events = [ev for frame in frames for ev in dec.decode(frame, T)]
    assert [ev.type for ev in events] == ["trade", "ticker", "trade", "trade", "trade", "ticker"]
    assert {ev.venue for ev in events} == {"derive"} and dec.stats.unknown_channel == 0
