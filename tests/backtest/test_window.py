"""Backtest windows (`BacktestSettings.start_ns` / `end_ns`): the frames before the start warm the
books and marks up but reach no strategy; the replay stops at the end; the result is the
window's; an empty window is a warning; a start not before the end is refused; the event cache
is the whole data set's, read by every window. And `data_span`, which windows are planned from."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio

from tests.support import deribit_frames as F
from tradingd.connectors.deribit import PLUGIN
from tradingd.engine import BookUpdate, MarketEvent, Status, StatusKind, Strategy, Subscription
from tradingd.engine.backtest import data_span
from tradingd.engine.backtest.kernel import BacktestKernel, BacktestResult, BacktestSettings, DataSource
from tradingd.engine.backtest.report import report_dict
from tradingd.engine.model.errors import DataError
from tradingd.engine.store import RecordingWriter, format_ts
from tradingd.engine.store.evcache import EventCache

MS = 1_000_000
S = (F.T0_MS + 10_000) * MS  # the window: 10 s to 20 s after T0 (receive times)
E = (F.T0_MS + 20_000) * MS


class Watcher(Strategy):
    """Records when it started and stopped, every event's receive time, the book and the ticker
    it saw on its first event; buys 1,000 USD of the perpetual on its first book update."""

    def __init__(self, name: str = "watcher", *, buy: bool = True) -> None:
        super().__init__(name)
        self.buy = buy
        self.started_at: int | None = None
        self.stopped_at: int | None = None
        self.seen: list[int] = []
        self.statuses: list[tuple[StatusKind, str]] = []
        self.first_book: Any = None
        self.first_mark: float | None = None

    def required_subscriptions(self) -> list[Subscription]:
        return [Subscription("deribit", F.PERP)]

    async def on_start(self) -> None:
        self.started_at = self.ctx.now_ns()

    async def on_stop(self) -> None:
        self.stopped_at = self.ctx.now_ns()

    async def on_event(self, event: MarketEvent) -> None:
        self.seen.append(event.ts_local)
        if isinstance(event, Status):
            self.statuses.append((event.status, event.instrument))
        if isinstance(event, BookUpdate) and self.first_book is None:
            book = self.ctx.book("deribit", F.PERP)
            self.first_book = None if book is None else book.top()
            ticker = self.ctx.last_ticker("deribit", F.PERP)
            self.first_mark = None if ticker is None else ticker.mark
            if self.buy:
                await self.ctx.buy("deribit", F.PERP, 1000)


def _ticks(start_s: int, stop_s: int, change_id: int, price: float) -> list[tuple[int, bytes]]:
    """Each second from `start_s`: a change of the perpetual's bid size (5 + the second), and
    half a second later its ticker (the mark moving up 1 USD a second)."""
    out: list[tuple[int, bytes]] = []
    for k in range(start_s, stop_s):
        t = k * 1000
        out.append((t, F.change(F.PERP, t, change_id + k, [["change", price, 5.0 + k]], [])))
        mark = price + k
        out.append((t + 500, F.ticker(F.PERP, t + 500, bid=price, ask=price + 0.5, mark=mark, index=mark)))
    return out


def _warm_frames() -> list[tuple[int, bytes]]:
    """30 s of data: the instruments and a book at the start, then `_ticks`."""
    return [
        (0, F.instruments()),
        (100, F.snapshot(F.PERP, 100, 0, [(90000.0, 5.0)], [(90000.5, 100000.0)])),
        *_ticks(1, 30, 0, 90000.0),
    ]


def _write(path: Path, frames: list[tuple[int, bytes]], *, raw: Sequence[tuple[int, bytes]] = ()) -> Path:
    """A recording of (ms since T0 received, frame) lines, in time order (frames of the same ms
    in their order); `raw` adds lines as they are (bad lines, bare frames) before the frames of
    their ms."""
    lines = [(ms, 1, format_ts((F.T0_MS + ms) * MS).encode() + b" " + f) for ms, f in frames]
    lines += [(ms, 0, line) for ms, line in raw]
    lines.sort(key=lambda x: (x[0], x[1]))
    path.write_bytes(b"".join(line + b"\n" for _, _, line in lines))
    return path


def _run(
    path: Path,
    *strategies: Strategy,
    cache: EventCache | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
) -> tuple[BacktestResult, BacktestKernel]:
    kernel = BacktestKernel(
        {"deribit": PLUGIN},
        [DataSource("deribit", path)],
        list(strategies),
        BacktestSettings(equity_interval_s=1.0, start_ns=start_ns, end_ns=end_ns),
        event_cache=cache,
    )
    return trio.run(kernel.run), kernel


def _json(result: BacktestResult, *drop: str) -> dict[str, Any]:
    out = report_dict(result)
    for key in ("duration_s", *drop):
        out.pop(key)
    return out


def test_no_event_before_the_start_reaches_a_strategy_and_the_books_are_warm(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.rec", _warm_frames())
    w = Watcher()
    result, _ = _run(path, w, start_ns=S, end_ns=E)
    assert w.started_at is not None and w.started_at >= S, "started at the window's first frame"
    assert w.started_at == S + 0, "its first frame (the change of 10 s, received at S) starts it"
    assert w.seen and min(w.seen) >= S and max(w.seen) < E
    # The book as the data left it at 10 s: the snapshot and every change since (bid size 15
    # after the change of 10 s, the event itself), and the mark of the ticker of 9.5 s.
    assert w.first_book == (90000.0, 15.0, 90000.5, 100000.0)
    assert w.first_mark == 90009.0
    # Without the window's warm-up (the same data from 10 s on) there is no book at all.
    cut = _write(tmp_path / "cut.rec", [(ms, f) for ms, f in _warm_frames() if ms >= 10_000])
    bare = Watcher()
    _run(cut, bare)
    assert bare.first_book is None and bare.first_mark is None
    assert result.strategies["watcher"].orders == 1


def test_the_replay_stops_at_the_end_and_the_result_is_the_window_s(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.rec", _warm_frames())
    w = Watcher()
    result, kernel = _run(path, w, start_ns=S, end_ns=E)
    assert result.start_ns == S and result.end_ns == E
    assert report_dict(result)["start"] == format_ts(S) and report_dict(result)["end"] == format_ts(E)
    # 10 s of changes and tickers: 20 frames, 20 events; none of the 20 before nor the 20 after.
    assert (result.frames, result.events) == (20, 20)
    assert result.files[0].frames == 20
    s = result.strategies["watcher"]
    assert s.fills == 1 and all(S <= f.ts < E + 100 * MS for f in s.series.fills)  # type: ignore[union-attr]
    assert s.equity_curve[0][0] == S and all(ts < E for ts, _ in s.equity_curve)
    # The mark at the end is the last one before E (the ticker of 19.5 s: 90019), not 20.5 s's.
    assert kernel.market.mark("deribit", F.PERP) == 90019.0
    assert w.stopped_at is not None and w.stopped_at < E
    # The same run on the whole data goes on to 30 s, with a PnL of its own.
    full, _ = _run(path, Watcher())
    assert full.end_ns is not None and full.end_ns > E
    assert full.strategies["watcher"].net_pnl != s.net_pnl
    assert full.frames == 2 + 2 * 29


def test_a_window_equals_the_data_cut_to_it_when_the_strategies_start_fresh(tmp_path: Path) -> None:
    """With a new session in the data at the window's start (instruments, a snapshot: what a
    strategy started there can see does not depend on what came before), the window's report is
    the cut file's but for what legitimately differs: its `end` is the window's (the cut file
    ends at its last frame), and the decoders read the warm-up too."""
    before = [(0, F.instruments()), (100, F.snapshot(F.PERP, 100, 0, [(80000.0, 9.0)], [(80001.0, 9.0)]))]
    before += _ticks(1, 10, 0, 80000.0)
    session = [
        (10_000, F.instruments()),
        (10_000, F.snapshot(F.PERP, 10_000, 1010, [(90000.0, 5.0)], [(90000.5, 100000.0)])),
        # The index at once (the USD value of the first fill, which the warm-up would give).
        (10_000, F.ticker(F.PERP, 10_000, bid=90000.0, ask=90000.5, mark=90010.0, index=90010.0)),
        *_ticks(11, 30, 1000, 90000.0),
    ]
    whole = _write(tmp_path / "whole.rec", before + session)
    cut = _write(tmp_path / "cut.rec", [(ms, f) for ms, f in session if ms < 20_000])
    windowed, _ = _run(whole, Watcher(), start_ns=S, end_ns=E)
    alone, _ = _run(cut, Watcher())
    assert windowed.strategies["watcher"].fills == 1
    a, b = _json(windowed), _json(alone)
    assert a["end"] == format_ts(E) and b["end"] == format_ts((F.T0_MS + 19_500) * MS)
    assert a["decoders"] != b["decoders"]
    for key in ("end", "decoders"):
        a.pop(key), b.pop(key)
    assert a == b
    wa, wb = windowed.strategies["watcher"], alone.strategies["watcher"]
    assert wa.equity_curve == wb.equity_curve and wa.net_pnl == wb.net_pnl


def test_an_expiry_before_the_start_is_no_event_of_the_window(tmp_path: Path) -> None:
    """The option expires at 5 s (before the window): its subscriber hears nothing of it."""
    expiry_ms = F.T0_MS + 5_000
    frames = [
        (0, F.instruments(expiry_ms=expiry_ms)),
        (100, F.snapshot(F.PERP, 100, 0, [(90000.0, 5.0)], [(90000.5, 100000.0)])),
        *_ticks(1, 30, 0, 90000.0),
    ]
    path = _write(tmp_path / "d.rec", frames)

    class OptionWatcher(Watcher):
        def required_subscriptions(self) -> list[Subscription]:
            return [Subscription("deribit", F.PERP), Subscription("deribit", F.OPTION)]

    whole, windowed = OptionWatcher(buy=False), OptionWatcher(buy=False)
    _run(path, whole)
    _run(path, windowed, start_ns=S, end_ns=E)
    assert whole.statuses == [(StatusKind.EXPIRED, F.OPTION)], "on the whole data it hears of it"
    assert windowed.statuses == [] and windowed.seen and min(windowed.seen) >= S


@pytest.mark.parametrize(
    ("start_s", "end_s", "where"),
    [
        (40, 50, "the data ends at 2026-11-24T00:00:29.5000000Z, before it"),
        (None, -1, "the data starts at 2026-11-24T00:00:00.0000000Z, after it"),
        (31, None, "-> the data's end holds no frame of the data, so no strategy ran: the data ends at"),
    ],
    ids=["after", "before", "after-open-end"],
)
def test_a_window_without_a_frame_is_a_warning(
    tmp_path: Path, start_s: int | None, end_s: int | None, where: str
) -> None:
    path = _write(tmp_path / "d.rec", _warm_frames())
    w = Watcher()
    start = None if start_s is None else (F.T0_MS + start_s * 1000) * MS
    end = None if end_s is None else (F.T0_MS + end_s * 1000) * MS
    result, _ = _run(path, w, start_ns=start, end_ns=end)
    assert w.started_at is None and w.stopped_at is None and not w.seen
    assert result.frames == 0 and result.start_ns is None and result.end_ns is None
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith("the window ") and "holds no frame of the data" in result.warnings[0]
    assert where in result.warnings[0]
    assert result.strategies["watcher"].equity_curve == ()


def test_a_window_in_a_gap_of_the_data_is_a_warning(tmp_path: Path) -> None:
    frames = [(ms, f) for ms, f in _warm_frames() if not 9_800 < ms < 20_200]
    result, _ = _run(_write(tmp_path / "d.rec", frames), Watcher(), start_ns=S, end_ns=E)
    assert result.warnings == (
        "the window 2026-11-24T00:00:10.0000000Z -> 2026-11-24T00:00:20.0000000Z holds no frame of the"
        " data, so no strategy ran: the data has a gap from 2026-11-24T00:00:09.5000000Z to"
        " 2026-11-24T00:00:20.5000000Z",
    )


@pytest.mark.parametrize(("start", "end"), [(E, E), (E, S)])
def test_a_start_not_before_the_end_is_refused(start: int, end: int) -> None:
    with pytest.raises(
        ValueError, match=r"the backtest window's start \(2026-11-24T00:00:.*\) is not before its end"
    ):
        BacktestSettings(start_ns=start, end_ns=end)


@pytest.mark.parametrize("bad", [1.5e18, True, "2026-11-24"])
def test_a_window_bound_is_ns_as_an_int(bad: Any) -> None:
    with pytest.raises(TypeError, match="start_ns: expected ns since the epoch"):
        BacktestSettings(start_ns=bad)


def _entry(path: Path) -> tuple[dict[str, Any], bytes]:
    """A cache entry's header (without the time it was written) and every byte after it."""
    data = path.read_bytes()
    at = 8  # the magic
    hlen = int.from_bytes(data[at : at + 4], "little")
    header = pickle.loads(data[at + 4 : at + 4 + hlen])
    header.pop("created")
    # The body and footer; the trailing digest covers the header too (its time), so it is left.
    return header, data[at + 4 + hlen : -(32 + 8)]


