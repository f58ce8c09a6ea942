"""A synthetic, deterministic market that any venue's wire encoder can replay.

No venue is reachable from the machines this project is built on, so backtests and the local
venue simulators need a market that behaves like one. `SynthMarket` is that market, with no
venue in it: it owns the prices (index, perpetual premium, option marks and Greeks), the order
books and the trades, on integer ticks and integer lots, and a venue's encoder (for instance
`simulators.deribit.generator`) turns what it reports into that venue's frames.

The model, in short:

- Underlyings: correlated geometric Brownian motion (one common factor, so every pair has the
  same correlation), stepped every `step_ns` (100 ms), plus a slowly mean-reverting drift that is
  shared by all underlyings and occasionally kicked into a trend (a few tenths of a percent over
  5-20 minutes), plus rare small market-wide jumps. Each underlying follows the drift and the
  jumps in proportion to its `beta`.
- Perpetuals: index x (1 + premium), the premium an Ornstein-Uhlenbeck process around
  `UnderlyingSpec.basis`.
- Options: Black-Scholes (r = 0) on the index, with a vol surface per underlying: an ATM vol per
  expiry (term structure) drifting as an OU process, plus skew and curvature in normalised
  log-moneyness. Prices are in USD, or in the coin when `InstrumentSpec.coin_quoted`. The same
  model answers for any instant up to the last listed expiry (`model_total_variance`,
  `model_call`, `model_prob_above`: total variance linear in time between listed expiries at
  fixed log-moneyness), which prices the Polymarket Bitcoin markets of the same path.
- Books: a market maker requotes each book around the model's fair price at jittered intervals;
  levels sit on the instrument's tick grid and persist from one quote to the next when the price
  has not moved away from them, so a requote changes a few levels, not all of them.
- Trades: Poisson arrivals per instrument. The aggressor leans with the drift; a trade prints at
  the best bid (sell) or best ask (buy), never for more than that level holds, and takes its size
  out of the level (the next requote replenishes it).

Everything is drawn from one `random.Random(seed)`, in an order that depends only on the inputs,
so the same specs and seed give the same market, float for float.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Sequence
from typing import Literal, NamedTuple

import attrs

from tradingd.engine.model.events import Greeks, Side
from tradingd.engine.model.pricing import YEAR_SECONDS, bs_greeks, bs_price

__all__ = [
    "InstrumentSpec",
    "LevelChange",
    "MarketUpdate",
    "OptionQuote",
    "SynthMarket",
    "SynthTrade",
    "TickGrid",
    "UnderlyingSpec",
]

_NS = 1_000_000_000
_MS = 1_000_000
_YEAR_NS = YEAR_SECONDS * _NS
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)

LevelChange = tuple[int, int, int]
"""One book level changed by an update: (price in ticks, lots before, lots after); 0 lots = no
level. A venue encoder tells `new` / `change` / `delete` apart from the two sizes."""


@attrs.frozen
class TickGrid:
    """The prices an instrument may trade at, as integer multiples of `quantum` (its finest tick).

    `steps` are (above, step) pairs in quanta: above the price `above` only multiples of `step`
    are valid (Deribit options: quantum 0.0001, and (50, 5) = 0.0005 above 0.005). They must be
    sorted by `above`, and each boundary a multiple of the coarser step, as venues make them.
    """

    quantum: float
    steps: tuple[tuple[int, int], ...] = ()
    per_unit: int = attrs.field(init=False)

    @per_unit.default
    def _per_unit(self) -> int:
        # Quanta per unit of price (10000 for 0.0001, 2 for 0.5). ticks / per_unit is the double
        # nearest the level's exact decimal, which prints as that decimal (0.0003, where
        # 3 * 0.0001 prints 0.00030000000000000003); and a division is cheaper than round().
        per_unit = round(1.0 / self.quantum)
        if per_unit < 1 or abs(per_unit * self.quantum - 1.0) > 1e-9:
            raise ValueError(f"a grid's quantum must divide 1 (0.5, 0.05, 0.0001...), got {self.quantum}")
        return per_unit

    def step_at(self, ticks: int) -> int:
        """The tick increment that applies at `ticks`."""
        step = 1
        for above, s in self.steps:
            if ticks > above:
                step = s
        return step

    def is_valid(self, ticks: int) -> bool:
        return ticks > 0 and ticks % self.step_at(ticks) == 0

    def floor(self, x: float) -> int:
        """The highest valid price at or below `x` ticks (0 or less when there is none)."""
        t = math.floor(x)
        if not self.steps or t <= 0:
            return t
        return t - t % self.step_at(t)

    def ceil(self, x: float) -> int:
        """The lowest valid price at or above `x` ticks (at least 1)."""
        t = max(1, math.ceil(x))
        if not self.steps:
            return t
        s = self.step_at(t)
        return t if t % s == 0 else t + s - t % s

    def below(self, ticks: int) -> int:
        """The next valid price below `ticks` (0 when there is none)."""
        if not self.steps:
            return max(0, ticks - 1)
        return self.floor(ticks - 1) if ticks > 1 else 0

    def above(self, ticks: int) -> int:
        """The next valid price above `ticks`."""
        if not self.steps:
            return max(1, ticks + 1)
        return self.ceil(ticks + 1)

    def price(self, ticks: int) -> float:
        """The price of `ticks`, as the float that prints as the level's exact decimal."""
        return ticks / self.per_unit


