"""A Tardis row that does not parse is that row's loss only: when it is the first row of its
symbol, the instrument is still defined by the next good row (`connectors/deribit/tardis.py`)."""

from __future__ import annotations

from pathlib import Path

from tradingd.connectors.deribit import PLUGIN
from tradingd.connectors.deribit.tardis import TardisReader
from tradingd.engine import BookUpdate, MarketEvent, Ticker
from tradingd.engine.model import InstrumentRegistry

HEADER = "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount"


def test_a_bad_first_quote_row_does_not_lose_the_instrument_definition(tmp_path: Path) -> None:
    path = tmp_path / "quotes.csv"
    rows = [
        "deribit,BTC-PERPETUAL,1795478400297000,1795478400299463,39120.0,abc,91277.5,46030.0",
        "deribit,BTC-PERPETUAL,1795478400508000,1795478400509606,18030.0,91286.0,91285.5,48930.0",
    ]
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    registry = InstrumentRegistry()
    decoder = PLUGIN.decoder(registry)
    reader = TardisReader(path, skip_bad=True)
    events: list[MarketEvent] = []
    for ts, frame in reader:
        events.extend(decoder.decode(frame, ts))
    assert reader.bad_lines == 1
    assert reader.stats.instruments == 1
    assert registry.get("deribit", "BTC-PERPETUAL") is not None
    assert decoder.stats.malformed == 0
    quotes = [e for e in events if isinstance(e, Ticker | BookUpdate)]
    assert quotes and all(e.instrument == "BTC-PERPETUAL" for e in quotes)
