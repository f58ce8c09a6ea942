"""A sweep's results: results.json, results.csv and the terminal table, from outcomes built by
hand (tests/support/sweep_outcomes.py)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest
from rich.console import Console

from tests.support.sweep_outcomes import MIN, OBJECTIVE, T0, search_outcome, trial, walk_forward_outcome
from tradingd.config import utc_ns
from tradingd.engine.store.recording import format_ts
from tradingd.engine.sweep.model import SweepOutcome, Window
from tradingd.engine.sweep.results import csv_text, describe, ranked, table, warnings_line, write
from tradingd.engine.sweep.spec import ObjectiveSpec


def _json(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((out / "results.json").read_bytes())
    return data


def _csv(out: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((out / "results.csv").read_text())))


def _text(renderable: Any, width: int = 100) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None, highlight=False)
    console.print(renderable)
    text: str = console.file.getvalue()  # type: ignore[attr-defined]
    return text


def _rows(text: str) -> list[list[str]]:
    """The trial table's rows (rank, number, ...), split into words."""
    return [line.split() for line in text.splitlines() if re.match(r"\s*\d+\s+\d+\s+(\d+\s+)?\w+=", line)]


def test_ranking_puts_feasible_first_then_infeasible_then_failed() -> None:
    order = [r.number for r in ranked(OBJECTIVE, search_outcome().trials)]
    # 2 has the highest net PnL but breaks max_drawdown < 5; 5 failed.
    assert order == [6, 1, 4, 7, 0, 3, 2, 5]


def test_an_ok_trial_without_a_value_ranks_after_the_infeasible_and_before_the_failed() -> None:
    failed = trial(0, 0.02, 120, 0.2, 0.0, status="failed")
    undefined = attrs.evolve(trial(1, 0.02, 120, 0.2, 1.0), objective=None, feasible=False)
    infeasible = trial(2, 0.02, 120, 0.2, -50.0, drawdown=9.0)
    nan = attrs.evolve(trial(3, 0.02, 120, 0.2, 1.0), objective=float("nan"), feasible=False)
    good = trial(4, 0.02, 120, 0.2, -60.0)
    order = ranked(OBJECTIVE, [failed, nan, undefined, infeasible, good])
    # As objective.rank_key orders them: a failed trial last even with the lowest number.
    assert [r.number for r in order] == [4, 2, 1, 3, 0]


def test_minimizing_ranks_the_lowest_first_ties_by_number() -> None:
    objective = ObjectiveSpec(statistic="net_pnl", direction="minimize")
    trials = [trial(3, 0.02, 120, 0.2, 1.0), trial(1, 0.02, 120, 0.2, 1.0), trial(2, 0.02, 120, 0.2, -4.0)]
    assert [r.number for r in ranked(objective, trials)] == [2, 1, 3]


def test_json_holds_every_trial_best_first_with_its_statistics(tmp_path: Path) -> None:
    paths = write(tmp_path, search_outcome(), OBJECTIVE)
    assert paths == [tmp_path / "results.csv", tmp_path / "results.json"]
    data = _json(tmp_path)
    assert data["objective"]["description"] == "maximize net_pnl (total), subject to max_drawdown < 5"
    assert data["objective"]["constraints"] == ["max_drawdown < 5"]
    assert data["best"]["number"] == 6
    assert data["best"]["params"] == {
        "momentum_eth": {"threshold": 0.04, "lookback_s": 360},
        "gamma_btc": {"delta_band": 0.02, "min_hedge_interval_s": 30},
    }
    assert data["counts"] == {"trials": 8, "ok": 7, "failed": 1, "feasible": 6, "interrupted": False}
    trials = data["trials"]
    assert [t["number"] for t in trials] == [6, 1, 4, 7, 0, 3, 2, 5]
    assert [t["rank"] for t in trials] == list(range(1, 9))
    first, failed = trials[0], trials[-1]
    assert first["statistics"]["total"]["net_pnl"] == 7.25
    assert first["statistics"]["momentum_eth"]["fills"] == 3
    assert first["objective"] == 7.25 and first["feasible"] is True and first["status"] == "ok"
    assert first["window"] == {"start": None, "end": None}
    assert first["run"] == {"attempts": 1, "cached": False, "duration_s": 7.5}
    assert failed["status"] == "failed" and failed["error"] == "RuntimeError: strategy blew up"
    assert failed["objective"] is None and failed["statistics"] == {}
    assert "walk_forward" not in data


