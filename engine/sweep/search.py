"""Searches: what proposes a sweep's trials. `make_search` builds one of a `SearchSpec`:

- grid: every combination of the spaces' grid points (`space.grid`), in its stable order;
  refused when there are more than `max_trials` (a typo's 10^9 combinations);
- random: `trials` draws with `seed`, the same draws on every run. No combination is drawn
  twice: a space of only finite parameters is sampled without replacement (so at most its
  size is drawn: `total` says how many), a continuous parameter makes a repeat vanishingly
  unlikely and is not checked;
- tpe: Optuna's TPE sampler, its proposals a function of the spaces, the objective, `seed`,
  `parallel` (how many trials run at once at most: the file's, never the machine's) and the
  results told, nothing else, so a rerun of an interrupted sweep, with other workers or on a
  cluster too, proposes exactly the trials an uninterrupted one does. Its study is kept
  in memory and made again on every run: trial n is proposed by a `TPESampler` seeded from
  (`seed`, n) alone, from the results of trials 0..n-parallel (told it in trial-number order;
  the later ones, still in flight, it sees as running), so the results arriving earlier or
  later, or from an earlier run, change nothing (the runner asks in lockstep: trial n once
  those are told). A rerun proposes the trials an earlier run finished again, the same, and
  the sweep finds their results in its trial cache. Each told trial is also written to a study
  in SQLite at `study_path` under `study_name` (for Optuna's tools; never read back for a
  proposal; a write that fails, a locked database, is counted in `unrecorded` and the search
  goes on), written afresh by every run (a rerun tells every trial again, and its result may
  differ from the earlier run's: one run again after its cache was deleted). Only a study of
  the same sweep is replaced: it keeps a fingerprint of its
  parameter spaces, objective and search (its method, seed and parallel: more `trials`
  continue it) and
  of what the caller names its trials' base config and window by (`fingerprint`); a study of
  another sweep in the same file is refused (DataError, one line), never mixed with this one's
  (its trials would be another space's parameters, valued by another objective on other
  data). A failed trial, or one without a value (an undefined statistic), is told as FAIL (TPE
  ignores it); an infeasible one is told its value and its constraints' violations (Optuna 5's
  `Trial.set_constraint`; Optuna 4's sampler `constraints_func`), so TPE learns to stay within
  them.

`ask` proposes the next trial's parameters (None when all are proposed); `tell` reports a
finished one (a TPE search: in the order they were asked). Grid and random never import
Optuna."""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import math
import random
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from ..model.errors import DataError
from . import space as _space
from .model import Params, TrialResult
from .objective import violations
from .spec import ObjectiveSpec, ParamSpace, SearchSpec

if TYPE_CHECKING:
    import optuna

__all__ = ["GridSearch", "RandomSearch", "Search", "TPESearch", "make_search", "study_fingerprint"]

Spaces = Mapping[str, Mapping[str, ParamSpace]]


class Search(Protocol):
    """Proposes trials' parameters; told each finished trial (a TPE search learns from them)."""

    total: int  # trials it proposes in all (a rerun: including those an earlier run finished)

    def ask(self) -> dict[str, dict[str, Any]] | None: ...

    def tell(self, params: Params, result: TrialResult) -> None: ...


class GridSearch:
    """Every combination (`space.grid`), once each, in order."""

    def __init__(self, params: Spaces, *, max_trials: int) -> None:
        size = _space.grid_size(params)
        if size > max_trials:
            raise ValueError(
                f"the grid has {size:,} combinations, more than [search] max_trials = {max_trials:,}: "
                "take fewer values, or set max_trials, or search with method = 'random' or 'tpe'"
            )
        self.total = size
        self._combinations = _space.grid(params)

    def ask(self) -> dict[str, dict[str, Any]] | None:
        return next(self._combinations, None)

    def tell(self, params: Params, result: TrialResult) -> None:
        """A grid proposes the same whatever it is told."""


