"""What decodes frame after frame looks the decoder's `decode` up once, not per frame: a Deribit
decoder's `decode` is bound when it is looked up (codec.py `_CompiledEntry`, so that the decoder
holds no reference to itself), which costs more per lookup than the call's own dispatch. The live
session binds it once per connection (`VenueSession.bind_decoder`), `tradingd decode`, `data
inspect` and the event cache's check of a decoder's promise once per run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import trio

from tests.support.frame_sessions import _Ws
from tests.support.offline_sessions import deribit
from tradingd.cli.main import main
from tradingd.connectors.deribit.codec import DeribitDecoder
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.sim.plugins import load_simulator
from tradingd.engine.store.evcache import exact_books_violation
from tradingd.engine.store.recording import RecordingReader

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "deribit"
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
