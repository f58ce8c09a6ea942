"""GammaScalp: hold a BTC option and delta-hedge it with the perpetual.

Long an option is long gamma: when the underlying moves, the option's delta moves with it, and
re-hedging back to flat sells high and buys low. The strategy buys `option_size` contracts of one
option (named in the config, or the call/put nearest the money whose expiry is nearest
`target_days`), then whenever the net delta (option delta x contracts + the perpetual's delta)
leaves +/- `delta_band` BTC, trades the perpetual back to delta-neutral.

The option's delta comes from the volatility surface of the whole chain (`ctx.surface_async`,
`use_surface = true`, the default): the smile fitted to every option's mark IV, its skew included,
rather than one option's own mark. The surface is refitted at a bounded rate, so between two fits
the smile is taken to move with the forward (sticky moneyness: the delta at the option's
log-moneyness under today's forward). When no surface can be fitted (too few strikes quoted, the
`surface` extra not installed, the expiry outside it), and with `use_surface = false`, it uses the
venue's Greeks when the ticker carries them and Black-Scholes from the mark IV otherwise. Asking
for the surface subscribes the strategy to the tickers of the chain's options (the fit needs them).

With `hedge_book = true` it also follows the hedge's order book, and sends no hedge while that
book is broken (a `book_gap` status: a lost change, a crossed book) until its next snapshot: a
market order into a book nobody can see is not sent blind. With `option_book = true` it follows
the option's book too: paper mode and a recording fill an order only against a book (a ticker
alone fills nothing), so the paper config sets both.

The hedge may be inverse or linear. Deribit's BTC-PERPETUAL is inverse, sized in USD: a position
of A USD has a delta of about A / price BTC, and orders are multiples of its 10 USD contract. A
linear perpetual (Derive's ETH-PERP) is sized in the coin: a position of q has a delta of q x its
contract size. Hedge orders are rounded down to the instrument's size step.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Literal

import attrs

from tradingd.engine import (
    YEAR_SECONDS,
    BookUpdate,
    DataKind,
    Fill,
    Instrument,
    InstrumentKind,
    MarketEvent,
    OptionRight,
    OrderOutcomeUnknown,
    OrderRejected,
    OutsideSurface,
    Status,
    StatusKind,
    Strategy,
    Subscription,
    Ticker,
    TimeInForce,
    VolSurface,
    bs_greeks,
)

__all__ = ["GammaScalp"]


def _positive(_: object, attribute: attrs.Attribute[Decimal], value: Decimal) -> None:
    # A size of zero (or less) could never order: refused when the config is checked, with the
    # key named (the config loader folds "field: expected ..." into its key path).
    if not value > 0:
        raise ValueError(f"{attribute.name}: expected a positive number, got {value}")


@attrs.frozen
class GammaScalpParams:
    venue: str = "deribit"
    underlying: str = "BTC"
    hedge: str = "BTC-PERPETUAL"
    option: str | None = None  # an instrument name; None: choose at run time
    right: Literal["call", "put"] = "call"
    target_days: float = 30.0
    option_size: Decimal = attrs.field(default=Decimal("5"), validator=_positive)
    delta_band: float = 0.1  # BTC
    min_hedge_interval_s: float = 5.0
    close_on_stop: bool = False
    hedge_book: bool = False  # follow the hedge's book too; no hedge while it is broken
    option_book: bool = False  # follow the option's book too (paper fills need a book)
    use_surface: bool = True  # the option's delta from the chain's volatility surface (module docstring)


class GammaScalp(Strategy):
    Params = GammaScalpParams

    def __init__(self, name: str, params: GammaScalpParams | None = None) -> None:
        super().__init__(name, params or GammaScalpParams())
        self.p: GammaScalpParams = self.params
        self.option: Instrument | None = None
        self.option_delta: float | None = None
        self.hedge_price: float | None = None
        self.entering = False
        self.last_hedge_ns = -(10**18)
        self.hedges = 0
        self.hedge_book_broken = False  # `hedge_book`: a gap seen, no snapshot since
        # Where `option_delta` came from last: "surface", "venue" (the ticker's Greeks) or "mark_iv".
        self.delta_source: str | None = None

    def required_subscriptions(self) -> list[Subscription]:
        kinds = {DataKind.TICKER, DataKind.BOOK} if self.p.hedge_book else {DataKind.TICKER}
        subs = [Subscription(self.p.venue, self.p.hedge, kinds)]
        if self.p.option:
            subs.append(Subscription(self.p.venue, self.p.option, self._option_kinds()))
        return subs

    def _option_kinds(self) -> set[DataKind]:
        return {DataKind.TICKER, DataKind.BOOK} if self.p.option_book else {DataKind.TICKER}

    def data_warnings(self) -> list[str]:
        """What this strategy found missing in a backtest's data (the kernel shows these among the
        run's warnings): no option to hold, so nothing traded."""
        if self.option is not None or self.hedge_price is None:
            return []  # chose one; or never had a hedge price (the kernel says why)
        if self.p.option:
            return [f"option {self.p.option} is not in the {self.p.venue} data: nothing traded"]
        found = sorted(
            {i.base for i in self.ctx.instruments(self.p.venue) if i.kind is InstrumentKind.OPTION}
        )
        return [
            f"no {self.p.right} option of {self.p.underlying} expiring in more than a day in the"
            f" {self.p.venue} data (options of: {', '.join(found) or 'none'}): nothing traded"
        ]

    # -- choosing the option ----------------------------------------------------------------
    def _choose_option(self, spot: float) -> Instrument | None:
        now = self.ctx.now_ns()
        right = OptionRight(self.p.right)
        candidates = [
            i
            for i in self.ctx.instruments(self.p.venue)
            if i.kind is InstrumentKind.OPTION
            and i.base == self.p.underlying
            and i.right is right
            and i.expiry_ns is not None
            and i.expiry_ns > now + 86_400 * 10**9
            and i.strike is not None
            and i.active
        ]
        if not candidates:
            return None
        target = now + self.p.target_days * 86_400e9
        expiries = sorted({i.expiry_ns for i in candidates if i.expiry_ns is not None})
        expiry = min(expiries, key=lambda e: abs(e - target))
        same = [i for i in candidates if i.expiry_ns == expiry]
        return min(same, key=lambda i: (abs(float(i.strike or 0) - spot), i.symbol))

    async def _delta(self, t: Ticker) -> float | None:
        """The option's delta now: from the surface (`use_surface`), else from the venue."""
        if self.p.use_surface:
            surface = await self.ctx.surface_async(self.p.underlying, venue=self.p.venue)
            if surface is not None:
                delta = self._surface_delta(t, surface)
                if delta is not None:
                    self._source("surface")
                    return delta
        return self._venue_delta(t)

    def _surface_delta(self, t: Ticker, surface: VolSurface) -> float | None:
        """The surface's delta of the option at today's forward (sticky moneyness): a delta is a
        function of the log-moneyness k = ln(K / F) alone, so the surface's delta at the strike
        K x F_surface / F_now (where k is the option's under today's forward) is the delta of the
        surface's smile moved with the forward since the fit. None when the surface cannot tell."""
        inst = self.option
        if inst is None or inst.expiry_ns is None or inst.strike is None:
            return None
        strike = float(inst.strike)
        now = t.ts_local
        forward = t.underlying or t.index
        try:
            if forward is not None and 0 < forward < math.inf:
                strike *= surface.forward(inst.expiry_ns, now_ns=now) / forward
            return surface.greeks(
                strike, inst.expiry_ns, call=inst.right is OptionRight.CALL, now_ns=now
            ).delta
        except OutsideSurface:  # past the surface's last expiry, or expired
            return None

    def _venue_delta(self, t: Ticker) -> float | None:
        if t.greeks is not None:
            self._source("venue")
            return t.greeks.delta
        inst = self.option
        spot = t.underlying or t.index
        if inst is None or t.mark_iv is None or spot is None or inst.expiry_ns is None or inst.strike is None:
            return None
        years = (inst.expiry_ns - t.ts_local) / 1e9 / YEAR_SECONDS
        self._source("mark_iv")
        return bs_greeks(
            spot, float(inst.strike), years, t.mark_iv, call=inst.right is OptionRight.CALL
        ).delta

    def _source(self, source: str) -> None:
        if source != self.delta_source:
            self.ctx.log.info("gamma.delta_source", source=source, was=self.delta_source)
            self.delta_source = source

    # -- events -----------------------------------------------------------------------------
    async def on_event(self, event: MarketEvent) -> None:
        if isinstance(event, Ticker):
            if event.instrument == self.p.hedge:
                await self._on_hedge_ticker(event)
            elif self.option is not None and event.instrument == self.option.symbol:
                await self._on_option_ticker(event)
        elif isinstance(event, Status) and event.instrument == self.p.hedge:
            if event.status is StatusKind.BOOK_GAP and not self.hedge_book_broken:
                self.hedge_book_broken = True
                self.ctx.log.warning("gamma.hedge_held", reason=event.data.get("reason"), hedge=self.p.hedge)
        elif isinstance(event, BookUpdate) and event.snapshot and event.instrument == self.p.hedge:
            if self.hedge_book_broken:
                self.hedge_book_broken = False
                self.ctx.log.info("gamma.hedge_book_whole", hedge=self.p.hedge)
        elif isinstance(event, Fill):
            self.ctx.log.debug("fill", instrument=event.instrument, side=event.side.value, size=event.size)

    async def _on_hedge_ticker(self, t: Ticker) -> None:
        price = t.mark or t.mid
        if price is None:
            return
        self.hedge_price = price
        if self.option is None:
            if self.p.option:
                self.option = self.ctx.instrument(self.p.venue, self.p.option)
            elif t.index is not None:
                self.option = self._choose_option(t.index)
                if self.option is not None:
                    self.ctx.subscribe([Subscription(self.p.venue, self.option.symbol, self._option_kinds())])
                    self.ctx.log.info("gamma.option_chosen", option=self.option.symbol, spot=t.index)
            return
        await self._rehedge(t.ts_local)

    async def _on_option_ticker(self, t: Ticker) -> None:
        delta = await self._delta(t)
        if delta is not None:
            self.option_delta = delta
        assert self.option is not None
        held = self.ctx.position(self.p.venue, self.option.symbol)
        if (
            held < self.p.option_size
            and not self.entering
            and t.ask is not None
            and not self.ctx.open_orders(self.p.venue, self.option.symbol)
        ):
            size = self.option.round_size(self.p.option_size - held)
            if size > 0:
                self.entering = True
                try:
                    await self.ctx.buy(
                        self.p.venue,
                        self.option.symbol,
                        size,
                        price=self.option.round_price(t.ask, up=True),
                        time_in_force=TimeInForce.IOC,
                    )
                except OrderRejected as exc:
                    self.ctx.log.warning("gamma.entry_rejected", reason=exc.reason)
                except OrderOutcomeUnknown as exc:  # the venue's report settles it
                    self.ctx.log.warning("gamma.entry_outcome_unknown", error=str(exc))
                finally:
                    self.entering = False
        await self._rehedge(t.ts_local)

    def _hedge_delta_per_unit(self, hedge: Instrument) -> float:
        """The delta, in the underlying, of one unit of the hedge's size."""
        assert self.hedge_price
        if hedge.inverse:
            return 1.0 / self.hedge_price  # sized in the quote currency (USD)
        return float(hedge.contract_size)

    def net_delta(self) -> float | None:
        """Net delta in the underlying: options x delta x contract size + the hedge's delta."""
        if self.option is None or self.option_delta is None or not self.hedge_price:
            return None
        hedge = self.ctx.instrument(self.p.venue, self.p.hedge)
        if hedge is None:
            return None
        opt = float(self.ctx.position(self.p.venue, self.option.symbol)) * float(self.option.contract_size)
        perp = float(self.ctx.position(self.p.venue, self.p.hedge))
        return opt * self.option_delta + perp * self._hedge_delta_per_unit(hedge)

    async def _rehedge(self, now: int) -> None:
        if self.hedge_book_broken:
            return  # until the hedge's book is whole again (`hedge_book`)
        delta = self.net_delta()
        if delta is None or abs(delta) <= self.p.delta_band:
            return
        if now - self.last_hedge_ns < self.p.min_hedge_interval_s * 1e9:
            return
        hedge = self.ctx.instrument(self.p.venue, self.p.hedge)
        if hedge is None or self.hedge_price is None:
            return
        if self.ctx.open_orders(self.p.venue, self.p.hedge):
            return
        amount = -delta / self._hedge_delta_per_unit(hedge)  # the hedge size that brings delta to zero
        lot = hedge.lot
        size = Decimal(math.floor(abs(amount) / float(lot))) * lot
        if size < hedge.min_size:
            return
        self.last_hedge_ns = now
        self.hedges += 1
        side = self.ctx.buy if amount > 0 else self.ctx.sell
        try:
            await side(self.p.venue, self.p.hedge, size)
        except OrderRejected as exc:
            self.ctx.log.warning("gamma.hedge_rejected", reason=exc.reason, size=size)
        except OrderOutcomeUnknown as exc:
            # Still tracked as working: no second hedge until the venue's report settles it.
            self.ctx.log.warning("gamma.hedge_outcome_unknown", error=str(exc), size=size)

    async def on_stop(self) -> None:
        if not self.p.close_on_stop or self.option is None:
            return
        for symbol in (self.option.symbol, self.p.hedge):
            pos = self.ctx.position(self.p.venue, symbol)
            if pos > 0:
                await self.ctx.sell(self.p.venue, symbol, pos)
            elif pos < 0:
                await self.ctx.buy(self.p.venue, symbol, -pos)
