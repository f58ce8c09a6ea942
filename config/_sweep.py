"""Loading and validating a sweep file (SWEEP.toml) into a `SweepSpec`.

As strict as a config (`_loader`): an unknown key is refused with its key path, every problem is
said at once (one per line, the file named), secrets and NaN/inf are refused. And checked against
the base config before any trial runs: each `[params.<strategy>]` names an enabled strategy of the
base, each parameter one its params class takes, and every value its space can produce (each grid
point; a continuous range's bounds) is built into the params class as `load_config` builds the
base's (`_check_strategy`), so a wrong value is refused now, not in trial 17."""

from __future__ import annotations

import datetime as dt
import difflib
import re
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from tradingd.engine.model.errors import ConfigError
from tradingd.engine.sweep import objective as _objective
from tradingd.engine.sweep import space as _space
from tradingd.engine.sweep.model import Window
from tradingd.engine.sweep.spec import ObjectiveSpec, ParamSpace, SearchSpec, SweepSpec, WalkForwardSpec

from ._loader import (
    MAX_KNOWN,
    LoadedConfig,
    Problem,
    _config_error,
    _describe,
    _is_non_finite,
    _problems_in,
    _read_toml,
    _refuse_secrets,
    load_config_data,
    make_converter,
    structure,
)

__all__ = ["load_sweep", "parse_duration"]

_TOP = (
    "base",
    "out",
    "workers",
    "cluster",
    "max_attempts",
    "window",
    "search",
    "objective",
    "params",
    "walk_forward",
)
_WINDOW = ("start", "end")
_SEARCH = ("method", "trials", "seed", "max_trials", "parallel")
_OBJECTIVE = ("statistic", "strategy", "direction", "constraints")
_WALK = ("mode", "windows", "train", "test")
_SPACE = ("values", "choices", "range", "step", "log_range", "num")
_KINDS = ("values", "choices", "range", "log_range")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")


def parse_duration(text: str) -> float:
    """Seconds of a duration written with units: "90s", "40m", "2h", "1d", "1h30m". ValueError
    (a message for people) otherwise."""
    stripped = text.strip()
    parts = _DURATION.findall(stripped)
    if not parts or _DURATION.sub("", stripped).strip():
        raise ValueError(f"expected a duration like '40m' (units s, m, h, d), got {_describe(text)}")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not seconds > 0:
        raise ValueError(f"expected a positive duration, got {_describe(text)}")
    return seconds


def _unknown(table: Mapping[str, Any], known: tuple[str, ...], where: str) -> list[Problem]:
    extras = sorted(k for k in table if k not in known)
    if not extras:
        return []
    close = [c for e in extras for c in difflib.get_close_matches(e, known, n=1, cutoff=0.6)]
    if close:
        return [(f"unknown key(s) {', '.join(extras)}; did you mean {' or '.join(map(repr, close))}?", where)]
    shown = sorted(known)[:MAX_KNOWN] + (["..."] if len(known) > MAX_KNOWN else [])
    return [(f"unknown key(s) {', '.join(extras)} (known: {', '.join(shown)})", where)]


def _non_finite(raw: Any, where: str) -> list[Problem]:
    """Every `nan`/`inf` in the file (TOML spells both; no sweep setting is ever one)."""
    if isinstance(raw, dict):
        return [p for k, v in raw.items() for p in _non_finite(v, f"{where}.{k}" if where else str(k))]
    if isinstance(raw, list):
        return [p for i, v in enumerate(raw) for p in _non_finite(v, f"{where}[{i}]")]
    return [(f"expected a finite number, got {_describe(raw)}", where)] if _is_non_finite(raw) else []


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


class _Reader:
    """Typed reads from one table, each wrong value a problem (and the default in its place)."""

    def __init__(self, table: Mapping[str, Any], where: str, problems: list[Problem]) -> None:
        self.table, self.where, self.problems = table, where, problems

    def _get(self, key: str, default: Any, check: Callable[[Any], str | None]) -> Any:
        if key not in self.table:
            return default
        value = self.table[key]
        why = check(value)
        if why is not None:
            self.problems.append((why, _join(self.where, key)))
            return default
        return value

    def string(self, key: str, default: Any = None, *, choices: tuple[str, ...] = ()) -> Any:
        def check(v: Any) -> str | None:
            if not isinstance(v, str):
                return f"expected a string, got {_describe(v)}"
            if choices and v not in choices:
                return f"expected one of {', '.join(map(repr, choices))}, got {_describe(v)}"
            if not v:
                return "expected a non-empty string"
            return None

        return self._get(key, default, check)

    def integer(self, key: str, default: Any = None, *, least: int | None = None) -> Any:
        def check(v: Any) -> str | None:
            if isinstance(v, bool) or not isinstance(v, int):
                return f"expected an integer, got {_describe(v)}"
            if least is not None and v < least:
                return f"expected at least {least}, got {v}"
            return None

        return self._get(key, default, check)

    def table_at(self, key: str) -> dict[str, Any]:
        found: dict[str, Any] = self._get(
            key, {}, lambda v: None if isinstance(v, dict) else f"expected a table, got {_describe(v)}"
        )
        return found


