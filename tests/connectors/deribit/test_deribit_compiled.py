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
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.connectors.deribit._compare import HYPOTHESIS, INSTRUMENTS, run_child
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
    return repr((books, dec.stats, dec.gapped_books))


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


# -- Python code run in the middle of the compiled path ----------------------------------------
#
# A strategy holds the decoder's live books (`ctx.book()`), so a book may hold what the decoder
# never puts there: keys, sizes and best levels whose hashing, comparisons or finalizer run
# Python code while a frame is applied. The Python path then returns or raises (a decoder fault:
# the frame is counted and skipped); the compiled path must do exactly the same and never crash
# the process. Each case runs in a child process (a segfault fails the test instead of killing
# pytest), both paths on fresh, identical objects, and the child compares them.

ROOT = Path(__file__).resolve().parents[3]

# The case being run: what the planted objects act on. Read at the time of the action, so that no
# planted object refers to the book that holds it (no cycle: a finalizer runs when a path drops
# the object, the same point on both paths, never at a later collection).
_CTX: dict[str, Any] = {}


def _act(planted: _Planted) -> None:
    if not _CTX:
        return
    book: Any = _CTX["book"]  # it holds planted objects: no `OrderBook` of ints any more
    act = planted.act
    if act == "clear_bid_levels":
        _CTX["bid_levels"].clear()
    elif act == "extend_bid_levels":
        _CTX["bid_levels"].extend([("new", 3.0, 1.0), ("delete", 4.0, 0.0), ("new", 9.0, 2.0)])
    elif act == "clear_ask_levels":
        _CTX["ask_levels"].clear()
    elif act == "pop_self":
        book.bids.pop(planted, None)
        book.asks.pop(planted, None)
    elif act == "swap_asks":
        book.asks = {2: 1.0, 9: 1.0}
    elif act == "plant_best_ask":
        book._ba = _CTX["spare"]
    elif act == "clear_book":
        book.bids.clear()
        book.asks.clear()
    elif act == "add_bid":
        book.bids[7] = 5.0


class _Planted:
    """A key, size or best level a strategy put in a book: its hash is chosen (to collide with a
    level's ticks, so that the dict's lookup compares it), its comparisons answer `answer`, and
    its first comparison (or its finalizer, `on_del`) runs its action."""

    def __init__(self, name: str, hash_: int, act: str, answer: Any, on_del: bool) -> None:
        self.name, self.hash_, self.act, self.answer, self.on_del = name, hash_, act, answer, on_del
        self.pending = True

    def _run(self) -> None:
        if self.pending:
            self.pending = False
            _act(self)

    def __hash__(self) -> int:
        return self.hash_

    def __eq__(self, other: object) -> bool:
        self._run()
        return self is other

    def __lt__(self, other: object) -> Any:
        self._run()
        return self.answer

    __gt__ = __le__ = __ge__ = __lt__

    def __del__(self) -> None:
        if self.on_del:
            self._run()

    def __repr__(self) -> str:
        return self.name


PlantedSpec = tuple[int, str, Any, bool]
ACTS = [
    "none",
    "clear_bid_levels",
    "extend_bid_levels",
    "clear_ask_levels",
    "pop_self",
    "swap_asks",
    "plant_best_ask",
    "clear_book",
    "add_bid",
]
PLANTED = st.tuples(
    st.integers(-1, 11), st.sampled_from(ACTS), st.sampled_from([True, False, NotImplemented]), st.booleans()
)
TICK = st.integers(0, 10)
HOSTILE_KEYS = st.lists(st.tuples(TICK | PLANTED, st.sampled_from([1.0, 2.0, 0.0]) | PLANTED), max_size=5)
HOSTILE_BEST = st.none() | TICK | PLANTED
HOSTILE_LEVELS = st.lists(
    st.tuples(
        st.sampled_from(["new", "change", "delete"]),
        st.sampled_from([0.0, 1.0, 2.0, 3.0, 4.0, 7.0, 9.0, 10.0]),
        st.sampled_from([0.0, 1.0, 2.5]),
    ),
    max_size=5,
)


