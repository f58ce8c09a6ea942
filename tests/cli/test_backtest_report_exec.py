"""`tradingd backtest --report` run as a command draws its charts in the process it replaces itself
with (cli/render.py, issue 17: peak RSS with --report): the replay's image never runs to its
end, the lines and files are what drawing in place gives, errors there are the command's one line
and exit status 1, and the drawing process has none of the engine's machinery loaded."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.backtests import bundled_config_on
from tradingd.cli.main import main
from tradingd.engine.reports.html import render_run

# The command as the console script runs it (`main()` reading sys.argv: its own process), with an
# exit handler the replay's image runs only if it is not replaced (exec skips exit handlers).
_COMMAND = """
import atexit, sys
atexit.register(lambda: print("REPLAY-IMAGE-EXITED", file=sys.stderr, flush=True))
from tradingd.cli.console import main
sys.exit(main())
"""

_OUTPUTS = ["report.html", "report.png", "report-gamma_btc.png", "report-momentum_eth.png"]


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bundled_config_on(tmp_path_factory.mktemp("bt"), hours=0.02, seed=3)


def _command(config: Path, run: Path, tmp: Path, **env: str) -> subprocess.CompletedProcess[str]:
    argv = ["backtest", "--config", str(config), "--no-progress", "--report", str(run)]
    return subprocess.run(
        [sys.executable, "-c", _COMMAND, *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "TRADINGD_CACHE_DIR": str(tmp / "cache"), **env},
        check=False,
        timeout=300,
    )


def test_the_charts_are_drawn_by_the_process_the_backtest_became(config: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = _command(config, run, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "REPLAY-IMAGE-EXITED" not in proc.stderr  # replaced (exec), not returned from
    lines = proc.stderr.strip().splitlines()
    assert re.fullmatch(rf"report written to {re.escape(str(run / 'report.json'))} in \d+\.\d s", lines[-2])
    assert lines[-1] == f"  and beside it: {', '.join(_OUTPUTS)}"
    assert proc.stdout.startswith("data: ")  # the summary, flushed before the exec
    # The same bytes as drawing the same JSON in place (tradingd report, the old path).
    again = tmp_path / "again"
    again.mkdir()
    shutil.copy(run / "report.json", again / "report.json")
    render_run(again)
    for name in _OUTPUTS:
        assert (run / name).read_bytes() == (again / name).read_bytes(), name


def test_without_matplotlib_the_drawing_process_says_so_in_one_line(config: Path, tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "matplotlib"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('matplotlib is not installed (test)')\n")
    run = tmp_path / "run"
    path = os.pathsep.join(p for p in (str(shadow.parent), os.environ.get("PYTHONPATH")) if p)
    proc = _command(config, run, tmp_path, PYTHONPATH=path)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "REPLAY-IMAGE-EXITED" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "tradingd: error: the HTML report and its charts need the 'report' extra:"
        " pip install 'tradingd[report]' (the JSON report is written)"
    )
    assert (run / "report.json").exists()


def test_a_chart_that_cannot_be_written_is_one_line(config: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "report.png").mkdir(parents=True)  # the overview's path is taken by a folder
    proc = _command(config, run, tmp_path)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert (
        proc.stderr.strip().splitlines()[-1]
        == f"tradingd: error: cannot write the report in {run}: Is a directory"
    )


# The drawing process as exec starts it, then what it had loaded.
_RENDER = """
import json, runpy, sys
sys.argv = ["render", *sys.argv[1:]]
try:
    runpy.run_module("tradingd.cli.render", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
print(json.dumps({"exit": code, "modules": sorted(sys.modules)}))
"""

_MACHINERY = ("trio", "structlog", "rich", "attrs", "attr", "msgspec", "zstandard", "tradingd.config")
_ROOMS = ("backtest", "runtime", "venue", "store", "logs", "daemon", "sim", "sweep")


def test_the_drawing_process_loads_none_of_the_engine_s_machinery(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert (
        main(["backtest", "--config", str(config), "--no-progress", "--no-cache", "--report", str(run)]) == 0
    )
    capsys.readouterr()
    for name in _OUTPUTS:
        (run / name).unlink()
    proc = subprocess.run(
        [sys.executable, "-P", "-c", _RENDER, str(run / "report.json"), "--since", "0"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["exit"] == 0
    modules: list[str] = seen["modules"]
    assert "matplotlib" in modules  # it drew, here
    assert sorted((run / name).name for name in _OUTPUTS if (run / name).exists()) == sorted(_OUTPUTS)
    heavy = [m for m in modules if m.split(".")[0] in _MACHINERY or m in _MACHINERY]
    rooms = [m for m in modules if m.startswith("tradingd.engine.") and m.split(".")[2] in _ROOMS]
    assert heavy == [] and rooms == [], (heavy, rooms)


def test_tradingd_report_as_a_command_draws_in_the_process_it_becomes(config: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert _command(config, run, tmp_path).returncode == 0
    before = {name: (run / name).read_bytes() for name in _OUTPUTS}
    for name in _OUTPUTS:
        (run / name).unlink()
    proc = subprocess.run(
        [sys.executable, "-c", _COMMAND, "report", str(run)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "REPLAY-IMAGE-EXITED" not in proc.stderr
    assert proc.stdout.splitlines() == [str(run / name) for name in _OUTPUTS]
    assert {name: (run / name).read_bytes() for name in _OUTPUTS} == before
    missing = subprocess.run(
        [sys.executable, "-c", _COMMAND, "report", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        f"tradingd: error: {tmp_path / 'none'}: no such file (give a run directory holding report.json,"
        " or a JSON report)"
    ]
