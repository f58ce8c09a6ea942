"""A backtest's log lines carry the simulated (market) time: `ts` is the replay's clock, `"clock":
"sim"` says so and `wall_ts` keeps the wall time; `tradingd logs --since/--until` then cut a
backtest's log by market time. Lines before the first frame, and every line outside a replay
(a live daemon's), keep the wall time and have no `clock`."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import trio

from tests.support.backtests import BuyOnce
from tests.support.log_streams import _Stream
from tradingd.connectors.deribit import PLUGIN
from tradingd.engine.backtest.kernel import BacktestKernel, DataSource
from tradingd.engine.logs.setup import configure_logging, simulated_clock
from tradingd.simulators.deribit import SIMULATOR as DERIBIT_SIM

ROOT = Path(__file__).resolve().parent.parent.parent
_SCRIPT = shutil.which("tradingd", path=str(Path(sys.executable).parent))
TRADINGD = [_SCRIPT] if _SCRIPT else [sys.executable, "-m", "tradingd.cli.main"]


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def receive_times(rec: Path) -> tuple[dt.datetime, dt.datetime]:
    """The first and last receive times of a plain recording (`<ISO time> <frame>` lines)."""
    lines = rec.read_bytes().splitlines()
    return when(lines[0].split(b" ", 1)[0].decode()), when(lines[-1].split(b" ", 1)[0].decode())


@pytest.fixture(scope="module")
def backtest_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dt.datetime, dt.datetime]:
    """A real `tradingd backtest` (the README's config on a 6-minute sample) with its JSON log,
    at info level, in a file; and the wall times the run began and ended."""
    folder = tmp_path_factory.mktemp("sim-clock")
    rec = folder / "short.rec"
    DERIBIT_SIM.generate_sample(rec, {"hours": 0.1, "seed": 7})
    config = (ROOT / "config" / "backtest-deribit.toml").read_text()
    config = config.replace('path = "../data/deribit-sample.rec.zst"', 'path = "short.rec"')
    config = "\n".join(line for line in config.splitlines() if not line.startswith("generate = "))
    # `[logging] file` too: the backtest appends the same JSON lines there.
    config = config.replace("[logging]\n", '[logging]\nfile = "bt-file.log"\n', 1)
    assert "bt-file.log" in config
    (folder / "bt.toml").write_text(config)
    log = folder / "backtest.log"
    began = dt.datetime.now(dt.UTC)
    with log.open("wb") as err:
        r = subprocess.run(
            [*TRADINGD, "--log-format", "json", "--log-level", "info", "backtest", "--config", "bt.toml"],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=err,
            timeout=120,
            check=False,
        )
    ended = dt.datetime.now(dt.UTC)
    assert r.returncode == 0, log.read_text()[-2000:]
    return log, rec, began, ended


def test_the_logging_file_of_a_backtest_config_gets_the_same_lines(
    backtest_log: tuple[Path, Path, dt.datetime, dt.datetime],
) -> None:
    """`[logging] file` was ignored by `tradingd backtest` (only `run` and `record` opened it)."""
    log = backtest_log[0]
    file = log.parent / "bt-file.log"
    assert file.exists(), "the backtest did not write its [logging] file"
    written = [e for _, e in entries(file)]
    assert written == [e for _, e in entries(log)]
    assert any(e.get("clock") == "sim" for e in written)


def entries(path: Path) -> list[tuple[bytes, dict[str, Any]]]:
    return [(raw, json.loads(raw)) for raw in path.read_bytes().splitlines(keepends=True)]


def logs(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*TRADINGD, "logs", *args], capture_output=True, timeout=60, check=False)


def test_a_backtests_lines_carry_the_market_time_and_say_so(
    backtest_log: tuple[Path, Path, dt.datetime, dt.datetime],
) -> None:
    log, rec, began, ended = backtest_log
    first, last = receive_times(rec)
    found = entries(log)
    assert len(found) > 20 and any(e["event"] == "order.fill" for _, e in found)
    for _, e in found:
        assert list(e)[:3] == ["ts", "level", "event"]  # the stable head, unchanged
        assert e["clock"] == "sim"
        # Market time: inside the recording (answers come a latency after the last frame).
        assert first <= when(e["ts"]) <= last + dt.timedelta(seconds=1), e
        # The wall time is kept beside it.
        assert began <= when(e["wall_ts"]) <= ended
    times = [when(e["ts"]) for _, e in found]
    assert times == sorted(times)  # the replay's clock never goes back


def test_logs_since_and_until_cut_a_backtest_log_by_market_time(
    backtest_log: tuple[Path, Path, dt.datetime, dt.datetime],
) -> None:
    log, rec, _, _ = backtest_log
    first, last = receive_times(rec)
    found = entries(log)
    middle = first + (last - first) / 2
    since = middle.isoformat().replace("+00:00", "Z")
    r = logs(str(log), "--since", since, "--json")
    after = b"".join(raw for raw, e in found if when(e["ts"]) >= middle)
    assert r.returncode == 0 and r.stdout == after
    assert 0 < after.count(b"\n") < len(found)
    r = logs(str(log), "--until", since, "--json")
    assert r.stdout == b"".join(raw for raw, e in found if when(e["ts"]) <= middle)
    # Pretty: the same lines, each starting with its market time.
    pretty = logs(str(log), "--since", since).stdout.decode().splitlines()
    assert len(pretty) == after.count(b"\n")
    assert all(line[:10] == since[:10] for line in pretty)


def test_lines_before_the_first_frame_and_after_the_run_keep_the_wall_time(tmp_path: Path) -> None:
    rec = tmp_path / "bad-start.rec"
    DERIBIT_SIM.generate_sample(rec, {"hours": 0.02, "seed": 3})
    rec.write_bytes(b"not a recording line\n" + rec.read_bytes())
    stream = _Stream()
    configure_logging("info", "json", stream)
    kernel = BacktestKernel({"deribit": PLUGIN}, [DataSource("deribit", rec)], [BuyOnce()])
    before = dt.datetime.now(dt.UTC)
    trio.run(kernel.run)
    structlog.get_logger("t").info("after.the.run")
    after = dt.datetime.now(dt.UTC)
    lines = [json.loads(raw) for raw in stream.buffer.getvalue().splitlines()]
    bad = next(e for e in lines if e["event"] == "data.bad_line")
    assert "clock" not in bad and "wall_ts" not in bad and before <= when(bad["ts"]) <= after
    fill = next(e for e in lines if e["event"] == "order.fill")
    assert fill["clock"] == "sim" and when(fill["ts"]) < before - dt.timedelta(days=1)  # 2026-11-24
    done = lines[-1]
    assert done["event"] == "after.the.run" and "clock" not in done and before <= when(done["ts"]) <= after


def test_the_simulated_clock_is_the_replays_own(tmp_path: Path) -> None:
    """Only the code inside `simulated_clock` is stamped with it: a line logged elsewhere in the
    process meanwhile (another trio task) keeps the wall time."""
    stream = _Stream()
    configure_logging("info", "json", stream)
    log = structlog.get_logger("t")
    sim_ns = 1_795_478_400_123_456_789  # 2026-11-24T00:00:00.123456Z

    async def main() -> None:
        entered, logged = trio.Event(), trio.Event()

        async def elsewhere() -> None:
            await entered.wait()
            log.info("elsewhere")  # while the other task is inside its simulated clock
            logged.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(elsewhere)
            with simulated_clock(lambda: sim_ns):
                entered.set()
                await logged.wait()
                log.info("inside")
        log.info("outside")

    trio.run(main)
    lines = {e["event"]: e for e in (json.loads(raw) for raw in stream.buffer.getvalue().splitlines())}
    assert lines["inside"]["ts"] == "2026-11-24T00:00:00.123456Z" and lines["inside"]["clock"] == "sim"
    for name in ("outside", "elsewhere"):
        assert "clock" not in lines[name] and when(lines[name]["ts"]).year >= 2026
        assert abs(when(lines[name]["ts"]) - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)


def test_a_window_in_todays_time_on_a_backtest_log_says_why_it_found_nothing(
    backtest_log: tuple[Path, Path, dt.datetime, dt.datetime],
) -> None:
    """A new user's first try, `--since 1h`, counts back from now: a replay of another day has
    no line there, and `tradingd logs` says the log is in market time, and from when to when."""
    log, _, _, _ = backtest_log
    found = entries(log)
    r = logs(str(log), "--since", "1h")
    assert r.returncode == 0 and r.stdout == b""
    err = r.stderr.decode()
    assert "simulated" in err and "market time" in err
    assert found[0][1]["ts"] in err and found[-1][1]["ts"] in err
    # A window that finds lines says nothing of the kind.
    assert logs(str(log), "--since", found[0][1]["ts"], "--json").stderr == b""
