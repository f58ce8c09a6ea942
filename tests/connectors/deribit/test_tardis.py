"""Tardis.dev CSV datasets of Deribit (`connectors/deribit/tardis.py`): each dataset parses into
the events Deribit's own frames would give, instruments are derived from Deribit names, files
merge in time order, bad input is refused with its line, and the bundled sample backtests end
to end through `tradingd backtest`."""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from tradingd.cli.main import main
from tradingd.connectors.deribit import PLUGIN
from tradingd.connectors.deribit.instruments import option_name
from tradingd.connectors.deribit.tardis import TardisReader, detect_dataset, inspect, instrument_item
from tradingd.engine import (
    BookUpdate,
    ConfigError,
    DataError,
    InstrumentKind,
    MarketEvent,
    OptionRight,
    Ticker,
    Trade,
)
from tradingd.engine.model import InstrumentRegistry

ROOT = Path(__file__).resolve().parent.parent.parent.parent
FIX = ROOT / "tests" / "fixtures" / "tardis"
SAMPLE = FIX / "sample"


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """`main` configures logging onto this test's captured stderr: undo it afterwards, so later
    tests do not log into a closed stream."""
    yield
    structlog.reset_defaults()


def replay(
    path: Path, dataset: str | None = None, **kw: Any
) -> tuple[list[MarketEvent], InstrumentRegistry, Any]:
    """Decode every frame the reader makes with Deribit's own decoder."""
    registry = InstrumentRegistry()
    decoder = PLUGIN.decoder(registry)
    reader = TardisReader(path, dataset, **kw)
    events: list[MarketEvent] = []
    last = 0
    for ts, frame in reader:
        assert ts >= last  # in time order
        last = ts
        events.extend(decoder.decode(frame, ts))
    assert decoder.stats.malformed == 0
    return events, registry, reader


def write_csv(path: Path, header: str, rows: list[str], *, gz: bool = False) -> Path:
    text = (header + "\n" + "\n".join(rows) + "\n").encode()
    path.write_bytes(gzip.compress(text) if gz else text)
    return path


def test_options_chain_rows_become_option_tickers_and_one_level_books() -> None:
    events, registry, reader = replay(FIX / "options_chain.csv")
    tickers = [e for e in events if isinstance(e, Ticker)]
    books = [e for e in events if isinstance(e, BookUpdate)]
    assert len(tickers) == reader.stats.rows == 7
    first = tickers[0]
    assert first.instrument == "BTC-9JUN20-9875-P"
    assert first.ts_local == 1591574400196008000  # local_timestamp (µs) is the replay clock
    assert first.ts_exchange == 1591574399413000000  # Deribit's ms
    assert (first.bid, first.bid_size, first.ask, first.ask_size) == (0.0205, 15.1, 0.0235, 15.2)
    # IVs: percent on the wire, fractions in events.
    assert first.bid_iv == pytest.approx(0.5591) and first.mark_iv == pytest.approx(0.6289)
    assert first.mark == 0.02210436 and first.underlying == 9756.36 and first.last == 0.0295
    assert first.greeks is not None and first.greeks.delta == -0.61752 and first.greeks.rho == -0.22796
    # A row with empty (unknown) columns: None, and no greeks.
    empty = next(t for t in tickers if t.instrument == "BTC-10JUN20-10000-C")
    assert empty.bid is None and empty.ask is None and empty.greeks is None and empty.mark == 0.0316
    # The top of book is a one-level book, sent when it changes, that orders can fill against.
    assert books[0].snapshot and books[0].best_bid == 0.0205 and books[0].best_ask_size == 15.2
    assert next(b for b in books if b.instrument == "BTC-10JUN20-10000-C").best_bid is None
    # Instruments derived from the names, checked against the rows' expiration and strike.
    put = registry.get("deribit", "BTC-9JUN20-9875-P")
    assert put is not None and put.kind is InstrumentKind.OPTION and put.right is OptionRight.PUT
    assert put.strike == Decimal(9875) and put.expiry_ns == 1591689600000000000
    assert put.tick_size == Decimal("0.0001") and put.min_size == Decimal("0.1") and put.quote == "BTC"
    eth = registry.get("deribit", "ETH-9JUN20-250-P")
    assert eth is not None and eth.min_size == 1 and reader.stats.instruments == 5
    # That row's prices (0.12345) are finer than Deribit's option tick: counted, not hidden.
    assert reader.stats.off_grid == 2


