"""The venue SPI: what a venue connector implements, as Protocols mypy checks.

A connector (`tradingd.connectors.<venue>`) registers a `VenuePlugin` (entry point group
`tradingd.venues`). The plugin makes a `Decoder` (frames -> events, no I/O) and, for the live
daemon, a `LiveVenue`: the connection task, its status, and its `VenueExecution`, the client that
trades (the `ExecutionClient` the gateway calls) and answers a reconciliation (the `Reconciler`).

What a venue may lack is said, never discovered: `VenueExecution.positions`, `.delivery` and
`.funding` are the optional capabilities, each the object that offers it or None (a venue without
perpetuals has no funding history); `ExecutionClient.prepare` answers None when the venue assigns
an order's id only on receiving it; `VenuePlugin.open_catalog` answers None for a venue without a
market catalog; `VenuePlugin.data_formats` is empty for a venue that reads only recordings. The
engine reads all of it through these types: no `getattr`, and an `AttributeError` raised inside
a venue's method is a bug of that method, never "unsupported".

Money is `Decimal` throughout; events are the model's (`tradingd.engine.model.events`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import attrs
import trio

from ..model.book import OrderBook
from ..model.errors import CredentialsRefused
from ..model.events import Fill, FillReversal, MarketEvent, OrderUpdate, PrivateEvent
from ..model.fees import FeeModel
from ..model.instruments import InstrumentRegistry
from ..model.orders import Order
from ..model.settlement import FundingPayment, HeldFunding
from .catalog import CatalogSettings, MarketCatalog

if TYPE_CHECKING:  # session.py imports this module's Protocols through plugins.py
    from .session import SubscriptionSource

__all__ = [
    "BookGaps",
    "Decoder",
    "DecoderStats",
    "DeliveryPrices",
    "ExecutionClient",
    "FrameSource",
    "FundingHistory",
    "FundingPayments",
    "HeldFunding",
    "Holdings",
    "LiveVenue",
    "PositionSource",
    "Reconciler",
    "SessionCounters",
    "VenueConnection",
    "VenueExecution",
    "VenuePlugin",
    "VenueSink",
]


# -- decoding ------------------------------------------------------------------------------------
@attrs.define
class DecoderStats:
    """What a decoder has seen; `malformed` frames raised `MalformedFrame` and changed nothing."""

    frames: int = 0
    events: int = 0
    malformed: int = 0
    control: int = 0  # responses, heartbeats: frames that are not market data
    unknown_channel: int = 0
    gaps: int = 0
    ignored_changes: int = 0  # book changes dropped: no snapshot yet, or waiting for one after a gap
    skipped_instruments: int = 0  # instrument definitions that could not be parsed


class BookGaps(dict[str, int]):
    """A decoder's gaps by the instrument whose book had them (`Decoder.gapped_books`), bounded:
    the first `BookGaps.NAMED` books to have a gap are counted by name, a gap of any other book
    in `stats.gaps` alone (the backtest's warning tells how many gaps fell in books it does not
    name). A stream that gaps ever new instruments, which anyone may invent (a Polymarket token
    id, a Deribit book channel), cannot grow it without bound."""

    __slots__ = ()

    NAMED: ClassVar[int] = 100

    def add(self, instrument: str) -> None:
        """One more gap of `instrument`'s book (counted here if it is, or fits, among the named)."""
        n = self.get(instrument)
        if n is not None:
            self[instrument] = n + 1
        elif len(self) < self.NAMED:
            self[instrument] = 1


@runtime_checkable
class Decoder(Protocol):
    """Bytes in, events out, no I/O. One per venue connection (it owns that connection's books).
    A backtest checks the decoder a plugin makes against this Protocol before it reads anything
    (`plugins.checked_decoder`): one lacking a member is one line naming what it lacks."""

    venue: str
    registry: InstrumentRegistry
    stats: DecoderStats
    # The last channel it met and does not read (counted in `stats.unknown_channel`), for people.
    last_unknown_channel: str | None

    @property
    def gapped_books(self) -> Mapping[str, int]:
        """The gaps of `stats.gaps` by the instrument whose book had them (a backtest's warning
        names those books), for as many books as it keeps (`BookGaps`: the first 100); the gaps
        of `stats.gaps` it does not count are those of books it does not name. Empty for a
        decoder that does not tell its gaps apart by book."""
        ...

    def decode(self, frame: bytes, ts_local: int) -> list[MarketEvent]:
        """The market events in one frame (possibly none). Raises `MalformedFrame` for a frame
        that cannot be decoded; the decoder's state is then unchanged."""
        ...

    def book(self, instrument: str) -> OrderBook | None:
        """The book this decoder maintains for `instrument`, if any."""
        ...

    def book_instruments(self) -> list[str]:
        """Every instrument this decoder holds a book of (a decoder fault reports each broken)."""
        ...

    def invalidate_books(self) -> None:
        """Forget every book's contents: each waits for its next snapshot (after a decoder fault,
        a frame may have been half applied; never guess)."""
        ...


