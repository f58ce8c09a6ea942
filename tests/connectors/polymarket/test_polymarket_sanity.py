"""`PolymarketDecoder` at the edge (issue 12): every number of a frame is checked before anything
is applied (finite, in range, prices inside (0, 1), sizes never negative, matched never above an
order's size), a frame that parses but makes no sense is refused as `MalformedFrame` with the
decoder's state untouched, a crossed book is a broken book (BOOK_GAP "crossed", never data), a
price_change for a token without a book is reported, and our maker orders are known by address as
well as by key. The real frames are NautilusTrader's Python captures (tests/fixtures/polymarket,
`nt_py_*`, provenance in the README beside them)."""

from __future__ import annotations

import copy
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.polymarket_frames import (
    MARKET,
    OWNER,
    TOKEN,
    T,
    frame,
    load,
    state_of,
    wire,
)
from tradingd.connectors.polymarket.codec import PolymarketDecoder, TradeSettlement, TradeStatus
from tradingd.engine import (
    BookUpdate,
    Fill,
    Liquidity,
    MalformedFrame,
    OrderState,
    OrderUpdate,
    Side,
    Status,
    StatusKind,
    Ticker,
    Trade,
)
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.venue.plugins import MAX_NESTING

# The account of NautilusTrader's captures: its API key (the `owner` of its orders) and its funder
# address (their `maker_address`, checksummed on the wire).
NT_KEY = "3e2c94ca-8124-c4c1-c7ea-be1ea21b71fe"
NT_ADDRESS = "0xa3D82Ed56F4c68d2328Fb8c29e568Ba2cAF7d7c8"
NT_YES = "21742633143463906290569050155826241533067272736897614950488156847949938836455"


def book_msg(bids: list[tuple[str, str]], asks: list[tuple[str, str]], token: str = TOKEN) -> bytes:
    return wire(
        {
            "event_type": "book",
            "asset_id": token,
            "market": MARKET,
            "bids": [{"price": p, "size": s} for p, s in bids],
            "asks": [{"price": p, "size": s} for p, s in asks],
            "timestamp": "1700000000000",
            "hash": "h",
        }
    )


def change_msg(*changes: tuple[str, str, str, str | None, str | None], token: str = TOKEN) -> bytes:
    """price_change entries (side, price, size, best_bid, best_ask) for `token`."""
    return wire(
        {
            "event_type": "price_change",
            "market": MARKET,
            "timestamp": "1700000000001",
            "price_changes": [
                {"asset_id": token, "side": side, "price": p, "size": s, "best_bid": bb, "best_ask": ba}
                for side, p, s, bb, ba in changes
            ],
        }
    )


@pytest.fixture
def dec() -> PolymarketDecoder:
    return PolymarketDecoder(InstrumentRegistry(), api_key=OWNER)


# ------------------------------------------------------------------ 1. numbers checked at the edge


def _trade(**fields: Any) -> Any:
    msg = load("ws_user_trade_msg.json")
    msg.update(fields)
    return msg


def _maker_trade(**maker: Any) -> Any:
    msg = load("http_trade_report.json")
    msg.update(event_type="trade", trader_side="MAKER", owner=OWNER)
    msg["maker_orders"][0].update(owner=OWNER, **maker)
    return msg


def _order(**fields: Any) -> Any:
    msg = load("ws_user_order_msg.json")
    msg.update(fields)
    return msg


