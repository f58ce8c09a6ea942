"""Deribit's fee schedule (VENUES.md §1.8, "Fees"), with overrides from the config.

- Coin-settled options: `rate` (0.0003 coin per contract, maker and taker) capped at 12.5% of the
  option's price; charged in the coin.
- Linear (USDC) options: `rate x index` per contract (maker 0.0001, taker 0.0005), same cap;
  the strike stands in for an index not known yet.
- Perpetuals and futures: a fraction of the notional (maker 0, taker 0.05%); for inverse
  contracts (size in USD) the fee in coin is `rate x size / price`; for linear ones (size in the
  coin) `rate x size x price` in the quote currency.

- Delivery (an expiry of an option or a future): half the fee a taker order would pay, an
  option's capped at 12.5% of its delivery value (`delivery_fee`, which cites the pages).

The account's own rates, which `get_instruments` reports per instrument (`maker_commission`,
`taker_commission`), are preferred over the defaults; config overrides win over both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import attrs

from tradingd.engine.venue import USD_LIKE, Instrument, InstrumentKind, Liquidity, known_overrides, optional

__all__ = ["DeribitFees"]

# Deribit charges a fee in whole 1e-8 of its currency: its fills report `"fee": 0.00000168` for
# 0.075% of 20 USD at 8,954 (1.675e-6 BTC) and `7.766e-05` for 21 USD at 202.8 (7.7663e-5 ETH)
# (VENUES.md, user trade samples). Unrounded, `rate x size / price` kept 28 digits
# (0.0001139967899029849519854943056 BTC), no more exact than the venue's figure, in every fill,
# log line and report; and a maker's `0 x size / price` was `0E+1`.
_FEE_QUANTUM = Decimal("1e-8")


def _as_charged(fee: Decimal) -> Decimal:
    """`fee` rounded to 1e-8 where it is finer (a fee of 0.0015 keeps its digits); 0 as 0,
    including a fee the rounding made 0 (`quantize` writes 1.2e-9 as `0E-8`, -4.9e-9 as `-0E-8`)."""
    exponent = fee.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -8:
        fee = fee.quantize(_FEE_QUANTUM, rounding=ROUND_HALF_EVEN)
    return fee if fee else Decimal(0)


@attrs.frozen
class DeribitFees:
    option_maker: Decimal | None = attrs.field(default=None, converter=optional)
    option_taker: Decimal | None = attrs.field(default=None, converter=optional)
    option_cap: Decimal = attrs.field(default=Decimal("0.125"), converter=Decimal)
    future_maker: Decimal | None = attrs.field(default=None, converter=optional)
    future_taker: Decimal | None = attrs.field(default=None, converter=optional)

    @classmethod
    def from_config(cls, overrides: Mapping[str, Any]) -> DeribitFees:
        return cls(**known_overrides(cls, overrides))

    def _rate(
        self, inst: Instrument, liquidity: Liquidity, default_maker: str, default_taker: str
    ) -> Decimal:
        maker = liquidity is Liquidity.MAKER
        if inst.kind is InstrumentKind.OPTION:
            override = self.option_maker if maker else self.option_taker
        else:
            override = self.future_maker if maker else self.future_taker
        if override is not None:
            return override
        own = inst.maker_fee if maker else inst.taker_fee
        if own is not None:
            return own
        return Decimal(default_maker if maker else default_taker)

    @staticmethod
    def _underlying(inst: Instrument, price: Decimal, index: float | None) -> Decimal:
        """The underlying's value a linear option's fee is a fraction of: `index`, the
        underlying's price the caller knows (the simulated venue's: the index, else the
        option's own ticker's underlying price, else a same-base perpetual's mid,
        `SimulatedVenue.underlying_price`); only with none of them known (books of the option
        alone) the strike stands in, off by |index - strike| / index, else the price: the index
        as 0 made every such fill free."""
        if index is not None and math.isfinite(index) and index > 0:
            return Decimal(repr(index))
        return inst.strike if inst.strike is not None and inst.strike > 0 else price

    def fee(
        self, inst: Instrument, price: Decimal, size: Decimal, liquidity: Liquidity, index: float | None
    ) -> tuple[Decimal, str]:
        contracts = size / inst.contract_size if inst.contract_size else size
        if inst.kind is InstrumentKind.OPTION:
            cap = self.option_cap * price * size
            if inst.quote.upper() in USD_LIKE:
                rate = self._rate(inst, liquidity, "0.0001", "0.0005")
                base_fee = rate * self._underlying(inst, price, index) * contracts
            else:
                rate = self._rate(inst, liquidity, "0.0003", "0.0003")
                base_fee = rate * contracts
            return _as_charged(min(base_fee, cap)), inst.settle
        rate = self._rate(inst, liquidity, "0", "0.0005")
        if inst.inverse:
            return _as_charged(rate * size / price), inst.settle
        # A linear contract's amount is in the coin (`contract_size` 1: instruments._multiplier).
        return _as_charged(rate * size * inst.contract_size * price), inst.settle

    def delivery_fee(
        self, inst: Instrument, price: Decimal, size: Decimal, index: Decimal
    ) -> tuple[Decimal, str]:
        """What Deribit charges to deliver a position of `size` (either sign) at its expiry
        (`engine.model.fees.DeliveryFeeModel`), in the settlement currency, rounded as a fill's
        fee. Deribit: "For deliveries (expiration) half the fees of taker orders are charged.
        Eg: 0.025% for Futures, and 0.02% for Options, where for options the fee can never be
        more than 12.5% of the value of the option" (deribit.com/pages/docs, "Fees: Delivery
        (settlement at expiration)", written when the taker rates were 0.05% and 0.04%). At
        today's taker rates (support.deribit.com/hc/en-us/articles/25944746248989-Fees,
        VENUES.md §1.8) that is 0.025% of a future's underlying at the delivery price, 0.015%
        of a coin option's (0.00015 coin a contract) and half of `0.0005 x index` a contract of
        a USDC option's, an option's capped at 12.5% of its delivery value `price x size` (so
        nothing for one that expires worthless). The taker rate is the one a fill's fee takes
        (config override, the instrument's own, the schedule's). A summary of the support
        page by a third party (api-evangelist/deribit `finops.yml`, marked unverified there)
        says weekly futures and daily options deliver free; Deribit's own text in our sources
        does not, so they are charged as every other delivery."""
        qty = abs(size)
        contracts = qty / inst.contract_size if inst.contract_size else qty
        if inst.kind is InstrumentKind.OPTION:
            cap = self.option_cap * price * qty
            if inst.quote.upper() in USD_LIKE:
                half = self._rate(inst, Liquidity.TAKER, "0.0001", "0.0005") / 2
                base_fee = half * index * contracts
            else:
                half = self._rate(inst, Liquidity.TAKER, "0.0003", "0.0003") / 2
                base_fee = half * contracts
            return _as_charged(min(base_fee, cap)), inst.settle
        half = self._rate(inst, Liquidity.TAKER, "0", "0.0005") / 2
        if inst.inverse:  # a USD amount: its underlying is `size / price` coins
            return _as_charged(half * qty / price), inst.settle
        return _as_charged(half * qty * inst.contract_size * price), inst.settle
