"""The compiled replay of the decoded-event cache (engine/store/_replay.c) against its Python
reference: `_replay.update` is `OrderBook.update`, and `_replay.Replay` is
`ReplayDecoder.apply`, record by record on a real entry (every event, counter and book the same
after each record), and on damaged records (the same `CacheDamaged`); the chunk codec
(`_replay.Encoder`, `_replay.Records`) is `evformat` (`PyEncoder`, `py_records`): the same bytes
written, the same records read (types and floats to the bit), on generated values and on a real
entry, and the same records then the same error from a damaged chunk."""

from __future__ import annotations

import contextlib
import enum
import gc
import math
import pickle
import struct
import sys
import weakref
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import msgspec
import pytest
import trio
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.child import in_a_child
from tests.support.collector import no_collector
from tests.support.examples import examples
from tradingd.engine.backtest.kernel import BacktestKernel, DataSource
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.model.book import OrderBook
from tradingd.engine.model.errors import MalformedFrame
from tradingd.engine.model.events import (
    BookUpdate,
    Greeks,
    MarketEvent,
    Side,
    Status,
    StatusKind,
    Ticker,
    Trade,
)
from tradingd.engine.store import _replay, evcache, evformat
from tradingd.engine.store.evcache import CacheDamaged, EventCache, ReplayDecoder
from tradingd.engine.venue.plugins import load_venue

_SLOTS = ("_ba", "_bb", "_int_inv", "_inv", "_nd", "asks", "bids", "quantum", "sequence", "valid")


def _state(book: OrderBook) -> tuple[Any, ...]:
    """Every slot, the sides' levels in their dict order (a replay iterates them)."""
    return tuple(
        list(getattr(book, n).items()) if n in ("bids", "asks") else getattr(book, n, "<unset>")
        for n in _SLOTS
    )


def _copy(book: OrderBook) -> OrderBook:
    other = OrderBook(book.quantum)
    other.bids, other.asks = dict(book.bids), dict(book.asks)
    other.set_best(book.best_bid_ticks, book.best_ask_ticks)
    other.sequence, other.valid = book.sequence, book.valid
    return other


# Prices on, near and half-way between ticks (rounding half to even), sizes removing levels (0,
# negative, NaN) or setting them.
_quantum = st.sampled_from([0.5, 0.0001, 0.05, 2.5, 0.3])
_ticks = st.integers(min_value=1, max_value=8)  # few ticks: levels set, then removed, often the best
_size = st.one_of(st.floats(min_value=0.001, max_value=10.0), st.sampled_from([0.0, -1.0, math.nan]))
_nudge = st.sampled_from([0.0, 0.5, -0.5, 1e-9, 0.49999999])


@st.composite
def _levels(draw: st.DrawFn, quantum: float) -> tuple[tuple[float, float], ...]:
    n = draw(st.integers(min_value=0, max_value=6))
    return tuple(((draw(_ticks) + draw(_nudge)) * quantum, draw(_size)) for _ in range(n))


@st.composite
def _case(draw: st.DrawFn) -> tuple[OrderBook, list[tuple[Any, Any]]]:
    quantum = draw(_quantum)
    book = OrderBook(quantum)
    book.update(draw(_levels(quantum)), draw(_levels(quantum)))
    steps = [(draw(_levels(quantum)), draw(_levels(quantum))) for _ in range(draw(st.integers(1, 5)))]
    return book, steps


@settings(max_examples=300)
@given(_case())
def test_update_compiled_is_the_order_book_s_update(case: tuple[OrderBook, list[tuple[Any, Any]]]) -> None:
    book, steps = case
    python, compiled = _copy(book), _copy(book)
    for bids, asks in steps:
        python.update(bids, asks)
        _replay.update(compiled, bids, asks)
        assert _state(compiled) == _state(python)


# Ticks around the edges of a C long long (the compiled comparisons' fast path takes the ints
# that fit one, the others are compared by Python): floats there are 2048 apart, so the levels
# are whole multiples of 4096 from a base on either side of +-2**63, and small ones mixed in.
_edge = st.sampled_from([0, 2**62, 2**63 - 2**13, 2**63, 2**64, -(2**63), -(2**63) - 2**13])


@st.composite
def _edge_levels(draw: st.DrawFn, base: int) -> tuple[tuple[float, float], ...]:
    n = draw(st.integers(min_value=0, max_value=6))
    price = st.builds(lambda b, k: float(b + 4096 * k), st.sampled_from([base, 0]), st.integers(-3, 3))
    return tuple((draw(price), draw(_size)) for _ in range(n))


@settings(max_examples=300)
@given(_edge, st.data())
def test_update_compiled_is_the_method_at_a_c_integer_s_edges(base: int, data: st.DataObject) -> None:
    """Sides whose best is removed (a max or min over the side again) with keys that fit a C
    integer, keys that do not, and both: the compiled update is the method's."""
    python, compiled = OrderBook(1.0), OrderBook(1.0)
    for _ in range(data.draw(st.integers(1, 6))):
        bids, asks = data.draw(_edge_levels(base)), data.draw(_edge_levels(base))
        python.update(bids, asks)
        _replay.update(compiled, bids, asks)
        assert _state(compiled) == _state(python)


