"""What the simulated CLOB charges: Polymarket's taker fee under exchange V2, written from the
venue's documents (a witness of the connector's `fees.py`, not a copy of it).

The amount (docs.polymarket.com/trading/fees, "Fee Structure"): `fee = C x feeRate x p x (1 - p)`,
C the shares traded and p their price; each market's `feeSchedule` (Gamma) or `fd` (CLOB
`getClobMarketInfo`) gives `rate` and `exponent`, the latter raising `p(1-p)` (1 in every current
schedule; the older page's crypto schedule used 2). "Makers are never charged fees. Only takers
pay fees." (`takerOnly`). "Fees are set by the protocol and applied at match time — you don't
include fee information in your orders." Precision ("Fee Precision"): rounded to 5 decimal
places, the smallest fee 0.00001, anything smaller rounds to zero: so the fee is floored to
0.00001 pUSD.

The asset (exchange V2, the contracts the venue runs since the 2026-04-28 cutover): the fee is
**collateral (pUSD) on both sides**. The V2 exchange's `Trading._settleTakerOrder` ("Charge fee on
Collateral proceeds if Sell, or on order maker Collateral if Buy"): a taker BUY is paid every
share it matched and the fee is transferred from its collateral (`_chargeFee(maker, fee)`, asset
0); a taker SELL receives its collateral proceeds less the fee. `Fees.validateFee` documents the
fee as "denominated in collateral". (Read in the public mirror of `ctf-exchange-v2`,
`src/exchange/mixins/{Trading,Fees}.sol`.) The older fee page's "fees are collected in shares on
buy orders and USDC on sell orders" described exchange V1 (`CalculatorHelper.calculateFee`: a
BUY's fee "on Token Proceeds"), where the taker of a BUY received fewer shares.

So a taker BUY of C shares at p costs `C x p + fee` pUSD and credits C shares; a taker SELL credits
`C x p - fee` pUSD and debits C shares; a maker moves `C x p` and C shares, nothing more.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import Final

import attrs

__all__ = ["FEE_QUANTUM", "FeeSchedule", "taker_fee"]

FEE_QUANTUM: Final = Decimal("0.00001")


@attrs.frozen
class FeeSchedule:
    """A market's fee schedule (Gamma `feeSchedule`: `rate`, `exponent`, `rebateRate`,
    `takerOnly`)."""

    rate: Decimal
    exponent: Decimal = Decimal(1)
    rebate_rate: Decimal = Decimal(0)
    taker_only: bool = True


def taker_fee(size: Decimal, price: Decimal, schedule: FeeSchedule | None) -> Decimal:
    """The pUSD fee of a taker fill of `size` shares at `price` under `schedule` (None: a
    fee-free market), floored to 0.00001."""
    if schedule is None or schedule.rate == 0 or size == 0:
        return Decimal(0)
    curve = price * (1 - price)
    if curve <= 0:
        return Decimal(0)
    weight = curve if schedule.exponent == 1 else curve**schedule.exponent
    return (size * schedule.rate * weight).quantize(FEE_QUANTUM, rounding=ROUND_DOWN)
