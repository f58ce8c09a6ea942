"""`DeribitDecoder` against the real captured frames (tests/fixtures/deribit, VENUES.md §1.6
samples) and against hypothesis-generated garbage: every channel's fields, book sequencing (gap,
ignored changes, resync), instruments learned from responses, and the error contract (only
`MalformedFrame`, and nothing changed)."""

from __future__ import annotations

import copy
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.examples import examples
from tests.support.recursion import msgspec_refuses
from tradingd.connectors.deribit import PLUGIN
from tradingd.connectors.deribit.codec import DeribitDecoder
from tradingd.engine import (
    BookUpdate,
    Greeks,
    InstrumentKind,
    MalformedFrame,
    MarketEvent,
    OrderBook,
    Side,
    Status,
    StatusKind,
    Ticker,
    Trade,
)
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.venue import Decoder, DecoderStats
from tradingd.engine.venue.plugins import MAX_NESTING, SHORT_FRAME, DecoderFault

FIXTURES = Path(__file__).parent.parent.parent / "fixtures" / "deribit"
T_LOCAL = 1_700_000_000_123_456_789
PERP = "BTC-PERPETUAL"
OPTION = "BTC-26JUN26-100000-C"

# VENUES.md §1.6: a live-captured option ticker (the `data` part), to be wrapped in its envelope.
OPTION_TICKER_DATA: dict[str, Any] = {
    "timestamp": 1752057345721,
    "state": "open",
    "stats": {"high": None, "low": None, "price_change": None, "volume": 0, "volume_usd": 0},
    "greeks": {"delta": 0.71138, "gamma": 0.00001, "vega": 389.29255, "theta": -25.13021, "rho": 524.77921},
    "index_price": 108827.5,
    "instrument_name": OPTION,
    "last_price": 0.247,
    "settlement_price": 0.24231149,
    "min_price": 0.1975,
    "max_price": 0.3015,
    "open_interest": 1.2,
    "mark_price": 0.2425,
    "best_bid_price": 0.2395,
    "mark_iv": 45.43,
    "ask_iv": 46.18,
    "bid_iv": 44.54,
    "underlying_price": 116086.34,
    "underlying_index": "BTC-26JUN26",
    "best_ask_price": 0.245,
    "interest_rate": 0,
    "estimated_delivery_price": 108827.5,
    "best_ask_amount": 2,
    "best_bid_amount": 2,
}


def load(name: str) -> Any:
    """A fixture file, parsed."""
    return orjson.loads((FIXTURES / name).read_bytes())


def wire(msg: Any) -> bytes:
    """A message as the compact frame the venue sends."""
    return orjson.dumps(msg)


def frame(name: str) -> bytes:
    return wire(load(name))


