"""The sweep's HTML page and charts, from outcomes built by hand (tests/support/sweep_outcomes.py)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

from tests.support.sweep_outcomes import (
    MIN,
    OBJECTIVE,
    PARAMS,
    T0,
    search_outcome,
    trial,
    walk_forward_outcome,
)
from tradingd.engine.model.errors import DataError
from tradingd.engine.sweep.html import _Axis, _cells, _groups, _panels, _segments, _short, render
from tradingd.engine.sweep.model import SweepOutcome
from tradingd.engine.sweep.spec import ObjectiveSpec, ParamSpace

PNG = b"\x89PNG\r\n\x1a\n"


def _rows(page: str) -> list[tuple[str, list[str]]]:
    """The trial table's rows: (class, cell texts)."""
    table = page[page.index("<table class='trials'>") :]
    table = table[: table.index("</table>")]
    return [
        (cls, re.findall(r"<td[^>]*>(.*?)</td>", body))
        for cls, body in re.findall(r"<tr class='(\w+)'>(.*?)</tr>", table)
    ]


def test_a_search_page_has_its_charts_and_every_trial_best_first(tmp_path: Path) -> None:
    page_path = render(tmp_path, search_outcome(), OBJECTIVE, PARAMS)
    assert page_path == tmp_path / "sweep.html"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep-pairs.png", "sweep-params.png", "sweep.html"]
    for name in ("sweep-pairs.png", "sweep-params.png"):
        assert (tmp_path / name).read_bytes().startswith(PNG)
    page = page_path.read_text()
    assert page.count('src="data:image/png;base64,') == 2  # the page stands alone
    assert "maximize net_pnl (total), subject to max_drawdown &lt; 5" in page
    assert "trial 6 (the best feasible trial)" in page
    rows = _rows(page)
    assert [cells[1] for _, cells in rows] == ["6", "1", "4", "7", "0", "3", "2", "5"]
    assert [cls for cls, _ in rows] == ["ok"] * 6 + ["infeasible", "failed"]
    assert rows[-1][1][-1] == "failed: RuntimeError: strategy blew up"
    assert "Walk-forward" not in page


def test_a_walk_forward_page_has_its_folds_and_the_out_of_sample_curve(tmp_path: Path) -> None:
    render(tmp_path, walk_forward_outcome(missing=1), OBJECTIVE, PARAMS)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "sweep-equity.png",
        "sweep-folds.png",
        "sweep-pairs.png",
        "sweep-params.png",
        "sweep.html",
    ]
    page = (tmp_path / "sweep.html").read_text()
    assert "<h2>Walk-forward</h2>" in page
    assert "out-of-sample (2 of 3 folds, 40 min 00 s): net PnL 1.00 $" in page
    assert "fold 1 is not in it: no feasible train trial: nothing to test" in page
    assert "2026-11-18 11:07:00 to 2026-11-18 11:47:00" in page  # fold 0's train window
    assert page.count('src="data:image/png;base64,') == 4


