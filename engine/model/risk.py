"""Pre-trade checks: every order passes them before anything is signed or sent.

In order: the kill switch (engaged: everything is refused until it is cleared); the instrument is
known and active; price and size fit its tick size and minimum size; then each applicable set of
limits (the engine-wide `[risk]` table over all strategies together, then the strategy's own,
each with per-instrument overrides for the per-order limits):

- `max_order_size`, `max_order_notional_usd`: the order itself;
- `max_position`: the position the scope would reach if this order and all its working orders
  on the same side filled (an order that reduces the position always passes);
- `max_open_orders`: working orders at once (new orders only; an edit adds none);
- `max_orders_per_minute`: new orders and edits in any 60 s window (the venues' matching
  engines count both);
- `max_daily_loss_usd`: once today's PnL (UTC day, realized + unrealized - fees, against the
  equity when the day began) is below minus this, only orders that reduce a position pass.

Each scope counts what is its own: the engine's limits every strategy together (the position
summed over the strategies, every strategy's working orders, open orders, order rate, and
PnL), a strategy's limits only its own. "Reduces a position" is the scope's position too: beyond
the engine's daily loss, a sell by a strategy holding nothing passes while the strategies
together hold more than it sells.

A refusal raises `OrderDenied` (an `OrderRejected`, not a `VenueError`: nothing happened at a
venue) whose reason names the check, the scope and the numbers. Each refusal is counted by
strategy and by the check that refused it (`refusals`, one of `CHECKS`: the daemon's status and
metrics), named where the check is made, never read back from the reason's text.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final, Literal, get_args

import attrs

from .errors import OrderDenied, OrderRejected
from .events import Side
from .instruments import Instrument, InstrumentRegistry
from .market import MarketState, notional_usd
from .orders import OrderRequest, OrderTracker

__all__ = ["CHECKS", "Check", "Limits", "RiskChecker", "RiskLimits"]

# The check that refused an order: the kill switch, the instrument (unknown or not active), its
# price and size (tick, minimum size, lot), each limit by name (`max_notional` is
# `max_order_notional_usd`), and `other` for a refusal of none of these.
Check = Literal[
    "kill_switch",
    "instrument",
    "max_order_size",
    "max_position",
    "max_notional",
    "max_open_orders",
    "max_orders_per_minute",
    "max_daily_loss_usd",
    "price",
    "other",
]
CHECKS: Final[tuple[Check, ...]] = get_args(Check)


_DAY_NS = 86_400 * 1_000_000_000
_MINUTE_NS = 60 * 1_000_000_000


def _a_limit(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    """None is "no limit"; anything else is a finite number, never negative. NaN compares false
    with everything, so a NaN limit would silently be no limit at all: refused here, whatever
    built the limits (the config refuses it first, naming the key)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise TypeError(f"{attribute.name}: expected a number, got {value!r}")
    finite = value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)
    if not finite or value < 0:
        raise ValueError(f"{attribute.name}: expected a finite number at least 0, got {value}")


@attrs.frozen
class Limits:
    """One set of limits; None means "no limit"."""

    max_order_size: Decimal | None = attrs.field(default=None, validator=_a_limit)
    max_order_notional_usd: float | None = attrs.field(default=None, validator=_a_limit)
    max_position: Decimal | None = attrs.field(default=None, validator=_a_limit)
    max_open_orders: int | None = attrs.field(default=None, validator=_a_limit)
    max_orders_per_minute: int | None = attrs.field(default=None, validator=_a_limit)
    max_daily_loss_usd: float | None = attrs.field(default=None, validator=_a_limit)

    def overridden_by(self, other: Limits) -> Limits:
        """These limits with every limit `other` sets taking precedence."""
        changes = {
            f.name: getattr(other, f.name) for f in attrs.fields(Limits) if getattr(other, f.name) is not None
        }
        return attrs.evolve(self, **changes)


def _unlimited(limits: Limits) -> bool:
    """Whether `limits` sets no limit at all: `_check_limits` and `_check_scope` would check
    nothing (each of their checks is of a limit that is set)."""
    return (
        limits.max_order_size is None
        and limits.max_order_notional_usd is None
        and limits.max_position is None
        and limits.max_open_orders is None
        and limits.max_orders_per_minute is None
        and limits.max_daily_loss_usd is None
    )


@attrs.frozen
class RiskLimits:
    """Limits for any instrument, with overrides for named instruments."""

    default: Limits = Limits()
    instruments: Mapping[str, Limits] = attrs.field(factory=dict)

    def for_instrument(self, symbol: str) -> Limits:
        specific = self.instruments.get(symbol)
        return self.default if specific is None else self.default.overridden_by(specific)


