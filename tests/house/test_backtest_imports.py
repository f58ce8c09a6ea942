"""A plain `tradingd backtest` (no `--report`) loads no charting library (issue 17: peak RSS).
matplotlib with numpy and Pillow costs 30-50 MiB resident in the backtest's process, about as much
as the whole replay of a million frames: it is imported only where a chart is drawn
(`engine/reports/html.py`), so a top-level import of it anywhere on the backtest's path would lift
every backtest's peak. Run in a fresh interpreter (the test process has them imported already)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.backtests import bundled_config_on

_CHILD = """
import json, sys
from tradingd.cli.main import main
code = main(["backtest", "--config", sys.argv[1], "--no-progress"])
heavy = ("matplotlib", "numpy", "PIL", "fontTools", "kiwisolver", "pyparsing")
print(json.dumps({"exit": code, "loaded": sorted(m for m in sys.modules if m.split(".")[0] in heavy)}))
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bundled_config_on(tmp_path_factory.mktemp("bt"), hours=0.02, seed=3)


def test_a_plain_backtest_imports_no_charting_library(config: Path, tmp_path: Path) -> None:
    env = {**os.environ, "TRADINGD_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(config)], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen == {"exit": 0, "loaded": []}