def test_incremental_book_rows_of_one_message_make_one_frame_and_snapshots_reset(tmp_path: Path) -> None:
    events, registry, _ = replay(FIX / "deltas_1.csv")
    (book,) = events
    assert isinstance(book, BookUpdate) and book.snapshot
    assert (book.best_bid, book.best_bid_size) == (6421.0, 10000)
    assert (book.best_ask, book.best_ask_size) == (6421.5, 18640)
    assert book.ts_local == 1585699200355684000  # nanosecond timestamps are recognised too
    perp = registry.get("deribit", "BTC-PERPETUAL")
    assert perp is not None and perp.inverse and perp.contract_size == 10 and perp.tick_size == Decimal("0.5")
    # The shared fixture of a reconnect (a second snapshot), as Deribit rows.
    src = (FIX / "deltas_with_snapshot.csv").read_text()
    src = src.replace("binance-futures,BTCUSDT", "deribit,BTC-PERPETUAL")
    path = tmp_path / "deltas.csv"
    path.write_text(src)
    events, _, _ = replay(path, "incremental_book_L2")
    books = [e for e in events if isinstance(e, BookUpdate)]
    assert [b.snapshot for b in books] == [True, False, False, False, True, False, False]
    assert (books[0].best_bid, books[0].best_ask) == (50000.0, 50001.0)
    assert books[3].bids == ((49998.0, 0.0),)  # amount 0: the level is removed
    assert (books[4].best_bid, books[4].best_ask) == (50100.0, 50101.0)  # the old levels are gone
    assert (books[6].best_bid, books[6].best_bid_size, books[6].best_ask) == (50100.0, 3.0, 50101.0)
    assert [b.sequence for b in books] == [1, 2, 3, 4, 5, 6, 7]
    # A file of another exchange is refused on its first row.
    with pytest.raises(DataError, match="exchange 'binance-futures'"):
        replay(FIX / "deltas_with_snapshot.csv")


def test_book_rows_before_any_snapshot_apply_to_an_empty_book(tmp_path: Path) -> None:
    """Tardis FAQ: incremental_book_L2 rows that come before the first snapshot (a file that starts
    mid-day, a symbol listed during the day) apply to an empty book. Today every one of them, and
    so the file's whole book until a snapshot, was dropped without a word."""
    header = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"
    rows = [
        "deribit,BTC-PERPETUAL,1700000000000000,1700000000100000,false,bid,37000.0,100",
        "deribit,BTC-PERPETUAL,1700000000000000,1700000000100000,false,ask,37000.5,200",
        "deribit,BTC-PERPETUAL,1700000001000000,1700000001100000,false,bid,37000.0,0",
        "deribit,BTC-PERPETUAL,1700000001000000,1700000001100000,false,bid,36999.5,50",
        "deribit,BTC-PERPETUAL,1700000002000000,1700000002100000,true,bid,36990.0,10",
        "deribit,BTC-PERPETUAL,1700000002000000,1700000002100000,true,ask,36991.0,20",
    ]
    events, _, _ = replay(write_csv(tmp_path / "book.csv", header, rows))
    books = [e for e in events if isinstance(e, BookUpdate)]
    assert [(b.snapshot, b.best_bid, b.best_bid_size, b.best_ask) for b in books] == [
        (True, 37000.0, 100, 37000.5),  # the first rows start the book from empty
        (False, 36999.5, 50, 37000.5),
        (True, 36990.0, 10, 36991.0),  # the snapshot replaces it
    ]


