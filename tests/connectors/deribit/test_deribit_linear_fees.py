"""A linear (USDC) perpetual's fee, found by the simulator's own fee schedule (issue 15): its
`amount` is in the coin (VENUES.md §1.7: "amount is ... base coin for options and linear
futures"; the real ETH_USDC-PERPETUAL order of ws_order_buy_response.json has `amount` 0.001 for
`contracts` 1.0), so the fee is `rate x amount x price` in USDC (Deribit's fee page: "USDC
Perpetuals ... A trade of 10 SOL is executed at a price of 200 USDC", the taker pays 0.05% of
it), never that again times the contract size."""

from __future__ import annotations

from decimal import Decimal

from tradingd.connectors.deribit.fees import DeribitFees
from tradingd.connectors.deribit.instruments import instrument_from_json
from tradingd.engine import Liquidity
from tradingd.engine.model.ledger import Position

ETH_USDC_PERPETUAL = {
    "instrument_name": "ETH_USDC-PERPETUAL",
    "kind": "future",
    "base_currency": "ETH",
    "quote_currency": "USDC",
    "counter_currency": "USDC",
    "settlement_currency": "USDC",
    "instrument_type": "linear",
    "settlement_period": "perpetual",
    "expiration_timestamp": 32503708800000,
    "tick_size": 0.1,
    "min_trade_amount": 0.001,
    "contract_size": 0.001,  # ws_order_buy_response.json: amount 0.001 is contracts 1.0
    "maker_commission": 0.0,
    "taker_commission": 0.0005,
}


def test_a_linear_perpetuals_fee_is_a_share_of_its_coin_amount_at_the_price() -> None:
    inst = instrument_from_json(ETH_USDC_PERPETUAL)
    fee, currency = DeribitFees().fee(inst, Decimal(3000), Decimal(1), Liquidity.TAKER, 3000.0)
    assert (fee, currency) == (Decimal("1.5"), "USDC")  # 0.05% of 1 ETH x 3,000 USDC
    maker, _ = DeribitFees().fee(inst, Decimal(3000), Decimal(1), Liquidity.MAKER, 3000.0)
    assert maker == 0


def test_a_linear_perpetuals_round_trip_realizes_its_coin_amount_times_the_move() -> None:
    """The engine multiplies a linear instrument's size by `contract_size` (underlying per unit
    of size). Deribit's `contract_size` of a USDC perpetual (0.001) is its lot, not that
    multiplier: its amounts are already in the coin. Taken as the multiplier it made PnL, funding
    and turnover 1,000 times too small."""
    inst = instrument_from_json(ETH_USDC_PERPETUAL)
    position = Position(inst)
    one = Decimal(1)
    assert position.apply(one, Decimal(3000), one, one) == 0
    assert position.apply(-one, Decimal(3100), one, one) == Decimal(100)  # 1 ETH, 3,000 -> 3,100
    assert position.turnover_usd == Decimal(6100)


BTC_USDC_CALL = {
    "instrument_name": "BTC_USDC-25DEC26-90000-C",
    "kind": "option",
    "base_currency": "BTC",
    "quote_currency": "USDC",
    "counter_currency": "USDC",
    "settlement_currency": "USDC",
    "instrument_type": "linear",
    "settlement_period": "month",
    "expiration_timestamp": 1_798_185_600_000,
    "strike": 90000.0,
    "option_type": "call",
    "tick_size": 5.0,
    "min_trade_amount": 0.01,
    "contract_size": 0.01,
}


def test_a_linear_options_fee_before_any_index_is_known_is_not_nothing() -> None:
    """`rate x index` per contract (VENUES.md §1.8), capped at 12.5% of the premium. A fill
    simulated before the data gave an index (no ticker yet) was charged `rate x 0`: free."""
    inst = instrument_from_json(BTC_USDC_CALL)
    price, size = Decimal(4500), Decimal(1)
    known, currency = DeribitFees().fee(inst, price, size, Liquidity.TAKER, 92_000.0)
    assert (known, currency) == (Decimal("46.0"), "USDC")  # 0.05% of 92,000 USDC
    for index in (None, 0.0, float("nan")):
        unknown, _ = DeribitFees().fee(inst, price, size, Liquidity.TAKER, index)
        assert unknown == Decimal("45.0")  # the strike stands in: 0.05% of 90,000 USDC
    capped, _ = DeribitFees().fee(inst, Decimal(100), size, Liquidity.TAKER, None)
    assert capped == Decimal("12.5")  # 12.5% of a 100 USDC premium
