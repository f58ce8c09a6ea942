"""CrossVenue against fakes: a context that fills what it is sent, a catalog of price markets,
and a flat volatility surface, whose probabilities are the closed-form digital
N(d2) = N((ln(F/K) - s^2 t / 2) / (s sqrt t)) and whose delta is phi(d2) / (F s sqrt t): the
witnesses every decision below is checked against (never the strategy's own arithmetic)."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Sequence
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any, cast

import attrs
import pytest
import structlog
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from tradingd.engine import (
    YEAR_SECONDS,
    BookUpdate,
    CatalogMarket,
    Instrument,
    InstrumentKind,
    Liquidity,
    MarketCatalog,
    OrderRequest,
    OrderState,
    OrderUpdate,
    OutcomeToken,
    PriceCondition,
    PriceMarket,
    Status,
    StatusKind,
    StrategyContext,
    StrategyError,
    Subscription,
    Ticker,
    Unrecognized,
)
from tradingd.engine.surface import OutsideSurface, SliceFit, SviParams, VolSurface
from tradingd.strategies.cross_venue import CrossVenue, CrossVenueParams

S = 1_000_000_000
T0 = 1_780_000_000 * S  # "now" at the start of each test
DAY = 86_400 * S
FORWARD = 100_000.0
SIGMA = 0.6
EXPIRY = T0 + 30 * DAY  # the surface's only slice
RATE = Decimal("0.03")  # the markets' taker fee rate (Polymarket: size x rate x p(1-p))


# -- witnesses -------------------------------------------------------------------------------


def _ncdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def digital(strike: float, resolves_ns: int, now_ns: int) -> float:
    """P(S_T > K) on the flat surface: N(d2)."""
    t = (resolves_ns - now_ns) / 1e9 / YEAR_SECONDS
    s = SIGMA * math.sqrt(t)
    return _ncdf((math.log(FORWARD / strike) - s * s / 2) / s)


def digital_delta(strike: float, resolves_ns: int, now_ns: int) -> float:
    """dN(d2)/dF = phi(d2) / (F s sqrt t)."""
    t = (resolves_ns - now_ns) / 1e9 / YEAR_SECONDS
    s = SIGMA * math.sqrt(t)
    d2 = (math.log(FORWARD / strike) - s * s / 2) / s
    return math.exp(-d2 * d2 / 2) / math.sqrt(2 * math.pi) / (FORWARD * s)


def fee_per_share(price: Decimal, size: Decimal) -> float:
    """Polymarket's taker fee (docs.polymarket.com/trading/fees), floored to 0.00001, per share."""
    fee = (size * RATE * price * (1 - price)).quantize(Decimal("0.00001"), rounding=ROUND_DOWN)
    return float(fee / size)


def flat_surface(as_of_ns: int = T0, expiry_ns: int = EXPIRY) -> VolSurface:
    t = (expiry_ns - as_of_ns) / 1e9 / YEAR_SECONDS
    params = SviParams(a=SIGMA * SIGMA * t, b=0.0, rho=0.0, m=0.0, sigma=0.1)
    fit = SliceFit(
        expiry_ns=expiry_ns, t_years=t, forward=FORWARD, params=params, quotes=9, dropped=0,
        rmse_iv=0.0, max_abs_err_iv=0.0, residuals=(), butterfly_min_g=1.0, butterfly_ok=True, lee_ok=True,
    )  # fmt: skip
    return VolSurface(
        venue="deribit", underlying="BTC", as_of_ns=as_of_ns, slices=(fit,), calendar_ok=True,
        calendar_violations=(), skipped=(),
    )  # fmt: skip


# -- fakes -------------------------------------------------------------------------------------


def catalog_market(name: str, *, tradable: bool = True) -> CatalogMarket:
    return CatalogMarket(
        venue="polymarket", slug=name, question=f"Will the price of Bitcoin be above {name}?",
        condition_id=f"0x{name}",
        tokens=(OutcomeToken("Yes", f"{name}-yes"), OutcomeToken("No", f"{name}-no")),
        active=True, closed=not tradable, end_date=dt.datetime(2026, 6, 1, tzinfo=dt.UTC),
    )  # fmt: skip


def above(name: str, strike: float, resolves_ns: int = T0 + 10 * DAY, **kw: Any) -> PriceMarket:
    m = catalog_market(name, **kw)
    return PriceMarket(
        market=m, underlying="BTC", condition=PriceCondition.ABOVE, low=Decimal(str(strike)), high=None,
        resolves_at_ns=resolves_ns, source="binance BTC/USDT 1m close", yes_token=f"{name}-yes",
        no_token=f"{name}-no",
    )  # fmt: skip


class FakeCatalog:
    venue = "polymarket"

    def __init__(self, found: Sequence[PriceMarket], unread: Sequence[Unrecognized] = ()) -> None:
        self.found = list(found)
        self.unread = list(unread)
        self.generation = 1
        self.asked: list[str | None] = []
        self.asked_async = 0

    def price_markets(self, underlying: str | None = None) -> tuple[list[Any], list[Any]]:
        self.asked.append(underlying)
        return list(self.found), list(self.unread)

    async def price_markets_async(self, underlying: str | None = None) -> tuple[list[Any], list[Any]]:
        self.asked_async += 1
        return self.price_markets(underlying)

    def replace(self, found: Sequence[PriceMarket]) -> None:
        self.found = list(found)
        self.generation += 1


def token_instrument(symbol: str) -> Instrument:
    return Instrument(
        venue="polymarket", symbol=symbol, kind=InstrumentKind.OUTCOME, base="0xc", quote="pUSD",
        settle="pUSD", tick_size=Decimal("0.01"), min_size=Decimal(5), size_step=Decimal("0.01"),
        taker_fee=RATE, maker_fee=Decimal(0),
    )  # fmt: skip


