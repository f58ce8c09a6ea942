"""Orders: the request a strategy makes, the tracked order and its explicit state machine.

The state machine (`Order.transition`) raises `IllegalTransition` on a move it forbids. The
`OrderTracker` sits between venues and strategies: venues report in whatever order their responses
and notifications arrive, and the tracker turns that into a sequence of legal transitions
(a fill seen before the acknowledgement still yields open -> partially_filled -> filled; a stale
"open" after "filled" is ignored and counted), deduplicating fills by trade id so that a fill
reported twice (in an order response and in a notification) is counted once. Trade ids are kept
per order: one trade may fill two orders of ours (a taker crossing two of our maker orders, our
own buy and sell crossing), and each order's fill of it is its own, as is its reversal.

The venue's word on an order wins over the state machine: a state ours cannot reach (open ->
rejected, cancelled -> filled, a fill on an order we had as rejected) is taken as the venue says
(`Order.force`), alerted at critical level with both states and counted (`venue_overrides`),
never raised: one odd answer must not stop the daemon. A report that goes back (a working state
after a final one, a smaller filled size) is only taken when it is `verified`: the venue's answer
to a question asked after everything we hold about the order (a reconciliation's read of one
order); on the channels it is a report that crossed a newer one on the way, ignored and counted.
"""

from __future__ import annotations

import enum
import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any, Final, Literal, Protocol

import attr
import attrs
import msgspec
import structlog

from .errors import IllegalTransition, OrderDenied
from .events import Fill, FillReversal, OrderState, OrderUpdate, PrivateEvent, Side
from .money import decimal_text, optional, to_decimal

__all__ = [
    "FINAL_REASONS",
    "ArchiveUnavailable",
    "ClientOrderIds",
    "FinalReason",
    "Order",
    "OrderArchive",
    "OrderRequest",
    "OrderTracker",
    "OrderType",
    "RestoredOrder",
    "TimeInForce",
]

# Why an order ended as it did, as a bounded class (never the venue's text): the venue's doing
# (a refusal, a cancel of its own), our pre-trade checks, a post-only order that would have
# taken, a cancel asked by the strategy (`user`), by the daemon's stop or by the kill switch, an
# order whose fate was learned only by asking (`state_unknown`), `other`, and `none` for an order
# that filled or expired as it should.
FinalReason = Literal[
    "venue", "risk", "post_only", "user", "shutdown", "kill_switch", "state_unknown", "other", "none"
]
FINAL_REASONS: Final[tuple[FinalReason, ...]] = (
    "venue",
    "risk",
    "post_only",
    "user",
    "shutdown",
    "kill_switch",
    "state_unknown",
    "other",
    "none",
)


class OrderType(enum.StrEnum):
    LIMIT = "limit"
    MARKET = "market"


class TimeInForce(enum.StrEnum):
    GTC = "gtc"  # good till cancelled
    GTD = "gtd"  # good till a date (`expire_at_ns`)
    IOC = "ioc"  # immediate or cancel: fill what can be, cancel the rest
    FOK = "fok"  # fill or kill: all at once or nothing


# The enum converters take a member as it is (what the strategy API passes: `Side.BUY`) without
# the enum's lookup (about 0.5 us each, three per order); anything else goes through it, so the
# same values are taken and the same errors raised.
def _side(v: str) -> Side:
    return v if type(v) is Side else Side(v)


def _order_type(v: str) -> OrderType:
    return v if type(v) is OrderType else OrderType(v)


def _time_in_force(v: str) -> TimeInForce:
    return v if type(v) is TimeInForce else TimeInForce(v)


def _size(v: object) -> Decimal:
    return to_decimal(v, "order size")


def _price(v: object) -> Decimal | None:
    return optional(v, "order price")


_TAG_MAX = 200  # characters of an order's `tag`: a note for people, not a payload


def _tag(_: object, __: object, value: object) -> None:
    # Free text a strategy writes (why it traded); it reaches log lines, the journal and the
    # report's tables, so it stays one short printable line. Refused, not trimmed: a strategy
    # that writes more has a bug to hear about.
    if type(value) is not str:
        raise TypeError(f"order tag: expected a string, got {type(value).__name__}")
    if value and (len(value) > _TAG_MAX or not value.isprintable()):
        what = f"{len(value)} characters" if len(value) > _TAG_MAX else "a character that is not printable"
        raise ValueError(f"order tag: expected at most {_TAG_MAX} printable characters, got {what}")


@attrs.frozen
class OrderRequest:
    """What a strategy asks for. `price` None means a market order.

    `client_order_id` and `strategy` are filled in by the strategy's context when left empty;
    the client order id is what the order is known by until (and after) the venue names it.
    `tag` is the strategy's own note on why it sent the order (at most 200 printable characters,
    e.g. "gap=+0.0620 p_model=0.4410"): logged with the order, journaled with its request, and
    shown beside the order's fills in a backtest's report. Venues never see it.
    """

    venue: str
    instrument: str
    side: Side = attrs.field(converter=_side)
    size: Decimal = attrs.field(converter=_size)
    price: Decimal | None = attrs.field(default=None, converter=_price)
    type: OrderType = attrs.field(
        default=attrs.Factory(
            lambda self: OrderType.MARKET if self.price is None else OrderType.LIMIT, takes_self=True
        ),
        converter=_order_type,
    )
    time_in_force: TimeInForce = attrs.field(default=TimeInForce.GTC, converter=_time_in_force)
    post_only: bool = False
    reduce_only: bool = False
    client_order_id: str = ""
    strategy: str = ""
    expire_at_ns: int | None = None
    tag: str = attrs.field(default="", validator=_tag)

    def __attrs_post_init__(self) -> None:
        if self.type is OrderType.LIMIT and self.price is None:
            raise ValueError("a limit order needs a price")
        if self.type is OrderType.MARKET and self.price is not None:
            raise ValueError("a market order takes no price")
        if self.type is OrderType.MARKET and self.post_only:
            raise ValueError("a market order cannot be post-only")
        if self.time_in_force is TimeInForce.GTD and self.expire_at_ns is None:
            raise ValueError("a GTD order needs expire_at_ns")

    @property
    def is_market(self) -> bool:
        return self.type is OrderType.MARKET


def _slot_setter(name: str) -> Callable[[object, object], None]:
    slot = next(k.__dict__[name] for k in OrderRequest.__mro__ if name in k.__dict__)
    setter: Callable[[object, object], None] = slot.__set__
    return setter


# `limit_or_market` writes each field through its slot, the steps of attrs' `__init__` written
# out for the fields as they are: checked here, at import, so that a field added or changed one
# day brings `OrderRequest(...)` back. Each field's name, converter, validator and default (the
# fast path writes "", "" and None for the client order id, the strategy and the expiry itself),
# and that each is an ordinary `__init__` argument (not keyword-only, not renamed, not left out);
# and no `__attrs_pre_init__` (the fast path runs none).
_NO_DEFAULT: Final = attrs.NOTHING
_A_FACTORY: Final = object()  # `type`'s default: both paths pass `type`, so never read
_REQUEST_SHAPE: Final = (
    ("venue", None, None, _NO_DEFAULT),
    ("instrument", None, None, _NO_DEFAULT),
    ("side", _side, None, _NO_DEFAULT),
    ("size", _size, None, _NO_DEFAULT),
    ("price", _price, None, None),
    ("type", _order_type, None, _A_FACTORY),
    ("time_in_force", _time_in_force, None, TimeInForce.GTC),
    ("post_only", None, None, False),
    ("reduce_only", None, None, False),
    ("client_order_id", None, None, ""),
    ("strategy", None, None, ""),
    ("expire_at_ns", None, None, None),
    ("tag", None, _tag, ""),
)


