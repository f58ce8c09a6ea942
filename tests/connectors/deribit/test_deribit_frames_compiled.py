"""The whole-frame ticker and trades functions (`connectors/deribit/_frames.c`, issue 17) against
the Python reference (a decoder built with `compiled=False`).

Each function either returns the very events the reference gives on the frame (compared by
`repr`, so that -0.0 and 0.0 differ) and changes nothing (the hook's caller counts the frame), or
returns None and changes nothing. It is called directly on a compiled decoder, then the frame is
decoded by that decoder (`decode`: the hook, then the msgspec route, then the reference) and by the
reference decoder, and the two outcomes and decoder states must be equal. On every ticker and
trades frame of the real captures (tests/fixtures/deribit), of the generator's stream and of the
first thousands of the bundled sample, and on hostile mutations (hypothesis: byte flips,
truncation, inserted bytes, reordered, duplicated and dropped members, escapes, odd and huge
numbers, NaN/Infinity text, null in every field, deep nesting), which run in a child process
(a crash fails the test instead of killing pytest).
"""

from __future__ import annotations

import functools
import itertools
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.connectors.deribit._compare import run_child
from tests.support.samples import DERIBIT_SAMPLE, NO_DERIBIT_SAMPLE
from tradingd.connectors.deribit import codec
from tradingd.connectors.deribit.codec import DeribitDecoder
from tradingd.engine import MalformedFrame
from tradingd.engine.model import InstrumentRegistry
from tradingd.simulators.deribit.generator import DeribitFeed

try:
    from tradingd.connectors.deribit import _frames
except ImportError:  # the install could not build it: the msgspec route runs (slower, the same)
    if os.environ.get("CI") == "true":
        raise  # pip install -e . builds it with gcc and Python's header: in CI it must be there
    pytest.skip(
        "the compiled Deribit frames (connectors/deribit/_frames.c) were not built: they need gcc"
        " and Python's header, then pip install -e .",
        allow_module_level=True,
    )

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "deribit"
SAMPLE = DERIBIT_SAMPLE
T_LOCAL = 1_700_000_000_123_456_789
PREFIX = b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"'
WHOLE = {b"ticker.": _frames.ticker_frame, b"trades.": _frames.trades_frame}


def _whole(frame: bytes) -> Any:
    """The function of the frame's channel, or None for another channel."""
    head = frame[len(PREFIX) : len(PREFIX) + 7]
    return WHOLE.get(head) if frame.startswith(PREFIX) else None


def _outcome(dec: DeribitDecoder, frame: bytes) -> Any:
    try:
        return ("events", repr(dec.decode(frame, T_LOCAL)))
    except MalformedFrame as exc:
        return ("malformed", str(exc))


def _state(dec: DeribitDecoder) -> Any:
    def book(b: Any) -> Any:
        return (dict(b.bids), dict(b.asks), b.sequence, b.valid, b.top())

    return repr(
        (
            {k: book(v) for k, v in dec._books.items()},
            {k: book(v) for k, v in dec._grouped.items()},
            dec._states,
            dec._funding,
            dec._accrual,
            dec.stats,
            dec.last_unknown_channel,
        )
    )


class _Pair:
    """A compiled decoder and the reference, fed the same frames; `taken` counts the frames the
    whole-frame function took (returned a list for)."""

    def __init__(self) -> None:
        self.fast = DeribitDecoder(InstrumentRegistry())
        self.ref = DeribitDecoder(InstrumentRegistry(), compiled=False)
        self.taken = 0
        self.seen = 0

    def check(self, frame: bytes) -> Any:
        whole = _whole(frame)
        direct = None
        if whole is not None:
            self.seen += 1
            before = _state(self.fast)
            direct = whole(self.fast, frame, T_LOCAL)
            assert _state(self.fast) == before, frame  # it never changes the decoder
        got = _outcome(self.fast, frame)
        want = _outcome(self.ref, frame)
        assert got == want, frame
        assert _state(self.fast) == _state(self.ref), frame
        if direct is not None:
            self.taken += 1
            assert ("events", repr(direct)) == want, frame
        return direct


