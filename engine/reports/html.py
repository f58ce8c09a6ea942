"""The backtest report for people: charts (PNG, drawn by matplotlib's Agg backend) and one
self-contained HTML page (the PNGs embedded as base64; no script, no network), written next to
the JSON report of the run.

    RUN_DIR/report.json          the data (engine/backtest/report.py): the only input of the charts
    RUN_DIR/report.html          statistics table, run facts, every chart
    RUN_DIR/report.png           equity and drawdown of every strategy
    RUN_DIR/report-<name>.png    one strategy: equity and drawdown, positions over time, and the
                                 fills on the price chart of its most traded instruments

`write_run_reports(path, result)` writes all of them after a backtest; `render_run(path)` draws
them again from a saved JSON report (`tradingd report RUN_DIR`).
"""

from __future__ import annotations

import base64
import ctypes
import datetime as dt
import functools
import gc
import html
import io
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

# Light imports only: `tradingd backtest --report` draws in a process of its own that has
# not loaded the kernel (cli/render.py); the kernel's JSON writer is imported where used.
from ..model.errors import DataError
from ..model.words import RATIO_MIN_SPAN_S, duration, equity_span_s, instrument_text, qty_text, ratio_text

if TYPE_CHECKING:
    from ..backtest.kernel import BacktestResult

__all__ = [
    "CSS",
    "datetimes",
    "drawdown_curve",
    "img_tag",
    "png_bytes",
    "pyplot",
    "release_memory",
    "render_html",
    "render_run",
    "style_axes",
    "write_run_reports",
]

_MAX_PRICE_PANELS = 3  # instruments with fills drawn per strategy (the most filled ones)
_MAX_POSITION_LINES = 8
_FILLS_LISTED = 50  # the last fills of each strategy, as a table
_BUY, _SELL = "#1a9850", "#d73027"


class _Charts:
    """pyplot's `subplots` as the charts use it, on a bare Figure with the Agg canvas: no pyplot
    (its figure registry would hold every figure until closed) and no process-wide
    `matplotlib.use`. A figure is freed as soon as its PNG is made and it goes out of scope."""

    def __init__(self, figure: Any, canvas: Any) -> None:
        self._figure, self._canvas = figure, canvas

    def subplots(self, nrows: int, ncols: int, *, figsize: tuple[float, float], **kw: Any) -> tuple[Any, Any]:
        fig = self._figure(figsize=figsize, layout=kw.pop("layout", None))
        self._canvas(fig)
        return fig, fig.subplots(nrows, ncols, **kw)


def pyplot() -> Any:
    try:
        import matplotlib  # noqa: F401  (first: the package missing is the one line below)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise DataError(
            "the HTML report and its charts need the 'report' extra: pip install 'tradingd[report]' "
            "(the JSON report is written)"
        ) from exc
    return _Charts(Figure, FigureCanvasAgg)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, or None where the C library has none (musl, macOS)."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):  # TypeError: Windows' CDLL takes no None
        return None
    return trim


