"""Polymarket's fee schedules (issue 13 review): learned when the session loads a market, never
on the order path; an order in a market whose schedule is unknown is refused; a fill of such a
market is booked at the fee learned on demand, or, when the venue cannot say, flagged and
alerted, never at a guessed rate; the simulator's `GET /fee-rate` answers as the venue does."""

from __future__ import annotations

import functools
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import structlog
import trio

from tests.support.live_support import Probe, until
from tests.support.polymarket_live import API, V, start
from tests.support.sessions import venue_session
from tradingd.connectors.polymarket.codec import PolymarketDecoder
from tradingd.connectors.polymarket.execution import ClobRest, PolymarketExecution, trade_tokens
from tradingd.connectors.polymarket.fees import taker_fee
from tradingd.connectors.polymarket.instruments import (
    COLLATERAL,
    SIZE_STEP,
    FeeSchedule,
    Outcome,
    instruments_from_gamma_market,
)
from tradingd.connectors.polymarket.settings import PolymarketSettings
from tradingd.connectors.polymarket.signing import Credentials, OrderSigner
from tradingd.connectors.polymarket.stream import PolymarketSession
from tradingd.engine import (
    BookUpdate,
    Fill,
    Instrument,
    InstrumentKind,
    Liquidity,
    OrderDenied,
    OrderRequest,
    OrderState,
    OrderUpdate,
    Side,
    Subscription,
)
from tradingd.engine.model import InstrumentRegistry, Order
from tradingd.engine.runtime.router import MarketRouter
from tradingd.engine.sim.server import Receive, Scope, Send
from tradingd.simulators.polymarket.simulator import DEMO_ACCOUNT, PolymarketSimulator, serve

FIXTURES = Path(__file__).parent.parent.parent / "fixtures" / "polymarket"
NOW_NS = 1_795_000_000 * 1_000_000_000
SLOW_S = 1.0  # how long the venue takes to answer `GET /clob-markets` in the slow simulator


class SlowFeeSchedules(PolymarketSimulator):
    """The simulator, answering `GET /clob-markets/{id}` only after `SLOW_S` (a slow venue, or
    a retried request), and remembering when each was asked."""

    def __init__(self, delay_s: float = SLOW_S, **kw: Any) -> None:
        super().__init__(**kw)
        self.delay_s = delay_s
        self.fee_requests: list[float] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith("/clob-markets/"):
            self.fee_requests.append(trio.current_time())
            await trio.sleep(self.delay_s)
        await super().__call__(scope, receive, send)


class _Sink:
    async def market(self, events: list[Any]) -> None:
        return None

    def private(self, events: list[Any]) -> None:
        return None


def floor5(d: Decimal) -> Decimal:
    return d.quantize(Decimal("0.00001"), rounding=ROUND_DOWN)


def rate_of(sim: PolymarketSimulator, i: int) -> Decimal:
    """The rate the venue publishes for market `i` (Gamma `feeSchedule`), 0 without fees."""
    schedule = sim.feed._gamma(sim.feed.markets[i]).get("feeSchedule")
    return Decimal(repr(schedule["rate"])) if schedule else Decimal(0)


def order(token: str, side: str = "buy", size: str = "10", price: str = "0.05", n: int = 1) -> Order:
    request = OrderRequest(
        venue=V,
        instrument=token,
        side=Side(side),
        size=Decimal(size),
        price=Decimal(price),
        client_order_id=f"s-t-{n}",
        strategy="s",
    )
    return Order(request, now_ns=NOW_NS)


# -- item 1: learned when the market loads; a cancel never waits for it ------------------------


