"""The compiled whole-frame functions (`codec._WHOLE_FRAME`, issue 17) against the reference.

The hook: `decode` tries a channel's whole-frame function first on a compiled decoder (bytes
frames only), counts the frame and its events when it returns a list, and goes on to the msgspec
route (then the reference) when it returns None; a decoder built with `compiled=False` never
calls it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.connectors.deribit._compare import CHANGE, HYPOTHESIS, INSTRUMENTS, QUOTE_DATA, run_child
from tradingd.connectors.deribit import codec
from tradingd.connectors.deribit.codec import DeribitDecoder
from tradingd.engine import MalformedFrame
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.model.book import OrderBook

try:
    from tradingd.connectors.deribit import _fast
except ImportError:  # not built: the compiled tests below skip (the hook's tests above still run)
    _fast = None  # type: ignore[assignment]

T_LOCAL = 1_700_000_000_123_456_789
PREFIX = b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"'
QUOTE = (
    PREFIX + b'quote.BTC-PERPETUAL","data":{"timestamp":1700000000000,"instrument_name":"BTC-PERPETUAL",'
    b'"best_bid_price":42500.0,"best_bid_amount":10.0,"best_ask_price":42500.5,"best_ask_amount":20.0}}}'
)


def _stats(dec: DeribitDecoder) -> tuple[int, int, int]:
    return dec.stats.frames, dec.stats.events, dec.stats.malformed


def test_the_hook_takes_a_list_counts_it_and_goes_on_after_none(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, bytes, int]] = []
    answer: list[Any] = [None]

    def whole(decoder: Any, frame: bytes, ts_local: int) -> Any:
        calls.append((decoder, frame, ts_local))
        return answer[0]

    monkeypatch.setitem(codec._WHOLE_FRAME, DeribitDecoder._on_quote, whole)
    ref = DeribitDecoder(InstrumentRegistry(), compiled=False)
    dec = DeribitDecoder(InstrumentRegistry())
    if not dec.compiled:
        pytest.skip("the compiled path is not built")
    want = ref.decode(QUOTE, T_LOCAL)
    assert dec.decode(QUOTE, T_LOCAL) == want  # None: the msgspec route's events
    assert calls == [(dec, QUOTE, T_LOCAL)] and _stats(dec) == _stats(ref) == (1, 1, 0)
    answer[0] = ["a", "b"]
    assert dec.decode(QUOTE, T_LOCAL) == answer[0]
    assert _stats(dec) == (2, 3, 0)
    # a str frame, and a decoder built with compiled=False, never reach it
    assert dec.decode(QUOTE.decode(), T_LOCAL) == want
    assert ref.decode(QUOTE, T_LOCAL) == want
    assert len(calls) == 2


def test_the_hook_counts_a_raise_as_the_body_does(monkeypatch: pytest.MonkeyPatch) -> None:
    def malformed(decoder: Any, frame: bytes, ts_local: int) -> Any:
        raise MalformedFrame("bad", venue="deribit")

    monkeypatch.setitem(codec._WHOLE_FRAME, DeribitDecoder._on_quote, malformed)
    dec = DeribitDecoder(InstrumentRegistry())
    if not dec.compiled:
        pytest.skip("the compiled path is not built")
    with pytest.raises(MalformedFrame):
        dec.decode(QUOTE, T_LOCAL)
    assert _stats(dec) == (1, 0, 1)


# -- the compiled functions (`_fast.book_frame`, `_fast.quote_frame`) against the reference ------
# A decoder built with `compiled=False` is the reference; the compiled decoder takes the whole-frame
# path. Compared: every outcome (events by repr, so -0.0 is not 0.0; or the exception's type and
# text), the stats and the whole decoder state, after every frame. Hostile frames run in a child
# process (`_run_child`): a crash fails the test instead of killing the session.

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "deribit"
PERP = "BTC-PERPETUAL"
SNAPSHOT = {
    "type": "snapshot",
    "timestamp": 1_700_000_000_000,
    "instrument_name": PERP,
    "change_id": 10,
    "bids": [["new", 42500.0, 10.0], ["new", 42499.5, 20.0], ["new", 42499.0, 30.0]],
    "asks": [["new", 42501.0, 40.0], ["new", 42501.5, 50.0], ["new", 42502.0, 60.0]],
}


def _frame(channel: str, data: Any) -> bytes:
    return PREFIX + channel.encode() + b'","data":' + orjson.dumps(data) + b"}}"


BOOK_CHANNEL = f"book.{PERP}.100ms"
QUOTE_CHANNEL = f"quote.{PERP}"


def _state(dec: DeribitDecoder) -> str:
    """Everything a frame may change, as a text (repr: NaN, -0.0 and dict order included)."""
    books = {
        k: (b.bids, b.asks, b.best_bid_ticks, b.best_ask_ticks, b.sequence, b.valid, b.quantum)
        for k, b in [*dec._books.items(), *(("g:" + k, b) for k, b in dec._grouped.items())]
    }
    return repr((books, dec._states, dec._funding, dec._accrual, dec.stats, dec.gapped_books))


def _outcome(dec: DeribitDecoder, frame: bytes) -> str:
    try:
        return repr(("events", dec.decode(frame, T_LOCAL)))
    except Exception as exc:  # MalformedFrame or the decoder's fault: the same on both paths
        return repr(("raised", type(exc).__name__, str(exc)))


def _pair(*setup: bytes) -> tuple[DeribitDecoder, DeribitDecoder]:
    """A compiled decoder and the reference, each given `setup` frames."""
    if _fast is None:
        pytest.skip("the compiled Deribit path (connectors/deribit/_fast.c) was not built")
    compiled = DeribitDecoder(InstrumentRegistry())
    python = DeribitDecoder(InstrumentRegistry(), compiled=False)
    assert compiled.compiled and not python.compiled
    for frame in setup:
        assert _outcome(compiled, frame) == _outcome(python, frame)
    return compiled, python


def _same(compiled: DeribitDecoder, python: DeribitDecoder, frame: bytes) -> str:
    got, want = _outcome(compiled, frame), _outcome(python, frame)
    assert got == want, f"{frame!r}\n compiled {got}\n python   {want}"
    assert _state(compiled) == _state(python), frame
    return got


class _Taken:
    """Counts the frames the whole-frame functions took (returned a list for)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.lists = 0
        self.nones = 0
        for handler, fn in list(codec._WHOLE_FRAME.items()):
            monkeypatch.setitem(codec._WHOLE_FRAME, handler, self._wrap(fn))

    def _wrap(self, fn: Any) -> Any:
        def counted(decoder: Any, frame: bytes, ts_local: int) -> Any:
            out = fn(decoder, frame, ts_local)
            if out is None:
                self.nones += 1
            else:
                self.lists += 1
            return out

        return counted