def test_csv_has_a_row_per_trial_and_a_column_per_parameter_and_statistic(tmp_path: Path) -> None:
    write(tmp_path, search_outcome(), OBJECTIVE)
    rows = _csv(tmp_path)
    header = (tmp_path / "results.csv").read_text().splitlines()[0].split(",")
    assert header[:9] == ["rank", "number", "role", "fold", "start", "end", "status", "feasible", "objective"]
    assert header[9:13] == [  # sorted: strategy, then parameter
        "gamma_btc.delta_band",
        "gamma_btc.min_hedge_interval_s",
        "momentum_eth.lookback_s",
        "momentum_eth.threshold",
    ]
    assert header[13:] == [
        "total.net_pnl",
        "total.max_drawdown",
        "total.sharpe",
        "total.sortino",
        "total.fees",
        "total.fills",
        "total.orders",
        "error",
        "warnings",
    ]
    assert not any("duration" in h or "cached" in h for h in header)  # no wall clock, no cache
    assert [r["number"] for r in rows] == ["6", "1", "4", "7", "0", "3", "2", "5"]
    assert rows[0]["momentum_eth.threshold"] == "0.04" and rows[0]["total.net_pnl"] == "7.25"
    assert rows[6]["feasible"] == "false" and rows[6]["status"] == "ok"
    assert rows[7]["status"] == "failed" and rows[7]["total.net_pnl"] == ""
    assert rows[7]["error"] == "RuntimeError: strategy blew up"


def test_the_same_sweep_rerun_from_the_cache_gives_the_same_csv_table_and_ranking(tmp_path: Path) -> None:
    first, again = tmp_path / "first", tmp_path / "again"
    write(first, search_outcome(cached=False, duration_s=1.5), OBJECTIVE)
    write(again, search_outcome(cached=True, duration_s=0.01), OBJECTIVE)
    assert (first / "results.csv").read_bytes() == (again / "results.csv").read_bytes()
    a, b = _json(first), _json(again)
    for data in (a, b):
        for t in data["trials"]:
            del t["run"]
    assert a == b
    assert _text(table(search_outcome(cached=False), OBJECTIVE)) == _text(
        table(search_outcome(cached=True, duration_s=99.0), OBJECTIVE)
    )


