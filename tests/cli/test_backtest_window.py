"""`tradingd backtest --start/--end` and `[backtest] start/end`: the window of the replay, the flags
over the file's keys; a bad time, or a start not before the end, is one line and exit 2 (the
command's and `check-config`'s); the event cache is the full run's."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from tests.support.backtests import bundled_config_on
from tradingd.cli.main import main

# The sample below: 6 minutes from 2026-11-24T00:00:00Z.
START, END = "2026-11-24T00:02:00Z", "2026-11-24T00:04:00Z"


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled backtest config on a few minutes of the sample."""
    return bundled_config_on(tmp_path_factory.mktemp("bt"), hours=0.1, seed=5)


def _with_window(config: Path, folder: Path, *lines: str) -> Path:
    """`config` with `lines` at the top of its [backtest] table."""
    text = config.read_text().replace(
        "[backtest]\n", "[backtest]\n" + "".join(f"{line}\n" for line in lines), 1
    )
    out = folder / "windowed.toml"
    out.write_text(text)
    return out


def _backtest(config: Path, *args: str) -> int:
    return main(["--log-level", "warning", "backtest", "--config", str(config), "--no-progress", *args])


def _summary(out: str) -> str:
    """The summary without what depends on the wall clock (the replay's time and rate) and the
    line saying where the events came from (the cache is written by the first run)."""
    return re.sub(r"replayed in .*", "", out.split("\n", 1)[1])


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_the_flags_set_the_window(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _backtest(config) == 0
    full = capsys.readouterr().out
    assert "backtest: 2026-11-24T00:00:00 -> 2026-11-24T00:05:59 UTC" in full
    assert _backtest(config, "--start", START, "--end", END) == 0
    out = capsys.readouterr().out
    assert "backtest: 2026-11-24T00:02:00 -> 2026-11-24T00:04:00 UTC (2 min 00 s of data)" in out
    events = [int(m.replace(",", "")) for m in re.findall(r"([\d,]+) events from", full + out)]
    assert events[1] < events[0] / 2, "the window's events only"
    assert out.startswith("data: events read from the decoded-event cache"), "the full run's entry"


def test_the_config_keys_set_the_window_and_the_flags_override_them(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _backtest(config, "--start", START, "--end", END) == 0
    by_flags = _summary(capsys.readouterr().out)
    # A TOML date-time without a zone is UTC; a string with one is converted.
    windowed = _with_window(
        config, tmp_path, "start = 2026-11-24T00:02:00", 'end = "2026-11-24T01:04:00+01:00"'
    )
    assert main(["check-config", str(windowed)]) == 0
    capsys.readouterr()
    assert _backtest(windowed) == 0
    assert _summary(capsys.readouterr().out) == by_flags
    assert _backtest(windowed, "--start", "2026-11-24 00:03") == 0
    assert "backtest: 2026-11-24T00:03:00 -> 2026-11-24T00:04:00 UTC" in capsys.readouterr().out
    assert _backtest(windowed, "--end", "2026-11-24T00:05:00Z") == 0
    assert "backtest: 2026-11-24T00:02:00 -> 2026-11-24T00:05:00 UTC" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--start", "tomorrow"], "--start: expected an ISO 8601 time in UTC"),
        (["--end", "2026-13-01"], "--end: expected an ISO 8601 time in UTC"),
        (
            ["--start", END, "--end", START],
            "the window's start (2026-11-24T00:04:00.000000Z, --start) is not before its end"
            " (2026-11-24T00:02:00.000000Z, --end)",
        ),
        (["--start", START, "--end", START], "is not before its end"),
    ],
    ids=["start-not-a-time", "end-not-a-date", "reversed", "empty"],
)
def test_a_bad_flag_is_one_line(
    config: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    assert _backtest(config, *args) == 2
    out, err = capsys.readouterr()
    assert out == "", "refused before any replay"
    line = _one_line(err)
    assert line.startswith("tradingd: error: ") and expected in line and "internal error" not in line


def test_a_flag_against_the_file_s_other_bound_names_both(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    windowed = _with_window(config, tmp_path, f'end = "{END}"')
    assert _backtest(windowed, "--start", "2026-11-24T00:05:00Z") == 2
    line = _one_line(capsys.readouterr().err)
    assert "(2026-11-24T00:05:00.000000Z, --start) is not before its end" in line
    assert f"[backtest] end of {windowed}" in line


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["start = 5"], "backtest.start: expected an ISO 8601 time in UTC"),
        (['end = "soon"'], "backtest.end: expected an ISO 8601 time in UTC"),
        (
            [f'start = "{END}"', f'end = "{START}"'],
            "backtest.end: expected a time after start (2026-11-24T00:04:00Z)",
        ),
        (
            ["start = 2026-11-24T00:02:00Z", "end = 2026-11-24T00:02:00Z"],
            "backtest.end: expected a time after start",
        ),
    ],
    ids=["start-a-number", "end-not-a-time", "reversed", "empty"],
)
def test_bad_config_keys_are_one_line_for_the_command_and_check_config(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], lines: list[str], expected: str
) -> None:
    windowed = _with_window(config, tmp_path, *lines)
    for argv in (["check-config", str(windowed)], ["backtest", "--config", str(windowed), "--no-progress"]):
        assert main(argv) == 2
        out, err = capsys.readouterr()
        line = _one_line(err)
        assert line.startswith(f"tradingd: error: {windowed}: ") and expected in line, line
        assert "Traceback" not in out + err


def test_a_window_without_data_is_a_warning_of_the_summary(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _backtest(config, "--start", "2026-11-25") == 0
    out = capsys.readouterr().out
    assert "the window 2026-11-25T00:00:00.0000000Z -> the data's end holds no frame of the data" in " ".join(
        out.split()
    )
