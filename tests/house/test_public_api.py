"""The public surface is on purpose: these names are what users import."""

from __future__ import annotations

import inspect

from tradingd import engine

PUBLIC = {
    "ALL_KINDS",
    "CatalogMarket",
    "InstrumentFilter",
    "LiveSelection",
    "InvalidPattern",
    "MarketCatalog",
    "OutcomeToken",
    "SearchResult",
    "AuthError",
    "BookUpdate",
    "ClientOrderIds",
    "ConfigError",
    "DataError",
    "DataKind",
    "Decoder",
    "DecoderStats",
    "Event",
    "ExecutionClient",
    "ExecutionGateway",
    "FeeModel",
    "FeedStale",
    "Fill",
    "FillReversal",
    "Greeks",
    "IllegalTransition",
    "Instrument",
    "InstrumentKind",
    "InstrumentRegistry",
    "Ledger",
    "Limits",
    "Liquidity",
    "Mailbox",
    "MalformedFrame",
    "MarketEvent",
    "MarketRouter",
    "MarketState",
    "OptionRight",
    "Order",
    "OrderBook",
    "OrderFlow",
    "OrderDenied",
    "OrderOutcomeUnknown",
    "OrderRejected",
    "OrderRequest",
    "OrderState",
    "OrderTracker",
    "OrderType",
    "OrderUpdate",
    "PositionView",
    "PrivateEvent",
    "ProportionalFees",
    "RateLimited",
    "RecordingReader",
    "RecordingSet",
    "RecordingWriter",
    "RiskLimits",
    "SequenceGap",
    "SessionRecorder",
    "Side",
    "SimulatedVenue",
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
    "VenuePlugin",
    "VenueRejected",
    "VenueUnavailable",
    "bs_greeks",
    "bs_price",
    "event_to_dict",
    "implied_vol",
    "read_manifest",
}


def test_engine_public_names_are_pinned() -> None:
    exported = {n for n in dir(engine) if not n.startswith("_") and not inspect.ismodule(getattr(engine, n))}
    assert exported == PUBLIC


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
