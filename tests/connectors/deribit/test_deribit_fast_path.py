"""`DeribitDecoder.decode`'s one-pass fast path against the two-pass reference
(`JsonRpcDecoder.decode`: the envelope, then the data): on every captured frame
(tests/fixtures/deribit), on a stretch of the generator's stream, and on hypothesis-made frames
spelled the way the fast path sniffs (with duplicated members, wrong types, escapes, broken
bytes), both give equal events, or the same `MalformedFrame` with the same reason, and leave the
decoder in the same state. A handler or body the fast path skips or stands in for, when a subclass
or the decoder has its own, is the one that runs, compiled or not."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradingd.connectors.deribit import codec
from tradingd.connectors.deribit.codec import DeribitDecoder
from tradingd.engine import MalformedFrame, Ticker
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.venue.jsonrpc import JsonRpcDecoder
from tradingd.simulators.deribit.generator import DeribitFeed

FIXTURES = Path(__file__).parent.parent.parent / "fixtures" / "deribit"
T_LOCAL = 1_700_000_000_123_456_789
PERP = "BTC-PERPETUAL"
OPTION = "BTC-26JUN26-100000-C"
PREFIX = b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"'


def _fixture_frames() -> list[bytes]:
    """Every fixture, as the compact frame the venue sends, and as it is spelled on disk."""
    out = []
    for path in sorted(FIXTURES.glob("*.json")):
        raw = path.read_bytes()
        out += [orjson.dumps(orjson.loads(raw)), raw]
    return out


def _outcome(decode: Any, frame: bytes | str) -> Any:
    try:
        return ("events", repr(decode(frame, T_LOCAL)))
    except MalformedFrame as exc:
        return ("malformed", type(exc).__name__, str(exc), exc.venue)


def _state(dec: DeribitDecoder) -> Any:
    def book(b: Any) -> Any:
        return (dict(b.bids), dict(b.asks), b.sequence, b.valid, b.quantum, b.top())

    return (
        {k: book(v) for k, v in dec._books.items()},
        {k: book(v) for k, v in dec._grouped.items()},
        dict(dec._states),
        dict(dec._funding),
        dict(dec._accrual),
        sorted((i.symbol, i.tick_size, i.min_size, i.kind) for i in dec.registry),
        dec.stats,
        dec.last_unknown_channel,
    )


class _Pair:
    """A decoder through the fast path and one through the reference, fed the same frames. The
    reference is all Python (`compiled=False`); the fast one uses the compiled book path
    (`_fast.c`) when `compiled` and it is built."""

    def __init__(self, compiled: bool = True) -> None:
        self.fast = DeribitDecoder(InstrumentRegistry(), compiled=compiled)
        self.ref = DeribitDecoder(InstrumentRegistry(), compiled=False)
        self.fast_hits = 0

    def feed(self, frames: Iterable[bytes | str], monkeypatch: pytest.MonkeyPatch) -> None:
        taken = [0]
        reference = codec._reference_decode

        def counted(dec: DeribitDecoder, frame: Any, ts: int) -> Any:
            taken[0] += 1
            return reference(dec, frame, ts)

        with monkeypatch.context() as m:
            m.setattr(codec, "_reference_decode", counted)
            n = 0
            for frame in frames:
                n += 1
                got = _outcome(self.fast.decode, frame)
                want = _outcome(lambda f, t: JsonRpcDecoder.decode(self.ref, f, t), frame)
                assert got == want, frame
                assert _state(self.fast) == _state(self.ref), frame
        self.fast_hits += n - taken[0]


BOTH = pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "python"])


@BOTH
def test_every_fixture_frame_decodes_the_same_both_ways(
    monkeypatch: pytest.MonkeyPatch, compiled: bool
) -> None:
    pair = _Pair(compiled)
    frames = _fixture_frames()
    # Twice: the second time, every book message meets a book (and the channel routes are known).
    pair.feed(frames + frames + [f.decode() for f in frames], monkeypatch)
    assert pair.fast_hits >= 10  # the fixtures' notifications did take the fast path


@BOTH
def test_the_generators_stream_decodes_the_same_both_ways(
    monkeypatch: pytest.MonkeyPatch, compiled: bool
) -> None:
    """Tickers (options, perpetuals with funding), book snapshots and changes, trades."""
    feed = DeribitFeed.create(seed=11, start_ns=1_795_478_400_000_000_000)
    frames = [f for _, f in itertools.islice(feed.frames(1.0), 6000)]
    pair = _Pair(compiled)
    pair.feed(frames, monkeypatch)
    assert pair.fast_hits > 5000
    assert pair.fast.stats.events > 5000 and pair.fast.stats.malformed == 0


# -- hypothesis: frames spelled as the fast path sniffs them, good and bad ----------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0.0, -0.0, 1e300, 9.1e15, 2.0**53, 42500.5, 0.0005, 45.43, 76.95])
    | st.text(max_size=8)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
PRICE = st.sampled_from([42500.0, 42500.5, 42501.0, 0.0, -5.0, 0.0235, 1e308, 9.1e15, 3]) | SCALARS
LEVEL = (
    st.tuples(st.sampled_from(["new", "change", "delete", "other"]), PRICE, PRICE).map(list)
    | st.tuples(PRICE, PRICE).map(list)
    | JSON
)
IDS = st.sampled_from([100, 101, 102, 0, None]) | SCALARS
GREEKS = st.fixed_dictionaries({}, optional=dict.fromkeys(("delta", "gamma", "vega", "theta", "rho"), PRICE))
FIELDS: dict[str, Any] = {
    "type": st.sampled_from(["snapshot", "change", "other"]) | SCALARS,
    "instrument_name": st.sampled_from([PERP, OPTION]) | SCALARS,
    "index_name": st.just("btc_usd") | SCALARS,
    "timestamp": st.integers(min_value=0, max_value=2**53) | SCALARS,
    "change_id": IDS,
    "prev_change_id": IDS,
    "bids": st.lists(LEVEL, max_size=4) | JSON,
    "asks": st.lists(LEVEL, max_size=4) | JSON,
    "state": st.sampled_from(["open", "halted", "closed"]) | SCALARS,
    "best_bid_price": PRICE,
    "best_bid_amount": PRICE,
    "best_ask_price": PRICE,
    "best_ask_amount": PRICE,
    "last_price": PRICE | st.just("undefined"),
    "mark_price": PRICE,
    "price": PRICE,
    "amount": PRICE,
    "direction": st.sampled_from(["buy", "sell", "x"]) | SCALARS,
    "trade_id": st.sampled_from(["403691825", 7]) | SCALARS,
    "mark_iv": PRICE,
    "bid_iv": PRICE,
    "ask_iv": PRICE,
    "greeks": GREEKS | JSON,
    "current_funding": PRICE,
    "funding_timestamp": st.integers(min_value=0, max_value=2**53) | SCALARS,
    "funding_accrues": st.booleans() | SCALARS,
}
# Valid data of every channel the fast path reads, then some members replaced by anything: most
# frames are good or nearly good, where a difference between the two paths would show.
VALID: list[Any] = [
    {
        "instrument_name": PERP,
        "timestamp": 1_700_000_000_000,
        "state": "open",
        "best_bid_price": 42500.0,
        "best_bid_amount": 10.0,
        "best_ask_price": 42500.5,
        "best_ask_amount": 20,
        "mark_iv": 45.43,
        "bid_iv": 76.95,
        "greeks": {"delta": 0.5, "gamma": 0.001, "vega": 3.2, "theta": -1.0},
        "current_funding": 0.0001,
        "funding_accrues": True,
    },
    {
        "type": "change",
        "instrument_name": PERP,
        "timestamp": 1_700_000_000_000,
        "change_id": 101,
        "prev_change_id": 100,
        "bids": [["new", 42500.0, 1.0], ["delete", 42499.5, 0.0]],
        "asks": [["change", 42501.0, 3.0]],
    },
    {
        "type": "snapshot",
        "instrument_name": PERP,
        "timestamp": 1_700_000_000_000,
        "change_id": 100,
        "bids": [["new", 42500.0, 1.0]],
        "asks": [["new", 42501.0, 3.0]],
    },
    {
        "instrument_name": PERP,
        "timestamp": 1,
        "bids": [[42500.0, 1.0]],
        "asks": [[42501.0, 2.0]],
        "change_id": 5,
    },
    [
        {
            "instrument_name": PERP,
            "timestamp": 1,
            "price": 42500.0,
            "amount": 1.0,
            "direction": "buy",
            "trade_id": "1",
        }
    ],
    {"index_name": "btc_usd", "price": 42000.5, "timestamp": 1},
]


# The channels of each of VALID's data.
VALID_CHANNELS = [
    [f"ticker.{PERP}.100ms"],
    [f"book.{PERP}.100ms"],
    [f"book.{PERP}.100ms"],
    [f"book.{PERP}.none.10.100ms"],
    [f"trades.{PERP}.100ms", "trades.future.BTC.100ms"],
    ["deribit_price_index.btc_usd"],
]


@st.composite
def datas(draw: st.DrawFn, base: Any) -> Any:
    keys = draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=2, unique=True))
    changes = {k: draw(FIELDS[k]) for k in keys}
    if isinstance(base, list):
        return [{**base[0], **changes}]
    return {**base, **changes}


DATA = st.sampled_from(VALID).flatmap(datas) | st.fixed_dictionaries({}, optional=FIELDS)
CHANNELS = (
    st.sampled_from(
        [
            f"ticker.{PERP}.100ms",
            f"ticker.{OPTION}.100ms",
            f"book.{PERP}.100ms",
            f"book.{PERP}.none.10.100ms",
            f"trades.{PERP}.100ms",
            "trades.option.BTC.100ms",
            f"quote.{PERP}",
            "deribit_price_index.btc_usd",
            "user.orders.any.any.raw",
            "chart.trades.BTC-PERPETUAL.1",
            "tick\\u0065r.BTC-PERPETUAL.100ms",  # an escape: the text is not the name
            "book.BTC-PERPETUAL.100ms\\\\",
        ]
    )
    | st.text(max_size=12).map(lambda s: orjson.dumps(s).decode()[1:-1])
)
# Members added after `data` in params, and after params in the message: a second channel, data
# or method overrides the first; `id`, `result`, `error` and `type` are read too.
EXTRA_PARAMS = st.lists(
    st.sampled_from(["channel", "data", "type", "other"]).flatmap(
        lambda k: st.tuples(st.just(k), (CHANNELS if k == "channel" else DATA if k == "data" else JSON))
    ),
    max_size=2,
)
EXTRA_TOP = st.lists(
    st.sampled_from(["method", "id", "result", "error", "params", "jsonrpc"]).flatmap(
        lambda k: st.tuples(st.just(k), st.sampled_from(["subscription", "heartbeat", 7, "7"]) | JSON)
    ),
    max_size=2,
)


def _member(key: str, value: Any) -> bytes:
    if key == "channel" and isinstance(value, str):
        return b',"channel":"' + value.encode() + b'"'
    return b"," + orjson.dumps(key) + b":" + orjson.dumps(value)


@st.composite
def sniffed_frames(draw: st.DrawFn) -> bytes:
    """A frame that starts as the venue writes notifications, then anything."""
    kind = draw(st.integers(min_value=0, max_value=len(VALID) - 1))
    channel = draw(st.sampled_from(VALID_CHANNELS[kind]) | CHANNELS)
    data = draw(datas(VALID[kind]) | DATA | st.lists(DATA, max_size=3) | JSON)
    body = PREFIX + channel.encode() + b'","data":' + orjson.dumps(data)
    body += b"".join(_member(k, v) for k, v in draw(EXTRA_PARAMS)) + b"}"
    body += b"".join(_member(k, v) for k, v in draw(EXTRA_TOP)) + b"}"
    damage = draw(st.sampled_from(["none", "none", "none", "cut", "byte", "insert"]))
    if damage == "cut":
        body = body[: draw(st.integers(min_value=len(PREFIX), max_value=len(body)))]
    elif damage in ("byte", "insert"):
        at = draw(st.integers(min_value=len(PREFIX), max_value=len(body)))
        junk = draw(st.sampled_from([b"\xff", b"\xc3", b'"', b"\\", b"}", b",", b"0", b"\x00", b"]"]))
        body = body[:at] + junk + body[at + (damage == "byte") :]
    return body


HYPOTHESIS = settings(
    max_examples=int(os.environ.get("CODEC_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
OPENING = [
    orjson.dumps(orjson.loads((FIXTURES / name).read_bytes()))
    for name in ("http_get_instruments.json", "ws_book_snapshot.json", "ws_book_grouped_snapshot.json")
]


@HYPOTHESIS
@given(
    frames=st.lists(sniffed_frames(), min_size=1, max_size=5), as_text=st.booleans(), compiled=st.booleans()
)
def test_sniffed_frames_decode_the_same_both_ways(
    frames: list[bytes], as_text: bool, compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = _Pair(compiled)
    pair.feed(OPENING, monkeypatch)
    if as_text:  # live frames are text; a frame that is not UTF-8 stays bytes
        sent: list[bytes | str] = []
        for f in frames:
            try:
                sent.append(f.decode())
            except UnicodeDecodeError:
                sent.append(f)
        pair.feed(sent, monkeypatch)
    else:
        pair.feed(frames, monkeypatch)


# -- IVs: remembered, and the same as `_iv` computes them ---------------------------------------

IVS = st.floats(min_value=0, max_value=2.0**53, exclude_max=True) | st.integers(0, 50_000).map(
    lambda c: c / 100
)


def _ticker_ivs(dec: DeribitDecoder, mark: float, bid: float, ask: float) -> tuple[Any, ...]:
    data = {"instrument_name": OPTION, "timestamp": 1, "mark_iv": mark, "bid_iv": bid, "ask_iv": ask}
    [ticker] = dec.decode(
        PREFIX + f'ticker.{OPTION}.100ms","data":'.encode() + orjson.dumps(data) + b"}}", T_LOCAL
    )
    assert isinstance(ticker, Ticker)
    return ticker.mark_iv, ticker.bid_iv, ticker.ask_iv


@HYPOTHESIS
@given(ivs=st.lists(st.tuples(IVS, IVS, IVS), min_size=1, max_size=6), bound=st.sampled_from([2, 5, 1 << 16]))
def test_remembered_ivs_are_the_ivs_computed(
    ivs: list[tuple[float, float, float]], bound: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every IV as `_iv` makes it, seen once or again, and after the memo was emptied when full."""
    dec = DeribitDecoder(InstrumentRegistry())
    with monkeypatch.context() as m:
        m.setattr(codec, "_MAX_IVS", bound)
        m.setattr(codec, "_IVS", {None: None})  # a memo of this example's IVs only
        for triple in ivs + ivs:
            assert _ticker_ivs(dec, *triple) == tuple(codec._iv(x) for x in triple)
            assert len(codec._IVS) <= bound + 1 and codec._IVS[None] is None