def test_the_default_decoder_routes_tickers_and_trades_to_the_functions() -> None:
    assert codec._WHOLE_FRAME[DeribitDecoder._on_ticker] is _frames.ticker_frame
    assert codec._WHOLE_FRAME[DeribitDecoder._on_trades] is _frames.trades_frame
    dec = DeribitDecoder(InstrumentRegistry())
    for frame in _real_frames():
        dec.decode(frame, T_LOCAL)
    wholes = {r[3] for r in dec._fast.values() if r is not None}
    assert {_frames.ticker_frame, _frames.trades_frame} <= wholes


# -- real frames --------------------------------------------------------------------------------


def _fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes().strip()


# Deribit's own bytes, one line each (2020, 2022, 2026 captures): the fast path must take them.
REAL_LINES = [
    "ws_ticker_option_empty_bid_2026.json",
    "ws_ticker_option_expired_2020.json",
    "ws_ticker_option_no_quotes_2022.json",
]


def _real_frames() -> list[bytes]:
    """Every ticker and trades fixture: as written on disk, and compact as the venue sends it."""
    out = []
    for path in sorted([*FIXTURES.glob("ws_ticker*.json"), *FIXTURES.glob("ws_trades*.json")]):
        raw = path.read_bytes()
        out += [raw, raw.strip(), orjson.dumps(orjson.loads(raw))]
    return out


def test_every_real_ticker_and_trades_frame_decodes_as_the_reference() -> None:
    pair = _Pair()
    frames = _real_frames()
    for frame in frames + frames:  # the second time, every instrument's state is known
        pair.check(frame)
    assert pair.seen >= 2 * 2 * 6  # the compact frames, and the one-line captures as they are
    # the compact frames (and Deribit's own one-line captures) the second time round
    for name in REAL_LINES:
        assert pair.check(_fixture(name)) is not None, name
    for name in ("ws_ticker.json", "ws_trades.json", "ws_trades_option_combo.json"):
        assert pair.check(orjson.dumps(orjson.loads(_fixture(name)))) is not None, name


@functools.cache
def _generated(n: int) -> list[bytes]:
    feed = DeribitFeed.create(seed=11, start_ns=1_795_478_400_000_000_000)
    return [f for _, f in itertools.islice(feed.frames(1.0), n)]


def test_the_generators_stream_decodes_as_the_reference() -> None:
    """Option and perpetual tickers, trades (and the book frames between them, as context)."""
    pair = _Pair()
    for frame in _generated(6000):
        pair.check(frame)
    assert pair.seen > 2000 and pair.taken > pair.seen - 100


@functools.cache
def _sample(n: int) -> list[bytes]:
    from tradingd.engine.store import RecordingReader

    return [f for _, f in itertools.islice(RecordingReader(SAMPLE), n)]


@pytest.mark.skipif(not SAMPLE.exists(), reason=NO_DERIBIT_SAMPLE)
def test_the_bundled_samples_frames_decode_as_the_reference() -> None:
    pair = _Pair()
    for frame in _sample(int(os.environ.get("FRAMES_SAMPLE", "20000"))):
        pair.check(frame)
    # all but each instrument's first ticker (its state, first seen, is the Python path's)
    assert pair.seen > 8000 and pair.taken >= pair.seen - 40


# -- what the functions leave to the Python path ------------------------------------------------

PERP = "BTC-PERPETUAL"


