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
from decimal import Decimal, InvalidOperation

__all__ = ["ZERO", "BadNumber", "from_float", "opt_from_float", "optional", "positive", "to_decimal"]

ZERO = Decimal(0)


class BadNumber(ValueError, TypeError):
    """A value that is not a finite decimal number; the message names what it was for."""


def to_decimal(value: object, what: str = "value") -> Decimal:
    """`value` (Decimal, int, float or decimal string) as a finite Decimal."""
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise BadNumber(f"{what}: expected a finite number, got {value!r}")
        return Decimal(repr(value))
    elif isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    elif isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except InvalidOperation:
            raise BadNumber(f"{what}: expected a decimal number, got {value!r}") from None
    else:
        raise BadNumber(f"{what}: expected a decimal number, got {value!r}")
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
    if not math.isfinite(value):
        raise BadNumber(f"{what}: expected a finite number, got {value!r}")
    return Decimal(repr(value))


def opt_from_float(value: float | None, what: str = "market data") -> Decimal | None:
    return None if value is None else from_float(value, what)
