"""Recording live sessions (`engine.store.recorder`) and replaying them.

The issue's done-when test is `test_a_recorded_paper_session_replays_to_the_same_decisions`: a
paper session against the in-process Deribit simulator, recorded through the frame hook, then
replayed by the backtest kernel with the same strategy; the strategy's decisions and the market
events it saw are equal. Its length is `TRADINGD_RECORD_TEST_S` seconds of wall time (12 by
default; `TRADINGD_RECORD_TEST_S=60` for the full minute of the issue).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
import trio
import zstandard

from tradingd.connectors.deribit import PLUGIN
from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.engine import (
    DataError,
    MalformedFrame,
    MarketEvent,
    OrderRejected,
    OrderRequest,
    Side,
    Strategy,
    Subscription,
    Ticker,
    Trade,
)
from tradingd.engine.backtest.kernel import BacktestKernel, BacktestSettings, DataSource
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.runtime.live import LiveEngine
from tradingd.engine.store import RecordingReader
from tradingd.engine.store.recorder import RecordingSet, SessionRecorder, read_manifest, recording_files
from tradingd.engine.store.recording import format_ts
from tradingd.simulators.deribit import SIMULATOR as DERIBIT_SIM
from tradingd.simulators.deribit.simulator import DeribitSimulator, serve

ROOT = Path(__file__).resolve().parent.parent.parent
NS = 1_000_000_000
T0 = 1_795_514_400 * NS  # 2026-11-24T10:00:00Z
# The recorded paper session's real time, split around its burst of market (which brings most of
# its trades); TRADINGD_RECORD_TEST_S=60 records a longer one.
RECORD_S = float(os.environ.get("TRADINGD_RECORD_TEST_S", "4"))


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """`main` configures logging onto this test's captured stderr: undo it afterwards, so later
    tests do not log into a closed stream."""
    yield
    structlog.reset_defaults()


def frame(i: int) -> bytes:
    return b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"heartbeat"},"n":%d}' % i


def lines(path: Path) -> list[tuple[int | None, bytes]]:
    return list(RecordingReader(path))


# -- files, rotation, manifest ---------------------------------------------------------------


def test_frames_are_written_exactly_with_their_receive_time(tmp_path: Path) -> None:
    rec = SessionRecorder(tmp_path / "rec", clock=lambda: T0)
    hook = rec.frame_hook("deribit")
    text = '{"jsonrpc":"2.0","id":1,"result":"é ünïcode"}'  # a text frame: stored as its UTF-8 bytes
    hook(T0 + 123_456_789, text)
    hook(T0 + 2 * NS + 5, b'{"binary":true}')
    rec.close()
    (path,) = recording_files(tmp_path / "rec", "deribit")
    assert path.name == "deribit-20261124T100000.123Z.rec.zst"
    raw = zstandard.ZstdDecompressor().stream_reader(path.read_bytes()).read()
    assert raw == (
        b"2026-11-24T10:00:00.1234567Z " + text.encode() + b'\n2026-11-24T10:00:02.0000000Z {"binary":true}\n'
    )
    # 100 ns resolution, the format's (DESIGN.md "recordings").
    assert lines(path) == [(T0 + 123_456_700, text.encode()), (T0 + 2 * NS, b'{"binary":true}')]
    manifest = read_manifest(tmp_path / "rec")
    assert manifest is not None and manifest["closed"] is True
    venue = manifest["venues"]["deribit"]
    assert venue["frames"] == 2 and venue["dropped"] == 0
    (entry,) = venue["files"]
    assert entry["name"] == path.name and entry["frames"] == 2 and entry["closed"] is True
    assert entry["first"] == "2026-11-24T10:00:00.1234567Z" and entry["last_ns"] == T0 + 2 * NS + 5
    assert entry["bytes"] == path.stat().st_size
    assert manifest["first"] == entry["first"] and manifest["tradingd_version"]
    # After close, frames are counted, never silently lost.
    hook(T0 + 3 * NS, frame(0))
    assert rec.venues["deribit"].late == 1


def test_files_rotate_on_the_hour_per_venue_and_by_size(tmp_path: Path) -> None:
    rec = SessionRecorder(tmp_path, rotate_s=3600, rotate_bytes=10_000_000, clock=lambda: T0)
    deribit, derive = rec.frame_hook("deribit"), rec.frame_hook("derive")
    for i in range(10):  # 10:00 .. 11:30 in 10-minute steps
        deribit(T0 + i * 600 * NS, frame(i))
    derive(T0 + 5 * NS, frame(100))
    rec.flush()
    hours = recording_files(tmp_path, "deribit")
    assert [p.name for p in hours] == [
        "deribit-20261124T100000.000Z.rec.zst",
        "deribit-20261124T110000.000Z.rec.zst",
    ]
    assert [len(lines(p)) for p in hours[:1]] == [6]  # the closed hour; the open one is readable too
    assert len(lines(hours[1])) == 4
    assert [p.name for p in recording_files(tmp_path, "derive")] == ["derive-20261124T100005.000Z.rec.zst"]
    rec.close()
    # By size: every flush past `rotate_bytes` closes the file; the next frame opens a new one.
    small = SessionRecorder(tmp_path / "small", rotate_bytes=1, clock=lambda: T0)
    hook = small.frame_hook("deribit")
    for i in range(3):
        hook(T0 + i * NS, frame(i))
        small.flush()
    small.close()
    files = recording_files(tmp_path / "small", "deribit")
    assert len(files) == 3 and [lines(p)[0][1] for p in files] == [frame(0), frame(1), frame(2)]
    manifest = read_manifest(tmp_path / "small")
    assert manifest is not None
    assert [f["frames"] for f in manifest["venues"]["deribit"]["files"]] == [1, 1, 1]
    assert all(f["closed"] for f in manifest["venues"]["deribit"]["files"])


def test_a_directory_replays_in_time_order_and_a_torn_tail_is_tolerated(tmp_path: Path) -> None:
    rec = SessionRecorder(tmp_path, rotate_s=60, clock=lambda: T0)
    hook = rec.frame_hook("deribit")
    for i in range(300):
        hook(T0 + i * NS, frame(i))
    rec.close()
    assert len(recording_files(tmp_path, "deribit")) == 5
    got = list(RecordingSet(tmp_path, "deribit"))
    assert got == [(T0 + i * NS, frame(i)) for i in range(300)]
    # A crashed session: the manifest says the session and its last file were never closed,
    # and that file ends mid-block. What decompresses replays.
    manifest = read_manifest(tmp_path)
    assert manifest is not None
    crashed = orjson.loads(orjson.dumps(manifest))
    crashed["closed"] = False
    crashed["venues"]["deribit"]["files"][-1]["closed"] = False
    (tmp_path / "manifest.json").write_bytes(orjson.dumps(crashed))
    last = recording_files(tmp_path, "deribit")[-1]
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    torn = list(RecordingSet(tmp_path, "deribit"))
    assert torn == got[: len(torn)] and 240 <= len(torn) < 300
    # A file the manifest lists as closed must hold every frame it counts: damage is an error.
    (tmp_path / "manifest.json").write_bytes(orjson.dumps(manifest))
    with pytest.raises(DataError, match="the manifest says 60"):
        list(RecordingSet(tmp_path, "deribit"))
    with pytest.raises(DataError, match="no recording files of derive"):
        RecordingSet(tmp_path, "derive")


def test_a_full_writer_drops_and_counts_and_a_write_error_is_loud(tmp_path: Path) -> None:
    rec = SessionRecorder(tmp_path, max_pending=3, clock=lambda: T0)
    hook = rec.frame_hook("deribit")
    for i in range(5):
        hook(T0 + i, frame(i))
    assert rec.venues["deribit"].dropped == 2
    rec.close()
    manifest = read_manifest(tmp_path)
    assert manifest is not None and manifest["venues"]["deribit"]["dropped"] == 2
    # A directory that cannot be written: strict (tradingd record) raises a DataError.
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    with pytest.raises(DataError, match="cannot create the recording directory"):
        SessionRecorder(blocked / "rec").open()
    with pytest.raises(ValueError, match="flush_interval_s"):
        SessionRecorder(tmp_path, flush_interval_s=5)


@pytest.mark.parametrize("strict", [True, False])
def test_a_write_error_mid_recording_is_loud_or_counted(tmp_path: Path, strict: bool) -> None:
    """The directory disappears (an unmounted disk): the next file cannot be opened. Strict
    (`tradingd record`) raises; beside trading the frames are counted as dropped, and the
    recorder goes on (and closes) without raising."""
    import shutil

    directory = tmp_path / "rec"
    rec = SessionRecorder(directory, rotate_s=60, strict=strict, clock=lambda: T0)
    hook = rec.frame_hook("deribit")
    hook(T0, frame(0))
    rec.flush()
    shutil.rmtree(directory)
    for i in range(1, 4):
        hook(T0 + 60 * NS + i, frame(i))  # the next minute: a new file
    if strict:
        with pytest.raises(DataError, match="recording to .* failed"):
            rec.flush()
        with pytest.raises(DataError, match="cannot write .*manifest.json"):
            rec.close()  # every file closed first, then the failure said
        assert rec.closed and rec.venues["deribit"].file is None
        return
    rec.flush()
    assert rec.venues["deribit"].dropped == 3 and rec.venues["deribit"].frames == 1
    assert rec.write_errors == 1
    rec.close()  # the final manifest cannot be written either: counted, not raised
    assert rec.closed and rec.write_errors == 2


def test_from_config(tmp_path: Path) -> None:
    from tradingd.config._schema import RecordingConfig

    rec = SessionRecorder.from_config(
        RecordingConfig(enabled=True, dir="rec", rotate_s=600, rotate_bytes=1000),
        base=tmp_path,
        config_path=tmp_path / "x.toml",
    )
    assert rec.directory == tmp_path / "rec" and rec.rotate_ns == 600 * NS and rec.rotate_bytes == 1000
    assert rec.manifest()["config"] == str((tmp_path / "x.toml").resolve())


# -- the crash bound ---------------------------------------------------------------------------

_CRASH_CHILD = """
import os, sys, time, trio
from tradingd.engine.logs.setup import configure_logging
from tradingd.engine.store.recorder import SessionRecorder

