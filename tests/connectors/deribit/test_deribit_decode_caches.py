"""The compiled decoder's caches and shortcuts (issue 17, round 6) against the reference (a decoder
built with `compiled=False`): the same events, stats, exceptions and state wherever they hit,
miss, collide or step aside.

- the memo keys (`_fast.c` `key_of`) and instrument names (`_json.h` `json_ascii_cached`, both
  modules) are reused objects in direct-mapped tables: thousands of names collide in them;
- the tick ints (`_fast.c` `tick_int`) likewise, and ticks of 2**62 or more are not cached; the
  best levels are compared as C integers when both are exact ints within int64 (`apply_side`,
  `extreme`), by Python's comparison otherwise;
- `stats.frames` / `stats.events` are counted in their slots (`counted`) only on a stats class
  that keeps the attribute protocol, unchanged since it was learnt, holding exact ints.
"""

from __future__ import annotations

import functools
from typing import Any

import attrs
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.connectors.deribit._compare import HYPOTHESIS, INSTRUMENTS, PREFIX, T_LOCAL
from tests.support.profiled import python_calls
from tradingd.connectors.deribit import codec
from tradingd.connectors.deribit.codec import DeribitDecoder
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.model.book import OrderBook
from tradingd.engine.venue.spi import DecoderStats

try:
    from tradingd.connectors.deribit import _fast
except ImportError:  # not built: nothing to compare
    _fast = None  # type: ignore[assignment]

pytestmark = pytest.mark.skipif(_fast is None, reason="the compiled Deribit path (_fast.c) was not built")


def _frame(channel: str, data: Any) -> bytes:
    return PREFIX + channel.encode() + b'","data":' + orjson.dumps(data) + b"}}"


def _state(dec: DeribitDecoder) -> str:
    books = {
        k: (b.bids, b.asks, b.best_bid_ticks, b.best_ask_ticks, b.sequence, b.valid, b.quantum)
        for k, b in dec._books.items()
    }
    return repr((books, dec._states, attrs.asdict(dec.stats), dec.gapped_books))


def _outcome(dec: DeribitDecoder, frame: bytes) -> str:
    try:
        return repr(("events", dec.decode(frame, T_LOCAL)))
    except Exception as exc:
        return repr(("raised", type(exc).__name__, str(exc)))


class _Pair:
    def __init__(self, *setup: bytes) -> None:
        self.compiled = DeribitDecoder(InstrumentRegistry())
        self.python = DeribitDecoder(InstrumentRegistry(), compiled=False)
        assert self.compiled.compiled and not self.python.compiled
        for frame in setup:
            self.check(frame)

    def check(self, frame: bytes) -> str:
        got, want = _outcome(self.compiled, frame), _outcome(self.python, frame)
        assert got == want, f"{frame!r}\n compiled {got}\n python   {want}"
        return got

    def same_state(self) -> None:
        assert _state(self.compiled) == _state(self.python)


def _snapshot(inst: str, change_id: int, bids: list[Any], asks: list[Any]) -> bytes:
    data = {
        "type": "snapshot",
        "instrument_name": inst,
        "timestamp": 1_700_000_000_000,
        "change_id": change_id,
        "bids": bids,
        "asks": asks,
    }
    return _frame(f"book.{inst}.100ms", data)


def _change(inst: str, change_id: int, bids: list[Any], asks: list[Any]) -> bytes:
    data = {
        "type": "change",
        "instrument_name": inst,
        "timestamp": 1_700_000_000_100 + change_id,
        "change_id": change_id,
        "prev_change_id": change_id - 1,
        "bids": bids,
        "asks": asks,
    }
    return _frame(f"book.{inst}.100ms", data)


def _ticker(inst: str, k: int) -> bytes:
    data = {
        "timestamp": 1_700_000_000_000 + k,
        "state": "open",
        "instrument_name": inst,
        "best_bid_price": 0.05,
        "best_bid_amount": 1.0 + k,
        "best_ask_price": 0.0505,
        "best_ask_amount": 2.0,
        "mark_price": 0.0502,
        "mark_iv": 51.5,
    }
    return _frame(f"ticker.{inst}.100ms", data)


def _trades(inst: str, k: int) -> bytes:
    trade = {
        "timestamp": 1_700_000_000_000 + k,
        "price": 0.05,
        "amount": 1.0,
        "direction": "buy",
        "instrument_name": inst,
        "trade_id": f"T-{k}",
    }
    return _frame(f"trades.{inst}.100ms", [trade])


