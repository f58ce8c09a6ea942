"""The connector against Polymarket's known REST failures, each a switch of the simulator
(simulators/polymarket/venue_faults.py): HTTP 425 while the matching engine restarts, 503 while
trading is disabled or cancel-only, and Cloudflare's HTML 403. Each is taken in the venue's
meaning: reads wait it out with backoff; an order request is never sent again, and is refused
(known not processed) when the venue says so: 425, a 503 with one of its documented bodies, a
403 block page; an HTML error page past Cloudflare (a 5xx, such as its 524) or an undocumented
503 leaves its outcome unknown. A page is one clear line, never its markup."""

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


async def test_an_order_answered_425_is_refused_not_processed_and_never_resent(
    sim: PolymarketSimulator,
) -> None:
    token = sim.feed.markets[0].yes
    execution = execution_on(sim)
    sim.apply_faults({"too_early": 1})
    with pytest.raises(VenueRejected) as info:
        await execution.place(order(token))
    # The engine restarting (docs.polymarket.com/trading/matching-engine: "HTTP 425 (Too Early) on
    # all order-related endpoints ... Wait and retry"): the request was not processed, so the
    # order is known not placed (a refusal), and the connector does not send it again itself.
    assert info.value.code == "too_early" and info.value.venue_message == "Too Early"
    assert "restarting" in str(info.value) and "outcome unknown" not in str(info.value)
    assert sim.venue_faults.refused == 1 and execution.rest.requests == 1 and not sim.orders
    # The switch is spent: the next order goes through.
    (update,) = await execution.place(order(token, 2, "0.04"))
    assert isinstance(update, OrderUpdate) and update.status is OrderState.OPEN and len(sim.orders) == 1
    # A cancel answered 425 is refused the same way: the order still rests at the venue.
    resting = order(token, 2, "0.04")
    resting.order_id = update.order_id
    sim.apply_faults({"too_early": 1})
    with pytest.raises(VenueRejected) as cancel:
        await execution.cancel(resting)
    assert cancel.value.code == "too_early" and sim.orders[str(update.order_id)].status == "LIVE"


async def test_orders_answered_503_with_documented_bodies_are_refused_and_cancel_only_lets_cancels_through(
    sim: PolymarketSimulator,
) -> None:
    token = sim.feed.markets[0].yes
    execution = execution_on(sim)
    resting = order(token, 1)
    (placed,) = await execution.place(resting)
    resting.order_id = placed.order_id
    sim.apply_faults({"trading": "cancel_only"})
    with pytest.raises(VenueRejected) as info:
        await execution.place(order(token, 2, "0.04"))
    # docs.polymarket.com/resources/error-codes: "New orders are not accepted": known not placed.
    assert info.value.code == "cancel_only" and "outcome unknown" not in str(info.value)
    assert info.value.venue_message == (
        "Trading is currently cancel-only. New orders are not accepted, but cancels are allowed."
    )
    assert len(sim.orders) == 1  # nothing was placed, and nothing was sent twice
    (cancelled,) = await execution.cancel(resting)
    assert isinstance(cancelled, OrderUpdate) and cancelled.status is OrderState.CANCELLED
    again = order(token, 4, "0.02")
    sim.apply_faults({"trading": "normal"})
    (placed_again,) = await execution.place(again)
    again.order_id = placed_again.order_id
    sim.apply_faults({"trading": "disabled"})
    requests, orders = execution.rest.requests, len(sim.orders)
    with pytest.raises(VenueRejected) as info:
        await execution.place(order(token, 3, "0.03"))
    assert info.value.code == "trading_disabled"
    assert info.value.venue_message == "Trading is currently disabled. Check polymarket.com for updates"
    assert execution.rest.requests == requests + 1  # an order request is never sent again
    assert len(sim.orders) == orders
    # "No orders (including cancels) are accepted": the cancel is refused, the order still rests.
    with pytest.raises(VenueRejected) as refused:
        await execution.cancel(again)
    assert refused.value.code == "trading_disabled" and sim.orders[str(again.order_id)].status == "LIVE"


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
    assert all(e["ray_id"] == "9caa18691bbf0358" and "never reached the CLOB" in e["hint"] for e in blocked)
    assert all("blocked before the CLOB" in str(exc) for exc in (read.value, placed.value))


# Cloudflare's page for its 524 ("A timeout occurred": the origin took the request and did not
# answer in time), shortened to its telling parts: the origin did receive the order.
TIMEOUT_PAGE = b"""<!DOCTYPE html>
<html lang="en-US">
<head><title>clob.polymarket.com | 524: A timeout occurred</title></head>
<body><h1>A timeout occurred</h1>
<p>The origin web server timed out responding to this request.</p>
<span>Cloudflare Ray ID: <strong class="font-semibold">8e0f1b2c3d4a5b6c</strong></span>
</body></html>"""


def answering(status: int, body: bytes, content_type: str) -> ClobRest:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"content-type": content_type})

    return ClobRest(
        "http://sim",
        api=ApiCredentials(DEMO_API.key, DEMO_API.secret, DEMO_API.passphrase),
        address=OrderSigner(DEMO_ACCOUNT.private_key).address,
        client=httpx.AsyncClient(transport=httpx.MockTransport(answer)),
        retry_delays_s=FAST,
    )


async def test_a_5xx_html_page_on_an_order_is_an_unknown_outcome_not_a_block() -> None:
    rest = answering(524, TIMEOUT_PAGE, "text/html")
    with structlog.testing.capture_logs() as logs, pytest.raises(VenueError) as info:
        await rest.call("POST", "/order", body=b"{}", auth=True, order=True)
    exc = info.value
    # Past Cloudflare: the origin had the request, so the order may exist. Not a refusal.
    assert not isinstance(exc, OrderRejected) and exc.code == 524
    assert "outcome unknown" in str(exc) and "blocked" not in str(exc) and "never reached" not in str(exc)
    assert "'clob.polymarket.com | 524: A timeout occurred'" in str(exc) and "8e0f1b2c3d4a5b6c" in str(exc)
    assert "<" not in str(exc) and rest.requests == 1
    assert not [e for e in logs if e["event"] == "rest.blocked"]
    (line,) = [e for e in logs if e["event"] == "rest.html_page"]
    assert (
        line["page"] == "clob.polymarket.com | 524: A timeout occurred"
        and line["ray_id"] == "8e0f1b2c3d4a5b6c"
    )
    assert line["status"] == 524 and not any("<" in str(v) for v in line.values())


async def test_a_503_without_a_documented_body_on_an_order_stays_an_unknown_outcome() -> None:
    for body, content_type in (
        (b'{"error":"upstream connect error"}', "application/json"),
        (b"<html><head><title>503 Service Temporarily Unavailable</title></head></html>", "text/html"),
    ):
        rest = answering(503, body, content_type)
        with pytest.raises(VenueError) as info:
            await rest.call("POST", "/order", body=b"{}", auth=True, order=True)
        assert not isinstance(info.value, OrderRejected) and info.value.code == 503
        assert "outcome unknown" in str(info.value) and rest.requests == 1
