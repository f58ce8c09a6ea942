"""The backtest summary a person reads (issue 16): it fits the terminal (80 columns, narrower,
wider, a pipe) without cutting a number, says what its counts count, gives annualised ratios
only where they mean something, and shows the run's warnings; the JSON keeps exact values and
what the ratios were computed from."""

from __future__ import annotations

import io
import re
from decimal import Decimal
from typing import Any

import attrs
import pytest

from tests.support.results import backtest_result, strategy_result
from tradingd.engine.backtest.kernel import BacktestResult, StrategyResult
from tradingd.engine.backtest.report import print_summary, report_dict

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_HOUR_NS = 3_600 * 10**9
_START = 1_795_478_400 * 10**9


class _Tty(io.StringIO):
    """What rich sees as a terminal (its width then comes from COLUMNS, as a test can set it)."""

    def isatty(self) -> bool:
        return True


def _strategy(k: int, hours: float) -> StrategyResult:
    """Large numbers, every sign, so that a cut one shows."""
    steps = int(hours * 60)
    curve = tuple((_START + i * 60 * 10**9, -12.5 * i) for i in range(steps + 1))
    return strategy_result(
        orders=1_234_567 + k,
        fills=2_345_678 + k,
        rejected=34_567 + k,
        errors=4_321 + k,
        fees=Decimal("548061.237") + k,
        realized_pnl=Decimal("-1755123.254") - k,
        unrealized_pnl=Decimal("-1581876.87") - k,
        net_pnl=Decimal("-3885061.361") - k,
        max_drawdown=3_393_804.432 + k,
        sharpe=-383.378311 - k,
        turnover=Decimal("600159123.4") + k,
        positions={"deribit:BTC-PERPETUAL": f"-46359{k}.0"},
        equity_curve=curve,
        sortino=-356.203043 - k,
        round_trips=72_345 + k,
        win_rate=0.0139,
        avg_holding_s=220.4,
        filled_orders=1_000_001 + k,
        fill_ratio=(1_000_001 + k) / (1_234_567 + k),
    )


def _result(names: list[str], hours: float = 2.0, **changes: Any) -> BacktestResult:
    """A run of the strategies `names` (each `_strategy`'s but for `changes`) over `hours`."""
    return backtest_result(
        {name: attrs.evolve(_strategy(k, hours), **changes) for k, name in enumerate(names)},
        events=333_838,
        frames=326_857,
        duration_s=7.05,
        start_ns=_START,
        end_ns=_START + int(hours * _HOUR_NS),
    )


def _numbers(s: StrategyResult) -> list[str]:
    """Every figure of a strategy as a person reads it, written out by hand from its values."""
    return [
        f"{s.orders:,}",
        f"{s.fills:,}",
        f"{s.rejected:,}",
        f"{s.errors:,}",
        f"{s.filled_orders:,}",
        f"{s.fees:,.2f}",
        f"{s.realized_pnl:,.2f}",
        f"{s.unrealized_pnl:,.2f}",
        f"{s.net_pnl:,.2f}",
        f"{s.max_drawdown:,.2f}",
        f"{s.round_trips:,}",
        f"{s.turnover:,.0f}",
    ]


def _whole(number: str, text: str) -> bool:
    """`number` appears in `text` as a whole number (not as a part of a longer one)."""
    return re.search(r"(?<![\d.,])" + re.escape(number) + r"(?![\d,]|\.\d)", text) is not None


NAMES = ["gamma_btc", "momentum_eth", "a_strategy_with_a_long_name"]