def _quote(inst: str, k: int) -> bytes:
    data = {
        "timestamp": 1_700_000_000_000 + k,
        "instrument_name": inst,
        "best_bid_price": 0.05,
        "best_bid_amount": 1.0,
        "best_ask_price": 0.0505,
        "best_ask_amount": 2.0 + k,
    }
    return _frame(f"quote.{inst}", data)


def test_thousands_of_instruments_interleaved_decode_as_the_reference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """3,000 names (of a few lengths: equal lengths collide in the tables' slots) in every kind of
    frame, round after round: each frame's events name its own instrument and change its own book,
    and each frame after a channel's first is taken by its own channel's whole-frame function."""
    names = [f"BTC-{d}DEC26-{k}-{'CP'[k % 2]}" for d in (1, 25) for k in range(1500)]
    wrong: list[tuple[str, bytes]] = []

    def watched(fn: Any, head: bytes) -> Any:
        def whole(decoder: Any, frame: bytes, ts_local: int) -> Any:
            if not frame.startswith(PREFIX + head):
                wrong.append((head.decode(), frame))
            return fn(decoder, frame, ts_local)

        return whole

    heads = {"_on_book": b"book.", "_on_quote": b"quote.", "_on_ticker": b"ticker.", "_on_trades": b"trades."}
    for handler, fn in list(codec._WHOLE_FRAME.items()):
        monkeypatch.setitem(codec._WHOLE_FRAME, handler, watched(fn, heads[handler.__name__]))
    pair = _Pair(INSTRUMENTS)
    for i, inst in enumerate(names):
        pair.check(_snapshot(inst, 10, [["new", 0.05, 1.0 + i]], [["new", 0.06, 2.0]]))
    for rnd in range(3):
        for i, inst in enumerate(reversed(names) if rnd % 2 else names):
            pair.check(_change(inst, 11 + rnd, [["new", 0.0505 + rnd * 1e-4, 3.0 + i]], []))
            pair.check(_ticker(inst, rnd * 10_000 + i))
            pair.check(_quote(inst, rnd * 10_000 + i))
            if i % 3 == rnd:
                pair.check(_trades(inst, rnd * 10_000 + i))
    pair.same_state()
    assert pair.compiled.stats.events > 10_000 and not wrong, wrong[:3]


def test_ten_thousand_levels_decode_as_the_reference() -> None:
    """More distinct ticks than the ticks' table has slots, set, changed and deleted (the best
    ones among them), in one book."""
    bids = [["new", 10_000.0 - k * 0.5, 1.0 + k % 7] for k in range(10_000)]
    asks = [["new", 10_000.5 + k * 0.5, 1.0 + k % 5] for k in range(10_000)]
    pair = _Pair(INSTRUMENTS, _snapshot("BTC-PERPETUAL", 1, bids, asks))
    for rnd in range(4):
        change_bids = [
            ["delete" if k % 2 else "change", 10_000.0 - k * 1.5, 2.0] for k in range(rnd, 6000, 3)
        ]
        change_asks = [["delete", 10_000.5 + k * 0.5, 0.0] for k in range(rnd * 40, rnd * 40 + 30)]
        pair.check(_change("BTC-PERPETUAL", 2 + rnd, change_bids, change_asks))
        pair.same_state()


# Prices in ticks of the fallback quantum (1e-8: the instrument is not in the registry): from
# a few ticks to far beyond 2**62 of them (4.6e10 in price), which are not cached and are compared
# by Python's comparison, as are best levels that are such ints.
PRICES = st.one_of(
    st.integers(1, 2_000).map(lambda k: k * 1e-8),
    st.floats(1.0, 1e6),
    st.floats(4e10, 5e10),
    st.floats(1e12, 1e15),
    st.sampled_from([4.611686018427387e10, 4.611686018427388e10, 4.6116860184273879e10]),
)
LEVEL = st.tuples(st.sampled_from(["new", "change", "delete"]), PRICES, st.sampled_from([0.0, 1.0, 2.5]))


@HYPOTHESIS
@given(
    snapshot=st.tuples(st.lists(LEVEL, max_size=8), st.lists(LEVEL, max_size=8)),
    changes=st.lists(st.tuples(st.lists(LEVEL, max_size=6), st.lists(LEVEL, max_size=6)), max_size=12),
)
def test_small_and_huge_ticks_decode_as_the_reference(
    snapshot: tuple[list[Any], list[Any]], changes: list[tuple[list[Any], list[Any]]]
) -> None:
    inst = "UNLISTED-1"
    pair = _Pair(_snapshot(inst, 1, [list(x) for x in snapshot[0]], [list(x) for x in snapshot[1]]))
    for k, (bids, asks) in enumerate(changes):
        pair.check(_change(inst, 2 + k, [list(x) for x in bids], [list(x) for x in asks]))
        pair.same_state()


