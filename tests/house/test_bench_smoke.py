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