def test_trades_quotes_and_derivative_ticker(tmp_path: Path) -> None:
    trades = write_csv(
        tmp_path / "trades.csv.gz",
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount",
        [
            "deribit,BTC-PERPETUAL,1583020803145000,1583020803307160,ccc3c1fa,sell,8531.5,2152",
            "deribit,BTC-PERPETUAL,1583020803145000,1583020803307160,282a0445,buy,8531.0,1000",
            "deribit,BTC-PERPETUAL,1583020804000000,1583020804100000,x1,unknown,8531.0,10",
            "deribit,ETH-27MAR20,1583020805000000,1583020805100000,x2,buy,230.25,3",
        ],
        gz=True,
    )
    events, registry, reader = replay(trades)
    t = [e for e in events if isinstance(e, Trade)]
    assert [(e.instrument, e.side.value, e.price, e.size, e.trade_id) for e in t] == [
        ("BTC-PERPETUAL", "sell", 8531.5, 2152, "ccc3c1fa"),
        ("BTC-PERPETUAL", "buy", 8531.0, 1000, "282a0445"),
        ("ETH-27MAR20", "buy", 230.25, 3, "x2"),
    ]
    assert reader.stats.frames == 2  # the two rows of one message: one frame
    assert reader.stats.unknown_side == 1
    future = registry.get("deribit", "ETH-27MAR20")
    assert future is not None and future.kind is InstrumentKind.FUTURE
    assert future.expiry_ns == 1585296000 * 10**9

    # Tardis's normalized Deribit derivative_ticker message, as its CSV row.
    m = orjson.loads((FIX / "derivative_ticker.json").read_bytes())
    row = (
        f"deribit,{m['symbol']},1571830469302000,1571830469416000,1571846400000000,{m['fundingRate']},,"
        f"{m['openInterest']},{m['lastPrice']},{m['indexPrice']},{m['markPrice']}"
    )
    ticker_csv = write_csv(
        tmp_path / "dt.csv",
        "exchange,symbol,timestamp,local_timestamp,funding_timestamp,funding_rate,predicted_funding_rate,"
        "open_interest,last_price,index_price,mark_price",
        [row],
    )
    (tk,) = replay(ticker_csv)[0]
    assert isinstance(tk, Ticker) and tk.instrument == "BTC-PERPETUAL"
    assert (tk.mark, tk.index, tk.last, tk.open_interest) == (7987.56, 7989.28, 7987.5, 84129491)
    assert tk.bid is None and tk.ts_local == 1571830469416000000 and tk.ts_exchange == 1571830469302000000

    quotes = write_csv(
        tmp_path / "q.csv",
        "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount",
        [
            "deribit,BTC-PERPETUAL,1571830469302000,1571830469416000,20,7988.0,7987.5,30",
            "deribit,BTC-PERPETUAL,1571830469402000,1571830469516000,20,7988.0,7987.5,30",
            "deribit,BTC-PERPETUAL,1571830469502000,1571830469616000,,,7987.0,10",
        ],
    )
    events, _, _ = replay(quotes)
    assert [type(e).__name__ for e in events] == ["Ticker", "BookUpdate", "Ticker", "Ticker", "BookUpdate"]
    q = events[0]
    assert isinstance(q, Ticker) and (q.bid, q.bid_size, q.ask, q.ask_size) == (7987.5, 30, 7988.0, 20)
    last = events[-1]
    assert isinstance(last, BookUpdate) and last.best_bid == 7987.0 and last.best_ask is None


def test_datasets_are_recognised_by_header_and_files_merge_by_time(tmp_path: Path) -> None:
    header = (FIX / "options_chain.csv").read_text().splitlines()[0].split(",")
    assert detect_dataset(header) == "options_chain"
    assert detect_dataset(["exchange", "symbol", "timestamp", "local_timestamp", "x"]) is None
    folder = tmp_path / "day"
    folder.mkdir()
    (folder / "chain.csv").write_bytes((FIX / "options_chain.csv").read_bytes())
    write_csv(
        folder / "t.csv.gz",
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount",
        [
            "deribit,BTC-PERPETUAL,1591574400300000,1591574400300000,a,buy,9750.5,10",
            "deribit,BTC-PERPETUAL,1591574406000000,1591574406000000,b,sell,9751.0,20",
        ],
        gz=True,
    )
    events, _, reader = replay(folder)
    order = [(e.type, e.instrument) for e in events if e.type in ("ticker", "trade")][:4]
    assert order == [
        ("ticker", "BTC-9JUN20-9875-P"),
        ("trade", "BTC-PERPETUAL"),
        ("ticker", "BTC-9JUN20-9875-P"),
        ("ticker", "BTC-9JUN20-10000-C"),
    ]
    assert reader.bytes_read == reader.size  # all of both files read
    info = inspect(folder)
    assert {f["dataset"] for f in info["files"]} == {"options_chain", "trades"}
    assert info["instruments"] == {"option": 5, "perpetual": 1}