def _ticker(**data: Any) -> bytes:
    base: dict[str, Any] = {
        "timestamp": 1_795_478_400_297,
        "state": "open",
        "instrument_name": PERP,
        "best_bid_price": 91277.5,
        "best_bid_amount": 46030.0,
        "best_ask_price": 91278.0,
        "best_ask_amount": 39120.0,
        "current_funding": 0.0001,
        "last_price": 91277.0,
        "mark_price": 91282.0,
        "index_price": 91254.46,
        "open_interest": 1155819530.0,
        "mark_iv": 67.55,
        "ask_iv": 69.59,
    }
    base.update(data)
    body = {k: v for k, v in base.items() if v is not ...}
    return PREFIX + b"ticker." + PERP.encode() + b'.100ms","data":' + orjson.dumps(body) + b"}}"


def test_state_changes_and_funding_are_left_to_the_python_path() -> None:
    pair = _Pair()
    assert pair.check(_ticker()) is None  # the instrument's first state
    assert pair.check(_ticker()) is not None
    assert pair.check(_ticker(state=None)) is not None  # no state: nothing to compare
    assert pair.check(_ticker(state=...)) is not None
    assert pair.check(_ticker(state="closed")) is None  # a change: a Status first
    assert pair.check(_ticker(state="closed")) is not None
    assert pair.check(_ticker(funding_timestamp=1_795_478_400_000)) is None  # replayed funding
    assert pair.check(_ticker(funding_timestamp=None)) is not None
    assert pair.check(_ticker(funding_accrues=True)) is None  # accrued funding
    assert pair.check(_ticker(funding_accrues=True, current_funding=None)) is not None
    assert pair.check(_ticker(funding_accrues=False)) is not None
    assert pair.check(_ticker(best_bid_price=91279.0)) is None  # bid above ask: the reference raises
    assert pair.check(_ticker(best_bid_amount=0.0, best_bid_price=99999.0)) is not None  # no bid
    assert pair.check(_ticker(last_price="undefined")) is not None
    assert pair.check(_ticker(last_price="defined")) is None


@pytest.mark.parametrize(
    ("name", "trades"),
    [("_top", False), ("_ticker", False), ("_greeks", False), ("_iv_learn", False), ("_trade", True)],
)
def test_a_fault_injected_through_codec_reaches_the_compiled_decoder(
    monkeypatch: pytest.MonkeyPatch, name: str, trades: bool
) -> None:
    """A test (tests/backtest/test_cache_equality.py) patches codec's functions to make a frame
    fail: the compiled decoder then fails on it as the reference does (the functions step aside)."""
    greeks = {"delta": 0.5, "gamma": 0.1, "vega": 3.5, "theta": -3.7}
    frame = orjson.dumps(orjson.loads(_fixture("ws_trades.json"))) if trades else _ticker(greeks=greeks)
    frame = frame.replace(b"67.55", b"67.555")  # an IV of 3 decimals: `_iv_learn`
    pair = _Pair()
    pair.check(frame)
    assert pair.check(frame) is not None
    real = getattr(codec, name)

    def faulty(*args: Any) -> Any:
        raise ZeroDivisionError("an unforeseen handler bug")

    monkeypatch.setattr(codec, name, faulty)
    codec._IVS.pop(67.555, None)
    outcomes = []
    for dec in (pair.fast, pair.ref):
        try:
            dec.decode(frame, T_LOCAL)
        except Exception as exc:
            outcomes.append(type(exc).__name__)
    assert outcomes == ["DecoderFault", "DecoderFault"]
    monkeypatch.setattr(codec, name, real)
    assert pair.check(frame) is not None


def test_ivs_of_more_than_two_decimals_are_the_references() -> None:
    pair = _Pair()
    pair.check(_ticker())
    for iv in (0.0, 76.95, 67.555, 1e-7, 123.456789012, 250.0, 0.005, 0.015):
        assert pair.check(_ticker(mark_iv=iv, bid_iv=iv, ask_iv=iv)) is not None, iv


