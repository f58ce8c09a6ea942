"""Parameter spaces: grid points (inclusive ranges without float drift, integer ranges, log
ranges), the combinations of several parameters in a stable order, draws, and what a space
refuses."""

from __future__ import annotations

import itertools
import math
import random
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradingd.engine.sweep.space import (
    CHECKED,
    combination,
    count,
    draw,
    grid,
    grid_points,
    grid_size,
    point,
    problems,
    produced,
    snap,
)
from tradingd.engine.sweep.spec import ParamSpace


def test_a_float_range_includes_high_on_a_step_and_does_not_drift() -> None:
    assert grid_points(ParamSpace("range", low=0.0, high=1.0, step=0.1)) == (
        0.0,
        0.1,
        0.2,
        0.3,
        0.4,
        0.5,
        0.6,
        0.7,
        0.8,
        0.9,
        1.0,
    )


def test_a_range_stops_before_high_when_high_is_off_the_step() -> None:
    assert grid_points(ParamSpace("range", low=0.1, high=0.6, step=0.2)) == (0.1, 0.3, 0.5)


def test_an_integer_range_gives_ints() -> None:
    points = grid_points(ParamSpace("range", low=120, high=600, step=240, integer=True))
    assert points == (120, 360, 600)
    assert all(type(p) is int for p in points)


def test_a_log_range_is_geometric_with_exact_ends() -> None:
    points = grid_points(ParamSpace("log_range", low=0.02, high=0.2, num=3))
    assert points[0] == 0.02
    assert points[-1] == 0.2
    assert points[1] == pytest.approx(math.sqrt(0.02 * 0.2), rel=1e-11)


def test_lists_keep_their_order() -> None:
    assert grid_points(ParamSpace("values", values=(3, 1, 2))) == (3, 1, 2)
    assert grid_points(ParamSpace("choices", values=("call", "put"))) == ("call", "put")


# Decimal-exact steps of the form k * 10^-e, as people write them in a file.
_decimals = st.builds(lambda k, e: float(Decimal(k).scaleb(-e)), st.integers(-5000, 5000), st.integers(0, 4))


@given(
    low=_decimals, steps=st.integers(1, 50), step=_decimals.filter(lambda s: s > 0), extra=st.integers(0, 3)
)
def test_range_points_are_the_decimal_steps_from_low_to_high(
    low: float, steps: int, step: float, extra: int
) -> None:
    # `high` on a step (extra 0) is included; past it by less than a step, it is not reached.
    high = float(Decimal(str(low)) + steps * Decimal(str(step)))
    off = float(Decimal(str(step)) * Decimal(extra) / 4) if extra else 0.0
    points = grid_points(ParamSpace("range", low=low, high=high + off, step=step))
    expected = tuple(float(Decimal(str(low)) + i * Decimal(str(step))) for i in range(steps + 1))
    assert points == expected
    assert points[-1] == high
    assert all(a < b for a, b in itertools.pairwise(points))


@given(
    low=st.floats(1e-6, 1e3),
    ratio=st.floats(1.01, 1e6),
    num=st.integers(2, 30),
)
def test_log_range_points_have_even_log_spacing(low: float, ratio: float, num: int) -> None:
    high = low * ratio
    points = grid_points(ParamSpace("log_range", low=low, high=high, num=num))
    assert len(points) == num
    assert (points[0], points[-1]) == (low, high)
    # Point i is low * ratio^(i / (num - 1)), to the 12 significant digits kept.
    assert list(points) == [pytest.approx(low * ratio ** (i / (num - 1)), rel=1e-11) for i in range(num)]
    assert all(a < b for a, b in itertools.pairwise(points))


def test_the_grid_varies_the_last_parameter_fastest_in_the_order_given() -> None:
    params = {
        "a": {"x": ParamSpace("values", values=(1, 2)), "y": ParamSpace("values", values=("p", "q"))},
        "b": {"z": ParamSpace("values", values=(True, False))},
    }
    combos = list(grid(params))
    assert combos[:3] == [
        {"a": {"x": 1, "y": "p"}, "b": {"z": True}},
        {"a": {"x": 1, "y": "p"}, "b": {"z": False}},
        {"a": {"x": 1, "y": "q"}, "b": {"z": True}},
    ]
    assert len(combos) == grid_size(params) == 8
    assert [combination(params, i) for i in range(8)] == combos
    # Every combination once.
    assert len({repr(c) for c in combos}) == 8