def notification(channel: str, data: Any) -> bytes:
    return wire({"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}})


def book_change(prev: int, change_id: int, bids: list[Any], asks: list[Any]) -> bytes:
    data = {
        "type": "change",
        "instrument_name": PERP,
        "timestamp": 1699999999600,
        "change_id": change_id,
        "prev_change_id": prev,
        "bids": bids,
        "asks": asks,
    }
    return notification(f"book.{PERP}.100ms", data)


def state_of(dec: DeribitDecoder) -> Any:
    """Everything a frame may change, as plain data (books, sequence ids, instrument states,
    registry, counters other than the per-frame ones)."""

    def book(b: OrderBook) -> Any:
        return (dict(b.bids), dict(b.asks), b.sequence, b.valid, b.quantum, b.top())

    return (
        {k: book(v) for k, v in dec._books.items()},
        {k: book(v) for k, v in dec._grouped.items()},
        dict(dec._states),
        sorted((i.symbol, i.tick_size, i.min_size, i.kind) for i in dec.registry),
        dec.stats.ignored_changes,
        dec.stats.skipped_instruments,
        dec.stats.gaps,
    )


def assert_consistent(dec: DeribitDecoder) -> None:
    """Each kept book's best levels agree with its levels, and no level is empty."""
    for b in [*dec._books.values(), *dec._grouped.values()]:
        assert all(s > 0 for s in b.bids.values())
        assert all(s > 0 for s in b.asks.values())
        assert b.best_bid_ticks == max(b.bids, default=None)
        assert b.best_ask_ticks == min(b.asks, default=None)


@pytest.fixture
def dec() -> DeribitDecoder:
    return DeribitDecoder(InstrumentRegistry())


@pytest.fixture
def synced(dec: DeribitDecoder) -> DeribitDecoder:
    """A decoder whose BTC-PERPETUAL book holds ws_book_snapshot.json."""
    dec.decode(frame("ws_book_snapshot.json"), T_LOCAL)
    return dec


def test_the_plugin_builds_a_decoder_that_follows_the_protocol() -> None:
    registry = InstrumentRegistry()
    dec = PLUGIN.decoder(registry)
    assert isinstance(dec, DeribitDecoder)
    assert isinstance(dec, Decoder)
    assert (dec.venue, dec.registry, dec.stats) == ("deribit", registry, DecoderStats())
    assert dec.last_unknown_channel is None
    assert dec.book(PERP) is None


# ------------------------------------------------------------------------------------ tickers


def test_perpetual_ticker_fixture(dec: DeribitDecoder) -> None:
    events = dec.decode(frame("ws_ticker.json"), T_LOCAL)
    assert events == [
        Ticker(
            venue="deribit",
            instrument=PERP,
            ts_exchange=1765541474086 * 1_000_000,
            ts_local=T_LOCAL,
            bid=92283.5,
            bid_size=117660.0,
            ask=92284.0,
            ask_size=186520.0,
            last=92283.5,
            mark=92281.78,
            index=92263.55,
            underlying=None,
            open_interest=1132329370.0,
            mark_iv=None,
            bid_iv=None,
            ask_iv=None,
            greeks=None,
        )
    ]
    assert type(events[0]) is Ticker
    assert dec.stats.frames == 1
    assert dec.stats.events == 1


def test_option_ticker_ivs_are_fractions_and_greeks_typed(dec: DeribitDecoder) -> None:
    [ev] = dec.decode(notification(f"ticker.{OPTION}.100ms", OPTION_TICKER_DATA), T_LOCAL)
    assert isinstance(ev, Ticker)
    assert ev.instrument == OPTION
    assert ev.ts_exchange == 1752057345721_000_000
    assert (ev.bid, ev.bid_size, ev.ask, ev.ask_size) == (0.2395, 2, 0.245, 2)
    assert (ev.last, ev.mark, ev.index, ev.underlying, ev.open_interest) == (
        0.247,
        0.2425,
        108827.5,
        116086.34,
        1.2,
    )
    assert ev.mark_iv == pytest.approx(0.4543, abs=1e-12)
    assert ev.bid_iv == pytest.approx(0.4454, abs=1e-12)
    assert ev.ask_iv == pytest.approx(0.4618, abs=1e-12)
    assert type(ev.greeks) is Greeks
    assert ev.greeks == Greeks(delta=0.71138, gamma=0.00001, vega=389.29255, theta=-25.13021, rho=524.77921)


def test_option_ticker_null_best_bid_and_iv(dec: DeribitDecoder) -> None:
    data = {**OPTION_TICKER_DATA, "best_bid_price": None, "best_bid_amount": 0, "bid_iv": None}
    [ev] = dec.decode(notification(f"ticker.{OPTION}.100ms", data), T_LOCAL)
    assert isinstance(ev, Ticker)
    assert ev.bid is None
    assert ev.bid_iv is None
    assert ev.mid is None
    assert ev.ask == 0.245
    assert ev.mark_iv == pytest.approx(0.4543, abs=1e-12)


def test_option_ticker_without_greeks_or_rho(dec: DeribitDecoder) -> None:
    no_greeks = {k: v for k, v in OPTION_TICKER_DATA.items() if k != "greeks"}
    [ev] = dec.decode(notification(f"ticker.{OPTION}.100ms", no_greeks), T_LOCAL)
    assert isinstance(ev, Ticker)
    assert ev.greeks is None
    no_rho = {**OPTION_TICKER_DATA, "greeks": {"delta": 0.5, "gamma": 0.0, "vega": 1.0, "theta": -1.0}}
    [ev] = dec.decode(notification(f"ticker.{OPTION}.100ms", no_rho), T_LOCAL)
    assert isinstance(ev, Ticker)
    assert ev.greeks == Greeks(0.5, 0.0, 1.0, -1.0, None)


def test_instrument_state_changes_are_reported_before_the_ticker(dec: DeribitDecoder) -> None:
    def ticker(state: str, name: str = OPTION) -> bytes:
        return notification(
            f"ticker.{name}.100ms", {**OPTION_TICKER_DATA, "instrument_name": name, "state": state}
        )

    assert [type(e) for e in dec.decode(ticker("open"), T_LOCAL)] == [Ticker]  # first sight, open
    assert [type(e) for e in dec.decode(ticker("open"), T_LOCAL)] == [Ticker]
    status, tick = dec.decode(ticker("settlement"), T_LOCAL)
    assert isinstance(status, Status)
    assert isinstance(tick, Ticker)
    assert status.status is StatusKind.INSTRUMENT_STATE
    assert status.instrument == OPTION
    assert status.ts_exchange == tick.ts_exchange
    assert status.data == {"state": "settlement", "previous": "open"}
    assert [type(e) for e in dec.decode(ticker("settlement"), T_LOCAL)] == [Ticker]
    # A first sight of anything but "open" is news too.
    status, _ = dec.decode(ticker("halted", "BTC-26JUN26-90000-P"), T_LOCAL)
    assert isinstance(status, Status)
    assert status.data == {"state": "halted", "previous": None}
    assert dec.stats.events == 7


def test_quote_fixture(dec: DeribitDecoder) -> None:
    assert dec.decode(frame("ws_quote.json"), T_LOCAL) == [
        Ticker(
            venue="deribit",
            instrument=PERP,
            ts_exchange=1765541767174_000_000,
            ts_local=T_LOCAL,
            bid=92288.0,
            bid_size=133440.0,
            ask=92288.5,
            ask_size=99470.0,
        )
    ]


def test_price_index(dec: DeribitDecoder) -> None:
    # VENUES.md §1.2 notification sample.
    data = {"timestamp": 1535098298227, "price": 6521.17, "index_name": "btc_usd"}
    assert dec.decode(notification("deribit_price_index.btc_usd", data), T_LOCAL) == [
        Ticker(
            venue="deribit",
            instrument="btc_usd",
            ts_exchange=1535098298227_000_000,
            ts_local=T_LOCAL,
            index=6521.17,
        )
    ]


# -------------------------------------------------------------------------------------- books


def test_book_snapshot_then_delta(dec: DeribitDecoder) -> None:
    [snap] = dec.decode(frame("ws_book_snapshot.json"), T_LOCAL)
    assert snap == BookUpdate(
        venue="deribit",
        instrument=PERP,
        ts_exchange=1699999999000_000_000,
        ts_local=T_LOCAL,
        snapshot=True,
        bids=((42500.0, 1000.0), (42499.5, 500.0), (42499.0, 750.0), (42498.5, 1200.0), (42498.0, 800.0)),
        asks=((42501.0, 800.0), (42501.5, 600.0), (42502.0, 400.0), (42502.5, 900.0), (42503.0, 550.0)),
        best_bid=42500.0,
        best_bid_size=1000.0,
        best_ask=42501.0,
        best_ask_size=800.0,
        sequence=123456789,
    )
    [delta] = dec.decode(frame("ws_book_delta.json"), T_LOCAL + 1)
    # bids: 42500 1000 -> 950, 42498.5 1200 -> 300; asks: 42501 deleted, 42501.5 600 -> 700.
    assert delta == BookUpdate(
        venue="deribit",
        instrument=PERP,
        ts_exchange=1699999999500_000_000,
        ts_local=T_LOCAL + 1,
        snapshot=False,
        bids=((42500.0, 950.0), (42498.5, 300.0)),
        asks=((42501.0, 0.0), (42501.5, 700.0)),
        best_bid=42500.0,
        best_bid_size=950.0,
        best_ask=42501.5,
        best_ask_size=700.0,
        sequence=123456790,
    )
    book = dec.book(PERP)
    assert book is not None
    assert book.depth() == (
        [(42500.0, 950.0), (42499.5, 500.0), (42499.0, 750.0), (42498.5, 300.0), (42498.0, 800.0)],
        [(42501.5, 700.0), (42502.0, 400.0), (42502.5, 900.0), (42503.0, 550.0)],
    )
    assert book.sequence == 123456790
    assert book.valid
    assert dec.stats.gaps == 0


def test_a_gap_invalidates_the_book_until_the_next_snapshot(synced: DeribitDecoder) -> None:
    dec = synced
    book = dec.book(PERP)
    assert book is not None
    top = book.top()
    levels = (dict(book.bids), dict(book.asks))

    [gap] = dec.decode(book_change(123456000, 123456791, [["change", 42500.0, 1.0]], []), T_LOCAL)
    assert isinstance(gap, Status)
    assert gap.status is StatusKind.BOOK_GAP
    assert gap.instrument == PERP
    assert gap.data == {
        "reason": "sequence_gap",
        "expected": 123456789,
        "received": 123456000,
        "change_id": 123456791,
    }
    assert dec.stats.gaps == 1
    assert not book.valid
    assert book.top() == top  # not patched
    assert (dict(book.bids), dict(book.asks)) == levels

    # Even the change that would have followed the snapshot is ignored now, silently.
    assert dec.decode(frame("ws_book_delta.json"), T_LOCAL) == []
    assert dec.decode(book_change(123456790, 123456792, [["delete", 42500.0, 0.0]], []), T_LOCAL) == []
    assert dec.stats.ignored_changes == 2
    assert dec.stats.gaps == 1
    assert book.top() == top

    resync, snap = dec.decode(frame("ws_book_snapshot.json"), T_LOCAL)
    assert isinstance(resync, Status)
    assert resync.status is StatusKind.BOOK_RESYNC
    assert resync.instrument == PERP
    assert isinstance(snap, BookUpdate)
    assert snap.snapshot
    again = dec.book(PERP)  # the same book, resynchronised in place
    assert again is book
    assert again.valid
    assert again.sequence == 123456789
    [delta] = dec.decode(frame("ws_book_delta.json"), T_LOCAL)
    assert isinstance(delta, BookUpdate)
    assert (delta.best_ask, delta.best_ask_size) == (42501.5, 700.0)


def test_a_change_before_any_snapshot_is_ignored(dec: DeribitDecoder) -> None:
    assert dec.decode(frame("ws_book_delta.json"), T_LOCAL) == []
    assert dec.stats.ignored_changes == 1
    assert dec.book(PERP) is None
    assert dec.stats.gaps == 0


def test_snapshot_without_prev_change_id_and_empty_sides(dec: DeribitDecoder) -> None:
    # §1.6: Deribit omits prev_change_id on the first message (NT's fixture has null).
    msg = load("ws_book_snapshot.json")
    del msg["params"]["data"]["prev_change_id"]
    msg["params"]["data"]["asks"] = []
    [ev] = dec.decode(wire(msg), T_LOCAL)
    assert isinstance(ev, BookUpdate)
    assert (ev.best_ask, ev.best_ask_size) == (None, None)
    assert ev.asks == ()
    msg["params"]["data"]["bids"] = []
    dec.decode(wire(msg), T_LOCAL)
    book = dec.book(PERP)
    assert book is not None
    assert book.levels == 0


def test_deleting_a_missing_level_is_tolerated(synced: DeribitDecoder) -> None:
    [ev] = synced.decode(book_change(123456789, 123456790, [["delete", 40000.0, 0.0]], []), T_LOCAL)
    assert isinstance(ev, BookUpdate)
    assert ev.bids == ((40000.0, 0.0),)
    assert (ev.best_bid, ev.best_bid_size) == (42500.0, 1000.0)


def test_a_delete_removes_the_level_whatever_amount_it_carries(synced: DeribitDecoder) -> None:
    [ev] = synced.decode(book_change(123456789, 123456790, [["delete", 42500.0, 1000.0]], []), T_LOCAL)
    assert isinstance(ev, BookUpdate)
    assert ev.bids == ((42500.0, 0.0),)
    assert (ev.best_bid, ev.best_bid_size) == (42499.5, 500.0)


def test_grouped_book_is_a_full_snapshot_every_time(dec: DeribitDecoder) -> None:
    [ev] = dec.decode(frame("ws_book_grouped_snapshot.json"), T_LOCAL)
    assert isinstance(ev, BookUpdate)
    assert ev.snapshot
    assert ev.sequence == 136725664747
    assert ev.ts_exchange == 1769246173071_000_000
    assert len(ev.bids) == len(ev.asks) == 10
    assert ev.bids[0] == (89532.5, 254900.0)
    assert ev.asks[-1] == (89545.5, 29500.0)
    assert (ev.best_bid, ev.best_bid_size, ev.best_ask, ev.best_ask_size) == (
        89532.5,
        254900.0,
        89533.0,
        91570.0,
    )
    # The next message replaces the whole book, with no change-id chain to check.
    msg = load("ws_book_grouped_snapshot.json")
    msg["params"]["data"].update(change_id=5, bids=[[89000.0, 1.0]], asks=[])
    [ev] = dec.decode(wire(msg), T_LOCAL)
    assert isinstance(ev, BookUpdate)
    assert (ev.best_bid, ev.best_bid_size, ev.best_ask, ev.sequence) == (89000.0, 1.0, None, 5)
    book = dec.book(PERP)
    assert book is not None
    assert book.depth() == ([(89000.0, 1.0)], [])
    assert dec.stats.gaps == 0


def test_grouped_and_incremental_books_do_not_mix(synced: DeribitDecoder) -> None:
    dec = synced
    dec.decode(frame("ws_book_grouped_snapshot.json"), T_LOCAL)
    book = dec.book(PERP)
    assert book is not None
    assert book.top()[0] == 42500.0  # the incremental book is the one kept for the instrument
    [ev] = dec.decode(frame("ws_book_delta.json"), T_LOCAL)  # its chain is intact
    assert isinstance(ev, BookUpdate)
    assert dec.stats.gaps == 0


# ------------------------------------------------------------------------------------- trades


def test_trades_fixture(dec: DeribitDecoder) -> None:
    events = dec.decode(frame("ws_trades.json"), T_LOCAL)
    assert events == [
        Trade("deribit", PERP, 1765531356452_000_000, T_LOCAL, 92294.5, 10.0, Side.SELL, "403691824"),
        Trade("deribit", PERP, 1765531356452_000_000, T_LOCAL, 92288.5, 750.0, Side.SELL, "403691825"),
    ]
    assert dec.stats.events == 2


def test_trades_by_kind_and_currency_take_each_item_instrument(dec: DeribitDecoder) -> None:
    items = [
        {
            "trade_id": "1",
            "instrument_name": OPTION,
            "timestamp": 1,
            "price": 0.1,
            "amount": 1.0,
            "direction": "buy",
        },
        {"trade_id": 2, "instrument_name": "BTC-26JUN26-90000-P", "timestamp": 2, "price": 0.2, "amount": 3},
    ]
    items[1]["direction"] = "sell"
    events = dec.decode(notification("trades.option.BTC.100ms", items), T_LOCAL)
    assert [(e.instrument, e.side, e.trade_id) for e in events if isinstance(e, Trade)] == [
        (OPTION, Side.BUY, "1"),
        ("BTC-26JUN26-90000-P", Side.SELL, "2"),
    ]


def test_combo_trade_is_one_trade_without_its_legs(dec: DeribitDecoder) -> None:
    assert dec.decode(frame("ws_trades_option_combo.json"), T_LOCAL) == [
        Trade(
            venue="deribit",
            instrument="BTC-CS-19MAY26-70000_75000",
            ts_exchange=1779118041756_000_000,
            ts_local=T_LOCAL,
            price=0.0639,
            size=0.1,
            side=Side.SELL,
            trade_id="244365193",
        )
    ]


# --------------------------------------------------------------- unknown channels, control frames


@pytest.mark.parametrize(
    ("name", "channel"),
    [
        ("ws_volatility_index.json", "deribit_volatility_index.btc_usd"),
        ("ws_chart.json", "chart.trades.BTC-PERPETUAL.1"),
        ("ws_portfolio.json", "user.portfolio.any"),
    ],
)
def test_unknown_channels_are_counted_and_named(dec: DeribitDecoder, name: str, channel: str) -> None:
    assert dec.decode(frame(name), T_LOCAL) == []
    assert dec.decode(frame(name), T_LOCAL) == []
    assert dec.stats.unknown_channel == 2
    assert dec.last_unknown_channel == channel
    assert dec.stats.malformed == 0
    assert dec.stats.events == 0


def test_control_frames(dec: DeribitDecoder) -> None:
    for name in ("ws_test_request.json", "ws_subscribe_response.json", "ws_error.json"):
        assert dec.decode(frame(name), T_LOCAL) == []
    assert dec.decode(b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"heartbeat"}}', 0) == []
    assert dec.stats.control == 4
    assert dec.stats.frames == 4
    assert dec.stats.unknown_channel == 0
    assert len(dec.registry) == 0


# -------------------------------------------------------------------------------- instruments


def test_get_instruments_response_teaches_the_registry(dec: DeribitDecoder) -> None:
    assert dec.decode(frame("http_get_instruments.json"), T_LOCAL) == []
    assert dec.stats.control == 1
    got = {i.symbol: (i.kind, i.tick_size, i.min_size, i.contract_size) for i in dec.registry}
    assert got == {
        PERP: (InstrumentKind.PERPETUAL, Decimal("0.5"), Decimal("10.0"), Decimal("10.0")),
        "BTC-27DEC24": (InstrumentKind.FUTURE, Decimal("0.5"), Decimal("10.0"), Decimal("10.0")),
        "BTC-27DEC24-100000-C": (InstrumentKind.OPTION, Decimal("0.0005"), Decimal("0.1"), Decimal("1.0")),
        "BTC-COMBO-1": (InstrumentKind.FUTURE, Decimal("0.01"), Decimal("1.0"), Decimal("1.0")),
    }
    # A book created afterwards prices on the instrument's tick, not on the 1e-8 fallback.
    dec.decode(frame("ws_book_snapshot.json"), T_LOCAL)
    book = dec.book(PERP)
    assert book is not None
    assert book.quantum == 0.5
    assert book.best_bid_ticks == 85000


def test_get_instrument_response_teaches_the_registry(dec: DeribitDecoder) -> None:
    dec.decode(frame("http_get_instrument_option.json"), T_LOCAL)
    inst = dec.registry.get("deribit", "BTC-27DEC24-100000-C")
    assert inst is not None
    assert inst.kind is InstrumentKind.OPTION
    assert inst.tick_size == Decimal("0.0005")
    assert inst.min_size == Decimal("0.1")
    assert inst.strike == Decimal("100000.0")


def test_a_book_of_an_unknown_instrument_uses_a_fine_quantum(dec: DeribitDecoder) -> None:
    dec.decode(frame("ws_book_snapshot.json"), T_LOCAL)
    book = dec.book(PERP)
    assert book is not None
    assert book.quantum == 1e-8
    assert book.top() == (42500.0, 1000.0, 42501.0, 800.0)


def test_bad_instrument_items_are_skipped_and_counted(dec: DeribitDecoder) -> None:
    good = load("http_get_instrument_option.json")["result"]
    bad_kind = {**good, "instrument_name": "X-1", "kind": "weird"}
    zero_tick = {**good, "instrument_name": "X-2", "tick_size": 0}
    not_a_name = {**good, "instrument_name": 5}
    msg = {"jsonrpc": "2.0", "id": 7, "result": [good, bad_kind, zero_tick, not_a_name, "junk"]}
    assert dec.decode(wire(msg), T_LOCAL) == []
    assert [i.symbol for i in dec.registry] == ["BTC-27DEC24-100000-C"]
    assert dec.stats.skipped_instruments == 4
    assert dec.stats.malformed == 0


def test_other_list_results_teach_nothing(dec: DeribitDecoder) -> None:
    # get_open_orders_by_currency (VENUES.md §1.7): items have instrument_name but are orders.
    orders = [{"order_id": "146062", "instrument_name": "BTC-15FEB19-3250-P", "price": 0.0028, "amount": 10}]
    assert dec.decode(wire({"jsonrpc": "2.0", "id": 1953, "result": orders}), T_LOCAL) == []
    assert len(dec.registry) == 0
    assert dec.stats.skipped_instruments == 0
    assert dec.stats.control == 1


# ---------------------------------------------------------------------------------- malformed


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{not json",
        b"[1, 2, 3]",
        b'"subscription"',
        b"{}",
        b'{"jsonrpc":"2.0","method":"subscription"}',
        b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":7,"data":{}}}',
        b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":["x"],"data":{}}}',
        b'{"jsonrpc":"2.0","method":"subscription","params":[]}',
        b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.X.100ms"}}',
        b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.X.100ms","data":[]}}',
        b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.X.100ms","data":{}}}',
        b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.X.100ms","data":[1]}}',
        b'{"jsonrpc":"2.0","id":1}',
        b'{"jsonrpc":"2.0","method":"public/test"}',
    ],
)
def test_undecodable_frames_raise_malformed_frame(dec: DeribitDecoder, raw: bytes) -> None:
    with pytest.raises(MalformedFrame) as info:
        dec.decode(raw, T_LOCAL)
    assert info.value.venue == "deribit"
    assert dec.stats.malformed == 1
    assert dec.stats.frames == 1
    assert dec.stats.events == 0