def test_a_str_frame_is_read_as_its_bytes_when_ascii() -> None:
    """The hook passes bytes; a str frame (all ASCII) gives the same events, any other None."""
    pair = _Pair()
    frame = _ticker()
    pair.check(frame)
    want = repr(_frames.ticker_frame(pair.fast, frame, T_LOCAL))
    assert want != "None"
    assert repr(_frames.ticker_frame(pair.fast, frame.decode(), T_LOCAL)) == want
    assert _frames.ticker_frame(pair.fast, frame.decode().replace("open", "\xe9"), T_LOCAL) is None
    assert _frames.ticker_frame(pair.fast, bytearray(frame), T_LOCAL) is None
    assert _frames.trades_frame(pair.fast, frame, T_LOCAL) is None  # a ticker channel


def test_a_member_twice_is_the_references_last_one() -> None:
    """msgspec keeps a member's last value; the functions take no frame with a member twice."""
    pair = _Pair()
    pair.check(_ticker())
    greeks = b'"greeks":{"delta":0.5,"gamma":0.1,"vega":3.5,"theta":-3.7,"rho":1.2}'
    cases = [
        (b'"state":"open"', b'"greeks":null,' + greeks + b',"greeks":null,"state":"open"'),
        (b'"state":"open"', greeks + b',"greeks":null,"state":"open"'),
        (b'"state":"open"', greeks[:-1] + b',"rho":null},"state":"open"'),
        (b'"last_price":91277.0', b'"last_price":"undefined","last_price":91277.0'),
        (b'"last_price":91277.0', b'"last_price":91277.0,"last_price":"undefined"'),
        (b'"instrument_name":"BTC-PERPETUAL"', b'"instrument_name":"X","instrument_name":"BTC-PERPETUAL"'),
        (b'"timestamp":1795478400297', b'"timestamp":1,"timestamp":1795478400297'),
        (b'"state":"open"', b'"state":"closed","state":"open"'),
        (b'"state":"open"', b'"state":"open","funding_accrues":true,"funding_accrues":false'),
        (b'"state":"open"', b'"state":"open","funding_timestamp":1,"funding_timestamp":null'),
    ]
    for old, new in cases:
        frame = _ticker().replace(old, new)
        assert frame != _ticker()
        assert pair.check(frame) is None, new
    trade = orjson.dumps(orjson.loads(_fixture("ws_trades.json")))
    for member in (b'"price":92294.5', b'"direction":"sell"', b'"trade_id":"403691824"'):
        assert pair.check(trade.replace(member, member + b"," + member)) is None, member


def test_every_byte_of_the_envelope_is_checked() -> None:
    """Each byte around the data (and the data's first and last) changed, dropped, doubled, or
    followed by junk: the reference's outcome (the functions take none of them)."""
    pair = _Pair()
    for frame in (_ticker(), orjson.dumps(orjson.loads(_fixture("ws_trades.json")))):
        pair.check(frame)
        assert pair.check(frame) is not None
        head = frame.index(b'"data":') + len(b'"data":')
        ends = frame.rindex(b"}}")
        spots = [*range(head + 1), *range(ends - 1, len(frame) + 1)]
        for at in spots:
            for junk in (
                b"",
                b" ",
                b"}",
                b"x",
                b'"',
                b"\\",
                b"\x00",
                bytes([frame[at] ^ 1]) if at < len(frame) else b"]",
            ):
                for mutant in (frame[:at] + junk + frame[at + 1 :], frame[:at] + junk + frame[at:]):
                    if mutant != frame and (pair.check(mutant) is not None):
                        # only a change inside the channel's name keeps a canonical frame
                        assert len(PREFIX) + 7 <= at <= head - len(b'","data":'), mutant


# -- hostile mutations (hypothesis), in a child process -------------------------------------------

