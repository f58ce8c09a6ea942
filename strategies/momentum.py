"""Momentum: trade ETH options whose mid price has trended over a lookback window.

For each watched option (named in the config; or chosen by an `InstrumentFilter` in
`[strategies.params.select]` and re-selected as time passes and spot moves; or else every option
of `underlying` within `max_days` and `max_moneyness` of spot, discovered once), keep the mid
prices of the last `lookback_s`.
When the mid has risen by more than `threshold` (a fraction) over the window, buy `order_size`
at the ask (immediate-or-cancel), up to `max_position` per option and `max_open` options at
once. Exits: take-profit and stop-loss on the mid against the entry price, a maximum holding
time, and momentum turning negative; an exit sells at the bid.
"""

from __future__ import annotations

import math
from collections import deque
from decimal import Decimal
from typing import Any

import attrs

from tradingd.engine import (
    DataKind,
    Instrument,
    InstrumentFilter,
    InstrumentKind,
    LiveSelection,
    MarketEvent,
    OrderOutcomeUnknown,
    OrderRejected,
    Status,
    StatusKind,
    Strategy,
    Subscription,
    Ticker,
    TimeInForce,
)

__all__ = ["Momentum"]

_DAY_NS = 86_400 * 10**9


def _positive(_: object, attribute: attrs.Attribute[Any], value: Decimal | int) -> None:
    # A size (or count) of zero could never order: refused when the config is checked, with the
    # key named (the config loader folds "field: expected ..." into its key path).
    if not value > 0:
        raise ValueError(f"{attribute.name}: expected a positive number, got {value}")


@attrs.frozen
class MomentumParams:
    venue: str = "deribit"
    underlying: str = "ETH"
    index_instrument: str = "ETH-PERPETUAL"  # whose ticker carries the index (for discovery)
    instruments: list[str] = attrs.field(factory=list)  # empty: discover
    # "ETH calls expiring in 7-30 days within 10% of spot", kept live (see engine/model/filter.py).
    select: InstrumentFilter | None = None
    reselect_s: float = 300.0  # with `select`: select again this often, or when spot moves 1%
    max_days: float = 40.0
    max_moneyness: float = 0.08  # |ln(strike / spot)|
    lookback_s: float = 300.0
    threshold: float = 0.05
    order_size: Decimal = attrs.field(default=Decimal("1"), validator=_positive)
    max_position: Decimal = attrs.field(default=Decimal("3"), validator=_positive)
    max_open: int = attrs.field(default=4, validator=_positive)
    take_profit: float = 0.15
    stop_loss: float = 0.10
    max_holding_s: float = 1800.0
    cooldown_s: float = 60.0


