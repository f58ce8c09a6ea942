"""An order flow over the test registry (marks for the perpetual and the option), with or without a
journal, and the Deribit fills and order updates the tests feed it."""

from __future__ import annotations

from decimal import Decimal

from tests.support.helpers import OPTION, PERP, registry, ticker
from tradingd.engine import Fill, Liquidity, OrderState, OrderUpdate, Side
from tradingd.engine.model import InstrumentRegistry, MarketState
from tradingd.engine.runtime import OrderFlow
from tradingd.engine.store.journal import OrderJournal

S = 1_000_000_000


def make_flow(journal: OrderJournal | None, reg: InstrumentRegistry | None = None) -> OrderFlow:
    reg = reg if reg is not None else registry()
    market = MarketState(reg)
    market.on_ticker(ticker(PERP.symbol, index=90_000.0, mark=90_010.0))
    market.on_ticker(ticker(OPTION.symbol, index=90_000.0, mark=0.05))
    return OrderFlow(reg, market, lambda _: None, journal=journal)


def fill(
    trade_id: str,
    size: str,
    price: str,
    *,
    oid: str,
    side: Side = Side.BUY,
    inst: str = PERP.symbol,
    liquidity: Liquidity = Liquidity.MAKER,
) -> Fill:
    return Fill(
        venue="deribit",
        instrument=inst,
        ts_exchange=None,
        ts_local=5 * S,
        order_id=oid,
        trade_id=trade_id,
        side=side,
        price=Decimal(price),
        size=Decimal(size),
        fee=Decimal("0.0001"),
        fee_currency="BTC",
        liquidity=liquidity,
    )


def update(oid: str, cid: str, status: OrderState, filled: str = "0") -> OrderUpdate:
    return OrderUpdate(
        venue="deribit",
        instrument=PERP.symbol,
        ts_exchange=None,
        ts_local=4 * S,
        order_id=oid,
        client_order_id=cid,
        status=status,
        side=Side.BUY,
        price=Decimal("90000"),
        size=Decimal("30"),
        filled_size=Decimal(filled),
    )


def restored_flow(journal: OrderJournal | None = None) -> OrderFlow:
    """An order flow over the test registry, the perpetual at index and mark 90,000, its orders and
    ledgers restored from `journal` when one is given (the flow itself journals nothing)."""
    reg = registry()
    market = MarketState(reg)
    market.on_ticker(ticker(PERP.symbol, index=90_000.0, mark=90_000.0))
    flow = OrderFlow(reg, market, lambda _: None)
    if journal is not None:
        flow.restore(journal, now_ns=0)
    return flow