def release_memory() -> None:
    """Collect cycles, then hand the C heap's free pages back to the OS (glibc keeps them in
    the process otherwise, so a replay's freed memory would still be resident under matplotlib:
    peak RSS is the high-water mark of both). Only resident memory changes, never a result."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def datetimes(ts: Sequence[int]) -> list[dt.datetime]:
    return [dt.datetime.fromtimestamp(t / 1e9, dt.UTC).replace(tzinfo=None) for t in ts]


def drawdown_curve(equity: Sequence[float]) -> list[float]:
    """Equity minus its running peak (the start, at 0, counts as a peak): <= 0."""
    peak = 0.0
    out = []
    for x in equity:
        peak = max(peak, x)
        out.append(x - peak)
    return out


def png_bytes(fig: Any) -> bytes:
    buf = io.BytesIO()
    # No "Software" metadata: the same report draws the same bytes with the same matplotlib.
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def style_axes(ax: Any, title: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=10, loc="left")
    ax.set_ylabel(ylabel, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.tick_params(labelsize=8)


def chart_text(text: str) -> str:
    """`text` (a venue's or a config's: an instrument's name, a strategy's) as matplotlib draws
    it as written: a `$` escaped, which would otherwise start mathtext (`will-$\\foo$-happen`
    raises ValueError and no page is written; `$5 or $10` draws in italics)."""
    return text.replace("$", r"\$")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "strategy"


def _overview(plt: Any, strategies: dict[str, Any]) -> bytes:
    fig, (ax_eq, ax_dd) = plt.subplots(
        2, 1, figsize=(11, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.4]}, layout="constrained"
    )
    for name, s in strategies.items():
        series = s.get("series") or {}
        ts, equity = series.get("ts") or [], series.get("equity") or []
        if not ts:
            continue
        when = datetimes(ts)
        (line,) = ax_eq.plot(when, equity, lw=1.3, label=chart_text(name))
        ax_dd.fill_between(when, drawdown_curve(equity), 0, alpha=0.35, color=line.get_color(), step="post")
    style_axes(ax_eq, "Equity by strategy (net PnL, marked to market)", "USD")
    style_axes(ax_dd, "Drawdown from the running peak", "USD")
    ax_eq.axhline(0, color="#555", lw=0.6)
    if ax_eq.get_lines()[:-1]:  # the strategies' lines (the last one is the zero line)
        ax_eq.legend(fontsize=8, loc="upper left")
    ax_dd.set_xlabel("time (UTC)", fontsize=9)
    data = png_bytes(fig)
    return data


def _strategy_figure(plt: Any, name: str, s: dict[str, Any], names: dict[str, str]) -> bytes:
    """`names`: the report's `instrument_names` (what the legends and titles call an instrument)."""
    series = s.get("series") or {}
    ts = series.get("ts") or []
    when = datetimes(ts)
    equity = series.get("equity") or []
    fills = series.get("fills") or []
    by_instrument: dict[str, int] = {}
    for f in fills:
        by_instrument[f[1]] = by_instrument.get(f[1], 0) + 1
    traded = sorted(by_instrument, key=lambda k: (-by_instrument[k], k))[:_MAX_PRICE_PANELS]
    rows = 3 + len(traded)
    ratios = [3, 1.3, 2] + [2.2] * len(traded)
    fig, axes = plt.subplots(
        rows, 1, figsize=(11, 2.1 * sum(ratios) / 1.6), sharex=True, gridspec_kw={"height_ratios": ratios}
    )
    ax_eq, ax_dd, ax_pos = axes[0], axes[1], axes[2]
    drawdown = drawdown_curve(equity)
    if ts:
        ax_eq.plot(when, equity, lw=1.3, color="#2c7bb6")
        ax_dd.fill_between(when, drawdown, 0, color="#d7191c", alpha=0.4, step="post")
    ax_eq.axhline(0, color="#555", lw=0.6)
    net = s.get("net_pnl", 0.0)
    fees = s.get("fees", 0.0)
    style_axes(ax_eq, f"{chart_text(name)}: equity (net PnL {net:,.2f} USD, fees {fees:,.2f})", "USD")
    # The title says what is drawn (the report's series holds max_drawdown's peak and trough,
    # so this is max_drawdown; an older report without them says its own figure apart).
    drawn = -min(drawdown, default=0.0)
    title = f"drawdown (max {drawn:,.2f} USD)"
    stated = s.get("max_drawdown")
    if isinstance(stated, float | int) and f"{stated:,.2f}" != f"{drawn:,.2f}":
        title += f"; max_drawdown {stated:,.2f} USD was taken between the samples drawn"
    style_axes(ax_dd, title, "USD")
    positions: dict[str, list[float]] = series.get("positions") or {}
    size = {k: max((abs(x) for x in v), default=0.0) for k, v in positions.items()}
    shown = sorted((k for k in positions if size[k] > 0), key=lambda k: (-size[k], k))[:_MAX_POSITION_LINES]
    # Units differ (USD for inverse perpetuals, coins for options): positions far smaller than the
    # largest get their own axis on the right, so both can be read.
    top = size[shown[0]] if shown else 0.0
    right: Any = None
    handles = []
    for i, key in enumerate(shown):
        small = size[key] < 0.01 * top
        if small and right is None:
            right = ax_pos.twinx()
            right.tick_params(labelsize=8)
        ax = right if small else ax_pos
        (line,) = ax.step(
            when,
            positions[key],
            where="post",
            lw=1.2,
            color=f"C{i}",
            label=chart_text(instrument_text(key, names)) + (" (right axis)" if small else ""),
        )
        handles.append(line)
    if handles:
        ax_pos.legend(handles=handles, fontsize=7, loc="upper left", ncol=2)
    hidden = sum(1 for k in positions if size[k] > 0) - len(shown)
    more = f" ({hidden} more not drawn)" if hidden > 0 else ""
    style_axes(ax_pos, "positions (units: USD for inverse perpetuals, coins for options)" + more, "qty")
    ax_pos.axhline(0, color="#555", lw=0.6)
    prices: dict[str, list[float | None]] = series.get("prices") or {}
    for ax, key in zip(axes[3:], traded, strict=True):
        marks = prices.get(key) or []
        points = [(t, p) for t, p in zip(when, marks, strict=False) if p is not None]
        if points:
            ax.plot([t for t, _ in points], [p for _, p in points], lw=1.0, color="#555", label="mark")
        for side, color, marker in (("buy", _BUY, "^"), ("sell", _SELL, "v")):
            mine = [f for f in fills if f[1] == key and f[2] == side]
            if mine:
                ax.scatter(
                    datetimes([f[0] for f in mine]),
                    [f[3] for f in mine],
                    s=[18 + 6 * math.log1p(f[4]) for f in mine],
                    color=color,
                    marker=marker,
                    label=f"{side} fills ({len(mine)})",
                    zorder=3,
                    edgecolors="black",
                    linewidths=0.3,
                )
        ax.legend(fontsize=7, loc="best")
        style_axes(ax, f"{chart_text(instrument_text(key, names))}: mark and fills", "price")
    axes[-1].set_xlabel("time (UTC)", fontsize=9)
    fig.autofmt_xdate()
    fig.tight_layout()
    data = png_bytes(fig)
    return data


