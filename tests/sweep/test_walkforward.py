"""Walk-forward windows (`plan`) and the chained out-of-sample curve (`stitch`)."""

from __future__ import annotations

from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradingd.engine.sweep.model import TrialResult, Window
from tradingd.engine.sweep.spec import WalkForwardSpec
from tradingd.engine.sweep.stats import curve_stats
from tradingd.engine.sweep.walkforward import missing_folds, out_of_sample_stats, plan, stitch

MIN = 60 * 1_000_000_000
T0 = 1_795_000_000 * 1_000_000_000  # a data start (2026-11-18), whole seconds


def _spec(mode: Literal["rolling", "anchored"] = "rolling", windows: int = 3) -> WalkForwardSpec:
    return WalkForwardSpec(windows=windows, train_s=40 * 60, test_s=20 * 60, mode=mode)


def test_rolling_windows_slide_by_one_test_window() -> None:
    folds = plan((T0, T0 + 120 * MIN), _spec("rolling"), Window())
    assert [(f.index, f.train, f.test) for f in folds] == [
        (0, Window(T0, T0 + 40 * MIN), Window(T0 + 40 * MIN, T0 + 60 * MIN)),
        (1, Window(T0 + 20 * MIN, T0 + 60 * MIN), Window(T0 + 60 * MIN, T0 + 80 * MIN)),
        (2, Window(T0 + 40 * MIN, T0 + 80 * MIN), Window(T0 + 80 * MIN, T0 + 100 * MIN)),
    ]


def test_anchored_windows_start_at_the_data_start_and_grow() -> None:
    folds = plan((T0, T0 + 120 * MIN), _spec("anchored"), Window())
    assert [f.train for f in folds] == [
        Window(T0, T0 + 40 * MIN),
        Window(T0, T0 + 60 * MIN),
        Window(T0, T0 + 80 * MIN),
    ]
    assert [f.test for f in folds] == [
        Window(T0 + 40 * MIN, T0 + 60 * MIN),
        Window(T0 + 60 * MIN, T0 + 80 * MIN),
        Window(T0 + 80 * MIN, T0 + 100 * MIN),
    ]


def test_the_sweeps_window_start_moves_the_folds() -> None:
    folds = plan((T0, T0 + 120 * MIN), _spec(), Window(start_ns=T0 + 10 * MIN))
    assert folds[0].train == Window(T0 + 10 * MIN, T0 + 50 * MIN)
    assert folds[-1].test.end_ns == T0 + 110 * MIN


def test_a_window_starting_before_the_data_starts_at_the_data() -> None:
    folds = plan((T0, T0 + 120 * MIN), _spec(), Window(start_ns=T0 - 30 * MIN))
    assert folds[0].train.start_ns == T0


def test_exactly_enough_data_fits() -> None:
    folds = plan((T0, T0 + 100 * MIN), _spec(), Window())
    assert folds[-1].test.end_ns == T0 + 100 * MIN


def test_too_little_data_is_refused_with_the_figures() -> None:
    with pytest.raises(ValueError) as info:
        plan((T0, T0 + 95 * MIN), _spec(), Window())
    assert str(info.value) == (
        "walk-forward needs 100 min of data (40 min train + 3 x 20 min test); the data has 95 min"
    )


def test_a_window_end_too_early_is_refused_naming_the_window() -> None:
    message = (
        r"^walk-forward needs 120 min of data \(60 min train \+ 2 x 30 min test\);"
        r" the data in the sweep's window has 90 min$"
    )
    with pytest.raises(ValueError, match=message):
        plan(
            (T0, T0 + 240 * MIN),
            WalkForwardSpec(windows=2, train_s=3600, test_s=1800),
            Window(end_ns=T0 + 90 * MIN + 1),
        )


@pytest.mark.parametrize(
    ("have_ns", "spec", "expected"),
    [
        # A data span is rarely whole minutes: in the file's unit too, not "1 h 59 min".
        (
            119 * MIN + 30 * 10**9,
            WalkForwardSpec(windows=5, train_s=2400, test_s=1200),
            "140 min of data (40 min train + 5 x 20 min test); the data has 119.5 min",
        ),
        # Just short of enough: cut, never rounded up to what is needed.
        (
            140 * MIN - 1,
            WalkForwardSpec(windows=5, train_s=2400, test_s=1200),
            "140 min of data (40 min train + 5 x 20 min test); the data has 139.99 min",
        ),
        (
            2 * 86_400 * 10**9 + 3 * MIN,
            WalkForwardSpec(windows=2, train_s=2 * 86_400, test_s=86_400),
            "4 d of data (2 d train + 2 x 1 d test); the data has 2 d",
        ),
        (
            MIN,
            WalkForwardSpec(windows=1, train_s=90, test_s=30.5),
            "120,500 ms of data (90,000 ms train + 1 x 30,500 ms test); the data has 60,000 ms",
        ),
    ],
    ids=["minutes", "just-short", "days", "below-a-second"],
)
def test_a_refusal_says_every_duration_in_one_unit(
    have_ns: int, spec: WalkForwardSpec, expected: str
) -> None:
    with pytest.raises(ValueError) as info:
        plan((T0, T0 + have_ns), spec, Window())
    assert str(info.value) == "walk-forward needs " + expected