def test_the_same_sweep_rerun_from_the_cache_draws_the_same_page(tmp_path: Path) -> None:
    render(tmp_path / "a", walk_forward_outcome(), OBJECTIVE, PARAMS)
    cached = walk_forward_outcome()
    cached = attrs.evolve(
        cached, trials=tuple(attrs.evolve(r, cached=True, duration_s=0.0) for r in cached.trials)
    )
    render(tmp_path / "b", cached, OBJECTIVE, PARAMS)
    for name in ("sweep.html", "sweep-equity.png", "sweep-params.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_a_heatmap_cell_holds_the_best_feasible_objective_else_says_why_not() -> None:
    trials = [
        trial(0, 0.02, 120, 0.2, 3.0),
        trial(1, 0.02, 120, 0.2, 9.0, drawdown=9.0),  # better but infeasible: not the cell's best
        trial(2, 0.02, 120, 0.2, 5.0),
        trial(3, 0.04, 120, 0.2, 20.0, drawdown=9.0),
        trial(4, 0.04, 360, 0.2, 0.0, status="failed"),
        trial(5, 0.02, 360, 0.2, 1.0, status="failed"),
        trial(6, 0.02, 360, 0.2, -1.0),
    ]
    threshold = _Axis(("momentum_eth", "threshold"), PARAMS["momentum_eth"]["threshold"], [0.02, 0.04])
    lookback = _Axis(("momentum_eth", "lookback_s"), PARAMS["momentum_eth"]["lookback_s"], [120, 360, 120])
    best, others = _cells(trials, threshold, lookback, OBJECTIVE)
    # (row: lookback cell, column: threshold cell)
    assert best == {(0, 0): 5.0, (1, 0): -1.0}
    assert others == {(0, 1): "infeasible", (1, 1): "failed"}
    low = _cells(
        trials, threshold, lookback, ObjectiveSpec(direction="minimize", constraints=OBJECTIVE.constraints)
    )
    assert low[0] == {(0, 0): 3.0, (1, 0): -1.0}


def test_an_axis_keeps_a_lists_order_and_bins_many_drawn_values() -> None:
    listed = _Axis(
        ("s", "mode"), ParamSpace("choices", values=("slow", "fast", "off")), ["off", "slow", "fast"]
    )
    assert listed.cells == ["slow", "fast", "off"] and not listed.numeric
    assert [listed.cell(v) for v in ("slow", "fast", "off")] == [0, 1, 2]
    drawn = [0.01 * 1.1**i for i in range(40)]
    logged = _Axis(("s", "band"), ParamSpace("log_range", low=0.01, high=0.5), drawn)
    assert logged.log and len(logged.cells) == 8
    cells = [logged.cell(v) for v in drawn]
    assert cells == sorted(cells) and cells[0] == 0 and cells[-1] == 7
    # Log bins: equal ratios, so the drawn (geometric) values spread evenly, 5 a bin.
    assert [cells.count(i) for i in range(8)] == [5] * 8


def test_the_equity_curve_is_cut_where_a_fold_has_no_result() -> None:
    whole = walk_forward_outcome()
    assert [list(s) for s in _segments(whole)] == [list(range(len(whole.oos_equity)))]
    gapped = walk_forward_outcome(missing=1)
    # Fold 2's test chained without its first point (0, the level carried over: `stitch`).
    assert [list(s) for s in _segments(gapped)] == [list(range(5)), list(range(5, 9))]
    assert gapped.oos_equity[5][0] == T0 + 81 * MIN  # fold 2's test, after fold 1's gap


def test_a_sweep_with_one_trial_has_no_parameter_charts(tmp_path: Path) -> None:
    render(tmp_path, SweepOutcome(trials=search_outcome().trials[:1]), OBJECTIVE, PARAMS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.html"]


def test_without_matplotlib_the_page_names_the_report_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(DataError, match=r"^the sweep's HTML page .*: pip install 'tradingd\[report\]'"):
        render(tmp_path, search_outcome(), OBJECTIVE, PARAMS)


def test_a_walk_forwards_trials_are_compared_within_their_fold() -> None:
    train = [r for r in walk_forward_outcome().trials if r.role == "train"]
    groups = _groups(train)
    assert [(name, [r.fold for r in trials]) for name, trials in groups] == [
        ("fold 0", [0] * 4),
        ("fold 1", [1] * 4),
        ("fold 2", [2] * 4),
    ]
    assert _groups(search_outcome().trials) == [("", search_outcome().trials)]
    axis = _Axis(("s", "p"), None, [1, 2])
    three = [(axis, axis)] * 3
    assert [p[0] for p in _panels(groups, three)] == ["fold 0"] * 3 + ["fold 1"] * 3 + ["fold 2"] * 3
    # 3 folds x 6 pairs do not fit in 15 heatmaps: whole folds, the latest (the best is the last's).
    six = [(axis, axis)] * 6
    assert [p[0] for p in _panels(groups, six)] == ["fold 1"] * 6 + ["fold 2"] * 6
    # One search with more pairs than fit: the first 15.
    assert len(_panels([("", train)], [(axis, axis)] * 20)) == 15


def test_a_heatmap_cell_says_a_large_figure_whole() -> None:
    assert [_short(v) for v in (-1049.6, 229.4899, 0.01234, 12345.0)] == ["-1,050", "229", "0.0123", "12,345"]


def test_the_trial_table_shows_a_trials_warnings_only_when_some_have(tmp_path: Path) -> None:
    page = render(tmp_path, search_outcome(), OBJECTIVE, PARAMS).read_text()
    assert "<th>warnings</th>" not in page
    trials = list(search_outcome().trials)
    trials[6] = attrs.evolve(trials[6], warnings=("gamma_btc: no <option> of SOL", "data file d: 3 unread"))
    page = render(tmp_path, SweepOutcome(trials=tuple(trials)), OBJECTIVE, PARAMS).read_text()
    assert "<th>warnings</th>" in page
    rows = _rows(page)
    assert rows[0][1][1] == "6"
    assert rows[0][1][-1] == "gamma_btc: no &lt;option&gt; of SOL<br>data file d: 3 unread"
    assert rows[1][1][-1] == ""


def _heads(page: str, start: str) -> list[str]:
    """The headings of the first table after `start`."""
    table = page[page.index(start) :]
    return re.findall(r"<th>(.*?)</th>", table[: table.index("</tr>")])


@pytest.mark.parametrize(
    ("objective", "trial_heads", "fold_heads"),
    [
        (
            OBJECTIVE,  # net_pnl of the total: its column is the net PnL one
            ["net PnL $", "max DD $", "fills", "status"],
            ["IS net PnL $", "OOS net PnL $", "note"],
        ),
        (
            ObjectiveSpec(statistic="sharpe"),
            ["sharpe", "net PnL $", "max DD $", "fills", "status"],
            ["IS sharpe", "OOS sharpe", "OOS net PnL $", "note"],
        ),
        (
            ObjectiveSpec(statistic="net_pnl", strategy="momentum_eth"),
            ["momentum_eth net PnL $", "net PnL $", "max DD $", "fills", "status"],
            ["IS momentum_eth net PnL $", "OOS momentum_eth net PnL $", "OOS net PnL $", "note"],
        ),
    ],
    ids=["net_pnl", "sharpe", "a-strategys-net_pnl"],
)
def test_the_tables_show_the_objective_once(
    tmp_path: Path, objective: ObjectiveSpec, trial_heads: list[str], fold_heads: list[str]
) -> None:
    page = render(tmp_path, walk_forward_outcome(), objective, PARAMS).read_text()
    heads = _heads(page, "<table class='trials'>")
    assert heads[-len(trial_heads) :] == trial_heads and heads.count("net PnL $") == 1
    folds = _heads(page, "<h2>Walk-forward</h2>")
    assert folds[4:] == fold_heads
    rows = _rows(page)
    assert all(len(cells) == len(heads) for _, cells in rows)


def test_a_strategy_name_or_value_that_reads_as_mathtext_is_drawn_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A config's text in the charts (a strategy's name in an axis label, a panel's title and
    the objective's label; a parameter's value on a tick) is drawn as written (`chart_text`):
    matplotlib takes `$...$` for mathtext, so a strategy named `$\\x$` raised ValueError from
    its parser and no sweep.html was written, and `$5 or $10` drew in italics."""
    import tradingd.engine.sweep.html as sweep_html
    from tradingd.engine.reports.html import png_bytes

    strategy, values = "mom$\\x$", ("$\\bad$", "$5 or $10")
    kept: list[Any] = []

    def keep(fig: Any) -> bytes:
        kept.append(
            [
                text
                for ax in fig.axes
                for text in (
                    ax.get_title(loc="left"),
                    ax.get_xlabel(),
                    ax.get_ylabel(),
                    *(t.get_text() for t in (*ax.get_xticklabels(), *ax.get_yticklabels())),
                )
            ]
        )
        return png_bytes(fig)

    monkeypatch.setattr(sweep_html, "png_bytes", keep)

    def renamed(r: Any) -> Any:
        params = dict(r.params)
        mom = dict(params.pop("momentum_eth"))
        mom["threshold"] = values[0] if mom["threshold"] == 0.02 else values[1]
        return attrs.evolve(r, params={strategy: mom, **params})

    outcome = search_outcome()
    outcome = attrs.evolve(outcome, trials=tuple(renamed(r) for r in outcome.trials))
    space = {
        strategy: {
            "threshold": ParamSpace("choices", values=values),
            "lookback_s": PARAMS["momentum_eth"]["lookback_s"],
        },
        "gamma_btc": PARAMS["gamma_btc"],
    }
    objective = attrs.evolve(OBJECTIVE, strategy=strategy)
    page = render(tmp_path, outcome, objective, space).read_text()
    assert "mom$\\x$" in page  # the page's tables: HTML text, as written
    drawn = [text for figure in kept for text in figure]
    assert "mom\\$\\x\\$.threshold" in drawn, drawn  # the label, escaped for matplotlib
    assert {"\\$\\bad\\$", "\\$5 or \\$10"} <= set(drawn), drawn  # the values' ticks
    assert any(text.startswith("best mom\\$\\x\\$ ") for text in drawn), drawn  # a heatmap's title
    assert not [t for t in drawn if re.search(r"(?<!\\)\$", t)], drawn  # no unescaped $
