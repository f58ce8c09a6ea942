"""A sweep's HTML page, `OUT/sweep.html`, with its charts beside it as PNG (and embedded in the
page, which then needs nothing else: no script, no network), drawn by matplotlib (the `report`
extra) with the backtest report's figure helpers and page style:

    sweep-params.png    the objective against each parameter that varies: every trial a point
                        (infeasible ones hollow, failed ones a red x on the axis), the best per
                        value a line
    sweep-pairs.png     each pair of those parameters as a heatmap: the best feasible objective
                        per cell ("infeasible", "failed" or blank where a cell has no such trial)
    sweep-folds.png     a walk-forward's in-sample vs out-of-sample objective per fold
    sweep-equity.png    a walk-forward's stitched out-of-sample equity curve and its drawdown,
                        test windows shaded, a fold without a test result marked

and the trial table (best first, as results.csv orders it; each trial's warnings when some have).
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..model.errors import DataError
from ..reports.html import (
    CSS,
    chart_text,
    datetimes,
    drawdown_curve,
    img_tag,
    png_bytes,
    pyplot,
    release_memory,
    style_axes,
)
from ..store.recording import format_ts
from . import results
from .model import SweepOutcome, TrialResult
from .spec import ObjectiveSpec, ParamSpace

__all__ = ["render"]

_MAX_CELLS = 12  # distinct values a heatmap axis shows one by one; more are put in bins
_BINS = 8
_MAX_PAIRS = 15  # heatmaps drawn (the pairs of the first parameters); the page says when more
_MAX_ROWS = 500  # trials listed in the page's table (results.csv has every one)
_FEASIBLE, _INFEASIBLE, _FAILED = "#2c7bb6", "#999999", "#d7191c"

_LABEL_BOX = {"facecolor": "white", "alpha": 0.65, "linewidth": 0, "pad": 1.5}  # readable on any colour

Key = tuple[str, str]  # (strategy, parameter)


def _charts() -> Any:
    try:
        return pyplot()
    except DataError:
        raise DataError(
            "the sweep's HTML page and its charts need the 'report' extra: pip install 'tradingd[report]'"
            " (results.csv and results.json are written)"
        ) from None


def _value(r: TrialResult, key: Key) -> Any:
    return r.params.get(key[0], {}).get(key[1])


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


class _Axis:
    """How one parameter is laid along an axis: its own values when they are few (in the
    sweep file's order for a list or choices, else sorted), or `_BINS` bins of its range (log
    spaced for a log range) when a random or TPE search drew many."""

    def __init__(self, key: Key, space: ParamSpace | None, values: Sequence[Any]) -> None:
        self.key = key
        self.label = f"{key[0]}.{key[1]}"
        distinct = list(dict.fromkeys(values))
        self.numeric = all(_is_number(v) for v in distinct) and (space is None or space.kind != "choices")
        self.log = space is not None and space.kind == "log_range" and all(v > 0 for v in distinct)
        self.edges: list[float] | None = None
        if space is not None and space.kind in ("values", "choices") and space.values:
            order = {repr(v): i for i, v in enumerate(space.values)}
            distinct.sort(key=lambda v: order.get(repr(v), len(order)))
        elif self.numeric:
            distinct.sort()
        else:
            distinct.sort(key=repr)
        if self.numeric and len(distinct) > _MAX_CELLS:
            lo, hi = float(min(distinct)), float(max(distinct))
            if self.log:
                a, b = math.log(lo), math.log(hi)
                self.edges = [math.exp(a + (b - a) * i / _BINS) for i in range(_BINS + 1)]
            else:
                self.edges = [lo + (hi - lo) * i / _BINS for i in range(_BINS + 1)]
            self.cells = [f"{x:.3g}-{y:.3g}" for x, y in itertools.pairwise(self.edges)]
        else:
            self.values = distinct
            self.cells = [_text(v) for v in distinct]

    def cell(self, v: Any) -> int:
        if self.edges is not None:
            for i in range(_BINS):
                if v < self.edges[i + 1]:
                    return i
            return _BINS - 1
        return next(i for i, x in enumerate(self.values) if repr(x) == repr(v))


def _chart_cells(axis: _Axis) -> list[str]:
    """An axis' cells as tick labels: a parameter's value (a config's text, `"$5 or $10"`) drawn
    as written (`chart_text`), like a strategy's name in a label or title."""
    return [chart_text(cell) for cell in axis.cells]


def _text(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _scored(r: TrialResult) -> bool:
    return r.status == "ok" and r.objective is not None and math.isfinite(r.objective)


def _better(objective: ObjectiveSpec, a: float, b: float) -> bool:
    return a > b if objective.direction == "maximize" else a < b


def _axes(trials: Sequence[TrialResult], params: Mapping[str, Mapping[str, ParamSpace]]) -> list[_Axis]:
    """An axis per parameter that takes more than one value among `trials`."""
    out = []
    for key in results._param_columns(trials):
        values = [_value(r, key) for r in trials]
        if len({repr(v) for v in values}) > 1:
            out.append(_Axis(key, params.get(key[0], {}).get(key[1]), values))
    return out


Group = tuple[str, Sequence[TrialResult]]  # a label ("" for a search, "fold 2") and its trials


def _groups(trials: Sequence[TrialResult]) -> list[Group]:
    """The trials compared with each other: a search's all together; a walk-forward's fold by
    fold (each fold's train window is other data: its figures are not comparable with another's)."""
    folds = sorted({r.fold for r in trials if r.fold is not None})
    if not folds:
        return [("", trials)]
    return [(f"fold {f}", [r for r in trials if r.fold == f]) for f in folds]


def _params_figure(
    plt: Any, groups: Sequence[Group], axes: Sequence[_Axis], objective: ObjectiveSpec
) -> bytes:
    cols = min(3, len(axes))
    rows = math.ceil(len(axes) / cols)
    fig, grid = plt.subplots(
        rows, cols, figsize=(3.8 * cols, 3.0 * rows), squeeze=False, layout="constrained"
    )
    label = chart_text(results._objective_label(objective))
    for n, axis in enumerate(axes):
        ax = grid[n // cols][n % cols]

        def x_of(v: Any, axis: _Axis = axis) -> float:
            return float(v) if axis.numeric else float(axis.cell(v))

        for k, (name, trials) in enumerate(groups):
            color = _FEASIBLE if len(groups) == 1 else f"C{k}"
            for feasible in (True, False):
                pts = [
                    (x_of(_value(r, axis.key)), r.objective)
                    for r in trials
                    if _scored(r) and r.feasible is feasible
                ]
                if pts:
                    ax.scatter(
                        [p[0] for p in pts],
                        [p[1] for p in pts],
                        s=22,
                        facecolors=color if feasible else "none",
                        edgecolors=color if feasible or name else _INFEASIBLE,
                        linewidths=1.0,
                        label=chart_text(
                            " ".join(x for x in (name, "feasible" if feasible else "infeasible") if x)
                        ),
                        zorder=3,
                    )
            best: dict[str, tuple[float, float]] = {}
            for r in trials:
                if _scored(r) and r.feasible and r.objective is not None:
                    v = _value(r, axis.key)
                    if repr(v) not in best or _better(objective, r.objective, best[repr(v)][1]):
                        best[repr(v)] = (x_of(v), r.objective)
            if best and axis.edges is None:  # the best per value: a line, where values repeat
                line = sorted(best.values())
                ax.plot([p[0] for p in line], [p[1] for p in line], color=color, lw=1.0, alpha=0.7)
        failed = [x_of(_value(r, axis.key)) for _, trials in groups for r in trials if not _scored(r)]
        if failed:  # no objective to place them by: on the axis, in red
            ax.scatter(
                failed,
                [0.02] * len(failed),
                transform=ax.get_xaxis_transform(),
                marker="x",
                color=_FAILED,
                s=30,
                label="failed",
                zorder=3,
            )
        if axis.log:
            ax.set_xscale("log")
        if not axis.numeric:
            ax.set_xticks(range(len(axis.cells)), _chart_cells(axis), rotation=30, ha="right")
        elif axis.edges is None:  # a few values: ticks at them (a log axis' minor labels overlap)
            ax.minorticks_off()
            ax.set_xticks([float(v) for v in axis.values], _chart_cells(axis))
        style_axes(ax, chart_text(axis.label), label)
        if n == 0:
            ax.legend(fontsize=7, loc="best")
    for n in range(len(axes), rows * cols):
        grid[n // cols][n % cols].set_visible(False)
    return png_bytes(fig)


def _short(v: float) -> str:
    """A figure for a heatmap cell: whole above 1,000 (never 1.05e+03), 3 digits under."""
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def _cells(
    trials: Sequence[TrialResult], ax_x: _Axis, ax_y: _Axis, objective: ObjectiveSpec
) -> tuple[dict[tuple[int, int], float], dict[tuple[int, int], str]]:
    """A heatmap's cells, (row, column) = (`ax_y`'s cell, `ax_x`'s): the best feasible objective
    of the trials in each, and for the others what they hold ("infeasible" before "failed")."""
    best: dict[tuple[int, int], float] = {}
    seen: dict[tuple[int, int], str] = {}
    for r in trials:
        cell = (ax_y.cell(_value(r, ax_y.key)), ax_x.cell(_value(r, ax_x.key)))
        if _scored(r) and r.feasible and r.objective is not None:
            if cell not in best or _better(objective, r.objective, best[cell]):
                best[cell] = r.objective
        elif _scored(r):
            seen[cell] = "infeasible"
        else:
            seen.setdefault(cell, "failed")
    return best, {cell: what for cell, what in seen.items() if cell not in best}


def _panels(
    groups: Sequence[Group], pairs: Sequence[tuple[_Axis, _Axis]]
) -> list[tuple[str, Sequence[TrialResult], _Axis, _Axis]]:
    """The heatmaps drawn: each group's (a search's; each fold's) for each pair, up to
    `_MAX_PAIRS`: whole folds, the latest ones when not all fit (the best comes from the last)."""
    kept: list[Group] = []
    for group in reversed(groups):
        if kept and (len(kept) + 1) * len(pairs) > _MAX_PAIRS:
            break
        kept.insert(0, group)
    return [(name, trials, x, y) for name, trials in kept for x, y in pairs][:_MAX_PAIRS]


def _pairs_figure(
    plt: Any, panels: Sequence[tuple[str, Sequence[TrialResult], _Axis, _Axis]], objective: ObjectiveSpec
) -> bytes:
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, grid = plt.subplots(
        rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False, layout="constrained"
    )
    for n, (name, trials, ax_x, ax_y) in enumerate(panels):
        ax = grid[n // cols][n % cols]
        best, seen = _cells(trials, ax_x, ax_y, objective)
        grid_values = [
            [best.get((i, j), math.nan) for j in range(len(ax_x.cells))] for i in range(len(ax_y.cells))
        ]
        # Better is brighter either way: a minimised objective's colour scale is reversed.
        cmap = "viridis" if objective.direction == "maximize" else "viridis_r"
        image = ax.imshow(grid_values, cmap=cmap, aspect="auto", origin="lower")
        if best:  # no scale for a map without a feasible cell
            fig.colorbar(image, ax=ax, shrink=0.85)
        many = len(ax_x.cells) * len(ax_y.cells) > 64
        for (i, j), v in best.items():
            if not many:
                ax.text(j, i, _short(v), ha="center", va="center", fontsize=7, bbox=_LABEL_BOX)
        for (i, j), what in seen.items():
            color = _FAILED if what == "failed" else "#555"
            ax.text(j, i, what, ha="center", va="center", fontsize=6, color=color)
        ax.set_xticks(range(len(ax_x.cells)), _chart_cells(ax_x), rotation=30, ha="right", fontsize=7)
        ax.set_yticks(range(len(ax_y.cells)), _chart_cells(ax_y), fontsize=7)
        ax.set_xlabel(chart_text(ax_x.label), fontsize=8)
        ax.set_ylabel(chart_text(ax_y.label), fontsize=8)
        title = f"best {results._objective_label(objective)}"
        ax.set_title(chart_text(f"{name}: {title}" if name else title), fontsize=9, loc="left")
    for n in range(len(panels), rows * cols):
        grid[n // cols][n % cols].set_visible(False)
    return png_bytes(fig)


def _folds_figure(plt: Any, outcome: SweepOutcome, objective: ObjectiveSpec) -> bytes:
    fig, grid = plt.subplots(1, 1, figsize=(8, 3.4), squeeze=False, layout="constrained")
    ax = grid[0][0]
    idx = [fo.fold.index for fo in outcome.folds]
    ins = [
        math.nan if fo.best is None or fo.best.objective is None else fo.best.objective
        for fo in outcome.folds
    ]
    outs = [
        math.nan
        if results._missing_reason(fo) is not None or fo.test is None or fo.test.objective is None
        else fo.test.objective
        for fo in outcome.folds
    ]
    w = 0.38
    ax.bar([i - w / 2 for i in idx], ins, w, label="in-sample (best train trial)", color="#abd9e9")
    ax.bar([i + w / 2 for i in idx], outs, w, label="out-of-sample (its test)", color=_FEASIBLE)
    for i, a, b in zip(idx, ins, outs, strict=True):
        for x, v in ((i - w / 2, a), (i + w / 2, b)):
            if math.isnan(v):
                ax.text(x, 0, "n/a", ha="center", va="bottom", fontsize=7, color=_FAILED)
    ax.axhline(0, color="#555", lw=0.6)
    ax.set_xticks(idx, [f"fold {i}" for i in idx])
    style_axes(ax, "In-sample vs out-of-sample, per fold", chart_text(results._objective_label(objective)))
    ax.legend(fontsize=7, loc="best")
    return png_bytes(fig)


def _segments(outcome: SweepOutcome) -> list[range]:
    """The stitched curve's points cut where a fold without a test result lies between them."""
    gaps = [
        fo.fold.test.start_ns
        for fo in outcome.folds
        if results._missing_reason(fo) is not None and fo.fold.test.start_ns is not None
    ]
    out, start = [], 0
    times = [t for t, _ in outcome.oos_equity]
    for i in range(1, len(times) + 1):
        if i == len(times) or any(times[i - 1] < g <= times[i] for g in gaps):
            out.append(range(start, i))
            start = i
    return out


def _equity_figure(plt: Any, outcome: SweepOutcome) -> bytes:
    fig, (ax_eq, ax_dd) = plt.subplots(
        2, 1, figsize=(11, 4.8), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]}, layout="constrained"
    )
    for fo in outcome.folds:
        w = fo.fold.test
        if w.start_ns is None or w.end_ns is None:
            continue
        start, end = datetimes([w.start_ns, w.end_ns])
        missing = results._missing_reason(fo) is not None
        color = "#f4a582" if missing else ("#f0f0f0" if fo.fold.index % 2 == 0 else "#e0e0e0")
        for ax in (ax_eq, ax_dd):
            ax.axvspan(start, end, color=color, alpha=0.6, lw=0)
        label = f"fold {fo.fold.index}" + (": no test result" if missing else "")
        ax_eq.text(start, 1.0, " " + label, transform=ax_eq.get_xaxis_transform(), fontsize=7, va="top")
    if outcome.oos_equity:
        equity = [v for _, v in outcome.oos_equity]
        drawdown = drawdown_curve(equity)
        # Drawn fold by fold: no line across a fold without a test result (nothing traded there
        # that we know of; the chain only carries its level over it).
        for segment in _segments(outcome):
            when = datetimes([outcome.oos_equity[i][0] for i in segment])
            ax_eq.plot(when, [equity[i] for i in segment], lw=1.3, color=_FEASIBLE)
            ax_dd.fill_between(when, [drawdown[i] for i in segment], 0, color=_FAILED, alpha=0.4, step="post")
    ax_eq.axhline(0, color="#555", lw=0.6)
    style_axes(ax_eq, "Out-of-sample equity: the test windows chained", "USD")
    style_axes(ax_dd, "Drawdown from the running peak", "USD")
    ax_dd.set_xlabel("time (UTC)", fontsize=9)
    return png_bytes(fig)


def _cell(v: Any) -> str:
    return html.escape(results._num(v))


def _trial_rows(outcome: SweepOutcome, objective: ObjectiveSpec, keys: Sequence[Key]) -> tuple[str, int]:
    walk = bool(outcome.folds)
    head = ["rank", "#"] + (["fold", "role"] if walk else []) + [f"{s}.{p}" for s, p in keys]
    # The key statistics of the total, but not the objective's own again (the terminal's table).
    shown = [(k, label) for k, label in results._KEY_STATS if not results._is_objective(objective, k)]
    head += [results._objective_label(objective), *(label for _, label in shown), "status"]
    # What made a trial do nothing, one per line: a column only when some trial has one.
    warned = any(r.warnings for r in outcome.trials)
    head += ["warnings"] if warned else []
    out = ["<table class='trials'><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    order = results._ordered(outcome, objective)
    for rank, r in order[:_MAX_ROWS]:
        total = r.stats.get("total", {})
        status = results._status(r)
        cells = [results._cell(rank), str(r.number)]
        if walk:
            cells += [results._cell(r.fold), r.role]
        cells += [_text(_value(r, k)) for k in keys]
        row = "".join(f"<td>{html.escape(c)}</td>" for c in cells)
        row += _td(r.objective) + "".join(_td(total.get(k)) for k, _ in shown)
        title = f" title='{html.escape(r.error, quote=True)}'" if r.error else ""
        text = status if r.error is None else f"{status}: {r.error}"
        row += f"<td class='status'{title}>{html.escape(text)}</td>"
        if warned:
            row += "<td class='warnings'>" + "<br>".join(html.escape(w) for w in r.warnings) + "</td>"
        out.append(f"<tr class='{status}'>{row}</tr>")
    out.append("</table>")
    return "".join(out), len(order)


def _td(v: Any) -> str:
    return f"<td>{_cell(v)}</td>"


_PAGE_CSS = (
    CSS
    + """
tr.infeasible td{color:#888}tr.failed td{color:#b2182b}td.status{text-align:left}
td.warnings{text-align:left;color:#8a6d00;font-size:0.9em}
"""
)


def render(
    out: Path,
    outcome: SweepOutcome,
    objective: ObjectiveSpec,
    params: Mapping[str, Mapping[str, ParamSpace]],
) -> Path:
    """Write `out/sweep.html` and its PNG charts (module docstring); returns the page's path.
    `params` is the sweep's parameter space (its lists' order and log ranges lay out the axes).
    Raises DataError naming the `report` extra when matplotlib is not installed."""
    plt = _charts()
    out.mkdir(parents=True, exist_ok=True)
    esc = html.escape
    searched = [r for r in outcome.trials if r.role != "test"]
    axes = _axes(searched, params)
    keys = results._param_columns(outcome.trials)
    counts = results._counts(outcome)
    best, why = results._best(outcome, objective)
    facts = [
        ("objective", results.describe(objective)),
        (
            "trials",
            f"{counts['trials']:,}: {counts['ok']:,} ok ({counts['feasible']:,} feasible),"
            f" {counts['failed']:,} failed" + (" (interrupted)" if counts["interrupted"] else ""),
        ),
        (
            "best",
            "none: " + why
            if best is None
            else f"trial {best.number} ({why}): "
            + ", ".join(f"{s}.{p} = {_text(v)}" for s, ps in best.params.items() for p, v in ps.items()),
        ),
    ]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>tradingd sweep</title>",
        f"<style>{_PAGE_CSS}</style></head><body><h1>Sweep</h1>",
        "<table class='facts'>" + "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in facts),
        "</table>",
    ]

    def chart(name: str, png: bytes, alt: str) -> None:
        (out / name).write_bytes(png)
        release_memory()  # each figure freed before the next is drawn
        parts.append(img_tag(png, alt))

    if outcome.folds:
        parts.append("<h2>Walk-forward</h2>")
        parts.append(_folds_table(outcome, objective))
        parts.append(
            "<p class='note'>Each fold's train window is searched; the best feasible train trial's"
            " parameters then run on the test window right after it, on data they were not chosen on."
            " The out-of-sample curve chains the test windows (each starts where the one before ended);"
            " a fold without a test result adds nothing to it and is marked. In-sample figures come"
            " from the train window, out-of-sample ones from the (often shorter) test window: a sum"
            " such as net PnL grows with the window's length.</p>"
        )
        chart("sweep-equity.png", _equity_figure(plt, outcome), "out-of-sample equity")
        chart(
            "sweep-folds.png", _folds_figure(plt, outcome, objective), "in-sample vs out-of-sample per fold"
        )
    if axes:
        groups = _groups(searched)
        parts.append("<h2>Objective by parameter</h2>")
        if outcome.folds:
            parts.append(
                "<p class='note'>Each fold's train trials in its own colour (each fold is other data:"
                " compare the shapes, not the levels).</p>"
            )
        chart("sweep-params.png", _params_figure(plt, groups, axes, objective), "objective by parameter")
        panels = _panels(groups, list(itertools.combinations(axes, 2)))
        if panels:
            parts.append("<h2>Pairs of parameters</h2>")
            wanted = len(groups) * math.comb(len(axes), 2)
            if len(panels) < wanted:
                parts.append(
                    f"<p class='note'>{len(panels)} of {wanted} heatmaps: the latest folds' first pairs.</p>"
                )
            chart("sweep-pairs.png", _pairs_figure(plt, panels, objective), "best objective per pair")
    table_html, total = _trial_rows(outcome, objective, keys)
    parts.append("<h2>Trials, best first</h2>")
    if total > _MAX_ROWS:
        parts.append(f"<p class='note'>The first {_MAX_ROWS} of {total:,}; results.csv has every one.</p>")
    parts.append(table_html)
    parts.append("</body></html>\n")
    page = out / "sweep.html"
    page.write_text("".join(parts), encoding="utf-8")
    return page


def _folds_table(outcome: SweepOutcome, objective: ObjectiveSpec) -> str:
    esc = html.escape
    label = results._objective_label(objective)
    net = not results._is_objective(objective, "net_pnl")  # else the OOS objective column is it
    rows = [
        "<table><tr><th>fold</th><th>train (UTC)</th><th>test (UTC)</th><th>best params</th>"
        f"<th>IS {esc(label)}</th><th>OOS {esc(label)}</th>"
        + ("<th>OOS net PnL $</th>" if net else "")
        + "<th>note</th></tr>"
    ]
    for fo in outcome.folds:
        reason = results._missing_reason(fo)
        test_total = fo.test.stats.get("total", {}) if fo.test is not None and reason is None else {}
        params = (
            "-"
            if fo.best is None
            else ", ".join(f"{s}.{p} = {_text(v)}" for s, ps in fo.best.params.items() for p, v in ps.items())
        )
        rows.append(
            f"<tr><td>{fo.fold.index}</td><td>{esc(_window(fo.fold.train))}</td>"
            f"<td>{esc(_window(fo.fold.test))}</td><td>{esc(params)}</td>"
            f"{_td(None if fo.best is None else fo.best.objective)}"
            f"{_td(None if reason or fo.test is None else fo.test.objective)}"
            + (_td(test_total.get("net_pnl")) if net else "")
            + f"<td>{esc(reason or '')}</td></tr>"
        )
    rows.append("</table>")
    # The terminal's out-of-sample lines (statistics, and the folds not in it).
    rows.extend(f"<p>{esc(line.strip())}</p>" for line in results._oos_lines(outcome))
    return "".join(rows)


def _window(w: Any) -> str:
    a = "-" if w.start_ns is None else format_ts(w.start_ns)[:19].replace("T", " ")
    b = "-" if w.end_ns is None else format_ts(w.end_ns)[:19].replace("T", " ")
    return f"{a} to {b}"
