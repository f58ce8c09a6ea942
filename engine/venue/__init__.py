"""The venue SPI: what a venue connector (connectors/<venue>/) implements and uses. A connector
imports the engine only from here (and `tradingd.engine` for what strategies see as well);
tests/house/test_layout.py keeps it so.

Offers: the plugin Protocols (`VenuePlugin`, `LiveVenue`, `Decoder`) and what a live session
is given (`VenueSink` for what it receives, `SubscriptionSource` for what the strategies want);
the WebSocket session base (`VenueSession`: connect, reconnect, heartbeat, requests); rate
limiting; the decoder's safety helpers (nesting bound, guarded decode, schemaless parse); the fee
model base; exact money converters; settlement and funding checks; the market catalog base; and
the model types a connector builds (events, instruments, orders, the book, the errors).

Depends on: model, logs (a connector registers its secrets for redaction). Not on the runtime:
the runtime drives the venue through these Protocols."""

# The model types a connector reads and builds.
from ..logs.setup import register_secret
from ..model.book import OrderBook
from ..model.errors import (
    AuthError,
    ConfigError,
    CredentialsRefused,
    DataError,
    FeedStale,
    MalformedFrame,
    OrderDenied,
    OrderOutcomeUnknown,
    OrderRejected,
    RateLimited,
    SequenceGap,
    VenueError,
    VenueRejected,
    VenueUnavailable,
)
from ..model.events import (
    BookUpdate,
    DataKind,
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
    positional_builder,
)
from ..model.fees import FeeModel, ProportionalFees
from ..model.instruments import Instrument, InstrumentKind, InstrumentRegistry, OptionRight
from ..model.market import USD_LIKE
from ..model.money import BadNumber, from_float, optional, positive, to_decimal
from ..model.orders import Order, OrderRequest, OrderType, TimeInForce
from ..model.settlement import MAX_PRICE, FundingPayment, check_delivery_price, check_funding

# The venue room's own: catalog base, plugin Protocols and decoder helpers, rate limits, session.
from .catalog import (
    CatalogMarket,
    InvalidPattern,
    MarketCatalog,
    OutcomeToken,
    SearchResult,
    compile_slug_pattern,
    iso_utc,
)
from .plugins import (
    MAX_NESTING,
    SHORT_FRAME,
    Decoder,
    DecoderFault,
    DecoderStats,
    LiveVenue,
    VenuePlugin,
    VenueSink,
    check_nesting,
    decode_parsed,
    guard_decode,
    loads_untyped,
    restore_recursion_limit,
)
from .ratelimit import VENUE_MARGIN, Backoff, CreditBucket
from .session import (
    SESSION_ERRORS,
    Connect,
    ConnectionLost,
    PendingRequests,
    SessionStats,
    SubscriptionSource,
    VenueSession,
    default_connect,
    error_code,
    frame_head,
)

__all__ = [
    "MAX_NESTING",
    "MAX_PRICE",
    "SESSION_ERRORS",
    "SHORT_FRAME",
    "USD_LIKE",
    "VENUE_MARGIN",
    "AuthError",
    "Backoff",
    "BadNumber",
    "BookUpdate",
    "CatalogMarket",
    "ConfigError",
    "Connect",
    "ConnectionLost",
    "CredentialsRefused",
    "CreditBucket",
    "DataError",
    "DataKind",
    "Decoder",
    "DecoderFault",
    "DecoderStats",
    "FeeModel",
    "FeedStale",
    "Fill",
    "FillReversal",
    "FundingPayment",
    "Greeks",
    "Instrument",
    "InstrumentKind",
    "InstrumentRegistry",
    "InvalidPattern",
    "Level",
    "Liquidity",
    "LiveVenue",
    "MalformedFrame",
    "MarketCatalog",
    "MarketEvent",
    "OptionRight",
    "Order",
    "OrderBook",
    "OrderDenied",
    "OrderOutcomeUnknown",
    "OrderRejected",
    "OrderRequest",
    "OrderState",
    "OrderType",
    "OrderUpdate",
    "OutcomeToken",
    "PendingRequests",
    "PrivateEvent",
    "ProportionalFees",
    "RateLimited",
    "SearchResult",
    "SequenceGap",
    "SessionStats",
    "Side",
    "Status",
    "StatusKind",
    "Subscription",
    "SubscriptionSource",
    "Ticker",
    "TimeInForce",
    "Trade",
    "VenueError",
    "VenuePlugin",
    "VenueRejected",
    "VenueSession",
    "VenueSink",
    "VenueUnavailable",
    "check_delivery_price",
    "check_funding",
    "check_nesting",
    "compile_slug_pattern",
    "decode_parsed",
    "default_connect",
    "error_code",
    "frame_head",
    "from_float",
    "guard_decode",
    "iso_utc",
    "loads_untyped",
    "optional",
    "positional_builder",
    "positive",
    "register_secret",
    "restore_recursion_limit",
    "to_decimal",
]

# The typed SPI Protocols (engine/venue/spi.py): imported here, names added with `__all__ += [...]`.

# The shared JSON-RPC session mechanism (engine/venue/jsonrpc.py): the same way.