@attrs.frozen
class UnderlyingSpec:
    """One underlying (an index, e.g. BTC/USD).

    `vol` is its annualised realised vol (and the level of its implied vols); `basis` the mean
    premium of its perpetual over the index; `beta` scales the market-wide drift regime and
    jumps for it (higher-beta coins trend and gap harder); `skew` and `curvature` shape its
    implied vols in normalised log-moneyness ln(K/S)/sqrt(T).
    """

    name: str
    spot: float
    vol: float
    basis: float = 3e-4
    beta: float = 1.0
    skew: float = -0.03
    curvature: float = 0.02


@attrs.frozen
class InstrumentSpec:
    """One instrument the market quotes and trades.

    Sizes are counted in lots of `lot` (the venue's size increment, in its amount unit); prices
    on `grid`. `level_lots` and `trade_lots` are median sizes (log-normal), `requote_ms` the mean
    interval between market-maker requotes, `trades_per_s` the rate of trade events (each prints
    1-3 trades). Options quote a half spread of `half_spread` x price (at least one tick);
    perpetuals quote one tick wide most of the time. `levels` is the depth quoted per side and
    `density` the share of prices behind the best that carry a level. Options need `strike` and
    `expiry_ns`; they are priced in USD, or in the coin (USD price / index) when `coin_quoted`.
    """

    name: str
    underlying: str
    kind: Literal["perpetual", "option"]
    grid: TickGrid
    lot: float
    strike: float | None = None
    expiry_ns: int | None = None
    call: bool = True
    coin_quoted: bool = False
    levels: int = 10
    level_lots: float = 100.0
    trade_lots: float = 5.0
    trades_per_s: float = 0.8
    requote_ms: int = 250
    half_spread: float = 0.02
    density: float = 0.75

    def __attrs_post_init__(self) -> None:
        if self.lot >= 1.0 and self.lot != int(self.lot):
            raise ValueError(f"{self.name}: a lot of 1 or more must be whole, got {self.lot}")
        if self.lot < 1.0 and abs(round(1.0 / self.lot) * self.lot - 1.0) > 1e-9:
            raise ValueError(f"{self.name}: a lot below 1 must divide 1 (0.1, 0.01...), got {self.lot}")

    def size(self, lots: int) -> float:
        """`lots` in the venue's amount unit, as the float that prints as its exact decimal
        (12 lots of 0.1 is 1.2, not 1.2000000000000002)."""
        if self.lot >= 1.0:
            return float(lots * int(self.lot))
        return lots / round(1.0 / self.lot)


class SynthTrade(NamedTuple):
    """One trade: the aggressor's `side`, the price in ticks, the size in lots. (A named tuple,
    like `MarketUpdate`: built on the hot path, where it costs a third of an attrs class.)"""

    side: Side
    ticks: int
    lots: int


class MarketUpdate(NamedTuple):
    """What happened to one instrument at one instant: the trades that printed (against the
    book as it stood before this update) and the book levels that changed, with the top of the
    book after it. `instrument` is the index into `SynthMarket.instruments`."""

    ts_ns: int
    instrument: int
    trades: tuple[SynthTrade, ...]
    bids: tuple[LevelChange, ...]
    asks: tuple[LevelChange, ...]
    best_bid: int | None
    best_bid_lots: int
    best_ask: int | None
    best_ask_lots: int


