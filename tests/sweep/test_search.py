"""Searches: a grid proposes every combination once (and refuses a huge one), a random search
the same draws for the same seed without repeating a combination, a TPE search proposes from
the results told it alone (an interrupted search rerun proposes the same trials) and writes them
to a study in SQLite."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import optuna
import pytest
from optuna.trial import TrialState

from tradingd.engine.model.errors import DataError
from tradingd.engine.sweep.model import Params, TrialResult, Window
from tradingd.engine.sweep.objective import parse_constraint, scored
from tradingd.engine.sweep.search import Search, TPESearch, make_search
from tradingd.engine.sweep.space import grid
from tradingd.engine.sweep.spec import ObjectiveSpec, ParamSpace, SearchSpec

FINITE = {
    "momentum_eth": {
        "threshold": ParamSpace("values", values=(0.02, 0.04, 0.08)),
        "lookback_s": ParamSpace("range", low=120, high=600, step=240, integer=True),
    },
    "gamma_btc": {"delta_band": ParamSpace("choices", values=(0.02, 0.2))},
}
CONTINUOUS = {
    "momentum_eth": {"threshold": ParamSpace("range", low=0.01, high=0.1)},
    "gamma_btc": {
        "delta_band": ParamSpace("log_range", low=0.02, high=0.2),
        "right": ParamSpace("choices", values=("call", "put")),
        "target_days": ParamSpace("range", low=7, high=60, integer=True),
        "option_size": ParamSpace("range", low=0.5, high=2.5, step=0.5),
    },
}
OBJECTIVE = ObjectiveSpec(statistic="net_pnl", strategy="total")


def _all(search: Search) -> list[dict[str, dict[str, Any]]]:
    out = []
    while (params := search.ask()) is not None:
        out.append(params)
    return out


def _key(params: Params) -> str:
    return json.dumps({s: dict(p) for s, p in params.items()}, sort_keys=True)


def test_a_grid_proposes_every_combination_once_in_order() -> None:
    search = make_search(SearchSpec("grid"), FINITE, OBJECTIVE, study_path=None, study_name="g")
    assert search.total == 18
    proposed = _all(search)
    assert proposed == list(grid(FINITE))
    assert len({_key(p) for p in proposed}) == 18
    assert search.ask() is None


def test_a_grid_larger_than_max_trials_is_refused_with_its_size() -> None:
    with pytest.raises(
        ValueError, match=r"^the grid has 18 combinations, more than \[search\] max_trials = 17: "
    ):
        make_search(SearchSpec("grid", max_trials=17), FINITE, OBJECTIVE, study_path=None, study_name="g")


def test_random_is_the_same_for_the_same_seed_and_differs_for_another() -> None:
    def draws(seed: int) -> list[dict[str, dict[str, Any]]]:
        spec = SearchSpec("random", trials=10, seed=seed)
        return _all(make_search(spec, CONTINUOUS, OBJECTIVE, study_path=None, study_name="r"))

    first = draws(3)
    assert len(first) == 10
    assert first == draws(3)
    assert first != draws(4)
    for p in first:
        assert 0.01 <= p["momentum_eth"]["threshold"] <= 0.1
        assert 0.02 <= p["gamma_btc"]["delta_band"] <= 0.2
        assert p["gamma_btc"]["right"] in ("call", "put")
        assert type(p["gamma_btc"]["target_days"]) is int
        assert p["gamma_btc"]["option_size"] in (0.5, 1.0, 1.5, 2.0, 2.5)


def test_random_on_a_finite_space_never_repeats_and_stops_at_its_size() -> None:
    spec = SearchSpec("random", trials=12, seed=1)
    search = make_search(spec, FINITE, OBJECTIVE, study_path=None, study_name="r")
    proposed = _all(search)
    assert search.total == len(proposed) == 12
    assert len({_key(p) for p in proposed}) == 12
    assert all(p in list(grid(FINITE)) for p in proposed)
    # Asked for more than there are: each once, then no more.
    search = make_search(
        SearchSpec("random", trials=50, seed=1), FINITE, OBJECTIVE, study_path=None, study_name="r"
    )
    proposed = _all(search)
    assert search.total == 18
    assert sorted(map(_key, proposed)) == sorted(map(_key, grid(FINITE)))


def test_random_and_tpe_need_trials() -> None:
    with pytest.raises(ValueError, match=r"^a random search needs \[search\] trials"):
        make_search(SearchSpec("random"), FINITE, OBJECTIVE, study_path=None, study_name="r")


def _told(params: Params, number: int, stats: dict[str, Any] | None, objective: ObjectiveSpec) -> TrialResult:
    result = TrialResult(
        key=f"k{number}",
        number=number,
        params=params,
        window=Window(),
        role="search",
        fold=None,
        status="ok" if stats is not None else "failed",
        error=None if stats is not None else "boom",
        stats=stats or {},
    )
    return scored(objective, result)


def _value(params: Params) -> float:
    # A smooth made-up objective: best near threshold 0.05 and a small delta band.
    p = float(params["momentum_eth"]["threshold"])
    return -((p - 0.05) ** 2) * 1e4 - float(params["gamma_btc"]["delta_band"])


def _run(search: Search, count: int, objective: ObjectiveSpec, start: int = 0) -> list[Params]:
    asked: list[Params] = []
    for i in range(count):
        params = search.ask()
        assert params is not None
        asked.append(params)
        search.tell(
            params, _told(params, start + i, {"total": {"net_pnl": _value(params), "fills": i}}, objective)
        )
    return asked


def _trials(study: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{study}").trials


def test_tpe_stores_its_study_and_tells_values_failures_and_constraints(tmp_path: Path) -> None:
    study = tmp_path / "out" / "study.db"
    objective = ObjectiveSpec(statistic="net_pnl", constraints=(parse_constraint("fills >= 1"),))
    search = make_search(
        SearchSpec("tpe", trials=4, seed=2), CONTINUOUS, objective, study_path=study, study_name="s"
    )
    assert search.total == 4
    first = search.ask()
    assert first is not None
    search.tell(first, _told(first, 0, {"total": {"net_pnl": 1.5, "fills": 0}}, objective))  # infeasible
    second = search.ask()
    assert second is not None
    search.tell(second, _told(second, 1, None, objective))  # failed
    third = search.ask()
    assert third is not None
    search.tell(third, _told(third, 2, {"total": {"net_pnl": None, "fills": 3}}, objective))  # no value
    trials = _trials(study, "s")
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.FAIL]
    assert trials[0].values == [1.5]
    assert trials[0].constraints == {"c0": 1.0}  # broken by one fill
    # What TPE proposed is what the sweep runs: the study's params, on the spaces' grids.
    assert trials[0].params["gamma_btc.option_size"] == first["gamma_btc"]["option_size"]
    assert trials[0].params["momentum_eth.threshold"] == first["momentum_eth"]["threshold"]


def test_a_resumed_tpe_search_proposes_what_an_uninterrupted_one_does(tmp_path: Path) -> None:
    # More trials than TPE's 10 random first ones: the later proposals depend on what it was told.
    spec = SearchSpec("tpe", trials=13, seed=5, parallel=1)
    whole = make_search(spec, CONTINUOUS, OBJECTIVE, study_path=tmp_path / "whole.db", study_name="wf-0")
    proposed = _run(whole, 13, OBJECTIVE)
    assert whole.ask() is None
    assert len({_key(p) for p in proposed}) == 13

    study = tmp_path / "study.db"
    first = make_search(spec, CONTINUOUS, OBJECTIVE, study_path=study, study_name="wf-0")
    assert _run(first, 11, OBJECTIVE) == proposed[:11]
    assert first.ask() == proposed[11]  # interrupted: asked, never told
    # Trial 12 is proposed from trial 11's result: not before it is told.
    with pytest.raises(RuntimeError, match="^TPE trial 12 asked before trial 11 was told"):
        first.ask()
    del first

    again = make_search(spec, CONTINUOUS, OBJECTIVE, study_path=study, study_name="wf-0")
    assert again.total == 13
    # The eleven told again (the sweep finds them in its trial cache), then the rest: the
    # uninterrupted search's trials.
    assert _run(again, 13, OBJECTIVE) == proposed
    # The stored study holds each told trial once, as the uninterrupted one's.
    stored = _trials(study, "wf-0")
    assert [t.params for t in stored] == [t.params for t in _trials(tmp_path / "whole.db", "wf-0")]
    assert [t.user_attrs["tradingd_number"] for t in stored] == list(range(13))
    assert [t.state for t in stored] == [TrialState.COMPLETE] * 13
    assert [json.loads(t.user_attrs["tradingd_params"]) for t in stored] == proposed

    # Reopened once more: the same thirteen, and nothing new stored.
    done = make_search(spec, CONTINUOUS, OBJECTIVE, study_path=study, study_name="wf-0")
    assert _run(done, 13, OBJECTIVE) == proposed
    assert len(_trials(study, "wf-0")) == 13
    # Another study name in the same file is a separate study.
    other = make_search(spec, CONTINUOUS, OBJECTIVE, study_path=study, study_name="wf-1")
    assert len(_run(other, 13, OBJECTIVE)) == 13


def _lockstep(search: Search, count: int, *, tell_early: bool) -> list[Params]:
    """`count` trials, two in flight: trial n asked once trial n-2 is told. `tell_early`: each
    told as soon as asked after the next (as a worker finishing first), else told two at once
    (as results finishing out of order and told together)."""
    asked: list[Params] = []
    told = 0

    def tell_next() -> None:
        nonlocal told
        p = asked[told]
        search.tell(p, _told(p, told, {"total": {"net_pnl": _value(p), "fills": 1}}, OBJECTIVE))
        told += 1

    while len(asked) < count:
        params = search.ask()
        assert params is not None
        asked.append(params)
        if len(asked) - told == 2:
            tell_next()
            if not tell_early and told < len(asked):
                tell_next()
    while told < len(asked):
        tell_next()
    return asked


def test_tpe_with_trials_in_flight_proposes_the_same_whenever_results_arrive(tmp_path: Path) -> None:
    spec = SearchSpec("tpe", trials=14, seed=5, parallel=2)

    def search(name: str) -> Search:
        return make_search(spec, CONTINUOUS, OBJECTIVE, study_path=tmp_path / f"{name}.db", study_name="s")

    early = _lockstep(search("early"), 14, tell_early=True)
    assert _lockstep(search("late"), 14, tell_early=False) == early
    assert len({_key(p) for p in early}) == 14
    # One in flight: trial n sees trial n-1's result too, so its later trials differ.
    single = _run(
        make_search(
            attrs.evolve(spec, parallel=1),
            CONTINUOUS,
            OBJECTIVE,
            study_path=tmp_path / "one.db",
            study_name="s",
        ),
        14,
        OBJECTIVE,
    )
    assert single[:10] == early[:10]  # TPE's random first ones see no result
    assert single[10:] != early[10:]


def test_tpe_tell_refuses_params_it_did_not_ask(tmp_path: Path) -> None:
    search = make_search(
        SearchSpec("tpe", trials=2, seed=1),
        CONTINUOUS,
        OBJECTIVE,
        study_path=tmp_path / "s.db",
        study_name="s",
    )
    params = search.ask()
    assert params is not None
    stranger = {**params, "gamma_btc": {**params["gamma_btc"], "right": "neither"}}
    with pytest.raises(KeyError, match="no TPE trial waits for"):
        search.tell(stranger, _told(stranger, 0, {"total": {"net_pnl": 1.0}}, OBJECTIVE))


def test_tpe_minimizes_when_the_objective_does(tmp_path: Path) -> None:
    objective = ObjectiveSpec(statistic="max_drawdown", direction="minimize")
    make_search(
        SearchSpec("tpe", trials=1, seed=1), FINITE, objective, study_path=tmp_path / "s.db", study_name="m"
    )
    loaded = optuna.load_study(study_name="m", storage=f"sqlite:///{tmp_path / 's.db'}")
    assert loaded.direction == optuna.study.StudyDirection.MINIMIZE


_NO_OPTUNA = """
import sys
class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "optuna":
            raise ImportError("No module named 'optuna' (blocked by the test)")
        return None
