"""The connector against Polymarket's known REST failures, each a switch of the simulator
(simulators/polymarket/venue_faults.py): HTTP 425 while the matching engine restarts, 503 while
trading is disabled or cancel-only, and Cloudflare's HTML 403. Each is taken in the venue's
meaning: reads wait it out with backoff, an order request is never sent again and its fate never
guessed, and a block page is one clear line, never its markup."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
import structlog
import trio

from tradingd.connectors.polymarket.codec import PolymarketDecoder
from tradingd.connectors.polymarket.execution import ClobRest, PolymarketExecution
from tradingd.connectors.polymarket.signing import ApiCredentials, OrderSigner
from tradingd.engine import (
    AuthError,
    OrderRejected,
    OrderRequest,
    OrderState,
    OrderUpdate,
    Side,
    VenueError,
    VenueRejected,
)
from tradingd.engine.model import InstrumentRegistry, Order
from tradingd.simulators.polymarket.simulator import DEMO_ACCOUNT, DEMO_API, PolymarketSimulator

NOW_NS = 1_795_000_000 * 1_000_000_000
FAST = (0.05, 0.1, 0.2)  # the backoff of these tests (the connector's own: 1, 2, 4 s)


@pytest.fixture
def sim() -> PolymarketSimulator:
    return PolymarketSimulator(seed=3, mine_s=0.01, confirm_s=0.01)


def rest_on(sim: PolymarketSimulator, delays: tuple[float, ...] = FAST) -> ClobRest:
    return ClobRest(
        "http://sim",
        api=ApiCredentials(DEMO_API.key, DEMO_API.secret, DEMO_API.passphrase),
        address=OrderSigner(DEMO_ACCOUNT.private_key).address,
        client=httpx.AsyncClient(transport=httpx.ASGITransport(app=sim)),
        retry_delays_s=delays,
    )


def execution_on(sim: PolymarketSimulator) -> PolymarketExecution:
    registry = InstrumentRegistry()
    decoder = PolymarketDecoder(registry)
    decoder.learn_markets([sim.feed._gamma(m) for m in sim.feed.markets])
    signer = OrderSigner(DEMO_ACCOUNT.private_key)
    return PolymarketExecution(rest_on(sim), signer, registry, decoder.outcomes, fill_wait_s=0.0)


def order(token: str, n: int = 1, price: str = "0.05") -> Order:
    request = OrderRequest(
        venue="polymarket",
        instrument=token,
        side=Side.BUY,
        size=Decimal(10),
        price=Decimal(price),
        client_order_id=f"s-f-{n}",
        strategy="s",
    )
    return Order(request, now_ns=NOW_NS)


async def test_an_order_answered_425_is_neither_resent_nor_called_refused(sim: PolymarketSimulator) -> None:
    token = sim.feed.markets[0].yes
    execution = execution_on(sim)
    sim.apply_faults({"too_early": 1})
    with pytest.raises(VenueError) as info:
        await execution.place(order(token))
    # The engine restarting (docs: "HTTP 425 ... on all order-related endpoints"): not a refusal
    # the strategy may act on as "not placed", and not sent again behind the gateway's back.
    assert not isinstance(info.value, OrderRejected)
    assert info.value.code == 425 and "outcome unknown" in str(info.value)
    assert "restarting" in str(info.value)
    assert sim.venue_faults.refused == 1 and execution.rest.requests == 1 and not sim.orders
    # The switch is spent: the next order goes through.
    (update,) = await execution.place(order(token, 2, "0.04"))
    assert isinstance(update, OrderUpdate) and update.status is OrderState.OPEN and len(sim.orders) == 1


async def test_orders_answered_503_are_not_guessed_and_cancel_only_lets_cancels_through(
    sim: PolymarketSimulator,
) -> None:
    token = sim.feed.markets[0].yes
    execution = execution_on(sim)
    resting = order(token, 1)
    (placed,) = await execution.place(resting)
    resting.order_id = placed.order_id
    sim.apply_faults({"trading": "cancel_only"})
    with pytest.raises(VenueError) as info:
        await execution.place(order(token, 2, "0.04"))
    assert not isinstance(info.value, OrderRejected)
    assert info.value.code == 503 and "outcome unknown" in str(info.value)
    assert info.value.venue_message == (
        "Trading is currently cancel-only. New orders are not accepted, but cancels are allowed."
    )
    assert len(sim.orders) == 1  # nothing was placed, and nothing was sent twice
    (cancelled,) = await execution.cancel(resting)
    assert isinstance(cancelled, OrderUpdate) and cancelled.status is OrderState.CANCELLED
    sim.apply_faults({"trading": "disabled"})
    requests = execution.rest.requests
    with pytest.raises(VenueError) as info:
        await execution.place(order(token, 3, "0.03"))
    assert not isinstance(info.value, OrderRejected) and info.value.code == 503
    assert execution.rest.requests == requests + 1  # an order request is never sent again


async def test_reads_wait_out_a_trading_pause_with_backoff(sim: PolymarketSimulator) -> None:
    rest = rest_on(sim)
    sim.apply_faults({"trading": "disabled"})
    answer: list[bytes] = []

    async def read() -> None:
        answer.append(await rest.call("GET", "/data/orders", params={"next_cursor": "MA=="}, auth=True))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        await trio.sleep(0.1)  # the first answers were 503
        assert not answer and sim.venue_faults.refused >= 1
        sim.apply_faults({"trading": "normal"})
    assert answer and b'"data"' in answer[0]
    assert rest.requests >= 2
    # With no time left, the pause is said as it is: the venue's own words, not a guess.
    sim.apply_faults({"trading": "disabled"})
    with pytest.raises(VenueError) as info:
        await rest_on(sim, delays=(0.01,)).call("GET", "/data/orders", auth=True)
    assert info.value.code == 503
    assert info.value.venue_message == "Trading is currently disabled. Check polymarket.com for updates"


async def test_a_cloudflare_block_is_one_clear_line_never_the_page(sim: PolymarketSimulator) -> None:
    token = sim.feed.markets[0].yes
    execution = execution_on(sim)
    sim.apply_faults({"cloudflare": 2})
    with structlog.testing.capture_logs() as logs:
        with pytest.raises(AuthError) as read:
            await execution.rest.call("GET", "/data/orders", auth=True)
        with pytest.raises(VenueRejected) as placed:
            await execution.place(order(token))
    for exc in (read.value, placed.value):
        assert exc.code == 403 and "<" not in str(exc)
        assert "'Attention Required! | Cloudflare'" in str(exc) and "9caa18691bbf0358" in str(exc)
    # Blocked at Cloudflare's edge: the CLOB never saw the order (known not placed), and it was
    # sent once.
    assert not sim.orders and execution.rest.requests == 2
    blocked = [e for e in logs if e["event"] == "rest.blocked"]
    assert [e["request"] for e in blocked] == ["GET /data/orders", "POST /order"]
    assert all(e["page"] == "Attention Required! | Cloudflare" and e["log_level"] == "error" for e in blocked)
