"""The compiled replay of the decoded-event cache (engine/store/_replay.c) against its Python
reference: `_replay.update` is `OrderBook.update`, and `_replay.Replay` is
`ReplayDecoder.apply`, record by record on a real entry (every event, counter and book the same
after each record), and on damaged records (the same `CacheDamaged`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from tradingd.engine.backtest.kernel import BacktestKernel, DataSource
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.model.book import OrderBook
from tradingd.engine.model.errors import MalformedFrame
from tradingd.engine.model.events import BookUpdate, Ticker, Trade
from tradingd.engine.store import _replay, evcache
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


def test_the_replay_is_collected_with_its_decoder() -> None:
    """`apply` (the compiled replay) refers to its decoder, which holds it: a cycle the collector
    must be able to break (the C type takes part in collection)."""
    import gc
    import weakref

    rd = _bare(True)
    gone = weakref.ref(rd)
    del rd
    gc.collect()
    assert gone() is None
