"""The Polymarket local order book (`connectors.polymarket.book`, VENUES.md §2.2, §2.3): on every
captured book and price_change message, and by property against a naive reference book (a dict of
price strings -> size) over random sequences of snapshots and level changes."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from py_clob_client_v2.clob_types import OrderBookSummary, OrderSummary  # type: ignore[import-untyped]
from py_clob_client_v2.utilities import generate_orderbook_summary_hash  # type: ignore[import-untyped]

from tests.support.examples import examples
from tradingd.connectors.polymarket.book import QUANTUM, LocalOrderBook, on_grid, summary_hash
from tradingd.connectors.polymarket.codec import PolymarketDecoder
from tradingd.engine import BookUpdate, MalformedFrame, OrderBook, Status, StatusKind
from tradingd.engine.model import InstrumentRegistry

FIXTURES = Path(__file__).parent.parent.parent / "fixtures" / "polymarket"
TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
OTHER = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
MARKET = "0xdd22472e552920b8438158ea7238bfadfa4f736aa4cee91a6b86c39ead110917"
T = 1_700_000_000_000_000_000

# VENUES.md §2.2, verbatim PM-DOCS samples: a book with best levels FIRST and `.48` numbers, and a
# price_change for two tokens (the best ask "1" and best bid "0" mean an empty side).
DOCS_BOOK = (
    b'{"event_type":"book","asset_id":"65818619657568813474341868652308942079804919287380422192892211131408793125422",'
    b'"market":"0xbd31dc8a20211944f6b70f31557f1001557b59905b7738480ca09bd4532f84af","bids":[{"price":".48",'
    b'"size":"30"},{"price":".49","size":"20"},{"price":".50","size":"15"}],"asks":[{"price":".52","size":"25"},'
    b'{"price":".53","size":"60"},{"price":".54","size":"10"}],"timestamp":"123456789000","hash":"0x0...."}'
)
DOCS_PRICE_CHANGE = (
    b'{"market":"0x5f65177b394277fd294cd75650044e32ba009a95022d88a0c1d565897d72f8f1","price_changes":[{"asset_id":'
    b'"71321045679252212594626385532706912750332728571942532289631379312455583992563","price":"0.5","size":"200",'
    b'"side":"BUY","hash":"56621a121a47ed9333273e21c83b660cff37ae50","best_bid":"0.5","best_ask":"1"},{"asset_id":'
    b'"52114319501245915516055106046884209969926127482827954674443846427813813222426","price":"0.5","size":"200",'
    b'"side":"SELL","hash":"1895759e4df7a796bf4f1c5a5950b748306923e2","best_bid":"0","best_ask":"0.5"}],'
    b'"timestamp":"1757908892351","event_type":"price_change"}'
)


def frame(name: str) -> bytes:
    return orjson.dumps(orjson.loads((FIXTURES / name).read_bytes()))


def levels(book: OrderBook) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    return book.depth()


def empty_book(token: str) -> bytes:
    return orjson.dumps({"event_type": "book", "asset_id": token, "market": MARKET, "bids": [], "asks": []})


# --------------------------------------------------------------------------- LocalOrderBook


def test_one_quantum_represents_every_tick_the_venue_uses() -> None:
    for tick in ("0.1", "0.01", "0.005", "0.0025", "0.001", "0.0001"):
        n = round(1 / float(tick))
        for k in (1, n // 2, n - 1):
            price = float(Decimal(tick) * k)
            assert on_grid(price)
            assert abs(round(price / QUANTUM) * QUANTUM - price) < 1e-12
    assert not on_grid(0.00005)
    assert not on_grid(1.0001)
    assert not on_grid(-0.01)


def test_snapshot_is_the_same_whatever_the_order_of_the_arrays() -> None:
    best_last = LocalOrderBook(TOKEN)
    best_last.snapshot(
        [(0.48, 500.0), (0.49, 350.0), (0.50, 200.0)], [(0.53, 400.0), (0.52, 250.0), (0.51, 150.0)]
    )
    best_first = LocalOrderBook(TOKEN)
    best_first.snapshot(
        [(0.50, 200.0), (0.49, 350.0), (0.48, 500.0)], [(0.51, 150.0), (0.52, 250.0), (0.53, 400.0)]
    )
    assert best_last.top() == best_first.top() == (0.5, 200.0, 0.51, 150.0)
    assert levels(best_last) == levels(best_first)
    # A snapshot replaces everything, and a zero size is no level.
    best_last.snapshot([(0.3, 10.0), (0.31, 0.0)], [], hash="h2", timestamp_ms=5)
    assert best_last.top() == (0.3, 10.0, None, None)
    assert (best_last.levels, best_last.hash, best_last.timestamp_ms, best_last.valid) == (1, "h2", 5, True)


def test_changes_set_absolute_sizes_and_zero_removes() -> None:
    book = LocalOrderBook(TOKEN)
    book.snapshot([(0.49, 350.0), (0.50, 200.0)], [(0.51, 150.0)])
    book.change("BUY", 0.50, 120.0)  # a new total, not a delta
    assert book.top()[:2] == (0.5, 120.0)
    book.change("BUY", 0.50, 0.0)
    assert book.top()[:2] == (0.49, 350.0)
    book.change("SELL", 0.505, 7.5)  # a finer tick after a tick_size_change
    assert book.top()[2:] == (0.505, 7.5)
    book.change("SELL", 0.9, 0.0)  # removing a level that is not there
    assert book.levels == 3
    with pytest.raises(ValueError, match="BUY or SELL"):
        book.change("buy", 0.5, 1.0)


def test_agrees_with_the_venue_top() -> None:
    book = LocalOrderBook(TOKEN)
    book.snapshot([(0.49, 1.0), (0.50, 2.0)], [(0.52, 3.0)])
    assert book.agrees(0.5, 0.52)
    assert book.agrees(None, None)  # the venue said nothing
    assert book.agrees(0.5000000000000001, 0.52)  # float noise is no disagreement
    assert not book.agrees(0.49, 0.52)
    assert not book.agrees(0.5, 0.51)
    assert not book.agrees(0.0, 0.52)  # "0": the venue has no bids, we have some
    book.snapshot([], [])
    assert book.agrees(0.0, 1.0)  # both sides empty, both sides empty
    assert not book.agrees(0.5, 1.0)


def test_repr_says_when_the_book_is_invalid() -> None:
    book = LocalOrderBook(TOKEN, MARKET)
    book.snapshot([(0.4, 1.0)], [(0.6, 2.0)])
    assert "1.0@0.4 / 2.0@0.6" in repr(book)
    book.valid = False
    assert "INVALID" in repr(book)


# --------------------------------------------------------------------------- the venue's hash


def official_hash(summary: dict[str, Any]) -> str:
    obs = OrderBookSummary(
        market=summary["market"],
        asset_id=summary["asset_id"],
        timestamp=summary["timestamp"],
        bids=[OrderSummary(price=lv["price"], size=lv["size"]) for lv in summary["bids"]],
        asks=[OrderSummary(price=lv["price"], size=lv["size"]) for lv in summary["asks"]],
        min_order_size=summary["min_order_size"],
        tick_size=summary["tick_size"],
        neg_risk=summary["neg_risk"],
        last_trade_price=summary["last_trade_price"],
        hash=summary["hash"],
    )
    return str(generate_orderbook_summary_hash(obs))


def summary(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "market": MARKET,
        "asset_id": TOKEN,
        "timestamp": "1728799418260",
        "hash": "anything",
        "bids": [{"price": "0.01", "size": "1000"}, {"price": "0.1", "size": "125"}],
        "asks": [{"price": "0.98", "size": "5000"}, {"price": "0.14", "size": "705"}],
        "min_order_size": "5",
        "tick_size": "0.01",
        "neg_risk": False,
        "last_trade_price": "0.12",
    }
    base.update(over)
    return base


def test_summary_hash_is_the_official_clients() -> None:
    s = summary()
    assert summary_hash(s) == official_hash(s)
    assert len(summary_hash(s)) == 40
    # The hash field itself does not enter the hash; everything else does.
    assert summary_hash(summary(hash="other")) == summary_hash(s)
    assert summary_hash(summary(neg_risk=True)) != summary_hash(s)
    with pytest.raises(KeyError):
        summary_hash({k: v for k, v in s.items() if k != "tick_size"})


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(max_size=20),
    prices=st.lists(st.tuples(st.text(max_size=6), st.text(max_size=6)), max_size=4),
    neg_risk=st.booleans(),
)
def test_summary_hash_matches_the_official_client_on_any_strings(
    text: str, prices: list[tuple[str, str]], neg_risk: bool
) -> None:
    lv = [{"price": p, "size": s} for p, s in prices]
    s = summary(market=text, bids=lv, asks=lv[::-1], neg_risk=neg_risk, last_trade_price=text)
    assert summary_hash(s) == official_hash(s)


# --------------------------------------------------------------------------- the captured messages


@pytest.fixture
def dec() -> PolymarketDecoder:
    return PolymarketDecoder(InstrumentRegistry())


def test_book_fixture_best_first(dec: PolymarketDecoder) -> None:
    (ev,) = dec.decode(frame("ws_market_book_msg.json"), T)
    assert isinstance(ev, BookUpdate)
    assert ev.snapshot and ev.instrument == TOKEN
    assert ev.bids == ((0.5, 200.0), (0.49, 350.0)) and ev.asks == ((0.51, 150.0), (0.52, 250.0))
    assert (ev.best_bid, ev.best_bid_size, ev.best_ask, ev.best_ask_size) == (0.5, 200.0, 0.51, 150.0)
    assert ev.ts_exchange == 1_703_875_200_000 * 1_000_000
    book = dec.book(TOKEN)
    assert book is not None and book.market == MARKET
    assert levels(book) == ([(0.5, 200.0), (0.49, 350.0)], [(0.51, 150.0), (0.52, 250.0)])


def test_book_fixture_best_last(dec: PolymarketDecoder) -> None:
    # The real ordering (bids ascending, asks descending): the best level is the last one.
    (ev,) = dec.decode(frame("ws_book_snapshot.json"), T)
    assert isinstance(ev, BookUpdate) and ev.snapshot
    assert ev.bids[-1] == (0.5, 200.0) and ev.asks[-1] == (0.51, 150.0)
    assert (ev.best_bid, ev.best_ask) == (0.5, 0.51)
    book = dec.book(TOKEN)
    assert book is not None
    assert levels(book) == (
        [(0.5, 200.0), (0.49, 350.0), (0.48, 500.0)],
        [(0.51, 150.0), (0.52, 250.0), (0.53, 400.0)],
    )


def test_rest_book_fixture(dec: PolymarketDecoder) -> None:
    (ev,) = dec.decode(frame("clob_book_response.json"), T)
    assert isinstance(ev, BookUpdate) and ev.snapshot
    assert ev.instrument == "12345678901234567890" and ev.sequence == "0xabc123"
    assert (ev.best_bid, ev.best_bid_size, ev.best_ask, ev.best_ask_size) == (0.5, 150.0, 0.51, 120.0)


def test_docs_book_sample_with_leading_dot_numbers(dec: PolymarketDecoder) -> None:
    (ev,) = dec.decode(DOCS_BOOK, T)
    assert isinstance(ev, BookUpdate)
    assert (ev.best_bid, ev.best_bid_size, ev.best_ask, ev.best_ask_size) == (0.5, 15.0, 0.52, 25.0)
    assert ev.bids == ((0.48, 30.0), (0.49, 20.0), (0.5, 15.0))


def test_price_change_fixture_agreeing_with_the_book(dec: PolymarketDecoder) -> None:
    # ws_market_book_msg.json's book with its 0.51 ask taken (a trade), then the captured
    # price_change: bid 0.51 for 150, venue top 0.51 / 0.52, which the local book now shows.
    dec.decode(frame("ws_market_book_msg.json"), T)
    book = dec.book(TOKEN)
    assert book is not None
    book.change("SELL", 0.51, 0.0)
    (ev,) = dec.decode(frame("ws_market_price_change_msg.json"), T + 1)
    assert isinstance(ev, BookUpdate) and not ev.snapshot
    assert ev.bids == ((0.51, 150.0),) and ev.asks == ()
    assert (ev.best_bid, ev.best_bid_size, ev.best_ask, ev.best_ask_size) == (0.51, 150.0, 0.52, 250.0)
    assert ev.sequence == "0xhash001" and book.hash == "0xhash001"
    assert dec.stats.gaps == 0


def test_price_change_fixture_after_the_captured_book_is_a_mismatch(dec: PolymarketDecoder) -> None:
    # The captures do not chain: applied to ws_market_book_msg.json's book the bid at 0.51 meets
    # the ask at 0.51, while the venue says the best ask is 0.52. The cross-check catches it.
    dec.decode(frame("ws_market_book_msg.json"), T)
    (st_,) = dec.decode(frame("ws_market_price_change_msg.json"), T + 1)
    assert isinstance(st_, Status) and st_.status is StatusKind.BOOK_GAP
    assert st_.data["venue_best_ask"] == 0.52 and st_.data["local_best_ask"] == 0.51
    assert st_.data["reason"] == "best_bid_ask_mismatch"
    book = dec.book(TOKEN)
    assert book is not None and not book.valid
    assert dec.stats.gaps == 1
    # Until a new snapshot, changes are ignored (ws_quotes.json: both of its tokens). The token
    # that never had a book is not dropped silently: it is reported once, a BOOK_GAP "no_book".
    (nobook,) = dec.decode(frame("ws_quotes.json"), T + 2)
    assert isinstance(nobook, Status) and nobook.status is StatusKind.BOOK_GAP
    assert nobook.data["reason"] == "no_book" and nobook.instrument != TOKEN
    assert dec.stats.ignored_changes == 2
    events = dec.decode(frame("ws_market_book_msg.json"), T + 3)
    assert [type(e) for e in events] == [Status, BookUpdate]
    assert isinstance(events[0], Status) and events[0].status is StatusKind.BOOK_RESYNC
    assert book.valid


def test_quotes_fixture_updates_two_tokens(dec: PolymarketDecoder) -> None:
    # ws_quotes.json has no event_type and entries for two tokens; give each a book it fits.
    dec.decode(
        orjson.dumps(
            {"event_type": "book", "asset_id": TOKEN, "bids": [], "asks": [{"price": "0.52", "size": "9"}]}
        ),
        T,
    )
    dec.decode(
        orjson.dumps(
            {"event_type": "book", "asset_id": OTHER, "bids": [{"price": "0.48", "size": "3"}], "asks": []}
        ),
        T,
    )
    a, b = dec.decode(frame("ws_quotes.json"), T + 1)
    assert isinstance(a, BookUpdate) and isinstance(b, BookUpdate)
    assert (a.instrument, a.bids, a.best_bid, a.best_ask) == (TOKEN, ((0.51, 150.0),), 0.51, 0.52)
    assert (b.instrument, b.asks, b.best_bid, b.best_ask) == (OTHER, ((0.49, 100.0),), 0.48, 0.49)


def test_docs_price_change_sample_with_empty_sides(dec: PolymarketDecoder) -> None:
    dec.decode(empty_book(TOKEN), T)
    dec.decode(empty_book(OTHER), T)
    a, b = dec.decode(DOCS_PRICE_CHANGE, T + 1)
    assert isinstance(a, BookUpdate) and isinstance(b, BookUpdate)
    # best_ask "1" / best_bid "0": an empty side, which the local books agree with.
    assert (a.best_bid, a.best_ask, b.best_bid, b.best_ask) == (0.5, None, None, 0.5)
    assert dec.stats.gaps == 0


def test_legacy_price_change_schema_is_decoded_and_counted(dec: PolymarketDecoder) -> None:
    dec.decode(frame("ws_market_book_msg.json"), T)
    legacy = {
        "asset_id": TOKEN,
        "changes": [
            {"price": "0.49", "side": "BUY", "size": "0"},
            {"price": "0.53", "side": "SELL", "size": "12"},
        ],
        "event_type": "price_change",
        "market": MARKET,
        "timestamp": "1703875201000",
        "hash": "legacyhash",
    }
    (ev,) = dec.decode(orjson.dumps(legacy), T + 1)
    assert isinstance(ev, BookUpdate)
    assert ev.bids == ((0.49, 0.0),) and ev.asks == ((0.53, 12.0),) and ev.sequence == "legacyhash"
    assert dec.legacy_price_changes == 1
    book = dec.book(TOKEN)
    assert book is not None
    assert levels(book) == ([(0.5, 200.0)], [(0.51, 150.0), (0.52, 250.0), (0.53, 12.0)])


def test_a_change_off_the_grid_is_malformed_and_changes_nothing(dec: PolymarketDecoder) -> None:
    dec.decode(frame("ws_market_book_msg.json"), T)
    book = dec.book(TOKEN)
    assert book is not None
    before = levels(book)
    bad = orjson.loads(frame("ws_market_price_change_msg.json"))
    bad["price_changes"] = [
        {**bad["price_changes"][0], "price": "0.51", "best_bid": None, "best_ask": None},
        {**bad["price_changes"][0], "price": "0.50005"},
    ]
    with pytest.raises(MalformedFrame, match="not a multiple of 0.0001"):
        dec.decode(orjson.dumps(bad), T + 1)
    assert levels(book) == before and book.valid


# --------------------------------------------------------------------------- property: vs a naive book

TICKS = ("0.1", "0.01", "0.005", "0.001", "0.0001")


@st.composite
def price_strings(draw: st.DrawFn, tick: str) -> str:
    step = Decimal(tick)
    n = int(1 / step)
    p = step * draw(st.integers(1, n - 1))
    form = draw(st.sampled_from(["plain", "zeros"]))
    text = format(p.normalize(), "f")
    return text + "00" if form == "zeros" and "." in text else text


SIZES = st.integers(0, 10**9).map(lambda n: format((Decimal(n) / 10**6).normalize(), "f"))


@st.composite
def operations(draw: st.DrawFn) -> list[tuple[str, Any]]:
    tick = draw(st.sampled_from(TICKS))
    prices = price_strings(tick)
    level = st.tuples(prices, SIZES)
    ops: list[tuple[str, Any]] = []
    for _ in range(draw(st.integers(1, 12))):
        token = draw(st.sampled_from([TOKEN, OTHER]))
        if draw(st.integers(0, 4)) == 0:
            ops.append(
                ("book", (token, draw(st.lists(level, max_size=6)), draw(st.lists(level, max_size=6))))
            )
        else:
            entries = draw(
                st.lists(
                    st.tuples(
                        st.sampled_from([TOKEN, OTHER]), st.sampled_from(["BUY", "SELL"]), prices, SIZES
                    ),
                    min_size=1,
                    max_size=5,
                )
            )
            ops.append(("change", (entries, draw(st.booleans()) and draw(st.integers(0, 9)) == 0)))
    return ops


class Naive:
    """The reference: price string (normalized) -> size, per side, per token; None before the
    first snapshot and after a gap, until the next snapshot."""

    def __init__(self) -> None:
        # No key: no snapshot ever (a change is reported once, "no_book"); None: invalid.
        self.books: dict[str, tuple[dict[str, float], dict[str, float]] | None] = {}
        self.bookless: set[str] = set()  # tokens reported "no_book" since their last snapshot

    def crossed(self, token: str) -> bool:
        """A best bid not below the best ask: a broken book (never data)."""
        book = self.books[token]
        assert book is not None
        return bool(book[0]) and bool(book[1]) and max(map(Decimal, book[0])) >= min(map(Decimal, book[1]))

    @staticmethod
    def key(price: str) -> str:
        return format(Decimal(price).normalize(), "f")

    def snapshot(self, token: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> None:
        b: dict[str, float] = {}
        a: dict[str, float] = {}
        for side, lv in ((b, bids), (a, asks)):
            for p, s in lv:
                side.pop(self.key(p), None)
                if float(s) > 0:
                    side[self.key(p)] = float(s)
        self.books[token] = (b, a)

    def set(self, token: str, side: str, price: str, size: str) -> None:
        book = self.books.get(token)
        assert book is not None
        levels_ = book[0] if side == "BUY" else book[1]
        if float(size) > 0:
            levels_[self.key(price)] = float(size)
        else:
            levels_.pop(self.key(price), None)

    def top(self, token: str) -> tuple[str, str]:
        """The venue's best bid / ask strings for `token` ("0" / "1" for an empty side)."""
        book = self.books[token]
        assert book is not None
        bid = max(book[0], key=Decimal, default="0")
        ask = min(book[1], key=Decimal, default="1")
        return bid, ask

    def depth(self, token: str) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        book = self.books[token]
        assert book is not None
        bids = sorted(((Decimal(p), s) for p, s in book[0].items()), reverse=True)
        asks = sorted((Decimal(p), s) for p, s in book[1].items())
        return [(float(p), s) for p, s in bids], [(float(p), s) for p, s in asks]


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations())
def test_random_snapshots_and_changes_match_a_naive_book(ops: list[tuple[str, Any]]) -> None:
    dec = PolymarketDecoder(InstrumentRegistry())
    ref = Naive()
    for i, (kind, arg) in enumerate(ops):
        ts = T + i
        if kind == "book":
            token, bids, asks = arg
            msg = {
                "event_type": "book",
                "asset_id": token,
                "market": MARKET,
                "bids": [{"price": p, "size": s} for p, s in bids],
                "asks": [{"price": p, "size": s} for p, s in asks],
                "timestamp": "1700000000000",
                "hash": f"h{i}",
            }
            events = dec.decode(orjson.dumps(msg), ts)
            ref.snapshot(token, bids, asks)
            ref.bookless.discard(token)
            if ref.crossed(token):
                (gap,) = events
                assert isinstance(gap, Status) and gap.status is StatusKind.BOOK_GAP
                assert gap.data["reason"] == "crossed"
                ref.books[token] = None
            else:
                assert isinstance(events[-1], BookUpdate) and events[-1].snapshot
        else:
            entries, lie = arg
            changes: list[dict[str, Any]] = []
            runs: list[list[Any]] = []  # [token, its top after the run, no book ever] per run
            for token, side, price, size in entries:
                entry: dict[str, Any] = {"asset_id": token, "price": price, "size": size, "side": side}
                top = None
                if ref.books.get(token) is not None:
                    ref.set(token, side, price, size)
                    bid, ask = ref.top(token)
                    if lie:  # a best bid on the grid that the book does not have
                        bid = "0.0002" if Naive.key(bid) == "0.0001" else "0.0001"
                    entry["best_bid"], entry["best_ask"] = bid, ask
                    bids, asks = ref.depth(token)
                    top = (bids[0][0] if bids else None, asks[0][0] if asks else None)
                changes.append(entry)
                if runs and runs[-1][0] == token:
                    runs[-1][1] = top
                else:
                    runs.append([token, top, token not in ref.books])
            msg = {
                "market": MARKET,
                "price_changes": changes,
                "timestamp": "1700000000001",
                "event_type": "price_change",
            }
            events = dec.decode(orjson.dumps(msg), ts)
            invalidated: set[str] = set()
            expected: list[tuple[str, str, Any]] = []
            for token, top, never in runs:
                if never:
                    if token not in ref.bookless:  # reported once, until its first snapshot
                        ref.bookless.add(token)
                        expected.append(("gap", token, None))
                    continue
                if top is None or token in invalidated:
                    continue  # invalid, or since a gap earlier in this frame: ignored
                if lie or (top[0] is not None and top[1] is not None and top[0] >= top[1]):
                    expected.append(("gap", token, None))  # a mismatch, or a crossed book
                    invalidated.add(token)
                else:
                    expected.append(("book", token, top))
            got: list[tuple[str, str, Any]] = []
            for ev in events:
                if isinstance(ev, Status):
                    assert ev.status is StatusKind.BOOK_GAP
                    got.append(("gap", ev.instrument, None))
                else:
                    assert isinstance(ev, BookUpdate) and not ev.snapshot
                    got.append(("book", ev.instrument, (ev.best_bid, ev.best_ask)))
            assert got == expected
            for token in invalidated:
                ref.books[token] = None
        for token in (TOKEN, OTHER):
            book = dec.book(token)
            if ref.books.get(token) is None:
                assert book is None or not book.valid
                continue
            assert book is not None and book.valid
            bids, asks = ref.depth(token)
            assert levels(book) == (bids, asks)
            assert book.top() == (
                bids[0][0] if bids else None,
                bids[0][1] if bids else None,
                asks[0][0] if asks else None,
                asks[0][1] if asks else None,
            )


