"""`tradingd backtest --report` gives the replay's memory back before matplotlib draws (issue 17:
peak RSS with --report): neither the kernel nor its result is alive while the charts are drawn
(they are drawn from the JSON report just written); and it draws the very report it drew with
the replay still held."""

from __future__ import annotations

import gc
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio

import tradingd.cli.render as cli_render
from tests.support.backtests import bundled_config_on
from tradingd.cli.main import main
from tradingd.cli.settings import risk_limits
from tradingd.config import load_config
from tradingd.engine.backtest.kernel import BacktestKernel, BacktestResult, BacktestSettings, DataSource
from tradingd.engine.reports.html import render_run, write_run_reports
from tradingd.engine.venue.plugins import load_venue


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled backtest config on a few minutes of the sample."""
    return bundled_config_on(tmp_path_factory.mktemp("bt"), hours=0.05, seed=5)


def _alive() -> tuple[int, int]:
    """Kernels and backtest results the collector can see."""
    gc.collect()
    objects = gc.get_objects()
    return (
        sum(1 for obj in objects if isinstance(obj, BacktestKernel)),
        sum(1 for obj in objects if isinstance(obj, BacktestResult)),
    )


def test_the_replay_is_let_go_before_the_charts_are_drawn(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[tuple[int, int]] = []

    def drawing(path: Any, **kw: Any) -> list[Path]:
        seen.append(_alive())
        assert Path(path).exists()  # the JSON report is written before: the charts come from it
        return render_run(path, **kw)

    monkeypatch.setattr(cli_render, "render_run", drawing)  # in-process: main(argv) draws here
    before = _alive()
    assert main(["backtest", "--config", str(config), "--no-progress", "--report", str(tmp_path / "r")]) == 0
    capsys.readouterr()
    # No kernel (books, decoders, strategies) and no result (series, fills) held while drawing.
    assert seen == [before]


def _reference(config: Path, out: Path) -> None:
    """The report as drawn with the kernel still alive (the path before issue 17)."""
    loaded = load_config(config)
    cfg = loaded.config
    assert cfg.backtest is not None
    enabled = [s for s in cfg.strategies if s.enabled]
    sources = [
        DataSource(d.venue, p, d.format) for d, p in zip(cfg.backtest.data, loaded.data_paths, strict=True)
    ]
    kernel = BacktestKernel(
        {s.venue: load_venue(s.venue) for s in sources},
        sources,
        loaded.build_strategies(),
        BacktestSettings(
            latency_ms=cfg.backtest.latency_ms,
            response_latency_ms=cfg.backtest.response_latency_ms,
            equity_interval_s=cfg.backtest.equity_interval_s,
            queue_ahead=cfg.backtest.queue_ahead,
            mailbox_capacity=cfg.backtest.mailbox_capacity,
        ),
        fee_overrides={s.venue: loaded.settings_of(s.venue).fees for s in sources},
        engine_limits=risk_limits(cfg.risk),
        strategy_limits={s.name: risk_limits(s.risk) for s in enabled},
        on_failure={s.name: s.on_failure for s in enabled},
    )
    result = trio.run(kernel.run)
    write_run_reports(out / "report.json", result)
    assert kernel.frames > 0  # alive to here


def _without_duration(path: Path) -> bytes:
    if path.suffix == ".json":
        data = orjson.loads(path.read_bytes())
        data.pop("duration_s")
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    text = path.read_bytes()
    if path.suffix == ".html":  # the page shows the replay's wall time: the one thing that differs
        text, n = re.subn(rb"replay time</td><td>[0-9.]+ s<", b"replay time</td><td>_ s<", text)
        assert n == 1
    return text


def test_the_report_drawn_after_the_replay_is_let_go_is_the_same(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = tmp_path / "ref"
    ref.mkdir()
    _reference(config, ref)
    run = tmp_path / "run"
    assert main(["backtest", "--config", str(config), "--no-progress", "--report", str(run)]) == 0
    capsys.readouterr()
    names = sorted(p.name for p in run.iterdir())
    assert names == sorted(p.name for p in ref.iterdir())
    assert len(names) == 5
    for name in names:
        assert _without_duration(run / name) == _without_duration(ref / name), name
