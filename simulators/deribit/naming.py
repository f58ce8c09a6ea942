"""Deribit's instrument names, written from its naming table (VENUES.md §1.8 "Naming", from the
Deribit API documentation): a future is `BTC-DMMMYY` (day of month without a leading zero), a
perpetual `BTC-PERPETUAL`, an option `BTC-DMMMYY-STRIKE-K` with the strike in USD and K = C or P;
a fractional strike writes its decimal point as `d` (`…-0d625-C`). Expiries are at 08:00 UTC, and
`get_instruments` gives a perpetual the expiration 3000-01-01 (32503708800000 ms).

The simulator's own: it shares nothing with the connector's `instruments` module.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Final

__all__ = ["PERPETUAL_EXPIRY_MS", "Right", "expiry_code", "option_name"]

PERPETUAL_EXPIRY_MS: Final = 32503708800000  # 3000-01-01T00:00:00Z, as get_instruments writes it
_MONTHS: Final = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


class Right(enum.StrEnum):
    """An option's right, as `get_instruments` writes its `option_type`."""

    CALL = "call"
    PUT = "put"


def expiry_code(expiry_ms: int) -> str:
    """`27NOV26` for 2026-11-27 (UTC): the day without a leading zero, the month, two year digits."""
    day = dt.datetime.fromtimestamp(expiry_ms / 1000, dt.UTC)
    return f"{day.day}{_MONTHS[day.month - 1]}{day.year % 100:02d}"


def option_name(currency: str, expiry_ms: int, strike: Decimal | int | float, right: Right) -> str:
    """`BTC-27NOV26-90000-C`; a fractional strike as `0d625`."""
    k = Decimal(str(strike))
    whole = k == k.to_integral_value()
    strike_s = str(k.to_integral_value()) if whole else format(k.normalize(), "f").replace(".", "d")
    return f"{currency}-{expiry_code(expiry_ms)}-{strike_s}-{'C' if right is Right.CALL else 'P'}"
