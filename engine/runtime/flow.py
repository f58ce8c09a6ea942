"""OrderFlow: the one place orders become tracked, venue reports become events, and fills
become positions. The live gateway and the backtest kernel both go through it, so a strategy
sees the same sequence of events, with the same checks, in both modes."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, localcontext
from typing import Any, Final, Literal, NoReturn, Protocol

import attrs
import msgspec
import structlog

from ..logs.setup import CachedLogger, cached_logger, logs_at
from ..model.errors import OrderDenied, OrderOutcomeUnknown, OrderRejected, TradingError, VenueError
from ..model.events import Fill, FillReversal, OrderState, OrderUpdate, PrivateEvent
from ..model.histogram import LATENCY_BUCKETS_S, Histogram
from ..model.instruments import Instrument, InstrumentKind, InstrumentRegistry
from ..model.ledger import CONTEXT, Booking, Ledger, UsdRates, no_cost_basis
from ..model.market import MarketState
from ..model.money import BadNumber, decimal_text, to_decimal
from ..model.orders import (
    # The order states as module constants (`OrderState.X`, a class attribute lookup, ~0.1 us).
    _CANCELLED,
    _EXPIRED,
    _FILLED,
    _OPEN,
    _PARTIALLY_FILLED,
    _PENDING_CANCEL,
    _PENDING_NEW,
    _REJECTED,
    FINAL_REASONS,
    FinalReason,
    Order,
    OrderRequest,
    OrderTracker,
)
from ..model.risk import RiskChecker, RiskLimits
from ..model.settlement import (
    FundingPayment,
    HeldFunding,
    PositionHistory,
    check_delivery_price,
    check_funding,
)
from ..store.journal import OrderJournal

__all__ = ["FINAL_REASONS", "FinalReason", "OrderFlow"]

# Who asked for a cancel (`cancel_requested`): the final reason of the order it cancels.
CancelCause = Literal["user", "shutdown", "kill_switch", "other"]
# A refusal's code that says the venue never had the order: asked about, it did not know it
# (engine.runtime.live), or it was never sent before a restart.
_UNKNOWN_CODES: Final = frozenset({"unknown_at_venue", "never_sent"})
_FINAL: Final = frozenset(s for s in OrderState if s.is_final)  # `is_final`, without the call
_INFO: Final = logging.INFO
_NOT_BOOKED_KEPT: Final = 10_000
_VALUE: Final = {s: s.value for s in OrderState}
_PERPETUAL: Final = InstrumentKind.PERPETUAL
_ZERO: Final = Decimal(0)


def _post_only(text: str | None) -> bool:
    """Whether a venue's reason says a post-only order would have taken (Deribit's
    `post_only_reject`, "post-only", "post only" elsewhere)."""
    return text is not None and "post_only" in text.lower().replace("-", "_").replace(" ", "_")


def _worthless_ok(inst: Instrument) -> bool:
    """Whether `inst` can settle at 0: an option out of the money, a prediction market's losing
    outcome. A future's (or any inverse contract's) delivery price divides its PnL: above 0."""
    return inst.kind in (InstrumentKind.OPTION, InstrumentKind.OUTCOME) and not inst.inverse


def _released(*_: object) -> NoReturn:
    """What a released flow's callbacks are (`OrderFlow.release`): its engine is done."""
    raise TradingError("this order flow was released: its engine's run is over")


class _Whose(Protocol):
    """What names an order in the log: an `OrderRequest` or an `OrderUpdate`."""

    @property
    def strategy(self) -> str | None: ...
    @property
    def venue(self) -> str: ...
    @property
    def instrument(self) -> str: ...
    @property
    def client_order_id(self) -> str | None: ...


def _whose(x: _Whose) -> dict[str, str | None]:
    """The strategy, venue, instrument and client order id every order log line starts with."""
    return {
        "strategy": x.strategy,
        "venue": x.venue,
        "instrument": x.instrument,
        "client_order_id": x.client_order_id,
    }


