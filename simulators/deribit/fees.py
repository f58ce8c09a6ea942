"""The simulator's own Deribit fee schedule, in Decimal.

Written from Deribit's fee page (support.deribit.com/hc/en-us/articles/25944746248989-Fees, as
quoted in VENUES.md §1.8 "Fees"), not from the connector's fee model:

| contract                         | maker                     | taker                     |
|----------------------------------|---------------------------|---------------------------|
| BTC/ETH futures and perpetuals   | 0.00 %                    | 0.05 %                    |
| BTC/ETH weekly futures           | -0.01 % (a rebate)        | 0.05 %                    |
| USDC perpetuals                  | 0.00 %                    | 0.05 %                    |
| BTC/ETH options                  | 0.03 % of the underlying = 0.0003 coin a contract, both sides, |
|                                  | capped at 12.5 % of the option price                           |
| USDC linear options              | 0.0001 x index            | 0.0005 x index, same cap  |

"Fees are calculated as a percentage of the underlying asset of the contract": an inverse
contract's amount is USD, so its underlying is `amount / price` coins (the page's example: a
$50,000 trade at $100,000 is 0.5 BTC, and the taker pays 0.05 % of it, 0.00025 BTC); a linear
contract's amount is already in the coin (§1.7: "amount is ... base coin for options and linear
futures"), paid in its quote currency at the trade's price. An option's fee is per contract (one
coin), never more than 12.5 % of the price paid: "if an option is traded at 0.0001 BTC, the taker
fee will be 0.0000125 BTC (instead of 0.0003 BTC)".

Delivery (an expiry): "half the fees of taker orders are charged" (deribit.com/pages/docs, Fees:
"0.025 % for Futures, and ... for Options, where for options the fee can never be more than
12.5 % of the value of the option"), at today's taker rates: 0.025 % of a future's underlying at
the delivery price, 0.015 % of an option's underlying (0.00015 coin a contract) capped at 12.5 %
of the option's delivery value. A perpetual is never delivered.

Charged in whole 1e-8 of the settlement currency, as the venue's fills show: a 20 USD taker
trade of BTC-PERPETUAL at 8,954 in 2020 (taker 0.075 % then) paid `"fee":0.00000168`
(20 / 8954 x 0.00075 = 1.675e-6, VENUES.md §1.6's `user.trades` capture).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

import attrs

from .instruments import Listing

__all__ = ["FeeSchedule"]

_ZERO: Final = Decimal(0)
_CHARGED_IN: Final = Decimal("1e-8")


def _charged(fee: Decimal) -> Decimal:
    """A fee as the venue books it: to 1e-8 (half to even), and zero as a plain 0."""
    places = fee.as_tuple().exponent
    if isinstance(places, int) and places < -8:  # finer than 1e-8 (0.0015 keeps its digits)
        fee = fee.quantize(_CHARGED_IN, rounding=ROUND_HALF_EVEN)
    return fee if fee else _ZERO


@attrs.frozen
class FeeSchedule:
    """The rates of the table above (module docstring); `fee` and `delivery_fee` apply them."""

    future_maker: Decimal = Decimal("0")
    future_taker: Decimal = Decimal("0.0005")
    weekly_future_maker: Decimal = Decimal("-0.0001")
    option_per_contract: Decimal = Decimal("0.0003")  # coin options, maker and taker
    linear_option_maker: Decimal = Decimal("0.0001")  # x index, USDC options
    linear_option_taker: Decimal = Decimal("0.0005")
    option_cap: Decimal = Decimal("0.125")  # of the option's price

    def fee(
        self, listing: Listing, *, price: Decimal, amount: Decimal, maker: bool, index: Decimal | None = None
    ) -> Decimal:
        """The fee (negative: a rebate) of one execution of `amount` at `price`, in the
        instrument's settlement currency."""
        if listing.is_option:
            cap = self.option_cap * abs(price) * amount
            if listing.linear:
                rate = self.linear_option_maker if maker else self.linear_option_taker
                base = rate * (index or _ZERO) * amount
            else:
                base = self.option_per_contract * amount
            return _charged(min(base, cap))
        if maker:
            rate = self.weekly_future_maker if listing.settlement_period == "week" else self.future_maker
        else:
            rate = self.future_taker
        if listing.inverse:
            return _charged(rate * amount / price)  # USD amount -> coins at the trade's price
        return _charged(rate * amount * price)  # coin amount, paid in the quote currency

    def delivery_fee(
        self, listing: Listing, *, delivery_price: Decimal, index: Decimal, amount: Decimal
    ) -> Decimal:
        """The fee of delivering a position of `amount` (its absolute size) at expiry:
        half the taker rate (module docstring). `delivery_price` is the instrument's delivery
        price in its quote currency (an option's value in the coin), `index` the index's."""
        size = abs(amount)
        if listing.is_option:
            half = self.option_per_contract / 2
            return _charged(min(half * size, self.option_cap * delivery_price * size))
        half = self.future_taker / 2
        if listing.inverse:
            return _charged(half * size / index)
        return _charged(half * size * index)
