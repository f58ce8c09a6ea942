"""The Strategy interface and the context through which a strategy acts.

A strategy is a plain class:

    class MyStrategy(Strategy):
        def required_subscriptions(self):
            return [Subscription("deribit", "BTC-PERPETUAL")]

        async def on_event(self, event):
            if isinstance(event, Ticker) and event.bid is not None:
                await self.ctx.buy("deribit", "BTC-PERPETUAL", 10, price=event.bid)

The engine gives it a `StrategyContext` (`self.ctx`) before `on_start`. The same strategy object
runs live and in backtests: only the context differs. Inside `on_event`, await only the context's
methods (`place_order`/`buy`/`sell`, `cancel_order`, `sleep`): they are what a backtest can
simulate on its clock.
"""

from __future__ import annotations

import abc
import difflib
import importlib
import traceback
from collections.abc import Iterable
from decimal import Decimal
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import attrs
import trio

from ..model.errors import StrategyError
from ..model.events import Liquidity, MarketEvent, OrderUpdate, Side, Subscription, Ticker
from ..model.orders import OrderRequest, TimeInForce, limit_or_market

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from ..model.book import OrderBook
    from ..model.filter import InstrumentFilter
    from ..model.instruments import Instrument
    from ..model.ledger import PositionView
    from ..surface.model import VolSurface
    from ..venue.catalog import MarketCatalog

__all__ = [
    "FailurePolicy",
    "Strategy",
    "StrategyContext",
    "StrategyFailure",
    "available_strategies",
    "load_strategy_class",
    "split_strategy_fault",
]

# What happens to a failed strategy's open orders (`on_failure` of `[[strategies]]`).
FailurePolicy = Literal["cancel", "leave"]
Phase = Literal["on_start", "on_event", "on_stop"]


@attrs.frozen
class StrategyFailure:
    """Why a strategy was stopped: the hook that raised, the exception's type and its message
    (already redacted: it goes to the status file and the backtest result as is)."""

    phase: Phase
    error: str
    message: str
    ts_ns: int

    def as_dict(self) -> dict[str, Any]:
        return {"phase": self.phase, "error": self.error, "message": self.message, "ts_ns": self.ts_ns}


def split_strategy_fault(exc: BaseException) -> tuple[BaseException | None, BaseException | None]:
    """What strategy code raised, split into (trio's cancellation, the strategy's own fault).

    Cancellation is the engine's (a shutdown, a timeout): it always propagates. Everything else
    is the strategy's fault, `SystemExit` and `KeyboardInterrupt` included: real signals reach
    the daemon through its signal task (`trio.open_signal_receiver`), never as an exception
    inside a strategy, so one raised there is the strategy's own doing and must stop only it.
    An exception group (a strategy's own nursery) is split the same way."""
    if isinstance(exc, trio.Cancelled):
        return exc, None
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.Cancelled)
    return None, exc