NUMBER_TEXTS = [
    b"0", b"-0", b"-0.0", b"0.0", b"1e5", b"1E5", b"1.0e+2", b"1e-400", b"-1e-400", b"1e400",
    b"-1e400", b"9007199254740992", b"9007199254740991", b"-9007199254740991",
    b"9007199254740991.5", b"123456789012345678901234567890", b"0.1e1", b"1.5e-310",
    b"2.2250738585072011e-308", b"00", b"01", b"1.", b".5", b"+1", b"-", b"1e", b"1e+", b"NaN",
    b"Infinity", b"-Infinity", b"nan", b"9223372036854", b"9223372036855", b"18446744073709551616",
    b"-1", b"-5.5", b"1" * 70, b"0." + b"1" * 60, b"1e99999", b"76.95", b"0.30000000000000004",
]  # fmt: skip
JSON_NUMBER = st.from_regex(r"-?(0|[1-9][0-9]{0,22})(\.[0-9]{1,22})?([eE][+-]?[0-9]{1,3})?", fullmatch=True)
FLOAT_TEXT = st.tuples(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["%r", "%.17g", "%.15g", "%.3e", "%.2f", "%E", "%.0f"]),
).map(lambda fx: (fx[1] % fx[0]).encode())
NUMBERS = st.sampled_from(NUMBER_TEXTS) | JSON_NUMBER.map(str.encode) | FLOAT_TEXT
STRINGS = st.sampled_from(
    [
        b'"undefined"', b'"open"', b'"closed"', b'"buy"', b'"sell"', b'""', b'"BTC-PERPETUAL"',
        b'"\\u0041"', b'"a\\"b"', b'"\xc3\xa9"', b'"\x01"', b'"\xff"', b'"open', b'"\\"',
    ]
)  # fmt: skip
LITERALS = st.sampled_from([b"null", b"true", b"false", b"nul", b"True", b"{}", b"[]", b"[null]", b'{"a":1}'])
NESTED = st.tuples(st.integers(1, 40), st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")])).map(
    lambda d: d[1][0] * d[0] + b"1" + d[1][1] * d[0]
)
RAW = NUMBERS | STRINGS | LITERALS | NESTED


def _members(obj: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    return [(orjson.dumps(k), orjson.dumps(v)) for k, v in obj.items()]


def _dump(members: list[tuple[bytes, bytes]]) -> bytes:
    return b"{" + b",".join(k + b":" + v for k, v in members) + b"}"


@st.composite
def mutated(draw: st.DrawFn, members: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """An object's members, changed: a value replaced, a member duplicated, dropped, added, the
    order shuffled, a key escaped."""
    out = list(members)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["value", "value", "dup", "drop", "add", "shuffle", "key", "null"]))
        i = draw(st.integers(0, max(len(out) - 1, 0)))
        if not out:
            op = "add"
        if op == "value":
            out[i] = (out[i][0], draw(RAW))
        elif op == "null":
            out[i] = (out[i][0], b"null")
        elif op == "dup":
            out.insert(draw(st.integers(0, len(out))), (out[i][0], draw(st.just(out[i][1]) | RAW)))
        elif op == "drop":
            del out[i]
        elif op == "add":
            key = draw(st.sampled_from([b'"stats"', b'"x"', b'"greeks"', b'"funding_accrues"', b'"rho"']))
            out.insert(draw(st.integers(0, len(out))), (key, draw(RAW)))
        elif op == "shuffle":
            out = draw(st.permutations(out))
        else:  # an escaped key spells the same field for msgspec
            k = out[i][0]
            out[i] = (k[:2] + b"\\u00" + b"%02x" % k[2] + k[3:] if len(k) > 3 else k, out[i][1])
    return out