def _book_frames() -> list[bytes]:
    return [
        _snapshot("BTC-PERPETUAL", 1, [["new", 100.0, 1.0]], [["new", 101.0, 1.0]]),
        *(_change("BTC-PERPETUAL", k, [["new", 100.0 + k * 0.125, 1.0]], []) for k in range(2, 6)),
        _quote("BTC-PERPETUAL", 1),
        _ticker("BTC-PERPETUAL", 1),
    ]


class _Int(int):
    """An int whose sum is its own kind: `+=` on it is its own code."""

    def __add__(self, other: Any) -> _Int:
        return _Int(int(self) + other)


class _LoggedStats(DecoderStats):
    """A stats class that overrides `__setattr__`: the counts go through it."""

    def __setattr__(self, name: str, value: Any) -> None:
        self.__dict__.setdefault("log", []).append((name, value))
        super().__setattr__(name, value)


@pytest.mark.parametrize("how", ["setattr", "int subclass", "huge", "bool"])
def test_the_stats_are_counted_as_python_counts_them_whatever_they_are(how: str) -> None:
    pair = _Pair(INSTRUMENTS)
    for dec in (pair.compiled, pair.python):
        if how == "setattr":
            dec.stats = _LoggedStats()
        elif how == "int subclass":
            dec.stats.frames = _Int(5)
        elif how == "huge":
            dec.stats.frames = 2**63 - 2
            dec.stats.events = 2**63 - 1
        else:
            dec.stats.events = True
    for frame in _book_frames():
        pair.check(frame)
        pair.same_state()
        assert type(pair.compiled.stats.frames) is type(pair.python.stats.frames)
    if how == "setattr":
        log = pair.compiled.stats.__dict__["log"]
        assert log == pair.python.stats.__dict__["log"] and ("frames", 6) in log


def test_a_stats_class_changed_after_it_was_learnt_is_counted_through_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    @attrs.define
    class Stats(DecoderStats):
        pass

    pair = _Pair(INSTRUMENTS)
    pair.compiled.stats = Stats()
    pair.python.stats = Stats()
    frames = _book_frames()
    for frame in frames[:3]:  # the class learnt: its slots counted directly
        pair.check(frame)
    pair.same_state()
    seen: list[int] = []
    slot = Stats.__dict__.get("frames") or DecoderStats.__dict__["frames"]

    def setter(self: Any, value: int) -> None:
        seen.append(value)
        slot.__set__(self, value)

    monkeypatch.setattr(Stats, "frames", property(slot.__get__, setter))
    for frame in frames[3:]:
        pair.check(frame)
    pair.same_state()
    assert seen == [k for k in range(4, 8) for _ in (1, 2)]  # each frame through the property, both decoders


def test_a_frame_taken_whole_runs_no_python_once_the_classes_are_learnt() -> None:
    """A ticker, trades, a quote, a valid book's snapshot and the change after it, decoded whole by
    the C entry once the decoder's and its stats' classes are learnt (`_json.h` `json_attr`,
    `_fast.c` `stats_direct`): no Python runs (but the snapshot's `book.clear()`, a method the
    reference calls too), the counts written in the stats' slots. From 3.13,
    while the modules read the version flag Python no longer sets (engine/_typecache.h), no
    class was ever learnt: each such frame was counted through codec's `_whole_returned`."""
    pair = _Pair(INSTRUMENTS)
    inst = "BTC-PERPETUAL"
    frames = [
        _snapshot(inst, 7, [["new", 100.0, 1.0]], [["new", 101.0, 2.0]]),
        _change(inst, 8, [["new", 100.5, 3.0]], []),
        _ticker(inst, 1),
        _trades(inst, 1),
        _quote(inst, 1),
    ]
    for frame in frames + frames:  # the book valid, the routes known, the classes learnt
        pair.check(frame)
    for frame in frames:
        events, codes = python_calls(functools.partial(pair.compiled.decode, frame, T_LOCAL))
        ran = [code.co_qualname for code in codes]
        assert events and ran == (["OrderBook.clear"] if frame is frames[0] else []), (frame[:70], ran)
    assert pair.compiled.stats.frames == pair.python.stats.frames + len(frames)


# -- the scanner's shortcuts (`_frames.c` hooks): a string read a word at a time, a ticker's
# member found by its length and a byte --------------------------------------------------------

try:
    from tradingd.connectors.deribit import _frames
except ImportError:  # not built
    _frames = None  # type: ignore[assignment]