class VenueSink(Protocol):
    """Where a live venue session delivers what it receives (the engine implements it)."""

    async def market(self, events: list[MarketEvent]) -> None:
        """Market and status events, in arrival order (to the market state and the router)."""
        ...

    def private(self, events: list[PrivateEvent]) -> None:
        """Reports about our own orders (to the order tracker, then their strategies)."""
        ...


# -- trading -------------------------------------------------------------------------------------
class ExecutionClient(Protocol):
    """What a venue's execution side offers the gateway. Each call sends one request and returns
    the venue's answer as events (the order's state, and any fills the answer carries). A venue
    refusal raises `OrderRejected` (`VenueRejected`, with the venue's code); nothing sent raises
    `VenueUnavailable`, a refusal for rate `RateLimited`; any other `VenueError` (a timeout, a
    lost connection, an unreadable answer) means the outcome is unknown, and the gateway answers
    its caller `OrderOutcomeUnknown`. Implementations never retry a request that may have
    reached the venue."""

    venue: str

    def prepare(self, order: Order) -> str | None:
        """Called just before `place`: the venue's id of the order when it is known before
        sending (Polymarket: the order's EIP-712 hash), so the gateway registers it first and a
        report that outruns the answer is matched to the order; None when the venue assigns it
        on receipt. May raise `OrderRejected` (a local check or a signature failed)."""
        ...

    async def place(self, order: Order) -> Sequence[PrivateEvent]: ...

    async def cancel(self, order: Order) -> Sequence[PrivateEvent]: ...

    async def edit(
        self, order: Order, *, price: Decimal | None, size: Decimal | None
    ) -> Sequence[PrivateEvent]: ...


class Reconciler(Protocol):
    """What the live engine asks a venue when a connection that carries our orders comes up
    (`LiveEngine._reconcile`). A `VenueError` means the venue could not answer now (asked again
    at the next trigger); any other exception is a bug of the method: logged with its
    traceback, counted, and the reconciliation is not done (retried), never taken for an answer."""

    async def open_orders(self) -> Sequence[OrderUpdate]:
        """Every open order of the account (ours and any other), as the venue lists them."""
        ...

    async def order_status(self, order: Order) -> Sequence[PrivateEvent]:
        """What the venue knows of `order` (its state, fills); empty if it never received it."""
        ...

    async def recent_fills(self, since_ns: int) -> Sequence[Fill | FillReversal]:
        """The account's fills (and reversals of fills) since `since_ns`."""
        ...

    async def cancel_by_order_id(self, instrument: str, order_id: str) -> None:
        """Cancel an order we do not track (a foreign one), by the venue's id."""
        ...


def _none_held(instance: Holdings, _: attrs.Attribute[frozenset[str]], unread: frozenset[str]) -> None:
    """`Holdings.unread`'s check: no instrument both read and unread."""
    both = unread & instance.held.keys()
    if both:
        raise ValueError(f"Holdings: {', '.join(sorted(both))} both read and unread")


@attrs.frozen(unsafe_hash=False)  # unhashable, said so: `held` is a mapping (no hash of it)
class Holdings:
    """A `PositionSource`'s answer that reads the account one instrument at a time (Polymarket's
    share balances), some of which may not read: what the account holds of each instrument it
    read (`held`, 0 included: only a figure the venue said), and those it could not read
    (`unread`: none of `held`'s). The engine compares `held` and leaves every other instrument
    it asked out of its comparison (their last alert kept), never as holding 0: a false mismatch
    for a position we hold, a false match for one we do not. The connector says (logs, counts)
    why each is unread. Compared by value; not hashable (`hash()` raises `TypeError` naming it,
    and it is no `collections.abc.Hashable`)."""

    held: Mapping[str, Decimal]
    unread: frozenset[str] = attrs.field(default=frozenset(), validator=_none_held)