def _time_ns(value: Any) -> int:
    """Nanoseconds since the epoch of an ISO 8601 time with its offset ("2026-11-24T00:10:00Z",
    or TOML's own unquoted datetime). ValueError for a time without an offset: whose clock it
    would be is a guess (the data's times are UTC)."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                f"expected an ISO 8601 UTC time like '2026-11-24T00:10:00Z', got {_describe(value)}"
            ) from None
    if not isinstance(value, dt.datetime):
        raise ValueError(f"expected an ISO 8601 UTC time like '2026-11-24T00:10:00Z', got {_describe(value)}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{value.isoformat()} has no time zone: end it with Z (UTC)")
    since = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (since // dt.timedelta(microseconds=1)) * 1000


def _read_window(table: Mapping[str, Any], problems: list[Problem]) -> Window:
    problems += _unknown(table, _WINDOW, "window")
    ends: dict[str, int | None] = {"start": None, "end": None}
    for key in _WINDOW:
        if key in table:
            try:
                ends[key] = _time_ns(table[key])
            except ValueError as exc:
                problems.append((str(exc), f"window.{key}"))
    start, end = ends["start"], ends["end"]
    if start is not None and end is not None and not start < end:
        problems.append(("the window's end must be after its start", "window.end"))
    return Window(start_ns=start, end_ns=end)


def _pair(value: Any) -> str | None:
    if not isinstance(value, list) or len(value) != 2:
        return f"expected [low, high], got {_describe(value)}"
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in value):
        return f"expected two numbers [low, high], got {_describe(value)}"
    return None


def _param_types(params_cls: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(params_cls)
    except Exception:  # a user's class with an unresolvable annotation: judged by its values only
        return {}


def _read_space(raw: Any, where: str, hint: Any, problems: list[Problem]) -> ParamSpace | None:
    """One `name = { ... }` of `[params.<strategy>]` (None when it has a problem, added)."""
    if not isinstance(raw, dict):
        problems.append(
            (
                "expected a table: { values = [...] }, { choices = [...] }, { range = [low, high], "
                f"step = s }} or {{ log_range = [low, high], num = n }}; got {_describe(raw)}",
                where,
            )
        )
        return None
    before = len(problems)
    unknown = _unknown(raw, _SPACE, where)
    problems += unknown
    kinds = [k for k in _KINDS if k in raw]
    if not kinds and unknown:  # a misspelt kind: its suggestion says it all
        return None
    if len(kinds) != 1:
        problems.append(
            (
                f"give exactly one of {', '.join(_KINDS)}" + (f" (got {', '.join(kinds)})" if kinds else ""),
                where,
            )
        )
        return None
    kind = kinds[0]
    value = raw[kind]
    if "step" in raw and kind != "range":
        problems.append(("step is for a range (a log_range takes num points)", f"{where}.step"))
    if "num" in raw and kind != "log_range":
        problems.append(("num is for a log_range (a range steps by step)", f"{where}.num"))
    if kind in ("values", "choices"):
        if not isinstance(value, list):
            problems.append((f"expected a list, got {_describe(value)}", f"{where}.{kind}"))
            return None
        bad = [v for v in value if isinstance(v, dict | list)]
        if bad:
            problems.append(
                (f"a value is a number, a string or true/false, got {_describe(bad[0])}", f"{where}.{kind}")
            )
            return None
        space = ParamSpace(kind=kind, values=tuple(value))  # type: ignore[arg-type]  # one of the four
    else:
        why = _pair(value)
        if why is not None:
            problems.append((why, f"{where}.{kind}"))
            return None
        step, num = raw.get("step"), raw.get("num")
        if step is not None and (isinstance(step, bool) or not isinstance(step, int | float)):
            problems.append((f"expected a number, got {_describe(step)}", f"{where}.step"))
            return None
        if num is not None and (isinstance(num, bool) or not isinstance(num, int)):
            problems.append((f"expected an integer, got {_describe(num)}", f"{where}.num"))
            return None
        # Ints when the parameter is an int; floats when it is a float (a [0, 1] range of a
        # float parameter is not the two values 0 and 1); else as written.
        written_ints = all(isinstance(v, int) for v in (*value, step) if v is not None)
        integer = hint is int or (hint is not float and written_ints)
        if hint is int and not written_ints:
            problems.append(
                (f"the parameter is an integer: write integer bounds and step, got {_describe(raw)}", where)
            )
            return None
        low, high = value
        if not integer:  # a float parameter's bounds as floats, whatever the text
            low, high, step = float(low), float(high), None if step is None else float(step)
        space = ParamSpace(kind=kind, low=low, high=high, step=step, num=num, integer=integer)  # type: ignore[arg-type]
    problems += [(msg, where) for msg in _space.problems(space)]
    return space if len(problems) == before else None


def _base_tables(raw_base: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each strategy's `[strategies.params]` table of the base, as written, by name."""
    out: dict[str, dict[str, Any]] = {}
    for sc in raw_base.get("strategies", []) if isinstance(raw_base.get("strategies"), list) else []:
        if isinstance(sc, dict) and isinstance(sc.get("name"), str):
            params = sc.get("params", {})
            out[sc["name"]] = dict(params) if isinstance(params, dict) else {}
    return out


