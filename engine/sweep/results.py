"""A sweep's results: `OUT/results.json` and `OUT/results.csv` (`write`), and the table printed
in the terminal (`table`).

results.json:
    objective     what ranks the trials (statistic, strategy, direction, constraints) and a line
                  saying it
    best          the trial whose parameters the sweep recommends: the best feasible trial of a
                  search; for a walk-forward, the last fold's best train trial (chosen on the most
                  recent data: what one would trade next). null when no trial is feasible
    counts        trials, ok, failed, feasible, and whether the sweep was interrupted
    trials        every trial, best first (walk-forward: fold by fold, each fold's train trials
                  best first, then its test trial): number, key, role, fold, rank, window (ISO
                  times), params, status, error, warnings (the backtest report's: what made
                  a strategy or a data file do nothing), objective, feasible, statistics (each
                  strategy's and "total"), and under `run` how this sweep got it (attempts,
                  cached, duration_s: the only wall-clock figures, outside the ranking)
    walk_forward  (a walk-forward only) each fold: its windows, its best train trial and the
                  test trial, their statistics (in-sample and out-of-sample), and the
                  out-of-sample curve chained from the test windows with its statistics

results.csv: one row per trial in the same order: rank, number, role, fold, window (ISO-8601
UTC, "2026-11-24T10:00:00Z", a fraction only when the time has one), status,
feasible, objective, one column per parameter (`strategy.param`) and per statistic of the
"total" (`total.net_pnl`, ...), the error, the warnings (joined with " | ": a warning may hold
"; " itself); no wall-clock column. The same sweep run twice gives
the same CSV, the same table, and the same JSON apart from `run`.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ..model.words import duration, plural, ratio_text
from ..store.recording import format_ts
from .model import FoldOutcome, SweepOutcome, TrialResult, Window
from .objective import rank_key
from .spec import Constraint, ObjectiveSpec

if TYPE_CHECKING:
    from rich.console import RenderableType

__all__ = ["WARNINGS_JOIN", "describe", "ranked", "table", "warnings_line", "write"]

# Between a trial's warnings in results.csv's one cell (not "; ": the kernel's per-file warning
# lists its reasons with it).
WARNINGS_JOIN = " | "

# The total's statistics in the order the CSV and the table give them; any other scalar a
# report grows goes after these, sorted by name (a stable column order either way).
_FIRST_STATS = (
    "net_pnl",
    "max_drawdown",
    "sharpe",
    "sortino",
    "fees",
    "fills",
    "orders",
    "filled_orders",
    "rejected",
    "errors",
    "round_trips",
    "realized_pnl",
    "unrealized_pnl",
    "turnover",
)


def _constraint_text(c: Constraint) -> str:
    if c.text:
        return c.text
    of = "" if c.strategy == "total" else f" of {c.strategy}"
    return f"{c.statistic}{of} {c.op} {c.value:g}"


def describe(objective: ObjectiveSpec) -> str:
    """The objective in one line: "maximize net_pnl (total), subject to max_drawdown < 500"."""
    text = f"{objective.direction} {objective.statistic} ({objective.strategy})"
    if objective.constraints:
        text += ", subject to " + ", ".join(_constraint_text(c) for c in objective.constraints)
    return text


def ranked(objective: ObjectiveSpec, trials: Iterable[TrialResult]) -> list[TrialResult]:
    """`trials` best first: `objective.rank_key`'s order (feasible by objective, then
    infeasible, those without a value after them, then failed; ties by number)."""
    return sorted(trials, key=lambda r: rank_key(objective, r))


def _is_walk_forward(outcome: SweepOutcome) -> bool:
    # A walk-forward interrupted in its first fold has no fold outcome yet, only train trials.
    return bool(outcome.folds) or any(r.role != "search" for r in outcome.trials)


def _ordered(outcome: SweepOutcome, objective: ObjectiveSpec) -> list[tuple[int | None, TrialResult]]:
    """Every trial with its rank, in the results' order: a search's best first; a walk-forward
    fold by fold (its train trials best first, then its test trial, which has no rank)."""
    if not _is_walk_forward(outcome):
        return [(i, r) for i, r in enumerate(ranked(objective, outcome.trials), 1)]
    out: list[tuple[int | None, TrialResult]] = []
    by_fold: dict[int | None, list[TrialResult]] = {}
    for r in outcome.trials:
        by_fold.setdefault(r.fold, []).append(r)
    folds = sorted((f for f in by_fold if f is not None), key=int)
    for f in [*folds, *([None] if None in by_fold else [])]:
        trials = by_fold[f]
        searched = ranked(objective, (r for r in trials if r.role != "test"))
        out.extend((i, r) for i, r in enumerate(searched, 1))
        out.extend((None, r) for r in sorted(trials, key=lambda r: r.number) if r.role == "test")
    return out


def _best(outcome: SweepOutcome, objective: ObjectiveSpec) -> tuple[TrialResult | None, str]:
    if _is_walk_forward(outcome):
        for fo in reversed(outcome.folds):
            if fo.best is not None:
                return fo.best, f"the best train trial of fold {fo.fold.index}, the most recent data"
        return None, "no finished fold has a feasible train trial"
    first = ranked(objective, outcome.trials)[:1]
    if first and first[0].status == "ok" and first[0].feasible and first[0].objective is not None:
        return first[0], "the best feasible trial"
    return None, "no trial is feasible"


def _iso(ns: int | None) -> str | None:
    return None if ns is None else format_ts(ns)


def _csv_time(ns: int | None) -> str:
    """A window's bound for results.csv: ISO-8601 UTC, to the second when it is whole
    ("2026-11-24T10:00:00Z"), else with the milli-, micro- or nanoseconds it has (exact: a fold
    laid from the data's first frame is any ns). What spreadsheets, pandas and polars read, and
    `--start`/`--end` take; not `format_ts`'s fixed 7 decimals (100 ns), which no tool expects
    and which cut a fold's ns."""
    if ns is None:
        return ""
    sec, rem = divmod(ns, 1_000_000_000)
    text = format_ts(sec * 1_000_000_000)[:19]
    if rem == 0:
        return text + "Z"
    digits = f"{rem:09d}"
    keep = next(n for n in (3, 6, 9) if not digits[n:].strip("0"))
    return f"{text}.{digits[:keep]}Z"


def _window(w: Window) -> dict[str, str | None]:
    return {"start": _iso(w.start_ns), "end": _iso(w.end_ns)}


def _params(params: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    # Sorted, as the CSV's columns (the dict's own order depends on where the trial came from).
    return {name: {k: params[name][k] for k in sorted(params[name])} for name in sorted(params)}


def _stats(stats: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {name: dict(s) for name, s in stats.items()}


def _trial_entry(r: TrialResult, rank: int | None) -> dict[str, Any]:
    return {
        "number": r.number,
        "key": r.key,
        "role": r.role,
        "fold": r.fold,
        "rank": rank,
        "window": _window(r.window),
        "params": _params(r.params),
        "status": r.status,
        "error": r.error,
        "warnings": list(r.warnings),
        "objective": r.objective,
        "feasible": r.feasible,
        "statistics": _stats(r.stats),
        # How this sweep got the result, not what it is: differs between two runs of one sweep.
        "run": {"attempts": r.attempts, "cached": r.cached, "duration_s": round(r.duration_s, 3)},
    }


def _fold_entry(fo: FoldOutcome) -> dict[str, Any]:
    def total(r: TrialResult | None) -> dict[str, Any] | None:
        return None if r is None else dict(r.stats.get("total", {}))

    test_ok = fo.test is not None and fo.test.status == "ok"
    return {
        "index": fo.fold.index,
        "train": _window(fo.fold.train),
        "test": _window(fo.fold.test),
        "trials": len(fo.trials),
        "best_train_trial": None if fo.best is None else fo.best.number,
        "test_trial": None if fo.test is None else fo.test.number,
        "params": None if fo.best is None else _params(fo.best.params),
        "in_sample_objective": None if fo.best is None else fo.best.objective,
        "out_of_sample_objective": None if fo.test is None else fo.test.objective,
        "in_sample": total(fo.best),
        "out_of_sample": total(fo.test) if test_ok else None,
        # Why the fold adds nothing to the out-of-sample curve, when it does not.
        "missing": _missing_reason(fo),
    }


def _missing_reason(fo: FoldOutcome) -> str | None:
    if fo.best is None:
        return "no feasible train trial: nothing to test"
    if fo.test is None:
        return "its test trial did not run (interrupted?)"
    if fo.test.status != "ok":
        return f"its test trial failed: {fo.test.error or 'no error given'}"
    if not fo.test.equity:
        return "its test trial has no equity curve"
    return None


def _covered(outcome: SweepOutcome) -> list[int]:
    return [fo.fold.index for fo in outcome.folds if _missing_reason(fo) is None]


def _counts(outcome: SweepOutcome) -> dict[str, Any]:
    ok = [r for r in outcome.trials if r.status == "ok"]
    return {
        "trials": len(outcome.trials),
        "ok": len(ok),
        "failed": len(outcome.trials) - len(ok),
        "feasible": sum(1 for r in ok if r.feasible),
        "interrupted": outcome.interrupted,
    }


def report(outcome: SweepOutcome, objective: ObjectiveSpec) -> dict[str, Any]:
    """results.json's content (module docstring)."""
    order = _ordered(outcome, objective)
    best, why = _best(outcome, objective)
    out: dict[str, Any] = {
        "objective": {
            "statistic": objective.statistic,
            "strategy": objective.strategy,
            "direction": objective.direction,
            "constraints": [_constraint_text(c) for c in objective.constraints],
            "description": describe(objective),
        },
        "best": (
            None
            if best is None
            else {
                "number": best.number,
                "fold": best.fold,
                "params": _params(best.params),
                "objective": best.objective,
                "why": why,
            }
        ),
        "counts": _counts(outcome),
        "trials": [_trial_entry(r, rank) for rank, r in order],
    }
    if _is_walk_forward(outcome):
        covered = _covered(outcome)
        out["walk_forward"] = {
            "folds": [_fold_entry(fo) for fo in outcome.folds],
            "out_of_sample": {
                "statistics": dict(outcome.oos_stats),
                "folds_covered": covered,
                # Every planned fold ran and has a test result (an interrupted run: false).
                "complete": not outcome.interrupted and len(covered) == len(outcome.folds),
                "equity": [[t, v] for t, v in outcome.oos_equity],
            },
        }
    return out


def _param_columns(trials: Sequence[TrialResult]) -> list[tuple[str, str]]:
    """(strategy, parameter), sorted: not the order of a trial's params dict, which for a trial
    read back from the trial cache (a TPE rerun) is its JSON's, not the first run's."""
    return sorted({(name, param) for r in trials for name, p in r.params.items() for param in p})


def _number(v: Any) -> bool:
    """A statistic the CSV has a column for (not a mapping like `ratios_from`)."""
    return v is None or isinstance(v, bool | int | float)


def _stat_columns(trials: Sequence[TrialResult]) -> list[str]:
    names = {k for r in trials for k, v in r.stats.get("total", {}).items() if _number(v)}
    return [n for n in _FIRST_STATS if n in names] + sorted(names - set(_FIRST_STATS))


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def csv_text(outcome: SweepOutcome, objective: ObjectiveSpec) -> str:
    """results.csv's content (module docstring)."""
    order = _ordered(outcome, objective)
    params = _param_columns(outcome.trials)
    stats = _stat_columns(outcome.trials)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [
            "rank",
            "number",
            "role",
            "fold",
            "start",
            "end",
            "status",
            "feasible",
            "objective",
            *(f"{s}.{p}" for s, p in params),
            *(f"total.{n}" for n in stats),
            "error",
            "warnings",
        ]
    )
    for rank, r in order:
        total = r.stats.get("total", {})
        w.writerow(
            [
                _cell(rank),
                r.number,
                r.role,
                _cell(r.fold),
                _csv_time(r.window.start_ns),
                _csv_time(r.window.end_ns),
                r.status,
                _cell(r.feasible),
                _cell(r.objective),
                *(_cell(r.params.get(s, {}).get(p)) for s, p in params),
                *(_cell(total.get(n)) for n in stats),
                _cell(r.error),
                WARNINGS_JOIN.join(r.warnings),
            ]
        )
    return buf.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` whole: a reader (or a Ctrl-C) never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write(out: Path, outcome: SweepOutcome, objective: ObjectiveSpec) -> list[Path]:
    """Write `out/results.csv` and `out/results.json` (module docstring); returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    data = orjson.dumps(report(outcome, objective), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    paths = [out / "results.csv", out / "results.json"]
    _write_atomic(paths[0], csv_text(outcome, objective).encode())
    _write_atomic(paths[1], data + b"\n")
    return paths


def warnings_line(outcome: SweepOutcome) -> str | None:
    """One line for the end of a sweep when some trials had warnings (what made a strategy or a
    data file do nothing), else None: how many trials, the first one's (lowest number) first
    warning, and where every one is. One line for any number of trials: a warning usually
    repeats in most of them (a strategy on an underlying the data lacks)."""
    warned = sorted((r for r in outcome.trials if r.warnings), key=lambda r: r.number)
    if not warned:
        return None
    first = warned[0]
    more = len(first.warnings) - 1
    also = f" (+{more:,} more)" if more else ""
    return (
        f"warnings: {len(warned):,} of {plural(len(outcome.trials), 'trial')} had warnings"
        f" (first: trial {first.number}: {first.warnings[0]}{also}); see results.json"
    )


# ---------------------------------------------------------------------------------------- table


def _num(v: Any) -> str:
    """A statistic for people: thousands separated, money to the cent."""
    if v is None or isinstance(v, bool):
        return "n/a" if v is None else str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            return "n/a"
        return f"{v:,.2f}" if v == 0 or abs(v) >= 0.01 else f"{v:.2g}"
    return str(v)


def _varying(trials: Sequence[TrialResult]) -> tuple[list[tuple[str, str]], dict[tuple[str, str], Any]]:
    """The parameters whose value differs between trials, and the others' one value."""
    columns = _param_columns(trials)
    varying, fixed = [], {}
    for col in columns:
        values = {repr(r.params.get(col[0], {}).get(col[1])) for r in trials}
        if len(values) > 1:
            varying.append(col)
        else:
            fixed[col] = trials[0].params.get(col[0], {}).get(col[1])
    return varying, fixed


def _labels(columns: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """A parameter's short name where no other strategy's parameter has it, else `strategy.param`."""
    count: dict[str, int] = {}
    for _, p in columns:
        count[p] = count.get(p, 0) + 1
    return {(s, p): p if count[p] == 1 else f"{s}.{p}" for s, p in columns}


def _params_text(r: TrialResult, columns: Sequence[tuple[str, str]], labels: Mapping[Any, str]) -> str:
    return " ".join(f"{labels[c]}={_value(r.params.get(c[0], {}).get(c[1]))}" for c in columns)


def _widest(
    rows: Sequence[tuple[int | None, TrialResult]],
    columns: Sequence[tuple[str, str]],
    labels: Mapping[Any, str],
) -> int:
    """The longest `name=value` of the rows' parameters (rich folds a word wider than its column)."""
    return max((len(w) for _, r in rows for w in _params_text(r, columns, labels).split()), default=1)


def _value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _status(r: TrialResult) -> str:
    if r.status != "ok":
        return "failed"
    return "ok" if r.feasible else "infeasible"


def _new_table(title: str | None = None) -> Any:
    from rich import box
    from rich.table import Table

    return Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, title=title, title_justify="left")


def _when(ns: int | None, *, with_date: bool, seconds: bool) -> str:
    if ns is None:
        return "-"
    text = format_ts(ns)
    clock = text[11:19] if seconds else text[11:16]
    return f"{text[5:10]} {clock}" if with_date else clock


def _span(w: Window, *, with_date: bool, seconds: bool) -> str:
    return (
        f"{_when(w.start_ns, with_date=with_date, seconds=seconds)}-"
        f"{_when(w.end_ns, with_date=with_date, seconds=seconds)}"
    )


def _trial_table(
    rows: Sequence[tuple[int | None, TrialResult]],
    all_trials: Sequence[TrialResult],
    objective: ObjectiveSpec,
) -> Any:
    columns, _ = _varying(all_trials)
    labels = _labels(columns)
    walk = any(r.fold is not None for _, r in rows)
    t = _new_table()
    t.add_column("rank", justify="right", no_wrap=True)
    t.add_column("#", justify="right", no_wrap=True)
    if walk:
        t.add_column("fold", justify="right", no_wrap=True)
    # The parameters wrap (a long set folds onto a second line); every figure stays whole.
    # No narrower than its longest `name=value`: a value is never split across lines.
    t.add_column("params", justify="left", overflow="fold", ratio=1, min_width=_widest(rows, columns, labels))
    t.add_column(_objective_label(objective), justify="right", no_wrap=True)
    # The key statistics of the total, but not the objective's own again.
    shown = [(k, label) for k, label in _KEY_STATS if not _is_objective(objective, k)]
    for _, label in shown:
        t.add_column(label, justify="right", no_wrap=True)
    t.add_column("status", justify="left", no_wrap=True)
    for rank, r in rows:
        total = r.stats.get("total", {})
        cells = [_cell(rank), str(r.number)]
        if walk:
            cells.append(_cell(r.fold))
        cells += [_params_text(r, columns, labels), _num(r.objective)]
        cells += [_num(total.get(k)) for k, _ in shown]
        cells.append(_status(r))
        t.add_row(*cells)
    return t


_KEY_STATS = (("net_pnl", "net PnL $"), ("max_drawdown", "max DD $"), ("fills", "fills"))


def _is_objective(objective: ObjectiveSpec, statistic: str) -> bool:
    return objective.strategy == "total" and objective.statistic == statistic


def _objective_label(objective: ObjectiveSpec) -> str:
    """The objective column's heading: its statistic (and strategy, when not the total)."""
    label = dict(_KEY_STATS).get(objective.statistic, objective.statistic)
    return label if objective.strategy == "total" else f"{objective.strategy} {label}"


def _fold_table(outcome: SweepOutcome, objective: ObjectiveSpec) -> Any:
    trials = [r for fo in outcome.folds for r in fo.trials]
    columns, _ = _varying(trials) if trials else ([], {})
    labels = _labels(columns)
    windows = [w for fo in outcome.folds for w in (fo.fold.train, fo.fold.test)]
    edges = [ns for w in windows for ns in (w.start_ns, w.end_ns) if ns is not None]
    days = {format_ts(ns)[:10] for ns in edges}
    with_date = len(days) > 1
    seconds = any(ns % 60_000_000_000 for ns in edges)  # HH:MM unless that would round a time
    title = "walk-forward" + ("" if with_date or not days else f" ({next(iter(days))}, UTC)")
    t = _new_table(title)
    t.add_column("fold", justify="right", no_wrap=True)
    t.add_column("train", justify="left", no_wrap=True)
    t.add_column("test", justify="left", no_wrap=True)
    bests = [(None, fo.best) for fo in outcome.folds if fo.best is not None]
    t.add_column(
        "best params (train)",
        justify="left",
        overflow="fold",
        ratio=1,
        min_width=_widest(bests, columns, labels),
    )
    t.add_column(f"IS {_objective_label(objective)}", justify="right", no_wrap=True)
    t.add_column(f"OOS {_objective_label(objective)}", justify="right", no_wrap=True)
    net = not _is_objective(objective, "net_pnl")
    if net:
        t.add_column("OOS net PnL $", justify="right", no_wrap=True)
    for fo in outcome.folds:
        reason = _missing_reason(fo)
        test_total = fo.test.stats.get("total", {}) if fo.test is not None else {}
        cells = [
            str(fo.fold.index),
            _span(fo.fold.train, with_date=with_date, seconds=seconds),
            _span(fo.fold.test, with_date=with_date, seconds=seconds),
            "-" if fo.best is None else _params_text(fo.best, columns, labels),
            "n/a" if fo.best is None else _num(fo.best.objective),
            "n/a" if reason else _num(fo.test.objective if fo.test else None),
        ]
        if net:
            cells.append("n/a" if reason else _num(test_total.get("net_pnl")))
        t.add_row(*cells)
    return t


def _oos_lines(outcome: SweepOutcome) -> list[str]:
    s = outcome.oos_stats
    covered = set(_covered(outcome))
    # The market time the test windows that ran cover (the curve's own span would count a
    # missing fold's gap, and miss the time before a window's first sample).
    tested = [fo.fold.test for fo in outcome.folds if fo.fold.index in covered]
    span_s = sum((w.end_ns or 0) - (w.start_ns or 0) for w in tested) / 1e9
    head = f"out-of-sample ({len(covered)} of {plural(len(outcome.folds), 'fold')}"
    if outcome.interrupted:
        # The runner stitches only a finished walk-forward: a part of one is not its result.
        done = plural(len(outcome.folds), "fold")
        lines = [f"out-of-sample: none, the walk-forward was interrupted after {done}"]
    elif not outcome.oos_equity:
        lines = [f"{head}): no test window ran"]
    else:
        lines = [
            f"{head}, {duration(span_s)}): net PnL {_num(s.get('net_pnl'))} $,"
            f" max drawdown {_num(s.get('max_drawdown'))} $"
            + (f", fills {_num(s.get('fills'))}" if s.get("fills") is not None else ""),
            f"  sharpe {ratio_text(s.get('sharpe'), span_s)}, sortino {ratio_text(s.get('sortino'), span_s)}"
            " (annualised, from the stitched curve)",
        ]
    for fo in outcome.folds:
        reason = _missing_reason(fo)
        if reason:
            lines.append(f"  fold {fo.fold.index} is not in it: {reason}")
    return lines


def table(outcome: SweepOutcome, objective: ObjectiveSpec, *, limit: int = 20) -> RenderableType:
    """The sweep for people, best first: the objective, the top `limit` trials (rank, number,
    the parameters that vary, objective, net PnL, max drawdown, fills, status; a walk-forward's
    split between its folds), the failed trials' errors, and for a walk-forward a table of its
    folds (train and test windows, the best parameters, in-sample and out-of-sample objective)
    with the out-of-sample statistics. Figures never wrap or get cut (only the parameters wrap),
    so it reads at 100 columns. Nothing in it depends on the wall clock or the trial cache."""
    from rich.console import Group
    from rich.text import Text

    parts: list[Any] = [Text(f"objective: {describe(objective)}")]
    counts = _counts(outcome)
    parts.append(
        Text(
            f"{plural(counts['trials'], 'trial')}: {counts['ok']:,} ok ({counts['feasible']:,} feasible),"
            f" {counts['failed']:,} failed"
        )
    )
    order = _ordered(outcome, objective)
    _, fixed = _varying(outcome.trials) if outcome.trials else ([], {})
    if fixed:
        parts.append(
            Text("same in every trial: " + " ".join(f"{s}.{p}={_value(v)}" for (s, p), v in fixed.items()))
        )
    if _is_walk_forward(outcome):
        per_fold = max(1, limit // max(1, len(outcome.folds)))
        shown: list[tuple[int | None, TrialResult]] = []
        seen: dict[int | None, int] = {}
        for rank, r in order:
            if r.role == "test":
                continue
            seen[r.fold] = seen.get(r.fold, 0) + 1
            if seen[r.fold] <= per_fold:
                shown.append((rank, r))
        rows = shown
        listed = sum(1 for r in outcome.trials if r.role != "test")
    else:
        rows = order[:limit]
        listed = len(order)
    if rows:
        parts.append(_trial_table(rows, outcome.trials, objective))
        if len(rows) < listed:
            parts.append(Text(f"({listed - len(rows):,} more trials in results.csv)"))
    failed = sorted((r for r in outcome.trials if r.status != "ok"), key=lambda r: r.number)
    for r in failed[:limit]:
        parts.append(Text(f"trial {r.number} failed: {r.error or 'no error given'}"))
    if len(failed) > limit:
        parts.append(Text(f"({len(failed) - limit:,} more failed trials in results.csv)"))
    if outcome.folds:
        parts.append(Text(""))
        parts.append(_fold_table(outcome, objective))
        parts.extend(Text(line) for line in _oos_lines(outcome))
    if outcome.interrupted:
        parts.append(Text("interrupted: the trials above are the ones that finished"))
    best, why = _best(outcome, objective)
    if best is not None:
        every = " ".join(f"{s}.{p}={_value(best.params[s][p])}" for s, p in _param_columns([best]))
        parts.append(Text(f"best: trial {best.number} ({why}): {every}"))
    else:
        parts.append(Text(f"best: none ({why})"))
    return Group(*parts)
