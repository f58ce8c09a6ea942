"""SurfaceService with an injected fit: what a chain's quotes are made of (and what is skipped,
counted by reason), when a refit happens (event time, changed tickers), what a failing or empty
fit leaves (the previous surface), CPU time measured, and where a fit runs (inline; a worker
thread live, at most one per chain in flight)."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest
import structlog
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from tradingd.engine import Instrument, InstrumentKind, OptionRight, Ticker
from tradingd.engine.model.instruments import InstrumentRegistry
from tradingd.engine.model.market import MarketState
from tradingd.engine.surface import SliceFit, SurfaceQuote, SurfaceSettings, SviParams, VolSurface
from tradingd.engine.surface.service import SurfaceService

NS = 1_000_000_000
T0 = 1_790_000_000 * NS  # the clock's start (2026)
DAY = 86_400 * NS
E1 = T0 + 7 * DAY
E2 = T0 + 30 * DAY


def option(
    strike: int,
    expiry: int,
    right: OptionRight = OptionRight.CALL,
    *,
    base: str = "BTC",
    venue: str = "deribit",
    active: bool = True,
) -> Instrument:
    day = time.strftime("%d%b%y", time.gmtime(expiry // NS)).upper()
    return Instrument(
        venue=venue,
        symbol=f"{base}-{day}-{strike}-{'C' if right is OptionRight.CALL else 'P'}",
        kind=InstrumentKind.OPTION,
        base=base,
        quote=base,
        settle=base,
        tick_size=Decimal("0.0005"),
        min_size=Decimal("0.1"),
        expiry_ns=expiry,
        strike=Decimal(strike),
        right=right,
        active=active,
    )


def perp(venue: str = "deribit") -> Instrument:
    return Instrument(
        venue=venue,
        symbol="BTC-PERPETUAL",
        kind=InstrumentKind.PERPETUAL,
        base="BTC",
        quote="USD",
        settle="BTC",
        tick_size=Decimal("0.5"),
        min_size=Decimal("10"),
        inverse=True,
    )


def ticker(inst: Instrument, ts: int, **kw: Any) -> Ticker:
    fields: dict[str, Any] = {"mark_iv": 0.6, "underlying": 90_000.0, "index": 89_950.0}
    fields.update(kw)
    return Ticker(venue=inst.venue, instrument=inst.symbol, ts_exchange=ts, ts_local=ts, **fields)


def flat_surface(venue: str, underlying: str, as_of_ns: int, vol: float = 0.6) -> VolSurface:
    """A one-slice surface of flat `vol` (raw SVI with b = 0: w = a), expiring at E2 (or a month
    after `as_of_ns` when that is later: a live test's clock is the wall clock)."""
    expiry = max(E2, as_of_ns + 30 * DAY)
    t = (expiry - as_of_ns) / NS / (365 * 86_400)
    fit = SliceFit(
        expiry_ns=expiry,
        t_years=t,
        forward=90_000.0,
        params=SviParams(a=vol * vol * t, b=0.0, rho=0.0, m=0.0, sigma=0.1),
        quotes=5,
        dropped=0,
        rmse_iv=0.0,
        max_abs_err_iv=0.0,
        residuals=(),
        butterfly_min_g=1.0,
        butterfly_ok=True,
        lee_ok=True,
    )
    return VolSurface(venue, underlying, as_of_ns, (fit,), True, (), ())


class FakeFit:
    """Records each call's quotes and answers a flat surface (or what `answer` says)."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[SurfaceQuote, ...], dict[str, Any]]] = []
        self.threads: list[int] = []
        self.answer: Any = None  # an exception to raise, "empty", or None: a flat surface

    def __call__(self, quotes: Sequence[SurfaceQuote], **kw: Any) -> VolSurface:
        self.calls.append((tuple(quotes), kw))
        self.threads.append(threading.get_ident())
        if isinstance(self.answer, BaseException):
            raise self.answer
        if self.answer == "empty":
            return VolSurface(kw["venue"], kw["underlying"], kw["as_of_ns"], (), True, (), ((E1, "too few"),))
        return flat_surface(kw["venue"], kw["underlying"], kw["as_of_ns"])


class Clock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


CHAIN = [
    option(k, e, r) for e in (E1, E2) for k in (80_000, 85_000, 90_000, 95_000, 100_000) for r in OptionRight
]


def setup(
    instruments: Sequence[Instrument] = CHAIN,
    *,
    interval_s: float = 5.0,
    threaded: bool = False,
    **settings: Any,
) -> tuple[SurfaceService, MarketState, FakeFit, Clock]:
    """The service on a fake fit. Its move thresholds are 0 unless given: any new ticker makes a
    due refit happen (what most tests here feed: the same values again); test_refit_decisions.py
    tests the thresholds."""
    registry = InstrumentRegistry([perp(), *instruments])
    market = MarketState(registry)
    fit = FakeFit()
    clock = Clock()
    settings = {"min_iv_change": 0.0, "min_forward_change": 0.0, **settings}
    service = SurfaceService(
        market,
        registry,
        SurfaceSettings(min_refit_interval_s=interval_s, **settings),
        clock,
        fit=fit,
        threaded=threaded,
    )
    return service, market, fit, clock


def feed(market: MarketState, instruments: Sequence[Instrument], ts: int, **kw: Any) -> None:
    for inst in instruments:
        market.on_ticker(ticker(inst, ts, **kw))


# -- the quotes ---------------------------------------------------------------------------------


def test_each_option_becomes_a_quote_from_its_instrument_and_latest_ticker() -> None:
    service, market, fit, _clock = setup()
    call, put = option(90_000, E2), option(90_000, E2, OptionRight.PUT)
    feed(market, CHAIN, T0 - NS)
    market.on_ticker(ticker(call, T0 - 2, mark_iv=0.55, bid_iv=0.54, ask_iv=0.57, underlying=91_000.0))
    market.on_ticker(ticker(put, T0 - 1, mark_iv=0.56, underlying=None, index=90_500.0))
    assert service.surface("BTC", "deribit") is not None
    ((quotes, kw),) = fit.calls
    assert kw["venue"] == "deribit" and kw["underlying"] == "BTC" and kw["as_of_ns"] == T0
    assert kw["settings"] == service.settings
    assert len(quotes) == len(CHAIN)
    by = {q.instrument: q for q in quotes}
    assert by[call.symbol] == SurfaceQuote(
        instrument=call.symbol,
        strike=90_000.0,
        expiry_ns=E2,
        iv=0.55,
        forward=91_000.0,  # the ticker's underlying price
        bid_iv=0.54,
        ask_iv=0.57,
        call=True,
        ts_ns=T0 - 2,
    )
    assert by[put.symbol].forward == 90_500.0  # no underlying price: the index
    assert by[put.symbol].call is False
    assert (by[put.symbol].bid_iv, by[put.symbol].ask_iv) == (None, None)


def test_what_cannot_be_a_quote_is_skipped_and_counted_by_reason() -> None:
    expired = option(90_000, T0 - DAY)  # listed, expired before the first look
    later = option(70_000, T0 + 2 * NS)  # expires between two looks
    inactive = option(75_000, E2, active=False)
    eth = option(3_000, E2, base="ETH")
    derive = option(90_000, E2, venue="derive")
    service, market, fit, clock = setup([*CHAIN, expired, later, inactive, eth, derive])
    feed(market, [*CHAIN, expired, later, inactive, eth, derive], T0 - NS)
    no_iv, nan_iv, no_forward, bad_forward = CHAIN[0], CHAIN[1], CHAIN[2], CHAIN[3]
    market.on_ticker(ticker(no_iv, T0, mark_iv=None))
    market.on_ticker(ticker(nan_iv, T0, mark_iv=math.nan))
    market.on_ticker(ticker(no_forward, T0, underlying=None, index=None))
    market.on_ticker(ticker(bad_forward, T0, underlying=math.nan, index=0.0))
    silent = option(105_000, E2)  # listed, never quoted
    service.registry.add(silent)
    assert service.surface("BTC", "deribit") is not None
    quotes = {q.instrument for q in fit.calls[0][0]}
    assert quotes == {i.symbol for i in CHAIN[4:]} | {later.symbol}
    assert service.chain("BTC", "deribit").skipped == {"no_mark_iv": 2, "no_forward": 2, "no_ticker": 1}
    assert service.stats.skipped == {"no_mark_iv": 2, "no_forward": 2, "no_ticker": 1}

    # The listing is kept while the registry does not grow: an option delisted (inactive) since,
    # or expired since, is counted as such.
    clock.now += 5 * NS
    service.registry.add(option(80_000, E1, active=False))  # replaces CHAIN[0]: the same size
    feed(market, CHAIN[4:], clock.now)
    service.surface("BTC", "deribit")
    assert service.chain("BTC", "deribit").skipped == {
        "inactive": 1,
        "expired": 1,
        "no_mark_iv": 1,
        "no_forward": 2,
        "no_ticker": 1,
    }
    assert later.symbol not in {q.instrument for q in fit.calls[1][0]}


@given(
    st.lists(
        st.tuples(
            st.sampled_from([None, math.nan, math.inf, -0.2, 0.0, 0.3, 0.8, 6.0]),
            st.sampled_from([None, math.nan, -1.0, 0.0, 88_000.0]),
            st.sampled_from([None, math.nan, 0.0, 87_000.0]),
            st.booleans(),
        ),
        min_size=1,
        max_size=len(CHAIN),
    )
)
def test_every_option_is_a_quote_or_a_counted_skip_and_the_forward_rule_holds(
    rows: list[tuple[float | None, float | None, float | None, bool]],
) -> None:
    service, market, fit, _clock = setup()
    given_ticker = {}
    for inst, (iv, under, index, quoted) in zip(CHAIN, rows, strict=False):
        if quoted:
            market.on_ticker(ticker(inst, T0, mark_iv=iv, underlying=under, index=index))
            given_ticker[inst.symbol] = (iv, under, index)
    service.surface("BTC", "deribit")
    chain = service.chain("BTC", "deribit")
    quotes = {q.instrument: q for q in fit.calls[0][0]} if fit.calls else {}
    assert len(quotes) + sum(chain.skipped.values()) == len(CHAIN)
    assert chain.skipped.get("no_ticker", 0) == len(CHAIN) - len(given_ticker)
    for symbol, (iv, under, index) in given_ticker.items():
        usable = [f for f in (under, index) if f is not None and 0 < f < math.inf]
        if iv is None or not math.isfinite(iv) or not usable:
            assert symbol not in quotes
            continue
        # The IV as the venue marked it (the fit drops what is out of range, and says so).
        assert quotes[symbol].iv == iv
        assert quotes[symbol].forward == usable[0]


# -- when it refits -----------------------------------------------------------------------------


def test_refits_only_when_the_chain_changed_and_the_interval_of_event_time_passed() -> None:
    service, market, fit, clock = setup(interval_s=5.0)
    assert service.surface("BTC", "deribit") is None  # nothing quoted yet: no fit at all
    assert fit.calls == []
    feed(market, CHAIN, T0)
    clock.now += 1 * NS
    assert service.surface("BTC", "deribit") is None  # looked at T0: the next look at T0 + 5 s
    clock.now = T0 + 5 * NS
    first = service.surface("BTC", "deribit")
    assert first is not None and first.as_of_ns == T0 + 5 * NS and len(fit.calls) == 1
    # Changed tickers, but within the interval: the same surface, no fit.
    feed(market, CHAIN, T0 + 6 * NS)
    clock.now = T0 + 9 * NS
    assert service.surface("BTC", "deribit") is first and len(fit.calls) == 1
    # Wall time does not count: only the clock's.
    time.sleep(0.01)
    assert service.surface("BTC", "deribit") is first
    clock.now = T0 + 10 * NS
    second = service.surface("BTC", "deribit")
    assert second is not first and second is not None and second.as_of_ns == T0 + 10 * NS
    assert len(fit.calls) == 2
    # Nothing changed since: no fit, however long it has been.
    clock.now = T0 + 60 * NS
    assert service.surface("BTC", "deribit") is second and len(fit.calls) == 2
    # One ticker changed: a refit, with every option's latest ticker.
    market.on_ticker(ticker(CHAIN[3], clock.now, mark_iv=0.7))
    clock.now = T0 + 61 * NS  # the look at 60 s found nothing: the next one is at 65 s
    assert service.surface("BTC", "deribit") is second
    clock.now = T0 + 65 * NS
    third = service.surface("BTC", "deribit")
    assert third is not second and len(fit.calls) == 3
    assert {q.instrument: q.iv for q in fit.calls[2][0]}[CHAIN[3].symbol] == 0.7
    assert service.stats.fits == 3


def test_chains_are_apart() -> None:
    eth = [option(k, E2, base="ETH") for k in (2_000, 2_500, 3_000, 3_500, 4_000)]
    service, market, fit, _clock = setup([*CHAIN, *eth])
    feed(market, [*CHAIN, *eth], T0)
    btc = service.surface("BTC", "deribit")
    eth_surface = service.surface("ETH", "deribit")
    assert btc is not None and eth_surface is not None
    assert (btc.underlying, eth_surface.underlying) == ("BTC", "ETH")
    assert [len(q) for q, _ in fit.calls] == [len(CHAIN), len(eth)]
    assert service.surface("ETH", "derive") is None  # no options there: nothing fitted
    assert service.option_venues("ETH") == ("deribit",)


# -- failures -----------------------------------------------------------------------------------


def test_a_fit_that_raises_is_counted_logged_once_per_chain_and_the_previous_surface_kept() -> None:
    service, market, fit, clock = setup(interval_s=1.0)
    feed(market, CHAIN, T0)
    good = service.surface("BTC", "deribit")
    assert good is not None
    fit.answer = ZeroDivisionError("a bug in the fit")
    with structlog.testing.capture_logs() as logs:
        for n in range(1, 4):
            clock.now = T0 + n * NS
            feed(market, CHAIN, clock.now)
            assert service.surface("BTC", "deribit") is good
    assert service.stats.fit_failures == 3
    assert service.stats.fits == 1
    failed = [e for e in logs if e["event"] == "surface.fit_failed"]
    assert len(failed) == 1
    assert failed[0]["error"] == "ZeroDivisionError('a bug in the fit')"
    assert (failed[0]["venue"], failed[0]["underlying"], failed[0]["log_level"]) == (
        "deribit",
        "BTC",
        "error",
    )
    # The same tickers are not fitted again (they would fail again); new ones are.
    clock.now = T0 + 10 * NS
    assert service.surface("BTC", "deribit") is good and service.stats.fit_failures == 3
    fit.answer = None
    feed(market, CHAIN, clock.now)
    clock.now = T0 + 11 * NS
    fresh = service.surface("BTC", "deribit")
    assert fresh is not good and fresh is not None and fresh.as_of_ns == T0 + 11 * NS


@pytest.mark.parametrize("answer", [None, "a surface", 42])
def test_a_fit_that_answers_no_surface_is_a_failed_fit(answer: object) -> None:
    service, market, _fit, clock = setup(interval_s=1.0)
    feed(market, CHAIN, T0)
    good = service.surface("BTC", "deribit")
    service._fit = lambda quotes, **kw: answer  # type: ignore[assignment]
    feed(market, CHAIN, T0 + NS)
    clock.now = T0 + NS
    with structlog.testing.capture_logs() as logs:
        assert service.surface("BTC", "deribit") is good
    assert service.stats.fit_failures == 1
    assert [e["error"] for e in logs if e["event"] == "surface.fit_failed"] == [
        f"TypeError('the fit returned {type(answer).__name__}, not a VolSurface')"
    ]


async def test_a_background_refit_that_goes_wrong_is_counted_never_raised_into_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service, market, _fit, clock = setup(threaded=True)
    feed(market, CHAIN, T0)
    first = service.surface("BTC", "deribit")

    def broken(*args: object) -> None:
        raise RuntimeError("a bug after the fit")

    monkeypatch.setattr(service, "_finish", broken)
    clock.now += 10 * NS
    feed(market, CHAIN, clock.now)
    async with trio.open_nursery() as nursery:  # the host's nursery: not cancelled by the bug
        service.spawn = nursery.start_soon
        assert service.surface("BTC", "deribit") is first
    assert service.stats.fit_failures == 1
    assert not service.chain("BTC", "deribit").in_flight  # the next refit may start


def test_a_fit_that_raises_is_retried_at_the_next_due_look_with_new_tickers() -> None:
    """The basis of a fit is recorded only once it ran: after a fit that raised, the next due look
    with new tickers fits again, even though they did not move past the thresholds since the failed
    attempt (before: skipped until the quotes moved again or max_refit_interval_s passed)."""
    service, market, fit, clock = setup(interval_s=1.0, min_iv_change=0.01, min_forward_change=0.001)
    feed(market, CHAIN, T0)
    good = service.surface("BTC", "deribit")
    assert good is not None and len(fit.calls) == 1
    fit.answer = ZeroDivisionError("a bug in the fit")
    clock.now = T0 + NS
    feed(market, CHAIN, clock.now, mark_iv=0.65)  # moved: a refit, which raises
    assert service.surface("BTC", "deribit") is good and len(fit.calls) == 2
    fit.answer = None
    clock.now = T0 + NS + NS // 2  # not due yet: min_refit_interval_s still bounds the retry
    feed(market, CHAIN, clock.now, mark_iv=0.65)
    assert service.surface("BTC", "deribit") is good and len(fit.calls) == 2
    clock.now = T0 + 2 * NS
    feed(market, CHAIN, clock.now, mark_iv=0.65)  # the failed attempt's quotes again: retried
    fresh = service.surface("BTC", "deribit")
    assert fresh is not good and fresh is not None and fresh.as_of_ns == T0 + 2 * NS
    assert len(fit.calls) == 3 and service.stats.refit_reasons.get("retry") == 1
    # Then the thresholds again, against the basis of the fit that ran.
    clock.now = T0 + 3 * NS
    feed(market, CHAIN, clock.now, mark_iv=0.65)
    assert service.surface("BTC", "deribit") is fresh and len(fit.calls) == 3


def test_a_first_fit_that_raises_is_retried_on_the_same_quotes() -> None:
    service, market, fit, clock = setup(interval_s=1.0, min_iv_change=0.01, min_forward_change=0.001)
    fit.answer = RuntimeError("boom")
    feed(market, CHAIN, T0)
    assert service.surface("BTC", "deribit") is None
    fit.answer = None
    clock.now = T0 + NS
    feed(market, CHAIN, clock.now)
    found = service.surface("BTC", "deribit")
    assert found is not None and found.as_of_ns == T0 + NS and len(fit.calls) == 2


def test_a_failure_before_any_surface_leaves_none_and_never_raises() -> None:
    service, market, fit, _clock = setup()
    fit.answer = RuntimeError("boom")
    feed(market, CHAIN, T0)
    assert service.surface("BTC", "deribit") is None
    assert service.stats.fit_failures == 1


def test_a_fit_that_fits_no_expiry_keeps_the_previous_surface() -> None:
    service, market, fit, clock = setup(interval_s=1.0)
    fit.answer = "empty"
    feed(market, CHAIN, T0)
    with structlog.testing.capture_logs() as logs:
        assert service.surface("BTC", "deribit") is None
    # Why a strategy gets no surface, said once per chain (then at debug).
    said = [(e["log_level"], e["skipped"]) for e in logs if e["event"] == "surface.nothing_fitted"]
    assert said == [("info", ["too few"])]
    fit.answer = None
    feed(market, CHAIN, T0 + NS)
    clock.now = T0 + NS
    good = service.surface("BTC", "deribit")
    assert good is not None
    fit.answer = "empty"
    feed(market, CHAIN, T0 + 2 * NS)
    clock.now = T0 + 2 * NS
    with structlog.testing.capture_logs() as logs:
        assert service.surface("BTC", "deribit") is good
    assert [e["log_level"] for e in logs if e["event"] == "surface.nothing_fitted"] == ["debug"]
    assert (service.stats.fits, service.stats.empty_fits) == (1, 2)


def test_last_fit_s_is_cpu_time_of_the_fit() -> None:
    service, market, _fit, clock = setup(interval_s=1.0)

    def burns(quotes: Sequence[SurfaceQuote], **kw: Any) -> VolSurface:
        end = time.thread_time() + 0.03
        while time.thread_time() < end:
            pass
        return flat_surface(kw["venue"], kw["underlying"], kw["as_of_ns"])

    def waits(quotes: Sequence[SurfaceQuote], **kw: Any) -> VolSurface:
        time.sleep(0.1)  # wall time, no CPU
        return flat_surface(kw["venue"], kw["underlying"], kw["as_of_ns"])

    service._fit = burns
    feed(market, CHAIN, T0)
    service.surface("BTC", "deribit")
    assert 0.03 <= service.stats.last_fit_s < 1.0
    service._fit = waits
    feed(market, CHAIN, T0 + NS)
    clock.now = T0 + NS
    service.surface("BTC", "deribit")
    assert service.stats.last_fit_s < 0.05
    status = service.status()
    assert status["fits"] == 2 and status["fit_failures"] == 0
    assert status["chains"]["deribit:BTC"]["as_of_ns"] == T0 + NS
    assert status["chains"]["deribit:BTC"]["options"] == len(CHAIN)


# -- where the fit runs -------------------------------------------------------------------------


def test_inline_the_fit_runs_in_the_callers_thread_and_surface_async_awaits_nothing() -> None:
    service, market, fit, _clock = setup()
    feed(market, CHAIN, T0)
    coro = service.surface_async("BTC", "deribit")
    # Driven by hand, as the backtest kernel drives strategy code: done at the first send.
    with pytest.raises(StopIteration) as done:
        coro.send(None)
    assert isinstance(done.value.value, VolSurface)
    assert fit.threads == [threading.get_ident()]


async def test_threaded_surface_async_fits_in_a_worker_thread_one_per_chain_in_flight() -> None:
    service, market, _, clock = setup(threaded=True)
    release = threading.Event()
    threads: list[int] = []

    def slow(quotes: Sequence[SurfaceQuote], **kw: Any) -> VolSurface:
        threads.append(threading.get_ident())
        release.wait(10)
        return flat_surface(kw["venue"], kw["underlying"], kw["as_of_ns"])

    service._fit = slow
    feed(market, CHAIN, T0)
    got: list[VolSurface | None] = []

    async def ask() -> None:
        got.append(await service.surface_async("BTC", "deribit"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask)
        while not threads:
            await trio.sleep(0.001)
        # The event loop goes on while the fit runs; a second caller is not made to wait for it.
        clock.now += 10 * NS
        feed(market, CHAIN, clock.now)
        with trio.fail_after(1):
            assert await service.surface_async("BTC", "deribit") is None
        assert service.surface("BTC", "deribit") is None  # nor a sync one (no second fit inline)
        assert len(threads) == 1 and threads[0] != threading.get_ident()
        release.set()
    assert len(got) == 1 and got[0] is not None and got[0].as_of_ns == T0
    assert service.surface("BTC", "deribit") is got[0]


async def test_threaded_sync_surface_fits_the_first_inline_and_later_ones_in_the_background() -> None:
    service, market, fit, clock = setup(threaded=True)
    feed(market, CHAIN, T0)
    first = service.surface("BTC", "deribit")  # none yet: fitted in the call
    assert first is not None and fit.threads == [threading.get_ident()]
    clock.now += 10 * NS
    feed(market, CHAIN, clock.now)
    # No nursery lent: the latest surface, no refit.
    assert service.surface("BTC", "deribit") is first and len(fit.calls) == 1
    async with trio.open_nursery() as nursery:
        service.spawn = nursery.start_soon
        clock.now += 10 * NS
        assert service.surface("BTC", "deribit") is first  # the refit started, not awaited
    assert len(fit.calls) == 2 and fit.threads[1] != threading.get_ident()
    second = service.surface("BTC", "deribit")
    assert second is not first and second is not None and second.as_of_ns == T0 + 20 * NS


def test_importing_the_service_and_its_hosts_costs_no_numpy_nor_scipy() -> None:
    code = (
        "import sys\n"
        "import tradingd.engine.surface.service, tradingd.engine.backtest.kernel\n"
        "import tradingd.engine.runtime.live\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'scipy')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