@attrs.frozen
class OptionQuote:
    """An option's model values now: `price` in the instrument's quote unit (coin when
    coin-quoted), `price_usd`, the `vol` it is marked at, the Greeks (conventions of
    `engine.model.pricing`), the underlying's index and the time to expiry in years."""

    price: float
    price_usd: float
    vol: float
    greeks: Greeks
    index: float
    t_years: float


class _Book:
    """One instrument's book: {ticks: lots} per side."""

    __slots__ = ("asks", "bids")

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}

    def top(self) -> tuple[int | None, int, int | None, int]:
        bids, asks = self.bids, self.asks
        bb = max(bids) if bids else None
        ba = min(asks) if asks else None
        return bb, (0 if bb is None else bids[bb]), ba, (0 if ba is None else asks[ba])


# Event kinds on the market's calendar.
_TRADE = 0
_REQUOTE = 1


class SynthMarket:
    """The market, stepped in time: `step()` advances `now_ns` by `step_ns` and returns the
    `MarketUpdate`s of that step in time order. Between steps every price and book can be read
    (`index`, `fair_price`, `option_quote`, `levels`, `top`). The books at `start_ns` are already
    quoted, so a venue can snapshot them before the first step.

    Promises: books are never crossed; book prices are valid on each instrument's grid and sizes
    are whole lots; a trade never prints more than the level it hits holds; event times are on
    a 1 ms grid, strictly after the previous step's end and at most the current `now_ns`.
    """

    def __init__(
        self,
        *,
        seed: int,
        start_ns: int,
        underlyings: Sequence[UnderlyingSpec],
        instruments: Sequence[InstrumentSpec],
        step_ns: int = 100 * _MS,
        correlation: float = 0.8,
        jumps_per_hour: float = 1.5,
        jump_size: float = 0.0015,
    ) -> None:
        if step_ns <= 0 or step_ns % _MS:
            raise ValueError(f"step_ns must be a positive whole number of ms, got {step_ns}")
        if not 0.0 <= correlation < 1.0:
            raise ValueError(f"correlation must be in [0, 1), got {correlation}")
        names = [u.name for u in underlyings]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate underlying names in {names}")
        self.underlyings = tuple(underlyings)
        self.instruments = tuple(instruments)
        self.start_ns = start_ns
        self.now_ns = start_ns
        self.step_ns = step_ns
        self._rng = random.Random(seed)
        # Log-normal size factors, drawn once: a table lookup per size instead of gauss + exp
        # (sizes are drawn ~40 times a second per perpetual).
        self._level_factors = [math.exp(0.9 * self._rng.gauss(0.0, 1.0)) for _ in range(4096)]
        self._trade_factors = [math.exp(1.1 * self._rng.gauss(0.0, 1.0)) for _ in range(4096)]
        self._sqrt_rho = math.sqrt(correlation)
        self._sqrt_1mrho = math.sqrt(1.0 - correlation)

        u_index = {u.name: i for i, u in enumerate(self.underlyings)}
        self._log_s = [math.log(u.spot) for u in self.underlyings]
        self._spot = [u.spot for u in self.underlyings]
        self._basis = [u.basis for u in self.underlyings]
        self._drift = 0.0  # shared drift regime, log-return per second
        self._next_kick = start_ns + self._exp_ns(1.0 / _KICK_MEAN_S)
        # Jumps hit every underlying at once (news moves the whole market), so they do not
        # dilute the correlation.
        self._jump_rate = jumps_per_hour / 3600.0
        self._jump_size = jump_size
        self._next_jump = start_ns + self._exp_ns(self._jump_rate) if jumps_per_hour > 0 else 1 << 62
        # The vol surface: one ATM vol per (underlying, expiry), a term structure around the
        # underlying's realised vol (short expiries a little lower, long ones higher).
        self._vol_key: list[tuple[int, int]] = []
        self._atm: list[float] = []
        self._atm_mean: list[float] = []
        self._inst_u: list[int] = []
        # Per instrument, strike and expiry (0 for non-options: only option code reads them).
        self._strike: list[float] = []
        self._expiry: list[int] = []
        self._inst_vol: list[int] = []
        self._books: list[_Book] = []
        self._ladders: list[tuple[dict[int, list[int]], dict[int, list[int]]]] = []
        for spec in self.instruments:
            if spec.underlying not in u_index:
                raise ValueError(f"{spec.name}: unknown underlying {spec.underlying!r}")
            if spec.lot <= 0 or spec.levels < 1:
                raise ValueError(f"{spec.name}: lot and levels must be positive")
            ui = u_index[spec.underlying]
            self._inst_u.append(ui)
            vi = -1
            if spec.kind == "option":
                if spec.strike is None or spec.expiry_ns is None or spec.expiry_ns <= start_ns:
                    raise ValueError(f"{spec.name}: an option needs a strike and an expiry after the start")
                key = (ui, spec.expiry_ns)
                if key not in self._vol_key:
                    t_days = (spec.expiry_ns - start_ns) / (86400 * _NS)
                    mean = self.underlyings[ui].vol * (t_days / 30.0) ** 0.06
                    self._vol_key.append(key)
                    self._atm_mean.append(mean)
                    self._atm.append(mean * (1.0 + self._rng.uniform(-0.04, 0.04)))
                vi = self._vol_key.index(key)
            self._inst_vol.append(vi)
            self._strike.append(spec.strike or 0.0)
            self._expiry.append(spec.expiry_ns or 0)
            self._books.append(_Book())
            self._ladders.append(({}, {}))

        # The calendar: (time, sequence, instrument, kind); the sequence breaks ties in the
        # order events were scheduled, so the order never depends on anything but the seed.
        self._calendar: list[tuple[int, int, int, int]] = []
        self._seq = 0
        for i, spec in enumerate(self.instruments):
            self._requote(i)
            self._schedule(start_ns + self._rng.randint(1, spec.requote_ms) * _MS, i, _REQUOTE)
            if spec.trades_per_s > 0:
                self._schedule(start_ns + self._exp_ns(spec.trades_per_s), i, _TRADE)

    # ----------------------------------------------------------------- reading the state

    def index(self, underlying: int) -> float:
        """The index price of underlying number `underlying` (unrounded)."""
        return self._spot[underlying]

    def basis(self, underlying: int) -> float:
        """The perpetual premium over the index of underlying number `underlying`."""
        return self._basis[underlying]

    def drift(self, underlying: int) -> float:
        """The current drift of `underlying`, as a log-return per second."""
        return self._drift * self.underlyings[underlying].beta

    def underlying_of(self, instrument: int) -> int:
        return self._inst_u[instrument]

    def fair_price(self, instrument: int) -> float:
        """The model's fair price of `instrument`, in its quote unit."""
        spec = self.instruments[instrument]
        ui = self._inst_u[instrument]
        if spec.kind == "perpetual":
            return self._spot[ui] * (1.0 + self._basis[ui])
        return self._option_price(instrument, self._option_vol(instrument))

    def option_vol(self, instrument: int) -> float:
        """The vol an option is marked at now (ATM vol of its expiry, skew and curvature)."""
        return self._option_vol(instrument)

    def option_quote(self, instrument: int) -> OptionQuote:
        """An option's model price, vol and Greeks now."""
        spec = self.instruments[instrument]
        s = self._spot[self._inst_u[instrument]]
        k = self._strike[instrument]
        t = self._t_years(self._expiry[instrument])
        vol = self._option_vol(instrument)
        usd = bs_price(s, k, t, vol, call=spec.call)
        price = usd / s if spec.coin_quoted else usd
        greeks = bs_greeks(s, k, t, vol, call=spec.call)
        return OptionQuote(price=price, price_usd=usd, vol=vol, greeks=greeks, index=s, t_years=t)

    def implied_vol(self, instrument: int, price: float, *, guess: float | None = None) -> float:
        """The vol at which the option is worth `price` (its quote unit) now. Newton's method
        from `guess` (default: the mark vol): a few iterations suffice for prices a spread away
        from the mark, which is all a book or a trade can be; clamped to [0.01, 5]."""
        spec = self.instruments[instrument]
        s = self._spot[self._inst_u[instrument]]
        k = self._strike[instrument]
        t = self._t_years(self._expiry[instrument])
        target = price * s if spec.coin_quoted else price
        vol = self._option_vol(instrument) if guess is None else guess
        sqrt_t = math.sqrt(t)
        log_sk = math.log(s / k)
        erf, exp = math.erf, math.exp
        for _ in range(5):
            # Black-Scholes with r = 0, inline: the call price, then the put by parity.
            sd = vol * sqrt_t
            d1 = log_sk / sd + 0.5 * sd
            value = s * 0.5 * (1.0 + erf(d1 * _INV_SQRT2)) - k * 0.5 * (1.0 + erf((d1 - sd) * _INV_SQRT2))
            if not spec.call:
                value += k - s
            vega = s * _INV_SQRT_2PI * exp(-0.5 * d1 * d1) * sqrt_t
            if vega < 1e-12:
                break
            move = (value - target) / vega
            vol = min(5.0, max(0.01, vol - move))
            # Newton converges quadratically: after a step of 2e-5 the error left is ~1e-9, far
            # below the 0.01 vol point a venue publishes.
            if abs(move) < 2e-5:
                break
        return vol

    # ----------------------------------------------------------------- the model at any expiry

    def model_total_variance(self, underlying: int, strike: float, at_ns: int) -> float:
        """The model's total implied variance (vol^2 x years) now for `strike` at the instant
        `at_ns`, listed expiry or not: at a listed expiry it is the mark vol of an option there,
        squared, times its time to expiry; between two listed expiries it is linear in time at
        fixed log-moneyness ln(K / S); before the first, that slice's scaled by t / t1. Raises
        ValueError past the last listed expiry, or for an underlying without options."""
        return self._model_w(underlying, strike, at_ns)[1]

    def model_call(self, underlying: int, strike: float, at_ns: int) -> float:
        """The model's undiscounted price in USD now of a call paying max(S - K, 0) at `at_ns`
        (Black-Scholes, r = 0, on `model_total_variance`)."""
        k, w, _ = self._model_w(underlying, strike, at_ns)
        sw = math.sqrt(w)
        d1 = -k / sw + 0.5 * sw
        s = self._spot[underlying]
        return s * _ncdf(d1) - strike * _ncdf(d1 - sw)

    def model_prob_above(self, underlying: int, strike: float, at_ns: int) -> float:
        """The model's probability now that the underlying ends above `strike` at `at_ns`:
        -dC/dK of `model_call`, in closed form N(d2) - phi(d2) w'(k) / (2 sqrt(w)) (the skew
        moves it away from the flat-vol N(d2)); within [0, 1]."""
        k, w, dw = self._model_w(underlying, strike, at_ns)
        sw = math.sqrt(w)
        d2 = -k / sw - 0.5 * sw
        p = _ncdf(d2) - _INV_SQRT_2PI * math.exp(-0.5 * d2 * d2) * dw / (2.0 * sw)
        return min(1.0, max(0.0, p))

    def _model_w(self, underlying: int, strike: float, at_ns: int) -> tuple[float, float, float]:
        """(k = ln(K / S), total variance w(k), dw/dk) at `at_ns`, from the listed slices."""
        if not strike > 0.0:
            raise ValueError(f"a strike must be positive, got {strike}")
        slices = sorted((e, vi) for vi, (ui, e) in enumerate(self._vol_key) if ui == underlying)
        if not slices:
            raise ValueError(f"{self.underlyings[underlying].name} has no options: no vol surface")
        if at_ns > slices[-1][0]:
            raise ValueError("the model has no vols past its last listed expiry")
        k = math.log(strike / self._spot[underlying])
        t = self._t_years(at_ns)
        e1, v1 = slices[0]
        t1 = self._t_years(e1)
        if t <= t1:
            w1, dw1 = self._slice_w(underlying, v1, t1, k)
            return k, w1 * t / t1, dw1 * t / t1
        for (ea, va), (eb, vb) in itertools.pairwise(slices):
            ta, tb = self._t_years(ea), self._t_years(eb)
            if ta <= t <= tb:
                wa, dwa = self._slice_w(underlying, va, ta, k)
                wb, dwb = self._slice_w(underlying, vb, tb, k)
                lam = (t - ta) / (tb - ta)
                return k, wa + lam * (wb - wa), dwa + lam * (dwb - dwa)
        raise AssertionError("unreachable: t lies between two slices")  # pragma: no cover

    def _slice_w(self, underlying: int, vi: int, t: float, k: float) -> tuple[float, float]:
        """Total variance and its derivative in k of listed slice `vi` (t years away) at
        log-moneyness k: the vol of `_option_vol` (ATM, skew, curvature in k / sqrt(t),
        clamped to [0.05, 3])."""
        u = self.underlyings[underlying]
        sqrt_t = math.sqrt(t)
        m = k / sqrt_t
        raw = self._atm[vi] + u.skew * m + u.curvature * m * m
        vol = min(3.0, max(0.05, raw))
        dvol = (u.skew + 2.0 * u.curvature * m) / sqrt_t if vol == raw else 0.0
        return vol * vol * t, 2.0 * vol * dvol * t

    def levels(self, instrument: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The book of `instrument` as (ticks, lots) levels, best first: (bids, asks)."""
        book = self._books[instrument]
        bids = sorted(book.bids.items(), reverse=True)
        asks = sorted(book.asks.items())
        return bids, asks

    def top(self, instrument: int) -> tuple[int | None, int, int | None, int]:
        """(best bid ticks, its lots, best ask ticks, its lots); None and 0 for an empty side."""
        return self._books[instrument].top()

    # ----------------------------------------------------------------- stepping

    def step(self) -> list[MarketUpdate]:
        """Advance `now_ns` by one step and return what happened in it, in time order."""
        self.now_ns += self.step_ns
        self._evolve(self.step_ns / _NS)
        now = self.now_ns
        cal = self._calendar
        updates: list[MarketUpdate] = []
        while cal and cal[0][0] <= now:
            ts, _, i, kind = heapq.heappop(cal)
            spec = self.instruments[i]
            if kind == _TRADE:
                update = self._trade(ts, i)
                self._schedule(ts + self._exp_ns(spec.trades_per_s), i, _TRADE)
            else:
                update = self._requote_update(ts, i)
                jitter = self._rng.uniform(0.5, 1.5)
                self._schedule(ts + max(1, round(spec.requote_ms * jitter)) * _MS, i, _REQUOTE)
            if update is not None:
                updates.append(update)
        return updates

    # ----------------------------------------------------------------- internals

    def _schedule(self, ts: int, instrument: int, kind: int) -> None:
        self._seq += 1
        heapq.heappush(self._calendar, (ts, self._seq, instrument, kind))

    def _exp_ns(self, rate_per_s: float) -> int:
        """An exponential waiting time at `rate_per_s`, on the 1 ms grid, at least 1 ms."""
        return max(1, round(self._rng.expovariate(rate_per_s) * 1000.0)) * _MS

    def _t_years(self, expiry_ns: int) -> float:
        # Floor at one minute: the model is not meant to run through an expiry, but a Greek
        # must never divide by zero if a caller steps that far.
        return max(expiry_ns - self.now_ns, 60 * _NS) / _YEAR_NS

    def _option_vol(self, instrument: int) -> float:
        ui = self._inst_u[instrument]
        u = self.underlyings[ui]
        t = self._t_years(self._expiry[instrument])
        m = math.log(self._strike[instrument] / self._spot[ui]) / math.sqrt(t)
        vol = self._atm[self._inst_vol[instrument]] + u.skew * m + u.curvature * m * m
        return min(3.0, max(0.05, vol))

    def _option_price(self, instrument: int, vol: float) -> float:
        spec = self.instruments[instrument]
        s = self._spot[self._inst_u[instrument]]
        usd = bs_price(
            s, self._strike[instrument], self._t_years(self._expiry[instrument]), vol, call=spec.call
        )
        return usd / s if spec.coin_quoted else usd

    def _evolve(self, dt: float) -> None:
        """Move the underlyings, the drift regime, the premiums and the vols on by `dt` s."""
        rng = self._rng
        gauss = rng.gauss
        now = self.now_ns
        # The drift regime: an OU process (time constant _DRIFT_TAU_S) with small noise, kicked
        # at Poisson times into a trend. A kick of k per second decays over ~tau, so it moves
        # prices by about k * tau: 5e-6/s * 600 s = 0.3 %, the size of an intraday leg.
        d = self._drift
        d += -d * dt / _DRIFT_TAU_S + _DRIFT_NOISE * math.sqrt(dt) * gauss(0.0, 1.0)
        if now >= self._next_kick:
            sign = 1.0 if rng.random() < 0.5 else -1.0
            d += sign * rng.uniform(3e-6, 9e-6)
            self._next_kick = now + self._exp_ns(1.0 / _KICK_MEAN_S)
        self._drift = d
        common = gauss(0.0, 1.0)
        jump = 0.0
        if now >= self._next_jump:
            jump = gauss(0.0, self._jump_size)
            self._next_jump = now + self._exp_ns(self._jump_rate)
        for ui, u in enumerate(self.underlyings):
            sig = u.vol * _DIFFUSION_SHARE * math.sqrt(dt / YEAR_SECONDS)
            z = self._sqrt_rho * common + self._sqrt_1mrho * gauss(0.0, 1.0)
            x = self._log_s[ui] + (d * dt + jump) * u.beta - 0.5 * sig * sig + sig * z
            self._log_s[ui] = x
            self._spot[ui] = math.exp(x)
            # The perpetual's premium: OU around its mean, stationary sd _BASIS_SD.
            b = self._basis[ui]
            a = dt / _BASIS_TAU_S
            self._basis[ui] = b + (u.basis - b) * a + _BASIS_SD * math.sqrt(2.0 * a) * gauss(0.0, 1.0)
        # ATM vols: OU around their term-structure means, stationary sd _VOL_SD. Updated once a
        # second (vols move slowly; this saves most of the draws).
        if (now - self.start_ns) % _NS < self.step_ns:
            a = 1.0 / _VOL_TAU_S
            for vi, mean in enumerate(self._atm_mean):
                v = self._atm[vi]
                self._atm[vi] = v + (mean - v) * a + _VOL_SD * math.sqrt(2.0 * a) * gauss(0.0, 1.0)

    def _level_lots(self, median: float) -> int:
        """A resting size: log-normal around `median` lots (sigma 0.9), at least one lot."""
        return round(median * self._level_factors[self._rng.getrandbits(12)]) or 1

    def _trade_lots(self, median: float) -> int:
        """A trade size: log-normal around `median` lots (sigma 1.1: fat, some big prints)."""
        return round(median * self._trade_factors[self._rng.getrandbits(12)]) or 1

    def _requote(self, i: int) -> tuple[list[LevelChange], list[LevelChange]]:
        """Requote instrument `i` around its fair price; returns the changed levels."""
        spec = self.instruments[i]
        grid = spec.grid
        rng = self._rng
        fair = self.fair_price(i) / grid.quantum  # in ticks
        if spec.kind == "perpetual":
            # Perpetual makers quote one tick wide most of the time, sometimes 2-3.
            r = rng.random()
            width = 1 if r < 0.8 else (2 if r < 0.95 else 3)
            best_bid = grid.floor(fair) - rng.randint(0, width - 1)
            best_ask = grid.above(best_bid) if width == 1 else grid.ceil(best_bid + width)
        else:
            # Option makers quote a spread proportional to the price (a few % each side), at
            # least one tick: what a vega-sized spread looks like near the money.
            half = max(1.0, fair * spec.half_spread * rng.uniform(0.6, 1.4))
            best_bid = grid.floor(fair - half)
            best_ask = grid.ceil(fair + half)
        book = self._books[i]
        bid_ladder = self._ladder(i, best_bid, bid=True) if best_bid > 0 else []
        ask_ladder = self._ladder(i, best_ask, bid=False)
        bid_changes = self._apply_ladder(book.bids, bid_ladder, spec)
        ask_changes = self._apply_ladder(book.asks, ask_ladder, spec)
        if not bid_changes and not ask_changes:
            # Nothing moved: some order flow still changes a resting size somewhere.
            on_bid = bool(bid_ladder) and rng.random() < 0.5
            side, ladder = (book.bids, bid_ladder) if on_bid else (book.asks, ask_ladder)
            t = ladder[min(len(ladder) - 1, int(rng.random() * len(ladder)))]
            old = side[t]
            new = self._level_lots(spec.level_lots)
            if new == old:
                new = old + 1
            side[t] = new
            (bid_changes if on_bid else ask_changes).append((t, old, new))
        return bid_changes, ask_changes

    def _ladder(self, i: int, best: int, *, bid: bool) -> list[int]:
        """The prices of one side of book `i` when its best price is `best`, best first.

        Levels behind the best persist from quote to quote: whether a price carries a level is
        a fixed pseudo-random property of the price (a multiplicative integer hash, salted per
        instrument and side, kept with probability `density`), so when the best moves by a tick
        most of the ladder stays and only a few levels change. A pure function of its
        arguments, hence cached (prices revisit the same few thousand ticks).
        """
        cache = self._ladders[i][0 if bid else 1]
        ladder = cache.get(best)
        if ladder is not None:
            return ladder
        spec = self.instruments[i]
        grid = spec.grid
        salt = ((i * 0x9E3779B1) & 0xFFFFFFFF) ^ (0 if bid else 0x5BD1E995)
        cut = spec.density * 65536.0
        n = spec.levels
        ladder = [best]
        t = best
        while len(ladder) < n:
            t = (grid.below(t) if bid else grid.above(t)) if grid.steps else (t - 1 if bid else t + 1)
            if t <= 0:
                break
            if (((((t * 0x9E3779B1) ^ salt) & 0xFFFFFFFF) * 0x85EBCA6B) & 0xFFFFFFFF) >> 16 < cut:
                ladder.append(t)
        cache[best] = ladder
        return ladder

    def _apply_ladder(
        self, side: dict[int, int], ladder: list[int], spec: InstrumentSpec
    ) -> list[LevelChange]:
        """Make `side` hold exactly the prices of `ladder`; resample some persisting sizes."""
        rng = self._rng
        random_, bits = rng.random, rng.getrandbits
        factors = self._level_factors  # inlined `_level_lots`: this is the model's hot loop
        changes: list[LevelChange] = []
        keep = set(ladder)
        for t in sorted(side):
            if t not in keep:
                changes.append((t, side.pop(t), 0))
        median = spec.level_lots
        for t in ladder:
            old = side.get(t, 0)
            if old == 0 or random_() < _RESIZE_P:
                new = round(median * factors[bits(12)]) or 1
                if new != old:
                    side[t] = new
                    changes.append((t, old, new))
        return changes

    def _requote_update(self, ts: int, i: int) -> MarketUpdate | None:
        bids, asks = self._requote(i)
        if not bids and not asks:
            return None
        bb, bbl, ba, bal = self._books[i].top()
        return MarketUpdate(ts, i, (), tuple(bids), tuple(asks), bb, bbl, ba, bal)

    def _trade(self, ts: int, i: int) -> MarketUpdate | None:
        """1-3 trades against the top of one side of book `i` (None when that side is empty)."""
        spec = self.instruments[i]
        rng = self._rng
        book = self._books[i]
        # The aggressor leans with the drift, so trends show in the tape as well as the price;
        # put buyers lean against it (a put gains when the underlying falls).
        d = self.drift(self._inst_u[i])
        lean = max(-0.2, min(0.2, d / 5e-6 * 0.1))
        if spec.kind == "option" and not spec.call:
            lean = -lean
        buy = rng.random() < 0.5 + lean
        side_levels = book.asks if buy else book.bids
        if not side_levels:
            return None
        t = min(side_levels) if buy else max(side_levels)
        avail = side_levels[t]
        r = rng.random()
        n = 1 if r < 0.6 else (2 if r < 0.88 else 3)
        trades: list[SynthTrade] = []
        side = Side.BUY if buy else Side.SELL
        for _ in range(n):
            lots = min(avail, self._trade_lots(spec.trade_lots))
            trades.append(SynthTrade(side, t, lots))
            avail -= lots
            if avail == 0:
                break
        old = side_levels[t]
        if avail:
            side_levels[t] = avail
        else:
            del side_levels[t]
        change = ((t, old, avail),)
        bb, bbl, ba, bal = book.top()
        return MarketUpdate(
            ts, i, tuple(trades), () if buy else change, change if buy else (), bb, bbl, ba, bal
        )


def _ncdf(x: float) -> float:
    """The standard normal distribution function."""
    return 0.5 * (1.0 + math.erf(x * _INV_SQRT2))


# Model constants, in seconds and per-second units (why each value: see where it is used).
# The diffusion's share of an underlying's vol: trend episodes and jumps add the rest, so that
# the realised vol comes out near `UnderlyingSpec.vol` (tests/simulators/deribit/test_generator.py).
_DIFFUSION_SHARE = 0.9
_KICK_MEAN_S = 1200.0  # one trend kick every 20 minutes on average
_DRIFT_TAU_S = 600.0
_DRIFT_NOISE = 6e-8  # per sqrt(s): stationary sd ~1e-6/s, so quiet spells stay quiet
_BASIS_TAU_S = 300.0
_BASIS_SD = 1e-4
_VOL_TAU_S = 3600.0
_VOL_SD = 0.015
_RESIZE_P = 0.15  # chance a persisting level's size is re-drawn at a requote
