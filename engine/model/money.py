"""The one set of converters from numbers to money (Decimal).

Money is exact: quantities, prices of orders and fills, fees, cash and PnL are `Decimal`.
Market data (tickers, index prices, marks) stays float for speed; a float enters money at one
point only, through `from_float`, which takes its shortest repr (`Decimal(repr(0.1))` is
`Decimal("0.1")`, not the binary float's 55 digits) after checking it is finite.

Every converter refuses what is not a finite number and names what was bad. The error is both a
`ValueError` and a `TypeError` (`BadNumber`), so a caller that catches either one (an attrs
converter's caller, a config loader) hears of it.
"""

from __future__ import annotations

import math
import operator
from decimal import Decimal, InvalidOperation
from typing import SupportsIndex, cast

__all__ = [
    "ZERO",
    "BadNumber",
    "decimal_text",
    "from_float",
    "opt_from_float",
    "optional",
    "positive",
    "to_decimal",
]

ZERO = Decimal(0)


def _float_text(value: float) -> str:
    """The shortest repr of a float's value. `float.__repr__`, not `repr`: a float subclass
    (numpy's float64) has a repr of its own (`np.float64(0.05)` under numpy 2)."""
    return float.__repr__(value)


def _other_number(value: object, what: str) -> Decimal:
    """An integer or floating scalar of another library (numpy's int64, float32, ...)."""
    if isinstance(value, bool) or type(value).__name__ in ("bool", "bool_"):
        raise BadNumber(f"{what}: expected a decimal number, got {type(value).__name__} {value!r}")
    if hasattr(type(value), "__index__"):  # an integer type (numpy's int64, ...)
        return Decimal(operator.index(cast("SupportsIndex", value)))
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    if kind == "f":  # numpy's float32/float16: its str is the shortest repr at its own precision
        try:
            d = Decimal(str(value))
        except InvalidOperation:
            d = Decimal("NaN")
        if not d.is_finite():
            raise BadNumber(f"{what}: expected a finite number, got {value!r}")
        return d
    raise BadNumber(f"{what}: expected a decimal number, got {type(value).__name__} {value!r}")


class BadNumber(ValueError, TypeError):
    """A value that is not a finite decimal number; the message names what it was for."""


def to_decimal(value: object, what: str = "value") -> Decimal:
    """`value` (Decimal, int, float or decimal string; numpy's integer and floating scalars too)
    as a finite Decimal."""
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise BadNumber(f"{what}: expected a finite number, got {value!r}")
        return Decimal(_float_text(value))
    elif isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    elif isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except InvalidOperation:
            raise BadNumber(f"{what}: expected a decimal number, got {value!r}") from None
    else:
        return _other_number(value, what)
    if not d.is_finite():
        raise BadNumber(f"{what}: expected a finite number, got {value!r}")
    return d


def optional(value: object, what: str = "value") -> Decimal | None:
    """None stays None; anything else as `to_decimal`."""
    return None if value is None else to_decimal(value, what)


def positive(value: object, what: str = "value") -> Decimal:
    """A finite Decimal above zero."""
    d = to_decimal(value, what)
    if d <= 0:
        raise BadNumber(f"{what}: expected a positive number, got {value!r}")
    return d


def from_float(value: float, what: str = "market data") -> Decimal:
    """A market-data float (a mark, an index price, a USD rate) where it enters money."""
    v: object = value
    if isinstance(v, float):
        if not math.isfinite(v):
            raise BadNumber(f"{what}: expected a finite number, got {v!r}")
        return Decimal(_float_text(v))
    return to_decimal(v, what)  # an int, or another library's number (checked there)


def opt_from_float(value: float | None, what: str = "market data") -> Decimal | None:
    return None if value is None else from_float(value, what)


# The most zeros `decimal_text` writes out to spare a reader an exponent. A Decimal's exponent
# is unbounded (`Decimal("1E+100000000")` parses at once, from a venue's text), and its plain
# digits would be a 100 MB log line; past 1e40 or below 1e-40 no price, size or fee is real,
# and the exponent form (exact all the same) says so better than a wall of zeros.
PLAIN_ZEROS_MAX = 40


def decimal_text(value: Decimal) -> str:
    """A Decimal's exact value in plain digits, for text people and programs read (log lines):
    `str()` where that has no exponent (`"0.00150"` keeps its digits), else the same value
    without one. `str()` writes a fee of `0 x size / price` as `0E+1` and 1.68e-7 BTC as
    `1.68E-7`; here they are `"0"` and `"0.000000168"` (and `1.2E+3` is `"1200"`). Exact: the
    text parses back to an equal Decimal. NaN and infinities as `str()`; so is an absurd value
    whose plain form needs more than `PLAIN_ZEROS_MAX` (40) zeros (`1E+41`, `1E-42`): the text
    stays short whatever a venue sent."""
    text = str(value)
    if "E" not in text or not value.is_finite():
        return text
    if not value:
        return "-0" if value.is_signed() else "0"
    exponent = cast("int", value.as_tuple().exponent)  # finite: an int
    zeros = exponent if exponent > 0 else -value.adjusted() - 1
    if zeros > PLAIN_ZEROS_MAX:
        return text
    return format(value, "f")
