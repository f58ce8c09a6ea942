"""Searches: what proposes a sweep's trials. `make_search` builds one of a `SearchSpec`:

- grid: every combination of the spaces' grid points (`space.grid`), in its stable order;
  refused when there are more than `max_trials` (a typo's 10^9 combinations);
- random: `trials` draws with `seed`, the same draws on every run. No combination is drawn
  twice: a space of only finite parameters is sampled without replacement (so at most its
  size is drawn: `total` says how many), a continuous parameter makes a repeat vanishingly
  unlikely and is not checked;
- tpe: Optuna's TPE sampler (`optuna.samplers.TPESampler(seed=...)`), its study stored in SQLite
  at `study_path` under `study_name`, so a rerun resumes it: trials an earlier run finished count
  toward `trials` and are proposed again first, in their order (the sweep finds their results
  in its trial cache, and its table lists them; telling them again changes nothing), then TPE
  proposes the rest. Only a study of the same sweep is resumed: the study keeps a fingerprint of
  its parameter spaces, objective and search (its method and seed: more `trials` continue it)
  and of what the caller names its trials' base config and window by (`fingerprint`); a study
  of another sweep in the same file is refused (DataError, one line), never replayed (its
  trials would be another space's parameters, valued by another objective on other data).
  Trials an earlier run left running (interrupted) are marked failed and not counted. A failed
  trial, or one without a value (an undefined statistic), is told as FAIL (TPE ignores it); an
  infeasible one is told its value and its constraints' violations (Optuna 5's
  `Trial.set_constraint`; Optuna 4's sampler `constraints_func`), so TPE learns to stay within
  them.

`ask` proposes the next trial's parameters (None when all are proposed); `tell` reports a
finished one. Grid and random never import Optuna."""

from __future__ import annotations

import contextlib
import hashlib
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

    total: int  # trials it proposes in all (a resumed TPE study: including those already run)

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


# A trial this module told: its status, in the trial's user attributes, so a resumed study tells
# trials that finished from those an interrupted run left running.
_TOLD = "tradingd_status"
_VIOLATIONS = "tradingd_violations"
_PARAMS = "tradingd_params"  # the parameters the sweep ran (on the spaces' grids), as JSON


_FINGERPRINT = "tradingd_fingerprint"  # a study's, in its user attributes: which sweep it is


def _canonical(params: Params) -> str:
    return json.dumps({s: dict(p) for s, p in params.items()}, sort_keys=True)


