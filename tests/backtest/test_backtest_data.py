"""What a backtest does with damaged data (issue 12, section 1; README "Decode"): a bad line is
reported with its file and number and the replay goes on; a malformed frame's report names its
file and line; a `.zst` cut inside a frame is read to its last complete block and said so."""

from __future__ import annotations

import io
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import structlog
import trio

from tests.support import deribit_frames as F
from tests.support.backtests import Scripted
from tradingd.connectors.deribit import PLUGIN
from tradingd.engine import Subscription, Ticker
from tradingd.engine.backtest.kernel import BacktestKernel, BacktestResult, BacktestSettings, DataSource
from tradingd.engine.backtest.report import print_summary, report_dict
from tradingd.engine.store.recorder import RecordingSet
from tradingd.engine.store.recording import format_ts


async def _noop(ctx: Any, event: Any) -> None:
    pass


def _run(path: Path, strategy: Scripted) -> tuple[BacktestResult, list[MutableMapping[str, Any]]]:
    sources = [DataSource("deribit", path)]
    kernel = BacktestKernel({"deribit": PLUGIN}, sources, [strategy], BacktestSettings())
    with structlog.testing.capture_logs() as logs:
        result = trio.run(kernel.run)
    return result, logs


def _ticker(ms: int) -> bytes:
    return F.ticker(F.OPTION, ms, bid=0.048, ask=0.05, mark=0.049, index=90000.0)


def test_backtest_reports_bad_lines_with_their_numbers_and_goes_on(tmp_path: Path) -> None:
    """A line that is not a recording line used to stop the backtest (`DataError`, exit 1).
    Now each is logged with its file and line number (the first 10, then a total), counted per
    data file in the result, the report and the summary, and the replay goes on. A malformed
    frame's log line names its file and line too."""
    path = F.write(
        tmp_path / "bt.rec",
        [
            (0, F.instruments()),
            (2, F.snapshot(F.OPTION, 2, 10, [(0.049, 3.0)], [(0.05, 2.0)])),
            (3, F.snapshot(F.OPTION, 3, 11, [(1e308, 3.0)], [(0.05, 2.0)])),  # malformed
            (4, _ticker(4)),
            (5, _ticker(5)),
        ],
    )
    lines = path.read_bytes().splitlines(keepends=True)
    garbage = [b"no timestamp here\n"] + [b"2026-13-45T99:00:00Z {}\n"] * 12
    # Line 3 is garbage, the malformed snapshot is line 4, lines 6-17 garbage, 18 a ticker.
    path.write_bytes(b"".join(lines[:2] + garbage[:1] + lines[2:4] + garbage[1:] + lines[4:]))
    seen = Scripted("s", _noop, [Subscription("deribit", F.OPTION, {"ticker", "book"})])
    result, logs = _run(path, seen)

    assert result.bad_lines == 13 and result.malformed_frames == 1
    # The tickers of lines 5 and 18 (after every bad line): `F.ticker`'s time is its `ms`.
    assert [t.ts_exchange for t in seen.seen if isinstance(t, Ticker)] == [4_000_000, 5_000_000]
    (stats,) = result.files
    assert (stats.path, stats.bad_lines, stats.malformed_frames) == (str(path), 13, 1)

    bad = [e for e in logs if e["event"] == "data.bad_line"]
    assert [e["line"] for e in bad] == [3, *range(6, 15)]  # the first 10, each with its number
    assert all(e["file"] == str(path) and "not a recording line" in e["error"] for e in bad)
    (total,) = [e for e in logs if e["event"] == "data.bad_lines"]
    assert total["total"] == 13
    (malformed,) = [e for e in logs if e["event"] == "frame.malformed"]
    assert malformed["file"] == str(path) and malformed["line"] == 4

    report = report_dict(result)
    assert report["bad_lines"] == 13
    assert report["data_files"] == [
        {"venue": "deribit", "path": str(path), "bad_lines": 13, "malformed_frames": 1, "unfinished": []}
    ]
    summary = io.StringIO()
    print_summary(result, summary)
    assert f"{path}: bad lines 13, malformed frames 1" in summary.getvalue()