@pytest.mark.parametrize("price", [math.nan, math.inf])
def test_a_price_that_has_no_tick_fails_the_same_after_the_same_changes(price: float) -> None:
    python, compiled = OrderBook(0.5), OrderBook(0.5)
    bids = ((100.0, 1.0), (price, 1.0), (99.0, 1.0))
    with pytest.raises((ValueError, OverflowError)) as py_raised:
        python.update(bids, ())
    with pytest.raises((ValueError, OverflowError)) as c_raised:
        _replay.update(compiled, bids, ())
    assert type(c_raised.value) is type(py_raised.value) and str(c_raised.value) == str(py_raised.value)
    assert _state(compiled) == _state(python) and compiled.bids == {200: 1.0}


def test_levels_of_another_shape_and_a_subclass_take_the_method() -> None:
    python, compiled = OrderBook(0.5), OrderBook(0.5)
    levels: Any = [[100.0, 1.0], [100.5, 2.0]]  # lists, not tuples: the method iterates them
    python.update(levels, ())
    _replay.update(compiled, levels, ())
    assert _state(compiled) == _state(python) and compiled.best_bid_ticks == 201

    calls: list[Any] = []

    class Spy(OrderBook):
        __slots__ = ()

        def update(self, bids: Any, asks: Any) -> None:
            calls.append((bids, asks))
            super().update(bids, asks)

    spy = Spy(0.5)
    _replay.update(spy, ((100.0, 1.0),), ())
    assert calls == [(((100.0, 1.0),), ())] and spy.bids == {200: 1.0}


class _Always(int):
    """An int whose comparisons all say yes: only Python's comparison honours them (`t > best`
    asks `best.__lt__(t)` first, a subclass's reflection)."""

    def __lt__(self, other: object) -> bool:
        return True

    def __gt__(self, other: object) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = int.__hash__


@pytest.mark.parametrize("steps", [[((5.0, 1.0),), ((3.0, 1.0),)], [((5.0, 1.0),), ((5.0, 0.0),)]])
def test_an_int_subclass_best_is_compared_by_python(steps: list[tuple[tuple[float, float], ...]]) -> None:
    """The compiled comparisons read exact ints as C integers; a best that is an int subclass
    (its own comparisons) is compared as the method compares it: a new level set, the best
    removed (a scan over the side again)."""
    python, compiled = OrderBook(1.0), OrderBook(1.0)
    for b in (python, compiled):
        b.bids[7] = 1.0
        b._bb = _Always(7)
    for levels in steps:
        python.update(levels, ())
        _replay.update(compiled, levels, ())
        assert (type(compiled._bb), _state(compiled)) == (type(python._bb), _state(python))


