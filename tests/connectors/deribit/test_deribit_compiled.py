"""The compiled Deribit book path (`connectors/deribit/_fast.c`, issue 17) against its Python
reference (`codec._apply`, `DeribitDecoder._book_events`, a decoder built with `compiled=False`):
the same results, the same exceptions with the same text, and the same book after every call,
on hostile books and levels (NaN, infinities, -0.0, huge prices, ticks past 64 bits, wrong types)
and on chains of book frames with gaps, resyncs, crossings, deletes and lost connections.

The fixtures, the generator's stream and hypothesis' hostile frames are compared on both paths by
test_deribit_fast_path.py; the fuzzer of tests/venue/test_fuzz_frames.py runs on the default
(compiled) decoder, and its injected faults (`codec._apply` patched) reach the compiled path.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradingd.connectors.deribit import PLUGIN, codec
from tradingd.connectors.deribit.codec import DeribitDecoder
from tradingd.engine import BookUpdate, MalformedFrame
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.model.book import OrderBook

try:
    from tradingd.connectors.deribit import _fast
except ImportError:  # the install could not build it: the Python path runs (slower, the same)
    if os.environ.get("CI") == "true":
        raise  # pip install -e . builds it with gcc and Python's header: in CI it must be there
    pytest.skip(
        "the compiled Deribit book path (connectors/deribit/_fast.c) was not built: it needs gcc"
        " and Python's header (Debian: apt-get install build-essential python3-dev), then"
        " pip install -e .",
        allow_module_level=True,
    )

PERP = "BTC-PERPETUAL"
OTHER = "ETH-PERPETUAL"  # no instrument answer: the book's quantum is the fallback 1e-8
T_LOCAL = 1_700_000_000_123_456_789
PREFIX = b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"'
INSTRUMENTS = (
    b'{"jsonrpc":"2.0","id":1,"result":[{"kind":"future","instrument_name":"BTC-PERPETUAL",'
    b'"tick_size":0.5,"min_trade_amount":10.0,"contract_size":10.0,"base_currency":"BTC",'
    b'"quote_currency":"USD","settlement_currency":"BTC","settlement_period":"perpetual",'
    b'"instrument_type":"reversed","expiration_timestamp":32503708800000}]}'
)
HYPOTHESIS = settings(
    max_examples=int(os.environ.get("CODEC_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_the_default_decoder_takes_the_compiled_path() -> None:
    dec = PLUGIN.decoder(InstrumentRegistry())
    assert isinstance(dec, DeribitDecoder) and dec.compiled
    assert not DeribitDecoder(InstrumentRegistry(), compiled=False).compiled
    frame = PREFIX + f'book.{PERP}.100ms","data":'.encode() + orjson.dumps(_snapshot_data(PERP, 5)) + b"}}"
    [update] = dec.decode(frame, T_LOCAL)
    routes = [r for r in dec._fast.values() if r is not None]
    assert [r[1] for r in routes] == [_fast.book_events]  # the route the frame took
    assert isinstance(update, BookUpdate) and update.best_bid == 42500.0 and update.snapshot


# -- `_fast.apply` against `codec._apply`, on hostile books and levels ------------------------

QUANTA = [0.5, 0.0001, 1e-8, 0.3, 0.025, 1e-300, 5e-324]  # 1e-300: ticks past 64 bits; 5e-324: 1/q = inf
FLOATS = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0.0, -0.0, 42500.0, 42500.25, 42500.5, 42501.0, 0.15, 2.0**53, 1e308, -5.0, 2.5, 3.5])
    | st.sampled_from([0.5, 1.5]).map(lambda x: x * 2.0**-40)  # halfway ticks: round half to even
)


class _Float(float):
    """A float subclass: not the shape msgspec gives, so the Python function runs."""


ACTION = st.sampled_from(["new", "change", "delete", "Delete", "", "x"]) | st.sampled_from(
    [None, 1, b"delete"]
)
NUMBER = FLOATS | st.integers(-(2**70), 2**70) | st.booleans() | FLOATS.map(_Float) | st.none()
LEVEL = st.one_of(
    st.tuples(st.sampled_from(["new", "change", "delete"]), FLOATS, FLOATS),
    st.tuples(ACTION, NUMBER, NUMBER),
    st.tuples(ACTION, NUMBER, NUMBER).map(list),
    st.tuples(FLOATS, FLOATS),
    st.just(()),
)
LEVELS = st.lists(LEVEL, max_size=6) | st.lists(LEVEL, max_size=6).map(tuple)
RESTING = st.dictionaries(st.integers(-(2**64), 2**64) | st.integers(-5, 5), FLOATS, max_size=4)
BEST = st.none() | st.integers(-(2**64), 2**64) | st.integers(-5, 5)


class _Subclass(OrderBook):
    """Not the exact type: the compiled code reads its slots through the attribute protocol."""

    __slots__ = ()


def _book(
    quantum: float, bids: dict[int, float], asks: dict[int, float], bb: Any, ba: Any, cls: type = OrderBook
) -> OrderBook:
    book: OrderBook
    if quantum == 5e-324:  # the constructor refuses it (1/q overflows); the tick arithmetic must too
        book = cls(1.0)
        book._inv = 1.0 / quantum
    else:
        book = cls(quantum)
    book.bids.update(bids)
    book.asks.update(asks)
    book.set_best(bb, ba)
    return book


def _book_state(book: OrderBook) -> str:
    # repr: dict order (insertion) and NaN included; equal repr, equal state
    return repr((book.bids, book.asks, book.best_bid_ticks, book.best_ask_ticks, book.sequence, book.valid))


def _result(fn: Any, *args: Any) -> str:
    try:
        return repr(("ok", fn(*args)))
    except Exception as exc:
        return repr(("raised", type(exc).__name__, str(exc)))


@HYPOTHESIS
@given(
    quantum=st.sampled_from(QUANTA),
    bids=RESTING,
    asks=RESTING,
    bb=BEST,
    ba=BEST,
    consistent=st.booleans(),
    bid_levels=LEVELS,
    ask_levels=LEVELS,
    cls=st.sampled_from([OrderBook, _Subclass]),
)
def test_compiled_apply_is_the_python_apply(
    cls: type,
    quantum: float,
    bids: dict[int, float],
    asks: dict[int, float],
    bb: Any,
    ba: Any,
    consistent: bool,
    bid_levels: Any,
    ask_levels: Any,
) -> None:
    if consistent:  # a book as the decoder keeps it; otherwise any cached best (the same either way)
        bids = {k: v for k, v in bids.items() if v > 0}
        asks = {k: v for k, v in asks.items() if v > 0}
        bb, ba = (max(bids) if bids else None), (min(asks) if asks else None)
    python = _book(quantum, bids, asks, bb, ba, cls)
    compiled = _book(quantum, bids, asks, bb, ba, cls)
    want = _result(codec._apply, python, bid_levels, ask_levels)
    got = _result(_fast.apply, compiled, bid_levels, ask_levels)
    assert got == want
    assert _book_state(compiled) == _book_state(python)


def test_compiled_apply_rounds_half_to_even_and_fails_as_python() -> None:
    """Pinned cases of the property above: Python's round() is half to even; NaN and infinite
    ticks raise ValueError and OverflowError after the levels before them were written."""
    for quantum, levels in [
        (1.0, [("new", 0.5, 1.0), ("new", 1.5, 1.0), ("new", 2.5, 1.0), ("new", -0.5, 1.0)]),
        (5e-324, [("new", 0.0, 1.0)]),  # 0 * inf: NaN
        (5e-324, [("new", 1.0, 2.0)]),  # inf
        (1e-300, [("new", 42500.0, 1.0), ("delete", 42500.0, 0.0)]),  # ticks past 64 bits
        (0.5, [("new", 42500.0, 1.0), ("new", float("nan"), 1.0)]),
    ]:
        python, compiled = _book(quantum, {}, {}, None, None), _book(quantum, {}, {}, None, None)
        assert _result(_fast.apply, compiled, levels, []) == _result(codec._apply, python, levels, [])
        assert _book_state(compiled) == _book_state(python)
    book = _book(1.0, {}, {}, None, None)
    _fast.apply(book, [("new", 0.5, 1.0), ("new", 1.5, 1.0), ("new", 2.5, 1.0)], [])
    assert list(book.bids) == [0, 2]  # 0.5 -> 0, 1.5 -> 2, 2.5 -> 2
    with pytest.raises(ValueError, match="NaN"):
        _fast.apply(_book(5e-324, {}, {}, None, None), [("new", 0.0, 1.0)], [])


# -- chains of book frames: the compiled decoder against the Python one -----------------------

PRICES = st.sampled_from([42499.0, 42499.5, 42500.0, 42500.5, 42501.0, 42501.5, 42502.0, 0.15, -1.0])
SIZES = st.sampled_from([0.0, 1.0, 2.5, 10.0, 0, 3])
ACTIONS = st.sampled_from(["new", "change", "delete"])


@st.composite
def book_frame(draw: st.DrawFn, state: dict[str, int]) -> bytes:
    inst = draw(st.sampled_from([PERP, PERP, PERP, OTHER]))
    last = state.get(inst, 100)
    kind = draw(st.sampled_from(["change"] * 6 + ["snapshot", "change_gap", "change_zero", "change_none"]))
    change_id = last + 1
    data: dict[str, Any] = {
        "type": "snapshot" if kind == "snapshot" else "change",
        "instrument_name": inst,
        "timestamp": draw(st.integers(0, 2**40)),
        "change_id": change_id,
        "bids": draw(st.lists(st.tuples(ACTIONS, PRICES, SIZES).map(list), max_size=4)),
        "asks": draw(st.lists(st.tuples(ACTIONS, PRICES, SIZES).map(list), max_size=4)),
    }
    if kind == "change":
        data["prev_change_id"] = last
    elif kind == "change_gap":
        data["prev_change_id"] = last - draw(st.integers(1, 3))
    elif kind == "change_zero":
        data["prev_change_id"] = 0
    elif kind == "change_none":
        data["prev_change_id"] = None
    state[inst] = change_id
    return PREFIX + f'book.{inst}.100ms","data":'.encode() + orjson.dumps(data) + b"}}"


def _snapshot_data(inst: str, change_id: int) -> dict[str, Any]:
    return {
        "type": "snapshot",
        "instrument_name": inst,
        "timestamp": 1_700_000_000_000,
        "change_id": change_id,
        "bids": [["new", 42500.0, 1.0], ["new", 42499.5, 2.0]],
        "asks": [["new", 42501.0, 3.0], ["new", 42501.5, 4.0]],
    }


@st.composite
def chains(draw: st.DrawFn) -> list[bytes | None]:
    """Book frames of two instruments (one with a known tick), mostly in sequence; None is a
    lost connection (`invalidate_books`)."""
    state: dict[str, int] = {}
    out: list[bytes | None] = []
    if draw(st.booleans()):
        out.append(INSTRUMENTS)
    for _ in range(draw(st.integers(1, 25))):
        if draw(st.integers(0, 30)) == 0:
            out.append(None)
        else:
            out.append(draw(book_frame(state)))
    return out


def _outcome(dec: DeribitDecoder, frame: bytes) -> str:
    try:
        return repr(("events", dec.decode(frame, T_LOCAL)))
    except MalformedFrame as exc:
        return repr(("malformed", type(exc).__name__, str(exc), exc.venue))


def _decoder_state(dec: DeribitDecoder) -> str:
    books = {k: (_book_state(b), b.quantum) for k, b in dec._books.items()}
    return repr((books, dec.stats))


@HYPOTHESIS
@given(frames=chains())
def test_book_chains_decode_the_same_compiled_and_in_python(frames: list[bytes | None]) -> None:
    compiled = DeribitDecoder(InstrumentRegistry())
    python = DeribitDecoder(InstrumentRegistry(), compiled=False)
    assert compiled.compiled and not python.compiled
    for frame in frames:
        if frame is None:
            compiled.invalidate_books()
            python.invalidate_books()
            continue
        assert _outcome(compiled, frame) == _outcome(python, frame), frame
        assert _decoder_state(compiled) == _decoder_state(python), frame


def test_a_fault_in_apply_reaches_the_compiled_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """`codec._apply` is the seam tests inject faults through (tests/venue/test_fuzz_frames.py,
    tests/runtime/test_fault_paths.py): the compiled path calls whatever it is when it is not
    the function codec defines, for a change as for a snapshot."""
    dec = DeribitDecoder(InstrumentRegistry())
    snap = PREFIX + f'book.{PERP}.100ms","data":'.encode() + orjson.dumps(_snapshot_data(PERP, 7)) + b"}}"
    change = {**_snapshot_data(PERP, 8), "type": "change", "prev_change_id": 7}
    change_frame = PREFIX + f'book.{PERP}.100ms","data":'.encode() + orjson.dumps(change) + b"}}"
    dec.decode(snap, T_LOCAL)
    calls: list[Any] = []

    def faulty(book: Any, bids: Any, asks: Any) -> Any:
        calls.append(book)
        raise OverflowError("cannot convert float infinity to integer")

    monkeypatch.setattr(codec, "_apply", faulty)
    for frame in (change_frame, snap):
        with pytest.raises(MalformedFrame, match="decoder fault OverflowError"):
            dec.decode(frame, T_LOCAL)
    assert len(calls) == 2
