"""The sweep runner on the local executor: real trials (backtests of the README's config on a
few minutes of the generated sample) numbered and ordered the same on every run; a cached trial
is not run again; a raising trial is failed and the sweep goes on; data a worker cannot read
fails each trial with a clear error; Ctrl-C keeps what finished; a walk-forward searches each
train window and runs the best parameters on its test window. Fast trials (`sweep_trials`)
show the numbering does not depend on the order trials finish in, for TPE as well."""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import shutil
import socket
import sys
import types
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import attrs
import pytest
import trio

from tests.support.sweep_base import sweep_base
from tests.support.sweep_trials import behave, context
from tradingd.cli import trial as trial_module
from tradingd.cli.backtest import build_kernel
from tradingd.cli.trial import (
    _user_code,
    code_version,
    context_for,
    key_of,
    read_base,
    run_trial,
    sweep_window,
)
from tradingd.config import load_config
from tradingd.engine.backtest.report import report_dict
from tradingd.engine.model.errors import ConfigError, DataError
from tradingd.engine.store.evcache import EventCache
from tradingd.engine.sweep.cache import TrialStore
from tradingd.engine.sweep.local import ProcessExecutor
from tradingd.engine.sweep.model import (
    Params,
    SweepOutcome,
    TrialContext,
    TrialResult,
    TrialSpec,
    Window,
    result_to_dict,
)
from tradingd.engine.sweep.objective import parse_constraint
from tradingd.engine.sweep.results import csv_text
from tradingd.engine.sweep.runner import run_sweep
from tradingd.engine.sweep.spec import ObjectiveSpec, ParamSpace, SearchSpec, SweepSpec, WalkForwardSpec

START_NS = 1_795_478_400 * 10**9  # 2026-11-24T00:00:00Z: the generated sample's first frame


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sweep_base(tmp_path_factory.mktemp("sweep-base"))


def _spec(base: Path, out: Path, params: dict[str, dict[str, ParamSpace]], **kw: Any) -> SweepSpec:
    return SweepSpec(path=str(base.parent / "sweep.toml"), base=str(base), out=str(out), params=params, **kw)


# Two strategies' parameters; a short lookback and a low threshold trade within the sample's
# three minutes.
GRID = {
    "momentum_eth": {"lookback_s": ParamSpace("values", (30, 60))},
    "gamma_btc": {"delta_band": ParamSpace("values", (0.02, 0.2))},
}


def _run(
    spec: SweepSpec, workers: int = 2, ctx: TrialContext | None = None
) -> tuple[SweepOutcome, list[TrialResult]]:
    table, loaded = read_base(spec)
    if ctx is None:
        ctx = context_for(spec, table, loaded, cache_dir=Path(spec.base).parent / "evc")
    seen: list[TrialResult] = []
    with ProcessExecutor(run_trial, workers) as ex:
        outcome = run_sweep(
            spec, ctx, ex, TrialStore(Path(spec.out)), key_of=key_of(ctx), span=_no_span, progress=seen.append
        )
    return outcome, seen


def _no_span() -> tuple[int, int]:
    raise AssertionError("a plain sweep never asks for the data's span")


def _comparable(outcome: SweepOutcome) -> list[dict[str, Any]]:
    """Every trial's JSON without what may differ between two runs of the same sweep: its
    duration and whether it came from the cache."""
    out = []
    for r in outcome.trials:
        d = result_to_dict(r)
        del d["duration_s"], d["cached"]
        out.append(d)
    return out


