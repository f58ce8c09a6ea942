"""Numbers in decoded events read as the venue sent them: a value the decoder scales (Deribit's
implied vols, percent on the wire and fractions in the event) is the exact decimal shifted, never
the binary float's artefact (`76.95 / 100` is 0.7695000000000001, which `decode` printed), and
no other scaled field of the three venues' decoders (Polymarket's books kept in 1e-4 ticks) shows
one. Checked on real frames (tests/fixtures/*/README.md says where each comes from)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog

from tradingd.cli.main import main
from tradingd.connectors.deribit import PLUGIN as DERIBIT
from tradingd.connectors.deribit.tardis import TardisReader
from tradingd.connectors.derive import PLUGIN as DERIVE
from tradingd.connectors.polymarket import PLUGIN as POLYMARKET
from tradingd.engine import BookUpdate, MarketEvent, Ticker
from tradingd.engine.model import InstrumentRegistry

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
T_LOCAL = 1_700_000_000_000_000_000


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def compact(path: Path) -> bytes:
    """A fixture as the compact frame the venue sends."""
    return orjson.dumps(orjson.loads(path.read_bytes()))


def shifted(text: str, places: int) -> Decimal:
    """The decimal on the wire, divided by 10**places (exact)."""
    return Decimal(text).scaleb(-places)


def reads_as(value: float | None, expected: Decimal) -> bool:
    """Whether a float prints (shortest repr, as JSON does) as exactly `expected`."""
    return value is not None and Decimal(repr(value)) == expected


def test_decode_prints_deribits_implied_vols_as_the_venue_sent_them(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The CLI as a user meets it: `decode` of a production ticker (ask_iv 76.95 on the wire)."""
    frames = tmp_path / "ticker.jsonl"
    frames.write_bytes(compact(FIXTURES / "deribit" / "ws_ticker_option_empty_bid_2026.json") + b"\n")
    assert main(["decode", "--venue", "deribit", str(frames)]) == 0
    out = capsys.readouterr().out
    assert '"ask_iv":0.7695,' in out and '"mark_iv":0.7369,' in out
    assert "0000000" not in out


@pytest.mark.parametrize(
    "name",
    [
        "ws_ticker.json",
        "ws_ticker_option_empty_bid_2026.json",
        "ws_ticker_option_expired_2020.json",
        "ws_ticker_option_no_quotes_2022.json",
    ],
)
def test_every_deribit_ticker_fixture_keeps_its_implied_vols_exact(name: str) -> None:
    raw = orjson.loads((FIXTURES / "deribit" / name).read_bytes())
    data: dict[str, Any] = raw["params"]["data"]
    # The decimal texts as sent (orjson would give floats: read the numbers as text instead).
    text = (FIXTURES / "deribit" / name).read_text()
    sent = {k: _number_text(text, k) for k in ("mark_iv", "bid_iv", "ask_iv") if data.get(k) is not None}
    [ticker] = DERIBIT.decoder(InstrumentRegistry()).decode(compact(FIXTURES / "deribit" / name), T_LOCAL)
    assert isinstance(ticker, Ticker)
    for key, wire in sent.items():
        assert reads_as(getattr(ticker, key), shifted(wire, 2)), (key, wire, getattr(ticker, key))


def _number_text(json_text: str, key: str) -> str:
    """The literal text of the first number after `"key":` in a JSON text."""
    start = json_text.index(f'"{key}"')
    start = json_text.index(":", start) + 1
    end = start
    while json_text[end] in " \t\n":
        end += 1
    start = end
    while json_text[end] in "0123456789.eE+-":
        end += 1
    return json_text[start:end]


