"""The simulators' own matching engine: one instrument's order book with price-time priority.

Venue-neutral on purpose (it imports nothing of `tradingd`): each venue simulator keeps its
clients' orders here and encodes what comes back (`Outcome`, `Match`) into its venue's frames,
so a matching rule is written once and witnessed by three wire protocols. Amounts and prices are
`Decimal` (exact money); a bad number is a `ValueError` raised before the book is touched, for
the venue layer to answer with its own error.

The book holds two kinds of resting orders:

- client orders, one `Resting` each, owned by whoever the venue says (an account, a subaccount,
  an API key);
- the synthetic market's liquidity (the generator's feed), owned by `MARKET`: ONE queue entry per
  price level per side, whose amount the feed replaces (`set_market_level`). Shrinking it keeps
  its place in the queue, growing it sends it to the back (a venue's usual rule for an amended
  order), 0 removes it. A client order arriving at a level where the market already rests queues
  behind it.

Rules, as the functions apply them:

- Priority: best price first; at a price, the earlier `seq` first (each entry gets a fresh `seq`
  when it enters a queue or loses its place).
- A taker (`submit`, a crossing `amend`) walks the opposite side while it crosses (a buy meets asks
  <= its limit; a market order meets any price) and trades with each maker at the MAKER's price.
- Self-trade (a maker with the taker's owner; `MARKET` never counts as anyone's own):
  "allow" trades with it; "cancel_maker" removes each own maker the walk reaches
  (`Outcome.cancelled_makers`) and goes on matching; "reject_taker" rejects the whole taker
  ("self_trade", nothing matched, nothing cancelled) when the walk, as "allow" would do it, would
  trade with an own order before the taker's amount is used up; own orders beyond the point the
  taker would stop do not count. The check runs before the book is touched.
- post_only: rejected ("post_only") if any order on the other side crosses its price, own orders
  included (a post-only order never takes, so it never gets to self-trade prevention).
- fok: rejected ("fill_or_kill") unless the whole amount fills now, under the order's self-trade
  mode (own makers that "cancel_maker" would remove do not count as liquidity). Checked before the
  book is touched: a rejected order cancels nothing.
- ioc: what does not fill at once is dropped (`Outcome.unfilled`). A market order (no price)
  never rests either, whatever its tif.
- The market's own levels never trade with each other: a crossed feed (its bid above its ask)
  just rests crossed. Client orders never rest crossed against anything: a crossing client order
  always trades, and the market's new liquidity trades with crossing client orders before it
  rests (`set_market_level`).
- `market_trade` (a public trade the feed printed) fills client orders only, without consuming
  the market's liquidity (the feed sends its own level changes). The queue model is conservative:
  a print at price P by an aggressive buyer means it swept every ask below P, so client asks
  strictly better than P fill first (best price, then time), up to the print's amount; at P
  itself, the market's amount resting AHEAD of a client order in the queue is assumed to have
  traded first, so the client order fills only with the print volume beyond it.

Invariants after every operation (the tests check them on random sequences): every resting order
has `remaining > 0` and `filled + remaining == amount`; no client order rests crossed; the
matches of one taker add up to at most its amount; each match's amount is exactly the decrease of
its maker's remaining.

Complexity: prices per side are a sorted list searched with `bisect` (a level is added or removed
in O(log n) comparisons plus a memmove), each level is an insertion-ordered dict seq -> `Resting`
(O(1) append, removal and head), and client orders are found by id in a dict.
"""

from __future__ import annotations

import bisect
import enum
import itertools
from collections.abc import Iterator
from decimal import Decimal
from typing import Final, Literal

import attrs

__all__ = ["MARKET", "Match", "OrderBook", "Outcome", "Resting", "SelfTrade", "Side", "TimeInForce"]

MARKET: Final = "market"
"""The owner of the synthetic market's liquidity (the feed's levels)."""

TimeInForce = Literal["gtc", "ioc", "fok"]
SelfTrade = Literal["allow", "reject_taker", "cancel_maker"]

_TIFS: Final = frozenset({"gtc", "ioc", "fok"})
_SELF_TRADE: Final = frozenset({"allow", "reject_taker", "cancel_maker"})
_ZERO: Final = Decimal(0)