async def test_a_first_order_asks_no_fee_schedule_and_the_cancel_behind_it_is_not_delayed(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """The session learns each market's fee schedule while it loads the market (the CLOB
    `/markets` object has none), before READY: the first order of a market sends no `GET
    /clob-markets`, so a cancel queued behind it in the gateway waits for one `POST /order`,
    not for a slow fee-schedule request (here `SLOW_S`)."""
    simulator = SlowFeeSchedules(seed=5, step_s=0.05, mine_s=0.1, confirm_s=0.1)
    binds = await nursery.start(functools.partial(serve, simulator))
    base = binds[0].removeprefix("http://")
    x, y = simulator.feed.markets[0].yes, simulator.feed.markets[1].yes
    probe = Probe("p", [Subscription(V, x), Subscription(V, y)])
    engine = await start(nursery, base, probe, cache=tmp_path / "catalog.jsonl", ready_within=15)
    await until(lambda: bool(probe.of(BookUpdate, x)) and bool(probe.of(BookUpdate, y)))
    outcomes = venue_session(engine, V, PolymarketSession).outcomes
    known_at_ready = {token: outcomes.get(token) for token in (x, y)}
    resting = await probe.ctx.buy(V, y, 10, price="0.05")
    assert resting.status is OrderState.OPEN
    asked = len(simulator.fee_requests)
    took: dict[str, float] = {}

    async def first_order_of_x() -> None:
        t0 = trio.current_time()
        await probe.ctx.buy(V, x, 10, price="0.05")
        took["place"] = trio.current_time() - t0

    async def cancel_behind_it() -> None:
        await trio.sleep(0.01)  # the order of x is with the venue (the gateway's one request)
        t0 = trio.current_time()
        cancelled = await probe.ctx.cancel_order(resting.client_order_id or "")
        took["cancel"] = trio.current_time() - t0
        assert cancelled.status is OrderState.CANCELLED

    async with trio.open_nursery() as both:
        both.start_soon(first_order_of_x)
        both.start_soon(cancel_behind_it)
    assert took["cancel"] < SLOW_S / 2 and took["place"] < SLOW_S / 2, took
    assert len(simulator.fee_requests) == asked  # nothing asked on the order path
    # Known at READY, for both markets, from the venue's `fd`.
    for token, i in ((x, 0), (y, 1)):
        known = known_at_ready[token]
        assert known is not None and known.fees is not None and known.fees.rate == rate_of(simulator, i)


async def test_the_session_asks_the_fee_schedules_of_the_markets_it_loads_concurrently() -> None:
    """`load_markets` asks `GET /clob-markets` of every market it is given whose schedule is not
    known, at once (not one after the other), and once known never again."""
    simulator = SlowFeeSchedules(seed=3, mine_s=0.01, confirm_s=0.01)
    session = PolymarketSession(
        PolymarketSettings(),
        registry=InstrumentRegistry(),
        router=MarketRouter(),
        sink=_Sink(),
        http=httpx.AsyncClient(transport=httpx.ASGITransport(app=simulator)),
    )
    session.rest.base_url = "http://sim"
    cids = [m.condition_id for m in simulator.feed.markets[:4]]
    t0 = trio.current_time()
    assert await session.load_markets(cids, session.market) == 4
    assert trio.current_time() - t0 < 2 * SLOW_S  # four slow answers, awaited together
    for i, m in enumerate(simulator.feed.markets[:4]):
        for token in (m.yes, m.no):
            known = session.outcomes.get(token)
            assert known is not None and known.fees is not None and known.fees.rate == rate_of(simulator, i)
            inst = session.registry.require(V, token)
            assert inst.taker_fee == rate_of(simulator, i)
    asked = len(simulator.fee_requests)
    assert asked == 4
    await session.load_markets(cids, session.market)
    assert len(simulator.fee_requests) == asked


# -- item 2: never book a guessed fee -------------------------------------------------------


async def test_an_order_in_a_market_whose_fee_schedule_is_unknown_is_refused_and_nothing_sent() -> None:
    """Its fills could not be booked at the venue's fee: refused on our side (`OrderDenied`,
    code "fees_unknown"), in `prepare` and in `place`, without asking the venue anything on
    the order path (no `GET /clob-markets`, no `POST /order`)."""
    simulator = PolymarketSimulator(seed=3, mine_s=0.01, confirm_s=0.01)
    market = simulator.feed.markets[0]
    registry = InstrumentRegistry()
    decoder = PolymarketDecoder(registry)
    decoder.learn_markets([simulator.clob_market(market.condition_id)])  # no fee schedule in it
    signer = OrderSigner(DEMO_ACCOUNT.private_key)
    rest = ClobRest(
        "http://sim",
        api=API,
        address=signer.address,
        client=httpx.AsyncClient(transport=httpx.ASGITransport(app=simulator)),
    )
    ex = PolymarketExecution(rest, signer, registry, decoder.outcomes, fill_wait_s=0.0)
    o = order(market.yes)
    with pytest.raises(OrderDenied) as prepared:
        ex.prepare(o)
    with pytest.raises(OrderDenied) as placed:
        await ex.place(o)
    for info in (prepared, placed):
        assert info.value.code == "fees_unknown" and "fee schedule" in info.value.reason
    assert simulator.requests_for("POST /order") == 0
    assert rest.requests == 0


def _trade_frame(token: str, market: str, *, price: str, size: str, bps: str, id: str = "t-1") -> bytes:
    msg = orjson.loads((FIXTURES / "ws_user_trade_msg.json").read_bytes())
    msg.update(
        asset_id=token, market=market, price=price, size=size, fee_rate_bps=bps, status="MATCHED", id=id
    )
    return orjson.dumps(msg)


def test_a_fill_whose_fee_schedule_is_unknown_is_flagged_never_charged_a_trades_fee_rate_bps() -> None:
    """A trade's `fee_rate_bps` is no rate (V2 trade records read "0" while a fee is charged;
    `GET /fee-rate` says 1000 for every fee-bearing market: py-clob-client-v2 #107, #110): a
    fill whose market's schedule is unknown is booked (its shares moved) with no fee, and
    flagged for the session's alert, rather than charged 10% from "1000"."""
    decoder = PolymarketDecoder(InstrumentRegistry())
    token = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
    frame = _trade_frame(token, "0xdd22", price="0.5", size="25", bps="1000")
    fill = next(e for e in decoder.decode(frame, NOW_NS) if isinstance(e, Fill))
    assert (fill.size, fill.fee, fill.liquidity) == (Decimal(25), Decimal(0), Liquidity.TAKER)
    assert decoder.unknown_fee_fills == 1
    (flagged,) = decoder.take_unknown_fees()
    assert flagged.trade_id == "t-1" and decoder.take_unknown_fees() == []
    # Reported again (MINED): no second fill, no second flag.
    mined = orjson.loads(frame)
    mined["status"] = "MINED"
    assert not [e for e in decoder.decode(orjson.dumps(mined), NOW_NS) if isinstance(e, Fill)]
    assert decoder.unknown_fee_fills == 1


async def test_a_fill_in_a_market_not_learned_yet_is_booked_at_the_fee_learned_on_demand() -> None:
    """A fill of a market the session never loaded (an order of a previous run, of another
    client on the account) reaches the user channel: the session asks that market's schedule
    before decoding it, and books the venue's fee. When the venue cannot say, the fill is
    booked with no fee and alerted at critical level, naming it."""
    simulator = PolymarketSimulator(seed=3, mine_s=0.01, confirm_s=0.01)
    session = PolymarketSession(
        PolymarketSettings(),
        registry=InstrumentRegistry(),
        router=MarketRouter(),
        sink=_Sink(),
        http=httpx.AsyncClient(transport=httpx.ASGITransport(app=simulator)),
    )
    session.rest.base_url = "http://sim"
    market = simulator.feed.markets[0]
    rate = rate_of(simulator, 0)
    assert rate > 0
    frame = _trade_frame(market.yes, market.condition_id, price="0.4", size="10", bps="0")
    await session.learn_fees_of_trades(frame)
    fill = next(e for e in session.decoder.decode(frame, NOW_NS) if isinstance(e, Fill))
    assert fill.fee == floor5(10 * rate * Decimal("0.4") * Decimal("0.6")) > 0
    assert session.decoder.unknown_fee_fills == 0
    # A market the venue does not know (`GET /clob-markets` answers 404): flagged and alerted.
    stranger = "12345678901234567890"
    lost = _trade_frame(stranger, "0x" + "ab" * 32, price="0.4", size="10", bps="1000", id="t-2")
    await session.learn_fees_of_trades(lost)
    fill = next(e for e in session.decoder.decode(lost, NOW_NS) if isinstance(e, Fill))
    assert fill.fee == 0 and session.decoder.unknown_fee_fills == 1
    with structlog.testing.capture_logs() as logs:
        session.alert_unknown_fees()
    (alert,) = [e for e in logs if e["event"] == "fees.unknown_fill"]
    assert (alert["log_level"], alert["instrument"], alert["trade_id"]) == ("critical", stranger, "t-2")


# -- item 3: the simulator's GET /fee-rate ----------------------------------------------------


async def test_the_simulators_fee_rate_answers_1000_for_every_fee_bearing_market() -> None:
    """The venue's `GET /fee-rate` answers `base_fee: 1000` for every fee-bearing market
    whatever its rate (0.04, 0.05, 0.07 alike), 0 for a market without fees: the V1 signed fee
    authorization, not the rate (py-clob-client-v2 #107; the maintainers' PR #110)."""
    simulator = PolymarketSimulator(seed=3, mine_s=0.01, confirm_s=0.01)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=simulator), base_url="http://sim") as c:
        answers = {}
        for i, m in enumerate(simulator.feed.markets):
            r = await c.get("/fee-rate", params={"token_id": m.yes})
            assert r.status_code == 200
            answers[rate_of(simulator, i)] = r.json()["base_fee"]
    assert answers[Decimal(0)] == 0
    charged = {rate: fee for rate, fee in answers.items() if rate > 0}
    assert charged and set(charged.values()) == {1000}


