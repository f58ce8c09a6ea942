"""The simulator's fee schedule against the worked examples of Deribit's fee page
(support.deribit.com/hc/en-us/articles/25944746248989-Fees; VENUES.md §1.8 "Fees")."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tradingd.simulators.deribit.fees import FeeSchedule
from tradingd.simulators.deribit.instruments import Listing

FEES = FeeSchedule()
D = Decimal


def listing(**item: Any) -> Listing:
    base = {
        "instrument_name": "BTC-PERPETUAL",
        "kind": "future",
        "base_currency": "BTC",
        "quote_currency": "USD",
        "settlement_currency": "BTC",
        "instrument_type": "reversed",
        "settlement_period": "perpetual",
        "expiration_timestamp": 32503708800000,
        "tick_size": 0.5,
        "min_trade_amount": 10,
        "contract_size": 10,
    }
    return Listing.from_item({**base, **item})


PERP = listing()
WEEKLY = listing(instrument_name="BTC-4DEC26", settlement_period="week", expiration_timestamp=1796371200000)
ETH_PERP = listing(
    instrument_name="ETH-PERPETUAL",
    base_currency="ETH",
    settlement_currency="ETH",
    tick_size=0.05,
    contract_size=1,
)
USDC_PERP = listing(
    instrument_name="SOL_USDC-PERPETUAL",
    base_currency="SOL",
    quote_currency="USDC",
    settlement_currency="USDC",
    instrument_type="linear",
    tick_size=0.01,
    min_trade_amount=0.1,
    contract_size=0.1,
)
OPTION = listing(
    instrument_name="BTC-27NOV26-90000-C",
    kind="option",
    quote_currency="BTC",
    instrument_type=None,
    settlement_period="week",
    expiration_timestamp=1795766400000,
    option_type="call",
    strike=90000,
    tick_size=0.0001,
    min_trade_amount=0.1,
    contract_size=1,
)
USDC_OPTION = listing(
    instrument_name="SOL_USDC-27NOV26-200-C",
    kind="option",
    base_currency="SOL",
    quote_currency="USDC",
    settlement_currency="USDC",
    instrument_type="linear",
    settlement_period="week",
    expiration_timestamp=1795766400000,
    option_type="call",
    strike=200,
    tick_size=0.01,
    min_trade_amount=1,
    contract_size=1,
)


def test_the_pages_futures_examples() -> None:
    # "BTC Weekly Futures: a trade of $10,000 is executed at a price of $100,000. The taker ...
    # will pay 0.05% of 0.1 BTC as a fee, which is 0.00005 BTC. The maker ... will receive a
    # rebate of 0.01% of 0.1 BTC, which is 0.00001 BTC."
    assert FEES.fee(WEEKLY, price=D(100_000), amount=D(10_000), maker=False) == D("0.00005")
    assert FEES.fee(WEEKLY, price=D(100_000), amount=D(10_000), maker=True) == D("-0.00001")
    # "BTC Futures & Perpetual: a trade of $50,000 at $100,000: the taker pays 0.05% of 0.5 BTC,
    # which is 0.00025 BTC. The maker in the trade will not pay a fee."
    assert FEES.fee(PERP, price=D(100_000), amount=D(50_000), maker=False) == D("0.00025")
    assert FEES.fee(PERP, price=D(100_000), amount=D(50_000), maker=True) == 0
    # "ETH Futures & Perpetual: a trade of $20,000 at $4,000: 0.05% of 5 ETH, which is 0.0025 ETH."
    assert FEES.fee(ETH_PERP, price=D(4_000), amount=D(20_000), maker=False) == D("0.0025")
    # "USDC Perpetuals: a trade of 10 SOL at 200 USDC": the taker pays 0.05% of 2,000 USDC.
    assert FEES.fee(USDC_PERP, price=D(200), amount=D(10), maker=False) == D("1")


def test_option_fees_are_per_contract_and_capped_at_an_eighth_of_the_price() -> None:
    # 0.0003 BTC a contract, maker and taker alike.
    assert FEES.fee(OPTION, price=D("0.05"), amount=D(2), maker=False) == D("0.0006")
    assert FEES.fee(OPTION, price=D("0.05"), amount=D(2), maker=True) == D("0.0006")
    # "if an option is traded at 0.0001 BTC, the taker fee will be 0.0000125 BTC (instead of
    # 0.0003 BTC), which is calculated as 12.5% of 0.0001 BTC."
    assert FEES.fee(OPTION, price=D("0.0001"), amount=D(1), maker=False) == D("0.0000125")
    # USDC linear options: 0.0001 x index (maker), 0.0005 x index (taker), same cap.
    assert FEES.fee(USDC_OPTION, price=D(10), amount=D(1), maker=True, index=D(200)) == D("0.02")
    assert FEES.fee(USDC_OPTION, price=D(10), amount=D(1), maker=False, index=D(200)) == D("0.1")
    assert FEES.fee(USDC_OPTION, price=D("0.4"), amount=D(1), maker=False, index=D(200)) == D("0.05")


@pytest.mark.parametrize(
    ("inst", "delivery_price", "index", "amount", "fee"),
    [
        # Half the taker fee: 0.025% of a future's underlying at delivery ($50,000 at $100,000).
        (WEEKLY, D(100_000), D(100_000), D(50_000), D("0.000125")),
        # Options: 0.015% of the underlying (0.00015 BTC a contract), capped at 12.5% of its value.
        (OPTION, D("0.1"), D(100_000), D(2), D("0.0003")),
        (OPTION, D("0.0008"), D(90_800), D(1), D("0.0001")),
        (OPTION, D(0), D(80_000), D(-1), D(0)),  # expired worthless: nothing to pay
    ],
)
def test_delivery_costs_half_a_taker_fee(
    inst: Listing, delivery_price: Decimal, index: Decimal, amount: Decimal, fee: Decimal
) -> None:
    assert FEES.delivery_fee(inst, delivery_price=delivery_price, index=index, amount=amount) == fee


def test_fees_are_charged_in_whole_1e8_as_the_venues_fills_show() -> None:
    """VENUES.md §1.6's `user.trades` capture: 20 USD of BTC-PERPETUAL taken at 8,954 when the
    taker rate was 0.075 % paid 0.00000168 BTC (1.675e-6 to 1e-8); a maker's zero is a plain 0,
    not 0E-8 (which reached the connector's log as "0E+1")."""
    then = FeeSchedule(future_taker=D("0.00075"))
    assert str(then.fee(PERP, price=D(8954), amount=D(20), maker=False)) == "0.00000168"
    assert str(FEES.fee(PERP, price=D("91274.5"), amount=D(20), maker=True)) == "0"
    assert str(FEES.fee(PERP, price=D(100_000), amount=D(50_000), maker=False)) == "0.00025"