class Side(enum.StrEnum):
    """An order's side (the simulators' own, not the engine's)."""

    BUY = "buy"
    SELL = "sell"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


@attrs.define
class Resting:
    """An order at rest in the book: a client's, or one level of the market's liquidity.

    `amount` is the order's total size and `filled` how much of it has traded; the book mutates
    `filled` (and, on an amend, `price`, `amount`, `seq`) in place, so a venue may keep the
    reference. `seq` orders the queue at a price: lower is earlier.
    """

    order_id: str
    owner: str
    side: Side
    price: Decimal
    amount: Decimal
    filled: Decimal
    seq: int
    post_only: bool = False

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.filled


@attrs.frozen
class Match:
    """One execution: the taker against one resting maker, at the maker's price.

    `side` is the taker's; `maker_remaining` is what the maker has left after this match (0: the
    maker is out of the book).
    """

    taker_id: str
    taker_owner: str
    maker_id: str
    maker_owner: str
    side: Side
    price: Decimal
    amount: Decimal
    maker_remaining: Decimal


@attrs.frozen
class Outcome:
    """What a `submit` or an `amend` did.

    `resting` is the order now in the book (None: filled, dropped or rejected). `rejected` says
    why nothing happened: "post_only", "fill_or_kill" or "self_trade" (for a rejected amend the
    order stays as it was, and `resting` is it). `unfilled` is the part neither matched nor
    resting (an IOC's or a market order's rest, a rejected order's whole amount).
    """

    matches: tuple[Match, ...]
    resting: Resting | None
    rejected: str | None
    cancelled_makers: tuple[Resting, ...]
    unfilled: Decimal

    @property
    def filled(self) -> Decimal:
        """The sum of the matches' amounts."""
        return sum((m.amount for m in self.matches), _ZERO)


def _check_number(name: str, value: object, *, allow_zero: bool = False) -> Decimal:
    """`value` as a finite positive Decimal (or zero, if allowed), else ValueError/TypeError."""
    if not isinstance(value, Decimal):
        raise TypeError(f"{name} must be a Decimal, not {type(value).__name__}")
    if not value.is_finite():
        raise ValueError(f"{name} must be finite: {value}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}: {value}")
    return value


def _crosses(taker_side: Side, limit: Decimal | None, maker_price: Decimal) -> bool:
    """Whether a taker on `taker_side` with `limit` (None: any price) may trade at `maker_price`."""
    if limit is None:
        return True
    return maker_price <= limit if taker_side is Side.BUY else maker_price >= limit


