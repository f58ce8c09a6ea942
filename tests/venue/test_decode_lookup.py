"""What decodes frame after frame looks the decoder's `decode` up once, not per frame: a Deribit
decoder's `decode` is bound when it is looked up (codec.py `_CompiledEntry`, so that the decoder
holds no reference to itself), which costs more per lookup than the call's own dispatch. The live
session binds it once per connection (`VenueSession.bind_decoder`, into `_bound_decode`) for
every venue's receive loop, Deribit's, Derive's (its own `decode`) and Polymarket's (its first
books and its REST answers too); `tradingd decode`, `data inspect` and the event cache's check of
a decoder's promise once per run."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio

from tests.support.frame_sessions import _Ws
from tests.support.offline_sessions import _Sink, deribit, derive
from tradingd.cli.main import main
from tradingd.connectors.deribit.codec import DeribitDecoder
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.runtime.router import MarketRouter
from tradingd.engine.sim.plugins import load_simulator
from tradingd.engine.store.evcache import exact_books_violation
from tradingd.engine.store.recording import RecordingReader

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "deribit"
DERIVE_FIXTURES = FIXTURES.parent / "derive"
POLYMARKET_FIXTURES = FIXTURES.parent / "polymarket"
FRAMES = 60


class _Counted:
    """`DeribitDecoder.decode` as it was, counting its lookups on a decoder."""

    def __init__(self, entry: Any) -> None:
        self.entry = entry
        self.lookups = 0

    def __get__(self, obj: Any, cls: type[Any] | None = None) -> Any:
        if obj is None:
            return self.entry.__get__(obj, cls)
        self.lookups += 1
        return self.entry.__get__(obj, cls)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> _Counted:
    c = _Counted(DeribitDecoder.__dict__["decode"])
    monkeypatch.setattr(DeribitDecoder, "decode", c)
    return c


def _count(monkeypatch: pytest.MonkeyPatch, decoder: Any) -> _Counted:
    """`decoder`'s class's `decode` (wherever in its MRO it is defined), counting its lookups."""
    cls = type(decoder)
    c = _Counted(inspect.getattr_static(cls, "decode"))
    monkeypatch.setattr(cls, "decode", c)
    return c


def _compact(path: Path) -> str:
    return orjson.dumps(orjson.loads(path.read_bytes())).decode()


def _market_frames() -> list[bytes]:
    """The captured ticker, trades and book notifications, compact, over and over."""
    names = ("ws_ticker.json", "ws_trades.json", "ws_book_snapshot.json", "ws_book_delta.json")
    one = [orjson.dumps(orjson.loads((FIXTURES / name).read_bytes())) for name in names]
    return (one * FRAMES)[:FRAMES]


async def test_the_live_session_looks_decode_up_once_per_connection(counted: _Counted) -> None:
    session = deribit()
    seen: list[Any] = []

    async def market(events: list[Any]) -> None:
        seen.extend(events)

    session.sink.market = market  # type: ignore[method-assign]
    frames: list[bytes | str] = [f.decode() for f in _market_frames()]  # text, as Deribit sends them
    with trio.move_on_after(0.5):
        await session._receive(_Ws(frames))  # type: ignore[arg-type]  # a stand-in socket
    assert session.decoder.stats.frames == FRAMES and seen and session.stats.malformed == 0
    assert counted.lookups == 1, counted.lookups  # by this connection's receive loop


async def test_derives_live_session_looks_decode_up_once_per_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Derive's session decodes its notifications in its own `decode` (connectors/derive/stream.py),
    through the connection's bound `decode` too."""
    session = derive()
    counted = _count(monkeypatch, session.decoder)
    names = ("ws_ticker_slim_eth_perp_demo.json", "ws_trades_eth_perp_mainnet.json")
    one: list[bytes | str] = [_compact(DERIVE_FIXTURES / "bourse" / name) for name in names]  # captured
    frames = (one * FRAMES)[:FRAMES]
    with trio.move_on_after(0.5):
        await session._receive(_Ws(frames))  # type: ignore[arg-type]  # a stand-in socket
    assert session.decoder.stats.frames == FRAMES and session.stats.frames == FRAMES
    assert counted.lookups == 1, counted.lookups  # by this connection's receive loop


async def test_polymarkets_live_session_looks_decode_up_once_per_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Polymarket's market connection decodes, until the first subscription's books are in, in
    its own `_decode_awaiting`, and decodes a REST answer (a book) in `feed`
    (connectors/polymarket/stream.py): both through the connection's bound `decode`."""
    from tradingd.connectors.polymarket.settings import PolymarketSettings
    from tradingd.connectors.polymarket.stream import PolymarketSession

    owner = PolymarketSession(
        PolymarketSettings(), registry=InstrumentRegistry(), router=MarketRouter(), sink=_Sink()
    )
    market = owner.market
    counted = _count(monkeypatch, market.decoder)
    market._awaiting.add("1" * 77)  # a book that never comes: every frame is decoded awaiting it
    change = _compact(POLYMARKET_FIXTURES / "ws_market_price_change_msg.json")
    frames: list[bytes | str] = [change] * FRAMES
    with trio.move_on_after(0.5):
        await market._receive(_Ws(frames))  # type: ignore[arg-type]  # a stand-in socket
    assert market.decoder.stats.frames == FRAMES and market._awaiting
    assert counted.lookups == 1, counted.lookups  # by this connection's receive loop
    book = (POLYMARKET_FIXTURES / "clob_book_response.json").read_bytes()
    for _ in range(FRAMES):  # REST answers in the same connection (a resnapshot)
        await market.feed(book)
    assert market.decoder.stats.frames == 2 * FRAMES
    assert counted.lookups == 1, counted.lookups


def test_tradingd_decode_looks_decode_up_once(
    counted: _Counted, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "frames.jsonl"
    path.write_bytes(b"".join(f + b"\n" for f in _market_frames()))
    assert main(["decode", "--venue", "deribit", str(path)]) == 0
    assert len(capsys.readouterr().out.splitlines()) >= FRAMES
    assert counted.lookups == 1, counted.lookups


def test_data_inspect_and_the_cache_check_look_decode_up_once(
    counted: _Counted, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = tmp_path / "s.rec.zst"
    load_simulator("deribit").generate_sample(sample, {"hours": 0.01, "seed": 3})
    frames = [(ts or 0, frame) for ts, frame in RecordingReader(sample)]
    assert len(frames) > FRAMES
    assert main(["data", "inspect", "--venue", "deribit", str(sample)]) == 0
    assert "frames" in capsys.readouterr().out
    assert counted.lookups == 1, counted.lookups
    counted.lookups = 0
    assert exact_books_violation(DeribitDecoder(InstrumentRegistry()), frames) is None
    assert counted.lookups == 1, counted.lookups
