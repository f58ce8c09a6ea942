"""Builders shared by the tests: instruments shaped like Deribit's, requests, events."""

from __future__ import annotations

from decimal import Decimal

from tradingd.engine import (
    BookUpdate,
    Instrument,
    InstrumentKind,
    OptionRight,
    OrderRequest,
    Side,
    Ticker,
    Trade,
)
from tradingd.engine.model import InstrumentRegistry

PERP = Instrument(
    venue="deribit",
    symbol="BTC-PERPETUAL",
    kind=InstrumentKind.PERPETUAL,
    base="BTC",
    quote="USD",
    settle="BTC",
    tick_size="0.5",
    min_size="10",
    contract_size="10",
    inverse=True,
    maker_fee="0",
    taker_fee="0.0005",
)
OPTION = Instrument(
    venue="deribit",
    symbol="BTC-25DEC26-90000-C",
    kind=InstrumentKind.OPTION,
    base="BTC",
    quote="BTC",
    settle="BTC",
    tick_size="0.0001",
    min_size="0.1",
    contract_size="1",
    expiry_ns=1_798_185_600_000_000_000,
    strike=90000,
    right=OptionRight.CALL,
    tick_size_steps=[("0.005", "0.0005")],
    maker_fee="0.0003",
    taker_fee="0.0003",
)


def registry() -> InstrumentRegistry:
    return InstrumentRegistry([PERP, OPTION])


def request(
    side: str = "buy",
    size: str = "1",
    price: str | None = "0.05",
    *,
    instrument: str = OPTION.symbol,
    cid: str = "s-bt-1",
    strategy: str = "s",
    **kw: object,
) -> OrderRequest:
    return OrderRequest(
        venue="deribit",
        instrument=instrument,
        side=Side(side),
        size=Decimal(size),
        price=None if price is None else Decimal(price),
        client_order_id=cid,
        strategy=strategy,
        **kw,  # type: ignore[arg-type]
    )


def ticker(instrument: str = OPTION.symbol, ts: int = 1, **kw: float | None) -> Ticker:
    return Ticker(venue="deribit", instrument=instrument, ts_exchange=ts, ts_local=ts, **kw)  # type: ignore[arg-type]


def book(instrument: str = OPTION.symbol, ts: int = 1, **kw: object) -> BookUpdate:
    return BookUpdate(venue="deribit", instrument=instrument, ts_exchange=ts, ts_local=ts, **kw)  # type: ignore[arg-type]


def trade(price: float, size: float, side: str, instrument: str = OPTION.symbol, ts: int = 1) -> Trade:
    return Trade(
        venue="deribit",
        instrument=instrument,
        ts_exchange=ts,
        ts_local=ts,
        price=price,
        size=size,
        side=Side(side),
        trade_id=f"t{ts}",
    )