def test_decode_message_takes_a_parsed_message(dec: DeribitDecoder) -> None:
    [ev] = dec.decode_message(load("ws_quote.json"), T_LOCAL)
    assert isinstance(ev, Ticker)
    assert ev.bid == 92288.0
    with pytest.raises(MalformedFrame):
        dec.decode_message([load("ws_quote.json")], T_LOCAL)
    assert (dec.stats.frames, dec.stats.events, dec.stats.malformed) == (2, 1, 1)


def test_a_bad_level_in_the_middle_leaves_the_book_unchanged(synced: DeribitDecoder) -> None:
    before = state_of(synced)
    for bad in (
        ["change", "42499.5", 1.0],
        ["change", 42499.5, -1.0],
        ["resize", 42499.5, 1.0],
        ["change", 42499.5],
    ):
        change = book_change(
            123456789, 123456790, [["change", 42500.0, 1.0], bad, ["delete", 42499.0, 0]], []
        )
        with pytest.raises(MalformedFrame):
            synced.decode(change, T_LOCAL)
        assert state_of(synced) == before
    with pytest.raises(MalformedFrame):  # the same for a bad ask after good bids
        synced.decode(
            book_change(123456789, 123456790, [["delete", 42500.0, 0.0]], [["new", True, 1.0]]), T_LOCAL
        )
    assert state_of(synced) == before
    # ...and a snapshot with a bad level does not clear it either.
    snap = load("ws_book_snapshot.json")
    snap["params"]["data"]["asks"][2] = ["new", None, 1.0]
    with pytest.raises(MalformedFrame):
        synced.decode(wire(snap), T_LOCAL)
    assert state_of(synced) == before
    assert synced.stats.malformed == 6
    # The book still takes the change that follows its snapshot.
    [ev] = synced.decode(frame("ws_book_delta.json"), T_LOCAL)
    assert isinstance(ev, BookUpdate)


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("ws_book_snapshot.json", "type", "partial"),
        ("ws_book_snapshot.json", "change_id", "123456789"),
        ("ws_book_snapshot.json", "bids", {"new": 1}),
        ("ws_book_delta.json", "prev_change_id", None),
        ("ws_book_grouped_snapshot.json", "bids", [[89532.5, -1.0]]),
        ("ws_book_grouped_snapshot.json", "asks", [[89533.0, 1.0, 2.0]]),
        ("ws_book_grouped_snapshot.json", "change_id", 1.5),
    ],
)
def test_malformed_book_messages_change_nothing(
    synced: DeribitDecoder, name: str, field: str, value: Any
) -> None:
    synced.decode(frame("ws_book_grouped_snapshot.json"), T_LOCAL)
    before = state_of(synced)
    msg = load(name)
    msg["params"]["data"][field] = value
    with pytest.raises(MalformedFrame):
        synced.decode(wire(msg), T_LOCAL)
    assert state_of(synced) == before