class FeeSchedulesDownAtFirst(PolymarketSimulator):
    """The simulator, answering `GET /clob-markets/{id}` 503 the first `failures` times."""

    def __init__(self, failures: int, **kw: Any) -> None:
        super().__init__(**kw)
        self.failures = failures

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and str(scope.get("path", "")).startswith("/clob-markets/")
            and self.failures > 0
        ):
            self.failures -= 1
            await receive()
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b'{"error": "unavailable"}'})
            return
        await super().__call__(scope, receive, send)


async def test_a_schedule_the_venue_could_not_say_is_asked_again_until_known(
    nursery: trio.Nursery, autojump_clock: trio.abc.Clock
) -> None:
    """`GET /clob-markets` failed when the market loaded: its orders are refused meanwhile,
    and the session asks again (every 30 s) until the venue answers."""
    # Down for the first answer and the three times a read answered 503 is asked again
    # (`ClobRest.retry_delays_s`): the load itself could not learn it.
    simulator = FeeSchedulesDownAtFirst(4, seed=3, mine_s=0.01, confirm_s=0.01)
    session = PolymarketSession(
        PolymarketSettings(),
        registry=InstrumentRegistry(),
        router=MarketRouter(),
        sink=_Sink(),
        http=httpx.AsyncClient(transport=httpx.ASGITransport(app=simulator)),
    )
    market = simulator.feed.markets[0]
    await session.load_markets([market.condition_id], session.market)
    known = session.outcomes.get(market.yes)
    assert known is not None and known.fees is None
    nursery.start_soon(session._retry_fees)
    await until(lambda: (o := session.outcomes.get(market.yes)) is not None and o.fees is not None, 60)
    learned = session.outcomes.get(market.yes)
    assert learned is not None and learned.fees is not None and learned.fees.rate == rate_of(simulator, 0)