PERP = Instrument(
    venue="deribit", symbol="BTC-PERPETUAL", kind=InstrumentKind.PERPETUAL, base="BTC", quote="USD",
    settle="BTC", tick_size=Decimal("0.5"), min_size=Decimal(10), contract_size=Decimal(10), inverse=True,
)  # fmt: skip


class FakeContext(StrategyContext):
    """Fills every order in full at its limit (or `fill` of it), at once; positions follow."""

    def __init__(self, catalog: FakeCatalog | None, surface: VolSurface | None) -> None:
        self.strategy = "cv"
        self.log = structlog.get_logger().bind(strategy="cv")
        self.now = T0
        self.cat = catalog
        self.surf: VolSurface | None = surface
        self.surface_error: str | None = None
        self.surface_calls = 0
        self.sent: list[OrderRequest] = []
        self.held: dict[tuple[str, str], Decimal] = {}
        self.subs: set[str] = set()
        self.fill = Decimal(1)
        self.working: set[str] = set()
        self.insts = {PERP.symbol: PERP}

    def now_ns(self) -> int:
        return self.now

    async def sleep(self, seconds: float) -> None:
        raise AssertionError("not used")

    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        self.sent.append(request)
        filled = request.size * self.fill
        key = (request.venue, request.instrument)
        sign = 1 if request.side.value == "buy" else -1
        self.held[key] = self.held.get(key, Decimal(0)) + sign * filled
        return OrderUpdate(
            venue=request.venue, instrument=request.instrument, ts_exchange=None, ts_local=self.now,
            status=OrderState.FILLED if filled == request.size else OrderState.CANCELLED, side=request.side,
            price=request.price, size=request.size, filled_size=filled, avg_fill_price=request.price,
        )  # fmt: skip

    async def cancel_order(self, client_order_id: str) -> OrderUpdate:
        raise AssertionError("not used")

    async def edit_order(self, client_order_id: str, **kw: Any) -> OrderUpdate:
        raise AssertionError("not used")

    def open_orders(self, venue: str | None = None, instrument: str | None = None) -> list[OrderUpdate]:
        return [
            OrderUpdate(venue="polymarket", instrument=i, ts_exchange=None, ts_local=self.now)
            for i in self.working
            if instrument in (None, i)
        ]

    def position(self, venue: str, instrument: str) -> Decimal:
        return self.held.get((venue, instrument), Decimal(0))

    def positions(self) -> Any:
        raise AssertionError("not used")

    def instrument(self, venue: str, symbol: str) -> Instrument | None:
        if venue == "polymarket":
            return token_instrument(symbol)
        return self.insts.get(symbol)

    def instruments(self, venue: str) -> list[Instrument]:
        return []

    def select(self, instruments: Any, venue: str | None = None) -> list[Instrument]:
        return []

    def last_ticker(self, venue: str, instrument: str) -> Ticker | None:
        return None

    def book(self, venue: str, instrument: str) -> Any:
        return None

    def catalog(self, venue: str) -> MarketCatalog:
        if self.cat is None or venue != "polymarket":
            raise StrategyError(f"no market catalog for {venue!r} in this engine")
        return cast(MarketCatalog, self.cat)

    def fee(
        self,
        venue: str,
        instrument: str,
        price: Any,
        size: Any,
        *,
        liquidity: Liquidity | str = Liquidity.TAKER,
    ) -> tuple[Decimal, str]:
        p, q = Decimal(str(price)), Decimal(str(size))
        return (q * RATE * p * (1 - p)).quantize(Decimal("0.00001"), rounding=ROUND_DOWN), "pUSD"

    def surface(self, underlying: str, *, venue: str | None = None) -> VolSurface | None:
        self.surface_calls += 1
        if self.surface_error is not None:
            raise StrategyError(self.surface_error)
        assert (underlying, venue) == ("BTC", "deribit")
        return self.surf

    async def surface_async(self, underlying: str, *, venue: str | None = None) -> VolSurface | None:
        return self.surface(underlying, venue=venue)

    def subscribe(self, subscriptions: Iterable[Subscription]) -> None:
        for s in subscriptions:
            assert s.venue == "polymarket" and "book" in {k.value for k in s.kinds}
            self.subs.add(s.instrument)

    def unsubscribe(self, subscriptions: Iterable[Subscription]) -> None:
        for s in subscriptions:
            self.subs.discard(s.instrument)


def book(token: str, bid: float | None, ask: float | None, *, size: float = 100.0, at: int | None = None,
         snapshot: bool = True) -> BookUpdate:  # fmt: skip
    return BookUpdate(
        venue="polymarket", instrument=token, ts_exchange=None, ts_local=T0 if at is None else at,
        snapshot=snapshot, best_bid=bid, best_bid_size=None if bid is None else size, best_ask=ask,
        best_ask_size=None if ask is None else size,
    )  # fmt: skip


def start(
    markets: Sequence[PriceMarket], *, surface: VolSurface | None = None, index: bool = True, **params: Any
) -> tuple[CrossVenue, FakeContext]:
    cat = FakeCatalog(markets)
    ctx = FakeContext(cat, flat_surface() if surface is None else surface)
    params.setdefault("cooldown_s", 0.0)
    params.setdefault("order_size", Decimal(20))
    # Most tests move the clock without a new index: its own test checks the age.
    params.setdefault("max_index_age_s", 365 * 86_400.0)
    strat = CrossVenue("cv", CrossVenueParams(**params))
    strat.attach(ctx)
    trio.run(strat.on_start)
    if index:  # the options venue's live index, where the surface's forward is
        feed(strat, index_ticker(FORWARD, T0))
    return strat, ctx