configure_logging("warning", "json", sys.stderr)
# What was offered to the recorder, written before each offer with a plain write (in the kernel
# at once: a SIGKILL loses none of it), so the test knows what the kill took.
offered = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_APPEND)

async def main():
    rec = SessionRecorder(sys.argv[1])
    hook = rec.frame_hook("deribit")
    async with trio.open_nursery() as nursery:
        await nursery.start(rec.run)
        i = 0
        while True:
            ts = time.time_ns()
            os.write(offered, b"%d %d\\n" % (i, ts))
            hook(ts, b'{"n":%d}' % i)
            i += 1
            if i == 1:
                print("recording", flush=True)
            await trio.sleep(0.005)

trio.run(main)
"""


def _frames_so_far(directory: Path) -> int:
    """Frames the recorder has flushed so far (0 while there is no file, or while a block is
    being written: the caller polls again)."""
    try:
        files = recording_files(directory, "deribit")
        return sum(1 for _ in RecordingReader(files[0])) if files else 0
    except (DataError, zstandard.ZstdError):
        return 0


def test_a_killed_recorder_loses_at_most_the_last_second(tmp_path: Path) -> None:
    """SIGKILL (no cleanup at all): the never-closed file still reads, and what is lost was
    offered in about the last second before the kill (the flush beat).

    Conditions, not sleeps: under load the child offers fewer frames per second of the test's
    clock and flushes later by that clock, so the kill waits for the recording to hold 300
    frames and for the child to have offered 200 more, and the bound is read on the child's own
    clock (the last frame it offered), not on the moment the test sent the signal."""
    directory, offered_path = tmp_path / "rec", tmp_path / "offered"
    child = subprocess.Popen(
        [sys.executable, "-c", _CRASH_CHILD, str(directory), str(offered_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"recording\n"
        deadline = time.monotonic() + 120  # only a hung child gets here
        while (flushed := _frames_so_far(directory)) <= 300:
            assert time.monotonic() < deadline and child.poll() is None, flushed
            time.sleep(0.05)
        while len(offered_path.read_bytes().splitlines()) < flushed + 200:
            assert time.monotonic() < deadline and child.poll() is None
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        child.wait(60)
    finally:
        child.kill()
    (path,) = recording_files(directory, "deribit")
    got = lines(path)
    offered = [tuple(map(int, line.split())) for line in offered_path.read_bytes().splitlines()]
    assert len(got) > 300
    # Nothing torn, in order, each frame with the time it was offered at (kept to 100 ns).
    assert got == [(ts // 100 * 100, b'{"n":%d}' % i) for i, ts in offered[: len(got)]]
    last_ts = got[-1][0]
    assert last_ts is not None
    # Flushed every second: what is lost was offered in the last second (+ the writer thread's
    # scheduling slack), on the child's clock.
    assert offered[-1][1] - last_ts < 1.5 * NS, (len(offered) - len(got), offered[-1][1] - last_ts)
    manifest = read_manifest(directory)
    assert manifest is not None and manifest["closed"] is False


# -- the done-when test: record a paper session, replay it, same decisions ---------------------


class Decider(Strategy):
    """A deterministic strategy driven by market data only: every 3rd BTC-PERPETUAL trade it
    replaces its resting order by a new one 2% away from that trade, on the other side of the
    aggressor, sized by the trade count. Its decisions depend on the trades it sees (never
    conflated or dropped by the mailbox), not on timing or on its fills."""

    def __init__(self, name: str = "decider") -> None:
        super().__init__(name)
        self.trades = 0
        self.decisions: list[tuple[str, str, Decimal, Decimal]] = []
        self.seen: list[MarketEvent] = []
        self.last: str | None = None
        self.busy = False

    def required_subscriptions(self) -> list[Subscription]:
        return [
            Subscription("deribit", "BTC-PERPETUAL", {"trades", "ticker", "book"}),
            Subscription("deribit", "ETH-PERPETUAL", {"trades", "ticker"}),
        ]

    async def on_event(self, event: MarketEvent) -> None:
        if not isinstance(event, Trade | Ticker):
            return
        self.seen.append(event)
        if not isinstance(event, Trade) or event.instrument != "BTC-PERPETUAL":
            return
        self.trades += 1
        if self.trades % 3:
            return
        side = Side.BUY if event.side is Side.SELL else Side.SELL
        away = 0.98 if side is Side.BUY else 1.02
        price = Decimal(round(event.price * away * 2)) / 2  # the 0.5 tick
        size = Decimal(10 * (1 + self.trades // 3 % 4))
        self.decisions.append(("BTC-PERPETUAL", side.value, price, size))
        self.busy = True
        try:
            if self.last is not None:
                # Already filled: what the fill model decided does not change the decisions.
                with contextlib.suppress(OrderRejected):
                    await self.ctx.cancel_order(self.last)
            placed = await self.ctx.place_order(
                OrderRequest(venue="deribit", instrument="BTC-PERPETUAL", side=side, size=size, price=price)
            )
            self.last = placed.client_order_id
        finally:
            self.busy = False


async def record_paper_session(directory: Path, seconds: float) -> tuple[Decider, LiveEngine]:
    simulator = DeribitSimulator(seed=11, step_s=0.02, heartbeat_scale=0.1)
    decider = Decider()
    recorder = SessionRecorder(directory)
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(functools.partial(serve, simulator))
        base = binds[0].removeprefix("http://")
        engine = LiveEngine(
            [decider],
            {"deribit": DeribitSettings(url=f"ws://{base}/ws/api/v2", rest_url=f"http://{base}")},
            mode="paper",
            environ={},
            paper_latency_s=0.02,
            frame_hook=recorder.frame_hook,
        )
        await nursery.start(recorder.run)
        await nursery.start(engine.run)
        recorder.watch(engine.venues)
        with trio.fail_after(15):
            await engine.ready.wait()
        await trio.sleep(seconds / 2)
        # A minute of market in one burst, as fast as the connection takes it (the strategy falls
        # behind: its mailbox conflates tickers), then real time again.
        simulator.prepare_burst(600)
        await simulator.burst()
        simulator.resume()
        await trio.sleep(seconds / 2)
        # Stop the market (the simulator's burst switch pauses its real-time loop), then let the
        # strategy drain what it was sent, so the recording holds exactly what it saw.
        simulator.prepare_burst(0)
        slot = engine.router.slots()[0]
        with trio.fail_after(10):
            quiet = 0
            while quiet < 10:
                await trio.sleep(0.05)
                busy = len(slot.mailbox) or decider.busy
                quiet = 0 if busy else quiet + 1
        nursery.cancel_scope.cancel()
    return decider, engine


def routed(directory: Path, subs: set[tuple[str, str]]) -> list[MarketEvent]:
    """Every event the decoder makes from the recording that the strategy is subscribed to."""
    decoder = PLUGIN.decoder(InstrumentRegistry())
    out: list[MarketEvent] = []
    for ts, raw in RecordingSet(directory, "deribit"):
        assert ts is not None
        try:
            events = decoder.decode(raw, ts)
        except MalformedFrame:
            continue
        out.extend(e for e in events if (e.instrument, e.type) in subs)
    return out


def is_subsequence(part: list[Any], whole: list[Any]) -> bool:
    it = iter(whole)
    return all(any(x == y for y in it) for x in part)


@pytest.mark.slow
async def test_a_recorded_paper_session_replays_to_the_same_decisions(tmp_path: Path) -> None:
    directory = tmp_path / "rec"
    live, engine = await record_paper_session(directory, RECORD_S)
    manifest = read_manifest(directory)
    assert manifest is not None and manifest["closed"] is True
    venue = manifest["venues"]["deribit"]
    assert venue["dropped"] == 0 and venue["frames"] > 100
    assert "trades.BTC-PERPETUAL.100ms" in venue["channels_at_start"]
    assert venue["channels_at_end"] == venue["channels_at_start"]
    assert len(live.decisions) >= 3, "the session was too short to decide anything"

    replay = Decider()
    kernel = BacktestKernel(
        {"deribit": PLUGIN},
        [DataSource("deribit", directory)],
        [replay],
        BacktestSettings(latency_ms=20),
    )
    result = await kernel.run()
    assert result.frames == venue["frames"] and result.malformed_frames == 0

    # The decisions: equal, in order.
    assert replay.decisions == live.decisions
    # The trades the strategy saw: equal, field by field; the replay's clock is the recorded
    # receive time (the live clock at 100 ns, the recording format's resolution).
    live_trades = [e for e in live.seen if isinstance(e, Trade)]
    replay_trades = [e for e in replay.seen if isinstance(e, Trade)]
    assert len(live_trades) > 20
    assert [(e.ts_local // 100 * 100, *fields_tuple(e, "ts_local")) for e in live_trades] == [
        (e.ts_local, *fields_tuple(e, "ts_local")) for e in replay_trades
    ]
    # Tickers: both runs saw every ticker the recording holds for them, except the ones their
    # mailbox conflated while the strategy awaited an order (a newer one replaced them, live as
    # in backtests); each saw them in order, and the counts add up exactly.
    truth = routed(directory, {("BTC-PERPETUAL", "ticker"), ("ETH-PERPETUAL", "ticker")})
    live_slot = engine.router.slots()[0]
    for seen, stats in ((live.seen, live_slot.mailbox.stats), (replay.seen, kernel.slots[0].mailbox.stats)):
        tickers = [fields_tuple(e, "ts_local") for e in seen if isinstance(e, Ticker)]
        assert len(tickers) + stats.conflated == len(truth)
        assert is_subsequence(tickers, [fields_tuple(e, "ts_local") for e in truth])
        assert stats.dropped == 0
    assert [e.ts_local for e in replay.seen if isinstance(e, Ticker)][-1] == truth[-1].ts_local


def fields_tuple(event: MarketEvent, *skip: str) -> tuple[Any, ...]:
    return tuple(getattr(event, name) for name in event.__struct_fields__ if name not in skip)


def test_a_recording_directory_backtests_from_the_command_line(tmp_path: Path) -> None:
    """`[[backtest.data]]` may name a recording directory."""
    from tradingd.cli.main import main

    sample = tmp_path / "s.rec.zst"
    DERIBIT_SIM.generate_sample(sample, {"hours": 0.05, "seed": 2})
    rec = SessionRecorder(tmp_path / "rec", rotate_s=60)
    hook = rec.frame_hook("deribit")
    for ts, raw in RecordingReader(sample):
        assert ts is not None
        hook(ts, raw)
    rec.close()
    assert len(recording_files(tmp_path / "rec", "deribit")) >= 3
    text = (ROOT / "config" / "backtest-deribit.toml").read_text()
    cfg = tmp_path / "bt.toml"
    cfg.write_text(text.replace('path = "../data/deribit-sample.rec.zst"', f'path = "{tmp_path / "rec"}"'))
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["backtest", "--config", str(cfg), "--report", str(a), "--no-progress"]) == 0
    cfg.write_text(text.replace('path = "../data/deribit-sample.rec.zst"', f'path = "{sample}"'))
    assert main(["backtest", "--config", str(cfg), "--report", str(b), "--no-progress"]) == 0
    ra, rb = orjson.loads(a.read_bytes()), orjson.loads(b.read_bytes())
    for r in (ra, rb):
        r.pop("duration_s")
    assert ra == rb and ra["events"] > 1000
    assert format_ts(T0).startswith("2026-11-24T10:00:00")