def _compact(name: str) -> bytes:
    return orjson.dumps(orjson.loads((FIXTURES / name).read_bytes()))  # key order kept


def test_the_real_captures_take_the_whole_frame_path_and_decode_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    taken = _Taken(monkeypatch)
    snapshot, delta, quote = (
        _compact(n) for n in ("ws_book_snapshot.json", "ws_book_delta.json", "ws_quote.json")
    )
    compiled, python = _pair(INSTRUMENTS)
    _same(compiled, python, snapshot)  # the first snapshot: the Python path's (None)
    assert (taken.lists, taken.nones) == (0, 1)
    _same(compiled, python, delta)
    _same(compiled, python, snapshot)  # a snapshot of a valid book
    _same(compiled, python, quote)
    assert (taken.lists, taken.nones) == (3, 1)


class _Bytes(bytes):
    """A frame of a bytes subclass (a transport's own type): `decode`'s route asks `isinstance`."""


def test_a_bytes_subclass_frame_decodes_as_the_reference() -> None:
    """Every real capture as a bytes subclass: the compiled decoder gives the reference's events
    and state (the book and quote functions refused the frame with a TypeError, the decoder's
    fault, its books invalidated), and the whole-frame functions leave it to the Python path."""
    compiled, python = _pair(INSTRUMENTS)
    names = sorted(p.name for p in FIXTURES.glob("ws_*.json"))
    for name in [*names, *names]:  # the second time: books valid, instruments' states known
        frame = _Bytes(_compact(name))
        assert not _same(compiled, python, frame).startswith("('raised', 'DecoderFault'"), name
    assert compiled.stats.malformed == 0 and all(b.valid for b in compiled._books.values())
    other: Any = bytearray(QUOTE)
    for fn in (_fast.book_frame, _fast.quote_frame):
        assert fn(compiled, _Bytes(_compact("ws_book_delta.json")), T_LOCAL) is None
        assert fn(compiled, other, T_LOCAL) is None