def test_the_same_sweep_gives_the_same_trials_and_a_rerun_runs_none(base: Path, tmp_path: Path) -> None:
    first, seen = _run(_spec(base, tmp_path / "a", GRID))
    assert [r.number for r in first.trials] == [0, 1, 2, 3]
    # The grid's order: the numbers say which parameters, whatever order the workers finished in.
    assert [
        (r.params["momentum_eth"]["lookback_s"], r.params["gamma_btc"]["delta_band"]) for r in first.trials
    ] == [(30, 0.02), (30, 0.2), (60, 0.02), (60, 0.2)]
    assert all(r.status == "ok" and r.objective is not None for r in first.trials), first.trials
    assert len(seen) == 4 and not any(r.cached for r in seen)
    assert len({r.key for r in first.trials}) == 4
    # Different parameters made different backtests (the parameters reached the strategies).
    assert len({r.stats["total"]["net_pnl"] for r in first.trials}) > 1
    assert first.trials[0].stats["total"]["net_pnl"] == pytest.approx(
        sum(s["net_pnl"] for name, s in first.trials[0].stats.items() if name != "total")
    )
    assert len(TrialStore(tmp_path / "a")) == 4

    second, _ = _run(_spec(base, tmp_path / "b", GRID))
    assert _comparable(second) == _comparable(first)

    again, seen = _run(_spec(base, tmp_path / "a", GRID))
    assert [r.cached for r in seen] == [True] * 4  # nothing ran
    assert _comparable(again) == _comparable(first)


def test_a_raising_trial_is_failed_with_its_error_and_the_sweep_finishes(base: Path, tmp_path: Path) -> None:
    params = {"trap": {"fail": ParamSpace("values", (True, False))}}
    outcome, _ = _run(_spec(base, tmp_path / "out", params))
    assert [r.status for r in outcome.trials] == ["failed", "ok"]
    bad = outcome.trials[0]
    assert bad.error == "RuntimeError: the trap was sprung"
    assert bad.objective is None and not bad.feasible
    # Kept: the same trial raises again, a rerun need not run it.
    assert TrialStore(tmp_path / "out").get(bad.key) is not None


def test_a_worker_killed_mid_trial_is_retried_and_ends_ok(base: Path, tmp_path: Path) -> None:
    marker = str(tmp_path / "killed")
    params = {"trap": {"kill_marker": ParamSpace("values", ("", marker))}}
    outcome, _ = _run(_spec(base, tmp_path / "out", params))
    assert [r.status for r in outcome.trials] == ["ok", "ok"]
    assert outcome.trials[1].attempts == 2
    assert Path(marker).exists()


def test_data_a_worker_cannot_read_fails_the_trial_naming_the_file_and_host(
    base: Path, tmp_path: Path
) -> None:
    spec = _spec(base, tmp_path / "out", {"momentum_eth": {"threshold": ParamSpace("values", (0.001,))}})
    table, loaded = read_base(spec)
    ctx = context_for(spec, table, loaded, cache_dir=None)
    missing = str(tmp_path / "not-mounted" / "sample.rec.zst")
    outcome, _ = _run(spec, ctx=attrs.evolve(ctx, data_files=(*ctx.data_files, missing)))
    (r,) = outcome.trials
    assert r.status == "failed"
    assert r.error == (
        f"DataUnreadable: data file {missing} is not readable on worker {socket.gethostname()}:"
        " No such file or directory (every worker must see the data at the same path)"
    )
    assert TrialStore(tmp_path / "out").get(r.key) is None  # the place's failure, not the trial's


class _InterruptAfter:
    """An executor that raises KeyboardInterrupt (Ctrl-C) once `n` results were handed out."""

    def __init__(self, inner: ProcessExecutor, n: int) -> None:
        self.inner = inner
        self.capacity = inner.capacity
        self.n = n
        self.cancelled: bool | None = None

    def submit(self, ctx: TrialContext, trial: TrialSpec) -> None:
        self.inner.submit(ctx, trial)

    def in_flight(self) -> int:
        return self.inner.in_flight()

    def next_result(self) -> TrialResult:
        if self.n == 0:
            raise KeyboardInterrupt
        self.n -= 1
        return self.inner.next_result()

    def close(self, *, cancel: bool) -> None:
        self.cancelled = cancel
        self.inner.close(cancel=cancel)


