"""Issue 16: `tradingd status` as a new user reads it, on an 80-column terminal and piped: every
number and name whole (no `548…`), a stalled feed said to be stale, a stopped daemon said to be
stopped with its ages counted to now, "1 strategy", and the status of a `tradingd record`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.daemon_process import ROOT
from tradingd.cli.main import main

LONG_NAME = "gamma_scalp_btc_weekly_and_monthly_hedged"[:40]  # the longest name a user might give
OPTION = "BTC-27DEC24-100000-C"
ORDER_ID = "gamma_scalp_btc_weekly-1733480000000-000042"


def realistic(now_ns: int, **top: Any) -> dict[str, Any]:
    """A status file as a daemon that ran for days writes it: big counters, long names,
    positions, PnL in the millions, an open order."""
    venue = {
        "feed": "live",
        "last_frame_ns": now_ns - 300_000_000,
        "connected": True,
        "ready": True,
        "frames": 548_123_456,
        "malformed": 1_234,
        "connects": 18,
        "disconnects": 17,
        "stale": 3,
        "last_frame_age_s": 0.3,
        "channels": 1_264,
        "subscriptions": 1_250,
        "book_gaps": 12_345,
        "resubscribed_books": 6_789,
        "deferred_resnapshots": 0,
        "refused_instruments": 0,
        "unrecorded": 0,
    }
    strategy = {
        "state": "running",
        "failure": None,
        "events": 98_765_432,
        "errors": 0,
        "conflated": 1_234_567,
        "merged": 23_456,
        "dropped": 7,
        "orders_sent": 45_678,
        "rejected": 321,
        "open_orders": 1,
        "positions": {f"deribit:{OPTION}": "-125.5", "deribit:BTC-PERPETUAL": "-1234560"},
        "realized_pnl": -1_234_567.891234,
        "unrealized_pnl": 2_345_678.9,
        "fees": 123_456.78,
        "waiting_fills": 0,
    }
    status = {
        "pid": os.getpid(),  # alive: the daemon runs
        "mode": "live",
        "started_ns": now_ns - 3 * 86_400 * 10**9,
        "updated_ns": now_ns,
        "ready": True,
        "stopping": False,
        "kill_switch": None,
        "status": "live: deribit up; 2 strategies; 1 open order; PnL +987,654.32 USD",
        "venues": {"deribit": venue},
        "strategies": {LONG_NAME: strategy, "momentum_eth": {**strategy, "positions": {}}},
        "open_orders": [
            {
                "client_order_id": ORDER_ID,
                "order_id": "9876543210",
                "strategy": LONG_NAME,
                "venue": "deribit",
                "instrument": OPTION,
                "side": "sell",
                "price": "0.1235",
                "size": "125.5",
                "filled": "12.5",
                "state": "open",
                "age_s": 4_321.0,
            }
        ],
        "waiting_fills": 0,
        "journal": {"path": "/var/lib/tradingd/journal.sqlite", "writes": 1_234_567, "failures": 0},
    }
    status.update(top)
    return status


# Each value as a person must be able to read it, whole.
WHOLE = [
    "548,123,456",  # frames
    "1,234",  # malformed
    "1,264",
    "1,250",
    "12,345/6,789",  # book gaps / resnapshots
    "17 (3 for a silent feed)",  # reconnects
    LONG_NAME,
    "98,765,432",
    "1,234,567/23,456/7",
    "45,678",
    f"deribit:{OPTION} -125.5",
    "deribit:BTC-PERPETUAL -1,234,560",
    "-1,234,567.89 / +2,345,678.90 / 123,456.78",
    ORDER_ID,
    "0.1235",
    "1,234,567 writes",
]


def _check_whole(out: str) -> None:
    assert "…" not in out, out
    assert max(len(line) for line in out.splitlines()) <= 80, out
    flat = " ".join(out.split())  # a value wrapped at a space is still whole
    for value in WHOLE:
        assert value in flat, (value, out)


def _write(tmp_path: Path, status: dict[str, Any]) -> Path:
    path = tmp_path / "status.json"
    path.write_bytes(orjson.dumps(status))
    return path


def test_status_on_an_80_column_terminal_shows_every_value_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, realistic(time.time_ns()))
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["status", "--status-file", str(path)]) == 0
    out = capsys.readouterr().out
    _check_whole(out)
    assert "running" in out


def test_status_piped_shows_every_value_whole(tmp_path: Path) -> None:
    path = _write(tmp_path, realistic(time.time_ns()))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["PYTHONPATH"] = str(ROOT)
    cli = [sys.executable, "-c", "import sys; from tradingd.cli.main import main; sys.exit(main())"]
    shown = subprocess.run(
        [*cli, "status", "--status-file", str(path)],
        capture_output=True,
        env=env,
        check=False,
        text=True,
    )
    assert shown.returncode == 0, shown.stderr
    _check_whole(shown.stdout)


def test_status_on_a_wide_terminal_is_a_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, realistic(time.time_ns()))
    monkeypatch.setenv("COLUMNS", "250")
    assert main(["status", "--status-file", str(path)]) == 0
    out = capsys.readouterr().out
    assert "┃ strategy" in out and "…" not in out
    for value in WHOLE:
        assert value in out, value


def test_a_stale_feed_is_said_with_its_silence_counted_to_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time_ns()
    status = realistic(now)
    # The session reconnected during the silence: its own age restarted (0.6 s), the frame is 42 s old.
    status["venues"]["deribit"].update(feed="stale", last_frame_ns=now - 42 * 10**9, last_frame_age_s=0.6)
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["status", "--status-file", str(_write(tmp_path, status))]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "stale: no frame for 42 s" in out
    assert "42 s ago" in out and "0.6 s ago" not in out


def test_a_stopped_daemon_is_said_stopped_with_ages_as_of_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time_ns()
    stopped_at = now - 125 * 10**9  # stopped two minutes ago
    status = realistic(stopped_at, stopped=True)
    # The final write: the stop had closed the connection; the frame came just before.
    status["venues"]["deribit"].update(
        feed="down",
        feed_before_stop="live",
        connected=False,
        last_frame_ns=stopped_at - 100_000_000,
        last_frame_age_s=0.1,
    )
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["status", "--status-file", str(_write(tmp_path, status))]) == 3
    out = capsys.readouterr().out
    flat = " ".join(out.split())
    assert "stopped at" in flat and "2 min 05 s ago" in flat and "ran 3 d 0 h" in flat
    assert "was live" in flat
    assert "2 min 05 s ago" in flat.split("last frame", 1)[1]  # the frame's age counted to now
    assert "0.1 s ago" not in flat and "ready yes" not in flat and "│ yes" not in out
    assert "running" not in flat.replace("ran 3 d", "")  # neither the daemon nor its strategies


def test_a_daemon_killed_is_not_running_and_its_ages_count_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time_ns()
    status = realistic(now - 60 * 10**9)  # its last write, a minute ago, and no word since
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["status", "--status-file", str(_write(tmp_path, status))]) == 3
    flat = " ".join(capsys.readouterr().out.split())
    assert "not responding" in flat and "was live" in flat and "was running" in flat
    assert "1 min 00 s ago" in flat.split("last frame", 1)[1]


def test_one_of_a_thing_is_said_in_the_singular(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status = realistic(time.time_ns(), waiting_fills=1)
    status["journal"].update(writes=1, failures=1)
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["status", "--status-file", str(_write(tmp_path, status))]) == 0
    flat = " ".join(capsys.readouterr().out.split())
    assert "1 write, 1 failure" in flat
    assert "1 fill waits for a first index price" in flat


def test_status_of_a_recording_from_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "rec"
    out_dir.mkdir()
    recording = {
        "dir": str(out_dir),
        "write_errors": 0,
        "venues": {"deribit": {"frames": 1_234_567, "bytes": 45_600_000, "dropped": 0, "files": 1}},
    }
    status = realistic(time.time_ns(), mode="paper", recording=recording, journal=None, open_orders=[])
    _write(out_dir, status)
    monkeypatch.setenv("COLUMNS", "80")
    # `tradingd record --out DIR` keeps its status there: the directory is enough.
    assert main(["status", "--status-file", str(out_dir)]) == 0
    flat = " ".join(capsys.readouterr().out.split())
    assert f"recording into {out_dir}" in flat
    assert "deribit: 1,234,567 frames, 45.6 MB in 1 file, 0 dropped" in flat


def test_status_of_a_config_says_where_a_recording_keeps_its_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "record.toml"
    config.write_text(
        'mode = "paper"\n[venues.deribit]\ncurrencies = ["BTC"]\n[daemon]\nstate_dir = "state"\n',
        encoding="utf-8",
    )
    assert main(["status", "--config", str(config)]) == 3
    err = capsys.readouterr().err
    assert "not running" in err and "tradingd status --status-file <its --out directory>" in err


def test_funding_payments_given_up_are_said_with_where_to_find_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`funding_payments_not_booked` (payments held past funding_max_lookback_s, given up for a person to
    book) is said, as fills not booked are; nothing when none."""
    monkeypatch.setenv("COLUMNS", "80")
    status = realistic(time.time_ns(), funding_payments_not_booked=2)
    assert main(["status", "--status-file", str(_write(tmp_path, status))]) == 0
    flat = " ".join(capsys.readouterr().out.split())
    assert "2 funding payments given up unbooked" in flat and "funding.not_booked" in flat
    assert main(["status", "--status-file", str(_write(tmp_path, realistic(time.time_ns())))]) == 0
    assert "given up unbooked" not in capsys.readouterr().out
