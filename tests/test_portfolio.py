"""USD accounting of coin-quoted options and inverse perpetuals (numbers computed by hand)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import Fill, FillReversal, Ledger, Liquidity, MarketState, Side
from tests.helpers import OPTION, PERP, registry, ticker


def fill(inst: str, side: str, size: str, price: str, fee: str = "0") -> Fill:
    return Fill(
        venue="deribit",
        instrument=inst,
        ts_exchange=None,
        ts_local=0,
        trade_id="t",
        side=Side(side),
        price=Decimal(price),
        size=Decimal(size),
        fee=Decimal(fee),
        fee_currency="BTC",
        liquidity=Liquidity.TAKER,
    )


def setup(index: float) -> tuple[MarketState, Ledger]:
    market = MarketState(registry())
    market.on_ticker(ticker(PERP.symbol, index=index, mark=index))
    return market, Ledger("s", market)


def test_coin_quoted_option_cash_flows_convert_at_each_fill() -> None:
    market, ledger = setup(100_000.0)
    ledger.on_fill(fill(OPTION.symbol, "buy", "2", "0.05", fee="0.0006"), OPTION)  # pays 2 x 5000 USD
    assert ledger.fees_usd == Decimal(60)  # exact: money is Decimal
    market.on_ticker(ticker(PERP.symbol, index=110_000.0, mark=110_000.0))
    market.on_ticker(ticker(OPTION.symbol, index=110_000.0, mark=0.06))
    assert ledger.unrealized_usd() == Decimal(2 * (6_600 - 5_000))  # 0.06 x 110000 = 6600
    market.on_ticker(ticker(PERP.symbol, index=105_000.0, mark=105_000.0))
    realized = ledger.on_fill(fill(OPTION.symbol, "sell", "1", "0.055"), OPTION)
    assert realized == Decimal(5_775 - 5_000)  # 0.055 x 105000 = 5775
    assert ledger.position("deribit", OPTION.symbol) == Decimal(1)
    assert ledger.equity_usd() == Decimal(775 + (6_300 - 5_000) - 60)


def test_inverse_perpetual_pnl_is_in_coin_at_harmonic_entry() -> None:
    _, ledger = setup(100_000.0)
    ledger.on_fill(fill(PERP.symbol, "buy", "10000", "100000"), PERP)
    ledger.on_fill(fill(PERP.symbol, "buy", "10000", "120000"), PERP)
    pos = ledger.positions[("deribit", PERP.symbol)]
    assert float(pos.avg) == pytest.approx(20_000 / (10_000 / 100_000 + 10_000 / 120_000))  # 109090.9
    # Close everything at 110000 with the index there: coin PnL times the index.
    _, ledger2 = setup(110_000.0)
    ledger2.on_fill(fill(PERP.symbol, "buy", "10000", "100000"), PERP)
    realized = ledger2.on_fill(fill(PERP.symbol, "sell", "10000", "110000"), PERP)
    assert realized == pytest.approx(Decimal(1000), abs=Decimal("1e-18"))  # 10000 x (1/100k - 1/110k) x 110k


def test_short_inverse_and_flip_through_zero() -> None:
    market, ledger = setup(90_000.0)
    ledger.on_fill(fill(PERP.symbol, "sell", "10000", "100000"), PERP)
    realized = ledger.on_fill(fill(PERP.symbol, "buy", "15000", "90000"), PERP)  # close 10000, open +5000
    assert realized == pytest.approx(Decimal(1000), abs=Decimal("1e-18"))  # -10000 x (1/100k - 1/90k) x 90k
    pos = ledger.positions[("deribit", PERP.symbol)]
    assert pos.qty == Decimal(5000) and pos.avg == 90_000
    market.on_ticker(ticker(PERP.symbol, index=99_000.0, mark=99_000.0))
    assert ledger.unrealized_usd() == pytest.approx(
        Decimal(500), abs=Decimal("1e-18")
    )  # 5000 x (1/90k - 1/99k) x 99k


def test_settlement_closes_at_the_delivery_price() -> None:
    _, ledger = setup(100_000.0)
    ledger.on_fill(fill(OPTION.symbol, "buy", "1", "0.05"), OPTION)  # 5000 USD
    realized = ledger.settle(OPTION, (100_000 - 90_000) / 100_000)  # a call 10k in the money: 0.1 BTC
    assert realized == Decimal(10_000 - 5_000)
    assert ledger.position("deribit", OPTION.symbol) == 0
    assert ledger.unrealized_usd() == 0


def _reversal(f: Fill) -> FillReversal:
    return FillReversal(
        venue=f.venue,
        instrument=f.instrument,
        ts_exchange=None,
        ts_local=1,
        trade_id=f.trade_id,
        side=f.side,
        price=f.price,
        size=f.size,
        fee=f.fee,
        fee_currency=f.fee_currency,
    )


_STEPS = st.lists(
    st.tuples(
        st.sampled_from(["buy", "sell"]),
        st.integers(1, 50).map(lambda n: str(n * 10)),
        st.integers(80_000, 120_000).map(str),
    ),
    min_size=1,
    max_size=8,
)


@given(steps=_STEPS, inverse=st.booleans())
def test_voiding_the_latest_fill_restores_the_ledger_as_if_it_never_happened(
    steps: list[tuple[str, str, str]], inverse: bool
) -> None:
    inst = PERP if inverse else OPTION
    px = (lambda p: p) if inverse else (lambda p: str(Decimal(p) / 1_000_000))
    *before, last = [fill(inst.symbol, side, size, px(price), fee="0.0001") for side, size, price in steps]
    _, without = setup(100_000.0)
    _, voided = setup(100_000.0)
    for f in before:
        without.on_fill(f, inst)
        voided.on_fill(f, inst)
    voided.on_fill(last, inst)
    voided.reverse(_reversal(last), inst)
    a, b = without.positions.get((inst.venue, inst.symbol)), voided.positions[(inst.venue, inst.symbol)]
    assert b.qty == (a.qty if a else 0)
    assert voided.fills == without.fills
    assert voided.fees_usd == without.fees_usd  # exact: fees in Decimal add and take back exactly
    q_before = a.qty if a is not None else Decimal(0)
    if q_before == 0 or (last.side.sign > 0) == (q_before > 0):
        # The voided fill added to (or opened) the position: undone exactly.
        assert b.avg == pytest.approx(a.avg if a else Decimal(0), rel=Decimal("1e-20"), abs=Decimal("1e-20"))
        assert voided.realized_usd == without.realized_usd
        assert b.turnover_usd == (a.turnover_usd if a else 0)
