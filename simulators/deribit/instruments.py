"""What the simulator knows of an instrument it lists: its own record, read from the very
`get_instruments` item it serves (VENUES.md §1.8), for the checks of an order (tick, contract
multiple), fees and delivery. Independent of the connector's `Instrument`.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs

from ..common import dec as _dec
from .naming import PERPETUAL_EXPIRY_MS, Right

__all__ = ["Listing"]


@attrs.frozen
class Listing:
    name: str
    kind: str  # get_instruments `kind`: future | option | spot | future_combo | option_combo
    base: str
    quote: str
    settle: str
    tick_size: Decimal
    tick_steps: tuple[tuple[Decimal, Decimal], ...]  # (above_price, tick_size), ascending
    min_amount: Decimal
    contract_size: Decimal
    inverse: bool  # `instrument_type: reversed`: sized in USD, settled in the coin
    settlement_period: str
    expiry_ms: int | None  # None for a perpetual
    strike: Decimal | None = None
    right: Right | None = None
    item: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Listing:
        """The record of one `get_instruments` item (the simulator's own, so it is well formed)."""
        expiry = item.get("expiration_timestamp")
        option_type = item.get("option_type")
        return cls(
            name=str(item["instrument_name"]),
            kind=str(item["kind"]),
            base=str(item["base_currency"]),
            quote=str(item["quote_currency"]),
            settle=str(item.get("settlement_currency") or item["base_currency"]),
            tick_size=_dec(item["tick_size"]),
            tick_steps=tuple(
                (_dec(s["above_price"]), _dec(s["tick_size"])) for s in item.get("tick_size_steps") or ()
            ),
            min_amount=_dec(item["min_trade_amount"]),
            contract_size=_dec(item.get("contract_size", 1)),
            inverse=item.get("instrument_type") == "reversed",
            settlement_period=str(item.get("settlement_period", "")),
            expiry_ms=None if expiry in (None, PERPETUAL_EXPIRY_MS) else int(expiry),
            strike=None if item.get("strike") is None else _dec(item["strike"]),
            right=None if option_type is None else Right(option_type),
            item=dict(item),
        )

    @property
    def is_option(self) -> bool:
        return self.kind in ("option", "option_combo")

    @property
    def linear(self) -> bool:
        """Settled in a USD stablecoin (USDC options and perpetuals)."""
        return self.settle in ("USDC", "USDT")

    @property
    def channel_kind(self) -> str:
        """The `kind` of `trades.{kind}.{currency}` / `user.*.{kind}.{currency}` channels."""
        return self.kind

    def tick_for(self, price: Decimal) -> Decimal:
        """The tick at `price`: `tick_size`, or the last step whose `above_price` it exceeds."""
        tick = self.tick_size
        for above, step in self.tick_steps:
            if abs(price) > above:
                tick = step
        return tick