def _materialize(x: Any, names: list[int]) -> Any:
    """A planted object for a spec (a tuple), anything else as it is."""
    if not isinstance(x, tuple):
        return x
    names.append(len(names))
    return _Planted(f"P{len(names)}", *x)


def _hostile_run(compiled: bool, spec: tuple[Any, ...]) -> str:
    """One path on a book built from `spec`: its outcome and the book after it."""
    bids, asks, bb, ba, bid_levels, ask_levels, spare = spec
    names: list[int] = []
    book = OrderBook(1.0)
    for key, value in bids:
        book.bids[_materialize(key, names)] = _materialize(value, names)
    for key, value in asks:
        book.asks[_materialize(key, names)] = _materialize(value, names)
    book.set_best(_materialize(bb, names), _materialize(ba, names))
    _CTX.update(
        book=book,
        bid_levels=list(bid_levels),
        ask_levels=list(ask_levels),
        spare=_materialize(spare, names),
    )
    try:
        fn = _fast.apply if compiled else codec._apply
        out = _result(fn, book, _CTX["bid_levels"], _CTX["ask_levels"])
        return out + _book_state(book)
    finally:
        _CTX.clear()


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(
    spec=st.tuples(
        HOSTILE_KEYS, HOSTILE_KEYS, HOSTILE_BEST, HOSTILE_BEST, HOSTILE_LEVELS, HOSTILE_LEVELS, PLANTED | TICK
    )
)
def _hostile_books_apply_the_same(spec: tuple[Any, ...]) -> None:
    assert _hostile_run(True, spec) == _hostile_run(False, spec)


# The named cases (the review's repros), each run on both paths.
PERP_BOOK = PREFIX + f'book.{PERP}.100ms","data":'.encode()


def _case_best_compare_clears_levels(compiled: bool) -> str:
    """The best bid is no int: comparing a level's ticks with it runs code that empties the
    level list being applied (the compiled loop read its length once: read past its end)."""
    # hash 10**9: no level's ticks; the comparison (not the dict) runs the action
    spec: tuple[Any, ...] = (
        [],
        [],
        (10**9, "clear_bid_levels", True, False),
        None,
        [("new", float(i), 1.0) for i in range(1, 50)],
        [],
        0,
    )
    return _hostile_run(compiled, spec)


def _case_hash_collision_clears_levels(compiled: bool) -> str:
    """Every best level an int, but a planted key hashes as a level's ticks: the dict's lookup
    compares them, running code that empties the level list being applied."""
    spec: tuple[Any, ...] = (
        [((3, "clear_bid_levels", False, False), 1.0)],
        [],
        5,
        None,
        [("new", float(i), 1.0) for i in range(1, 50)],
        [],
        0,
    )
    return _hostile_run(compiled, spec)


def _case_hash_collision_extends_levels(compiled: bool) -> str:
    """The same, code that appends levels: the Python loop applies them too."""
    spec: tuple[Any, ...] = (
        [((2, "extend_bid_levels", False, False), 1.0)],
        [],
        5,
        None,
        [("new", 2.0, 1.0), ("new", 1.0, 1.0)],
        [],
        0,
    )
    return _hostile_run(compiled, spec)


def _case_finalizer_swaps_asks(compiled: bool) -> str:
    """A planted size's finalizer (the level deleted) replaces the asks and plants a best ask:
    the Python path applies the ask levels to what the book holds by then."""
    spec: tuple[Any, ...] = (
        [(4, (-1, "swap_asks", True, True)), (2, 1.0)],
        [(6, 1.0)],
        4,
        6,
        [("delete", 4.0, 0.0)],
        [("new", 5.0, 1.0), ("delete", 9.0, 0.0)],
        0,
    )
    out = _hostile_run(compiled, spec)
    spec2: tuple[Any, ...] = (
        [(4, (-1, "plant_best_ask", True, True))],
        [(6, 1.0)],
        4,
        6,
        [("delete", 4.0, 0.0)],
        [("new", 5.0, 1.0)],
        (-1, "pop_self", False, False),
    )
    return out + _hostile_run(compiled, spec2)


