"""tradingd's engine, and what a strategy author imports: `from tradingd.engine import Strategy, ...`.

This module is the strategy API: the `Strategy` base and its context, the events it receives,
the order requests it sends, instruments and filters, the book and positions it reads, pricing
helpers, the market catalog, and the errors. Nothing of the engine's machinery is here.

The engine is in rooms (subpackages), each `__init__` saying what it offers and what it needs;
dependencies point one way (tests/house/test_layout.py keeps them so):

    model  <-  store  <-  logs  <-  venue  <-  runtime  <-  backtest, daemon  <-  reports
    model  <-  sim

(`logs` reads compressed files with `store`'s opener; `venue` registers secrets with `logs`.)
`model` is the pure core; `venue` is the SPI a
connector implements (`tradingd.engine.venue`); `runtime` runs strategies against venues; the
others persist, replay, serve and report. It imports no connector, no strategy and no config:
venues and strategies are found by name (entry points)."""

from .model.book import OrderBook
from .model.errors import (
    AuthError,
    ConfigError,
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
from .model.events import (
    ALL_KINDS,
    BookUpdate,
    DataKind,
    Event,
    Fill,
    FillReversal,
    Greeks,
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
)
from .model.filter import InstrumentFilter, LiveSelection
from .model.instruments import Instrument, InstrumentKind, OptionRight
from .model.ledger import PositionView
from .model.orders import OrderRequest, OrderType, TimeInForce
from .model.pricing import YEAR_SECONDS, bs_greeks, bs_price, implied_vol
from .runtime.strategy import Strategy, StrategyContext
from .venue.catalog import CatalogMarket, InvalidPattern, MarketCatalog, OutcomeToken, SearchResult

__all__ = [
    "ALL_KINDS",
    "YEAR_SECONDS",
    "AuthError",
    "BookUpdate",
    "CatalogMarket",
    "ConfigError",
    "DataError",
    "DataKind",
    "Event",
    "FeedStale",
    "Fill",
    "FillReversal",
    "Greeks",
    "IllegalTransition",
    "Instrument",
    "InstrumentFilter",
    "InstrumentKind",
    "InvalidPattern",
    "Liquidity",
    "LiveSelection",
    "MalformedFrame",
    "MarketCatalog",
    "MarketEvent",
    "OptionRight",
    "OrderBook",
    "OrderDenied",
    "OrderOutcomeUnknown",
    "OrderRejected",
    "OrderRequest",
    "OrderState",
    "OrderType",
    "OrderUpdate",
    "OutcomeToken",
    "PositionView",
    "PrivateEvent",
    "RateLimited",
    "SearchResult",
    "SequenceGap",
    "Side",
    "Status",
    "StatusKind",
    "Strategy",
    "StrategyContext",
    "StrategyError",
    "Subscription",
    "Ticker",
    "TimeInForce",
    "Trade",
    "TradingError",
    "VenueError",
    "VenueRejected",
    "VenueUnavailable",
    "bs_greeks",
    "bs_price",
    "event_to_dict",
    "implied_vol",
]