class StrategyContext(abc.ABC):
    """What a strategy may do and see. One per strategy; built by the engine for the mode."""

    strategy: str
    log: FilteringBoundLogger

    # -- time -------------------------------------------------------------------------------
    @abc.abstractmethod
    def now_ns(self) -> int:
        """Current time in ns since the epoch: wall clock live, simulated clock in backtests."""

    @abc.abstractmethod
    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of (simulated, in backtests) time."""

    # -- orders -----------------------------------------------------------------------------
    @abc.abstractmethod
    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        """Send an order and wait for the venue's first answer (accepted, filled, ...).

        The client order id and strategy are filled in when left empty. Raises `OrderRejected`
        when the order is known not placed: refused by a pre-trade check (`OrderDenied`) or by
        the venue (`VenueRejected`). Raises `OrderOutcomeUnknown` when it was sent and no answer
        came (a timeout, a connection lost): it may rest or have filled; it stays tracked, its
        events still arrive through `on_event`, and it is never sent again. If the caller is
        cancelled after the order has been handed over, the order is still tracked to a final
        state and its events still arrive through `on_event`.
        """

    @abc.abstractmethod
    async def cancel_order(self, client_order_id: str) -> OrderUpdate:
        """Cancel one of this strategy's orders and wait for the venue's answer. Cancels go
        ahead of queued new orders and edits. Raises `OrderRejected` when the cancel is known
        not done (the order is as it was) and `OrderOutcomeUnknown` when no answer came."""

    @abc.abstractmethod
    async def edit_order(
        self,
        client_order_id: str,
        *,
        price: Decimal | int | str | None = None,
        size: Decimal | int | str | None = None,
    ) -> OrderUpdate:
        """Give a resting order a new price and/or size (pre-trade checks first) and wait for the
        venue's answer. A new price loses the order's place in the queue. Raises as
        `place_order` does."""

    async def order(
        self,
        side: Side | str,
        venue: str,
        instrument: str,
        size: Decimal | int | str,
        price: Decimal | int | str | None = None,
        *,
        time_in_force: TimeInForce | str = TimeInForce.GTC,
        post_only: bool = False,
        reduce_only: bool = False,
        tag: str = "",
    ) -> OrderUpdate:
        """`place_order` for the common case: a limit order at `price`, or a market order when
        `price` is None. `tag`: the strategy's note on why (see `OrderRequest.tag`)."""
        # The converters take strings and ints too (`limit_or_market` is `OrderRequest(...)`).
        return await self.place_order(
            limit_or_market(venue, instrument, side, size, price, time_in_force, post_only, reduce_only, tag)
        )

    async def buy(
        self,
        venue: str,
        instrument: str,
        size: Decimal | int | str,
        price: Decimal | int | str | None = None,
        **kw: Any,
    ) -> OrderUpdate:
        """Buy `size` at `price`, or at market when `price` is None (options as for `order`)."""
        if not kw and getattr(self.order, "__func__", None) is _ORDER:
            # `order`'s steps with its defaults, here: a coroutine less to start and to pass
            # through on every step of it (the context's `order` is `StrategyContext.order`).
            return await self.place_order(
                limit_or_market(venue, instrument, _BUY, size, price, _GTC, False, False, "")
            )
        return await self.order(Side.BUY, venue, instrument, size, price, **kw)

    async def sell(
        self,
        venue: str,
        instrument: str,
        size: Decimal | int | str,
        price: Decimal | int | str | None = None,
        **kw: Any,
    ) -> OrderUpdate:
        """Sell `size` at `price`, or at market when `price` is None (options as for `order`)."""
        if not kw and getattr(self.order, "__func__", None) is _ORDER:  # as `buy`
            return await self.place_order(
                limit_or_market(venue, instrument, _SELL, size, price, _GTC, False, False, "")
            )
        return await self.order(Side.SELL, venue, instrument, size, price, **kw)

    @abc.abstractmethod
    def open_orders(self, venue: str | None = None, instrument: str | None = None) -> list[OrderUpdate]:
        """This strategy's orders that can still trade, as snapshots."""

    # -- what it holds and sees ------------------------------------------------------------
    @abc.abstractmethod
    def position(self, venue: str, instrument: str) -> Decimal:
        """Net position in the instrument's size unit (positive long), from this strategy's fills."""

    @abc.abstractmethod
    def positions(self) -> PositionView:
        """All of this strategy's positions and its PnL so far, in USD.

        Its money fields (`positions`, `realized_pnl`, `unrealized_pnl`, `fees`, `funding`,
        `net_pnl`) are `Decimal`, exact, no longer floats: a change of the strategy API
        (`float(view.net_pnl)` where a float is needed; mixing one with a float raises
        TypeError). `waiting_fills` counts fills whose USD value waits for a first USD rate:
        their quantities are in `positions`, their PnL not yet."""

    @abc.abstractmethod
    def instrument(self, venue: str, symbol: str) -> Instrument | None:
        """The instrument's definition (tick size, min size, expiry...), None when unknown."""

    @abc.abstractmethod
    def instruments(self, venue: str) -> list[Instrument]:
        """Every instrument known on `venue` (from its instrument list), in a stable order."""

    @abc.abstractmethod
    def select(self, instruments: InstrumentFilter, venue: str | None = None) -> list[Instrument]:
        """The instruments a filter selects now (see `InstrumentFilter`): among every venue's
        known instruments (or `venue`'s), at the strategy's clock, with `strike_within` measured
        from the latest index price of each currency. Raises `ValueError` when that needs an
        index price not seen yet."""

    @abc.abstractmethod
    def last_ticker(self, venue: str, instrument: str) -> Ticker | None:
        """The latest ticker the engine has seen for the instrument (any strategy's feed)."""

    @abc.abstractmethod
    def book(self, venue: str, instrument: str) -> OrderBook | None:
        """The live book of the instrument when one is maintained. Read it, never change it."""

    def fee(
        self,
        venue: str,
        instrument: str,
        price: Decimal | int | str,
        size: Decimal | int | str,
        *,
        liquidity: Liquidity | str = Liquidity.TAKER,
    ) -> tuple[Decimal, str]:
        """(fee, currency) the venue's fee schedule (with the config's `fees` overrides) charges
        for executing `size` at `price` as `liquidity`: what a backtest and paper mode book, and
        what the venue is expected to charge live. A negative fee is a rebate. Raises
        `StrategyError` for an unknown instrument or a venue without a fee schedule here."""
        raise StrategyError(f"no fee schedule for {venue!r} in this engine")

    def catalog(self, venue: str) -> MarketCatalog:
        """The market catalog of `venue` (Polymarket: every market, searchable), to discover
        instruments at run time. Raises `StrategyError` when the engine has none for it."""
        raise StrategyError(f"no market catalog for {venue!r} in this engine")

    # -- the volatility surface ------------------------------------------------------------
    def surface(self, underlying: str, *, venue: str | None = None) -> VolSurface | None:
        """The volatility surface of `underlying`'s options on `venue` (engine.surface): IV,
        prices, Greeks and probabilities at any strike and time inside it. None while no expiry
        of the chain could be fitted (live: its tickers are still coming).

        `venue` None: the one configured venue that lists options of `underlying`; none or
        several raise `StrategyError` naming them. The first call for a chain subscribes this
        strategy to the tickers of the chain's active options (its `on_event` receives them; live,
        the venue streams them), and so do options listed later. The surface is refitted when the
        chain's tickers changed and `[surface] min_refit_interval_s` of event time passed since
        this strategy last looked at it: each strategy follows a chain on its own (its surfaces
        depend on the data and its own calls, not on other strategies'). In a backtest the fit
        runs in the call (deterministic). Live this call cannot wait for a thread: it fits in the
        call only the chain's first surface, and starts later refits in a worker thread in the
        background (a later call sees them); use `surface_async` to await a due refit."""
        raise StrategyError("no volatility surface in this engine")

    async def surface_async(self, underlying: str, *, venue: str | None = None) -> VolSurface | None:
        """`surface`, a due refit awaited: live it runs in a worker thread (the event loop goes on;
        at most one fit per chain at a time: a caller finding one running gets the latest surface
        at once); in a backtest it runs in the call, as `surface`."""
        return self.surface(underlying, venue=venue)

    # -- subscriptions ----------------------------------------------------------------------
    @abc.abstractmethod
    def subscribe(self, subscriptions: Iterable[Subscription]) -> None:
        """Add market data while running; the venue connection's merged set follows."""

    @abc.abstractmethod
    def unsubscribe(self, subscriptions: Iterable[Subscription]) -> None:
        """Drop market data this strategy no longer needs."""


