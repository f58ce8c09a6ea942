"""`ctx.surface` / `ctx.surface_async` on a strategy's context (BaseContext, as both hosts build
it): which venue's chain is meant, the errors that name the choices, and the chain's tickers
subscribed to at the first call and as options are listed later."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest
import structlog

from tests.surface.test_service import CHAIN, E2, T0, Clock, FakeFit, feed, option, perp
from tradingd.engine import (
    DataKind,
    MarketEvent,
    OrderUpdate,
    Strategy,
    StrategyContext,
    StrategyError,
    Subscription,
)
from tradingd.engine.model.instruments import InstrumentRegistry
from tradingd.engine.model.market import MarketState
from tradingd.engine.model.orders import ClientOrderIds, OrderRequest
from tradingd.engine.runtime.context import BaseContext
from tradingd.engine.runtime.flow import OrderFlow
from tradingd.engine.runtime.router import MarketRouter, StrategySlot
from tradingd.engine.surface import SurfaceSettings
from tradingd.engine.surface.service import SurfaceService


class Idle(Strategy):
    async def on_event(self, event: MarketEvent) -> None:
        return None


class Host:
    """What a host lends a context (ContextHost), with an injected fit."""

    def __init__(self, instruments: Sequence[Any]) -> None:
        self.registry = InstrumentRegistry([perp(), perp("derive"), *instruments])
        self.market = MarketState(self.registry)
        self.flow = OrderFlow(self.registry, self.market, lambda _: None)
        self.router: MarketRouter[StrategySlot] = MarketRouter()
        self.ids = ClientOrderIds("t")
        self.log = structlog.get_logger("test")
        self.catalogs: dict[str, Any] = {}
        self.clock = Clock()
        self.fit = FakeFit()
        self.surfaces = SurfaceService(
            self.market, self.registry, SurfaceSettings(), self.clock, fit=self.fit
        )

    def book(self, venue: str, instrument: str) -> None:
        return None

    def fee_model(self, venue: str) -> None:
        return None


class Ctx(BaseContext):
    def __init__(self, host: Host, venues: Sequence[str]) -> None:
        super().__init__("s", host, venues)
        self._clock = host.clock

    def now_ns(self) -> int:
        return self._clock()

    async def sleep(self, seconds: float) -> None:
        raise NotImplementedError

    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        raise NotImplementedError

    async def cancel_order(self, client_order_id: str) -> OrderUpdate:
        raise NotImplementedError

    async def edit_order(
        self,
        client_order_id: str,
        *,
        price: Decimal | int | str | None = None,
        size: Decimal | int | str | None = None,
    ) -> OrderUpdate:
        raise NotImplementedError


DERIVE = [option(k, E2, venue="derive") for k in (85_000, 90_000, 95_000)]
ETH = [option(k, E2, base="ETH") for k in (3_000, 3_500)]


@pytest.fixture
def host() -> Host:
    return Host([*CHAIN, *DERIVE, *ETH])


def context(host: Host, venues: Sequence[str] = ("deribit", "derive")) -> tuple[Ctx, StrategySlot]:
    strategy = Idle("s")
    slot = host.router.add(host.router.new_slot(strategy))
    ctx = Ctx(host, venues)
    strategy.attach(ctx)
    return ctx, slot


def tickers_of(slot: StrategySlot, venue: str) -> set[str]:
    return {i for v, i, kind in slot.keys if v == venue and kind is DataKind.TICKER}


def test_the_one_venue_listing_options_of_the_underlying_is_meant(host: Host) -> None:
    ctx, _ = context(host)
    feed(host.market, CHAIN, T0)
    feed(host.market, ETH, T0)
    eth = ctx.surface("ETH")  # options of ETH: on deribit only
    assert eth is not None and (eth.venue, eth.underlying) == ("deribit", "ETH")
    btc = ctx.surface("BTC", venue="deribit")
    assert btc is not None and (btc.venue, btc.underlying) == ("deribit", "BTC")


def test_a_venue_that_cannot_be_meant_is_refused_naming_the_choices(host: Host) -> None:
    ctx, _ = context(host)
    with pytest.raises(
        StrategyError, match=r"options of 'BTC' are listed on deribit, derive: name one \(venue=\.\.\.\)"
    ):
        ctx.surface("BTC")
    with pytest.raises(
        StrategyError, match=r"no configured venue lists options of 'SOL' \(configured: deribit, derive\)"
    ):
        ctx.surface("SOL")
    with pytest.raises(
        StrategyError, match=r"'binance': the venue is not configured \(configured: deribit, derive\)"
    ):
        ctx.surface("BTC", venue="binance")
    # A venue listing options that this engine does not trade on is no choice.
    only, _ = context_named(host, ("deribit",))
    assert only.surface("BTC") is None  # deribit's chain, nothing quoted yet


def context_named(host: Host, venues: Sequence[str]) -> tuple[Ctx, StrategySlot]:
    strategy = Idle("other")
    slot = host.router.add(host.router.new_slot(strategy))
    ctx = Ctx(host, venues)
    ctx.strategy = "other"
    strategy.attach(ctx)
    return ctx, slot


def test_a_context_without_surfaces_says_so() -> None:
    """A context of another engine (a user's test double) need not implement the surface."""
    assert not {"surface", "surface_async"} & StrategyContext.__abstractmethods__
    with pytest.raises(StrategyError, match="no volatility surface in this engine"):
        StrategyContext.surface(object.__new__(Ctx), "BTC")


def test_the_first_call_subscribes_to_the_chains_active_options_tickers(host: Host) -> None:
    host.registry.add(option(105_000, E2, active=False))
    host.registry.add(option(110_000, T0 - 1))  # expired
    ctx, slot = context(host)
    assert tickers_of(slot, "deribit") == set()
    ctx.surface("BTC", venue="deribit")
    assert tickers_of(slot, "deribit") == {i.symbol for i in CHAIN}
    assert {k for _, _, k in slot.keys} == {DataKind.TICKER}  # tickers only: no books, no trades
    assert tickers_of(slot, "derive") == set()  # the other chain is not asked for
    # Listed later: subscribed at the next call; nothing else changes.
    new = option(102_500, E2)
    host.registry.add(new)
    ctx.surface("BTC", venue="deribit")
    assert tickers_of(slot, "deribit") == {i.symbol for i in CHAIN} | {new.symbol}
    # Another strategy's subscriptions are its own.
    other, other_slot = context_named(host, ("deribit", "derive"))
    assert tickers_of(other_slot, "deribit") == set()
    other.surface("BTC", venue="derive")
    assert tickers_of(other_slot, "derive") == {i.symbol for i in DERIVE}


def test_a_strategy_that_unsubscribed_is_not_subscribed_again_while_the_listing_is_the_same(
    host: Host,
) -> None:
    ctx, slot = context(host)
    ctx.surface("BTC", venue="deribit")
    ctx.unsubscribe([Subscription("deribit", CHAIN[0].symbol, {DataKind.TICKER})])
    ctx.surface("BTC", venue="deribit")
    assert CHAIN[0].symbol not in tickers_of(slot, "deribit")


async def test_surface_async_is_the_same_surface_inline(host: Host) -> None:
    ctx, _ = context(host)
    feed(host.market, CHAIN, T0)
    first = await ctx.surface_async("BTC", venue="deribit")
    assert first is not None and ctx.surface("BTC", venue="deribit") is first
    assert len(host.fit.calls) == 1
