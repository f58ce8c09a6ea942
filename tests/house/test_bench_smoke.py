"""The benchmarks are not timed here, only kept runnable: a renamed attribute must not break them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_decode_benchmark_runs() -> None:
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_decode.py"), "--frames", "200", "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "option ticker" in r.stdout and "frames/s" in r.stdout


def test_live_deribit_benchmark_runs() -> None:
    """The live benchmark end to end, tiny: the load generator, every client in its own process,
    the figures printed (their values are the benchmark's business, not this test's)."""
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_deribit_live.py"),
            "--burst-steps",
            "20",
            "--rounds",
            "1",
            "--probes",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    for line in (
        "load generator:",
        "bare trio-websocket client:",
        "client cost:",
        "ratio to the bare",
        "tick-to-order:",
    ):
        assert line in r.stdout, r.stdout
