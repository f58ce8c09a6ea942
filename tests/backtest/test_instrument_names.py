"""Polymarket tokens are 77-digit ids: a backtest's summary and charts name them as the venue's
catalog does (the market's slug and the outcome, the id shortened after it), while the JSON
report keeps every id exactly as the venue wrote it (the report contract: the README's "Reports"
section) and lists the names beside them, under `instrument_names`, which the HTML report draws
from."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest
import trio

from tests.support.backtests import BuyEachToken
from tests.support.results import backtest_result, strategy_result
from tradingd.cli.recorded import recorded_catalogs
from tradingd.connectors.polymarket import PLUGIN as POLYMARKET
from tradingd.engine.backtest.kernel import BacktestKernel, BacktestResult, DataSource
from tradingd.engine.backtest.report import print_summary, report_dict
from tradingd.engine.model.words import instrument_text, line_text
from tradingd.engine.reports import html
from tradingd.engine.reports.html import render_html
from tradingd.simulators.polymarket import SIMULATOR as POLYMARKET_SIM


@attrs.frozen
class _Run:
    result: BacktestResult
    catalog: Any
    report: dict[str, Any]  # report.json as read back


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> _Run:
    """A generated Polymarket sample, every token bought and most held: its result and report."""
    path = tmp_path_factory.mktemp("pm") / "pm.rec.zst"
    POLYMARKET_SIM.generate_sample(path, {"hours": 0.2, "seed": 3})
    (catalog,) = recorded_catalogs([("polymarket", path)], {"polymarket": POLYMARKET}).values()
    kernel = BacktestKernel(
        {"polymarket": POLYMARKET},
        [DataSource("polymarket", path)],
        [BuyEachToken()],
        catalogs={"polymarket": catalog},
    )
    result = trio.run(kernel.run)
    return _Run(result, catalog, orjson.loads(orjson.dumps(report_dict(result))))


def test_the_summary_and_charts_name_polymarket_tokens_and_the_report_keeps_their_ids(
    run: _Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, catalog, report = run.result, run.catalog, run.report
    s = result.strategies["s"]
    assert s.positions and s.series is not None and s.series.fills
    expected = {}
    for key in {*s.positions, *(f.instrument for f in s.series.fills)}:
        token = key.removeprefix("polymarket:")
        market = catalog.find_by_token_id(token)
        assert market is not None and len(token) == 77
        expected[key] = f"{market.slug} / {market.outcome_of(token)}"
    assert dict(result.instrument_names) == expected

    # The JSON report: every id as it was, the names beside them.
    entry = report["strategies"]["s"]
    assert set(entry["positions"]) == set(s.positions)
    assert {row[1] for row in entry["series"]["fills"]} == {f.instrument for f in s.series.fills}
    assert report["instrument_names"] == expected

    # The summary: each holding by its name, the id shortened after it, never the 77 digits.
    monkeypatch.setenv("COLUMNS", "200")
    out = io.StringIO()
    print_summary(result, out)
    text = out.getvalue()
    for key in s.positions:
        token = key.removeprefix("polymarket:")
        assert f"  {expected[key]} ({token[:4]}...{token[-4:]}) " in text, text
        assert token not in text

    # The HTML page (drawn from the JSON alone): held positions and fills by name.
    render_html(report, tmp_path / "html")
    page = (tmp_path / "html" / "report.html").read_text()
    for key, name in expected.items():
        token = key.removeprefix("polymarket:")
        assert f"{name} ({token[:4]}...{token[-4:]})" in page
        assert token not in page


def test_a_name_or_id_that_does_not_print_cannot_steer_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """A catalog's slug or outcome, or an id, with an escape sequence or a line break: shown with
    `?` for each character that does not print, one holding a line, nothing for the terminal."""
    token = "7" * 77
    names = {f"polymarket:{token}": "will-it\x1b[2J-happen\n / Ye\ts", "deribit:BTC\x1b]0;x\x07": "x"}
    assert instrument_text(f"polymarket:{token}", names) == "will-it?[2J-happen? / Ye?s (7777...7777)"
    assert instrument_text("deribit:ETH\r\n-PERP", names) == "ETH??-PERP"
    result = backtest_result(
        {
            "s": strategy_result(
                orders=1,
                fills=1,
                positions={f"polymarket:{token}": "5", "deribit:ETH\r\n-PERP": "1"},
                equity_curve=((0, 0.0), (10**9, 0.0)),
            )
        },
        events=1,
        frames=1,
        duration_s=1.0,
        start_ns=0,
        end_ns=10**9,
        instrument_names=names,
    )
    monkeypatch.setenv("COLUMNS", "200")
    out = io.StringIO()
    print_summary(result, out)
    text = out.getvalue()
    assert "\x1b" not in text and "\r" not in text and "\t" not in text, repr(text)
    assert "  will-it?[2J-happen? / Ye?s (7777...7777) 5\n" in text, text
    assert "  ETH??-PERP 1\n" in text, text


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        # Kept as written: other spaces become " ", joiners, marks and soft hyphens stay.
        ("Trump\xa0wins", "Trump wins"),  # no-break space
        ("100\u202fk\u3000yen", "100 k yen"),  # narrow no-break, ideographic
        ("\U0001f3f3\ufe0f\u200d\U0001f308", "\U0001f3f3\ufe0f\u200d\U0001f308"),  # the ZWJ of an emoji
        ("\u05db\u05df\u200f / Yes", "\u05db\u05df\u200f / Yes"),  # a right-to-left mark
        ("re\u00adelected", "re\u00adelected"),  # soft hyphen
        ("e\u0301lu", "e\u0301lu"),  # a combining mark
        # Shown as ?: what steers a terminal or breaks the line.
        ("a\x1b[2Jb", "a?[2Jb"),  # ESC
        ("a\x9b2Jb", "a?2Jb"),  # C1 CSI
        ("a\nb\r\tc", "a?b??c"),
        ("a\u2028b\u2029c\x85d", "a?b?c?d"),  # line, paragraph separators; NEL
        ("price \u202e01\u202c, \u2066x\u2069", "price ?01?, ?x?"),  # bidi overrides, isolates
    ],
)
def test_venue_text_keeps_its_spaces_joiners_and_marks_and_loses_what_steers_a_terminal(
    written: str, shown: str
) -> None:
    """`line_text`, which the summary, the page and the warnings show a venue's text through,
    replaces only what can steer a terminal or break the line: a market titled with a no-break
    space, an emoji joined by U+200D, a Hebrew outcome ending in a right-to-left mark reads as
    the venue wrote it."""
    assert line_text(written) == shown
    assert instrument_text("polymarket:1", {"polymarket:1": written}) == f"{shown} (1)"
    assert instrument_text(f"polymarket:{written}", {}) == shown


class _Kept:
    """The charts' `subplots`, keeping each figure drawn (to read its legends and titles)."""

    def __init__(self, plt: Any) -> None:
        self.plt = plt
        self.figures: list[Any] = []

    def subplots(self, *args: Any, **kw: Any) -> tuple[Any, Any]:
        fig, axes = self.plt.subplots(*args, **kw)
        self.figures.append(fig)
        return fig, axes