# -- on-demand learning is bounded; a refused order's market is learned -----------------------


class _Recorder(_Sink):
    """A sink remembering when each private event reached it."""

    def __init__(self) -> None:
        self.private_at: list[tuple[float, Any]] = []

    def private(self, events: list[Any]) -> None:
        self.private_at.extend((trio.current_time(), e) for e in events)


def _trading_session(simulator: PolymarketSimulator, sink: _Sink) -> PolymarketSession:
    session = PolymarketSession(
        PolymarketSettings(),
        registry=InstrumentRegistry(),
        router=MarketRouter(),
        sink=sink,
        credentials=Credentials(DEMO_ACCOUNT.private_key, api=API),
        http=httpx.AsyncClient(transport=httpx.ASGITransport(app=simulator)),
    )
    session.rest.base_url = "http://sim"
    return session


async def test_a_slow_fee_schedule_does_not_hold_the_user_channels_reports(
    autojump_clock: trio.abc.Clock,
) -> None:
    """`GET /clob-markets` answers after 60 s: a trade of a market not learned yet waits for it
    at most ~2 s, then is booked with its fee flagged unknown (alerted); the cancel report
    behind it is delivered within 3 s, and a later trade of that market does not wait again
    (the market is left to the background retry)."""
    simulator = SlowFeeSchedules(60.0, seed=3, mine_s=0.01, confirm_s=0.01)
    sink = _Recorder()
    session = _trading_session(simulator, sink)
    assert session.user is not None
    market = simulator.feed.markets[0]
    trade = _trade_frame(market.yes, market.condition_id, price="0.4", size="10", bps="0")
    cancel = (FIXTURES / "ws_user_order_cancellation.json").read_bytes()
    t0 = trio.current_time()
    with structlog.testing.capture_logs() as logs:
        await session.user._handle(trade, NOW_NS)
        await session.user._handle(cancel, NOW_NS)
    (cancelled_at,) = [t for t, e in sink.private_at if isinstance(e, OrderUpdate)]
    assert cancelled_at - t0 < 3.0
    fills = [e for _, e in sink.private_at if isinstance(e, Fill)]
    assert len(fills) == 1 and fills[0].fee == 0 and session.decoder.unknown_fee_fills == 1
    assert [e for e in logs if e["event"] == "fees.unknown_fill" and e["log_level"] == "critical"]
    asked = len(simulator.fee_requests)
    t1 = trio.current_time()
    again = _trade_frame(market.yes, market.condition_id, price="0.4", size="5", bps="0", id="t-2")
    await session.user._handle(again, NOW_NS)
    assert trio.current_time() - t1 < 0.5 and len(simulator.fee_requests) == asked