def _fast_spec(tmp_path: Path, xs: tuple[int, ...], **kw: Any) -> SweepSpec:
    return SweepSpec(
        path=str(tmp_path / "sweep.toml"),
        base=str(tmp_path / "unused.toml"),
        out=str(tmp_path / "out"),
        params={"t": {"x": ParamSpace("values", xs)}},
        **kw,
    )


def _fast_key(params: Params, window: Window) -> str:
    text = json.dumps({k: dict(v) for k, v in params.items()}, sort_keys=True) + repr(window)
    return hashlib.sha256(text.encode()).hexdigest()


def test_ctrl_c_closes_the_executor_at_once_and_keeps_what_finished(tmp_path: Path) -> None:
    spec = _fast_spec(tmp_path, (1, 2, 3, 4, 5, 6))
    ex = _InterruptAfter(ProcessExecutor(behave, 2), 2)
    store = TrialStore(tmp_path / "out")
    outcome = run_sweep(spec, context(), ex, store, key_of=_fast_key, span=_no_span)
    assert outcome.interrupted
    assert ex.cancelled is True
    assert len(outcome.trials) == 2
    assert len(store) == 2
    assert all(store.get(r.key) is not None for r in outcome.trials)


def test_numbers_do_not_depend_on_the_order_trials_finish_in(tmp_path: Path) -> None:
    # Larger x sleeps longer: the first trials finish last.
    spec = _fast_spec(tmp_path, (4, 3, 2, 1, 0))
    spec = attrs.evolve(
        spec,
        params={
            "t": {"x": ParamSpace("values", (4, 3, 2, 1, 0)), "sleep_per_x": ParamSpace("values", (0.1,))}
        },
    )
    order: list[int] = []
    with ProcessExecutor(behave, 3) as ex:
        outcome = run_sweep(
            spec,
            context(),
            ex,
            TrialStore(tmp_path / "out"),
            key_of=_fast_key,
            span=_no_span,
            progress=lambda r: order.append(r.number),
        )
    assert order != sorted(order)  # they did finish out of order
    assert [(r.number, r.params["t"]["x"]) for r in outcome.trials] == [
        (0, 4),
        (1, 3),
        (2, 2),
        (3, 1),
        (4, 0),
    ]