def _hostile(tmp_path: Path) -> Path:
    """`_warm_frames` with a bad line and a bare frame before the window, in it and after it,
    and a malformed frame in each."""
    bad = b"not a recording line"
    bare = b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"heartbeat"}}'
    malformed = b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-PERPETUAL.100ms"'
    frames = [*_warm_frames(), (5_200, malformed), (15_200, malformed), (25_200, malformed)]
    raw = [(ms, line) for ms in (5_100, 15_100, 25_100) for line in (bad, bare)]
    return _write(tmp_path / "d.rec", frames, raw=raw)


def test_a_windowed_run_reads_and_writes_the_whole_data_s_cache_entry(tmp_path: Path) -> None:
    """The entry a windowed run writes is the one a full run writes (byte for byte but the time
    it was written); every window reads it; a window's report is the same from the frames, while
    writing the entry, and from the entry: bad lines and malformed frames of the window counted."""
    path = _hostile(tmp_path)
    plain, _ = _run(path, Watcher(), start_ns=S, end_ns=E)
    writing_cache = EventCache(tmp_path / "w", write_on=1)
    written, writer = _run(path, Watcher(), cache=writing_cache, start_ns=S, end_ns=E)
    assert writer.data_path == "frames, cache written" and writer.cache_entry is not None
    read, reader = _run(path, Watcher(), cache=EventCache(tmp_path / "w", write_on=1), start_ns=S, end_ns=E)
    assert reader.data_path == "cache" and reader.cache_entry == writer.cache_entry
    want = orjson.dumps(_json(plain), option=orjson.OPT_SORT_KEYS)
    assert orjson.dumps(_json(written), option=orjson.OPT_SORT_KEYS) == want
    assert orjson.dumps(_json(read), option=orjson.OPT_SORT_KEYS) == want
    # The malformed frame of the window; the bad lines and bare frames read up to its end (the
    # warm-up's too: as a reader counts them), not those past it.
    assert (plain.malformed_frames, plain.bad_lines) == (1, 4)
    # A full run writes the same entry (another folder), and reads the windowed run's.
    full_cache = EventCache(tmp_path / "f", write_on=1)
    _, full_writer = _run(path, Watcher(), cache=full_cache)
    assert full_writer.cache_entry is not None and full_writer.cache_entry.name == writer.cache_entry.name
    assert _entry(full_writer.cache_entry) == _entry(writer.cache_entry)
    full_plain, _ = _run(path, Watcher())
    full_read, full_reader = _run(path, Watcher(), cache=EventCache(tmp_path / "w", write_on=1))
    assert full_reader.data_path == "cache"
    assert _json(full_read) == _json(full_plain)
    # Another window, from the same entry, as from the frames.
    o_plain, _ = _run(path, Watcher(), start_ns=E, end_ns=E + 5_000 * MS)
    o_read, o_reader = _run(
        path, Watcher(), cache=EventCache(tmp_path / "w", write_on=1), start_ns=E, end_ns=E + 5_000 * MS
    )
    assert o_reader.data_path == "cache" and _json(o_read) == _json(o_plain)
    assert o_plain.strategies["watcher"].fills == 1