class OrderBook:
    """One instrument's book: client orders and the synthetic market's levels, price-time priority.

    All the rules are in the module docstring. Methods raise `ValueError` for a bad argument (a
    non-positive or non-finite amount or price, a duplicate order id, an amend to an amount not
    above what already filled) and `KeyError` for an amend of an unknown order id, always before
    the book changes.
    """

    def __init__(self, instrument: str) -> None:
        self.instrument = instrument
        # Per side: the prices with something resting, ascending (bids' best is the last, asks'
        # the first), and each price's queue, seq -> entry in time order.
        self._prices: dict[Side, list[Decimal]] = {Side.BUY: [], Side.SELL: []}
        self._queues: dict[Side, dict[Decimal, dict[int, Resting]]] = {Side.BUY: {}, Side.SELL: {}}
        self._orders: dict[str, Resting] = {}  # client orders only
        self._market: dict[tuple[Side, Decimal], Resting] = {}
        self._seq = itertools.count(1)
        self._print_seq = itertools.count(1)

    # -- queries -----------------------------------------------------------------------------

    def get(self, order_id: str) -> Resting | None:
        """The client order resting under `order_id`, or None."""
        return self._orders.get(order_id)

    def orders(self, owner: str | None = None) -> list[Resting]:
        """Resting client orders (of `owner`, if given), oldest first; `MARKET`: the market's levels."""
        if owner == MARKET:
            return sorted(self._market.values(), key=lambda r: r.seq)
        return [r for r in self._orders.values() if owner is None or r.owner == owner]

    def levels(
        self, side: Side, depth: int | None = None, *, clients: bool = True
    ) -> list[tuple[Decimal, Decimal]]:
        """Aggregated (price, amount) on `side`, best first, at most `depth` levels.

        `clients=False`: the market's liquidity only (what the feed shows)."""
        out: list[tuple[Decimal, Decimal]] = []
        for price in self._best_first(side):
            if depth is not None and len(out) >= depth:
                break
            queue = self._queues[side][price]
            if clients:
                total = sum((r.remaining for r in queue.values()), _ZERO)
            else:
                market = self._market.get((side, price))
                total = market.remaining if market is not None else _ZERO
            if total > 0:
                out.append((price, total))
        return out

    def best(self, side: Side) -> Decimal | None:
        """The best price resting on `side` (market liquidity included), or None."""
        prices = self._prices[side]
        if not prices:
            return None
        return prices[-1] if side is Side.BUY else prices[0]

    # -- client orders -----------------------------------------------------------------------

    def submit(
        self,
        *,
        order_id: str,
        owner: str,
        side: Side,
        amount: Decimal,
        price: Decimal | None = None,
        tif: TimeInForce = "gtc",
        post_only: bool = False,
        self_trade: SelfTrade = "allow",
    ) -> Outcome:
        """Match a new client order (price None: a market order) and rest what a GTC has left."""
        _check_number("amount", amount)
        if price is not None:
            _check_number("price", price)
        side = Side(side)
        if tif not in _TIFS:
            raise ValueError(f"unknown time in force: {tif!r}")
        if self_trade not in _SELF_TRADE:
            raise ValueError(f"unknown self-trade mode: {self_trade!r}")
        if owner == MARKET:
            raise ValueError(f"owner {MARKET!r} is the synthetic market's")
        if order_id in self._orders:
            raise ValueError(f"duplicate order id: {order_id!r}")
        if post_only and price is None:
            raise ValueError("a market order cannot be post-only")

        def rejected(reason: str) -> Outcome:
            return Outcome(matches=(), resting=None, rejected=reason, cancelled_makers=(), unfilled=amount)

        opposite = side.opposite
        if post_only and self._first_crossing(opposite, side, price) is not None:
            return rejected("post_only")
        if self_trade == "reject_taker" or tif == "fok":
            fillable, meets_own = self._plan(side, price, amount, owner, self_trade)
            if meets_own:
                return rejected("self_trade")
            if tif == "fok" and fillable < amount:
                return rejected("fill_or_kill")

        matches, cancelled, left = self._take(order_id, owner, side, price, amount, self_trade)
        resting: Resting | None = None
        unfilled = left
        if left > 0 and tif == "gtc" and price is not None:
            resting = Resting(
                order_id=order_id,
                owner=owner,
                side=side,
                price=price,
                amount=amount,
                filled=amount - left,
                seq=next(self._seq),
                post_only=post_only,
            )
            self._rest(resting)
            self._orders[order_id] = resting
            unfilled = _ZERO
        return Outcome(
            matches=tuple(matches),
            resting=resting,
            rejected=None,
            cancelled_makers=tuple(cancelled),
            unfilled=unfilled,
        )

    def cancel(self, order_id: str) -> Resting | None:
        """Take a client order out of the book; None if no such order rests."""
        order = self._orders.pop(order_id, None)
        if order is not None:
            self._unrest(order)
        return order

    def amend(self, order_id: str, *, price: Decimal | None = None, amount: Decimal | None = None) -> Outcome:
        """Change a resting client order's price and/or total amount (None: unchanged).

        An amount decrease alone keeps the order's place; a price change or an amount increase
        sends it to the back of its (new) level, and a new price that crosses matches as a GTC
        taker that allows self-trades. `amount` is the new total, so it must exceed `filled`
        (ValueError). A post-only order amended to a crossing price is rejected ("post_only") and
        stays as it was.
        """
        order = self._orders.get(order_id)
        if order is None:
            raise KeyError(order_id)
        new_price = order.price if price is None else _check_number("price", price)
        new_amount = order.amount if amount is None else _check_number("amount", amount)
        if new_amount <= order.filled:
            raise ValueError(f"amount {new_amount} is not above the filled {order.filled}")

        def outcome(matches: tuple[Match, ...] = (), resting: Resting | None = order) -> Outcome:
            return Outcome(
                matches=matches, resting=resting, rejected=None, cancelled_makers=(), unfilled=_ZERO
            )

        if new_price == order.price and new_amount <= order.amount:
            order.amount = new_amount  # a decrease (or nothing) keeps the place in the queue
            return outcome()
        if (
            order.post_only
            and new_price != order.price
            and self._first_crossing(order.side.opposite, order.side, new_price) is not None
        ):
            return Outcome(
                matches=(), resting=order, rejected="post_only", cancelled_makers=(), unfilled=_ZERO
            )

        self._unrest(order)
        del self._orders[order_id]
        order.price = new_price
        order.amount = new_amount
        matches, _, left = self._take(order_id, order.owner, order.side, new_price, order.remaining, "allow")
        order.filled = new_amount - left
        if left == 0:
            return outcome(tuple(matches), None)
        order.seq = next(self._seq)
        self._rest(order)
        self._orders[order_id] = order
        return outcome(tuple(matches), order)

    # -- the synthetic market ----------------------------------------------------------------

    def set_market_level(self, side: Side, price: Decimal, amount: Decimal) -> list[Match]:
        """Replace the market's amount at `price` on `side` (0 removes it).

        New liquidity that crosses resting client orders trades with them first, the market being
        the taker at each client's price (best price, then time); only the rest is set as the
        level. Shrinking keeps the level's place in the queue; growing sends it to the back.
        """
        side = Side(side)
        _check_number("price", price)
        _check_number("amount", amount, allow_zero=True)
        key = (side, price)
        current = self._market.get(key)
        # One id per level, kept while the level lives: Decimal("100") and Decimal("100.0") are
        # the same price and the same level.
        level_id = current.order_id if current is not None else f"{MARKET}:{side}:{price}"
        matches: list[Match] = []
        left = amount
        if left > 0:
            matches, _, left = self._take(level_id, MARKET, side, price, left, "allow", clients_only=True)
        if current is None:
            if left > 0:
                seq = next(self._seq)
                entry = Resting(
                    order_id=level_id,
                    owner=MARKET,
                    side=side,
                    price=price,
                    amount=left,
                    filled=_ZERO,
                    seq=seq,
                )
                self._market[key] = entry
                self._rest(entry)
        elif left == 0:
            del self._market[key]
            self._unrest(current)
        elif left < current.remaining:
            current.amount, current.filled = left, _ZERO  # keeps its seq: its place in the queue
        elif left > current.remaining:
            self._unrest(current)
            current.amount, current.filled = left, _ZERO
            current.seq = next(self._seq)
            self._rest(current)
        return matches

    def market_trade(self, side: Side, price: Decimal, amount: Decimal) -> list[Match]:
        """A public trade the feed printed: `side` (the aggressor's) took `amount` at `price`.

        Client orders on the other side at prices at least as good as `price` for the aggressor
        fill, best price first, then time, up to `amount`; at `price` itself the market's amount
        queued ahead of a client order is deemed to have traded first. The market's liquidity is
        not consumed (the feed sends its own level changes).
        """
        side = Side(side)
        _check_number("price", price)
        _check_number("amount", amount)
        taker_id = f"{MARKET}:trade:{next(self._print_seq)}"
        maker_side = side.opposite
        budget = amount
        matches: list[Match] = []
        for level_price in self._crossing_prices(maker_side, price):
            if budget <= 0:
                break
            at_print = level_price == price
            for maker in list(self._queues[maker_side][level_price].values()):
                if budget <= 0:
                    break
                if maker.owner == MARKET:
                    if at_print:
                        budget -= min(budget, maker.remaining)  # volume the market's queue place took
                    continue
                matches.append(self._fill(maker, taker_id, MARKET, side, min(budget, maker.remaining)))
                budget -= matches[-1].amount
        return matches

    # -- internals ---------------------------------------------------------------------------

    def _best_first(self, side: Side) -> Iterator[Decimal]:
        prices = self._prices[side]
        return reversed(prices) if side is Side.BUY else iter(prices)

    def _crossing_prices(self, maker_side: Side, limit: Decimal | None) -> Iterator[Decimal]:
        """The prices on `maker_side` a taker with `limit` may trade at, best first.

        Lazy, one bisection per level, so a taker that stops after two levels of a deep book does
        not copy the whole side; each step looks up the next price after the last one given, so
        the caller may remove levels (never add better ones) between steps."""
        prices = self._prices[maker_side]
        last: Decimal | None = None
        while True:
            if maker_side is Side.SELL:
                i = 0 if last is None else bisect.bisect_right(prices, last)
                if i >= len(prices) or (limit is not None and prices[i] > limit):
                    return
            else:
                i = len(prices) - 1 if last is None else bisect.bisect_left(prices, last) - 1
                if i < 0 or (limit is not None and prices[i] < limit):
                    return
            last = prices[i]
            yield last

    def _first_crossing(self, maker_side: Side, taker_side: Side, limit: Decimal | None) -> Decimal | None:
        best = self.best(maker_side)
        return best if best is not None and _crosses(taker_side, limit, best) else None

    def _makers(self, taker_side: Side, limit: Decimal | None) -> Iterator[Resting]:
        """The makers a taker meets, in priority order. Callers mutating the book stop iterating
        before they do, or work on the copies this takes per level."""
        maker_side = taker_side.opposite
        for level_price in self._crossing_prices(maker_side, limit):
            # a copy: the caller may take the maker it was given out of the level
            yield from list(self._queues[maker_side][level_price].values())

    def _plan(
        self, side: Side, limit: Decimal | None, amount: Decimal, owner: str, self_trade: SelfTrade
    ) -> tuple[Decimal, bool]:
        """A dry run: (how much would fill, whether "reject_taker" would reject it)."""
        left = amount
        for maker in self._makers(side, limit):
            if maker.owner == owner:
                if self_trade == "reject_taker":
                    return amount - left, True
                if self_trade == "cancel_maker":
                    continue
            left -= min(left, maker.remaining)
            if left == 0:
                break
        return amount - left, False

    def _take(
        self,
        taker_id: str,
        taker_owner: str,
        side: Side,
        limit: Decimal | None,
        amount: Decimal,
        self_trade: SelfTrade,
        *,
        clients_only: bool = False,
    ) -> tuple[list[Match], list[Resting], Decimal]:
        """Match a taker against the book; returns (matches, cancelled own makers, amount left).

        `clients_only`: skip the market's entries (the market as taker never meets itself)."""
        matches: list[Match] = []
        cancelled: list[Resting] = []
        left = amount
        for maker in self._makers(side, limit):
            if left == 0:
                break
            if clients_only and maker.owner == MARKET:
                continue
            if maker.owner == taker_owner and self_trade != "allow":
                # "reject_taker" was ruled out by the dry run before any call gets here.
                assert self_trade == "cancel_maker", self_trade
                self.cancel(maker.order_id)
                cancelled.append(maker)
                continue
            match = self._fill(maker, taker_id, taker_owner, side, min(left, maker.remaining))
            matches.append(match)
            left -= match.amount
        return matches, cancelled, left

    def _fill(self, maker: Resting, taker_id: str, taker_owner: str, side: Side, amount: Decimal) -> Match:
        """Trade `amount` of `maker` and take it out of the book when it is done."""
        maker.filled += amount
        if maker.remaining == 0:
            self._unrest(maker)
            if maker.owner == MARKET:
                del self._market[(maker.side, maker.price)]
            else:
                del self._orders[maker.order_id]
        return Match(
            taker_id=taker_id,
            taker_owner=taker_owner,
            maker_id=maker.order_id,
            maker_owner=maker.owner,
            side=side,
            price=maker.price,
            amount=amount,
            maker_remaining=maker.remaining,
        )

    def _rest(self, entry: Resting) -> None:
        queues = self._queues[entry.side]
        queue = queues.get(entry.price)
        if queue is None:
            queue = queues[entry.price] = {}
            bisect.insort(self._prices[entry.side], entry.price)
        queue[entry.seq] = entry

    def _unrest(self, entry: Resting) -> None:
        queues = self._queues[entry.side]
        queue = queues[entry.price]
        del queue[entry.seq]
        if not queue:
            del queues[entry.price]
            prices = self._prices[entry.side]
            del prices[bisect.bisect_left(prices, entry.price)]