@pytest.mark.parametrize("width", [80, 60, 200])
@pytest.mark.parametrize("tty", [True, False], ids=["terminal", "pipe"])
def test_every_number_is_printed_whole_at_any_width(
    width: int, tty: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    result = _result(NAMES)
    out = _Tty() if tty else io.StringIO()
    print_summary(result, out)
    text = _ANSI.sub("", out.getvalue())
    assert "…" not in text
    for line in text.splitlines():
        assert len(line) <= width, line
    for name, s in result.strategies.items():
        assert name in text
        for number in _numbers(s):
            assert _whole(number, text), (number, text)


def test_a_pipe_without_columns_reads_at_80(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    out = io.StringIO()
    print_summary(_result(NAMES[:2]), out)
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "\x1b[" not in text  # no colours in a pipe


def test_a_very_narrow_terminal_gets_one_value_a_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "30")
    result = _result(NAMES[:1])
    out = io.StringIO()
    print_summary(result, out)
    text = out.getvalue()
    assert "…" not in text
    for number in _numbers(result.strategies[NAMES[0]]):
        assert _whole(number, text)


def test_counts_say_what_they_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """More fills than orders is no bug: a partly filled order makes several fills. The summary
    says so, and shows the orders filled (with the fill ratio) next to the fills."""
    monkeypatch.setenv("COLUMNS", "80")
    out = io.StringIO()
    print_summary(_result(["s"]), out)
    text = out.getvalue()
    assert re.search(r"orders sent +1,234,567", text)
    assert re.search(r"orders filled \(any part\) +1,000,001 \(81%\)", text)
    assert re.search(r"fills \(each partial counts\) +2,345,678", text)


@pytest.mark.parametrize(
    ("filled", "sent", "shown"),
    [
        (438, 440, "99.5%"),
        (2, 2_000_000, "<0.1%"),
        (1_999_999, 2_000_000, ">99.9%"),
        (1, 2, "50%"),
        (5, 5, "100%"),
    ],
)
def test_a_share_reads_100_or_0_percent_only_when_exact(
    monkeypatch: pytest.MonkeyPatch, filled: int, sent: int, shown: str
) -> None:
    """438 of 440 orders filled printed "100%" (rounded to the percent): a person reads all."""
    monkeypatch.setenv("COLUMNS", "80")
    out = io.StringIO()
    print_summary(_result(["s"], orders=sent, filled_orders=filled, fill_ratio=filled / sent), out)
    assert re.search(rf"orders filled \(any part\) +{filled:,} \({re.escape(shown)}\)", out.getvalue())


def test_annualised_ratios_from_under_a_day_are_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two hours of one-minute changes annualised give "-383": n/a for people, with the reason;
    the JSON keeps the value and what it comes from."""
    monkeypatch.setenv("COLUMNS", "80")
    short = _result(["s"], hours=2.0)
    out = io.StringIO()
    print_summary(short, out)
    text = out.getvalue()
    assert "-383" not in text and "-356" not in text
    assert re.search(r"sharpe \(annualised\) +n/a \(< 1 day\)", text)
    assert re.search(r"sortino \(annualised\) +n/a \(< 1 day\)", text)
    assert "n/a under 1 day of equity (this run: 2 h 00 min" in " ".join(text.split())
    s = report_dict(short)["strategies"]["s"]
    assert s["sharpe"] == -383.378311 and s["sortino"] == -356.203043
    assert s["ratios_from"] == {"interval_s": 60.0, "changes": 120, "span_s": 7200.0, "annualised": True}

    # Two days: shown, rounded for people.
    long = _result(["s"], hours=48.0)
    out = io.StringIO()
    print_summary(long, out)
    text = out.getvalue()
    assert re.search(r"sharpe \(annualised\) +-383\.38", text)
    assert re.search(r"sortino \(annualised\) +-356\.20", text)
    assert "under 1 day" not in text
    assert report_dict(long)["strategies"]["s"]["ratios_from"]["span_s"] == 48 * 3600.0


def test_warnings_are_printed_and_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    base = _result(["s"])
    lines = (
        "strategy s: option_size = 0 never trades",
        "venue derive: no data in the files (177,000 frames dropped)",
    )
    warned = attrs.evolve(base, warnings=lines)
    out = io.StringIO()
    print_summary(warned, out)
    text = out.getvalue()
    assert "warnings (2):" in text
    for line in lines:
        assert f"  - {line}" in text
    assert report_dict(warned)["warnings"] == list(lines)
    # None: no section in the summary, and an empty list in the report.
    out = io.StringIO()
    print_summary(base, out)
    assert "warnings" not in out.getvalue() and report_dict(base)["warnings"] == []


def test_positions_held_are_one_a_line_with_every_digit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    result = _result(["s"], positions={"deribit:BTC-PERPETUAL": "-463590.0", "deribit:X": "1E+3"})
    out = io.StringIO()
    print_summary(result, out)
    lines = out.getvalue().splitlines()
    at = lines.index("s holds at the end:")
    assert lines[at + 1 : at + 3] == ["  BTC-PERPETUAL -463,590.0", "  X 1,000"]


def test_the_lines_after_a_strategys_holdings_still_name_the_strategy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The holdings are listed by instrument, then the mailbox line names the strategy again (not
    the last instrument it held)."""
    monkeypatch.setenv("COLUMNS", "200")
    result = _result(
        ["gamma_btc"],
        positions={"deribit:BTC-PERPETUAL": "1.0", "deribit:ETH-PERPETUAL": "-2.0"},
        conflated=5,
    )
    out = io.StringIO()
    print_summary(result, out)
    (line,) = [line for line in out.getvalue().splitlines() if "mailbox" in line]
    assert line.startswith("gamma_btc mailbox: 5 tickers conflated"), line
