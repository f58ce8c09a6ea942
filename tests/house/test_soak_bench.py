"""The soak benchmark (bench/bench_soak.py) is not timed here, only kept runnable: a few seconds
of orders, the RSS series and the slope printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_soak_benchmark_runs() -> None:
    args = ["--duration", "6", "--rate", "10", "--sample-s", "1", "--warmup-s", "2"]
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_soak.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "rss_mb" in r.stdout and "MB/hour" in r.stdout
    assert "(0 refused;" in r.stdout and "fills booked" in r.stdout
