"""The simulator's fee rule (`simulators/polymarket/fees.py`) against the worked numbers of the
venue's fee page and of captured V2 fills: `C x feeRate x p x (1 - p)`, floored to 0.00001."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradingd.simulators.polymarket.fees import FeeSchedule, taker_fee

D = Decimal


@pytest.mark.parametrize(
    ("size", "price", "rate", "expected", "source"),
    [
        # The live V2 taker fill of py-clob-client-v2 #107: BUY 25 @ 0.13 at fd.r 0.05; the
        # account's pUSD went 388.39 -> 385.00, 3.25 of notional and 0.14 of fee.
        ("25", "0.13", "0.05", "0.14137", "py-clob-client-v2 #107"),
        # py-clob-client #311: 5 @ 0.29 at the sports rate 0.03.
        ("5", "0.29", "0.03", "0.03088", "py-clob-client #311"),
        # 100 shares at the peak (p = 0.5) of the crypto rate 0.07 of the fee page's table.
        ("100", "0.5", "0.07", "1.75", "docs fee table, Crypto 0.07"),
        # "The smallest fee charged is 0.00001 ... anything smaller rounds to zero".
        ("1", "0.01", "0.0001", "0", "docs Fee Precision"),
        ("1", "0.5", "0.00004", "0.00001", "docs Fee Precision"),
    ],
)
def test_worked_examples(size: str, price: str, rate: str, expected: str, source: str) -> None:
    assert taker_fee(D(size), D(price), FeeSchedule(rate=D(rate))) == D(expected), source


def test_a_fee_free_market_and_a_zero_rate_charge_nothing() -> None:
    assert taker_fee(D(100), D("0.5"), None) == 0
    assert taker_fee(D(100), D("0.5"), FeeSchedule(rate=D(0))) == 0


def test_the_exponent_raises_the_curve() -> None:
    # The older schedule of the 5- and 15-minute crypto markets: rate 0.25, exponent 2.
    assert taker_fee(D(100), D("0.5"), FeeSchedule(rate=D("0.25"), exponent=D(2))) == D("1.5625")


@given(
    size=st.decimals(min_value=D("0.01"), max_value=D(100_000), places=2),
    ticks=st.integers(min_value=1, max_value=99),
    rate=st.decimals(min_value=D(0), max_value=D("0.1"), places=4),
)
def test_symmetric_never_above_the_exact_amount_and_at_most_a_quantum_below(
    size: Decimal, ticks: int, rate: Decimal
) -> None:
    p = D(ticks) / 100
    schedule = FeeSchedule(rate=rate)
    fee = taker_fee(size, p, schedule)
    exact = size * rate * p * (1 - p)
    assert fee == taker_fee(size, 1 - p, schedule)  # p(1-p): the same either side of 0.5
    assert 0 <= exact - fee < D("0.00001") and fee == fee.quantize(D("0.00001"))