def _string_end(text: bytes) -> int:
    """What `json_str` takes, byte by byte: printable ASCII but `"` and `\\` up to a `"`."""
    if not text.startswith(b'"'):
        return -1
    for i, b in enumerate(text[1:], 1):
        if b == 0x22:
            return i + 1
        if not 0x20 <= b <= 0x7E or b == 0x5C:
            return -1
    return -1


# Bytes around each boundary of the taken range, and the two refused in it.
EDGES = [0x00, 0x1F, 0x20, 0x21, 0x22, 0x23, 0x5B, 0x5C, 0x5D, 0x7E, 0x7F, 0x80, 0x9F, 0xA0, 0xDC, 0xFE, 0xFF]


@pytest.mark.skipif(_frames is None, reason="_frames.c was not built")
@HYPOTHESIS
@given(
    body=st.lists(st.one_of(st.integers(0x20, 0x7E), st.sampled_from(EDGES)), max_size=40).map(bytes),
    cut=st.integers(0, 48),
)
def test_a_string_is_read_as_byte_by_byte(body: bytes, cut: int) -> None:
    for text in (b'"' + body + b'"', b'"' + body, (b'"' + body + b'"')[:cut], b"x" + body):
        assert _frames.string_end(text) == _string_end(text), text


@pytest.mark.skipif(_frames is None, reason="_frames.c was not built")
def test_every_printable_word_is_read_as_byte_by_byte() -> None:
    """Every byte at every place of a long string (the word test sees it in each lane)."""
    for b in range(256):
        for at in range(17):
            body = bytearray(b"abcdefghijklmnopq")
            body[at] = b
            text = b'"' + bytes(body) + b'"'
            assert _frames.string_end(text) == _string_end(text), text


TICKER_NAMES = [
    "state", "bid_iv", "ask_iv", "greeks", "mark_iv", "timestamp", "mark_price", "last_price",
    "index_price", "open_interest", "best_bid_price", "best_ask_price", "best_bid_amount",
    "best_ask_amount", "instrument_name", "current_funding", "funding_accrues", "underlying_price",
    "funding_timestamp",
]  # fmt: skip


@pytest.mark.skipif(_frames is None, reason="_frames.c was not built")
def test_every_ticker_member_and_near_miss_is_found_as_by_a_scan() -> None:
    names = [n.encode() for n in TICKER_NAMES]
    found = [_frames.member_index(n) for n in names]
    assert [a for a, _ in found] == list(range(len(names))) and all(a == b for a, b in found)
    for n in names:  # each byte changed, cut, extended
        for i in range(len(n)):
            for b in (n[i] ^ 1, n[i] ^ 0x20, ord("_"), ord("x")):
                near = n[:i] + bytes([b]) + n[i + 1 :]
                a, b_ = _frames.member_index(near)
                assert a == b_, near
            a, b_ = _frames.member_index(n[:i])
            assert a == b_, n[:i]
        assert _frames.member_index(n + b"s") == (-1, -1)


@pytest.mark.skipif(_frames is None, reason="_frames.c was not built")
@HYPOTHESIS
@given(name=st.one_of(st.binary(max_size=20), st.sampled_from(TICKER_NAMES).map(str.encode)))
def test_any_name_is_found_as_by_a_scan(name: bytes) -> None:
    a, b = _frames.member_index(name)
    assert a == b


# -- the decoder's own attributes (`_json.h` `json_attr`): read from its instance dict only on a
# class that leaves them there, unchanged since it was learnt -------------------------------------


def _watched(name: str) -> type[DeribitDecoder]:
    """A decoder class whose attribute `name` is a property that counts its reads, over a decoy
    of the same name in the instance dict (what a read that skipped the property would get)."""

    def get(self: Any) -> Any:
        type(self).reads += 1
        return self.__dict__["_real_" + name]

    def put(self: Any, value: Any) -> None:
        self.__dict__["_real_" + name] = value
        self.__dict__[name] = DecoderStats() if name == "stats" else {}

    return type("Watched", (DeribitDecoder,), {"reads": 0, name: property(get, put)})


def _all_kinds() -> list[bytes]:
    return [
        INSTRUMENTS,
        *_book_frames(),
        _ticker("BTC-PERPETUAL", 2),
        _trades("BTC-PERPETUAL", 3),
        _quote("BTC-PERPETUAL", 4),
    ]


@pytest.mark.parametrize("name", ["_fast", "_books", "stats", "_states"])
def test_an_attribute_a_subclass_makes_a_property_is_read_through_it(name: str) -> None:
    cls = _watched(name)
    compiled, python = cls(InstrumentRegistry()), cls(InstrumentRegistry(), compiled=False)
    assert compiled.compiled
    for frame in _all_kinds():
        assert _outcome(compiled, frame) == _outcome(python, frame)
        assert _state(compiled) == _state(python)
    assert cls.reads > 0  # type: ignore[attr-defined]
    if name == "stats":  # the decoy (where a read past the property would have counted) untouched
        assert compiled.__dict__["stats"] == DecoderStats()