def index_ticker(index: float, at: int) -> Ticker:
    return Ticker(venue="deribit", instrument="BTC-PERPETUAL", ts_exchange=None, ts_local=at, index=index)


def feed(strat: CrossVenue, *events: Any) -> None:
    async def go() -> None:
        for e in events:
            await strat.on_event(e)

    trio.run(go)


def tag_fields(tag: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", tag))


# -- entries -------------------------------------------------------------------------------------


def test_buys_yes_at_the_ask_when_the_model_is_above_it_by_more_than_fee_and_margin() -> None:
    m = above("k95", 95_000)
    p = digital(95_000, m.resolves_at_ns, T0)
    ask = math.floor((p - 0.05) * 100) / 100  # about 5 points under the model
    strat, ctx = start([m], margin=0.02)
    assert ctx.subs == {"k95-yes", "k95-no"}
    feed(strat, book("k95-no", 1 - ask, 1 - ask + 0.01), book("k95-yes", ask - 0.01, ask, size=12.0))
    (order,) = ctx.sent
    assert (order.side.value, order.instrument, order.time_in_force.value) == ("buy", "k95-yes", "ioc")
    assert order.price == Decimal(str(ask)) and order.size == Decimal(12)  # what the touch shows
    fields = tag_fields(order.tag)
    assert float(fields["gap"]) == pytest.approx(p - ask, abs=6e-5)
    assert float(fields["p_model"]) == pytest.approx(p, abs=6e-5)
    assert float(fields["fee"]) == pytest.approx(fee_per_share(Decimal(str(ask)), Decimal(12)), abs=6e-5)
    assert fields["ask"] == f"{ask:g}" and order.tag.endswith(" YES")


def test_buys_no_when_the_yes_bid_is_above_the_model() -> None:
    m = above("k105", 105_000)
    p = digital(105_000, m.resolves_at_ns, T0)
    yes_bid = math.ceil((p + 0.06) * 100) / 100
    strat, ctx = start([m])
    feed(strat, book("k105-yes", yes_bid, yes_bid + 0.01), book("k105-no", 1 - yes_bid - 0.01, 1 - yes_bid))
    # (the YES book alone: no NO book yet, nothing to buy NO at)
    (order,) = ctx.sent
    assert (order.side.value, order.instrument) == ("buy", "k105-no")
    assert order.price == Decimal(str(round(1 - yes_bid, 2))) and order.size == Decimal(20)  # order_size
    fields = tag_fields(order.tag)
    assert float(fields["p_model"]) == pytest.approx(1 - p, abs=6e-5)  # the NO token's probability
    assert float(fields["gap"]) == pytest.approx((1 - p) - (1 - yes_bid), abs=6e-5) and order.tag.endswith(
        " NO"
    )


def test_the_fee_decides_a_gap_between_margin_and_margin_plus_fee() -> None:
    """At p about 0.5 the fee is 0.03 x 0.25 = 0.0075 a share: a gap of margin + 0.004 is not
    enough; margin + 0.011 is."""
    m = above("atm", FORWARD)
    p = digital(FORWARD, m.resolves_at_ns, T0)
    for extra, trades in ((0.004, False), (0.011, True)):
        ask = p - 0.02 - extra
        ask_ticks = math.floor(ask * 100) / 100 if trades else math.ceil(ask * 100) / 100
        gap = p - ask_ticks
        fee = fee_per_share(Decimal(str(ask_ticks)), Decimal(20))
        assert (gap > fee + 0.02) is trades, (gap, fee)  # the witness agrees with the case
        strat, ctx = start([m], margin=0.02)
        feed(strat, book("atm-yes", ask_ticks - 0.01, ask_ticks))
        assert bool(ctx.sent) is trades


# -- limits --------------------------------------------------------------------------------------


def test_size_is_the_smallest_of_order_size_room_and_touch() -> None:
    m = above("k95", 95_000)
    ask = math.floor((digital(95_000, m.resolves_at_ns, T0) - 0.1) * 100) / 100
    strat, ctx = start([m], order_size=Decimal(20), max_position=Decimal(50))
    for _ in range(4):
        feed(strat, book("k95-yes", ask - 0.01, ask, size=1000.0))
    assert [o.size for o in ctx.sent] == [20, 20, 10]  # then full: 50 held, nothing more
    assert ctx.position("polymarket", "k95-yes") == 50
    # Fewer shares at the touch than the market's minimum order: nothing.
    strat, ctx = start([m])
    feed(strat, book("k95-yes", ask - 0.01, ask, size=4.0))
    assert ctx.sent == [] and strat.skips["too_small"] == 1


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 99), st.floats(1, 400), st.sampled_from([1, 0.5, 0])),
        min_size=1,
        max_size=25,
    ),
    st.integers(5, 60),
    st.integers(5, 80),
)
def test_never_more_than_max_position_in_a_market(
    steps: list[tuple[int, float, float]], order_size: int, max_position: int
) -> None:
    """Any sequence of books and partial fills: each order is at most order_size, what the touch
    shows and what max_position leaves; what is held never exceeds max_position."""
    m = above("k", 100_000)
    strat, ctx = start([m], order_size=Decimal(order_size), max_position=Decimal(max_position))
    for i, (ask_cents, shown, fill) in enumerate(steps):
        ctx.fill = Decimal(str(fill))
        before = ctx.position("polymarket", "k-yes")
        n = len(ctx.sent)
        ctx.now = T0 + i * S
        ask = ask_cents / 100
        feed(strat, book("k-yes", max(ask - 0.01, 0.001), ask, size=shown, at=ctx.now))
        for order in ctx.sent[n:]:
            if order.side.value == "buy":
                assert order.size <= min(Decimal(order_size), Decimal(str(shown)), max_position - before)
        assert 0 <= ctx.position("polymarket", "k-yes") <= max_position