def _tag(fill: list[Any]) -> str:
    """A fill row's tag: its 8th element, "" in a row without one (a report from before tags)."""
    return str(fill[7]) if len(fill) > 7 and fill[7] else ""


def _fmt(x: Any, spec: str = ",.2f", suffix: str = "") -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float) and not math.isfinite(x):
        return "n/a"
    return f"{x:{spec}}{suffix}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    s = round(seconds)
    if s < 60:
        return f"{seconds:.1f} s"
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{sec:02d}s"


def _ratio_span(s: dict[str, Any]) -> float:
    """The replay time a strategy's Sharpe and Sortino come from (an older report: its curve)."""
    span = (s.get("ratios_from") or {}).get("span_s")
    return float(span) if isinstance(span, int | float) else equity_span_s(s.get("equity_curve") or [])


_COLUMNS: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
    ("net PnL $", lambda s: _fmt(s.get("net_pnl"))),
    ("realized $", lambda s: _fmt(s.get("realized_pnl"))),
    ("unrealized $", lambda s: _fmt(s.get("unrealized_pnl"))),
    ("fees $", lambda s: _fmt(s.get("fees"))),
    ("turnover $", lambda s: _fmt(s.get("turnover"), ",.0f")),
    ("Sharpe", lambda s: ratio_text(s.get("sharpe"), _ratio_span(s))),
    ("Sortino", lambda s: ratio_text(s.get("sortino"), _ratio_span(s))),
    ("max drawdown $", lambda s: _fmt(s.get("max_drawdown"))),
    ("round trips", lambda s: _fmt(s.get("round_trips"), ",d")),
    ("win rate", lambda s: _fmt(None if s.get("win_rate") is None else 100 * s["win_rate"], ".1f", "%")),
    ("avg holding", lambda s: _duration(s.get("avg_holding_s"))),
    ("orders sent", lambda s: _fmt(s.get("orders"), ",d")),
    ("orders filled (any part)", lambda s: _fmt(s.get("filled_orders"), ",d")),
    ("fills (each partial counts)", lambda s: _fmt(s.get("fills"), ",d")),
    (
        "fill ratio",
        lambda s: _fmt(None if s.get("fill_ratio") is None else 100 * s["fill_ratio"], ".1f", " %"),
    ),
    ("rejected", lambda s: _fmt(s.get("rejected"), ",d")),
    ("errors", lambda s: _fmt(s.get("errors"), ",d")),
)