@given(sizes=st.lists(st.integers(1, 4), min_size=1, max_size=4))
def test_combination_i_is_the_grids_ith(sizes: list[int]) -> None:
    params = {"s": {f"p{i}": ParamSpace("values", values=tuple(range(n))) for i, n in enumerate(sizes)}}
    combos = list(grid(params))
    assert len(combos) == math.prod(sizes) == grid_size(params)
    assert [combination(params, i) for i in range(len(combos))] == combos


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (ParamSpace("range", low=5, high=5, step=1), "low (5) must be below high (5)"),
        (ParamSpace("range", low=0.0, high=1.0, step=0.0), "step must be positive, got 0.0"),
        (ParamSpace("range", low=0.0, high=1.0, step=-0.5), "step must be positive, got -0.5"),
        (ParamSpace("log_range", low=0.0, high=1.0, num=3), "a log_range's low must be above 0, got 0.0"),
        (ParamSpace("log_range", low=0.1, high=1.0, num=1), "num must be at least 2 (low and high), got 1"),
        (ParamSpace("values"), "values is empty: list at least one value"),
        (ParamSpace("range", low=0.0, high=math.inf, step=1.0), "high: expected a finite number, got inf"),
        (ParamSpace("range", low=True, high=3, step=1), "low must be a number, got True"),
        (ParamSpace("values", values=(1.0, math.nan)), "expected a finite number, got nan"),
    ],
)
def test_a_wrong_space_is_refused_with_its_reason(space: ParamSpace, message: str) -> None:
    assert problems(space) == [message]
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)") + "$"):
        grid_points(space)


def test_a_grid_needs_a_step_and_a_num() -> None:
    with pytest.raises(ValueError, match="a grid needs the range's step"):
        grid_points(ParamSpace("range", low=0.0, high=1.0))
    with pytest.raises(ValueError, match="a grid needs the log_range's num"):
        grid_points(ParamSpace("log_range", low=0.1, high=1.0))


@given(seed=st.integers(0, 2**32))
def test_draws_stay_in_the_space_and_have_its_type(seed: int) -> None:
    rng = random.Random(seed)
    ints = ParamSpace("range", low=1, high=9, integer=True)
    floats = ParamSpace("range", low=0.5, high=1.5)
    logs = ParamSpace("log_range", low=0.01, high=10.0)
    stepped = ParamSpace("range", low=0.1, high=0.5, step=0.2)
    for _ in range(20):
        i = draw(ints, rng)
        assert type(i) is int and 1 <= i <= 9
        f = draw(floats, rng)
        assert type(f) is float and 0.5 <= f <= 1.5
        x = draw(logs, rng)
        assert 0.01 <= x <= 10.0
        assert draw(stepped, rng) in (0.1, 0.3, 0.5)


def test_draws_are_reproducible_from_the_seed() -> None:
    space = ParamSpace("log_range", low=0.01, high=10.0)
    first = [draw(space, random.Random(5)) for _ in range(3)]
    assert first == [draw(space, random.Random(5)) for _ in range(3)]


def test_snap_puts_a_samplers_value_on_the_grid() -> None:
    stepped = ParamSpace("range", low=0.1, high=0.7, step=0.2)
    assert snap(stepped, 0.30000000000000004) == 0.3
    assert snap(ParamSpace("range", low=1, high=9, step=2, integer=True), 5.0) == 5


def test_produced_stands_for_everything_a_space_gives() -> None:
    assert produced(ParamSpace("range", low=1, high=9, integer=True)) == (1, 9)
    # A float range's draws are floats even between integer bounds.
    assert produced(ParamSpace("range", low=1.0, high=9.0)) == (1.0, 9.0)
    assert produced(ParamSpace("values", values=(1, "a"))) == (1, "a")
    assert produced(ParamSpace("log_range", low=0.1, high=10.0, num=3)) == (0.1, 10.0, 1.0)


def test_a_huge_range_is_counted_not_made() -> None:
    # A typo's billion points: counted, one point made alone, checked at CHECKED points.
    huge = ParamSpace("range", low=0.0, high=1000.0, step=0.000001)
    assert count(huge) == 1_000_000_001
    assert point(huge, 123_456_789) == 123.456789
    params = {"s": {"x": huge, "y": ParamSpace("values", values=("a", "b"))}}
    assert grid_size(params) == 2_000_000_002
    assert combination(params, 2_000_000_001) == {"s": {"x": 1000.0, "y": "b"}}
    assert draw(huge, random.Random(1)) == point(huge, random.Random(1).randrange(count(huge)))
    checked = produced(huge)
    assert len(checked) == CHECKED
    assert (checked[0], checked[-1]) == (0.0, 1000.0)


@given(low=st.integers(-1000, 1000), step=st.integers(1, 50), n=st.integers(2, 40), off=st.integers(0, 49))
def test_count_and_point_agree_with_the_grid(low: int, step: int, n: int, off: int) -> None:
    high = low + (n - 1) * step + off % step
    for space in (
        ParamSpace("range", low=low, high=high, step=step, integer=True),
        ParamSpace("range", low=low / 100, high=high / 100, step=step / 100),
    ):
        points = grid_points(space)
        assert count(space) == len(points) == n
        assert [point(space, i) for i in range(n)] == list(points)
