"""A simulated venue that fills orders honestly against the recorded market.

It is a venue: it names orders (`SIM-<n>` ids), answers with order reports and fills, and knows
nothing of strategies. The backtest kernel (and paper mode) calls it when an order *arrives*
(after the configured latency) and on every book update and trade of an instrument with resting
orders.

Fill rules:
- A marketable order (a market order, or a limit through the opposite best) takes liquidity
  level by level at each level's price, limited by the displayed size; what it takes is
  remembered (`consumed`) until the venue's feed updates that level, so two orders cannot take
  the same displayed size. A market order's unfilled rest is cancelled; IOC cancels the rest; FOK
  fills only if the whole size is available within its limit, else nothing; post-only is
  rejected if it would take.
- A resting limit order fills (as maker, at its own price) when a trade on the other side prints
  at its price or better, limited by the trade's size, or when the opposite side of the book moves
  onto or through its price, limited by the size displayed there. With `queue_ahead`, a resting
  order first waits for the size displayed at its price when it arrived to trade ahead of it.
- Sizes are floored to the instrument's minimum size; fees come from the venue's fee model.
- No order is taken on an instrument past its expiry or no longer active (a resolved market):
  refused (`instrument_expired`, `instrument_not_active`), as the venue refuses it, never
  filled against the last book recorded before; nor does a resting order fill there (on a
  frame past the expiry, before the caller ends its orders). An edit that would make a post-only order
  take is refused (`post_only_reject`), as a new post-only order that would take is.
- An outcome token (a prediction market's share) is held, not margined: a sell of more shares
  than the account holds (from this venue's fills), less what its resting sells hold, is refused
  (`not_enough_balance`), as Polymarket refuses it ("not enough balance / allowance"): the
  account (this venue, one wallet) never holds a short position in a share. The check is per
  account, not per strategy, as Polymarket's is per wallet: a strategy may sell shares another
  strategy of the account bought (A buys 10, B sells 10: filled), and its own ledger then shows
  it short what the other holds.
- Self-trading (only where the caller allows it, `submit(..., own=...)`: a venue account that
  lets its orders trade with each other): a new order first trades with the resting orders `own`
  picks that it reaches at a price better than the market's best (they are the top of the book),
  at their price; each match is one trade, one trade id for the maker's fill and the taker's.

What a book update can do is summed up per instrument (`reach`, kept by every method that
changes the resting orders or the consumed sizes): the replay loops read it to skip `on_book`
where the book's best levels reach no order and the update sets no level a fill consumed (most
updates of an instrument with orders: a bid resting under the best ask).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from decimal import Decimal

import attrs

from .book import OrderBook
from .errors import OrderRejected
from .events import (
    BookUpdate,
    Fill,
    Liquidity,
    OrderState,
    OrderUpdate,
    PrivateEvent,
    Side,
    Ticker,
    Trade,
)
from .fees import FeeModel
from .instruments import Instrument, InstrumentKind, InstrumentRegistry
from .money import from_float
from .orders import Order, OrderType, TimeInForce

__all__ = ["SimulatedVenue"]

_ZERO = Decimal(0)
_BUY, _SELL = Side.BUY, Side.SELL  # module constants, not enum lookups on the hot paths
# Order states, types, times in force and liquidities as module constants (`OrderState.X` is
# a class attribute lookup, ~0.1 us).
_CANCELLED = OrderState.CANCELLED
_EXPIRED = OrderState.EXPIRED
_FILLED = OrderState.FILLED
_OPEN = OrderState.OPEN
_PARTIALLY_FILLED = OrderState.PARTIALLY_FILLED
_REJECTED = OrderState.REJECTED
_MARKET = OrderType.MARKET
_IOC, _FOK, _GTD = TimeInForce.IOC, TimeInForce.FOK, TimeInForce.GTD
_MAKER, _TAKER = Liquidity.MAKER, Liquidity.TAKER
_OUTCOME = InstrumentKind.OUTCOME
_isfinite = math.isfinite


_Reach = tuple[int | None, int | None, dict[tuple[int, int], float] | None]
"""`SimulatedVenue.reach`'s summary of an instrument: best resting buy and sell ticks, consumed."""