class PositionSource(Protocol):
    """A venue that says what the account holds (Polymarket's share balances)."""

    async def venue_positions(self, tokens: Sequence[str]) -> Mapping[str, Decimal] | Holdings:
        """The account's holding of each instrument asked (in the instrument's units). A venue
        whose answer lists the whole account (Deribit, Derive) answers a mapping: an instrument
        asked and missing holds 0, and every other instrument it holds (non-zero) is added, which
        the engine warns of when it has no record of it. A venue asked one instrument at a time
        answers `Holdings`, which says the instruments it could not read."""
        ...


class DeliveryPrices(Protocol):
    """A venue whose instruments expire and settle at a price it publishes."""

    async def delivery_price(self, instrument: str) -> Decimal | None:
        """The delivery price of an expired instrument, None until the venue has published it.
        Raises `VenueError` (code "malformed") for an answer that is no price."""
        ...


class FundingPayments(list[FundingPayment]):
    """A funding answer (`FundingHistory.funding_payments`) that also says the time of the oldest
    payment it held back (`held_since_ns`, None: none) and each record so held (`held`): one the
    venue listed but that could not be booked yet (Derive's payments whose ids an unreadable
    record may number, and that record). The engine keeps its funding window's start at or
    before it while any is held, so that the payment is found once it reads, but never further
    back than `LiveEngine.funding_max_lookback_s`: one held past that is given up, loudly, from
    what `held` says of it. A venue that never holds one back answers a plain sequence."""

    def __init__(
        self,
        payments: Iterable[FundingPayment] = (),
        *,
        held_since_ns: int | None = None,
        held: Iterable[HeldFunding] = (),
    ) -> None:
        super().__init__(payments)
        self.held_since_ns = held_since_ns
        self.held = tuple(held)


class FundingHistory(Protocol):
    """A venue with perpetuals whose funding payments it lists."""

    async def funding_payments(self, since_ns: int) -> Sequence[FundingPayment]:
        """The account's funding payments since `since_ns` (a `FundingPayments` when the venue
        may hold some back)."""
        ...


class VenueExecution(ExecutionClient, Reconciler, Protocol):
    """A live venue's execution client: trading, reconciliation, and the optional capabilities,
    each the object that offers it (usually the client itself) or None where the venue has none."""

    @property
    def positions(self) -> PositionSource | None: ...

    @property
    def delivery(self) -> DeliveryPrices | None: ...

    @property
    def funding(self) -> FundingHistory | None: ...


# -- data files ----------------------------------------------------------------------------------
class FrameSource(Protocol):
    """What the backtest replays: `(receive time ns, frame)` pairs in time order, and how much of
    the source has been read (for progress). `RecordingReader`, `RecordingSet` (a recording
    directory) and venue readers (`VenuePlugin.open_data`, e.g. Tardis CSV) all are one."""

    path: Path
    size: int

    @property
    def bytes_read(self) -> int: ...

    @property
    def bad_lines(self) -> int: ...

    def __iter__(self) -> Iterator[tuple[int | None, bytes]]: ...


# -- the live venue ------------------------------------------------------------------------------
class SessionCounters(Protocol):
    """A live venue's counters (`engine.venue.session.SessionStats`), as the status file shows them."""

    @property
    def connects(self) -> int: ...
    @property
    def disconnects(self) -> int: ...
    @property
    def frames(self) -> int: ...
    @property
    def malformed(self) -> int: ...
    @property
    def stale(self) -> int: ...
    @property
    def resubscribed_books(self) -> int: ...
    @property
    def deferred_resnapshots(self) -> int: ...
    @property
    def refused_instruments(self) -> int: ...
    @property
    def unrecorded(self) -> int: ...
    @property
    def timeouts(self) -> int: ...
    @property
    def rate_limited(self) -> int: ...
    @property
    def session_faults(self) -> int: ...


class VenueConnection(Protocol):
    """One WebSocket connection of a live venue (an `engine.venue.session.VenueSession`)."""

    # Whether refused credentials are fatal, asked at each refusal (the daemon sets it).
    refusal_is_fatal: Callable[[CredentialsRefused], bool] | None

    @property
    def handshaken(self) -> bool:
        """This connection has logged in at least once."""
        ...