# What `buy` and `sell` check and pass (module constants: no attribute lookups per order).
_ORDER = StrategyContext.order
_BUY = Side.BUY
_SELL = Side.SELL
_GTC = TimeInForce.GTC


class Strategy(abc.ABC):
    """Base class of strategies. Subclasses implement `on_event`, usually
    `required_subscriptions`, and optionally the hooks and a `Params` attrs class (the engine
    builds it from the TOML table `[strategies.params]` and passes it as `params`)."""

    Params: ClassVar[type[Any] | None] = None

    def __init__(self, name: str, params: Any = None) -> None:
        self.name = name
        self.params = params
        self._ctx: StrategyContext | None = None

    @property
    def ctx(self) -> StrategyContext:
        if self._ctx is None:
            raise StrategyError(f"strategy {self.name!r} has no context yet: it is attached before on_start")
        return self._ctx

    def attach(self, ctx: StrategyContext) -> None:
        """Called by the engine once, before `on_start`."""
        self._ctx = ctx

    def required_subscriptions(self) -> Iterable[Subscription]:
        """Market data this strategy needs from the start. More can be added at run time with
        `self.ctx.subscribe`."""
        return ()

    async def on_start(self) -> None:  # noqa: B027  (a hook: doing nothing is a valid default)
        """Called once before the first event, when the venues' instruments are known (live:
        once every venue is connected; in a backtest: after the recording's opening)."""

    @abc.abstractmethod
    async def on_event(self, event: MarketEvent) -> None:
        """Called for every event routed to this strategy, one at a time, in order."""

    async def on_stop(self) -> None:  # noqa: B027
        """Called once after the last event (end of a backtest, daemon shutdown)."""