def _drawn(report: dict[str, Any], out: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[str]]:
    """The strategy figure's panel titles and legend labels, as `render_html` gave them to matplotlib."""
    kept = _Kept(html.pyplot())
    monkeypatch.setattr(html, "pyplot", lambda: kept)
    render_html(report, out)
    assert (out / "report.html").is_file()
    _, figure = kept.figures  # the overview, the strategy's
    titles = [ax.get_title(loc="left") for ax in figure.axes]
    labels = [t.get_text() for ax in figure.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    return titles, labels


def test_the_charts_legends_and_titles_name_the_instruments(
    run: _Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The positions panel's legend and each price panel's title call an instrument by its name
    (the id shortened after it), never by its 77 digits."""
    names = run.report["instrument_names"]
    shown = {instrument_text(key, names) for key in names}
    titles, labels = _drawn(run.report, tmp_path, monkeypatch)
    held = [
        label.removesuffix(" (right axis)") for label in labels if label != "mark" and " fills (" not in label
    ]
    priced = [t.removesuffix(": mark and fills") for t in titles if t.endswith(": mark and fills")]
    assert held and priced, (titles, labels)
    assert set(held) <= shown and set(priced) <= shown, (titles, labels)
    assert not [t for t in (*titles, *labels) if re.search(r"\d{20}", t)]


def test_a_name_that_reads_as_mathtext_is_drawn_as_written(
    run: _Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Catalog names go into matplotlib text, where `$...$` is mathtext: `will-$\\foo$-happen`
    raised ValueError (no page); escaped, each `$` is drawn as a dollar and the page is written."""
    report = dict(run.report)
    odd = {key: f"will-$\\foo$-happen-{i} / cost $5" for i, key in enumerate(report["instrument_names"])}
    report["instrument_names"] = odd
    report["strategies"] = {"s $\\bar$": report["strategies"]["s"]}  # a strategy's name too
    titles, labels = _drawn(report, tmp_path, monkeypatch)
    assert titles[0].startswith("s \\$\\bar\\$: equity"), titles
    drawn = [t for t in (*titles, *labels) if "will-" in t]
    assert drawn and all("\\$" in t and "$\\foo" not in t.replace("\\$", "") for t in drawn), drawn
    page = (tmp_path / "report.html").read_text()
    assert "will-$\\foo$-happen-0 / cost $5" in page
