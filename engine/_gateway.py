"""The execution gateway: one task per venue drains a capacity-limited channel of order requests,
processes them one at a time in arrival order, and answers each caller.

Cancellation safety, precisely:
- A caller cancelled while waiting for room in the channel has handed nothing over: nothing is
  sent. (A trio channel `send` either delivers or, when cancelled, does not.)
- A caller cancelled after its request entered the channel has handed it over: the request is
  processed, the order is tracked to a final state through the venue's reports, and the answer
  nobody waits for any more is logged (`order.answer_unclaimed`).
- Nothing is sent twice: each request is taken from the channel once, a client call is never
  retried after it may have reached the venue, and a client order id can be tracked only once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Protocol

import attrs
import structlog
import trio

from ._errors import OrderRejected, RateLimited, VenueError, VenueUnavailable
from ._events import OrderUpdate, PrivateEvent
from ._flow import OrderFlow
from ._orders import Order, OrderRequest

__all__ = ["ExecutionClient", "ExecutionGateway"]


class ExecutionClient(Protocol):
    """What a venue's execution side offers the gateway. Each call sends one request and returns
    the venue's answer as events (the order's state, and any fills the answer carries). A venue
    refusal raises `OrderRejected` with the venue's code; an unknown outcome (timeout, lost
    connection) raises `VenueError`. Implementations never retry a request that may have
    reached the venue."""

    venue: str

    async def place(self, order: Order) -> Sequence[PrivateEvent]: ...

    async def cancel(self, order: Order) -> Sequence[PrivateEvent]: ...

    async def edit(
        self, order: Order, *, price: Decimal | None, size: Decimal | None
    ) -> Sequence[PrivateEvent]: ...


# Optional on an ExecutionClient: `prepare(order) -> str | None`, called just before `place`, for
# a venue whose order id is known before sending (Polymarket: the order's EIP-712 hash). The
# gateway registers that id first, so a user-channel report that outruns the REST answer is
# matched to the order. It may raise `OrderRejected` (a local check or signature failed).


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
        self._send, self._recv = trio.open_memory_channel[_Request](capacity)
        self.processed = 0
        self.in_flight: set[str] = set()  # client order ids whose request is with the venue now
        self.stopped = trio.Event()  # `run` has returned (after `close`, every request answered)

    # -- callers ----------------------------------------------------------------------------
    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        """Hand an order to the venue task and wait for the venue's answer (see module docstring
        for what cancellation at each point means)."""
        if request.venue != self.venue:
            raise ValueError(f"order for {request.venue} sent to the {self.venue} gateway")
        return await self._call(_Request("place", request, request.client_order_id, _Reply()))

    async def cancel_order(self, client_order_id: str) -> OrderUpdate:
        """Ask the venue to cancel an order and wait for its answer."""
        return await self._call(_Request("cancel", None, client_order_id, _Reply()))

    async def edit_order(
        self, client_order_id: str, *, price: Decimal | None = None, size: Decimal | None = None
    ) -> OrderUpdate:
        """Ask the venue for a new price and/or size of a resting order (pre-trade checks first)."""
        return await self._call(_Request("edit", None, client_order_id, _Reply(), price=price, size=size))

    async def _call(self, req: _Request) -> OrderUpdate:
        try:
            await self._send.send(req)  # cancelled here: nothing was handed over
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise OrderRejected(
                f"not sent: {self.venue} takes no more requests (the daemon is stopping)",
                venue=self.venue,
                client_order_id=req.client_order_id,
                code="stopping",
            ) from None
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

    # -- the venue task ---------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Drain the request channel until cancelled (or until `close`)."""
        task_status.started()
        try:
            async with self._recv:
                async for req in self._recv:
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
            self.stopped.set()

    def close(self) -> None:
        """Stop accepting requests; `run` returns once those already queued are processed."""
        self._send.close()

    async def _process(self, req: _Request) -> None:
        if req.action == "place":
            assert req.request is not None
            await self._place(req.request, req.reply)
        elif req.action == "edit":
            await self._edit(req)
        else:
            await self._cancel(req.client_order_id, req.reply)
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

    async def _place(self, request: OrderRequest, reply: _Reply) -> None:
        try:
            order = self.flow.accept(request, now_ns=self.clock())
        except OrderRejected as exc:
            reply.fail(exc)
            return
        prepare = getattr(self.client, "prepare", None)
        try:
            if prepare is not None:
                order_id = prepare(order)
                if order_id:
                    self.flow.assign_order_id(order, order_id)
            events = await self.client.place(order)
        except OrderRejected as exc:
            self.flow.venue_rejected(order, exc, now_ns=self.clock())
            reply.fail(exc)
            return
        except RateLimited as exc:
            # Refused for rate, not processed (VENUES.md §1.10): final, like any refusal.
            refused = OrderRejected(
                f"rate limited: {exc}",
                venue=self.venue,
                instrument=order.request.instrument,
                client_order_id=order.client_order_id,
                code=exc.code,
                venue_message=exc.venue_message,
            )
            self.flow.venue_rejected(order, refused, now_ns=self.clock())
            reply.fail(refused)
            return
        except VenueUnavailable as exc:
            # Nothing was sent: the order is final, as refused, and the caller may try again.
            refused = OrderRejected(
                f"not sent: {exc}",
                venue=self.venue,
                instrument=order.request.instrument,
                client_order_id=order.client_order_id,
                code="not_sent",
                venue_message=str(exc),
            )
            self.flow.venue_rejected(order, refused, now_ns=self.clock())
            reply.fail(refused)
            return
        except VenueError as exc:
            self.flow.state_unknown(order, exc)
            reply.fail(exc)
            return
        self._apply(events)
        reply.succeed(order.snapshot(ts_local=self.clock()))

    async def _edit(self, req: _Request) -> None:
        reply = req.reply
        order = self.flow.tracker.get(req.client_order_id)
        if order is None:
            reply.fail(
                OrderRejected(
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
        except VenueUnavailable as exc:
            reply.fail(
                OrderRejected(
                    f"not sent: {exc}",
                    venue=self.venue,
                    client_order_id=order.client_order_id,
                    code="not_sent",
                )
            )
            return
        except VenueError as exc:
            self.flow.state_unknown(order, exc)
            reply.fail(exc)
            return
        self._apply(events)
        reply.succeed(order.snapshot(ts_local=self.clock()))

    async def _cancel(self, client_order_id: str, reply: _Reply) -> None:
        order = self.flow.tracker.get(client_order_id)
        if order is None:
            reply.fail(
                OrderRejected(
                    f"unknown order {client_order_id}", venue=self.venue, client_order_id=client_order_id
                )
            )
            return
        if order.state.is_final:
            reply.succeed(order.snapshot(ts_local=self.clock()))
            return
        self.flow.cancel_requested(order, now_ns=self.clock())
        try:
            events = await self.client.cancel(order)
        except OrderRejected as exc:
            self.flow.cancel_refused(order, exc, now_ns=self.clock())
            reply.fail(exc)
            return
        except VenueError as exc:
            self.flow.state_unknown(order, exc)
            reply.fail(exc)
            return
        self._apply(events)
        reply.succeed(order.snapshot(ts_local=self.clock()))