def _check_values(
    base: LoadedConfig,
    raw_tables: Mapping[str, Mapping[str, Any]],
    strategy: str,
    name: str,
    space: ParamSpace,
    where: str,
) -> list[Problem]:
    """Each value `space` can produce, built into the strategy's params class with the base's
    other params (as `load_config` builds them): the first that does not fit, as a problem."""
    params_cls = base.strategy_classes[strategy].Params
    assert params_cls is not None  # a class without params was refused before
    conv = make_converter()
    for value in _space.produced(space):
        table = {**raw_tables.get(strategy, {}), name: value}
        try:
            structure(conv, table, params_cls, file=None, path="params")
        except ConfigError as exc:
            mine = [msg for msg, at in _problems_in(exc) if at in ("params", f"params.{name}")]
            why = mine[0] if mine else _problems_in(exc)[0][0]
            return [(f"{_describe(value)} does not fit the parameter: {why}", where)]
    return []


def _read_params(
    table: Mapping[str, Any], base: LoadedConfig | None, raw_base: Mapping[str, Any], problems: list[Problem]
) -> dict[str, dict[str, ParamSpace]]:
    out: dict[str, dict[str, ParamSpace]] = {}
    if not table:
        problems.append(
            ("name at least one parameter to vary: [params.<strategy>] name = { values = [...] }", "params")
        )
        return out
    raw_tables = _base_tables(raw_base)
    names = _enabled(base, raw_base)
    for strategy, spaces in table.items():
        where = f"params.{strategy}"
        if not isinstance(spaces, dict):
            problems.append((f"expected a table of parameters, got {_describe(spaces)}", where))
            continue
        params_cls: Any = None
        fields: list[str] | None = None
        if base is not None:
            if strategy not in base.strategy_classes:
                problems.append((_no_strategy(strategy, names, raw_tables), where))
                continue
            params_cls = base.strategy_classes[strategy].Params
            if params_cls is None:
                problems.append(
                    (f"strategy {strategy!r} takes no params (its class declares no Params)", where)
                )
                continue
            fields = [f.name for f in attrs.fields(params_cls)]
        hints = _param_types(params_cls) if params_cls is not None else {}
        if not spaces:
            problems.append(("name at least one parameter of it", where))
        for name, raw in spaces.items():
            at = f"{where}.{name}"
            if fields is not None and name not in fields:
                close = difflib.get_close_matches(name, fields, n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else f" (it takes: {', '.join(fields)})"
                problems.append((f"{strategy} has no parameter {name!r}{hint}", at))
                continue
            space = _read_space(raw, at, hints.get(name), problems)
            if space is None:
                continue
            if base is not None:
                problems += _check_values(base, raw_tables, strategy, name, space, at)
            out.setdefault(strategy, {})[name] = space
    return out


def _enabled(base: LoadedConfig | None, raw_base: Mapping[str, Any]) -> list[str]:
    if base is not None:
        return list(base.strategy_classes)
    return list(_base_tables(raw_base))


def _no_strategy(name: str, enabled: list[str], raw_tables: Mapping[str, Any]) -> str:
    if name in raw_tables:
        return f"strategy {name!r} is disabled in the base config: enable it to vary its parameters"
    return f"the base config has no strategy {name!r} (its strategies: {', '.join(enabled) or 'none'})"


def _read_objective(
    table: Mapping[str, Any], strategies: list[str], raw_tables: Mapping[str, Any], problems: list[Problem]
) -> ObjectiveSpec:
    problems += _unknown(table, _OBJECTIVE, "objective")
    read = _Reader(table, "objective", problems)
    statistic = read.string("statistic", "net_pnl")
    strategy = read.string("strategy", _objective.TOTAL)
    direction = read.string("direction", "maximize", choices=("maximize", "minimize"))
    if strategy != _objective.TOTAL and strategies and strategy not in strategies:
        problems.append(
            (_no_strategy(strategy, strategies, raw_tables) + " (or 'total')", "objective.strategy")
        )
    else:
        why = _objective.unknown_statistic(statistic, strategy)
        if why is not None:
            problems.append((why, "objective.statistic"))
    constraints = []
    raw = table.get("constraints", [])
    if not isinstance(raw, list):
        problems.append(
            (
                f"expected a list of strings like 'max_drawdown < 500', got {_describe(raw)}",
                "objective.constraints",
            )
        )
        raw = []
    for i, text in enumerate(raw):
        at = f"objective.constraints[{i}]"
        if not isinstance(text, str):
            problems.append((f"expected a string like 'max_drawdown < 500', got {_describe(text)}", at))
            continue
        try:
            c = _objective.parse_constraint(text, strategy=strategy)
        except ValueError as exc:
            problems.append((str(exc), at))
            continue
        if c.strategy != _objective.TOTAL and strategies and c.strategy not in strategies:
            problems.append((f"constraint {text!r}: " + _no_strategy(c.strategy, strategies, raw_tables), at))
            continue
        constraints.append(c)
    return ObjectiveSpec(
        statistic=statistic, strategy=strategy, direction=direction, constraints=tuple(constraints)
    )


def _read_search(table: Mapping[str, Any], problems: list[Problem]) -> SearchSpec:
    problems += _unknown(table, _SEARCH, "search")
    read = _Reader(table, "search", problems)
    method = read.string("method", "grid", choices=("grid", "random", "tpe"))
    trials = read.integer("trials", None, least=1)
    seed = read.integer("seed", 0)
    max_trials = read.integer("max_trials", attrs.fields(SearchSpec).max_trials.default, least=1)
    parallel = read.integer("parallel", attrs.fields(SearchSpec).parallel.default, least=1)
    if method != "tpe" and "parallel" in table:
        problems.append(
            (
                f"parallel is for method = 'tpe' (a {method} search runs a trial on every worker)",
                "search.parallel",
            )
        )
    if method == "grid" and "trials" in table:
        problems.append(
            ("a grid runs every combination: trials is for method = 'random' or 'tpe'", "search.trials")
        )
    if method in ("random", "tpe") and "trials" not in table:
        problems.append((f"a {method} search needs trials (how many)", "search.trials"))
    if trials is not None and trials > max_trials:
        problems.append((f"{trials} trials is more than max_trials = {max_trials}", "search.trials"))
    return SearchSpec(method=method, trials=trials, seed=seed, max_trials=max_trials, parallel=parallel)


def _read_walk_forward(table: Mapping[str, Any], problems: list[Problem]) -> WalkForwardSpec | None:
    problems += _unknown(table, _WALK, "walk_forward")
    read = _Reader(table, "walk_forward", problems)
    mode = read.string("mode", "rolling", choices=("rolling", "anchored"))
    windows = read.integer("windows", 1, least=1)
    durations: dict[str, float] = {}
    for key in ("train", "test"):
        if key not in table:
            problems.append(("required key missing (a duration like '40m')", f"walk_forward.{key}"))
            continue
        value = table[key]
        if not isinstance(value, str):
            problems.append(
                (
                    f"expected a duration like '40m' (units s, m, h, d), got {_describe(value)}",
                    f"walk_forward.{key}",
                )
            )
            continue
        try:
            durations[key] = parse_duration(value)
        except ValueError as exc:
            problems.append((str(exc), f"walk_forward.{key}"))
    if len(durations) < 2:
        return None
    return WalkForwardSpec(windows=windows, train_s=durations["train"], test_s=durations["test"], mode=mode)


def _read_base(path: Path, problems: list[Problem]) -> tuple[LoadedConfig | None, dict[str, Any]]:
    """The base config loaded (None when it does not load: its problems said, naming it)."""
    try:
        raw = _read_toml(path)
    except ConfigError as exc:
        problems.append((f"{path}: {exc.message}", "base"))
        return None, {}
    try:
        return load_config_data(raw, path), raw
    except ConfigError as exc:
        for msg, at in _problems_in(exc):
            problems.append(
                (f"the base config does not load: {path}: {at + ': ' if at else ''}{msg}", "base")
            )
        return None, raw


def _repeats(problem: Problem, non_finite: list[Problem]) -> bool:
    """Whether `problem` is a reader's word on a value `non_finite` already refused: at its key
    (or the key holding it: a space's range) and ending with the same "got nan"."""
    message, at = problem
    for refused, where in non_finite:
        said = refused[refused.rindex("got ") :]
        if message.endswith(said) and (where == at or where.startswith((f"{at}.", f"{at}["))):
            return True
    return False


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and check a sweep file (see the module docstring): a `SweepSpec` with absolute paths
    (resolved against the sweep file's folder), or `ConfigError` naming every problem found."""
    p = Path(path)
    file = str(p)
    raw = _read_toml(p)
    _refuse_secrets(raw, file)
    non_finite = _non_finite(raw, "")
    problems: list[Problem] = _unknown(raw, _TOP, "")
    folder = p.parent
    read = _Reader(raw, "", problems)

    base_text = read.string("base")
    base: LoadedConfig | None = None
    raw_base: dict[str, Any] = {}
    base_path = None
    if "base" not in raw:
        problems.append(("required key missing (the backtest config the trials change)", "base"))
    elif base_text is not None:
        base_path = (folder / Path(base_text).expanduser()).resolve()
        base, raw_base = _read_base(base_path, problems)
        if base is not None and base.config.mode != "backtest":
            problems.append(
                (f"the base config's mode is {base.config.mode!r}: a sweep runs backtests", "base")
            )
            base = None
    out_text = read.string("out", f"{p.stem}-results")
    workers = read.integer("workers", None, least=1)
    cluster = read.string("cluster", None)
    max_attempts = read.integer("max_attempts", 3, least=1)

    window = _read_window(read.table_at("window"), problems)
    search = _read_search(read.table_at("search"), problems)
    strategies = _enabled(base, raw_base) if base is not None else []
    objective = _read_objective(read.table_at("objective"), strategies, _base_tables(raw_base), problems)
    params = _read_params(read.table_at("params"), base, raw_base, problems)
    walk_forward = (
        _read_walk_forward(raw["walk_forward"], problems)
        if isinstance(raw.get("walk_forward"), dict)
        else None
    )
    if "walk_forward" in raw and not isinstance(raw["walk_forward"], dict):
        problems.append((f"expected a table, got {_describe(raw['walk_forward'])}", "walk_forward"))

    if search.method == "grid":
        for strategy, spaces in params.items():
            for name, s in spaces.items():
                if s.kind == "range" and s.step is None:
                    problems.append(("a grid needs the range's step", f"params.{strategy}.{name}"))
                elif s.kind == "log_range" and s.num is None:
                    problems.append(
                        ("a grid needs the log_range's num (how many points)", f"params.{strategy}.{name}")
                    )
        if params and not any(at.startswith("params") for _, at in problems):
            size = _space.grid_size(params)
            if size > search.max_trials:
                problems.append(
                    (
                        f"the grid has {size:,} combinations, more than max_trials = {search.max_trials:,}: "
                        "take fewer values, raise max_trials, or use method = 'random' or 'tpe'",
                        "search",
                    )
                )
    if problems or non_finite:
        # Every problem at once; a reader's own word on a nan/inf (an integer "got nan") said once.
        raise _config_error(non_finite + [p for p in problems if not _repeats(p, non_finite)], file=file)
    assert base_path is not None
    return SweepSpec(
        path=str(p.resolve()),
        base=str(base_path),
        out=str((folder / Path(out_text).expanduser()).resolve()),
        params=params,
        search=search,
        objective=objective,
        window=window,
        walk_forward=walk_forward,
        workers=workers,
        cluster=cluster,
        max_attempts=max_attempts,
    )
