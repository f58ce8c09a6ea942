"""The two public surfaces are on purpose, and pinned here name by name:

- `tradingd.engine`: what a strategy author imports (the strategy API).
- `tradingd.engine.venue`: what a venue connector implements and uses (the venue SPI).

A name added to or dropped from either is an API change: change the set below with it."""

from __future__ import annotations

import inspect
from types import ModuleType

import pytest

from tradingd import engine
from tradingd.engine import venue

STRATEGY_API = {
    # the strategy and its context
    "Strategy",
    "StrategyContext",
    # events it receives
    "ALL_KINDS",
    "BookUpdate",
    "DataKind",
    "Event",
    "Fill",
    "FillReversal",
    "Greeks",
    "Liquidity",
    "MarketEvent",
    "OrderState",
    "OrderUpdate",
    "PrivateEvent",
    "Side",
    "Status",
    "StatusKind",
    "Subscription",
    "Ticker",
    "Trade",
    "event_to_dict",
    # orders it sends
    "OrderRequest",
    "OrderType",
    "TimeInForce",
    # instruments and filters
    "Instrument",
    "InstrumentFilter",
    "InstrumentKind",
    "LiveSelection",
    "OptionRight",
    # what it reads: the book, positions, the market catalog
    "OrderBook",
    "PositionView",
    "CatalogMarket",
    "InvalidPattern",
    "MarketCatalog",
    "OutcomeToken",
    "SearchResult",
    # crypto price markets read from a catalog, priced against an options surface
    "PriceCondition",
    "PriceMarket",
    "Unrecognized",
    # pricing helpers
    "YEAR_SECONDS",
    "bs_greeks",
    "bs_price",
    "implied_vol",
    # the volatility surface a strategy reads (ctx.surface) and its parts
    "OutsideSurface",
    "SliceFit",
    "SurfaceQuote",
    "SurfaceSettings",
    "SviParams",
    "VolSurface",
    # errors
    "AuthError",
    "ConfigError",
    "DataError",
    "FeedStale",
    "IllegalTransition",
    "MalformedFrame",
    "OrderDenied",
    "OrderOutcomeUnknown",
    "OrderRejected",
    "RateLimited",
    "SequenceGap",
    "StrategyError",
    "TradingError",
    "VenueError",
    "VenueRejected",
    "VenueUnavailable",
}

VENUE_SPI = {
    # what a connector implements
    "Decoder",
    "LiveVenue",
    "VenuePlugin",
    # what a live session is given
    "SubscriptionSource",
    "VenueSink",
    # the WebSocket session base
    "SESSION_ERRORS",
    "Connect",
    "ConnectionLost",
    "PendingRequests",
    "SessionStats",
    "VenueSession",
    "default_connect",
    "error_code",
    "frame_head",
    # rate limiting
    "VENUE_MARGIN",
    "Backoff",
    "CreditBucket",
    # decoding venue bytes safely
    "MAX_NESTING",
    "SHORT_FRAME",
    "BookGaps",
    "DecoderFault",
    "DecoderStats",
    "check_nesting",
    "check_text",
    "ORDER_LEFT_OUT",
    "READ_ERRORS",
    "RECORD_ERRORS",
    "TRADE_LEFT_OUT",
    "SaidOnce",
    "log_refused_record",
    "read_records",
    "decode_parsed",
    "guard_decode",
    "loads_untyped",
    "positional_builder",
    "restore_recursion_limit",
    # fees, money, settlement
    "FeeModel",
    "ProportionalFees",
    "BadNumber",
    "from_float",
    "optional",
    "positive",
    "to_decimal",
    "USD_LIKE",
    "MAX_PRICE",
    "FundingPayment",
    "check_delivery_price",
    "check_funding",
    # the market catalog base
    "CatalogMarket",
    "InvalidPattern",
    "MarketCatalog",
    "OutcomeToken",
    "SearchResult",
    "compile_slug_pattern",
    "iso_utc",
    "LayeredCatalog",
    "StaticCatalog",
    "PriceCondition",
    "PriceMarket",
    "Unrecognized",
    "sort_price_markets",
    # secrets a connector holds, redacted from every log
    "register_secret",
    # the model types a connector builds
    "BookUpdate",
    "DataKind",
    "Fill",
    "FillReversal",
    "Greeks",
    "Level",
    "Liquidity",
    "MarketEvent",
    "OrderState",
    "OrderUpdate",
    "PrivateEvent",
    "Side",
    "Status",
    "StatusKind",
    "Subscription",
    "Ticker",
    "Trade",
    "Instrument",
    "InstrumentKind",
    "InstrumentRegistry",
    "OptionRight",
    "Order",
    "OrderBook",
    "OrderRequest",
    "OrderType",
    "TimeInForce",
    "AuthError",
    "ConfigError",
    "CredentialsRefused",
    "DataError",
    "FeedStale",
    "MalformedFrame",
    "OrderDenied",
    "OrderOutcomeUnknown",
    "OrderRejected",
    "RateLimited",
    "SequenceGap",
    "VenueError",
    "VenueRejected",
    "VenueUnavailable",
    # the typed SPI's execution client, reconciler, capabilities and status (engine/venue/spi.py)
    "CatalogSettings",
    "DeliveryPrices",
    "ExecutionClient",
    "FrameSource",
    "FundingHistory",
    "FundingPayments",
    "HeldFunding",
    "Holdings",
    "PositionSource",
    "Reconciler",
    "SessionCounters",
    "VenueConnection",
    "VenueExecution",
    # the JSON-RPC session and decoder Deribit and Derive share, and small connector helpers
    "Envelope",
    "Handler",
    "JsonRpcDecoder",
    "JsonRpcSession",
    "NotificationParams",
    "RpcError",
    "at_least",
    "batches",
    "invalid_frame",
    "known_overrides",
    "malformed_frame",
}

