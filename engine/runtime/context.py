"""What live and backtest strategy contexts share: naming orders, positions, instruments,
subscriptions. A mode supplies how an order reaches its venue and how time passes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, ClassVar, Protocol

import attrs
import structlog

from ..model.book import OrderBook
from ..model.errors import OrderDenied, OrderRejected, StrategyError
from ..model.events import DataKind, Liquidity, OrderState, OrderUpdate, Subscription, Ticker
from ..model.fees import FeeModel
from ..model.filter import InstrumentFilter
from ..model.instruments import Instrument
from ..model.ledger import PositionView
from ..model.money import to_decimal
from ..model.orders import ClientOrderIds, Order, OrderRequest
from ..surface.model import VolSurface
from ..surface.service import SurfaceService
from ..venue.catalog import MarketCatalog
from .flow import OrderFlow
from .router import MarketRouter
from .strategy import StrategyContext

__all__ = ["BaseContext", "ContextHost"]


class ContextHost(Protocol):
    """What a mode's engine (the live engine, the backtest kernel) lends the context of each of
    its strategies."""

    @property
    def flow(self) -> OrderFlow: ...
    @property
    def router(self) -> MarketRouter[Any]: ...
    @property
    def ids(self) -> ClientOrderIds: ...
    @property
    def log(self) -> structlog.typing.FilteringBoundLogger: ...
    @property
    def catalogs(self) -> Mapping[str, MarketCatalog]: ...
    @property
    def surfaces(self) -> SurfaceService: ...
    def book(self, venue: str, instrument: str) -> OrderBook | None: ...
    def fee_model(self, venue: str) -> FeeModel | None: ...


def _plain(field: attrs.Attribute[Any]) -> bool:
    return field.converter is None and field.validator is None


_FIELDS: tuple[str, ...] = tuple(a.name for a in attrs.fields(OrderRequest))
# `_named` copies a request field by field instead of `attrs.evolve`, which builds the whole
# request again through its converters and checks (about 3x the cost, once per order). That is
# the same request only while the two fields it changes are plain ones, which nothing converts,
# validates or checks in `__attrs_post_init__` (it reads neither): checked here, at import, so
# that a converter or validator added to them one day brings `attrs.evolve` back.
_COPY_PLAIN: bool = all(
    _plain(getattr(attrs.fields(OrderRequest), name)) for name in ("client_order_id", "strategy")
)


def _copier() -> Callable[[OrderRequest, str, str], OrderRequest]:
    """The copy `_named` makes, as one straight-line function: each field read by name and
    written through its slot (no loop, no `getattr` by string, no `object.__setattr__` per
    field; about half the cost). Every field is copied, then the two named ones set, as before."""
    setters: list[Any] = []
    for name in _FIELDS:
        slot = next(k.__dict__[name] for k in OrderRequest.__mro__ if name in k.__dict__)
        setters.append(slot.__set__)
    named = {"client_order_id": "cid", "strategy": "strategy"}
    body = "".join(f"    s{i}(o, {named.get(name, f'request.{name}')})\n" for i, name in enumerate(_FIELDS))
    namespace: dict[str, Any] = {"new": object.__new__, "cls": OrderRequest}
    namespace.update((f"s{i}", s) for i, s in enumerate(setters))
    exec(f"def copy(request, cid, strategy):\n    o = new(cls)\n{body}    return o\n", namespace)
    built: Callable[[OrderRequest, str, str], OrderRequest] = namespace["copy"]
    return built


_copy = _copier()


def _named(request: OrderRequest, cid: str, strategy: str) -> OrderRequest:
    """`attrs.evolve(request, client_order_id=cid, strategy=strategy)`, cheaper (see above);
    tests/runtime/test_context_named.py compares the two."""
    if not _COPY_PLAIN or type(request) is not OrderRequest:
        return attrs.evolve(request, client_order_id=cid, strategy=strategy)
    return _copy(request, cid, strategy)


class BaseContext(StrategyContext):
    """The mode-independent part of a strategy's context: strategy `strategy` of `host`, which
    trades on `venues`."""

    # The final order states, for a mode's membership test (`state.is_final` is a property).
    final_states: ClassVar[frozenset[OrderState]] = frozenset(s for s in OrderState if s.is_final)

    def __init__(self, strategy: str, host: ContextHost, venues: Iterable[str]) -> None:
        self.strategy = strategy
        self.flow = host.flow
        self.router = host.router
        self.ids = host.ids
        self.venues = frozenset(venues)
        self._books: Callable[[str, str], OrderBook | None] = host.book
        self._fee_model: Callable[[str], FeeModel | None] = host.fee_model
        self.log = host.log.bind(strategy=strategy)
        self._catalogs = host.catalogs
        self._surfaces = host.surfaces
        # Per chain (venue, underlying): its options' tuple as last subscribed to (compared by
        # identity: the service hands out the same tuple while the listing is unchanged), and
        # the symbols subscribed.
        self._chains_followed: dict[tuple[str, str], tuple[tuple[str, ...], set[str]]] = {}

    def prepare(self, request: OrderRequest) -> OrderRequest:
        """The request as it will be tracked: named (client order id) and owned by this strategy.
        Refuses a venue this engine does not trade on."""
        cid = request.client_order_id or self.ids.next(self.strategy)
        if request.venue not in self.venues:
            raise OrderDenied(
                f"venue {request.venue!r} is not configured (configured: {', '.join(sorted(self.venues))})",
                venue=request.venue,
                instrument=request.instrument,
                client_order_id=cid,
            )
        strategy = self.strategy
        if request.client_order_id == cid and request.strategy == strategy:
            return request
        if _COPY_PLAIN and type(request) is OrderRequest:  # `_named`'s own test, without its call
            return _copy(request, cid, strategy)
        return _named(request, cid, strategy)

    def _own(self, client_order_id: str) -> Order:
        """This strategy's order `client_order_id`; `OrderRejected` when there is none."""
        order = self.flow.tracker.get(client_order_id)
        if order is None or order.request.strategy != self.strategy:
            raise OrderRejected(f"unknown order {client_order_id}", client_order_id=client_order_id)
        return order

    def open_orders(self, venue: str | None = None, instrument: str | None = None) -> list[OrderUpdate]:
        now = self.now_ns()
        return [
            o.snapshot(ts_local=now)
            for o in self.flow.tracker.open_orders(self.strategy)
            if (venue is None or o.request.venue == venue)
            and (instrument is None or o.request.instrument == instrument)
        ]

    def position(self, venue: str, instrument: str) -> Decimal:
        return self.flow.position(self.strategy, venue, instrument)

    def positions(self) -> PositionView:
        # Decimal money fields (a strategy-API change from floats): Strategy.positions says so.
        return self.flow.ledger(self.strategy).view()

    def instrument(self, venue: str, symbol: str) -> Instrument | None:
        return self.flow.registry.get(venue, symbol)

    def instruments(self, venue: str) -> list[Instrument]:
        return sorted((i for i in self.flow.registry if i.venue == venue), key=lambda i: i.symbol)

    def select(self, instruments: InstrumentFilter, venue: str | None = None) -> list[Instrument]:
        spots: dict[str, float] = {}
        for (v, base), price in self.flow.market.index.items():
            if venue is None or v == venue:
                spots.setdefault(base, price)
        pool = (i for i in self.flow.registry if venue is None or i.venue == venue)
        return instruments.select(pool, now_ns=self.now_ns(), spot=spots or None)

    def last_ticker(self, venue: str, instrument: str) -> Ticker | None:
        return self.flow.market.ticker(venue, instrument)

    def book(self, venue: str, instrument: str) -> OrderBook | None:
        return self._books(venue, instrument)

    def fee(
        self,
        venue: str,
        instrument: str,
        price: Decimal | int | str,
        size: Decimal | int | str,
        *,
        liquidity: Liquidity | str = Liquidity.TAKER,
    ) -> tuple[Decimal, str]:
        model = self._fee_model(venue)
        if model is None:
            raise StrategyError(
                f"no fee schedule for {venue!r} in this engine (venues: {sorted(self.venues)})"
            )
        inst = self.flow.registry.get(venue, instrument)
        if inst is None:
            raise StrategyError(f"unknown instrument {venue}:{instrument}: no fee to compute")
        index = self.flow.market.index.get((venue, inst.base))
        return model.fee(
            inst, to_decimal(price, "fee price"), to_decimal(size, "fee size"), Liquidity(liquidity), index
        )

    def catalog(self, venue: str) -> MarketCatalog:
        found = self._catalogs.get(venue)
        if found is None:
            raise StrategyError(
                f"no market catalog for {venue!r} in this engine (configured: {sorted(self._catalogs)})"
            )
        return found

    def surface(self, underlying: str, *, venue: str | None = None) -> VolSurface | None:
        venue = self._surface_venue(underlying, venue)
        self._follow_chain(underlying, venue)
        return self._surfaces.surface(underlying, venue, strategy=self.strategy)

    async def surface_async(self, underlying: str, *, venue: str | None = None) -> VolSurface | None:
        venue = self._surface_venue(underlying, venue)
        self._follow_chain(underlying, venue)
        return await self._surfaces.surface_async(underlying, venue, strategy=self.strategy)

    def _surface_venue(self, underlying: str, venue: str | None) -> str:
        """The venue whose `underlying` chain is meant (`StrategyContext.surface`)."""
        if venue is not None:
            if venue not in self.venues:
                raise StrategyError(
                    f"no surface of {underlying} on {venue!r}: the venue is not configured"
                    f" (configured: {', '.join(sorted(self.venues))})"
                )
            return venue
        listing = [v for v in self._surfaces.option_venues(underlying) if v in self.venues]
        if len(listing) == 1:
            return listing[0]
        if not listing:
            raise StrategyError(
                f"no configured venue lists options of {underlying!r}"
                f" (configured: {', '.join(sorted(self.venues))})"
            )
        raise StrategyError(
            f"options of {underlying!r} are listed on {', '.join(listing)}: name one (venue=...)"
        )

    def _follow_chain(self, underlying: str, venue: str) -> None:
        """Subscribe to the tickers of the chain's options not subscribed to yet (its first
        call: all of them; later, those listed since)."""
        symbols = self._surfaces.chain_symbols(underlying, venue, self.strategy)
        key = (venue, underlying)
        followed = self._chains_followed.get(key)
        if followed is not None and followed[0] is symbols:
            return
        done = followed[1] if followed is not None else set()
        new = [s for s in symbols if s not in done]
        if new:
            self.subscribe([Subscription(venue, s, {DataKind.TICKER}) for s in new])
            done.update(new)
        self._chains_followed[key] = (symbols, done)

    def subscribe(self, subscriptions: Iterable[Subscription]) -> None:
        self.router.subscribe(self.strategy, list(subscriptions))

    def unsubscribe(self, subscriptions: Iterable[Subscription]) -> None:
        self.router.unsubscribe(self.strategy, list(subscriptions))
