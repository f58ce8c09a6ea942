"""The execution gateway: one task per venue takes order requests from two lanes, processes
them one at a time, and answers each caller.

Two lanes. Cancels go first: a cancel waits only for the request the venue has now (one at a
time, never interrupted), never behind queued new orders and edits. A cancel only ever lowers
risk, and the cancels that matter most come in bursts behind a full queue: the kill switch and
a shutdown cancel every open order, a strategy pulling its quotes cancels them all when the
market moves, and each placement ahead of them costs a venue round trip. New orders and edits
queued behind are checked when their turn comes, so once the kill switch is engaged they are
refused (the pre-trade checks), never sent. The one exception keeps a strategy's own sequence:
a cancel of an order that still has a request queued (its placement, an edit) waits behind
that request, or it would reach the venue before the order it cancels. Within each lane
requests keep their arrival order.

Cancellation safety, precisely:
- A caller cancelled while waiting for room in the queue (new orders and edits: `capacity` at
  most; cancels never wait for room) has handed nothing over: nothing is sent.
- A caller cancelled after its request was queued has handed it over: the request is
  processed, the order is tracked to a final state through the venue's reports, and the answer
  nobody waits for any more is logged (`order.answer_unclaimed`).
- Nothing is sent twice: each request is taken from the queue once, a client call is never
  retried after it may have reached the venue, and a client order id can be tracked only once.

Answers: the venue's state of the order; or `OrderRejected` when the request is known not done
(`OrderDenied`: our checks; `VenueRejected`: the venue's refusal, or not sent); or
`OrderOutcomeUnknown` when it was sent and its outcome is unknown (the order stays tracked as
it was, is never re-sent, and the venue's reports or a reconciliation settle it).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from decimal import Decimal
from functools import partial

import attrs
import structlog
import trio

from ..model.errors import (
    OrderDenied,
    OrderOutcomeUnknown,
    OrderRejected,
    RateLimited,
    VenueError,
    VenueRejected,
    VenueUnavailable,
)
from ..model.events import OrderUpdate, PrivateEvent
from ..model.histogram import LATENCY_BUCKETS_S, Histogram
from ..model.orders import Order, OrderRequest
from ..venue.sent import SENT
from ..venue.spi import ExecutionClient
from .flow import CancelCause, OrderFlow

__all__ = ["ExecutionGateway"]


@attrs.define(eq=False)
class _Reply:
    done: trio.Event = attrs.field(factory=trio.Event)
    result: OrderUpdate | None = None
    error: BaseException | None = None
    abandoned: bool = False

    def succeed(self, update: OrderUpdate) -> None:
        self.result = update
        self.done.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done.set()


@attrs.define(eq=False)
class _Request:
    action: str  # "place" | "cancel" | "edit"
    request: OrderRequest | None
    client_order_id: str
    reply: _Reply
    price: Decimal | None = None
    size: Decimal | None = None
    holds_room: bool = False  # took one of the queue's `capacity` places (released when taken)
    seq: int = 0  # the order in which callers made their requests (`drop_queued`)
    strategy: str | None = None  # whose request it is (a place's, an edited order's)
    # A place's: when the event its strategy was handling as it placed it was received (ns;
    # 0: none), for `tick_to_order`. A cancel's: who asked for it.
    received_ns: int = 0
    cause: CancelCause = "user"


class ExecutionGateway:
    """Orderly, cancellation-safe access to one venue's `ExecutionClient` (see module docstring)."""

    def __init__(
        self,
        client: ExecutionClient,
        flow: OrderFlow,
        *,
        capacity: int = 16,
        clock: Callable[[], int] = time.time_ns,
        log: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        self.client = client
        self.venue = client.venue
        self.flow = flow
        self.clock = clock
        self.log = (log or structlog.get_logger("tradingd.gateway")).bind(venue=self.venue)
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self._cancels: deque[_Request] = deque()  # the first lane (module docstring)
        self._queue: deque[_Request] = deque()  # new orders, edits (and cancels kept behind them)
        self._room = trio.Semaphore(capacity)  # places in `_queue` for new orders and edits
        self._wakeup = trio.Event()  # set when a request arrives or `close` is called
        self._closed = False
        self._refusing: str | None = None  # `refuse_new`'s reason, once called
        self._seq = 0  # requests made so far (`_Request.seq`)
        # `drop_queued`: per strategy (None: every one), the requests made before this number are
        # not sent, and why.
        self._dropped: dict[str | None, tuple[int, str]] = {}
        self.processed = 0
        # Seconds from the receipt of the event a strategy was handling when it placed an order
        # to the order handed to the venue's sender (after the pre-trade checks and the journal).
        self.tick_to_order = Histogram(LATENCY_BUCKETS_S)
        self.in_flight: set[str] = set()  # client order ids whose request is with the venue now
        self.stopped = trio.Event()  # `run` has returned (after `close`, every request answered)

    # -- callers ----------------------------------------------------------------------------
    async def place_order(self, request: OrderRequest, *, received_ns: int = 0) -> OrderUpdate:
        """Hand an order to the venue task and wait for the venue's answer (see module docstring
        for what cancellation at each point means). `received_ns`: when the event the strategy
        was handling as it placed the order was received (0: none; `tick_to_order`)."""
        if request.venue != self.venue:
            raise ValueError(f"order for {request.venue} sent to the {self.venue} gateway")
        return await self._call(
            _Request("place", request, request.client_order_id, _Reply(), received_ns=received_ns)
        )

    async def cancel_order(self, client_order_id: str, *, cause: CancelCause = "user") -> OrderUpdate:
        """Ask the venue to cancel an order and wait for its answer; `cause` says who asks (the
        strategy, the daemon's stop, the kill switch: the reason the cancel is counted under)."""
        return await self._call(_Request("cancel", None, client_order_id, _Reply(), cause=cause))

    async def edit_order(
        self, client_order_id: str, *, price: Decimal | None = None, size: Decimal | None = None
    ) -> OrderUpdate:
        """Ask the venue for a new price and/or size of a resting order (pre-trade checks first)."""
        return await self._call(_Request("edit", None, client_order_id, _Reply(), price=price, size=size))

    def _stopping(self, req: _Request) -> OrderDenied:
        return OrderDenied(
            f"not sent: {self.venue} takes no more requests (the daemon is stopping)",
            venue=self.venue,
            client_order_id=req.client_order_id,
            code="stopping",
        )

    async def _call(self, req: _Request) -> OrderUpdate:
        if self._closed:
            raise self._stopping(req)
        self._seq += 1
        req.seq = self._seq
        if req.request is not None:
            req.strategy = req.request.strategy
        elif req.action == "edit":
            order = self.flow.tracker.get(req.client_order_id)
            req.strategy = None if order is None else order.strategy
        if req.action == "cancel" and not any(q.client_order_id == req.client_order_id for q in self._queue):
            self._cancels.append(req)
        elif req.action == "cancel":
            self._queue.append(req)  # behind its order's own queued request (module docstring)
        else:
            if self._refusing is not None:
                raise self._refused(req)
            # Cancelled here: nothing was handed over. With room, taken without a pass of the
            # scheduler (`Semaphore.acquire` yields even then, and the order waits for that pass
            # before the gateway can take it); without, waited for in arrival order as before.
            await trio.lowlevel.checkpoint_if_cancelled()
            try:
                self._room.acquire_nowait()
            except trio.WouldBlock:
                await self._room.acquire()
            dropped = self._dropped_why(req)
            if self.closed or self._refusing is not None or dropped:  # while it waited for room
                self._room.release()
                if dropped:
                    raise self._refused(req, dropped)
                raise self._stopping(req) if self.closed else self._refused(req)
            req.holds_room = True
            self._queue.append(req)
        self._wakeup.set()
        reply = req.reply
        try:
            await reply.done.wait()
        finally:
            if not reply.done.is_set():
                reply.abandoned = True  # the task still processes it and logs the answer
        if reply.error is not None:
            raise reply.error
        assert reply.result is not None
        return reply.result

    def _refused(self, req: _Request, reason: str | None = None) -> OrderDenied:
        return OrderDenied(
            f"not sent: {reason or self._refusing}",
            venue=self.venue,
            instrument=None if req.request is None else req.request.instrument,
            client_order_id=req.client_order_id,
            code="stopping",
        )

    def _dropped_why(self, req: _Request) -> str | None:
        """Why `req` is not to be sent (`drop_queued` was called after it was made), or None."""
        for key in (None, req.strategy):
            cut = self._dropped.get(key)
            if cut is not None and req.seq <= cut[0]:
                return cut[1]
        return None

    def drop_queued(self, reason: str, *, strategy: str | None = None) -> int:
        """Refuse (`OrderDenied`, `reason`) the new orders and edits made so far that are not
        sent yet: those queued, and those of callers still waiting for room in the queue; of
        `strategy`, or of every strategy for None. Cancels still go, and requests made from now
        on are taken as usual. A stop starts with it: what a strategy queued before it is
        stopped is not sent after (its positions and orders are then as it left them, for its
        `on_stop` to see), while what its `on_stop` sends (a flattening order) goes. Returns how
        many queued requests it refused."""
        self._dropped[strategy] = (self._seq, reason)
        return self._refuse_queued(reason, lambda req: strategy is None or req.strategy == strategy)

    def refuse_new(self, reason: str) -> int:
        """From now on refuse new orders and edits (`OrderDenied`, `reason`), those queued and
        not yet sent too, at once; cancels still go. The daemon's stop calls it once the
        strategies have stopped, before it cancels the open orders: an order queued by a
        strategy that is gone is never sent after the cancels. Returns how many queued
        requests it refused."""
        self._refusing = reason
        return self._refuse_queued(reason, lambda req: True)

    def _refuse_queued(self, reason: str, which: Callable[[_Request], bool]) -> int:
        kept: deque[_Request] = deque()
        refused = 0
        for req in self._queue:
            if req.action == "cancel" or not which(req):
                kept.append(req)
                continue
            if req.holds_room:
                self._room.release()
            req.reply.fail(self._refused(req, reason))
            if req.reply.abandoned:
                self.log.info(
                    "order.answer_unclaimed",
                    action=req.action,
                    client_order_id=req.client_order_id,
                    error=reason,
                )
            refused += 1
        self._queue = kept
        return refused

    @property
    def closed(self) -> bool:
        """`close` was called, or `run` returned: no new request is taken."""
        return self._closed

    @property
    def queued(self) -> int:
        """Requests waiting for their turn (both lanes)."""
        return len(self._cancels) + len(self._queue)

    def _next(self) -> _Request | None:
        if self._cancels:
            return self._cancels.popleft()
        if self._queue:
            req = self._queue.popleft()
            if req.holds_room:
                self._room.release()
            return req
        return None

    # -- the venue task ---------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Process requests, cancels first, until cancelled (or until `close`, once every
        request queued before it is answered)."""
        task_status.started()
        try:
            while True:
                req = self._next()
                if req is None:
                    if self._closed:
                        return
                    # Nothing else runs between the check above and the wait: no arrival is lost.
                    self._wakeup = trio.Event()
                    await self._wakeup.wait()
                    continue
                self.in_flight.add(req.client_order_id)
                try:
                    await self._process(req)
                except Exception as exc:  # a bug in a client must not kill the venue's execution
                    self.log.exception(
                        "gateway.request_failed", action=req.action, client_order_id=req.client_order_id
                    )
                    if not req.reply.done.is_set():
                        req.reply.fail(VenueError(f"internal error: {exc!r}", venue=self.venue))
                finally:
                    self.in_flight.discard(req.client_order_id)
                self.processed += 1
        finally:
            self._closed = True
            # Callers still waiting for room, or queued when the task was cancelled: answered
            # as not sent (nothing of theirs reached the venue), not left waiting forever.
            while (left := self._next()) is not None:
                left.reply.fail(self._stopping(left))
            for _ in range(self._room.statistics().tasks_waiting):
                self._room.release()
            self.stopped.set()

    def close(self) -> None:
        """Stop accepting requests; `run` returns once those already queued are processed."""
        self._closed = True
        self._wakeup.set()

    async def _process(self, req: _Request) -> None:
        if req.action == "place":
            assert req.request is not None
            await self._place(req.request, req.reply, req.received_ns)
        elif req.action == "edit":
            await self._edit(req)
        else:
            await self._cancel(req.client_order_id, req.reply, req.cause)
        if req.reply.abandoned:
            r = req.reply
            self.log.info(
                "order.answer_unclaimed",
                action=req.action,
                client_order_id=req.client_order_id,
                status=None if r.result is None else r.result.status.value,
                error=None if r.error is None else str(r.error),
            )

    def _apply(self, events: Sequence[PrivateEvent]) -> None:
        for ev in events:
            self.flow.on_private(ev)

    async def _place(self, request: OrderRequest, reply: _Reply, received_ns: int = 0) -> None:
        # A client that signals its bytes have left (engine.venue.sent) gets the `order.sent`
        # line after its write, off the path from a tick to the order; others before, as ever.
        late_line = getattr(self.client, "signals_sent", False) is True
        try:
            order = self.flow.accept(request, now_ns=self.clock(), log_sent=not late_line)
        except OrderRejected as exc:
            reply.fail(exc)
            return
        now = self.clock()
        if received_ns and now >= received_ns:  # another clock's (a test's) time is no latency
            self.tick_to_order.observe((now - received_ns) / 1e9)
        self.flow.sending(order, now)
        try:
            events = await (self._send_place(order) if late_line else self._prepare_and_place(order))
        except OrderRejected as exc:
            self.flow.venue_rejected(order, exc, now_ns=self.clock())
            reply.fail(exc)
            return
        except (RateLimited, VenueUnavailable) as exc:
            # Refused for rate, not processed (VENUES.md §1.10), or nothing was sent: final, like
            # any refusal, and the caller may try again.
            refused = self._not_done(order, exc)
            self.flow.venue_rejected(order, refused, now_ns=self.clock())
            reply.fail(refused)
            return
        except VenueError as exc:
            try:
                if isinstance(exc, OrderOutcomeUnknown):  # the answer named it: its id, first
                    self.flow.acknowledged(order, exc, now_ns=self.clock())
            finally:  # whatever that raised, the caller hears the outcome is unknown
                reply.fail(self._unknown("place", order, exc))
            return
        self._apply(events)
        reply.succeed(order.snapshot(ts_local=self.clock()))

    async def _prepare_and_place(self, order: Order) -> Sequence[PrivateEvent]:
        # The venue's id before sending, where the venue knows it (`ExecutionClient.prepare`).
        order_id = self.client.prepare(order)
        if order_id and not self.flow.assign_order_id(order, order_id):
            # Another working order holds that id (alerted, counted): sent, the two would share
            # one venue id and each be credited the other's fills. Known not sent: refused.
            raise OrderDenied(
                f"not sent: its venue id {order_id} is held by another working order",
                venue=self.venue,
                instrument=order.request.instrument,
                client_order_id=order.client_order_id,
                code="venue_id_conflict",
            )
        return await self.client.place(order)

    async def _send_place(self, order: Order) -> Sequence[PrivateEvent]:
        """`_prepare_and_place`, the `order.sent` line logged once its bytes are written, or, if
        the client never said so (nothing written, or a client that does not), when `place`
        ends: every accepted order still has exactly one such line, before its outcome's. The
        write's own schedule point lets another task log a report of the order before this task
        resumes: the flow then logs the waiting line first (`OrderFlow.flush_sent`)."""
        line = partial(self.flow.flush_sent, order.client_order_id)
        token = SENT.set(line)
        try:
            return await self._prepare_and_place(order)
        finally:
            SENT.reset(token)
            line()

    def _not_done(self, order: Order, exc: VenueError) -> VenueRejected:
        """A request the venue did not process: refused for rate, or never sent."""
        rate = isinstance(exc, RateLimited)
        return VenueRejected(
            f"rate limited: {exc}" if rate else f"not sent: {exc}",
            venue=self.venue,
            instrument=order.request.instrument,
            client_order_id=order.client_order_id,
            code=exc.code if rate else "not_sent",
            venue_message=exc.venue_message if rate else str(exc),
        )

    def _unknown(self, action: str, order: Order, exc: VenueError) -> OrderOutcomeUnknown:
        """A request sent (or perhaps sent) without a readable answer: the order stays tracked
        as it is and is never re-sent (`OrderFlow.state_unknown`); its caller hears so, as its
        own type, never as a refusal. That holds even when recording it fails (a bug in the
        flow's bookkeeping): the failure is logged (`order.outcome_unknown_not_recorded`) and
        counted (`OrderFlow.outcomes_unrecorded`, in the status), the order's questions start
        all the same (`state_unknown`), and the caller still hears the outcome is unknown, never
        the gateway's "internal error"."""
        try:
            self.flow.state_unknown(order, exc)
        except Exception:
            self.flow.outcomes_unrecorded += 1
            self.log.critical(
                "order.outcome_unknown_not_recorded",
                action=action,
                client_order_id=order.client_order_id,
                error=str(exc),
                exc_info=True,
            )
        unknown = OrderOutcomeUnknown(
            f"{action} {order.client_order_id}: outcome unknown ({exc}); the order stays tracked "
            "and the venue's reports settle it",
            venue=self.venue,
            instrument=order.request.instrument,
            client_order_id=order.client_order_id,
            code=exc.code,
            venue_message=exc.venue_message,
        )
        unknown.__cause__ = exc
        return unknown

    async def _edit(self, req: _Request) -> None:
        reply = req.reply
        order = self.flow.tracker.get(req.client_order_id)
        if order is None:
            reply.fail(
                OrderDenied(
                    f"unknown order {req.client_order_id}",
                    venue=self.venue,
                    client_order_id=req.client_order_id,
                )
            )
            return
        try:
            self.flow.check_edit(order, req.price, req.size, now_ns=self.clock())
            events = await self.client.edit(order, price=req.price, size=req.size)
        except OrderRejected as exc:
            reply.fail(exc)
            return
        except (RateLimited, VenueUnavailable) as exc:
            reply.fail(self._not_done(order, exc))  # known not done (VENUES.md §1.10 for rate)
            return
        except VenueError as exc:
            reply.fail(self._unknown("edit", order, exc))
            return
        self._apply(events)
        reply.succeed(order.snapshot(ts_local=self.clock()))

    async def _cancel(self, client_order_id: str, reply: _Reply, cause: CancelCause = "user") -> None:
        order = self.flow.tracker.get(client_order_id)
        if order is None:
            reply.fail(
                OrderDenied(
                    f"unknown order {client_order_id}", venue=self.venue, client_order_id=client_order_id
                )
            )
            return
        if order.state.is_final:
            reply.succeed(order.snapshot(ts_local=self.clock()))
            return
        self.flow.cancel_requested(order, now_ns=self.clock(), cause=cause)
        try:
            events = await self.client.cancel(order)
        except OrderRejected as exc:
            self.flow.cancel_refused(order, exc, now_ns=self.clock())
            reply.fail(exc)
            return
        except (RateLimited, VenueUnavailable) as exc:
            # Not sent, or refused for rate: the cancel is known not done, the order is as it was.
            refused = self._not_done(order, exc)
            self.flow.cancel_refused(order, refused, now_ns=self.clock())
            reply.fail(refused)
            return
        except VenueError as exc:
            reply.fail(self._unknown("cancel", order, exc))
            return
        self._apply(events)
        reply.succeed(order.snapshot(ts_local=self.clock()))