def test_a_ticker_with_a_string_price_is_malformed(dec: DeribitDecoder) -> None:
    msg = load("ws_ticker.json")
    msg["params"]["data"]["best_bid_price"] = "92283.5"
    with pytest.raises(MalformedFrame, match="best_bid_price"):
        dec.decode(wire(msg), T_LOCAL)
    msg["params"]["data"]["state"] = "halted"  # must not be recorded by a rejected frame
    with pytest.raises(MalformedFrame):
        dec.decode(wire(msg), T_LOCAL)
    [ev] = dec.decode(frame("ws_ticker.json"), T_LOCAL)  # first sight of "open": no status
    assert isinstance(ev, Ticker)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("timestamp", 1.5, "timestamp"),
        ("timestamp", None, "timestamp"),
        ("instrument_name", None, "instrument_name"),
        ("greeks", [1, 2], "greeks"),
        ("greeks", {"delta": "1", "gamma": 0.0, "vega": 0.0, "theta": 0.0}, "delta"),
        ("greeks", {"delta": 1.0}, "gamma"),
        ("mark_iv", True, "mark_iv"),
        ("state", 3, "state"),
    ],
)
def test_mistyped_ticker_fields(dec: DeribitDecoder, field: str, value: Any, match: str) -> None:
    data = {**OPTION_TICKER_DATA, field: value}
    with pytest.raises(MalformedFrame, match=match):
        dec.decode(notification(f"ticker.{OPTION}.100ms", data), T_LOCAL)
    assert dec._states == {}