class LiveVenue(Protocol):
    """One venue's live side: the connection task, its decoder, its status, and its execution
    client."""

    ready: trio.Event  # set once connected and subscribed (systemd READY waits for all venues)

    @property
    def venue(self) -> str: ...

    @property
    def decoder(self) -> Decoder: ...

    # Called with (receive time in ns, the frame exactly as received) for every frame of every
    # connection of the venue, before it is decoded: how `tradingd record` captures a session.
    @property
    def on_frame(self) -> Callable[[int, bytes | str], None] | None: ...
    @on_frame.setter
    def on_frame(self, hook: Callable[[int, bytes | str], None] | None) -> None: ...

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the connection up (reconnecting as needed) until cancelled."""
        ...

    def execution(self) -> VenueExecution:
        """The venue's execution client (real orders: live mode only)."""
        ...

    # -- status (the daemon's status file and watchdog) --
    @property
    def connections(self) -> Sequence[VenueConnection]:
        """Each WebSocket connection of the venue (one, or Polymarket's market and user)."""
        ...

    @property
    def connected(self) -> bool:
        """Every connection is up."""
        ...

    @property
    def last_frame_age_s(self) -> float | None:
        """Seconds since the last frame (the oldest connection's); None before connecting."""
        ...

    @property
    def stats(self) -> SessionCounters: ...

    @property
    def channels(self) -> frozenset[str]:
        """What is subscribed now."""
        ...

    def book_counters(self) -> Mapping[str, int]:
        """Counters of this venue's decoder beyond `DecoderStats` (Polymarket's changes for
        tokens without a book, Derive's crossed books), by name; empty when it has none."""
        ...

    def execution_counters(self) -> Mapping[str, int]:
        """Counters of the session's execution client (`execution`), by name: the venue's records
        it left out of an answer (`trades_refused`, `orders_refused`, `funding_refused`), those it
        held back with them (`funding_held`), the balances it could not say (`balances_unknown`),
        as the venue has them; empty before the client exists (never made just to be read)."""
        ...


@runtime_checkable  # `load_venue` checks a plugin has every member before anything uses it
class VenuePlugin(Protocol):
    """What a venue package offers the engine."""

    name: str
    Settings: type[Any]
    """The attrs class `[venues.<name>]` is structured into (its `fees` table included)."""
    data_formats: tuple[str, ...]
    """The `[[backtest.data]] format`s the venue reads besides "recording" (`open_data`);
    empty for a venue that reads only recordings."""
    definition_markers: tuple[bytes, ...]
    """Bytes that a recorded frame defining markets contains (a recorder records the market
    definitions it fetched as lines of their own: Polymarket's Gamma and CLOB market objects):
    a backtest scans its recordings for lines holding one (cli/recorded.py) and hands them to
    `recorded_catalog`, without decoding the rest. Empty for a venue whose recordings carry none."""

    def decoder(self, registry: InstrumentRegistry) -> Decoder:
        """A fresh decoder that adds the instruments it learns of to `registry`."""
        ...

    def fee_model(self, overrides: Mapping[str, Any]) -> FeeModel:
        """The venue's fee schedule, with the config's overrides applied."""
        ...

    def live(
        self,
        settings: Any,
        *,
        registry: InstrumentRegistry,
        router: SubscriptionSource,
        sink: VenueSink,
        trading: bool,
        environ: Mapping[str, str],
        **options: Any,
    ) -> LiveVenue:
        """The venue's live side for `settings` (a `Settings`); `trading` needs credentials
        (read from `environ`). `options` are injected (tests: `connect`, `clock`)."""
        ...

    def open_catalog(
        self, settings: CatalogSettings | None
    ) -> AbstractAsyncContextManager[MarketCatalog] | None:
        """The venue's market catalog, opened for the daemon's run and kept fresh meanwhile, from
        its settings (None: the catalog's defaults; the CLI builds them from the config's
        `[catalog]` table, paths already resolved against the config's folder); None for a venue
        without one."""
        ...

    def open_data(self, path: Path, format: str) -> FrameSource:
        """A reader of a data file in one of `data_formats`; `ConfigError` for another."""
        ...

    def recorded_catalog(self, frames: Iterable[tuple[int | None, bytes]]) -> MarketCatalog | None:
        """A catalog (in memory) of the markets that recorded frames define: the (receive time,
        frame) pairs of the lines holding one of `definition_markers`, in recording order, a later
        definition of a market replacing an earlier one. None for a venue without a catalog."""
        ...