async def test_a_refused_orders_market_is_learned_in_the_background_then_accepted(
    nursery: trio.Nursery,
) -> None:
    """A token the registry knows whose market no subscription loads (restored from the
    journal, exited in `on_start`): its first order is refused `fees_unknown`, and the refusal
    has the session learn its schedule at once (not at the next 30 s retry, which only knew
    the markets it had loaded): the next order is accepted. So are the tokens of positions the
    reconciliation asks the balance of."""
    simulator = PolymarketSimulator(seed=3, mine_s=0.01, confirm_s=0.01)
    session = _trading_session(simulator, _Sink())
    x, y = simulator.feed.markets[0], simulator.feed.markets[1]
    session.decoder.learn_markets([simulator.clob_market(m.condition_id) for m in (x, y)])  # no fees
    nursery.start_soon(session._retry_fees)
    ex = session.execution()
    with pytest.raises(OrderDenied) as refused:
        await ex.place(order(x.yes))
    assert refused.value.code == "fees_unknown"
    await until(lambda: (o := session.outcomes.get(x.yes)) is not None and o.fees is not None, 5)
    events = await ex.place(order(x.yes, n=2))
    assert events and simulator.requests_for("POST /order") == 1
    # A position's token, asked at reconciliation: learned too.
    await ex.venue_positions([y.yes])
    await until(lambda: (o := session.outcomes.get(y.yes)) is not None and o.fees is not None, 5)


def test_an_order_report_is_no_trade_to_learn_the_fees_of() -> None:
    """An order report without `event_type` (as the user channel's captures have it, its
    `associate_trades` naming trades) is no trade: its market's schedule is not asked before
    it is decoded; the trades of a frame or of a `GET /data/trades` page are."""
    for name in ("ws_user_order_cancellation.json", "ws_user_order_update.json", "ws_user_order_msg.json"):
        assert trade_tokens((FIXTURES / name).read_bytes()) == {}, name
    trade = orjson.loads((FIXTURES / "ws_user_trade.json").read_bytes())
    assert trade_tokens(orjson.dumps(trade)) == {
        leg["asset_id"]: trade["market"] for leg in [trade, *trade["maker_orders"]]
    }
    page = orjson.loads((FIXTURES / "http_trades_page.json").read_bytes())
    assert set(trade_tokens(orjson.dumps(page))) == {t["asset_id"] for t in page["data"]} | {
        m["asset_id"] for t in page["data"] for m in t["maker_orders"]
    }


