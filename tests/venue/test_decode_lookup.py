"""A call written `decoder.decode(frame, ts_local)` costs no more than a bound `decode` looked up
once, so what decodes frame after frame calls it plainly. A Deribit decoder's `decode` is a method
of its class written in C (`_fast.c` `decode_method`, codec.py), a method descriptor as a C type's
methods are: the interpreter calls it with the decoder first, with no bound method made and no
Python `__get__` run, and it runs the C entry (`_fast.decode`) on a compiled decoder, the guarded
Python `decode` on any other; a subclass's or an instance's `decode` comes first, as any method's.
Nothing is bound ahead of the frames, so a `decode` replaced on a live session's decoder in the
middle of a connection is the one its next frame meets (Deribit's, Derive's and Polymarket's
receive loops, Polymarket's REST answers)."""

from __future__ import annotations

import inspect
import types
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio

from tests.support.frame_sessions import _Ws
from tests.support.offline_sessions import _Sink, deribit, derive
from tests.support.profiled import python_calls
from tradingd.connectors.deribit import codec
from tradingd.connectors.deribit.codec import DeribitDecoder
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.runtime.router import MarketRouter

try:
    from tradingd.connectors.deribit import _fast
except ImportError:  # not built: `decode` is the class's Python function
    _fast = None  # type: ignore[assignment]

compiled_only = pytest.mark.skipif(_fast is None, reason="the compiled Deribit path (_fast.c) was not built")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "deribit"
DERIVE_FIXTURES = FIXTURES.parent / "derive"
POLYMARKET_FIXTURES = FIXTURES.parent / "polymarket"
FRAMES = 60
SWAP_AT = 20  # the frame before which the test replaces the decoder's `decode`
T_LOCAL = 1_700_000_000_123_456_789
# CPython's flag for a descriptor that LOAD_METHOD leaves unbound (Include/object.h).
METHOD_DESCRIPTOR = 1 << 17
# DeribitDecoder.decode's own body (under its guard): what a Python decode runs, never the C entry.
DECODE_BODY = codec._DECODE.__wrapped__.__code__  # type: ignore[attr-defined]


def _compact(path: Path) -> bytes:
    return orjson.dumps(orjson.loads(path.read_bytes()))


TICKER, SNAPSHOT, DELTA = (
    _compact(FIXTURES / f"ws_{n}.json") for n in ("ticker", "book_snapshot", "book_delta")
)


def _market_frames() -> list[bytes]:
    """The captured ticker, trades and book notifications, compact, over and over."""
    names = ("ws_ticker.json", "ws_trades.json", "ws_book_snapshot.json", "ws_book_delta.json")
    one = [_compact(FIXTURES / name) for name in names]
    return (one * FRAMES)[:FRAMES]


def _warm(dec: DeribitDecoder) -> DeribitDecoder:
    """The book whole and the ticker's route learnt: the frames below take the C entry's path."""
    dec.decode(SNAPSHOT, T_LOCAL)
    dec.decode(TICKER, T_LOCAL)
    return dec


def _runs_python(call: Any) -> bool:
    """Whether `call()` ran DeribitDecoder's Python decode (after no Python `__get__`)."""
    codes = python_calls(call)[1]
    assert "__get__" not in {code.co_name for code in codes}, codes
    return DECODE_BODY in codes


@compiled_only
def test_decode_is_a_method_descriptor_written_in_c() -> None:
    """Python's own method descriptor (what a C type's methods are), bound to the class: the
    interpreter calls it with the decoder first, making no bound method, and 3.11+ specialise
    that call; a descriptor class written in Python ran its `__get__` at each lookup."""
    method = inspect.getattr_static(DeribitDecoder, "decode")
    assert isinstance(method, types.MethodDescriptorType) and method.__objclass__ is DeribitDecoder
    assert type(method).__flags__ & METHOD_DESCRIPTOR