def _field_shape(a: attrs.Attribute[Any]) -> tuple[object, ...]:
    """A field as `_REQUEST_SHAPE` says it, with the options that change what `__init__` takes
    (`_A_FACTORY` for a `Factory` default, which only `type`'s is)."""
    default = _A_FACTORY if isinstance(a.default, attrs.Factory) else a.default  # type: ignore[arg-type]
    return (a.name, a.converter, a.validator, default, type(default), a.kw_only, a.alias, a.init)


def _fast_request(cls: type, fields: tuple[attrs.Attribute[Any], ...]) -> bool:
    """Whether `limit_or_market` may build `cls` (with these fields) without its `__init__`."""
    return (
        tuple(_field_shape(a) for a in fields)
        == tuple((n, c, v, d, type(d), False, n, True) for n, c, v, d in _REQUEST_SHAPE)
        and "__attrs_post_init__" in cls.__dict__
        and not hasattr(cls, "__attrs_pre_init__")
        and isinstance(getattr(getattr(attr, "_config", None), "_run_validators", None), bool)
    )


_FAST_REQUEST: Final = _fast_request(OrderRequest, attrs.fields(OrderRequest))
(
    _set_venue,
    _set_instrument,
    _set_side,
    _set_size,
    _set_price,
    _set_type,
    _set_tif,
    _set_post_only,
    _set_reduce_only,
    _set_cid,
    _set_strategy,
    _set_expire,
    _set_tag,
) = (_slot_setter(name) for name, *_ in _REQUEST_SHAPE)
_TAG_FIELD: Final = attrs.fields(OrderRequest).tag
_new = object.__new__
# What attrs' generated `__init__` reads: whether validators run (checked by `_FAST_REQUEST`).
_attrs_config: Any = getattr(attr, "_config", None)
_post_init = OrderRequest.__attrs_post_init__
_LIMIT = OrderType.LIMIT
_MARKET = OrderType.MARKET


def limit_or_market(
    venue: str,
    instrument: str,
    side: Side | str,
    size: object,
    price: object,
    time_in_force: TimeInForce | str,
    post_only: bool,
    reduce_only: bool,
    tag: str,
) -> OrderRequest:
    """`OrderRequest(venue=venue, instrument=instrument, side=side, size=size, price=price,
    time_in_force=time_in_force, post_only=post_only, reduce_only=reduce_only, type=LIMIT, or
    MARKET when `price` is None, tag=tag)`: what `StrategyContext.order` asks for, once per order.
    Built as attrs' `__init__` builds it (the same converters, validator and checks, in its
    order: the same request, or the same error), each field written through its slot rather than
    `object.__setattr__` by name (about half the cost); tests/model/test_request_fast.py compares
    the two."""
    if not _FAST_REQUEST:
        return OrderRequest(
            venue=venue,
            instrument=instrument,
            side=side,
            size=size,
            price=price,
            time_in_force=time_in_force,
            post_only=post_only,
            reduce_only=reduce_only,
            type=_MARKET if price is None else _LIMIT,
            tag=tag,
        )
    # Each converter's answer for what strategies pass (a member, an int or a finite Decimal),
    # without its call; anything else through it.
    o = _new(OrderRequest)
    _set_venue(o, venue)
    _set_instrument(o, instrument)
    _set_side(o, side if type(side) is Side else _side(side))
    kind = type(size)
    _set_size(
        o,
        Decimal(size)  # type: ignore[arg-type]
        if kind is int
        else size
        if kind is Decimal and size.is_finite()  # type: ignore[attr-defined]
        else _size(size),
    )
    _set_price(
        o,
        None if price is None else price if type(price) is Decimal and price.is_finite() else _price(price),
    )
    _set_type(o, _MARKET if price is None else _LIMIT)  # a member: its converter returns it
    _set_tif(o, time_in_force if type(time_in_force) is TimeInForce else _time_in_force(time_in_force))
    _set_post_only(o, post_only)
    _set_reduce_only(o, reduce_only)
    _set_cid(o, "")
    _set_strategy(o, "")
    _set_expire(o, None)
    _set_tag(o, tag)
    # The validator runs as attrs runs it (`attrs.validators.set_disabled` turns it off); the
    # empty tag (most orders) passes it.
    if _attrs_config._run_validators is True and not (type(tag) is str and not tag):
        _tag(o, _TAG_FIELD, tag)
    _post_init(o)
    return o


class ClientOrderIds:
    """Client order ids `<strategy>-<session>-<n>`: unique across restarts when `session` is
    (the daemon uses its start time), deterministic in backtests (session "bt")."""

    def __init__(self, session: str) -> None:
        self._session = session
        self._counters: dict[str, Iterator[int]] = {}

    def next(self, strategy: str) -> str:
        counter = self._counters.get(strategy)
        if counter is None:  # (not `setdefault`: a counter built and dropped on every order)
            counter = self._counters[strategy] = itertools.count(1)
        return f"{strategy}-{self._session}-{next(counter)}"


_ALLOWED: dict[OrderState, frozenset[OrderState]] = {
    OrderState.PENDING_NEW: frozenset(
        {
            OrderState.OPEN,
            OrderState.PARTIALLY_FILLED,
            OrderState.FILLED,
            OrderState.PENDING_CANCEL,
            OrderState.CANCELLED,
            OrderState.REJECTED,
            OrderState.EXPIRED,
        }
    ),
    OrderState.OPEN: frozenset(
        {
            OrderState.OPEN,  # amended (edit) but untouched
            OrderState.PARTIALLY_FILLED,
            OrderState.FILLED,
            OrderState.PENDING_CANCEL,
            OrderState.CANCELLED,
            OrderState.EXPIRED,
        }
    ),
    OrderState.PARTIALLY_FILLED: frozenset(
        {
            OrderState.PARTIALLY_FILLED,
            OrderState.FILLED,
            OrderState.PENDING_CANCEL,
            OrderState.CANCELLED,
            OrderState.EXPIRED,
        }
    ),
    OrderState.PENDING_CANCEL: frozenset(
        {
            OrderState.PENDING_CANCEL,
            OrderState.PENDING_NEW,  # the cancel was refused before the venue acknowledged it
            OrderState.OPEN,  # the cancel was refused; the order still rests
            OrderState.PARTIALLY_FILLED,  # filled while the cancel was on its way
            OrderState.FILLED,
            OrderState.CANCELLED,
            OrderState.EXPIRED,
        }
    ),
    OrderState.FILLED: frozenset(),
    OrderState.CANCELLED: frozenset(),
    OrderState.REJECTED: frozenset(),
    OrderState.EXPIRED: frozenset(),
}

# The states as module constants: `OrderState.X` is a class attribute lookup (~0.1 us) on the
# hot paths (every report of every order), a global read is not.
_CANCELLED = OrderState.CANCELLED
_EXPIRED = OrderState.EXPIRED
_FILLED = OrderState.FILLED
_OPEN = OrderState.OPEN
_PARTIALLY_FILLED = OrderState.PARTIALLY_FILLED
_PENDING_CANCEL = OrderState.PENDING_CANCEL
_PENDING_NEW = OrderState.PENDING_NEW
_REJECTED = OrderState.REJECTED

