"""`tradingd sweep` as a user runs it (a subprocess): the same sweep twice prints the same table
and writes the same results; Ctrl-C exits 130 keeping the finished trials, and the same command
again runs only the rest (counted: each run of the trap strategy leaves a file) and prints the
table of an uninterrupted run; a sweep whose every trial fails exits 1."""

from __future__ import annotations

import errno
import json
import os
import pty
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import trio

from tests.support.sweep_base import sweep_base
from tradingd.cli.backtest import build_kernel
from tradingd.cli.main import main
from tradingd.config import load_config
from tradingd.engine.backtest.report import report_dict
from tradingd.engine.store.evcache import EventCache
from tradingd.engine.sweep.cache import TrialStore
from tradingd.engine.sweep.model import TrialResult, Window, result_from_dict

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
    assert done.returncode == 2, done.stderr  # a setup error: 1 is "every trial failed"
    assert done.stderr.strip().splitlines()[-1] == (
        "tradingd: error: running trials on a Ray cluster needs the 'cluster' extra:"
        " pip install 'tradingd[cluster]'"
    )
    assert "decoding" not in done.stderr and not (folder / "no-ray").exists()  # refused first


def _trials(out: Path) -> list[TrialResult]:
    return sorted(
        (result_from_dict(json.loads(p.read_text())) for p in (out / "trials").glob("*.json")),
        key=lambda r: r.number,
    )


def test_a_sweep_of_a_base_with_start_and_end_trades_in_that_window_as_the_backtest_does(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The base's [backtest] start/end, no [window] in the sweep: the trial is the backtest of the
    # base over that window (the trap's own value: the trial's config is the base itself).
    text = (folder / "bt.toml").read_text().replace("sleep_s = 0.6\n", "")
    assert "[backtest]\n" in text
    windowed = text.replace(
        "[backtest]\n", '[backtest]\nstart = "2026-11-24T00:01:00Z"\nend = "2026-11-24T00:02:30Z"\n', 1
    )
    (folder / "windowed.toml").write_text(windowed)
    sweep = SWEEP.split("[params.momentum_eth]")[0].format().replace('"bt.toml"', '"windowed.toml"')
    (folder / "windowed-sweep.toml").write_text(sweep + "[params.trap]\nfail = { values = [false] }\n")
    monkeypatch.setenv("TRADINGD_CACHE_DIR", str(folder / "evc"))
    out = folder / "windowed"
    config = str(folder / "windowed-sweep.toml")
    code = main(["sweep", "--config", config, "--out", str(out), "--workers", "1"])
    assert code == 0, capsys.readouterr().err
    assert "1 trial in 1 local process;" in capsys.readouterr().err  # not "1 local processes"
    (trial,) = _trials(out)

    loaded = load_config(folder / "windowed.toml")
    bt = loaded.config.backtest
    assert bt is not None and bt.start is not None and bt.end is not None
    assert trial.window == Window(bt.start, bt.end)
    kernel = build_kernel(loaded, event_cache=EventCache(folder / "evc"), start_ns=bt.start, end_ns=bt.end)
    plain = report_dict(trio.run(kernel.run), include_curves=False)["strategies"]
    strategies = {k: v for k, v in trial.stats.items() if k != "total"}
    assert strategies == json.loads(json.dumps(plain, default=str))


def test_a_results_folder_that_cannot_be_written_is_one_line_before_any_work(folder: Path) -> None:
    before = _runs(folder)
    done = _sweep(folder, "/proc/nope")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "tradingd: error: --out /proc/nope: cannot write /proc/nope/results.json: cannot create a file"
        " in /proc/nope (No such file or directory)"
    ]
    assert _runs(folder) == before  # no trial ran