def _d(x: float) -> Decimal:
    return from_float(x, "book")


@attrs.define(eq=False)
class _Resting:
    order: Order  # the engine's request (read-only here); state below is the venue's own
    order_id: str
    side: Side
    ticks: int
    price: Decimal
    size: Decimal
    filled: Decimal = _ZERO
    notional: Decimal = _ZERO
    queue_ahead: float = 0.0
    expire_at_ns: int | None = None

    @property
    def remaining(self) -> Decimal:
        return self.size - self.filled


class SimulatedVenue:
    """The matching side of one simulated venue (rules in the module docstring)."""

    def __init__(
        self,
        venue: str,
        registry: InstrumentRegistry,
        fees: FeeModel,
        books: Callable[[str], OrderBook | None],
        *,
        index: Callable[[str], float | None] = lambda base: None,
        tickers: Callable[[str], Ticker | None] = lambda symbol: None,
        queue_ahead: bool = False,
    ) -> None:
        self.venue = venue
        self.registry = registry
        self.fees = fees
        self.books = books
        self.index = index  # base currency -> index price, for fee schedules that need it
        self.tickers = tickers  # symbol -> its latest ticker (`underlying_price`)
        self.queue_ahead = queue_ahead
        self.resting: dict[str, list[_Resting]] = {}
        self._by_client: dict[str, _Resting] = {}
        self.consumed: dict[str, dict[tuple[int, int], float]] = {}
        # Per instrument with resting orders or consumed sizes (no other): None where every book
        # update may change something (queues ahead, which follow the book), else (the best
        # resting buy's ticks, the best resting sell's ticks, the instrument's `consumed` dict),
        # None for a side with no order and for nothing consumed. `book_reaches` reads it; each
        # public method that changes `resting` or `consumed` sets it again (`_resum`).
        self.reach: dict[str, _Reach | None] = {}
        self._ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        # The shares of each outcome token the account holds, from this venue's own fills.
        self.held: dict[str, Decimal] = {}

    # -- helpers ----------------------------------------------------------------------------
    # Every event about one of our orders says first whose order, where, and when (the simulated
    # venue reports at once: its time is the receive time), given by keyword (no mapping built
    # and unpacked per event: a fill and one to three reports each order).
    def _report(
        self,
        r: _Resting | None,
        order: Order,
        order_id: str,
        state: OrderState,
        now: int,
        filled: Decimal,
        notional: Decimal,
        reason: str | None = None,
    ) -> OrderUpdate:
        req = order.request
        return OrderUpdate(
            venue=self.venue,
            instrument=req.instrument,
            ts_exchange=now,
            ts_local=now,
            order_id=order_id,
            client_order_id=req.client_order_id,
            strategy=req.strategy,
            status=state,
            side=req.side,
            price=r.price if r is not None else req.price,
            size=req.size,
            filled_size=filled,
            avg_fill_price=(notional / filled) if filled > 0 else None,
            reason=reason,
        )

    def underlying_price(self, inst: Instrument) -> float | None:
        """What the fee schedules take for `inst`'s underlying (USD per base coin): the venue's
        index; before any, the instrument's own ticker's underlying price (or index), else the
        mid of a same-base perpetual of the venue (its ticker's, else its book's), first by
        symbol; None when none is known (a schedule's last resort: Deribit's, the strike)."""
        index = self.index(inst.base)
        if _usable(index):
            return index
        own = self.tickers(inst.symbol)
        if own is not None:
            for value in (own.underlying, own.index):
                if _usable(value):
                    return value
        perps = sorted(
            i.symbol
            for i in self.registry
            if i.venue == self.venue and i.kind is InstrumentKind.PERPETUAL and i.base == inst.base
        )
        for symbol in perps:
            ticker = self.tickers(symbol)
            mid = None if ticker is None else ticker.mid
            if mid is None or not _usable(mid):
                book = self.books(symbol)
                if book is not None:
                    bid, _, ask, _ = book.top()
                    mid = None if bid is None or ask is None else (bid + ask) / 2
            if _usable(mid):
                return mid
        return None

    def _fill(
        self,
        inst: Instrument,
        order: Order,
        order_id: str,
        price: Decimal,
        size: Decimal,
        liquidity: Liquidity,
        now: int,
        trade_id: str | None = None,
    ) -> Fill:
        fee, ccy = self.fees.fee(inst, price, size, liquidity, self.underlying_price(inst))
        req = order.request
        if inst.kind is _OUTCOME:  # shares held (a sell may not exceed them: `_unfunded`)
            held = self.held
            held[inst.symbol] = held.get(inst.symbol, _ZERO) + (size if req.side is _BUY else -size)
        return Fill(
            venue=self.venue,
            instrument=req.instrument,
            ts_exchange=now,
            ts_local=now,
            order_id=order_id,
            client_order_id=req.client_order_id,
            strategy=req.strategy,
            trade_id=trade_id or f"SIMT-{next(self._trade_ids)}",
            side=req.side,
            price=price,
            size=size,
            fee=fee,
            fee_currency=ccy,
            liquidity=liquidity,
        )

    @staticmethod
    def _closed(inst: Instrument, now: int) -> str | None:
        """Why the venue takes no order on `inst` at `now` (its expiry has come, or it is no
        longer active: a resolved market), else None. The last recorded book of such an
        instrument is still in memory, and an order that reached the venue after its expiry (sent
        before it, in flight) or after its market resolved would fill against it: a position the
        venue never opened, which no settlement closes. The venue refuses it."""
        if inst.expiry_ns is not None and now >= inst.expiry_ns:
            return "instrument_expired"
        if not inst.active:
            return "instrument_not_active"
        return None

    def _unfunded(self, inst: Instrument, size: Decimal, resting: _Resting | None = None) -> bool:
        """Whether a sell of `size` shares of the outcome token `inst` is more than the account
        holds less what its resting sells (other than `resting`) hold."""
        free = self.held.get(inst.symbol, _ZERO)
        for r in self.resting.get(inst.symbol, ()):
            if r.side is _SELL and r is not resting:
                free -= r.remaining
        return size > free

    def _not_open(self, order: Order) -> OrderRejected:
        """The venue's refusal of a cancel or an edit of an order that no longer rests."""
        return self._refused(order, "order is not open", "not_open_order")

    def _available(self, instrument: str, side_key: int, ticks: int, displayed: float) -> float:
        used = self.consumed.get(instrument)
        if not used:
            return displayed
        return displayed - used.get((side_key, ticks), 0.0)

    def _consume(self, instrument: str, side_key: int, ticks: int, amount: float) -> None:
        used = self.consumed.setdefault(instrument, {})
        used[(side_key, ticks)] = used.get((side_key, ticks), 0.0) + amount

    @staticmethod
    def _floor(size: Decimal, step: Decimal) -> Decimal:
        return (size / step).to_integral_value(rounding="ROUND_FLOOR") * step

    def _resum(self, instrument: str) -> None:
        """`reach[instrument]` from the resting orders and consumed sizes as they are now."""
        orders = self.resting.get(instrument)
        used = self.consumed.get(instrument) or None
        if orders and self.queue_ahead:
            self.reach[instrument] = None
        elif orders or used:
            buy: int | None = None
            sell: int | None = None
            for r in orders or ():
                if r.side is _BUY:
                    if buy is None or r.ticks > buy:
                        buy = r.ticks
                elif sell is None or r.ticks < sell:
                    sell = r.ticks
            self.reach[instrument] = (buy, sell, used)
        else:
            self.reach.pop(instrument, None)

    def book_reaches(self, update: BookUpdate) -> bool:
        """Whether `on_book(update)` (the update already applied to its book) may fill, forget or
        queue anything; when False it would return [] and change nothing. For an instrument in
        `reach` (the replay loops' skip; `_kernel.c` does the same on an exact `OrderBook`)."""
        entry = self.reach[update.instrument]
        if entry is None:
            return True
        book = self.books(update.instrument)
        if book is None:
            return False
        buy, sell, used = entry
        if used:  # the feed's levels replace what fills consumed: a snapshot, or a level it sets
            if update.snapshot:
                return True
            to_ticks = book.to_ticks
            for key, touched in ((0, update.bids), (1, update.asks)):
                for p, _ in touched:
                    if (key, to_ticks(p)) in used:
                        return True
        if not book.valid:
            return False
        if buy is not None:
            ask = book.best_ask_ticks
            if ask is not None and ask <= buy:
                return True
        if sell is not None:
            bid = book.best_bid_ticks
            if bid is not None and bid >= sell:
                return True
        return False

    def _opposite_levels(
        self, book: OrderBook, side: Side, limit: int | None = None
    ) -> tuple[int, list[tuple[int, float]]]:
        """(side key, levels best first) of the side an order of `side` trades against; with a
        `limit` (ticks), only the levels an order limited there reaches (those at or below it for
        a buy, at or above it for a sell: the best ones), without sorting the whole side."""
        # None reached (most orders: a bid that rests): told by the best level a plain book
        # keeps (the min of its asks, the max of its bids: `OrderBook.set_best`), without
        # scanning the side (hundreds of levels); another kind of book by its levels.
        plain = type(book) is OrderBook
        if side is _BUY:
            if limit is None:
                return 1, list(book.iter_asks())
            asks = book.asks
            if plain:
                best = book.best_ask_ticks
                if best is None or best > limit:
                    return 1, []
                if best == limit:  # the best level only (the ask moved onto a bid, say)
                    return 1, [(best, asks[best])]
            elif not asks or min(asks) > limit:
                return 1, []
            return 1, [(t, asks[t]) for t in sorted([t for t in asks if t <= limit])]
        if limit is None:
            return 0, list(book.iter_bids())
        bids = book.bids
        if plain:
            best = book.best_bid_ticks
            if best is None or best < limit:
                return 0, []
            if best == limit:
                return 0, [(best, bids[best])]
        elif not bids or max(bids) < limit:
            return 0, []
        return 0, [(t, bids[t]) for t in sorted([t for t in bids if t >= limit], reverse=True)]

    # -- order entry ------------------------------------------------------------------------
    def has_orders(self, instrument: str) -> bool:
        return bool(self.resting.get(instrument))

    def submit(
        self, order: Order, now: int, *, own: Callable[[Order], bool] | None = None
    ) -> list[PrivateEvent]:
        """An order arrives: match what it can, rest the rest (or not), and report. With `own`,
        it may trade with the resting orders `own` picks (self-trading, module docstring)."""
        req = order.request
        inst = self.registry.get(self.venue, req.instrument)
        order_id = f"SIM-{next(self._ids)}"
        if inst is None:
            return [
                self._report(
                    None,
                    order,
                    order_id,
                    _REJECTED,
                    now,
                    _ZERO,
                    _ZERO,
                    reason="invalid_or_unsupported_instrument",
                )
            ]
        closed = self._closed(inst, now)
        if closed is None and req.side is _SELL and inst.kind is _OUTCOME and self._unfunded(inst, req.size):
            closed = "not_enough_balance"
        if closed is not None:
            return [self._report(None, order, order_id, _REJECTED, now, _ZERO, _ZERO, reason=closed)]
        book = self.books(req.instrument)
        limit_ticks: int | None = None
        if req.price is not None:
            limit_ticks = book.to_ticks(float(req.price)) if book is not None else None
        # Only the levels the limit reaches, unless own resting orders may trade first: they are
        # checked against the market's best level, reached or not.
        side_key, levels = (
            self._opposite_levels(book, req.side, limit_ticks if own is None else None)
            if book is not None and book.valid
            else (0, [])
        )

        def crosses(ticks: int) -> bool:
            if limit_ticks is None:
                return True
            return ticks <= limit_ticks if req.side is _BUY else ticks >= limit_ticks

        # Our own resting orders better than the market's best come first (self-trading).
        mine: list[tuple[_Resting, Decimal]] = []
        total = _ZERO
        if own is not None:
            best = levels[0][0] if levels else None
            for r in sorted(
                (r for r in self.resting.get(req.instrument, ()) if r.side is not req.side and own(r.order)),
                key=lambda r: r.ticks,
                reverse=req.side is _SELL,  # the best price for the new order first
            ):
                better = best is None or (r.ticks < best if req.side is _BUY else r.ticks > best)
                if total >= req.size or not crosses(r.ticks) or not better:
                    break
                take = self._floor(min(req.size - total, r.remaining), inst.lot)
                if take > 0:
                    mine.append((r, take))
                    total += take
        takeable: list[tuple[int, Decimal]] = []
        for ticks, size in levels:
            if not crosses(ticks) or total >= req.size:
                break
            avail = self._available(req.instrument, side_key, ticks, size)
            if avail <= 0:
                continue
            take = self._floor(min(req.size - total, _d(avail)), inst.lot)
            if take > 0:
                takeable.append((ticks, take))
                total += take

        if req.post_only and (takeable or mine):
            return [
                self._report(None, order, order_id, _REJECTED, now, _ZERO, _ZERO, reason="post_only_reject")
            ]
        if req.time_in_force is _FOK and total < req.size:
            return [
                self._report(None, order, order_id, _CANCELLED, now, _ZERO, _ZERO, reason="fok_not_filled")
            ]

        events: list[PrivateEvent] = []
        filled = _ZERO
        notional = _ZERO
        for r, take in mine:  # one trade each: the resting order's fill, then the new order's
            trade_id = f"SIMT-{next(self._trade_ids)}"
            self._execute(inst, r, take, now, events, trade_id)
            events.append(self._fill(inst, order, order_id, r.price, take, _TAKER, now, trade_id))
            filled += take
            notional += take * r.price
        if mine:
            self._retire_filled(req.instrument)
        for ticks, take in takeable:
            price = _d(book.price_of(ticks)) if book is not None else _ZERO
            self._consume(req.instrument, side_key, ticks, float(take))
            events.append(self._fill(inst, order, order_id, price, take, _TAKER, now))
            filled += take
            notional += take * price

        if filled >= req.size:
            events.append(self._report(None, order, order_id, _FILLED, now, filled, notional))
            self._resum(req.instrument)
            return events
        tif = req.time_in_force
        if req.type is _MARKET or tif is _IOC or tif is _FOK:
            reason = "no_liquidity" if req.type is _MARKET else "ioc_remainder"
            events.append(self._report(None, order, order_id, _CANCELLED, now, filled, notional, reason))
            self._resum(req.instrument)
            return events
        assert req.price is not None
        ticks = limit_ticks if limit_ticks is not None else round(float(req.price) * 1e8)
        r = _Resting(
            order,
            order_id,
            req.side,
            ticks,
            req.price,
            req.size,
            filled,
            notional,
            expire_at_ns=req.expire_at_ns if tif is _GTD else None,
        )
        if self.queue_ahead and book is not None:
            same = book.bids if req.side is _BUY else book.asks
            r.queue_ahead = same.get(ticks, 0.0)
        self.resting.setdefault(req.instrument, []).append(r)
        self._by_client[req.client_order_id] = r
        self._resum(req.instrument)
        state = _PARTIALLY_FILLED if filled > 0 else _OPEN
        events.append(self._report(r, order, order_id, state, now, filled, notional))
        return events

    def cancel(self, order: Order, now: int) -> list[PrivateEvent]:
        """A cancel arrives. Refused (as the venue does) when the order is no longer open."""
        r = self._by_client.pop(order.client_order_id, None)
        if r is None:
            raise self._not_open(order)
        self.resting[order.request.instrument].remove(r)
        self._resum(order.request.instrument)
        return [
            self._report(r, order, r.order_id, _CANCELLED, now, r.filled, r.notional, reason="user_request")
        ]

    def edit(
        self, order: Order, now: int, *, price: Decimal | None, size: Decimal | None
    ) -> list[PrivateEvent]:
        """An edit arrives: the resting order takes its new price and/or size. A new price loses
        its place in the queue and may make it marketable (it then takes liquidity as a new order
        would), except a post-only order's: an edit that would make it take is refused
        (`post_only_reject`) and the order left as it was, as `submit` refuses a new one. Refused,
        as the venue does, when the order is no longer open, or its instrument takes no order any
        more (`_closed`)."""
        r = self._by_client.get(order.client_order_id)
        if r is None:
            raise self._not_open(order)
        instrument = order.request.instrument
        inst = self.registry.get(self.venue, instrument)
        closed = None if inst is None else self._closed(inst, now)
        if closed is not None:
            raise self._refused(order, f"instrument {instrument} takes no order: {closed}", closed)
        new_size = r.size if size is None else size
        if new_size < r.filled:
            raise self._refused(order, "new size below the filled size", "invalid_amount")
        if (
            r.side is _SELL
            and inst is not None
            and inst.kind is _OUTCOME
            and new_size > r.size
            and self._unfunded(inst, new_size - r.filled, r)
        ):
            raise self._refused(order, "not enough shares held for the new size", "not_enough_balance")
        if (
            order.request.post_only
            and price is not None
            and price != r.price
            and inst is not None
            and self._would_take(inst, r.side, price, new_size - r.filled)
        ):
            raise self._refused(
                order, "a post-only order's new price would take liquidity", "post_only_reject"
            )
        r.size = new_size
        events: list[PrivateEvent] = []
        if price is not None and price != r.price:
            book = self.books(order.request.instrument)
            r.price = price
            r.ticks = book.to_ticks(float(price)) if book is not None else round(float(price) * 1e8)
            r.queue_ahead = 0.0
            if self.queue_ahead and book is not None:
                same = book.bids if r.side is _BUY else book.asks
                r.queue_ahead = same.get(r.ticks, 0.0)
            inst = self.registry.get(self.venue, order.request.instrument)
            if inst is not None and book is not None and book.valid:
                self._take_as_taker(inst, r, book, now, events)
        done = r.filled >= r.size
        if done:
            self._retire_filled(order.request.instrument)
        self._resum(order.request.instrument)  # a new price, fills, consumed sizes
        if done:
            if not any(isinstance(e, OrderUpdate) for e in events):
                events.append(self._report(r, r.order, r.order_id, _FILLED, now, r.filled, r.notional))
            return events
        state = _PARTIALLY_FILLED if r.filled > 0 else _OPEN
        events.append(self._report(r, r.order, r.order_id, state, now, r.filled, r.notional))
        return events

    def _refused(self, order: Order, message: str, code: str) -> OrderRejected:
        """The venue's refusal of a request about `order` (a cancel or an edit), with its code
        (the venue's message is the code, as the venue simulators answer)."""
        return OrderRejected(
            message,
            venue=self.venue,
            instrument=order.request.instrument,
            client_order_id=order.client_order_id,
            code=code,
            venue_message=code,
        )

    def _would_take(self, inst: Instrument, side: Side, price: Decimal, remaining: Decimal) -> bool:
        """Whether an order of `side` at `price` for `remaining` would take liquidity now: some
        of the opposite side's displayed size it reaches is still available (not consumed), at
        least a lot of it (what `submit` counts as takeable)."""
        book = self.books(inst.symbol)
        if book is None or not book.valid or remaining <= 0:
            return False
        side_key, levels = self._opposite_levels(book, side, book.to_ticks(float(price)))
        for ticks, displayed in levels:
            avail = self._available(inst.symbol, side_key, ticks, displayed)
            if avail > 0 and self._floor(min(remaining, _d(avail)), inst.lot) > 0:
                return True
        return False

    def _take_as_taker(
        self, inst: Instrument, r: _Resting, book: OrderBook, now: int, out: list[PrivateEvent]
    ) -> None:
        """A resting order made marketable by an edit takes the opposite side up to its price."""
        side_key, levels = self._opposite_levels(book, r.side)
        for ticks, displayed in levels:
            if r.remaining <= 0:
                break
            if (r.side is _BUY and ticks > r.ticks) or (r.side is _SELL and ticks < r.ticks):
                break
            avail = self._available(inst.symbol, side_key, ticks, displayed)
            if avail <= 0:
                continue
            take = self._floor(min(r.remaining, _d(avail)), inst.lot)
            if take > 0:
                price = _d(book.price_of(ticks))
                self._consume(inst.symbol, side_key, ticks, float(take))
                r.filled += take
                r.notional += take * price
                out.append(self._fill(inst, r.order, r.order_id, price, take, _TAKER, now))

    def expire(self, now: int, instrument: str | None = None) -> list[PrivateEvent]:
        """Expire GTD orders whose time has come, or every order on `instrument` (its expiry)."""
        out: list[PrivateEvent] = []
        gone: set[str] = set()
        for name, orders in self.resting.items():
            for r in list(orders):
                if (instrument is not None and name == instrument) or (
                    r.expire_at_ns is not None and r.expire_at_ns <= now
                ):
                    orders.remove(r)
                    self._by_client.pop(r.order.client_order_id, None)
                    gone.add(name)
                    out.append(
                        self._report(
                            r,
                            r.order,
                            r.order_id,
                            _EXPIRED,
                            now,
                            r.filled,
                            r.notional,
                            reason="expired",
                        )
                    )
        for name in gone:
            self._resum(name)
        return out

    # -- market data ------------------------------------------------------------------------
    def _execute(
        self,
        inst: Instrument,
        r: _Resting,
        size: Decimal,
        now: int,
        out: list[PrivateEvent],
        trade_id: str | None = None,
    ) -> None:
        r.filled += size
        r.notional += size * r.price
        out.append(self._fill(inst, r.order, r.order_id, r.price, size, _MAKER, now, trade_id))
        done = r.filled >= r.size
        out.append(
            self._report(
                r,
                r.order,
                r.order_id,
                _FILLED if done else _PARTIALLY_FILLED,
                now,
                r.filled,
                r.notional,
            )
        )

    def _retire_filled(self, instrument: str) -> None:
        orders = self.resting[instrument]
        for r in [r for r in orders if r.filled >= r.size]:
            orders.remove(r)
            self._by_client.pop(r.order.client_order_id, None)

    def on_trade(self, trade: Trade, now: int) -> list[PrivateEvent]:
        """A public trade: fills resting orders on the other side at their price or better."""
        instrument = trade.instrument
        if not self.resting.get(instrument):
            return []
        # Most trades of an instrument with orders reach none: a trade fills only orders of
        # the other side, at its price or better, and `reach` holds the best of each side (no
        # entry where queues ahead change). Told here without the instrument's lookup;
        # tests/backtest/test_simvenue_fast.py holds this to `_trade` (the general path).
        entry = self.reach.get(instrument)
        if entry is not None:
            if not _isfinite(trade.price):  # no tick (NaN, inf): as the general path answers
                return self._trade(trade, now)
            side = trade.side
            best = entry[0] if side is _SELL else entry[1] if side is _BUY else None
            if best is None:
                return []
            book = self.books(instrument)
            if book is None:
                return []
            t_ticks = book.to_ticks(trade.price)
            if (t_ticks > best) if side is _SELL else (t_ticks < best):
                return []
        return self._trade(trade, now)

    def _trade(self, trade: Trade, now: int) -> list[PrivateEvent]:
        """`on_trade`'s general path: every resting order of the instrument, in turn."""
        orders = self.resting.get(trade.instrument)
        if not orders:
            return []
        inst = self.registry.get(self.venue, trade.instrument)
        book = self.books(trade.instrument)
        if inst is None or book is None or self._closed(inst, now) is not None:
            return []  # (a trade printed past the expiry fills nothing: `_closed`)
        t_ticks = book.to_ticks(trade.price)
        left = trade.size
        out: list[PrivateEvent] = []
        for r in orders:
            if left <= 0:
                break
            if r.side is _BUY:
                if trade.side is not _SELL or t_ticks > r.ticks:
                    continue
            elif trade.side is not _BUY or t_ticks < r.ticks:
                continue
            avail = left
            if t_ticks == r.ticks and r.queue_ahead > 0:  # touched, not traded through: queue first
                used = min(r.queue_ahead, avail)
                r.queue_ahead -= used
                avail -= used
            take = self._floor(min(r.remaining, _d(avail)), inst.lot) if avail > 0 else _ZERO
            if take > 0:
                left -= float(take)
                self._execute(inst, r, take, now, out)
        if out:
            self._retire_filled(trade.instrument)
            self._resum(trade.instrument)
        return out

    def on_book(self, update: BookUpdate, now: int) -> list[PrivateEvent]:
        """A book update: the feed's levels replace what fills had consumed, and resting orders
        that the opposite side now reaches are filled from the displayed size there."""
        instrument = update.instrument
        used = self.consumed.get(instrument)
        book = self.books(instrument)
        if used and book is not None:
            if update.snapshot:
                used.clear()
            else:
                # Only the sides something was taken from (a buy takes asks only): a level of
                # the other side names nothing to forget. `to_ticks` inline for a plain book.
                sides = (next(iter(used))[0],) if len(used) == 1 else {k for k, _ in used}
                to_ticks = book.to_ticks
                inv = book.inverse_quantum if type(book) is OrderBook else None
                for key, touched in ((0, update.bids), (1, update.asks)):
                    if key not in sides:
                        continue
                    forget = used.pop
                    if inv is not None:  # round(price x inverse quantum) is `to_ticks(price)`
                        for p, _ in touched:
                            forget((key, round(p * inv)), None)
                    else:
                        for p, _ in touched:
                            forget((key, to_ticks(p)), None)
            if not used:  # all forgotten: only the resting orders' prices matter again
                self._resum(instrument)
        orders = self.resting.get(instrument)
        if not orders or book is None or not book.valid:
            return []
        # The instrument is looked up once an order is reached (most updates reach none), or at
        # once where the queues ahead change on every update.
        queue_ahead = self.queue_ahead
        inst = self.registry.get(self.venue, instrument) if queue_ahead else None
        if queue_ahead and (inst is None or self._closed(inst, now) is not None):
            return []
        out: list[PrivateEvent] = []
        bb, ba = book.best_bid_ticks, book.best_ask_ticks
        for r in orders:
            if queue_ahead:
                same = book.bids if r.side is _BUY else book.asks
                r.queue_ahead = min(r.queue_ahead, same.get(r.ticks, 0.0))
            if r.side is _BUY:
                if ba is None or ba > r.ticks:
                    continue
            elif bb is None or bb < r.ticks:
                continue
            if inst is None:  # the first order reached; nothing changed before it
                inst = self.registry.get(self.venue, instrument)
                if inst is None or self._closed(inst, now) is not None:
                    return []  # past the expiry, the book's moves fill nothing (`_closed`)
            side_key, levels = self._opposite_levels(book, r.side, r.ticks)
            for ticks, size in levels:
                if r.remaining <= 0:
                    break
                avail = self._available(instrument, side_key, ticks, size)
                if avail <= 0:
                    continue
                take = self._floor(min(r.remaining, _d(avail)), inst.lot)
                if take > 0:
                    self._consume(instrument, side_key, ticks, float(take))
                    self._execute(inst, r, take, now, out)
        if out:
            self._retire_filled(instrument)
            self._resum(instrument)
        return out


def _usable(x: float | None) -> bool:
    return x is not None and 0 < x < math.inf