# -- a decoder's own methods: what the fast route skips (a handler) or stands in for (its body,
# or a compiled function doing the body's work) is called when a subclass or the decoder has its own ---

# VENUES.md §1.2's price index notification (no capture of it among the fixtures)
_INDEX = PREFIX + (
    b'deribit_price_index.btc_usd","data":{"timestamp":1535098298227,"price":6521.17,"index_name":"btc_usd"}}}'
)


def _fixture(name: str) -> bytes:
    return orjson.dumps(orjson.loads((FIXTURES / name).read_bytes()))


# Per handler of `codec._FAST_ROUTES`: its body and frames of its channel.
_CHANNELS: dict[str, tuple[str, list[bytes]]] = {
    "_on_ticker": ("_ticker_events", [_fixture("ws_ticker.json")]),
    "_on_trades": ("_trades_events", [_fixture("ws_trades.json")]),
    "_on_book": ("_book_events", [_fixture("ws_book_snapshot.json"), _fixture("ws_book_delta.json")]),
    "_on_quote": ("_quote_events", [_fixture("ws_quote.json")]),
    "_on_grouped_book": ("_grouped_book_events", [_fixture("ws_book_grouped_snapshot.json")]),
    "_on_price_index": ("_price_index_events", [_INDEX]),
}
_OWN = [(handler, name) for handler, (body, _) in _CHANNELS.items() for name in (handler, body)]