CSS = """
body{font-family:Helvetica,Arial,sans-serif;margin:2em auto;max-width:1150px;color:#222}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.8em 0}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:right}th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}.facts td{text-align:left}
img{max-width:100%;border:1px solid #eee}.note{color:#666;font-size:.85em}
td.tag{text-align:left;font-family:monospace}
.warnings li{color:#8a5a00}
"""


def img_tag(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


Progress = Callable[[str], None]


def _silent(_: str) -> None:
    return None


def render_html(
    report: dict[str, Any], out_dir: str | Path, *, stem: str = "report", progress: Progress = _silent
) -> list[Path]:
    """Draw the charts of a JSON `report` (as `report_dict` makes it) and write `stem.html`,
    `stem.png` and `stem-<strategy>.png` into `out_dir`. Returns the files written.
    `progress` is told what is being drawn (the CLI's status line)."""
    progress("loading matplotlib")
    plt = pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    strategies: dict[str, Any] = report.get("strategies") or {}
    # What a venue's catalog called the instruments (Polymarket tokens), when it named some.
    names: dict[str, str] = report.get("instrument_names") or {}
    written: list[Path] = []
    progress(f"{stem}.png (equity and drawdown of every strategy)")
    overview = _overview(plt, strategies)
    release_memory()  # each figure's pixels and artists are freed before the next is drawn
    (out / f"{stem}.png").write_bytes(overview)
    written.append(out / f"{stem}.png")
    figures: dict[str, bytes] = {}
    for i, (name, s) in enumerate(strategies.items(), 1):
        progress(f"{stem}-{_safe(name)}.png (strategy {i} of {len(strategies)})")
        figures[name] = _strategy_figure(plt, name, s, names)
        release_memory()
        path = out / f"{stem}-{_safe(name)}.png"
        path.write_bytes(figures[name])
        written.append(path)

    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c, _ in _COLUMNS)
    body = "".join(
        f"<tr><td>{esc(name)}</td>" + "".join(f"<td>{esc(fn(s))}</td>" for _, fn in _COLUMNS) + "</tr>"
        for name, s in strategies.items()
    )
    facts = [
        ("period (UTC)", f"{report.get('start') or 'n/a'} to {report.get('end') or 'n/a'}"),
        ("events / frames", f"{report.get('events', 0):,} / {report.get('frames', 0):,}"),
        (
            "malformed frames / bad lines",
            f"{report.get('malformed_frames', 0):,} / {report.get('bad_lines', 0):,}",
        ),
        ("replay time", f"{report.get('duration_s', 0.0):.2f} s"),
        ("money", "USD: coin amounts converted at the index when they happen"),
    ]
    spans = [
        _ratio_span(s)
        for s in strategies.values()
        if s.get("sharpe") is not None or s.get("sortino") is not None
    ]
    short = max((x for x in spans if x < RATIO_MIN_SPAN_S), default=None)
    warnings = [str(w) for w in report.get("warnings") or ()]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>tradingd backtest report</title>",
        f"<style>{CSS}</style></head><body><h1>Backtest report</h1>",
        "<table class='facts'>" + "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in facts),
        "</table>",
        (
            f"<h2>Warnings ({len(warnings)})</h2><ul class='warnings'>"
            + "".join(f"<li>{esc(w)}</li>" for w in warnings)
            + "</ul>"
            if warnings
            else ""
        ),
        "<h2>Statistics</h2>",
        f"<table><tr><th>strategy</th>{head}</tr>{body}</table>",
        "<p class='note'>Sharpe and Sortino: annualized, from the equity changes every "
        f"{esc(str(report.get('equity_interval_s', 'n/a')))} s (0 for a flat curve, n/a when undefined);"
        " shown from one day of equity on"
        + (f" (this run: {esc(duration(short))} of equity; report.json has the values). " if short else ". ")
        + "A round trip runs from flat to flat in one instrument (or through zero); its PnL includes "
        "its fees; the win rate counts those above 0. Fill ratio: orders with a fill (any part of"
        " it) / orders sent; an order filled in parts makes several fills. Max drawdown: from the"
        " running peak of the equity sampled every chart step and at every fill.</p>",
        "<h2>Equity and drawdown</h2>",
        img_tag(overview, "equity and drawdown of every strategy"),
    ]
    for name, s in strategies.items():
        parts.append(f"<h2>{esc(name)}</h2>")
        held = s.get("positions") or {}
        if held:
            parts.append(
                "<p>Held at the end: "
                + ", ".join(
                    f"{esc(instrument_text(k, names))} {esc(qty_text(str(v)))}"
                    for k, v in sorted(held.items())
                )
                + "</p>"
            )
        parts.append(img_tag(figures[name], f"{name}: equity, drawdown, positions, fills"))
        fills = (s.get("series") or {}).get("fills") or []
        if fills:
            shown = fills[-_FILLS_LISTED:]
            # The orders' tags (the strategy's note on why), a column only when one was written;
            # a report from before tags (7-element rows) has none.
            tagged = any(_tag(f) for f in shown)
            parts.append(
                f"<p class='note'>The last {len(shown)} of {s.get('fills', len(fills)):,} fills:</p><table>"
                "<tr><th>time (UTC)</th><th>instrument</th><th>side</th><th>price</th><th>size</th>"
                "<th>fee $</th><th>liquidity</th>"
                + ("<th>tag</th>" if tagged else "")
                + "</tr>"
                + "".join(
                    f"<tr><td>{datetimes([f[0]])[0].isoformat(timespec='milliseconds')}</td>"
                    f"<td>{esc(instrument_text(f[1], names))}</td><td>{esc(f[2])}</td><td>{f[3]:g}</td>"
                    f"<td>{f[4]:g}</td><td>{'n/a' if f[5] is None else format(f[5], ',.4f')}</td>"
                    f"<td>{esc(f[6])}</td>"
                    + (f"<td class='tag'>{esc(_tag(f))}</td>" if tagged else "")
                    + "</tr>"
                    for f in shown
                )
                + "</table>"
            )
    progress(f"{stem}.html")
    parts.append("</body></html>\n")
    page = out / f"{stem}.html"
    page.write_text("".join(parts), encoding="utf-8")
    written.insert(0, page)
    return written


