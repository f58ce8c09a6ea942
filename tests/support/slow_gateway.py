"""A gateway over a fake venue whose calls wait for the test (`SlowVenue.gate`), so its queue can be
filled with slow placements; `stalled_gateway` is that state, ready to use."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal

import trio
import trio.testing

from tests.support.helpers import OPTION, PERP, registry, request, ticker
from tradingd.engine import OrderRejected, OrderState, OrderUpdate, PrivateEvent, VenueError, VenueUnavailable
from tradingd.engine.model import Limits, MarketState, Order, RiskLimits
from tradingd.engine.runtime import ExecutionGateway, OrderFlow


class SlowVenue:
    """An ExecutionClient whose every call waits for `gate` (a placement the test holds), and
    records what reached it, in order. `silent`: calls for these ids never answer (the
    connector's own timeout is `timeout_after`: it then raises the unknown-outcome error
    connectors raise today, a plain `VenueError` with code "timeout")."""

    venue = "deribit"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.gate = trio.Event()
        self.gate.set()
        self.silent: set[str] = set()
        self.timeout_after = 5.0
        self.unavailable = False
        self._ids = itertools.count(1)

    def _update(self, order: Order, status: OrderState) -> OrderUpdate:
        r = order.request
        return OrderUpdate(
            venue="deribit",
            instrument=r.instrument,
            ts_exchange=None,
            ts_local=0,
            order_id=order.order_id or f"V{next(self._ids)}",
            client_order_id=r.client_order_id,
            status=status,
            side=r.side,
            price=r.price,
            size=r.size,
        )

    async def _answer(self, action: str, order: Order) -> None:
        if self.unavailable:
            raise VenueUnavailable(f"{action}: not connected", venue="deribit")
        self.calls.append((action, order.client_order_id))
        if order.client_order_id in self.silent:
            await trio.sleep(self.timeout_after)
            raise VenueError(f"{action}: no answer in 5 s", venue="deribit", code="timeout")
        await self.gate.wait()

    def prepare(self, order: Order) -> None:
        return None  # the venue assigns its id on receipt

    async def place(self, order: Order) -> Sequence[PrivateEvent]:
        await self._answer("place", order)
        return [self._update(order, OrderState.OPEN)]

    async def cancel(self, order: Order) -> Sequence[PrivateEvent]:
        await self._answer("cancel", order)
        return [self._update(order, OrderState.CANCELLED)]

    async def edit(
        self, order: Order, *, price: Decimal | None, size: Decimal | None
    ) -> Sequence[PrivateEvent]:
        await self._answer("edit", order)
        return [self._update(order, OrderState.OPEN)]


def _flow() -> OrderFlow:
    reg = registry()
    market = MarketState(reg)
    market.on_ticker(ticker(PERP.symbol, index=90_000.0, mark=90_010.0))
    market.on_ticker(ticker(OPTION.symbol, index=90_000.0, mark=0.05))
    return OrderFlow(reg, market, lambda _: None, strategy_limits={"s": RiskLimits(Limits())})


async def _settle() -> None:
    await trio.testing.wait_all_tasks_blocked()


async def _resting_then_full_queue(
    nursery: trio.Nursery, gw: ExecutionGateway, venue: SlowVenue, outcomes: dict[str, object], n: int
) -> None:
    """One resting order "s-rest"; then the venue stalls and `n` placements queue behind one
    in flight ("q-0")."""

    async def place(cid: str) -> None:
        try:
            outcomes[cid] = (await gw.place_order(request(cid=cid))).status
        except OrderRejected as exc:
            outcomes[cid] = exc

    await gw.place_order(request(cid="s-rest"))
    venue.gate = trio.Event()  # the venue is slow from now on
    for i in range(n + 1):
        nursery.start_soon(place, f"q-{i}")
        await _settle()
    assert venue.calls[-1] == ("place", "q-0")  # the rest wait in the queue


@contextlib.asynccontextmanager
async def stalled_gateway(
    n: int, *, capacity: int = 4
) -> AsyncIterator[tuple[OrderFlow, SlowVenue, ExecutionGateway, dict[str, object], trio.Nursery]]:
    """A running gateway whose venue has one resting order ("s-rest") and then stalls with `n`
    placements queued behind one in flight ("q-0"; their outcomes in the dict, by client order
    id). On leaving, the venue answers everything and the gateway closes."""
    flow = _flow()
    venue = SlowVenue()
    gw = ExecutionGateway(venue, flow, capacity=capacity)
    outcomes: dict[str, object] = {}
    async with trio.open_nursery() as nursery:
        await nursery.start(gw.run)
        await _resting_then_full_queue(nursery, gw, venue, outcomes, n=n)
        yield flow, venue, gw, outcomes, nursery
        await _settle()
        venue.gate.set()
        await _settle()
        gw.close()
