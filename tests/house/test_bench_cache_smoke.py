"""bench/bench_cache.py is not timed here, only kept runnable on a tiny sample (a few seconds):
its four comparisons print their rows, the first run's and the writing run's ratios among them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_cache_benchmark_runs(tmp_path: Path) -> None:
    config = (ROOT / "config" / "backtest-deribit.toml").read_text()
    config = config.replace('path = "../data/deribit-sample.rec.zst"', 'path = "tiny.rec.zst"')
    config = config.replace("generate = { seed = 7, hours = 2.0 }", "generate = { seed = 7, hours = 0.01 }")
    assert 'path = "tiny.rec.zst"' in config and "hours = 0.01" in config, "the bundled config changed"
    (tmp_path / "bt.toml").write_text(config)
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_cache.py"),
            "--config",
            str(tmp_path / "bt.toml"),
            "--runs",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    for mode in (
        "first-frames",
        "first-cache",
        "writing",
        "data-frames",
        "data-cache",
        "backtest-frames",
        "backtest-cache",
    ):
        assert mode in r.stdout, r.stdout
    assert "a first run with the cache on costs" in r.stdout
    assert "writing the entry costs" in r.stdout and "cache is" in r.stdout
