"""The compiled decode entry (`_fast.decode`, what a compiled decoder's `decode` runs; issue 17)
against the guarded Python `decode` it stands for (`codec._DECODE`, the class's function as
written, on a second compiled decoder): the same events, stats, exceptions (type, message, cause, a
`DecoderFault`'s `error_type` and `books`) and decoder state, on real captures, the bench's frames,
the bundled sample's first thousands, whole-frame functions that raise, and hostile mutations (in
a child process: a crash fails the test instead of killing the session)."""

from __future__ import annotations

import contextlib
import copy
import itertools
import os
import sys
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.connectors.deribit._compare import CHANGE, INSTRUMENTS, run_child
from tests.connectors.deribit._compare import QUOTE_DATA as QUOTE
from tests.support.profiled import python_calls
from tests.support.samples import DERIBIT_SAMPLE, NO_DERIBIT_SAMPLE
from tradingd.connectors.deribit import codec
from tradingd.connectors.deribit.codec import DeribitDecoder
from tradingd.engine import MalformedFrame
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.venue.plugins import MAX_NESTING, DecoderFault

try:
    from tradingd.connectors.deribit import _fast
except ImportError:  # not built: nothing to compare
    _fast = None  # type: ignore[assignment]

pytestmark = pytest.mark.skipif(_fast is None, reason="the compiled Deribit path (_fast.c) was not built")

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "deribit"
SAMPLE = DERIBIT_SAMPLE
T_LOCAL = 1_700_000_000_123_456_789
PREFIX = b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"'
PERP = "BTC-PERPETUAL"
SNAPSHOT = {
    "type": "snapshot",
    "timestamp": 1_700_000_000_000,
    "instrument_name": PERP,
    "change_id": 10,
    "bids": [["new", 42500.0, 10.0], ["new", 42499.5, 20.0]],
    "asks": [["new", 42501.0, 40.0], ["new", 42501.5, 50.0]],
}


def _frame(channel: str, data: Any) -> bytes:
    return PREFIX + channel.encode() + b'","data":' + orjson.dumps(data) + b"}}"


BOOK = f"book.{PERP}.100ms"


def _exc(exc: BaseException | None) -> Any:
    if exc is None:
        return None
    extra = (exc.error_type, exc.books) if isinstance(exc, DecoderFault) else ()
    return (type(exc).__name__, str(exc), extra, _exc(exc.__cause__), exc.__suppress_context__)


def _state(dec: DeribitDecoder) -> str:
    """Everything a frame may change (repr: NaN, -0.0 and dict order included)."""

    def book(b: Any) -> Any:
        return (b.bids, b.asks, b.best_bid_ticks, b.best_ask_ticks, b.sequence, b.valid, b.quantum)

    return repr(
        (
            {k: book(v) for k, v in dec._books.items()},
            {k: book(v) for k, v in dec._grouped.items()},
            dec._states,
            dec._funding,
            dec._accrual,
            attrs.asdict(dec.stats),
            dec.last_unknown_channel,
            list(dec._fast),
        )
    )


class _Pair:
    """Two compiled decoders: `entry` decodes through the C entry (a plain call, as every caller
    writes it: the class's `decode`, `_fast.method`'s, runs it), `python` through the guarded
    Python `decode` (`codec._DECODE`)."""

    def __init__(self) -> None:
        self.entry = DeribitDecoder(InstrumentRegistry())
        self.python = DeribitDecoder(InstrumentRegistry())

    def _outcome(self, decode: Any, frame: Any) -> Any:
        try:
            return ("events", repr(decode(frame, T_LOCAL)))
        except BaseException as exc:  # everything the decoder lets through, compared
            return ("raised", _exc(exc))

    def check(self, frame: Any) -> Any:
        got = self._outcome(lambda f, ts: self.entry.decode(f, ts), frame)
        want = self._outcome(lambda f, ts: codec._DECODE(self.python, f, ts), frame)
        assert got == want, f"{frame!r}\n entry  {got}\n python {want}"
        assert _state(self.entry) == _state(self.python), frame
        return got


