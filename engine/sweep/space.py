"""Parameter spaces: the values of one parameter (`ParamSpace`) and every combination of a
sweep's parameters. A grid takes each space's grid points (`grid_points`); a random search draws
from each space (`draw`); Optuna's TPE gets each space as a distribution (`search`). Every value
a space can produce is a plain TOML scalar (int, float, str, bool), so that it can replace a
base config's `[strategies.params]` entry as if written there.

Float grids do not drift: a range's points are `low + i * step` computed in Decimal of the
numbers' shortest text (`0.1 + 2 * 0.1` is 0.3, not 0.30000000000000004), and a log range's
points are rounded to 12 significant digits, with `low` and `high` exact."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from .spec import ParamSpace

__all__ = [
    "CHECKED",
    "bounds",
    "check",
    "combination",
    "count",
    "draw",
    "finite",
    "grid",
    "grid_points",
    "grid_size",
    "point",
    "problems",
    "produced",
    "snap",
]

# Significant digits a log range's grid points keep: exact enough for any parameter, and free of
# the 17th-digit noise a power of a ratio leaves (0.06324555320336759 shows as 0.0632455532034).
_LOG_DIGITS = 12

# A stepped range of more points than this is checked at its ends and this many points between.
CHECKED = 1000


def _dec(x: float | int) -> Decimal:
    # `str` of a float is its shortest round-tripping text: the number as the file wrote it.
    return Decimal(str(x))


def _is_number(x: Any) -> bool:
    # A bool is an int to Python, never a number to a parameter space.
    return isinstance(x, int | float) and not isinstance(x, bool)


def problems(space: ParamSpace) -> list[str]:
    """What is wrong with `space`, one message each (none: it is usable). The loader names the
    key; `check` raises the first."""
    out: list[str] = []
    if space.kind in ("values", "choices"):
        if not space.values:
            out.append(f"{space.kind} is empty: list at least one value")
        for v in space.values:
            if not isinstance(v, int | float | str | bool):
                out.append(f"{space.kind} holds {v!r}: a value is a number, a string or true/false")
            elif isinstance(v, float) and not math.isfinite(v):
                out.append(f"expected a finite number, got {v!r}")
        # A value twice would run each of its trials twice (the same key: the same result).
        # Equal numbers are one value (2 and 2.0); true is not 1.
        seen: list[Any] = []
        for v in space.values:
            if any(v == w and isinstance(v, bool) == isinstance(w, bool) for w in seen):
                out.append(f"{space.kind} holds {v!r} twice: list each value once")
            else:
                seen.append(v)
        return out
    for name in ("low", "high", "step"):
        v = getattr(space, name)
        if v is None:
            continue
        if not _is_number(v):
            out.append(f"{name} must be a number, got {v!r}")
        elif not math.isfinite(v):
            out.append(f"{name}: expected a finite number, got {v!r}")
    if out:
        return out
    if space.low is None or space.high is None:
        return [f"a {space.kind} needs low and high"]
    if not space.low < space.high:
        out.append(f"low ({space.low}) must be below high ({space.high})")
    if space.kind == "range":
        if space.step is not None and not space.step > 0:
            out.append(f"step must be positive, got {space.step}")
        if space.integer and not all(
            isinstance(v, int) for v in (space.low, space.high, space.step) if v is not None
        ):
            out.append("an integer range has integer low, high and step")
        if space.num is not None:
            out.append("num is for a log_range (a range steps by `step`)")
    elif space.kind == "log_range":
        if not space.low > 0:
            out.append(f"a log_range's low must be above 0, got {space.low}")
        if space.num is not None and (isinstance(space.num, bool) or not isinstance(space.num, int)):
            out.append(f"num must be an integer, got {space.num!r}")
        elif space.num is not None and space.num < 2:
            out.append(f"num must be at least 2 (low and high), got {space.num}")
        if space.step is not None:
            out.append("step is for a range (a log_range takes `num` points)")
    else:
        out.append(f"unknown kind {space.kind!r}")
    return out


def check(space: ParamSpace) -> None:
    """ValueError naming the first problem of `space` (see `problems`)."""
    found = problems(space)
    if found:
        raise ValueError(found[0])


def bounds(space: ParamSpace) -> tuple[float, float]:
    """A range's or log range's `low` and `high` (ValueError for a list, which has none)."""
    if space.low is None or space.high is None:
        raise ValueError(f"a {space.kind} has no low and high")
    return space.low, space.high


def finite(space: ParamSpace) -> bool:
    """Whether a random search draws from a finite set (`grid_points`): lists, and ranges with a
    step. A log range and a range without a step are drawn from continuously."""
    return space.kind in ("values", "choices") or (space.kind == "range" and space.step is not None)


def count(space: ParamSpace) -> int:
    """How many grid points `space` has (counted, not made: a typo's billion-point range is
    refused by its size, not by running out of memory). ValueError as `grid_points`."""
    check(space)
    if space.kind in ("values", "choices"):
        return len(space.values)
    low, high = bounds(space)
    if space.kind == "range":
        if space.step is None:
            raise ValueError("a grid needs the range's step (a random or TPE search draws without one)")
        # Floor: exact in Decimal, so `high` is in when it falls on a step.
        return int((_dec(high) - _dec(low)) / _dec(space.step)) + 1
    if space.num is None:
        raise ValueError("a grid needs the log_range's num (how many points)")
    return len(grid_points(space)) if space.integer else space.num


def point(space: ParamSpace, index: int) -> Any:
    """Grid point number `index` of `space` (0 <= index < count), made alone."""
    if space.kind in ("values", "choices"):
        return space.values[index]
    low, _ = bounds(space)
    if space.kind == "range":
        assert space.step is not None  # `count` said so
        if space.integer:
            return int(low) + index * int(space.step)
        return float(_dec(low) + index * _dec(space.step))
    return grid_points(space)[index]


def grid_points(space: ParamSpace) -> tuple[Any, ...]:
    """A grid's values of one parameter, in order. A range: `low`, `low + step`, ... up to
    `high` inclusive when it falls on a step (ints for an integer range); a log range: `num`
    points evenly spaced on a log scale from `low` to `high`. ValueError for a space with no grid
    (a range without a step, a log range without `num`) or a wrong one."""
    if space.kind != "log_range":
        return tuple(point(space, i) for i in range(count(space)))
    check(space)
    if space.num is None:
        raise ValueError("a grid needs the log_range's num (how many points)")
    low, high = bounds(space)
    ratio = math.log(high / low)
    points = [low]
    for i in range(1, space.num - 1):
        x = low * math.exp(ratio * i / (space.num - 1))
        points.append(float(f"{x:.{_LOG_DIGITS}g}"))
    points.append(high)
    if space.integer:
        return tuple(dict.fromkeys(round(p) for p in points))
    return tuple(float(p) for p in points)


def _flat(params: Mapping[str, Mapping[str, ParamSpace]]) -> list[tuple[str, str, ParamSpace]]:
    return [(strategy, name, space) for strategy, spaces in params.items() for name, space in spaces.items()]


def grid_size(params: Mapping[str, Mapping[str, ParamSpace]]) -> int:
    """How many combinations `grid` yields (counted, not made)."""
    return math.prod(count(space) for _, _, space in _flat(params))


def combination(params: Mapping[str, Mapping[str, ParamSpace]], index: int) -> dict[str, dict[str, Any]]:
    """`grid`'s combination number `index` (0 <= index < grid_size), made without the others:
    the last parameter varies fastest."""
    flat = _flat(params)
    chosen: list[Any] = []
    for _, _, space in reversed(flat):
        index, at = divmod(index, count(space))
        chosen.append(point(space, at))
    chosen.reverse()
    return _nest(flat, chosen)


def _nest(flat: Sequence[tuple[str, str, ParamSpace]], chosen: Sequence[Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for (strategy, name, _), value in zip(flat, chosen, strict=True):
        out.setdefault(strategy, {})[name] = value
    return out


def grid(params: Mapping[str, Mapping[str, ParamSpace]]) -> Iterator[dict[str, dict[str, Any]]]:
    """Every combination of every strategy's parameters' grid points, in a stable order: the
    strategies and their parameters in the order given (the file's), the last parameter varying
    fastest (as nested loops written in that order). A fresh dict each."""
    flat = _flat(params)
    for chosen in itertools.product(*(grid_points(space) for _, _, space in flat)):
        yield _nest(flat, chosen)


def draw(space: ParamSpace, rng: random.Random) -> Any:
    """One value of `space`, drawn with `rng`: uniformly from a list or a stepped range's grid
    points, uniformly from a range without a step (an integer one: its ints), log-uniformly
    from a log range (an integer one: rounded)."""
    check(space)
    if finite(space):
        return point(space, rng.randrange(count(space)))
    low, high = bounds(space)
    if space.kind == "range":
        if space.integer:
            return rng.randint(int(low), int(high))
        return rng.uniform(low, high)
    x = math.exp(rng.uniform(math.log(low), math.log(high)))
    x = min(max(x, low), high)  # exp(log(x)) may leave the bounds by an ulp
    return round(x) if space.integer else x


def snap(space: ParamSpace, value: Any) -> Any:
    """A value a sampler proposed, as `space` produces it: a stepped float range's nearest grid
    point (Optuna's `low + k * step` drifts in the last digits), an integer space's int."""
    if space.kind == "range" and space.step is not None and not space.integer:
        at = round((float(value) - bounds(space)[0]) / space.step)
        return point(space, min(max(at, 0), count(space) - 1))
    if space.integer and space.kind in ("range", "log_range"):
        return round(float(value))
    return value


def produced(space: ParamSpace) -> tuple[Any, ...]:
    """Values that stand for everything `space` can produce, to check them against a parameter's
    type before any trial runs: every grid point of a finite space (of a range of more than
    `CHECKED` points: both ends and points evenly between, all of one type), and a continuous
    range's bounds (and its grid points when it has `num`), each of the type a draw gives."""
    if finite(space):
        n = count(space)
        if n <= CHECKED or space.kind != "range":
            return tuple(point(space, i) for i in range(n))
        return tuple(dict.fromkeys(point(space, i * (n - 1) // (CHECKED - 1)) for i in range(CHECKED)))
    low, high = bounds(space)
    ends: list[Any] = [low, high]
    if space.integer:
        ends = [int(v) for v in ends]
    elif space.kind == "range":
        ends = [float(v) for v in ends]  # a draw is a float even between int bounds
    if space.kind == "log_range" and space.num is not None:
        ends += grid_points(space)
    return tuple(dict.fromkeys(ends))