def test_a_fee_from_the_instruments_rate_uses_its_markets_exponent_or_is_unknown() -> None:
    """A token whose own schedule is not known but whose instrument carries the rate (the
    instrument has no exponent): the fee takes the exponent of its market's schedule (the
    other token's, learned), never an assumed 1; with no schedule of its market known, a
    non-zero rate's fee is unknown (flagged), not guessed."""
    registry = InstrumentRegistry()
    decoder = PolymarketDecoder(registry)
    token, sibling, market = "1111", "2222", "0x" + "cd" * 32
    lone, lone_market = "3333", "0x" + "ef" * 32
    for symbol, cid in ((token, market), (lone, lone_market)):
        registry.add(
            Instrument(
                venue=V,
                symbol=symbol,
                kind=InstrumentKind.OUTCOME,
                base=cid,
                quote=COLLATERAL,
                settle=COLLATERAL,
                tick_size=Decimal("0.01"),
                min_size=Decimal(5),
                size_step=SIZE_STEP,
                contract_size=Decimal(1),
                maker_fee=Decimal(0),
                taker_fee=Decimal("0.25"),
            )
        )
    decoder.outcomes.add(Outcome(sibling, market, fees=FeeSchedule(rate="0.25", exponent=2)))
    frame = _trade_frame(token, market, price="0.4", size="100", bps="0")
    fill = next(e for e in decoder.decode(frame, NOW_NS) if isinstance(e, Fill))
    assert fill.liquidity is Liquidity.TAKER
    assert fill.fee == taker_fee(Decimal(100), Decimal("0.4"), Decimal("0.25"), Decimal(2))
    assert fill.fee == floor5(100 * Decimal("0.25") * (Decimal("0.4") * Decimal("0.6")) ** 2)
    assert decoder.unknown_fee_fills == 0
    frame = _trade_frame(lone, lone_market, price="0.4", size="100", bps="0", id="t-2")
    fill = next(e for e in decoder.decode(frame, NOW_NS) if isinstance(e, Fill))
    assert fill.fee == 0 and decoder.unknown_fee_fills == 1


# -- a fee schedule the venue cannot mean (round 13, hostile venue) ----------------------------

ABSURD_SCHEDULES = [
    pytest.param({"r": "1e30", "e": 1}, id="rate huge"),  # InvalidOperation: every fill a decoder fault
    pytest.param({"r": "1e999999999", "e": 1}, id="rate overflows"),  # decimal.Overflow, the same
    pytest.param({"r": 0.03, "e": "-1e9"}, id="exponent overflows"),
    pytest.param({"r": -0.5, "e": 1}, id="rate negative"),  # a fee of -1.2: the venue paying us
    pytest.param({"r": 0.03, "e": -3}, id="exponent negative"),  # 21.7 on a 4 pUSD trade
    pytest.param({"r": 0.03, "e": "1e999999999"}, id="exponent huge"),
]


async def _fill_after_schedule(fd: dict[str, Any]) -> tuple[PolymarketSession, Fill]:
    """A session whose venue answers `GET /clob-markets/{id}` with `fd`, and the fill of one of
    our trades in that market it decodes after learning its fees on demand."""
    token, market = "12345678901234567890", "0x" + "ab" * 32

    def venue(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"t": [{"t": token}], "fd": fd})

    session = PolymarketSession(
        PolymarketSettings(),
        registry=InstrumentRegistry(),
        router=MarketRouter(),
        sink=_Sink(),
        http=httpx.AsyncClient(transport=httpx.MockTransport(venue)),
    )
    session.rest.base_url = "http://venue"
    frame = _trade_frame(token, market, price="0.4", size="10", bps="0")
    await session.learn_fees_of_trades(frame)
    (fill,) = [e for e in session.decoder.decode(frame, NOW_NS) if isinstance(e, Fill)]
    return session, fill


@pytest.mark.parametrize("fd", ABSURD_SCHEDULES)
async def test_a_fee_schedule_the_venue_cannot_mean_is_unknown_and_its_fills_still_booked(
    fd: dict[str, Any],
) -> None:
    """An absurd schedule from `GET /clob-markets` was learned as given: a huge rate or exponent
    made every fill of the market raise in the fee's arithmetic (a decoder fault: the fill, a real
    trade, never booked, and every book dropped), a negative one booked a fee the venue pays us
    or one larger than the trade. It is refused (`fees.unknown`): the fill is booked, its fee
    flagged unknown and alerted, as when the venue does not answer."""
    session, fill = await _fill_after_schedule(fd)
    assert (fill.size, fill.fee) == (Decimal(10), Decimal(0))
    assert session.decoder.unknown_fee_fills == 1 and session.decoder.stats.malformed == 0
    assert session.outcomes.get("12345678901234567890") is None