def _case_recompute_removes_its_best(compiled: bool) -> str:
    """The best bid deleted: its recompute compares a planted key that removes itself from the
    dict (its last reference: the compiled code held it borrowed, then used it freed). Python's
    max() raises RuntimeError (the dict changed size)."""
    bids: list[Any] = [
        ((10**6, "pop_self", False, False), 1.0),
        (5, 1.0),
        (7, 1.0),
        (3, 1.0),
        (2, 1.0),
        (1, 1.0),
    ]
    return _hostile_run(compiled, (bids, [], 7, None, [("delete", 7.0, 0.0)], [], 0))


def _case_recompute_through_the_decoder(compiled: bool) -> str:
    """The same through `DeribitDecoder.decode`, a key planted in the live book as a strategy
    holding `ctx.book()` could: a decoder fault on both paths, and the decoder goes on."""
    snap = {
        "type": "snapshot",
        "instrument_name": PERP,
        "timestamp": 1,
        "change_id": 1,
        "bids": [["new", 1.0, 1.0], ["new", 2.0, 1.0], ["new", 3.0, 1.0]],
        "asks": [["new", 500.0, 1.0]],
    }
    change = {
        **snap,
        "type": "change",
        "change_id": 2,
        "prev_change_id": 1,
        "bids": [["delete", 3.0, 0.0]],
        "asks": [],
    }
    dec = DeribitDecoder(InstrumentRegistry(), compiled=compiled)
    out = [_outcome(dec, PERP_BOOK + orjson.dumps(snap) + b"}}")]
    book: Any = dec.book(PERP)  # it will hold a planted key
    assert book is not None
    _CTX["book"] = book
    try:
        book.bids = {_Planted("P", 12345, "pop_self", False, False): 1.0, **book.bids}
        try:
            out.append(_outcome(dec, PERP_BOOK + orjson.dumps(change) + b"}}"))
        except Exception as exc:  # the decoder fault: not a MalformedFrame, the same on both paths
            out.append(repr(("raised", type(exc).__name__, str(exc))))
    finally:
        _CTX.clear()
    snap["change_id"] = 3
    out.append(_outcome(dec, PERP_BOOK + orjson.dumps(snap) + b"}}"))  # and the decoder goes on
    return repr(out) + _decoder_state(dec)


_CASES = {
    "best_compare_clears_levels": _case_best_compare_clears_levels,
    "hash_collision_clears_levels": _case_hash_collision_clears_levels,
    "hash_collision_extends_levels": _case_hash_collision_extends_levels,
    "finalizer_swaps_asks": _case_finalizer_swaps_asks,
    "recompute_removes_its_best": _case_recompute_removes_its_best,
    "recompute_through_the_decoder": _case_recompute_through_the_decoder,
}


def _child(case: str) -> None:
    """The child process: one case (or the property), both paths; exit 0 when they agree."""
    if case == "property":
        _hostile_books_apply_the_same()
        return
    python = _CASES[case](False)
    compiled = _CASES[case](True)
    assert compiled == python, f"compiled {compiled}\n  python {python}"


def _run_child(case: str) -> None:
    run_child(__name__, case, timeout=300, examples=False)


@pytest.mark.parametrize(
    "case",
    [
        "best_compare_clears_levels",
        "hash_collision_clears_levels",
        "hash_collision_extends_levels",
        "finalizer_swaps_asks",
    ],
)
def test_code_run_by_the_book_while_levels_apply_never_crashes(case: str) -> None:
    _run_child(case)