def test_a_full_disk_mid_sweep_stops_it_keeping_what_finished(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The second result cannot be written (ENOSPC from fsync, as on a full disk).
    put = TrialStore.put
    calls: list[TrialResult] = []

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def put_then_full(self: TrialStore, result: TrialResult) -> None:
        calls.append(result)
        if len(calls) < 2:
            return put(self, result)
        with pytest.MonkeyPatch.context() as m:
            m.setattr(os, "fsync", full)
            return put(self, result)

    monkeypatch.setattr(TrialStore, "put", put_then_full)
    monkeypatch.setenv("TRADINGD_CACHE_DIR", str(folder / "evc"))
    out = folder / "full"
    code = main(["sweep", "--config", str(folder / "sweep.toml"), "--out", str(out), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.strip().splitlines()[-1] == (
        f"tradingd: error: cannot keep the trials in {out / 'trials'}: No space left on device;"
        " the sweep stopped after 1 trial"
    )
    assert len(calls) == 2  # it stopped there: no trial after
    assert len(_trials(out)) == 1
    kept = json.loads((out / "results.json").read_text())
    assert len(kept["trials"]) == 1  # the results of what finished


def test_the_readme_example_twice_gives_the_same_table_and_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The example sweep file (`config/sweep.toml`: two strategies' parameters, a grid of 8,
    a 3-window rolling walk-forward: 27 trials) scaled to 12 minutes of the sample (train 4m,
    test 2m), run into two fresh folders: the same table and results."""
    base = sweep_base(tmp_path, hours=0.2)
    capsys.readouterr()  # what its warm-up backtest logged
    text = (Path(__file__).parents[2] / "config" / "sweep.toml").read_text()
    for old, new in (
        ('base = "backtest-deribit.toml"', 'base = "bt.toml"'),
        ('train = "40m"', 'train = "4m"'),
        ('test = "20m"', 'test = "2m"'),
    ):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    (tmp_path / "sweep.toml").write_text(text)
    monkeypatch.setenv("TRADINGD_CACHE_DIR", str(base.parent / "evc"))
    monkeypatch.setenv("COLUMNS", "100")
    tables = []
    for out in ("one", "two"):
        code = main(["sweep", "--config", str(tmp_path / "sweep.toml"), "--out", str(tmp_path / out)])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        assert "27 trials: 27 run, 0 from the trial cache, 0 failed" in captured.err
        tables.append(_table(captured.out))
    assert tables[0] == tables[1]
    one = _results(tmp_path, "one")
    assert len(one["trials"]) == 27 and {t["role"] for t in one["trials"]} == {"train", "test"}
    assert one == _results(tmp_path, "two")


def test_a_window_that_misses_the_data_is_one_line_before_any_trial(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # After the data's end: every trial would run over nothing, score 0 and one be called best.
    late = '[window]\nstart = "2026-11-25T00:10:00Z"\nend = "2026-11-25T00:40:00Z"\n'
    (folder / "late.toml").write_text(SWEEP.format(extra="").replace("[search]", late + "[search]", 1))
    monkeypatch.setenv("TRADINGD_CACHE_DIR", str(folder / "evc"))
    before = _runs(folder)
    out = folder / "late"
    code = main(["sweep", "--config", str(folder / "late.toml"), "--out", str(out), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    # Its times as ISO 8601 UTC to the microsecond, as `data inspect` says them and --start reads,
    # not a recording line's seven decimals.
    said = re.escape(
        "window: the sweep's window 2026-11-25T00:10:00.000000Z -> 2026-11-25T00:40:00.000000Z holds no"
        " data: the data runs from 2026-11-24T00:00:00.000000Z to 2026-11-24T00:0"
    )
    assert re.search(said + r"\d:\d\d\.\d{6}Z$", last), err
    assert _runs(folder) == before and not list(out.glob("trials/*.json"))  # no trial ran


def test_a_trial_whose_strategy_does_nothing_carries_its_warning_to_the_results_and_stderr(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # gamma_btc on SOL against BTC/ETH data finds no option: its backtest warns, nothing trades.
    sweep = SWEEP.split("[params.momentum_eth]")[0].format()
    idle = '[params.gamma_btc]\nunderlying = { values = ["BTC", "SOL"] }\n'
    (folder / "idle.toml").write_text(sweep + idle)
    monkeypatch.setenv("TRADINGD_CACHE_DIR", str(folder / "evc"))
    out = folder / "idle"
    code = main(["sweep", "--config", str(folder / "idle.toml"), "--out", str(out), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 0, err
    warning = (
        "gamma_btc: no call option of SOL expiring in more than a day in the deribit data"
        " (options of: BTC, ETH): nothing traded"
    )
    btc, sol = _trials(out)  # the trial cache's files
    assert sol.params["gamma_btc"]["underlying"] == "SOL" and sol.warnings == (warning,)
    assert btc.warnings == ()
    entries = {t["number"]: t for t in json.loads((out / "results.json").read_text())["trials"]}
    assert entries[sol.number]["warnings"] == [warning] and entries[btc.number]["warnings"] == []
    assert (
        f"warnings: 1 of 2 trials had warnings (first: trial {sol.number}: {warning}); see results.json"
        in err.splitlines()
    ), err


def test_a_study_db_that_cannot_be_written_is_one_warning_and_the_sweep_finishes(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every write of a told TPE trial fails as on a locked database (Optuna wraps the cause).
    def locked(self: optuna.study.Study, trial: Any) -> None:
        try:
            raise sqlite3.OperationalError("database is locked")
        except sqlite3.OperationalError as exc:
            raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from exc

    monkeypatch.setattr(optuna.study.Study, "add_trial", locked)
    tpe = SWEEP.format(extra="").replace('method = "grid"', 'method = "tpe"\ntrials = 3\nseed = 1')
    (folder / "tpe.toml").write_text(tpe)
    monkeypatch.setenv("TRADINGD_CACHE_DIR", str(folder / "evc"))
    out = folder / "tpe"
    code = main(["sweep", "--config", str(folder / "tpe.toml"), "--out", str(out), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 0, err
    line = (
        f"{out / 'study.db'}: 3 TPE trials not recorded in the study (OperationalError: database is"
        " locked); the sweep went on (its results do not need it)"
    )
    assert err.splitlines().count(line) == 1, err
    assert len(json.loads((out / "results.json").read_text())["trials"]) == 3


def test_a_local_tpe_sweep_starts_no_more_workers_than_it_runs_at_once() -> None:
    # A pool starts all its workers up front: past `[search] parallel` they would only sit idle
    # (64 forked on a 64-CPU machine for a TPE search running 4 trials at once).
    from tradingd.cli.sweep import local_workers
    from tradingd.engine.sweep.spec import SearchSpec, SweepSpec

    search = SearchSpec(method="tpe", trials=9)
    tpe = SweepSpec(path="s.toml", base="b.toml", out="o", params={}, search=search)
    assert local_workers(tpe, 64) == 4
    assert local_workers(tpe, 2) == 2
    grid = SweepSpec(path="s.toml", base="b.toml", out="o", params={})
    assert local_workers(grid, 64) == 64
