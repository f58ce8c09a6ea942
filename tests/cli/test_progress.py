"""Progress on a terminal for the long light commands (issue 16): `generate` (seconds per hour
of market), `data inspect`, and the first run's sample in `backtest`. A bar on stderr when it is
a terminal, nothing extra otherwise or with `--no-progress` (stdout stays the command's output,
for pipes)."""

from __future__ import annotations

import errno
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from tradingd.cli.main import main
from tradingd.engine.sim.plugins import load_simulator

ROOT = Path(__file__).resolve().parent.parent.parent
CLI = [sys.executable, "-m", "tradingd.cli.console"]


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def _on_a_terminal(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run `tradingd argv` with stderr on a pseudo-terminal (80 columns) and stdout on a pipe:
    (exit status, stdout, what the terminal received)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*CLI, *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=follower,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "80", "TERM": "xterm"},
    )
    os.close(follower)
    received = bytearray()
    try:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError as exc:  # EIO: every writer of the terminal has closed it
                if exc.errno != errno.EIO:
                    raise
                break
            if not chunk:
                break
            received += chunk
        assert proc.stdout is not None
        out = proc.stdout.read().decode()
        code = proc.wait(timeout=300)
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return code, out, received.decode(errors="replace")


@pytest.mark.parametrize("venue", ["deribit", "derive", "polymarket"])
def test_the_generators_report_market_time_up_to_the_total(venue: str, tmp_path: Path) -> None:
    calls: list[tuple[float, float]] = []
    frames = load_simulator(venue).generate_sample(
        tmp_path / "s.rec.zst", {"hours": 0.02, "seed": 3}, lambda done, total: calls.append((done, total))
    )
    assert frames > 0 and len(calls) >= 2
    assert {total for _, total in calls} == {72.0}  # 0.02 h in seconds of market time
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == 72.0 and 0 <= done[0] < 72.0


def test_generate_on_a_terminal_shows_a_bar_and_no_progress_hides_it(tmp_path: Path) -> None:
    out_file = tmp_path / "g.rec.zst"
    argv = ["generate", "--venue", "deribit", "--out", str(out_file), "--hours", "0.05"]
    code, out, term = _on_a_terminal(argv, tmp_path)
    assert (code, out) == (0, "")
    assert "generating g.rec.zst" in term and "100%" in term
    assert f"frames to {out_file} in " in term.rstrip().splitlines()[-1]  # after the bar, gone
    code, out, term = _on_a_terminal([*argv, "--no-progress"], tmp_path)
    assert (code, out) == (0, "")
    assert "generating" not in term and term.strip().startswith("wrote ")


def test_generate_off_a_terminal_prints_only_its_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "g.rec.zst"
    assert main(["generate", "--venue", "deribit", "--out", str(out_file), "--hours", "0.02"]) == 0
    out, err = capfd.readouterr()
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith("wrote ") and f"frames to {out_file} in " in line


def test_data_inspect_on_a_terminal_shows_a_bar_and_the_same_output(tmp_path: Path) -> None:
    sample = tmp_path / "s.rec.zst"
    load_simulator("deribit").generate_sample(sample, {"hours": 0.05, "seed": 3})
    argv = ["data", "inspect", "--venue", "deribit", str(sample)]
    code, out_tty, term = _on_a_terminal(argv, tmp_path)
    assert code == 0 and "reading s.rec.zst" in term and "%" in term
    piped = subprocess.run([*CLI, *argv], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert piped.returncode == 0 and piped.stderr == ""  # off a terminal: nothing extra
    assert out_tty == piped.stdout and "frames" in piped.stdout
    code, _, term = _on_a_terminal([*argv, "--no-progress"], tmp_path)
    assert code == 0 and "reading" not in term


def test_backtest_first_run_sample_shows_a_bar(tmp_path: Path) -> None:
    text = (ROOT / "config" / "backtest-deribit.toml").read_text()
    data = tmp_path / "data" / "first.rec.zst"
    cfg = tmp_path / "bt.toml"
    cfg.write_text(
        text.replace('path = "../data/deribit-sample.rec.zst"', f'path = "{data}"').replace(
            "generate = { seed = 7, hours = 2.0 }", "generate = { seed = 7, hours = 0.02 }"
        )
    )
    code, out, term = _on_a_terminal(["backtest", "--config", str(cfg)], tmp_path)
    assert code == 0, term
    assert "(first run only; deterministic, offline)" in term and "generating first.rec.zst" in term
    assert "gamma_btc" in out  # the summary, on stdout as ever
    data.unlink()
    code, _, term = _on_a_terminal(["backtest", "--config", str(cfg), "--no-progress"], tmp_path)
    assert code == 0 and "(first run only; deterministic, offline)" in term
    assert "generating first.rec.zst" not in term
