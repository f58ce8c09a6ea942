"""USD accounting of coin-quoted options and inverse perpetuals (numbers computed by hand)."""

from __future__ import annotations

import math
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.helpers import OPTION, PERP, registry, ticker
from tradingd.engine import Fill, FillReversal, Instrument, InstrumentKind, Liquidity, Side
from tradingd.engine.model import InstrumentRegistry, Ledger, MarketState


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
    # The cost basis is 5000/90000 BTC (exact to 34 digits): the harmonic average it implies.
    assert pos.qty == Decimal(5000) and pos.avg == pytest.approx(Decimal(90_000), rel=Decimal("1e-30"))
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


# -- never at an unknown rate (issue 13) --------------------------------------------------------


def test_a_fill_before_the_first_index_waits_in_coin_instead_of_booking_at_zero() -> None:
    """The issue's scenario: buy an option at 0.05 BTC before any index price, sell it at 0.05
    BTC after: nothing was made. Booked at rate 0 the buy cost 0 USD and the sale made 5,000."""
    market = MarketState(registry())
    ledger = Ledger("s", market)
    ledger.on_fill(fill(OPTION.symbol, "buy", "1", "0.05"), OPTION)
    # The quantity counts at once (risk checks read it); its USD value waits.
    assert ledger.position("deribit", OPTION.symbol) == Decimal(1)
    assert ledger.realized_usd == 0 and ledger.equity_usd() == 0
    market.on_ticker(ticker(PERP.symbol, index=100_000.0, mark=100_000.0))
    realized = ledger.on_fill(fill(OPTION.symbol, "sell", "1", "0.05"), OPTION)
    assert realized == 0
    assert ledger.realized_usd == 0 and ledger.equity_usd() == 0
    assert ledger.position("deribit", OPTION.symbol) == 0


def test_a_waiting_fill_is_booked_at_the_first_rate_the_market_learns() -> None:
    market = MarketState(registry())
    ledger = Ledger("s", market)
    ledger.on_fill(fill(OPTION.symbol, "buy", "1", "0.05", fee="0.0003"), OPTION)
    ledger.on_fill(fill(OPTION.symbol, "buy", "1", "0.06"), OPTION)  # behind the first, in order
    assert ledger.view().waiting_fills == 2 and ledger.view().positions == {("deribit", OPTION.symbol): 2}
    market.on_ticker(ticker(PERP.symbol, index=100_000.0, mark=100_000.0))  # the first index: booked now
    assert ledger.waiting == 0
    assert ledger.fees_usd == Decimal(30)  # 0.0003 BTC at 100000
    assert ledger.positions[("deribit", OPTION.symbol)].avg == Decimal(5_500)  # (5000 + 6000) / 2
    market.on_ticker(ticker(PERP.symbol, index=120_000.0, mark=120_000.0))
    # Sold at 0.05 BTC = 6000 USD now: 2 x 6000 - (5000 + 6000) = +1000, not 2 x 6000 - 0.
    assert ledger.on_fill(fill(OPTION.symbol, "sell", "2", "0.05"), OPTION) == Decimal(1_000)
    assert ledger.equity_usd() == Decimal(1_000 - 30)


def test_the_fills_own_index_price_books_it_when_the_market_has_none() -> None:
    market = MarketState(registry())
    ledger = Ledger("s", market)
    ledger.on_fill(
        msgspec.structs.replace(fill(OPTION.symbol, "buy", "1", "0.05", fee="0.0003"), index_price=100_000.0),
        OPTION,
    )
    assert ledger.waiting == 0
    assert ledger.fees_usd == Decimal(30)
    assert ledger.positions[("deribit", OPTION.symbol)].avg == Decimal(5_000)
    # An index price no money can be booked at (0, NaN) is no rate: the fill waits.
    for bad in (0.0, math.nan, math.inf):
        waiting = Ledger("w", MarketState(registry()))
        waiting.on_fill(
            msgspec.structs.replace(fill(OPTION.symbol, "buy", "1", "0.05"), index_price=bad), OPTION
        )
        assert waiting.waiting == 1 and waiting.realized_usd == 0