def test_max_markets_watches_the_nearest_to_resolution() -> None:
    ms = [above(f"d{d}", 100_000, T0 + d * DAY) for d in (9, 3, 6, 12)]
    _, ctx = start(ms, max_markets=2)
    assert ctx.subs == {"d3-yes", "d3-no", "d6-yes", "d6-no"}
    assert ctx.cat is not None and ctx.cat.asked == ["BTC"]


# -- exits ---------------------------------------------------------------------------------------


def test_sells_what_it_holds_at_the_bid_once_the_gap_has_closed() -> None:
    m = above("k95", 95_000)
    p = digital(95_000, m.resolves_at_ns, T0)
    strat, ctx = start([m], exit_gap=0.01)
    ctx.held[("polymarket", "k95-yes")] = Decimal(30)
    open_bid = math.floor((p - 0.02) * 100) / 100  # 2 points left to gain: hold
    feed(strat, book("k95-yes", open_bid, open_bid + 0.01, size=100.0))
    assert ctx.sent == []
    closed_bid = math.ceil((p - 0.005) * 100) / 100  # within exit_gap of the model: sell
    feed(strat, book("k95-yes", closed_bid, closed_bid + 0.01, size=18.0))
    (order,) = ctx.sent
    assert (order.side.value, order.instrument, order.size) == ("sell", "k95-yes", Decimal(18))
    assert order.price == Decimal(str(closed_bid))
    assert float(tag_fields(order.tag)["gap"]) == pytest.approx(p - closed_bid, abs=6e-5)
    feed(strat, book("k95-yes", closed_bid, closed_bid + 0.01, size=100.0, at=T0 + S))
    assert [o.size for o in ctx.sent] == [18, 12] and ctx.position("polymarket", "k95-yes") == 0


def test_holding_no_it_sells_no_rather_than_buy_yes() -> None:
    m = above("k95", 95_000)
    p = digital(95_000, m.resolves_at_ns, T0)
    strat, ctx = start([m])
    ctx.held[("polymarket", "k95-no")] = Decimal(10)
    ask = math.floor((p - 0.08) * 100) / 100  # YES cheap: NO rich
    feed(strat, book("k95-yes", ask - 0.01, ask))  # YES cheap, but NO is held: no YES bought
    assert ctx.sent == []
    feed(strat, book("k95-no", 1 - ask - 0.01, 1 - ask))  # NO rich: sold
    assert [(o.side.value, o.instrument, o.size) for o in ctx.sent] == [("sell", "k95-no", Decimal(10))]


# -- nothing sent --------------------------------------------------------------------------------


def _cheap_yes(m: PriceMarket, at: int = T0) -> BookUpdate:
    ask = math.floor((digital(float(m.low or 0), m.resolves_at_ns, T0) - 0.1) * 100) / 100
    return book(m.yes_token, ask - 0.01, ask, at=at)


def test_no_trade_without_a_fresh_surface_that_prices_the_market() -> None:
    m = above("k95", 95_000)
    strat, ctx = start([m])
    ctx.surf = None
    ctx.now = T0 + 2 * S  # the surface is looked for again (at most once a second)
    feed(strat, _cheap_yes(m, at=ctx.now))
    assert ctx.sent == [] and strat.skips["no_surface"] == 1
    strat, ctx = start([m], max_surface_age_s=60)
    ctx.now = T0 + 61 * S
    feed(strat, _cheap_yes(m, at=ctx.now))
    assert ctx.sent == [] and strat.skips["stale_surface"] == 1
    late = above("late", 95_000, EXPIRY + DAY)  # resolves after the surface's last expiry
    with pytest.raises(OutsideSurface):
        flat_surface().prob_above(95_000, late.resolves_at_ns)
    strat, ctx = start([late])
    feed(strat, book("late-yes", 0.1, 0.11))
    assert ctx.sent == [] and strat.skips["outside_surface"] == 1
    assert strat.data_warnings() == [
        "no watched BTC market resolves within the deribit surface's expiries: nothing traded"
    ]


def test_no_trade_on_a_crossed_empty_stale_or_broken_book() -> None:
    m = above("k95", 95_000)
    good = _cheap_yes(m)
    assert good.best_ask is not None
    crossed = book("k95-yes", good.best_ask + 0.02, good.best_ask)
    empty = book("k95-yes", 0.2, None)
    for ev, why in ((crossed, "crossed_book"), (empty, None)):
        strat, ctx = start([m])
        feed(strat, ev)
        assert ctx.sent == [], why
        if why:
            assert strat.skips[why] == 1
    strat, ctx = start([m], max_book_age_s=30)
    feed(strat, good)
    n = len(ctx.sent)
    ctx.now = T0 + 31 * S  # the book has not moved since; a new surface comes (a ticker)
    ctx.surf = flat_surface(as_of_ns=ctx.now)
    feed(strat, Ticker(venue="deribit", instrument="BTC-X", ts_exchange=None, ts_local=ctx.now))
    assert len(ctx.sent) == n and strat.skips["stale_book"] >= 1
    # A gap: nothing until a snapshot, then trading again.
    strat, ctx = start([m])
    gap = Status(
        venue="polymarket", instrument="k95-yes", ts_exchange=None, ts_local=T0, status=StatusKind.BOOK_GAP
    )
    assert good.best_bid is not None
    feed(strat, gap, book("k95-yes", good.best_bid, good.best_ask, snapshot=False))
    assert ctx.sent == []
    feed(strat, book("k95-yes", good.best_bid, good.best_ask, snapshot=True))
    assert len(ctx.sent) == 1