def _load(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from exc
    except orjson.JSONDecodeError as exc:
        raise DataError(f"{path}: not a JSON report ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("strategies"), dict):
        raise DataError(f"{path}: not a tradingd backtest report (no `strategies`)")
    for name, s in data["strategies"].items():
        series = s.get("series") if isinstance(s, dict) else None
        if not isinstance(s, dict) or not isinstance(series, dict | None):
            raise DataError(f"{path}: not a tradingd backtest report (strategy {name!r} is not one)")
        if series is not None and len(series.get("ts") or ()) != len(series.get("equity") or ()):
            raise DataError(f"{path}: not a tradingd backtest report ({name!r}: series of unequal lengths)")
    return data


def render_run(path: str | Path, *, progress: Progress = _silent) -> list[Path]:
    """Draw the HTML/PNG report again from a saved JSON report: `path` is the JSON file, or a
    run directory holding `report.json`. Returns the files written (beside the JSON, named after
    it: never over it)."""
    p = Path(path)
    if p.is_dir():
        p = p / "report.json"
        if not p.exists():
            raise DataError(f"{path}: no report.json in this directory (run `tradingd backtest --report`)")
    elif not p.exists():
        raise DataError(f"{path}: no such file (give a run directory holding report.json, or a JSON report)")
    if p.suffix.lower() in (".html", ".htm", ".png"):
        raise DataError(f"{path}: this is an output of the report; give the JSON report (or its directory)")
    report = _load(p)
    return render_html(report, p.parent, stem=p.stem, progress=progress)


def write_run_reports(
    path: str | Path, result: BacktestResult, *, progress: Progress = _silent
) -> list[Path]:
    """After a backtest: the JSON report at `path`, then its HTML and PNG files beside it."""
    from ..backtest.report import write_report

    progress(f"{Path(path).name}")
    write_report(path, result)
    return render_run(path, progress=progress)