class OrderFlow:
    """Orders, fills and positions of every strategy of one engine."""

    def __init__(
        self,
        registry: InstrumentRegistry,
        market: MarketState,
        deliver: Callable[[PrivateEvent], None],
        *,
        engine_limits: RiskLimits | None = None,
        strategy_limits: Mapping[str, RiskLimits] | None = None,
        log: structlog.typing.FilteringBoundLogger | None = None,
        journal: OrderJournal | None = None,
    ) -> None:
        self.registry = registry
        self.journal = journal  # every order step written before it is acted on (live mode)
        self.journal_failures = 0
        self.market = market
        self.deliver = deliver
        # Bound once per logging configuration: every order and fill logs at info, and a call
        # through structlog's lazy proxy costs ~3 us even when its level filters it out.
        self.log = cached_logger(log or structlog.get_logger("tradingd.orders"))
        # Final orders let go are found in the journal.
        self.tracker = OrderTracker(archive=journal, log=self.log)
        self.ledgers: dict[str, Ledger] = {}
        self.risk = RiskChecker(
            registry,
            market,
            self.tracker,
            self.position,
            engine_limits=engine_limits,
            strategy_limits=strategy_limits,
            # The daily-loss check compares against float limits: exact money is not needed
            # to tell whether a loss is beyond one.
            equity_of=lambda strategy: float(self.equity(strategy)),
        )
        self.orders_sent: dict[str, int] = {}
        # Per strategy: fills booked; orders that became final, by (status, reason class).
        self.fills: dict[str, int] = {}
        self.finals: dict[str, dict[tuple[str, FinalReason], int]] = {}
        # Per venue: order sent (handed to the venue's sender, `sending`) -> the venue's first
        # word on it (an acknowledgement, a fill, a refusal), seconds. The sent times wait in
        # `_sent_ns` (by client order id) until that word, or an outcome unknown, takes them.
        self.order_ack: dict[str, Histogram] = {}
        self._sent_ns: dict[str, int] = {}
        # Orders whose cancel was asked, and by whom (the reason of their final state).
        self._cancel_cause: dict[str, CancelCause] = {}
        self.tracker.on_state = self._state_moved
        # Accepted orders whose `order.sent` line waits for their bytes to leave (`accept` with
        # `log_sent=False`), by client order id: logged by `flush_sent`, by the sender once its
        # write returns, or before any line about an order (every method below that logs about
        # orders flushes them first), whichever comes first: never after a line about its fate.
        self._sent_pending: dict[str, OrderRequest] = {}
        self.rejected: dict[str, int] = {}
        self.unmatched_fills = 0
        # Fills of ours that could not be booked (a contested venue id, a journal that could not
        # be read) and reversals applied to no order (a contested id): each alerted at critical
        # level for a person (the watcher's `fill_not_booked`), unlike a fill simply not ours.
        self.fills_not_booked = 0
        # The (venue, trade id) of fills left unbooked on a contested venue id, alerted once
        # each (`fill.not_booked`), with the venue order id they named: never booked by tradingd
        # after, the contest settled or not (`refused_trade`): a person accounts for them, and a
        # venue repeating one (Deribit's catch-up at each reconnect, a restart's) is not a fill
        # to book, to the claimant the id goes back to least of all. The oldest forgotten past
        # `_NOT_BOOKED_KEPT`. Those the journal's notes name are loaded at a restart (`restore`).
        # By (venue, trade id): the venue order ids it was refused on (a trade may hold two legs
        # of ours, Polymarket's maker orders, each on its own contested id: each is alerted).
        self._not_booked: dict[tuple[str, str], set[str | None]] = {}
        # The (venue, trade id, venue order id) of reversals applied to no order
        # (`fill.reversal_not_applied`), alerted once each, a restart's catch-up included
        # (loaded from their notes).
        self._reversals_not_applied: set[tuple[str, str, str]] = set()
        self.tracker.on_contest = self._contest_started
        # Requests whose unknown outcome could not be recorded (`state_unknown` raised: a bug),
        # each logged at critical level by the gateway (`order.outcome_unknown_not_recorded`).
        self.outcomes_unrecorded = 0
        # Told of each fill left unbooked because the journal could not be read (the live engine
        # then has the venue's fills caught up again), never of a fill that is simply not ours.
        self.on_unreadable_fill: Callable[[Fill], None] | None = None
        # Orders whose placement went unanswered and of which the venue has said nothing since:
        # a refused cancel puts one back to pending, not open (`cancel_refused`).
        self._unanswered_places: set[str] = set()
        # Told of each order whose request (place, edit, cancel) had no readable answer
        # (`state_unknown`): the live engine then asks the venue about it soon, rather than only
        # at the next reconnect's reconciliation.
        self.on_outcome_unknown: Callable[[Order], None] | None = None
        self.unmatched_reports = 0  # venue reports (not fills or states) about orders not ours
        # Per (venue, instrument), the venue's reports that changed one of our orders in it (a
        # fill, a reversal, a state; not one heard before, nor a trade's settlement, which moves
        # no position of ours): a position check that saw this move between its two looks
        # cannot tell a fill on its way from a difference (engine.runtime.live).
        self.reports: dict[tuple[str, str], int] = {}
        # Funding payments dealt with (venue, event id): booked, or found not ours, refused or
        # held; none twice in one run even without a journal (which keeps those booked across
        # restarts), and none logged again each time the venue lists it.
        self._funding_booked: set[tuple[str, str]] = set()
        # Funding payments not booked because our positions at their time do not fit the
        # venue's (`funding`): an alert each, kept here for the status; and those refused as
        # money (not a finite, plausible number).
        self.funding_held: dict[tuple[str, str], FundingPayment] = {}
        # Payments found not ours or not fitting while a fill before them may still be caught up
        # (`funding(final=False)`): asked again, logged once.
        self._funding_deferred: set[tuple[str, str]] = set()
        # Every strategy's perpetual positions through time, by the venue's time (funding).
        self.history = PositionHistory()
        self.funding_refused = 0
        # Funding payments given up unbooked (`give_up_funding`: held past the funding
        # window's cap): each alerted at critical level and journaled for a person to book.
        self.funding_payments_not_booked = 0
        # Settlements refused (a delivery price that is no price) and journal rows `restore`
        # could not apply: each an alert, counted for the status.
        self.settlements_refused = 0
        self.restore_skipped = 0

    def restore(
        self, journal: OrderJournal, *, now_ns: int, window_ns: int = 7 * 86_400 * 10**9
    ) -> dict[str, int]:
        """Rebuild from the journal after a restart: the instruments it knows, every order that
        was not final (and those final within `window_ns`, whose fills must not be booked twice),
        and every strategy's positions, fees and PnL from its ledger, in order. The journal is
        then the flow's journal. Returns counts (orders, live orders, ledger entries applied).
        A ledger row that cannot be applied (a settlement at a price that is no price) is an
        alert, counted in `restore_skipped`, and skipped: it never keeps the daemon from
        starting."""
        for known in journal.instruments():
            if known.key not in self.registry:
                self.registry.add(known)
        # Contests first, whatever state their claimants are in: a claimant restored after keeps
        # its record's id unindexed, and a report naming the id alone stays refused.
        noted = self._restore_contests(journal)
        live = 0
        restored = journal.orders(final_since_ns=now_ns - window_ns)
        for r in restored:
            if self.tracker.get(r.request.client_order_id) is not None:
                continue
            self.tracker.restore(r)
            live += r.state.is_live
        entries = 0
        for entry in journal.ledger():
            inst = self.registry.get(entry.venue, entry.instrument)
            if inst is None:
                self.log.error("journal.unknown_instrument", venue=entry.venue, instrument=entry.instrument)
                continue
            ledger = self.ledger(entry.strategy)
            try:
                if isinstance(entry.event, Fill | FillReversal):
                    self.book(entry.strategy, entry.event, inst, entry.rates)
                elif entry.kind == "funding":
                    # A share of a funding payment: at the USD rate it was booked at (`funding`).
                    ledger.funding(inst, entry.price, inst.settle, entry.rates[2])
                else:
                    check_delivery_price(
                        entry.price, option=_worthless_ok(inst), what="journaled settlement price"
                    )
                    before = ledger.position(inst.venue, inst.symbol)
                    ledger.settle(inst, entry.price, entry.rates)
                    self._track(entry.strategy, inst, entry.ts_ns, before)
            except (ArithmeticError, ValueError) as exc:
                # A row that cannot be applied (a settlement at a price of 0 an older tradingd
                # journaled) must not keep the daemon from starting: the rest is rebuilt, and
                # the row is an alert for a human (counted in the status).
                self.restore_skipped += 1
                self.log.critical(
                    "journal.entry_not_applied",
                    kind=entry.kind,
                    strategy=entry.strategy,
                    venue=entry.venue,
                    instrument=entry.instrument,
                    price=decimal_text(entry.price),
                    error=f"{type(exc).__name__}: {exc}",
                )
                continue
            entries += 1
        self.journal = self.tracker.archive = journal
        for (venue, order_id), claimants in self.tracker.contests().items():
            if (venue, order_id) not in noted:  # two working orders an older journal left under one id
                self._contest_started(venue, order_id, claimants)
            self.log.critical(
                "order.venue_id_contested_open",
                venue=venue,
                order_id=order_id,
                contested=claimants,
                action="reports naming this id without a claimant's client id are applied to no "
                "order; a person settles it (README, 'Venue order ids')",
            )
        waiting = self.waiting_fills()
        if waiting:  # journaled before any rate was known: booked once the index arrives
            self.log.warning("ledger.fills_waiting_for_rate", waiting=waiting)
        return {"orders": len(restored), "live": live, "ledger": entries}

    def _restore_contests(self, journal: OrderJournal) -> set[tuple[str, str]]:
        """The contested venue ids the journal's notes record (`venue_id_contested`, and the
        `fill_not_booked` of a journal older than those), contested again (`OrderTracker.
        restore_contest`) unless a later note says a person settled it (`venue_id_contest_
        settled`, logged; one naming no contest, a typo say, warned of), and the trades left
        unbooked on them, settled or not (`_not_booked`: never booked by tradingd, their repeat
        not alerted again), and the reversals applied to none (not alerted again). Returns the
        ids contested by a note."""
        noted: set[tuple[str, str]] = set()
        for note in journal.contests():
            venue, order_id, kind = note.get("venue"), note.get("order_id"), note["kind"]
            trade_id = note.get("trade_id")
            if kind == "fill_reversal_not_applied":  # alerted once: no contest of its own
                # A reversal of a refused trade may name no venue order id (`refused_trade`):
                # remembered under "" as `_reversal_not_applied` keys it, not skipped (which
                # alerted it again at every restart).
                if (
                    isinstance(venue, str)
                    and isinstance(trade_id, str)
                    and trade_id
                    and (order_id is None or isinstance(order_id, str))
                ):
                    self._reversals_not_applied.add((venue, trade_id, order_id or ""))
                continue
            if not isinstance(venue, str) or not isinstance(order_id, str) or not order_id:
                if kind == "venue_id_contest_settled":
                    self.log.warning("order.venue_id_contest_settled_unreadable", note=note)
                continue
            if kind == "venue_id_contest_settled":  # a person's word (README)
                if not self.tracker.contested(venue, order_id):
                    self.log.warning(
                        "order.venue_id_contest_settled_unknown",
                        venue=venue,
                        order_id=order_id,
                        by=note.get("by"),
                        reason="no contest of this venue and id is open in the journal: a typo? "
                        "(order.venue_id_conflict names them)",
                    )
                    continue
                settled = self.tracker.contests().get((venue, order_id))
                self.tracker.settle_contest(venue, order_id)
                noted.discard((venue, order_id))
                self.log.info(
                    "order.venue_id_contest_settled",
                    venue=venue,
                    order_id=order_id,
                    contested=settled,
                    by=note.get("by"),
                )
                continue
            claimants = note.get("claimants") or note.get("contested") or ()
            self.tracker.restore_contest(venue, order_id, [str(c) for c in claimants])
            noted.add((venue, order_id))
            if kind == "fill_not_booked" and isinstance(trade_id, str) and trade_id:
                self._not_booked.setdefault((venue, trade_id), set()).add(order_id)
        return noted

    def _contest_started(self, venue: str, order_id: str, claimants: list[str]) -> None:
        """A venue id became contested, or gained a claimant (`OrderTracker.on_contest`):
        journaled, so that a restart contests it again (`restore`) rather than hand the id to
        whichever claimant's record says it."""
        self._journal("note", "venue_id_contested", None, venue=venue, order_id=order_id, claimants=claimants)

    def release(self) -> None:
        """The engine is done with this flow (a backtest's run is over): the callbacks that
        point back at the flow or at its engine let go (its engine's `deliver`, the tracker's
        `on_state` and `on_contest`, the risk checker's position and equity, each ledger's late
        booking and its listening to the market's first rates), so that the flow, its orders and ledgers, and
        its engine are in no reference cycle through it: freed by reference counting as soon
        as nothing holds them, not by the cyclic collector. What it recorded stays readable
        (ledgers, positions, equity, counts). It is not for trading any more: a report it would
        deliver raises, and so does an order checked against a position limit; the risk
        checker's daily-loss limit no longer sees equity."""
        self.deliver = _released
        self.tracker.on_state = None
        self.tracker.on_contest = None
        self.risk.position_of = _released
        self.risk.equity_of = None
        listening = [ledger.rate_known for ledger in self.ledgers.values()]  # equal while bound to one
        self.market.on_first_rate[:] = [f for f in self.market.on_first_rate if f not in listening]
        for ledger in self.ledgers.values():
            ledger.on_late_booking = None

    def ledger(self, strategy: str) -> Ledger:
        ledger = self.ledgers.get(strategy)
        if ledger is None:
            ledger = self.ledgers[strategy] = Ledger(strategy, self.market)
            ledger.on_late_booking = lambda booking: self._booked_late(strategy, booking)
        return ledger

    def book(self, strategy: str, event: Fill | FillReversal, inst: Instrument, rates: UsdRates) -> Decimal:
        """Apply a fill (or voided fill) to `strategy`'s ledger at `rates`, and a perpetual's
        change to the position history at the venue's time of it. Returns the USD realized."""
        ledger = self.ledger(strategy)
        before = ledger.position(inst.venue, inst.symbol)
        if isinstance(event, Fill):
            realized = ledger.on_fill(event, inst, rates)
        else:
            realized = ledger.reverse(event, inst, rates)
        ts = event.ts_local if event.ts_exchange is None else event.ts_exchange
        self._track(strategy, inst, ts, before)
        return realized

    def _track(self, strategy: str, inst: Instrument, ts_ns: int, before: Decimal) -> None:
        """A perpetual position's change (from `before` to now) into the history, at `ts_ns`."""
        if inst.kind is InstrumentKind.PERPETUAL:
            now = self.ledger(strategy).position(inst.venue, inst.symbol)
            self.history.record(strategy, inst.venue, inst.symbol, ts_ns, now - before)

    def waiting_fills(self, strategy: str | None = None) -> int:
        """Fills (and settlements) whose USD value waits for a first index price."""
        if strategy is not None:
            ledger = self.ledgers.get(strategy)
            return 0 if ledger is None else ledger.waiting
        return sum(ledger.waiting for ledger in self.ledgers.values())

    def _booked_late(self, strategy: str, booking: Booking) -> None:
        """A fill that waited for a USD rate is booked: the journal keeps the rates (so a
        restart books it the same), and the log says so."""
        ev = booking.event
        inst = booking.instrument
        # A funding payment's journal row (kind 'funding') is its caller's to keep: it is not a
        # fill, settlement or reversal of this flow's.
        if booking.kind != "funding":
            self._journal(
                "rates_known",
                booking.kind,
                strategy=strategy,
                venue=inst.venue,
                instrument=inst.symbol,
                trade_id=None if ev is None else ev.trade_id,
                client_order_id=None if ev is None else ev.client_order_id,
                rates=booking.rates,
            )
        self.log.info(
            "ledger.booked_at_known_rate",
            strategy=strategy,
            kind=booking.kind,
            venue=inst.venue,
            instrument=inst.symbol,
            trade_id=None if ev is None else ev.trade_id,
            rates=list(booking.rates),
            still_waiting=self.waiting_fills(strategy),
        )

    def equity(self, strategy: str | None = None) -> Decimal:
        """USD equity (realized + unrealized - fees) of a strategy, or of all of them."""
        if strategy is not None:
            ledger = self.ledgers.get(strategy)
            return Decimal(0) if ledger is None else ledger.equity_usd()
        return sum((ledger.equity_usd() for ledger in self.ledgers.values()), Decimal(0))

    def position(self, strategy: str | None, venue: str, instrument: str) -> Decimal:
        """A strategy's net position in an instrument; for None, every strategy's together (the
        engine-wide risk limits)."""
        if strategy is None:
            return sum((lg.position(venue, instrument) for lg in self.ledgers.values()), Decimal(0))
        ledger = self.ledgers.get(strategy)
        return Decimal(0) if ledger is None else ledger.position(venue, instrument)

    # -- outgoing ---------------------------------------------------------------------------
    def accept(self, request: OrderRequest, *, now_ns: int, log_sent: bool = True) -> Order:
        """Run the pre-trade checks and start tracking the order. Raises `OrderDenied`
        (logged and counted) when a check refuses it; nothing is tracked then. With
        `log_sent=False` its `order.sent` line waits: the caller logs it (`flush_sent`) once
        the order's bytes have left (the live gateway: an info line costs tens of microseconds),
        unless a line about an order comes first, which logs it before itself."""
        checked = self.risk.rejections
        try:
            inst = self.risk.check(request, now_ns=now_ns)
            order = self.tracker.add(request, now_ns=now_ns)
            if self.journal is not None:
                self._journal_request(order, inst)
        except OrderRejected as exc:
            self.rejected[request.strategy] = self.rejected.get(request.strategy, 0) + 1
            # Final before it was sent: refused by the pre-trade checks, or by the tracker or
            # the journal (a client order id that cannot be checked, a write that failed).
            self._count_final(
                request.strategy, "rejected", "risk" if self.risk.rejections != checked else "other"
            )
            self.log.warning("order.refused", **_whose(request), reason=exc.reason)
            raise
        sent = self.orders_sent
        sent[request.strategy] = sent.get(request.strategy, 0) + 1
        if self._sent_pending:
            self.flush_sent()  # the lines in the orders' order
        if log_sent:
            self._sent_line(request)
        else:
            self._sent_pending[order.client_order_id] = request
        return order

    def sending(self, order: Order, now_ns: int) -> None:
        """`order` is handed to its venue's sender now: its acknowledgement's time counts from
        here (`order_ack`)."""
        self._sent_ns[order.client_order_id] = now_ns

    def _state_moved(self, order: Order, was: OrderState, exc: OrderRejected | None = None) -> None:
        """A venue's word moved `order` from `was` (the tracker's reports, a venue's refusal):
        the first word on a sent order times its acknowledgement; one that makes it final is
        counted by status and reason. A refusal that says the venue never had it (`exc`'s code)
        is no acknowledgement, nor is a refusal of ours before sending (`OrderDenied`)."""
        sent = self._sent_ns.pop(order.request.client_order_id, None) if self._sent_ns else None
        if sent is not None and (
            exc is None
            or (
                exc.code not in _UNKNOWN_CODES and exc.code != "not_sent" and not isinstance(exc, OrderDenied)
            )
        ):
            waited = order.updated_ns - sent
            if waited >= 0:
                venue = order.request.venue
                hist = self.order_ack.get(venue)
                if hist is None:
                    hist = self.order_ack[venue] = Histogram(LATENCY_BUCKETS_S)
                hist.observe(waited / 1e9)
        state = order.state
        if state in _FINAL and was not in _FINAL:
            # (`_count_final`, inline; the state's value from a table: `.value` is two calls)
            strategy = order.request.strategy
            reason = self._final_reason(order, exc)
            mine = self.finals.get(strategy)
            if mine is None:
                mine = self.finals[strategy] = {}
            key = (_VALUE[state], reason)
            mine[key] = mine.get(key, 0) + 1

    def _final_reason(self, order: Order, exc: OrderRejected | None) -> FinalReason:
        """The reason class of an order that just became final (`FinalReason`)."""
        cause = self._cancel_cause.pop(order.request.client_order_id, None) if self._cancel_cause else None
        state = order.state
        if state is _FILLED or state is _EXPIRED:
            return "none"
        if state is _CANCELLED and cause is not None:
            return cause
        if exc is not None:
            if exc.code in _UNKNOWN_CODES:
                return "state_unknown"
            if exc.code == "not_sent" or isinstance(exc, OrderDenied):  # never reached the venue
                return "other"
            if _post_only(str(exc.code)) or _post_only(exc.venue_message) or _post_only(exc.reason):
                return "post_only"
            return "venue"
        return "post_only" if _post_only(order.reason) else "venue"

    def _count_final(self, strategy: str, status: str, reason: FinalReason) -> None:
        mine = self.finals.get(strategy)
        if mine is None:
            mine = self.finals[strategy] = {}
        key = (status, reason)
        mine[key] = mine.get(key, 0) + 1

    def flush_sent(self, client_order_id: str | None = None) -> None:
        """Log the waiting `order.sent` line of that order (of every order, with None), if it
        still waits: each accepted order has exactly one. Cheap when none waits, as it is
        called before every line about an order (here and in the live engine)."""
        pending = self._sent_pending
        if not pending:
            return
        if client_order_id is not None:
            request = pending.pop(client_order_id, None)
            if request is not None:
                self._sent_line(request)
            return
        requests = list(pending.values())
        pending.clear()
        for request in requests:
            self._sent_line(request)

    def _sent_line(self, request: OrderRequest) -> None:
        """The `order.sent` line of an accepted order."""
        log = self.log
        # (The fields cost more than the filtered call.)
        if log.enabled(_INFO) if type(log) is CachedLogger else logs_at(log, _INFO):
            log.info(
                "order.sent",
                **_whose(request),
                side=request.side.value,
                size=decimal_text(request.size),
                price=None if request.price is None else decimal_text(request.price),
                order_type=request.type.value,
                tif=request.time_in_force.value,
                **({"tag": request.tag} if request.tag else {}),
            )

    def _journal_request(self, order: Order, inst: Instrument) -> None:
        """Journal a new order; if that fails, the order is not sent (it is refused)."""
        assert self.journal is not None
        try:
            self.journal.request(order, inst)
        except sqlite3.Error as exc:
            self.journal_failures += 1
            self.tracker.hold_final = True
            order.transition(_REJECTED, now_ns=order.created_ns, reason="journal_failed")
            self.log.critical("journal.write_failed", client_order_id=order.client_order_id, error=str(exc))
            raise OrderDenied(
                f"not sent: the order journal could not record it ({exc})",
                venue=order.request.venue,
                instrument=order.request.instrument,
                client_order_id=order.client_order_id,
            ) from exc
        self.tracker.hold_final = False

    def _journal(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """A journal write on the incoming path: a failure is logged loudly and counted, and the
        daemon goes on (the venue's report is still applied in memory; new orders, which need
        the journal, are refused). The order the write was about is then marked dirty: its
        journal record lacks what memory has, so it is never let go from memory (a copy recalled
        from the journal would book a repeated fill again); and while writes fail, no final
        order is let go at all."""
        if self.journal is None:
            return None
        try:
            result = getattr(self.journal, method)(*args, **kwargs)
        except sqlite3.Error as exc:
            self.flush_sent()
            self.journal_failures += 1
            self.tracker.hold_final = True
            order = next((a for a in args if isinstance(a, Order)), None)
            if order is not None:
                self.tracker.mark_dirty(order)
            self.log.critical(
                "journal.write_failed",
                step=method,
                client_order_id=None if order is None else order.client_order_id,
                kept_in_memory=order is not None,
                error=str(exc),
            )
            return None
        self.tracker.hold_final = False
        return result

    def assign_order_id(
        self, order: Order, order_id: str, *, source: str = "prepare", alias: bool = False
    ) -> bool:
        """The venue's id for an order: known before sending (the gateway's `prepare`), or named
        by the venue's answer (`acknowledged`; `alias`: the id it had stays indexed for it).
        Journaled when taken; False when refused because another working order holds it
        (`OrderTracker.set_order_id`: alerted, counted; the order as it was). Refused before
        sending, the holder keeps the id; refused after, the id is contested."""
        sent = source != "prepare"
        if not self.tracker.set_order_id(order, order_id, source=source, sent=sent, alias=alias):
            return False
        self._journal("state", order, "order_id")
        return True

    def venue_rejected(self, order: Order, exc: OrderRejected, *, now_ns: int) -> OrderUpdate:
        """The venue refused a new order: it is final, and the strategy hears of it."""
        self.flush_sent()
        self._unanswered_places.discard(order.client_order_id)
        self.rejected[order.strategy] = self.rejected.get(order.strategy, 0) + 1
        reason = exc.venue_message or exc.reason
        was = order.state
        if order.can_transition(_REJECTED):
            order.transition(_REJECTED, now_ns=now_ns, reason=reason)
            self._state_moved(order, was, exc)
        self._journal("state", order, "rejected", code=exc.code)
        self.log.warning("order.rejected", **_whose(order.request), code=exc.code, reason=reason)
        update = order.snapshot(ts_local=now_ns)
        self.deliver(update)
        return update

    def acknowledged(self, order: Order, exc: OrderOutcomeUnknown, *, now_ns: int) -> None:
        """A placement the venue answered naming the order but not its outcome: the venue's id
        it gave is the order's (its later reports, fills naming only that id, then find it: the
        engine learns the id from nowhere else when it was not known before sending), and one
        the venue acknowledged (`accepted`: a Polymarket FAK "matched" by an amount not said)
        is open with that reason, not pending: the venue's silence about it later is no word
        that it never took it. Called before `state_unknown`, which then follows it up.

        The venue's id wins over one `prepare` computed before sending: an answer naming another
        is alerted (`order.venue_id_differs`) and the order is named by the venue's id from then
        on (its fills name that one); ours stays indexed for it as an alias (a fill already on
        its way may name it) unless another order claims it. The same id in another letter case
        (Polymarket's hex ids, compared ignoring case) is no other id: not alerted, the order is
        named by the venue's spelling and ours stays indexed as an alias (reports in either
        spelling find it).
        An id another working order holds is refused and contested (`OrderTracker.set_order_id`,
        alerted): the order keeps what it had, and its acknowledgement, the venue's word on its
        state, is taken all the same."""
        venue_id = exc.order_id
        prepared = order.order_id
        if venue_id and (prepared is None or prepared.lower() != venue_id.lower()):
            if prepared is not None:
                self.flush_sent()
                self.log.error(
                    "order.venue_id_differs",
                    **_whose(order.request),
                    prepared=prepared,
                    venue_id=venue_id,
                    action="the venue's id is the order's from now on (ours kept as an alias)",
                )
            self.assign_order_id(order, venue_id, source="acknowledged", alias=True)
        elif venue_id and prepared is not None and venue_id != prepared:
            # The same id in the venue's letter case (Polymarket's hex): its reports may spell
            # it so, ours stays indexed as an alias. Not another id: no alert.
            self.log.info(
                "order.venue_id_case", **_whose(order.request), prepared=prepared, venue_id=venue_id
            )
            self.assign_order_id(order, venue_id, source="acknowledged", alias=True)
        if exc.accepted and order.state is _PENDING_NEW:
            reason = exc.venue_message or "acknowledged by the venue, outcome unknown"
            self.on_update(
                msgspec.structs.replace(order.snapshot(ts_local=now_ns), status=_OPEN, reason=reason)
            )
            self._unanswered_places.discard(order.client_order_id)

    def state_unknown(self, order: Order, exc: VenueError) -> None:
        """A request's outcome is unknown (timeout, connection lost after sending). The order
        stays tracked as it is; it is never re-sent: the venue's reports, the live engine's
        questions about it (`on_outcome_unknown`) or a reconciliation settle it. Its answer, if
        one comes, is no acknowledgement time (`order_ack`). The questions start even when the
        bookkeeping before them raises (a bug: its caller counts and logs it, `outcomes_unrecorded`):
        an order whose outcome is unknown is never left unwatched."""
        try:
            self.flush_sent()
            self._sent_ns.pop(order.client_order_id, None)
            self._journal(
                "note", "outcome_unknown", order.client_order_id, error=str(exc), state=order.state.value
            )
            self.log.error(
                "order.outcome_unknown",
                **_whose(order.request),
                state=order.state.value,
                error=str(exc),
            )
            if order.state is _PENDING_NEW:
                self._unanswered_places.add(order.client_order_id)
        finally:
            if self.on_outcome_unknown is not None:
                self.on_outcome_unknown(order)

    def check_edit(self, order: Order, price: Decimal | None, size: Decimal | None, *, now_ns: int) -> None:
        """Run the pre-trade checks on an order as it would be after an edit (new price and/or
        size). Raises `OrderDenied` (logged and counted) when a check refuses it."""
        self.flush_sent()
        if order.state.is_final:
            raise OrderDenied(
                f"order is {order.state.value}",
                venue=order.request.venue,
                client_order_id=order.client_order_id,
            )
        new_size = order.size if size is None else size
        if new_size < order.filled_size:
            raise OrderDenied(
                f"new size {new_size} is below what has filled ({order.filled_size})",
                venue=order.request.venue,
                client_order_id=order.client_order_id,
            )
        edited = attrs.evolve(order.request, price=order.price if price is None else price, size=new_size)
        try:
            # The order's own remaining size is replaced by its new one, not added to it.
            self.risk.check(
                edited, now_ns=now_ns, replaces=order.remaining, adds=new_size - order.filled_size
            )
        except OrderRejected as exc:
            self.rejected[order.strategy] = self.rejected.get(order.strategy, 0) + 1
            self.log.warning(
                "order.edit_refused",
                strategy=order.strategy,
                client_order_id=order.client_order_id,
                reason=exc.reason,
            )
            raise

    def cancel_requested(self, order: Order, *, now_ns: int, cause: CancelCause = "user") -> None:
        """A cancel of `order` is on its way to the venue; `cause` says who asked (the reason
        its cancelled state is counted under)."""
        if self._sent_pending:
            self.flush_sent()
        state = order.state
        if state not in _FINAL:  # (`is_final`, `is_live`: properties, a call each)
            self._cancel_cause[order.request.client_order_id] = cause
            if state is not _PENDING_CANCEL:
                order.transition(_PENDING_CANCEL, now_ns=now_ns)
        if self.journal is not None:
            self._journal("state", order, "cancel_request")

    def cancel_refused(self, order: Order, exc: OrderRejected, *, now_ns: int) -> None:
        """The venue refused a cancel: the order goes back to what it was (if still pending).
        One the venue has never reported on since its placement went unanswered goes back to
        pending, not to open: a refused cancel ("not found") is no word that it rests."""
        self.flush_sent()
        if order.state is _PENDING_CANCEL:
            if order.filled_size > 0:
                back = _PARTIALLY_FILLED
            elif order.client_order_id in self._unanswered_places:
                back = _PENDING_NEW
            else:
                back = _OPEN
            order.transition(back, now_ns=now_ns)
        self._journal("state", order, "cancel_refused", code=exc.code)
        self.log.warning(
            "order.cancel_refused",
            strategy=order.strategy,
            venue=order.request.venue,
            client_order_id=order.client_order_id,
            code=exc.code,
            reason=exc.venue_message or exc.reason,
        )

    def adopt(self, update: OrderUpdate, *, strategy: str) -> Order:
        """Track again an order the venue reports as ours (found open on start): its request
        rebuilt from the report, its state and filled size as reported. Its past fills are not
        rebuilt here (the order journal does that)."""
        assert update.client_order_id is not None
        request = OrderRequest(
            venue=update.venue,
            instrument=update.instrument,
            side=update.side,
            size=update.size,
            price=update.price,
            client_order_id=update.client_order_id,
            strategy=strategy,
        )
        order = self.tracker.add(request, now_ns=update.ts_local)
        if update.order_id:
            # Refused (alerted) when another working order holds it: adopted without it, and
            # the id contested (`OrderTracker.contested`).
            self.tracker.set_order_id(order, update.order_id, source="adopt")
        order.filled_size = update.filled_size
        if update.status is not _PENDING_NEW and order.can_transition(update.status):
            order.transition(update.status, now_ns=update.ts_local)
        self._journal("adopt", order, self.registry.get(update.venue, update.instrument))
        return order

    def settle(
        self, venue: str, symbol: str, price: float | Decimal, *, now_ns: int = 0
    ) -> dict[str, Decimal] | None:
        """An instrument settled (an option's expiry, a prediction market's resolution): every
        strategy's position in it is closed at `price` (the venue's Decimal as it is, or a float
        of ours). Returns the USD realized, by strategy (0 for one whose USD value waits for a
        rate). A price that is no delivery price (not finite, not above 0 for a future or an
        inverse contract, below 0 for an option or an outcome, absurdly large) is refused before
        anything is journaled: an alert, counted, nothing settled, and None returned."""
        inst = self.registry.get(venue, symbol)
        out: dict[str, Decimal] = {}
        if inst is None:
            return out
        try:
            check_delivery_price(price, option=_worthless_ok(inst), what=f"{symbol} settlement")
        except BadNumber as exc:
            self.settlements_refused += 1
            self.log.critical(
                "settlement.refused", venue=venue, instrument=symbol, price=repr(price), error=str(exc)
            )
            return None
        for name, ledger in self.ledgers.items():
            before = ledger.position(venue, symbol)
            if before != 0:
                rates = ledger.rates(inst)
                self._journal("settlement", name, inst, price, rates, now_ns)
                out[name] = realized = ledger.settle(inst, price, rates)
                self._track(name, inst, now_ns, before)
                self.log.info(
                    "position.settled",
                    strategy=name,
                    venue=venue,
                    instrument=symbol,
                    price=decimal_text(to_decimal(price)),  # a float of ours: its shortest repr
                    realized=decimal_text(realized),
                )
        return out

    # -- perpetual funding --------------------------------------------------------------------
    def position_at(
        self, venue: str, instrument: str, ts_ns: int, *, before: bool = False
    ) -> dict[str, Decimal]:
        """Each strategy's position in a perpetual at `ts_ns` (the venue's time: after every
        change at or before it; `before`: strictly before it), those not flat only."""
        return self.history.holders_at(venue, instrument, ts_ns, before=before)

    def perpetual_held_since(self, venue: str, since_ns: int) -> bool:
        """Whether any strategy held a perpetual of `venue` at any time since `since_ns` (one
        held now, or one whose position changed since then: it was held before or after)."""
        return self.history.changed_since(venue, since_ns) or any(
            pos.instrument.venue == venue and pos.instrument.kind is InstrumentKind.PERPETUAL and pos.qty != 0
            for ledger in self.ledgers.values()
            for pos in ledger
        )

    def funding(self, payment: FundingPayment, *, final: bool = True) -> dict[str, Decimal] | None:
        """`_funding`, its shares computed in the ledger's decimal context (never the ambient one
        a strategy may have changed: the shares are money, and journaled)."""
        with localcontext(CONTEXT):
            return self._funding(payment, final=final)

    def _funding(self, payment: FundingPayment, *, final: bool = True) -> dict[str, Decimal] | None:
        """A venue's funding payment on a perpetual, booked to the strategies that held it
        when it accrued (`PositionHistory`, by the venue's time: the position may be closed,
        flipped or grown by the time the venue lists it):

        - a payment realized at its instant (`span_ns` None: Derive realizes funding at each
          change of the position, so the position was constant since its previous record) is
          split by the positions held just before it (a trade at that instant is the change
          that realized it);
        - a payment accrued over a span (`span_ns`: Deribit's daily settlement books the whole
          session's funding, accrued every millisecond) is split by each strategy's
          time-weighted position over the span. Assumed: the rate (and, for an inverse
          contract, the mark) constant over the span; the venue says only the session's total.

        Fit: our positions at the payment's instant against the account's, the venue's when it
        reports one (Deribit), else the sum of ours (Derive). What is booked in total is
        `amount x ours / account` at that instant: the whole payment when the account is all
        ours (or both flat: a position of the span closed before the instant), less (the rest
        is a position not ours) when ours is a part of it, and never more than the payment nor
        of the other sign. When ours does not fit (other sign, larger, ours flat where the
        venue holds one, or held where the venue says flat) nothing is booked: the payment is
        held (`funding_held`, an alert), never guessed. A payment on no position of ours (an
        instrument we do not know is none of ours: the journal restores every instrument we
        traded) is logged and left; an amount that is no money (NaN, infinite, beyond
        `MAX_FUNDING`) is refused (`funding_refused`, an alert).

        `final=False`: a fill before the payment may still be caught up (the venue's fills are
        not caught up past its time yet, `LiveEngine`): a payment found not ours or not fitting
        is then left undecided (None: asked again), logged once.

        Booked whole, once: every share is journaled in one transaction (`OrderJournal.funding`)
        before the ledgers book them into realized PnL; a payment the journal knows (reported
        again after a restart) is not booked again. Returns the USD booked per strategy (empty:
        booked before, refused, held or nothing of ours), or None when the payment must wait:
        no USD rate for its currency yet (never booked at an unknown rate), undecided (above),
        or a journal that cannot be read (it might hold the payment)."""
        event = (payment.venue, payment.event_id)
        if event in self._funding_booked:
            return {}
        fields = {
            "venue": payment.venue,
            "instrument": payment.instrument,
            "event_id": payment.event_id,
            "amount": decimal_text(payment.amount),
            "currency": payment.currency,
        }
        try:
            amount = check_funding(payment.amount, "funding amount")
            position = (
                None if payment.position is None else check_funding(payment.position, "funding position")
            )
        except BadNumber as exc:
            self._funding_booked.add(event)
            self.funding_refused += 1
            self.log.critical("funding.refused", error=str(exc), **fields)
            return {}
        if self.journal is not None:
            try:
                known = self.journal.funding_known(payment.venue, payment.event_id)
            except (sqlite3.Error, TradingError) as exc:
                self.log.error("funding.journal_unreadable", event_id=payment.event_id, error=str(exc))
                return None
            if known:
                self._funding_booked.add(event)
                return {}
        inst = self.registry.get(payment.venue, payment.instrument)
        if inst is None:
            # Not ours: the journal's instruments are restored before anything connects, and a
            # fill is booked only on an instrument known. Left (logged once), never waited for.
            self._funding_booked.add(event)
            if amount:
                self.log.warning("funding.not_ours", reason="unknown instrument", **fields)
            return {}
        usd_rate = self.market.usd_rate(payment.venue, payment.currency)
        if usd_rate is None:
            self.log.warning("funding.waiting", reason=f"no USD rate for {payment.currency}", **fields)
            return None
        span = payment.span_ns
        # At the instant: just before it for a payment it realized (a trade then changed it).
        holders = self.position_at(payment.venue, payment.instrument, payment.ts_ns, before=span is None)
        weights = (
            holders
            if span is None
            else self.history.weighted(payment.venue, payment.instrument, payment.ts_ns - span, payment.ts_ns)
        )
        ours = sum(holders.values(), Decimal(0))
        account = ours if position is None else position  # a venue position of 0 is a position
        weight = sum(weights.values(), Decimal(0))
        if amount == 0 or not weights:
            if amount and not final:
                self._funding_undecided(event, "not ours yet", fields)
                return None
            self._funding_booked.add(event)
            if amount:
                self.log.warning("funding.not_ours", account_position=decimal_text(account), **fields)
            return {}
        both_flat = ours == 0 and account == 0
        misfit = account == 0 or ours == 0 or (ours > 0) != (account > 0) or abs(ours) > abs(account)
        if (misfit and not both_flat) or weight == 0:
            if not final:
                self._funding_undecided(event, "does not fit yet", fields)
                return None
            self._funding_booked.add(event)
            self.funding_held[event] = payment
            self.log.critical(
                "funding.held",
                reason="our positions at the payment's time do not fit the venue's"
                if weight
                else "our positions over the span net to nothing: no split",
                account_position=decimal_text(account),
                our_position=decimal_text(ours),
                ours={name: decimal_text(q) for name, q in sorted(weights.items())},
                held=len(self.funding_held),
                **fields,
            )
            return {}
        if ours != account:
            self.log.warning(
                "funding.partly_ours",
                account_position=decimal_text(account),
                our_position=decimal_text(ours),
                **fields,
            )
        # Ours all of the account's: the whole payment (`amount * ours / account` rounds twice at
        # 34 digits and can miss it by one in the last). Each share by its weight, the last the
        # remainder, so that the shares add up to what is booked exactly at the ledger's 34 digits.
        booked_total = amount if both_flat or ours == account else amount * ours / account
        shares: list[tuple[str, Decimal, Decimal]] = []
        left = booked_total
        named = sorted(weights.items())
        for i, (name, w) in enumerate(named):
            share = left if i == len(named) - 1 else booked_total * w / weight
            left -= share
            shares.append((name, share, w))
        if self.journal is not None:
            booked = self._journal(
                "funding",
                inst,
                payment.event_id,
                payment.currency,
                shares,
                total=amount,
                rate=payment.rate,
                usd_rate=usd_rate,
                ts_ns=payment.ts_ns,
            )
            if booked is False:  # in the journal already (listed again after a restart)
                self._funding_booked.add(event)
                return {}
            if booked is None:  # the journal failed (logged): booked in memory only
                self.log.critical("funding.not_journaled", **fields)
        self._funding_booked.add(event)
        self._funding_deferred.discard(event)
        out: dict[str, Decimal] = {}
        for name, share, qty in shares:
            out[name] = usd = self.ledger(name).funding(inst, share, payment.currency, usd_rate)
            self.log.info(
                "position.funding",
                strategy=name,
                share=decimal_text(share),
                usd=decimal_text(usd),
                position=decimal_text(qty),
                **fields,
            )
        return out

    def give_up_funding(
        self,
        venue: str,
        payments: Sequence[FundingPayment | HeldFunding],
        *,
        why: str,
        pending: Sequence[FundingPayment | HeldFunding],
    ) -> bool:
        """Funding payments of `venue` tradingd will not book: ones the venue held back
        (`HeldFunding`) or that waited (a `FundingPayment`: no USD rate) until they fell past the
        funding window's cap (`LiveEngine.funding_max_lookback_s`), never read again. Like a fill
        left unbooked (`_not_booked_fill`): each alerted at critical level with every field known
        of it, journaled (a note, `funding_not_booked`) and counted in `funding_payments_not_booked`, for a
        person to book it by hand; never booked by guess. The notes and `pending` (the venue's
        payments still not booked, `OrderJournal.funding_pending`) are ONE journal write, so no
        restart gives one up again. Returns whether that write was made (a failure is logged and
        counted: the payments are still given up here)."""
        notes: list[dict[str, Any]] = []
        for payment in payments:
            self.funding_payments_not_booked += 1
            fields: dict[str, Any] = {
                "venue": payment.venue,
                "instrument": payment.instrument,
                "ts_ns": payment.ts_ns,
                "amount": None if payment.amount is None else decimal_text(payment.amount),
                "currency": payment.currency,
            }
            if isinstance(payment, FundingPayment):
                self._funding_booked.add((payment.venue, payment.event_id))  # listed again: not booked
                fields |= {
                    "event_id": payment.event_id,
                    "position": None if payment.position is None else decimal_text(payment.position),
                    "rate": None if payment.rate is None else decimal_text(payment.rate),
                    "span_ns": payment.span_ns,
                }
            else:
                if payment.event_id is not None:
                    self._funding_booked.add((payment.venue, payment.event_id))
                    fields["event_id"] = payment.event_id
                fields["held"] = payment.reason
            notes.append(fields | {"reason": why})
            self.log.critical(
                "funding.not_booked",
                **fields,
                reason=why,
                action="never booked by tradingd: a person books it by hand (the journal's note "
                "funding_not_booked has it)",
            )
        failures = self.journal_failures
        self._journal("funding_given_up", venue, notes, pending)
        return self.journal_failures == failures

    def hold_funding(self, venue: str, pending: Sequence[FundingPayment | HeldFunding]) -> bool:
        """Journal the funding payments of `venue` not booked yet (`OrderJournal.hold_funding`),
        for the first funding round after a restart. Returns whether it was written (a failure
        is logged and counted, as every journal write on the incoming path)."""
        failures = self.journal_failures
        self._journal("hold_funding", venue, pending)
        return self.journal_failures == failures

    def _funding_undecided(self, event: tuple[str, str], why: str, fields: dict[str, str]) -> None:
        if event not in self._funding_deferred:
            self._funding_deferred.add(event)
            why = f"{why}: fills before it may still be caught up"
            self.log.info("funding.undecided", reason=why, **fields)

    # -- incoming ---------------------------------------------------------------------------
    def on_private(self, event: PrivateEvent) -> None:
        """Any venue report about our orders, by type (the one entry point venues feed)."""
        cls = event.__class__
        if cls is OrderUpdate:  # (the commonest, by its exact class: one test, not two)
            self.on_update(event)  # type: ignore[arg-type]
        elif isinstance(event, Fill):
            self.on_fill(event)
        elif isinstance(event, OrderUpdate):
            self.on_update(event)
        elif isinstance(event, FillReversal):
            self.on_reversal(event)
        else:  # a venue-specific report (e.g. a trade's settlement): to its strategy
            self.on_report(event)

    def _reported(self, event: PrivateEvent) -> None:
        key = (event.venue, event.instrument)
        self.reports[key] = self.reports.get(key, 0) + 1

    def on_update(
        self, update: OrderUpdate, *, verified: bool = False, asked: int | None = None
    ) -> list[OrderUpdate]:
        """A venue's report about one of our orders; delivers what it changed. `verified`: the
        venue's answer to a question about this order; `asked`: the tracker's mark taken before
        that question (`OrderTracker.apply_update`)."""
        if self._sent_pending:
            self.flush_sent()
        tracker = self.tracker
        overrides = tracker.stats.venue_overrides
        out = tracker.apply_update(update, verified=verified, asked=asked)
        if not out:  # stale, or nothing new: nothing to count, journal, log or deliver
            return out
        key = (update.venue, update.instrument)  # `_reported`, inline
        reports = self.reports
        reports[key] = reports.get(key, 0) + 1
        unanswered = self._unanswered_places
        if unanswered:
            for u in out:
                unanswered.discard(u.client_order_id or "")  # the venue's word on it
        if self.journal is not None:
            order = tracker.get(out[-1].client_order_id or "")
            if order is not None:
                # The journal's record follows the venue's word, said as such when it overrode ours.
                overridden = tracker.stats.venue_overrides != overrides
                self._journal("state", order, "venue_override" if overridden else "update")
        deliver = self.deliver
        for u in out:
            log = self.log
            if log.enabled(_INFO) if type(log) is CachedLogger else logs_at(log, _INFO):
                self._update_line(log, u)
            deliver(u)
        return out

    def _no_cost_at(self, fill: Fill) -> bool:
        """True (refused: counted, alerted, nothing applied) for a fill the ledger could not
        book (`ledger.no_cost_basis`: a price below the tick size on an inverse contract, 0 or
        below always)."""
        inst = self.registry.get(fill.venue, fill.instrument)
        if inst is None or not no_cost_basis(inst, fill.price):
            return False
        self.tracker.stats.refused_fills += 1
        self.log.critical(
            "fill.refused",
            venue=fill.venue,
            instrument=fill.instrument,
            order_id=fill.order_id,
            client_order_id=fill.client_order_id,
            trade_id=fill.trade_id,
            size=decimal_text(fill.size),
            price=decimal_text(fill.price),
            tick_size=decimal_text(inst.tick_size),
            reason="a fill below the tick size (or at 0 or below) on an inverse contract is absurd"
            " and has no cost basis",
        )
        return True

    def on_fill(self, fill: Fill) -> Fill | None:
        """A venue's execution report; books it (once) and delivers it, after the acceptance it
        implies and before the order state it causes."""
        if self._sent_pending:
            self.flush_sent()
        if self._not_booked and self.refused_trade(fill):
            # Refused on a contested venue id before (`fill.not_booked`, journaled): a person
            # accounts for it, so tradingd never books it, the contest settled or not (the id
            # back to one claimant would take it, on top of the person's own accounting).
            self._learn_index(fill)
            self.log.info(
                "fill.not_booked_repeated",
                venue=fill.venue,
                order_id=fill.order_id,
                trade_id=fill.trade_id,
                contested=self.tracker.contested(fill.venue, fill.order_id),
            )
            return None
        tracker = self.tracker
        price = fill.price
        # (the price's half of `no_cost_basis` first: a NaN or infinite price is refused later)
        if price.is_finite() and self._no_cost_at(fill):
            return None
        stats = tracker.stats
        lookup_failures = stats.archive_failures
        contested = stats.contested_reports
        repeats = stats.duplicate_fills + stats.voided_fills
        events = tracker.apply_fill(fill)
        if events:
            key = (fill.venue, fill.instrument)  # `_reported`, inline
            reports = self.reports
            reports[key] = reports.get(key, 0) + 1
        booked: Fill | None = None  # the first fill among them
        unanswered = self._unanswered_places
        for e in events:
            if isinstance(e, OrderUpdate):
                unanswered.discard(e.client_order_id or "")  # it traded: it was taken
            elif booked is None and isinstance(e, Fill):
                booked = e
        if booked is None:
            if stats.contested_reports != contested:
                # It names a venue id two working orders of ours claimed (the tracker alerted
                # both, `OrderTracker.contested`), and neither's client id: booked to neither,
                # never guessed; a person books it.
                self._not_booked_fill(fill)
                return None
            if stats.duplicate_fills + stats.voided_fills != repeats:
                self._learn_index(fill)
                return None  # a repeat of a trade an order has (`apply_fill`)
            # A journal that could not be read is not "not ours": booking the fill on an order
            # rebuilt without its fills could book it twice. Left unbooked and alerted instead
            # (critical); the venue's next report of it (a reconnect's catch-up of fills, say)
            # books it once the journal reads again.
            unreadable = self.tracker.stats.archive_failures != lookup_failures
            self._learn_index(fill)
            if unreadable or (
                self.tracker.find(fill.venue, order_id=fill.order_id, client_order_id=fill.client_order_id)
                is None
            ):
                self.unmatched_fills += 1
                self.fills_not_booked += unreadable  # ours, maybe: a person looks (alerted)
                (self.log.critical if unreadable else self.log.error)(
                    "fill.unknown_order",
                    venue=fill.venue,
                    instrument=fill.instrument,
                    order_id=fill.order_id,
                    trade_id=fill.trade_id,
                    size=decimal_text(fill.size),
                    journal_unreadable=unreadable,
                )
                if unreadable and self.on_unreadable_fill is not None:
                    self.on_unreadable_fill(fill)
            return None
        inst = self.registry.get(fill.venue, fill.instrument)
        strategy = booked.strategy or ""
        ledger = self.ledgers.get(strategy) or self.ledger(strategy)
        rates = (
            ledger.rates(inst, booked.fee_currency, booked.index_price)
            if inst is not None
            else (None, None, None)
        )
        if self.journal is not None:
            order = self.tracker.get(booked.client_order_id or "")
            assert order is not None
            if self._journal("fill", booked, order, rates) is False:
                # In the journal already (booked before a restart): never book it twice. Its key
                # is the trade and our order in it: another order's fill of the same trade is not
                # a repeat, and is booked.
                self._learn_index(fill)
                self.log.error(
                    "fill.duplicate_in_journal",
                    venue=fill.venue,
                    trade_id=fill.trade_id,
                    client_order_id=order.client_order_id,
                )
                return None
        fills = self.fills
        fills[strategy] = fills.get(strategy, 0) + 1
        log = self.log
        if inst is not None:
            # Booked before anything is delivered: a strategy reading its position on the fill
            # (or on the "filled" update after it) already sees it.
            # `book` for a fill, with the ledger in hand (its three look-ups of it, one call).
            if inst.kind is _PERPETUAL:
                pos = ledger.positions.get((inst.venue, inst.symbol))
                before = _ZERO if pos is None else pos.qty  # `ledger.position`
                ledger.on_fill(booked, inst, rates)
                ts = booked.ts_local if booked.ts_exchange is None else booked.ts_exchange
                now = ledger.positions[(inst.venue, inst.symbol)].qty  # there now
                self.history.record(strategy, inst.venue, inst.symbol, ts, now - before)
            else:
                ledger.on_fill(booked, inst, rates)
            # (Its fields built only for a line written: every fill of a run without a USD rate
            # waits, and a backtest at "error" filters the line out. Asked of a `CachedLogger`
            # only, which knows; any other logger is called as it always was.)
            if ledger.waits(booked) and (type(log) is not CachedLogger or log.enabled(logging.WARNING)):
                # Its quantity counts now; its USD value waits for the first index price.
                log.warning(
                    "fill.waiting_for_rate",
                    strategy=strategy,
                    venue=fill.venue,
                    instrument=fill.instrument,
                    trade_id=fill.trade_id,
                    rates=list(rates),
                    waiting=ledger.waiting,
                )
        else:
            log.error("fill.unknown_instrument", venue=fill.venue, instrument=fill.instrument)
        if log.enabled(_INFO) if type(log) is CachedLogger else logs_at(log, _INFO):
            log.info(
                "order.fill",
                strategy=strategy,
                venue=fill.venue,
                instrument=fill.instrument,
                client_order_id=booked.client_order_id,
                trade_id=fill.trade_id,
                side=fill.side.value,
                price=decimal_text(fill.price),
                size=decimal_text(fill.size),
                fee=decimal_text(fill.fee),
                liquidity=fill.liquidity.value,
            )
        deliver = self.deliver
        for event in events:
            if isinstance(event, OrderUpdate):
                log = self.log  # `_log_update`, inline
                if log.enabled(_INFO) if type(log) is CachedLogger else logs_at(log, _INFO):
                    self._update_line(log, event)
            deliver(event)
        return booked

    def refused_trade(self, report: Fill | FillReversal) -> bool:
        """Whether `report` is of a trade left unbooked on a contested venue id (a
        `fill_not_booked` note, this run's or the journal's): the same venue and trade id, and
        the same venue order id where both name one (another order of ours in the same trade,
        the other side of it, has its own id and its own fill). tradingd never books such a
        trade, settled or not, and a reversal of it is applied to no order (`on_reversal`)."""
        if not report.trade_id:
            return False
        named = self._not_booked.get((report.venue, report.trade_id))
        if named is None:
            return False
        return None in named or not report.order_id or report.order_id in named

    def _not_booked_fill(self, fill: Fill) -> None:
        """A fill left unbooked on a contested venue id: alerted at critical level with all a
        person needs to book it, journaled (a note, `fill_not_booked`) and counted in
        `fills_not_booked`, once per trade (`_not_booked`); a repeat of it is logged at info."""
        self._learn_index(fill)
        if fill.trade_id:
            key = (fill.venue, fill.trade_id)
            named = self._not_booked.get(key)
            if named is not None and fill.order_id in named:
                self.log.info(
                    "fill.not_booked_repeated",
                    venue=fill.venue,
                    trade_id=fill.trade_id,
                    order_id=fill.order_id,
                )
                return
            if named is None:
                named = self._not_booked[key] = set()
                if len(self._not_booked) > _NOT_BOOKED_KEPT:
                    del self._not_booked[next(iter(self._not_booked))]
            named.add(fill.order_id)
        self.fills_not_booked += 1
        fields: dict[str, Any] = {
            "venue": fill.venue,
            "instrument": fill.instrument,
            "order_id": fill.order_id,
            "client_order_id": fill.client_order_id,
            "trade_id": fill.trade_id,
            "side": fill.side.value,
            "size": decimal_text(fill.size),
            "price": decimal_text(fill.price),
            "fee": decimal_text(fill.fee),
            "fee_currency": fill.fee_currency,
            "liquidity": fill.liquidity.value,
            "ts_exchange": fill.ts_exchange,
        }
        self._left_out(
            "fill_not_booked",
            "fill.not_booked",
            fill,
            fields,
            reason="its venue order id is contested by two orders (order.venue_id_conflict)",
        )

    def _left_out(
        self, note: str, event: str, report: Fill | FillReversal, fields: dict[str, Any], **why: str
    ) -> None:
        """A fill or a reversal on a contested venue id applied to no order: `fields` with the
        claimants (`contested`), their strategies and the report's strategy (its own, else the
        claimants' one), journaled (a note of kind `note`) and alerted at critical level
        (`event`, with `why`)."""
        claimants = self.tracker.claimants(report.venue, report.order_id)
        strategies = sorted({o.strategy for o in claimants})
        full = fields | {
            "strategy": report.strategy or (strategies[0] if len(strategies) == 1 else None),
            "contested": [o.client_order_id for o in claimants],
            "strategies": strategies,
        }
        self._journal(
            "note", note, report.client_order_id, **{k: v for k, v in full.items() if k != "client_order_id"}
        )
        self.log.critical(event, **full, **why)

    def _reversal_not_applied(self, reversal: FillReversal, fields: dict[str, Any]) -> None:
        """A reversal naming a contested venue id, of a trade no claimant has and with neither's
        client id, or of a trade left unbooked (`refused_trade`): taken out of no order and no
        position. Alerted at critical level with all a person needs to take it out, journaled
        (a note, `fill_reversal_not_applied`), counted with the fills not booked (the status
        page and the alert watcher show those), once per trade: a catch-up listing it again
        (each reconnect's, a restart's) is logged at info."""
        if reversal.trade_id:
            key = (reversal.venue, reversal.trade_id, reversal.order_id or "")
            if key in self._reversals_not_applied:
                self.log.info(
                    "fill.reversal_not_applied_repeated", venue=reversal.venue, trade_id=reversal.trade_id
                )
                return
            self._reversals_not_applied.add(key)
        refused = self.refused_trade(reversal)
        self.fills_not_booked += 1
        full = fields | {
            "client_order_id": reversal.client_order_id,
            "fee": decimal_text(reversal.fee),
            "fee_currency": reversal.fee_currency,
            "ts_exchange": reversal.ts_exchange,
        }
        self._left_out(
            "fill_reversal_not_applied",
            "fill.reversal_not_applied",
            reversal,
            full,
            action=(
                "its fill was never booked by tradingd (fill.not_booked): whoever accounted for "
                "it takes the voided fill out"
                if refused
                else "its venue order id is contested by two orders (order.venue_id_conflict): "
                "a person takes the voided fill out"
            ),
        )

    def _learn_index(self, fill: Fill) -> None:
        """A fill not booked again (a repeat: a reconnect's catch-up, say) still carries the
        venue's index price of its trade: a USD rate for what waits (its own first booking,
        if that still waits), never a second booking."""
        inst = self.registry.get(fill.venue, fill.instrument)
        if inst is not None and fill.index_price is not None:
            self.market.learn_index(inst, fill.index_price)

    def on_reversal(self, reversal: FillReversal) -> FillReversal | None:
        """A venue voided one of our fills: take it out of the order and the position, then
        deliver the reversal and the order's new state to the strategy. Logged as an error
        either way: a voided trade is something a trader must hear about."""
        self.flush_sent()
        fields = {
            "venue": reversal.venue,
            "instrument": reversal.instrument,
            "order_id": reversal.order_id,
            "trade_id": reversal.trade_id,
            "side": reversal.side.value,
            "price": decimal_text(reversal.price),
            "size": decimal_text(reversal.size),
            "reason": reversal.reason,
        }
        if self._not_booked and self.refused_trade(reversal):
            # Its fill was never booked (`fill.not_booked`): nothing of ours to take out of, even
            # once the id is back to one claimant; alerted (once) for whoever accounted for it.
            self._reversal_not_applied(reversal, fields)
            return None
        stats = self.tracker.stats
        contested = stats.contested_reports
        events = self.tracker.apply_reversal(reversal)
        if events:
            self._reported(reversal)
        if not events:
            if stats.contested_reports != contested:
                self._reversal_not_applied(reversal, fields)
                return None
            self.log.error("fill.reversal_unknown", **fields)
            return None
        booked = events[0]
        assert isinstance(booked, FillReversal)
        inst = self.registry.get(reversal.venue, reversal.instrument)
        ledger = self.ledger(booked.strategy or "")
        # At the rates the voided fill was booked at, not today's (journaled so: a restart too).
        rates = ledger.reversal_rates(booked, inst) if inst is not None else (None, None, None)
        order = self.tracker.get(booked.client_order_id or "")
        if order is not None:
            self._journal("reversal", booked, order, rates)
        if inst is not None:
            self.book(booked.strategy or "", booked, inst, rates)
        else:
            self.log.error("fill.unknown_instrument", venue=reversal.venue, instrument=reversal.instrument)
        self.log.error("order.fill_reversed", strategy=booked.strategy, **fields)
        for event in events:
            if isinstance(event, OrderUpdate):
                self._log_update(event)
            self.deliver(event)
        return booked

    def on_report(self, event: PrivateEvent) -> PrivateEvent | None:
        """Any other report about one of our orders (a venue's own event type, such as a
        Polymarket trade's settlement status): delivered, named after our order, to the
        strategy that owns it; counted and logged when the order is not ours."""
        self.flush_sent()
        order = self.tracker.find(event.venue, order_id=event.order_id, client_order_id=event.client_order_id)
        if order is None:
            self.unmatched_reports += 1
            self.log.warning(
                "order.report_unknown_order", venue=event.venue, type=event.type, order_id=event.order_id
            )
            return None
        if event.strategy != order.strategy or event.client_order_id != order.client_order_id:
            event = msgspec.structs.replace(
                event, strategy=order.strategy, client_order_id=order.client_order_id
            )
        self.deliver(event)
        return event

    def _log_update(self, u: OrderUpdate) -> None:
        log = self.log
        if log.enabled(_INFO) if type(log) is CachedLogger else logs_at(log, _INFO):
            self._update_line(log, u)

    @staticmethod
    def _update_line(log: Any, u: OrderUpdate) -> None:
        """The `order.update` line (`_log_update` once the level is known to write it)."""
        log.info(
            "order.update",
            **_whose(u),
            order_id=u.order_id,
            status=u.status.value,
            filled=decimal_text(u.filled_size),
            reason=u.reason,
        )