def test_no_entry_near_resolution_nor_after_it_resolved() -> None:
    m = above("soon", 95_000, T0 + 1800 * S)
    strat, ctx = start([m], min_time_to_resolution_s=3600)
    assert ctx.subs == set()  # not even watched
    m = above("k95", 95_000, T0 + 2 * 3600 * S)
    strat, ctx = start([m], min_time_to_resolution_s=3600)
    ctx.now = T0 + 3601 * S
    ctx.surf = flat_surface(as_of_ns=ctx.now)
    feed(strat, _cheap_yes(m, at=ctx.now))
    assert ctx.sent == [] and strat.skips["near_resolution"] == 1
    strat, ctx = start([above("k95", 95_000)])
    resolved = Status(
        venue="polymarket", instrument="k95-yes", ts_exchange=None, ts_local=T0,
        status=StatusKind.MARKET_RESOLVED, data={"payout": 1.0},
    )  # fmt: skip
    feed(strat, resolved, _cheap_yes(above("k95", 95_000)))
    assert ctx.sent == []


def test_no_second_order_while_one_is_working_nor_within_the_cooldown() -> None:
    m = above("k95", 95_000)
    strat, ctx = start([m])
    ctx.working = {"k95-yes"}
    feed(strat, _cheap_yes(m))
    assert ctx.sent == [] and strat.skips["order_working"] == 1
    strat, ctx = start([m], cooldown_s=10)
    feed(strat, _cheap_yes(m), _cheap_yes(m, at=T0 + 5 * S))
    assert len(ctx.sent) == 1
    ctx.now = T0 + 11 * S
    feed(strat, _cheap_yes(m, at=ctx.now))
    assert len(ctx.sent) == 2


# -- the catalog ---------------------------------------------------------------------------------


def test_unrecognized_markets_are_logged_once_with_their_reason_and_warned_about() -> None:
    cat = FakeCatalog(
        [], [Unrecognized(catalog_market("touch"), "a touch market (reach), not a price at a time")]
    )
    ctx = FakeContext(cat, flat_surface())
    strat = CrossVenue("cv", CrossVenueParams())
    strat.attach(ctx)
    with structlog.testing.capture_logs() as logs:
        trio.run(strat.on_start)
        cat.replace([])
        feed(strat, book("x", 0.1, 0.2))
    unread = [e for e in logs if e["event"] == "cross_venue.unrecognized"]
    assert unread == [
        {"event": "cross_venue.unrecognized", "log_level": "info", "strategy": "cv", "market": "touch",
         "reason": "a touch market (reach), not a price at a time"},
    ]  # fmt: skip
    assert strat.data_warnings() == [
        "no BTC price market recognised in the polymarket catalog; 1 not read, e.g. a touch market"
        " (reach), not a price at a time: nothing traded"
    ]


def test_a_changed_catalog_is_matched_again_and_held_markets_stay_watched() -> None:
    a, b, c = (above(n, 100_000, T0 + d * DAY) for n, d in (("a", 2), ("b", 3), ("c", 4)))
    strat, ctx = start([a, b], max_markets=2)
    ctx.held[("polymarket", "a-yes")] = Decimal(5)
    assert ctx.cat is not None
    ctx.cat.replace([b, c])  # a is gone from the catalog, but held
    feed(strat, book("b-yes", 0.5, 0.51))
    assert ctx.subs == {"a-yes", "a-no", "b-yes", "b-no"}
    ctx.held[("polymarket", "a-yes")] = Decimal(0)
    ctx.cat.replace([b, c])
    feed(strat, book("b-yes", 0.5, 0.51))
    assert ctx.subs == {"b-yes", "b-no", "c-yes", "c-no"}


def test_without_catalog_or_surface_it_says_why_nothing_traded() -> None:
    ctx = FakeContext(None, None)
    strat = CrossVenue("cv", CrossVenueParams())
    strat.attach(ctx)
    trio.run(strat.on_start)
    assert strat.data_warnings() == ["no market catalog for 'polymarket' in this engine: nothing traded"]
    strat2 = CrossVenue("cv", CrossVenueParams())
    ctx2 = FakeContext(FakeCatalog([above("k95", 95_000)]), None)
    strat2.attach(ctx2)
    trio.run(strat2.on_start)
    feed(strat2, book("k95-yes", 0.5, 0.51))
    assert strat2.data_warnings() == ["no BTC surface could be fitted from the deribit chain: nothing traded"]
    ctx3 = FakeContext(FakeCatalog([above("k95", 95_000)]), None)
    ctx3.surface_error = "no configured venue lists options of 'BTC'"
    strat3 = CrossVenue("cv", CrossVenueParams())
    strat3.attach(ctx3)
    trio.run(strat3.on_start)
    assert strat3.data_warnings() == ["no configured venue lists options of 'BTC': nothing traded"]


# -- the hedge -----------------------------------------------------------------------------------


@pytest.mark.parametrize("strike", [80_000.0, 97_000.0, 100_000.0, 104_000.0, 125_000.0])
def test_market_delta_is_the_digitals_closed_form_delta(strike: float) -> None:
    m = above("k", strike)
    strat, _ = start([m])
    got = strat.market_delta(m, flat_surface(), T0)
    assert got == pytest.approx(digital_delta(strike, m.resolves_at_ns, T0), rel=2e-4, abs=1e-12)


def test_a_range_markets_delta_is_the_difference_of_its_edges_deltas() -> None:
    m = attrs.evolve(
        above("r", 96_000), condition=PriceCondition.BETWEEN, low=Decimal(96_000), high=Decimal(104_000)
    )
    strat, _ = start([m])
    want = digital_delta(96_000, m.resolves_at_ns, T0) - digital_delta(104_000, m.resolves_at_ns, T0)
    assert strat.market_delta(m, flat_surface(), T0) == pytest.approx(want, rel=2e-4, abs=1e-12)