def test_a_settlement_of_a_position_still_waiting_books_after_its_fills() -> None:
    market = MarketState(registry())
    ledger = Ledger("s", market)
    ledger.on_fill(fill(OPTION.symbol, "buy", "1", "0.05"), OPTION)
    assert ledger.settle(OPTION, 0.1) == 0  # waits behind the fill (and for its own rate)
    assert ledger.position("deribit", OPTION.symbol) == 0 and ledger.waiting == 2
    market.on_ticker(ticker(PERP.symbol, index=100_000.0, mark=100_000.0))
    assert ledger.waiting == 0
    assert ledger.realized_usd == Decimal(10_000 - 5_000)


# -- fees in the instrument itself, funding (COMMON.md shared decisions) --------------------------

SHARES = Instrument(
    venue="polymarket",
    symbol="tok-yes",
    kind=InstrumentKind.OUTCOME,
    base="0xcondition",
    quote="PUSD",
    settle="PUSD",
    tick_size="0.01",
    min_size="5",
    size_step="0.01",
)


def share_fill(side: str, size: str, price: str, fee: str, fee_currency: str) -> Fill:
    return Fill(
        venue="polymarket",
        instrument=SHARES.symbol,
        ts_exchange=None,
        ts_local=0,
        trade_id="p1",
        side=Side(side),
        price=Decimal(price),
        size=Decimal(size),
        fee=Decimal(fee),
        fee_currency=fee_currency,
        liquidity=Liquidity.TAKER,
    )


def test_a_fee_taken_in_shares_leaves_the_position_the_shares_received() -> None:
    """A Polymarket taker buy pays its fee in shares: a buy of 100 at 0.50 with a 2-share fee
    receives 98, and the fee is worth 2 x 0.50 = 1 USD. Selling the 98 at 0.50 makes 0, net -1."""
    ledger = Ledger("s", MarketState(InstrumentRegistry([SHARES])))
    ledger.on_fill(share_fill("buy", "100", "0.50", "2", SHARES.symbol), SHARES)
    assert ledger.position("polymarket", SHARES.symbol) == Decimal(98)
    assert ledger.fees_usd == Decimal(1)
    pos = ledger.positions[("polymarket", SHARES.symbol)]
    assert pos.avg == Decimal("0.5") and pos.turnover_usd == Decimal(50)
    assert ledger.on_fill(share_fill("sell", "98", "0.50", "0", "PUSD"), SHARES) == 0
    assert ledger.position("polymarket", SHARES.symbol) == 0
    assert ledger.equity_usd() == Decimal(-1)  # paid 50, received 49
    # A fee in the collateral (a sell's) stays a cash fee: the position is the size.
    other = Ledger("o", MarketState(InstrumentRegistry([SHARES])))
    other.on_fill(share_fill("buy", "100", "0.50", "1", "PUSD"), SHARES)
    assert other.position("polymarket", SHARES.symbol) == Decimal(100) and other.fees_usd == Decimal(1)


def test_voiding_a_fill_whose_fee_was_in_shares_takes_back_the_shares_received() -> None:
    ledger = Ledger("s", MarketState(InstrumentRegistry([SHARES])))
    f = share_fill("buy", "100", "0.50", "2", SHARES.symbol)
    ledger.on_fill(f, SHARES)
    ledger.reverse(_reversal(f), SHARES)
    pos = ledger.positions[("polymarket", SHARES.symbol)]
    assert (pos.qty, pos.booked, pos.avg, pos.turnover_usd) == (Decimal(0),) * 4
    assert ledger.fees_usd == 0 and ledger.realized_usd == 0 and ledger.fills == 0


def test_funding_is_a_cash_flow_into_realized_pnl_counted_apart() -> None:
    _, ledger = setup(100_000.0)
    assert ledger.funding(PERP, Decimal("0.001"), "BTC", 100_000.0) == Decimal(100)  # received
    assert ledger.funding(PERP, Decimal("-25"), "USDC", None) == Decimal(-25)  # paid, USD-like: 1
    assert ledger.funding_usd == Decimal(75) and ledger.realized_usd == Decimal(75)
    assert ledger.view().funding == Decimal(75) and ledger.view().net_pnl == Decimal(75)
    assert ledger.positions[("deribit", PERP.symbol)].funding_usd == Decimal(75)
    # No rate for its currency yet: it waits, and is booked at the first one.
    fresh = Ledger("f", MarketState(registry()))
    assert fresh.funding(PERP, Decimal("0.001"), "BTC") == 0 and fresh.waiting == 1
    fresh.market.on_ticker(ticker(PERP.symbol, index=90_000.0, mark=90_000.0))
    assert fresh.funding_usd == Decimal(90) and fresh.realized_usd == Decimal(90)
