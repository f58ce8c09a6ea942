"""Deribit instrument definitions (VENUES.md §1.8) as engine `Instrument`s, and option names."""

from __future__ import annotations

import calendar
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from tradingd.engine.venue import Instrument, InstrumentKind, OptionRight, to_decimal

__all__ = [
    "PERPETUAL_EXPIRY_MS",
    "VENUE",
    "expiry_code",
    "instrument_from_json",
    "is_inverse",
    "option_name",
    "parse_expiry_code",
    "settlement_currency",
]

VENUE = "deribit"
# Deribit's "expiration" of perpetuals: 3000-01-01.
PERPETUAL_EXPIRY_MS = 32503708800000
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def expiry_code(expiry_ms: int) -> str:
    """Deribit's expiry code of an expiry timestamp: 2026-11-27 08:00Z -> `27NOV26`."""
    tm = time.gmtime(expiry_ms / 1000)
    return f"{tm.tm_mday}{_MONTHS[tm.tm_mon - 1]}{tm.tm_year % 100:02d}"


def parse_expiry_code(code: str) -> int:
    """The expiry timestamp (ms, 08:00 UTC) of a Deribit expiry code like `27NOV26`."""
    day, mon, yy = code[:-5], code[-5:-2], code[-2:]
    if not day.isdigit() or mon not in _MONTHS or not yy.isdigit():
        raise ValueError(f"not a Deribit expiry code: {code!r}")
    return calendar.timegm((2000 + int(yy), _MONTHS.index(mon) + 1, int(day), 8, 0, 0)) * 1000


def option_name(currency: str, expiry_ms: int, strike: Decimal | int, right: OptionRight) -> str:
    """`BTC-27NOV26-90000-C`: the naming table of VENUES.md §1.8."""
    k = Decimal(strike)
    strike_s = str(k.to_integral_value()) if k == k.to_integral_value() else str(k).replace(".", "d")
    return f"{currency}-{expiry_code(expiry_ms)}-{strike_s}-{'C' if right is OptionRight.CALL else 'P'}"


def settlement_currency(item: Mapping[str, Any]) -> str:
    """The currency a `get_instruments` item settles in. Its `settlement_currency` when it has
    one; answers of 2019 (roq-deribit's capture, tests/fixtures/deribit/README.md) have none,
    and then a product quoted in USD (Deribit holds no USD: every USD-quoted product is
    coin-settled) or in its own coin (coin options) settles in its base coin. Raises ValueError
    when nothing tells (no guess)."""
    settle = item.get("settlement_currency")
    if settle:
        return str(settle)
    base = item["base_currency"]
    if item.get("quote_currency") in ("USD", base):
        return str(base)
    raise ValueError(
        f"{item.get('instrument_name')!r}: no settlement_currency, and quoted in neither USD nor its coin"
    )


def is_inverse(item: Mapping[str, Any], kind: InstrumentKind) -> bool:
    """Whether a `get_instruments` item (VENUES.md §1.8) is an inverse ("reversed") contract:
    sized in USD, settled in the coin. The one place this is decided, from what the answer says:
    its `instrument_type` (`reversed`|`linear`), else the older `future_type` (deprecated, the
    only one in 2022 answers), else its currencies (2019 answers name neither): settled in its
    base coin while quoted in another currency (BTC-PERPETUAL: base BTC, quote USD, settled in
    BTC) is inverse; settled in its quote currency (BTC_USDC-PERPETUAL) is linear. Options and
    spot are never inverse here (an option's premium is quoted in its settlement currency).
    Raises ValueError when nothing tells, or for an unknown type."""
    if kind is InstrumentKind.OPTION or kind is InstrumentKind.SPOT:
        return False
    declared = item.get("instrument_type") or item.get("future_type")
    if declared == "reversed":
        return True
    if declared == "linear":
        return False
    if declared is not None:
        raise ValueError(f"unknown instrument_type {declared!r}")
    settle = settlement_currency(item)
    return bool(settle == item["base_currency"] and item["quote_currency"] != settle)


def _multiplier(item: Mapping[str, Any], inverse: bool) -> Decimal:
    """The engine's `contract_size`: underlying per unit of an order's size. Deribit counts a
    linear instrument's amount in the coin already (VENUES.md §1.7: options, USDC perpetuals and
    futures), so that is 1 whatever its `contract_size` (the lot: 0.001 ETH for ETH_USDC-PERPETUAL,
    whose order of amount 0.001 is 1.0 contracts). Inverse contracts are sized in USD and keep
    theirs (10 USD for BTC-PERPETUAL)."""
    return to_decimal(item.get("contract_size", 1)) if inverse else Decimal(1)


def instrument_from_json(item: Mapping[str, Any]) -> Instrument:
    """An `Instrument` from one item of `public/get_instruments` (or `public/get_instrument`).
    Raises KeyError/ValueError/TypeError when a required field is missing or malformed."""
    kind_s = item["kind"]
    settlement_period = item.get("settlement_period")
    if kind_s == "future":
        kind = InstrumentKind.PERPETUAL if settlement_period == "perpetual" else InstrumentKind.FUTURE
    elif kind_s in ("option", "option_combo"):
        kind = InstrumentKind.OPTION
    elif kind_s == "future_combo":
        kind = InstrumentKind.FUTURE
    elif kind_s == "spot":
        kind = InstrumentKind.SPOT
    else:
        raise ValueError(f"unknown instrument kind {kind_s!r}")
    expiry_ms = item.get("expiration_timestamp")
    expiry_ns = None if expiry_ms in (None, PERPETUAL_EXPIRY_MS) else int(expiry_ms) * 1_000_000
    right = None
    if item.get("option_type") in ("call", "put"):
        right = OptionRight(item["option_type"])
    steps = [
        (to_decimal(s["above_price"], "above_price"), to_decimal(s["tick_size"], "tick_size"))
        for s in item.get("tick_size_steps") or ()
    ]
    inverse = is_inverse(item, kind)
    maker = item.get("maker_commission")
    taker = item.get("taker_commission")
    return Instrument(
        venue=VENUE,
        symbol=str(item["instrument_name"]),
        kind=kind,
        base=str(item["base_currency"]),
        quote=str(item["quote_currency"]),
        settle=settlement_currency(item),
        tick_size=to_decimal(item["tick_size"]),
        min_size=to_decimal(item["min_trade_amount"]),
        contract_size=_multiplier(item, inverse),
        inverse=inverse,
        expiry_ns=expiry_ns,
        strike=None if item.get("strike") is None else to_decimal(item["strike"]),
        right=right,
        tick_size_steps=steps,
        maker_fee=None if maker is None else to_decimal(maker),
        taker_fee=None if taker is None else to_decimal(taker),
        active=bool(item.get("is_active", True)),
    )