class Momentum(Strategy):
    Params = MomentumParams

    def __init__(self, name: str, params: MomentumParams | None = None) -> None:
        super().__init__(name, params or MomentumParams())
        self.p: MomentumParams = self.params
        self.watched: set[str] = set(self.p.instruments)
        self.mids: dict[str, deque[tuple[int, float]]] = {}
        self.entry: dict[str, tuple[int, float]] = {}  # instrument -> (time, entry mid)
        self.last_trade_ns: dict[str, int] = {}
        self.discovered: int | None = None  # how many options the last discovery found
        self.selection = (
            LiveSelection(
                self.p.select, venue=self.p.venue, kinds=[DataKind.TICKER], every_s=self.p.reselect_s
            )
            if self.p.select is not None
            else None
        )

    def required_subscriptions(self) -> list[Subscription]:
        subs = [Subscription(self.p.venue, self.p.index_instrument, {DataKind.TICKER})]
        subs += [Subscription(self.p.venue, i, {DataKind.TICKER}) for i in self.p.instruments]
        return subs

    def _discover(self, spot: float) -> list[Instrument]:
        now = self.ctx.now_ns()
        out = []
        for inst in self.ctx.instruments(self.p.venue):
            if (
                inst.kind is InstrumentKind.OPTION
                and inst.base == self.p.underlying
                and inst.active
                and inst.expiry_ns is not None
                and now < inst.expiry_ns <= now + self.p.max_days * _DAY_NS
                and inst.strike is not None
                and abs(math.log(float(inst.strike) / spot)) <= self.p.max_moneyness
            ):
                out.append(inst)
        return out

    def data_warnings(self) -> list[str]:
        """What this strategy found missing in a backtest's data (the kernel shows these among the
        run's warnings): discovery that never found an option to watch."""
        if self.discovered != 0:
            return []  # named its instruments, selects them, never looked, or found some
        found = sorted(
            {i.base for i in self.ctx.instruments(self.p.venue) if i.kind is InstrumentKind.OPTION}
        )
        have = ", ".join(found) or "none"
        return [
            f"no option of {self.p.underlying} within {self.p.max_days:g} days and moneyness"
            f" {self.p.max_moneyness:g} in the {self.p.venue} data (options of: {have}): nothing traded"
        ]

    def momentum(self, instrument: str, now: int) -> float | None:
        """Relative change of the mid over the lookback window, None without enough history."""
        hist = self.mids.get(instrument)
        if not hist or len(hist) < 2:
            return None
        oldest_ts, oldest = hist[0]
        if now - oldest_ts < self.p.lookback_s * 1e9 * 0.9 or oldest <= 0:
            return None
        return hist[-1][1] / oldest - 1.0

    def _reselect(self, spot: float) -> None:
        assert self.selection is not None
        held = [s for s in self.watched if self.ctx.position(self.p.venue, s) != 0]
        first = self.selection.selected_ns is None
        entered, left = self.selection.refresh(self.ctx, keep=held, spot=spot)
        self.watched = set(self.selection.current)
        for symbol in left:
            self.mids.pop(symbol, None)
        if entered or left or first:
            self.ctx.log.info(
                "momentum.reselected", entered=entered, left=left, watching=len(self.watched), spot=spot
            )

    async def on_event(self, event: MarketEvent) -> None:
        if not isinstance(event, Ticker):
            if (
                self.selection is not None
                and isinstance(event, Status)
                and event.status is StatusKind.INSTRUMENT_STATE
                and self.selection.selected_spot is not None
            ):
                self._reselect(self.selection.selected_spot)  # listed or delisted: select again
            return
        if event.instrument == self.p.index_instrument:
            if self.selection is not None:
                if event.index is not None and self.selection.due(event.ts_local, event.index):
                    self._reselect(event.index)
                return
            if not self.watched and event.index is not None:
                found = self._discover(event.index)
                self.discovered = len(found)
                self.watched = {i.symbol for i in found}
                self.ctx.subscribe(
                    [Subscription(self.p.venue, s, {DataKind.TICKER}) for s in sorted(self.watched)]
                )
                self.ctx.log.info("momentum.watching", instruments=sorted(self.watched), spot=event.index)
            return
        if event.instrument not in self.watched or event.mid is None:
            return
        now = event.ts_local
        hist = self.mids.setdefault(event.instrument, deque())
        hist.append((now, event.mid))
        horizon = now - int(self.p.lookback_s * 1e9)
        while len(hist) > 1 and hist[1][0] <= horizon:
            hist.popleft()
        await self._decide(event, now)

    async def _decide(self, t: Ticker, now: int) -> None:
        symbol = t.instrument
        inst = self.ctx.instrument(self.p.venue, symbol)
        if inst is None or t.mid is None:
            return
        pos = self.ctx.position(self.p.venue, symbol)
        mom = self.momentum(symbol, now)
        if pos > 0:
            entry_ts, entry_mid = self.entry.get(symbol, (now, t.mid))
            change = t.mid / entry_mid - 1.0 if entry_mid > 0 else 0.0
            reason = None
            if change >= self.p.take_profit:
                reason = "take_profit"
            elif change <= -self.p.stop_loss:
                reason = "stop_loss"
            elif now - entry_ts >= self.p.max_holding_s * 1e9:
                reason = "max_holding"
            elif mom is not None and mom < 0:
                reason = "momentum_reversed"
            if reason is not None and t.bid is not None:
                await self._trade(inst, "sell", pos, t.bid, now, reason)
            return
        if mom is None or mom < self.p.threshold or t.ask is None:
            return
        if now - self.last_trade_ns.get(symbol, -(10**18)) < self.p.cooldown_s * 1e9:
            return
        held = sum(1 for s in self.watched if self.ctx.position(self.p.venue, s) > 0)
        if held >= self.p.max_open:
            return
        size = min(self.p.order_size, self.p.max_position - pos)
        if size >= inst.min_size:
            await self._trade(inst, "buy", inst.round_size(size), t.ask, now, f"momentum {mom:.3f}")

    async def _trade(
        self, inst: Instrument, side: str, size: Decimal, price: float, now: int, why: str
    ) -> None:
        self.last_trade_ns[inst.symbol] = now
        place = self.ctx.buy if side == "buy" else self.ctx.sell
        limit = inst.round_price(price, up=side == "buy")
        try:
            answer = await place(self.p.venue, inst.symbol, size, price=limit, time_in_force=TimeInForce.IOC)
        except OrderRejected as exc:
            self.ctx.log.warning("momentum.rejected", instrument=inst.symbol, reason=exc.reason)
            return
        except OrderOutcomeUnknown as exc:
            # Perhaps filled: the venue's report moves the position; never sent again.
            self.ctx.log.warning("momentum.outcome_unknown", instrument=inst.symbol, error=str(exc))
            return
        if side == "buy" and answer.filled_size > 0:
            self.entry[inst.symbol] = (now, float(answer.avg_fill_price or limit))
        elif side == "sell" and self.ctx.position(self.p.venue, inst.symbol) <= 0:
            self.entry.pop(inst.symbol, None)
        self.ctx.log.info(
            "momentum.trade", instrument=inst.symbol, side=side, why=why, filled=answer.filled_size
        )