class RandomSearch:
    """`trials` draws from the spaces with `seed` (see the module docstring)."""

    def __init__(self, params: Spaces, *, trials: int, seed: int) -> None:
        self._params = params
        self._rng = random.Random(seed)
        self._drawn = 0
        self._indices: list[int] | None = None
        if all(_space.finite(s) for spaces in params.values() for s in spaces.values()):
            size = _space.grid_size(params)
            # Distinct combination numbers, decoded one at a time (a huge space is never made).
            self._indices = self._rng.sample(range(size), min(trials, size))
            self.total = len(self._indices)
        else:
            self.total = trials

    def ask(self) -> dict[str, dict[str, Any]] | None:
        if self._drawn >= self.total:
            return None
        self._drawn += 1
        if self._indices is not None:
            return _space.combination(self._params, self._indices[self._drawn - 1])
        return {
            strategy: {name: _space.draw(s, self._rng) for name, s in spaces.items()}
            for strategy, spaces in self._params.items()
        }

    def tell(self, params: Params, result: TrialResult) -> None:
        """Random draws do not depend on results."""


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        # DataError, as the other extras' (the command line's one line, exit 1).
        raise DataError(
            "a TPE search needs the 'sweep' extra (Optuna): pip install 'tradingd[sweep]'"
        ) from None
    return optuna


# A stored trial's user attributes: its number in the search, its status, the parameters the
# sweep ran (on the spaces' grids, as JSON) and, without Optuna 5's constraints, the violations.
_NUMBER = "tradingd_number"
_TOLD = "tradingd_status"
_PARAMS = "tradingd_params"
_VIOLATIONS = "tradingd_violations"


_FINGERPRINT = "tradingd_fingerprint"  # a study's, in its user attributes: which sweep it is
_OPTUNA = "tradingd_optuna"  # and the Optuna version of the run that wrote it last


def _canonical(params: Params) -> str:
    return json.dumps({s: dict(p) for s, p in params.items()}, sort_keys=True)