# Engine machinery a strategy author never types: kept out of `tradingd.engine` on purpose.
NOT_FOR_STRATEGIES = {
    "BookGaps",
    "ClientOrderIds",
    "Decoder",
    "DecoderStats",
    "ExecutionClient",
    "ExecutionGateway",
    "FeeModel",
    "InstrumentRegistry",
    "Ledger",
    "Mailbox",
    "MarketRouter",
    "Order",
    "OrderFlow",
    "OrderTracker",
    "RecordingReader",
    "RecordingWriter",
    "SessionRecorder",
    "SimulatedVenue",
    "VenuePlugin",
}


def public_names(module: ModuleType) -> set[str]:
    """What `from module import <name>` offers beyond its submodules."""
    return {n for n in dir(module) if not n.startswith("_") and not inspect.ismodule(getattr(module, n))}


@pytest.mark.parametrize(
    ("surface", "pinned"), [(engine, STRATEGY_API), (venue, VENUE_SPI)], ids=["strategy", "venue"]
)
def test_surface_names_are_pinned(surface: ModuleType, pinned: set[str]) -> None:
    declared: list[str] = surface.__all__
    assert len(declared) == len(set(declared)), "a name is listed twice in __all__"
    assert set(declared) == pinned
    # Nothing public beyond `__all__` (an import added without a thought would show here).
    assert public_names(surface) == pinned


def test_strategy_surface_holds_no_machinery() -> None:
    assert not NOT_FOR_STRATEGIES & set(engine.__all__)


def test_errors_form_one_tree() -> None:
    for name in (
        "ConfigError",
        "DataError",
        "IllegalTransition",
        "OrderRejected",
        "StrategyError",
        "VenueError",
    ):
        assert issubclass(getattr(engine, name), engine.TradingError)
    for name in (
        "MalformedFrame",
        "SequenceGap",
        "FeedStale",
        "AuthError",
        "RateLimited",
        "VenueRejected",
        "VenueUnavailable",
        "OrderOutcomeUnknown",
    ):
        assert issubclass(getattr(engine, name), engine.VenueError)


@pytest.mark.parametrize("name", ["tradingd.engine", "tradingd.engine.model"])
def test_lazy_exports_say_what_type_checkers_read(name: str) -> None:
    """The names are imported on first use (PEP 562): `_EXPORTS` (run time) and the
    `TYPE_CHECKING` imports (mypy) must name the same modules, and every name must resolve."""
    import ast
    import importlib
    from pathlib import Path

    module = importlib.import_module(name)
    assert module.__file__ is not None
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    checked = {
        alias.asname or alias.name: "." * node.level + (node.module or "")
        for block in tree.body
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    exports: dict[str, str] = module._EXPORTS
    assert checked == exports
    assert set(exports) == set(module.__all__)
    for export, where in exports.items():
        assert getattr(module, export) is getattr(importlib.import_module(where, name), export)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = module.Nope