# -- discovery: a strategy class by entry-point name or `module:Class` --------------------------


def available_strategies() -> list[str]:
    return sorted(ep.name for ep in entry_points(group="tradingd.strategies"))


def _did_you_mean(name: str, names: Iterable[str]) -> str:
    """`; did you mean 'gamma_scalp'?` for a misspelt name, or nothing when none is close."""
    close = difflib.get_close_matches(name, list(names), n=3, cutoff=0.6)
    if not close:
        # Case aside (`buythedip`), the user meant it.
        close = [n for n in names if n.lower() == name.lower()]
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def load_strategy_class(spec: str) -> type[Strategy]:
    """A strategy class from an entry-point name (`gamma_scalp`) or a `module:Class` path."""
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError as exc:
            raise StrategyError(f"cannot import strategy module {module_name!r}: {exc}") from exc
        except SyntaxError as exc:
            # The user's own file, not ours: where, and what Python says (one line).
            raise StrategyError(
                f"strategy module {module_name!r} does not compile: {exc.msg} "
                f"({exc.filename}, line {exc.lineno})"
            ) from exc
        except Exception as exc:
            # Running the module raised: name the line of the user's code that did.
            frames = traceback.extract_tb(exc.__traceback__)
            last = frames[-1] if frames else None
            at = f" ({last.filename}, line {last.lineno})" if last else ""
            raise StrategyError(
                f"importing strategy module {module_name!r} raised {type(exc).__name__}: {exc}{at}"
            ) from exc
        module = obj
        for part in attr.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                # The strategies the module defines are the names its author meant to type.
                names = [
                    n
                    for n, v in vars(module).items()
                    if isinstance(v, type) and issubclass(v, Strategy) and v is not Strategy
                ]
                raise StrategyError(
                    f"module {module_name!r} has no {attr!r}{_did_you_mean(attr, names)}"
                ) from None
    else:
        for ep in entry_points(group="tradingd.strategies"):
            if ep.name == spec:
                obj = ep.load()
                break
        else:
            names = available_strategies()
            known = ", ".join(names) or "none installed"
            module_name, dot, attr = spec.rpartition(".")
            # `my_strategies.BuyTheDip` is a path written with a dot where the colon goes.
            hint = f"; did you mean '{module_name}:{attr}'?" if dot else _did_you_mean(spec, names)
            raise StrategyError(f"unknown strategy {spec!r}{hint} (known: {known}; or use module:Class)")
    if not (isinstance(obj, type) and issubclass(obj, Strategy)):
        raise StrategyError(f"{spec!r} is not a Strategy subclass")
    return obj
