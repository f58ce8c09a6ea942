"""CrossVenue: trade Polymarket's crypto price markets against the option chain's probabilities.

A market such as "Will the price of Bitcoin be above $102,000 on November 8?" pays 1 when BTC
settles above the strike at the stated time; the options venue's volatility surface prices the
same event (`PriceMarket.probability`: the digital from the smile, skew included). For each
matched market the strategy compares that probability with the token's book:

- **Entry.** Buy YES when `p_model - yes_ask > fee + margin`; buy NO (Polymarket has no shorting:
  the NO token, which pays 1 - YES, at its own ask) when `(1 - p_model) - no_ask > fee + margin`,
  which is `yes_bid - p_model > fee + margin` when the two books mirror each other. `fee` is the
  taker fee per share the venue's schedule charges for that order (`ctx.fee`). Size: the smallest
  of `order_size`, what `max_position` leaves in the market, and the size shown at the touch;
  immediate-or-cancel at the touch (the gap is the model's against the ask rounded up to the
  tick, the price the order is sent at). No entry in a market while the other outcome is held (that
  is an exit to make first), within `min_time_to_resolution_s` of resolution, or within
  `cooldown_s` of the market's last order (entry or exit).
- **Exit.** Sell what is held at the bid when the gap left after the taker fee,
  `p_token - bid + fee`, falls below `exit_gap`: selling at the bid, fee paid, gives up less than
  `exit_gap` against holding to resolution (the price has come to the model, or beyond it). A
  held size below the token's `min_size` cannot be sold: it is held to resolution (logged once).
  Exits wait for the market's cooldown too (an exit that did not fill is not resent on every
  book update). What is still held at resolution is settled by the venue at its payout (the
  engine books it: `market_resolved`).
- **The live underlying.** The surface is as of its last fit (up to `max_surface_age_s` old); a
  short-dated digital moves several points on a move of the underlying of a few hundredths of a
  percent. So the surface is re-centred on the options venue's live index (the `index` its
  chain's and perpetual's tickers carry) at each decision: the market's strikes are scaled by
  F_fit / F_now, the index when the surface was fitted over the index now (sticky moneyness, as
  GammaScalp does with its delta; the ratio of indices keeps the forward's basis the surface
  fitted). Nothing is sent without an index price within `max_index_age_s`.
- **Nothing** is sent when the surface is missing, older than `max_surface_age_s`, or cannot price
  the market (`OutsideSurface`: it resolves after the last fitted expiry), nor on a book that is
  empty on the side needed, crossed, broken (a gap, until its next snapshot) or older than
  `max_book_age_s`.
- **Hedge** (`hedge = true`): the held tokens' delta, `dP/dS x shares` (YES long, NO short), is
  kept within `hedge_band` (in the underlying) with `hedge_instrument`, as GammaScalp does (an
  inverse perpetual is sized in USD, a linear one in the coin). `dP/dS` is a central difference
  of the market's probability with the forward moved by +/- 0.1%: on the surface's
  sticky-moneyness smile that is the market's strikes divided by (1 +/- 0.001) at an unmoved
  forward.

Every order carries a `tag` (`gap=+0.0620 p_model=0.4410 bid=0.37 ask=0.38 fee=0.0070 YES`): the
gap it traded on, the model's probability of the token traded, the touch and the fee per share,
which the backtest report lists beside the fills.

Markets come from `ctx.catalog(market_venue).price_markets(underlying)` at start and whenever the
catalog's contents change; the nearest `max_markets` to resolution are watched (markets held are
kept). What the catalog could not read is logged once per market, at info, with its reason.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from tradingd.engine import (
    BookUpdate,
    DataKind,
    Instrument,
    MarketCatalog,
    MarketEvent,
    OrderOutcomeUnknown,
    OrderRejected,
    OutsideSurface,
    PriceCondition,
    Status,
    StatusKind,
    Strategy,
    StrategyError,
    Subscription,
    Ticker,
    TimeInForce,
)

if TYPE_CHECKING:
    from tradingd.engine import PriceMarket, VolSurface

__all__ = ["CrossVenue", "CrossVenueParams"]

_S = 1_000_000_000
# The forward's relative move for dP/dS (central difference): small against any strike spacing,
# large against float noise in the probabilities (~1e-12).
_BUMP = 1e-3
# Option tickers arrive many times a second; a new surface is looked for at most this often
# (event time) to reprice every watched market between their own book updates.
_SURFACE_LOOK_S = 1.0


def _positive(_: object, attribute: attrs.Attribute[Any], value: Decimal | int | float) -> None:
    # Refused when the config is checked, with the key named (the loader folds "field: expected").
    if isinstance(value, bool) or not (value > 0) or (isinstance(value, float) and not math.isfinite(value)):
        raise ValueError(f"{attribute.name}: expected a positive number, got {value}")


def _not_negative(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{attribute.name}: expected a finite number >= 0, got {value}")


# The longest a duration parameter may be (a year): the strategy holds them in integer ns, and a
# longer one means nothing here (1e300 s overflowed at each use, an error per event).
MAX_DURATION_S = 365 * 86_400.0


def _duration(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    # After `_positive` or `_not_negative`: finite and in range, so only the bound is left.
    if value > MAX_DURATION_S:
        raise ValueError(f"{attribute.name}: expected at most a year ({MAX_DURATION_S:.0f} s), got {value}")


@attrs.frozen
class CrossVenueParams:
    options_venue: str = "deribit"
    market_venue: str = "polymarket"
    underlying: str = "BTC"
    margin: float = attrs.field(default=0.02, validator=_not_negative)  # probability points beyond the fee
    exit_gap: float = attrs.field(default=0.005, validator=_not_negative)  # sell: p - bid + fee < this
    order_size: Decimal = attrs.field(default=Decimal("20"), validator=_positive)  # shares per order
    max_position: Decimal = attrs.field(default=Decimal("100"), validator=_positive)  # shares per market
    max_markets: int = attrs.field(default=10, validator=_positive)
    min_time_to_resolution_s: float = attrs.field(default=3600.0, validator=[_not_negative, _duration])
    max_surface_age_s: float = attrs.field(default=120.0, validator=[_positive, _duration])
    max_book_age_s: float = attrs.field(default=600.0, validator=[_positive, _duration])
    # The options venue's live index (any of its tickers of the underlying): older than this, no trade.
    max_index_age_s: float = attrs.field(default=10.0, validator=[_positive, _duration])
    cooldown_s: float = attrs.field(
        default=10.0, validator=[_not_negative, _duration]
    )  # per market, between attempts
    hedge: bool = False
    hedge_instrument: str = "BTC-PERPETUAL"  # on options_venue
    hedge_band: float = attrs.field(default=0.05, validator=_positive)  # in the underlying (BTC)
    min_hedge_interval_s: float = attrs.field(default=10.0, validator=[_not_negative, _duration])

    def __attrs_post_init__(self) -> None:
        if self.exit_gap > self.margin:
            # An entry leaves a gap of more than `margin` at the bid only when the spread is
            # wider than the fee: with exit_gap above margin it could sell what it just bought.
            raise ValueError(f"exit_gap: expected at most margin ({self.margin}), got {self.exit_gap}")


@attrs.define
class _Top:
    """The top of one token's book as its last update left it."""

    ts: int
    bid: float | None
    bid_size: float | None
    ask: float | None
    ask_size: float | None


