"""The pure model: what every other room speaks in. No trio, no network, no files, no database
(tests/house/test_layout.py keeps it so; structlog is the one side effect: diagnostics).

Offers: events (market data, order reports, fills), instruments and their registry, order
requests and orders with their state machine and tracker, the order book, the error tree, exact
money converters, option pricing, fee models, instrument filters, the market state (index,
tickers), risk limits, the position ledger, settlement and funding, and the simulated venue's
fill rules (the backtest's and paper mode's matching engine).

Depends on: no other room.

The names are loaded when first used (PEP 562 `__getattr__`), as `tradingd.engine`'s are: a
module of this room (`model.errors`, `model.words`) costs only itself and what it imports, not
every module of the room (structlog with asyncio and rich, attrs: 20 MiB resident; issue 17, the
report's renderer). `started` is still imported first. Type checkers read the `TYPE_CHECKING`
imports; `_EXPORTS` says where each name lives at run time."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import started as _started  # noqa: F401 - first: the stamp precedes every source

if TYPE_CHECKING:
    from .book import OrderBook
    from .errors import (
        AuthError,
        ConfigError,
        CredentialsRefused,
        DataError,
        FeedStale,
        IllegalTransition,
        MalformedFrame,
        OrderDenied,
        OrderOutcomeUnknown,
        OrderRejected,
        RateLimited,
        SequenceGap,
        StrategyError,
        TradingError,
        VenueError,
        VenueRejected,
        VenueUnavailable,
    )
    from .events import (
        ALL_KINDS,
        BookUpdate,
        DataKind,
        Event,
        Fill,
        FillReversal,
        Greeks,
        Level,
        Liquidity,
        MarketEvent,
        OrderState,
        OrderUpdate,
        PrivateEvent,
        Side,
        Status,
        StatusKind,
        Subscription,
        Ticker,
        Trade,
        event_to_dict,
        positional_builder,
    )
    from .fees import FeeModel, ProportionalFees
    from .filter import InstrumentFilter, KindName, LiveSelection, RightName
    from .instruments import Instrument, InstrumentKind, InstrumentRegistry, OptionRight
    from .ledger import CONTEXT, Booking, Ledger, Position, PositionView, UsdRates
    from .market import USD_LIKE, MarketState, index_currency, notional_usd
    from .money import ZERO, BadNumber, from_float, opt_from_float, optional, positive, to_decimal
    from .orders import (
        ArchiveUnavailable,
        ClientOrderIds,
        Order,
        OrderArchive,
        OrderRequest,
        OrderTracker,
        OrderType,
        RestoredOrder,
        TimeInForce,
    )
    from .pricing import YEAR_SECONDS, bs_greeks, bs_price, implied_vol
    from .risk import Limits, RiskChecker, RiskLimits
    from .settlement import (
        MAX_FUNDING,
        MAX_PRICE,
        FundingPayment,
        PositionHistory,
        check_delivery_price,
        check_funding,
        funding_amount,
    )
    from .simvenue import SimulatedVenue

__all__ = [
    "ALL_KINDS",
    "CONTEXT",
    "MAX_FUNDING",
    "MAX_PRICE",
    "USD_LIKE",
    "YEAR_SECONDS",
    "ZERO",
    "ArchiveUnavailable",
    "AuthError",
    "BadNumber",
    "BookUpdate",
    "Booking",
    "ClientOrderIds",
    "ConfigError",
    "CredentialsRefused",
    "DataError",
    "DataKind",
    "Event",
    "FeeModel",
    "FeedStale",
    "Fill",
    "FillReversal",
    "FundingPayment",
    "Greeks",
    "IllegalTransition",
    "Instrument",
    "InstrumentFilter",
    "InstrumentKind",
    "InstrumentRegistry",
    "KindName",
    "Ledger",
    "Level",
    "Limits",
    "Liquidity",
    "LiveSelection",
    "MalformedFrame",
    "MarketEvent",
    "MarketState",
    "OptionRight",
    "Order",
    "OrderArchive",
    "OrderBook",
    "OrderDenied",
    "OrderOutcomeUnknown",
    "OrderRejected",
    "OrderRequest",
    "OrderState",
    "OrderTracker",
    "OrderType",
    "OrderUpdate",
    "Position",
    "PositionHistory",
    "PositionView",
    "PrivateEvent",
    "ProportionalFees",
    "RateLimited",
    "RestoredOrder",
    "RightName",
    "RiskChecker",
    "RiskLimits",
    "SequenceGap",
    "Side",
    "SimulatedVenue",
    "Status",
    "StatusKind",
    "StrategyError",
    "Subscription",
    "Ticker",
    "TimeInForce",
    "Trade",
    "TradingError",
    "UsdRates",
    "VenueError",
    "VenueRejected",
    "VenueUnavailable",
    "bs_greeks",
    "bs_price",
    "check_delivery_price",
    "check_funding",
    "event_to_dict",
    "from_float",
    "funding_amount",
    "implied_vol",
    "index_currency",
    "notional_usd",
    "opt_from_float",
    "optional",
    "positional_builder",
    "positive",
    "to_decimal",
]

# Where each exported name is defined: its module, relative to this package.
_EXPORTS: dict[str, str] = {
    "OrderBook": ".book",
    "AuthError": ".errors",
    "ConfigError": ".errors",
    "CredentialsRefused": ".errors",
    "DataError": ".errors",
    "FeedStale": ".errors",
    "IllegalTransition": ".errors",
    "MalformedFrame": ".errors",
    "OrderDenied": ".errors",
    "OrderOutcomeUnknown": ".errors",
    "OrderRejected": ".errors",
    "RateLimited": ".errors",
    "SequenceGap": ".errors",
    "StrategyError": ".errors",
    "TradingError": ".errors",
    "VenueError": ".errors",
    "VenueRejected": ".errors",
    "VenueUnavailable": ".errors",
    "ALL_KINDS": ".events",
    "BookUpdate": ".events",
    "DataKind": ".events",
    "Event": ".events",
    "Fill": ".events",
    "FillReversal": ".events",
    "Greeks": ".events",
    "Level": ".events",
    "Liquidity": ".events",
    "MarketEvent": ".events",
    "OrderState": ".events",
    "OrderUpdate": ".events",
    "PrivateEvent": ".events",
    "Side": ".events",
    "Status": ".events",
    "StatusKind": ".events",
    "Subscription": ".events",
    "Ticker": ".events",
    "Trade": ".events",
    "event_to_dict": ".events",
    "positional_builder": ".events",
    "FeeModel": ".fees",
    "ProportionalFees": ".fees",
    "InstrumentFilter": ".filter",
    "KindName": ".filter",
    "LiveSelection": ".filter",
    "RightName": ".filter",
    "Instrument": ".instruments",
    "InstrumentKind": ".instruments",
    "InstrumentRegistry": ".instruments",
    "OptionRight": ".instruments",
    "CONTEXT": ".ledger",
    "Booking": ".ledger",
    "Ledger": ".ledger",
    "Position": ".ledger",
    "PositionView": ".ledger",
    "UsdRates": ".ledger",
    "USD_LIKE": ".market",
    "MarketState": ".market",
    "index_currency": ".market",
    "notional_usd": ".market",
    "ZERO": ".money",
    "BadNumber": ".money",
    "from_float": ".money",
    "opt_from_float": ".money",
    "optional": ".money",
    "positive": ".money",
    "to_decimal": ".money",
    "ArchiveUnavailable": ".orders",
    "ClientOrderIds": ".orders",
    "Order": ".orders",
    "OrderArchive": ".orders",
    "OrderRequest": ".orders",
    "OrderTracker": ".orders",
    "OrderType": ".orders",
    "RestoredOrder": ".orders",
    "TimeInForce": ".orders",
    "YEAR_SECONDS": ".pricing",
    "bs_greeks": ".pricing",
    "bs_price": ".pricing",
    "implied_vol": ".pricing",
    "Limits": ".risk",
    "RiskChecker": ".risk",
    "RiskLimits": ".risk",
    "MAX_FUNDING": ".settlement",
    "MAX_PRICE": ".settlement",
    "FundingPayment": ".settlement",
    "PositionHistory": ".settlement",
    "check_delivery_price": ".settlement",
    "check_funding": ".settlement",
    "funding_amount": ".settlement",
    "SimulatedVenue": ".simvenue",
}


def __getattr__(name: str) -> Any:
    """An exported name: imported from its module on first use, then kept in this one."""
    where = _EXPORTS.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(where, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
