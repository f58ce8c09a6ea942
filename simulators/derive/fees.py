"""The simulated Derive's fee schedule (Decimal), written from Derive's own fee page, not from the
connector's fee model.

Source: help.derive.xyz, "What are the fees?" (articles/8691534; also docs.derive.xyz/docs/trading):

    Instrument | Maker                   | Taker
    Perp       | 0.01% x notional volume | $0.1 base fee + 0.06% x notional volume
    Option     | 0.03% x notional volume | $0.5 base fee + 0.04% x notional volume
    "takers pay a base fee ... per order, regardless of order size"
    "Option fees are capped at 12.5% of the value of the option."

with its worked examples (the tests check them): Alice takes 2 ETH $2,000 puts with spot at
$2,200 and pays $0.50 + 0.04% x $4,400 = $2.26; Bob's resting 0.1 BTC perp short filled with
spot at $43,000 pays 0.01% x $4,300 = $0.43 as maker, Charlie as taker $0.10 + 0.06% x $4,300
= $2.68. (The page writes the rates as "0.0004%" in the examples; the arithmetic is 0.04%.)

How the simulator reads it:
- notional = amount x the index (spot) price of the underlying, for options as for perps;
- the rates and the base fee are the instrument's own (`maker_fee_rate`, `taker_fee_rate`,
  `base_fee` of `get_instruments`, VENUES.md §3.2), the page's numbers when an item has none;
- the base fee is charged once per taker order, on its first execution: a taker order that
  sweeps three levels pays it once;
- an option's fee (base fee included) is capped at `mark_price_fee_rate_cap` (12.5% by the page)
  of the option's value, amount x its mark price (the field's name says mark price);
- fees are USDC, kept exact (no rounding: Derive's own `trade_fee`s carry 18 decimals).

`max_fee` (§3.6) is signed per unit of amount; an order whose `max_fee` is below the taker fee
this schedule estimates per unit is refused (the venue's `signed_max_fee_too_low`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

import attrs

from .instruments import Listing

__all__ = ["PUBLISHED", "FeeSchedule"]

# (maker rate, taker rate, taker base fee, option cap) per instrument type: the page's table.
PUBLISHED: Final[dict[str, tuple[Decimal, Decimal, Decimal, Decimal | None]]] = {
    "option": (Decimal("0.0003"), Decimal("0.0004"), Decimal("0.5"), Decimal("0.125")),
    "perp": (Decimal("0.0001"), Decimal("0.0006"), Decimal("0.1"), None),
    "erc20": (Decimal("0.0001"), Decimal("0.0006"), Decimal("0"), None),
}


@attrs.frozen
class FeeSchedule:
    """The fees of one execution (module docstring)."""

    def rates(self, listing: Listing) -> tuple[Decimal, Decimal, Decimal, Decimal | None]:
        """(maker rate, taker rate, base fee, cap) of `listing`: its own where it states them
        (all zero is a free instrument), else the page's."""
        maker, taker, base, cap = PUBLISHED[listing.kind]
        if listing.states_fees:
            maker, taker, base = listing.maker_rate, listing.taker_rate, listing.base_fee
        if listing.kind == "option" and listing.cap is not None and listing.cap > 0:
            cap = listing.cap
        return maker, taker, base, cap if listing.kind == "option" else None

    def fee(
        self,
        listing: Listing,
        amount: Decimal,
        *,
        index: Decimal,
        mark: Decimal,
        taker: bool,
        base_fee: bool,
    ) -> Decimal:
        """The USDC fee of executing `amount` of `listing` as taker or maker; `base_fee`: this is
        the taker order's first execution (its base fee is due)."""
        maker_rate, taker_rate, base, cap = self.rates(listing)
        fee = (taker_rate if taker else maker_rate) * abs(amount) * index
        if taker and base_fee:
            fee += base
        if cap is not None and mark > 0:
            fee = min(fee, cap * abs(amount) * mark)
        return fee

    def estimate_per_unit(
        self, listing: Listing, amount: Decimal, *, index: Decimal, mark: Decimal
    ) -> Decimal:
        """The taker fee per unit of a whole order of `amount`: what `max_fee` must cover."""
        whole = self.fee(listing, amount, index=index, mark=mark, taker=True, base_fee=True)
        return whole / amount