@compiled_only
def test_a_plain_call_runs_the_decode_the_decoder_asks_for_and_no_python_get(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A compiled decoder's frames in the C entry (its Python decode never runs for them), a
    reference decoder's in the Python decode, each the same events, with no Python `__get__` on
    the way and the choice read from `compiled` at each call: a plain call, a bound one, one
    through the class (`DeribitDecoder.decode(d, ...)`, what the interpreter does for a plain
    call). Any other call as the bound entry took it. A subclass's `decode`, one set on the
    decoder, one set on the class: each is what a plain call runs."""
    compiled = _warm(DeribitDecoder(InstrumentRegistry()))
    reference = _warm(DeribitDecoder(InstrumentRegistry(), compiled=False))
    for frame in (TICKER, SNAPSHOT, DELTA):
        got: list[Any] = []
        want: list[Any] = []
        assert not _runs_python(lambda: got.append(compiled.decode(frame, T_LOCAL)))  # noqa: B023
        assert _runs_python(lambda: want.append(reference.decode(frame, T_LOCAL)))  # noqa: B023
        assert repr(got) == repr(want) and got[0], frame
    for dec in (compiled, reference):
        bound = dec.decode
        assert bound.__self__ is dec  # type: ignore[attr-defined]
        assert _runs_python(lambda: bound(TICKER, T_LOCAL)) is not dec.compiled  # noqa: B023
        assert _runs_python(lambda: DeribitDecoder.decode(dec, TICKER, T_LOCAL)) is not dec.compiled  # noqa: B023
    # `compiled` as it is at the call.
    compiled.compiled = False
    assert _runs_python(lambda: compiled.decode(TICKER, T_LOCAL))
    compiled.compiled = True
    assert not _runs_python(lambda: compiled.decode(TICKER, T_LOCAL))
    # Replaced: theirs first.
    seen: list[str] = []

    class Sub(DeribitDecoder):
        def decode(self, frame: Any, ts_local: int) -> list[Any]:
            seen.append("subclass")
            return []

    assert Sub(InstrumentRegistry()).decode(TICKER, T_LOCAL) == [] and seen == ["subclass"]
    dec = DeribitDecoder(InstrumentRegistry())

    def instance(frame: Any, ts_local: int) -> list[Any]:
        seen.append("instance")
        return []

    dec.decode = instance  # type: ignore[method-assign]
    assert dec.decode(TICKER, T_LOCAL) == [] and seen[-1] == "instance" and dec.stats.frames == 0
    del dec.decode
    assert dec.decode(TICKER, T_LOCAL) and dec.stats.frames == 1

    def on_the_class(self: DeribitDecoder, frame: Any, ts_local: int) -> list[Any]:
        seen.append("class")
        return []

    monkeypatch.setattr(DeribitDecoder, "decode", on_the_class)
    assert dec.decode(TICKER, T_LOCAL) == [] and seen[-1] == "class" and dec.stats.frames == 1
    monkeypatch.undo()
    assert dec.decode(TICKER, T_LOCAL) and dec.stats.frames == 2
    assert "decode" not in vars(dec)


# The calls of the Python decode's signature, `decode(frame, ts_local)`: the ones it takes, then
# the ones it refuses (a parameter missing, given twice or unknown, one too many).
_TAKEN: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((TICKER, T_LOCAL), {}),
    ((TICKER,), {"ts_local": T_LOCAL}),
    ((), {"frame": TICKER, "ts_local": T_LOCAL}),
    ((), {"ts_local": T_LOCAL, "frame": TICKER}),
]
_REFUSED: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((TICKER,), {}),
    ((), {}),
    ((), {"ts_local": T_LOCAL}),
    ((), {"frame": TICKER}),
    ((TICKER, T_LOCAL, 0), {}),
    ((TICKER, T_LOCAL), {"extra": 0}),
    ((TICKER,), {"frame": TICKER, "ts_local": T_LOCAL}),
    ((TICKER, T_LOCAL), {"ts_local": T_LOCAL}),
    ((TICKER, T_LOCAL), {"self": None}),
    ((), {"frame": TICKER, "ts_local": T_LOCAL, "ts": T_LOCAL}),
]


def _outcome(call: Any) -> tuple[str, str]:
    try:
        return "events", repr(call())
    except TypeError as exc:
        return "TypeError", str(exc)


@compiled_only
@pytest.mark.parametrize(("args", "kwargs"), _TAKEN + _REFUSED)
@pytest.mark.parametrize("how", ["plain", "bound", "class"])
def test_both_decoders_take_and_refuse_the_same_calls(
    how: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """A compiled decoder's `decode` takes the calls the Python decode takes (the frame and
    ts_local positional or by name, in any order: the same events, from the C entry, its Python
    decode never run) and refuses the others with the Python decode's own TypeError, nothing
    counted, as a reference decoder does: a plain call, a bound one, one through the class."""
    compiled = _warm(DeribitDecoder(InstrumentRegistry()))
    reference = _warm(DeribitDecoder(InstrumentRegistry(), compiled=False))
    want = repr(reference.decode(TICKER, T_LOCAL))

    def call(dec: DeribitDecoder) -> Any:
        if how == "plain":
            return dec.decode(*args, **kwargs)
        if how == "bound":
            bound = dec.decode
            return bound(*args, **kwargs)
        return DeribitDecoder.decode(dec, *args, **kwargs)

    before = (repr(compiled.stats), repr(reference.stats))
    got = _outcome(lambda: call(compiled)), _outcome(lambda: call(reference))
    assert got[0] == got[1]
    # the Python decode's signature itself refuses (or takes) the call alike
    assert got[1] == _outcome(lambda: codec._DECODE(reference, *args, **kwargs))
    if (args, kwargs) in _TAKEN:
        assert got[0] == ("events", want)
        assert not _runs_python(lambda: call(compiled))
        assert _runs_python(lambda: call(reference))
    else:
        assert got[0][0] == "TypeError" and got[0][1].startswith("DeribitDecoder.decode() ")
        assert (repr(compiled.stats), repr(reference.stats)) == before


class _Swapping(_Ws):
    """Delivers `frames`; before the one at SWAP_AT it sets `decode` on `decoder` to one that
    counts the frames it is given (and decodes none)."""

    def __init__(self, frames: list[Any], decoder: Any) -> None:
        super().__init__(frames)
        self.decoder = decoder
        self.given = 0
        self.delivered = 0

    def count(self, frame: Any, ts_local: int) -> list[Any]:
        self.given += 1
        return []

    async def get_message(self) -> bytes:
        if self.delivered == SWAP_AT:
            self.decoder.decode = self.count
        self.delivered += 1
        return await super().get_message()


async def _receive(session: Any, frames: list[Any]) -> _Swapping:
    ws = _Swapping(frames, session.decoder)
    with trio.move_on_after(0.5):
        await session._receive(ws)
    return ws


@pytest.mark.parametrize("venue", ["deribit", "derive"])
async def test_a_decode_replaced_mid_connection_meets_the_next_frame(venue: str) -> None:
    """Deribit's receive loop (text frames, as Deribit sends them) and Derive's (its own
    `decode`): every frame after the swap goes to the replacement."""
    if venue == "deribit":
        session: Any = deribit()
        frames = [f.decode() for f in _market_frames()]
    else:
        session = derive()
        names = ("ws_ticker_slim_eth_perp_demo.json", "ws_trades_eth_perp_mainnet.json")
        one = [_compact(DERIVE_FIXTURES / "bourse" / name).decode() for name in names]  # captured
        frames = (one * FRAMES)[:FRAMES]
    ws = await _receive(session, frames)
    assert session.decoder.stats.frames == SWAP_AT and ws.given == FRAMES - SWAP_AT
    assert session.stats.frames == FRAMES and session.stats.malformed == 0


async def test_polymarkets_connection_meets_a_decode_replaced_mid_connection() -> None:
    """Polymarket's market connection decodes, until the first subscription's books are in, in
    its own `_decode_awaiting`, and decodes a REST answer (a book) in `feed`
    (connectors/polymarket/stream.py): both meet the replacement."""
    from tradingd.connectors.polymarket.settings import PolymarketSettings
    from tradingd.connectors.polymarket.stream import PolymarketSession

    owner = PolymarketSession(
        PolymarketSettings(), registry=InstrumentRegistry(), router=MarketRouter(), sink=_Sink()
    )
    market = owner.market
    market._awaiting.add("1" * 77)  # a book that never comes: every frame is decoded awaiting it
    change = _compact(POLYMARKET_FIXTURES / "ws_market_price_change_msg.json").decode()
    ws = await _receive(market, [change] * FRAMES)
    assert market.decoder.stats.frames == SWAP_AT and ws.given == FRAMES - SWAP_AT and market._awaiting
    book = (POLYMARKET_FIXTURES / "clob_book_response.json").read_bytes()
    del market.decoder.decode  # the class's again
    await market.feed(book)  # a REST answer (a resnapshot) in the same connection
    assert market.decoder.stats.frames == SWAP_AT + 1
    market.decoder.decode = ws.count  # type: ignore[method-assign]
    await market.feed(book)
    assert market.decoder.stats.frames == SWAP_AT + 1 and ws.given == FRAMES - SWAP_AT + 1