class RiskChecker:
    """Runs the checks of the module docstring against the engine's live state."""

    def __init__(
        self,
        registry: InstrumentRegistry,
        market: MarketState,
        tracker: OrderTracker,
        position_of: Callable[[str | None, str, str], Decimal],
        *,
        engine_limits: RiskLimits | None = None,
        strategy_limits: Mapping[str, RiskLimits] | None = None,
        equity_of: Callable[[str | None], float] | None = None,
    ) -> None:
        self.registry = registry
        self.market = market
        self.tracker = tracker
        # (strategy, venue, instrument) -> net position; strategy None: every strategy together.
        self.position_of = position_of
        # USD equity (realized + unrealized - fees) of a strategy, or of all of them for None.
        self.equity_of = equity_of
        self.engine_limits = engine_limits or RiskLimits()
        self.strategy_limits = dict(strategy_limits or {})
        self.rejections = 0
        # Refusals by strategy, then by the check that refused (`Check`); `_refused` is the
        # check of the refusal being raised (`_reject` names it).
        self.refusals: dict[str, dict[Check, int]] = {}
        self._refused: Check | None = None
        self.halted: str | None = None  # the kill switch's reason, while it is engaged
        self._free: Limits | None = None  # engine limits known to limit nothing (`check`)
        self._sent: dict[str | None, deque[int]] = {}  # order messages' times, by scope
        self._day = -1
        self.day_start_equity: dict[str | None, float] = {}  # by scope, at the UTC day's start

    # -- the kill switch ----------------------------------------------------------------------
    def halt(self, reason: str) -> None:
        """Engage the kill switch: every order is refused until `resume`."""
        self.halted = reason or "kill switch"

    def resume(self) -> None:
        self.halted = None

    # -- the day ------------------------------------------------------------------------------
    @property
    def day(self) -> int:
        """The UTC day (days since the epoch) today's PnL counts in; -1 before the first."""
        return self._day

    def roll_day(self, now_ns: int) -> bool:
        """Start a new UTC day when `now_ns` is in one: today's PnL counts from the equity now.
        Called on every check, and by the daemon every second so no loss escapes the count."""
        day = now_ns // _DAY_NS
        if day == self._day:
            return False
        self._day = day
        self.day_start_equity.clear()
        if self.equity_of is not None:
            self.day_start_equity[None] = self.equity_of(None)
            for name in self.strategy_limits:
                self.day_start_equity[name] = self.equity_of(name)
        return True

    def restore_day(self, day_start_ns: int, equities: Mapping[str | None, float]) -> None:
        """Today's starting equities as saved before a restart (the order journal)."""
        self._day = day_start_ns // _DAY_NS
        self.day_start_equity = dict(equities)

    def today_pnl(self, scope: str | None) -> float | None:
        if self.equity_of is None:
            return None
        start = self.day_start_equity.get(scope)
        if start is None:
            start = self.day_start_equity[scope] = self.equity_of(scope)
        return self.equity_of(scope) - start

    def check(
        self,
        req: OrderRequest,
        *,
        now_ns: int,
        replaces: Decimal = Decimal(0),
        adds: Decimal | None = None,
    ) -> Instrument:
        """Return the order's instrument, or raise `OrderDenied` with the reason. On success
        the order (or edit) counts toward the order-rate limits.

        For an edit, `replaces` is the order's remaining size now (already among the working
        orders) and `adds` its remaining size after the edit; for a new order, `adds` is None."""
        # The check under way, for a refusal raised without `_reject` (the registry's, the
        # instrument's own checks): `instrument` while it is looked up or is not active.
        stage: Check = "instrument"
        self._refused = None
        try:
            if self.halted is not None:
                raise self._reject(req, "kill_switch", f"kill switch engaged: {self.halted}")
            inst = self.registry.require(req.venue, req.instrument, client_order_id=req.client_order_id)
            if inst.active:
                stage = "price"
            inst.check_order(req.price, req.size, client_order_id=req.client_order_id)
            stage = "other"
            if now_ns // _DAY_NS != self._day:  # `roll_day`'s own test, without the call
                self.roll_day(now_ns)
            is_new = adds is None
            new = req.size if adds is None else adds
            # The engine's scope, then the strategy's (each limits found before any is checked).
            # An engine scope without overrides whose limits were found unlimited before is
            # unlimited still (a frozen `Limits` of numbers never changes): not looked at again.
            engine_limits = self.engine_limits
            if engine_limits.instruments or engine_limits.default is not self._free:
                engine: Limits | None = engine_limits.for_instrument(req.instrument)
                if engine is not None and _unlimited(engine):
                    if not engine_limits.instruments:  # then `engine` is the default
                        self._free = engine
                    engine = None
            else:
                engine = None
            own = self.strategy_limits.get(req.strategy)
            strategy = None if own is None else own.for_instrument(req.instrument)
            if engine is not None:  # (unlimited: no check to run, the usual engine scope of a backtest)
                self._check_limits(req, inst, engine, None, "engine", replaces, new)
                self._check_scope(req, engine, None, "engine", now_ns=now_ns, is_new=is_new)
            if strategy is not None and not _unlimited(strategy):
                label = f"strategy {req.strategy}"
                self._check_limits(req, inst, strategy, req.strategy, label, replaces, new)
                self._check_scope(req, strategy, req.strategy, label, now_ns=now_ns, is_new=is_new)
        except OrderRejected:
            self.rejections += 1
            check = self._refused or stage
            mine = self.refusals.setdefault(req.strategy, {})
            mine[check] = mine.get(check, 0) + 1
            raise
        by_scope = self._sent
        horizon = now_ns - _MINUTE_NS
        for scope in (None, req.strategy):
            sent = by_scope.get(scope)
            if sent is None:
                sent = by_scope[scope] = deque()
            sent.append(now_ns)
            while sent[0] <= horizon:  # only the last minute counts: bounded
                sent.popleft()
        return inst

    def _check_scope(
        self, req: OrderRequest, limits: Limits, scope: str | None, label: str, *, now_ns: int, is_new: bool
    ) -> None:
        """The limits on a whole scope (every strategy, or one): open orders, rate, daily loss."""
        if is_new and limits.max_open_orders is not None:
            n = len(self.tracker.open_orders(scope))
            if n >= limits.max_open_orders:
                raise self._reject(
                    req,
                    "max_open_orders",
                    f"max_open_orders ({label}): {n} working, at most {limits.max_open_orders}",
                )
        if limits.max_orders_per_minute is not None:
            sent = self._sent.setdefault(scope, deque())
            while sent and sent[0] <= now_ns - _MINUTE_NS:
                sent.popleft()
            if len(sent) >= limits.max_orders_per_minute:
                raise self._reject(
                    req,
                    "max_orders_per_minute",
                    f"max_orders_per_minute ({label}): {len(sent)} in the last 60 s, "
                    f"at most {limits.max_orders_per_minute}",
                )
        if limits.max_daily_loss_usd is not None:
            pnl = self.today_pnl(scope)
            # `not >=`: a PnL that cannot be valued (NaN) counts as beyond the limit.
            if pnl is not None and not pnl >= -limits.max_daily_loss_usd and not self._reduces(req, scope):
                raise self._reject(
                    req,
                    "max_daily_loss_usd",
                    f"max_daily_loss_usd ({label}): today's PnL {pnl:.2f} USD is beyond "
                    f"-{limits.max_daily_loss_usd:.2f}; only orders that reduce a position pass",
                )

    def _exposure(self, req: OrderRequest, scope: str | None) -> tuple[Decimal, Decimal]:
        """The scope's net position in the order's instrument, and the remaining size of the
        scope's working orders on the order's side (an order being edited among them)."""
        pos = self.position_of(scope, req.venue, req.instrument)
        working = sum(
            (
                o.remaining
                for o in self.tracker.open_orders(scope)
                if o.request.instrument == req.instrument
                and o.request.venue == req.venue
                and o.request.side is req.side
            ),
            Decimal(0),
        )
        return pos, working

    def _reduces(self, req: OrderRequest, scope: str | None) -> bool:
        """Whether the order only reduces the scope's position (and working orders on the same
        side do not already use that room)."""
        pos, working = self._exposure(req, scope)
        sign = 1 if req.side is Side.BUY else -1
        if pos == 0 or (pos > 0) == (sign > 0):
            return False
        return working + req.size <= abs(pos)

    def _reject(self, req: OrderRequest, check: Check, reason: str) -> OrderDenied:
        """The refusal of `req` by `check` (counted as such by `check`'s caller)."""
        self._refused = check
        return OrderDenied(
            reason, venue=req.venue, instrument=req.instrument, client_order_id=req.client_order_id
        )

    def _check_limits(
        self,
        req: OrderRequest,
        inst: Instrument,
        limits: Limits,
        scope: str | None,
        label: str,
        replaces: Decimal,
        adds: Decimal,
    ) -> None:
        if limits.max_order_size is not None and req.size > limits.max_order_size:
            raise self._reject(
                req, "max_order_size", f"max_order_size ({label}): {req.size} > {limits.max_order_size}"
            )
        if limits.max_order_notional_usd is not None:
            price = float(req.price) if req.price is not None else self.market.mark(req.venue, req.instrument)
            notional = notional_usd(inst, float(req.size), price, self.market.usd_rate(req.venue, inst.base))
            if notional is None or math.isnan(notional):
                raise self._reject(
                    req, "max_notional", f"max_order_notional_usd ({label}): no price to value the order yet"
                )
            if notional > limits.max_order_notional_usd:
                raise self._reject(
                    req,
                    "max_notional",
                    f"max_order_notional_usd ({label}): {notional:.2f} > {limits.max_order_notional_usd:.2f}",
                )
        if limits.max_position is not None:
            pos, working = self._exposure(req, scope)
            sign = 1 if req.side is Side.BUY else -1
            worst = pos + sign * (working - replaces + adds)
            if abs(worst) > limits.max_position and abs(worst) > abs(pos):
                raise self._reject(
                    req,
                    "max_position",
                    f"max_position ({label}): position {pos} with working {working} and this order "
                    f"would reach {worst}, beyond {limits.max_position}",
                )
