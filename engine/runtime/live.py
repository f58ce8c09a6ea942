"""The live engine: the daemon's shape from DESIGN.md, for `live` and `paper` modes.

    root nursery
    ├── venue nursery, one per venue: its session (ONE WebSocket: subscribe, heartbeat,
    │   reconnect, decode) and its execution gateway (a capacity-limited request channel)
    └── a task per strategy: `await strategy.on_event(event)` from its mailbox

Sessions deliver market events to `market()` (market state, paper fills, then the router, which
puts each into the mailboxes of the strategies subscribed to it, in the session's task: a mailbox
never blocks, so no task of its own sits between them) and reports of our orders to `private()`
(the order tracker, then the owning strategy). In `paper`
mode orders never reach the venue: each gateway drives a `SimulatedVenue` (the backtest's fill
model) fed by the live books and trades.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

import structlog
import trio

from ..logs.setup import redact_text
from ..model.book import OrderBook
from ..model.errors import AuthError, ConfigError, CredentialsRefused, OrderRejected, TradingError, VenueError
from ..model.events import (
    BookUpdate,
    DataKind,
    Fill,
    FillReversal,
    MarketEvent,
    OrderState,
    OrderUpdate,
    PrivateEvent,
    Status,
    StatusKind,
    Ticker,
    Trade,
)
from ..model.fees import FeeModel
from ..model.instruments import Instrument, InstrumentKind, InstrumentRegistry
from ..model.market import MarketState
from ..model.money import decimal_text, optional
from ..model.orders import ClientOrderIds, Order, OrderRequest, TimeInForce
from ..model.risk import RiskLimits
from ..model.settlement import FundingPayment, HeldFunding
from ..model.simvenue import SimulatedVenue
from ..model.words import plural
from ..store.journal import OrderJournal
from ..surface.model import SurfaceSettings
from ..surface.service import SurfaceService
from ..venue.catalog import CatalogSettings, MarketCatalog
from ..venue.plugins import load_venue
from ..venue.spi import (
    ExecutionClient,
    FundingPayments,
    Holdings,
    LiveVenue,
    Reconciler,
    VenueExecution,
    VenuePlugin,
)
from .context import BaseContext
from .flow import CancelCause, OrderFlow
from .gateway import ExecutionGateway
from .router import MarketRouter, StrategySlot, run_strategy
from .strategy import FailurePolicy, Phase, Strategy, StrategyFailure, split_strategy_fault

__all__ = ["LiveEngine", "PaperExecution"]

# The states an order is in on our word alone (sent, no answer yet; a cancel on its way): a
# change into one of them says nothing of the venue's.
_OURS = frozenset({OrderState.PENDING_NEW, OrderState.PENDING_CANCEL})
# An order that never rests (its remainder ends at once): only a final state is its fate.
_IMMEDIATE = frozenset({TimeInForce.IOC, TimeInForce.FOK})

Mode = Literal["live", "paper"]


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"


class PaperExecution(ExecutionClient):
    """An `ExecutionClient` that fills against live market data with the backtest's fill model:
    nothing reaches the venue. `latency_s` delays each request as the network would.

    The fill model fills only against an order book: an order on an instrument of which no book
    has been received (its strategy subscribed to its `ticker` only, say) can never fill. Each
    such order is counted (`no_book`, per instrument, in the status file) and the first on each
    instrument logs `paper.no_book` saying what to subscribe, so the silence has a reason."""

    def __init__(
        self,
        sim: SimulatedVenue,
        *,
        clock: Callable[[], int] = time.time_ns,
        latency_s: float = 0.0,
        log: structlog.typing.FilteringBoundLogger | None = None,
        book_subscribed: Callable[[str], bool] = lambda instrument: False,
    ) -> None:
        self.venue = sim.venue
        self.sim = sim
        self.clock = clock
        self.latency_s = latency_s
        self.log = log or structlog.get_logger("tradingd")
        self.book_subscribed = book_subscribed  # instrument -> is its book channel subscribed?
        self.no_book: dict[str, int] = {}  # instrument -> orders placed with no book of it known

    def prepare(self, order: Order) -> None:
        """No venue id before sending: the simulated venue numbers an order as it takes it."""
        return

    async def place(self, order: Order) -> Sequence[PrivateEvent]:
        await trio.sleep(self.latency_s)
        events = self.sim.submit(order, self.clock())
        self._check_book(order)
        return events

    def _check_book(self, order: Order) -> None:
        """Count (and the first time per instrument, say) an order that cannot fill: no book of
        its instrument has been received. An instrument the venue does not know is rejected
        with its own reason; a book known but mid-resync (invalid) is a moment, not a cause."""
        req = order.request
        if (
            self.sim.books(req.instrument) is not None
            or self.sim.registry.get(self.venue, req.instrument) is None
        ):
            return
        seen = self.no_book.get(req.instrument, 0)
        self.no_book[req.instrument] = seen + 1
        if seen == 0:
            # An order sent before its book's first snapshot came is told apart from one whose
            # book nobody asked for: only the latter needs a change of subscriptions.
            if self.book_subscribed(req.instrument):
                todo = "its `book` channel is subscribed but no book has arrived yet"
            else:
                todo = "subscribe a strategy to its `book` channel (its `ticker` alone does not fill)"
            self.log.warning(
                "paper.no_book",
                venue=self.venue,
                instrument=req.instrument,
                strategy=req.strategy,
                client_order_id=req.client_order_id,
                why=(
                    f"paper orders fill only against an order book and none of {req.instrument} has"
                    f" been received: {todo}; until one is, its orders go unfilled"
                ),
            )

    async def cancel(self, order: Order) -> Sequence[PrivateEvent]:
        await trio.sleep(self.latency_s)
        return self.sim.cancel(order, self.clock())

    async def edit(
        self, order: Order, *, price: Decimal | None, size: Decimal | None
    ) -> Sequence[PrivateEvent]:
        await trio.sleep(self.latency_s)
        return self.sim.edit(order, self.clock(), price=price, size=size)

    def on_market(self, event: MarketEvent) -> list[PrivateEvent]:
        """Resting paper orders meet the live market: the fills (and states) they get."""
        if event.__class__ is BookUpdate:
            return self.sim.on_book(event, self.clock())
        if event.__class__ is Trade and self.sim.has_orders(event.instrument):
            return self.sim.on_trade(event, self.clock())
        return []


class _LiveContext(BaseContext):
    """A strategy's context live: the wall clock, the venues' gateways."""

    def __init__(self, engine: LiveEngine, slot: StrategySlot) -> None:
        super().__init__(slot.name, engine, engine.gateways)
        self._engine = engine
        self._slot = slot

    def now_ns(self) -> int:
        return self._engine.clock()

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)

    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        request = self.prepare(request)
        return await self._engine.gateways[request.venue].place_order(
            request, received_ns=self._slot.handling_ns
        )

    async def cancel_order(self, client_order_id: str) -> OrderUpdate:
        order = self._own(client_order_id)
        return await self._engine.gateways[order.request.venue].cancel_order(client_order_id)

    async def edit_order(
        self,
        client_order_id: str,
        *,
        price: Decimal | int | str | None = None,
        size: Decimal | int | str | None = None,
    ) -> OrderUpdate:
        order = self._own(client_order_id)
        return await self._engine.gateways[order.request.venue].edit_order(
            client_order_id,
            price=optional(price, "edit price"),
            size=optional(size, "edit size"),
        )


def _pending_key(pending: Sequence[FundingPayment | HeldFunding]) -> str:
    """What identifies a set of funding payments not booked (as journaled, in its order)."""
    return repr(
        [
            (p.instrument, p.ts_ns, None if p.amount is None else str(p.amount), p.currency, p.event_id)
            + ((p.reason,) if isinstance(p, HeldFunding) else ())
            for p in pending
        ]
    )


def _figures(venue: str, symbol: str, mine: Decimal, held: Decimal) -> dict[str, str]:
    """A position line's fields: where, and both figures in exact plain digits."""
    return {
        "venue": venue,
        "instrument": symbol,
        "engine": decimal_text(mine),
        "venue_holds": decimal_text(held),
    }