def test_a_compiled_decoder_decodes_through_the_entry_and_the_reference_does_not() -> None:
    """A frame whose route is known: in C on a compiled decoder (the Python decode's body never
    runs), in the Python decode on the reference; plainly, bound, or through the class."""
    assert codec._ENTRY is _fast.decode
    body = codec._DECODE.__wrapped__.__code__  # type: ignore[attr-defined]
    frame = _frame(f"quote.{PERP}", QUOTE)
    for compiled in (True, False):
        dec = DeribitDecoder(InstrumentRegistry(), compiled=compiled)
        dec.decode(frame, T_LOCAL)  # its route learnt
        bound = dec.decode
        for call in (lambda: dec.decode(frame, T_LOCAL), lambda: bound(frame, T_LOCAL)):  # noqa: B023
            assert (body in python_calls(call)[1]) is not compiled
        assert (body in python_calls(lambda: DeribitDecoder.decode(dec, frame, T_LOCAL))[1]) is not compiled  # noqa: B023
        assert "decode" not in vars(dec)


def test_a_replaced_decode_is_the_one_that_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A subclass's or a test's `decode` (tests/store/test_evcache.py tampers through it) is not
    shadowed by the entry."""
    seen: list[bytes] = []

    class Sub(DeribitDecoder):
        def decode(self, frame: Any, ts_local: int) -> list[Any]:
            seen.append(frame)
            return []

    sub = Sub(InstrumentRegistry())
    assert sub.decode(_frame(BOOK, SNAPSHOT), T_LOCAL) == [] and len(seen) == 1

    def tampering(self: DeribitDecoder, frame: Any, ts_local: int) -> list[Any]:
        seen.append(frame)
        return []

    built = DeribitDecoder(InstrumentRegistry())  # before the patch: it reaches this one too
    monkeypatch.setattr(DeribitDecoder, "decode", tampering)
    dec = DeribitDecoder(InstrumentRegistry())
    assert dec.decode(_frame(BOOK, SNAPSHOT), T_LOCAL) == [] and len(seen) == 2
    assert built.decode(_frame(BOOK, SNAPSHOT), T_LOCAL) == [] and len(seen) == 3
    monkeypatch.undo()  # the entry again, for both
    assert built.decode(_frame(BOOK, SNAPSHOT), T_LOCAL) and dec.decode(_frame(BOOK, SNAPSHOT), T_LOCAL)
    assert len(seen) == 3


def test_frames_of_every_kind_decode_as_the_guarded_decode() -> None:
    pair = _Pair()
    frames = [
        INSTRUMENTS,
        _frame(BOOK, CHANGE),  # before any snapshot: ignored
        _frame(BOOK, SNAPSHOT),
        _frame(BOOK, CHANGE),
        _frame(BOOK, CHANGE),  # a gap
        _frame(BOOK, SNAPSHOT),
        _frame(f"quote.{PERP}", QUOTE),
        _frame(f"quote.{PERP}", {**QUOTE, "best_bid_price": 42600.0}),  # crossed: refused
        _frame("unknown.channel", {}),
        PREFIX + b'book.X.100ms","data":' + b"[" * (MAX_NESTING + 1) + b"]" * (MAX_NESTING + 1) + b"}}",
        PREFIX + b"book.no-quote",
        PREFIX,
        PREFIX[:-1],
        b"",
        b"{}",
        b"not json",
        b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}',
    ]
    for frame in frames + frames:
        for form in (frame, bytearray(frame), memoryview(frame)):
            pair.check(form)
        try:
            text = frame.decode()
        except UnicodeDecodeError:
            continue
        pair.check(text)
    for path in sorted(FIXTURES.glob("ws_*.json")):
        raw = path.read_bytes()
        for frame in (raw, raw.strip(), orjson.dumps(orjson.loads(raw))):
            pair.check(frame)


def test_the_bench_frames_decode_as_the_guarded_decode() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import bench_nautilus as bn
    finally:
        sys.path.remove(str(ROOT / "bench"))
    for frames in (bn.l2_frames(2_000), bn.quote_frames(1_000)):
        pair = _Pair()
        for _, frame in frames:
            pair.check(frame)
        assert pair.entry.stats.frames == len(frames)


@pytest.mark.skipif(not SAMPLE.exists(), reason=NO_DERIBIT_SAMPLE)
def test_the_bundled_samples_frames_decode_as_the_guarded_decode() -> None:
    from tradingd.engine.store import RecordingReader

    pair = _Pair()
    n = int(os.environ.get("FRAMES_SAMPLE", "20000"))
    for _, frame in itertools.islice(RecordingReader(SAMPLE), n):
        pair.check(frame)
    assert pair.entry.stats.events > n // 2


# -- a whole-frame function that raises ---------------------------------------------------------


class _Stop(BaseException):
    """Not an `Exception`: neither `decode` nor its guard counts or wraps it."""


def _raising(kind: str, changes_book: bool) -> Any:
    def whole(decoder: DeribitDecoder, frame: bytes, ts_local: int) -> Any:
        if changes_book:
            book = decoder._books[PERP]
            book.bids[book.to_ticks(42500.0)] = 99.0
        if kind == "malformed":
            raise MalformedFrame("bad level", venue="deribit", instrument=PERP)
        if kind == "value":
            raise ValueError("x" * 500)  # the fault's text is cut
        if kind == "stop":
            raise _Stop("stop")
        raise KeyError(kind)

    return whole


@pytest.mark.parametrize("kind", ["malformed", "value", "key", "stop"])
@pytest.mark.parametrize("changes_book", [False, True])
@pytest.mark.parametrize("deep", [False, True])
def test_a_raise_is_the_guarded_decodes_outcome(
    monkeypatch: pytest.MonkeyPatch, kind: str, changes_book: bool, deep: bool
) -> None:
    """Counts, the exception's type, text and cause, the books invalidated (DecoderFault): as the
    guarded decode; a frame too deep for the guard (a function may raise mid-read, before any
    change) is refused as the guard refuses it."""
    pair = _Pair()
    for frame in (INSTRUMENTS, _frame(f"book.{PERP}.raw", SNAPSHOT)):  # the same book, the real function
        pair.check(frame)
    monkeypatch.setitem(
        codec._WHOLE_FRAME, DeribitDecoder._on_book, _raising(kind, changes_book and not deep)
    )
    frame = _frame(BOOK, SNAPSHOT)
    pair.check(frame)  # the route not remembered yet: the Python decode's, both sides
    pair.check(_frame(f"book.{PERP}.raw", SNAPSHOT))  # a valid book again (the fault invalidates it)
    if deep:
        nest = b"[" * (MAX_NESTING * 5) + b"]" * (MAX_NESTING * 5)  # past SHORT_FRAME: the guard looks
        frame = frame[:-3] + b',"x":' + nest + b"}}}"
    outcome = pair.check(frame)  # the route remembered: the entry calls the function itself
    assert outcome[0] == "raised"
    name = outcome[1][0]
    if deep:
        assert name == "MalformedFrame" and "nested deeper" in outcome[1][1]
    else:
        assert name == {"malformed": "MalformedFrame", "stop": "_Stop"}.get(kind, "DecoderFault")
    pair.check(_frame(BOOK, CHANGE))  # what follows: the same too


def test_a_function_returning_something_odd_is_treated_as_decode_treats_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A list subclass or a tuple: counted by its length as `decode` counts it."""
    answers: list[Any] = [("a", "b"), ["c"]]

    def whole(decoder: Any, frame: bytes, ts_local: int) -> Any:
        return answers[0]

    monkeypatch.setitem(codec._WHOLE_FRAME, DeribitDecoder._on_quote, whole)
    pair = _Pair()
    quote = _frame(f"quote.{PERP}", QUOTE)
    pair.check(quote)
    pair.check(quote)
    answers[0] = 5  # no length: a fault, counted as decode's
    pair.check(quote)


