"""Venue data can never take the daemon down (issue 12, section 1), end to end: the real daemon
against a simulator sending hostile frames, and the `decode` command on hostile files."""

from __future__ import annotations

import base64
import copy
import random
import signal
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
import zstandard

from tests.support.daemon_process import Daemon, serve_sim, until
from tests.support.frame_sessions import _session, _Ws
from tradingd.cli.main import main
from tradingd.engine import Subscription
from tradingd.engine.model.errors import DataError
from tradingd.engine.store.recording import RecordingReader, RecordingWriter
from tradingd.engine.venue.session import ConnectionLost

FIXTURES = Path(__file__).parent.parent / "fixtures"


def _snapshot(price: float) -> bytes:
    """A real Deribit book snapshot (tests/fixtures) of BTC-PERPETUAL with its best bid at `price`."""
    msg = orjson.loads((FIXTURES / "deribit/ws_book_snapshot.json").read_bytes())
    msg = copy.deepcopy(msg)
    msg["params"]["data"]["bids"][0][1] = price
    return orjson.dumps(msg)


HUGE_PRICE = _snapshot(1e308)  # OverflowError converting to ticks, before the safety net
INVALID_UTF8 = _snapshot(42500.0).replace(b'"instrument_name":"BTC-', b'"instrument_name":"BTC\xff\xfe-')
DEEP = b"[" * 50_000 + b"]" * 50_000