def _bench_frames() -> tuple[list[tuple[int, bytes]], list[tuple[int, bytes]]]:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import bench_nautilus as bn
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return bn.l2_frames(2_500), bn.quote_frames(2_000)


def test_the_bench_frames_decode_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = _Taken(monkeypatch)
    l2, quotes = _bench_frames()
    for frames in (l2, quotes):
        compiled, python = _pair()
        for ts, frame in frames:
            got, want = compiled.decode(frame, ts), python.decode(frame, ts)
            assert repr(got) == repr(want), frame
        assert _state(compiled) == _state(python)
    # every frame but the instruments' and the first snapshot
    assert (taken.lists, taken.nones) == (2_500 - 1 + 2_000, 1)


# -- what the functions refuse: None, and nothing changed --------------------------------------


def _set_up() -> list[bytes]:
    return [INSTRUMENTS, _frame(BOOK_CHANNEL, SNAPSHOT)]


def _refused(frame: bytes, dec: DeribitDecoder | None = None) -> None:
    if dec is None:
        dec, _ = _pair(*_set_up())
    fn = _fast.quote_frame if b'"quote.' in frame[:80] else _fast.book_frame
    before = _state(dec)
    assert fn(dec, frame, T_LOCAL) is None
    assert _state(dec) == before


def _with(data: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = {**data, **changes}
    return {k: v for k, v in out.items() if v is not _DROP}


_DROP: Any = object()
REFUSED = {
    "gap": _frame(BOOK_CHANNEL, _with(CHANGE, prev_change_id=9)),
    "prev null": _frame(BOOK_CHANNEL, _with(CHANGE, prev_change_id=None)),
    "prev absent": _frame(BOOK_CHANNEL, _with(CHANGE, prev_change_id=_DROP)),
    "no such book": _frame(BOOK_CHANNEL, _with(CHANGE, instrument_name="ETH-PERPETUAL")),
    "unknown member": _frame(BOOK_CHANNEL, {**CHANGE, "extra": 1}),
    "missing member": _frame(BOOK_CHANNEL, _with(CHANGE, asks=_DROP)),
    "grouped channel": _frame(f"book.{PERP}.none.10.100ms", CHANGE),
    "float change id": _frame(BOOK_CHANNEL, CHANGE).replace(b'"change_id":11', b'"change_id":11.0'),
    "exponent timestamp": _frame(BOOK_CHANNEL, CHANGE).replace(b"1700000000100", b"1.7000000001e12"),
    "timestamp past int64 ns": _frame(BOOK_CHANNEL, _with(CHANGE, timestamp=9_223_372_036_855)),
    "price 2**53": _frame(BOOK_CHANNEL, _with(CHANGE, asks=[["new", 2.0**53, 1.0]])),
    "negative amount": _frame(BOOK_CHANNEL, _with(CHANGE, asks=[["new", 42503.0, -1.0]])),
    "unknown action": _frame(BOOK_CHANNEL, _with(CHANGE, asks=[["add", 42503.0, 1.0]])),
    "four items": _frame(BOOK_CHANNEL, _with(CHANGE, asks=[["new", 42503.0, 1.0, 1.0]])),
    "escape": _frame(BOOK_CHANNEL, CHANGE).replace(b"BTC-PERPETUAL", b"BTC\\u002dPERPETUAL", 2),
    "non-ascii name": _frame(BOOK_CHANNEL, _with(CHANGE, instrument_name="BTC-PERPÉTUAL")),
    "whitespace": _frame(BOOK_CHANNEL, CHANGE).replace(b'"bids":', b'"bids": '),
    "trailing byte": _frame(BOOK_CHANNEL, CHANGE) + b" ",
    "NaN": _frame(BOOK_CHANNEL, CHANGE).replace(b"45.0", b"NaN"),
    "leading zero": _frame(BOOK_CHANNEL, CHANGE).replace(b"45.0", b"045.0"),
    "repeated member": _frame(BOOK_CHANNEL, CHANGE).replace(b'{"type"', b'{"asks":[],"type"'),
    "quote bid above ask": _frame(QUOTE_CHANNEL, _with(QUOTE_DATA, best_bid_price=42501.0)),
    "quote unknown member": _frame(QUOTE_CHANNEL, {**QUOTE_DATA, "x": None}),
    "quote no timestamp": _frame(QUOTE_CHANNEL, _with(QUOTE_DATA, timestamp=_DROP)),
    "quote string price": _frame(QUOTE_CHANNEL, _with(QUOTE_DATA, best_bid_price="1")),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_frame_not_of_the_common_shape_is_refused_unchanged(case: str) -> None:
    _refused(REFUSED[case])


def test_book_states_not_the_common_case_are_refused_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    change, snapshot = _frame(BOOK_CHANNEL, CHANGE), _frame(BOOK_CHANNEL, SNAPSHOT)
    fresh, _ = _pair(INSTRUMENTS)
    _refused(snapshot, fresh)  # the first snapshot
    _refused(change, fresh)  # a change before any snapshot
    dec, _ = _pair(*_set_up())
    dec.invalidate_books()
    _refused(snapshot, dec)  # a resync
    _refused(change, dec)
    dec, _ = _pair(*_set_up())

    class _Sub(OrderBook):
        __slots__ = ()

    sub = _Sub(0.5)
    sub.bids.update(dec._books[PERP].bids)
    sub.sequence = 10
    dec._books[PERP] = sub
    _refused(change, dec)  # not the exact OrderBook
    dec, _ = _pair(*_set_up())
    dec._books[PERP].sequence = "10"
    _refused(change, dec)  # a sequence not an int
    dec, _ = _pair(*_set_up())
    monkeypatch.setattr(codec, "_apply", codec._apply)  # the same function: taken
    assert _fast.book_frame(dec, change, T_LOCAL) is not None
    dec, _ = _pair(*_set_up())
    monkeypatch.setattr(codec, "_apply", lambda *a: codec.__dict__["_apply"])
    _refused(change, dec)  # an injected fault's `_apply`: the msgspec route calls it


def test_a_crossing_change_is_the_reference_gap() -> None:
    compiled, python = _pair(*_set_up())
    out = _same(compiled, python, _frame(BOOK_CHANNEL, _with(CHANGE, bids=[["new", 42501.0, 1.0]])))
    assert "crossed" in out and compiled.stats.gaps == 1


# -- numbers: what msgspec gives for `Price`, `Amount`, `Millis` and int fields ----------------

NUMBER_TEXT = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(2**64), 2**64).map(str),
    st.from_regex(r"-?(0|[1-9][0-9]{0,22})(\.[0-9]{1,22})?([eE][+-]?[0-9]{1,3})?", fullmatch=True),
    st.sampled_from(
        [
            "-0",
            "0",
            "-0.0",
            "0.0",
            "1e2",
            "1E+2",
            "1.0e-2",
            "9007199254740992",
            "9007199254740991",
            "9007199254740991.5",
            "-9007199254740991",
            "1e400",
            "-1e400",
            "4.9e-324",
            "2.5e-324",
            "NaN",
            "Infinity",
            "-Infinity",
            "01",
            "1.",
            ".5",
            "+1",
            "--1",
            "1e",
            "0x10",
            "1_0",
            "",
            "true",
            "null",
            '"1"',
            "[1]",
            "1.0000000000000000000000001",
            "0.1e-400",
            "123456789012345678901234567890",
            "9223372036854",
            "9223372036855",
            "9223372036854775808",
        ]
    ),
)