def test_backtest_of_a_recording_directory_names_the_file_and_line(tmp_path: Path) -> None:
    """A `tradingd record` directory: bad lines are skipped and reported in the file they are
    in, and a malformed frame's report names that file and line."""
    folder = tmp_path / "rec"
    folder.mkdir()
    first = F.write(folder / "deribit-20261124T000000.000Z.rec", [(0, F.instruments()), (4, _ticker(4))])
    second = F.write(
        folder / "deribit-20261124T010000.000Z.rec",
        [(3_600_000, _ticker(3_600_000)), (3_600_001, b'{"jsonrpc":"2.0","method":"subscription"}')],
    )
    second.write_bytes(b"garbage\n" + second.read_bytes())
    assert RecordingSet(folder, "deribit").files == [first, second]
    seen = Scripted("s", _noop, [Subscription("deribit", F.OPTION, {"ticker"})])
    result, logs = _run(folder, seen)
    assert result.bad_lines == 1 and len(seen.seen) == 2
    (bad,) = [e for e in logs if e["event"] == "data.bad_line"]
    assert (bad["file"], bad["line"]) == (str(second), 1)
    malformed = [e for e in logs if e["event"] == "frame.malformed"]
    assert [(e["file"], e["line"]) for e in malformed] == [(str(second), 3)]


def test_backtest_says_a_zst_cut_inside_a_frame_was_read_in_part(tmp_path: Path) -> None:
    """A `.zst` cut inside a zstd frame (a crash, a partial copy) used to backtest to exit 0 on
    part of its time, silently. Now a warning names the file and the last time read from it,
    and the result, report and summary say so; the run still goes to the end of what is there."""
    frames = [(0, F.instruments())] + [(ms, _ticker(ms)) for ms in range(10, 40_000, 10)]
    whole = F.write(tmp_path / "whole.rec.zst", frames).read_bytes()
    path = tmp_path / "cut.rec.zst"
    path.write_bytes(whole[: len(whole) // 2])
    seen = Scripted("s", _noop, [Subscription("deribit", F.OPTION, {"ticker"})])
    result, logs = _run(path, seen)

    assert 0 < len(seen.seen) < len(frames) - 1
    assert result.end_ns is not None and result.malformed_frames == result.bad_lines == 0
    (stats,) = result.files
    assert stats.unfinished == ((str(path), result.end_ns),)  # the last complete line read
    (warning,) = [e for e in logs if e["event"] == "data.unfinished"]
    assert warning["file"] == str(path) and warning["last"] == format_ts(result.end_ns)
    assert warning["log_level"] == "warning"
    assert report_dict(result)["data_files"][0]["unfinished"] == [
        {"file": str(path), "last": format_ts(result.end_ns)}
    ]
    summary = io.StringIO()
    print_summary(result, summary)
    assert f"warning: {path} ends inside a zstd frame" in summary.getvalue()

    # The whole file: nothing to say.
    (tmp_path / "whole.rec.zst").write_bytes(whole)
    result, logs = _run(tmp_path / "whole.rec.zst", Scripted("s", _noop, []))
    assert result.files[0].unfinished == () and not [e for e in logs if e["event"] == "data.unfinished"]
    assert report_dict(result)["data_files"] == []


def test_a_bare_frame_among_timestamped_lines_is_a_bad_line(tmp_path: Path) -> None:
    """A line with no receive time inside a recording (a frame pasted in, a half-written line
    that starts with `{`) used to stop the whole backtest with `DataError`; it is a bad line like
    any other: reported with its file and number, counted, skipped."""
    path = F.write(
        tmp_path / "bt.rec",
        [
            (0, F.instruments()),
            (2, F.snapshot(F.OPTION, 2, 10, [(0.049, 3.0)], [(0.05, 2.0)])),
            (4, _ticker(4)),
            (5, _ticker(5)),
        ],
    )
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([*lines[:3], _ticker(9) + b"\n", *lines[3:]]))  # line 4: bare
    seen = Scripted("s", _noop, [Subscription("deribit", F.OPTION, {"ticker", "book"})])
    result, logs = _run(path, seen)
    assert result.bad_lines == 1
    assert [t.ts_exchange for t in seen.seen if isinstance(t, Ticker)] == [4_000_000, 5_000_000]
    (bad,) = [e for e in logs if e["event"] == "data.bad_line"]
    assert bad["file"] == str(path) and bad["line"] == 4 and "no receive time" in bad["error"]