def test_the_hedge_sells_the_perpetual_in_usd_to_bring_the_tokens_delta_inside_the_band() -> None:
    m = above("k100", 100_000)
    strat, ctx = start([m], hedge=True, hedge_band=0.001, min_hedge_interval_s=0)
    assert strat.required_subscriptions() == [Subscription("deribit", "BTC-PERPETUAL", {"ticker"})]
    ctx.held[("polymarket", "k100-yes")] = Decimal(5_000)
    ctx.held[("polymarket", "k100-no")] = Decimal(1_000)
    price = 100_050.0
    feed(
        strat, Ticker(venue="deribit", instrument="BTC-PERPETUAL", ts_exchange=None, ts_local=T0, mark=price)
    )
    delta = 4_000 * digital_delta(100_000, m.resolves_at_ns, T0)  # BTC: long YES is long BTC
    (order,) = ctx.sent
    assert order.instrument == "BTC-PERPETUAL" and order.side.value == "sell" and order.price is None
    assert order.size == Decimal(math.floor(delta * price / 10) * 10)  # USD, in 10 USD contracts
    after = strat.net_delta(T0)
    assert after is not None and abs(after) <= 10 / price  # within one contract of flat


# -- parameters ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("order_size", Decimal(0), "order_size: expected a positive number"),
        ("max_position", Decimal(-1), "max_position: expected a positive number"),
        ("max_markets", 0, "max_markets: expected a positive number"),
        ("margin", -0.01, "margin: expected a finite number >= 0"),
        ("margin", math.nan, "margin: expected a finite number >= 0"),
        ("max_surface_age_s", math.inf, "max_surface_age_s: expected a positive number"),
        ("exit_gap", 0.05, "exit_gap: expected at most margin (0.02)"),
        # Huge but finite durations: held in integer ns, 1e300 s overflowed at each use.
        ("cooldown_s", 1e300, "cooldown_s: expected at most a year (31536000 s), got 1e+300"),
        ("max_surface_age_s", 1e300, "max_surface_age_s: expected at most a year"),
        ("max_book_age_s", 31_536_001.0, "max_book_age_s: expected at most a year (31536000 s)"),
        ("max_index_age_s", 1e300, "max_index_age_s: expected at most a year"),
        ("min_time_to_resolution_s", 1e300, "min_time_to_resolution_s: expected at most a year"),
        ("min_hedge_interval_s", 1e300, "min_hedge_interval_s: expected at most a year"),
    ],
)
def test_params_are_refused_with_their_name(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        CrossVenueParams(**{field: value})


def test_the_paper_config_checks_and_builds_crossvenue_on_both_venues(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tradingd.cli.main import main
    from tradingd.config import load_config

    path = Path(__file__).resolve().parents[2] / "config" / "paper-crossvenue.toml"
    try:
        assert main(["check-config", str(path)]) == 0
    finally:
        structlog.reset_defaults()
    assert capsys.readouterr().out.strip().endswith("OK: mode paper, strategies: cross_btc (CrossVenue)")
    loaded = load_config(path)
    assert loaded.config.mode == "paper" and set(loaded.config.venues) == {"deribit", "polymarket"}
    params = loaded.strategy_params["cross_btc"]
    assert isinstance(params, CrossVenueParams)
    assert (params.options_venue, params.market_venue, params.margin, params.max_position) == (
        "deribit", "polymarket", 0.02, Decimal(100),
    )  # fmt: skip


@pytest.mark.parametrize(
    "key", ["cooldown_s", "max_surface_age_s", "max_book_age_s", "min_time_to_resolution_s"]
)
def test_check_config_refuses_a_huge_duration_in_one_line_naming_it(
    key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tradingd.cli.main import main

    text = (Path(__file__).resolve().parents[2] / "config" / "paper-crossvenue.toml").read_text("utf-8")
    lines = [f"{key} = 1e300" if line.split("=")[0].strip() == key else line for line in text.splitlines()]
    assert f"{key} = 1e300" in lines
    path = tmp_path / "cv.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        assert main(["check-config", str(path)]) == 2
    finally:
        structlog.reset_defaults()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"strategies[0].params.{key}: expected at most a year (31536000 s), got 1e+300" in err[0]


# -- review fixes: the catalog read off the event loop, rounded prices, exits ------------------


def test_the_catalog_is_read_with_its_async_variant_at_start_and_on_changes() -> None:
    m, n = above("k95", 95_000), above("k105", 105_000)
    strat, ctx = start([m])
    assert ctx.cat is not None and (ctx.cat.asked_async, len(ctx.cat.asked)) == (1, 1)
    ctx.cat.replace([m, n])
    feed(strat, book("k95-yes", 0.1, 0.9))
    assert (ctx.cat.asked_async, len(ctx.cat.asked)) == (2, 2)  # never the blocking call alone
    assert ctx.subs == {"k95-yes", "k95-no", "k105-yes", "k105-no"}


def test_an_entry_is_decided_on_the_ask_rounded_to_the_tick_it_is_sent_at() -> None:
    """An ask off the 0.01 tick is bought at the tick above it: a gap that is there only at the
    raw ask is not traded."""
    m = above("atm", FORWARD)
    p = digital(FORWARD, m.resolves_at_ns, T0)
    found = None
    for i in range(1, 1000):
        raw = i / 1000
        if raw * 100 == round(raw * 100):
            continue  # on the tick
        sent_at = math.ceil(raw * 100) / 100
        fee = fee_per_share(Decimal(str(sent_at)), Decimal(20))
        if p - raw > fee + 0.02 >= p - sent_at:
            found = raw
            break
    assert found is not None
    strat, ctx = start([m], margin=0.02)
    feed(strat, book("atm-yes", found - 0.02, found))
    assert ctx.sent == []


def test_an_exit_that_does_not_fill_waits_for_the_cooldown() -> None:
    m = above("k95", 95_000)
    p = digital(95_000, m.resolves_at_ns, T0)
    strat, ctx = start([m], exit_gap=0.02, cooldown_s=10)
    ctx.held[("polymarket", "k95-yes")] = Decimal(30)
    ctx.fill = Decimal(0)  # IOC, nothing at the bid any more: cancelled unfilled
    bid = math.ceil(p * 100) / 100  # at or above the model: sell
    feed(strat, book("k95-yes", bid, bid + 0.01))
    assert [o.side.value for o in ctx.sent] == ["sell"]
    for k in range(1, 10):  # every book update within the cooldown: not resent
        ctx.now = T0 + k * S
        feed(strat, book("k95-yes", bid, bid + 0.01, at=ctx.now))
    assert len(ctx.sent) == 1
    ctx.now = T0 + 10 * S
    feed(strat, book("k95-yes", bid, bid + 0.01, at=ctx.now))
    assert len(ctx.sent) == 2


def test_a_holding_below_min_size_is_held_to_resolution_and_said_once() -> None:
    m = above("k95", 95_000)
    p = digital(95_000, m.resolves_at_ns, T0)
    strat, ctx = start([m], exit_gap=0.02)
    ctx.held[("polymarket", "k95-yes")] = Decimal(3)  # the token's min_size is 5
    bid = math.ceil(p * 100) / 100
    with structlog.testing.capture_logs() as logs:
        feed(strat, book("k95-yes", bid, bid + 0.01), book("k95-yes", bid, bid + 0.01, at=T0 + S))
    assert ctx.sent == [] and strat.skips["held_below_min_size"] == 2
    assert [e["instrument"] for e in logs if e["event"] == "cross_venue.held_to_resolution"] == ["k95-yes"]


def test_the_exit_counts_the_taker_fee() -> None:
    """Sold only when the gap left plus the fee a share is below exit_gap: a bid within exit_gap
    of the model, but not after the fee, is held."""
    exit_gap = 0.02
    case = None
    for strike in range(90_000, 110_001, 250):
        p = digital(strike, T0 + 10 * DAY, T0)
        for tick in range(1, 100):
            bid = tick / 100
            fee = fee_per_share(Decimal(str(bid)), Decimal(30))
            if (
                p - bid < exit_gap <= p - bid + fee
                and p - (bid + 0.01) + fee_per_share(Decimal(str(round(bid + 0.01, 2))), Decimal(30))
                < exit_gap
            ):
                case = (strike, bid)
                break
        if case:
            break
    assert case is not None
    strike, bid = case
    m = above("k", strike)
    strat, ctx = start([m], exit_gap=exit_gap)
    ctx.held[("polymarket", "k-yes")] = Decimal(30)
    feed(strat, book("k-yes", bid, bid + 0.02))
    assert ctx.sent == []
    feed(strat, book("k-yes", round(bid + 0.01, 2), bid + 0.02, at=T0 + S))
    assert [(o.side.value, o.size) for o in ctx.sent] == [("sell", Decimal(30))]


# -- the live underlying -----------------------------------------------------------------------


def test_the_probability_is_the_surface_moved_to_the_live_index() -> None:
    """A surface fitted at F = 100,000 and a live index 0.5% higher: the probability is the moved
    surface's, N(d2) at the new forward (the flat surface's closed form), not the fit's."""
    m = above("atm", FORWARD, T0 + 3600 * S)  # an hour out: ~10 points for a 0.5% move
    moved = FORWARD * 1.005
    t = 3600 / YEAR_SECONDS
    sd = SIGMA * math.sqrt(t)
    p_new = _ncdf((math.log(moved / FORWARD) - sd * sd / 2) / sd)
    p_fit = digital(FORWARD, m.resolves_at_ns, T0)
    assert p_new - p_fit > 0.08
    strat, ctx = start([m], margin=0.02, min_time_to_resolution_s=60)
    ctx.now = T0 + S // 2
    feed(strat, index_ticker(moved, ctx.now))
    # YES at p_new - 5 points: cheap against the moved surface; rich against the fitted one.
    ask = math.floor((p_new - 0.05) * 100) / 100
    feed(strat, book("atm-yes", ask - 0.01, ask, at=ctx.now))
    (order,) = ctx.sent
    assert (order.side.value, order.instrument) == ("buy", "atm-yes")
    assert float(tag_fields(order.tag)["p_model"]) == pytest.approx(p_new, abs=6e-5)


def test_a_gap_that_is_only_the_stale_forward_is_not_traded() -> None:
    """The index has moved up 0.5% since the fit and YES is priced at the moved surface: against
    the fitted forward it looks rich (NO cheap), but there is nothing to trade."""
    m = above("atm", FORWARD, T0 + 3600 * S)
    moved = FORWARD * 1.005
    sd = SIGMA * math.sqrt(3600 / YEAR_SECONDS)
    p_new = _ncdf((math.log(moved / FORWARD) - sd * sd / 2) / sd)
    strat, ctx = start([m], margin=0.02, min_time_to_resolution_s=60)
    ctx.now = T0 + S // 2
    feed(strat, index_ticker(moved, ctx.now))
    yes_bid = round(p_new, 2) - 0.005
    feed(
        strat,
        book("atm-yes", yes_bid, yes_bid + 0.01, at=ctx.now),
        book("atm-no", round(1 - yes_bid - 0.01, 2), round(1 - yes_bid, 2), at=ctx.now),
    )
    assert ctx.sent == [] and strat.priced >= 1


def test_no_trade_without_a_live_index_or_with_a_stale_one() -> None:
    m = above("k95", 95_000)
    strat, ctx = start([m], index=False)
    feed(strat, _cheap_yes(m))
    assert ctx.sent == [] and strat.skips["no_live_price"] == 1
    strat, ctx = start([m], max_index_age_s=10)
    ctx.now = T0 + 11 * S
    feed(strat, _cheap_yes(m, at=ctx.now))
    assert ctx.sent == [] and strat.skips["stale_live_price"] == 1
    feed(strat, index_ticker(FORWARD, ctx.now), _cheap_yes(m, at=ctx.now))
    assert len(ctx.sent) == 1


# -- the cost per event: the surface asked once per market and instant, as PriceMarket asks it ----


class RecordingSurface:
    """A surface that notes every probability query (method, strikes, expiry, now) it answers."""

    def __init__(self, inner: VolSurface) -> None:
        self.inner = inner
        self.as_of_ns = inner.as_of_ns
        self.queries: list[tuple[Any, ...]] = []

    def forward(self, expiry_ns: int, *, now_ns: int | None = None) -> float:
        return self.inner.forward(expiry_ns, now_ns=now_ns)

    def prob_above(self, strike: float, expiry_ns: int, *, now_ns: int | None = None) -> float:
        self.queries.append(("above", strike, expiry_ns, now_ns))
        return self.inner.prob_above(strike, expiry_ns, now_ns=now_ns)

    def prob_below(self, strike: float, expiry_ns: int, *, now_ns: int | None = None) -> float:
        self.queries.append(("below", strike, expiry_ns, now_ns))
        return self.inner.prob_below(strike, expiry_ns, now_ns=now_ns)

    def prob_between(self, low: float, high: float, expiry_ns: int, *, now_ns: int | None = None) -> float:
        self.queries.append(("between", low, high, expiry_ns, now_ns))
        return self.inner.prob_between(low, high, expiry_ns, now_ns=now_ns)


def _market(condition: PriceCondition, strike: Decimal) -> PriceMarket:
    m = above("m", float(strike))
    if condition is PriceCondition.BELOW:
        return attrs.evolve(m, condition=condition, low=None, high=strike)
    if condition is PriceCondition.BETWEEN:
        return attrs.evolve(m, condition=condition, low=strike, high=strike + 2_000)
    return attrs.evolve(m, low=strike)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(list(PriceCondition)),
    st.decimals(min_value=50_000, max_value=150_000, places=2),
    st.one_of(st.just(FORWARD), st.floats(FORWARD * 0.97, FORWARD * 1.03)),
    st.integers(1, 100 * S),
)
def test_the_surface_is_asked_exactly_what_pricemarket_probability_asks_at_the_scaled_strikes(
    condition: PriceCondition, strike: Decimal, index: float, after: int
) -> None:
    """The strategy prices a market without building one per query: the queries it makes are
    those of `PriceMarket.probability` on the market with its strikes scaled by F_fit / F_now
    (Decimal(repr(scale)), as a market built with them holds them), floats for floats."""
    m = _market(condition, strike)
    rec = RecordingSurface(flat_surface())
    strat, ctx = start([m], surface=cast(VolSurface, rec))
    ctx.now = T0 + after
    feed(strat, index_ticker(index, ctx.now), book(m.yes_token, 0.4, 0.6, at=ctx.now))
    scale = FORWARD / index  # the index at the fit over the live one
    f = Decimal(repr(scale))
    scaled = m if scale == 1.0 else attrs.evolve(
        m, low=None if m.low is None else m.low * f, high=None if m.high is None else m.high * f
    )  # fmt: skip
    got = list(rec.queries)
    rec.queries.clear()
    scaled.probability(cast(VolSurface, rec), now_ns=ctx.now)
    assert got == rec.queries and len(got) == 1


def test_one_query_per_market_and_instant_and_a_new_one_when_the_index_or_the_clock_moves() -> None:
    """Book updates at one instant share the market's probability; the index moving at that
    instant, or the clock moving, prices it again (and the decision follows the new price)."""
    m = above("atm", FORWARD, T0 + 3600 * S)  # an hour out: ~10 points for a 0.5% move
    rec = RecordingSurface(flat_surface())
    strat, ctx = start([m], surface=cast(VolSurface, rec), margin=0.02, min_time_to_resolution_s=60)
    ctx.now = T0 + S // 2
    p_fit = digital(FORWARD, m.resolves_at_ns, ctx.now)
    moved = FORWARD * 1.005
    sd = SIGMA * math.sqrt((m.resolves_at_ns - ctx.now) / 1e9 / YEAR_SECONDS)
    p_new = _ncdf((math.log(moved / FORWARD) - sd * sd / 2) / sd)
    ask = math.floor((p_new - 0.05) * 100) / 100  # rich at the fitted forward, cheap at the moved one
    assert p_fit - ask < 0.02
    yes = book("atm-yes", ask - 0.01, ask, at=ctx.now)
    feed(strat, yes, book("atm-yes", ask - 0.01, ask, size=50.0, at=ctx.now), yes)
    assert ctx.sent == [] and [q[-1] for q in rec.queries] == [ctx.now]  # 3 updates, 1 query
    feed(strat, index_ticker(moved, ctx.now), yes)  # same instant, the index moved: priced again
    assert len(rec.queries) == 2 and rec.queries[1][1] == FORWARD * (FORWARD / moved)
    (order,) = ctx.sent
    assert order.instrument == "atm-yes"
    assert float(tag_fields(order.tag)["p_model"]) == pytest.approx(p_new, abs=6e-5)
    ctx.now += S  # the clock moves (the digital's time decays): priced again at the new instant
    feed(strat, book("atm-yes", ask - 0.01, ask, at=ctx.now))
    assert [q[-1] for q in rec.queries[2:]] == [ctx.now]