def test_an_order_book_update_patched_on_the_class_is_the_one_called(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fault injected into `OrderBook.update` (as tests of the decoders do) is met on the
    compiled path too."""

    def broken(self: OrderBook, bids: Any, asks: Any) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(OrderBook, "update", broken)
    with pytest.raises(RuntimeError, match="injected"):
        _replay.update(OrderBook(0.5), ((100.0, 1.0),), ())


# -- Replay against ReplayDecoder.apply on a real entry -----------------------------------------
def _entry(tmp_path: Path) -> tuple[Path, EventCache, str, list[DataSource]]:
    from tradingd.simulators.deribit import SIMULATOR

    data = tmp_path / "sample.rec.zst"
    SIMULATOR.generate_sample(data, {"seed": 5, "hours": 0.1})
    plugin = load_venue("deribit")
    sources = [DataSource("deribit", data)]
    cache = EventCache(tmp_path / "cache", write_on=1)
    kernel = BacktestKernel({"deribit": plugin}, sources, [], event_cache=cache)
    trio.run(kernel.run)
    assert kernel.data_path == "frames, cache written"
    return data, cache, cache.key({"deribit": plugin}, sources), sources


def _replay_decoder(cache: EventCache, key: str, sources: list[DataSource]) -> tuple[ReplayDecoder, Any]:
    decoder = load_venue("deribit").decoder(InstrumentRegistry())
    hit = cache.open(key, sources, {"deribit": decoder}, lambda *a, **k: None)
    assert hit is not None
    return hit.decoders["deribit"], hit.stream(lambda *a: None)


def test_the_compiled_replay_is_the_python_replay_record_by_record(tmp_path: Path) -> None:
    _, cache, key, sources = _entry(tmp_path)
    compiled, stream = _replay_decoder(cache, key, sources)
    python, _unused = _replay_decoder(cache, key, sources)
    assert isinstance(compiled.apply, _replay.Replay), "the cache replays in C where it is built"
    reference = ReplayDecoder.apply.__get__(python)
    kinds: set[str] = set()
    books_applied = 0
    for ts, _, record in stream:
        outcomes = []
        for apply in (compiled.apply, reference):
            try:
                outcomes.append(apply(record, ts))
            except MalformedFrame as exc:
                outcomes.append(f"malformed: {exc}")
        assert outcomes[0] == outcomes[1]
        if isinstance(outcomes[0], list):
            assert [type(e) for e in outcomes[0]] == [type(e) for e in outcomes[1]]
            kinds.update(type(e).__name__ for e in outcomes[0])
            books_applied += sum(1 for e in outcomes[0] if type(e) is BookUpdate and not e.snapshot)
        assert attrs.asdict(compiled.stats) == attrs.asdict(python.stats)
        assert compiled.book_instruments() == python.book_instruments()
        for inst in python.book_instruments():
            c_book, p_book = compiled.book(inst), python.book(inst)
            assert c_book is not None and p_book is not None
            assert _state(c_book) == _state(p_book)
    assert {"BookUpdate", "Ticker", "Trade"} <= kinds and books_applied > 100
    assert compiled.stats.frames > 1000


def _bare(compiled: bool) -> ReplayDecoder:
    rd = ReplayDecoder(
        load_venue("deribit").decoder(InstrumentRegistry()), [BookUpdate, Ticker, Trade], compiled=compiled
    )
    rd._books["X"] = OrderBook(0.5)
    rd.damaged = lambda exc: CacheDamaged(f"damaged ({type(exc).__name__}: {exc})")
    return rd


def _update(bids: tuple[tuple[float, float], ...]) -> BookUpdate:
    return BookUpdate("deribit", "X", None, 1, False, bids, (), None, None, None, None, 7)


@pytest.mark.parametrize(
    "record",
    [
        pytest.param((_update(((100.0, 1.0),)), ("not", "an event")), id="a-tuple-holding-a-tuple"),
        pytest.param(_update(((math.nan, 1.0),)), id="a-price-with-no-tick"),
        pytest.param(OrderBook(0.5), id="a-book-for-a-record"),
        pytest.param([(), {"stats": "no"}], id="a-bad-extra"),
    ],
)
def test_a_damaged_record_is_the_same_cache_damage_both_ways(record: Any) -> None:
    outcomes = []
    for compiled in (True, False):
        rd = _bare(compiled)
        assert isinstance(rd.apply, _replay.Replay) is compiled
        with pytest.raises(CacheDamaged) as raised:
            rd.apply(record, 1)
        outcomes.append(
            (str(raised.value), type(raised.value.__cause__), attrs.asdict(rd.stats), _state(rd._books["X"]))
        )
    assert outcomes[0] == outcomes[1]
    assert evcache.CacheDamaged is CacheDamaged


@pytest.mark.parametrize(
    ("raised", "damage"),
    [
        pytest.param(KeyboardInterrupt, False, id="ctrl-c"),
        pytest.param(SystemExit, False, id="system-exit"),
        # An Exception, as the Python replay's `except Exception` takes it: the entry's damage.
        pytest.param(MemoryError, True, id="memory-error"),
    ],
)
def test_what_is_not_an_exception_goes_through_both_ways_and_damages_nothing(
    monkeypatch: pytest.MonkeyPatch, raised: type[BaseException], damage: bool
) -> None:
    """Ctrl-C landing in the Python code a replay calls is no damage of the entry (which the
    caller would remove): it goes through as it is, compiled as in Python."""

    def interrupted(book: OrderBook) -> None:
        raise raised()

    monkeypatch.setattr(OrderBook, "clear", interrupted)
    snapshot = BookUpdate("deribit", "X", None, 1, True, ((100.0, 1.0),), (), None, None, None, None, 7)
    for compiled in (True, False):
        rd = _bare(compiled)
        assert isinstance(rd.apply, _replay.Replay) is compiled
        with pytest.raises(CacheDamaged if damage else raised) as caught:
            rd.apply(snapshot, 1)
        assert type(caught.value) is (CacheDamaged if damage else raised)
        if damage:
            assert type(caught.value.__cause__) is raised


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "python"])
def test_a_dropped_replay_decoder_is_freed_at_once_with_its_books(tmp_path: Path, compiled: bool) -> None:
    """A replay decoder dropped after its replay is freed by reference counting, and its books
    with it: nothing it holds refers back to it (the compiled replay holds it weakly; the damage
    it raises is the entry's, not a method of the replay that holds the decoders). So code that
    holds an entry directly (bench_cache's data path, a tool) frees it when it drops it; a cycle
    kept its books until a full collection. (A backtest's go with its finished kernel, freed the
    same way: tests/backtest/test_kernel_freed.py.)"""
    _, cache, key, sources = _entry(tmp_path)
    with no_collector():
        hit = cache.open(
            key,
            sources,
            {"deribit": load_venue("deribit").decoder(InstrumentRegistry())},
            lambda *a, **k: None,
            compiled=compiled,
        )
        assert hit is not None
        rd = hit.decoders["deribit"]
        apply = rd.apply
        assert isinstance(apply, _replay.Replay) is compiled
        for ts, _, record in hit.stream(lambda *a: None):
            with contextlib.suppress(MalformedFrame):
                apply(record, ts)
        book = rd.book(rd.book_instruments()[0])
        assert rd.stats.frames > 1000 and book is not None and book.bids
        gone = weakref.ref(rd)
        del hit, rd, apply
        assert gone() is None, [type(r).__name__ for r in gc.get_referrers(gone())]
        assert sys.getrefcount(book) == 2, [type(r).__name__ for r in gc.get_referrers(book)]


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(_update(((100.0, 1.0),)), id="an-event"),
        pytest.param([(), {"luc": "x"}], id="a-record-for-the-method"),
    ],
)
def test_a_compiled_replay_whose_decoder_is_gone_says_so(record: Any) -> None:
    """The compiled replay holds its decoder weakly: called after the decoder is freed (the
    kernel holds both for the run) it raises, naming what is gone, and touches nothing."""
    rd = _bare(True)
    apply, book = rd.apply, rd._books["X"]
    del rd
    with pytest.raises(ReferenceError, match="its ReplayDecoder is gone"):
        apply(record, 1)
    assert book.bids == {}


def dropped_mid_call() -> list[Any]:
    """A compiled replay called on a decoder whose last outside reference is dropped by code
    run inside the call (here its books' truth test, which then fails): what it raised, and
    whether the decoder was freed once the call was over (the collector held back: by reference
    counting). Run in a child by the test below: a replay that used the decoder borrowed from
    its weak reference used it freed, and crashed the interpreter."""
    holder: list[ReplayDecoder] = []

    class Books(dict[str, OrderBook]):
        def __bool__(self) -> bool:
            holder.clear()  # the decoder's last reference outside the call
            raise RuntimeError("dropped")

    with no_collector():
        rd = _bare(True)
        rd._books = Books(rd._books)
        apply, gone = rd.apply, weakref.ref(rd)
        holder.append(rd)
        del rd
        try:
            apply(_update(((100.0, 1.0),)), 1)
        except CacheDamaged as exc:
            return [str(exc), gone() is None]
    raise AssertionError("no damage raised")


def test_a_decoder_dropped_during_its_compiled_replay_is_held_to_the_end() -> None:
    """The compiled replay holds its decoder weakly, and strongly for each call (`owner_of`):
    a decoder whose last outside reference is dropped by code run inside the call is kept
    until the call is over, the entry's damage is raised from it, and it is freed after. In a
    child, so that a replay that let it go mid-call (a use after free) fails this test rather
    than kill the worker."""
    assert in_a_child("tests.store.test_replay_compiled", "dropped_mid_call", timeout=120) == [
        "damaged (RuntimeError: dropped)",
        True,
    ]


def test_the_replay_takes_part_in_collection() -> None:
    """A cycle through what the compiled replay holds (here its `malformed` class) is one the
    collector can break: the C type reports what it holds (tp_traverse, tp_clear)."""
    rd = _bare(True)
    holder = type("Holder", (), {})()
    holder.replay = _replay.Replay(rd, frozenset(), BookUpdate, holder)
    gone = weakref.ref(holder)
    del holder
    gc.collect()
    assert gone() is None


class _NotMade(Exception):
    """An exception class whose call gives no exception: `raise _NotMade from exc` is a TypeError."""

    def __new__(cls, *args: Any) -> Any:
        return 5


def _raised_in_damaged(exc: BaseException) -> BaseException:
    raise KeyError("in damaged")


# What a `damaged` may return (or do), and what Python's `raise damaged(exc) from exc` makes of it.
_DAMAGES: dict[str, Any] = {
    "damage": lambda exc: CacheDamaged(f"damaged ({type(exc).__name__})"),
    "itself": lambda exc: exc,
    "a-str": lambda exc: "not an exception",
    "an-int": lambda exc: 12345678901234567890,
    "a-class": lambda exc: LookupError,
    "a-class-making-no-exception": lambda exc: _NotMade,
    "a-raise": _raised_in_damaged,
    "not-callable": 3,
}


def damage_returned(name: str) -> list[Any]:
    """What the compiled replay and the compiled chunk reader raise when the entry's `damaged`
    is `_DAMAGES[name]`, and what their Python references raise (`ReplayDecoder.apply`,
    `CachedReplay._py_records`): for each, the exception's type, text, context, cause, and
    whether its context is the damage itself. Run in a child by the test below: the compiled
    code gave what `damaged` returned to PyException_SetContext as if an exception (a write past
    a str or an int: a crash)."""
    damaged = _DAMAGES[name]

    def seen(call: Any, *args: Any) -> list[Any]:
        try:
            call(*args)
        except Exception as exc:
            context, cause = exc.__context__, exc.__cause__
            return [type(exc).__name__, str(exc), repr(context), repr(cause), context is exc]
        raise AssertionError("nothing raised")

    out = []
    for compiled in (True, False):
        rd = _bare(compiled)
        rd.damaged = damaged
        assert isinstance(rd.apply, _replay.Replay) is compiled
        out.append(seen(rd.apply, _update(((math.nan, 1.0),)), 1))  # a ValueError in `update`
    chunk = b"\x07"  # a record's flags 7: a ValueError
    out.append(seen(next, _replay.Records(chunk, 0, 1, 1, (), (), pickle.loads, damaged)))
    reference = attrs.make_class("Replay", {"damaged": attrs.field()})(damaged)
    records = evformat.py_records(chunk, 0, 1, 1, (), (), pickle.loads)
    out.append(seen(next, evcache.CachedReplay._py_records(reference, records)))
    return out


@pytest.mark.parametrize("name", list(_DAMAGES))
def test_the_damage_is_raised_as_python_raises_it_whatever_damaged_returns(name: str) -> None:
    """`raise damaged(exc) from exc`, compiled (the replay, the chunk reader) as in Python, in a
    child: an exception is raised with `exc` as its cause and context (no context when it is
    `exc` itself), a class is called, anything else is Python's TypeError, never a crash."""
    replay, replay_py, records, records_py = in_a_child(
        "tests.store.test_replay_compiled", "damage_returned", name, timeout=120
    )
    assert replay == replay_py
    assert records == records_py
    if name in ("a-str", "an-int"):
        assert replay[:2] == ["TypeError", "exceptions must derive from BaseException"]
    if name == "itself":
        assert replay[2] == "None" and records[2] == "None"
    assert not replay[4] and not records[4]


# -- the chunk codec (_replay.Encoder, _replay.Records) against evformat, its Python reference -----
class _Point(msgspec.Struct, frozen=True, gc=False):
    """A Struct an event may hold (as Ticker holds Greeks): written by its fields."""

    x: float
    y: Any = None


class _KwOnly(msgspec.Struct, kw_only=True):
    """A Struct whose fields do not rebuild it in order: pickled."""

    a: int = 0


class _Colour(enum.Enum):
    RED = "red"
    BLUE = 2


def _tables() -> tuple[dict[type, int], dict[type, dict[Any, int]], list[type], list[Any], Any]:
    kinds: dict[type, int] = {}
    enums: dict[type, dict[Any, int]] = {}
    structs: list[type] = []
    consts: list[Any] = []

    def register(v: Any) -> int:
        cls = type(v)
        if isinstance(v, msgspec.Struct) and evformat.positional_struct(cls):
            kinds[cls] = len(structs)
            structs.append(cls)
            return kinds[cls]
        if isinstance(v, enum.Enum):
            enums.setdefault(cls, {})[v] = len(consts)
            consts.append(v)
            return len(consts) - 1
        return -1

    return kinds, enums, structs, consts, register


def _dumps(v: Any) -> bytes:
    return pickle.dumps(v, protocol=5)


def _same(a: Any, b: Any) -> bool:
    """Equal, of the same types all the way down, floats to the bit (NaN, -0.0)."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return struct.pack("<d", a) == struct.pack("<d", b)
    if type(a) in (tuple, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, msgspec.Struct):
        return all(_same(getattr(a, f), getattr(b, f)) for f in a.__struct_fields__)
    return bool(a == b)


def _outcome(records: Any) -> tuple[list[Any], str | None]:
    """What reading gives: the records, then what it raised (type and message), if anything."""
    out: list[Any] = []
    try:
        for rec in records:
            out.append(rec)
    except Exception as exc:
        return out, f"{type(exc).__name__}: {exc}"
    return out, None


def _both_ways(data: bytes, count: int, sources: int, structs: Any, consts: Any) -> list[Any]:
    """The records of `data` read by the compiled codec and by the reference: the same."""
    outcomes: list[tuple[list[Any], str | None]] = []
    for compiled in (True, False):
        if compiled:
            try:
                reader: Any = _replay.Records(
                    data, 0, count, sources, tuple(structs), tuple(consts), pickle.loads, None
                )
            except ValueError as exc:
                outcomes.append(([], f"ValueError: {exc}"))
                continue
        else:
            try:
                reader = evformat.py_records(
                    data, 0, count, sources, tuple(structs), tuple(consts), pickle.loads
                )
            except ValueError as exc:
                outcomes.append(([], f"ValueError: {exc}"))
                continue
        outcomes.append(_outcome(reader))
    (c_recs, c_raised), (p_recs, p_raised) = outcomes
    assert c_raised == p_raised
    assert len(c_recs) == len(p_recs) and all(_same(a, b) for a, b in zip(c_recs, p_recs, strict=True))
    return c_recs


_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(min_value=-1e9, max_value=1e9, places=6, allow_nan=False, allow_infinity=False).map(float),
    st.sampled_from([0.0, -0.0, 5e-324, 1e300, 91279.29, 0.0615, 2**53 + 0.0, -(2**53) - 2.0]),
)
_ints = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([0, -1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**31, -(2**31)]),
)
_text = st.one_of(
    st.sampled_from(["deribit", "BTC-PERPETUAL", ""]),
    st.text(st.characters(exclude_categories=()), max_size=8),
)  # lone surrogates too
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    _floats,
    _ints,
    _text,
    st.sampled_from([Side.BUY, Side.SELL, StatusKind.FUNDING, _Colour.RED, _Colour.BLUE]),
    st.decimals(allow_nan=False, places=3),
    st.tuples(_floats, _floats),
    st.lists(st.tuples(_floats, _floats), max_size=4).map(tuple),
    st.builds(Greeks, _floats, _floats, _floats, _floats, st.one_of(st.none(), _floats)),
    st.builds(_KwOnly, a=st.integers(0, 9)),
)
_values = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(tuple),
        st.lists(inner, max_size=3),
        st.dictionaries(_text, inner, max_size=3),
        st.builds(_Point, inner, inner),
    ),
    max_leaves=12,
)


@st.composite
def _event(draw: st.DrawFn) -> Any:
    cls = draw(st.sampled_from([Ticker, BookUpdate, Trade, Status]))
    return cls(*[draw(_values) for _ in cls.__struct_fields__])


_bodies = st.one_of(
    st.none(),
    _event(),
    st.lists(_event(), min_size=0, max_size=3).map(tuple),
    st.tuples(st.lists(_event(), max_size=2).map(tuple), st.dictionaries(st.just("stats"), _values)).map(
        list
    ),
    _values,
)
_records = st.lists(
    st.tuples(
        st.one_of(
            st.none(),
            st.integers(min_value=-(2**62), max_value=2**62 - 1),
            st.just(1_795_478_400_000_000_000),
        ),
        st.integers(0, 3),
        _bodies,
    ),
    max_size=8,
)


def _encode_both(records: list[Any]) -> tuple[bytes, list[type], list[Any]]:
    """The records written by the compiled encoder and by the reference, each with tables of its
    own from empty: the same bytes, the same tables."""
    out = []
    for cls in (_replay.Encoder, evformat.PyEncoder):
        kinds, enums, structs, consts, register = _tables()
        encoder = cls(kinds, enums, register, _dumps)
        for ts, idx, body in records:
            encoder.add(ts, idx, body)
        assert encoder.count == len(records)
        out.append((encoder.take(), structs, consts))
        assert encoder.count == 0
    (c_data, c_structs, c_consts), (p_data, p_structs, p_consts) = out
    assert c_data == p_data
    assert c_structs == p_structs and c_consts == p_consts
    return c_data, c_structs, c_consts


@settings(max_examples=examples(300))
@given(_records)
def test_the_compiled_codec_writes_and_reads_what_the_reference_does(records: list[Any]) -> None:
    data, structs, consts = _encode_both(records)
    back = _both_ways(data, len(records), 4, structs, consts)
    assert len(back) == len(records)
    for (ts, idx, body), got in zip(records, back, strict=True):
        assert _same(got, (ts, idx, body)), (got, (ts, idx, body))


@settings(max_examples=examples(300))
@given(_records, st.data())
def test_a_damaged_chunk_reads_the_same_both_ways(records: list[Any], data: st.DataObject) -> None:
    """Cut short, a byte changed, bytes added: the same records, then the same error (never
    another), compiled as in Python."""
    chunk, structs, consts = _encode_both(records)
    damage = data.draw(st.sampled_from(["cut", "flip", "add"]))
    at = data.draw(st.integers(0, max(0, len(chunk) - 1)))
    if damage == "cut":
        chunk = chunk[:at]
    elif damage == "flip" and chunk:
        chunk = chunk[:at] + bytes([chunk[at] ^ data.draw(st.integers(1, 255))]) + chunk[at + 1 :]
    else:
        chunk = chunk[:at] + data.draw(st.binary(min_size=1, max_size=4)) + chunk[at:]
    count = data.draw(st.sampled_from([len(records), len(records) + 1, max(0, len(records) - 1)]))
    _both_ways(chunk, count, data.draw(st.integers(1, 4)), structs, consts)


def test_an_entry_s_chunks_read_the_same_both_ways_and_write_again_to_their_bytes(tmp_path: Path) -> None:
    _, cache, key, sources = _entry(tmp_path)
    hit = cache.open(key, sources, {"deribit": load_venue("deribit").decoder(InstrumentRegistry())}, print)
    assert hit is not None
    kinds = {cls: i for i, cls in enumerate(hit.structs)}
    enums: dict[type, dict[Any, int]] = {}
    for i, member in enumerate(hit.consts):
        enums.setdefault(type(member), {})[member] = i
    hit._file.seek(hit._chunks_at)
    dctx = zstandard.ZstdDecompressor()
    chunks = shared = 0
    while hit._file.tell() < hit.footer["chunks_end"]:
        raw = dctx.decompress(hit._file.read(int.from_bytes(hit._file.read(4), "little")))
        count = int.from_bytes(raw[:4], "little")
        at = 8 + int.from_bytes(raw[4:8], "little")
        records = _both_ways(raw[at:], count, 1, hit.structs, hit.consts)
        for cls in (_replay.Encoder, evformat.PyEncoder):
            encoder = cls(dict(kinds), dict(enums), lambda v: -1, evcache._dumps)
            for rec in records:
                encoder.add(*rec)
            assert encoder.take() == raw[at:]
        # one object per name in a chunk
        names: dict[str, str] = {}
        for _, _, body in records:
            for ev in body if type(body) is tuple else [body]:
                if isinstance(ev, MarketEvent):
                    assert names.setdefault(ev.instrument, ev.instrument) is ev.instrument
                    shared += 1
        chunks += 1
    hit._file.close()
    assert chunks > 3 and shared > 1000


def _interrupting_loads(raised: type[BaseException]) -> Any:
    def loads(data: bytes) -> Any:
        raise raised("in the middle of a chunk")

    return loads


@pytest.mark.parametrize("raised", [KeyboardInterrupt, SystemExit, RuntimeError])
def test_what_a_chunk_s_unpickling_raises_is_damage_only_when_an_exception(
    tmp_path: Path, raised: type[BaseException]
) -> None:
    """Ctrl-C landing in the unpickler a chunk calls goes through as it is, compiled as in
    Python, and the entry stays; an Exception is the entry's damage (`CachedReplay.damaged`)."""
    data, _, _ = _encode_both([(1, 0, [1, 2])])  # a list: pickled
    entry = tmp_path / "x.evc"
    said: list[Any] = []
    for compiled in (True, False):
        entry.write_bytes(b"an entry")
        replay = evcache.CachedReplay(entry, [], {}, {}, None, 0, log=lambda *a, **k: said.append(a))
        loads = _interrupting_loads(raised)
        reader: Any = (
            _replay.Records(data, 0, 1, 1, (), (), loads, replay.damaged)
            if compiled
            else replay._py_records(evformat.py_records(data, 0, 1, 1, (), (), loads))
        )
        expected = CacheDamaged if issubclass(raised, Exception) else raised
        with pytest.raises(expected) as caught:
            next(reader)
        if expected is CacheDamaged:
            assert type(caught.value.__cause__) is raised
            assert not entry.exists(), "a damaged entry is removed"
        else:
            assert entry.exists(), "Ctrl-C damages nothing"
    assert len(said) == (2 if issubclass(raised, Exception) else 0)


def test_a_value_whose_pickle_a_replay_would_refuse_is_never_written() -> None:
    """A Struct rebuilt by a function (keyword-only fields) inside an event: the writer's
    `_dumps` refuses it (the entry is not written), rather than an entry every replay would find
    damaged."""
    assert not evformat.positional_struct(_KwOnly)
    with pytest.raises(pickle.UnpicklingError):
        evcache._dumps(_KwOnly(a=1))
    assert evcache._loads(evcache._dumps(Decimal("1.5"))) == Decimal("1.5")


def test_the_codec_s_objects_are_collected() -> None:
    encoder = _replay.Encoder({}, {}, lambda v: -1, _dumps)
    encoder.add(1, 0, _Point(1.0))
    data = encoder.take()
    records = _replay.Records(data, 0, 1, 1, (), (), pickle.loads, None)
    holder = type("Holder", (), {})()
    holder.records = records
    holder.encoder = encoder
    records_with_cycle = _replay.Records(data, 0, 1, 1, (), (), holder, holder)  # a cycle through both
    holder.cycle = records_with_cycle
    gone = weakref.ref(holder)
    del holder, records, encoder, records_with_cycle
    gc.collect()
    assert gone() is None


class _Unpicklable:
    def __reduce__(self) -> Any:
        raise RuntimeError("cannot be pickled")


def test_a_record_that_cannot_be_written_leaves_the_chunk_as_it_was() -> None:
    """All or nothing: the names a failed record met first are not in the chunk's table (a later
    record writes them whole), its bytes are gone, the next record's time difference is from the
    last record written."""
    good = [(10, 0, Ticker("deribit", "A", 9, 10)), (30, 0, Ticker("deribit", "B", 29, 30))]
    bad = (20, 0, Ticker("deribit", "NEW-NAME", 19, 20, greeks=_Unpicklable()))  # type: ignore[arg-type]
    late = (40, 0, Ticker("deribit", "NEW-NAME", 39, 40))
    for cls in (_replay.Encoder, evformat.PyEncoder):
        kinds, enums, _, _, register = _tables()
        encoder = cls(kinds, enums, register, _dumps)
        encoder.add(*good[0])
        with pytest.raises(RuntimeError, match="cannot be pickled"):
            encoder.add(*bad)
        assert encoder.count == 1
        for rec in [good[1], late]:
            encoder.add(*rec)
        kinds2, enums2, _, _, register2 = _tables()
        clean = cls(kinds2, enums2, register2, _dumps)
        for rec in [good[0], good[1], late]:
            clean.add(*rec)
        assert encoder.take() == clean.take()


def test_structs_nested_deeper_than_the_encoder_s_first_table_are_written_as_the_reference() -> None:
    """A Struct holding a Struct of a class met first there (the writer registers it meanwhile,
    growing the encoder's table of classes) twelve deep: the same bytes, read back the same."""
    classes = [
        msgspec.defstruct(f"Nested{i}", [("inner", Any), ("x", float)], frozen=True) for i in range(12)
    ]
    value: Any = 1.5
    for cls in classes:
        value = cls(value, 0.25)
    data, structs, consts = _encode_both([(7, 0, value), (8, 0, value)])
    assert len(structs) == 12
    (_, _, first), (_, _, second) = _both_ways(data, 2, 1, structs, consts)
    assert _same(first, value) and _same(second, value)


# -- values at and around MAX_DEPTH ----------------------------------------------------------------
class _Box(msgspec.Struct, frozen=True, gc=False):
    """A Struct of one field, to nest values in (module-level: a Box past MAX_DEPTH is pickled)."""

    inner: Any


def _nest(leaf: Any, depth: int, kind: str) -> Any:
    """`leaf` inside `depth` tuples of one item, or `depth` Boxes."""
    for _ in range(depth):
        leaf = (leaf,) if kind == "tuple" else _Box(leaf)
    return leaf


# what each leaf is written as when nothing is too deep for it; at MAX_DEPTH a tuple or a Struct
# (LEVELS too) is pickled, an enum member is still a CONST
_DEEP_LEAVES: list[tuple[Any, int]] = [
    (_Colour.BLUE, evformat.CONST),
    (Decimal("1.5"), evformat.PICKLED),
    ((1, 2), evformat.TUPLE),
    (_Box(3), evformat.STRUCT),
    (((1.5, 2.0),), evformat.LEVELS),
    (None, evformat.NONE),
]


@pytest.mark.parametrize("kind", ["tuple", "struct"])
@pytest.mark.parametrize("depth", [evformat.MAX_DEPTH - 1, evformat.MAX_DEPTH, evformat.MAX_DEPTH + 1])
@pytest.mark.parametrize(
    ("leaf", "tag"), _DEEP_LEAVES, ids=["enum", "pickled", "tuple", "struct", "levels", "none"]
)
def test_values_nested_at_and_around_max_depth_are_written_and_read_the_same_both_ways(
    kind: str, depth: int, leaf: Any, tag: int
) -> None:
    """A value nested 31, 32, 33 deep in tuples or Structs: both encoders write the same bytes
    (tuples and Structs as themselves above MAX_DEPTH, at MAX_DEPTH an enum member as its CONST and
    a tuple or Struct pickled), and both readers read them back as the value (the reference read
    a CONST or PICKLED at MAX_DEPTH as damage)."""
    value = _nest(leaf, depth, kind)
    # the first record enters _Colour and _Box in the tables (an encoder registers no class at
    # MAX_DEPTH: one met first there is pickled)
    records = [(1, 0, (_Colour.BLUE, _Box(None))), (2, 0, value)]
    data, structs, consts = _encode_both(records)
    wrapper = bytes([evformat.TUPLE, 1] if kind == "tuple" else [evformat.STRUCT, structs.index(_Box)])
    if depth > evformat.MAX_DEPTH or (
        depth == evformat.MAX_DEPTH and tag not in (evformat.CONST, evformat.NONE)
    ):
        tag = evformat.PICKLED
    assert wrapper * min(depth, evformat.MAX_DEPTH) + bytes([tag]) in data
    back = _both_ways(data, 2, 1, structs, consts)
    assert len(back) == 2 and _same(back[1], (2, 0, value))


def _forged(body: bytes) -> bytes:
    return bytes([1, 0]) + body  # no receive time, source 0


@pytest.mark.parametrize(
    ("inner", "damage"),
    [
        (bytes([evformat.NONE]), None),
        (bytes([evformat.CONST, 0]), None),
        (bytes([evformat.PICKLED, 2]) + pickle.dumps(None, protocol=0), None),
        (bytes([evformat.TUPLE, 0]), "ValueError: values nested too deep"),
        (bytes([evformat.STRUCT, 0, evformat.NONE]), "ValueError: values nested too deep"),
        (bytes([14]), "ValueError: unknown tag 14"),
    ],
    ids=["none", "const", "pickled", "tuple", "struct", "unknown"],
)
@pytest.mark.parametrize("depth", [evformat.MAX_DEPTH - 1, evformat.MAX_DEPTH])
def test_a_forged_chunk_nested_too_deep_is_damage_both_ways_and_only_then(
    inner: bytes, damage: str | None, depth: int
) -> None:
    """Hand-written chunks, the value `inner` nested `depth` deep in tuples: a leaf (CONST,
    PICKLED, NONE) reads at MAX_DEPTH too; a TUPLE or STRUCT there is the file's damage, the same
    error both ways; an unknown tag there is said as one, not as a value too deep."""
    data = _forged(bytes([evformat.TUPLE, 1]) * depth + inner)
    structs, consts = (_Box,), (_Colour.RED,)
    _both_ways(data, 1, 1, structs, consts)
    _, raised = _outcome(evformat.py_records(data, 0, 1, 1, structs, consts, pickle.loads))
    if damage == "ValueError: values nested too deep" and depth < evformat.MAX_DEPTH:
        damage = None  # a tuple or Struct above MAX_DEPTH: read
    assert raised == damage