# -- hostile mutations (hypothesis, in a child process) -----------------------------------------


def _bases() -> list[bytes]:
    from tests.connectors.deribit.test_deribit_frames_compiled import _bases as ticker_bases

    return [
        _frame(BOOK, CHANGE),
        _frame(BOOK, {**SNAPSHOT, "change_id": 11}),
        _frame(f"quote.{PERP}", QUOTE),
        *ticker_bases()[:60],
    ]


@st.composite
def _hostile(draw: st.DrawFn, bases: list[bytes]) -> bytes:
    frame = draw(st.sampled_from(bases))
    kind = draw(st.sampled_from(["flip", "cut", "insert", "channel", "none"]))
    if kind == "cut":
        return frame[: draw(st.integers(0, len(frame)))]
    if kind == "channel":  # the sniff's own bytes: the prefix and the channel's end
        at = draw(st.integers(0, min(len(frame), len(PREFIX) + 30)))
        return frame[:at] + draw(st.sampled_from([b"", b'"', b"\\", b".", b"\xff"])) + frame[at + 1 :]
    if kind == "none":
        return frame
    at = draw(st.integers(0, len(frame)))
    junk = draw(
        st.sampled_from([b'"', b"\\", b"{", b"[", b"]", b"}", b",", b" ", b"\x00"]) | st.binary(max_size=2)
    )
    return frame[:at] + junk + frame[at + (kind == "flip") :]


