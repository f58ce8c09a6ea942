"""`tradingd backtest --report` and `tradingd report` as a new user meets them (issue 16): a
path that will not do is one line naming it, before the replay; one output never overwrites
another; writing the report shows what it draws on a terminal; `tradingd report` on a missing
or bad file is one line."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import structlog

from tests.support.backtests import bundled_config_on
from tradingd.cli.main import main


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled backtest config on a few minutes of the sample."""
    return bundled_config_on(tmp_path_factory.mktemp("bt"), hours=0.05, seed=5)


def _backtest(config: Path, report: str) -> int:
    return main(["backtest", "--config", str(config), "--no-progress", "--report", report])


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_a_report_under_a_file_fails_before_the_replay(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert _backtest(config, str(blocker / "run" / "report.json")) == 2
    out, err = capsys.readouterr()
    assert out == ""  # no replay, no summary
    line = _one_line(err)
    assert str(blocker) in line and "is a file, not a folder" in line and "internal error" not in line


def test_a_report_named_html_is_refused_before_the_replay(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It used to get the JSON, then the HTML over it: the JSON lost, `tradingd report` broken."""
    page = tmp_path / "x" / "report.html"
    assert _backtest(config, str(page)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    line = _one_line(err)
    assert str(page) in line and str(page.with_suffix(".json")) in line
    assert not page.parent.exists()


def test_a_json_report_gets_its_page_and_charts_beside_it(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "runs" / "today.json"
    assert _backtest(config, str(report)) == 0
    err = capsys.readouterr().err
    assert f"report written to {report}" in err
    assert "strategies" in orjson.loads(report.read_bytes())  # still the JSON
    names = sorted(p.name for p in report.parent.iterdir())
    assert names == ["today-gamma_btc.png", "today-momentum_eth.png", "today.html", "today.json", "today.png"]
    assert main(["report", str(report)]) == 0
    assert "strategies" in orjson.loads(report.read_bytes())


@pytest.mark.parametrize("form", ["runs/today", "runs/today/"])
def test_a_report_directory_holds_report_json(
    form: str, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _backtest(config, str(tmp_path / form)) == 0
    run = tmp_path / "runs" / "today"
    assert "strategies" in orjson.loads((run / "report.json").read_bytes())
    assert (run / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert not [p for p in run.iterdir() if p.name.startswith(".tradingd-probe")]
    capsys.readouterr()
    assert main(["report", str(run)]) == 0  # what `tradingd report RUN_DIR` reads


def test_report_on_a_missing_or_bad_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope" / "report.json"
    assert main(["report", str(missing)]) == 1
    line = _one_line(capsys.readouterr().err)
    assert str(missing) in line and "no such file" in line

    page = tmp_path / "report.html"
    page.write_text("<!DOCTYPE html><html></html>")
    assert main(["report", str(page)]) == 1
    line = _one_line(capsys.readouterr().err)
    assert str(page) in line and "JSON report" in line
    assert page.read_text() == "<!DOCTYPE html><html></html>"

    odd = tmp_path / "odd.json"
    for body in (
        {"strategies": {"x": 1}},
        {"strategies": {"x": {"series": {"ts": [1, 2], "equity": [0.0]}}}},
    ):
        odd.write_bytes(orjson.dumps(body))
        assert main(["report", str(odd)]) == 1
        line = _one_line(capsys.readouterr().err)
        assert str(odd) in line and "not a tradingd backtest report" in line and "internal error" not in line


def test_report_writing_shows_what_it_draws_on_a_terminal(config: Path, tmp_path: Path) -> None:
    """Seconds of drawing after the progress bar: a status line on a terminal (stderr) names what
    is being written, and the last line says how long it took."""
    master, slave = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    report = tmp_path / "run" / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tradingd.cli.main",
            "backtest",
            "--config",
            str(config),
            "--report",
            str(report),
        ],
        stdout=subprocess.DEVNULL,
        stderr=slave,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "80", "TERM": "xterm"},
        timeout=300,
        check=False,
    )
    os.close(slave)
    reader.join(timeout=30)
    os.close(master)
    shown = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, shown
    assert "writing the report" in shown
    assert f"report written to {report}" in shown and " s\r\n" in shown.split("report written to", 1)[1]


def test_a_summary_reader_that_goes_away_still_gets_the_report_written(config: Path, tmp_path: Path) -> None:
    """`tradingd backtest --report DIR | head`: the pipe closes before the summary is printed
    (closed here before the replay ends); the report is written all the same, exit 0."""
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tradingd.cli.main",
            "backtest",
            "--config",
            str(config),
            "--report",
            str(run),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    proc.stdout.close()  # the child prints nothing on stdout before the summary, after the replay
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert (run / "report.json").exists() and (run / "report.html").exists()
    assert b"report written to" in err and b"Traceback" not in err


def test_the_printed_summary_holds_every_number_of_the_report_at_80_columns(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The summary as piped on 80 columns: every figure of the JSON report, rounded for people,
    whole (it printed `548…` and `-1,…`)."""
    monkeypatch.setenv("COLUMNS", "80")
    report = tmp_path / "r.json"
    assert _backtest(config, str(report)) == 0
    out = capsys.readouterr().out
    assert "…" not in out and max(len(line) for line in out.splitlines()) <= 80
    for name, s in orjson.loads(report.read_bytes())["strategies"].items():
        assert name in out
        figures = [f"{s[k]:,}" for k in ("orders", "fills", "filled_orders", "rejected", "errors")]
        figures += [
            f"{s[k]:,.2f}" for k in ("fees", "realized_pnl", "unrealized_pnl", "net_pnl", "max_drawdown")
        ]
        figures.append(f"{s['turnover']:,.0f}")
        for figure in figures:
            assert re.search(r"(?<![\d.,])" + re.escape(figure) + r"(?![\d,]|\.\d)", out), (name, figure, out)
