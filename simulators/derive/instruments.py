"""What the simulated Derive knows of an instrument, written from VENUES.md §3.2 (and the
`get_instruments` items of the real captures in `tests/fixtures/derive/`), not from the
connector's parser.

- Naming (§3.2, DV-DOCS "instrument names"): options `<CCY>-<YYYYMMDD>-<STRIKE>-<C|P>` with a
  fractional strike's point written `_` and trailing zeros trimmed (`2400_5`), perpetuals
  `<CCY>-PERP`, spot `<BASE>-<QUOTE>`. Everything is quoted and settled in USDC.
- An option's `base_asset_sub_id` packs its terms as Lyra v2's `OptionEncoding.toSubId` does:
  bit 95 is_call, bits 32..94 the strike with 8 decimals, bits 0..31 the expiry in unix
  seconds (VENUES.md marks the encoding [U]; the §3.6 signing vector's sub id, 2**95, a call
  with expiry and strike 0, fits it). The simulator only makes synthetic instruments with it.
- `Listing`: one `get_instruments` item read back as the venue's own record: the numbers as
  Decimals, the asset address and sub id an order's signature binds (§3.6), the fee fields.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final, Literal

import attrs

__all__ = ["QUOTE", "Listing", "format_strike", "option_name", "option_sub_id"]

QUOTE: Final = "USDC"

Kind = Literal["option", "perp", "erc20"]


def format_strike(strike: Decimal | int | str) -> str:
    """A strike as a name writes it: `3500`, `2400_5` for 2400.5 (§3.2)."""
    k = Decimal(strike)
    if not k.is_finite() or k <= 0:
        raise ValueError(f"a strike must be positive, got {strike!r}")
    return format(k.normalize(), "f").replace(".", "_")


def option_name(currency: str, expiry: dt.date, strike: Decimal | int | str, *, call: bool) -> str:
    """`ETH-20260627-3500-C` (§3.2)."""
    return f"{currency}-{expiry:%Y%m%d}-{format_strike(strike)}-{'C' if call else 'P'}"


def option_sub_id(expiry_s: int, strike: Decimal | int | str, *, call: bool) -> int:
    """An option's `base_asset_sub_id` (module docstring)."""
    k = Decimal(strike) * 10**8
    if k != k.to_integral_value() or k < 0:
        raise ValueError(f"strike {strike} has more than 8 decimals")
    if not 0 <= expiry_s < 1 << 32 or int(k) >= 1 << 63:
        raise ValueError(f"expiry {expiry_s} or strike {strike} does not fit an option sub id")
    return expiry_s | int(k) << 32 | int(call) << 95


def _d(item: Mapping[str, Any], key: str, default: str | None = None) -> Decimal:
    value = item.get(key)
    if value is None:
        if default is None:
            raise ValueError(f"instrument {item.get('instrument_name')!r}: no {key}")
        value = default
    return Decimal(str(value))


@attrs.frozen
class Listing:
    """One instrument as the venue holds it (from its own `get_instruments` item)."""

    name: str
    kind: Kind
    base: str
    tick: Decimal
    step: Decimal
    minimum: Decimal
    maximum: Decimal
    asset: str  # base_asset_address: signed into every order (§3.6)
    sub_id: int  # base_asset_sub_id
    maker_rate: Decimal
    taker_rate: Decimal
    base_fee: Decimal
    cap: Decimal | None  # mark_price_fee_rate_cap (options)
    strike: Decimal | None
    expiry_s: int | None
    active: bool
    # The item states its fee fields (any of the three): then they are its fees, even all zero
    # (a free instrument); an item without them is charged the fee page's rates.
    states_fees: bool

    @classmethod
    def of(cls, item: Mapping[str, Any]) -> Listing:
        kind = item["instrument_type"]
        if kind not in ("option", "perp", "erc20"):
            raise ValueError(f"unknown instrument_type {kind!r}")
        option = item.get("option_details") or None
        cap = item.get("mark_price_fee_rate_cap")
        return cls(
            name=str(item["instrument_name"]),
            kind=kind,
            base=str(item["base_currency"]),
            tick=_d(item, "tick_size"),
            step=_d(item, "amount_step"),
            minimum=_d(item, "minimum_amount"),
            maximum=_d(item, "maximum_amount"),
            asset=str(item["base_asset_address"]),
            sub_id=int(item["base_asset_sub_id"]),
            maker_rate=_d(item, "maker_fee_rate", "0"),
            taker_rate=_d(item, "taker_fee_rate", "0"),
            base_fee=_d(item, "base_fee", "0"),
            cap=None if cap is None else Decimal(str(cap)),
            strike=None if option is None else Decimal(str(option["strike"])),
            expiry_s=None if option is None else int(option["expiry"]),
            active=bool(item.get("is_active", True)),
            states_fees=any(
                item.get(key) is not None for key in ("maker_fee_rate", "taker_fee_rate", "base_fee")
            ),
        )

    @property
    def price_places(self) -> int:
        return max(0, -int(self.tick.normalize().as_tuple().exponent))

    @property
    def amount_places(self) -> int:
        return max(0, -int(self.step.normalize().as_tuple().exponent))