HOSTILE = {
    # Decimal arithmetic on these raised InvalidOperation (the fee's quantize): the daemon died.
    "fee_rate_bps 1e30": _trade(fee_rate_bps="1e30"),
    "fee_rate_bps 1e999999": _trade(fee_rate_bps="1e999999"),
    "fee_rate_bps above 100%": _trade(fee_rate_bps="10001"),
    # Accepted as data today: prices outside (0, 1), sizes out of any range, times past 2262.
    "trade price 5": _trade(price="5"),
    "trade price 0": _trade(price="0"),
    "trade size 1e30": _trade(size="1e30"),
    "maker price 1": _maker_trade(price="1"),
    "maker matched_amount 1e999999": _maker_trade(matched_amount="1e999999"),
    "trade timestamp past int64 ns": _trade(timestamp="99999999999999999999"),
    "trade match_time in year 9999": _trade(timestamp="0", match_time="9999-12-31T00:00:00Z"),
    "trade match_time of 25 digits": _trade(timestamp="0", match_time="9" * 25),
    "order price 2": _order(price="2"),
    "order size_matched above original_size": _order(size_matched="100.5"),
    "order original_size 1e999999": _order(original_size="1e999999", size_matched="0"),
    "book level at price 1": {
        "event_type": "book",
        "asset_id": TOKEN,
        "bids": [{"price": "0.5", "size": "1"}],
        "asks": [{"price": "1", "size": "1"}],
    },
    "book timestamp past int64 ns": {
        "event_type": "book",
        "asset_id": TOKEN,
        "bids": [],
        "asks": [],
        "timestamp": "99999999999999999999",
    },
    "last trade at price 0": {
        "event_type": "last_trade_price",
        "asset_id": TOKEN,
        "price": "0",
        "size": "1",
        "side": "BUY",
    },
    "best bid above best ask": {
        "event_type": "best_bid_ask",
        "asset_id": TOKEN,
        "best_bid": "0.6",
        "best_ask": "0.5",
    },
    "best bid at best ask": {
        "event_type": "best_bid_ask",
        "asset_id": TOKEN,
        "best_bid": "0.5",
        "best_ask": "0.5",
    },
}


