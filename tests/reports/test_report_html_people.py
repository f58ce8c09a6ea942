"""The HTML report says what a person needs to read its numbers (issue 16): the run's warnings,
annualised ratios only from a day of equity, what the fill counts count; and it tells its
caller what it is drawing (the CLI's status line)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tradingd.engine.reports.html import render_html

_S = 1_000_000_000


def _strategy(hours: float) -> dict[str, Any]:
    ts = [i * 60 * _S for i in range(int(hours * 60) + 1)]
    equity = [float(-(i % 7)) for i in range(len(ts))]
    return {
        "orders": 23,
        "filled_orders": 22,
        "fills": 34,
        "net_pnl": -1974.19,
        "max_drawdown": 6.0,
        "sharpe": -383.378311,
        "sortino": -356.203043,
        "ratios_from": {
            "interval_s": 60.0,
            "changes": len(ts) - 1,
            "span_s": hours * 3600,
            "annualised": True,
        },
        "equity_curve": [[t, e] for t, e in zip(ts, equity, strict=True)],
        "series": {"step_s": 60.0, "ts": ts, "equity": equity, "positions": {}, "prices": {}, "fills": []},
    }


def _page(tmp_path: Path, report: dict[str, Any], steps: list[str] | None = None) -> str:
    out = tmp_path / "run"
    render_html(report, out, progress=(steps.append if steps is not None else lambda _: None))
    return (out / "report.html").read_text()


def test_the_page_shows_the_warnings(tmp_path: Path) -> None:
    lines = ["strategy s: option_size = 0 <never trades>", "venue derive: no data in the files"]
    page = _page(tmp_path, {"strategies": {"s": _strategy(2)}, "warnings": lines})
    assert "<h2>Warnings (2)</h2>" in page
    assert "<li>strategy s: option_size = 0 &lt;never trades&gt;</li>" in page
    assert "<li>venue derive: no data in the files</li>" in page
    assert "Warnings" not in _page(tmp_path, {"strategies": {"s": _strategy(2)}})


def test_ratios_under_a_day_are_na_with_the_reason_and_counts_say_what_they_count(tmp_path: Path) -> None:
    page = _page(tmp_path, {"strategies": {"s": _strategy(2)}, "equity_interval_s": 60})
    assert "-383" not in page and "-356" not in page
    assert page.count("<td>n/a (&lt; 1 day)</td>") == 2
    assert "(this run: 2 h 00 min of equity; report.json has the values)" in page
    assert "<th>orders filled (any part)</th><th>fills (each partial counts)</th>" in page
    assert "<td>22</td><td>34</td>" in page
    long = _page(tmp_path, {"strategies": {"s": _strategy(48)}, "equity_interval_s": 60})
    assert "<td>-383.38</td><td>-356.20</td>" in long and "this run:" not in long


def test_render_tells_what_it_draws(tmp_path: Path) -> None:
    steps: list[str] = []
    _page(tmp_path, {"strategies": {"a": _strategy(1), "b b": _strategy(1)}}, steps)
    assert steps == [
        "loading matplotlib",
        "report.png (equity and drawdown of every strategy)",
        "report-a.png (strategy 1 of 2)",
        "report-b_b.png (strategy 2 of 2)",
        "report.html",
    ]