def test_every_method_the_fast_route_replaces_is_covered() -> None:
    """The handlers the fast route skips, their bodies it calls or has compiled functions stand
    in for (`_WHOLE_FRAME`, `_COMPILED_BODIES`, keyed by the same handlers): all in `_CHANNELS`."""
    routes = {handler.__name__: body.__name__ for handler, (_, body) in codec._FAST_ROUTES.items()}
    assert routes == {handler: body for handler, (body, _) in _CHANNELS.items()}
    assert set(codec._WHOLE_FRAME) | set(codec._COMPILED_BODIES) <= set(codec._FAST_ROUTES)


@BOTH
@pytest.mark.parametrize("where", ["subclass", "instance"])
@pytest.mark.parametrize(("handler", "name"), _OWN)
def test_a_decoders_own_handler_or_body_is_the_one_that_runs(
    handler: str, name: str, where: str, compiled: bool
) -> None:
    """A subclass's `_book_events` (or any handler or body the fast route replaces), or one set
    on the decoder, runs for every frame of its channel as the handler would call it, on the
    compiled decoder as on the Python one: the events it returns (here DeribitDecoder's, twice)
    are `decode`'s. The fast route called DeribitDecoder's body, and the compiled functions did
    its work, whatever the decoder's own was."""
    calls = [0]
    reference = DeribitDecoder(InstrumentRegistry(), compiled=False)

    def twice(events: list[Any]) -> list[Any]:
        calls[0] += 1
        return [*events, *events]

    if where == "subclass":

        def own(self: DeribitDecoder, *args: Any) -> list[Any]:
            return twice(getattr(super(cls, self), name)(*args))

        cls = type("Own", (DeribitDecoder,), {name: own})
        dec = cls(InstrumentRegistry(), compiled=compiled)
    else:
        dec = DeribitDecoder(InstrumentRegistry(), compiled=compiled)
        original = getattr(dec, name)
        setattr(dec, name, lambda *args: twice(original(*args)))
    assert dec.compiled is (compiled and codec._fast is not None)
    frames = _CHANNELS[handler][1] * 3  # the second time on, a book is there and routes are known
    for frame in frames:
        want = reference.decode(frame, T_LOCAL)
        assert want and repr(dec.decode(frame, T_LOCAL)) == repr(want + want), (name, frame[:80])
    assert calls[0] == len(frames)
    assert dec.stats.frames == len(frames) and dec.stats.events == 2 * reference.stats.events