def test_a_window_after_the_data_is_refused() -> None:
    with pytest.raises(ValueError, match=r"has nothing$"):
        plan((T0, T0 + 120 * MIN), _spec(), Window(start_ns=T0 + 200 * MIN))


@pytest.mark.parametrize(("windows", "train_s", "test_s"), [(0, 60.0, 60.0), (2, 0.0, 60.0), (2, 60.0, -1.0)])
def test_a_spec_without_windows_is_refused(windows: int, train_s: float, test_s: float) -> None:
    with pytest.raises(ValueError, match="walk-forward"):
        plan((T0, T0 + 10**15), WalkForwardSpec(windows=windows, train_s=train_s, test_s=test_s), Window())


@given(
    mode=st.sampled_from(["rolling", "anchored"]),
    windows=st.integers(1, 8),
    train_s=st.floats(0.5, 10_000, allow_nan=False),
    test_s=st.floats(0.5, 10_000, allow_nan=False),
    start=st.integers(0, 2**62),
    length=st.integers(0, 10**14),
    offset=st.integers(-(10**13), 10**13) | st.none(),
    cut=st.integers(0, 10**14) | st.none(),
)
def test_planned_windows_are_contiguous_ordered_and_within_the_span(
    mode: Literal["rolling", "anchored"],
    windows: int,
    train_s: float,
    test_s: float,
    start: int,
    length: int,
    offset: int | None,
    cut: int | None,
) -> None:
    span = (start, start + length)
    window = Window(None if offset is None else start + offset, None if cut is None else start + cut)
    spec = WalkForwardSpec(windows=windows, train_s=train_s, test_s=test_s, mode=mode)
    lo = span[0] if window.start_ns is None else max(span[0], window.start_ns)
    hi = span[1] if window.end_ns is None else min(span[1], window.end_ns)
    if round(train_s * 1e9) + windows * round(test_s * 1e9) > hi - lo:
        with pytest.raises(ValueError, match="^walk-forward needs "):
            plan(span, spec, window)
        return
    folds = plan(span, spec, window)
    assert len(folds) == windows
    lo = span[0] if window.start_ns is None else max(span[0], window.start_ns)
    hi = span[1] if window.end_ns is None else min(span[1], window.end_ns)
    for i, f in enumerate(folds):
        assert f.index == i
        for w in (f.train, f.test):
            assert isinstance(w.start_ns, int) and isinstance(w.end_ns, int)
            assert lo <= w.start_ns < w.end_ns <= hi
        assert f.train.end_ns == f.test.start_ns  # train right before its test
        assert f.test.end_ns is not None and f.test.start_ns is not None
        assert f.test.end_ns - f.test.start_ns == round(test_s * 1e9)
        if i:
            assert f.test.start_ns == folds[i - 1].test.end_ns  # contiguous, no overlap
        if mode == "anchored":
            assert f.train.start_ns == lo
        else:
            assert f.train.end_ns is not None and f.train.start_ns is not None
            assert f.train.end_ns - f.train.start_ns == round(train_s * 1e9)


def _test(
    fold: int,
    equity: list[tuple[int, float]],
    *,
    status: Literal["ok", "failed"] = "ok",
    fees: float = 0.1,
) -> TrialResult:
    return TrialResult(
        key=f"k{fold}",
        number=100 + fold,
        params={"s": {"p": 1}},
        window=Window(),
        role="test",
        fold=fold,
        status=status,
        error=None if status == "ok" else "boom",
        equity=tuple(equity),
        stats={"total": {"net_pnl": equity[-1][1] if equity else 0.0, "fills": 2, "fees": fees}},
    )


def test_stitch_chains_each_test_from_where_the_previous_ended() -> None:
    a = _test(0, [(10, 0.0), (11, 5.0), (12, 3.0)])
    b = _test(1, [(20, 0.0), (21, -1.0), (22, 2.0)])
    c = _test(2, [(30, 0.5), (31, 1.0)])
    # b's first point (0: the level carried over, at b's start) repeats a's last: dropped. c's
    # first is a change (0.5): kept.
    assert stitch([a, b, c]) == (
        (10, 0.0),
        (11, 5.0),
        (12, 3.0),
        (21, 2.0),
        (22, 5.0),
        (30, 5.5),
        (31, 6.0),
    )