@settings(max_examples=examples(100), deadline=None)
@given(ops=operations())
def test_the_book_alone_matches_a_naive_book(ops: list[tuple[str, Any]]) -> None:
    """LocalOrderBook's own snapshot/change API, without the decoder."""
    books: dict[str, LocalOrderBook] = {}
    ref = Naive()
    for kind, arg in ops:
        if kind == "book":
            token, bids, asks = arg
            book = books.setdefault(token, LocalOrderBook(token))
            book.snapshot([(float(p), float(s)) for p, s in bids], [(float(p), float(s)) for p, s in asks])
            ref.snapshot(token, bids, asks)
        else:
            for token, side, price, size in arg[0]:
                if token in books:
                    books[token].change(side, float(price), float(size))
                    ref.set(token, side, price, size)
        for token, book in books.items():
            assert levels(book) == ref.depth(token)
            bid, ask = ref.top(token)
            assert book.agrees(float(bid), float(ask))


def test_naive_reference_is_not_trivially_equal() -> None:
    """The reference can disagree: a guard that the property above compares real content."""
    ref = Naive()
    ref.snapshot(TOKEN, [("0.5", "1")], [("0.6", "2")])
    book = LocalOrderBook(TOKEN)
    book.snapshot([(0.5, 1.0)], [(0.61, 2.0)])
    assert levels(book) != ref.depth(TOKEN)
    assert json.dumps(ref.depth(TOKEN)) == "[[[0.5, 1.0]], [[0.6, 2.0]]]"
