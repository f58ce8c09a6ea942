"""tradingd's engine, and what a strategy author imports: `from tradingd.engine import Strategy, ...`.

This module is the strategy API: the `Strategy` base and its context, the events it receives,
the order requests it sends, instruments and filters, the book and positions it reads, pricing
helpers, the market catalog, and the errors. Nothing of the engine's machinery is here.

The engine is in rooms (subpackages), each `__init__` saying what it offers and what it needs;
dependencies point one way (tests/house/test_layout.py keeps them so):

    model  <-  store  <-  logs  <-  venue  <-  runtime  <-  backtest, daemon  <-  reports
    model  <-  sim
    model  <-  metrics  <-  daemon
    model  <-  surface  <-  runtime, backtest, daemon

(`logs` reads compressed files with `store`'s opener; `venue` registers secrets with `logs`.)
`model` is the pure core; `venue` is the SPI a
connector implements (`tradingd.engine.venue`); `runtime` runs strategies against venues; the
others persist, replay, serve and report. It imports no connector, no strategy and no config:
venues and strategies are found by name (entry points).

The names are loaded when first used (PEP 562 `__getattr__`): `import tradingd.engine.X` runs
this file first, and importing every room here made any engine module cost the whole engine
(34 MiB resident, with the live path's websocket, TLS and sqlite; issue 17), the report's
renderer too, which draws from a JSON file and needs none of it. Type checkers read the
`TYPE_CHECKING` imports; `_EXPORTS` says where each name lives at run time
(tests/house/test_public_api.py checks that both say the same)."""

# Imported under private names: everything public here is the strategy API
# (tests/house/test_public_api.py).
import typing as _typing

# First, as before the names were lazy: the stamp precedes every source (model/started.py).
from .model import started as _started  # noqa: F401

# isort: split
from .model import lazy as _lazy

if _typing.TYPE_CHECKING:
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
    from .surface.model import OutsideSurface, SliceFit, SurfaceQuote, SurfaceSettings, SviParams, VolSurface
    from .venue.catalog import CatalogMarket, InvalidPattern, MarketCatalog, OutcomeToken, SearchResult
    from .venue.pricemarket import PriceCondition, PriceMarket, Unrecognized

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
    "OutsideSurface",
    "PositionView",
    "PriceCondition",
    "PriceMarket",
    "PrivateEvent",
    "RateLimited",
    "SearchResult",
    "SequenceGap",
    "Side",
    "SliceFit",
    "Status",
    "StatusKind",
    "Strategy",
    "StrategyContext",
    "StrategyError",
    "Subscription",
    "SurfaceQuote",
    "SurfaceSettings",
    "SviParams",
    "Ticker",
    "TimeInForce",
    "Trade",
    "TradingError",
    "Unrecognized",
    "VenueError",
    "VenueRejected",
    "VenueUnavailable",
    "VolSurface",
    "bs_greeks",
    "bs_price",
    "event_to_dict",
    "implied_vol",
]

# Where each exported name is defined: its module, relative to this package.
_EXPORTS: dict[str, str] = {
    "OrderBook": ".model.book",
    "AuthError": ".model.errors",
    "ConfigError": ".model.errors",
    "DataError": ".model.errors",
    "FeedStale": ".model.errors",
    "IllegalTransition": ".model.errors",
    "MalformedFrame": ".model.errors",
    "OrderDenied": ".model.errors",
    "OrderOutcomeUnknown": ".model.errors",
    "OrderRejected": ".model.errors",
    "RateLimited": ".model.errors",
    "SequenceGap": ".model.errors",
    "StrategyError": ".model.errors",
    "TradingError": ".model.errors",
    "VenueError": ".model.errors",
    "VenueRejected": ".model.errors",
    "VenueUnavailable": ".model.errors",
    "ALL_KINDS": ".model.events",
    "BookUpdate": ".model.events",
    "DataKind": ".model.events",
    "Event": ".model.events",
    "Fill": ".model.events",
    "FillReversal": ".model.events",
    "Greeks": ".model.events",
    "Liquidity": ".model.events",
    "MarketEvent": ".model.events",
    "OrderState": ".model.events",
    "OrderUpdate": ".model.events",
    "PrivateEvent": ".model.events",
    "Side": ".model.events",
    "Status": ".model.events",
    "StatusKind": ".model.events",
    "Subscription": ".model.events",
    "Ticker": ".model.events",
    "Trade": ".model.events",
    "event_to_dict": ".model.events",
    "InstrumentFilter": ".model.filter",
    "LiveSelection": ".model.filter",
    "Instrument": ".model.instruments",
    "InstrumentKind": ".model.instruments",
    "OptionRight": ".model.instruments",
    "PositionView": ".model.ledger",
    "OrderRequest": ".model.orders",
    "OrderType": ".model.orders",
    "TimeInForce": ".model.orders",
    "YEAR_SECONDS": ".model.pricing",
    "bs_greeks": ".model.pricing",
    "bs_price": ".model.pricing",
    "implied_vol": ".model.pricing",
    "Strategy": ".runtime.strategy",
    "StrategyContext": ".runtime.strategy",
    "CatalogMarket": ".venue.catalog",
    "InvalidPattern": ".venue.catalog",
    "MarketCatalog": ".venue.catalog",
    "OutcomeToken": ".venue.catalog",
    "SearchResult": ".venue.catalog",
    "PriceCondition": ".venue.pricemarket",
    "PriceMarket": ".venue.pricemarket",
    "Unrecognized": ".venue.pricemarket",
    "OutsideSurface": ".surface.model",
    "SliceFit": ".surface.model",
    "SurfaceQuote": ".surface.model",
    "SurfaceSettings": ".surface.model",
    "SviParams": ".surface.model",
    "VolSurface": ".surface.model",
}


__getattr__, __dir__ = _lazy.attach(__name__, _EXPORTS, globals())
