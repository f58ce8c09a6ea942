"""The execution gateway: order, cancellation at each point, rejections, nothing sent twice."""

from __future__ import annotations

import itertools
from collections.abc import MutableMapping, Sequence
from decimal import Decimal
from typing import Any

import msgspec
import pytest
import structlog
import trio
import trio.testing

from tests.support.helpers import OPTION, PERP, registry, request, ticker
from tradingd.engine import (
    Fill,
    FillReversal,
    Liquidity,
    OrderRejected,
    OrderRequest,
    OrderState,
    OrderUpdate,
    PrivateEvent,
    Side,
    VenueError,
    VenueUnavailable,
)
from tradingd.engine.model import Limits, MarketState, Order, RiskLimits
from tradingd.engine.runtime import ExecutionGateway, OrderFlow


class FakeVenue:
    """An ExecutionClient double: answers after `delay`, records what it was sent."""

    venue = "deribit"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.sent: list[str] = []
        self.cancels: list[str] = []
        self.edits: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.reject: dict[str, tuple[int, str]] = {}
        self.timeout: set[str] = set()
        self.refuse_cancel = False
        self._ids = itertools.count(1)

    def _update(self, order: Order, status: OrderState, oid: str) -> OrderUpdate:
        r = order.request
        return OrderUpdate(
            venue="deribit",
            instrument=r.instrument,
            ts_exchange=None,
            ts_local=trio.current_time().__int__(),
            order_id=oid,
            client_order_id=r.client_order_id,
            status=status,
            side=r.side,
            price=r.price,
            size=r.size,
        )

    def prepare(self, order: Order) -> str | None:
        return None  # the venue assigns its id on receipt

    async def place(self, order: Order) -> Sequence[PrivateEvent]:
        cid = order.client_order_id
        self.sent.append(cid)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await trio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        if cid in self.reject:
            code, msg = self.reject[cid]
            raise OrderRejected(msg, venue="deribit", code=code, venue_message=msg, client_order_id=cid)
        if cid in self.timeout:
            raise VenueError("request timed out", venue="deribit")
        return [self._update(order, OrderState.OPEN, f"V{next(self._ids)}")]

    async def cancel(self, order: Order) -> Sequence[PrivateEvent]:
        self.cancels.append(order.client_order_id)
        await trio.sleep(self.delay)
        if self.refuse_cancel:
            raise OrderRejected("not_open_order", venue="deribit", code=11044, venue_message="not_open_order")
        assert order.order_id is not None
        return [self._update(order, OrderState.CANCELLED, order.order_id)]

    async def edit(
        self, order: Order, *, price: Decimal | None, size: Decimal | None
    ) -> Sequence[PrivateEvent]:
        """Answered as the venue answers an edit: the order, open at its new price and size."""
        self.edits.append(order.client_order_id)
        await trio.sleep(self.delay)
        assert order.order_id is not None
        update = self._update(order, OrderState.OPEN, order.order_id)
        price = update.price if price is None else price
        return [msgspec.structs.replace(update, price=price, size=update.size if size is None else size)]


def make_flow(**limits: object) -> tuple[OrderFlow, list[PrivateEvent]]:
    reg = registry()
    market = MarketState(reg)
    market.on_ticker(ticker(PERP.symbol, index=90_000.0, mark=90_010.0))
    market.on_ticker(ticker(OPTION.symbol, index=90_000.0, mark=0.05))
    delivered: list[PrivateEvent] = []
    flow = OrderFlow(
        reg,
        market,
        delivered.append,
        strategy_limits={"s": RiskLimits(Limits(**limits))},  # type: ignore[arg-type]
    )
    return flow, delivered


async def test_requests_are_processed_one_at_a_time_in_arrival_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    flow, _ = make_flow()
    venue = FakeVenue(delay=0.5)
    gw = ExecutionGateway(venue, flow, capacity=8)
    answers: list[str] = []

    async def place(i: int) -> None:
        update = await gw.place_order(request(cid=f"s-bt-{i}"))
        answers.append(update.client_order_id or "")

    async with trio.open_nursery() as nursery:
        await nursery.start(gw.run)
        for i in range(5):
            nursery.start_soon(place, i)
            await trio.testing.wait_all_tasks_blocked()  # each request enters the channel in turn
        await trio.sleep(10)
        gw.close()
    expected = [f"s-bt-{i}" for i in range(5)]
    assert venue.sent == expected
    assert answers == expected
    assert venue.max_in_flight == 1
    assert all(flow.tracker.get(c).state is OrderState.OPEN for c in expected)  # type: ignore[union-attr]