def study_fingerprint(spaces: Spaces, objective: ObjectiveSpec, spec: SearchSpec, context: str) -> str:
    """What a TPE study's trials depend on: the spaces, the objective, the search's method and
    seed (not its `trials`: raising them continues the same study), and `context` (the caller's
    name for the base config and window), as a sha256."""
    doc = {
        "spaces": {s: {n: attrs.asdict(p) for n, p in ps.items()} for s, ps in spaces.items()},
        # A constraint's text is how the file wrote it; what it says is the rest.
        "objective": attrs.asdict(objective, filter=lambda a, _: a.name != "text"),
        "search": [spec.method, spec.seed],
        "context": context,
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


class TPESearch:
    """Optuna's TPE over the spaces, its study in SQLite (see the module docstring)."""

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
    ) -> None:
        lib = _import_optuna()
        from optuna.trial import TrialState

        lib.logging.set_verbosity(lib.logging.WARNING)  # one line per trial otherwise
        self._params = params
        self._objective = objective
        self._distributions = {
            f"{strategy}.{name}": _distribution(lib, s)
            for strategy, spaces in params.items()
            for name, s in spaces.items()
        }
        # Optuna 5 takes a trial's constraints from `Trial.set_constraint`; Optuna 4 only from
        # the sampler's `constraints_func` (deprecated in 5), which reads what `tell` stored.
        self._set_constraint = hasattr(lib.trial.Trial, "set_constraint")
        constraints = _constraints if objective.constraints and not self._set_constraint else None
        study_path.parent.mkdir(parents=True, exist_ok=True)
        storage = f"sqlite:///{study_path.resolve()}"
        # The sampler's seed moves on with the trials the study already holds: reseeded with
        # `seed` alone, a resumed study's first proposals would repeat the first run's (TPE's
        # first trials are its random sampler's). The same study state continues the same way.
        held = 0
        with contextlib.suppress(KeyError):  # KeyError: no such study yet
            found = lib.load_study(study_name=study_name, storage=storage)
            held = len(found.trials)
            # Checked before anything in it changes (its running trials are failed below). A
            # study without a fingerprint nor trials is one an earlier run only created.
            stored = found.user_attrs.get(_FINGERPRINT)
            if stored != fingerprint and (held or stored is not None):
                raise DataError(
                    f"{study_path} holds a TPE study of another sweep (other parameters, objective,"
                    " base or window): use another --out or delete it"
                )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", lib.exceptions.ExperimentalWarning)
            sampler = lib.samplers.TPESampler(seed=seed + held, constraints_func=constraints)
        self._study: optuna.study.Study = lib.create_study(
            storage=storage,
            study_name=study_name,
            direction=objective.direction,
            sampler=sampler,
            load_if_exists=True,
        )
        self._study.set_user_attr(_FINGERPRINT, fingerprint)
        replay: list[dict[str, dict[str, Any]]] = []
        for t in self._study.get_trials(deepcopy=False):
            if t.state == TrialState.RUNNING:
                # Left running by an interrupted run: never finished, so not counted, and failed
                # so that TPE does not wait on it.
                self._study.tell(t.number, state=TrialState.FAIL)
            elif _TOLD in t.user_attrs and _PARAMS in t.user_attrs:
                replay.append(json.loads(t.user_attrs[_PARAMS]))
        self.done = len(replay)  # finished by earlier runs of the study
        self.total = max(trials, self.done)
        self._replay = replay
        self._replayed: list[str] = []  # proposed again, not yet told (the study has them)
        self._asked = 0
        self._pending: dict[str, list[Any]] = {}

    def ask(self) -> dict[str, dict[str, Any]] | None:
        if self._asked >= self.total:
            return None
        self._asked += 1
        if self._replay:
            again = self._replay.pop(0)
            self._replayed.append(_canonical(again))
            return again
        trial = self._study.ask(self._distributions)
        out: dict[str, dict[str, Any]] = {}
        for strategy, spaces in self._params.items():
            for name, s in spaces.items():
                out.setdefault(strategy, {})[name] = _space.snap(s, trial.params[f"{strategy}.{name}"])
        trial.set_user_attr(_PARAMS, _canonical(out))
        self._pending.setdefault(_canonical(out), []).append(trial)
        return out

    def tell(self, params: Params, result: TrialResult) -> None:
        """Tell the study the trial asked for `params` (the first one asked, of equal ones).
        A trial an earlier run finished, proposed again, is in the study already: nothing to
        tell. KeyError when no trial asked for them is waiting."""
        from optuna.trial import TrialState

        key = _canonical(params)
        if key in self._replayed:
            self._replayed.remove(key)
            return
        waiting = self._pending.get(key)
        if not waiting:
            raise KeyError(f"no TPE trial waits for {key}")
        trial = waiting.pop(0)
        trial.set_user_attr(_TOLD, result.status)
        value = result.objective
        if result.status != "ok" or value is None or not math.isfinite(value):
            self._study.tell(trial, state=TrialState.FAIL)
            return
        broken = violations(self._objective, result.stats)
        if self._set_constraint:
            for i, amount in enumerate(broken):
                trial.set_constraint(f"c{i}", amount)
        else:
            trial.set_user_attr(_VIOLATIONS, list(broken))
        self._study.tell(trial, value)


def _constraints(trial: Any) -> tuple[float, ...]:
    # Read back what `tell` stored: the sampler asks when the trial is told.
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
    another sweep is refused. ValueError for a grid too large or a random/TPE search without
    `trials`; DataError (one line naming the extra) for TPE without Optuna, or for a stored
    study of another sweep."""
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
        )
    raise ValueError(f"unknown search method {spec.method!r} (grid, random or tpe)")