# Every change to any order takes the next number (`Order.changed`), and so does `OrderTracker.mark`:
# an order whose `changed` is above a mark taken before a question to the venue has news the
# venue's answer may not have seen (it was asked before a report on the channel arrived).
_CHANGES = itertools.count(1)

# The final states, for a membership test (`state.is_final` is a property: a call per look).
_FINAL: Final = frozenset(s for s in OrderState if s.is_final)

# One zero for every order's quantities until something fills (a Decimal is immutable): an order
# is kept in memory for a while after it is final, and most never fill.
_ZERO = Decimal(0)
_NO_IDS: frozenset[str] = frozenset()

# How far along an order is; used to tell a stale report from news.
_RANK = {
    _PENDING_NEW: 0,
    _OPEN: 1,
    _PARTIALLY_FILLED: 2,
    _PENDING_CANCEL: 2,
    _FILLED: 3,
    _CANCELLED: 3,
    _REJECTED: 3,
    _EXPIRED: 3,
}


class Order:
    """A tracked order: the request, its state, what has filled.

    `filled_size` is the venue's executed quantity (the larger of what its order reports said
    and what its fills add up to); `fills_size` is what our own fill events add up to, which is
    what positions are built from. The state changes only through `transition`, which enforces
    the state machine.
    """

    __slots__ = (
        "_fill_ids",
        "_reversed_ids",
        "avg_fill_price",
        "changed",
        "created_ns",
        "filled_size",
        "fills_notional",
        "fills_size",
        "order_id",
        "price",
        "reason",
        "request",
        "size",
        "state",
        "updated_ns",
    )

    def __init__(self, request: OrderRequest, *, now_ns: int) -> None:
        self.request = request
        self.state = _PENDING_NEW
        self.order_id: str | None = None
        self.price = request.price  # may change through an edit
        self.size = request.size
        self.filled_size = _ZERO
        self.fills_size = _ZERO
        self.fills_notional = _ZERO
        self.avg_fill_price: Decimal | None = None
        self.reason: str | None = None
        self.created_ns = now_ns
        self.updated_ns = now_ns
        self.changed = next(_CHANGES)  # the last change's number (see `_CHANGES`)
        # Trade ids filled, and voided (`unrecord_fill`): an empty frozenset until the first one
        # (two empty sets were 430 of an order's ~1,500 bytes, and most orders never fill).
        self._fill_ids: set[str] | frozenset[str] = _NO_IDS
        self._reversed_ids: set[str] | frozenset[str] = _NO_IDS

    @property
    def client_order_id(self) -> str:
        return self.request.client_order_id

    @property
    def strategy(self) -> str:
        return self.request.strategy

    @property
    def remaining(self) -> Decimal:
        return max(self.size - self.filled_size, _ZERO)

    def can_transition(self, target: OrderState) -> bool:
        return target in _ALLOWED[self.state]

    def transition(self, target: OrderState, *, now_ns: int, reason: str | None = None) -> None:
        """Move to `target` or raise `IllegalTransition` (leaving the order unchanged)."""
        if target not in _ALLOWED[self.state]:
            raise IllegalTransition(self.client_order_id, self.state.value, target.value)
        self.state = target
        self.updated_ns = now_ns
        self.changed = next(_CHANGES)
        if reason is not None:
            self.reason = reason

    def force(self, target: OrderState, *, now_ns: int, reason: str | None = None) -> None:
        """Move to `target` whatever the state machine says: the venue's word on the order wins
        over ours (`OrderTracker` alerts and counts each such move; nothing else calls this)."""
        self.state = target
        self.updated_ns = now_ns
        self.changed = next(_CHANGES)
        if reason is not None:
            self.reason = reason

    def has_fill(self, trade_id: str) -> bool:
        return bool(trade_id) and trade_id in self._fill_ids

    def record_fill(self, trade_id: str, size: Decimal, price: Decimal, *, now_ns: int) -> bool:
        """Record one execution and move the state on (partially filled / filled).

        Returns False, changing nothing, for a trade id already recorded. A fill on an order
        already final (a fill reported after the cancel that followed it) is recorded in the
        quantities but moves no state: the caller decides how loudly to report that.
        """
        if trade_id:
            if trade_id in self._fill_ids:
                return False
            if not self._fill_ids:  # `_add_fill_id`, inline
                self._fill_ids = set()
            self._fill_ids.add(trade_id)  # type: ignore[union-attr]  # a set from here on
        self.fills_size += size
        self.fills_notional += size * price
        self.avg_fill_price = self.fills_notional / self.fills_size
        self.updated_ns = now_ns
        self.changed = next(_CHANGES)
        if self.fills_size > self.filled_size:
            self.filled_size = self.fills_size
            if self.state not in _FINAL:
                if self.filled_size >= self.size:
                    self.transition(_FILLED, now_ns=now_ns)
                elif self.state is not _PENDING_CANCEL:
                    self.transition(_PARTIALLY_FILLED, now_ns=now_ns)
        return True

    def unrecord_fill(self, trade_id: str, size: Decimal, price: Decimal, *, now_ns: int) -> bool:
        """Take back an execution the venue voided (`FillReversal`). Returns False, changing
        nothing, for a trade id never recorded. The state does not move backwards (a final state
        stays final; the venue's next order report says whether the order rests again): only the
        quantities and the average price change."""
        if not trade_id or trade_id not in self._fill_ids:
            return False
        self._fill_ids.discard(trade_id)  # type: ignore[union-attr]  # it holds trade_id: a set
        if not self._reversed_ids:
            self._reversed_ids = set()
        self._reversed_ids.add(trade_id)  # type: ignore[union-attr]
        self.fills_size -= size
        self.fills_notional -= size * price
        self.avg_fill_price = self.fills_notional / self.fills_size if self.fills_size > 0 else None
        self.filled_size = max(self.filled_size - size, _ZERO)
        self.updated_ns = now_ns
        self.changed = next(_CHANGES)
        return True

    def _add_fill_id(self, trade_id: str) -> None:
        if not self._fill_ids:
            self._fill_ids = set()
        self._fill_ids.add(trade_id)  # type: ignore[union-attr]  # a set from here on

    def was_reversed(self, trade_id: str) -> bool:
        """This order's fill of `trade_id` was voided (`unrecord_fill`). A voided trade stays
        voided (Polymarket's FAILED is terminal, VENUES.md §2.2; Derive's is a trade that did
        not happen, `tx_status` reverted or ignored, §3.4), so that fill reported again is a
        listing older than the reversal, never a new fill."""
        return bool(trade_id) and trade_id in self._reversed_ids

    def snapshot(self, *, ts_local: int, ts_exchange: int | None = None) -> OrderUpdate:
        """This order's state as an `OrderUpdate` event."""
        r = self.request
        return OrderUpdate(
            venue=r.venue,
            instrument=r.instrument,
            ts_exchange=ts_exchange,
            ts_local=ts_local,
            order_id=self.order_id,
            client_order_id=r.client_order_id,
            strategy=r.strategy,
            status=self.state,
            side=r.side,
            price=self.price,
            size=self.size,
            filled_size=self.filled_size,
            avg_fill_price=self.avg_fill_price,
            reason=self.reason,
        )

    def __repr__(self) -> str:
        return (
            f"Order({self.client_order_id!r}, {self.state.value}, {self.request.side.value} "
            f"{self.filled_size}/{self.size} {self.request.instrument} @ {self.price})"
        )


