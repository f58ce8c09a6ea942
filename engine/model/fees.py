"""Fee models: what a venue charges for an execution."""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol, runtime_checkable

import attrs

from .events import Liquidity
from .instruments import Instrument

__all__ = ["DeliveryFeeModel", "FeeModel", "ProportionalFees"]


class FeeModel(Protocol):
    """Computes the fee of one execution, in the currency it is charged in."""

    def fee(
        self, inst: Instrument, price: Decimal, size: Decimal, liquidity: Liquidity, index: float | None
    ) -> tuple[Decimal, str]:
        """(fee, currency) of executing `size` at `price`; `index` is the underlying's index
        price when known (some schedules charge a fraction of it). A negative fee is a rebate."""
        ...


@runtime_checkable
class DeliveryFeeModel(FeeModel, Protocol):
    """A fee model that also knows what its venue charges to deliver (settle) a position in an
    expired instrument: a backtest charges it at each expiry (`BacktestKernel`). A model without
    it charges nothing there, which is right only for a venue that documents no such fee."""

    def delivery_fee(
        self, inst: Instrument, price: Decimal, size: Decimal, index: Decimal
    ) -> tuple[Decimal, str]:
        """(fee, currency) of delivering a position of `size` (either sign) in `inst` at its
        delivery `price` (in its quote currency: an option's value, a future's the index), the
        underlying's index having delivered at `index`."""
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