async def test_a_schedule_within_what_the_venue_publishes_is_learned() -> None:
    session, fill = await _fill_after_schedule({"r": 0.07, "e": 2})
    assert fill.fee == floor5(10 * Decimal("0.07") * (Decimal("0.4") * Decimal("0.6")) ** 2)
    assert session.decoder.unknown_fee_fills == 0


@pytest.mark.parametrize(
    "fields", [{"rate": -1}, {"rate": 2}, {"rate": 0, "exponent": -1}, {"rate": 0, "rebate_rate": 5}]
)
def test_a_fee_schedule_out_of_range_is_no_schedule(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="fee schedule"):
        FeeSchedule(**fields)


@pytest.mark.parametrize(
    "schedule",
    [{"rate": 1.5}, {"rate": 0.03, "exponent": -3}, {"rate": 0.03, "rebateRate": 7}, {"exponent": 1}],
    ids=["rate", "exponent", "rebate", "no rate"],
)
def test_a_gamma_market_whose_fee_schedule_the_venue_cannot_mean_is_learned_with_fees_unknown(
    schedule: dict[str, Any],
) -> None:
    """A real Gamma market (tests/fixtures/polymarket/gamma_market_sports_market_money_line.json)
    with its `feeSchedule` made absurd: the schedule's refusal escaped `_fee_schedule`, so the
    whole market was skipped as a refused definition (its tokens never learned, no reason said),
    where `/clob-markets` makes the same schedule unknown. Its tokens are learned, fees unknown."""
    market = orjson.loads((FIXTURES / "gamma_market_sports_market_money_line.json").read_bytes())
    good = instruments_from_gamma_market(market)
    assert good and all(outcome.fees is not None for _, outcome in good)
    bad = instruments_from_gamma_market({**market, "feeSchedule": schedule})
    assert [inst.symbol for inst, _ in bad] == [inst.symbol for inst, _ in good]
    assert all(outcome.fees is None for _, outcome in bad)


@pytest.mark.parametrize("market", ["0x\n", "0x" + "ab" * 40_000], ids=["control character", "too long"])
async def test_a_trade_naming_a_market_id_that_makes_no_url_is_still_booked_and_kills_no_task(
    market: str,
) -> None:
    """The session learns the fee schedule of a trade's market before decoding it, by the market
    id the trade names. One that makes no URL made httpx raise `InvalidURL` out of
    `learn_fees_of_trades`: the user channel's frame failed before its decode (the fill, a real
    trade, never booked), the catch-up's follower task died with it, and the id, kept for the
    background retries, ended `PolymarketSession.run` at the next one. Now nothing is sent, the
    fees are unknown (the fill booked with no fee, flagged), and a retry raises nothing."""
    token = "12345678901234567890"
    asked: list[httpx.URL] = []

    def venue(request: httpx.Request) -> httpx.Response:
        asked.append(request.url)
        return httpx.Response(404, json={"error": "not found"})

    session = PolymarketSession(
        PolymarketSettings(),
        registry=InstrumentRegistry(),
        router=MarketRouter(),
        sink=_Sink(),
        http=httpx.AsyncClient(transport=httpx.MockTransport(venue)),
    )
    session.rest.base_url = "http://venue"
    frame = _trade_frame(token, market, price="0.4", size="10", bps="0")
    await session.learn_fees_of_trades(frame)
    (fill,) = [e for e in session.decoder.decode(frame, NOW_NS) if isinstance(e, Fill)]
    assert (fill.size, fill.fee, session.decoder.unknown_fee_fills) == (Decimal(10), Decimal(0), 1)
    assert await session.learn_fees(list(session._fee_markets)) == 0  # what `_retry_fees` runs
    assert all(url.path.startswith("/clob-markets/") and "\n" not in str(url) for url in asked)