@pytest.mark.parametrize("case", ["recompute_removes_its_best", "recompute_through_the_decoder"])
def test_a_key_that_removes_itself_while_the_best_is_recomputed(case: str) -> None:
    _run_child(case)


def test_hostile_books_apply_the_same_compiled_and_in_python() -> None:
    """Books holding planted keys, sizes and best levels (hypothesis), both paths."""
    _run_child("property")


# -- subclasses: what they override is called on both paths -------------------------------------


class _PricedBook(OrderBook):
    __slots__ = ()

    def price_of(self, ticks: int) -> float:
        return super().price_of(ticks) + 1000.0


class _HalfBestBook(OrderBook):
    __slots__ = ()

    def set_best(self, bid_ticks: int | None, ask_ticks: int | None) -> None:
        super().set_best(bid_ticks, None)


class _TopBook(OrderBook):
    __slots__ = ()

    def top(self) -> tuple[float | None, float | None, float | None, float | None]:
        return 1.0, 2.0, 3.0, 4.0


class _FineBook(OrderBook):
    __slots__ = ()

    @property
    def inverse_quantum(self) -> float:
        return self._inv * 2


class _CountingDecoder(DeribitDecoder):
    """A decoder whose `_crossed` is its own, and whose books are `book_type`."""

    book_type: type[OrderBook] = OrderBook

    def __init__(self, registry: InstrumentRegistry, *, compiled: bool = True) -> None:
        super().__init__(registry, compiled=compiled)
        self.crossings = 0

    def _new_book(self, instrument: str) -> OrderBook:
        return self.book_type(0.5)

    def _crossed(self, book: OrderBook, inst: str, ts: int, ts_local: int, change_id: int | None) -> Any:
        self.crossings += 1
        return super()._crossed(book, inst, ts, ts_local, change_id)


def _levels(*prices: float) -> list[list[Any]]:
    return [["new", p, 1.0] for p in prices]


@pytest.mark.parametrize("book_type", [OrderBook, _PricedBook, _HalfBestBook, _TopBook, _FineBook])
def test_what_a_subclass_overrides_is_called_compiled_too(book_type: type[OrderBook]) -> None:
    """An `OrderBook` subclass's `price_of`, `set_best`, `top`, `inverse_quantum`, and a decoder
    subclass's `_crossed`: the Python path calls them, so the compiled one must too (it takes
    the Python path for any book but an exact `OrderBook`, and calls `_crossed` as a method)."""
    decoder_type = type("Decoder", (_CountingDecoder,), {"book_type": book_type})
    snap = {**_snapshot_data(PERP, 1), "bids": _levels(100.0, 99.5), "asks": _levels(101.0, 101.5)}
    frames = [
        snap,
        {**snap, "type": "change", "change_id": 2, "prev_change_id": 1, "bids": _levels(100.5), "asks": []},
        {
            **snap,
            "type": "change",
            "change_id": 3,
            "prev_change_id": 2,
            "bids": [["delete", 100.5, 0.0]],
            "asks": [],
        },
        {
            **snap,
            "type": "change",
            "change_id": 4,
            "prev_change_id": 3,
            "bids": _levels(102.0),
            "asks": [],
        },  # crossed
        {**snap, "change_id": 5},  # the resync
        {**snap, "type": "change", "change_id": 6, "prev_change_id": 5, "bids": [], "asks": _levels(100.5)},
    ]
    compiled = decoder_type(InstrumentRegistry())
    python = decoder_type(InstrumentRegistry(), compiled=False)
    assert compiled.compiled and not python.compiled
    for data in frames:
        frame = PERP_BOOK + orjson.dumps(data) + b"}}"
        assert _outcome(compiled, frame) == _outcome(python, frame), data
        assert _decoder_state(compiled) == _decoder_state(python), data
    # the frame that crosses the book, once; never with no best ask (`_HalfBestBook`)
    assert compiled.crossings == python.crossings == (book_type is not _HalfBestBook)