def test_a_missing_field_is_named(dec: DeribitDecoder) -> None:
    msg = load("ws_trades.json")
    del msg["params"]["data"][1]["price"]
    with pytest.raises(MalformedFrame, match="'price'"):
        dec.decode(wire(msg), T_LOCAL)
    msg = load("ws_trades.json")
    msg["params"]["data"][0]["direction"] = "up"
    with pytest.raises(MalformedFrame, match="direction"):
        dec.decode(wire(msg), T_LOCAL)


# ------------------------------------------------- numbers checked at the edge (issue 12 §1)


def ws_user_order(**changes: Any) -> bytes:
    """tests/fixtures/deribit/ws_user_orders_filled.json (a real `user.orders` frame), changed."""
    msg = load("ws_user_orders_filled.json")
    msg["params"]["data"].update(changes)
    return wire(msg)


def snapshot_with(**changes: Any) -> bytes:
    msg = load("ws_book_snapshot.json")
    msg["params"]["data"].update(changes)
    return wire(msg)


@pytest.mark.parametrize(
    "bad",
    [
        # A well-formed snapshot whose price overflowed the tick arithmetic (OverflowError).
        snapshot_with(bids=[["new", 1e308, 1.0]]),
        snapshot_with(asks=[["new", 42501.0, 1.0], ["new", -1e308, 5.0]]),
        # Beyond a float: msgspec reads 1e400 as out of range, never as infinity.
        snapshot_with(bids=[["new", 1e300, 1.0]]).replace(b"1e+300", b"1e400"),
        snapshot_with(asks=[["new", 42501.0, 9.1e15]]),  # an amount no Deribit book holds
        snapshot_with(timestamp=10**17),  # ns would overflow an int64
        book_change(123456789, 123456790, [["new", 42500.0, 1e308]], []),
        book_change(123456789, 123456790, [], [["new", 9.5e15, 1.0]]),
        notification(
            f"book.{PERP}.none.10.100ms",
            {**load("ws_book_grouped_snapshot.json")["params"]["data"], "bids": [[1e308, 1.0]]},
        ),
        notification(
            f"trades.{PERP}.100ms", [{**load("ws_trades.json")["params"]["data"][0], "price": 1e308}]
        ),
        notification(
            f"trades.{PERP}.100ms", [{**load("ws_trades.json")["params"]["data"][0], "amount": -1.0}]
        ),
    ],
)
def test_absurd_numbers_are_malformed_before_any_state_changes(synced: DeribitDecoder, bad: bytes) -> None:
    before = state_of(synced)
    with pytest.raises(MalformedFrame):
        synced.decode(bad, T_LOCAL)
    assert state_of(synced) == before
    [ev] = synced.decode(frame("ws_book_delta.json"), T_LOCAL)  # the book goes on untouched
    assert isinstance(ev, BookUpdate) and ev.best_bid == 42500.0


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("open_interest", -1.0, "open_interest"),
        ("best_bid_amount", -2.0, "best_bid_amount"),
        ("best_ask_amount", -0.1, "best_ask_amount"),
        ("mark_iv", -45.0, "mark_iv"),
        ("index_price", -1.0, "index_price"),
        ("best_ask_price", 1e308, "best_ask_price"),
        ("mark_price", -1e300, "mark_price"),
        ("greeks", {"delta": 1e300, "gamma": 0.0, "vega": 0.0, "theta": 0.0}, "delta"),
        ("last_price", "n/a", "last_price"),  # only Deribit's own "undefined" means no price
        ("best_bid_price", 0.25, "above best ask"),  # bid 0.25 > ask 0.245
    ],
)
def test_ticker_numbers_deribit_cannot_send_are_malformed(
    dec: DeribitDecoder, field: str, value: Any, match: str
) -> None:
    data = {**OPTION_TICKER_DATA, "state": "halted", field: value}
    with pytest.raises(MalformedFrame, match=match):
        dec.decode(notification(f"ticker.{OPTION}.100ms", data), T_LOCAL)
    assert dec._states == {}  # the rejected frame's state was not recorded


