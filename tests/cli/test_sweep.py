"""`tradingd sweep` as a user runs it (a subprocess): the same sweep twice prints the same table
and writes the same results; Ctrl-C exits 130 keeping the finished trials, and the same command
again runs only the rest (counted: each run of the trap strategy leaves a file) and prints the
table of an uninterrupted run; a sweep whose every trial fails exits 1."""

from __future__ import annotations

import errno
import json
import os
import pty
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.sweep_base import sweep_base

# Four trials of two strategies' parameters; each takes its time (the trap sleeps) so that a
# Ctrl-C lands between trials.
SWEEP = """
base = "bt.toml"
out = "runs/default"
workers = 2
[search]
method = "grid"
[objective]
statistic = "net_pnl"
strategy = "total"
direction = "maximize"
constraints = ["fills >= 1"]
[params.momentum_eth]
lookback_s = {{ values = [30, 60] }}
[params.gamma_btc]
delta_band = {{ values = [0.02, 0.2] }}
{extra}
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sweep-cli")
    config = sweep_base(folder)
    (folder / "runs").mkdir()
    text = config.read_text().replace(
        "fail = false", f'fail = false\nsleep_s = 0.6\ncount_dir = "{folder / "runs"}"'
    )
    config.write_text(text)
    (folder / "sweep.toml").write_text(SWEEP.format(extra=""))
    failing = SWEEP.split("[params.momentum_eth]")[0].format() + "[params.trap]\nfail = { values = [true] }\n"
    (folder / "failing.toml").write_text(failing)
    return folder


def _env(folder: Path) -> dict[str, str]:
    # The sweep's decoded-event cache: the one `sweep_base` warmed (never ~/.cache).
    return {**os.environ, "TRADINGD_CACHE_DIR": str(folder / "evc"), "COLUMNS": "100"}


def _cmd(folder: Path, out: str, sweep: str = "sweep.toml") -> list[str]:
    return [
        sys.executable,
        "-m",
        "tradingd.cli.main",
        "sweep",
        "--config",
        str(folder / sweep),
        "--out",
        str(folder / out),
    ]


def _sweep(folder: Path, out: str, sweep: str = "sweep.toml") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _cmd(folder, out, sweep), env=_env(folder), capture_output=True, text=True, timeout=300, check=False
    )


def _runs(folder: Path) -> int:
    return len(list((folder / "runs").glob("run-*")))


def _table(stdout: str) -> str:
    """The table: stdout without its last line (which names the folder)."""
    lines = stdout.rstrip("\n").splitlines()
    assert lines[-1].startswith("results in "), stdout
    return "\n".join(lines[:-1])


def _results(folder: Path, out: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / out / "results.json").read_text())
    for trial in data["trials"]:
        del trial["run"]  # attempts, cached, duration: how this run got it
    return data


@pytest.fixture(scope="module")
def whole(folder: Path) -> subprocess.CompletedProcess[str]:
    """The sweep run once, uninterrupted, into `folder/whole` (counting the trap's runs)."""
    before = _runs(folder)
    done = _sweep(folder, "whole")
    assert done.returncode == 0, done.stderr
    assert _runs(folder) - before == 4
    return done


def test_the_same_sweep_twice_gives_the_same_table_and_results(
    folder: Path, whole: subprocess.CompletedProcess[str]
) -> None:
    assert "4 trials: 4 run, 0 from the trial cache, 0 failed" in whole.stderr
    assert whole.stdout.rstrip().endswith(f"results in {folder / 'whole'}")
    for name in ("results.json", "results.csv"):
        assert (folder / "whole" / name).is_file()
    assert len(list((folder / "whole" / "trials").glob("*.json"))) == 4
    again = _sweep(folder, "again")
    assert again.returncode == 0, again.stderr
    assert _table(again.stdout) == _table(whole.stdout)
    assert _results(folder, "again") == _results(folder, "whole")
    assert (folder / "again" / "results.csv").read_text() == (folder / "whole" / "results.csv").read_text()


def test_ctrl_c_keeps_the_finished_trials_and_the_rerun_runs_only_the_rest(
    folder: Path, whole: subprocess.CompletedProcess[str]
) -> None:
    trials = folder / "stopped" / "trials"
    proc = subprocess.Popen(
        _cmd(folder, "stopped"), env=_env(folder), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while len(list(trials.glob("*.json"))) < 2:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no trial finished"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    kept = len(list(trials.glob("*.json")))
    assert 2 <= kept < 4, err  # it stopped before the end
    assert f"interrupted: {kept} trials: {kept} run, 0 from the trial cache, 0 failed" in err, err
    assert "Traceback" not in err

    before = _runs(folder)
    resumed = _sweep(folder, "stopped")
    assert resumed.returncode == 0, resumed.stderr
    assert f"4 trials: {4 - kept} run, {kept} from the trial cache, 0 failed" in resumed.stderr
    assert _runs(folder) - before == 4 - kept  # the trap ran only in the trials not kept
    assert _table(resumed.stdout) == _table(whole.stdout)
    assert _results(folder, "stopped") == _results(folder, "whole")


def test_a_sweep_whose_every_trial_fails_exits_1(folder: Path) -> None:
    done = _sweep(folder, "failing", "failing.toml")
    assert done.returncode == 1, done.stderr
    assert "1 trial: 1 run, 0 from the trial cache, 1 failed" in done.stderr
    data = json.loads((folder / "failing" / "results.json").read_text())
    assert {t["error"] for t in data["trials"]} == {"RuntimeError: the trap was sprung"}


def test_on_a_terminal_a_bar_counts_the_trials_with_the_best_objective(
    folder: Path, whole: subprocess.CompletedProcess[str]
) -> None:
    shutil.copytree(folder / "whole", folder / "bar")
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        _cmd(folder, "bar"), env={**_env(folder), "TERM": "xterm"}, stdout=subprocess.PIPE, stderr=follower
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
        assert proc.wait(timeout=300) == 0
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
    text = received.decode(errors="replace")
    assert "4/4" in text and "0 failed" in text, text
    best = json.loads((folder / "whole" / "results.json").read_text())["best"]
    assert f"best net_pnl: {best['objective']:.6g}" in text, text
    assert "4 trials: 0 run, 4 from the trial cache, 0 failed" in text
    assert _table(out) == _table(whole.stdout)


def test_a_cluster_without_ray_is_one_line_naming_the_extra(folder: Path) -> None:
    # Ray made unimportable in the command's process, as where the extra is not installed.
    code = (
        "import sys\n"
        "class _NoRay:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'ray':\n"
        "            raise ImportError('No module named ray (blocked by the test)')\n"
        "sys.meta_path.insert(0, _NoRay())\n"
        "from tradingd.cli.main import main\n"
        f"sys.exit(main({[*_cmd(folder, 'no-ray')[3:], '--cluster', 'auto']!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=_env(folder),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "tradingd: error: running trials on a Ray cluster needs the 'cluster' extra:"
        " pip install 'tradingd[cluster]'"
    )
    assert "decoding" not in done.stderr and not (folder / "no-ray").exists()  # refused first