def test_tardis_options_chain_implied_vols_read_as_the_csv_gives_them() -> None:
    """Every row of the real Tardis options chain: its IVs (percent) as fractions, exact."""
    path = FIXTURES / "tardis" / "options_chain.csv"
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    decoder = DERIBIT.decoder(InstrumentRegistry())
    tickers: list[MarketEvent] = []
    for ts, frame in TardisReader(path):
        tickers.extend(e for e in decoder.decode(frame, ts) if isinstance(e, Ticker))
    assert len(tickers) == len(rows) == 7
    checked = 0
    for row, ticker in zip(rows, tickers, strict=True):
        assert isinstance(ticker, Ticker) and ticker.instrument == row["symbol"]
        for key in ("mark_iv", "bid_iv", "ask_iv"):
            if row[key]:
                assert reads_as(getattr(ticker, key), shifted(row[key], 2)), (key, row[key])
                checked += 1
    assert checked == 19  # two rows have no quote on one side (an empty IV)


@pytest.mark.parametrize(
    ("name", "symbol"),
    [
        ("options/ws_ticker_slim_eth_call.json", "ETH-20260627-3500-C"),
        ("options/ws_ticker_slim_eth_put.json", "ETH-20260627-2000-P"),
    ],
)
def test_derive_implied_vols_and_greeks_are_the_strings_sent(name: str, symbol: str) -> None:
    """Derive sends fractions as decimal strings: nothing is scaled, every number reads as sent."""
    data = orjson.loads((FIXTURES / "derive" / name).read_bytes())
    pricing = data["instrument_ticker"]["option_pricing"]
    frame = orjson.dumps(
        {"method": "subscription", "params": {"channel": f"ticker_slim.{symbol}.1000", "data": data}}
    )
    [ticker] = DERIVE.decoder(InstrumentRegistry()).decode(frame, T_LOCAL)
    assert isinstance(ticker, Ticker) and ticker.greeks is not None
    for attr, key in (("mark_iv", "i"), ("bid_iv", "bi"), ("ask_iv", "ai")):
        assert reads_as(getattr(ticker, attr), Decimal(pricing[key]))
    for attr, key in (("delta", "d"), ("gamma", "g"), ("vega", "v"), ("theta", "t"), ("rho", "r")):
        assert reads_as(getattr(ticker.greeks, attr), Decimal(pricing[key]))


@pytest.mark.parametrize("name", ["ws_market_book_msg.json", "nt_py_book.json", "ws_book_snapshot.json"])
def test_polymarket_book_prices_kept_in_ticks_read_as_sent(name: str) -> None:
    """Polymarket's books are kept in integer ticks of 1e-4 and divided back for the event: the
    best prices and every level read as the strings the venue sent."""
    raw = orjson.loads((FIXTURES / "polymarket" / name).read_bytes())
    decoder = POLYMARKET.decoder(InstrumentRegistry())
    events = decoder.decode(orjson.dumps(raw), T_LOCAL)
    books = [e for e in events if isinstance(e, BookUpdate)]
    assert books
    book = books[0]
    msg = next(m for m in (raw if isinstance(raw, list) else [raw]) if m.get("bids") is not None)
    sent_bids = {Decimal(level["price"]) for level in msg["bids"]}
    sent_asks = {Decimal(level["price"]) for level in msg["asks"]}
    assert {Decimal(repr(p)) for p, _ in book.bids} == sent_bids
    assert {Decimal(repr(p)) for p, _ in book.asks} == sent_asks
    assert reads_as(book.best_bid, max(sent_bids))
    assert reads_as(book.best_ask, min(sent_asks))


@pytest.mark.parametrize("sent", ["54.28", "76.95", "0.01", "999.99", "54.281234", "0.000001", "123.4567891"])
def test_an_implied_vol_with_more_decimals_than_deribits_two_is_exact_too(sent: str) -> None:
    """Deribit sends 2 decimals (the fast path); a feed with more (a Tardis export, a future
    format) keeps them all, exactly."""
    text = orjson.dumps(
        orjson.loads((FIXTURES / "deribit" / "ws_ticker_option_empty_bid_2026.json").read_bytes())
    )
    frame = text.replace(b'"mark_iv":73.69', b'"mark_iv":' + sent.encode())
    assert frame != text
    [ticker] = DERIBIT.decoder(InstrumentRegistry()).decode(frame, T_LOCAL)
    assert isinstance(ticker, Ticker) and reads_as(ticker.mark_iv, shifted(sent, 2))
