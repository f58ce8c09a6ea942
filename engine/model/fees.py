"""Fee models: what a venue charges for an execution."""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

import attrs

from .events import Liquidity
from .instruments import Instrument

__all__ = ["FeeModel", "ProportionalFees"]


class FeeModel(Protocol):
    """Computes the fee of one execution, in the currency it is charged in."""

    def fee(
        self, inst: Instrument, price: Decimal, size: Decimal, liquidity: Liquidity, index: float | None
    ) -> tuple[Decimal, str]:
        """(fee, currency) of executing `size` at `price`; `index` is the underlying's index
        price when known (some schedules charge a fraction of it). A negative fee is a rebate."""
        ...


@attrs.frozen
class ProportionalFees:
    """A fraction of the traded value (size x contract size x price), in the quote currency."""

    maker: Decimal = Decimal(0)
    taker: Decimal = Decimal(0)

    def fee(
        self, inst: Instrument, price: Decimal, size: Decimal, liquidity: Liquidity, index: float | None
    ) -> tuple[Decimal, str]:
        rate = self.maker if liquidity is Liquidity.MAKER else self.taker
        return rate * size * inst.contract_size * price, inst.quote