def _number_frames(text: str) -> list[bytes]:
    """A book change and a quote with `text` in each of their number fields, one at a time."""
    t = text.encode()
    out = []
    change = _frame(BOOK_CHANNEL, CHANGE)
    for old in (b"42498.5", b"70.0", b'"change_id":11', b'"prev_change_id":10', b"1700000000100"):
        new = old.split(b":")[0] + b":" + t if old.startswith(b'"') else t
        out.append(change.replace(old, new, 1))
    quote = _frame(QUOTE_CHANNEL, QUOTE_DATA)
    for old in (b"42500.0", b"10.0", b"42500.5", b"20.0", b"1700000000200"):
        out.append(quote.replace(old, t, 1))
    return out


@HYPOTHESIS
@given(text=NUMBER_TEXT)
def _numbers_read_as_msgspec_reads_them(text: str) -> None:
    for frame in _number_frames(text):
        compiled, python = _pair(*_set_up())
        _same(compiled, python, frame)


# -- hostile mutations --------------------------------------------------------------------------

BASES = [
    _frame(BOOK_CHANNEL, CHANGE),
    _frame(BOOK_CHANNEL, _with(SNAPSHOT, change_id=11)),
    _frame(QUOTE_CHANNEL, QUOTE_DATA),
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    base = draw(st.sampled_from(BASES))
    kind = draw(
        st.sampled_from(["flip", "truncate", "insert", "reorder", "duplicate", "escape", "nest", "number"])
    )
    head, _, rest = base.partition(b'"data":')
    data_text = rest[:-2]
    if kind == "flip":
        i = draw(st.integers(0, len(base) - 1))
        return base[:i] + bytes([draw(st.integers(0, 255))]) + base[i + 1 :]
    if kind == "truncate":
        return base[: draw(st.integers(0, len(base) - 1))]
    if kind == "insert":
        i = draw(st.integers(0, len(base)))
        return (
            base[:i]
            + draw(st.sampled_from([b" ", b"\n", b",", b"{", b"]", b'"', b"\\", b"\x00", b"\xff"]))
            + base[i:]
        )
    data = orjson.loads(data_text)
    if kind == "reorder":
        keys = draw(st.permutations(list(data)))
        return head + b'"data":' + orjson.dumps({k: data[k] for k in keys}) + b"}}"
    if kind == "duplicate":
        key = draw(st.sampled_from(list(data)))
        value = draw(st.sampled_from([data[key], None, 1, "x", []]))
        member = orjson.dumps({key: value})[1:-1]
        at = draw(st.booleans())
        body = data_text[:1] + member + b"," + data_text[1:] if at else data_text[:-1] + b"," + member + b"}"
        return head + b'"data":' + body + b"}}"
    if kind == "escape":
        targets = [
            b"BTC-PERPETUAL",
            b'"change"',
            b'"new"',
            b'"type"',
            b'"bids"',
            b'"best_bid_price"',
            b"quote.",
        ]
        target = draw(st.sampled_from([t for t in targets if t in base]))
        i = draw(st.integers(0, len(target) - 1))
        escaped = (
            target[:i] + b"\\u%04x" % target[i] + target[i + 1 :] if target[i : i + 1] != b'"' else target
        )
        return base.replace(target, escaped, 1)
    if kind == "nest":
        depth = draw(st.integers(1, 300))
        return head + b'"data":' + data_text[:-1] + b',"x":' + b"[" * depth + b"]" * depth + b"}}}"
    text = draw(NUMBER_TEXT).encode()
    numbers = [
        m for m in (b"42498.5", b"70.0", b"45.0", b"42500.0", b"10.0", b"20.0", b"42501.0") if m in base
    ]
    return base.replace(draw(st.sampled_from(numbers)), text, 1)


@HYPOTHESIS
@given(frame=mutated())
def _hostile_frames_decode_the_same(frame: bytes) -> None:
    compiled, python = _pair(*_set_up())
    _same(compiled, python, frame)
    _same(compiled, python, _frame(BOOK_CHANNEL, _with(CHANGE, change_id=12, prev_change_id=11)))
    direct, _ = _pair(*_set_up())
    fn = _fast.quote_frame if b'"quote.' in frame[:80] else _fast.book_frame
    before = _state(direct)
    try:
        out = fn(direct, frame, T_LOCAL)
    except Exception:  # only where the reference raises the same (compared above)
        return
    if out is None:
        assert _state(direct) == before


def _child(case: str) -> None:
    {"numbers": _numbers_read_as_msgspec_reads_them, "hostile": _hostile_frames_decode_the_same}[case]()


def _run_child(case: str) -> None:
    if _fast is None:
        pytest.skip("the compiled Deribit path (connectors/deribit/_fast.c) was not built")
    run_child(__name__, case)


_EXAMPLES = {k: v for k, v in os.environ.items() if k == "CODEC_EXAMPLES"}


def test_numbers_read_as_msgspec_reads_them() -> None:
    """Every number form in every number field of a book change and a quote (hypothesis), in a child."""
    _run_child("numbers")


def test_hostile_frames_decode_the_same_and_a_refusal_changes_nothing() -> None:
    """Byte flips, truncations, insertions, reordered and repeated members, escapes, deep nesting
    and odd numbers (hypothesis), in a child process."""
    _run_child("hostile")


@pytest.mark.parametrize("name", ["_top", "_ticker"])
def test_a_fault_injected_through_codec_reaches_quote_frame(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """`codec._top` or `codec._ticker` patched to raise (a test injecting a fault): `quote_frame`
    steps aside (None) and the compiled decoder fails on the frame as the reference does."""
    if _fast is None:
        pytest.skip("the compiled path is not built")
    ref = DeribitDecoder(InstrumentRegistry(), compiled=False)
    dec = DeribitDecoder(InstrumentRegistry())
    assert _fast.quote_frame(dec, QUOTE, T_LOCAL) is not None
    real = getattr(codec, name)

    def faulty(*args: Any) -> Any:
        raise ZeroDivisionError("an unforeseen handler bug")

    monkeypatch.setattr(codec, name, faulty)
    assert _fast.quote_frame(dec, QUOTE, T_LOCAL) is None
    outcomes = []
    for d in (dec, ref):
        try:
            d.decode(QUOTE, T_LOCAL)
        except Exception as exc:
            outcomes.append(type(exc).__name__)
    assert outcomes == ["DecoderFault", "DecoderFault"]
    monkeypatch.setattr(codec, name, real)
    assert _fast.quote_frame(dec, QUOTE, T_LOCAL) is not None


@pytest.mark.parametrize(
    "text",
    [b"1" * 100_000, b"1." + b"5" * 100_000, b"0." + b"0" * 100_000 + b"1", b"1e" + b"0" * 100_000 + b"2"],
    ids=["integer", "fraction", "fraction zeros", "exponent"],
)
def test_a_long_digit_run_is_refused_as_the_reference_does(text: bytes) -> None:
    """A number of 100k digits (`json_number` stops at MAX_NUMBER characters, inside each digit
    loop): the whole-frame functions refuse it, and the decoder's outcome is the reference's."""
    compiled, python = _pair(*_set_up())
    quote = _frame(QUOTE_CHANNEL, QUOTE_DATA).replace(b"10.0", text, 1)
    change = _frame(BOOK_CHANNEL, CHANGE).replace(b"70.0", text, 1)
    for frame in (quote, change):
        assert text in frame
        _refused(frame, compiled)
        _same(compiled, python, frame)