@st.composite
def hostile(draw: st.DrawFn, bases: list[bytes]) -> bytes:
    frame = draw(st.sampled_from(bases))
    if draw(st.booleans()):  # the data's members (or a trade's, or the greeks')
        head, _, rest = frame.partition(b'"data":')
        data = orjson.loads(rest[:-2])
        if isinstance(data, list) and data:
            j = draw(st.integers(0, len(data) - 1))
            items = [orjson.dumps(x) for x in data]
            items[j] = _dump(draw(mutated(_members(data[j]))))
            body = b"[" + b",".join(items) + b"]"
        elif isinstance(data, dict):
            members = _members(data)
            greeks = [i for i, (k, _) in enumerate(members) if k == b'"greeks"' and data["greeks"]]
            in_greeks: bool = draw(st.booleans())
            if greeks and in_greeks:
                g = greeks[0]
                members[g] = (members[g][0], _dump(draw(mutated(_members(data["greeks"])))))
            else:
                members = draw(mutated(members))
            body = _dump(members)
        else:
            body = draw(RAW)
        frame = head + b'"data":' + body + b"}}"
    damage = draw(st.sampled_from(["none", "none", "cut", "flip", "insert"]))
    if damage == "cut":
        frame = frame[: draw(st.integers(0, len(frame)))]
    elif damage in ("flip", "insert"):
        marks = [i for i, c in enumerate(frame) if c in b'{}[],:"']  # the structure, most often
        at = draw(
            st.sampled_from(marks) | st.integers(0, len(frame)) if marks else st.integers(0, len(frame))
        )
        junk = draw(
            st.sampled_from(
                [b"", b"\xff", b"\x00", b" ", b"\n", b'"', b"\\", b"}", b"{", b"]", b",", b":", b"0", b"e"]
            )
            | st.binary(min_size=1, max_size=2)
        )
        frame = frame[:at] + junk + frame[at + (damage == "flip") :]
    return frame


def _bases() -> list[bytes]:
    frames = [f for f in _generated(3000) if _whole(f) is not None][:300]
    frames += [orjson.dumps(orjson.loads(f)) for f in _real_frames()]
    return frames


def _hostile_frames_decode_as_the_reference() -> None:
    bases = _bases()
    pair = _Pair()
    for frame in bases:  # the instruments' states known: the mutations can take the fast path
        pair.check(frame)

    @settings(
        max_examples=int(os.environ.get("CODEC_EXAMPLES", "1500")),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(frame=hostile(bases))
    def prop(frame: bytes) -> None:
        pair.check(frame)

    prop()


def _numbers_decode_as_the_reference() -> None:
    pair = _Pair()
    pair.check(_ticker())
    fields = [
        "best_bid_price", "best_bid_amount", "mark_price", "index_price", "mark_iv", "ask_iv",
        "current_funding", "timestamp", "open_interest", "last_price",
    ]  # fmt: skip
    base = _ticker()
    trade = orjson.dumps(orjson.loads(_fixture("ws_trades.json")))

    @settings(
        max_examples=int(os.environ.get("CODEC_EXAMPLES", "1500")),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(
        field=st.sampled_from(fields),
        text=NUMBERS,
        in_trade=st.sampled_from(["", "price", "amount", "trade_id", "timestamp"]),
    )
    def prop(field: str, text: bytes, in_trade: str) -> None:
        if in_trade:
            frame = trade.replace(
                b'"' + in_trade.encode() + b'":', b'"' + in_trade.encode() + b'":' + text + b',"_":', 1
            )
        else:
            frame = base.replace(
                b'"' + field.encode() + b'":', b'"' + field.encode() + b'":' + text + b',"_":', 1
            )
            if field == "best_bid_price":  # the ask out of the way: any bid is a market
                frame = frame.replace(b'"best_ask_amount":39120.0', b'"best_ask_amount":0.0')
        pair.check(frame)

    prop()
    assert pair.taken > 100  # the numbers msgspec reads did take the compiled path


def _child(case: str) -> None:
    {"hostile": _hostile_frames_decode_as_the_reference, "numbers": _numbers_decode_as_the_reference}[case]()


def _run_child(case: str) -> None:
    run_child(__name__, case)


def test_hostile_frames_decode_as_the_reference() -> None:
    _run_child("hostile")


def test_every_number_form_decodes_as_the_reference() -> None:
    _run_child("numbers")
