"""`bench/bench_scaling.py` stays runnable (not timed here): its JSON has every part's figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_scaling_benchmark_runs_and_reports_every_figure() -> None:
    args = ["--quotes", "1500", "--strategies", "1,3", "--runs", "1", "--orders", "10,40"]
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_scaling.py"), *args, "--order-quotes", "1500", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    rows = out["strategies"]["rows"]
    assert [row["strategies"] for row in rows] == [1, 3]
    assert all(row["events_per_s"] > 0 for row in rows)
    assert out["strategies"]["events"] == 1500
    for kind in ("cancelled", "filled"):
        lo, hi = out["orders"][kind]["orders"]
        assert 0 < lo < hi
        assert out["orders"][kind]["bytes_per_order"] > 0