def _hostile_frames_decode_as_the_guarded_decode() -> None:
    bases = _bases()
    pair = _Pair()
    for frame in (INSTRUMENTS, _frame(BOOK, SNAPSHOT), *bases):
        pair.check(frame)

    @settings(
        max_examples=int(os.environ.get("CODEC_EXAMPLES", "1500")),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(frame=_hostile(bases), snapshot=st.booleans())
    def prop(frame: bytes, snapshot: bool) -> None:
        pair.check(frame)
        if snapshot:  # the books valid again for the next change
            pair.check(_frame(BOOK, {**SNAPSHOT, "change_id": 10}))

    prop()


def _child(case: str) -> None:
    {"hostile": _hostile_frames_decode_as_the_guarded_decode}[case]()


def test_hostile_frames_decode_as_the_guarded_decode() -> None:
    run_child(__name__, "hostile")


# -- the scanner shared by _fast.c and _frames.c (`_json.h`) --------------------------------------


@pytest.mark.parametrize(
    "channel",
    ["ticker..100ms", "ticker.BTC-PERPETUAL.", "trades..100ms", "trades.future..100ms", "trades.future.BTC."],
)
def test_a_channel_with_an_empty_part_is_refused_by_every_function(channel: str) -> None:
    """The stricter of the two scanners' channel rules (`_frames` took an empty part, `_fast`
    refused it): None from the function, and the reference's outcome through `decode`."""
    from tests.connectors.deribit.test_deribit_frames_compiled import _real_frames
    from tradingd.connectors.deribit import _frames

    kind = channel.split(".")[0]
    base = next(f for f in _real_frames() if f.startswith(PREFIX + kind.encode() + b".") and b"\n" not in f)
    rest = base.partition(b'","data":')[2]
    frame = PREFIX + channel.encode() + b'","data":' + rest
    fn = _frames.ticker_frame if kind == "ticker" else _frames.trades_frame
    dec = DeribitDecoder(InstrumentRegistry())
    for warm in _real_frames():  # the instruments' states known
        with contextlib.suppress(MalformedFrame):
            dec.decode(warm, T_LOCAL)
    assert fn(dec, base, T_LOCAL) is not None  # the frame as sent is taken
    assert fn(dec, frame, T_LOCAL) is None
    pair = _Pair()
    pair.check(frame)
    pair.check(frame)


@pytest.mark.parametrize("how", ["copy", "deepcopy"])
def test_a_copied_decoder_decodes_into_its_own_state(how: str) -> None:
    """The C entry runs on the instance `decode` is called on (the class's descriptor, nothing
    stored on the instance): a copy's decode changes the copy's books and stats, never the
    original's."""
    dec = DeribitDecoder(InstrumentRegistry())
    if not dec.compiled:
        pytest.skip("the compiled path is not built")
    dec.decode(INSTRUMENTS, T_LOCAL)
    twin = copy.copy(dec) if how == "copy" else copy.deepcopy(dec)
    twin._books = {}  # a shallow copy shares the containers: its own ones
    twin.stats = copy.copy(dec.stats)
    frames_before = dec.stats.frames
    twin.decode(_frame(BOOK, SNAPSHOT), T_LOCAL)
    assert twin.decode.__self__ is twin  # type: ignore[attr-defined]
    assert PERP in twin._books and PERP not in dec._books
    assert dec.stats.frames == frames_before and twin.stats.frames == frames_before + 1