def test_a_quote_with_its_bid_above_its_ask_is_malformed(dec: DeribitDecoder) -> None:
    msg = load("ws_quote.json")
    msg["params"]["data"]["best_bid_price"] = 92289.0  # the ask is 92288.5
    with pytest.raises(MalformedFrame, match="above best ask"):
        dec.decode(wire(msg), T_LOCAL)
    msg["params"]["data"]["best_bid_price"] = 92288.5  # locked, not crossed: a market
    [ev] = dec.decode(wire(msg), T_LOCAL)
    assert isinstance(ev, Ticker) and ev.bid == ev.ask == 92288.5


def test_an_order_filled_above_its_amount_is_malformed(dec: DeribitDecoder) -> None:
    [ok] = dec.decode(frame("ws_user_orders_filled.json"), T_LOCAL)
    assert ok.filled_size == ok.size == 10  # type: ignore[attr-defined]
    for bad, match in (
        (ws_user_order(filled_amount=10.5), "filled_amount"),
        (ws_user_order(amount=-10.0, filled_amount=0.0), "amount"),
        (ws_user_order(price=1e308), "price"),
        (ws_user_order(average_price=-1e300), "average_price"),
    ):
        with pytest.raises(MalformedFrame, match=match):
            dec.decode(bad, T_LOCAL)
    assert dec.stats.malformed == 4


def test_a_combo_trades_and_is_quoted_below_zero(dec: DeribitDecoder) -> None:
    """A spread's price is a difference: negative is a real price (the numbers the edge refuses
    are magnitudes no venue sends, not signs of prices)."""
    msg = load("ws_trades_option_combo.json")
    msg["params"]["data"][0]["price"] = -0.0025
    [trade] = dec.decode(wire(msg), T_LOCAL)
    assert isinstance(trade, Trade) and trade.price == -0.0025
    data = {
        "timestamp": 1779118041756,
        "instrument_name": "BTC-FS-26JUN26_PERP",
        "best_bid_price": -12.5,
        "best_bid_amount": 10.0,
        "best_ask_price": -2.5,
        "best_ask_amount": 20.0,
        "mark_price": -7.5,
    }
    [ev] = dec.decode(notification("ticker.BTC-FS-26JUN26_PERP.100ms", data), T_LOCAL)
    assert isinstance(ev, Ticker) and (ev.bid, ev.ask, ev.mark, ev.mid) == (-12.5, -2.5, -7.5, -7.5)
    # A book of it, on the fine fallback quantum (the combo is not in the registry).
    snap = {
        "type": "snapshot",
        "instrument_name": "BTC-FS-26JUN26_PERP",
        "timestamp": 1779118041756,
        "change_id": 7,
        "bids": [["new", -12.5, 10.0], ["new", -15.0, 5.0]],
        "asks": [["new", -2.5, 20.0]],
    }
    [book] = dec.decode(notification("book.BTC-FS-26JUN26_PERP.100ms", snap), T_LOCAL)
    assert isinstance(book, BookUpdate) and (book.best_bid, book.best_ask) == (-12.5, -2.5)


@pytest.mark.parametrize(
    "bad",
    [
        notification(f"ticker.{OPTION}.100ms", {**OPTION_TICKER_DATA, "instrument_name": "X"}).replace(
            b'"X"', b'"X\xff"'
        ),
        notification(f"ticker.{OPTION}.100ms", OPTION_TICKER_DATA).replace(b"ticker.", b"ticker\xfe."),
        frame("http_get_instruments.json").replace(b"BTC-PERPETUAL", b"BTC-\xc3PERPETUAL"),
    ],
)
def test_a_string_that_is_not_utf8_is_malformed(synced: DeribitDecoder, bad: bytes) -> None:
    before = state_of(synced)
    with pytest.raises(MalformedFrame, match="UTF-8"):
        synced.decode(bad, T_LOCAL)
    assert state_of(synced) == before


def test_a_result_nested_50000_deep_is_malformed_even_with_a_raised_recursion_limit() -> None:
    """A signing dependency raises the recursion limit to 100,000; schemaless parsing of a deep
    JSON-RPC result then overflowed the C stack (a segfault, so the check runs in a child)."""
    import subprocess
    import sys

    code = """if True:
        import sys
        sys.setrecursionlimit(100_000)
        from tradingd.connectors.deribit.codec import DeribitDecoder
        from tradingd.engine.venue import InstrumentRegistry, MalformedFrame
        dec = DeribitDecoder(InstrumentRegistry())
        deep = b"[" * 50_000 + b"]" * 50_000
        error = b'{"jsonrpc":"2.0","id":1,"error":{"code":10001,"message":"m","data":' + deep + b"}}"
        for frame in (b'{"jsonrpc":"2.0","id":1,"result":' + deep + b"}", error, deep):
            try:
                dec.decode(frame, 0)
            except MalformedFrame as exc:
                print("malformed:", exc)
        try:
            dec.learn_instruments(deep)
        except MalformedFrame as exc:
            print("malformed:", exc)
        print(dec.stats.malformed)
    """
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parent.parent.parent.parent,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("malformed: ") and "nested deeper than" in lines[0]
    assert len(lines) == 5 and all(line.startswith("malformed: ") for line in lines[:-1])
    assert lines[-2] == f"malformed: get_instruments: nested deeper than {MAX_NESTING} levels"
    assert lines[-1] == "3"
    # An ordinary answer, and brackets inside strings, are no depth.
    dec = DeribitDecoder(InstrumentRegistry())
    assert (
        dec.decode(wire({"jsonrpc": "2.0", "id": 1, "result": ["[" * 100, {"a": "{" * 100}]}), T_LOCAL) == []
    )
    assert dec.learn_instruments(frame("http_get_instruments.json").decode()) == 0  # no "result" key: a dict
    assert dec.stats.malformed == 0