def test_stitch_carries_the_level_over_a_fold_without_a_result() -> None:
    a = _test(0, [(10, 0.0), (12, 3.0)])
    failed = _test(1, [], status="failed")
    c = _test(3, [(30, 0.0), (31, 1.0)])
    empty = _test(4, [])
    tests = [a, failed, None, c, empty]
    # No point in the missing windows (times 13..30): the gap shows; nothing is invented.
    assert stitch(tests) == ((10, 0.0), (12, 3.0), (31, 4.0))
    assert missing_folds(tests) == (1, 2, 4)


def test_stitch_of_nothing_is_empty() -> None:
    assert stitch([]) == ()
    assert stitch([None, _test(0, [], status="failed")]) == ()


def test_out_of_sample_stats_sum_the_tests_and_measure_the_curve() -> None:
    a = _test(0, [(0, 0.0), (60 * 10**9, 5.0), (120 * 10**9, 3.0)])
    b = _test(2, [(200 * 10**9, 0.0), (260 * 10**9, 2.0)], fees=0.2)
    tests = [a, None, b]
    curve = stitch(tests)
    out = out_of_sample_stats(tests, curve, 60.0)
    measured = curve_stats(curve, 60.0)
    assert out["max_drawdown"] == measured["max_drawdown"] == 2.0
    assert out["sharpe"] == measured["sharpe"]
    assert out["net_pnl"] == 5.0  # the tests' exact sum (3 + 2), as the curve ends
    assert out["fills"] == 4 and isinstance(out["fills"], int)
    assert out["fees"] == 0.3  # summed as Decimal: not 0.1 + 0.2's float 0.30000000000000004
    assert out["folds"] == 2 and out["folds_missing"] == [1]


_curves = st.lists(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=0, max_size=6) | st.none(), max_size=5
)


@given(curves=_curves)
def test_stitch_keeps_each_tests_changes_and_ends_at_their_sum(curves: list[list[float] | None]) -> None:
    tests: list[TrialResult | None] = []
    for i, values in enumerate(curves):
        if values is None:
            tests.append(None)
            continue
        equity = [(i * 100 + j, v) for j, v in enumerate(values)]
        tests.append(_test(i, equity))
    out = stitch(tests)
    ran = [values for values in curves if values]
    assert len(out) == sum(len(v) - (i > 0 and v[0] == 0) for i, v in enumerate(ran))
    assert [t for t, _ in out] == sorted(t for t, _ in out)
    at = 0
    level = 0.0
    for i, values in enumerate(ran):
        # A later test's first point at 0 (the level carried over) is not repeated.
        if i and values[0] == 0:
            values = values[1:]
        piece = out[at : at + len(values)]
        # The test's own curve, raised by where the chain was: every change kept.
        assert [v for _, v in piece] == pytest.approx([level + v for v in values], rel=1e-9, abs=1e-6)
        level = piece[-1][1] if piece else level
        at += len(values)
    if ran:  # the out-of-sample PnL: each test's own, added up
        assert out[-1][1] == pytest.approx(sum(v[-1] for v in ran), rel=1e-9, abs=1e-6)
    assert missing_folds(tests) == tuple(i for i, v in enumerate(curves) if not v)


def test_stitched_ratios_count_no_extra_interval_at_a_fold_boundary() -> None:
    """Each test's curve starts at 0 at its window's start, a few ms after the previous test's
    last point (its end mark): chained, that start repeats the level, and as a sample it would be
    one more zero-change interval in the Sharpe and Sortino."""
    s = 10**9
    tests = []
    for fold, values in enumerate(([0.0, 2.0, 1.0, 4.0], [0.0, -1.0, 3.0], [0.0, 1.0, -2.0, 2.0])):
        start = T0 + fold * 240 * s
        times = [start + j * 60 * s for j in range(len(values) - 1)] + [start + 240 * s - 47_000_000]
        tests.append(_test(fold, list(zip(times, values, strict=True))))
    curve = stitch(tests)
    chained = [0.0, 2.0, 1.0, 4.0, 3.0, 7.0, 8.0, 5.0, 9.0]  # by hand, each start once
    assert [v for _, v in curve] == chained
    assert [t for t, _ in curve] == sorted({t for t, _ in curve})
    measured = out_of_sample_stats(tests, curve, 60.0)
    honest = curve_stats([(i, v) for i, v in enumerate(chained)], 60.0)
    assert measured["sharpe"] == honest["sharpe"] and measured["sharpe"] is not None
    assert measured["sortino"] == honest["sortino"] and measured["sortino"] is not None
    assert measured["max_drawdown"] == honest["max_drawdown"] == 3.0
