"""`bench/bench_scaling.py` stays runnable (not timed here): its JSON has every part's figures."""

from __future__ import annotations

import json
import os
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


def test_the_report_run_s_memory_phases_are_read_in_order(tmp_path: Path) -> None:
    from tests.support.backtests import bundled_config_on

    config = bundled_config_on(tmp_path, hours=0.02, seed=3)
    env = {**os.environ, "TRADINGD_CACHE_DIR": str(tmp_path / "cache")}
    bench = [sys.executable, str(ROOT / "bench" / "bench_scaling.py"), "--no-strategies", "--no-orders"]
    r = subprocess.run(
        [*bench, "--phases-config", str(config), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    phases = json.loads(r.stdout)["phases"]
    names = [p["phase"] for p in phases]
    assert names == [
        "imports (python, engine, CLI)",
        "the replay (summary printed)",
        "the JSON report written",
        "the replay's image, before exec",
        "drawing: imports (python, renderer)",
        "drawing: matplotlib imported",
        "drawing: the overview chart drawn",
        "drawing: chart of gamma_btc drawn",
        "drawing: chart of momentum_eth drawn",
        "drawing: end",
    ]
    # The kernel's counters are approximate (proc(5): split per-thread RSS counting), so no exact
    # ordering between marks; the drawing does lift the mark above the imports.
    assert all(p["rss_mib"] > 0 and p["hwm_mib"] > 0 for p in phases)
    assert phases[-1]["hwm_mib"] > phases[4]["rss_mib"]
    # The drawing process starts light: the replay's memory and the engine are not in it.
    assert phases[4]["rss_mib"] < phases[3]["rss_mib"]
