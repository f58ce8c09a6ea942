"""bench/bench_sweep.py is not timed here, only kept runnable on a tiny sample (3 minutes of the
bundled config's data, 2 trials a job, one run, local processes only: starting a Ray instance
alone takes 5-10 s here, and `tests/sweep/test_ray.py` runs the Ray executor): every job of its
three tables reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_sweep_benchmark_runs(tmp_path: Path) -> None:
    config = (ROOT / "config" / "backtest-deribit.toml").read_text()
    config = config.replace('path = "../data/deribit-sample.rec.zst"', 'path = "tiny.rec.zst"')
    config = config.replace("generate = { seed = 7, hours = 2.0 }", "generate = { seed = 7, hours = 0.05 }")
    assert 'path = "tiny.rec.zst"' in config, "the bundled config changed"
    assert "hours = 0.05" in config, "the bundled config changed"
    (tmp_path / "bt.toml").write_text(config)
    out = tmp_path / "figures.json"
    args = ["--config", str(tmp_path / "bt.toml"), "--quick", "--no-ray", "--minutes", "1.5,3"]
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_sweep.py"),
            *args,
            "--data-dir",
            str(tmp_path),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    figures = json.loads(out.read_text())["figures"]
    assert sorted(figures) == [
        "data: 1.5 min",
        "data: 3 min",
        "throughput: local, 1 worker",
        "throughput: local, 2 workers",
        "trials: 2 trials",
        "trials: 4 trials",
    ], sorted(figures)
    for name, f in figures.items():
        assert f["trials_per_min"] > 0 and f["cpu_s_per_trial"] > 0, (name, f)
    assert figures["trials: 4 trials"]["trials"] == 4
    for table in ("throughput (3 min", "growth with trials", "growth with data"):
        assert table in r.stdout, r.stdout
