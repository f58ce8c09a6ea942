"""The public surface is on purpose: these names are what users import."""

from __future__ import annotations

import engine

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
    "VenueUnavailable",
    "bs_greeks",
    "bs_price",
    "event_to_dict",
    "implied_vol",
    "read_manifest",
}


def test_engine_public_names_are_pinned() -> None:
    exported = {n for n in dir(engine) if not n.startswith("_")}
    assert exported == PUBLIC


def test_errors_form_one_tree() -> None:
    for name in ("ConfigError", "DataError", "IllegalTransition", "StrategyError", "VenueError"):
        assert issubclass(getattr(engine, name), engine.TradingError)
    for name in (
        "MalformedFrame",
        "SequenceGap",
        "FeedStale",
        "AuthError",
        "RateLimited",
        "OrderRejected",
        "VenueUnavailable",
    ):
        assert issubclass(getattr(engine, name), engine.VenueError)
