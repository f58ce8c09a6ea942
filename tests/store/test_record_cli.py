"""`tradingd record` (a subprocess) against the Deribit simulator served by the test, and the
`[recording]` table of `tradingd run`: what is recorded decodes, and replays as a backtest."""

from __future__ import annotations

import functools
import os
import signal
import sys
from pathlib import Path

import orjson
import trio

from tradingd.simulators.deribit.simulator import DeribitSimulator, serve

ROOT = Path(__file__).resolve().parent.parent.parent
CLI = [sys.executable, "-c", "import sys; from tradingd.cli.main import main; sys.exit(main())"]
ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("DERIBIT_")},
    "PYTHONPATH": str(ROOT),
}

STRATEGY = """
[[strategies]]
name = "gamma_btc"
class = "gamma_scalp"
[strategies.params]
underlying = "BTC"
hedge = "BTC-PERPETUAL"
target_days = 30
option_size = 1
delta_band = 0.05
min_hedge_interval_s = 10
"""


async def serve_sim(nursery: trio.Nursery) -> str:
    sim = DeribitSimulator(seed=5, step_s=0.05)
    binds = await nursery.start(functools.partial(serve, sim))
    return str(binds[0]).removeprefix("http://")


def venue_table(address: str) -> str:
    return f"""
[venues.deribit]
url = "ws://{address}/ws/api/v2"
rest_url = "http://{address}"
currencies = ["BTC"]
"""


def check_recording(directory: Path) -> int:
    """The manifest is closed and names files that hold its frames; returns the frame count."""
    manifest = orjson.loads((directory / "manifest.json").read_bytes())
    assert manifest["format"] == "tradingd-recording/1" and manifest["closed"] is True
    deribit = manifest["venues"]["deribit"]
    assert deribit["dropped"] == 0 and deribit["frames"] > 20
    assert any(c.startswith("ticker.BTC-PERPETUAL") for c in deribit["channels_at_end"])
    files = [directory / f["name"] for f in deribit["files"]]
    assert files and all(f.exists() for f in files)
    frames: int = deribit["frames"]
    return frames


async def backtest(tmp: Path, directory: Path) -> dict[str, object]:
    """Replay the recording directory with the same strategy; the JSON report."""
    config = tmp / "replay.toml"
    config.write_text(
        f'mode = "backtest"\n[venues.deribit]\n[[backtest.data]]\nvenue = "deribit"\n'
        f'path = "{directory}"\n{STRATEGY}',
        encoding="utf-8",
    )
    report = tmp / "report.json"
    done = await trio.run_process(
        [*CLI, "--log-level", "warning", "backtest", "--config", str(config), "--report", str(report)],
        capture_stdout=True,
        capture_stderr=True,
        env=ENV,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    data: dict[str, object] = orjson.loads(report.read_bytes())
    return data


async def test_record_for_a_duration_then_decode_and_replay(nursery: trio.Nursery, tmp_path: Path) -> None:
    address = await serve_sim(nursery)
    config = tmp_path / "record.toml"
    # A live config: `record` runs it in paper mode, so no credentials are needed or used.
    # Its `[logging] file` is the daemon's log (the tour's configs have one): the recorder's
    # paper orders go to the recording's own record.log, never into the daemon's.
    config.write_text(
        f'mode = "live"\n[logging]\nfile = "daemon.log"\n[daemon]\nstate_dir = "state"\n'
        f"{venue_table(address)}{STRATEGY}",
        encoding="utf-8",
    )
    out = tmp_path / "rec"
    with trio.fail_after(40):
        done = await trio.run_process(
            [
                *CLI,
                "--log-format",
                "json",
                "record",
                "--config",
                str(config),
                "--out",
                str(out),
                "--duration",
                "3",
            ],
            capture_stdout=True,
            capture_stderr=True,
            env=ENV,
            check=False,
        )
    log = done.stderr.decode()
    assert done.returncode == 0, log
    assert "deribit:" in log and "0 dropped" in log
    assert '"mode":"paper"' in log  # no order reached the simulator
    frames = check_recording(out)
    # Its status file is the recording's, never that of a daemon running on the same config.
    assert orjson.loads((out / "status.json").read_bytes())["mode"] == "paper"
    assert not (tmp_path / "state" / "status.json").exists()
    assert not (tmp_path / "daemon.log").exists()
    recorded = [orjson.loads(line) for line in (out / "record.log").read_bytes().splitlines()]
    assert any(e.get("event") == "daemon.ready" for e in recorded)

    files = sorted(out.glob("deribit-*.rec.zst"))
    decoded = await trio.run_process(
        [*CLI, "decode", "--venue", "deribit", *map(str, files)], capture_stdout=True, env=ENV
    )
    events = [orjson.loads(line) for line in decoded.stdout.splitlines()]
    assert sum(e["type"] == "ticker" for e in events) > 10
    assert len(events) < frames  # the answers (auth, instruments, subscribe) are recorded too

    report = await backtest(tmp_path, out)
    gamma = report["strategies"]["gamma_btc"]  # type: ignore[index]
    assert gamma["orders"] >= 1  # it saw the recorded option and perpetual and acted on them


async def test_recording_beside_live_trading_stops_cleanly_on_sigterm(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    address = await serve_sim(nursery)
    config = tmp_path / "paper.toml"
    config.write_text(
        f'mode = "paper"\n[daemon]\nstate_dir = "state"\n[recording]\nenabled = true\ndir = "recs"\n'
        f"{venue_table(address)}{STRATEGY}",
        encoding="utf-8",
    )
    log = tmp_path / "daemon.log"
    with log.open("wb") as sink:
        proc = await nursery.start(
            functools.partial(
                trio.run_process,
                [*CLI, "--log-format", "json", "run", "--config", str(config)],
                stdout=sink,
                stderr=sink,
                env=ENV,
                check=False,
            )
        )
    status_file = tmp_path / "state" / "status.json"
    with trio.fail_after(20):
        while True:
            await trio.sleep(0.1)
            try:
                status = orjson.loads(status_file.read_bytes())
            except (OSError, ValueError):
                continue
            recording = status.get("recording") or {}
            if (recording.get("venues") or {}).get("deribit", {}).get("frames", 0) > 20:
                break
    assert recording["dir"] == str(tmp_path / "recs") and recording["write_errors"] == 0
    proc.send_signal(signal.SIGTERM)
    with trio.fail_after(15):
        assert await proc.wait() == 0
    check_recording(tmp_path / "recs")
    assert "recorder.closed" in log.read_text()
