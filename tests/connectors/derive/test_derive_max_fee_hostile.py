"""The signed `max_fee` (§3.6) is the most the venue may charge an order, and it is computed from
the venue's own tickers (the index, an option's mark): one absurd ticker must not sign an
unbounded cap (round 13, hostile venue)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.connectors.derive.test_derive_instruments import fees_on
from tradingd.connectors.derive.fees import DeriveFees

ONE = Decimal(1)


@pytest.mark.parametrize("index", [3e9, 1e15, 1e30, 1.0])
def test_a_perpetuals_index_far_from_the_orders_price_signs_no_cap_of_its_own(index: float) -> None:
    """An ETH index of 3e9 signed 3,000,000.2 USDC per unit (1e30: InvalidOperation out of the
    order's signing); at the real index it is 3.21. An index beyond 4x of the order's price is
    taken as unknown: the price stands in, as before any ticker."""
    perp, _ = fees_on("perps/instrument_eth.json")  # taker 0.0005, base fee 0.1
    fees = DeriveFees()
    unknown = fees.max_fee(perp, price=Decimal(3000), size=ONE, index=None)
    assert fees.max_fee(perp, price=Decimal(3000), size=ONE, index=index) == unknown == Decimal("3.2")
    assert fees.max_fee(perp, price=Decimal(3000), size=ONE, index=3010.0) == Decimal("3.21")


def test_an_options_index_far_from_its_strike_signs_no_cap_of_its_own() -> None:
    """An option's fee is on its underlying (size x index), capped at 12.5% of its value (the
    mark): an index of 1e12 signed the cap at the mark's 12.5% whatever the index, but without a
    mark (none yet, or a cap above the fee) 1e12 x 0.001 per unit. Beyond 10x of the strike the
    index is unknown: the strike stands in, as before any ticker."""
    option, _ = fees_on("options/instrument_eth.json")  # taker 0.001, base fee 0.5
    fees = DeriveFees()
    price, size = Decimal(100), Decimal(2)
    unknown = fees.max_fee(option, price=price, size=size, index=None)
    assert fees.max_fee(option, price=price, size=size, index=1e12) == unknown
    assert fees.max_fee(option, price=price, size=size, index=1e12, mark=1e9) == unknown
    # A real index still counts, and a mark still caps.
    assert fees.max_fee(option, price=price, size=size, index=3000.0) == Decimal("6.5")
    assert fees.max_fee(option, price=price, size=size, index=3000.0, mark=20.0) == Decimal("5.0")
