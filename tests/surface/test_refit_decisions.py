"""When SurfaceService refits a chain quoted anew, and when it skips the due refit: the chain must
have moved since its last fit (an option came or went or changed sides, a mark IV moved by
`min_iv_change`, a forward by `min_forward_change`), or `max_refit_interval_s` passed; a chain
too narrow to fit is not fitted again until its options change; each refit starts from the last
surface. The fit is a fake here (test_service.py's); the real one is in test_service_backtest.py."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.surface.test_service import CHAIN, DAY, E1, E2, NS, T0, feed, option, ticker
from tests.surface.test_service import setup as make_service
from tradingd.engine import Instrument, OptionRight
from tradingd.engine.surface import SurfaceSettings

IV = 0.6
FORWARD = 90_000.0


def quote(market: Any, inst: Instrument, ts: int, **kw: Any) -> None:
    market.on_ticker(ticker(inst, ts, **{"mark_iv": IV, "underlying": FORWARD, **kw}))


def started(**settings: Any) -> tuple[Any, Any, Any, Any]:
    """The service with the default thresholds (unless given) and a first fit at T0."""
    defaults = {f: getattr(SurfaceSettings(), f) for f in ("min_iv_change", "min_forward_change")}
    service, market, fit, clock = make_service(**{**defaults, **settings})
    feed(market, CHAIN, T0, mark_iv=IV, underlying=FORWARD)
    assert service.surface("BTC", "deribit") is not None
    assert service.stats.refit_reasons == {"first": 1}
    return service, market, fit, clock


def look(service: Any, clock: Any, seconds: float = 5.0) -> Any:
    clock.now += round(seconds * NS)
    return service.surface("BTC", "deribit")


def test_the_same_quotes_again_skip_the_due_refit() -> None:
    service, market, fit, clock = started()
    first = service.surface("BTC", "deribit")
    for _ in range(5):
        feed(market, CHAIN, clock.now, mark_iv=IV, underlying=FORWARD)  # new tickers, same values
        assert look(service, clock) is first
    assert len(fit.calls) == 1
    assert service.stats.refits_skipped == 5
    assert service.status()["refits_skipped"] == 5


def test_a_mark_iv_move_of_min_iv_change_refits_a_smaller_one_does_not() -> None:
    service, market, fit, clock = started(min_iv_change=0.002)
    first = service.surface("BTC", "deribit")
    quote(market, CHAIN[3], clock.now, mark_iv=IV + 0.0019)
    assert look(service, clock) is first and len(fit.calls) == 1
    quote(market, CHAIN[3], clock.now, mark_iv=IV - 0.0019)
    assert look(service, clock) is first and len(fit.calls) == 1
    quote(market, CHAIN[3], clock.now, mark_iv=IV - 0.0021)
    second = look(service, clock)
    assert second is not first and len(fit.calls) == 2
    assert service.stats.refit_reasons == {"first": 1, "iv": 1}
    assert {q.instrument: q.iv for q in fit.calls[1][0]}[CHAIN[3].symbol] == IV - 0.0021


def test_moves_are_measured_from_the_last_fit_so_a_slow_drift_refits() -> None:
    service, market, fit, clock = started(min_iv_change=0.002)
    for step in range(1, 6):  # 0.0005 a look: no look moves 0.002, the fourth is 0.002 away
        feed(market, CHAIN, clock.now, mark_iv=IV + 0.0005 * step, underlying=FORWARD)
        look(service, clock)
        assert len(fit.calls) == (1 if step < 4 else 2), step
    assert service.stats.refit_reasons == {"first": 1, "iv": 1}
    assert service.stats.refits_skipped == 4  # steps 1-3 and 5 (0.0005 from the fit at step 4)


def test_a_relative_forward_move_of_min_forward_change_refits() -> None:
    service, market, fit, clock = started(min_forward_change=0.001)
    first = service.surface("BTC", "deribit")
    feed(market, CHAIN, clock.now, mark_iv=IV, underlying=FORWARD * 1.0009)
    assert look(service, clock) is first
    feed(market, CHAIN, clock.now, mark_iv=IV, underlying=FORWARD * (1 - 0.0011))
    assert look(service, clock) is not first
    assert service.stats.refit_reasons == {"first": 1, "forward": 1}
    # The forward the refit was given is the moved one: a surface in log-moneyness moves with it.
    assert {q.forward for q in fit.calls[1][0]} == {FORWARD * (1 - 0.0011)}


def test_bid_and_ask_moves_alone_refit_nothing_a_side_gained_or_lost_does() -> None:
    service, market, _fit, clock = started()
    feed(market, CHAIN, clock.now, bid_iv=0.58, ask_iv=0.62, mark_iv=IV, underlying=FORWARD)
    assert service.stats.refit_reasons == {"first": 1}
    look(service, clock)  # every book gained both sides: their weights in the fit changed
    assert service.stats.refit_reasons == {"first": 1, "composition": 1}
    feed(market, CHAIN, clock.now, bid_iv=0.55, ask_iv=0.65, mark_iv=IV, underlying=FORWARD)
    look(service, clock)  # wider, still two-sided: no refit
    quote(market, CHAIN[0], clock.now, bid_iv=None, ask_iv=0.65)
    look(service, clock)  # one lost its bid
    assert service.stats.refit_reasons == {"first": 1, "composition": 2}
    assert service.stats.refits_skipped == 1


def test_an_option_that_comes_or_goes_refits() -> None:
    service, market, fit, clock = started()
    new = option(105_000, E2)
    service.registry.add(new)
    quote(market, new, clock.now)
    look(service, clock)
    assert service.stats.refit_reasons == {"first": 1, "composition": 1}
    assert len(fit.calls[1][0]) == len(CHAIN) + 1
    quote(market, new, clock.now, mark_iv=5.0)  # at max_iv: a quote the fit drops
    look(service, clock)
    assert service.stats.refit_reasons == {"first": 1, "composition": 2}


def test_a_number_the_fit_would_drop_is_no_quote_for_the_refit_decisions() -> None:
    # The service judges a chain by what the fit takes (engine/surface/model.py's bounds): an IV
    # under one vol point is no mark (the option leaves the fit) and no quoted side.
    service, market, fit, clock = started()
    feed(market, CHAIN, clock.now, bid_iv=0.58, ask_iv=0.62, mark_iv=IV, underlying=FORWARD)
    look(service, clock)
    assert service.stats.refit_reasons == {"first": 1, "composition": 1}
    quote(market, CHAIN[0], clock.now, bid_iv=1e-208, ask_iv=0.62)  # lost its bid, in effect
    look(service, clock)
    assert service.stats.refit_reasons == {"first": 1, "composition": 2}
    quote(market, CHAIN[3], clock.now, mark_iv=1e-208, bid_iv=0.58, ask_iv=0.62)  # left the fit
    look(service, clock)
    assert service.stats.refit_reasons == {"first": 1, "composition": 3}
    quote(market, CHAIN[3], clock.now, mark_iv=0.004, bid_iv=0.58, ask_iv=0.62)  # still out
    look(service, clock)
    assert service.stats.refit_reasons == {"first": 1, "composition": 3}
    assert len(fit.calls) == 4


def test_a_chain_quoted_anew_is_refitted_once_max_refit_interval_s_passed() -> None:
    service, market, _fit, clock = started(max_refit_interval_s=30.0)
    for _ in range(12):  # 60 s of looks every 5 s, the same values each time
        feed(market, CHAIN, clock.now, mark_iv=IV, underlying=FORWARD)
        look(service, clock)
    assert service.stats.refit_reasons == {"first": 1, "age": 2}  # at 30 s and 60 s
    assert service.surface("BTC", "deribit").as_of_ns == T0 + 60 * NS
    assert service.stats.refits_skipped == 10


def test_a_chain_no_new_ticker_came_for_is_not_refitted_however_old_its_surface() -> None:
    service, _market, fit, clock = started(max_refit_interval_s=30.0)
    first = service.surface("BTC", "deribit")
    for _ in range(20):
        assert look(service, clock) is first
    assert len(fit.calls) == 1 and service.stats.refits_skipped == 0  # nothing was even looked at


def test_each_refit_starts_from_the_latest_surface() -> None:
    service, market, fit, clock = started()
    first = service.surface("BTC", "deribit")
    assert fit.calls[0][1]["previous"] is None
    feed(market, CHAIN, clock.now, mark_iv=IV + 0.01, underlying=FORWARD)
    second = look(service, clock)
    assert fit.calls[1][1]["previous"] is first
    fit.answer = "empty"
    feed(market, CHAIN, clock.now, mark_iv=IV + 0.02, underlying=FORWARD)
    assert look(service, clock) is second  # an empty fit keeps the previous surface ...
    fit.answer = None
    feed(market, CHAIN, clock.now, mark_iv=IV + 0.03, underlying=FORWARD)
    look(service, clock)
    assert fit.calls[3][1]["previous"] is second  # ... and its start


NARROW = [option(k, e, r) for e in (E1, E2) for k in (85_000, 90_000, 95_000, 100_000) for r in OptionRight]


def test_a_chain_too_narrow_to_fit_is_not_fitted_again_until_its_options_change() -> None:
    service, market, fit, clock = make_service(NARROW)  # thresholds 0: any new ticker would do
    fit.answer = "empty"
    feed(market, NARROW, clock.now)
    assert service.surface("BTC", "deribit") is None
    for step in range(10):
        feed(market, NARROW, clock.now, mark_iv=0.5 + 0.01 * step, underlying=FORWARD + step)
        assert look(service, clock) is None
    assert len(fit.calls) == 1
    assert (service.stats.empty_fits, service.stats.refits_skipped) == (1, 10)
    # A fifth strike of the far expiry: wide enough now, fitted again; then moves count again.
    fifth = option(105_000, E2)
    service.registry.add(fifth)
    quote(market, fifth, clock.now)
    look(service, clock)
    assert len(fit.calls) == 2 and service.stats.refit_reasons == {"first": 1, "composition": 1}
    feed(market, [*NARROW, fifth], clock.now)
    look(service, clock)
    assert service.stats.refit_reasons == {"first": 1, "composition": 1, "iv": 1}


def test_an_expiry_too_close_to_fit_counts_as_too_narrow() -> None:
    strikes = (80_000, 85_000, 90_000, 95_000, 100_000)
    soon = [option(k, T0 + DAY // 48, r) for k in strikes for r in OptionRight]
    service, market, fit, clock = make_service(soon)  # 5 strikes, expiring in 30 minutes
    fit.answer = "empty"
    feed(market, soon, clock.now)
    service.surface("BTC", "deribit")
    feed(market, soon, clock.now, mark_iv=0.7)
    look(service, clock)
    assert len(fit.calls) == 1 and service.stats.refits_skipped == 1


def test_an_empty_fit_of_a_chain_wide_enough_is_retried_when_its_quotes_move() -> None:
    service, market, fit, clock = started()  # 5 strikes per expiry: enough for a fit
    fit.answer = "empty"  # the fit found nothing it could fit (its own reasons)
    feed(market, CHAIN, clock.now, mark_iv=IV + 0.01, underlying=FORWARD)
    look(service, clock)
    feed(market, CHAIN, clock.now, mark_iv=IV + 0.01, underlying=FORWARD)
    look(service, clock)  # not moved: skipped
    feed(market, CHAIN, clock.now, mark_iv=IV + 0.02, underlying=FORWARD)
    look(service, clock)  # moved: retried
    assert service.stats.refit_reasons == {"first": 1, "iv": 2}
    assert (service.stats.empty_fits, service.stats.refits_skipped) == (2, 1)
    for _ in range(20):  # an empty fit is not refitted for its age
        feed(market, CHAIN, clock.now, mark_iv=IV + 0.02, underlying=FORWARD)
        look(service, clock)
    assert service.stats.empty_fits == 2


async def test_threaded_the_same_rules_decide_before_any_thread() -> None:
    service, market, fit, clock = make_service(threaded=True, min_iv_change=0.001, min_forward_change=0.001)
    feed(market, CHAIN, T0, mark_iv=IV, underlying=FORWARD)
    first = await service.surface_async("BTC", "deribit")
    feed(market, CHAIN, T0, mark_iv=IV, underlying=FORWARD)
    clock.now += 5 * NS
    assert await service.surface_async("BTC", "deribit") is first
    feed(market, CHAIN, T0, mark_iv=IV + 0.002, underlying=FORWARD)
    clock.now += 5 * NS
    second = await service.surface_async("BTC", "deribit")
    assert second is not first and second is not None
    assert fit.calls[1][1]["previous"] is first
    assert service.stats.refit_reasons == {"first": 1, "iv": 1}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(CHAIN) - 1),  # which option's quote changes
            st.floats(-0.004, 0.004),  # its mark IV move
            st.floats(-0.002, 0.002),  # its forward's relative move
        ),
        min_size=1,
        max_size=25,
    ),
    st.sampled_from([0.0, 0.001, 0.003]),
    st.sampled_from([0.0, 0.0005, 0.001]),
)
def test_a_look_refits_exactly_when_a_quote_moved_a_threshold_from_the_last_fit(
    steps: list[tuple[int, float, float]], min_iv: float, min_forward: float
) -> None:
    service, market, fit, clock = started(
        min_iv_change=min_iv, min_forward_change=min_forward, max_refit_interval_s=1e6
    )
    now_quotes = {inst.symbol: (IV, FORWARD) for inst in CHAIN}
    fitted = dict(now_quotes)  # the witness: the quotes as of the last fit
    for index, d_iv, d_forward in steps:
        inst = CHAIN[index]
        iv, forward = now_quotes[inst.symbol]
        now_quotes[inst.symbol] = (iv + d_iv, forward * (1 + d_forward))
        quote(market, inst, clock.now, mark_iv=iv + d_iv, underlying=forward * (1 + d_forward))
        # Moves since the last fit (IV absolute, forward relative); a threshold of 0: any.
        moves = [(abs(iv - fitted[s][0]), abs(f / fitted[s][1] - 1)) for s, (iv, f) in now_quotes.items()]
        if min_iv == 0 or min_forward == 0:
            due = True
        else:
            # Rounding decides a move within a hair of its threshold: not what this test is about.
            assume(all(abs(d - min_iv) > 1e-12 and abs(r - min_forward) > 1e-9 for d, r in moves))
            due = any(d >= min_iv or r >= min_forward for d, r in moves)
        calls = len(fit.calls)
        look(service, clock)
        assert len(fit.calls) == calls + due
        if due:
            fitted = dict(now_quotes)
            assert {q.instrument: (q.iv, q.forward) for q in fit.calls[-1][0]} == now_quotes


def test_the_move_settings_are_validated() -> None:
    for bad in (-0.001, math.nan, math.inf, True):
        with pytest.raises(ValueError, match="surface.min_iv_change must be a finite number >= 0"):
            SurfaceSettings(min_iv_change=bad)
        with pytest.raises(ValueError, match="surface.min_forward_change must be a finite number >= 0"):
            SurfaceSettings(min_forward_change=bad)
    for bad in (0.0, -5.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="surface.max_refit_interval_s must be a finite positive"):
            SurfaceSettings(max_refit_interval_s=bad)
    with pytest.raises(ValueError, match=r"max_refit_interval_s \(4.0\) must be at least min_refit_"):
        SurfaceSettings(max_refit_interval_s=4.0)
    assert SurfaceSettings(min_iv_change=0.0, min_forward_change=0.0, max_refit_interval_s=5.0)
