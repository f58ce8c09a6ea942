"""The engine's own counters the metrics and alerts read (COMMON19 "engine counters"): risk
refusals by the check that refused, orders final by status and a bounded reason, fills, requests
refused for rate, and the latency histograms (tick-to-order, order acknowledgement)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import attrs
import httpx
import msgspec
import pytest
import trio

from tests.support.flows import S, fill, update
from tests.support.helpers import OPTION, PERP, registry, request, ticker
from tradingd.connectors.polymarket.execution import ClobRest
from tradingd.connectors.polymarket.settings import PolymarketSettings
from tradingd.connectors.polymarket.stream import PolymarketSession
from tradingd.engine import (
    MarketEvent,
    OrderRejected,
    OrderRequest,
    OrderState,
    OrderUpdate,
    PrivateEvent,
    RateLimited,
    Strategy,
    VenueError,
)
from tradingd.engine.model import InstrumentRegistry, Limits, MarketState, Order, OrderTracker, RiskLimits
from tradingd.engine.model.histogram import LATENCY_BUCKETS_S, SLOW_BUCKETS_S, Histogram
from tradingd.engine.model.risk import CHECKS, RiskChecker
from tradingd.engine.runtime import ExecutionGateway, OrderFlow
from tradingd.engine.runtime.flow import FINAL_REASONS, FinalReason
from tradingd.engine.runtime.mailbox import Mailbox
from tradingd.engine.runtime.router import MarketRouter, StrategySlot, run_strategy

# -- risk refusals by check ---------------------------------------------------------------------


def _checker(limits: Limits, equity: list[float]) -> RiskChecker:
    reg = registry()
    reg.add(attrs.evolve(OPTION, symbol="BTC-OLD", active=False))
    market = MarketState(reg)
    market.on_ticker(ticker(PERP.symbol, index=90_000.0, mark=90_000.0))
    market.on_ticker(ticker(OPTION.symbol, index=90_000.0, mark=0.05))
    return RiskChecker(
        reg,
        market,
        OrderTracker(),
        lambda strategy, venue, instrument: Decimal(0),
        strategy_limits={"s": RiskLimits(limits)},
        equity_of=lambda scope: equity[0],
    )


def _refused(checker: RiskChecker, req: OrderRequest, now_ns: int = 10 * S) -> str:
    with pytest.raises(OrderRejected) as info:
        checker.check(req, now_ns=now_ns)
    return info.value.reason


@pytest.mark.parametrize(
    ("check", "limits", "req"),
    [
        ("instrument", Limits(), request(instrument="BTC-NOPE")),
        ("instrument", Limits(), request(instrument="BTC-OLD")),  # known, not active
        ("price", Limits(), request(price="0.05001")),  # off the tick grid
        ("price", Limits(), request(size="0.01")),  # below the minimum size
        ("max_order_size", Limits(max_order_size=Decimal(1)), request(size="2")),
        ("max_notional", Limits(max_order_notional_usd=100.0), request(size="2")),
        ("max_position", Limits(max_position=Decimal(1)), request(size="2")),
    ],
)
def test_a_refusal_is_counted_under_the_check_that_refused(
    check: str, limits: Limits, req: OrderRequest
) -> None:
    checker = _checker(limits, [0.0])
    _refused(checker, req)
    assert checker.refusals == {"s": {check: 1}}
    assert checker.rejections == 1


def test_the_scope_checks_and_the_kill_switch_are_counted_by_name() -> None:
    equity = [0.0]
    checker = _checker(Limits(max_open_orders=1, max_orders_per_minute=2, max_daily_loss_usd=10.0), equity)
    checker.check(request(cid="s-1"), now_ns=1 * S)
    checker.tracker.add(request(cid="s-1"), now_ns=1 * S)  # working: the next new order is one too many
    assert "max_open_orders" in _refused(checker, request(cid="s-2"), 2 * S)
    checker.tracker.get("s-1").transition(OrderState.CANCELLED, now_ns=3 * S)  # type: ignore[union-attr]
    checker.check(request(cid="s-3"), now_ns=3 * S)  # the second order this minute
    assert "max_orders_per_minute" in _refused(checker, request(cid="s-4"), 4 * S)
    equity[0] = -20.0  # lost 20 today: beyond 10, and a buy reduces nothing
    assert "max_daily_loss_usd" in _refused(checker, request(cid="s-5"), 120 * S)
    checker.halt("drill")
    assert "kill switch" in _refused(checker, request(cid="s-6"), 121 * S)
    assert checker.refusals == {
        "s": {"max_open_orders": 1, "max_orders_per_minute": 1, "max_daily_loss_usd": 1, "kill_switch": 1}
    }
    assert set(checker.refusals["s"]) <= set(CHECKS)


# -- orders final by status and reason, fills, order acknowledgement ------------------------------


def _flow(**limits: Any) -> OrderFlow:
    reg = registry()
    market = MarketState(reg)
    market.on_ticker(ticker(PERP.symbol, index=90_000.0, mark=90_010.0))
    return OrderFlow(reg, market, lambda _: None, strategy_limits={"s": RiskLimits(Limits(**limits))})


def _perp(cid: str) -> OrderRequest:
    return request("buy", "30", "90000", instrument=PERP.symbol, cid=cid)


def _sent(flow: OrderFlow, cid: str, oid: str) -> Order:
    order = flow.accept(_perp(cid), now_ns=1 * S)
    flow.sending(order, 4 * S - 2_000_000)  # 2 ms before the answers below (`update`: 4 s)
    flow.on_update(update(oid, cid, OrderState.OPEN))
    return order


def _finals(flow: OrderFlow) -> dict[tuple[str, FinalReason], int]:
    return dict(flow.finals.get("s", {}))


def test_an_order_filled_is_final_once_with_no_reason_and_its_fills_are_counted() -> None:
    flow = _flow()
    _sent(flow, "s-1", "V1")
    flow.on_fill(fill("t1", "10", "90000", oid="V1"))
    flow.on_fill(fill("t1", "10", "90000", oid="V1"))  # the same trade again: not a fill
    flow.on_fill(fill("t2", "20", "90000", oid="V1"))
    assert flow.fills == {"s": 2}
    assert _finals(flow) == {("filled", "none"): 1}


def test_the_venues_first_answer_times_the_acknowledgement() -> None:
    flow = _flow()
    _sent(flow, "s-1", "V1")
    (hist,) = flow.order_ack.values()
    assert list(flow.order_ack) == ["deribit"]
    assert hist.counts[LATENCY_BUCKETS_S.index(0.0025)] == 1 and hist.count == 1  # 2 ms: le 0.0025
    assert hist.sum == pytest.approx(0.002)
    flow.on_fill(fill("t1", "30", "90000", oid="V1"))  # a later word: no second acknowledgement
    assert hist.count == 1


def test_a_fill_before_any_acknowledgement_is_the_first_answer() -> None:
    flow = _flow()
    order = flow.accept(_perp("s-1"), now_ns=1 * S)
    flow.assign_order_id(order, "V1")
    flow.sending(order, 5 * S - 1_000_000)
    flow.on_fill(fill("t1", "30", "90000", oid="V1"))  # the fill's receipt: 5 s
    assert flow.order_ack["deribit"].count == 1 and flow.order_ack["deribit"].sum == pytest.approx(0.001)
    assert _finals(flow) == {("filled", "none"): 1}


@pytest.mark.parametrize(
    ("code", "message", "reason", "acknowledged"),
    [
        (10009, "not_enough_funds", "venue", True),
        (11054, "post_only_reject", "post_only", True),
        ("unknown_at_venue", None, "state_unknown", False),  # asked about: the venue never had it
        ("not_sent", None, "other", False),  # never left
    ],
)
def test_a_refused_order_is_final_rejected_under_a_bounded_reason(
    code: Any, message: str | None, reason: str, acknowledged: bool
) -> None:
    flow = _flow()
    order = flow.accept(_perp("s-1"), now_ns=1 * S)
    flow.sending(order, 1 * S)
    refusal = OrderRejected("refused: a long venue text", venue="deribit", code=code, venue_message=message)
    flow.venue_rejected(order, refusal, now_ns=1 * S + 500_000)
    assert _finals(flow) == {("rejected", reason): 1}
    assert reason in FINAL_REASONS
    assert sum(h.count for h in flow.order_ack.values()) == (1 if acknowledged else 0)


def test_a_refusal_by_the_pre_trade_checks_is_a_final_order_rejected_for_risk() -> None:
    flow = _flow(max_order_size=Decimal(10))
    with pytest.raises(OrderRejected):
        flow.accept(_perp("s-1"), now_ns=1 * S)
    assert _finals(flow) == {("rejected", "risk"): 1}
    assert flow.risk.refusals == {"s": {"max_order_size": 1}}


@pytest.mark.parametrize("cause", ["user", "shutdown", "kill_switch", "other"])
def test_a_cancel_we_asked_for_is_final_under_who_asked(cause: Any) -> None:
    flow = _flow()
    order = _sent(flow, "s-1", "V1")
    flow.cancel_requested(order, now_ns=5 * S, cause=cause)
    flow.on_update(update("V1", "s-1", OrderState.CANCELLED))
    # A fill reported after the cancel (the trade crossed it): a fill, not a second final order.
    flow.on_fill(fill("t9", "10", "90000", oid="V1"))
    assert _finals(flow) == {("cancelled", cause): 1}
    assert flow.fills == {"s": 1}
    assert not flow._cancel_cause  # let go once final


def test_a_cancel_of_the_venues_own_is_final_for_the_venue_and_post_only_is_told_apart() -> None:
    flow = _flow()
    _sent(flow, "s-1", "V1")
    _sent(flow, "s-2", "V2")
    _sent(flow, "s-3", "V3")
    flow.on_update(replace(update("V1", "s-1", OrderState.CANCELLED), reason="immediate_or_cancel"))
    flow.on_update(replace(update("V2", "s-2", OrderState.CANCELLED), reason="Post-only order would take"))
    flow.on_update(update("V3", "s-3", OrderState.EXPIRED))
    assert _finals(flow) == {("cancelled", "venue"): 1, ("cancelled", "post_only"): 1, ("expired", "none"): 1}


def test_the_venue_overriding_a_final_state_counts_no_second_final_order() -> None:
    flow = _flow()
    _sent(flow, "s-1", "V1")
    flow.on_update(update("V1", "s-1", OrderState.CANCELLED))
    flow.on_update(update("V1", "s-1", OrderState.FILLED, filled="30"), verified=True)  # its word wins
    assert flow.tracker.get("s-1").state is OrderState.FILLED  # type: ignore[union-attr]
    assert _finals(flow) == {("cancelled", "venue"): 1}


# -- tick-to-order -------------------------------------------------------------------------------


class _Venue:
    """An ExecutionClient double that accepts every order at once (each under its own venue id:
    two working orders under one are refused, `OrderTracker.set_order_id`)."""

    venue = "deribit"

    def prepare(self, order: Order) -> str | None:
        return None

    async def place(self, order: Order) -> Sequence[PrivateEvent]:
        r = order.request
        return [
            OrderUpdate(
                venue="deribit",
                instrument=r.instrument,
                ts_exchange=None,
                ts_local=_NOW + 1_000_000,
                order_id=f"V-{r.client_order_id}",
                client_order_id=r.client_order_id,
                status=OrderState.OPEN,
                side=r.side,
                price=r.price,
                size=r.size,
            )
        ]

    async def cancel(self, order: Order) -> Sequence[PrivateEvent]:
        raise AssertionError("not asked")

    async def edit(self, order: Order, *, price: Any, size: Any) -> Sequence[PrivateEvent]:
        raise AssertionError("not asked")


_NOW = 1_000 * S
replace = msgspec.structs.replace


async def test_tick_to_order_counts_from_the_handled_events_receipt_to_the_sender() -> None:
    flow = _flow()
    gw = ExecutionGateway(_Venue(), flow, clock=lambda: _NOW)
    async with trio.open_nursery() as nursery:
        await nursery.start(gw.run)
        await gw.place_order(_perp("s-1"), received_ns=_NOW - 3_000_000)  # an event 3 ms old
        await gw.place_order(_perp("s-2"))  # placed while handling no event: no sample
        await gw.place_order(_perp("s-3"), received_ns=_NOW + 5)  # another clock's time: none
        gw.close()
    hist = gw.tick_to_order
    assert hist.count == 1 and hist.sum == pytest.approx(0.003)
    assert hist.counts[LATENCY_BUCKETS_S.index(0.005)] == 1
    # Each sent order's acknowledgement: the venue's answer 1 ms after it was handed over.
    assert flow.order_ack["deribit"].count == 3 and flow.order_ack["deribit"].sum == pytest.approx(0.003)


class _Seen(Strategy):
    """Records what its slot says it is handling during each event."""

    def __init__(self) -> None:
        super().__init__("seen")
        self.handling: list[int] = []
        self.slot: StrategySlot | None = None

    def required_subscriptions(self) -> list[Any]:
        return []

    async def on_event(self, event: MarketEvent) -> None:
        assert self.slot is not None
        self.handling.append(self.slot.handling_ns)


async def test_a_strategys_slot_says_which_events_receipt_it_is_handling() -> None:
    strategy = _Seen()
    slot = StrategySlot(strategy, Mailbox(16))
    strategy.slot = slot
    slot.mailbox.put(ticker(PERP.symbol, ts=111))
    slot.mailbox.put(ticker(OPTION.symbol, ts=222))  # another instrument's: not conflated
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_strategy, slot)
        await trio.testing.wait_all_tasks_blocked()
        assert strategy.handling == [111, 222]
        assert slot.handling_ns == 0  # waiting for events: an order now answers none
        slot.mailbox.close()


async def test_a_live_strategys_order_carries_the_receipt_of_the_event_it_handles() -> None:
    from tradingd.engine.runtime.live import _LiveContext

    placed: list[int] = []

    class Gateway:
        async def place_order(self, req: OrderRequest, *, received_ns: int = 0) -> Any:
            placed.append(received_ns)

    engine: Any = SimpleNamespace(
        flow=_flow(),
        router=SimpleNamespace(),
        ids=SimpleNamespace(next=lambda strategy: "s-9"),
        log=SimpleNamespace(bind=lambda **kw: None),
        catalogs={},
        book=lambda venue, instrument: None,
        fee_model=lambda venue: None,
        surfaces=None,
        gateways={"deribit": Gateway()},
    )
    slot = StrategySlot(_Seen(), Mailbox(4))
    slot.handling_ns = 123_456
    await _LiveContext(engine, slot).place_order(_perp(""))
    assert placed == [123_456]


# -- requests refused for rate ---------------------------------------------------------------------


async def test_polymarkets_rest_answers_429_are_counted_as_rate_limited() -> None:
    answers = iter([429, 200, 429])
    transport = httpx.MockTransport(lambda r: httpx.Response(next(answers), content=b'{"error":"slow"}'))
    rest = ClobRest("http://clob", client=httpx.AsyncClient(transport=transport))
    for _ in range(3):
        with contextlib.suppress(RateLimited):
            await rest.call("GET", "/book", params={"token_id": "1"})
    assert rest.rate_limited == 2


async def test_polymarkets_rest_requests_without_an_answer_in_time_are_counted_as_timeouts() -> None:
    """As a JSON-RPC venue counts `timeouts` (a request sent, no answer in time): the venue's
    `request_timeouts` (tradingd_venue_request_timeouts_total). Not reaching the venue at all
    (nothing sent) is not a request timeout."""

    def answer(r: httpx.Request) -> httpx.Response:
        path = r.url.path
        if path == "/slow":
            raise httpx.ReadTimeout("slow", request=r)
        if path == "/unreachable":
            raise httpx.ConnectTimeout("unreachable", request=r)
        return httpx.Response(200, content=b"{}")

    session = PolymarketSession(
        PolymarketSettings(),
        registry=InstrumentRegistry(),
        router=MarketRouter(),
        sink=SimpleNamespace(),
        http=httpx.AsyncClient(transport=httpx.MockTransport(answer)),
    )
    for path in ("/slow", "/book", "/unreachable", "/slow"):
        with contextlib.suppress(VenueError):
            await session.rest.call("GET", path)
    assert session.rest.request_timeouts == 2
    session.market.stats.timeouts += 1  # one on the websocket: both are the venue's
    assert session.stats.timeouts == 3  # what status() serves as `request_timeouts`


def test_histogram_buckets_are_prometheus_le_bounds() -> None:
    h = Histogram(SLOW_BUCKETS_S)
    for seconds in (0.0, 0.0001, 0.00010001, 5.0, 6.0):
        h.observe(seconds)
    bounds, counts, total = h.copy()
    assert counts[0] == 2 and counts[1] == 1  # at most 0.0001; just above it
    assert counts[bounds.index(5.0)] == 1 and counts[-1] == 1  # 5 s itself; beyond every bound
    assert total == pytest.approx(11.00020001)
    with pytest.raises(ValueError, match="increase"):
        Histogram((0.1, 0.1))
    with pytest.raises(ValueError, match="positive finite"):
        Histogram((float("nan"),))