@attrs.define
class TrackerStats:
    """What the tracker saw that a healthy venue does not send; each is logged by the caller."""

    stale_updates: int = 0
    duplicate_fills: int = 0
    unknown_orders: int = 0
    late_fills: int = 0
    overfills: int = 0  # fills beyond the order's size (booked: the venue's word; alerted)
    refused_fills: int = 0  # fills of no size or price (nothing to book; alerted, never applied)
    reversals: int = 0  # fills the venue voided after reporting them
    unknown_reversals: int = 0  # reversals of a fill we never booked
    voided_fills: int = 0  # a fill of a trade the venue had voided, reported again (not booked)
    archive_failures: int = 0  # lookups in the archive (the journal) that failed
    # A venue id claimed by a second working order while another working order holds it
    # (`set_order_id`): each alerted (critical) with both orders. The id is then contested.
    order_id_conflicts: int = 0
    # Reports (states, fills, reversals) naming a contested venue id and no claimant's client id
    # nor trade: applied to no order (`OrderTracker.contested`), each logged; a fill's is alerted
    # by the flow (`fill.not_booked`), a reversal's too (`fill.reversal_not_applied`).
    contested_reports: int = 0
    # The venue's word taken over ours: a state ours cannot reach, or a verified report going
    # back (a working state after a final one, a smaller filled size). Logged by the tracker
    # (critical), each with both sides.
    venue_overrides: int = 0


@attrs.frozen
class RestoredOrder:
    """An order as the journal (store room) left it: enough to track it again after a restart."""

    request: OrderRequest
    order_id: str | None
    state: OrderState
    price: Decimal | None
    size: Decimal
    filled_size: Decimal
    avg_fill_price: Decimal | None
    reason: str | None
    created_ns: int
    updated_ns: int
    fills: tuple[tuple[str, Decimal, Decimal], ...]  # (trade id, size, price) booked, in order
    # Trade ids of this order's fills the venue voided since (journaled reversals): a listing
    # older than the reversal that names one again is stale, never a new fill (`Order.was_reversed`).
    voided: frozenset[str] = frozenset()


class ArchiveUnavailable(Exception):
    """The archive (the journal) could not be read: whether it knows an order is unknown.
    Never the same as "not found": a client order id cannot be checked, a late report cannot be
    matched to the order's booked fills."""


