"""A whole sweep: the search's trials run on an executor, each finished one kept in the trial
cache at once, a walk-forward's folds one after the other (`run_sweep`).

Determinism: trials are numbered in the order the search proposes them, and the search is told
the results in that order (a result that finishes early waits for those before it), so the same
sweep gives the same numbers, the same parameters and the same results whatever the order the
workers finish in. An adaptive search (TPE: what it proposes depends on what it was told) is
also asked in lockstep: trial n is proposed once the results of 0..n-parallel (the sweep
file's `[search] parallel`) have been told, and at most `parallel` trials run at once (fewer
when the executor has fewer slots: they wait more), so every proposal sees the same history on
every run, whatever the workers, the machine or the cluster. Grid and random searches propose
without looking, and are asked whenever a slot frees."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import structlog

from ..model.words import plural
from . import objective, walkforward
from .cache import TrialStore
from .model import (
    Executor,
    Fold,
    FoldOutcome,
    Params,
    Role,
    SweepOutcome,
    TrialContext,
    TrialResult,
    TrialSpec,
    Window,
)
from .search import TPESearch, make_search
from .spec import SweepSpec

__all__ = ["run_sweep", "study_path", "trial_count"]

_log = structlog.get_logger("tradingd.sweep")


def study_path(spec: SweepSpec) -> Path:
    """Where a TPE search keeps its Optuna study (beside the results: a rerun resumes it)."""
    return Path(spec.out) / "study.db"


def trial_count(spec: SweepSpec, folds: int) -> int:
    """How many trials the sweep runs in all (the progress bar's total): the search's, once per
    fold and one test trial per fold for a walk-forward."""
    if spec.search.method == "tpe":  # its study is not opened for a count
        total = spec.search.trials or 0
    else:
        total = make_search(
            spec.search, spec.params, spec.objective, study_path=None, study_name="count"
        ).total
    return total if spec.walk_forward is None else folds * (total + 1)


class _Interrupted(Exception):
    """Ctrl-C reached the sweep: what finished is in `trials`."""


@attrs.define
class _Run:
    """One sweep's running state: the numbering, every finished trial, the plumbing."""

    spec: SweepSpec
    ctx: TrialContext
    executor: Executor
    store: TrialStore
    key_of: Callable[[Params, Window], str]
    progress: Callable[[TrialResult], None] | None
    next_number: int = 0
    finished: list[TrialResult] = attrs.field(factory=list)
    unrecorded: int = 0  # TPE trials study.db did not take (every search's)
    unrecorded_why: str | None = None  # the first one's cause

    def _spec_of(self, params: Params, window: Window, role: Role, fold: int | None) -> TrialSpec:
        number = self.next_number
        self.next_number += 1
        return TrialSpec(self.key_of(params, window), number, params, window, role, fold)

    def _cached(self, trial: TrialSpec) -> TrialResult | None:
        found = self.store.get(trial.key)
        if found is None:
            return None
        return attrs.evolve(
            found, number=trial.number, params=trial.params, role=trial.role, fold=trial.fold, cached=True
        )

    def _done(self, result: TrialResult) -> TrialResult:
        scored = objective.scored(self.spec.objective, result)
        if not result.cached:
            self.store.put(result)
        self.finished.append(scored)
        if self.progress is not None:
            self.progress(scored)
        return scored

    def search(self, window: Window, role: Role, fold: int | None, study_name: str) -> list[TrialResult]:
        """One search over `window`: its trials, in number order."""
        spec = self.spec
        method = spec.search.method
        lockstep = method == "tpe"
        capacity = max(1, self.executor.capacity)
        if lockstep:  # the file's `parallel` at most, never more than the workers take
            capacity = min(capacity, spec.search.parallel)
        search = make_search(
            spec.search,
            spec.params,
            spec.objective,
            study_path=study_path(spec) if lockstep else None,
            study_name=study_name,
            fingerprint=_study_context(self.ctx, window) if lockstep else "",
        )
        first = self.next_number
        proposed: dict[int, TrialSpec] = {}
        waiting: dict[int, TrialResult] = {}  # finished, not yet told (an earlier one runs)
        told = 0
        running = 0
        exhausted = False
        results: list[TrialResult] = []

        def tell_in_order() -> None:
            nonlocal told
            while first + told in waiting:
                result = waiting.pop(first + told)
                search.tell(proposed[result.number].params, result)
                results.append(result)
                told += 1

        try:
            while True:
                # Propose while a slot is free (in lockstep: trial n only once trials
                # 0..n-parallel are told, the history it sees on every run, however many
                # workers: fewer than `parallel` only wait more).
                while not exhausted and running < capacity:
                    if lockstep and (self.next_number - first) - told >= spec.search.parallel:
                        break
                    params = search.ask()
                    if params is None:
                        exhausted = True
                        break
                    trial = self._spec_of(params, window, role, fold)
                    proposed[trial.number] = trial
                    cached = self._cached(trial)
                    if cached is not None:
                        waiting[trial.number] = self._done(cached)
                        tell_in_order()
                        continue
                    self.executor.submit(self.ctx, trial)
                    running += 1
                if running == 0:
                    break
                result = self.executor.next_result()
                running -= 1
                waiting[result.number] = self._done(result)
                tell_in_order()
        except KeyboardInterrupt:
            raise _Interrupted from None
        finally:
            if isinstance(search, TPESearch) and search.unrecorded:
                self.unrecorded += search.unrecorded
                self.unrecorded_why = self.unrecorded_why or search.unrecorded_why
        return sorted(results, key=lambda r: r.number)

    def unrecorded_line(self) -> str | None:
        """One line for the TPE trials the study did not take, if any."""
        if not self.unrecorded:
            return None
        return (
            f"{study_path(self.spec)}: {plural(self.unrecorded, 'TPE trial')} not recorded in the"
            f" study ({self.unrecorded_why}); the sweep went on (its results do not need it)"
        )

    def single(self, params: Params, window: Window, role: Role, fold: int | None) -> TrialResult:
        """One trial of given parameters (a walk-forward's test)."""
        trial = self._spec_of(params, window, role, fold)
        cached = self._cached(trial)
        if cached is not None:
            return self._done(cached)
        try:
            self.executor.submit(self.ctx, trial)
            return self._done(self.executor.next_result())
        except KeyboardInterrupt:
            raise _Interrupted from None


def run_sweep(
    spec: SweepSpec,
    ctx: TrialContext,
    executor: Executor,
    store: TrialStore,
    *,
    key_of: Callable[[Params, Window], str],
    span: Callable[[], tuple[int, int]],
    progress: Callable[[TrialResult], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> SweepOutcome:
    """Run the sweep `spec` describes (module docstring) and return every trial, best-first
    ranking left to the results. `progress(result)` after each finished trial (cached ones
    too). `warn(line)` once at the end (interrupted too) when TPE trials could not be written
    to study.db (a locked database: the sweep goes on without their record; logged when no
    `warn` is given). Ctrl-C: the executor is closed at once (`cancel=True`) and the outcome holds what
    finished, `interrupted` set (each of them is already in `store`). The executor is left open
    otherwise: its owner closes it."""
    run = _Run(spec, ctx, executor, store, key_of, progress)
    try:
        return _sweep(run, span)
    finally:
        line = run.unrecorded_line()
        if line is not None:
            if warn is not None:
                warn(line)
            else:
                _log.warning(line)


def _sweep(run: _Run, span: Callable[[], tuple[int, int]]) -> SweepOutcome:
    """`run_sweep`'s work: the search, or each fold's search and test."""
    spec, executor = run.spec, run.executor
    folds_done: list[FoldOutcome] = []
    try:
        if spec.walk_forward is None:
            run.search(spec.window, "search", None, "search")
            return SweepOutcome(trials=_ordered(run.finished))
        folds: tuple[Fold, ...] = walkforward.plan(span(), spec.walk_forward, spec.window)
        for fold in folds:
            trials = run.search(fold.train, "train", fold.index, f"fold-{fold.index}")
            best = objective.best(spec.objective, trials)
            test = None if best is None else run.single(best.params, fold.test, "test", fold.index)
            folds_done.append(FoldOutcome(fold, tuple(trials), best, test))
    except _Interrupted:
        executor.close(cancel=True)
        return SweepOutcome(trials=_ordered(run.finished), folds=tuple(folds_done), interrupted=True)
    # In fold order, a fold without a usable test too (None, failed): the chain carries its
    # level over it and the statistics name it missing.
    tests = [f.test for f in folds_done]
    oos = walkforward.stitch(tests)
    return SweepOutcome(
        trials=_ordered(run.finished),
        folds=tuple(folds_done),
        oos_equity=oos,
        oos_stats=walkforward.out_of_sample_stats(tests, oos, _interval_s(tests)),
    )


def _study_context(ctx: TrialContext, window: Window) -> str:
    """What a TPE study's trials ran on besides their parameters: the base config's table, its
    data files and the window (a stored study of another is refused, not resumed)."""
    doc = {"base": ctx.base_table, "data": list(ctx.data_files), "window": [window.start_ns, window.end_ns]}
    # TOML's dates and times (the only non-JSON values a table holds) as their ISO text.
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _ordered(results: list[TrialResult]) -> tuple[TrialResult, ...]:
    return tuple(sorted(results, key=lambda r: r.number))


def _interval_s(tests: list[TrialResult | None]) -> float:
    """The equity curve's sampling interval, as the trials' reports say it (`ratios_from`)."""
    for result in tests:
        if result is None:
            continue
        for name, stats in result.stats.items():
            ratios: Any = stats.get("ratios_from") if name != "total" else None
            if isinstance(ratios, dict) and ratios.get("interval_s"):
                return float(ratios["interval_s"])
    return 60.0  # the backtest's default `equity_interval_s`