def test_a_short_frame_nested_past_the_recursion_limit_is_malformed_and_keeps_the_books(
    synced: DeribitDecoder,
) -> None:
    """A frame under `SHORT_FRAME` bytes is not scanned for nesting (engine/venue/plugins.py): msgspec
    may refuse one nested past the interpreter's limit with a RecursionError while it skips a
    member it does not read. That is a malformed frame like any, before anything was applied; it
    used to escape as a decoder fault, which invalidates every book. Python 3.11 refuses it; from
    3.12 C code recurses against the interpreter's own C limit, not `sys.getrecursionlimit()`
    (about 10,000 levels on 3.13, which no frame this short reaches): then the frame is read, a
    heartbeat with a member nobody reads, and nothing changes either. Which one this interpreter
    does is asked of msgspec itself at the same depth."""
    import sys

    n = 1_900  # under the default limit of 1000 frames twice over, in under 4,096 bytes
    deep = b'{"jsonrpc":"2.0","x":' + b"[" * n + b"]" * n + b',"method":"heartbeat"}'
    assert len(deep) <= SHORT_FRAME
    before = state_of(synced)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)  # the interpreter's default (py_ecc, if imported, raised it)
    try:
        refused = msgspec_refuses(b"[" * n + b"]" * n)
        if refused:
            with pytest.raises(MalformedFrame, match="recursion limit") as err:
                synced.decode(deep, T_LOCAL)
            assert not isinstance(err.value, DecoderFault)
        else:
            assert synced.decode(deep, T_LOCAL) == []
    finally:
        sys.setrecursionlimit(limit)
    assert state_of(synced) == before
    assert synced.stats.malformed == (1 if refused else 0)


def test_an_absurdly_fine_tick_is_not_learned_so_a_book_cannot_overflow(dec: DeribitDecoder) -> None:
    """A book keeps integer ticks, price / tick: a tick of 1e-300 made a plain 42500 overflow."""
    item = {**load("http_get_instruments.json")["result"][0], "tick_size": 1e-300, "tick_size_steps": []}
    dec.decode(wire({"jsonrpc": "2.0", "id": 7, "result": [item]}), T_LOCAL)
    assert dec.registry.get("deribit", PERP) is None and dec.stats.skipped_instruments == 1
    [snap] = dec.decode(frame("ws_book_snapshot.json"), T_LOCAL)
    assert isinstance(snap, BookUpdate) and snap.best_bid == 42500.0


# --------------------------------------------------- a crossed book is a broken book (§1, §2)


def crossed_status(events: list[MarketEvent]) -> Status:
    [status] = events
    assert isinstance(status, Status) and status.status is StatusKind.BOOK_GAP
    assert status.data is not None and status.data["reason"] == "crossed"
    assert "crossed" in status.message
    return status


def test_a_crossed_snapshot_is_a_broken_book_until_the_next_snapshot(dec: DeribitDecoder) -> None:
    crossed = snapshot_with(bids=[["new", 42501.0, 5.0], ["new", 42500.0, 1.0]])  # ask 42501.0
    status = crossed_status(dec.decode(crossed, T_LOCAL))
    assert status.instrument == PERP
    assert status.data == {
        "reason": "crossed",
        "best_bid": 42501.0,
        "best_ask": 42501.0,
        "change_id": 123456789,
    }
    book = dec.book(PERP)
    assert book is not None and not book.valid and book.top() == (None, None, None, None)
    assert dec.stats.gaps == 1
    # Its changes are not data either, until a fresh snapshot (announced as a resync).
    assert dec.decode(frame("ws_book_delta.json"), T_LOCAL) == []
    assert dec.stats.ignored_changes == 1
    resync, snap = dec.decode(frame("ws_book_snapshot.json"), T_LOCAL)
    assert isinstance(resync, Status) and resync.status is StatusKind.BOOK_RESYNC
    assert isinstance(snap, BookUpdate) and (snap.best_bid, snap.best_ask) == (42500.0, 42501.0)
    assert book.valid


def test_a_change_that_crosses_the_book_breaks_it(synced: DeribitDecoder) -> None:
    dec = synced
    # A new bid at the best ask (42501.0): best bid >= best ask.
    status = crossed_status(
        dec.decode(book_change(123456789, 123456790, [["new", 42501.0, 3.0]], []), T_LOCAL)
    )
    assert status.data is not None and status.data["change_id"] == 123456790
    book = dec.book(PERP)
    assert book is not None and not book.valid
    # The chain goes on, but the book is broken: nothing is data until the next snapshot.
    assert dec.decode(book_change(123456790, 123456791, [["delete", 42501.0, 0]], []), T_LOCAL) == []
    events = dec.decode(frame("ws_book_snapshot.json"), T_LOCAL)
    assert [type(e) for e in events] == [Status, BookUpdate]


def test_a_crossed_grouped_book_is_reported_not_published(dec: DeribitDecoder) -> None:
    msg = load("ws_book_grouped_snapshot.json")
    msg["params"]["data"]["bids"][0] = [89534.0, 1.0]  # above the best ask 89533.0
    crossed_status(dec.decode(wire(msg), T_LOCAL))
    [ev] = dec.decode(frame("ws_book_grouped_snapshot.json"), T_LOCAL)  # the next one replaces it
    assert isinstance(ev, BookUpdate) and ev.best_bid == 89532.5


# ------------------------------------------------ a new listing's book starts with a change (§2)


def test_a_first_change_with_prev_change_id_0_starts_the_book_from_empty(dec: DeribitDecoder) -> None:
    [first] = dec.decode(book_change(0, 5, [["new", 42500.0, 10.0]], [["new", 42510.0, 20.0]]), T_LOCAL)
    assert isinstance(first, BookUpdate)
    assert first.snapshot  # the whole book: it started empty
    assert (first.best_bid, first.best_bid_size, first.best_ask, first.sequence) == (
        42500.0,
        10.0,
        42510.0,
        5,
    )
    [then] = dec.decode(book_change(5, 6, [["change", 42500.0, 4.0]], []), T_LOCAL)
    assert isinstance(then, BookUpdate) and not then.snapshot and then.best_bid_size == 4.0
    assert (dec.stats.ignored_changes, dec.stats.gaps) == (0, 0)
    # Only a change that says nothing came before it starts a book: any other waits for a snapshot.
    other = DeribitDecoder(InstrumentRegistry())
    assert other.decode(book_change(4, 5, [["new", 42500.0, 10.0]], []), T_LOCAL) == []
    assert other.stats.ignored_changes == 1


