"""Derive's fee schedule, with overrides from the config, and the `max_fee` an order signs.

What is known, and from where:

- Per instrument, `public/get_instruments` gives `maker_fee_rate`, `taker_fee_rate`, `base_fee`
  and `mark_price_fee_rate_cap` (VENUES.md §3.2); fills report the fee actually charged in
  `trade_fee` (USDC; §3.4 trades channels).
- Derive's published schedule (help.derive.xyz, "What are the fees?"): a maker pays
  `rate x notional`; a taker pays a flat base fee per order plus `rate x notional`; notional is the
  *underlying's* value (amount x spot/index price), for options as for perpetuals; option fees
  are capped at 12.5% of the option's value. The published rates (options maker 0.03%, taker
  0.04% + $0.50; perpetuals maker 0.01%, taker 0.06% + $0.10) are the defaults used when an
  instrument carries no rates of its own.
- `max_fee` (§3.6) is the most the order may be charged *per unit of amount*, in USDC, and it is
  signed: an order whose max fee is below the venue's estimate is refused
  (`signed_max_fee_too_low`).

Assumptions, stated so they can be checked against fills:

- Rates apply to `size x index`; when no index price is known yet the trade price stands in for
  perpetuals and spot, and the strike for options (the at-the-money value; better than charging
  nothing).
- The base fee is charged on each taker execution the model is asked about; a taker order that
  sweeps several levels in one match pays it once at the venue, so the model over-charges such
  orders slightly (a conservative error for a backtest).
- The cap applies to the option fee as a whole (base fee included), at `option_cap` (default
  12.5%, or the instrument's `mark_price_fee_rate_cap` when it is given) of the option's value:
  mark x size (the field's name, and the page's "12.5% of the value of the option"). `max_fee`
  takes the mark when the tickers gave one: a bid resting far below the mark is estimated by
  the venue against the mark's cap, and a `max_fee` capped at its own low price is refused
  (`signed_max_fee_too_low`). A fill's fee (`fee`, the engine's fee model, which is given no
  mark) caps at its price x size.
- Spot (`erc20`) trades use the instrument's rates with no cap; the default base fee is 0.
- Settlement: the fee page names trading fees, a liquidation fee and interest on borrowed USDC,
  and no fee on an option's settlement at expiry, nor does anything else we have of Derive's
  (VENUES.md §3): none is charged (`delivery_fee` is 0), as said in the README.

Precedence for every number: config override (`[venues.derive.fees]`) > the instrument's own value
from `get_instruments` > the published default.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from decimal import ROUND_CEILING, Decimal
from typing import Any, Final

import attrs

from tradingd.engine.venue import Instrument, InstrumentKind, Liquidity, known_overrides

from .instruments import DeriveInstrumentInfo

__all__ = ["DEFAULTS", "DeriveFees"]

# (maker rate, taker rate, taker base fee in USDC) per kind: the published schedule.
DEFAULTS: Mapping[InstrumentKind, tuple[Decimal, Decimal, Decimal]] = {
    InstrumentKind.OPTION: (Decimal("0.0003"), Decimal("0.0004"), Decimal("0.5")),
    InstrumentKind.PERPETUAL: (Decimal("0.0001"), Decimal("0.0006"), Decimal("0.1")),
    InstrumentKind.SPOT: (Decimal("0.0015"), Decimal("0.0015"), Decimal("0")),
}
_USDC_QUANTUM = Decimal("0.000001")  # USDC has 6 decimals


def _opt_dec(v: Any) -> Decimal | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float | str | Decimal):
        raise ValueError(f"expected a decimal number, got {v!r}")
    d = Decimal(repr(v)) if isinstance(v, float) else Decimal(v)
    if not d.is_finite():
        raise ValueError(f"expected a finite number, got {v!r}")
    return d


def _cap(v: Any) -> Decimal:
    d = _opt_dec(v)
    if d is None or d <= 0:
        raise ValueError(f"option_cap must be a positive fraction, got {v!r}")
    return d


@attrs.frozen
class DeriveFees:
    """Derive's fees (module docstring). Every field is an optional override from the config;
    `details` looks up an instrument's Derive-only numbers (its `base_fee` and fee cap), given by
    code that owns a `DeriveInstruments` table (`with_details`)."""

    option_maker: Decimal | None = attrs.field(default=None, converter=_opt_dec)
    option_taker: Decimal | None = attrs.field(default=None, converter=_opt_dec)
    option_base_fee: Decimal | None = attrs.field(default=None, converter=_opt_dec)
    option_cap: Decimal | None = attrs.field(default=None, converter=attrs.converters.optional(_cap))
    perp_maker: Decimal | None = attrs.field(default=None, converter=_opt_dec)
    perp_taker: Decimal | None = attrs.field(default=None, converter=_opt_dec)
    perp_base_fee: Decimal | None = attrs.field(default=None, converter=_opt_dec)
    spot_maker: Decimal | None = attrs.field(default=None, converter=_opt_dec)
    spot_taker: Decimal | None = attrs.field(default=None, converter=_opt_dec)
    spot_base_fee: Decimal | None = attrs.field(default=None, converter=_opt_dec)
    details: Callable[[str], DeriveInstrumentInfo | None] | None = attrs.field(
        default=None, eq=False, repr=False
    )

    @classmethod
    def from_config(cls, overrides: Mapping[str, Any]) -> DeriveFees:
        """From `[venues.derive.fees]`; ValueError names unknown keys or a bad value."""
        return cls(**known_overrides(cls, overrides, internal=("details",)))

    def with_details(self, details: Callable[[str], DeriveInstrumentInfo | None]) -> DeriveFees:
        """The same schedule, reading base fees and caps from `details` (e.g.
        `DeriveInstruments.get`)."""
        return attrs.evolve(self, details=details)

    # ----------------------------------------------------------------------------- numbers

    def _prefix(self, inst: Instrument) -> str:
        if inst.kind is InstrumentKind.OPTION:
            return "option"
        if inst.kind is InstrumentKind.SPOT:
            return "spot"
        return "perp"

    def rate(self, inst: Instrument, liquidity: Liquidity) -> Decimal:
        """The fraction of notional charged to `liquidity` on `inst`."""
        maker = liquidity is Liquidity.MAKER
        override = getattr(self, f"{self._prefix(inst)}_{'maker' if maker else 'taker'}")
        if override is not None:
            return Decimal(override)
        own = inst.maker_fee if maker else inst.taker_fee
        if own is not None:
            return own
        d_maker, d_taker, _ = DEFAULTS.get(inst.kind, DEFAULTS[InstrumentKind.PERPETUAL])
        return d_maker if maker else d_taker

    def base_fee(self, inst: Instrument) -> Decimal:
        """The flat USDC fee of a taker order on `inst`."""
        override = getattr(self, f"{self._prefix(inst)}_base_fee")
        if override is not None:
            return Decimal(override)
        info = self.details(inst.symbol) if self.details is not None else None
        if info is not None:
            return info.base_fee
        return DEFAULTS.get(inst.kind, DEFAULTS[InstrumentKind.PERPETUAL])[2]

    def cap(self, inst: Instrument) -> Decimal | None:
        """The cap on an option's fee, as a fraction of its value; None for other kinds."""
        if inst.kind is not InstrumentKind.OPTION:
            return None
        if self.option_cap is not None:
            return self.option_cap
        info = self.details(inst.symbol) if self.details is not None else None
        if info is not None and info.mark_price_fee_rate_cap is not None and info.mark_price_fee_rate_cap > 0:
            return info.mark_price_fee_rate_cap
        return Decimal("0.125")

    def _notional_price(self, inst: Instrument, price: Decimal, index: float | None) -> Decimal:
        if index is not None and index > 0:
            return Decimal(repr(index))
        if inst.kind is InstrumentKind.OPTION and inst.strike is not None:
            return inst.strike
        return price

    def fee(
        self, inst: Instrument, price: Decimal, size: Decimal, liquidity: Liquidity, index: float | None
    ) -> tuple[Decimal, str]:
        """(fee, currency) of executing `size` of `inst` at `price` (engine `FeeModel`)."""
        return self._fee(inst, price, size, liquidity, index, price), inst.settle

    def _fee(
        self,
        inst: Instrument,
        price: Decimal,
        size: Decimal,
        liquidity: Liquidity,
        index: float | None,
        value_price: Decimal,
    ) -> Decimal:
        """The fee, an option's capped at `value_price` (its mark, or its price) x size."""
        notional = abs(size) * inst.contract_size * self._notional_price(inst, price, index)
        fee = self.rate(inst, liquidity) * notional
        if liquidity is Liquidity.TAKER:
            fee += self.base_fee(inst)
        cap = self.cap(inst)
        if cap is not None:
            fee = min(fee, cap * value_price * abs(size) * inst.contract_size)
        return fee

    def delivery_fee(
        self, inst: Instrument, price: Decimal, size: Decimal, index: Decimal
    ) -> tuple[Decimal, str]:
        """What Derive charges to settle a position at expiry
        (`engine.model.fees.DeliveryFeeModel`): nothing. Its fee page (help.derive.xyz, "What
        are the fees?") lists trading fees, a liquidation fee and interest on borrowed USDC,
        and no settlement fee (module docstring)."""
        return Decimal(0), inst.settle

    def max_fee(
        self,
        inst: Instrument,
        *,
        price: Decimal,
        size: Decimal,
        index: float | None,
        margin: Decimal = Decimal(2),
        mark: float | None = None,
    ) -> Decimal:
        """A `max_fee` for an order (§3.6: USDC per unit of amount): the taker fee this schedule
        expects for the whole order, per unit, times `margin` (the venue's estimate uses its own
        index at match time), rounded up to whole USDC micro-units. At least one micro-unit. An
        option's cap is taken at `mark` when given (module docstring), else at `price`."""
        if not size > 0:
            raise ValueError(f"size must be positive, got {size}")
        if not margin >= 1:
            raise ValueError(f"margin must be at least 1, got {margin}")
        index = _plausible_index(inst, price, index)
        value_price = Decimal(repr(mark)) if mark is not None and mark > 0 else price
        fee = self._fee(inst, price, size, Liquidity.TAKER, index, value_price)
        per_unit = fee * margin / size
        return max(_USDC_QUANTUM, per_unit.quantize(_USDC_QUANTUM, rounding=ROUND_CEILING))


# How far from the order's price a perpetual's (or spot's) index, and from its strike an option's
# underlying index, is believed for the signed `max_fee`. The index and the mark come from the
# venue's tickers, and `max_fee` is the most the venue may charge us: one absurd ticker (an ETH
# index of 3e9) signed a cap of 3,000,000 USDC per unit on the next order (3.21 at the real
# index). Beyond these, the index is taken as unknown (the price, or the strike, stands in, as
# before any ticker). (A mark only lowers an option's fee, through its cap: no bound needed.)
_INDEX_FROM_PRICE: Final = Decimal(4)
_INDEX_FROM_STRIKE: Final = Decimal(10)


def _plausible_index(inst: Instrument, price: Decimal, index: float | None) -> float | None:
    """`index` when it may be the underlying's price for an order of `inst` at `price`, else None."""
    if index is None or not 0 < index < math.inf:
        return None
    if inst.kind is InstrumentKind.OPTION:
        if inst.strike is None or inst.strike <= 0:
            return index
        ref, within = inst.strike, _INDEX_FROM_STRIKE
    else:
        if not price > 0:
            return index
        ref, within = price, _INDEX_FROM_PRICE
    value = Decimal(repr(index))
    return index if ref / within <= value <= ref * within else None