def test_a_decoder_class_changed_after_it_was_learnt_is_read_through_its_change() -> None:
    cls = type("Later", (DeribitDecoder,), {})
    compiled, python = cls(InstrumentRegistry()), cls(InstrumentRegistry(), compiled=False)
    frames = _all_kinds()
    for frame in frames:  # learnt plain: read from the instance dict
        assert _outcome(compiled, frame) == _outcome(python, frame)
    for dec in (compiled, python):
        dec.__dict__["_other"] = DecoderStats()
    cls.stats = property(lambda self: self.__dict__["_other"])  # type: ignore[attr-defined]
    for frame in frames[1:]:
        assert _outcome(compiled, frame) == _outcome(python, frame)
    assert _state(compiled) == _state(python)
    assert compiled.__dict__["_other"].frames == len(frames) - 1


def test_an_attribute_missing_or_read_by_getattribute_fails_or_reads_as_python() -> None:
    class Redirected(DeribitDecoder):
        def __getattribute__(self, name: str) -> Any:
            if name == "stats":
                return super().__getattribute__("__dict__").setdefault("_other", DecoderStats())
            return super().__getattribute__(name)

    frames = _all_kinds()
    compiled, python = Redirected(InstrumentRegistry()), Redirected(InstrumentRegistry(), compiled=False)
    for frame in frames:
        assert _outcome(compiled, frame) == _outcome(python, frame)
        assert _state(compiled) == _state(python)
    assert compiled.__dict__["_other"].frames == len(frames)
    pair = _Pair()
    for frame in frames[:3]:
        pair.check(frame)
    for dec in (pair.compiled, pair.python):
        del dec._books  # the next book frame fails alike (AttributeError: a decoder fault)
    out = pair.check(frames[3])
    assert "raised" in out and "_books" in out


# -- the book's slots read and written by index (`_fast.c` `bslot`/`bget`/`bset`): only on an
# exact OrderBook, whatever class code run in the middle of a frame gives the book -----------------

_DECOYS: dict[int, dict[int, float]] = {}


_SEQUENCES: dict[int, Any] = {}


class _DecoyAsks(OrderBook):
    """An OrderBook whose `asks` are another dict and whose `sequence` is kept elsewhere (a class
    a book can be switched to: the same layout)."""

    __slots__ = ()

    @property
    def asks(self) -> dict[int, float]:  # type: ignore[override]
        return _DECOYS.setdefault(id(self), {})

    @property
    def sequence(self) -> Any:
        return _SEQUENCES.get(id(self))

    @sequence.setter
    def sequence(self, value: Any) -> None:
        _SEQUENCES[id(self)] = ("kept elsewhere", value)


class _Switch:
    """A key planted in the bids, of the hash of a level's ticks: the dict's lookup compares it
    with that level's key, and the comparison switches the book's class once."""

    def __init__(self, book: OrderBook, ticks: int) -> None:
        self.book, self.ticks = book, ticks

    def __hash__(self) -> int:
        return self.ticks

    def __repr__(self) -> str:
        return f"_Switch({self.ticks})"

    def __eq__(self, other: object) -> bool:
        if type(self.book) is OrderBook:
            self.book.__class__ = _DecoyAsks
        return False


def test_a_book_switched_to_another_class_mid_frame_is_read_through_that_class() -> None:
    snapshot = _snapshot("BTC-PERPETUAL", 1, [["new", 100.0, 1.0]], [["new", 101.0, 1.0]])
    change = _change("BTC-PERPETUAL", 2, [["new", 99.5, 2.0]], [["new", 101.5, 3.0]])
    pair = _Pair(INSTRUMENTS, snapshot)
    for dec in (pair.compiled, pair.python):
        book = dec._books["BTC-PERPETUAL"]
        book.bids[_Switch(book, 199)] = 5.0  # type: ignore[index]  # 99.5 is 199 ticks of 0.5
    _DECOYS.clear()
    _SEQUENCES.clear()
    out = pair.check(change)
    assert all(type(d._books["BTC-PERPETUAL"]) is _DecoyAsks for d in (pair.compiled, pair.python))
    assert sorted(len(v) for v in _DECOYS.values()) == [1, 1], out  # the asks went to the decoys
    assert sorted(_SEQUENCES.values()) == [("kept elsewhere", 2)] * 2  # the sequence too
    pair.same_state()
