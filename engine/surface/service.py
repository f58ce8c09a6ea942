"""The chain -> surface service: one per host (the backtest kernel, the live engine), asked by
strategies through their context (`ctx.surface("BTC")`).

Nothing runs per frame. The service reads, when asked, what the host keeps anyway: the latest
ticker of each instrument (`MarketState.tickers`) and the instruments (`InstrumentRegistry`). A
chain is one underlying's options on one venue.

Each strategy follows a chain on its own: the refit timing (when it was looked at and fitted,
what its last fit was fitted on), the warm start (its latest surface) and the listing of the
chain's options are kept per (strategy, venue, underlying), so the surfaces a strategy gets
depend only on the data and its own calls, never on which other strategies run or when they ask
(a backtest's result of one strategy is the same beside any others). Work is shared only where
it is provably the same: a fit of the same quotes (equal `SurfaceQuote`s) of the same chain at
the same instant from the same previous surface (by identity) is run once, and a second strategy
asking for it gets that fit's surface (`stats.shared_fits`).

A call looks at the chain again when at least
`SurfaceSettings.min_refit_interval_s` of event time (the host's clock: the replayed market's in a
backtest, so two runs fit the same surfaces at the same instants) passed since it was last looked
at, and one of its tickers changed since that look (compared by identity: a new ticker is a new
object; a cheap walk over the chain). Such a look refits the chain when it moved since its last
fit (`SurfaceSettings` has the thresholds; `stats.refit_reasons` counts each):

- `first`: no fit yet;
- `composition`: the options with a usable quote (what the fit takes of one quote: a positive
  finite strike and forward, a mark IV in [MIN_IV, max_iv), engine/surface/model.py) are not those
  of the last fit, or one of them gained or lost a two-sided book (its weight in the fit);
- `iv`: a quote's mark IV moved by `min_iv_change` or more since the last fit;
- `forward`: a quote's forward moved by `min_forward_change` (relative) or more;
- `age`: none of those, but `max_refit_interval_s` passed since the last fit (the surface's
  `as_of_ns` stays that recent while the chain is quoted);
- `retry`: the last fit raised: the next due look with a new ticker fits again (the last fit's
  basis is recorded only once a fit has run without raising).

Otherwise the look is skipped (`stats.refits_skipped`) and the surface kept: its queries at a
later `now_ns` hold its smile in IV, which is what the quotes still say. A last fit that fitted
no expiry is not retried until the composition changes, or the quotes move when an expiry has
enough usable strikes (`min_quotes`) and time (`min_expiry_s`) to be fitted at all: a chain too
narrow to fit is not fitted again until its options change. Bid and ask IVs only weigh the fit:
their moves alone refit nothing. A refit starts from the previous surface (`fit_surface`'s
`previous`: each expiry's least squares from its last fit, engine/surface/fit.py step 5).

Each active, unexpired option with a ticker becomes a `SurfaceQuote` (strike, expiry and right
from the instrument; mark IV, bid/ask IV and the forward from the ticker: its `underlying` price,
else its `index`). Options without a usable mark IV or forward are skipped and counted by reason
(`skipped`); the fit drops and reports the rest of what it cannot use.

A fit that raises (a bug: `fit_surface` never raises for bad data) is counted, logged once per
chain with its error, and the previous surface is kept: a strategy asking is never failed by it.
A fit that fits no expiry keeps the previous surface too (its `as_of_ns` tells its age).

Where the fit runs:
- inline (`threaded=False`, the backtest): in the call, deterministic, on the host's clock;
- threaded (`threaded=True`, live): `surface_async` runs a due refit in a worker thread
  (`trio.to_thread.run_sync`, one fit at a time in the whole service, at most one per chain in
  flight: a caller finding one in flight gets the latest surface at once) and returns its result.
  `surface` (sync) cannot wait for a thread: it returns the latest surface, fits inline only when
  the chain has none yet (the first answer, once), and otherwise starts the due refit in the
  background when the host lent a nursery (`spawn`): a later call sees it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import attrs
import structlog
import trio

from ..model.events import Ticker
from ..model.instruments import Instrument, InstrumentKind, InstrumentRegistry, OptionRight
from ..model.market import MarketState
from .model import SurfaceQuote, SurfaceSettings, VolSurface, _usable_iv, _usable_quote

__all__ = ["FitFunction", "FitUnavailable", "SurfaceService", "SurfaceStats"]

# `fit_surface`'s signature: (quotes, *, venue, underlying, as_of_ns, settings) -> VolSurface.
FitFunction = Callable[..., VolSurface]

# Why an option of a chain gave no quote (`SurfaceStats.skipped`, `ChainState.skipped`).
NO_TICKER = "no_ticker"
NO_IV = "no_mark_iv"
NO_FORWARD = "no_forward"
INACTIVE = "inactive"
EXPIRED = "expired"


def _usable(x: float | None) -> bool:
    return x is not None and 0.0 < x < math.inf


class FitUnavailable(ImportError):
    """The fit's libraries are not installed: a fit fails with this (counted and logged as any
    failed fit), and the strategy asking gets no surface."""


def _default_fit() -> FitFunction:
    # Imported when a fit first runs: the fit needs numpy and scipy (the `surface` extra), which
    # importing the engine must not cost.
    try:
        from .fit import fit_surface
    except ImportError as exc:
        raise FitUnavailable(
            f"the surface's fit needs numpy and scipy (pip install 'tradingd[surface]'): {exc}"
        ) from exc
    return fit_surface


@attrs.define
class SurfaceStats:
    """The service's counters, all chains together (the daemon's status shows them).

    `fits`: fits that returned a surface; `fit_failures`: fits that raised (a bug, logged once
    per chain and strategy); `empty_fits`: fits that fitted no expiry (the previous surface kept);
    `shared_fits`: refits a strategy took from another's identical fit at the same instant
    (module docstring: not run again, in none of the other counts but `refit_reasons`);
    `last_fit_s`: CPU seconds of the latest fit, `fit_cpu_s` of all; `refits_skipped`: looks at a
    chain quoted anew that found it not moved enough to refit; `refit_reasons`: refits by why
    they were due (module docstring); `skipped`: options left out of refits, by reason, summed.
    Summed over the chains and the strategies following them (`SurfaceService.status` has
    each chain's, per strategy)."""

    fits: int = 0
    fit_failures: int = 0
    empty_fits: int = 0
    shared_fits: int = 0
    last_fit_s: float = 0.0
    fit_cpu_s: float = 0.0
    refits_skipped: int = 0
    refit_reasons: dict[str, int] = attrs.field(factory=dict)
    skipped: dict[str, int] = attrs.field(factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "fits": self.fits,
            "fit_failures": self.fit_failures,
            "empty_fits": self.empty_fits,
            "shared_fits": self.shared_fits,
            "last_fit_s": round(self.last_fit_s, 6),
            "fit_cpu_s": round(self.fit_cpu_s, 6),
            "refits_skipped": self.refits_skipped,
            "refit_reasons": dict(sorted(self.refit_reasons.items())),
            "skipped": dict(sorted(self.skipped.items())),
        }


class ChainState:
    """One chain (underlying, venue) as one strategy follows it (module docstring: nothing in it
    is shared with another strategy's)."""

    __slots__ = (
        "basis",
        "checked_ns",
        "composition",
        "empty",
        "empty_fits",
        "empty_logged",
        "failure_logged",
        "fit_failures",
        "fits",
        "fitted_ns",
        "in_flight",
        "looked",
        "refits_skipped",
        "registry_size",
        "retry",
        "shared_fits",
        "skipped",
        "strategy",
        "surface",
        "symbols",
        "underlying",
        "venue",
    )

    def __init__(self, underlying: str, venue: str, strategy: str = "") -> None:
        self.underlying = underlying
        self.venue = venue
        self.strategy = strategy
        self.surface: VolSurface | None = None
        self.checked_ns: int | None = None  # event time the chain was last looked at for a refit
        self.looked: tuple[Ticker, ...] | None = None  # the tickers of the last look (fit or skip)
        # The last fit's usable quotes (by instrument), its composition (each one's instrument
        # and whether its book was two-sided), its time, and whether it fitted no expiry.
        self.basis: dict[str, SurfaceQuote] = {}
        self.composition: tuple[tuple[str, bool], ...] | None = None
        self.fitted_ns = 0
        self.empty = False
        self.in_flight = False
        self.retry = False  # the last fit raised: the next due look refits ("retry")
        self.failure_logged = False
        self.empty_logged = False
        self.symbols: tuple[str, ...] = ()  # its options (active, unexpired when listed), sorted
        self.registry_size = -1  # the registry's size when `symbols` was made
        self.skipped: dict[str, int] = {}  # the latest look's options left out, by reason
        # This strategy's share of the service's counters (`SurfaceStats`).
        self.fits = 0
        self.shared_fits = 0
        self.empty_fits = 0
        self.fit_failures = 0
        self.refits_skipped = 0


@attrs.frozen
class _Job:
    """A due refit: its input, gathered on the host's thread (a worker thread reads nothing
    mutable)."""

    quotes: tuple[SurfaceQuote, ...]
    tickers: tuple[Ticker, ...]
    as_of_ns: int
    previous: VolSurface | None  # the warm start
    # What the chain records as its last fit's basis once the fit has run without raising.
    basis: dict[str, SurfaceQuote] = attrs.field(factory=dict)
    composition: tuple[tuple[str, bool], ...] = ()


@attrs.frozen(eq=False)
class _Outcome:
    """A fit run at `job.as_of_ns` for one strategy's view of a chain, kept for the others asking
    at the same instant (`SurfaceService._shared_outcome`)."""

    venue: str
    underlying: str
    job: _Job
    surface: VolSurface | None
    error: BaseException | None


class SurfaceService:
    """Volatility surfaces of the host's option chains, fitted when asked (module docstring).

    `fit`: the fitting function (tests inject one); None: `engine.surface.fit.fit_surface`,
    imported at the first fit. `clock`: the host's event time in ns."""

    def __init__(
        self,
        market: MarketState,
        registry: InstrumentRegistry,
        settings: SurfaceSettings,
        clock: Callable[[], int],
        *,
        fit: FitFunction | None = None,
        threaded: bool = False,
        log: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        self.market = market
        self.registry = registry
        self.settings = settings
        self.clock = clock
        self._fit = fit
        self.threaded = threaded
        self.log = log or structlog.get_logger("tradingd.surface")
        self.stats = SurfaceStats()
        self._interval_ns = int(settings.min_refit_interval_s * 1e9)
        self._max_interval_ns = int(settings.max_refit_interval_s * 1e9)
        # Per (venue, underlying, strategy): the chain as that strategy follows it.
        self._chains: dict[tuple[str, str, str], ChainState] = {}
        # The fits run at the latest instant a fit ran (`_shared_now`), for a strategy asking
        # for the same fit at that instant (module docstring); dropped when the clock moves on.
        self._shared_now: int | None = None
        self._shared: list[_Outcome] = []
        # Per underlying, the venues listing options of it, as of a registry size.
        self._venues: dict[str, tuple[int, tuple[str, ...]]] = {}
        # Threaded: one fit at a time in the whole service (a fit is CPU work: two at once would
        # only share the cores with the event loop), and the host's nursery for background
        # refits of `surface` (the live engine sets it while it runs; None: no background refit).
        self._limiter: trio.CapacityLimiter | None = None
        self.spawn: Callable[..., Any] | None = None

    # -- what strategies ask -------------------------------------------------------------------
    def surface(self, underlying: str, venue: str, *, strategy: str = "") -> VolSurface | None:
        """The chain's latest surface for `strategy`, refitted first when a refit is due for it
        (module docstring); None while no expiry of it could be fitted."""
        chain = self.chain(underlying, venue, strategy)
        now = self.clock()
        if chain.in_flight or not self._due(chain, now):
            return chain.surface
        if self.threaded and chain.surface is not None:
            if self.spawn is not None:
                job = self._prepare(chain, now)
                if job is not None and not self._take_shared(chain, job):
                    chain.in_flight = True
                    self.spawn(self._fit_in_background, chain, job)
            return chain.surface
        job = self._prepare(chain, now)
        if job is not None and not self._take_shared(chain, job):
            self._finish(chain, job, *self._timed_fit(chain, job))
        return chain.surface

    async def surface_async(self, underlying: str, venue: str, *, strategy: str = "") -> VolSurface | None:
        """`surface`, with a due refit run in a worker thread when the service is threaded
        (awaited: the caller gets the new surface). Inline, it awaits nothing (a backtest's
        kernel drives it like any strategy code)."""
        if not self.threaded:
            return self.surface(underlying, venue, strategy=strategy)
        chain = self.chain(underlying, venue, strategy)
        now = self.clock()
        if chain.in_flight or not self._due(chain, now):
            return chain.surface
        job = self._prepare(chain, now)
        if job is not None and not self._take_shared(chain, job):
            chain.in_flight = True
            await self._fit_in_thread(chain, job)
        return chain.surface

    def chain(self, underlying: str, venue: str, strategy: str = "") -> ChainState:
        """The chain's state as `strategy` follows it (made at its first mention)."""
        key = (venue, underlying, strategy)
        chain = self._chains.get(key)
        if chain is None:
            chain = self._chains[key] = ChainState(underlying, venue, strategy)
        return chain

    def chain_symbols(self, underlying: str, venue: str, strategy: str = "") -> tuple[str, ...]:
        """The chain's options as `strategy` last listed them: active and unexpired then (listed
        again at its call after the registry grew), sorted. The same tuple while nothing changed,
        so a caller compares by identity."""
        chain = self.chain(underlying, venue, strategy)
        if chain.registry_size != len(self.registry):
            now = self.clock()
            chain.registry_size = len(self.registry)
            chain.symbols = tuple(
                sorted(
                    i.symbol
                    for i in self.registry
                    if _in_chain(i, underlying, venue) and i.active and (i.expiry_ns or 0) > now
                )
            )
        return chain.symbols

    def option_venues(self, underlying: str) -> tuple[str, ...]:
        """The venues listing options of `underlying` (any state), sorted."""
        size = len(self.registry)
        found = self._venues.get(underlying)
        if found is None or found[0] != size:
            venues = tuple(
                sorted(
                    {
                        i.venue
                        for i in self.registry
                        if i.kind is InstrumentKind.OPTION and i.base == underlying
                    }
                )
            )
            found = self._venues[underlying] = (size, venues)
        return found[1]

    def status(self) -> dict[str, Any]:
        """The counters and, per chain (`venue:underlying`), its latest surface's time and slices,
        its options and the latest look's skipped options (of whichever strategy looked last),
        and per strategy following it, its surface's time and its counters (JSON-able: the
        daemon's status file)."""
        by_chain: dict[tuple[str, str], list[ChainState]] = {}
        for (venue, underlying, _), chain in sorted(self._chains.items()):
            by_chain.setdefault((venue, underlying), []).append(chain)
        chains = {}
        for (venue, underlying), views in by_chain.items():
            latest = max(views, key=lambda c: -1 if c.surface is None else c.surface.as_of_ns)
            looked = max(views, key=lambda c: -1 if c.checked_ns is None else c.checked_ns)
            s = latest.surface
            chains[f"{venue}:{underlying}"] = {
                "as_of_ns": None if s is None else s.as_of_ns,
                "expiries": 0 if s is None else len(s.slices),
                "skipped_expiries": 0 if s is None else len(s.skipped),
                "options": max(len(c.symbols) for c in views),
                "skipped": dict(sorted(looked.skipped.items())),
                "strategies": {
                    c.strategy: {
                        "as_of_ns": None if c.surface is None else c.surface.as_of_ns,
                        "fits": c.fits,
                        "shared_fits": c.shared_fits,
                        "empty_fits": c.empty_fits,
                        "fit_failures": c.fit_failures,
                        "refits_skipped": c.refits_skipped,
                    }
                    for c in views
                },
            }
        return {**self.stats.as_dict(), "chains": chains}

    # -- refits ---------------------------------------------------------------------------------
    def _due(self, chain: ChainState, now: int) -> bool:
        return chain.checked_ns is None or now - chain.checked_ns >= self._interval_ns

    def _prepare(self, chain: ChainState, now: int) -> _Job | None:
        """The chain's quotes now, or None when its tickers are those of the last look or it did
        not move enough since its last fit (nothing to fit: module docstring). Marks the chain
        looked at: the next look is an interval later."""
        chain.checked_ns = now
        market = self.market.tickers
        registry = self.registry
        venue = chain.venue
        skipped: dict[str, int] = {}

        def skip(why: str) -> None:
            skipped[why] = skipped.get(why, 0) + 1

        # First the chain's options with a ticker, compared with the last fit's (most looks at a
        # quiet chain end here); then their quotes.
        live: list[tuple[Instrument, Ticker]] = []
        for symbol in self.chain_symbols(chain.underlying, venue, chain.strategy):
            inst = registry.get(venue, symbol)  # as it is now (a listing may have changed)
            if inst is None or not inst.active:
                skip(INACTIVE)
            elif (inst.expiry_ns or 0) <= now:
                skip(EXPIRED)
            elif (t := market.get((venue, symbol))) is None:
                skip(NO_TICKER)
            else:
                live.append((inst, t))
        tickers = tuple(t for _, t in live)
        looked = chain.looked
        if looked is not None and len(looked) == len(tickers) and all(map(_same, looked, tickers)):
            return None
        chain.looked = tickers
        quotes: list[SurfaceQuote] = []
        for inst, t in live:
            iv = t.mark_iv
            if iv is None or not math.isfinite(iv):
                skip(NO_IV)
                continue
            forward = t.underlying if _usable(t.underlying) else t.index if _usable(t.index) else None
            if forward is None:
                skip(NO_FORWARD)
                continue
            assert inst.expiry_ns is not None  # `_in_chain`
            assert inst.strike is not None
            quotes.append(
                SurfaceQuote(
                    instrument=inst.symbol,
                    strike=float(inst.strike),
                    expiry_ns=inst.expiry_ns,
                    iv=iv,
                    forward=forward,
                    bid_iv=t.bid_iv if t.bid_iv is not None and math.isfinite(t.bid_iv) else None,
                    ask_iv=t.ask_iv if t.ask_iv is not None and math.isfinite(t.ask_iv) else None,
                    call=inst.right is OptionRight.CALL,
                    ts_ns=t.ts_local,
                )
            )
        new_reasons = set(skipped) - set(chain.skipped)
        chain.skipped = skipped
        if new_reasons:
            self.log.info(
                "surface.options_skipped",
                venue=venue,
                underlying=chain.underlying,
                quotes=len(quotes),
                **{why: skipped[why] for why in sorted(skipped)},
            )
        if not tickers:
            return None  # nothing quoted yet (live: the tickers subscribed have not come)
        max_iv = self.settings.max_iv
        usable = [q for q in quotes if _usable_quote(q, max_iv)]
        composition = tuple((q.instrument, _two_sided(q, max_iv)) for q in usable)
        reason = self._refit_reason(chain, usable, composition, now)
        if reason is None:
            self.stats.refits_skipped += 1
            chain.refits_skipped += 1
            return None
        self.stats.refit_reasons[reason] = self.stats.refit_reasons.get(reason, 0) + 1
        for why, n in skipped.items():
            self.stats.skipped[why] = self.stats.skipped.get(why, 0) + n
        # The basis is the chain's only once the fit has run (`_finish`): a fit that raises is
        # retried at the next due look, not only when the quotes move or the surface ages.
        basis = {q.instrument: q for q in usable}
        return _Job(tuple(quotes), tickers, now, chain.surface, basis, composition)

    def _refit_reason(
        self,
        chain: ChainState,
        usable: list[SurfaceQuote],
        composition: tuple[tuple[str, bool], ...],
        now: int,
    ) -> str | None:
        """Why the chain is refitted now, or None: it did not move enough since its last fit
        (module docstring)."""
        if chain.composition is None:
            return "first"
        if chain.retry:
            return "retry"
        if composition != chain.composition:
            return "composition"
        if chain.empty and not self._fittable(usable, now):
            return None  # too narrow, whatever its quotes say: only new options can change that
        settings = self.settings
        min_iv, min_forward = settings.min_iv_change, settings.min_forward_change
        basis = chain.basis
        for q in usable:
            before = basis[q.instrument]
            if abs(q.iv - before.iv) >= min_iv:
                return "iv"
            if abs(q.forward - before.forward) >= min_forward * before.forward:
                return "forward"
        if not chain.empty and now - chain.fitted_ns >= self._max_interval_ns:
            return "age"
        return None

    def _fittable(self, usable: list[SurfaceQuote], now: int) -> bool:
        """Whether an expiry of these quotes has the strikes (`min_quotes` distinct) and the time
        (`min_expiry_s`) to be fitted at all."""
        soonest = now + self.settings.min_expiry_s * 1e9
        strikes: dict[int, set[float]] = {}
        for q in usable:
            if q.expiry_ns >= soonest:
                strikes.setdefault(q.expiry_ns, set()).add(q.strike)
        return any(len(found) >= self.settings.min_quotes for found in strikes.values())

    def _take_shared(self, chain: ChainState, job: _Job) -> bool:
        """Finish `job` with the outcome of the same fit run for another strategy at this instant,
        if there is one: the same chain, instant and previous surface (by identity), and equal
        quotes, which are all a fit reads (the settings are the service's). True when taken."""
        if self._shared_now != job.as_of_ns:
            return False
        for done in self._shared:
            if (
                done.job.previous is job.previous
                and done.venue == chain.venue
                and done.underlying == chain.underlying
                and done.job.quotes == job.quotes
            ):
                self._finish(chain, job, done.surface, done.error, 0.0, shared=True)
                return True
        return False

    def _keep_shared(
        self, chain: ChainState, job: _Job, surface: VolSurface | None, error: BaseException | None
    ) -> None:
        """Keep a fit's outcome for the strategies asking for the same fit at its instant."""
        if self._shared_now != job.as_of_ns:
            if self._shared_now is not None and job.as_of_ns < self._shared_now:
                return  # a threaded fit finishing after a later one ran: no one asks at its instant
            self._shared_now = job.as_of_ns
            self._shared = []
        self._shared.append(_Outcome(chain.venue, chain.underlying, job, surface, error))

    def _timed_fit(
        self, chain: ChainState, job: _Job
    ) -> tuple[VolSurface | None, BaseException | None, float]:
        """(the surface, None, CPU s) or (None, what the fit raised, CPU s). Runs in whichever
        thread calls it; reads only `job`."""
        cpu0 = time.thread_time()
        try:
            fit = self._fit
            if fit is None:
                fit = self._fit = _default_fit()
            surface = fit(
                job.quotes,
                venue=chain.venue,
                underlying=chain.underlying,
                as_of_ns=job.as_of_ns,
                settings=self.settings,
                previous=job.previous,
            )
        except Exception as exc:  # a bug in the fit: counted, logged, the previous surface kept
            return None, exc, time.thread_time() - cpu0
        return surface, None, time.thread_time() - cpu0

    async def _fit_in_thread(self, chain: ChainState, job: _Job) -> None:
        """The fit in a worker thread, its result kept here (the host's thread)."""
        if self._limiter is None:
            self._limiter = trio.CapacityLimiter(1)
        try:
            result = await trio.to_thread.run_sync(self._timed_fit, chain, job, limiter=self._limiter)
        finally:
            chain.in_flight = False
        self._finish(chain, job, *result)

    async def _fit_in_background(self, chain: ChainState, job: _Job) -> None:
        """`_fit_in_thread` as a task of the host's nursery: whatever goes wrong is counted and
        logged here, never raised into the host (trio's cancellation aside)."""
        try:
            await self._fit_in_thread(chain, job)
        except Exception as exc:
            chain.in_flight = False
            self._failed(chain, job, exc)

    def _finish(
        self,
        chain: ChainState,
        job: _Job,
        surface: VolSurface | None,
        error: BaseException | None,
        cpu: float,
        *,
        shared: bool = False,
    ) -> None:
        """Apply a fit's outcome to the chain as its strategy follows it. `shared`: another
        strategy's identical fit (`_take_shared`), counted as such only."""
        if shared:
            self.stats.shared_fits += 1
            chain.shared_fits += 1
        else:
            self.stats.last_fit_s = cpu
            self.stats.fit_cpu_s += cpu
            if error is None and not isinstance(surface, VolSurface):
                error = TypeError(f"the fit returned {type(surface).__name__}, not a VolSurface")
            self._keep_shared(chain, job, surface, error)
        chain.empty = False
        if error is not None:
            self._failed(chain, job, error, shared=shared)
            return
        assert surface is not None
        chain.basis = job.basis
        chain.composition = job.composition
        chain.fitted_ns = job.as_of_ns
        chain.retry = False
        if not surface.slices:
            if not shared:
                self.stats.empty_fits += 1
                chain.empty_fits += 1
            chain.empty = True
            # Said once per chain at info (why a strategy gets no surface), then at debug.
            first = not chain.empty_logged
            chain.empty_logged = True
            (self.log.info if first else self.log.debug)(
                "surface.nothing_fitted",
                venue=chain.venue,
                underlying=chain.underlying,
                strategy=chain.strategy,
                quotes=len(job.quotes),
                skipped=[why for _, why in surface.skipped][:5],
            )
            return
        if not shared:
            self.stats.fits += 1
            chain.fits += 1
        chain.surface = surface
        self.log.debug(
            "surface.fitted",
            venue=chain.venue,
            underlying=chain.underlying,
            strategy=chain.strategy,
            shared=shared,
            quotes=len(job.quotes),
            expiries=len(surface.slices),
            cpu_s=round(cpu, 6),
        )

    def _failed(self, chain: ChainState, job: _Job, error: BaseException, *, shared: bool = False) -> None:
        """A fit that raised (a bug): counted (where it ran: not `shared`); logged once per chain
        and strategy, with the error."""
        if not shared:
            self.stats.fit_failures += 1
            chain.fit_failures += 1
        # Retried at the next due look (min_refit_interval_s on) that finds a new ticker, however
        # little the quotes moved (the same tickers would only fail the same way again).
        chain.retry = True
        if chain.failure_logged:
            return
        chain.failure_logged = True
        self.log.error(
            "surface.fit_failed",
            venue=chain.venue,
            underlying=chain.underlying,
            strategy=chain.strategy,
            quotes=len(job.quotes),
            error=repr(error),
            kept="previous surface" if chain.surface is not None else "none yet",
        )


def _same(a: Ticker, b: Ticker) -> bool:
    return a is b


def _two_sided(q: SurfaceQuote, max_iv: float) -> bool:
    """Whether the quote's book brackets its IV on both sides (what weighs it in the fit:
    engine/surface/fit.py step 4)."""
    bid, ask = q.bid_iv, q.ask_iv
    return (
        bid is not None
        and ask is not None
        and _usable_iv(bid, max_iv)
        and _usable_iv(ask, max_iv)
        and bid <= ask
    )


def _in_chain(inst: Instrument, underlying: str, venue: str) -> bool:
    return (
        inst.venue == venue
        and inst.kind is InstrumentKind.OPTION
        and inst.base == underlying
        and inst.expiry_ns is not None
        and inst.strike is not None
        and inst.right is not None
    )
