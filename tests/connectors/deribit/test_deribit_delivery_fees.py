"""Deribit's delivery fee (`DeribitFees.delivery_fee`): "For deliveries (expiration) half the
fees of taker orders are charged ... for options the fee can never be more than 12.5% of the
value of the option" (deribit.com/pages/docs, "Fees"), at today's taker rates (VENUES.md §1.8).
A backtest delivered every expiry free."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tradingd.connectors.deribit.fees import DeribitFees
from tradingd.connectors.deribit.instruments import instrument_from_json
from tradingd.connectors.derive.fees import DeriveFees
from tradingd.engine.model.fees import DeliveryFeeModel

BTC_CALL: dict[str, Any] = {
    "instrument_name": "BTC-25DEC26-90000-C",
    "kind": "option",
    "base_currency": "BTC",
    "quote_currency": "BTC",
    "counter_currency": "USD",
    "settlement_currency": "BTC",
    "instrument_type": "reversed",
    "settlement_period": "month",
    "expiration_timestamp": 1_798_185_600_000,
    "strike": 90000.0,
    "option_type": "call",
    "tick_size": 0.0001,
    "min_trade_amount": 0.1,
    "contract_size": 1.0,
    "maker_commission": 0.0003,
    "taker_commission": 0.0003,
}
BTC_FUTURE: dict[str, Any] = {
    "instrument_name": "BTC-25DEC26",
    "kind": "future",
    "base_currency": "BTC",
    "quote_currency": "USD",
    "counter_currency": "USD",
    "settlement_currency": "BTC",
    "instrument_type": "reversed",
    "settlement_period": "month",
    "expiration_timestamp": 1_798_185_600_000,
    "tick_size": 2.5,
    "min_trade_amount": 10,
    "contract_size": 10,
    "maker_commission": 0.0,
    "taker_commission": 0.0005,
}
ETH_USDC_FUTURE: dict[str, Any] = {
    **BTC_FUTURE,
    "instrument_name": "ETH_USDC-25DEC26",
    "base_currency": "ETH",
    "quote_currency": "USDC",
    "counter_currency": "USDC",
    "settlement_currency": "USDC",
    "instrument_type": "linear",
    "min_trade_amount": 0.001,
    "contract_size": 0.001,
}
BTC_USDC_PUT: dict[str, Any] = {
    **BTC_CALL,
    "instrument_name": "BTC_USDC-25DEC26-90000-P",
    "quote_currency": "USDC",
    "counter_currency": "USDC",
    "settlement_currency": "USDC",
    "instrument_type": "linear",
    "option_type": "put",
    "tick_size": 5.0,
    "min_trade_amount": 0.01,
    "contract_size": 0.01,
    "maker_commission": 0.0001,
    "taker_commission": 0.0005,
}


def test_a_coin_option_delivered_pays_half_the_taker_rate_capped_at_an_eighth_of_its_value() -> None:
    inst = instrument_from_json(BTC_CALL)
    fees = DeribitFees()
    assert isinstance(fees, DeliveryFeeModel)
    # 2 calls delivered at 92,000: worth 2,000 / 92,000 BTC each; half of 0.0003 BTC a contract.
    value = Decimal(2000) / Decimal(92000)
    assert fees.delivery_fee(inst, value, Decimal(2), Decimal(92000)) == (Decimal("0.0003"), "BTC")
    assert fees.delivery_fee(inst, value, Decimal(-2), Decimal(92000)) == (Decimal("0.0003"), "BTC")
    # Barely in the money (100 USD at 90,100): 12.5% of its value, 0.0000138735 BTC a contract.
    small = Decimal(100) / Decimal(90100)
    assert fees.delivery_fee(inst, small, Decimal(1), Decimal(90100)) == (Decimal("0.00013873"), "BTC")
    # Worthless: nothing.
    assert fees.delivery_fee(inst, Decimal(0), Decimal(1), Decimal(80000)) == (Decimal(0), "BTC")


def test_a_future_delivered_pays_half_the_taker_rate_of_its_underlying() -> None:
    inverse = instrument_from_json(BTC_FUTURE)
    # 10,000 USD at 100,000: 0.1 BTC of underlying; 0.025% of it.
    assert DeribitFees().delivery_fee(inverse, Decimal(100000), Decimal(-10000), Decimal(100000)) == (
        Decimal("0.000025"),
        "BTC",
    )
    linear = instrument_from_json(ETH_USDC_FUTURE)
    # 2 ETH at 3,000 USDC: 0.025% of 6,000 USDC.
    assert DeribitFees().delivery_fee(linear, Decimal(3000), Decimal(2), Decimal(3000)) == (
        Decimal("1.5"),
        "USDC",
    )
    # A config override of the taker rate halves too: the rule is "half the fees of taker orders".
    assert DeribitFees(future_taker=Decimal("0.001")).delivery_fee(
        linear, Decimal(3000), Decimal(2), Decimal(3000)
    ) == (Decimal("3.0"), "USDC")


def test_a_usdc_option_delivered_pays_half_a_takers_share_of_the_index() -> None:
    inst = instrument_from_json(BTC_USDC_PUT)
    # A put delivered at 80,000: worth 10,000 USDC; half of 0.0005 x 80,000 = 20 USDC a contract.
    assert DeribitFees().delivery_fee(inst, Decimal(10000), Decimal(1), Decimal(80000)) == (
        Decimal("20.0000"),
        "USDC",
    )
    # Worth 100 USDC (at 89,900): capped at 12.5 USDC.
    assert DeribitFees().delivery_fee(inst, Decimal(100), Decimal(1), Decimal(89900)) == (
        Decimal("12.500"),
        "USDC",
    )


def test_derive_documents_no_settlement_fee_and_charges_none() -> None:
    # help.derive.xyz "What are the fees?": trading, liquidation and USDC borrowing, no settlement.
    inst = instrument_from_json(BTC_USDC_PUT)
    fees = DeriveFees()
    assert isinstance(fees, DeliveryFeeModel)
    assert fees.delivery_fee(inst, Decimal(10000), Decimal(1), Decimal(80000)) == (Decimal(0), "USDC")