sys.meta_path.insert(0, _Blocked())
from pathlib import Path
from tradingd.engine.sweep.search import make_search
from tradingd.engine.sweep.spec import ObjectiveSpec, ParamSpace, SearchSpec
space = {"s": {"x": ParamSpace("values", values=(1, 2))}}
for method in ("grid", "random"):
    s = make_search(SearchSpec(method, trials=2), space, ObjectiveSpec(), study_path=None, study_name="x")
    assert s.ask() is not None
assert "optuna" not in sys.modules
try:
    make_search(SearchSpec("tpe", trials=2), space, ObjectiveSpec(), study_path=Path("x.db"), study_name="x")
except Exception as exc:
    print(type(exc).__name__, exc)
"""


def test_grid_and_random_never_import_optuna_and_tpe_names_the_extra(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _NO_OPTUNA],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "DataError a TPE search needs the 'sweep' extra (Optuna): pip install 'tradingd[sweep]'"
    )
    assert issubclass(DataError, ValueError)


_ONE_X = {"m": {"x": ParamSpace("values", values=(1, 2, 3))}}
_ANOTHER = "another sweep \\(other parameters, objective, base or window\\): use another --out or delete it$"


def _tpe(study: Path, params: Any, objective: ObjectiveSpec = OBJECTIVE, **kw: Any) -> Search:
    return make_search(
        SearchSpec("tpe", trials=kw.pop("trials", 3), seed=kw.pop("seed", 1), parallel=kw.pop("parallel", 4)),
        params,
        objective,
        study_path=study,
        study_name="search",
        **kw,
    )


def _tell_all(search: Search, objective: ObjectiveSpec = OBJECTIVE) -> list[Params]:
    asked: list[Params] = []
    while (params := search.ask()) is not None:
        asked.append(params)
        value = float(params["m"]["x"])
        search.tell(params, _told(params, len(asked), {"total": {"net_pnl": value, "fills": 1}}, objective))
    return asked


def test_tpe_refuses_a_stored_study_of_other_parameters_or_objective(tmp_path: Path) -> None:
    study = tmp_path / "out" / "study.db"
    assert len(_tell_all(_tpe(study, _ONE_X))) == 3
    held = [t.params for t in _trials(study, "search")]
    # Other parameters: their trials would be proposed again (x for a sweep of y).
    other = {"m": {"y": ParamSpace("range", low=10, high=20, integer=True)}}
    with pytest.raises(DataError, match=f"^{study} holds a TPE study of {_ANOTHER}"):
        _tpe(study, other)
    # Another objective, or direction, or seed, or parallel (trial n would have learned from
    # other trials): another sweep too.
    for objective, seed, parallel in (
        (ObjectiveSpec(statistic="sharpe"), 1, 4),
        (ObjectiveSpec(direction="minimize"), 1, 4),
        (OBJECTIVE, 2, 4),
        (OBJECTIVE, 1, 2),
    ):
        with pytest.raises(DataError, match=f"^{study} holds a TPE study of {_ANOTHER}"):
            _tpe(study, _ONE_X, objective, seed=seed, parallel=parallel)
    # The study was left as it was (nothing failed, nothing added).
    assert [t.params for t in _trials(study, "search")] == held
    assert {t.state for t in _trials(study, "search")} == {TrialState.COMPLETE}
    # The same sweep resumes it, with more trials too (the three again, then new ones).
    again = _tpe(study, _ONE_X, trials=4)
    assert again.total == 4
    # A constraint written with other spaces is the same constraint.
    same = ObjectiveSpec(constraints=(parse_constraint("fills>=1"),))
    spaced = ObjectiveSpec(constraints=(parse_constraint("fills >= 1"),))
    _tell_all(_tpe(tmp_path / "c.db", _ONE_X, same), same)
    assert _tpe(tmp_path / "c.db", _ONE_X, spaced).total == 3


def test_tpe_refuses_a_stored_study_of_another_base_or_window(tmp_path: Path) -> None:
    study = tmp_path / "study.db"
    _tell_all(_tpe(study, _ONE_X, fingerprint="base A, window 1"))
    with pytest.raises(DataError, match=f"^{study} holds a TPE study of {_ANOTHER}"):
        _tpe(study, _ONE_X, fingerprint="base B, window 1")
    assert _tpe(study, _ONE_X, fingerprint="base A, window 1").total == 3
    # A study an earlier run only created (no trial yet) is taken over by whoever comes.
    optuna.create_study(storage=f"sqlite:///{tmp_path / 'new.db'}", study_name="search")
    assert _tpe(tmp_path / "new.db", _ONE_X, fingerprint="anything").total == 3


def test_tpe_names_its_sampler_settings_and_records_the_optuna_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Optuna 4 and 5 default otherwise (multivariate, constant_liar): proposals would change with
    # the installed version's defaults. Optuna 5's, written out.
    made: list[dict[str, Any]] = []
    real = optuna.samplers.TPESampler

    def recording(**kw: Any) -> Any:
        made.append(kw)
        return real(**kw)

    monkeypatch.setattr(optuna.samplers, "TPESampler", recording)
    search = _tpe(tmp_path / "study.db", _ONE_X, parallel=2)
    _tell_all(search)
    assert len(made) >= 3  # one per proposal
    for kw in made:
        assert {k: kw.get(k) for k in ("multivariate", "constant_liar", "n_startup_trials")} == {
            "multivariate": True,
            "constant_liar": True,
            "n_startup_trials": 10,
        }
    stored = optuna.load_study(study_name="search", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert stored.user_attrs["tradingd_optuna"] == optuna.__version__


def test_a_rerun_rewrites_the_stored_study_with_its_own_results(tmp_path: Path) -> None:
    study = tmp_path / "study.db"
    first = _tpe(study, _ONE_X, trials=2)
    a = first.ask()
    assert a is not None
    first.tell(a, _told(a, 0, None, OBJECTIVE))  # failed (a worker lost, say)
    b = first.ask()
    assert b is not None
    first.tell(b, _told(b, 1, {"total": {"net_pnl": 2.0}}, OBJECTIVE))
    # Run again (its trial cache deleted): trial 0 ends ok now, trial 1 with another value.
    again = _tpe(study, _ONE_X, trials=2)
    assert again.ask() == a
    again.tell(a, _told(a, 0, {"total": {"net_pnl": 5.0}}, OBJECTIVE))
    assert again.ask() == b
    again.tell(b, _told(b, 1, {"total": {"net_pnl": 3.0}}, OBJECTIVE))
    stored = _trials(study, "search")
    assert [(t.user_attrs["tradingd_number"], t.state, t.values) for t in stored] == [
        (0, TrialState.COMPLETE, [5.0]),
        (1, TrialState.COMPLETE, [3.0]),
    ]


def test_a_study_db_that_cannot_be_written_costs_its_record_not_the_search(tmp_path: Path) -> None:
    # Another process holds study.db locked while trial 0 is told (sqlite waits 5 s, then fails).
    study = tmp_path / "study.db"
    search = _tpe(study, _ONE_X, trials=3)
    first = search.ask()
    assert first is not None
    lock = sqlite3.connect(study, timeout=0)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        search.tell(first, _told(first, 0, {"total": {"net_pnl": 1.0, "fills": 1}}, OBJECTIVE))
    finally:
        lock.rollback()
        lock.close()
    assert isinstance(search, TPESearch)
    assert (search.unrecorded, search.unrecorded_why) == (1, "OperationalError: database is locked")
    # The search goes on, proposing what it would have (the study is only a record).
    rest = _tell_all(search)
    assert [first, *rest] == _tell_all(_tpe(tmp_path / "free.db", _ONE_X, trials=3))
    assert search.unrecorded == 1
    assert [t.user_attrs["tradingd_number"] for t in _trials(study, "search")] == [1, 2]