def test_write_replaces_the_files_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    write(tmp_path, search_outcome(), OBJECTIVE)
    smaller = SweepOutcome(trials=search_outcome().trials[:2])
    write(tmp_path, smaller, OBJECTIVE)
    assert len(_csv(tmp_path)) == 2 and len(_json(tmp_path)["trials"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv", "results.json"]


def test_walk_forward_json_has_folds_in_and_out_of_sample_and_the_stitched_curve(tmp_path: Path) -> None:
    outcome = walk_forward_outcome(missing=1)
    write(tmp_path, outcome, OBJECTIVE)
    data = _json(tmp_path)
    wf = data["walk_forward"]
    fold0, fold1, fold2 = wf["folds"]
    assert fold0["train"] == {"start": format_ts(T0), "end": format_ts(T0 + 40 * MIN)}
    assert fold0["test"] == {"start": format_ts(T0 + 40 * MIN), "end": format_ts(T0 + 60 * MIN)}
    assert fold0["best_train_trial"] == 1 and fold0["test_trial"] == 4
    assert fold0["in_sample_objective"] == 5.0 and fold0["out_of_sample_objective"] == 1.5
    assert fold0["in_sample"]["net_pnl"] == 5.0 and fold0["out_of_sample"]["net_pnl"] == 1.5
    assert fold0["missing"] is None
    assert fold1["best_train_trial"] is None and fold1["out_of_sample"] is None
    assert fold1["missing"] == "no feasible train trial: nothing to test"
    assert fold2["params"]["momentum_eth"] == {"threshold": 0.02, "lookback_s": 360}
    oos = wf["out_of_sample"]
    assert oos["folds_covered"] == [0, 2] and oos["complete"] is False
    assert oos["statistics"]["net_pnl"] == 1.0  # 1.5 then -0.5
    assert oos["equity"] == [[t, v] for t, v in outcome.oos_equity]
    assert oos["equity"][-1][1] == 1.0
    # Best: the last fold's best train trial (the parameters chosen on the latest data).
    assert data["best"]["number"] == 10 and data["best"]["fold"] == 2
    # Trials fold by fold: the train trials ranked, then the test trial (no rank).
    roles = [(t["fold"], t["role"], t["rank"]) for t in data["trials"]]
    assert roles[:5] == [*((0, "train", rank) for rank in range(1, 5)), (0, "test", None)]
    assert [t["number"] for t in data["trials"][:5]] == [1, 0, 2, 3, 4]


def test_walk_forward_csv_gives_each_trials_window(tmp_path: Path) -> None:
    write(tmp_path, walk_forward_outcome(), OBJECTIVE)
    rows = _csv(tmp_path)
    test0 = next(r for r in rows if r["role"] == "test" and r["fold"] == "0")
    assert test0["start"] == "2026-11-18T11:47:00Z" and test0["end"] == "2026-11-18T12:07:00Z"
    assert test0["rank"] == ""
    assert len(rows) == 15  # 3 folds x (4 train + 1 test)


@pytest.mark.parametrize(
    ("offset_ns", "text"),
    [
        (0, "2026-11-18T11:07:00Z"),
        (250_000_000, "2026-11-18T11:07:00.250Z"),
        (123_400, "2026-11-18T11:07:00.000123400Z"),
        (1_500, "2026-11-18T11:07:00.000001500Z"),
        (7, "2026-11-18T11:07:00.000000007Z"),
        (12_000, "2026-11-18T11:07:00.000012Z"),
    ],
)
def test_csv_times_are_iso_utc_with_only_the_digits_they_have(offset_ns: int, text: str) -> None:
    # A walk-forward's folds start at the data's first frame: any ns, kept exactly.
    r = attrs.evolve(trial(0, 0.02, 120, 0.2, 1.0), window=Window(T0 + offset_ns, T0 + 20 * MIN))
    (row,) = csv.DictReader(io.StringIO(csv_text(SweepOutcome(trials=(r,)), OBJECTIVE)))
    assert row["start"] == text and row["end"] == "2026-11-18T11:27:00Z"
    assert utc_ns(text) // 1_000 == (T0 + offset_ns) // 1_000  # what --start reads (to the us)


def test_table_lists_best_first_and_says_what_failed() -> None:
    text = _text(table(search_outcome(), OBJECTIVE))
    lines = text.splitlines()
    assert lines[0] == "objective: maximize net_pnl (total), subject to max_drawdown < 5"
    assert lines[1] == "8 trials: 7 ok (6 feasible), 1 failed"
    rows = _rows(text)
    assert [r[1] for r in rows] == ["6", "1", "4", "7", "0", "3", "2", "5"]
    assert rows[0][-1] == "ok" and rows[6][-1] == "infeasible" and rows[7][-1] == "failed"
    assert "delta_band=0.02 lookback_s=360 threshold=0.04" in text  # only what varies, short names, sorted
    assert "same in every trial: gamma_btc.min_hedge_interval_s=30" in text
    assert "trial 5 failed: RuntimeError: strategy blew up" in text
    assert "best: trial 6 (the best feasible trial)" in text


def test_table_keeps_to_its_limit_and_says_how_many_more() -> None:
    text = _text(table(search_outcome(), OBJECTIVE, limit=3))
    assert [r[1] for r in _rows(text)] == ["6", "1", "4"]
    assert "(5 more trials in results.csv)" in text


def test_walk_forward_table_has_the_folds_and_the_out_of_sample_statistics() -> None:
    text = _text(table(walk_forward_outcome(missing=1), OBJECTIVE))
    assert "walk-forward (2026-11-18, UTC)" in text
    fold_rows = [line.split() for line in text.splitlines() if re.match(r"\s*\d+\s+\d\d:\d\d-", line)]
    assert fold_rows[0][:3] == ["0", "11:07-11:47", "11:47-12:07"]
    assert fold_rows[0][-2:] == ["5.00", "1.50"]
    assert fold_rows[1][-3:] == ["-", "n/a", "n/a"]
    assert "out-of-sample (2 of 3 folds, 40 min 00 s): net PnL 1.00 $, max drawdown 0.50 $, fills 12" in text
    assert "fold 1 is not in it: no feasible train trial: nothing to test" in text


@pytest.mark.parametrize("width", [100, 80])
def test_table_figures_are_never_cut_at_100_or_80_columns(width: int) -> None:
    text = _text(table(walk_forward_outcome(), OBJECTIVE), width)
    assert all(len(line) <= width for line in text.splitlines())
    assert "…" not in text
    text = _text(table(search_outcome(), ObjectiveSpec(statistic="sharpe", strategy="momentum_eth")), width)
    assert "momentum_eth sharpe" in text and "…" not in text


def test_no_feasible_trial_means_no_best() -> None:
    outcome = SweepOutcome(trials=tuple(attrs.evolve(r, feasible=False) for r in search_outcome().trials))
    assert "best: none (no trial is feasible)" in _text(table(outcome, OBJECTIVE))


def test_describe_names_a_strategy_and_a_direction() -> None:
    spec = ObjectiveSpec(statistic="max_drawdown", strategy="gamma_btc", direction="minimize")
    assert describe(spec) == "minimize max_drawdown (gamma_btc)"


def test_a_walk_forward_interrupted_in_its_first_fold_lists_its_train_trials(tmp_path: Path) -> None:
    full = walk_forward_outcome()
    first = tuple(r for r in full.trials if r.fold == 0 and r.role == "train")[:3]
    outcome = SweepOutcome(trials=first, interrupted=True)
    write(tmp_path, outcome, OBJECTIVE)
    data = _json(tmp_path)
    assert [(t["number"], t["rank"]) for t in data["trials"]] == [(1, 1), (0, 2), (2, 3)]
    assert data["walk_forward"]["folds"] == [] and data["walk_forward"]["out_of_sample"]["complete"] is False
    assert data["best"] is None and data["counts"]["interrupted"] is True
    text = _text(table(outcome, OBJECTIVE))
    assert [r[1] for r in _rows(text)] == ["1", "0", "2"]
    assert "interrupted: the trials above are the ones that finished" in text
    assert "best: none (no finished fold has a feasible train trial)" in text


def test_a_walk_forward_interrupted_after_a_fold_claims_no_out_of_sample_result(tmp_path: Path) -> None:
    full = walk_forward_outcome()
    outcome = SweepOutcome(
        trials=tuple(r for r in full.trials if r.fold in (0, 1)), folds=full.folds[:1], interrupted=True
    )
    write(tmp_path, outcome, OBJECTIVE)
    assert _json(tmp_path)["walk_forward"]["out_of_sample"]["complete"] is False
    text = _text(table(outcome, OBJECTIVE))
    assert "out-of-sample: none, the walk-forward was interrupted after 1 fold" in text
    assert "best: trial 1 (the best train trial of fold 0" in text


def _reordered(outcome: SweepOutcome) -> SweepOutcome:
    """Each trial's params in the reverse dict order (strategies and their parameters), as a
    trial read back from the trial cache's JSON may hold them."""
    flipped = [
        attrs.evolve(
            r, params={s: dict(reversed(list(p.items()))) for s, p in reversed(list(r.params.items()))}
        )
        for r in outcome.trials
    ]
    return attrs.evolve(outcome, trials=tuple(flipped))


def test_params_in_another_dict_order_give_the_same_csv_json_and_table(tmp_path: Path) -> None:
    outcome = search_outcome()
    flipped = _reordered(outcome)
    assert [list(r.params) for r in flipped.trials] != [list(r.params) for r in outcome.trials]
    first, again = tmp_path / "first", tmp_path / "again"
    write(first, outcome, OBJECTIVE)
    write(again, flipped, OBJECTIVE)
    assert (first / "results.csv").read_bytes() == (again / "results.csv").read_bytes()
    assert (first / "results.json").read_bytes() == (again / "results.json").read_bytes()
    assert _text(table(outcome, OBJECTIVE)) == _text(table(flipped, OBJECTIVE))


def _long_bands(outcome: SweepOutcome) -> SweepOutcome:
    """Each trial's delta_band a float of many digits, different per trial (as a TPE draws)."""

    def long(r: Any) -> Any:
        if r is None:
            return None
        band = 0.0496425 + r.number * 0.0000001
        params = {**r.params, "gamma_btc": {**r.params["gamma_btc"], "delta_band": band}}
        return attrs.evolve(r, params=params)

    folds = tuple(
        attrs.evolve(fo, trials=tuple(map(long, fo.trials)), best=long(fo.best), test=long(fo.test))
        for fo in outcome.folds
    )
    return attrs.evolve(outcome, trials=tuple(map(long, outcome.trials)), folds=folds)


@pytest.mark.parametrize("width", [80, 60])
def test_a_long_parameter_value_is_never_split_across_lines(width: int) -> None:
    for outcome in (_long_bands(walk_forward_outcome()), _long_bands(search_outcome())):
        text = _text(table(outcome, OBJECTIVE), width)
        shown = re.findall(r"delta_band=\S*", text)
        assert shown, text
        assert all(re.fullmatch(r"delta_band=0\.04964\d+", s) for s in shown), text


# Two of a data file's reasons: the kernel joins them with "; " inside one warning.
_NO_SOL = "gamma_btc: no call option of SOL expiring in more than a day in the deribit data: nothing traded"
_FILE = "data file d.rec.zst (deribit): 9 frames read, 9 not routed to any strategy: 4 malformed; 5 control"


def _warned() -> SweepOutcome:
    trials = list(search_outcome().trials)
    trials[3] = attrs.evolve(trials[3], warnings=(_NO_SOL, _FILE))
    trials[6] = attrs.evolve(trials[6], warnings=(_NO_SOL,))
    return SweepOutcome(trials=tuple(trials))


def test_a_trials_warnings_are_in_the_json_and_the_csv(tmp_path: Path) -> None:
    write(tmp_path, _warned(), OBJECTIVE)
    by_number = {t["number"]: t for t in _json(tmp_path)["trials"]}
    assert by_number[3]["warnings"] == [_NO_SOL, _FILE]
    assert by_number[6]["warnings"] == [_NO_SOL]
    assert by_number[0]["warnings"] == []
    rows = {r["number"]: r for r in _csv(tmp_path)}
    # One cell, not split on the "; " a warning holds.
    assert rows["3"]["warnings"] == f"{_NO_SOL} | {_FILE}"
    assert rows["6"]["warnings"] == _NO_SOL and rows["0"]["warnings"] == ""


def test_the_warnings_line_counts_the_trials_and_quotes_the_first() -> None:
    assert warnings_line(search_outcome()) is None
    # The lowest-numbered trial's first warning, not the best-ranked (6) one's.
    assert warnings_line(_warned()) == (
        f"warnings: 2 of 8 trials had warnings (first: trial 3: {_NO_SOL} (+1 more)); see results.json"
    )