@pytest.mark.skipif(sys.platform != "linux", reason="signals as on the servers")
async def test_daemon_survives_hostile_frames_and_keeps_trading(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    sim, address = await serve_sim(nursery)
    daemon = Daemon(tmp_path, address, below=0.1)
    await daemon.start(nursery)

    def venue() -> dict[str, Any]:  # the status file's JSON
        return ((daemon.status() or {}).get("venues") or {}).get("deribit") or {}

    await until(lambda: venue().get("ready"), within=30, what="the daemon connected")
    frames_before = venue()["frames"]
    sim.apply_faults(
        {
            "frames": [HUGE_PRICE.decode(), DEEP.decode()],
            "frames_b64": [base64.b64encode(INVALID_UTF8).decode()],
        }
    )
    assert daemon.proc is not None
    proc = daemon.proc
    await until(
        lambda: proc.returncode is not None or (venue().get("malformed") or 0) >= 3,
        within=20,
        what="3 frames counted malformed",
    )
    assert proc.returncode is None, f"the daemon died (exit {proc.returncode})"
    malformed = venue()["malformed"]
    # Still receiving (and on the same connection), and the strategy still trades.
    await until(lambda: venue()["frames"] > frames_before + 20, what="frames after the hostile ones")
    await until(lambda: daemon.orders(), what="the strategy's order")
    assert venue()["malformed"] == malformed == 3
    assert venue()["disconnects"] == 0
    assert [o.label for o in sim.orders.values()]
    faults = [e for kind in ("decoder_fault", "malformed", "failed") for e in daemon.events(f"frame.{kind}")]
    assert len(faults) == 3, faults  # each hostile frame said once in the log (the first ten are)
    assert all(len(orjson.dumps(e)) < 2000 for e in faults), "never the whole frame in the log"

    proc.send_signal(signal.SIGTERM)
    assert await daemon.wait_exit(20) == 0


def _decode(path: Path, capfdbinary: pytest.CaptureFixture[bytes]) -> tuple[int, list[bytes], str]:
    code = main(["decode", "--venue", "deribit", str(path)])
    out, err = capfdbinary.readouterr()
    return code, out.splitlines(), err.decode()


def test_decode_reports_hostile_lines_and_goes_on(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    """The README contract: a bad line is reported with its number and decoding goes on (a
    1e308 price and a non-UTF-8 line used to stop it with "internal error")."""
    good = _snapshot(42500.0)
    path = tmp_path / "frames.jsonl"
    path.write_bytes(b"\n".join([good, HUGE_PRICE, INVALID_UTF8, DEEP, good]) + b"\n")
    code, out, err = _decode(path, capfdbinary)
    assert code != 0
    assert "internal error" not in err and "Traceback" not in err
    for n in (2, 3, 4):
        assert f"line {n}: malformed frame" in err
    assert "4 line(s)" not in err and "3 line(s) could not be decoded" in err
    assert sum(b'"type":"book"' in line for line in out) == 2  # the snapshots of lines 1 and 5


def _zst(tmp_path: Path, lines: int) -> bytes:
    rec = tmp_path / "rec.zst"
    good = _snapshot(42500.0)
    with RecordingWriter(rec) as w:
        for i in range(lines):
            w.write(1_700_000_000_000_000_000 + i, good)
    return rec.read_bytes()


def test_decode_a_broken_zst_reports_where_it_broke(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    """A corrupt `.zst` used to stop `decode` with "internal error": now one clear line names
    the file and where it broke, what was decoded before is kept, and the exit status says it
    failed. A file that ends inside a zstd frame (the recorder's, still open or after a crash;
    or a cut copy) is decoded to its last complete block, and stderr says so."""
    data = _zst(tmp_path, 20_000)
    corrupt = bytearray(data)
    corrupt[-1] ^= 0xFF  # its checksum: the data does not match
    bad = tmp_path / "bad.rec.zst"
    bad.write_bytes(bytes(corrupt))
    code, out, err = _decode(bad, capfdbinary)
    assert code != 0
    assert "internal error" not in err and "Traceback" not in err
    assert f"{bad}: unreadable from here on" in err

    cut = tmp_path / "cut.rec.zst"
    cut.write_bytes(data[: len(data) * 2 // 3])
    code, out, err = _decode(cut, capfdbinary)
    assert "internal error" not in err and "Traceback" not in err
    assert f"{cut}: ends inside a zstd frame" in err
    assert 0 < len(out) < 20_000


def _varied_zst(path: Path, lines: int) -> bytes:
    """A `.zst` recording of `lines` real snapshots with seeded random sizes and receive times:
    hundreds of KB compressed, like a real recording (a repeated line would compress to a few
    KB, one read)."""
    rng = random.Random(12)
    msg = orjson.loads((FIXTURES / "deribit/ws_book_snapshot.json").read_bytes())
    ts = 1_700_000_000_000_000_000
    with RecordingWriter(path) as w:
        for _ in range(lines):
            msg["params"]["data"]["bids"][0][2] = rng.randrange(1, 10**6) / 10
            ts += rng.randrange(1, 10**9)
            w.write(ts, orjson.dumps(msg))
    return path.read_bytes()


def test_decode_a_corrupt_zst_keeps_what_came_before(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    """A corrupt `.zst` (here its checksum, found at the end of the frame) used to lose every
    line decompressed in the same read (1 MB of compressed data: the whole file) and report
    "line 1". Now the lines before the block that broke are decoded, and the line reported is
    the first one not decoded."""
    data = bytearray(_varied_zst(tmp_path / "rec.zst", 20_000))
    assert len(data) > 200_000
    data[-1] ^= 0xFF
    bad = tmp_path / "bad.rec.zst"
    bad.write_bytes(bytes(data))
    code, out, err = _decode(bad, capfdbinary)
    assert code != 0 and "Traceback" not in err
    assert 19_500 <= len(out) < 20_000  # at most a zstd block (128 KB) or two are lost
    assert f"line {len(out) + 1}: {bad}: unreadable from here on" in err
    seen: list[Any] = []
    with pytest.raises(DataError, match=f"unreadable after line {len(out)}:"):
        seen.extend(RecordingReader(bad))
    assert len(seen) == len(out)


def test_a_zst_that_breaks_between_frames_reads_to_the_exact_line(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Two zstd frames (another tool's recording, or files joined), the second one garbage:
    every line of the first is read, and the line reported is the first one of the second (it
    used to be "after line 0": the whole first MB was lost with the error)."""
    good = _varied_zst(tmp_path / "rec.zst", 3_000)
    bad = tmp_path / "joined.rec.zst"
    bad.write_bytes(good + b"\x28\xb5\x2f\xfd" + bytes(range(256)) * 64)  # a zstd magic, then noise
    seen: list[Any] = []
    with pytest.raises(DataError, match="joined.rec.zst: unreadable after line 3000:"):
        seen.extend(RecordingReader(bad))
    assert len(seen) == 3_000
    code, out, err = _decode(bad, capfdbinary)
    assert code != 0 and len(out) == 3_000
    assert f"line 3001: {bad}: unreadable from here on" in err


def test_recording_reader_says_a_zst_is_unfinished(tmp_path: Path) -> None:
    """What the backtest reads: a `.zst` cut short reads to its last complete block and says
    so (it used to read as a shorter file, silently); a corrupt one is an error naming it."""
    data = _zst(tmp_path, 20_000)
    cut = tmp_path / "cut.rec.zst"
    cut.write_bytes(data[: len(data) // 2])
    reader = RecordingReader(cut, skip_bad=True)
    assert 0 < len(list(reader)) < 20_000
    assert reader.unfinished
    whole = RecordingReader(tmp_path / "rec.zst")
    assert len(list(whole)) == 20_000 and not whole.unfinished
    corrupt = bytearray(data)
    corrupt[-1] ^= 0xFF  # its checksum: the data does not match
    bad = tmp_path / "bad.rec.zst"
    bad.write_bytes(bytes(corrupt))
    with pytest.raises(DataError, match="bad.rec.zst: unreadable after line"):
        list(RecordingReader(bad))
    # Concatenated zstd frames (another tool's recording) still read whole.
    both = tmp_path / "both.rec.zst"
    both.write_bytes(
        zstandard.ZstdCompressor().compress(b"{}\n") + zstandard.ZstdCompressor().compress(b"[]\n")
    )
    assert [f for _, f in RecordingReader(both)] == [b"{}", b"[]"]


async def test_session_counts_and_skips_what_a_venue_handler_raises() -> None:
    """Whatever a venue's `_handle` raises for one frame (not only the decoder's
    `MalformedFrame`) is that frame's: counted malformed, logged, skipped."""
    handled: list[bytes | str] = []

    def handle(message: bytes | str) -> None:
        if message == b"boom":
            raise ArithmeticError("a frame the venue code did not foresee")
        handled.append(message)

    session = _session(handle)
    with trio.move_on_after(0.5):
        await session._receive(_Ws([b"one", b"boom", DEEP, b"two"]))  # type: ignore[arg-type]
    assert handled == [b"one", b"two"]
    assert session.stats.frames == 4 and session.stats.malformed == 2


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), ConnectionLost("gone")])
async def test_session_lets_interrupts_and_connection_errors_through(exc: BaseException) -> None:
    def handle(message: bytes | str) -> None:
        raise exc

    session = _session(handle)
    with pytest.raises(type(exc)):
        await session._receive(_Ws([b"x"]))  # type: ignore[arg-type]
    assert session.stats.malformed == 0


def test_backtest_counts_hostile_frames_and_goes_on(tmp_path: Path) -> None:
    """The backtest kernel reads the same hostile frames as a live session: each is counted
    malformed and the replay goes on to the frames after it."""
    from tests.support import deribit_frames as F
    from tests.support.backtests import Scripted, run

    huge = F.snapshot(F.OPTION, 3, 11, [(1e308, 3.0)], [(0.05, 2.0)])
    frames = [
        (0, F.instruments()),
        (2, F.snapshot(F.OPTION, 2, 10, [(0.049, 3.0)], [(0.05, 2.0)])),
        (3, huge),
        (4, huge.replace(F.OPTION.encode(), F.OPTION.encode()[:3] + b"\xff" + F.OPTION.encode()[3:])),
        (5, DEEP),
        (6, F.snapshot(F.OPTION, 6, 12, [(0.048, 1.0)], [(0.05, 2.0)])),
        (7, F.ticker(F.OPTION, 7, bid=0.048, ask=0.05, mark=0.049, index=90000.0)),
    ]
    seen = Scripted("s", _noop, [Subscription("deribit", F.OPTION, {"ticker", "book"})])
    result = run(F.write(tmp_path / "hostile.rec", frames), seen)
    assert result.decoder_stats["deribit"]["malformed"] == 3
    kinds = [type(e).__name__ for e in seen.seen]
    assert kinds[-1] == "Ticker" and "BookUpdate" in kinds[-3:]  # the frames after were read


async def _noop(ctx: Any, event: Any) -> None:
    pass


def test_data_inspect_counts_hostile_frames(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    path = tmp_path / "frames.rec"
    good = _snapshot(42500.0)
    with RecordingWriter(path) as w:
        for i, frame in enumerate([good, HUGE_PRICE, INVALID_UTF8, DEEP, good]):
            w.write(1_700_000_000_000_000_000 + i, frame)
    assert main(["data", "inspect", "--venue", "deribit", "--json", str(path)]) == 0
    info = orjson.loads(capfdbinary.readouterr().out)
    assert info["frames"] == 5 and info["malformed_frames"] == 3
    assert info["events"]["book"] == 2