def test_prev_change_id_0_after_a_gap_restarts_the_book_and_says_so(synced: DeribitDecoder) -> None:
    dec = synced
    dec.decode(book_change(1, 2, [], []), T_LOCAL)  # a gap
    resync, book = dec.decode(book_change(0, 9, [["new", 41000.0, 1.0]], []), T_LOCAL)
    assert isinstance(resync, Status) and resync.status is StatusKind.BOOK_RESYNC
    assert (
        isinstance(book, BookUpdate) and book.snapshot and book.best_bid == 41000.0 and book.best_ask is None
    )
    # On a valid book, prev_change_id 0 is a broken chain like any other.
    [gap] = dec.decode(book_change(0, 10, [], []), T_LOCAL)
    assert isinstance(gap, Status) and gap.status is StatusKind.BOOK_GAP


# ----------------------------------------------------------------------- property: never breaks

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=12)
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
# 1e308 overflowed the tick arithmetic (issue 12); 9.1e15 is past the 2**53 bound.
PRICES = (
    st.sampled_from([42500.0, 42499.5, 42501.0, 42501.5, 0.0, -5.0, 1e300, 1e308, -1e308, 9.1e15, 3])
    | JSON_SCALARS
)
LEVEL = st.one_of(
    st.tuples(st.sampled_from(["new", "change", "delete", "other"]), PRICES, PRICES).map(list),
    st.tuples(PRICES, PRICES).map(list),
    JSON,
)
IDS = st.sampled_from([123456789, 123456790, 0, None]) | JSON_SCALARS
FIELDS = {
    "type": st.sampled_from(["snapshot", "change", "other"]) | JSON_SCALARS,
    "instrument_name": st.sampled_from([PERP, OPTION]) | JSON_SCALARS,
    "timestamp": st.integers(min_value=0, max_value=2**53) | JSON_SCALARS,
    "change_id": IDS,
    "prev_change_id": IDS,
    "bids": st.lists(LEVEL, max_size=4) | JSON,
    "asks": st.lists(LEVEL, max_size=4) | JSON,
    "state": st.sampled_from(["open", "halted"]) | JSON_SCALARS,
    "best_bid_price": PRICES,
    "best_ask_amount": PRICES,
    "mark_iv": PRICES,
    "greeks": st.fixed_dictionaries(
        {}, optional=dict.fromkeys(("delta", "gamma", "vega", "theta", "rho"), PRICES)
    ),
    "price": PRICES,
    "amount": PRICES,
    "direction": st.sampled_from(["buy", "sell"]) | JSON_SCALARS,
    "trade_id": st.sampled_from(["1", 2]) | JSON_SCALARS,
}
DATA = st.fixed_dictionaries({}, optional=FIELDS)
CHANNELS = st.sampled_from(
    [
        f"ticker.{PERP}.100ms",
        f"ticker.{OPTION}.100ms",
        f"book.{PERP}.100ms",
        f"book.{PERP}.none.10.100ms",
        f"trades.{PERP}.100ms",
        "trades.option.BTC.100ms",
        f"quote.{PERP}",
        "deribit_price_index.btc_usd",
        "user.orders.any.any.raw",
    ]
) | st.text(max_size=20)
ENVELOPES = st.fixed_dictionaries(
    {"method": st.sampled_from(["subscription", "heartbeat"]) | JSON_SCALARS},
    optional={
        "jsonrpc": st.just("2.0"),
        "id": JSON_SCALARS,
        "result": JSON | st.lists(DATA, max_size=2),
        "error": JSON,
        "params": st.fixed_dictionaries(
            {}, optional={"channel": CHANNELS, "data": DATA | st.lists(DATA, max_size=3) | JSON}
        ),
    },
)
MESSAGES = ENVELOPES | JSON

# CODEC_EXAMPLES=5000 (or TRADINGD_THOROUGH=1) makes a longer hunt.
HYPOTHESIS = settings(
    max_examples=int(os.environ.get("CODEC_EXAMPLES", 0)) or examples(400),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def check_decode(dec: DeribitDecoder, decode: Any) -> None:
    """Run `decode()`: either events, or `MalformedFrame` with every piece of state unchanged."""
    before = state_of(dec)
    frames, malformed = dec.stats.frames, dec.stats.malformed
    events: Any = None
    error: MalformedFrame | None = None
    try:
        events = decode()
    except MalformedFrame as exc:
        error = exc
    if error is not None:
        assert error.venue == "deribit"
        assert state_of(dec) == before
        assert dec.stats.malformed == malformed + 1
    else:
        assert isinstance(events, list)
        assert all(isinstance(e, MarketEvent) for e in events)
        assert dec.stats.malformed == malformed
    assert dec.stats.frames == frames + 1
    assert_consistent(dec)


@HYPOTHESIS
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes_only_ever_raise_malformed_frame(raw: bytes) -> None:
    dec = DeribitDecoder(InstrumentRegistry())
    dec.decode(frame("ws_book_snapshot.json"), T_LOCAL)
    check_decode(dec, lambda: dec.decode(raw, T_LOCAL))


@HYPOTHESIS
@given(msgs=st.lists(MESSAGES, min_size=1, max_size=4))
def test_arbitrary_messages_never_break_the_decoder(msgs: list[Any]) -> None:
    dec = DeribitDecoder(InstrumentRegistry())
    dec.decode(frame("http_get_instruments.json"), T_LOCAL)
    dec.decode(frame("ws_book_snapshot.json"), T_LOCAL)
    dec.decode(frame("ws_book_grouped_snapshot.json"), T_LOCAL)
    for msg in msgs:
        # Through the bytes path and the parsed path alike (the latter with values orjson never
        # produces, such as tuples, left as they are).
        check_decode(dec, lambda msg=msg: dec.decode(wire(msg), T_LOCAL))
        check_decode(dec, lambda msg=msg: dec.decode_message(copy.deepcopy(msg), T_LOCAL))


@HYPOTHESIS
@given(data=DATA, prev=IDS)
def test_a_rejected_book_change_leaves_a_valid_book_intact(data: dict[str, Any], prev: Any) -> None:
    dec = DeribitDecoder(InstrumentRegistry())
    dec.decode(frame("ws_book_snapshot.json"), T_LOCAL)
    data = {
        "type": "change",
        "instrument_name": PERP,
        "timestamp": 1,
        "change_id": 2,
        **data,
        "prev_change_id": prev,
    }
    before = state_of(dec)
    try:
        events = dec.decode(notification(f"book.{PERP}.100ms", data), T_LOCAL)
    except MalformedFrame:
        assert state_of(dec) == before
        return
    book = dec.book(PERP)
    assert book is not None
    if data.get("type") == "change" and data.get("instrument_name") == PERP and prev != 123456789:
        # Not the change that follows the snapshot: a gap, and the levels are untouched.
        assert [e.status for e in events if isinstance(e, Status)] == [StatusKind.BOOK_GAP]
        assert (dict(book.bids), dict(book.asks)) == (before[0][PERP][0], before[0][PERP][1])
    assert_consistent(dec)
