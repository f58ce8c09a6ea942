"""A benchmark whose data file is not there says so in one line and exits 2: on a fresh clone,
which has no `data/deribit-sample.rec.zst` (generated, not committed), `python
bench/bench_nautilus.py --rows e` died with a FileNotFoundError -> DataError traceback. The line
names the file and, for that sample, the command that makes it. Run as a newcomer would, from the
root of a tree without the sample: the bench scripts copied into a temporary one."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A project root holding the bench scripts and no data."""
    (tmp_path / "bench").mkdir()
    for name in ("_common.py", "bench_nautilus.py", "bench_hftbacktest.py", "bench_decode.py"):
        shutil.copy(ROOT / "bench" / name, tmp_path / "bench" / name)
    return tmp_path


def _run(tree: Path, *argv: str) -> tuple[int, list[str]]:
    r = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, timeout=120, check=False, cwd=tree
    )
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, r.stderr.splitlines()


def test_row_e_without_the_sample_names_it_and_the_command_that_makes_it(tree: Path) -> None:
    assert _run(tree, "bench/bench_nautilus.py", "--rows", "e") == (
        2,
        [
            "bench/bench_nautilus.py: data/deribit-sample.rec.zst is not there: it is generated, not"
            " committed; `tradingd backtest --config config/backtest-deribit.toml` makes it, or give"
            " --sample PATH"
        ],
    )
    # A --sample of your own that is not there: named, and no command (it is no bundled sample).
    assert _run(tree, "bench/bench_nautilus.py", "--rows", "e", "--sample", "mine.rec.zst") == (
        2,
        ["bench/bench_nautilus.py: mine.rec.zst is not there"],
    )


def test_the_decode_benchmark_names_a_missing_sample(tree: Path) -> None:
    assert _run(tree, "bench/bench_decode.py", "--sample", "data/deribit-sample.rec.zst") == (
        2,
        [
            "bench/bench_decode.py: data/deribit-sample.rec.zst is not there: it is generated, not"
            " committed; `tradingd backtest --config config/backtest-deribit.toml` makes it"
        ],
    )


def test_run_all_reports_the_recorder_figures_failed_naming_the_sample(tree: Path) -> None:
    """`run_all.py` goes on past one group's failure (its convention): each of the recorder's
    figures, the three a full run writes into bench/RESULTS.md, is `failed:` with the same line
    (one row for the three left two out of RESULTS.md without a word), and the run exits 1."""
    shutil.copy(ROOT / "bench" / "run_all.py", tree / "bench" / "run_all.py")
    out, js = tree / "R.md", tree / "R.json"
    code, _ = _run(tree, "bench/run_all.py", "--only", "recorder", "--out", str(out), "--json", str(js))
    assert code == 1
    why = (
        "failed: recorder: data/deribit-sample.rec.zst is not there: it is generated, not committed;"
        " `tradingd backtest --config config/backtest-deribit.toml` makes it"
    )
    command = "`python bench/run_all.py --only recorder`"
    measured = [
        line.split(" | ")[0].removeprefix("| ")
        for line in (ROOT / "bench" / "RESULTS.md").read_text().splitlines()
        if line.endswith(f" | {command} |")
    ]
    assert len(measured) == 3, measured  # the figures of a run that had the sample
    assert [line for line in out.read_text().splitlines() if line.startswith("| recording")] == [
        f"| {figure} | {why} | {command} |" for figure in measured
    ]
    assert [row["value"] for row in json.loads(js.read_text())["rows"]] == [why] * 3