def test_bad_rows_name_their_line_or_are_counted(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "t.csv",
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount",
        [
            "deribit,BTC-PERPETUAL,1591574400300000,1591574400300000,a,buy,9750.5,10",
            "deribit,BTC-PERPETUAL,1591574400300000,1591574400400000,b,buy,abc,10",
            "deribit,BTC-PERPETUAL,1591574400300000,1591574400200000,c,buy,9750.5,10",
            "deribit,BTC-FS-26JUN20_PERP,1591574400300000,1591574400500000,d,buy,5.5,10",
            "deribit,BTC-PERPETUAL,1591574400300000",
        ],
    )
    with pytest.raises(DataError, match=r"t\.csv:3: could not convert string to float: 'abc'"):
        replay(path)
    events, _, reader = replay(path, skip_bad=True)
    assert reader.bad_lines == 2 and reader.stats.unsupported == 1  # the combo is skipped
    assert reader.stats.reordered == 1  # a row back in time replays at the time before it
    assert [e.ts_local for e in events if isinstance(e, Trade)] == [1591574400300000000, 1591574400400000000]
    with pytest.raises(DataError, match="not a Tardis trades file"):
        replay(FIX / "options_chain.csv", "trades")
    with pytest.raises(DataError, match="no such file"):
        TardisReader(tmp_path / "missing.csv")
    with pytest.raises(ConfigError, match="not a Tardis data format"):
        PLUGIN.open_data(path, "tardis-nope")


@given(
    ccy=st.sampled_from(["BTC", "ETH"]),
    days=st.integers(0, 3000),
    strike=st.one_of(st.integers(1, 500_000), st.decimals("0.125", "99", places=3)),
    call=st.booleans(),
)
def test_option_names_round_trip_through_instrument_definitions(
    ccy: str, days: int, strike: int | Decimal, call: bool
) -> None:
    expiry_ms = (1_577_865_600 + days * 86_400) * 1000  # 08:00 UTC from 2020-01-01
    right = OptionRight.CALL if call else OptionRight.PUT
    name = option_name(ccy, expiry_ms, Decimal(strike), right)
    got = instrument_item(name, expiration_us=expiry_ms * 1000, strike=float(strike), option_type=right.value)
    assert got is not None
    item, approximated = got
    assert not approximated
    assert item["expiration_timestamp"] == expiry_ms and item["strike"] == float(strike)
    assert item["option_type"] == right.value and item["base_currency"] == ccy
    with pytest.raises(ValueError, match="does not match"):
        instrument_item(name, expiration_us=(expiry_ms + 86_400_000) * 1000)


def test_names_that_are_not_instruments_and_approximated_ones() -> None:
    assert instrument_item("BTC-FS-26JUN20_PERP") is None
    assert instrument_item("btc-perpetual") is None
    linear = instrument_item("SOL_USDC-PERPETUAL")
    assert linear is not None and linear[1] is True  # not in the table: approximated, and said so
    assert linear[0]["quote_currency"] == "USDC" and linear[0]["instrument_type"] == "linear"


@pytest.mark.slow
def test_the_tardis_sample_backtests_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "run" / "report.json"
    cfg = ROOT / "config" / "backtest-tardis.toml"
    assert main(["backtest", "--config", str(cfg), "--report", str(report), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "gamma_btc" in out
    r = orjson.loads(report.read_bytes())
    assert r["events"] > 10_000 and r["malformed_frames"] == 0 and r["bad_lines"] == 0
    assert r["decoders"]["deribit"]["gaps"] == 0
    s = r["strategies"]["gamma_btc"]
    assert s["errors"] == 0 and s["rejected"] == 0
    # It bought its option (from the options_chain's book) and hedged on the perpetual's book.
    option = [k for k in s["positions"] if k.startswith("deribit:BTC-") and k.endswith("-C")]
    assert option and s["positions"][option[0]] == "10.0"
    assert s["orders"] >= 3 and s["fills"] >= 3 and s["fees"] > 0 and s["turnover"] > 0
    assert "deribit:BTC-PERPETUAL" in s["positions"]
    assert os.path.getsize(report) > 0


def test_data_inspect_says_what_a_file_holds(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["data", "inspect", "--venue", "deribit", "--format", "tardis", str(FIX / "options_chain.csv")])
        == 0
    )
    out = capsys.readouterr().out
    assert "frames 19 (malformed 0, bad lines 0)" in out
    assert "events: book 7, ticker 7" in out and "instruments: option 5" in out and "off_grid 2" in out
    assert (
        main(["data", "inspect", "--venue", "deribit", "--format", "nope", str(FIX / "options_chain.csv")])
        == 2
    )
    assert "deribit reads no 'nope' data" in capsys.readouterr().err
    assert (
        main(["data", "inspect", "--venue", "deribit", "--format", "tardis", str(FIX / "trades_1.csv")]) == 1
    )
    assert "exchange 'bitmex'" in capsys.readouterr().err