def study_fingerprint(spaces: Spaces, objective: ObjectiveSpec, spec: SearchSpec, context: str) -> str:
    """What a TPE study's trials depend on: the spaces, the objective, the search's method, seed
    and `parallel` (not its `trials`: raising them continues the same study), and `context` (the
    caller's name for the base config and window), as a sha256."""
    doc = {
        "spaces": {s: {n: attrs.asdict(p) for n, p in ps.items()} for s, ps in spaces.items()},
        # A constraint's text is how the file wrote it; what it says is the rest.
        "objective": attrs.asdict(objective, filter=lambda a, _: a.name != "text"),
        "search": [spec.method, spec.seed, spec.parallel],
        "context": context,
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


class TPESearch:
    """Optuna's TPE over the spaces, its proposals a function of what it was told, its trials
    also written to a study in SQLite (see the module docstring)."""

    def __init__(
        self,
        params: Spaces,
        objective: ObjectiveSpec,
        *,
        trials: int,
        seed: int,
        study_path: Path,
        study_name: str,
        fingerprint: str,
        in_flight: int = 1,
    ) -> None:
        lib = _import_optuna()
        self._lib = lib
        lib.logging.set_verbosity(lib.logging.WARNING)  # one line per trial otherwise
        self._params = params
        self._objective = objective
        self._seed = seed
        self._in_flight = max(1, in_flight)
        self._distributions = {
            f"{strategy}.{name}": _distribution(lib, s)
            for strategy, spaces in params.items()
            for name, s in spaces.items()
        }
        # Optuna 5 takes a trial's constraints from `Trial.set_constraint`; Optuna 4 only from
        # the sampler's `constraints_func` (deprecated in 5), which reads what `_learn` stored.
        self._set_constraint = hasattr(lib.trial.Trial, "set_constraint")
        self._constraints_func = _constraints if objective.constraints and not self._set_constraint else None
        self._create_constraints = "constraints" in inspect.signature(lib.trial.create_trial).parameters
        study_path.parent.mkdir(parents=True, exist_ok=True)
        # One connection for both opens below (each URL opened is a new engine and schema check).
        storage = lib.storages.RDBStorage(f"sqlite:///{study_path.resolve()}")
        with contextlib.suppress(KeyError):  # KeyError: no such study yet
            found = lib.load_study(study_name=study_name, storage=storage)
            # A study without a fingerprint nor trials is one an earlier run only created.
            stored = found.user_attrs.get(_FINGERPRINT)
            if stored != fingerprint and (found.trials or stored is not None):
                raise DataError(
                    f"{study_path} holds a TPE study of another sweep (other parameters, objective,"
                    " base or window): use another --out or delete it"
                )
            # This sweep's, written by an earlier run: written again as this run tells its
            # trials (each again, from the trial cache or run anew: a result may differ, and
            # Optuna cannot replace nor delete a stored trial, only a whole study).
            lib.delete_study(study_name=study_name, storage=storage)
        # The stored study: a record of the told trials, never asked (its sampler is unused).
        self._stored: optuna.study.Study = lib.create_study(
            storage=storage,
            study_name=study_name,
            direction=objective.direction,
            sampler=lib.samplers.RandomSampler(seed=seed),
        )
        self._stored.set_user_attr(_FINGERPRINT, fingerprint)
        self._stored.set_user_attr(_OPTUNA, lib.__version__)  # what proposed its trials
        # The study TPE learns from, in memory, made again on every run from the told results.
        self._study: optuna.study.Study = lib.create_study(
            direction=objective.direction, sampler=self._sampler(0)
        )
        self.total = trials
        self._asked: list[optuna.trial.Trial] = []  # by number
        self._proposed: list[str] = []  # by number: the parameters, as `_canonical`
        self._told: list[tuple[float | None, tuple[float, ...]]] = []  # value (None: FAIL), violations
        self._learned = 0  # told results the in-memory study holds (trials 0..learned-1)
        self.study_path = study_path
        import sqlalchemy.exc  # Optuna's storage: its errors unwrapped (an IntegrityError)

        self._write_errors = (lib.exceptions.OptunaError, sqlalchemy.exc.SQLAlchemyError, OSError)
        self.unrecorded = 0  # told trials the stored study could not take
        self.unrecorded_why: str | None = None  # the first one's cause

    def _sampler(self, number: int) -> Any:
        """Trial `number`'s sampler: seeded from the search's seed and the number alone. Its
        settings are written out, not Optuna's defaults (4.x: independent, no liar; 5.x:
        multivariate, constant liar): Optuna 5's, which model the parameters together and count
        the trials still in flight (RUNNING in the study) as bad ones, so as not to propose
        beside them. Another Optuna version may still propose otherwise (its estimator changed
        in 5.0): the stored study records the version."""
        digest = hashlib.sha256(f"tradingd-tpe:{self._seed}:{number}".encode()).digest()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", self._lib.exceptions.ExperimentalWarning)  # Optuna 4
            return self._lib.samplers.TPESampler(
                seed=int.from_bytes(digest[:4], "big"),
                n_startup_trials=10,
                n_ei_candidates=24,
                multivariate=True,
                constant_liar=True,
                constraints_func=self._constraints_func,
            )

    def ask(self) -> dict[str, dict[str, Any]] | None:
        """Trial n's parameters, from the results of trials 0..n-in_flight and nothing else
        (RuntimeError when one of them is not told yet)."""
        number = len(self._asked)
        if number >= self.total:
            return None
        history = max(0, number - self._in_flight + 1)
        if len(self._told) < history:
            raise RuntimeError(
                f"TPE trial {number} asked before trial {history - 1} was told"
                f" ({self._in_flight} in flight at most)"
            )
        while self._learned < history:
            self._learn(self._learned)
            self._learned += 1
        self._study.sampler = self._sampler(number)
        trial = self._study.ask(self._distributions)
        out: dict[str, dict[str, Any]] = {}
        for strategy, spaces in self._params.items():
            for name, s in spaces.items():
                out.setdefault(strategy, {})[name] = _space.snap(s, trial.params[f"{strategy}.{name}"])
        self._asked.append(trial)
        self._proposed.append(_canonical(out))
        return out

    def tell(self, params: Params, result: TrialResult) -> None:
        """Tell the next trial not yet told, which asked for `params` (trials are told in the
        order they were asked: KeyError otherwise). It is written to the stored study."""
        number = len(self._told)
        key = _canonical(params)
        if number >= len(self._proposed) or self._proposed[number] != key:
            raise KeyError(f"no TPE trial waits for {key} (the next to tell is trial {number})")
        value = result.objective
        if result.status != "ok" or value is None or not math.isfinite(value):
            told: tuple[float | None, tuple[float, ...]] = (None, ())
        else:
            told = (value, violations(self._objective, result.stats))
        self._told.append(told)
        try:
            self._record(number, key, result.status, told)
        except self._write_errors as exc:
            # The study is only a record (never read back): a locked or full database costs
            # its record of this trial, not the sweep. Counted; the runner says it once.
            self.unrecorded += 1
            if self.unrecorded_why is None:
                self.unrecorded_why = _root_cause(exc)

    def _learn(self, number: int) -> None:
        """Tell the in-memory study trial `number`'s result: a failure as FAIL (TPE ignores it),
        else its value and its constraints' violations."""
        trial = self._asked[number]
        value, broken = self._told[number]
        if value is None:
            self._study.tell(trial, state=self._lib.trial.TrialState.FAIL)
            return
        if self._set_constraint:
            for i, amount in enumerate(broken):
                trial.set_constraint(f"c{i}", amount)
        else:
            trial.set_user_attr(_VIOLATIONS, list(broken))
        self._study.tell(trial, value)

    def _record(
        self, number: int, key: str, status: str, told: tuple[float | None, tuple[float, ...]]
    ) -> None:
        """Write a told trial to the stored study (this run's: see `__init__`)."""
        TrialState = self._lib.trial.TrialState
        value, broken = told
        asked = self._asked[number]
        extra: dict[str, Any] = {}
        user_attrs: dict[str, Any] = {_NUMBER: number, _PARAMS: key, _TOLD: status}
        if value is not None and broken:
            if self._create_constraints:
                extra["constraints"] = {f"c{i}": amount for i, amount in enumerate(broken)}
            else:
                user_attrs[_VIOLATIONS] = list(broken)
        self._stored.add_trial(
            self._lib.trial.create_trial(
                state=TrialState.FAIL if value is None else TrialState.COMPLETE,
                value=value,
                params=asked.params,
                distributions=asked.distributions,
                user_attrs=user_attrs,
                **extra,
            )
        )


def _root_cause(exc: BaseException) -> str:
    """What went wrong, not Optuna's wrapping of it: "OperationalError: database is locked"
    (the innermost cause of a StorageInternalError; its first line)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _constraints(trial: Any) -> tuple[float, ...]:
    # Read back what `_learn` stored: the sampler asks when the trial is told.
    return tuple(trial.user_attrs.get(_VIOLATIONS, ()))


def _distribution(optuna: Any, s: ParamSpace) -> Any:
    """The Optuna distribution of a space: a list is categorical (TPE has no order for arbitrary
    values); a range on its step (an integer one as ints); a log range log-uniform."""
    dist = optuna.distributions
    if s.kind in ("values", "choices"):
        return dist.CategoricalDistribution(list(s.values))
    low, high = _space.bounds(s)
    if s.kind == "range":
        if s.integer:
            return dist.IntDistribution(int(low), int(high), step=int(s.step or 1))
        if s.step is not None:
            # The last grid point as the high: Optuna wants (high - low) a multiple of step.
            last = _space.grid_points(s)[-1]
            return dist.FloatDistribution(float(low), float(last), step=float(s.step))
        return dist.FloatDistribution(float(low), float(high))
    if s.integer:
        return dist.IntDistribution(int(low), int(high), log=True)
    return dist.FloatDistribution(float(low), float(high), log=True)


def make_search(
    spec: SearchSpec,
    params: Spaces,
    objective: ObjectiveSpec,
    *,
    study_path: Path | None,
    study_name: str,
    fingerprint: str = "",
) -> Search:
    """The search `spec` names over `params` (see the module docstring). `fingerprint` names
    what else a TPE study's trials depend on (the base config, the window): a stored study of
    another sweep is refused. A TPE search proposes trial n from the results of trials
    0..n-`spec.parallel` (the caller runs at most that many at once). ValueError for a grid too large or a
    random/TPE search without `trials`; DataError (one line naming the extra) for TPE without
    Optuna, or for a stored study of another sweep."""
    for spaces in params.values():
        for s in spaces.values():
            _space.check(s)
    if spec.method == "grid":
        return GridSearch(params, max_trials=spec.max_trials)
    if spec.trials is None or spec.trials < 1:
        raise ValueError(f"a {spec.method} search needs [search] trials (at least 1)")
    if spec.method == "random":
        return RandomSearch(params, trials=spec.trials, seed=spec.seed)
    if spec.method == "tpe":
        if study_path is None:
            raise ValueError("a TPE search needs a study path (its study is stored to resume)")
        return TPESearch(
            params,
            objective,
            trials=spec.trials,
            seed=spec.seed,
            study_path=study_path,
            study_name=study_name,
            fingerprint=study_fingerprint(params, objective, spec, fingerprint),
            in_flight=spec.parallel,
        )
    raise ValueError(f"unknown search method {spec.method!r} (grid, random or tpe)")