def test_a_start_only_window_runs_to_the_data_s_end(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.rec", _warm_frames())
    result, _ = _run(path, Watcher(), start_ns=S)
    assert result.start_ns == S and result.end_ns == (F.T0_MS + 29_500) * MS
    assert result.frames == 40
    # Before the data's first frame: the data's own start (nothing to warm up).
    early, _ = _run(path, Watcher(), start_ns=(F.T0_MS - 60_000) * MS, end_ns=E)
    assert early.start_ns == F.T0_MS * MS and early.end_ns == E


# -- data_span ----------------------------------------------------------------------------------
def test_data_span_is_the_first_and_last_receive_time(tmp_path: Path) -> None:
    frames = _warm_frames()
    plain = _write(tmp_path / "d.rec", frames, raw=[(29_600, b"a bad line at the end")])
    with RecordingWriter(tmp_path / "d.rec.zst") as w:
        for ms, frame in frames:
            w.write((F.T0_MS + ms) * MS, frame)
    other = _write(tmp_path / "late.rec", [(40_000, F.instruments())])
    want = (F.T0_MS * MS, (F.T0_MS + 29_500) * MS)
    plugins = {"deribit": PLUGIN}
    assert data_span(plugins, [DataSource("deribit", plain)]) == want
    assert data_span(plugins, [DataSource("deribit", tmp_path / "d.rec.zst")]) == want
    assert data_span(plugins, [DataSource("deribit", plain), DataSource("deribit", other)]) == (
        want[0],
        (F.T0_MS + 40_000) * MS,
    )
    empty = tmp_path / "empty.rec"
    empty.write_bytes(b"")
    assert data_span(plugins, [DataSource("deribit", empty)]) is None
    with pytest.raises(DataError, match="missing.rec"):
        data_span(plugins, [DataSource("deribit", tmp_path / "missing.rec")])


def test_data_span_matches_what_the_kernel_replays(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.rec", _warm_frames())
    result, _ = _run(path, Watcher(buy=False))
    assert data_span({"deribit": PLUGIN}, [DataSource("deribit", path)]) == (result.start_ns, result.end_ns)