async def test_a_caller_cancelled_before_handing_over_sends_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    flow, _ = make_flow()
    venue = FakeVenue(delay=5.0)
    gw = ExecutionGateway(venue, flow, capacity=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(gw.run)
        nursery.start_soon(gw.place_order, request(cid="s-bt-1"))  # taken by the venue task
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(gw.place_order, request(cid="s-bt-2"))  # fills the channel
        await trio.testing.wait_all_tasks_blocked()
        with trio.move_on_after(1) as scope:  # blocked: no room in the channel
            await gw.place_order(request(cid="s-bt-3"))
        assert scope.cancelled_caught
        await trio.sleep(20)
        gw.close()
    assert venue.sent == ["s-bt-1", "s-bt-2"]
    assert flow.tracker.get("s-bt-3") is None


async def test_a_caller_cancelled_before_it_calls_sends_nothing_even_with_room() -> None:
    """Room in the queue is taken without a pass of the scheduler, but a caller whose scope is
    already cancelled still hands nothing over: nothing is sent, nothing tracked."""
    flow, _ = make_flow()
    venue = FakeVenue()
    gw = ExecutionGateway(venue, flow, capacity=4)
    async with trio.open_nursery() as nursery:
        await nursery.start(gw.run)
        with trio.CancelScope() as scope:
            scope.cancel()
            await gw.place_order(request(cid="s-bt-1"))
        assert scope.cancelled_caught
        await gw.place_order(request(cid="s-bt-2"))
        gw.close()
    assert venue.sent == ["s-bt-2"]
    assert flow.tracker.get("s-bt-1") is None


class _Steps(trio.abc.Instrument):
    def __init__(self) -> None:
        self.tasks: list[trio.lowlevel.Task] = []

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.tasks.append(task)


async def test_an_order_reaches_the_venue_task_in_the_next_pass_of_the_scheduler() -> None:
    """With room in the queue, the caller hands its order over and waits; the venue task sends it
    in the very next pass (before, the caller yielded once more on the queue's room first)."""
    flow, _ = make_flow()
    steps = _Steps()
    before_place: list[list[trio.lowlevel.Task]] = []

    class Watched(FakeVenue):
        async def place(self, order: Order) -> Sequence[PrivateEvent]:
            before_place.append(list(steps.tasks))
            return await super().place(order)

    gw = ExecutionGateway(Watched(), flow, capacity=4)
    async with trio.open_nursery() as nursery:
        await nursery.start(gw.run)
        await trio.testing.wait_all_tasks_blocked()
        me = trio.lowlevel.current_task()
        trio.lowlevel.add_instrument(steps)
        try:
            await gw.place_order(request(cid="s-bt-1"))
        finally:
            trio.lowlevel.remove_instrument(steps)
        gw.close()
    (seen,) = before_place
    assert len(seen) == 1 and seen[0] is not me  # the venue task's step, and nothing before it


class _Signalling(FakeVenue):
    """A client that says when its order's bytes have left (engine.venue.sent), as Deribit's
    does through `JsonRpcSession.request`; `unsent` ones fail before anything is written."""

    signals_sent = True

    def __init__(self, logs: list[MutableMapping[str, Any]]) -> None:
        super().__init__(delay=1.0)
        self.logs = logs
        self.lines_at_write: list[list[object]] = []
        self.unsent: set[str] = set()

    async def place(self, order: Order) -> Sequence[PrivateEvent]:
        from tradingd.engine.venue.sent import bytes_sent

        self.lines_at_write.append([e["event"] for e in self.logs])
        if order.client_order_id in self.unsent:
            raise VenueUnavailable("not connected", venue="deribit")
        bytes_sent()
        assert [e["event"] for e in self.logs].count("order.sent") == len(self.lines_at_write)
        return await super().place(order)


async def test_the_order_sent_line_comes_after_the_write_and_before_the_orders_fate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With a client that signals its write, `order.sent` is logged right after the order's
    bytes left (its cost, tens of microseconds at the info level, no longer before them), still
    once per accepted order and before every line about its fate, also when nothing was sent."""
    flow, _ = make_flow()
    with structlog.testing.capture_logs() as logs:
        venue = _Signalling(logs)
        venue.unsent.add("s-bt-2")
        gw = ExecutionGateway(venue, flow, capacity=4)
        async with trio.open_nursery() as nursery:
            await nursery.start(gw.run)
            await gw.place_order(request(cid="s-bt-1"))
            with pytest.raises(OrderRejected):
                await gw.place_order(request(cid="s-bt-2"))
            gw.close()
    # At each place: no `order.sent` line of that order yet (the first order's is there at the second).
    assert [lines.count("order.sent") for lines in venue.lines_at_write] == [0, 1]
    events = [(e["event"], e.get("client_order_id")) for e in logs]
    assert events.count(("order.sent", "s-bt-1")) == 1 and events.count(("order.sent", "s-bt-2")) == 1
    assert events.index(("order.sent", "s-bt-2")) < events.index(("order.rejected", "s-bt-2"))


class _WireLikeStream:
    """`send_all` as trio's `SocketStream`: the write (the bytes are out), then a schedule
    point (trio's `_try_sync` ends with `cancel_shielded_checkpoint`), at which any task
    already runnable goes before the writer resumes."""

    def __init__(self) -> None:
        self.wire: list[bytes] = []

    async def send_all(self, data: bytes) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        self.wire.append(bytes(data))
        await trio.lowlevel.cancel_shielded_checkpoint()


class _TextProto:
    def send(self, event: Any) -> bytes:
        return str(event.data).encode()


class _WireLikeWs:
    """What `send_text` uses of a trio-websocket connection, over `_WireLikeStream`."""

    def __init__(self) -> None:
        self._stream_lock = trio.StrictFIFOLock()
        self._wsproto = _TextProto()
        self._stream = _WireLikeStream()
        self._close_reason = None


async def test_order_sent_is_never_overtaken_by_a_report_read_at_the_writes_schedule_point() -> None:
    """A session task runnable in the pass after the order's write (a burst: it yields every
    32 frames) reads the venue's report of the order and logs `order.update` before the
    gateway's task resumes from the write and calls `bytes_sent()`: the pending `order.sent`
    line still comes first (the flow logs it before any line about the order), once."""
    from tradingd.engine.venue.sent import bytes_sent
    from tradingd.engine.venue.websocket import send_text

    flow, _ = make_flow()
    ws = _WireLikeWs()
    placed: dict[str, Order] = {}

    class Client(FakeVenue):
        signals_sent = True

        async def place(self, order: Order) -> Sequence[PrivateEvent]:
            placed[order.client_order_id] = order
            await send_text(ws, order.client_order_id)  # type: ignore[arg-type]  # as `JsonRpcSession.request`
            bytes_sent()
            await trio.sleep(0.01)
            return []

    async def session() -> None:
        # A fast venue: its notification is in the socket as soon as the order is.
        reported: set[str] = set()
        while True:
            for raw in list(ws._stream.wire):
                cid = raw.decode()
                if cid not in reported:
                    reported.add(cid)
                    r = placed[cid].request
                    flow.on_private(
                        OrderUpdate(
                            "deribit",
                            r.instrument,
                            None,
                            0,
                            order_id=f"V-{cid}",
                            client_order_id=cid,
                            strategy=r.strategy,
                            status=OrderState.OPEN,
                            side=r.side,
                            price=r.price,
                            size=r.size,
                        )
                    )
            await trio.lowlevel.checkpoint()

    n = 20
    with structlog.testing.capture_logs() as logs:
        gw = ExecutionGateway(Client(), flow, capacity=4)
        async with trio.open_nursery() as nursery:
            await nursery.start(gw.run)
            nursery.start_soon(session)
            for i in range(n):
                await gw.place_order(request(cid=f"s-bt-{i}"))
            nursery.cancel_scope.cancel()
    stories = {
        f"s-bt-{i}": [e["event"] for e in logs if e.get("client_order_id") == f"s-bt-{i}"] for i in range(n)
    }
    assert all(story.count("order.update") == 1 for story in stories.values())  # each was reported
    late = {cid: story for cid, story in stories.items() if story[0] != "order.sent"}
    assert not late, f"{len(late)}/{n} orders with a line before their order.sent: {late}"
    assert all(story.count("order.sent") == 1 for story in stories.values())


async def test_a_client_that_does_not_signal_gets_the_line_before_its_place() -> None:
    flow, _ = make_flow()
    with structlog.testing.capture_logs() as logs:

        class Plain(FakeVenue):
            async def place(self, order: Order) -> Sequence[PrivateEvent]:
                seen.append([e["event"] for e in logs])
                return await super().place(order)

        seen: list[list[object]] = []
        gw = ExecutionGateway(Plain(), flow, capacity=4)
        async with trio.open_nursery() as nursery:
            await nursery.start(gw.run)
            await gw.place_order(request(cid="s-bt-1"))
            gw.close()
    assert seen == [["order.sent"]]


async def test_a_caller_cancelled_after_handing_over_still_gets_its_order_tracked(
    autojump_clock: trio.testing.MockClock,
) -> None:
    flow, delivered = make_flow()
    venue = FakeVenue(delay=2.0)
    gw = ExecutionGateway(venue, flow, capacity=4)
    with structlog.testing.capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            await nursery.start(gw.run)
            with trio.move_on_after(0.5) as scope:
                await gw.place_order(request(cid="s-bt-1"))
            assert scope.cancelled_caught
            await trio.sleep(5)  # the venue answers after the caller left
            order = flow.tracker.get("s-bt-1")
            assert order is not None
            assert (order.state, order.filled_size) == (OrderState.OPEN, Decimal(0))
            # The venue later reports the fill: the order reaches its final state and is booked.
            flow.on_fill(
                Fill(
                    venue="deribit",
                    instrument=OPTION.symbol,
                    ts_exchange=None,
                    ts_local=10,
                    order_id=order.order_id,
                    trade_id="T1",
                    side=order.request.side,
                    price=Decimal("0.05"),
                    size=Decimal("1"),
                    fee=Decimal("0.0003"),
                    fee_currency="BTC",
                    liquidity=Liquidity.MAKER,
                )
            )
            gw.close()
    assert order.state is OrderState.FILLED
    assert venue.sent == ["s-bt-1"]
    assert flow.position("s", "deribit", OPTION.symbol) == Decimal(1)
    assert [type(e).__name__ for e in delivered][-2:] == ["Fill", "OrderUpdate"]
    unclaimed = [e for e in logs if e["event"] == "order.answer_unclaimed"]
    assert unclaimed and unclaimed[0]["client_order_id"] == "s-bt-1" and unclaimed[0]["status"] == "open"


@pytest.mark.parametrize(
    ("req", "limits", "reason"),
    [
        (request(instrument="BTC-1JAN27-1-C"), {}, "unknown instrument"),
        (request(price="0.0052"), {}, "tick size 0.0005"),
        (request(size="0.05"), {}, "below the minimum size"),
        (request(size="3"), {"max_order_size": Decimal(2)}, "max_order_size"),
        (request(size="3"), {"max_order_notional_usd": 200_000.0}, "max_order_notional_usd"),  # 3 x 90k index
        (request(size="3"), {"max_position": Decimal(2)}, "max_position"),
    ],
)
async def test_pre_trade_checks_reject_with_a_reason_and_send_nothing(
    req: object, limits: dict[str, object], reason: str
) -> None:
    flow, delivered = make_flow(**limits)
    venue = FakeVenue()
    gw = ExecutionGateway(venue, flow)
    async with trio.open_nursery() as nursery:
        await nursery.start(gw.run)
        with pytest.raises(OrderRejected, match=reason) as info:
            await gw.place_order(req)  # type: ignore[arg-type]
        gw.close()
    assert info.value.code is None  # ours, not the venue's
    assert venue.sent == []
    assert delivered == []


async def test_max_position_counts_working_orders_and_allows_reducing() -> None:
    flow, _ = make_flow(max_position=Decimal(3))
    gw = ExecutionGateway(FakeVenue(), flow)
    async with trio.open_nursery() as nursery:
        await nursery.start(gw.run)
        await gw.place_order(request(size="2", cid="s-bt-1"))  # rests: working 2
        with pytest.raises(OrderRejected, match="would reach 4"):
            await gw.place_order(request(size="2", cid="s-bt-2"))
        await gw.place_order(request(side="sell", size="3", cid="s-bt-3"))  # the other way: allowed
        gw.close()


async def test_venue_rejection_is_typed_and_final() -> None:
    flow, delivered = make_flow()
    venue = FakeVenue()
    venue.reject["s-bt-1"] = (10009, "not_enough_funds")
    gw = ExecutionGateway(venue, flow)
    async with trio.open_nursery() as nursery:
        await nursery.start(gw.run)
        with pytest.raises(OrderRejected) as info:
            await gw.place_order(request(cid="s-bt-1"))
        gw.close()
    assert info.value.code == 10009 and info.value.venue_message == "not_enough_funds"
    assert flow.tracker.get("s-bt-1").state is OrderState.REJECTED  # type: ignore[union-attr]
    assert isinstance(delivered[-1], OrderUpdate) and delivered[-1].status is OrderState.REJECTED
    assert delivered[-1].reason == "not_enough_funds"


async def test_an_unknown_outcome_is_never_resent() -> None:
    flow, _ = make_flow()
    venue = FakeVenue()
    venue.timeout.add("s-bt-1")
    gw = ExecutionGateway(venue, flow)
    async with trio.open_nursery() as nursery:
        await nursery.start(gw.run)
        with pytest.raises(VenueError, match="timed out"):
            await gw.place_order(request(cid="s-bt-1"))
        with pytest.raises(OrderRejected, match="duplicate client order id"):
            await gw.place_order(request(cid="s-bt-1"))  # a retry with the same id is refused
        gw.close()
    assert venue.sent == ["s-bt-1"]
    assert flow.tracker.get("s-bt-1").state is OrderState.PENDING_NEW  # type: ignore[union-attr]


async def test_cancel_and_a_refused_cancel() -> None:
    flow, _ = make_flow()
    venue = FakeVenue()
    gw = ExecutionGateway(venue, flow)
    async with trio.open_nursery() as nursery:
        await nursery.start(gw.run)
        await gw.place_order(request(cid="s-bt-1"))
        update = await gw.cancel_order("s-bt-1")
        assert update.status is OrderState.CANCELLED
        again = await gw.cancel_order("s-bt-1")  # already final: answered without asking the venue
        assert again.status is OrderState.CANCELLED
        await gw.place_order(request(cid="s-bt-2"))
        venue.refuse_cancel = True
        with pytest.raises(OrderRejected, match="not_open_order"):
            await gw.cancel_order("s-bt-2")
        with pytest.raises(OrderRejected, match="unknown order"):
            await gw.cancel_order("nope")
        gw.close()
    assert venue.cancels == ["s-bt-1", "s-bt-2"]
    assert flow.tracker.get("s-bt-2").state is OrderState.OPEN  # type: ignore[union-attr]


def _fill(trade_id: str, size: str, *, oid: str = "V1", price: str = "90000") -> Fill:
    return Fill(
        venue="deribit",
        instrument=PERP.symbol,
        ts_exchange=2,
        ts_local=2,
        order_id=oid,
        trade_id=trade_id,
        side=Side.BUY,
        price=Decimal(price),
        size=Decimal(size),
        fee=Decimal("0.5"),
        fee_currency="USD",
        liquidity=Liquidity.TAKER,
    )


def _reversal(fill: Fill) -> FillReversal:
    return FillReversal(
        venue=fill.venue,
        instrument=fill.instrument,
        ts_exchange=3,
        ts_local=3,
        order_id=fill.order_id,
        trade_id=fill.trade_id,
        side=fill.side,
        price=fill.price,
        size=fill.size,
        fee=fill.fee,
        fee_currency=fill.fee_currency,
        reason="settlement failed",
    )


async def test_a_voided_fill_is_taken_out_of_the_order_and_the_position() -> None:
    flow, delivered = make_flow()
    venue = FakeVenue()
    gw = ExecutionGateway(venue, flow)
    async with trio.open_nursery() as nursery:
        await nursery.start(gw.run)
        await gw.place_order(request(size="30", price="90000", instrument=PERP.symbol))
        gw.close()
    ledger = flow.ledger("s")
    first, second = _fill("T1", "10"), _fill("T2", "20", price="90100")
    flow.on_fill(first)
    flow.on_fill(second)
    assert ledger.position("deribit", PERP.symbol) == Decimal(30)
    fees_before = ledger.fees_usd
    booked = flow.on_reversal(_reversal(second))
    assert booked is not None and booked.strategy == "s" and booked.client_order_id == "s-bt-1"
    order = flow.tracker.get("s-bt-1")
    assert order is not None
    assert order.filled_size == Decimal(10) and order.avg_fill_price == Decimal(90000)
    assert order.state is OrderState.FILLED or order.state is OrderState.PARTIALLY_FILLED
    assert ledger.position("deribit", PERP.symbol) == Decimal(10)
    assert ledger.fills == 1 and ledger.fees_usd < fees_before
    assert ledger.realized_usd == pytest.approx(0.0)  # it opened: reversing it realizes nothing
    assert [type(e) for e in delivered[-2:]] == [FillReversal, OrderUpdate]
    assert isinstance(delivered[-1], OrderUpdate) and delivered[-1].filled_size == Decimal(10)
    # The same reversal again, or one of a fill never booked: counted, nothing changes.
    assert flow.on_reversal(_reversal(second)) is None
    assert flow.on_reversal(_reversal(_fill("T9", "1"))) is None
    assert flow.tracker.stats.unknown_reversals == 2 and flow.tracker.stats.reversals == 1
    assert ledger.position("deribit", PERP.symbol) == Decimal(10)


async def test_other_venue_reports_reach_the_owning_strategy_or_are_counted() -> None:
    flow, delivered = make_flow()
    venue = FakeVenue()
    gw = ExecutionGateway(venue, flow)
    async with trio.open_nursery() as nursery:
        await nursery.start(gw.run)
        await gw.place_order(request())
        gw.close()
    report = PrivateEvent(venue="deribit", instrument=OPTION.symbol, ts_exchange=1, ts_local=1, order_id="V1")
    out = flow.on_report(report)
    assert out is not None and out.strategy == "s" and delivered[-1] is out
    assert (
        flow.on_report(
            PrivateEvent(venue="deribit", instrument="X", ts_exchange=1, ts_local=1, order_id="V404")
        )
        is None
    )
    assert flow.unmatched_reports == 1


async def test_an_order_id_known_before_sending_matches_a_report_that_outruns_the_answer() -> None:
    flow, delivered = make_flow()

    class HashedIds(FakeVenue):
        """Polymarket-like: the order id is computed locally (the signed order's hash), and the
        user channel reports the fill while the REST answer is still on its way."""

        def prepare(self, order: Order) -> str:
            return "0xhash-" + order.client_order_id

        async def place(self, order: Order) -> Sequence[PrivateEvent]:
            flow.on_private(_fill("T1", "10", oid="0xhash-" + order.client_order_id))  # outruns the answer
            await trio.sleep(self.delay)
            return [self._update(order, OrderState.OPEN, "0xhash-" + order.client_order_id)]

    gw = ExecutionGateway(HashedIds(delay=0.01), flow)
    async with trio.open_nursery() as nursery:
        await nursery.start(gw.run)
        update = await gw.place_order(request(size="10", price="90000", instrument=PERP.symbol))
        gw.close()
    assert update.order_id == "0xhash-s-bt-1" and update.status is OrderState.FILLED
    assert flow.unmatched_fills == 0
    assert any(isinstance(e, Fill) and e.strategy == "s" for e in delivered)


_S = 1_000_000_000


def _perp(cid: str, side: str = "buy", size: str = "10") -> OrderRequest:
    return request(side, size, "90000", instrument=PERP.symbol, cid=cid)


def test_open_orders_rate_and_kill_switch_limits_refuse_with_reasons() -> None:
    flow, _ = make_flow(max_open_orders=2, max_orders_per_minute=3)
    flow.accept(_perp("a"), now_ns=1 * _S)
    flow.accept(_perp("b"), now_ns=2 * _S)
    with pytest.raises(OrderRejected, match=r"max_open_orders \(strategy s\): 2 working, at most 2"):
        flow.accept(_perp("c"), now_ns=3 * _S)
    order_a = flow.tracker.get("a")
    assert order_a is not None
    order_a.transition(OrderState.CANCELLED, now_ns=3 * _S)
    flow.accept(_perp("d"), now_ns=4 * _S)  # room again; the third order this minute
    flow.tracker.get("b").transition(OrderState.CANCELLED, now_ns=5 * _S)  # type: ignore[union-attr]
    with pytest.raises(OrderRejected, match=r"max_orders_per_minute \(strategy s\): 3 in the last 60 s"):
        flow.accept(_perp("e"), now_ns=30 * _S)
    flow.accept(_perp("f"), now_ns=61 * _S + 1)  # the first left the window
    flow.risk.halt("operator: tradingd kill")
    with pytest.raises(OrderRejected, match="kill switch engaged: operator"):
        flow.accept(_perp("g"), now_ns=200 * _S)
    flow.risk.resume()
    flow.tracker.get("d").transition(OrderState.CANCELLED, now_ns=201 * _S)  # type: ignore[union-attr]
    flow.accept(_perp("h"), now_ns=202 * _S)
    assert flow.risk.rejections == 3


def test_daily_loss_allows_only_reducing_orders_until_the_day_rolls() -> None:
    flow, _ = make_flow(max_daily_loss_usd=5.0)
    day = 86_400 * _S
    t0 = 20_000 * day + 3_600 * _S
    order = flow.accept(_perp("open", size="1000"), now_ns=t0)
    flow.tracker.set_order_id(order, "x")
    flow.on_fill(_fill("T1", "1000", oid="x"))
    assert flow.position("s", "deribit", PERP.symbol) == Decimal(1000)
    flow.market.on_ticker(ticker(PERP.symbol, index=85_000.0, mark=85_000.0))  # about -59 USD
    assert flow.equity("s") < -5.0
    with pytest.raises(OrderRejected, match=r"max_daily_loss_usd \(strategy s\): today's PnL -"):
        flow.accept(_perp("more", size="10"), now_ns=t0 + _S)
    flow.accept(_perp("reduce", side="sell", size="500"), now_ns=t0 + 2 * _S)  # reduces: passes
    with pytest.raises(OrderRejected, match="max_daily_loss_usd"):
        flow.accept(_perp("flip", side="sell", size="600"), now_ns=t0 + 3 * _S)  # 500 + 600 > 1000
    flow.accept(_perp("next-day", size="10"), now_ns=t0 + day)  # a new day counts from here


def _fate_paths() -> dict[str, Any]:
    """Each way the flow logs about an accepted order, as a call on (flow, order)."""

    def update(flow: OrderFlow, order: Order) -> None:
        r = order.request
        flow.on_private(
            OrderUpdate(
                "deribit",
                r.instrument,
                None,
                1,
                order_id="V1",
                client_order_id=order.client_order_id,
                strategy=r.strategy,
                status=OrderState.OPEN,
                side=r.side,
                price=r.price,
                size=r.size,
            )
        )

    def fill(flow: OrderFlow, order: Order) -> None:
        flow.assign_order_id(order, "V1")
        flow.on_private(
            Fill(
                venue="deribit",
                instrument=order.request.instrument,
                ts_exchange=None,
                ts_local=1,
                order_id="V1",
                trade_id="T1",
                side=order.request.side,
                price=Decimal("0.05"),
                size=Decimal("1"),
                fee=Decimal("0.0003"),
                fee_currency="BTC",
                liquidity=Liquidity.MAKER,
            )
        )

    def rejected(flow: OrderFlow, order: Order) -> None:
        refusal = OrderRejected("no", venue="deribit", client_order_id=order.client_order_id, code="x")
        flow.venue_rejected(order, refusal, now_ns=1)

    def unknown(flow: OrderFlow, order: Order) -> None:
        flow.state_unknown(order, VenueError("timed out", venue="deribit", code="timeout"))

    def cancel_refused(flow: OrderFlow, order: Order) -> None:
        flow.cancel_requested(order, now_ns=1)
        refusal = OrderRejected("no", venue="deribit", client_order_id=order.client_order_id, code="x")
        flow.cancel_refused(order, refusal, now_ns=2)

    def edit_refused(flow: OrderFlow, order: Order) -> None:
        with pytest.raises(OrderRejected):
            flow.check_edit(order, None, Decimal("100"), now_ns=1)  # beyond max_order_size

    return {
        "update": update,
        "fill": fill,
        "rejected": rejected,
        "unknown": unknown,
        "cancel_refused": cancel_refused,
        "edit_refused": edit_refused,
    }


@pytest.mark.parametrize("path", sorted(_fate_paths()))
def test_a_waiting_order_sent_line_is_logged_before_any_line_about_the_order_and_once(path: str) -> None:
    """`accept(log_sent=False)`: the line waits for the sender (`flush_sent`), but whatever the
    flow logs about the order first logs it before itself; the sender's flush then logs nothing."""
    flow, _ = make_flow(max_order_size=Decimal("10"))
    with structlog.testing.capture_logs() as logs:
        order = flow.accept(request(cid="s-bt-1"), now_ns=0, log_sent=False)
        assert logs == []  # waiting for the bytes to leave
        _fate_paths()[path](flow, order)
        flow.flush_sent(order.client_order_id)
        flow.flush_sent()
    story = [e["event"] for e in logs if e.get("client_order_id") == "s-bt-1"]
    assert len(story) >= 2 and story[0] == "order.sent", story
    assert story.count("order.sent") == 1


def test_waiting_order_sent_lines_come_in_the_orders_order_each_once() -> None:
    flow, _ = make_flow()
    with structlog.testing.capture_logs() as logs:
        flow.accept(request(cid="s-bt-1"), now_ns=0, log_sent=False)
        flow.accept(request(cid="s-bt-2"), now_ns=0, log_sent=False)  # the first one's line first
        flow.flush_sent("s-bt-2")
        flow.flush_sent("s-bt-1")
        flow.accept(request(cid="s-bt-3"), now_ns=0)
        flow.flush_sent()
    assert [(e["event"], e["client_order_id"]) for e in logs] == [
        ("order.sent", "s-bt-1"),
        ("order.sent", "s-bt-2"),
        ("order.sent", "s-bt-3"),
    ]


class _SameIdVenue(FakeVenue):
    """As `FakeVenue`, but `prepare` names every order V1 (a venue id computed before sending,
    as Polymarket's order hash is, that a bug made the same twice)."""

    def prepare(self, order: Order) -> str | None:
        return "V1"

    async def place(self, order: Order) -> Sequence[PrivateEvent]:
        self.sent.append(order.client_order_id)
        return [self._update(order, OrderState.OPEN, "V1")]


async def test_an_order_whose_prepared_id_another_working_order_holds_is_not_sent() -> None:
    """The second order's prepared id is the first's (working): sent, the two would share one
    venue id and be credited each other's fills. It is refused, known not sent (rejected; its
    caller hears `OrderRejected`), the first keeps the id, and the gateway goes on. Before, the
    second took the index and was sent."""
    flow, _ = make_flow()
    venue = _SameIdVenue()
    gw = ExecutionGateway(venue, flow, capacity=4)
    with structlog.testing.capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            await nursery.start(gw.run)
            first = await gw.place_order(request(cid="s-bt-1"))
            with pytest.raises(OrderRejected, match="held by another working order") as refused:
                await gw.place_order(request(cid="s-bt-2"))
            gw.close()
    # Our own word (an `OrderDenied`), not `VenueRejected`'s "not_sent".
    assert refused.value.code == "venue_id_conflict" and not isinstance(refused.value, VenueError)
    assert first.status is OrderState.OPEN and venue.sent == ["s-bt-1"]
    second = flow.tracker.get("s-bt-2")
    assert second is not None and second.state is OrderState.REJECTED and second.order_id is None
    assert flow.tracker.find("deribit", order_id="V1") is flow.tracker.get("s-bt-1")
    assert flow.tracker.stats.order_id_conflicts == 1
    assert [e["event"] for e in logs if e["log_level"] == "critical"] == ["order.venue_id_conflict"]
    assert gw.processed == 2 and flow.finals["s"] == {("rejected", "other"): 1}
    # Never sent, the second is no claimant: V1 is the first's alone, its fills booked to it.
    assert not flow.tracker.contested("deribit", "V1")
    assert flow.on_fill(_fill_of("V1", "T1")) is not None
    assert flow.position("s", "deribit", OPTION.symbol) == Decimal("0.5")


def _fill_of(order_id: str, trade_id: str) -> Fill:
    """A fill naming its order by the venue's id alone (as Polymarket's do)."""
    return Fill(
        venue="deribit",
        instrument=OPTION.symbol,
        ts_exchange=None,
        ts_local=1,
        order_id=order_id,
        trade_id=trade_id,
        side=Side.BUY,
        price=Decimal("0.05"),
        size=Decimal("0.5"),
        fee=Decimal("0.0001"),
        fee_currency="BTC",
        liquidity=Liquidity.MAKER,
    )


class _AnswersV1Venue(FakeVenue):
    """As `FakeVenue`, but its answer names every order V1 (a venue, or a connector, gone
    wrong): nothing computed before sending."""

    async def place(self, order: Order) -> Sequence[PrivateEvent]:
        self.sent.append(order.client_order_id)
        return [self._update(order, OrderState.OPEN, "V1")]


async def test_a_fill_naming_only_a_venue_id_two_sent_orders_were_given_is_booked_to_neither() -> None:
    """The venue answers two orders, both sent, with one id V1. Which of the two a fill naming
    only V1 (Polymarket's name no client id) belongs to is not ours to guess: it is booked to
    neither, alerted (`fill.not_booked`, critical) and counted. Before (main), the second's
    answer took V1 and the fill was booked to it; before r12's review, the first kept V1 and
    the fill was booked to the first. Either may be wrong: a position in the ledger the venue
    may not hold."""
    flow, _ = make_flow()
    venue = _AnswersV1Venue()
    gw = ExecutionGateway(venue, flow, capacity=4)
    with structlog.testing.capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            await nursery.start(gw.run)
            await gw.place_order(request(cid="s-bt-1"))
            await gw.place_order(request(cid="s-bt-2"))
            gw.close()
        assert flow.on_fill(_fill_of("V1", "T1")) is None
    assert venue.sent == ["s-bt-1", "s-bt-2"]
    first, second = flow.tracker.get("s-bt-1"), flow.tracker.get("s-bt-2")
    assert first is not None and second is not None
    assert first.fills_size == second.fills_size == 0
    assert flow.position("s", "deribit", OPTION.symbol) == 0 and flow.fills_not_booked == 1
    critical = [e["event"] for e in logs if e["log_level"] == "critical"]
    assert critical == ["order.venue_id_conflict", "fill.not_booked"]
