"""`DeriveDecoder` against the captured Derive messages (tests/fixtures/derive, VENUES.md §3.3,
§3.4, §3.6) and against hypothesis-generated garbage: every channel's fields, publish-id order,
subscription refusals, instruments learned from responses, our orders and fills, and the error
contract (only `MalformedFrame`, and nothing changed)."""

from __future__ import annotations

import copy
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradingd.cli.main import main as cli
from tradingd.config import load_config
from tradingd.connectors.derive import PLUGIN, DeriveSettings
from tradingd.connectors.derive.codec import DeriveDecoder, decode_order_result, subscription_refusals
from tradingd.connectors.derive.fees import DeriveFees
from tradingd.engine import (
    BookUpdate,
    Fill,
    Greeks,
    InstrumentKind,
    Liquidity,
    MalformedFrame,
    MarketEvent,
    OrderBook,
    OrderState,
    OrderUpdate,
    Side,
    Status,
    StatusKind,
    Ticker,
    Trade,
    event_to_dict,
)
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.venue import Decoder, DecoderStats
from tradingd.engine.venue.plugins import MAX_NESTING, check_nesting

ROOT = Path(__file__).resolve().parent.parent.parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "derive"
T_LOCAL = 1_780_000_000_123_456_789
MS = 1_000_000
CALL = "ETH-20260627-3500-C"


