"""The compiled decoder's guards against hostile stats classes and streams (issue 17, round 6
review): what `_fast.c` learns of a class (its slots written directly) is only what that class
really has, the counting of a frame's stats fails as the guarded `decode` fails, and its caches
keep no long names alive. Each case is compared with the reference (a decoder built with
`compiled=False`, or the class's guarded `decode` on a compiled decoder)."""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import attrs
import pytest

from tests.connectors.deribit._compare import INSTRUMENTS, run_child
from tests.connectors.deribit.test_deribit_decode_caches import _outcome, _quote, _ticker, _trades
from tests.connectors.deribit.test_deribit_decode_caches import _Pair as _RefPair
from tests.connectors.deribit.test_deribit_decode_entry import _Pair as _EntryPair
from tradingd.connectors.deribit.codec import DeribitDecoder
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.venue.spi import DecoderStats

try:
    from tradingd.connectors.deribit import _fast
except ImportError:  # not built: nothing to compare
    _fast = None  # type: ignore[assignment]

pytestmark = pytest.mark.skipif(_fast is None, reason="the compiled Deribit path (_fast.c) was not built")

PERP = "BTC-PERPETUAL"
_NAMES = ("frames", "events", "malformed", "control", "unknown_channel")


def _counts(stats: Any) -> list[Any]:
    """The stats' own slots, read through DecoderStats' descriptors (not the class's attributes)."""
    return [DecoderStats.__dict__[n].__get__(stats) for n in _NAMES]


def _foreign_descriptors(width: int) -> None:
    """A stats class given another class's slot descriptors for `frames` and `events` (slots at
    offsets past its own end when `width` is large): Python refuses them (TypeError, a fault);
    the compiled path must not write through them."""

    class Big:
        __slots__ = (*(f"a{i:07d}" for i in range(width)), "frames", "events")

    class Tiny(DecoderStats):
        __slots__ = ()

    pair = _RefPair(INSTRUMENTS)
    for k in range(2):
        pair.check(_ticker(PERP, k))
    for dec in (pair.compiled, pair.python):
        dec.stats = Tiny()
    tiny: Any = Tiny  # (mypy: a slot's name given a class attribute)
    tiny.frames, tiny.events = Big.__dict__["frames"], Big.__dict__["events"]
    for k in range(2, 6):
        got, want = _outcome(pair.compiled, _ticker(PERP, k)), _outcome(pair.python, _ticker(PERP, k))
        assert got == want, f"width {width}\n compiled {got}\n python   {want}"
        assert "DecoderFault" in got
        assert _counts(pair.compiled.stats) == _counts(pair.python.stats)


def _one_descriptor_for_both() -> None:
    """`events` the same slot as `frames` on the class: both counts go to that one slot, twice."""

    @attrs.define
    class Stats(DecoderStats):
        pass

    pair = _RefPair(INSTRUMENTS)
    for dec in (pair.compiled, pair.python):
        dec.stats = Stats()
    cls: Any = Stats
    cls.events = DecoderStats.__dict__["frames"]
    for k in range(4):
        pair.check(_ticker(PERP, k))
        assert _counts(pair.compiled.stats) == _counts(pair.python.stats)


def _long_names_kept(length: int) -> int:
    """The bytes still allocated after a decoder met frames of 20 instruments with names of
    `length` bytes (each kind of frame twice: routed, then through its remembered route) and was
    dropped."""
    dec = DeribitDecoder(InstrumentRegistry())
    for k in range(3):  # every path warmed up with short names: its own tables allocated
        for make in (_quote, _ticker, _trades):
            for _ in range(2):
                _outcome(dec, make(f"W{k}", 1))
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for k in range(20):
        name = f"{k:06d}" + "X" * (length - 6)
        for make in (_quote, _ticker, _trades):
            for _ in range(2):
                _outcome(dec, make(name, 1))
        dec._fast.clear()
    del dec
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return kept


def _long_names_not_retained() -> None:
    kept = _long_names_kept(200_000)
    assert kept < 1_000_000, f"{kept} bytes kept after 20 names of 200,000 bytes"


def _child(case: str) -> None:
    if case == "retain":
        _long_names_not_retained()
    elif case == "one slot":
        _one_descriptor_for_both()
    else:
        _foreign_descriptors(int(case))


@pytest.mark.parametrize("width", [3, 200_000])
def test_a_foreign_classs_slot_descriptor_on_the_stats_class_is_not_written(width: int) -> None:
    """In a child: a write out of the object's bounds may crash (width 200,000: ~1.6 MB past)."""
    run_child(__name__, str(width))


def test_one_slot_descriptor_for_both_counts_is_counted_as_python_counts_it() -> None:
    run_child(__name__, "one slot")


def test_a_stats_class_changed_while_frames_is_counted_counts_events_through_the_change() -> None:
    """`frames += 1` runs Python code (an int subclass's `__add__`) that makes `events` a
    property: `events` is then counted through it, as `decode` counts it."""

    @attrs.define
    class Stats(DecoderStats):
        pass

    seen: list[int] = []
    slot = DecoderStats.__dict__["events"]

    def setter(stats: Any, value: int) -> None:
        seen.append(value)
        slot.__set__(stats, value)

    class Hook(int):
        def __add__(self, other: Any) -> Hook:
            if "events" not in Stats.__dict__:
                cls: Any = Stats
                cls.events = property(slot.__get__, setter)
            return Hook(int(self) + other)

    pair = _RefPair(INSTRUMENTS)
    for dec in (pair.compiled, pair.python):
        dec.stats = Stats()
    for k in range(2):  # the class learnt, the route remembered
        pair.check(_ticker(PERP, k))
    saw: list[list[int]] = []
    for dec in (pair.compiled, pair.python):
        dec.stats.frames = Hook(dec.stats.frames)
        if "events" in Stats.__dict__:
            delattr(Stats, "events")
        seen.clear()
        dec.decode(_ticker(PERP, 2), 1)
        saw.append(list(seen))
    assert saw[0] == saw[1] == [3]
    assert _counts(pair.compiled.stats) == _counts(pair.python.stats)


@pytest.mark.parametrize("name", ["frames", "events"])
@pytest.mark.parametrize("make", [_ticker, _quote])
def test_a_failure_counting_the_stats_is_the_guarded_decodes_fault(name: str, make: Any) -> None:
    """A count that cannot be added to: the entry raises what the guarded decode raises (a
    `DecoderFault` caused by the TypeError), counts `malformed` and invalidates the books."""
    pair = _EntryPair()
    pair.check(INSTRUMENTS)
    for k in range(2):  # the route remembered: the entry calls the whole-frame function itself
        pair.check(make(PERP, k))
    for dec in (pair.entry, pair.python):
        setattr(dec.stats, name, "x")
    outcome = pair.check(make(PERP, 2))
    assert outcome[0] == "raised"
    assert outcome[1][0] == "DecoderFault"
    assert outcome[1][3][0] == "TypeError"  # the cause
    assert pair.entry.stats.malformed == pair.python.stats.malformed == 1


def test_long_names_are_not_kept_by_the_caches() -> None:
    """A stream of long instrument names (a hostile one): the direct-mapped tables of names and
    memo keys keep none of them once the decoder is gone. In a child: a clean heap to measure."""
    run_child(__name__, "retain")