@attrs.define
class _Watched:
    pm: PriceMarket
    next_try_ns: int = 0  # cooldown: no new order before this
    resolved: bool = False
    # Memo of the market's re-centred strikes (`_strikes`) for one market object and scale: the
    # scale moves only with the index, far less often than the books.
    k_pm: PriceMarket | None = None
    k_scale: float = math.nan
    k_low: float | None = None
    k_high: float | None = None
    # Memo of P(YES) for one (surface, scale, instant): several book updates of one market share
    # an instant (its YES and NO books, a frame's levels). None: the surface could not price it.
    p_surface: VolSurface | None = None
    p_scale: float = math.nan
    p_now: int = -1
    p_yes: float | None = None


def _fmt(x: float | None) -> str:
    return "none" if x is None else f"{x:g}"


class CrossVenue(Strategy):
    """Polymarket crypto price markets against the options venue's surface (module docstring)."""

    Params = CrossVenueParams

    def __init__(self, name: str, params: CrossVenueParams | None = None) -> None:
        super().__init__(name, params or CrossVenueParams())
        self.p: CrossVenueParams = self.params
        self.catalog: MarketCatalog | None = None
        self.catalog_generation = -1
        self.watched: dict[str, _Watched] = {}  # condition id -> market
        self.by_token: dict[str, tuple[_Watched, bool]] = {}  # token -> (market, is YES)
        self.tops: dict[str, _Top] = {}
        self.broken: set[str] = set()  # tokens whose book had a gap, no snapshot since
        self.unrecognized: dict[str, str] = {}  # condition id -> why the catalog could not read it
        self.resolved: set[str] = set()  # condition ids
        self.dust: set[str] = set()  # tokens held below their min_size (said once)
        # The options venue's index price as its tickers carried it: (ts_local, index), on change.
        self.index_ts: list[int] = []
        self.index_px: list[float] = []
        self.index_seen_ns = 0  # the latest ticker that carried it
        self.matched = 0  # price markets the last match found
        self.looked = False
        self.problem: str | None = None  # why nothing can trade (no catalog, no chain)
        self.surface: VolSurface | None = None
        self.surface_seen = False
        self.surface_looked_ns = -(10**18)
        self.priced = 0  # markets priced by the surface (all evaluations)
        self.skips: Counter[str] = Counter()  # why an evaluation sent nothing
        self.trades: Counter[str] = Counter()  # "entry", "exit", "hedge" orders sent
        self.hedge_price: float | None = None
        self.last_hedge_ns = -(10**18)

    # -- start, matching markets --------------------------------------------------------------
    def required_subscriptions(self) -> list[Subscription]:
        if not self.p.hedge:
            return []
        return [Subscription(self.p.options_venue, self.p.hedge_instrument, {DataKind.TICKER})]

    async def on_start(self) -> None:
        try:
            self.catalog = self.ctx.catalog(self.p.market_venue)
        except StrategyError as exc:
            self.problem = str(exc)
            self.ctx.log.warning("cross_venue.no_catalog", venue=self.p.market_venue, error=str(exc))
            return
        try:
            # The first call subscribes this strategy to the chain's tickers (the surface's input).
            self.surface = self.ctx.surface(self.p.underlying, venue=self.p.options_venue)
        except StrategyError as exc:
            self.problem = str(exc)
            self.ctx.log.warning("cross_venue.no_chain", venue=self.p.options_venue, error=str(exc))
            return
        self.surface_seen = self.surface is not None
        await self._match()

    async def _match(self) -> None:
        """(Re)read the catalog's price markets: watch the nearest `max_markets` to resolution
        (those held stay watched), subscribe to their tokens' books, drop the others. Live, the
        catalog reads them in a worker thread (`price_markets_async`: the event loop is not held
        up); in a backtest it answers inline."""
        assert self.catalog is not None
        self.catalog_generation = self.catalog.generation
        found, unread = await self.catalog.price_markets_async(self.p.underlying)
        self.looked = True
        self.matched = len(found)
        for u in unread:
            cid = u.market.condition_id
            if cid not in self.unrecognized:
                self.unrecognized[cid] = u.reason
                self.ctx.log.info("cross_venue.unrecognized", market=u.market.slug, reason=u.reason)
        now = self.ctx.now_ns()
        horizon = now + int(self.p.min_time_to_resolution_s * _S)
        listed = {pm.market.condition_id: pm for pm in found}
        keep = {cid: w for cid, w in self.watched.items() if cid in listed or self._held(w.pm)}
        for cid, w in keep.items():
            if cid in listed:
                w.pm = listed[cid]
        for pm in sorted(found, key=lambda m: (m.resolves_at_ns, m.market.slug)):
            if len(keep) >= self.p.max_markets:
                break
            cid = pm.market.condition_id
            if cid in keep or cid in self.resolved or not pm.market.tradable or pm.resolves_at_ns <= horizon:
                continue
            keep[cid] = _Watched(pm)
        dropped = [w for cid, w in self.watched.items() if cid not in keep]
        added = [w for cid, w in keep.items() if cid not in self.watched]
        self.watched = keep
        self.by_token = {}
        for w in keep.values():
            self.by_token[w.pm.yes_token] = (w, True)
            self.by_token[w.pm.no_token] = (w, False)
        if dropped:
            self.ctx.unsubscribe(self._subs(dropped))
        if added:
            self.ctx.subscribe(self._subs(added))
        self.ctx.log.info(
            "cross_venue.markets",
            matched=len(found),
            unrecognized=len(unread),
            watching=sorted(w.pm.market.slug for w in keep.values()),
        )

    def _subs(self, markets: list[_Watched]) -> list[Subscription]:
        v = self.p.market_venue
        return [Subscription(v, t, {DataKind.BOOK}) for w in markets for t in (w.pm.yes_token, w.pm.no_token)]

    def _held(self, pm: PriceMarket) -> bool:
        v = self.p.market_venue
        return self.ctx.position(v, pm.yes_token) != 0 or self.ctx.position(v, pm.no_token) != 0

    def data_warnings(self) -> list[str]:
        """What this strategy found missing in a backtest's data: no catalog or chain, no price
        market recognised, no surface fitted, or no market the surface could price."""
        if self.problem is not None:
            return [f"{self.problem}: nothing traded"]
        if not self.looked:
            return []
        u = self.p.underlying
        if self.matched == 0:
            why = ""
            if self.unrecognized:
                first = sorted(self.unrecognized.values())[0]
                why = f"; {len(self.unrecognized)} not read, e.g. {first}"
            return [
                f"no {u} price market recognised in the {self.p.market_venue} catalog{why}: nothing traded"
            ]
        if not self.surface_seen:
            return [f"no {u} surface could be fitted from the {self.p.options_venue} chain: nothing traded"]
        if self.priced == 0 and self.skips["outside_surface"]:
            return [
                f"no watched {u} market resolves within the {self.p.options_venue} surface's expiries:"
                " nothing traded"
            ]
        return []

    # -- events ------------------------------------------------------------------------------
    async def on_event(self, event: MarketEvent) -> None:
        if self.catalog is not None and self.catalog.generation != self.catalog_generation:
            await self._match()
        cls = event.__class__
        if cls is BookUpdate:
            assert isinstance(event, BookUpdate)
            found = self.by_token.get(event.instrument)
            if found is None:
                return
            if event.snapshot:
                self.broken.discard(event.instrument)
            self.tops[event.instrument] = _Top(
                event.ts_local, event.best_bid, event.best_bid_size, event.best_ask, event.best_ask_size
            )
            await self._evaluate(found[0], event.ts_local)
        elif cls is Ticker:
            assert isinstance(event, Ticker)
            self._record_index(event)
            if self.p.hedge and event.instrument == self.p.hedge_instrument:
                price = event.mark or event.mid
                if price is not None:
                    self.hedge_price = price
                    await self._rehedge(event.ts_local)
            elif event.ts_local - self.surface_looked_ns >= _SURFACE_LOOK_S * _S and self.watched:
                before = self.surface
                if await self._surface(event.ts_local) is not before:  # a new fit: reprice
                    for w in list(self.watched.values()):
                        await self._evaluate(w, event.ts_local)
        elif cls is Status:
            assert isinstance(event, Status)
            self._on_status(event)

    def _on_status(self, event: Status) -> None:
        found = self.by_token.get(event.instrument)
        if found is None:
            return
        if event.status is StatusKind.MARKET_RESOLVED:
            w = found[0]
            w.resolved = True
            self.resolved.add(w.pm.market.condition_id)
            self.ctx.log.info(
                "cross_venue.resolved", market=w.pm.market.slug, payout=event.data.get("payout")
            )
        elif event.status in (StatusKind.BOOK_GAP, StatusKind.FEED_STALE, StatusKind.DISCONNECTED):
            self.broken.add(event.instrument)

    def _record_index(self, t: Ticker) -> None:
        """Keep the options venue's index price (its chain's and perpetual's tickers carry it)."""
        index = t.index
        if t.venue != self.p.options_venue or index is None or not 0.0 < index < math.inf:
            return
        ts, px = self.index_ts, self.index_px
        if ts and t.ts_local < ts[-1]:
            return  # out of order: the later one stands
        self.index_seen_ns = t.ts_local
        if px and px[-1] == index:
            return  # unchanged: only its age is new
        ts.append(t.ts_local)
        px.append(index)
        if len(ts) > 4096:  # keep what a surface as old as max_surface_age_s may need
            cutoff = t.ts_local - int((self.p.max_surface_age_s + 60.0) * _S)
            drop = max(0, bisect.bisect_right(ts, cutoff) - 1)
            del ts[:drop], px[:drop]

    def _recentre(self, surface: VolSurface, now: int) -> float | None:
        """F_fit / F_now: the index when the surface was fitted over the live one (the smile moved
        with the underlying since: sticky moneyness, as GammaScalp's delta). None (counted) when
        the live index is missing or older than `max_index_age_s`, or none is known at the fit."""
        ts = self.index_ts
        if not ts:
            self.skips["no_live_price"] += 1
            return None
        if now - self.index_seen_ns > self.p.max_index_age_s * _S:
            self.skips["stale_live_price"] += 1
            return None
        at_fit = bisect.bisect_right(ts, surface.as_of_ns) - 1
        if at_fit < 0:
            self.skips["no_price_at_fit"] += 1
            return None
        return self.index_px[at_fit] / self.index_px[-1]

    async def _surface(self, now: int) -> VolSurface | None:
        self.surface_looked_ns = now
        self.surface = await self.ctx.surface_async(self.p.underlying, venue=self.p.options_venue)
        if self.surface is not None:
            self.surface_seen = True
        return self.surface

    # -- deciding ----------------------------------------------------------------------------
    def _usable(self, token: str, now: int) -> _Top | None:
        """The token's top of book, or None when it cannot be traded on (counted)."""
        top = self.tops.get(token)
        if top is None or token in self.broken:
            self.skips["no_book"] += 1
            return None
        if now - top.ts > self.p.max_book_age_s * _S:
            self.skips["stale_book"] += 1
            return None
        if top.bid is not None and top.ask is not None and top.bid >= top.ask:
            self.skips["crossed_book"] += 1
            return None
        return top

    async def _evaluate(self, w: _Watched, now: int) -> None:
        if w.resolved:
            return
        surface = self.surface if now - self.surface_looked_ns < _SURFACE_LOOK_S * _S else None
        if surface is None:
            surface = await self._surface(now)
        if surface is None:
            self.skips["no_surface"] += 1
            return
        if now - surface.as_of_ns > self.p.max_surface_age_s * _S:
            self.skips["stale_surface"] += 1
            return
        scale = self._recentre(surface, now)
        if scale is None:
            return
        pm = w.pm
        if w.p_surface is surface and w.p_now == now and w.p_scale == scale and w.k_pm is pm:
            p_yes = w.p_yes  # this instant already priced (the probability is a function of these)
        else:
            if w.k_pm is not pm or w.k_scale != scale:
                # The surface's smile moved with the underlying since its fit: the market's
                # strikes at the fit's forward in the proportion they stand to the live one
                # (F_fit / F_now).
                w.k_low, w.k_high = _strikes(pm, scale)
                w.k_pm, w.k_scale = pm, scale
            try:
                p_yes = _probability(pm, w.k_low, w.k_high, surface, now)
            except OutsideSurface:
                p_yes = None
            w.p_surface, w.p_scale, w.p_now, w.p_yes = surface, scale, now, p_yes
        if p_yes is None:
            self.skips["outside_surface"] += 1
            return
        if not 0.0 <= p_yes <= 1.0:  # NaN included
            self.skips["bad_probability"] += 1
            self.ctx.log.warning("cross_venue.bad_probability", market=pm.market.slug, p=p_yes)
            return
        self.priced += 1
        ctx = self.ctx
        v = self.p.market_venue
        yes, no = pm.yes_token, pm.no_token
        working = ctx.open_orders(v)  # one query (usually empty), not one per token
        if working and any(o.instrument == yes or o.instrument == no for o in working):
            self.skips["order_working"] += 1
            return
        if now < w.next_try_ns:
            # The cooldown holds exits too: an IOC exit that did not fill is not sent again on
            # every book update.
            self.skips["cooldown"] += 1
            return
        held_yes = ctx.position(v, yes)
        held_no = ctx.position(v, no)
        # Exits first: a held token whose gap has closed.
        p_no = 1.0 - p_yes
        if held_yes > 0:
            top = self._usable(yes, now)
            if top is not None and top.bid is not None and p_yes - top.bid < self.p.exit_gap:
                await self._exit(w, yes, "YES", p_yes, top, held_yes, now)
                return
        if held_no > 0:
            top = self._usable(no, now)
            if top is not None and top.bid is not None and p_no - top.bid < self.p.exit_gap:
                await self._exit(w, no, "NO", p_no, top, held_no, now)
                return
        if pm.resolves_at_ns - now < self.p.min_time_to_resolution_s * _S:
            self.skips["near_resolution"] += 1
            return
        # Entries; not while the other outcome is held (its exit comes first). A gap not above
        # `margin` even before the fee is not looked at further (a taker's fee is never negative).
        margin = self.p.margin
        if not held_no > 0:
            top = self._usable(yes, now)
            if (
                top is not None
                and top.ask is not None
                and top.ask_size
                and p_yes - top.ask > margin
                and await self._maybe_enter(w, yes, "YES", p_yes, top, held_yes, now)
            ):
                return
        if not held_yes > 0:
            top = self._usable(no, now)
            if top is not None and top.ask is not None and top.ask_size and p_no - top.ask > margin:
                await self._maybe_enter(w, no, "NO", p_no, top, held_no, now)

    async def _maybe_enter(
        self, w: _Watched, token: str, outcome: str, p: float, top: _Top, held: Decimal, now: int
    ) -> bool:
        assert top.ask is not None
        assert top.ask_size is not None
        inst = self.ctx.instrument(self.p.market_venue, token)
        if inst is None:
            self.skips["no_instrument"] += 1
            return False
        room = self.p.max_position - held
        shown = Decimal(str(top.ask_size))
        size = inst.round_size(min(self.p.order_size, room, shown))
        if size < inst.min_size or size <= 0:
            self.skips["too_small"] += 1
            return False
        price = inst.round_price(top.ask, up=True)
        gap = p - float(price)  # what the order pays, not the touch it was read from
        fee, _ = self.ctx.fee(self.p.market_venue, token, price, size)
        per_share = float(fee / size)
        if gap <= per_share + self.p.margin:
            return False
        tag = self._tag(gap, p, top, per_share, outcome)
        w.next_try_ns = now + int(self.p.cooldown_s * _S)
        await self._send("buy", inst, size, price, tag, "entry", w)
        return True

    async def _exit(
        self, w: _Watched, token: str, outcome: str, p: float, top: _Top, held: Decimal, now: int
    ) -> None:
        assert top.bid is not None
        inst = self.ctx.instrument(self.p.market_venue, token)
        if inst is None:
            self.skips["no_instrument"] += 1
            return
        if held < inst.min_size:
            # The venue takes no order this small: held to resolution (said once per token).
            self.skips["held_below_min_size"] += 1
            if token not in self.dust:
                self.dust.add(token)
                self.ctx.log.info(
                    "cross_venue.held_to_resolution",
                    market=w.pm.market.slug,
                    instrument=token,
                    held=held,
                    min_size=inst.min_size,
                )
            return
        shown = Decimal(str(top.bid_size)) if top.bid_size else held
        size = inst.round_size(min(held, shown))
        if size <= 0 or size < inst.min_size:
            self.skips["too_small"] += 1
            return
        price = inst.round_price(top.bid)
        fee, _ = self.ctx.fee(self.p.market_venue, token, price, size)
        per_share = float(fee / size)
        gap = p - float(price)
        if gap + per_share >= self.p.exit_gap:
            return  # after the fee, selling still gives up `exit_gap` or more against holding
        w.next_try_ns = now + int(self.p.cooldown_s * _S)
        await self._send("sell", inst, size, price, self._tag(gap, p, top, per_share, outcome), "exit", w)

    @staticmethod
    def _tag(gap: float, p: float, top: _Top, fee: float, outcome: str) -> str:
        return (
            f"gap={gap:+.4f} p_model={p:.4f} bid={_fmt(top.bid)} ask={_fmt(top.ask)} fee={fee:.4f} {outcome}"
        )

    async def _send(
        self, side: str, inst: Instrument, size: Decimal, price: Decimal, tag: str, why: str, w: _Watched
    ) -> None:
        place = self.ctx.buy if side == "buy" else self.ctx.sell
        self.trades[why] += 1
        try:
            answer = await place(
                self.p.market_venue, inst.symbol, size, price=price, time_in_force=TimeInForce.IOC, tag=tag
            )
        except OrderRejected as exc:
            self.ctx.log.warning("cross_venue.rejected", instrument=inst.symbol, reason=exc.reason, tag=tag)
            return
        except OrderOutcomeUnknown as exc:
            # Perhaps filled: the venue's report moves the position; never sent again.
            self.ctx.log.warning("cross_venue.outcome_unknown", instrument=inst.symbol, error=str(exc))
            return
        self.ctx.log.info(
            "cross_venue.trade",
            market=w.pm.market.slug,
            instrument=inst.symbol,
            side=side,
            why=why,
            filled=answer.filled_size,
            tag=tag,
        )
        if self.p.hedge:
            await self._rehedge(self.ctx.now_ns())

    # -- the hedge ---------------------------------------------------------------------------
    def market_delta(self, pm: PriceMarket, surface: VolSurface, now: int) -> float:
        """dP(YES)/dS of one market, in YES-shares' USD per USD of the underlying (module
        docstring: the forward moved by +/- `_BUMP` is the strikes divided by (1 +/- `_BUMP`))."""
        forward = surface.forward(pm.resolves_at_ns, now_ns=now)
        up = _probability(pm, *_strikes(pm, 1.0 / (1.0 + _BUMP)), surface, now)
        down = _probability(pm, *_strikes(pm, 1.0 / (1.0 - _BUMP)), surface, now)
        dp_dlnf = (up - down) / (math.log1p(_BUMP) - math.log1p(-_BUMP))
        return dp_dlnf / forward

    def net_delta(self, now: int) -> float | None:
        """The held tokens' delta plus the hedge's, in the underlying; None without a usable
        surface or hedge price (nothing is hedged then)."""
        surface = self.surface
        if surface is None or not self.hedge_price or now - surface.as_of_ns > self.p.max_surface_age_s * _S:
            return None
        hedge = self.ctx.instrument(self.p.options_venue, self.p.hedge_instrument)
        if hedge is None:
            return None
        v = self.p.market_venue
        total = 0.0
        for w in self.watched.values():
            shares = float(self.ctx.position(v, w.pm.yes_token) - self.ctx.position(v, w.pm.no_token))
            if shares == 0 or w.resolved:
                continue
            try:
                total += shares * self.market_delta(w.pm, surface, now)
            except OutsideSurface:
                continue  # past the surface: nothing to hedge it by
        perp = float(self.ctx.position(self.p.options_venue, self.p.hedge_instrument))
        return total + perp * self._hedge_delta_per_unit(hedge)

    def _hedge_delta_per_unit(self, hedge: Instrument) -> float:
        assert self.hedge_price
        return 1.0 / self.hedge_price if hedge.inverse else float(hedge.contract_size)

    async def _rehedge(self, now: int) -> None:
        delta = self.net_delta(now)
        if delta is None or abs(delta) <= self.p.hedge_band:
            return
        if now - self.last_hedge_ns < self.p.min_hedge_interval_s * _S:
            return
        venue, symbol = self.p.options_venue, self.p.hedge_instrument
        hedge = self.ctx.instrument(venue, symbol)
        if hedge is None or self.ctx.open_orders(venue, symbol):
            return
        amount = -delta / self._hedge_delta_per_unit(hedge)
        size = Decimal(math.floor(abs(amount) / float(hedge.lot))) * hedge.lot
        if size < hedge.min_size:
            return
        self.last_hedge_ns = now
        self.trades["hedge"] += 1
        side = self.ctx.buy if amount > 0 else self.ctx.sell
        try:
            await side(venue, symbol, size, tag=f"hedge delta={delta:+.4f}")
        except OrderRejected as exc:
            self.ctx.log.warning("cross_venue.hedge_rejected", reason=exc.reason, size=size)
        except OrderOutcomeUnknown as exc:
            self.ctx.log.warning("cross_venue.hedge_outcome_unknown", error=str(exc), size=size)

    async def on_stop(self) -> None:
        self.ctx.log.info(
            "cross_venue.summary",
            watched=len(self.watched),
            matched=self.matched,
            unrecognized=len(self.unrecognized),
            priced=self.priced,
            trades=dict(self.trades),
            skips=dict(self.skips),
        )


def _strikes(pm: PriceMarket, factor: float) -> tuple[float | None, float | None]:
    """`pm`'s strikes multiplied by `factor`, as the floats `PriceMarket.probability` would pass
    the surface for a market built with the scaled strikes (their product in Decimal)."""
    low, high = pm.low, pm.high
    if factor != 1.0:
        f = Decimal(repr(factor))
        low = None if low is None else low * f
        high = None if high is None else high * f
    return (None if low is None else float(low), None if high is None else float(high))


def _probability(
    pm: PriceMarket, low: float | None, high: float | None, surface: VolSurface, now: int
) -> float:
    """P(YES) of `pm` with the strikes `low`/`high` (`_strikes`): the surface queries
    `PriceMarket.probability` makes, without building a market per query."""
    condition = pm.condition
    if condition is PriceCondition.ABOVE:
        assert low is not None
        return surface.prob_above(low, pm.resolves_at_ns, now_ns=now)
    if condition is PriceCondition.BELOW:
        assert high is not None
        return surface.prob_below(high, pm.resolves_at_ns, now_ns=now)
    assert low is not None
    assert high is not None
    return surface.prob_between(low, high, pm.resolves_at_ns, now_ns=now)