def load(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


def notification(channel: str, data: Any) -> bytes:
    """A subscription notification as Derive frames it (§3.1; no `jsonrpc`)."""
    return orjson.dumps({"method": "subscription", "params": {"channel": channel, "data": data}})


def book_frame(
    publish_id: int | None, bids: list[list[str]], asks: list[list[str]], inst: str = "ETH-PERP"
) -> bytes:
    data: dict[str, Any] = {"timestamp": 1700000000000, "instrument_name": inst, "bids": bids, "asks": asks}
    if publish_id is not None:
        data["publish_id"] = publish_id
    return notification(f"orderbook.{inst}.1.10", data)


def state_of(dec: DeriveDecoder) -> Any:
    """Everything a frame may change, as plain data."""

    def book(b: OrderBook) -> Any:
        return (dict(b.bids), dict(b.asks), b.sequence, b.valid, b.quantum, b.top())

    return (
        {k: book(v.book) for k, v in dec._books.items()},
        {k: id(v) for k, v in dec._primary.items()},
        sorted((i.symbol, i.tick_size, i.min_size, i.kind) for i in dec.registry),
        sorted(info.name for info in dec.details),
        dict(dec._recent_trades),
        list(dec.current_subscriptions),
        dec.last_error,
        (dec.errors, dec.deprecated_tickers, dec.duplicate_trades),
        (dec.stats.ignored_changes, dec.stats.skipped_instruments, dec.stats.gaps, dec.stats.control),
    )


@pytest.fixture
def dec() -> DeriveDecoder:
    d = DeriveDecoder(InstrumentRegistry())
    d.decode((FIXTURES / "common" / "http_get_instruments_eth_all.json").read_bytes(), T_LOCAL)
    return d


def decoded(d: DeriveDecoder, frame: bytes, ts_local: int = T_LOCAL) -> list[Any]:
    """The events of one frame, typed loosely for the assertions."""
    return list(d.decode(frame, ts_local))


def one(events: list[MarketEvent]) -> Any:
    assert len(events) == 1
    return events[0]


# ------------------------------------------------------------------------------- the plugin


def test_the_plugin_builds_a_decoder_that_follows_the_protocol() -> None:
    registry = InstrumentRegistry()
    d = PLUGIN.decoder(registry)
    assert isinstance(d, DeriveDecoder) and isinstance(d, Decoder)
    assert (d.venue, d.registry, d.stats) == ("derive", registry, DecoderStats())
    assert d.book("ETH-PERP") is None and d.last_unknown_channel is None
    assert PLUGIN.name == "derive" and PLUGIN.Settings is DeriveSettings
    assert isinstance(PLUGIN.fee_model({"option_cap": "0.1"}), DeriveFees)
    with pytest.raises(ValueError, match="unknown fee setting"):
        PLUGIN.fee_model({"rebate": 1})


def test_venue_settings_come_from_the_config(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    base = (
        'mode = "live"\n[[strategies]]\nname = "m"\nclass = "momentum"\n'
        '[strategies.params]\nvenue = "derive"\nindex_instrument = "ETH-PERP"\n'
    )
    path.write_text(
        base + '[venues.derive]\nenvironment = "mainnet"\nticker_interval = 100\nbook_depth = 20\n'
    )
    loaded = load_config(path)
    s = loaded.settings_of("derive")
    assert isinstance(s, DeriveSettings)
    assert (s.ws_url, s.http_url, s.ticker_interval, s.book_depth) == (
        "wss://api.lyra.finance/ws",
        "https://api.lyra.finance",
        100,
        20,
    )
    assert DeriveSettings().ws_url == "wss://api-demo.lyra.finance/ws"
    path.write_text(base + "[venues.derive]\nbook_depth = 15\n")
    with pytest.raises(Exception, match=r"venues\.derive\.book_depth: expected one of 1, 10, 20, 100"):
        load_config(path)
    path.write_text(base + "[venues.derive]\nsignature_ttl_s = 60\n")
    with pytest.raises(Exception, match=r"venues\.derive\.signature_ttl_s: expected at least 330"):
        load_config(path)


# --------------------------------------------------------------------------------- tickers


def test_option_ticker_slim_call() -> None:
    t = one(
        DeriveDecoder(InstrumentRegistry()).decode(
            notification(f"ticker_slim.{CALL}.1000", load("options/ws_ticker_slim_eth_call.json")), T_LOCAL
        )
    )
    assert isinstance(t, Ticker)
    assert (t.venue, t.instrument, t.ts_exchange, t.ts_local) == ("derive", CALL, 1779953796231 * MS, T_LOCAL)
    # Lower case = price, upper case = amount (§3.3 "Slim key map").
    assert (t.bid, t.bid_size, t.ask, t.ask_size) == (383.0, 150.62, 409.8, 13.72)
    assert (t.last, t.mark, t.index, t.underlying, t.open_interest) == (None, 398.1, 1991.7, 1992.6, 0.0)
    # IVs are fractions already; Greeks from option_pricing (d, g, v, t, r).
    assert (t.mark_iv, t.bid_iv, t.ask_iv) == (0.67698, 0.0, 0.88815)
    assert t.greeks == Greeks(delta=0.95222, gamma=0.00036344, vega=0.40175, theta=-0.90562, rho=16.38143)


def test_option_ticker_slim_put_and_the_live_capture_of_venues_md() -> None:
    d = DeriveDecoder(InstrumentRegistry())
    t = one(
        d.decode(
            notification("ticker_slim.ETH-20260627-2000-P.1000", load("options/ws_ticker_slim_eth_put.json")),
            T_LOCAL,
        )
    )
    assert (t.bid, t.ask, t.mark_iv, t.bid_iv, t.ask_iv) == (38.4, 43.8, 0.51012, 0.48229, 0.52063)
    assert t.greeks.delta == -0.30438 and t.open_interest == 42.13
    # §3.3 live capture (production, 2026-03-04), verbatim.
    frame = (
        b'{"method":"subscription","params":{"channel":"ticker_slim.BTC-20260305-69500-P.100","data":{"timestamp":'
        b'1772624842966,"instrument_ticker":{"t":1772624842966,"A":"0.4","a":"414","B":"0.4","b":"341","f":null,'
        b'"option_pricing":{"d":"-0.24967","t":"-453.85103","g":"0.00013192","v":"10.84014","i":"0.70513",'
        b'"r":"0.84114","f":"71067","m":"364","df":"1","bi":"0.68323","ai":"0.75013"},"I":"71078","M":"364",'
        b'"stats":{"c":"1.3","v":"91411.632","pr":"787.353","n":2,"oi":"1.3","h":"943.464","l":"504.314",'
        b'"p":"-0.465"},"minp":"4","maxp":"1968"}}}}'
    )
    t = one(d.decode(frame, T_LOCAL))
    assert (t.instrument, t.bid, t.bid_size, t.ask, t.ask_size) == (
        "BTC-20260305-69500-P",
        341.0,
        0.4,
        414.0,
        0.4,
    )
    assert (t.mark, t.index, t.underlying, t.open_interest, t.mark_iv) == (
        364.0,
        71078.0,
        71067.0,
        1.3,
        0.70513,
    )
    assert t.greeks == Greeks(delta=-0.24967, gamma=0.00013192, vega=10.84014, theta=-453.85103, rho=0.84114)


@pytest.mark.parametrize(
    ("fixture", "inst", "top"),
    [
        ("perps/ws_ticker_slim_eth.json", "ETH-PERP", (1992.36, 1.505, 1992.37, 1.505)),
        ("spot/ws_ticker_slim_eth.json", "ETH-USDC", (0.2, 45.0, None, None)),  # "a":"0": no ask
        ("spot/ws_ticker_slim_eth_mainnet.json", "ETH-USDC", (0.2, 45.0, None, None)),
    ],
)
def test_perp_and_spot_ticker_slim_have_no_option_fields(
    fixture: str, inst: str, top: tuple[Any, ...]
) -> None:
    data = load(fixture)
    t = one(
        DeriveDecoder(InstrumentRegistry()).decode(notification(f"ticker_slim.{inst}.100", data), T_LOCAL)
    )
    assert (t.bid, t.bid_size, t.ask, t.ask_size) == top
    assert (t.greeks, t.mark_iv, t.bid_iv, t.ask_iv, t.underlying) == (None, None, None, None, None)
    slim = data["instrument_ticker"]
    assert (t.mark, t.index, t.ts_exchange) == (float(slim["M"]), float(slim["I"]), slim["t"] * MS)


def test_the_deprecated_ticker_channel_is_decoded_and_counted() -> None:
    d = DeriveDecoder(InstrumentRegistry())
    flat = one(d.decode(notification("ticker.ETH-PERP.100", load("perps/ws_ticker_eth.json")), T_LOCAL))
    assert (flat.instrument, flat.bid, flat.bid_size, flat.ask, flat.ask_size) == (
        "ETH-PERP",
        3500.0,
        1.0,
        3501.0,
        2.0,
    )
    assert (flat.mark, flat.index, flat.open_interest, flat.greeks) == (3500.5, 3500.0, 555.5, None)
    # The legacy shape: {timestamp, instrument_ticker: {full get_ticker fields}} (§3.3).
    data = {"timestamp": 1700000000000, "instrument_ticker": load("options/http_ticker_eth_snapshot.json")}
    t = one(d.decode(notification(f"ticker.{CALL}.100", data), T_LOCAL))
    assert (t.bid, t.ask, t.mark, t.index, t.underlying) == (118.0, 120.5, 119.0, 3500.0, 3505.0)
    assert (t.mark_iv, t.bid_iv, t.ask_iv, t.open_interest) == (0.60, 0.58, 0.62, 1000.0)
    assert t.greeks == Greeks(delta=0.55, gamma=0.0008, vega=4.5, theta=-2.1, rho=1.2)
    assert d.deprecated_tickers == 2


# ---------------------------------------------------------------------------------- books


def test_orderbook_fixtures(dec: DeriveDecoder) -> None:
    # perps/ws_orderbook_eth.json carries no publish_id: decoded, nothing to check it against.
    b = one(dec.decode(notification("orderbook.ETH-PERP.1.10", load("perps/ws_orderbook_eth.json")), T_LOCAL))
    assert isinstance(b, BookUpdate) and b.snapshot
    assert (b.bids, b.asks, b.sequence, b.ts_exchange) == (
        ((3500.0, 1.0),),
        ((3501.0, 2.0),),
        None,
        1700000000000 * MS,
    )
    assert (b.best_bid, b.best_bid_size, b.best_ask, b.best_ask_size) == (3500.0, 1.0, 3501.0, 2.0)
    book = dec.book("ETH-PERP")
    assert book is not None and book.quantum == 0.01  # the learned tick
    empty = one(
        dec.decode(notification("orderbook.ETH-USDC.1.10", load("spot/ws_orderbook_eth.json")), T_LOCAL)
    )
    assert (empty.bids, empty.asks, empty.best_bid, empty.best_ask, empty.sequence) == (
        (),
        (),
        None,
        None,
        225453,
    )
    resync, main = decoded(
        dec, notification("orderbook.ETH-USDC.1.10", load("spot/ws_orderbook_eth_mainnet.json"))
    )
    # Another connection's ids (9582 after 225453): a restarted sequence, announced, then applied.
    assert (resync.status, resync.data["previous"], resync.data["publish_id"]) == (
        StatusKind.BOOK_RESYNC,
        225453,
        9582,
    )
    assert main.bids == ((0.2, 45.0), (0.1, 32.9)) and (main.best_bid, main.best_ask) == (0.2, None)


def test_each_snapshot_replaces_the_book_whole(dec: DeriveDecoder) -> None:
    dec.decode(book_frame(10, [["3500", "1"], ["3499", "2"]], [["3501", "3"]]), T_LOCAL)
    b = one(dec.decode(book_frame(11, [["3498", "4"]], [["3502", "5"], ["3503", "6"]]), T_LOCAL))
    book = dec.book("ETH-PERP")
    assert book is not None
    assert book.depth() == ([(3498.0, 4.0)], [(3502.0, 5.0), (3503.0, 6.0)])
    assert (b.best_bid, b.best_bid_size, b.best_ask, b.best_ask_size, b.sequence) == (
        3498.0,
        4.0,
        3502.0,
        5.0,
        11,
    )


def test_publish_id_skip_repeat_and_regression(dec: DeriveDecoder) -> None:
    dec.decode(book_frame(100, [["3500", "1"]], []), T_LOCAL)
    gap = decoded(dec, book_frame(103, [["3499", "1"]], []))
    assert [type(e) for e in gap] == [Status, BookUpdate]
    s = gap[0]
    assert (s.status, s.instrument, s.data) == (
        StatusKind.BOOK_GAP,
        "ETH-PERP",
        {"channel": "orderbook.ETH-PERP.1.10", "expected": 101, "received": 103},
    )
    assert "2 snapshot(s) missed" in s.message and dec.stats.gaps == 1
    assert gap[1].best_bid == 3499.0  # the snapshot is whole: applied
    assert dec.decode(book_frame(103, [["1", "1"]], []), T_LOCAL) == []  # a repeat
    assert dec.stats.ignored_changes == 1 and dec.book("ETH-PERP").top()[0] == 3499.0  # type: ignore[union-attr]
    back = decoded(dec, book_frame(7, [["3400", "1"]], []))
    assert [e.status for e in back if isinstance(e, Status)] == [StatusKind.BOOK_RESYNC]
    assert back[0].data == {"channel": "orderbook.ETH-PERP.1.10", "previous": 103, "publish_id": 7}
    assert back[1].best_bid == 3400.0 and back[1].sequence == 7
    assert [e.type for e in dec.decode(book_frame(8, [], []), T_LOCAL)] == ["book"]  # in order again


def test_skips_can_be_accepted_and_a_reconnect_forgets_the_ids() -> None:
    d = DeriveDecoder(InstrumentRegistry(), check_skips=False)
    d.decode(book_frame(1, [["1", "1"]], []), T_LOCAL)
    assert [e.type for e in d.decode(book_frame(50, [["1", "1"]], []), T_LOCAL)] == ["book"]
    d.invalidate_books()
    assert d.book("ETH-PERP") is None
    assert [e.type for e in d.decode(book_frame(3, [["1", "1"]], []), T_LOCAL)] == ["book"]


def test_the_finest_channel_is_the_instruments_book(dec: DeriveDecoder) -> None:
    dec.decode(
        notification(
            "orderbook.ETH-PERP.10.20", {**load("perps/ws_orderbook_eth.json"), "bids": [["3490", "9"]]}
        ),
        0,
    )
    dec.decode(notification("orderbook.ETH-PERP.1.10", load("perps/ws_orderbook_eth.json")), 0)
    dec.decode(notification("orderbook.ETH-PERP.1.1", {**load("perps/ws_orderbook_eth.json"), "bids": []}), 0)
    book = dec.book("ETH-PERP")
    assert book is not None and book.top()[0] == 3500.0  # group 1, depth 10


# --------------------------------------------------------------------------------- trades


@pytest.mark.parametrize(
    ("fixture", "channel", "expected"),
    [
        ("options/ws_trade_eth.json", f"trades.{CALL}", (CALL, 3500.0, 1.0, Side.BUY, "option-trade-1")),
        ("perps/ws_trade_eth.json", "trades.perp.ETH", ("ETH-PERP", 3500.0, 1.0, Side.BUY, "perp-trade-1")),
        (
            "perps/http_public_trade_eth_sell.json",
            "trades.perp.ETH.settled",
            ("ETH-PERP", 3499.0, 0.5, Side.SELL, "trade-1"),
        ),
        # A live capture written from the maker's side: the maker sold, so the aggressor bought.
        (
            "spot/ws_trade_eth.json",
            "trades.erc20.ETH",
            ("ETH-USDC", 2050.0, 0.1, Side.BUY, "0445f96a-10fb-4fdc-a0f9-eed94a2f32e1"),
        ),
    ],
)
def test_trades(fixture: str, channel: str, expected: tuple[Any, ...]) -> None:
    item = load(fixture)
    t = one(DeriveDecoder(InstrumentRegistry()).decode(notification(channel, [item]), T_LOCAL))
    assert isinstance(t, Trade)
    assert (t.instrument, t.price, t.size, t.side, t.trade_id) == expected
    assert t.ts_exchange == item["timestamp"] * MS


def test_a_trade_id_seen_moments_ago_is_not_a_second_trade() -> None:
    d = DeriveDecoder(InstrumentRegistry())
    taker = load("perps/ws_trade_eth.json")
    maker = {**taker, "direction": "sell", "liquidity_role": "maker"}
    events = decoded(
        d, notification("trades.perp.ETH", [taker, maker, {**taker, "trade_id": "perp-trade-2"}])
    )
    assert [(e.trade_id, e.side) for e in events] == [("perp-trade-1", Side.BUY), ("perp-trade-2", Side.BUY)]
    assert d.duplicate_trades == 1
    many = load("perps/http_public_trades_result_eth.json")["trades"]
    assert [e.trade_id for e in decoded(d, notification("trades.ETH-PERP", many))] == ["pub-1"]


# ------------------------------------------------------------------------------- responses


def test_the_subscribe_answer_reports_each_refused_channel() -> None:
    d = DeriveDecoder(InstrumentRegistry())
    ack = load("spot/ws_subscribe_ack.json")
    s = one(d.decode(orjson.dumps(ack), T_LOCAL))
    assert isinstance(s, Status) and s.status is StatusKind.SUBSCRIPTION_REFUSED
    assert s.data == {
        "channel": "trades.spot.ETH",
        "reason": "{'instrument_type': ['Invalid enum value spot']}",
    }
    assert "trades.spot.ETH" in s.message and s.instrument == ""
    assert d.current_subscriptions == ack["result"]["current_subscriptions"]
    assert subscription_refusals(ack["result"]) == [
        ("trades.spot.ETH", "{'instrument_type': ['Invalid enum value spot']}")
    ]
    d.decode(
        orjson.dumps(
            {"id": 2, "result": {"status": {"ticker_slim.ETH-PERP.100": "nope"}, "current_subscriptions": []}}
        ),
        0,
    )
    assert d.current_subscriptions == []
    refused = one(
        d.decode(
            orjson.dumps(
                {"id": 3, "result": {"status": {"orderbook.ETH-X.1.10": "bad"}, "current_subscriptions": []}}
            ),
            0,
        )
    )
    assert refused.instrument == "ETH-X"
    assert d.stats.control == 3


def test_error_responses() -> None:
    d = DeriveDecoder(InstrumentRegistry())
    deprecated = {
        "id": 9,
        "error": {
            "code": -32602,
            "message": "Invalid params",
            "data": "`ticker` channel has been deprecated. Please use `ticker_slim`.",
        },
    }
    s = one(d.decode(orjson.dumps(deprecated), 0))
    assert s.status is StatusKind.SUBSCRIPTION_REFUSED and "ticker_slim" in s.data["reason"]
    s = one(d.decode(orjson.dumps({"id": 10, "error": {"code": 13000, "message": "Invalid channels"}}), 0))
    assert s.data["reason"] == "error 13000: Invalid channels"
    assert (
        d.decode(orjson.dumps({"id": "x", "error": {"code": 11000, "message": "Insufficient funds"}}), 0)
        == []
    )
    assert d.last_error == ("x", 11000, "Insufficient funds", None) and d.errors == 3 and d.stats.control == 3


def test_instrument_answers_teach_the_registry_and_the_side_table() -> None:
    d = DeriveDecoder(InstrumentRegistry())
    assert d.decode((FIXTURES / "common" / "http_get_instruments_btc_empty.json").read_bytes(), 0) == []
    assert len(d.registry) == 0
    for name in (
        "common/http_get_instruments_eth_all.json",
        "perps/http_get_instrument_eth.json",
        "spot/http_get_instruments_eth.json",
    ):
        d.decode((FIXTURES / name).read_bytes(), 0)
    assert sorted((i.symbol, i.kind) for i in d.registry) == [
        (CALL, InstrumentKind.OPTION),
        ("ETH-PERP", InstrumentKind.PERPETUAL),
        ("ETH-USDC", InstrumentKind.SPOT),
    ]
    assert d.details.require("ETH-USDC").asset_address == "0x41675b7746AE0E464f2594d258CF399c392A179C"
    # Bad items (one malformed, one not an instrument at all) are skipped and counted; the good
    # ones of the same answer are learned.
    good = load("options/instrument_eth.json")
    bad = {**good, "instrument_name": "ETH-20260627-9999-C", "tick_size": "-1"}
    d2 = DeriveDecoder(InstrumentRegistry())
    d2.decode(orjson.dumps({"id": 1, "result": [bad, good, {"instrument_name": "x"}]}), 0)
    assert [i.symbol for i in d2.registry] == [CALL] and d2.stats.skipped_instruments == 2
    assert d2.learn_instruments({"instruments": [load("perps/instrument_eth.json")]}) == 1
    assert d2.learn_instruments(orjson.dumps([bad])) == 0 and d2.stats.skipped_instruments == 3
    with pytest.raises(MalformedFrame):
        d2.learn_instruments(orjson.dumps("nope"))


# ------------------------------------------------------------------------ our orders, fills


def test_our_orders() -> None:
    d = DeriveDecoder(InstrumentRegistry())
    captured = load("perps/http_order_eth_partially_filled.json")
    o = one(d.decode(notification("42.orders", [captured]), T_LOCAL))
    assert isinstance(o, OrderUpdate)
    # `filled` with 1.5 of 2.0: the rest will not trade, and FILLED would claim a full fill.
    assert (o.status, o.filled_size, o.size, o.avg_fill_price, o.price) == (
        OrderState.CANCELLED,
        Decimal("1.5"),
        Decimal("2.0"),
        Decimal("3500.25"),
        Decimal("3501.0"),
    )
    assert (o.order_id, o.client_order_id, o.side, o.ts_exchange) == (
        "abc-123",
        "alpha-strategy",
        Side.BUY,
        1700000001000 * MS,
    )
    assert "1.5 of 2.0" in (o.reason or "")
    states = {
        ("open", "0"): OrderState.OPEN,
        ("open", "0.5"): OrderState.PARTIALLY_FILLED,
        ("untriggered", "0"): OrderState.OPEN,
        ("filled", "2.0"): OrderState.FILLED,
        ("cancelled", "0"): OrderState.CANCELLED,
        ("rejected", "0"): OrderState.REJECTED,
        ("expired", "0.5"): OrderState.EXPIRED,
    }
    for (status, filled), state in states.items():
        item = {**captured, "order_status": status, "filled_amount": filled, "cancel_reason": ""}
        got = one(d.decode(notification("42.orders", [item]), 0))
        assert got.status is state and got.reason is None
        assert (got.avg_fill_price is None) == (filled == "0")
    with pytest.raises(MalformedFrame, match="unknown order_status 'weird'"):
        d.decode(notification("42.orders", [{**captured, "order_status": "weird"}]), 0)
    with pytest.raises(MalformedFrame, match="amount is not a finite number"):
        d.decode(notification("42.orders", [{**captured, "amount": "NaN"}]), 0)


def test_our_trades_and_reverted_ones() -> None:
    d = DeriveDecoder(InstrumentRegistry())
    f = one(d.decode(notification("42.trades", [load("perps/http_private_trade_eth.json")]), T_LOCAL))
    assert isinstance(f, Fill)
    assert (f.order_id, f.trade_id, f.client_order_id, f.side, f.liquidity) == (
        "order-abc",
        "trade-xyz",
        "alpha-strategy",
        Side.BUY,
        Liquidity.MAKER,
    )
    assert (f.price, f.size, f.fee, f.fee_currency) == (
        Decimal("3499.0"),
        Decimal("0.5"),
        Decimal("0.02"),
        "USDC",
    )
    history = load("perps/http_trades_result_eth.json")["trades"]
    reverted = {**history[0], "trade_id": "t-2", "tx_status": "reverted"}
    events = d.decode(notification("7.trades.settled", [*history, reverted]), 0)
    assert (
        isinstance(events[0], Fill)
        and events[0].liquidity is Liquidity.TAKER
        and events[0].fee == Decimal("0.05")
    )
    assert isinstance(events[1], Status) and events[1].data == {
        "tx_status": "reverted",
        "trade_id": "t-2",
        "order_id": "o-1",
    }
    assert "not a fill" in events[1].message


@pytest.mark.parametrize(
    "name", ["spot/http_submit_order_response.json", "spot/http_submit_order_response_mainnet.json"]
)
def test_order_results(name: str) -> None:
    result = load(name)["result"]
    o = one(decode_order_result(orjson.dumps(result), 5))
    assert (o.status, o.instrument, o.size, o.filled_size, o.client_order_id) == (
        OrderState.OPEN,
        "ETH-USDC",
        Decimal("0.1"),
        Decimal(0),
        "research-q4-buy",
    )
    assert o.order_id == result["order"]["order_id"] and o.avg_fill_price is None
    trade = {
        **load("perps/http_private_trade_eth.json"),
        "order_id": o.order_id,
        "instrument_name": "ETH-USDC",
    }
    events = decode_order_result({**result, "trades": [trade]}, 5)
    assert [e.type for e in events] == ["fill", "order"]
    with pytest.raises(MalformedFrame, match="order result"):
        decode_order_result(b'{"order": 1}', 0)


# --------------------------------------------------------------------- the error contract


def test_unknown_channels_and_malformed_frames() -> None:
    d = DeriveDecoder(InstrumentRegistry())
    assert d.decode(notification("42.balances", []), 0) == []
    assert d.decode(notification("spot_feed.ETH", {"feeds": {}}), 0) == []
    assert d.decode(notification("orderbook.ETH-PERP.x.10", {}), 0) == []
    assert (d.stats.unknown_channel, d.last_unknown_channel) == (3, "orderbook.ETH-PERP.x.10")
    bad = [
        b"{nope",
        b"[1,2]",
        b'{"method":"subscription","params":{"channel":"ticker_slim.X.100"}}',
        b'{"foo": 1}',
        notification("ticker_slim.X.100", {"instrument_ticker": {"b": "nan"}}),
        notification("ticker_slim.X.100", {"instrument_ticker": {"b": "1", "M": "inf"}}),
        notification("ticker_slim.X.100", {"instrument_ticker": {"option_pricing": {"d": "x"}}}),
        book_frame(1, [["-1", "1"]], []),
        book_frame(1, [["1", "-1"]], []),
        book_frame(1, [["1"]], []),
        notification("trades.ETH-PERP", [{"instrument_name": "ETH-PERP"}]),
        notification("trades.ETH-PERP", [{**load("perps/ws_trade_eth.json"), "direction": "up"}]),
        orjson.dumps({"id": 1, "error": {"code": "x"}}),
        orjson.dumps({"id": 1, "result": {"status": ["ok"], "current_subscriptions": []}}),
    ]
    for i, frame in enumerate(bad, 1):
        with pytest.raises(MalformedFrame) as err:
            d.decode(frame, 0)
        assert err.value.venue == "derive"
        assert d.stats.malformed == i
    assert d.stats.events == 0


# ------------------------------------------------------ issue 12: what Derive cannot send


def _order(**change: Any) -> bytes:
    return notification("42.orders", [{**load("perps/http_order_eth_partially_filled.json"), **change}])


def _our_trade(**change: Any) -> bytes:
    return notification("42.trades", [{**load("perps/http_private_trade_eth.json"), **change}])


def _slim(**fields: Any) -> bytes:
    return notification("ticker_slim.ETH-PERP.100", {"instrument_ticker": {"t": 1700000000000, **fields}})


def _instrument(**change: Any) -> bytes:
    return orjson.dumps({"id": 9, "result": [{**load("perps/instrument_eth.json"), **change}]})


IMPOSSIBLE = {
    # Beyond the 18-decimal int256 every Derive number lives in (§3.6): 1e299 passed the old
    # 1e300 bound and overflowed price / tick into an OverflowError for a fine tick.
    "book price 1e299": book_frame(5, [["1e299", "1"]], []),
    "book size 1e308": book_frame(5, [["3500", "1e308"]], []),
    "book price 1e-30": book_frame(5, [["1e-30", "1"]], []),
    "slim index 1e299": _slim(I="1e299"),
    "slim delta inf": _slim(option_pricing={"d": "-inf", "g": "0", "t": "0", "v": "0"}),
    "order amount 1E+999999999": _order(amount="1E+999999999"),
    "order limit price 1E+999999999": _order(limit_price="1E+999999999"),
    "order filled 1E-999999999": _order(filled_amount="1E-999999999"),
    "fill fee 1E+999999999": _our_trade(trade_fee="1E+999999999"),
    "fill amount 1e-30": _our_trade(trade_amount="1e-30"),
    # A fill is booked once by its trade id: without one, each reconciliation booked it again.
    "fill without a trade_id": _our_trade(trade_id=""),
    # Timestamps the events' int64 nanoseconds cannot hold.
    "book timestamp 2**64-1": notification(
        "orderbook.ETH-PERP.1.10",
        {"timestamp": 2**64 - 1, "instrument_name": "ETH-PERP", "bids": [], "asks": []},
    ),
    "trade timestamp -1": notification(
        "trades.ETH-PERP", [{**load("perps/ws_trade_eth.json"), "timestamp": -1}]
    ),
    "order timestamp 2**63": _order(last_update_timestamp=2**63),
    # Numbers in range that make no sense together.
    "slim bid above ask": _slim(b="3502", B="1", a="3501", A="1"),
    "legacy bid above ask": notification(
        "ticker.ETH-PERP.100", {**load("perps/ws_ticker_eth.json"), "best_bid_price": "3600"}
    ),
    "trade of nothing": notification(
        "trades.ETH-PERP", [{**load("perps/ws_trade_eth.json"), "trade_amount": "0"}]
    ),
    "order filled above amount": _order(filled_amount="2.5"),
    "order of nothing": _order(amount="0", filled_amount="0"),
    # Bytes that are not text, and nesting no message has (50,000 levels).
    "invalid UTF-8": notification("trades.ETH-PERP", [{"instrument_name": "X"}]).replace(
        b'"X"', b'"\xff\xfe"'
    ),
    "deep data": b'{"method":"subscription","params":{"channel":"42.balances","data":'
    + b"[" * 50_000
    + b"]" * 50_000
    + b"}}",
    "deep result": b'{"id":1,"result":' + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"}",
    "deep and unclosed": b'{"id":1,"result":' + b"[" * 50_000,
}


@pytest.mark.parametrize("frame", IMPOSSIBLE.values(), ids=IMPOSSIBLE.keys())
def test_what_derive_cannot_send_is_malformed_and_changes_nothing(dec: DeriveDecoder, frame: bytes) -> None:
    dec.decode(book_frame(4, [["3400", "1"]], [["3600", "1"]]), T_LOCAL)
    before = state_of(dec)
    with pytest.raises(MalformedFrame) as err:
        dec.decode(frame, T_LOCAL)
    assert err.value.venue == "derive" and dec.stats.malformed == 1
    assert state_of(dec) == before
    first = dec.decode(book_frame(5, [["3401", "1"]], [["3600", "1"]]), T_LOCAL)[0]
    assert isinstance(first, BookUpdate) and first.best_bid == 3401.0


def test_an_instrument_derive_cannot_list_is_skipped_so_its_books_cannot_overflow() -> None:
    # A tick of 1e-30 made every price above ~1e278 an OverflowError (price / tick = inf), and
    # a NaN maximum_amount a limit that is no limit.
    d = DeriveDecoder(InstrumentRegistry())
    for change in ({"tick_size": "1e-30"}, {"maximum_amount": "NaN"}, {"taker_fee_rate": "-inf"}):
        assert d.decode(_instrument(**change), T_LOCAL) == []
    assert d.stats.skipped_instruments == 3 and len(d.registry) == 0 and len(d.details) == 0
    with pytest.raises(MalformedFrame):
        d.decode(book_frame(1, [["1e299", "1"]], []), T_LOCAL)
    with pytest.raises(MalformedFrame, match="nested deeper"):
        d.learn_instruments(b"[" * 50_000 + b"]" * 50_000)


def test_a_locked_ticker_is_a_quote_and_an_empty_side_still_none() -> None:
    d = DeriveDecoder(InstrumentRegistry())
    t = one(d.decode(_slim(b="3501", B="1", a="3501", A="2"), T_LOCAL))
    assert (t.bid, t.ask) == (3501.0, 3501.0)
    t = one(d.decode(_slim(b="3502", B="1", a="0", A="0"), T_LOCAL))  # no ask: nothing to cross
    assert (t.bid, t.ask, t.ask_size) == (3502.0, None, None)


DEEP_FRAMES_WITH_THE_LIMIT_RAISED = """
import sys
sys.setrecursionlimit(100_000)
from tradingd.connectors.derive.codec import DeriveDecoder
from tradingd.engine.venue import InstrumentRegistry, MalformedFrame
d = DeriveDecoder(InstrumentRegistry())
error = b'{"id":1,"error":{"code":1,"message":"m","data":'
for n in (50_000, 30_000):
    for head, tail in ((b'{"id":1,"result":', b"}"), (error, b"}}"), (b"", b"")):
        try:
            d.decode(head + b"[" * n + b"]" * n + tail, 0)
        except MalformedFrame:
            pass
    try:
        d.learn_instruments(b'{"instruments":' + b"[" * n + b"]" * n + b"}")
    except MalformedFrame:
        print("instruments refused")
print(d.stats.malformed)
"""


def test_the_error_contract_holds_with_the_recursion_limit_raised() -> None:
    # Polymarket's signing dependency raises the recursion limit to 100,000 in the same process:
    # msgspec then parsed a 50,000-deep `result` (or error `data`) down the C stack and the
    # process died (SIGSEGV).
    r = subprocess.run(
        [sys.executable, "-c", DEEP_FRAMES_WITH_THE_LIMIT_RAISED],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert (r.returncode, r.stdout.split("\n")) == (0, ["instruments refused"] * 2 + ["6", ""]), r.stderr


_MANY = 2 * MAX_NESTING  # more brackets than the bound, so the check looks closer


@pytest.mark.parametrize(
    "text",
    [
        '{"a":"' + "[" * _MANY + '"}',  # brackets in a string do not nest
        '{"a":"\\"' + "{" * _MANY + '"}',  # nor behind an escaped quote
        "[" + "[1]," * _MANY + "[1]]",  # lists side by side (a book's levels): 2 deep
    ],
)
def test_many_brackets_are_not_depth(text: str) -> None:
    # The one nesting check every venue uses (engine/venue/plugins.py), on Derive's shapes.
    assert orjson.loads(text) is not None  # valid JSON
    check_nesting(text, "derive")
    check_nesting(text.encode(), "derive")
    deep = '{"a":"]' + '",[' * 2 * _MANY + "]" * _MANY + "}"  # a string's bracket cannot close a level
    with pytest.raises(MalformedFrame, match="nested deeper"):
        check_nesting(deep, "derive")


def test_live_captures_of_another_client() -> None:
    """Frames another project captured live (tests/fixtures/derive/README.md, `bourse/`)."""
    d = DeriveDecoder(InstrumentRegistry())
    t = one(
        d.decode((FIXTURES / "bourse" / "ws_ticker_slim_eth_perp_demo.json").read_bytes().strip(), T_LOCAL)
    )
    assert isinstance(t, Ticker) and (t.instrument, t.ts_exchange) == ("ETH-PERP", 1789470139328 * MS)
    assert (t.bid, t.bid_size, t.ask, t.ask_size) == (2483.35, 40.0, 2485.85, 40.0)
    assert (t.mark, t.index, t.open_interest, t.greeks, t.mark_iv) == (
        2484.81,
        2484.67,
        14609.766,
        None,
        None,
    )
    trade = one(
        d.decode((FIXTURES / "bourse" / "ws_trades_eth_perp_mainnet.json").read_bytes().strip(), T_LOCAL)
    )
    assert isinstance(trade, Trade)
    assert (trade.price, trade.size, trade.side, trade.trade_id, trade.ts_exchange) == (
        2485.2,
        0.1,
        Side.BUY,
        "f69d1a1d-5c4f-4f7b-b66a-1234838364ee",
        1789470739946 * MS,
    )
    for i, (name, code) in enumerate(
        (("error_ticker_deprecated_demo.json", -32602), ("error_invalid_channels_demo.json", 13000)), 1
    ):
        frame = orjson.dumps({"id": i, "error": load(f"bourse/{name}")})
        refusal = one(d.decode(frame, T_LOCAL))
        assert refusal.status is StatusKind.SUBSCRIPTION_REFUSED and f"error {code}" in refusal.data["reason"]
        assert d.last_error is not None and d.last_error[:2] == (i, code)
        if code == -32602:
            assert "Please use `ticker_slim`" in refusal.data["reason"]
    assert d.stats.malformed == 0 and d.errors == 2


def test_mainnet_answers_kept_by_ccxt() -> None:
    """Mainnet answers from ccxt's static tests (tests/fixtures/derive/README.md, `ccxt/`)."""
    d = DeriveDecoder(InstrumentRegistry())
    ticker_answer = (FIXTURES / "ccxt" / "http_get_ticker_btc_perp.json").read_bytes()
    assert d.decode(ticker_answer, T_LOCAL) == []  # a get_ticker answer holds the instrument too
    inst = d.registry.get("derive", "BTC-PERP")
    assert inst is not None and inst.kind is InstrumentKind.PERPETUAL and inst.quote == "USD"
    assert (inst.tick_size, inst.min_size, inst.size_step) == (
        Decimal("0.1"),
        Decimal("0.01"),
        Decimal("0.001"),
    )
    info = d.details.require("BTC-PERP")
    assert (info.maximum_amount, info.base_fee, info.mark_price_fee_rate_cap) == (
        Decimal("10000"),
        Decimal("0.1"),
        Decimal("0"),
    )
    # The same fields as the deprecated channel's data (§3.3): the whole ticker.
    t = one(d.decode(notification("ticker.BTC-PERP.100", orjson.loads(ticker_answer)["result"]), T_LOCAL))
    assert (t.bid, t.bid_size, t.ask, t.ask_size) == (99029.1, 0.037, 99042.8, 0.06)
    exact = ("99031.927500030360533855855464935302734375", "99059.7", "76.222135170666813448")
    assert (t.mark, t.index, t.open_interest) == tuple(map(float, exact))  # the nearest doubles
    assert t.ts_exchange == 1736155885000 * MS
    # A public trade record with the account fields, as the `.{tx_status}` channels send it.
    (record,) = load("ccxt/http_get_trade_history_btc_perp.json")["result"]["trades"]
    trade = one(d.decode(notification("trades.perp.BTC.settled", [record]), T_LOCAL))
    assert (trade.instrument, trade.price, trade.size, trade.side) == ("BTC-PERP", 99086.1, 0.01, Side.BUY)
    # As one of ours (with the order id the private channel carries), the fee is exact.
    fill = one(d.decode(notification("42.trades", [{**record, "order_id": "o-1"}]), T_LOCAL))
    assert isinstance(fill, Fill) and fill.fee == Decimal("0.397286204785450038")
    assert (fill.liquidity, fill.size) == (Liquidity.TAKER, Decimal("0.01"))
    assert d.stats.malformed == 0


def test_an_order_answer_that_is_not_text_is_malformed(dec: DeriveDecoder) -> None:
    # What `private/order` answers goes through `decode_order_result` / `order_result`, not
    # `decode`: a UnicodeDecodeError escaped them.
    answer = (FIXTURES / "spot" / "http_submit_order_response.json").read_bytes()
    result = orjson.dumps(orjson.loads(answer)["result"]).replace(b'"open"', b'"\xff"')
    with pytest.raises(MalformedFrame, match="UnicodeDecodeError"):
        decode_order_result(result, T_LOCAL)
    before = state_of(dec)
    with pytest.raises(MalformedFrame, match="UnicodeDecodeError"):
        dec.order_result(result, T_LOCAL)
    assert state_of(dec) == before
    order = orjson.loads(answer)["result"]["order"]
    with pytest.raises(MalformedFrame, match="above its amount"):
        dec.order_result({"order": {**order, "filled_amount": "0.2"}, "trades": []}, T_LOCAL)


# ----------------------------------------------------------- issue 12: a crossed book


def test_a_crossed_book_is_a_broken_book_until_a_good_snapshot(dec: DeriveDecoder) -> None:
    dec.decode(book_frame(10, [["3500", "1"]], [["3501", "1"]]), T_LOCAL)
    (gap,) = decoded(dec, book_frame(11, [["3502", "1"], ["3499", "1"]], [["3501", "2"]]))
    assert isinstance(gap, Status) and gap.status is StatusKind.BOOK_GAP and gap.instrument == "ETH-PERP"
    assert gap.data == {
        "channel": "orderbook.ETH-PERP.1.10",
        "reason": "crossed",  # the convention of every venue's decoder
        "publish_id": 11,
        "best_bid": 3502.0,
        "best_ask": 3501.0,
    }
    book = dec.book("ETH-PERP")
    assert book is not None and not book.valid and book.top() == (None, None, None, None)
    assert dec.crossed_books == 1
    # Locked counts as crossed (one engine would have matched them); still broken: ignored.
    assert dec.decode(book_frame(12, [["3501", "1"]], [["3501", "1"]]), T_LOCAL) == []
    assert dec.crossed_books == 2 and dec.stats.ignored_changes == 1 and not book.valid
    (good,) = decoded(dec, book_frame(13, [["3500", "1"]], [["3501", "1"]]))
    assert isinstance(good, BookUpdate) and (good.best_bid, good.best_ask, good.sequence) == (
        3500.0,
        3501.0,
        13,
    )
    assert (book.valid, dec.stats.gaps) == (True, 0)  # 11 and 12 were seen: no publish-id gap
    # Crossed again later: reported again.
    assert [e.data["reason"] for e in decoded(dec, book_frame(14, [["3600", "1"]], [["3501", "1"]]))] == [
        "crossed"
    ]


def test_a_first_snapshot_that_is_crossed_reports_it() -> None:
    d = DeriveDecoder(InstrumentRegistry())
    (gap,) = decoded(d, book_frame(1, [["2", "1"]], [["1", "1"]], inst="ETH-USDC"))
    assert (gap.status, gap.data["reason"]) == (StatusKind.BOOK_GAP, "crossed")
    book = d.book("ETH-USDC")
    assert book is not None and not book.valid


VALID = [
    notification("ticker_slim.ETH-PERP.100", load("perps/ws_ticker_slim_eth.json")),
    notification(f"ticker_slim.{CALL}.1000", load("options/ws_ticker_slim_eth_call.json")),
    book_frame(101, [["3500", "1"], ["3499", "2"]], [["3501", "3"]]),
    notification("trades.ETH-PERP", [load("perps/ws_trade_eth.json")]),
    notification("42.orders", [load("perps/http_order_eth_partially_filled.json")]),
    notification("42.trades", [load("perps/http_private_trade_eth.json")]),
    orjson.dumps(load("spot/ws_subscribe_ack.json")),
    (FIXTURES / "perps" / "http_get_instruments_eth.json").read_bytes(),
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, len(VALID) - 1), data=st.data(), value=json_values)
def test_a_mutated_frame_decodes_or_raises_malformed_and_changes_nothing(
    dec: DeriveDecoder, which: int, data: st.DataObject, value: Any
) -> None:
    dec.decode(book_frame(100, [["3400", "1"]], [["3600", "1"]]), 0)
    msg = orjson.loads(VALID[which])
    path = data.draw(st.sampled_from(_paths(msg)[1:]))
    mutated = copy.deepcopy(msg)
    target = mutated
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    before = state_of(dec)
    try:
        events = dec.decode(orjson.dumps(mutated), T_LOCAL)
    except MalformedFrame:
        assert state_of(dec) == before
        return
    for e in events:
        event_to_dict(e)  # every event has its JSON form
    for b in dec._books.values():
        book = b.book
        assert all(s > 0 for s in book.bids.values()) and all(s > 0 for s in book.asks.values())
        assert book.best_bid_ticks == max(book.bids, default=None)
        assert book.best_ask_ticks == min(book.asks, default=None)


@settings(max_examples=300, deadline=None)
@given(frame=st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_garbage_raises_malformed_only(frame: bytes) -> None:
    d = DeriveDecoder(InstrumentRegistry())
    try:
        d.decode(frame, 0)
    except MalformedFrame:
        assert d.stats.malformed == 1


# ------------------------------------------------------------------- CLI and benchmark


def test_tradingd_decode_venue_derive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [
        (FIXTURES / "common" / "http_get_instruments_eth_all.json").read_bytes().replace(b"\n", b""),
        b"2026-11-24T10:00:00.1234567Z "
        + notification(f"ticker_slim.{CALL}.1000", load("options/ws_ticker_slim_eth_call.json")),
        notification("orderbook.ETH-PERP.1.10", load("perps/ws_orderbook_eth.json")),
        notification("trades.ETH-PERP", [load("perps/ws_trade_eth.json")]),
        orjson.dumps(load("spot/ws_subscribe_ack.json")),
        b"{broken",
        notification("42.balances", []),
    ]
    path = tmp_path / "frames.txt"
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert cli(["decode", "--venue", "derive", str(path)]) == 1  # one bad line
    out, err = capsys.readouterr()
    events = [orjson.loads(line) for line in out.splitlines()]
    assert [e["type"] for e in events] == ["ticker", "book", "trade", "status"]
    assert events[0]["ts_local"] == 1795514400123456700 and events[0]["mark_iv"] == 0.67698
    assert events[1]["best_bid"] == 3500.0 and events[3]["status"] == "subscription_refused"
    assert "line 6: malformed frame" in err and "line 7: unknown channel '42.balances'" in err


def test_the_benchmark_runs() -> None:
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_derive.py"),
            "--frames",
            "200",
            "--repeat",
            "1",
            "--orders",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "ticker_slim option" in r.stdout and "signed orders" in r.stdout and "frames/s" in r.stdout