@BOTH
@pytest.mark.parametrize("where", ["class", "decoder"])
@pytest.mark.parametrize("handler", list(_CHANNELS))
def test_a_body_replaced_after_its_channels_first_frame_runs_where_the_docstring_says(
    handler: str, where: str, compiled: bool
) -> None:
    """What DeribitDecoder's docstring (and the README's Deribit section) promise of a body set
    after the decoder met its channel: the fast route keeps the body it found at the channel's
    first frame (here DeribitDecoder's, and its compiled forms) for every frame it takes, the
    frames as the venue writes them; a frame it leaves to the handler runs the body in place
    then (the handler looks it up at each call); a decoder that meets the channel later takes
    the class's new body."""
    name, frames = _CHANNELS[handler]
    cls = type("Later", (DeribitDecoder,), {})
    calls = [0]

    def own(self: DeribitDecoder, *args: Any) -> list[Any]:
        calls[0] += 1
        events = getattr(super(cls, self), name)(*args)
        return [*events, *events]

    def check(dec: DeribitDecoder, reference: DeribitDecoder, frames: list[bytes], doubled: bool) -> None:
        for frame in frames:
            want = reference.decode(frame, T_LOCAL)
            got = dec.decode(frame, T_LOCAL)
            assert want and repr(got) == repr(want + want if doubled else want), frame[:80]

    dec = cls(InstrumentRegistry(), compiled=compiled)
    reference = DeribitDecoder(InstrumentRegistry(), compiled=False)
    assert dec.compiled is (compiled and codec._fast is not None)
    check(dec, reference, frames, doubled=False)  # the channel met: its fast route found
    if where == "class":
        setattr(cls, name, own)
    else:
        setattr(dec, name, own.__get__(dec))  # a method of the decoder, as one set before would be
    check(dec, reference, frames * 2, doubled=False)  # as the venue writes them: the body kept
    assert calls[0] == 0
    check(dec, reference, [b" " + frame for frame in frames], doubled=True)  # left to the handler
    assert calls[0] == len(frames)
    if where == "class":  # a decoder meeting the channel now takes the class's body
        later = DeribitDecoder(InstrumentRegistry(), compiled=False)
        check(cls(InstrumentRegistry(), compiled=compiled), later, frames, doubled=True)
        assert calls[0] == 2 * len(frames)