def test_a_tpe_search_proposes_the_same_trials_on_every_run(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    params = {
        "t": {"x": ParamSpace("range", low=-5.0, high=5.0), "sleep_per_x": ParamSpace("values", (0.02,))}
    }

    def sweep(out: str) -> list[float]:
        spec = SweepSpec(
            path=str(tmp_path / "sweep.toml"),
            base=str(tmp_path / "unused.toml"),
            out=str(tmp_path / out),
            params=params,
            search=SearchSpec(method="tpe", trials=8, seed=3),
            objective=ObjectiveSpec(direction="minimize"),
        )
        with ProcessExecutor(behave, 2) as ex:
            outcome = run_sweep(
                spec, context(), ex, TrialStore(Path(spec.out)), key_of=_fast_key, span=_no_span
            )
        return [float(r.params["t"]["x"]) for r in outcome.trials]

    first = sweep("a")
    assert len(first) == 8
    assert sweep("b") == first


def test_a_walk_forward_runs_each_folds_best_on_its_test_window(base: Path, tmp_path: Path) -> None:
    wf = WalkForwardSpec(windows=2, train_s=60, test_s=30, mode="rolling")
    spec = _spec(
        base,
        tmp_path / "out",
        {"momentum_eth": {"lookback_s": ParamSpace("values", (20, 40))}},
        walk_forward=wf,
    )
    table, loaded = read_base(spec)
    ctx = context_for(spec, table, loaded, cache_dir=base.parent / "evc")
    with ProcessExecutor(run_trial, 2) as ex:
        outcome = run_sweep(
            spec,
            ctx,
            ex,
            TrialStore(tmp_path / "out"),
            key_of=key_of(ctx),
            span=lambda: (START_NS, START_NS + 180 * 10**9),
        )
    assert not outcome.interrupted
    assert len(outcome.folds) == 2
    assert [(r.number, r.role, r.fold) for r in outcome.trials] == [
        (0, "train", 0),
        (1, "train", 0),
        (2, "test", 0),
        (3, "train", 1),
        (4, "train", 1),
        (5, "test", 1),
    ]
    for i, f in enumerate(outcome.folds):
        assert f.fold.index == i
        assert [t.window for t in f.trials] == [f.fold.train] * 2
        assert f.best is not None and f.best in f.trials
        assert f.test is not None and f.test.window == f.fold.test and f.test.params == f.best.params
    assert outcome.folds[1].fold.train.start_ns == START_NS + 30 * 10**9  # rolling by the test length
    assert outcome.oos_equity
    assert "max_drawdown" in outcome.oos_stats


def test_a_trials_key_names_its_config_window_data_and_code(base: Path, tmp_path: Path) -> None:
    spec = _spec(base, tmp_path / "out", GRID)
    table, loaded = read_base(spec)
    ctx = context_for(spec, table, loaded, cache_dir=None)
    key = key_of(ctx)
    p: dict[str, dict[str, Any]] = {"momentum_eth": {"lookback_s": 30}, "gamma_btc": {"delta_band": 0.02}}
    k = key(p, Window())
    assert len(k) == 64 and k == key(
        {"gamma_btc": {"delta_band": 0.02}, "momentum_eth": {"lookback_s": 30}}, Window()
    )
    assert key({**p, "momentum_eth": {"lookback_s": 60}}, Window()) != k
    assert key(p, Window(START_NS, None)) != k
    assert key_of(attrs.evolve(ctx, code_version="other"))(p, Window()) != k
    # The code version covers the user's strategy module (the trap's), edited on disk.
    trap = next(base.parent.glob("trap_*.py"))
    text = trap.read_text()
    try:
        trap.write_text(text + "\n# edited\n")
        assert code_version(loaded) != ctx.code_version
    finally:
        trap.write_text(text)
    assert code_version(loaded) == ctx.code_version


def test_the_code_version_covers_the_c_sources_and_the_built_modules(
    base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The backtest runs compiled code (engine/backtest/_kernel.c, its header, the built `.so`):
    # the version hashed the `.py` files only, so a change there alone kept the cached trials.
    # Edited in a copy of the package's code rooms, never in the tree the tests run.
    spec = _spec(base, tmp_path / "out", GRID)
    _, loaded = read_base(spec)
    copy = tmp_path / "pkg"
    for room in trial_module._CODE_ROOTS:
        shutil.copytree(
            trial_module._PACKAGE / room, copy / room, ignore=shutil.ignore_patterns("__pycache__")
        )
    for name in trial_module._CODE_FILES:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(trial_module._PACKAGE / name, copy / name)
    monkeypatch.setattr(trial_module, "_PACKAGE", copy)
    before = code_version(loaded)
    edited = [copy / "engine" / "backtest" / "_kernel.c", copy / "engine" / "_typecache.h"]
    edited += [
        p
        for p in (copy / "engine" / "backtest").iterdir()
        if p.name.startswith("_kernel.") and p.name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
    ]
    # The built module too, where this tree has one (a build without a compiler has none).
    built = importlib.util.find_spec("tradingd.engine.backtest._kernel") is not None
    assert len(edited) == (3 if built else 2), edited
    for path in edited:
        original = path.read_bytes()
        path.write_bytes(original + b"\n/* edited */\n")
        assert code_version(loaded) != before, path
        path.write_bytes(original)
        assert code_version(loaded) == before


def _user_config(base: Path, name: str, module: str) -> Path:
    """A copy of the base config (beside it) whose trap strategy is the class `module:Trap`."""
    text = base.read_text()
    trap = next(base.parent.glob("trap_*.py")).stem
    assert f'"{trap}:Trap"' in text
    config = base.with_name(f"{name}.toml")
    config.write_text(text.replace(f'"{trap}:Trap"', f'"{module}:Trap"'))
    return config


def test_a_helper_module_beside_the_users_strategy_is_part_of_the_code_version(base: Path) -> None:
    # mystrat.py imports helpers.py from its own folder (as `config._loader` imports it): an
    # edit of the helper changes what the trials compute, so their keys.
    tag = base.parent.name.replace("-", "_")
    helper = base.with_name(f"helpers_{tag}.py")
    helper.write_text("FACTOR = 2.0\n")
    base.with_name(f"mystrat_{tag}.py").write_text(
        f"import helpers_{tag}  # noqa: F401\nfrom {next(base.parent.glob('trap_*.py')).stem} import Trap\n"
    )
    loaded = load_config(_user_config(base, "with-helper", f"mystrat_{tag}"))
    before = code_version(loaded)
    helper.write_text("FACTOR = 3.0\n")
    assert code_version(loaded) != before
    helper.write_text("FACTOR = 2.0\n")
    assert code_version(loaded) == before


def test_a_namespace_package_strategy_is_part_of_the_code_version(base: Path) -> None:
    # A folder without `__init__.py`: its module has no `__file__`; it was skipped silently.
    tag = base.parent.name.replace("-", "_")
    package = base.with_name(f"ns_{tag}")
    package.mkdir()
    module = package / "strat.py"
    module.write_text(f"from {next(base.parent.glob('trap_*.py')).stem} import Trap  # noqa: F401\n")
    loaded = load_config(_user_config(base, "namespace", f"ns_{tag}.strat"))
    before = code_version(loaded)
    module.write_text(module.read_text() + "# edited\n")
    assert code_version(loaded) != before


def test_a_trials_statistics_are_the_plain_backtests_of_its_config_params_and_window(base: Path) -> None:
    """The core contract: a windowed trial (run in a worker) gives the statistics `tradingd
    backtest` gives for the base config with the trial's parameters written in, over the same
    window."""
    params: dict[str, dict[str, Any]] = {
        "momentum_eth": {"lookback_s": 30},
        "gamma_btc": {"delta_band": 0.02},
    }
    window = Window(START_NS + 60 * 10**9, START_NS + 150 * 10**9)
    spec = _spec(base, base.parent / "unused", GRID)
    table, loaded = read_base(spec)
    ctx = context_for(spec, table, loaded, cache_dir=base.parent / "evc")
    trial = TrialSpec(key=key_of(ctx)(params, window), number=0, params=params, window=window)
    with ProcessExecutor(run_trial, 1) as ex:
        ex.submit(ctx, trial)
        result = ex.next_result()
    assert result.status == "ok", result.error

    # The same config as a user would write it, as a file.
    text = base.read_text()
    for old, new in (
        ("lookback_s = 300\n", "lookback_s = 30\n"),
        ("delta_band = 0.05 ", "delta_band = 0.02 "),
    ):
        assert text.count(old) == 1
        text = text.replace(old, new)
    config = base.with_name("plain.toml")
    config.write_text(text)
    kernel = build_kernel(
        load_config(config),
        event_cache=EventCache(base.parent / "evc"),
        start_ns=window.start_ns,
        end_ns=window.end_ns,
    )
    plain = report_dict(trio.run(kernel.run), include_curves=False)["strategies"]
    assert {k: v for k, v in result.stats.items() if k != "total"} == plain
    assert any(s["fills"] for s in plain.values())  # it traded: the comparison says something


def test_a_strategy_module_without_source_is_refused_not_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    # A module made at run time (no file, no folder): its code cannot be part of the key.
    module = types.ModuleType("made_at_run_time_r18")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    cls = type("Made", (), {"__module__": module.__name__})
    loaded = types.SimpleNamespace(strategy_classes={"made": cls}, path=Path("/x/bt.toml"))
    with pytest.raises(ConfigError, match="strategy 'made': cannot find the source of its module"):
        _user_code(loaded)  # type: ignore[arg-type]


def test_a_sweep_window_outside_the_bases_is_one_error(base: Path, tmp_path: Path) -> None:
    text = base.read_text().replace("[backtest]\n", '[backtest]\nend = "2026-11-24T00:01:00Z"\n', 1)
    windowed = base.with_name("ends-early.toml")
    windowed.write_text(text)
    spec = attrs.evolve(_spec(windowed, tmp_path / "out", GRID), window=Window(START_NS + 120 * 10**9, None))
    _, loaded = read_base(spec)
    with pytest.raises(ConfigError) as err:
        sweep_window(spec, loaded)
    # Its times as ISO 8601 UTC to the microsecond (what --start reads), not a recording line's.
    assert err.value.message.startswith(
        "the sweep's window is empty: its start (2026-11-24T00:02:00.000000Z) is not before its end"
        " (2026-11-24T00:01:00.000000Z)"
    ), str(err.value)
    assert sweep_window(attrs.evolve(spec, window=Window()), loaded) == Window(None, START_NS + 60 * 10**9)


# --- FX2: a walk-forward fold's best, checked independently; no look-ahead; a stale TPE study ---


class _Inline:
    """An executor running each trial in this process as it is submitted (no worker: the
    runner's choices are what these tests look at)."""

    capacity = 2

    def __init__(self, fn: Callable[[TrialContext, TrialSpec], TrialResult]) -> None:
        self.fn = fn
        self.done: deque[TrialResult] = deque()

    def submit(self, ctx: TrialContext, trial: TrialSpec) -> None:
        self.done.append(self.fn(ctx, trial))

    def next_result(self) -> TrialResult:
        return self.done.popleft()

    def in_flight(self) -> int:
        return len(self.done)

    def close(self, *, cancel: bool) -> None:
        self.done.clear()


_XS = (1, 2, 3, 4, 5, 6, 7)


def _train_stats(x: int, fold: int) -> dict[str, Any]:
    """A train trial's statistics: its params' and its fold's only (never the test window's).
    Best near a target moving with the fold; x = 3 and x = 6 break `fills >= 1`."""
    target = 2.5 + 1.6 * fold
    return {
        "net_pnl": 10.0 - (x - target) ** 2,
        "max_drawdown": abs(x - 1 - 2 * fold) + 0.1 * x,
        "fills": x % 3,
    }


def _market(test_pnl: Callable[[int], float]) -> Callable[[TrialContext, TrialSpec], TrialResult]:
    def run(ctx: TrialContext, trial: TrialSpec) -> TrialResult:
        x = int(trial.params["t"]["x"])
        assert trial.fold is not None
        if trial.role == "test":
            total: dict[str, Any] = {"net_pnl": test_pnl(x), "max_drawdown": 0.0, "fills": 1}
        else:
            total = _train_stats(x, trial.fold)
        start = trial.window.start_ns or 0
        return TrialResult(
            key=trial.key,
            number=trial.number,
            params=trial.params,
            window=trial.window,
            role=trial.role,
            fold=trial.fold,
            status="ok",
            stats={"total": total},
            equity=((start, 0.0), (start + 10**9, float(total["net_pnl"]))),
        )

    return run


@pytest.mark.parametrize(("statistic", "direction"), [("net_pnl", "maximize"), ("max_drawdown", "minimize")])
def test_a_folds_best_is_its_best_feasible_train_trial_whatever_its_test_window_holds(
    tmp_path: Path, statistic: str, direction: Literal["maximize", "minimize"]
) -> None:
    wf = WalkForwardSpec(windows=3, train_s=60, test_s=30, mode="rolling")
    spec = _fast_spec(
        tmp_path,
        _XS,
        walk_forward=wf,
        objective=ObjectiveSpec(
            statistic=statistic, direction=direction, constraints=(parse_constraint("fills >= 1"),)
        ),
    )
    chosen: list[list[Params]] = []
    # Two markets after each train window: one pays the lowest x, the other the highest. A
    # runner that looked at the test window would choose differently in each.
    for i, test_pnl in enumerate((lambda x: -100.0 * x, lambda x: 100.0 * x)):
        outcome = run_sweep(
            attrs.evolve(spec, out=str(tmp_path / f"out{i}")),
            context(),
            _Inline(_market(test_pnl)),
            TrialStore(tmp_path / f"out{i}"),
            key_of=_fast_key,
            span=lambda: (START_NS, START_NS + 180 * 10**9),
        )
        assert len(outcome.folds) == 3
        for f in outcome.folds:
            # Computed here, from the train statistics alone: the feasible x (fills >= 1) with the
            # highest (lowest) statistic.
            feasible = [x for x in _XS if _train_stats(x, f.fold.index)["fills"] >= 1]
            pick = max if direction == "maximize" else min
            want = pick(feasible, key=lambda x: _train_stats(x, f.fold.index)[statistic])
            assert f.best is not None and f.best.params == {"t": {"x": want}}
            assert f.best.role == "train" and f.best.window == f.fold.train
            assert f.test is not None and f.test.params == f.best.params and f.test.window == f.fold.test
        chosen.append([f.best.params for f in outcome.folds if f.best is not None])
    assert chosen[0] == chosen[1]
    assert len({str(p) for p in chosen[0]}) > 1  # the folds did choose differently


def test_a_tpe_sweep_refuses_the_study_of_another_base_or_window(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    spec = _fast_spec(tmp_path, _XS, search=SearchSpec(method="tpe", trials=3, seed=1))

    def sweep(spec: SweepSpec, ctx: TrialContext) -> SweepOutcome:
        return run_sweep(
            spec, ctx, _Inline(behave), TrialStore(Path(spec.out)), key_of=_fast_key, span=_no_span
        )

    assert len(sweep(spec, context()).trials) == 3
    study = Path(spec.out) / "study.db"
    refused = (
        f"^{study} holds a TPE study of another sweep \\(other parameters, objective, base or window\\):"
        " use another --out or delete it$"
    )
    with pytest.raises(DataError, match=refused):
        sweep(attrs.evolve(spec, window=Window(START_NS, None)), context())
    with pytest.raises(DataError, match=refused):
        sweep(spec, attrs.evolve(context(), base_table={"strategies": []}))
    with pytest.raises(DataError, match=refused):
        sweep(attrs.evolve(spec, params={"t": {"x": ParamSpace("values", (8, 9))}}), context())
    # The same sweep resumes it: its three trials again, all from the trial cache.
    again = sweep(spec, context())
    assert [r.cached for r in again.trials] == [True] * 3


# --- a resumed TPE sweep proposes what an uninterrupted one does ---


class _Queued:
    """An executor of `capacity` slots running each trial in this process, handing the results
    back first in first out, or last in first out (trials finishing out of order, as workers'
    do); Ctrl-C (KeyboardInterrupt) once `interrupt_after` results were handed back."""

    def __init__(self, capacity: int, *, lifo: bool = False, interrupt_after: int | None = None) -> None:
        self.capacity = capacity
        self.lifo = lifo
        self.left = interrupt_after
        self.queued: list[TrialResult] = []
        self.most = 0  # the most trials it held at once

    def submit(self, ctx: TrialContext, trial: TrialSpec) -> None:
        assert len(self.queued) < self.capacity
        self.queued.append(behave(ctx, trial))
        self.most = max(self.most, len(self.queued))

    def next_result(self) -> TrialResult:
        if self.left == 0:
            raise KeyboardInterrupt
        if self.left is not None:
            self.left -= 1
        return self.queued.pop() if self.lifo else self.queued.pop(0)

    def in_flight(self) -> int:
        return len(self.queued)

    def close(self, *, cancel: bool) -> None:
        self.queued.clear()


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("interrupted_after", [4, 12])
def test_a_resumed_tpe_sweep_proposes_the_trials_an_uninterrupted_one_does(
    tmp_path: Path, workers: int, interrupted_after: int
) -> None:
    pytest.importorskip("optuna")
    # More trials than TPE's 10 random first ones: the later proposals depend on what it was told.
    spec = SweepSpec(
        path=str(tmp_path / "sweep.toml"),
        base=str(tmp_path / "unused.toml"),
        out="",
        params={"t": {"x": ParamSpace("range", low=-5.0, high=5.0), "y": ParamSpace("values", (1, 2, 3))}},
        search=SearchSpec(method="tpe", trials=14, seed=7),
        objective=ObjectiveSpec(direction="minimize", constraints=(parse_constraint("net_pnl >= 0.25"),)),
    )

    def sweep(out: str, executor: _Queued) -> SweepOutcome:
        s = attrs.evolve(spec, out=str(tmp_path / out))
        return run_sweep(s, context(), executor, TrialStore(Path(s.out)), key_of=_fast_key, span=_no_span)

    whole = sweep("whole", _Queued(workers))
    assert not whole.interrupted and len(whole.trials) == 14
    assert len({r.params["t"]["x"] for r in whole.trials}) == 14
    # Whatever order the workers finish in, the same trials.
    assert _comparable(sweep("lifo", _Queued(workers, lifo=True))) == _comparable(whole)

    cut = sweep("cut", _Queued(workers, interrupt_after=interrupted_after))
    assert cut.interrupted
    assert 0 < len(cut.trials) < 14
    resumed = sweep("cut", _Queued(workers, lifo=True))
    assert not resumed.interrupted
    # The same trials (numbers, parameters, results: the same table), those that finished
    # before the interruption from the trial cache.
    assert [(r.number, r.params) for r in resumed.trials] == [(r.number, r.params) for r in whole.trials]
    assert _comparable(resumed) == _comparable(whole)
    assert [r.cached for r in resumed.trials] == [
        r.number in {c.number for c in cut.trials} for r in resumed.trials
    ]
    assert csv_text(resumed, spec.objective) == csv_text(whole, spec.objective)


def test_a_tpe_sweep_proposes_the_same_trials_whatever_the_workers(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    # The file's `parallel` (3) decides what each trial learns from, not the executor's slots:
    # fewer workers only wait more, more run no more than `parallel` at once.
    spec = SweepSpec(
        path=str(tmp_path / "sweep.toml"),
        base=str(tmp_path / "unused.toml"),
        out="",
        params={"t": {"x": ParamSpace("range", low=-5.0, high=5.0), "y": ParamSpace("values", (1, 2, 3))}},
        search=SearchSpec(method="tpe", trials=16, seed=4, parallel=3),
        objective=ObjectiveSpec(direction="minimize"),
    )

    def sweep(out: str, executor: _Queued) -> SweepOutcome:
        s = attrs.evolve(spec, out=str(tmp_path / out))
        return run_sweep(s, context(), executor, TrialStore(Path(s.out)), key_of=_fast_key, span=_no_span)

    executors = {workers: _Queued(workers, lifo=True) for workers in (1, 2, 3, 8)}
    outcomes = {workers: sweep(f"w{workers}", ex) for workers, ex in executors.items()}
    assert len({r.params["t"]["x"] for r in outcomes[1].trials}) == 16
    for workers in (2, 3, 8):
        assert _comparable(outcomes[workers]) == _comparable(outcomes[1]), workers
    assert {w: ex.most for w, ex in executors.items()} == {1: 1, 2: 2, 3: 3, 8: 3}