class LiveEngine:
    """The daemon (module docstring). Build it from a loaded config; `run` until cancelled."""

    # How often expired positions and perpetual funding are looked for (`_settlements`), and
    # how far back funding payments are asked for at the start (Deribit books a day's funding
    # at its daily settlement, 08:00 UTC; Derive pays hourly).
    settle_interval_s = 60.0
    # Every round asks at least this far back: a payment the venue lists late is still found
    # (the journal books each once, however often it is listed).
    funding_lookback_s = 86_400.0
    # One venue's round of expiries at most this long, and its round of funding as long again,
    # each with its own deadline (they run side by side): a venue that stalls (a history that
    # pages on and on, an answer that never comes) must not hold the others', and expiries
    # awaiting delivery must not keep funding from being asked.
    settle_venue_timeout_s = 30.0
    funding_timeout_s = 30.0
    # Delivery prices asked per venue and round at most, those asked longest ago first (one
    # that stalls goes last next round): every instrument awaiting delivery is asked in turn.
    delivery_asks_per_round = 8
    # The start asks for funding from the journal's last fill or funding payment of the venue
    # (downtime longer than `funding_lookback_s` loses none), at most this far back.
    funding_max_lookback_s = 8 * 86_400.0
    # A payment found not ours (or not fitting) while the venue's fills are not caught up past
    # its time (a reconnect's catch-up not done yet) is asked again, for at most this long.
    funding_undecided_max_s = 3600.0
    # While a venue's order connection is up, its fills reach us within this margin.
    fill_lag_s = 60.0
    # A strategy's `on_stop` is given this long; then, for a failed strategy, its `on_failure`
    # cancels get a deadline of their own (an `on_stop` that hangs must not cost them).
    on_stop_timeout_s = 5.0
    strategy_start_wait_s = 30.0  # `[daemon] strategy_start_wait_s`
    failure_cancel_timeout_s = 10.0
    # Then how long the cancelled orders' final states are awaited (a venue may confirm a cancel
    # on its user channel after answering the request) before one still working is alerted.
    failure_final_wait_s = 2.0
    # A request (place, edit, cancel) with no readable answer leaves its order's outcome unknown:
    # the venue is asked about the order after each of these delays (seconds; each counted from
    # the previous answer), until its word settles it (`_follow_up`), rather than only at the
    # next reconnect's reconciliation. A new order it still does not know after the last
    # question, it never took: rejected. 61 s in all by default, the questions spaced out so a
    # venue slow to file an order it took, or briefly unreachable, is given time.
    outcome_followup_s: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)

    def __init__(
        self,
        strategies: Sequence[Strategy],
        venue_settings: Mapping[str, Any],
        *,
        mode: Mode,
        engine_limits: RiskLimits | None = None,
        strategy_limits: Mapping[str, RiskLimits] | None = None,
        mailbox_capacity: int = 1024,
        paper_latency_s: float = 0.02,
        plugins: Mapping[str, VenuePlugin] | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], int] = time.time_ns,
        venue_options: Mapping[str, Mapping[str, Any]] | None = None,
        catalog_settings: Mapping[str, CatalogSettings] | None = None,
        frame_hook: Callable[[str], Callable[[int, bytes | str], None] | None] | None = None,
        journal: OrderJournal | None = None,
        foreign_orders: Literal["report", "cancel"] = "report",
        log: structlog.typing.FilteringBoundLogger | None = None,
        on_failure: Mapping[str, FailurePolicy] | None = None,
        surface_settings: SurfaceSettings | None = None,
    ) -> None:
        self.mode = mode
        # Per strategy: what to do with its open orders if it fails ("cancel" when not named).
        self.on_failure: dict[str, FailurePolicy] = dict(on_failure or {})
        self.failures: dict[str, StrategyFailure] = {}  # the strategies stopped by a failure
        self.clock = clock
        self.log = log or structlog.get_logger("tradingd")
        self.registry = InstrumentRegistry()
        self.market_state = MarketState(self.registry)
        # The chains' volatility surfaces (`ctx.surface`): refits in a worker thread, off the
        # event loop (`surface_async`; `surface`'s in the background once `run` lends a nursery).
        self.surfaces = SurfaceService(
            self.market_state,
            self.registry,
            surface_settings or SurfaceSettings(),
            clock,
            threaded=True,
            log=self.log,
        )
        self.router: MarketRouter[StrategySlot] = MarketRouter(mailbox_capacity=mailbox_capacity)
        self._private_waiter: trio.Event | None = None  # see `_deliver_private`
        self.flow = OrderFlow(
            self.registry,
            self.market_state,
            self._deliver_private,
            engine_limits=engine_limits,
            strategy_limits=strategy_limits,
            log=self.log,
        )
        self.foreign_orders = foreign_orders
        self.restored: dict[str, int] = {}
        if journal is not None:
            # Before anything connects: orders we may have sent, positions as they were.
            self.restored = self.flow.restore(journal, now_ns=clock())
            day = journal.meta("risk_day")
            if isinstance(day, dict) and isinstance(day.get("start_ns"), int):
                self.flow.risk.restore_day(
                    day["start_ns"],
                    {(None if k == "*" else k): float(v) for k, v in day.get("equity", {}).items()},
                )
            self.log.info("journal.restored", path=str(journal.path), **self.restored)
        # Unique across restarts (a client order id is never reused at the venue).
        self.ids = ClientOrderIds(_base36(clock() // 1_000_000))
        self.slots = [self.router.add(self.router.new_slot(s)) for s in strategies]
        names = sorted(set(venue_settings) | set(self.router.venues()))
        if not names:
            raise ConfigError("no venue to connect to: configure [venues.<name>] or subscribe a strategy")
        plugins = dict(plugins or {})
        self.venues: dict[str, LiveVenue] = {}
        self.fee_models: dict[str, FeeModel] = {}
        self.plugins: dict[str, VenuePlugin] = {}
        self.gateways: dict[str, ExecutionGateway] = {}
        self.paper: dict[str, PaperExecution] = {}
        environ = os.environ if environ is None else environ
        for name in names:
            plugin = plugins.get(name) or load_venue(name)
            settings = venue_settings.get(name) or plugin.Settings()
            self.plugins[name] = plugin
            try:
                live = plugin.live(
                    settings,
                    registry=self.registry,
                    router=self.router,
                    sink=self,
                    trading=mode == "live",
                    environ=environ,
                    **dict((venue_options or {}).get(name, {})),
                )
            except CredentialsRefused:
                raise
            except AuthError as exc:
                # Credentials missing, unreadable or malformed in the environment, before anything
                # ran: a config problem a restart does not fix, as a refused one at start is
                # (`tradingd run` exits 78 for both). The message names the variables, never a value.
                raise CredentialsRefused(str(exc), venue=name) from None
            self.venues[name] = live
            if frame_hook is not None:
                live.on_frame = frame_hook(name)  # every raw frame, e.g. to a recorder
            client: ExecutionClient
            # The venue's fee schedule: paper mode books fills at it, strategies ask it
            # (`StrategyContext.fee`) in both modes.
            self.fee_models[name] = plugin.fee_model(settings.fees)
            if mode == "paper":
                sim = SimulatedVenue(
                    name,
                    self.registry,
                    self.fee_models[name],
                    live.decoder.book,
                    index=self.market_state.index_of(name),
                    tickers=functools.partial(self.market_state.ticker, name),
                )
                client = self.paper[name] = PaperExecution(
                    sim,
                    clock=clock,
                    latency_s=paper_latency_s,
                    log=self.log,
                    book_subscribed=functools.partial(self._book_subscribed, name),
                )
            else:
                client = live.execution()
            self.gateways[name] = ExecutionGateway(client, self.flow, clock=clock, log=self.log)
        self.ready = trio.Event()
        self.started = trio.Event()
        self.stopping = False
        self._nursery: trio.Nursery | None = None
        self._scope: trio.CancelScope | None = None
        self._strategies_scope = trio.CancelScope()
        self._strategies_done = trio.Event()
        self.reconciliations = 0
        # Orders not ours found open at a venue by a reconciliation, by venue (each sighting: a
        # reconciliation after a reconnect lists one still there again; the alerts read it).
        self.foreign_orders_found: dict[str, int] = {}
        # Steps of a reconciliation that raised (logged with the traceback; the next step, the
        # other venues and the daemon go on).
        self.reconcile_failures = 0
        # Positions the venue reports different from the engine's, at a reconciliation; and the
        # position checks finished (`_check_positions`, whatever they found: a marker of the end).
        self.position_mismatches = 0
        self.position_checks = 0
        # The differences alerted and not seen resolved since, by (venue, instrument): both
        # figures and when first alerted (the status file's `position_mismatches`).
        self.mismatched: dict[tuple[str, str], dict[str, Any]] = {}
        # The whole position check's bound (the venue's answers, the re-check included), and the
        # wait before a difference is asked again: a fill is booked when the venue matches it,
        # but a Polymarket balance moves when the trade is mined (seconds later, §2.2).
        self.position_check_s = 20.0
        self.position_recheck_s = 5.0
        # A check held back (the figures moved, or reports about our orders in the instrument
        # came between the two looks: a strategy quoting from its start) is looked at again
        # after each of these delays, by one task per venue outside the reconciliation's lock;
        # once they have run out, the difference is shown unconfirmed (`position.unconfirmed`).
        # And every `position_check_interval_s` while a venue's orders connection is up, its
        # positions are checked again (an account changed under a daemon that stays connected).
        self.position_retry_s: tuple[float, ...] = (5.0, 10.0, 20.0, 40.0, 80.0, 160.0)
        self.position_check_interval_s = 300.0  # `[daemon] position_check_interval_s`
        self._position_retrying: set[str] = set()
        self._unknown_held: set[tuple[str, str]] = set()  # warned of (`_held_unknown`)
        # Per connection that carries our orders ((venue, channel)): the connection number
        # (`connection` in its `subscribed` status) last reconciled, or being reconciled.
        self._reconciled_connection: dict[tuple[str, str], int] = {}
        self._caught_up_ns: dict[str, int] = {}
        self._reconciling: dict[str, trio.Lock] = {}
        # Per venue, the earliest time of a fill left unbooked because the journal could not be
        # read: the next catch-up of fills starts no later (see `_catch_up_fills`).
        self._unbooked_ns: dict[str, int] = {}
        self._catching_up: set[str] = set()
        self.flow.on_unreadable_fill = self._fill_unbooked
        # Orders whose outcome is unknown being asked about (`_follow_up`), by client order id:
        # the tracker's mark taken at the latest unknown outcome. And per order being asked
        # about, by anyone (a follow-up, a reconciliation), the lock that keeps its questions
        # one at a time (`_ask`).
        self._following: dict[str, int] = {}
        self._questions: dict[str, trio.Lock] = {}
        self.flow.on_outcome_unknown = self._outcome_unknown
        # Each venue's catalog settings (cache, source, refresh), built by the CLI from the
        # `[catalog]` table; the venue's plugin opens its catalog from them (`open_catalog`).
        self.catalog_settings: Mapping[str, CatalogSettings] = catalog_settings or {}
        self.catalogs: dict[str, MarketCatalog] = {}
        # Expiries and funding (`_settlements`): the expired instruments still held whose
        # delivery price the venue has not published yet (when first seen expired), and per
        # venue the time funding payments are asked from next.
        self._init_settlements()

    def _init_settlements(self) -> None:
        # What the journal held before this run (restored by now): the first funding round asks
        # from its last fill or payment, not from a fill of the downtime the start's catch-up
        # books, which is later than payments still to book.
        journal = self.flow.journal
        self._ledger_seq_at_start = None if journal is None else journal.last_seq()
        self.awaiting_delivery: dict[tuple[str, str], int] = {}
        self._delivery_asked: dict[tuple[str, str], int] = {}  # when each was last asked
        self._funding_since_ns: dict[str, int] = {}
        self.delivery_refused = 0  # delivery prices a venue answered that are no price
        # Per venue, the time up to which every fill of ours is known: set by each completed
        # catch-up of fills (the start's reconciliation, each reconnect's); while its order
        # connection has stayed up since (`_fills_live`), its fills come on the channel. A
        # disconnect takes the venue out of `_fills_live` until the next catch-up completes.
        self._fills_known_ns: dict[str, int] = {}
        self._fills_live: set[str] = set()
        self._disconnects: dict[str, int] = {}
        # Funding payments left undecided (`OrderFlow.funding(final=False)`): when first so.
        self._funding_undecided: dict[tuple[str, str], int] = {}
        self._funding_waiting_logged: set[str] = set()
        # Per venue, the payments it held back when the look-back no longer reached the oldest,
        # when alerted (`_book_funding`): alerted again only when they are others.
        self._funding_held_alerted: dict[str, str] = {}
        # Per venue, the payments its last funding answer left unbooked (held back by the venue,
        # or waiting): given up loudly once they fall past `funding_max_lookback_s`.
        self._funding_pending: dict[str, list[FundingPayment | HeldFunding]] = {}
        # Per venue, the payments not booked as this run last journaled them
        # (`OrderJournal.hold_funding`): written when they change, and after the first round
        # whatever they were (a venue not here: not written yet by this run).
        self._funding_held_journaled: dict[str, str] = {}

    # -- wiring -----------------------------------------------------------------------------

    def book(self, venue: str, instrument: str) -> OrderBook | None:
        live = self.venues.get(venue)
        return None if live is None else live.decoder.book(instrument)

    def fee_model(self, venue: str) -> FeeModel | None:
        return self.fee_models.get(venue)

    def _deliver_private(self, event: PrivateEvent) -> None:
        self.router.dispatch(event)
        waiter = self._private_waiter
        if waiter is not None:  # someone awaits orders' states (`_check_failed_orders`)
            self._private_waiter = None
            waiter.set()

    def _book_subscribed(self, venue: str, instrument: str) -> bool:
        return (instrument, DataKind.BOOK) in self.router.merged(venue)

    async def market(self, events: list[MarketEvent]) -> None:
        """`VenueSink`: market and status events from a session, in arrival order."""
        on_ticker = self.market_state.on_ticker
        paper = self.paper
        expired = self.awaiting_delivery
        for ev in events:
            if ev.__class__ is Ticker:
                # An expired instrument awaiting its delivery price keeps its last mark: no later
                # ticker moves it (`_settle_expired`).
                if not expired or (ev.venue, ev.instrument) not in expired:
                    on_ticker(ev)
            elif ev.__class__ is Status and ev.status is StatusKind.SUBSCRIBED and self.mode == "live":
                # (Re)connected and subscribed: what happened to our orders meanwhile? (Not for a
                # market-data-only connection of a venue whose orders come on another one.)
                if self._nursery is not None and ev.data.get("private") is not False:
                    self._on_subscribed(ev, self._nursery)
            elif ev.__class__ is Status and ev.status is StatusKind.DISCONNECTED:
                # Fills may now be missed until the next catch-up (`_fills_known_until`).
                self._fills_live.discard(ev.venue)
                self._disconnects[ev.venue] = self._disconnects.get(ev.venue, 0) + 1
            elif ev.__class__ is Status and ev.status is StatusKind.MARKET_RESOLVED:
                payout = ev.data.get("payout")
                if isinstance(payout, int | float):
                    self.flow.settle(ev.venue, ev.instrument, payout, now_ns=ev.ts_local)
            elif paper:
                sim = paper.get(ev.venue)
                if sim is not None:
                    fills = sim.on_market(ev)
                    if fills:
                        self.private(fills)
        # Into the strategies' mailboxes at once, in arrival order (after the paper fills they
        # caused, as before). A mailbox never blocks (it conflates, or drops trades beyond its
        # capacity, and counts it), so no router task is needed between the session and the
        # strategies: it cost a task switch per batch of frames on the tick-to-order path, and
        # reports of our orders (`private`, dispatched at once) could overtake market events
        # that arrived before them.
        dispatch = self.router.dispatch
        for ev in events:
            dispatch(ev)

    def private(self, events: Sequence[PrivateEvent]) -> None:
        """`VenueSink`: reports about our orders, folded into the tracker (never raises)."""
        for ev in events:
            try:
                self.flow.on_private(ev)
            except Exception:  # a venue report must never take the daemon down
                self.log.exception("order.report_failed", venue=ev.venue, order_id=ev.order_id)

    # -- running ----------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run every venue, the router and the strategies until cancelled (or `shutdown`)."""
        # A catalog keeps a nursery of its own (its background refresh) open while it is open:
        # opened before the engine's nursery and closed after it, so the two nest.
        async with contextlib.AsyncExitStack() as stack:
            await self._open_catalogs(stack)
            try:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    self._scope = nursery.cancel_scope
                    self.surfaces.spawn = nursery.start_soon
                    for name, live in self.venues.items():
                        await nursery.start(self._run_venue, name, live)
                    await nursery.start(self._run_strategies)
                    nursery.start_soon(self._await_ready)
                    nursery.start_soon(self._settlements)
                    nursery.start_soon(self._position_checks)
                    self.started.set()
                    task_status.started()
            finally:
                self.surfaces.spawn = None  # a closed nursery starts nothing

    async def _run_strategies(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with self._strategies_scope:
                async with trio.open_nursery() as nursery:
                    for slot in self.slots:
                        nursery.start_soon(self._run_strategy, slot)
                    task_status.started()
        finally:
            self._strategies_done.set()

    async def shutdown(
        self, *, cancel_open_orders: bool = False, timeout_s: float = 10.0, send_queued: bool = False
    ) -> bool:
        """The orderly stop: strategies stopped (their `on_stop` run), no new order requests,
        the requests already with a venue answered, open orders cancelled if asked, then every
        connection closed. Returns False when `timeout_s` ran out first (what was left is in the
        journal and the log).

        New orders and edits the strategies made before the stop began and that are not with a
        venue yet are refused at once, not sent while the strategies stop (`on_stop` may take
        seconds): a strategy being stopped no longer manages what they would open. Those its
        `on_stop` makes (a flattening order) are sent. With `send_queued` (`[daemon]
        send_queued_on_stop`) the queued ones keep going out while the strategies stop; what is
        still queued once they have stopped is refused either way (cancels always go)."""
        self.stopping = True
        deadline = trio.current_time() + timeout_s
        clean = True
        if not send_queued:
            dropped = sum(g.drop_queued("the daemon is stopping") for g in self.gateways.values())
            if dropped:
                self.log.warning("daemon.queued_orders_refused", requests=dropped)
        self._strategies_scope.cancel()
        with trio.move_on_at(deadline - min(2.0, timeout_s / 4)) as scope:
            await self._strategies_done.wait()  # each strategy's on_stop has run
            for gateway in self.gateways.values():
                # Orders the stopped strategies left queued are not sent (after the cancels).
                gateway.refuse_new("the daemon is stopping")
            if cancel_open_orders:
                await self.cancel_all_orders("shutdown", cause="shutdown")
            for gateway in self.gateways.values():
                gateway.close()
            for gateway in self.gateways.values():
                await gateway.stopped.wait()
        if scope.cancelled_caught:
            clean = False
            self.log.error(
                "daemon.shutdown_incomplete",
                in_flight=sorted(cid for g in self.gateways.values() for cid in g.in_flight),
                open_orders=len(self.flow.tracker.open_orders()),
            )
        open_left = self.flow.tracker.open_orders()
        self.log.info(
            "daemon.stopped_trading",
            open_orders=len(open_left),
            cancelled_open_orders=cancel_open_orders,
            clean=clean,
        )
        if self._scope is not None:
            self._scope.cancel()
        return clean

    async def cancel_all_orders(
        self, why: str, *, strategy: str | None = None, cause: CancelCause = "other"
    ) -> int:
        """Ask every venue to cancel every open order of ours (the kill switch, a shutdown), or
        only `strategy`'s (it failed). `cause`: the reason class their cancelled states are
        counted under. Returns how many cancels were answered; refusals are logged."""
        orders = self.flow.tracker.open_orders(strategy)
        answered = 0

        async def cancel(order: Order) -> None:
            nonlocal answered
            try:
                await self.gateways[order.request.venue].cancel_order(order.client_order_id, cause=cause)
                answered += 1
                self.log.info("order.cancelled", client_order_id=order.client_order_id, why=why)
            except (OrderRejected, VenueError) as exc:
                self.log.warning(
                    "order.cancel_failed", client_order_id=order.client_order_id, error=str(exc), why=why
                )

        async with trio.open_nursery() as nursery:
            for order in orders:
                nursery.start_soon(cancel, order)
        # A warning when there was something to cancel (the kill switch, a failed strategy, a
        # shutdown with orders open); a clean shutdown with none is no news (info).
        log = self.log.warning if orders else self.log.info
        log("orders.cancel_all", why=why, strategy=strategy, orders=len(orders), answered=answered)
        return answered

    async def _open_catalogs(self, stack: contextlib.AsyncExitStack) -> None:
        """The venues' market catalogs, kept fresh in the background while the daemon runs
        (a stale cache is refreshed at once; strategies are never blocked by it)."""
        for name in self.venues:
            # The venue opens its own catalog from its settings (cache path, source, refresh).
            opening = self.plugins[name].open_catalog(self.catalog_settings.get(name))
            if opening is None:
                continue  # a venue without a market catalog
            self.catalogs[name] = await stack.enter_async_context(opening)
            self.log.info("catalog.open", venue=name, markets=len(self.catalogs[name]))

    async def _run_venue(self, name: str, live: LiveVenue, *, task_status: trio.TaskStatus[None]) -> None:
        async with trio.open_nursery() as venue_nursery:
            await venue_nursery.start(live.run)
            await venue_nursery.start(self.gateways[name].run)
            task_status.started()

    async def _await_ready(self) -> None:
        for live in self.venues.values():
            await live.ready.wait()
        self.ready.set()
        self.log.info("engine.ready", venues=sorted(self.venues), mode=self.mode)

    async def _run_strategy(self, slot: StrategySlot) -> None:
        """One strategy's task: `on_start`, its events, `on_stop`. Whatever the strategy raises
        is its own failure, never the daemon's (`_strategy_failed`); only trio's cancellation
        (the shutdown) propagates."""
        strategy = slot.strategy
        strategy.attach(_LiveContext(self, slot))
        # As in a backtest, a strategy starts knowing the venues' instruments: once every venue
        # is connected, or after 30 s at most (a venue that is down must not hold the others).
        with trio.move_on_after(self.strategy_start_wait_s) as waited:
            await self.ready.wait()
        if waited.cancelled_caught:
            self.log.warning("strategy.start_without_ready", strategy=slot.name)
        phase: Phase = "on_start"
        try:
            await strategy.on_start()
            phase = "on_event"
            # An ordinary exception from on_event is logged and counted there and the strategy
            # goes on; anything else (SystemExit, KeyboardInterrupt) ends it here.
            await run_strategy(slot)
        except BaseException as exc:
            cancelled, fault = split_strategy_fault(exc)
            if fault is not None:
                self._strategy_failed(slot, phase, fault)
            if cancelled is not None:
                raise cancelled from None
        finally:
            with trio.move_on_after(self.on_stop_timeout_s, shield=True) as stopping:
                try:
                    await strategy.on_stop()
                except BaseException as exc:
                    cancelled, fault = split_strategy_fault(exc)
                    if fault is not None:
                        self._strategy_failed(slot, "on_stop", fault)
                    if cancelled is not None:
                        raise cancelled from None
            if stopping.cancelled_caught:
                self.log.error(
                    "strategy.on_stop_timeout", strategy=slot.name, timeout_s=self.on_stop_timeout_s
                )
            if slot.name in self.failures:
                # Its own shielded deadline: an `on_stop` that hangs or is slow must not cut the
                # policy's cancels short (they would be skipped silently).
                with trio.move_on_after(self.failure_cancel_timeout_s, shield=True):
                    await self._after_failure(slot)
                await self._check_failed_orders(slot)

    def _strategy_failed(self, slot: StrategySlot, phase: Phase, exc: BaseException) -> None:
        """A strategy raised out of a hook: it is stopped (no more events), the failure goes to
        the status file and the journal, and an alert-level line with the (redacted) traceback
        to the log. The other strategies go on."""
        first = slot.name not in self.failures
        failure = StrategyFailure(
            phase=phase, error=type(exc).__name__, message=redact_text(str(exc))[:500], ts_ns=self.clock()
        )
        if first:
            self.failures[slot.name] = failure
            if self.router.slot(slot.name) is not None:
                self.router.remove(slot.name)  # its subscriptions leave the venues' merged sets
            if self.on_failure.get(slot.name, "cancel") == "cancel":
                # What it queued and is not sent yet is not sent: it would go out after the
                # policy's cancels (they go first), working with nobody to manage it.
                for gateway in self.gateways.values():
                    gateway.drop_queued(f"strategy {slot.name} failed", strategy=slot.name)
        self.log.critical(
            "strategy.failed",
            strategy=slot.name,
            phase=phase,
            error=failure.error,
            message=failure.message,
            policy=self.on_failure.get(slot.name, "cancel"),
            exc_info=exc,
        )
        if self.flow.journal is not None:
            try:
                self.flow.journal.note("strategy_failed", None, strategy=slot.name, **failure.as_dict())
            except Exception as note_exc:  # the audit trail failing must not fail the engine
                self.log.error("journal.note_failed", kind="strategy_failed", error=repr(note_exc))

    async def _after_failure(self, slot: StrategySlot) -> None:
        """A failed strategy's open orders, by its `on_failure` policy: cancelled (the default: a
        strategy that is not running cannot manage them), or left working."""
        policy = self.on_failure.get(slot.name, "cancel")
        left = self.flow.tracker.open_orders(slot.name)
        if policy == "cancel" and left:
            try:
                await self.cancel_all_orders(f"strategy {slot.name} failed", strategy=slot.name)
            except Exception:  # one strategy's cleanup must not take the engine down
                self.log.exception("strategy.failed_cancel_error", strategy=slot.name)
        elif left:
            self.log.warning("strategy.failed_orders_left", strategy=slot.name, open_orders=len(left))

    async def _check_failed_orders(self, slot: StrategySlot) -> None:
        """After the `cancel` policy ran (or ran out of time): an order of the failed strategy
        still working is an order nobody manages, an alert. A cancel answered may still be
        confirmed later on the venue's user channel: the final states are awaited for
        `failure_final_wait_s` first (shielded: this runs as the strategy's task ends, on a
        shutdown too), so only orders still working then (a cancel refused, never confirmed)
        are alerted."""
        if self.on_failure.get(slot.name, "cancel") != "cancel":
            return
        tracker = self.flow.tracker
        with trio.move_on_after(self.failure_final_wait_s, shield=True):
            while tracker.open_orders(slot.name):
                self._private_waiter = waiter = self._private_waiter or trio.Event()
                await waiter.wait()  # set as the next report of ours is delivered
        left = tracker.open_orders(slot.name)
        if left:
            self.log.critical(
                "strategy.failed_orders_working",
                strategy=slot.name,
                open_orders=len(left),
                client_order_ids=[o.client_order_id for o in left],
            )

    def _on_subscribed(self, ev: Status, nursery: trio.Nursery) -> None:
        """A connection that carries our orders is subscribed: reconcile if it is a new
        connection (the daemon's start, each reconnect), not when a strategy's subscriptions
        change on a live one (a reconciliation reads open orders, every page of our trades and
        each missing order's status: rate-limit credits). The session numbers its connections
        (`connection` in the status's data, engine.venue.session); a status without the number (a
        venue plugin that does not say) reconciles each time."""
        epoch = ev.data.get("connection")
        key = (ev.venue, str(ev.data.get("channel") or ""))
        if isinstance(epoch, int):
            if self._reconciled_connection.get(key) == epoch:
                return  # this connection is reconciled already (or being reconciled)
            self._reconciled_connection[key] = epoch
        nursery.start_soon(self._reconcile_connection, ev.venue, key, epoch)

    async def _reconcile_connection(self, name: str, key: tuple[str, str], epoch: object) -> None:
        if not await self._reconcile(name) and self._reconciled_connection.get(key) == epoch:
            # Not done in full (a step failed, open orders unavailable): due again at this
            # connection's next `subscribed` status, or the next connection's.
            del self._reconciled_connection[key]

    async def _reconcile(self, name: str) -> bool:
        """After a connection's first subscription (`_on_subscribed`), and so after a restart:
        what the venue knows of our orders against what we (and the journal) know.

        1. The venue's open orders: a tracked order takes the venue's state; an untracked one
           labelled as ours (`<strategy>-<session>-<n>` of a running strategy) is tracked again;
           any other is foreign: reported, or cancelled with `foreign_orders = "cancel"`.
        2. Our fills since the oldest order we still track: any we missed (a disconnect, a
           crash) are booked now; those already booked are recognised by trade id.
        3. Each order we think working that the venue did not list (and that is not being
           sent right now), and each it listed as working that we hold final: the venue is asked
           about it, and its answer wins (`OrderTracker.apply_update`, `verified`). One it never
           received (sent, or about to be, when the daemon died) is final as rejected: it is
           never sent again.

        The venue's word wins over our state machine: a surprise is alerted and counted by the
        tracker, never raised. Any exception in one step (one order, one read) is logged with
        its traceback and counted (`reconcile_failures`); the next step goes on, and so do the
        other venues and the daemon. Returns whether every step was done (else it is retried at
        the next trigger).
        """
        lock = self._reconciling.setdefault(name, trio.Lock())
        async with lock:  # one at a time per venue (two connections may come up together)
            try:
                return await self._reconcile_once(name)
            except Exception:  # a last guard: each step has its own
                self._reconcile_failed(name, "reconciliation")
                return False

    def _reconcile_failed(self, venue: str, step: str, **ids: Any) -> None:
        """One step of a reconciliation raised: logged with its traceback and counted; the
        caller goes on with the next."""
        self.reconcile_failures += 1
        self.log.exception("reconcile.step_failed", venue=venue, step=step, **ids)

    async def _reconcile_once(self, name: str) -> bool:
        client = self.venues[name].execution()
        mark = self.flow.tracker.mark()
        try:
            updates = await client.open_orders()
        except VenueError as exc:
            self.log.warning("orders.open_unavailable", venue=name, error=str(exc))
            return False
        except Exception:  # a bug in the venue's method (even an AttributeError): not "unsupported"
            self._reconcile_failed(name, "open_orders")
            return False
        self.reconciliations += 1
        clean = True
        strategies = {s.name for s in self.slots}
        listed_cids: set[str] = set()
        listed_ids: set[str] = set()
        recheck: list[Order] = []  # listed as working, final here: asked again (step 3)
        for update in updates:
            cid = update.client_order_id
            try:
                listed_cids.add(cid or "")
                listed_ids.add(update.order_id or "")
                tracked = self.flow.tracker.find(name, order_id=update.order_id, client_order_id=cid)
                if tracked is not None:
                    if tracked.changed > mark:
                        # A report about it came while the listing was on its way: the listing
                        # is older than what we hold, and taking it would undo that report (an
                        # edit's new price and size acknowledged meanwhile would go back to the
                        # old ones; it is not a step back in state, so `apply_update` cannot
                        # tell). Nothing is lost: the channel reports whatever the venue did
                        # after our news, and fills missed before it are caught up below.
                        self.flow.tracker.stats.stale_updates += 1
                        continue
                    # Listed as working, final here: asked again (the venue's answer wins).
                    if tracked.state.is_final and update.status.is_live:
                        recheck.append(tracked)
                    self.flow.on_update(update)
                    continue
                owner = (cid or "").rsplit("-", 2)[0]
                if cid and owner in strategies:
                    try:
                        self.flow.adopt(update, strategy=owner)
                    except OrderRejected as exc:  # the journal could not be read to check its id
                        self.log.critical(
                            "order.adopt_failed", venue=name, client_order_id=cid, reason=exc.reason
                        )
                        continue
                    self.log.info("order.adopted", venue=name, client_order_id=cid, strategy=owner)
                else:
                    await self._foreign_order(name, client, update)
            except Exception:
                clean = False
                self._reconcile_failed(name, "open_order", client_order_id=cid, order_id=update.order_id)
        try:
            await self._catch_up_fills(name, client)
        except Exception:
            clean = False
            self._reconcile_failed(name, "fills")
        gateway = self.gateways[name]
        missing = [
            o
            for o in self.flow.tracker.open_orders()
            if o.request.venue == name
            and o.client_order_id not in listed_cids
            and (o.order_id is None or o.order_id not in listed_ids)
            and o.client_order_id not in gateway.in_flight
        ]
        for order in missing + [o for o in recheck if o.state.is_final]:
            try:
                await self._ask_about(name, client, order)
            except Exception:
                clean = False
                self._reconcile_failed(
                    name, "order_status", client_order_id=order.client_order_id, order_id=order.order_id
                )
        try:  # last: the orders' fates first, the balances (slow, advisory) after them
            await self._check_positions(name, client)
        except Exception:
            clean = False
            self._reconcile_failed(name, "positions")
        return clean

    async def _check_positions(
        self,
        venue: str,
        client: VenueExecution,
        *,
        retry: bool = True,
        held: Mapping[str, tuple[str, Decimal, Decimal]] | None = None,
    ) -> dict[str, tuple[str, Decimal, Decimal]]:
        """The venue's holdings against the engine's positions (every strategy's together), for
        a venue whose client can say (`VenueExecution.positions`, optional: Deribit's and
        Derive's `private/get_positions`, Polymarket's share balances), after the fills are
        caught up and the orders asked about. A difference no fill explains (a daemon restarted
        against an account that changed, a fresh simulator) is a critical alert with both
        figures (`position.mismatch`), counted (`position_mismatches`) and kept for the status
        file (`mismatched`, until a check finds the two agree). The ledger is not rewritten: it
        moves only by fills, whose prices it books. A venue's figure has no price, and taking
        it would be wrong whenever the venue is late rather than right (a Polymarket fill
        matched and not yet mined, then failed; an expired option closed at delivery before we
        book the delivery), or the account is shared (a manual hedge, another daemon).

        So an alert is raised only for a difference that holds still: two looks,
        `position_recheck_s` apart, read the same (ours, venue's) figures and no report about
        our orders in the instrument came between them (`OrderFlow.reports`: a fill on its way
        is not a difference; a working order that did not fill changes neither). A difference
        held back is looked at again on a backoff (`position_retry_s`, `_retry_positions`,
        started here with `retry`); the instruments held back are returned (why, and the last figures).
        A retry hands in what the try before it held back (`held`): an instrument no look of this
        one settled (its balance unread, the venue's answer missing or late) stays held back with
        that try's why and figures, so the retry goes on to its bound rather than dropping it. Every
        instrument we have a position record of, flat included, is asked (`_comparable`), and
        every one alerted until the venue agrees; a holding at the venue in an instrument we
        have no record of is warned of once (`_held_unknown`: Deribit's and Derive's answers
        list the account). The whole is bounded by `position_check_s`;
        `position_checks` counts the checks finished."""
        try:
            held_back = await self._check_positions_within(venue, client, held or {})
        finally:
            self.position_checks += 1
        if held_back and retry and venue not in self._position_retrying and self._nursery is not None:
            self._position_retrying.add(venue)
            self._nursery.start_soon(self._retry_positions, venue, client, held_back)
        return held_back

    async def _retry_positions(
        self, venue: str, client: VenueExecution, held_back: dict[str, tuple[str, Decimal, Decimal]]
    ) -> None:
        """A held-back check looked at again after each of `position_retry_s` (the sleeps
        outside the reconciliation's lock, each check inside it), until one is not held back.
        When the tries run out, each difference still held back is shown unconfirmed: a warning
        (`position.unconfirmed`) and an entry with `confirmed: false` in `mismatched`. One such
        task per venue at a time (`_position_retrying`); cancelled with the daemon. Each try is
        handed what the one before held back (`held_back`, first the check's that started it): a
        difference whose balance a try cannot read stays held back."""
        try:
            for delay in self.position_retry_s:
                await trio.sleep(delay)
                async with self._reconciling.setdefault(venue, trio.Lock()):
                    try:
                        held_back = await self._check_positions(venue, client, retry=False, held=held_back)
                    except Exception:
                        self._reconcile_failed(venue, "positions")
                        continue  # what the try before held back is still held back
                if not held_back:
                    return
            for symbol, (why, mine, held) in held_back.items():
                self._position_unconfirmed(
                    venue, symbol, mine, held, why=why, tries=len(self.position_retry_s)
                )
        finally:
            self._position_retrying.discard(venue)

    async def _position_checks(self) -> None:
        """Every `position_check_interval_s`, the positions of each venue whose orders
        connection is up and caught up (`_fills_live`) checked again, outside a reconnection:
        an account changed under a daemon that stays connected is seen."""
        if self.mode != "live":
            return
        while True:
            await trio.sleep(self.position_check_interval_s)
            for name in sorted(self._fills_live & set(self.venues)):
                async with self._reconciling.setdefault(name, trio.Lock()):
                    try:
                        await self._check_positions(name, self.venues[name].execution())
                    except Exception:
                        self._reconcile_failed(name, "positions")

    def _comparable(self, venue: str) -> dict[str, Decimal]:
        """Every strategy's positions at `venue` together, those a venue's figure can be
        compared with: every instrument with a position record, flat ones included (a venue
        holding what we hold flat is a difference too: a strategy closing what it thinks it
        holds would open it there), and every one alerted (`mismatched`) until the venue agrees.
        Not a resolved market's (settled to 0 in the ledger while the venue keeps its tokens
        until they are redeemed, losing ones never: the registry's `active`), not one past its
        expiry or awaiting its delivery (the venue closes it at delivery, our settlement round
        books it later: `_settle_expired`), and not a spot holding (a balance, which no
        `get_positions` of VENUES.md lists)."""
        ours: dict[str, Decimal] = {}
        comparable: dict[str, bool] = {}
        now = self.clock()

        def count(symbol: str, qty: Decimal, fallback: Instrument | None) -> None:
            ours[symbol] = ours.get(symbol, Decimal(0)) + qty
            inst = self.registry.get(venue, symbol) or fallback
            comparable[symbol] = inst is not None and (
                inst.active
                and inst.kind is not InstrumentKind.SPOT
                and (inst.expiry_ns is None or inst.expiry_ns > now)
                and (venue, symbol) not in self.awaiting_delivery
            )

        for ledger in self.flow.ledgers.values():
            for pos in ledger:
                if pos.instrument.venue == venue:
                    count(pos.instrument.symbol, pos.qty, pos.instrument)
        for key in self.mismatched:
            if key[0] == venue and key[1] not in ours:
                count(key[1], Decimal(0), None)
        return {symbol: qty for symbol, qty in ours.items() if comparable[symbol]}

    async def _check_positions_within(
        self, venue: str, client: VenueExecution, before: Mapping[str, tuple[str, Decimal, Decimal]]
    ) -> dict[str, tuple[str, Decimal, Decimal]]:
        source = client.positions
        if source is None:
            return {}  # the venue does not say what the account holds
        reports = self.flow.reports
        held_back: dict[str, tuple[str, Decimal, Decimal]] = {}
        settled: set[str] = set()  # compared by this check: agreed, alerted, or held back anew

        async def look(
            symbols: Sequence[str], *, others: bool = False
        ) -> dict[str, tuple[Decimal, Decimal]] | None:
            """(ours, the venue's) for each symbol the venue could say, ours taken before the
            question: one it could not read (not in `Holdings.held`) is left out, never taken as 0."""
            ours = self._comparable(venue)
            try:
                answer = await source.venue_positions(sorted(symbols))
            except VenueError as exc:
                self.log.warning("positions.unavailable", venue=venue, error=str(exc))
                return None
            if isinstance(answer, Holdings):
                # Only a figure the venue said: one asked and not in `held` (its `unread`, or
                # missing from the answer by a connector's bug) is no 0.
                theirs = answer.held
                unread = {symbol for symbol in symbols if symbol not in theirs}
            else:  # the account listed: an instrument asked and missing holds 0
                theirs, unread = answer, set()
            left_out = sorted(unread)
            if left_out:
                self.log.warning(
                    "positions.left_out",
                    venue=venue,
                    instruments=left_out,
                    compared=len(symbols) - len(left_out),
                    action="the venue could not say what the account holds of these: not compared "
                    "(an alert of one stays) until it can; the others are",
                )
            if others:
                self._held_unknown(venue, theirs, symbols)
            return {
                symbol: (ours.get(symbol, Decimal(0)), theirs.get(symbol, Decimal(0)))
                for symbol in symbols
                if symbol not in unread
            }

        async def compare() -> None:
            # Asked even with nothing to compare: a venue whose answer lists the account says
            # what it holds that we have no record of (nothing is asked of one that does not).
            first = await look(list(wanted), others=True)
            if first is None:
                return
            differ = sorted(symbol for symbol, (mine, held) in first.items() if mine != held)
            for symbol in first.keys() - set(differ):
                settled.add(symbol)
                self.mismatched.pop((venue, symbol), None)
            if not differ:
                return
            # The venue reports none of what we compared (a fresh account or simulator, the wrong
            # account's keys): said as such, and how many could not be read.
            nothing = all(held == 0 for _, held in first.values())
            unread = len(wanted) - len(first)
            await trio.sleep(self.position_recheck_s)
            # No answer at the second look (`positions.unavailable`) is every difference unread.
            second = await look(differ) or {}
            for symbol in differ:
                settled.add(symbol)
                if symbol not in second:  # unread at the second look (`positions.left_out`)
                    unsaid = "the venue could not say it at the second look"
                    held_back[symbol] = (unsaid, *first[symbol])
                    self.log.info("position.unsettled", **_figures(venue, symbol, *first[symbol]), why=unsaid)
                    continue
                mine, held = second[symbol]
                why = (
                    "agree now"
                    if mine == held
                    else "the figures moved between the two looks"
                    if second[symbol] != first[symbol]
                    else "reports about our orders in it came between the two looks"
                    if reports.get((venue, symbol), 0) != marks[symbol]
                    else None
                )
                if why is not None:
                    if mine == held:
                        self.mismatched.pop((venue, symbol), None)
                    else:
                        held_back[symbol] = (why, mine, held)
                    self.log.info("position.unsettled", **_figures(venue, symbol, mine, held), why=why)
                    continue
                self._position_mismatch(
                    venue, symbol, mine, held, nothing=nothing, compared=len(first), unread=unread
                )

        wanted = self._comparable(venue)
        for key in [k for k in self.mismatched if k[0] == venue and k[1] not in wanted]:
            del self.mismatched[key]  # no longer comparable (expired, resolved)
        marks = {symbol: reports.get((venue, symbol), 0) for symbol in wanted}
        with trio.move_on_after(self.position_check_s) as bounded:
            await compare()
        if bounded.cancelled_caught:
            self.log.warning(
                "positions.unavailable", venue=venue, error=f"no answer within {self.position_check_s} s"
            )
        # A difference a retry held back and this check could not look at (its balance unread,
        # no answer, none in time) is still one: held back as the try before saw it, not dropped.
        for symbol, kept in before.items():
            if symbol in wanted and symbol not in settled:
                held_back[symbol] = kept
        return held_back

    def _held_unknown(self, venue: str, theirs: Mapping[str, Decimal], asked: Sequence[str]) -> None:
        """What the venue says the account holds in instruments we have no position record of
        (Deribit's and Derive's answers list the account): a warning, once per instrument and
        run. Not a mismatch: an account may be shared (a manual hedge, another daemon), and
        none of our strategies trades it; but after a lost journal it is a position nobody
        watches."""
        known = {pos.instrument.symbol for ledger in self.flow.ledgers.values() for pos in ledger}
        known.update(asked)
        for symbol, held in sorted(theirs.items()):
            if held == 0 or symbol in known or (venue, symbol) in self._unknown_held:
                continue
            self._unknown_held.add((venue, symbol))
            self.log.warning(
                "position.unknown_at_venue",
                venue=venue,
                instrument=symbol,
                venue_holds=decimal_text(held),
                action="not ours by the journal: left as it is; check the account",
            )

    def _position_mismatch(
        self,
        venue: str,
        symbol: str,
        mine: Decimal,
        held: Decimal,
        *,
        nothing: bool,
        compared: int,
        unread: int,
    ) -> None:
        self.position_mismatches += 1
        found = self.mismatched.get((venue, symbol))
        self.mismatched[(venue, symbol)] = {
            "venue": venue,
            "instrument": symbol,
            "engine": decimal_text(mine),
            "venue_holds": decimal_text(held),
            "since_ns": self.clock() if found is None else found["since_ns"],
            "confirmed": True,
        }
        if nothing and not unread:
            held_what = "the instrument" if compared == 1 else f"the {compared} instruments"
            action = (
                f"alerted: the venue reports holding nothing of what we hold ({held_what}); "
                "the ledger moves only by fills; check the account"
            )
        elif nothing:  # some not read: "nothing of what we hold" would say more than was read
            action = (
                f"alerted: the venue reports holding nothing of the {plural(compared, 'instrument')} "
                f"compared ({unread:,} more could not be read); the ledger moves only by fills; "
                "check the account"
            )
        else:
            action = "alerted: the ledger moves only by fills; check the account"
        self.log.critical("position.mismatch", **_figures(venue, symbol, mine, held), action=action)

    def _position_unconfirmed(
        self, venue: str, symbol: str, mine: Decimal, held: Decimal, *, why: str, tries: int
    ) -> None:
        """A difference every retry held back (`_retry_positions`): shown, not alerted as a
        mismatch (it never held still for two looks), until a check finds the two agree or
        alerts it. An alerted one stays alerted."""
        found = self.mismatched.get((venue, symbol))
        if found is not None and found["confirmed"]:
            return
        self.mismatched[(venue, symbol)] = {
            "venue": venue,
            "instrument": symbol,
            "engine": decimal_text(mine),
            "venue_holds": decimal_text(held),
            "since_ns": self.clock() if found is None else found["since_ns"],
            "confirmed": False,
        }
        self.log.warning(
            "position.unconfirmed",
            **_figures(venue, symbol, mine, held),
            why=why,
            tries=tries,
            action="shown unconfirmed: the venue's figure never held still for two looks; check the account",
        )

    async def _foreign_order(self, venue: str, client: Reconciler, update: OrderUpdate) -> None:
        fields = {
            "venue": venue,
            "instrument": update.instrument,
            "order_id": update.order_id,
            "label": update.client_order_id,
            "side": update.side.value,
            "size": decimal_text(update.size),
            "price": None if update.price is None else decimal_text(update.price),
            "status": OrderState(update.status).value,
        }
        self.foreign_orders_found[venue] = self.foreign_orders_found.get(venue, 0) + 1
        if self.foreign_orders == "cancel" and update.order_id:
            try:
                await client.cancel_by_order_id(update.instrument, update.order_id)
                self.log.warning("order.foreign_cancelled", **fields)
            except VenueError as exc:
                self.log.error("order.foreign_cancel_failed", error=str(exc), **fields)
        else:
            self.log.warning("order.foreign_open", policy=self.foreign_orders, **fields)
        self.flow._journal("note", "foreign_order", None, policy=self.foreign_orders, **fields)

    async def _catch_up_fills(self, venue: str, client: Reconciler) -> None:
        epoch = self._disconnects.get(venue, 0)
        tracker = self.flow.tracker
        first = tracker.first_created_ns.get(venue)
        if first is None:
            self._fills_caught_up(venue, self.clock(), epoch)
            return  # no order of ours on this venue, ever
        # From the oldest order still working, or the last catch-up (what happened to orders
        # final since then), whichever is older; the first time, the oldest order we know (kept
        # by the tracker after the order itself has left memory for the journal). A minute of
        # margin for clocks.
        # And no later than a fill left unbooked because the journal could not be read (the
        # venue will not report it on its channel again): until it is booked, every catch-up
        # asks for it again.
        starts = [o.created_ns for o in tracker.open_orders() if o.request.venue == venue]
        starts.append(self._caught_up_ns.get(venue) or first)
        unbooked = self._unbooked_ns.pop(venue, None)
        if unbooked is not None:
            starts.append(unbooked)
        since = min(starts) - 60 * 1_000_000_000
        asked_ns = self.clock()
        try:
            fills = await client.recent_fills(since)
        except VenueError as exc:
            if unbooked is not None:
                self._note_unbooked(venue, unbooked)
            self.log.warning("fills.recent_unavailable", venue=venue, error=str(exc))
            return
        booked = reversed_ = 0
        lookup_failures = tracker.stats.archive_failures
        self._catching_up.add(venue)  # no checkpoint until it is discarded
        try:
            for fill in fills:
                if self.flow.refused_trade(fill):
                    # A trade refused on a contested venue id (`fill.not_booked`): never booked by
                    # tradingd, the contest settled or not (the id back to one claimant would take
                    # it); a reversal of it is alerted once (`fill.reversal_not_applied`).
                    self.flow.on_private(fill)
                    continue
                found = self.flow.tracker.find(
                    venue, order_id=fill.order_id, client_order_id=fill.client_order_id
                )
                if found is None:
                    if tracker.contested(venue, fill.order_id):
                        # Ours, one of two orders that claim its venue id (`OrderTracker.
                        # contested`), not "not ours": the flow refuses it, alerting and
                        # journaling it once (a fill), or takes a voided trade out of the
                        # claimant that has it (a reversal).
                        if not isinstance(fill, FillReversal):
                            self.flow.on_fill(fill)
                        elif any(o.has_fill(fill.trade_id) for o in tracker.claimants(venue, fill.order_id)):
                            self.flow.on_private(fill)
                            reversed_ += 1
                    continue  # not ours (its own reconciliation reports it), or journal unreadable
                if isinstance(fill, FillReversal):
                    # A venue that voids fills (a trade reverted on chain) lists the voided ones; a
                    # reversal counts only for a fill this order holds (booked before a restart,
                    # say), once: taking it out forgets its trade id.
                    if found.has_fill(fill.trade_id):
                        self.flow.on_private(fill)
                        reversed_ += 1
                elif found.has_fill(fill.trade_id):  # this order's fill of the trade (not another's)
                    continue  # booked already (the usual case): not a duplicate from the venue
                elif self.flow.on_fill(fill) is not None:
                    booked += 1
        finally:
            self._catching_up.discard(venue)
        self._caught_up_ns[venue] = asked_ns
        if tracker.stats.archive_failures != lookup_failures:
            # A fill could not be told ours or not: asked for again from this window's start.
            self._note_unbooked(venue, min(starts))
            self.log.critical("fills.catch_up_incomplete", venue=venue, since_ns=since)
        else:
            self._fills_caught_up(venue, asked_ns, epoch)
        if booked or reversed_:
            self.log.warning("fills.caught_up", venue=venue, fills=booked, reversals=reversed_)

    def _fills_caught_up(self, venue: str, asked_ns: int, epoch: int) -> None:
        """Every fill of `venue` up to `asked_ns` is known (a catch-up completed); the channel
        brings the later ones unless the connection dropped meanwhile (`epoch`)."""
        self._fills_known_ns[venue] = max(self._fills_known_ns.get(venue, asked_ns), asked_ns)
        if self._disconnects.get(venue, 0) == epoch:
            self._fills_live.add(venue)

    def _fills_known_until(self, venue: str) -> int | None:
        """The time up to which every fill of ours on `venue` is known (booked), or None before
        its first catch-up (the start's reconciliation) has completed."""
        known = self._fills_known_ns.get(venue)
        if known is not None and venue in self._fills_live:
            known = max(known, self.clock() - int(self.fill_lag_s * 1e9))
        return known

    def _note_unbooked(self, venue: str, ts_ns: int) -> None:
        known = self._unbooked_ns.get(venue)
        self._unbooked_ns[venue] = ts_ns if known is None else min(known, ts_ns)

    def _fill_unbooked(self, fill: Fill) -> None:
        """A fill left unbooked because the journal could not be read (`OrderFlow.on_fill`):
        the venue does not report a trade twice on its channel (Derive's decoder has marked it
        seen), so its venue's fills are caught up again now (a reconciliation), and from no
        later than this fill until it is booked."""
        ts = fill.ts_local if fill.ts_exchange is None else min(fill.ts_local, fill.ts_exchange)
        self._note_unbooked(fill.venue, ts)
        if fill.venue in self._catching_up:
            return  # found by a catch-up, which asks again itself
        if self._nursery is not None and self.mode == "live" and fill.venue in self.venues:
            self._nursery.start_soon(self._reconcile, fill.venue)

    async def _ask_about(self, venue: str, client: Reconciler, order: Order) -> None:
        """A reconciliation's question about one order (`_reconcile`, step 3). An order the venue
        has no record of, that we had not sent when the daemon stopped (pending, without the
        venue's id), is final as rejected: it is never sent now. One whose request's outcome is
        being followed up (`_follow_up`) is that follow-up's to decide: sent, perhaps only just
        filed by the venue."""
        if await self._ask(venue, client, order) != "not_known":
            return
        if order.client_order_id in self._following:
            self.log.info("order.unknown_at_venue_yet", venue=venue, client_order_id=order.client_order_id)
            return
        if order.order_id is None and order.state is OrderState.PENDING_NEW:
            self.flow.venue_rejected(
                order,
                OrderRejected(
                    "never reached the venue (the daemon stopped before sending it); not re-sent",
                    venue=venue,
                    client_order_id=order.client_order_id,
                    code="never_sent",
                ),
                now_ns=self.clock(),
            )
        elif order.state is OrderState.PENDING_NEW:
            # Its id known before sending (Polymarket's order hash), pending from before this
            # connection (a follow-up would be running for a request of this process): the
            # venue has no record of it by that id, so it never took it.
            self.flow.venue_rejected(
                order,
                OrderRejected(
                    "the venue has no record of it: never received; not re-sent",
                    venue=venue,
                    client_order_id=order.client_order_id,
                    code="unknown_at_venue",
                ),
                now_ns=self.clock(),
            )
        elif not self._remainder_unsaid(venue, order, after="reconciliation", answer="not_known"):
            self.log.error(
                "order.unknown_at_venue",
                venue=venue,
                client_order_id=order.client_order_id,
                order_id=order.order_id,
                state=order.state.value,
            )

    async def _ask(
        self, venue: str, client: Reconciler, order: Order
    ) -> Literal["answered", "unavailable", "overtaken", "not_known"]:
        """Ask the venue what it knows of `order` and apply its answer: "answered" (its reports
        applied), "unavailable" (it could not answer: logged), "overtaken" (no record of it,
        but reports came meanwhile), or "not_known" (no record of it, nothing else heard: what
        that means is the caller's to decide). One question per order at a time."""
        cid = order.client_order_id
        lock = self._questions.setdefault(cid, trio.Lock())
        try:
            async with lock:
                return await self._ask_once(venue, client, order)
        finally:
            if not lock.locked() and lock.statistics().tasks_waiting == 0:
                self._questions.pop(cid, None)

    async def _ask_once(
        self, venue: str, client: Reconciler, order: Order
    ) -> Literal["answered", "unavailable", "overtaken", "not_known"]:
        # An order asked about just after its write (a reconciliation meanwhile) may still wait
        # for its `order.sent` line: logged before anything said here about it.
        self.flow.flush_sent()
        mark = self.flow.tracker.mark()
        try:
            reports = await client.order_status(order)
        except VenueError as exc:
            self.log.warning(
                "order.status_unavailable", client_order_id=order.client_order_id, error=str(exc)
            )
            return "unavailable"
        # A report on the channel (a cancel, a fill) that arrived while the question was on its
        # way is newer than what the answer may have seen: the answer then counts as a channel
        # report does (a step back is stale), or it would bring a cancelled order back to life.
        changed = order.changed > mark
        if reports:
            for report in reports:
                if isinstance(report, OrderUpdate):
                    # Else asked after everything we hold about it: the venue's answer wins,
                    # even where it goes back (a working state after a final one, less filled).
                    # `asked`: when changed, not its price and size either (an edit meanwhile).
                    self.flow.on_update(report, verified=not changed, asked=mark)
                else:
                    self.flow.on_private(report)
            return "answered"
        if changed:
            # Unknown to the venue, but reported meanwhile: its reports say more than the answer.
            self.log.warning("order.status_overtaken", venue=venue, client_order_id=order.client_order_id)
            return "overtaken"
        return "not_known"

    # -- orders whose outcome is unknown -------------------------------------------------------
    def _outcome_unknown(self, order: Order) -> None:
        """`OrderFlow.on_outcome_unknown`: a request about `order` had no readable answer. Its
        venue is asked about it soon (`_follow_up`), one follow-up per order: a later unknown
        outcome (a cancel's, after the placement's) starts the running one's schedule again."""
        venue = order.request.venue
        if self.mode != "live" or self._nursery is None or venue not in self.venues:
            return  # paper orders never leave the process; a test flow has no engine running
        if not self.outcome_followup_s:
            return
        cid = order.client_order_id
        running = cid in self._following
        self._following[cid] = self.flow.tracker.mark()
        if not running:
            self._nursery.start_soon(self._follow_up, venue, order)

    async def _follow_up(self, venue: str, order: Order) -> None:
        """Ask the venue about `order`, whose outcome is unknown, after each delay of
        `outcome_followup_s` until its word settles it: a report of it (on the channel, or in
        an answer), or its being final, ends the questions. Unreachable, the venue is asked
        again after the next delay. A new order it still has no record of at the last question
        it never took (its answer to a question asked a minute after the request, however
        lost, is its word): rejected, so the strategy and its limits are freed. An immediate
        order (IOC, FOK) is settled only by a final state: neither a fill nor an answer that
        leaves it working ends its questions, and one the last question leaves short of a final
        state is alerted as such (`_remainder_unsaid`), never "unknown at the venue" for an
        order the venue filled. Ends with the engine (its nursery's cancellation)."""
        cid = order.client_order_id
        delays = self.outcome_followup_s
        gateway = self.gateways[venue]
        answer: str | None = None
        attempt = 0
        try:
            while attempt < len(delays):
                since = self._following[cid]
                await trio.sleep(delays[attempt])
                if self._following[cid] != since:  # another request's outcome unknown meanwhile
                    attempt, answer = 0, None
                    continue
                if cid in gateway.in_flight:
                    # A request of ours about it (a cancel) is with the venue: its answer first
                    # (a question now could not tell its effect); an unknown outcome of it
                    # starts the schedule again, any other answer changes the order.
                    continue
                if order.state.is_final or (
                    order.changed > since
                    and order.state not in _OURS
                    and order.request.time_in_force not in _IMMEDIATE
                ):
                    self.flow._journal("note", "outcome_settled", cid, by="report", state=order.state.value)
                    # the venue's reports (or its answer to a request of ours) settled it; a fill
                    # of an immediate order does not (its remainder's end is unsaid: ask)
                    return
                # Still in a state of our own making (a refused cancel put it back to pending):
                # no word from the venue on its fate yet.
                attempt += 1
                answer = await self._ask(venue, self.venues[venue].execution(), order)
                self.flow._journal(
                    "note", "outcome_asked", cid, attempt=attempt, answer=answer, state=order.state.value
                )
                if answer in ("answered", "overtaken") and (
                    order.state.is_final or order.request.time_in_force not in _IMMEDIATE
                ):
                    return
                # (An immediate order the venue's word left working, partly filled, say: only
                # a final state is its fate. Asked again at the next delay.)
                if self._following[cid] != since:
                    attempt, answer = 0, None  # a request's outcome unknown while it was asked
            if order.state.is_final:  # a report settled it while the last question was asked
                self.flow._journal("note", "outcome_settled", cid, by="report", state=order.state.value)
                return
            self._unknown_at_venue(venue, order, answer)
        finally:
            self._following.pop(cid, None)

    def _unknown_at_venue(self, venue: str, order: Order, answer: str | None) -> None:
        """The follow-up's last question is answered (`_follow_up`): what the venue's word is."""
        fields = {
            "venue": venue,
            "client_order_id": order.client_order_id,
            "order_id": order.order_id,
            "state": order.state.value,
            "questions": len(self.outcome_followup_s),
        }
        if answer in ("answered", "overtaken", "not_known") and self._remainder_unsaid(
            venue, order, after="outcome_unknown", answer=answer
        ):
            return
        if answer != "not_known":
            # Unreachable at the last question: no word, so nothing is decided (never guessed);
            # the channel or the next reconnect's reconciliation settles it.
            self.log.error("order.outcome_still_unknown", **fields)
            self.flow._journal("note", "outcome_still_unknown", order.client_order_id, answer=answer)
            return
        if order.state is OrderState.PENDING_NEW:
            # Its placement had no answer, and a minute on the venue has no record of it (by
            # its id where we knew one before sending, Polymarket's order hash, else by our
            # label): it never took it. Not re-sent: the strategy decides.
            seconds = sum(self.outcome_followup_s)
            self.flow.venue_rejected(
                order,
                OrderRejected(
                    f"the venue does not know it {seconds:g} s after its placement's outcome was "
                    "unknown: it never took it; not re-sent",
                    venue=venue,
                    instrument=order.request.instrument,
                    client_order_id=order.client_order_id,
                    code="unknown_at_venue",
                ),
                now_ns=self.clock(),
            )
            return
        # An order the venue acknowledged once (a cancel's or an edit's outcome unknown) that it
        # no longer knows: gone from its records, but whether cancelled or filled is not said.
        # Not guessed: alerted; the channel or the next reconciliation (trades) settles it.
        self.log.error("order.unknown_at_venue", after="outcome_unknown", **fields)
        self.flow._journal("note", "outcome_still_unknown", order.client_order_id, answer=answer)

    def _remainder_unsaid(self, venue: str, order: Order, *, after: str, answer: str) -> bool:
        """An immediate order (IOC, FOK; Polymarket's FAK) that the venue's word, at the last
        question, left short of a final state: partly filled by fills it reported, or said to
        work (`answer`: "answered"), or reported on while it said it had no record
        ("overtaken"). Its fate is not "unknown at the venue": the venue filled what it filled
        (booked), and it is not "cancelled" either: an immediate order's remainder ends at once
        by definition, but it is ended only when the venue says so, never guessed. It stays as it
        is (its remainder counted as working, against its limits) and is alerted
        (`order.remainder_unsaid`), for the venue's next report, the next reconciliation's
        question, or a person. True when so; False for any other order (the caller's cases)."""
        if order.state.is_final or order.request.time_in_force not in _IMMEDIATE:
            return False
        if answer == "not_known" and not order.filled_size:
            return False  # no fill, no record: the caller's (never taken, or gone unsaid)
        self.log.error(
            "order.remainder_unsaid",
            after=after,
            answer=answer,
            venue=venue,
            client_order_id=order.client_order_id,
            order_id=order.order_id,
            state=order.state.value,
            filled=decimal_text(order.filled_size),
            remaining=decimal_text(order.remaining),
            tif=order.request.time_in_force.value,
        )
        self.flow._journal("note", "outcome_still_unknown", order.client_order_id, answer=answer)
        return True

    # -- expiries and funding ------------------------------------------------------------------
    async def _settlements(self) -> None:
        """Every `settle_interval_s` once the venues are up: expired positions settled at the
        venue's delivery price, and (live) perpetual funding booked from the venue's history.
        They start with the strategies: once every venue is up, or after `strategy_start_wait_s`
        (a venue that is down must not hold the others' expiries)."""
        with trio.move_on_after(self.strategy_start_wait_s):
            await self.ready.wait()
        while True:
            await self.settle_once()
            await trio.sleep(self.settle_interval_s)

    async def settle_once(self) -> None:
        """One round of `_settlements` (never raises but for cancellation: a venue's odd answer
        is logged and asked again next round): every venue's expiries and (live) funding side
        by side, each with a deadline of its own."""
        async with trio.open_nursery() as nursery:
            for name in self.venues:
                nursery.start_soon(self._settle_step, name, "expiries", self.settle_venue_timeout_s)
                if self.mode == "live":
                    nursery.start_soon(self._settle_step, name, "funding", self.funding_timeout_s)

    async def _settle_step(self, name: str, step: str, timeout_s: float) -> None:
        try:
            with trio.move_on_after(timeout_s) as scope:
                if step == "expiries":
                    await self._settle_expired(name)
                else:
                    await self._book_funding(name)
            if scope.cancelled_caught:
                self.log.error("settlement.round_timeout", venue=name, step=step, timeout_s=timeout_s)
        except Exception:
            self.log.exception("settlement.round_failed", venue=name, step=step)

    def _expired_held(self, venue: str, now_ns: int) -> list[Instrument]:
        seen: dict[str, Instrument] = {}
        for ledger in self.flow.ledgers.values():
            for pos in ledger:
                inst = pos.instrument
                expiry = inst.expiry_ns
                if pos.qty != 0 and inst.venue == venue and expiry is not None and expiry <= now_ns:
                    seen[inst.symbol] = inst
        return [seen[k] for k in sorted(seen)]

    async def _settle_expired(self, name: str) -> None:
        """Each position in an instrument whose expiry has passed is closed at the delivery price
        the venue published (`delivery_price` of its execution client), never at a price of
        ours. Until the venue has published it the instrument is flagged (`awaiting_delivery`,
        the status file) and valued at its last mark (no later ticker moves it): valuing it at
        cost would hide what an expired position in the money is worth, a short's loss above
        all. It is asked again each round. A delivery price that is no price is refused where
        it is read (the connector's `VenueError`) and again by `OrderFlow.settle`: an alert,
        counted in `delivery_refused`, asked again next round."""
        now = self.clock()
        due = self._expired_held(name, now)
        if not due:
            return
        ask = self.venues[name].execution().delivery
        for inst in due:
            key = (name, inst.symbol)
            if key not in self.awaiting_delivery:
                self.awaiting_delivery[key] = now
                self.log.warning("instrument.expired_unsettled", venue=name, instrument=inst.symbol)
            if ask is None:
                self.log.error("settlement.unsupported", venue=name, instrument=inst.symbol)
        if ask is None:
            return  # the venue publishes no delivery prices (alerted above)
        # A few per round, those asked longest ago first; marked asked before the question, so
        # one whose answer never comes goes last next round and the others are asked in turn.
        asked = self._delivery_asked
        due.sort(key=lambda i: asked.get((name, i.symbol), 0))
        for inst in due[: self.delivery_asks_per_round]:
            key = (name, inst.symbol)
            asked[key] = now
            try:
                price = await ask.delivery_price(inst.symbol)
            except VenueError as exc:
                malformed = exc.code == "malformed"
                self.delivery_refused += malformed
                (self.log.error if malformed else self.log.warning)(
                    "settlement.delivery_unavailable", venue=name, instrument=inst.symbol, error=str(exc)
                )
                continue
            if price is None:
                self.log.info("settlement.awaiting_delivery_price", venue=name, instrument=inst.symbol)
                continue
            realized = self.flow.settle(name, inst.symbol, price, now_ns=now)
            if realized is None:  # refused (logged and counted by the flow): asked again next round
                continue
            del self.awaiting_delivery[key]
            asked.pop(key, None)
            self.market_state.tickers.pop(key, None)
            self.log.warning(
                "instrument.settled",
                venue=name,
                instrument=inst.symbol,
                price=decimal_text(price),
                realized=realized,
            )
            await self.market(
                [
                    Status(
                        venue=name,
                        instrument=inst.symbol,
                        ts_exchange=inst.expiry_ns,
                        ts_local=now,
                        status=StatusKind.EXPIRED,
                        message=f"{inst.symbol} expired",
                        data={"delivery_price": str(price)},
                    )
                ]
            )

    async def _book_funding(self, name: str) -> None:
        """The venue's funding payments since the last time asked, and always at least
        `funding_lookback_s` back (a payment the venue lists late is found; each is booked once
        by `OrderFlow.funding`, by the positions held when it accrued). Asked whenever a
        perpetual of the venue was held at any time in that span, even if none is held now (a
        position closed before this poll was still paid on). One that must wait (no USD rate
        yet) is asked for again next round.

        Not before the venue's fills are caught up (the start's reconciliation): a payment is
        split by the positions at its time, which a fill missed while down changes. A payment
        after the time every fill is known up to (a reconnect's catch-up not done yet) that is
        found not ours is asked again next round rather than left, for `funding_undecided_max_s`
        at most. The first round asks from the journal's last fill or funding payment of the
        venue (a downtime longer than the look-back loses none), or from the oldest payment not
        booked before the restart if older (`OrderJournal.funding_pending`).

        A payment the venue held back (`FundingPayments.held_since_ns`: Derive's, with a record
        that cannot be read) keeps the window's start at or before it until it is booked; once
        the look-back alone would no longer reach it, an error (`funding.held_beyond_lookback`),
        once for each oldest payment so held. The window is never asked further back than
        `funding_max_lookback_s` (the venue's history and the positions' history; a read that
        grew without bound): a payment held or waiting that falls past it is given up
        (`OrderFlow.give_up_funding`: critical, journaled, counted, for a person to book),
        and one the venue lists from before it is never booked (booked, or given up, already).
        The payments not booked are journaled (`OrderJournal.hold_funding`, when they change,
        and after the first round whatever they were) for a restart; a booking or a give-up takes
        its payment out in its own write. A held record whose time cannot be read is never given
        up by time; one the venue no longer lists is dropped (its record read, so booked, or
        gone), never given up by guess: it may have been booked under the id it now has."""
        ask = self.venues[name].execution().funding
        if ask is None:
            return  # no funding at this venue (no perpetuals)
        known = self._fills_known_until(name)
        if known is None:
            if name not in self._funding_waiting_logged:
                self._funding_waiting_logged.add(name)
                self.log.info("funding.waiting_for_fills_caught_up", venue=name)
            return
        asked = self.clock()
        cap = asked - int(self.funding_max_lookback_s * 1e9)
        lookback = asked - int(self.funding_lookback_s * 1e9)
        since = self._funding_since_ns.get(name)
        if since is None:  # the first round (once: a payment it gives up is given up once)
            since = self._funding_since_ns[name] = self._funding_start(name, asked)
        since = max(cap, min(since, lookback))
        self._give_up_past_cap(name, cap)
        if not self.flow.perpetual_held_since(name, since):
            self._funding_since_ns[name] = asked
            self._funding_pending.pop(name, None)  # no position of ours since: none of them ours
            self._hold_funding(name, [])
            return
        try:
            payments = await ask.funding_payments(since)
        except VenueError as exc:
            self.log.warning("funding.unavailable", venue=name, error=str(exc))
            return
        following = asked
        undecided = self._funding_undecided
        pending: list[FundingPayment | HeldFunding] = []
        for payment in sorted(payments, key=lambda p: p.ts_ns):
            if payment.ts_ns < cap:
                continue  # past the cap (a venue's read rounds its start down): never booked now
            key = (name, payment.event_id)
            final = payment.ts_ns <= known or asked - undecided.setdefault(key, asked) >= int(
                self.funding_undecided_max_s * 1e9
            )
            if self.flow.funding(payment, final=final) is None:
                following = min(following, payment.ts_ns - 1)
                pending.append(payment)
            else:
                undecided.pop(key, None)
        held = payments.held_since_ns if isinstance(payments, FundingPayments) else None
        held_back: list[HeldFunding] = []
        if isinstance(payments, FundingPayments):
            held_back = [h for h in payments.held if h.ts_ns is None or h.ts_ns >= cap]
            pending += held_back
        self._funding_pending[name] = pending
        if held is None:
            self._funding_held_alerted.pop(name, None)
        else:
            following = min(following, held - 1)
            which = _pending_key(held_back)
            if held < lookback and self._funding_held_alerted.get(name) != which:
                self._funding_held_alerted[name] = which
                self.log.error(
                    "funding.held_beyond_lookback",
                    venue=name,
                    held_since_ns=held,
                    held=len(held_back),
                    age_s=(asked - held) // 1_000_000_000,
                    lookback_s=self.funding_lookback_s,
                    max_lookback_s=self.funding_max_lookback_s,
                    action="funding is asked from that payment on until the venue's record of it "
                    "reads (funding_refused, funding_held); none of it is booked until then; given "
                    "up (funding.not_booked) once older than max_lookback_s",
                )
        self._funding_since_ns[name] = following
        self._hold_funding(name, pending)

    def _give_up_past_cap(self, name: str, cap: int) -> None:
        """The payments of `name` left unbooked by the last answer (or read back from the journal
        at the start) whose time is now past the window's cap (`funding_max_lookback_s`): never
        read again, so each is given up loudly (`OrderFlow.give_up_funding`), never dropped in
        silence nor booked by guess; the journal's pending payments lose them in the same write."""
        pending = self._funding_pending.get(name)
        if not pending:
            return
        kept = [p for p in pending if p.ts_ns is None or p.ts_ns >= cap]
        gone = [p for p in pending if p.ts_ns is not None and p.ts_ns < cap]
        if not gone:
            return
        for payment in gone:
            if isinstance(payment, FundingPayment):
                self._funding_undecided.pop((name, payment.event_id), None)
        self._funding_pending[name] = kept
        written = self.flow.give_up_funding(
            name,
            gone,
            why=f"not booked within funding_max_lookback_s ({self.funding_max_lookback_s:g} s): "
            "the funding window is asked no further back",
            pending=kept,
        )
        if written:
            self._funding_held_journaled[name] = _pending_key(kept)

    def _hold_funding(self, name: str, pending: list[FundingPayment | HeldFunding]) -> None:
        """Journal `name`'s payments not booked (`OrderFlow.hold_funding`) when they changed, or
        not yet written by this run: the first round after a restart reads back to them. A
        failed write is the flow's (logged, counted) and tried again next round."""
        if self.flow.journal is None:
            return
        key = _pending_key(pending)
        if self._funding_held_journaled.get(name) == key:
            return
        if self.flow.hold_funding(name, pending):
            self._funding_held_journaled[name] = key

    def _funding_start(self, venue: str, now_ns: int) -> int:
        """Where the first round asks funding from: the journal's last fill or funding payment
        of `venue` (payments after it, during a downtime, are still to book), or the oldest
        payment not booked before the restart when older (`OrderJournal.funding_pending`:
        held back by the venue, or waiting), and no further back than `funding_max_lookback_s`
        (the venue's history and the positions' history). A payment held past that while down
        is given up loudly (`OrderFlow.give_up_funding`, with what the journal has of it), in
        the same journal write that takes it out of the pending ones: once, whatever restarts
        follow. One the journal has booked meanwhile is not given up. Those within the cap are
        pending until the first answer says what they are now (given up past the cap if none
        comes)."""
        floor = now_ns - int(self.funding_max_lookback_s * 1e9)
        journal = self.flow.journal
        if journal is None:
            return now_ns
        try:
            last = journal.last_booked_ns(venue, up_to_seq=self._ledger_seq_at_start)
            held = [
                h
                for h in journal.funding_pending(venue)
                if not (
                    journal.funding_known(venue, h.event_id)
                    if h.event_id is not None
                    else h.instrument is not None
                    and h.ts_ns is not None
                    and journal.funding_booked_at(venue, h.instrument, h.ts_ns)
                )
            ]
        except (sqlite3.Error, TradingError) as exc:
            self.log.error("funding.journal_unreadable", venue=venue, error=str(exc))
            return floor
        start = now_ns if last is None else min(last, now_ns)
        for h in held:
            if h.ts_ns is not None:
                start = min(start, h.ts_ns)
        self._funding_pending[venue] = list(held)
        self._give_up_past_cap(venue, floor)
        return max(floor, start)