@pytest.mark.parametrize("msg", list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_number_out_of_range_is_malformed_and_changes_nothing(dec: PolymarketDecoder, msg: Any) -> None:
    dec.decode(frame("ws_market_book_msg.json"), T)
    before = state_of(dec)
    with pytest.raises(MalformedFrame):
        dec.decode(wire(msg), T + 1)
    # Not even the good book before it in an array is applied.
    with pytest.raises(MalformedFrame):
        dec.decode(wire([load("ws_book_snapshot.json"), msg]), T + 2)
    assert state_of(dec) == before and dec.stats.malformed == 2


def test_sizes_are_never_negative(dec: PolymarketDecoder) -> None:
    # Already refused before issue 12 (msgspec's `Size` and `_dec`), kept so.
    dec.decode(frame("ws_market_book_msg.json"), T)
    before = state_of(dec)
    for bad in (
        {"event_type": "book", "asset_id": TOKEN, "bids": [{"price": "0.5", "size": "-1"}], "asks": []},
        {"event_type": "last_trade_price", "asset_id": TOKEN, "price": "0.5", "size": "-1", "side": "BUY"},
        _trade(size="-25"),
        _maker_trade(matched_amount="-5"),
        _order(original_size="-1"),
    ):
        with pytest.raises(MalformedFrame):
            dec.decode(wire(bad), T + 1)
    with pytest.raises(MalformedFrame):
        dec.decode(change_msg(("BUY", "0.5", "-3", None, None)), T + 1)
    assert state_of(dec) == before


def test_the_extremes_the_venue_can_send_are_data(dec: PolymarketDecoder) -> None:
    # The tightest prices (0.0001 ticks), a fee of 100%, an empty side's "0" / "1".
    (fill, _) = dec.decode(wire(_trade(price="0.0001", size="1000000", fee_rate_bps="10000")), T)
    assert isinstance(fill, Fill) and fill.price == Decimal("0.0001")
    (ticker,) = dec.decode(
        wire({"event_type": "best_bid_ask", "asset_id": TOKEN, "best_bid": "0", "best_ask": "1"}), T
    )
    assert isinstance(ticker, Ticker) and ticker.bid is None and ticker.ask is None
    (book,) = dec.decode(book_msg([("0.0001", "5")], [("0.9999", "5")]), T)
    assert isinstance(book, BookUpdate) and (book.best_bid, book.best_ask) == (0.0001, 0.9999)


# ------------------------------------------------------------------ 2. a crossed book is broken


def test_a_crossed_snapshot_is_a_broken_book_not_data(dec: PolymarketDecoder) -> None:
    (gap,) = dec.decode(book_msg([("0.55", "10"), ("0.4", "5")], [("0.5", "7")]), T)
    assert isinstance(gap, Status) and gap.status is StatusKind.BOOK_GAP and gap.instrument == TOKEN
    assert gap.data["reason"] == "crossed" and (gap.data["best_bid"], gap.data["best_ask"]) == (0.55, 0.5)
    book = dec.book(TOKEN)
    assert book is not None and not book.valid and not book.bids and not book.asks
    assert dec.stats.gaps == 1
    # Its changes are ignored (no second report) until the next snapshot, which resyncs it.
    assert dec.decode(change_msg(("BUY", "0.3", "1", "0.3", "0.5")), T + 1) == []
    resync, update = dec.decode(book_msg([("0.45", "10")], [("0.5", "7")]), T + 2)
    assert isinstance(resync, Status) and resync.status is StatusKind.BOOK_RESYNC
    assert isinstance(update, BookUpdate) and (update.best_bid, update.best_ask) == (0.45, 0.5)
    assert (book.valid, dec.stats.gaps) == (True, 1)


def test_a_locked_snapshot_breaks_a_valid_book(dec: PolymarketDecoder) -> None:
    dec.decode(book_msg([("0.45", "10")], [("0.5", "7")]), T)
    (gap,) = dec.decode(book_msg([("0.5", "10")], [("0.5", "7")]), T + 1)  # bid == ask: locked
    assert isinstance(gap, Status) and gap.data["reason"] == "crossed"
    book = dec.book(TOKEN)
    assert book is not None and not book.valid and book.top() == (None, None, None, None)


def test_a_change_that_crosses_the_book_breaks_it(dec: PolymarketDecoder) -> None:
    dec.decode(book_msg([("0.45", "10")], [("0.5", "7")]), T)
    # The venue's own top agrees with the change, and is crossed: still no book.
    (gap,) = dec.decode(change_msg(("BUY", "0.52", "3", "0.52", "0.5")), T + 1)
    assert isinstance(gap, Status) and gap.status is StatusKind.BOOK_GAP and gap.data["reason"] == "crossed"
    book = dec.book(TOKEN)
    assert book is not None and not book.valid and dec.stats.gaps == 1


def test_a_real_price_change_that_does_not_fit_its_book_is_a_gap() -> None:
    # NautilusTrader's price_change_v2.json sets a bid at 0.7 while saying the best bid is 0.6
    # and the best ask 0.7: applied to a book with that top, the book would be locked.
    dec = PolymarketDecoder(InstrumentRegistry())
    token = load("nt_py_price_change_v2.json")["price_changes"][0]["asset_id"]
    dec.decode(book_msg([("0.6", "100")], [("0.7", "100")], token), T)
    (gap,) = dec.decode(frame("nt_py_price_change_v2.json"), T + 1)
    assert isinstance(gap, Status) and gap.status is StatusKind.BOOK_GAP and gap.instrument == token
    book = dec.book(token)
    assert book is not None and not book.valid


# --------------------------------------------------------- 4. changes for a token without a book


def test_a_change_for_a_token_without_a_book_is_reported_once(dec: PolymarketDecoder) -> None:
    (gap,) = dec.decode(change_msg(("BUY", "0.4", "10", "0.4", "1")), T)
    assert isinstance(gap, Status) and gap.status is StatusKind.BOOK_GAP and gap.instrument == TOKEN
    assert gap.data["reason"] == "no_book" and gap.data["market"] == MARKET
    assert dec.decode(change_msg(("SELL", "0.6", "10", "0.4", "0.6")), T + 1) == []  # counted only
    assert (dec.stats.gaps, dec.stats.ignored_changes, dec.bookless_changes) == (1, 2, 2)
    assert dec.book(TOKEN) is None
    # Its first snapshot says the book is back.
    resync, update = dec.decode(book_msg([("0.4", "10")], [("0.6", "10")]), T + 2)
    assert isinstance(resync, Status) and resync.status is StatusKind.BOOK_RESYNC
    assert isinstance(update, BookUpdate) and update.snapshot
    # A token met for the first time in a snapshot resyncs nothing.
    (only,) = dec.decode(book_msg([("0.4", "10")], [("0.6", "10")], token="42"), T + 3)
    assert isinstance(only, BookUpdate)


# ------------------------------------------------------------- 3. our maker orders, by address


def test_our_maker_order_is_ours_by_its_address_under_another_key() -> None:
    # user_trade3.json: our maker order (our funder address) carries another key than ours.
    msg = load("nt_py_user_trade3.json")
    fill, settlement = PolymarketDecoder(
        InstrumentRegistry(), api_key=NT_KEY, addresses=[NT_ADDRESS.lower()]
    ).decode(wire(msg), T)
    assert isinstance(fill, Fill) and isinstance(settlement, TradeSettlement)
    assert (fill.order_id, fill.instrument, fill.side, fill.price, fill.size, fill.liquidity) == (
        "0x3ad09f225ebe141dfbdb3824f31cb457e8e0301ca4e0a06311e543f5328b9dea",
        NT_YES,
        Side.BUY,
        Decimal("0.513"),
        Decimal("5"),
        Liquidity.MAKER,
    )
    assert settlement.status is TradeStatus.CONFIRMED and fill.ts_exchange == 1762776436 * 10**9
    # By key alone it is nobody's: refused, loudly.
    with pytest.raises(MalformedFrame, match="none of its maker orders"):
        PolymarketDecoder(InstrumentRegistry(), api_key=NT_KEY).decode(wire(msg), T)


def test_only_our_maker_orders_fill_and_addresses_ignore_case() -> None:
    # user_trade4.json: three maker orders, two at our address (checksummed on the wire).
    dec = PolymarketDecoder(InstrumentRegistry(), api_key="not-this-key", addresses=[NT_ADDRESS.upper()])
    events = dec.decode(frame("nt_py_user_trade4.json"), T)
    fills = [e for e in events if isinstance(e, Fill)]
    assert [((f.order_id or "")[:10], f.price, f.size) for f in fills] == [
        ("0x3ad09f22", Decimal("0.4"), Decimal("5")),
        ("0x67b598ca", Decimal("0.3"), Decimal("5")),
    ]
    assert len([e for e in events if isinstance(e, TradeSettlement)]) == 2


def test_recovered_trades_know_our_maker_orders_by_address() -> None:
    # `GET /data/trades` (reconciliation) uses the same rule as the user channel.
    item = load("nt_py_user_trade3.json")
    del item["event_type"]
    page = wire({"data": [item], "next_cursor": "LTE="})
    dec = PolymarketDecoder(InstrumentRegistry(), api_key=NT_KEY, addresses=[NT_ADDRESS])
    (fill,) = dec.trade_fills(page, T).fills
    assert fill.order_id is not None and fill.order_id.startswith("0x3ad09f22")
    assert fill.liquidity is Liquidity.MAKER


def test_our_maker_order_by_key_still_counts() -> None:
    # user_trade1.json: six maker orders, ours by key (and address); the trade's owner is not us.
    for addresses in ((), (NT_ADDRESS,)):
        dec = PolymarketDecoder(InstrumentRegistry(), api_key=NT_KEY, addresses=addresses)
        fill, settlement = dec.decode(frame("nt_py_user_trade1.json"), T)
        assert isinstance(fill, Fill) and fill.order_id is not None and fill.order_id.startswith("0xab679e56")
        assert (fill.size, fill.price, fill.side) == (Decimal("5"), Decimal("0.518"), Side.SELL)
        assert isinstance(settlement, TradeSettlement) and settlement.status is TradeStatus.MINED


# ------------------------------------------------------------------ 5. more real frames, read right


def test_nautilus_python_captures_of_the_market_channel() -> None:
    dec = PolymarketDecoder(InstrumentRegistry())
    (book,) = dec.decode(frame("nt_py_book.json"), T)  # 76 bids ascending, 86 asks descending
    assert isinstance(book, BookUpdate) and book.snapshot and len(book.bids) == 76 and len(book.asks) == 86
    assert (book.best_bid, book.best_bid_size, book.best_ask, book.best_ask_size) == (
        0.511,
        1304.72,
        0.514,
        20230.87,
    )
    assert book.ts_exchange == 1728799418260 * 10**6
    (trade,) = dec.decode(frame("nt_py_last_trade_price.json"), T)
    assert isinstance(trade, Trade) and (trade.price, trade.size, trade.side) == (0.491, 85.36, Side.SELL)
    (tick,) = dec.decode(frame("nt_py_tick_size_change.json"), T)
    assert isinstance(tick, Status) and tick.status is StatusKind.TICK_SIZE_CHANGE
    assert tick.data["new_tick_size"] == 0.001


def test_nautilus_python_captures_of_the_user_channel() -> None:
    dec = PolymarketDecoder(InstrumentRegistry(), api_key=NT_KEY, addresses=[NT_ADDRESS])
    (placed,) = dec.decode(frame("nt_py_order_placement.json"), T)
    assert isinstance(placed, OrderUpdate) and placed.status is OrderState.OPEN
    assert (placed.price, placed.size, placed.side) == (Decimal("0.513"), Decimal("5"), Side.BUY)
    (cancelled,) = dec.decode(frame("nt_py_order_cancel.json"), T)
    assert isinstance(cancelled, OrderUpdate) and cancelled.status is OrderState.CANCELLED
    assert cancelled.filled_size == Decimal("5")
    # A taker trade, as the user channel and as `GET /data/trades` (no event_type) list it.
    fill, _ = dec.decode(frame("nt_py_user_trade2.json"), T)
    assert isinstance(fill, Fill) and fill.liquidity is Liquidity.TAKER and fill.price == Decimal("0.52")
    fill2, settlement = dec.decode(frame("nt_py_trades.json"), T)
    assert isinstance(fill2, Fill) and fill2.order_id is not None and fill2.order_id.startswith("0x4505aada")
    assert (fill2.price, fill2.size, fill2.side) == (Decimal("0.489"), Decimal("5"), Side.BUY)
    assert isinstance(settlement, TradeSettlement) and settlement.transaction_hash is not None


def test_hostile_copies_of_the_real_trades_never_escape() -> None:
    # Every number of a real trade, replaced by out-of-range values: only MalformedFrame.
    base = load("nt_py_user_trade4.json")
    bad_values = ["1e999999", "-1", "NaN", "Infinity", "1e30", "0x10", "", "9" * 40]
    for key in ("price", "size", "fee_rate_bps", "timestamp", "match_time"):
        for value in bad_values:
            msg = copy.deepcopy(base)
            msg[key] = value
            _decodes_or_refuses(msg)
    for key in ("price", "matched_amount", "fee_rate_bps"):
        for value in bad_values:
            msg = copy.deepcopy(base)
            msg["maker_orders"][0][key] = value
            _decodes_or_refuses(msg)


def _decodes_or_refuses(msg: Any) -> None:
    dec = PolymarketDecoder(InstrumentRegistry(), api_key=NT_KEY, addresses=[NT_ADDRESS])
    try:
        events = dec.decode(orjson.dumps(msg), T)
    except MalformedFrame:
        return
    for e in events:  # what is accepted is in range
        if isinstance(e, Fill):
            assert 0 < e.price < 1 and 0 <= e.size <= Decimal("1e15") and e.fee.is_finite()
            assert e.ts_exchange is None or 0 < e.ts_exchange < 2**63


# ------------------------------------------------------------------ 1. nesting cannot crash it

_DEEP = """
import sys
import tradingd.connectors.polymarket.signing  # its dependency raises the recursion limit to 100,000
assert sys.getrecursionlimit() >= 100_000
from tradingd.connectors.polymarket.codec import PolymarketDecoder
from tradingd.connectors.polymarket.execution import _text
from tradingd.engine.venue import InstrumentRegistry, MalformedFrame
n = 50_000
frames = [
    b"[" * n + b"]" * n,
    b'{"a":' * n + b"1" + b"}" * n,
    b'{"event_type":"book","asset_id":"1","bids":' + b"[" * n + b"]" * n + b',"asks":[]}',
    b'{"asset_id":"1","bids":[],"asks":[],"x":' + b"[" * n + b"]" * n + b"}",
]
dec = PolymarketDecoder(InstrumentRegistry())
for frame in frames:
    try:
        dec.decode(frame, 1)
    except MalformedFrame:
        pass
    else:
        raise SystemExit("decoded a frame nested 50,000 deep")
    try:
        dec.learn_markets(frame)
    except MalformedFrame:
        pass
    try:
        dec.trade_fills(frame, 1)
    except MalformedFrame:
        pass
    assert _text(frame).startswith(chr(frame[0]))
print("survived", dec.stats.malformed)
"""


def test_a_frame_nested_50000_deep_is_malformed_not_a_segfault() -> None:
    # In a child process: on failure the interpreter dies of SIGSEGV (exit -11), not an exception.
    root = Path(__file__).resolve().parent.parent.parent.parent
    done = subprocess.run(
        [sys.executable, "-c", _DEEP], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.split() == ["survived", "4"]


_DEEP_GAMMA = """
import sys
import httpx, trio
import tradingd.connectors.polymarket.signing  # its dependency raises the recursion limit to 100,000
assert sys.getrecursionlimit() >= 100_000
from tradingd.connectors.polymarket.gamma import GammaClient
from tradingd.engine import VenueError
bodies = [
    b"[" * 50_000 + b"]" * 50_000,
    b'[{"id":"1","x":' + b"[" * 1_000_000 + b"]" * 1_000_000 + b"}]",  # deeper than the limit
    b'[{"id":"1",\\n"x":' + b"[" * 3_000 + b"]" * 3_000 + b"}]",  # pretty-printed: re-encoded
]
async def main():
    for body in bodies:
        answer = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
        gamma = GammaClient(httpx.AsyncClient(transport=answer), base_url="http://gamma")
        for call in (lambda: gamma.get_json("/events"), lambda: gamma.markets_page(0)):
            try:
                await call()
            except VenueError as exc:
                print("nested deeper than" in str(exc))
trio.run(main)
"""


def test_a_gamma_answer_nested_too_deep_is_a_venue_error_not_a_segfault() -> None:
    # Gamma's answers were parsed without a schema by msgspec, which recurses down the C stack as
    # deep as the (raised) recursion limit lets it: SIGSEGV at 50,000 levels, RecursionError
    # (not the client's VenueError) past the limit.
    root = Path(__file__).resolve().parent.parent.parent.parent
    done = subprocess.run(
        [sys.executable, "-c", _DEEP_GAMMA], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.split() == ["True"] * 6


def test_the_slow_path_reads_what_the_fast_path_reads_however_deep_an_unknown_member() -> None:
    # The one nesting bound is the engine's (`MAX_NESTING`): a member no field reads, nested
    # under it, is skipped by the typed fast path, and the slow path (here for a `.48` price,
    # the PM-DOCS form) must read the same book, at the interpreter's default recursion limit
    # too. It refused it with a nesting limit of its own (64) before.
    n = MAX_NESTING - 20
    deep = b"[" * n + b"]" * n
    plain = (
        b'{"event_type":"book","asset_id":"1","market":"m","bids":[{"price":"0.48","size":"10"}],"asks":[]'
    )
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)  # the default (py_ecc, once imported, raises it)
    try:
        books = []
        for price in (b'"0.48"', b'".48"'):  # the fast path, then the slow one
            dec = PolymarketDecoder(InstrumentRegistry())
            books.append(dec.decode(plain.replace(b'"0.48"', price) + b',"x":' + deep + b"}", T))
    finally:
        sys.setrecursionlimit(limit)
    assert books[0] == books[1] and len(books[0]) == 1


def test_text_that_is_not_utf8_is_malformed(dec: PolymarketDecoder) -> None:
    # msgspec raises UnicodeDecodeError (not its DecodeError) for such bytes inside a string; a
    # str frame with a lone surrogate cannot even be encoded. Every entry point refuses both.
    from tradingd.connectors.polymarket.codec import decode_open_orders, decode_order

    dec.decode(frame("ws_market_book_msg.json"), T)
    before = state_of(dec)
    frames: list[bytes | str] = [
        b'{"event_type":"book","asset_id":"\xff\xfe","bids":[],"asks":[]}',
        b'{"event_type":"price_change","market":"\xc3","price_changes":[]}',
        b'{"data":[{"id":"\xff","asset_id":"1","side":"BUY","price":"0.5","original_size":"1"}],"next_cursor":"LTE="}',
        '{"event_type":"book","asset_id":"\ud800","bids":[],"asks":[]}',
        "PO\ud800",
    ]
    for raw in frames:
        with pytest.raises(MalformedFrame):
            dec.decode(raw, T)
        for read in (decode_open_orders, decode_order, dec.trade_fills):
            with pytest.raises(MalformedFrame):
                read(raw, T)
    assert state_of(dec) == before


_SHALLOW_LIMIT = """
import sys
sys.setrecursionlimit(1000)  # the interpreter's default: a backtest or `decode` imports no py_ecc
from tradingd.connectors.polymarket.codec import PolymarketDecoder, decode_open_orders, decode_order
from tradingd.engine.venue import InstrumentRegistry, MalformedFrame
dec = PolymarketDecoder(InstrumentRegistry())
escaped = []
for n in (990, 1000, 1020, 1030):
    deep = b"[" * n + b"]" * n
    for frame in (
        b'{"event_type":"book","asset_id":"1","bids":[],"asks":[],"x":' + deep + b"}",
        b'{"asset_id":"1","bids":[],"asks":[],"x":' + deep + b"}",
        b'{"data":[{"id":"1","x":' + deep + b'}],"next_cursor":"LTE="}',
    ):
        for read in (
            lambda f: dec.decode(f, 1),
            lambda f: dec.trade_fills(f, 1),
            lambda f: decode_open_orders(f, 1),
            lambda f: decode_order(f, 1),
        ):
            try:
                read(frame)
            except MalformedFrame:
                pass
            except Exception as exc:
                escaped.append((n, type(exc).__name__))
print(escaped)
"""


def test_nesting_near_the_default_recursion_limit_is_malformed() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SHALLOW_LIMIT],
        cwd=Path(__file__).resolve().parent.parent.parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