class OrderArchive(Protocol):
    """Where final orders live once the tracker lets go of them (the order journal): looked
    up by client order id, or by venue and venue order id, with the fills booked to them."""

    def find_order(
        self, venue: str | None, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> RestoredOrder | None: ...


class OrderTracker:
    """The orders of one engine still of interest, by client order id and by venue order id.

    `apply_update` / `apply_fill` take venue reports in any order and return the events to
    deliver: possibly none (stale or duplicate), possibly an extra `OrderUpdate` synthesized so
    that strategies always see a legal sequence (accepted before filled).

    Memory is bounded: a final order stays in memory for `keep_final_ns` after it became final
    (the late fill of an order just cancelled, a report repeated on reconnect) and at most
    `max_final` final orders are kept at once; older ones are let go. With an `archive` (the
    journal, where every order and fill already is) a report naming an order let go brings it
    back from there with its fills' trade ids, so a late fill is still booked once and a repeated
    one is still a duplicate. Without an archive (a backtest), only `max_final` bounds them, and a
    report about an order let go is an unknown order's (counted).

    An order is let go only because its journal record is as complete as memory: one any of
    whose journal writes failed (`mark_dirty`) stays in memory for good, since its record lacks
    what memory has (a fill, say) and a recalled copy would book that fill again. While
    `hold_final` is set (the journal is failing now) final orders are let go only beyond
    `max_final` (clean ones: their journal record is complete). A lookup
    that fails is never taken as "not found": it is logged at critical level and counted, a new
    order whose client order id cannot be checked is refused, and a report it was for stays
    unmatched.
    """

    def __init__(
        self,
        *,
        archive: OrderArchive | None = None,
        keep_final_ns: int = 60 * 10**9,
        max_final: int = 10_000,
        log: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        self._by_client: dict[str, Order] = {}
        self._by_venue_id: dict[tuple[str, str], Order] = {}
        # Ids an order was known by before the venue named it otherwise (`set_order_id(alias=
        # True)`), still in `_by_venue_id` for it: a fill in flight may name the old one. One
        # gives way to any other order that claims it.
        self._aliases: dict[tuple[str, str], Order] = {}
        # Venue ids two working orders claimed (`set_order_id`), with the client order ids of
        # those that did: in neither's index, and a report naming one is applied to no order,
        # for as long as this tracker lives (`contested`).
        self._contested: dict[tuple[str, str], set[str]] = {}
        # Orders not known final yet: a superset of the live ones, pruned as they are listed
        # (an order never leaves a final state), so listing stays cheap in a long session.
        self._maybe_live: dict[str, Order] = {}
        # Final orders still in memory, in the order they were seen final (oldest first).
        self._final: OrderedDict[str, Order] = OrderedDict()
        # Orders whose journal record is stale (a write for them failed): never let go.
        self._dirty: dict[str, Order] = {}
        self.hold_final = False  # set while the journal is failing: only `max_final` lets go
        self.log = log or structlog.get_logger("tradingd.orders")
        self.archive = archive
        self.keep_final_ns = keep_final_ns
        self.max_final = max_final
        self._now_ns = 0
        self._adds = 0
        # The oldest order tracked on each venue (added or restored), even once let go: where a
        # catch-up of missed fills starts after a restart.
        self.first_created_ns: dict[str, int] = {}
        self.evicted = 0  # final orders let go (still in the archive)
        self.recalled = 0  # orders brought back from the archive by a late report
        self.stats = TrackerStats()
        # Told of each state change a venue's report makes (`apply_update`, `apply_fill`): the
        # order, and its state before. The order flow learns there the venue's first answer to
        # an order and when an order becomes final (its counters, engine.runtime.flow).
        self.on_state: Callable[[Order, OrderState], None] | None = None
        # Told of each venue id that becomes contested, or gains a claimant (`_conflict`): the
        # venue, the id and every claimant's client order id. The order flow journals it, so a
        # restart rebuilds the contest (`restore_contest`) rather than forget it.
        self.on_contest: Callable[[str, str, list[str]], None] | None = None

    def __len__(self) -> int:
        """Orders in memory now (live, and final ones not yet let go)."""
        return len(self._by_client)

    def add(self, request: OrderRequest, *, now_ns: int) -> Order:
        """Start tracking a new order. A client order id seen before (in memory or in the
        archive) is refused: sending it would risk a duplicate at the venue."""
        cid = request.client_order_id
        if not cid:
            raise ValueError("an order needs a client order id before it is tracked")
        try:
            known = cid in self._by_client or (
                self.archive is not None and self._archived(None, None, cid) is not None
            )
        except ArchiveUnavailable as exc:
            raise OrderDenied(
                f"client order id {cid} cannot be checked against the journal ({exc})",
                venue=request.venue,
                instrument=request.instrument,
                client_order_id=cid,
            ) from exc
        if known:
            raise OrderDenied(
                f"duplicate client order id {cid}",
                venue=request.venue,
                instrument=request.instrument,
                client_order_id=cid,
            )
        if now_ns > self._now_ns:
            self._now_ns = now_ns
        adds = self._adds = self._adds + 1
        if adds % 64 == 0 or len(self._final) > self.max_final:
            self.sweep()
        order = Order(request, now_ns=now_ns)
        self._by_client[cid] = order
        self._maybe_live[cid] = order
        # `_note_created`, inline (once per order).
        venue = request.venue
        first = self.first_created_ns.get(venue)
        if first is None or now_ns < first:
            self.first_created_ns[venue] = now_ns
        return order

    def _note_created(self, venue: str, created_ns: int) -> None:
        first = self.first_created_ns.get(venue)
        if first is None or created_ns < first:
            self.first_created_ns[venue] = created_ns

    def sweep(self, now_ns: int | None = None) -> int:
        """Move orders seen final to the final queue and let go of those kept long enough (or
        beyond `max_final`). Returns how many were let go. Called as orders are added."""
        if now_ns is not None:
            self._now_ns = max(self._now_ns, now_ns)
        self._prune_live()
        final = self._final
        horizon = self._now_ns - self.keep_final_ns
        evicted = 0
        while final:
            cid, order = next(iter(final.items()))
            if cid in self._dirty:
                del final[cid]  # stays in memory (in `_by_client`) for good
                continue
            too_many = len(final) > self.max_final
            # While the journal fails (`hold_final`) only the cap lets orders go: a clean order's
            # journal record is complete (the dirty ones stay, above), and memory must not grow
            # with every order for as long as the disk is full.
            if not too_many and (self.hold_final or self.archive is None or order.updated_ns > horizon):
                break
            del final[cid]
            self._forget(order)
            evicted += 1
        self.evicted += evicted
        return evicted

    def mark_dirty(self, order: Order) -> None:
        """A journal write for `order` failed: its journal record no longer says what memory
        does, so the order is never let go (a copy recalled from the journal would lack, say, a
        fill booked in memory only, and book it again when the venue repeats it)."""
        self._dirty[order.client_order_id] = order

    @property
    def dirty(self) -> int:
        """Orders kept in memory for good because a journal write for them failed."""
        return len(self._dirty)

    def _forget(self, order: Order) -> None:
        cid = order.client_order_id
        if self._by_client.get(cid) is order:
            del self._by_client[cid]
        if order.order_id and self._by_venue_id.get((order.request.venue, order.order_id)) is order:
            del self._by_venue_id[(order.request.venue, order.order_id)]
        if self._aliases:
            for key in [k for k, o in self._aliases.items() if o is order]:
                del self._aliases[key]
                if self._by_venue_id.get(key) is order:
                    del self._by_venue_id[key]

    def _prune_live(self) -> None:
        live = self._maybe_live
        done = [cid for cid, o in live.items() if o.state in _FINAL]
        for cid in done:
            self._final[cid] = live.pop(cid)

    def restore(self, r: RestoredOrder) -> Order:
        """Track again an order as the journal left it (after a restart, or when a late report
        names a final order let go): its state as it was (not re-run through the state machine),
        its fills, so a fill reported again is recognised as a duplicate, and the trades of its
        fills the venue voided, so one reported again is not booked as new."""
        request = r.request
        order = Order(request, now_ns=r.created_ns)
        self._by_client[request.client_order_id] = order
        self._note_created(request.venue, r.created_ns)
        if r.state.is_live:
            self._maybe_live[request.client_order_id] = order
        else:
            self._final[request.client_order_id] = order
            if len(self._final) > self.max_final:
                self.sweep()
        for trade_id, fill_size, fill_price in r.fills:
            if trade_id:
                order._add_fill_id(trade_id)
            order.fills_size += fill_size
            order.fills_notional += fill_size * fill_price
        # And the fills the venue voided: a listing older than the reversal that names one again
        # (a catch-up of fills after the restart) is stale, not a fill to book (`was_reversed`).
        if r.voided:
            order._reversed_ids = set(r.voided)
        order.avg_fill_price = (
            order.fills_notional / order.fills_size if order.fills_size > 0 else r.avg_fill_price
        )
        order.state = r.state
        order.price = r.price
        order.size = r.size
        order.filled_size = max(r.filled_size, order.fills_size)
        order.reason = r.reason
        order.updated_ns = r.updated_ns
        # Named by its id once its state is the journal's (`set_order_id` tells a final order
        # from a working one). Contested (two working orders under it, alerted), its record
        # keeps the id the journal gave it, unindexed: never dropped, for an order pending
        # without its venue's id would read as never sent.
        if r.order_id and not self.set_order_id(order, r.order_id, source="journal"):
            order.order_id = r.order_id
        # As the journal left it: older than any question asked of a venue since (`mark`).
        order.changed = 0
        return order

    def set_order_id(
        self,
        order: Order,
        order_id: str,
        *,
        source: str = "report",
        sent: bool = True,
        alias: bool = False,
    ) -> bool:
        """Name `order` by the venue's id `order_id` (its reports naming only that id then find
        it). Returns whether the order is named by it; False when refused (the order as it was).
        A different id it had before is no longer indexed for it, unless `alias`: then it stays
        indexed for it (a fill in flight may name it) until another order claims it.

        Two working orders under one venue id would each be credited the other's fills, and
        which of them the venue means is not ours to guess. So an id another working order
        holds is refused to a second working one, alerted at critical level with both orders
        and counted (`order_id_conflicts`), for a person; and, the second having been sent
        (`sent`: the venue may know it by that id), the id becomes contested: it leaves the
        index, and a report naming it alone is applied to neither (`contested`). An id computed
        before sending (`sent=False`, `prepare`) is refused without that: the order is then not
        sent, and the holder keeps the id. `source` says who named it (`prepare`,
        `acknowledged`, `report`, `journal`, `adopt`), for the log.

        A final holder's id goes to `order` (logged: the venue reused it). A final `order` (a
        journal's record, a recall) whose id a working order holds is named by it but not
        indexed (logged at info level, not counted): its reports are over, the holder's are
        not."""
        venue = order.request.venue
        key = (venue, order_id)
        final = order.state in _FINAL
        claimants = self._contested.get(key) if self._contested else None
        holder = self._by_venue_id.get(key)
        if claimants is not None or (holder is not None and holder is not order):
            fields = {
                "venue": venue,
                "order_id": order_id,
                "source": source,
                "client_order_id": order.client_order_id,
                "state": order.state.value,
            }
            if claimants is not None:
                if order.client_order_id in claimants:
                    return False
                if final:
                    self.log.info("order.venue_id_not_indexed", contested=sorted(claimants), **fields)
                    order.order_id = order_id
                    return True
                self._conflict(key, None, sent=sent, contested=sorted(claimants), **fields)
                return False
            assert holder is not None
            fields |= {"holder": holder.client_order_id, "holder_state": holder.state.value}
            if self._aliases.get(key) is holder:
                # An id the holder was known by before the venue named it otherwise: it gives
                # way (the venue's id for the holder stays the holder's).
                del self._aliases[key]
                self.log.info("order.venue_id_alias_dropped", **fields)
            elif holder.state in _FINAL:
                self.log.error("order.venue_id_reused", **fields)
            elif final:
                self.log.info("order.venue_id_not_indexed", **fields)
                order.order_id = order_id
                return True
            else:
                self._conflict(key, holder, sent=sent, **fields)
                return False
        old = order.order_id
        if old is not None and old != order_id and self._by_venue_id.get((venue, old)) is order:
            if alias:
                self._aliases[(venue, old)] = order
            else:
                del self._by_venue_id[(venue, old)]
        order.order_id = order_id
        self._by_venue_id[key] = order
        self._aliases.pop(key, None)
        return True

    def _conflict(self, key: tuple[str, str], holding: Order | None, *, sent: bool, **fields: Any) -> None:
        """A working order claimed `key`, which another working order (`holding`, or the orders
        contesting it) holds: alerted, counted; contested from now on when the claimant was
        sent (see `set_order_id`)."""
        holder = holding
        self.stats.order_id_conflicts += 1
        if not sent:
            action = "refused: the holder keeps the id; this order is not sent"
        else:
            action = (
                "contested: a report naming the id without either's client id (nor a trade either"
                " has) is applied to neither, until a person settles it"
            )
            claimants = self._contested.setdefault(key, set())
            claimants.add(str(fields["client_order_id"]))
            if holder is not None:
                claimants.add(holder.client_order_id)
                if self._by_venue_id.get(key) is holder:
                    del self._by_venue_id[key]
                self._aliases.pop(key, None)
        self.log.critical("order.venue_id_conflict", action=action, **fields)
        if sent and self.on_contest is not None:
            self.on_contest(key[0], key[1], sorted(self._contested[key]))

    def restore_contest(self, venue: str, order_id: str, claimants: Iterable[str]) -> None:
        """Contest `order_id` again as the journal recorded it (a restart): whatever state its
        claimants are in now, final included, a report naming the id alone stays refused, for a
        fill refused before the restart may still be either's. The id leaves the index, whoever
        holds it; a claimant restored later keeps its record's id unindexed (`set_order_id`).
        It lasts as long as the journal that records it (README, "Venue order ids")."""
        if not order_id:
            return
        key = (venue, order_id)
        self._contested.setdefault(key, set()).update(c for c in claimants if c)
        self._by_venue_id.pop(key, None)
        self._aliases.pop(key, None)

    def settle_contest(self, venue: str, order_id: str) -> None:
        """A person settled the contest of `order_id` (a journal note, at a restart: README,
        "Venue order ids"): no longer contested. Claimants restored after are named by it as
        any order is (contested again, alerted, if two of them still work)."""
        self._contested.pop((venue, order_id), None)

    def contests(self) -> dict[tuple[str, str], list[str]]:
        """Every contested venue id (`contested`), with its claimants' client order ids."""
        return {key: sorted(claimants) for key, claimants in self._contested.items()}

    def contested(self, venue: str, order_id: str | None) -> bool:
        """Whether two working orders claimed this venue id (`set_order_id`). Such an id names
        no order by itself. A report naming it with a claimant's client order id (Deribit's and
        Derive's carry both) is the venue pairing the two: applied to that order. A fill or a
        reversal of a trade a claimant has is that claimant's (a repeat is a duplicate; a
        reversal is taken out of it): the trade id pins it. Any other report naming it (the id
        alone, or with a client id no claimant has) is applied to none and counted
        (`stats.contested_reports`), for the venue may mean either. Neither order's becoming
        final ends that (a late fill naming the id may be either's): the id stays contested
        while this tracker lives, and a restart rebuilds it from the journal (`restore_contest`):
        it lasts as long as the journal that recorded it. A person settles it from the venue's
        own records (the fills under that id, which the log's `fill.not_booked` lines list, once
        each) and the orders' (README, "Venue order ids")."""
        return bool(order_id) and (venue, order_id) in self._contested

    def get(self, client_order_id: str) -> Order | None:
        """The order by client order id: in memory, else brought back from the archive."""
        found = self._by_client.get(client_order_id)
        if found is None and client_order_id:
            found = self._recall(None, None, client_order_id)
        return found

    def find(
        self, venue: str, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> Order | None:
        """The order a venue's report names: in memory, else brought back from the archive
        (a final order let go), else None (not ours)."""
        if client_order_id:
            found = self._by_client.get(client_order_id)
            if found is not None:
                return found
        if order_id:
            found = self._by_venue_id.get((venue, order_id))
            if found is not None:
                return found
            if not client_order_id and self._contested and (venue, order_id) in self._contested:
                return None  # either of two orders (`contested`): never the archive's pick
        if not (order_id or client_order_id):
            return None
        return self._recall(venue, order_id, client_order_id)

    def _archived(
        self, venue: str | None, order_id: str | None, client_order_id: str | None
    ) -> RestoredOrder | None:
        """The archive's record of an order, None when it has none. Raises `ArchiveUnavailable`
        (logged at critical level, counted in `stats.archive_failures`) when it cannot be read."""
        if self.archive is None:
            return None
        try:
            return self.archive.find_order(venue, order_id=order_id, client_order_id=client_order_id)
        except Exception as exc:  # any failure to read: unknown, not "not found"
            self.stats.archive_failures += 1
            self.log.critical(
                "journal.lookup_failed",
                venue=venue,
                order_id=order_id,
                client_order_id=client_order_id,
                error=f"{type(exc).__name__}: {exc}",
            )
            raise ArchiveUnavailable(str(exc) or type(exc).__name__) from exc

    def _recall(self, venue: str | None, order_id: str | None, client_order_id: str | None) -> Order | None:
        """An order let go, brought back from the archive; None when the archive does not know
        it, or cannot be read (then logged and counted by `_archived`: the report naming it is
        left unmatched, never applied to an order rebuilt without its fills)."""
        try:
            r = self._archived(venue, order_id, client_order_id)
        except ArchiveUnavailable:
            return None
        if r is None or (venue is not None and r.request.venue != venue):
            return None
        self.recalled += 1
        return self.restore(r)

    def orders(self) -> Iterator[Order]:
        """The orders in memory (live ones, and final ones not let go yet)."""
        return iter(self._by_client.values())

    def open_orders(self, strategy: str | None = None) -> list[Order]:
        """The orders still working (not final), oldest first; all strategies' for None."""
        self._prune_live()
        return [o for o in self._maybe_live.values() if strategy is None or o.request.strategy == strategy]

    def mark(self) -> int:
        """A number below every later change to any order (`Order.changed`): taken before a
        question to the venue, it tells an order that changed while the question was on its
        way (`changed > mark`) from one the answer is about as it still is."""
        return next(_CHANGES)

    def _locate(self, venue: str, order_id: str | None, client_order_id: str | None) -> Order | None:
        # `find`'s first look, inline: a report about one of our orders in memory names it by
        # its client order id (nearly every report); `find` again otherwise, from the start.
        if self._contested and order_id:
            claimants = self._contested.get((venue, order_id))
            if claimants is not None:
                if client_order_id is None or client_order_id not in claimants:
                    self._refuse_contested(venue, order_id, client_order_id)
                    return None
                # The venue pairs the id with one claimant's client id (Deribit's and
                # Derive's reports carry both): that order's report (`contested`).
                order = self.get(client_order_id)
                if order is None:
                    self.stats.unknown_orders += 1
                return order
        order = self._by_client.get(client_order_id) if client_order_id else None
        if order is None:
            order = self.find(venue, order_id=order_id, client_order_id=client_order_id)
        if order is None:
            self.stats.unknown_orders += 1
        elif order_id and order.order_id is None:
            # Refused (alerted, counted) when another working order holds the id: contested
            # from now on. Found by its client id (an order without a venue id is named by no
            # other), this report is the venue pairing the two: it is applied to the order.
            self.set_order_id(order, order_id)
        return order

    def claimants(self, venue: str, order_id: str | None) -> list[Order]:
        """The orders contesting a venue id (`contested`), in client order id order: those in
        memory or brought back from the archive; empty when the id is not contested."""
        claimants = self._contested.get((venue, order_id)) if self._contested and order_id else None
        if not claimants:
            return []
        return [o for o in map(self.get, sorted(claimants)) if o is not None]

    def _holding_trade(self, venue: str, order_id: str | None, trade_id: str) -> Order | None:
        """The claimant of a contested venue id that has the trade `trade_id` (booked, or
        booked and reversed): the trade id pins a report of that trade to it."""
        if not trade_id:
            return None
        for order in self.claimants(venue, order_id):
            if trade_id in order._fill_ids or trade_id in order._reversed_ids:
                return order
        return None

    def _refuse_contested(self, venue: str, order_id: str, client_order_id: str | None) -> None:
        """A report naming a contested venue id (`contested`): applied to no order, counted, logged."""
        self.stats.contested_reports += 1
        self.log.error(
            "order.report_not_applied",
            venue=venue,
            order_id=order_id,
            client_order_id=client_order_id,
            contested=sorted(self._contested.get((venue, order_id), ())),
            reason="its venue id is contested by two orders (order.venue_id_conflict)",
        )

    def apply_update(
        self, update: OrderUpdate, *, verified: bool = False, asked: int | None = None
    ) -> list[OrderUpdate]:
        """Fold a venue's order report into the tracked order. Returns the updates to deliver
        (empty when the report is stale or tells nothing new).

        A state the state machine does not allow from ours is the venue's word: taken, alerted
        and counted (module docstring), never raised. A report that goes back (a working state
        after a final one, a smaller filled size) is stale unless `verified` (the venue's answer
        to a question asked after everything we hold: a reconciliation's read of one order).

        `asked`: for the venue's answer to a question, the `mark` taken before it was asked. An
        order that changed since (`changed > asked`) had a report meanwhile that may be newer
        than the answer: the answer is not verified, and its price and size are not taken (a
        same-state report cannot be told from news by its state: an edit acknowledged meanwhile
        would go back to the old price and size). Its forward moves (a final state, more
        filled) are taken as any report's."""
        order = self._locate(update.venue, update.order_id, update.client_order_id)
        if order is None:
            return []
        # The common case, a new order's acknowledgement (nothing filled, a size left open), in
        # the steps the general path (`_update`) takes for it; tests/model/test_tracker_fast_paths.py
        # holds the two equal.
        if (
            update.status is _OPEN
            and order.state is _PENDING_NEW
            and asked is None
            and not verified
            and not order.filled_size
        ):
            # The general path's steps for it, in its order (so a comparison that raises does so
            # at the same point): its price, then (with nothing filled) its size; one that the
            # general path would take further (a fill reported, no size left) goes on there.
            if update.price is not None:
                order.price = update.price
            # (Against a Decimal zero: the same answer as against 0, without converting the int.)
            if not update.filled_size > _ZERO:
                if update.size > _ZERO:
                    order.size = update.size
                if order.size > _ZERO:
                    now = update.ts_local
                    order.transition(_OPEN, now_ns=now, reason=update.reason)
                    out = [order.snapshot(ts_local=now, ts_exchange=update.ts_exchange)]
                    if self.on_state is not None:
                        self.on_state(order, _PENDING_NEW)
                    return out
        # A final state said again as we hold it (a fill's report after the fill made the order
        # final): stale, as the general path finds first. With another filled size, the general
        # path's (the venue's word: taken and alerted).
        elif (
            update.status is order.state and order.state in _FINAL and update.filled_size == order.filled_size
        ):
            self.stats.stale_updates += 1
            return []
        # The other common case, a cancel's confirmation (asked by us, nothing more filled), in
        # the general path's steps for it, as above.
        elif (
            update.status is _CANCELLED and order.state is _PENDING_CANCEL and asked is None and not verified
        ):
            if update.price is not None:
                order.price = update.price
            if not update.filled_size > order.filled_size:
                if update.size > _ZERO and update.size >= order.filled_size:
                    order.size = update.size
                now = update.ts_local
                order.transition(_CANCELLED, now_ns=now, reason=update.reason)
                out = [order.snapshot(ts_local=now, ts_exchange=update.ts_exchange)]
                if self.on_state is not None:
                    self.on_state(order, _PENDING_CANCEL)
                return out
        return self._update(order, update, verified, asked)

    def apply_update_general(
        self, update: OrderUpdate, *, verified: bool = False, asked: int | None = None
    ) -> list[OrderUpdate]:
        """`apply_update` without its fast path: the reference the tests hold it to."""
        order = self._locate(update.venue, update.order_id, update.client_order_id)
        if order is None:
            return []
        return self._update(order, update, verified, asked)

    def _update(
        self, order: Order, update: OrderUpdate, verified: bool, asked: int | None
    ) -> list[OrderUpdate]:
        """`apply_update`'s general path, for an order located."""
        older = asked is not None and order.changed > asked
        if older:
            verified = False
        now = update.ts_local
        target = update.status
        state = order.state
        if target is _PENDING_NEW or (
            # A final state repeated, or a working one after it (reports cross on the way); a
            # different final state is a contradiction, taken below. So is a final state repeated
            # with more filled (a fill we missed), or, verified, less: the venue's word, alerted.
            state in _FINAL
            and (
                (
                    target is state
                    and not (
                        update.filled_size > order.filled_size
                        or (verified and update.filled_size < order.filled_size)
                    )
                )
                or not (verified or target in _FINAL)
            )
        ):
            self.stats.stale_updates += 1
            return []
        if not verified and _RANK[target] < _RANK[state]:
            self.stats.stale_updates += 1
            return []
        before = (state, order.filled_size, order.price, order.size)
        alerted = False  # the filled size's alert raised (`_alert_filled_down`)
        if update.price is not None and not older:
            order.price = update.price
        if update.filled_size > order.filled_size:
            order.filled_size = update.filled_size
            if order.fills_size == 0 and update.avg_fill_price is not None:
                order.avg_fill_price = update.avg_fill_price
        elif verified and update.filled_size < order.filled_size:
            # The venue counts less filled than we do. Never below the fills we booked (they are
            # in the positions; only a reversal takes one out): an alert for a trader.
            self._alert_filled_down(order, update)
            order.filled_size = max(update.filled_size, order.fills_size)
            alerted = True
        if update.size > 0 and update.size >= order.filled_size and not older:
            order.size = update.size
        if target in (_OPEN, _PARTIALLY_FILLED) and order.filled_size >= order.size:
            target = _FILLED
        elif target is _OPEN and order.filled_size > 0:
            target = _PARTIALLY_FILLED
        out: list[OrderUpdate] = []
        if order.state is _PENDING_NEW and target not in (_OPEN, _REJECTED):
            # The venue accepted the order before what it reports now: show that first.
            order.transition(_OPEN, now_ns=now)
            out.append(order.snapshot(ts_local=now, ts_exchange=update.ts_exchange))
        if target is order.state and (order.state, order.filled_size, order.price, order.size) == before:
            if not out:
                self.stats.stale_updates += 1
            return out
        if target in _ALLOWED[order.state]:  # `can_transition`
            order.transition(target, now_ns=now, reason=update.reason)
        elif alerted and target is order.state:
            # A final state said again, counting less filled: alerted once, above.
            order.force(target, now_ns=now, reason=update.reason)
        else:
            # (A final state said again with more filled: both filled sizes in the alert.)
            ours_filled = before[1] if target is state else None
            self._override(
                order, target, now_ns=now, reason=update.reason, verified=verified, ours_filled=ours_filled
            )
        out.append(order.snapshot(ts_local=now, ts_exchange=update.ts_exchange))
        if self.on_state is not None and order.state is not state:
            self.on_state(order, state)
        return out

    def _override(
        self,
        order: Order,
        target: OrderState,
        *,
        now_ns: int,
        reason: str | None,
        verified: bool = False,
        ours_filled: Decimal | None = None,
    ) -> None:
        """The venue's state for `order` where the state machine does not lead from ours: taken
        (the venue's word wins), alerted with both states, counted. An order it makes work again
        (a final state gone back) is listed among the working ones again."""
        was = order.state
        order.force(target, now_ns=now_ns, reason=reason)
        self.stats.venue_overrides += 1
        cid = order.client_order_id
        if target.is_live and was.is_final and self._by_client.get(cid) is order:
            self._final.pop(cid, None)
            self._maybe_live[cid] = order
        self.log.critical(
            "order.venue_state_taken",
            venue=order.request.venue,
            instrument=order.request.instrument,
            strategy=order.strategy,
            client_order_id=cid,
            order_id=order.order_id,
            ours=was.value,
            venue_state=target.value,
            filled=decimal_text(order.filled_size),
            verified=verified,
            **({} if ours_filled is None else {"ours_filled": decimal_text(ours_filled)}),
        )

    def _alert_filled_down(self, order: Order, update: OrderUpdate) -> None:
        self.stats.venue_overrides += 1
        self.log.critical(
            "order.venue_filled_less",
            venue=order.request.venue,
            instrument=order.request.instrument,
            strategy=order.strategy,
            client_order_id=order.client_order_id,
            order_id=order.order_id,
            ours=decimal_text(order.filled_size),
            booked=decimal_text(order.fills_size),
            venue_filled=decimal_text(update.filled_size),
            state=order.state.value,
            venue_state=update.status.value,
        )

    def apply_reversal(self, reversal: FillReversal) -> list[PrivateEvent]:
        """Take a voided fill back out of its order. Returns the events to deliver: the
        reversal (named after our order) and the order's state with the reduced fill quantity.
        Empty (and counted) when we never booked that fill."""
        order = None
        if self._contested:
            # On a contested venue id, the claimant that booked the trade is the one it voids.
            order = self._holding_trade(reversal.venue, reversal.order_id, reversal.trade_id)
        if order is None:
            order = self._locate(reversal.venue, reversal.order_id, reversal.client_order_id)
        now = reversal.ts_local
        if order is None or not order.unrecord_fill(
            reversal.trade_id, reversal.size, reversal.price, now_ns=now
        ):
            self.stats.unknown_reversals += 1
            return []
        self.stats.reversals += 1
        order.reason = reversal.reason or "fill_reversed"
        if reversal.strategy != order.strategy or reversal.client_order_id != order.client_order_id:
            reversal = msgspec.structs.replace(
                reversal, strategy=order.strategy, client_order_id=order.client_order_id
            )
        return [reversal, order.snapshot(ts_local=now, ts_exchange=reversal.ts_exchange)]

    def apply_fill(self, fill: Fill) -> list[PrivateEvent]:
        """Fold one execution in. Returns the events to deliver, in order: the acceptance the
        venue implied (when the order was still pending), the fill (named after our order), and
        the state it caused. Empty for a duplicate or an order we do not know."""
        trade_id = fill.trade_id
        order = None
        if self._contested:
            # A trade one claimant of a contested venue id has is a repeat, whatever the
            # report names: a duplicate (or a voided one) as any other, never "not booked".
            order = self._holding_trade(fill.venue, fill.order_id, trade_id)
        if order is None:
            order = self._locate(fill.venue, fill.order_id, fill.client_order_id)
        if order is None:
            return []
        if trade_id and trade_id in order._fill_ids:  # `has_fill`
            self.stats.duplicate_fills += 1
            return []
        if trade_id and trade_id in order._reversed_ids:  # `was_reversed`
            # A listing asked for before the reversal arrived (a reconciliation's catch-up of
            # fills, while the channel brought the reversal): stale, as a step back is.
            self.stats.voided_fills += 1
            return []
        size = fill.size
        price = fill.price
        if not (size.is_finite() and size > 0 and price.is_finite()):
            # A venue's absurd report, whatever decoded it: a size of 0 would divide the order's
            # average price by zero, a negative one undo a fill without saying which. Nothing
            # is applied (the order is as it was); the venue's order reports still count. A
            # price of 0 or below is no venue's absurdity here: a Deribit combo (a spread of two
            # legs) trades below zero; the codecs of venues whose prices cannot (Derive,
            # Polymarket) refuse those themselves.
            self.stats.refused_fills += 1
            self.log.critical(
                "fill.refused",
                venue=fill.venue,
                instrument=fill.instrument,
                client_order_id=order.client_order_id,
                order_id=fill.order_id,
                trade_id=trade_id,
                size=str(size),
                price=str(price),
                reason="a fill's size must be finite and above 0, its price finite",
            )
            return []
        now = fill.ts_local
        out: list[PrivateEvent] = []
        was = order.state
        if was is _PENDING_NEW:
            order.transition(_OPEN, now_ns=now)
            out.append(order.snapshot(ts_local=now, ts_exchange=fill.ts_exchange))
        state = order.state
        rejected = state is _REJECTED
        if state in _FINAL and state is not _FILLED and not rejected:
            self.stats.late_fills += 1
        if order.fills_size + size > order.size:
            # More than the order's size: the venue's word (booked, for the position at the
            # venue moved), but one a trader must hear of: a trade reported under two ids, or
            # an order the venue holds larger than ours.
            self.stats.overfills += 1
            self.log.critical(
                "fill.beyond_order_size",
                venue=fill.venue,
                instrument=fill.instrument,
                client_order_id=order.client_order_id,
                order_id=fill.order_id,
                trade_id=trade_id,
                size=str(size),
                fills_before=str(order.fills_size),
                order_size=str(order.size),
            )
        filled_before = order.filled_size
        order.record_fill(trade_id, size, price, now_ns=now)
        if rejected:
            # A fill on an order we had as rejected (not received, say): the venue has it, and
            # it traded. Its word wins; whether what is left still works, its next report says.
            done = order.filled_size >= order.size
            self._override(
                order,
                _FILLED if done else _PARTIALLY_FILLED,
                now_ns=now,
                reason=order.reason,
            )
        req = order.request
        if fill.strategy != req.strategy or fill.client_order_id != req.client_order_id:
            fill = msgspec.structs.replace(fill, strategy=req.strategy, client_order_id=req.client_order_id)
        out.append(fill)
        now_state, now_filled = order.state, order.filled_size
        # Whether (state, filled size) moved, as a tuple compares them (identity, then ==).
        if not (
            (now_state is state or now_state == state)
            and (now_filled is filled_before or now_filled == filled_before)
        ):
            out.append(order.snapshot(ts_local=now, ts_exchange=fill.ts_exchange))
        if self.on_state is not None and order.state is not was:
            self.on_state(order, was)
        return out
