"""The service end to end with the real fit, in backtests of a chain whose every ticker carries the
IV of the chain's own model (tests/support/tardis_chain.py): the surface a strategy gets matches
that model; two runs get the same surfaces at the same instants; and a strategy that subscribed
to the chain's tickers itself gets the same surfaces as one whose first `ctx.surface` did it."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.support.tardis_chain import FAR_NS, NEAR_NS, NS, START_NS, Chain, Smile, option_name
from tradingd.cli.backtest import build_kernel
from tradingd.config import load_config
from tradingd.connectors.deribit import PLUGIN
from tradingd.engine import DataKind, MarketEvent, Strategy, Subscription, Ticker, VolSurface
from tradingd.engine.backtest.kernel import BacktestKernel, DataSource
from tradingd.engine.surface import SurfaceSettings

SKEWED = Chain(
    smiles={
        # Total variances at each expiry's time from the start: about 0.55-0.75 IV across the
        # strikes, a put skew (rho < 0), the far smile above the near one at every k.
        NEAR_NS: Smile(a=0.0075, b=0.05, rho=-0.4, m=0.02, sigma=0.08),
        FAR_NS: Smile(a=0.024, b=0.11, rho=-0.35, m=0.03, sigma=0.12),
    },
    seconds=120,
)


class Asker(Strategy):
    """Asks for the BTC surface on each perpetual ticker; records (clock, surface). `early`:
    subscribes to every option's ticker from the start, as a strategy may on its own."""

    def __init__(self, name: str = "asker", *, early: list[str] | None = None) -> None:
        super().__init__(name)
        self.early = early or []
        self.got: list[tuple[int, VolSurface | None]] = []
        self.option_tickers: list[int] = []  # when option tickers came (clock)

    def required_subscriptions(self) -> list[Subscription]:
        subs = [Subscription("deribit", "BTC-PERPETUAL", {DataKind.TICKER})]
        return subs + [Subscription("deribit", s, {DataKind.TICKER}) for s in self.early]

    async def on_event(self, event: MarketEvent) -> None:
        if not isinstance(event, Ticker):
            return
        if event.instrument == "BTC-PERPETUAL":
            self.got.append((self.ctx.now_ns(), await self.ctx.surface_async("BTC", venue="deribit")))
        else:
            self.option_tickers.append(self.ctx.now_ns())


def run(data: Path, *strategies: Strategy, **surface: Any) -> BacktestKernel:
    kernel = BacktestKernel(
        {"deribit": PLUGIN},
        [DataSource("deribit", data, "tardis")],
        list(strategies),
        surface_settings=SurfaceSettings(**surface),
    )
    trio.run(kernel.run)
    return kernel


@pytest.fixture(scope="module")
def skewed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return SKEWED.write(tmp_path_factory.mktemp("skewed"))


def test_the_surface_a_strategy_gets_matches_the_chains_model(skewed: Path) -> None:
    asker = Asker()
    # Any new ticker refits (no move thresholds): each surface is that of the latest rows.
    kernel = run(skewed, asker, min_iv_change=0.0, min_forward_change=0.0)
    fitted = [(now, s) for now, s in asker.got if s is not None]
    # None until the chain is quoted and the first look after it (5 s later) fits; then always one.
    first = asker.got.index(fitted[0])
    assert all(s is None for _, s in asker.got[:first]) and len(fitted) == len(asker.got) - first > 200
    assert fitted[0][0] - START_NS <= 6 * NS
    # Refitted every 5 s of market time (the default), the chain's tickers changing each 2 s.
    as_of = sorted({s.as_of_ns for _, s in fitted})
    assert len(as_of) >= 20
    assert all(b - a >= 5 * NS for a, b in itertools.pairwise(as_of))
    assert kernel.surfaces.stats.fits == len(as_of) and kernel.surfaces.stats.fit_failures == 0
    assert kernel.surfaces.stats.last_fit_s > 0
    for now, surface in fitted[::25]:
        # The latest option rows before the fit: written every 2 s, received 0.7-0.8 ms later.
        rows = START_NS + (surface.as_of_ns - START_NS - NS // 1000) // (2 * NS) * (2 * NS)
        for expiry in (NEAR_NS, FAR_NS):
            # The forward the fit read: those tickers' underlying price.
            assert surface.forward(expiry) == pytest.approx(SKEWED.spot(rows), rel=1e-9)
            for strike in (81_000.0, 85_000.0, 90_000.0, 93_750.0, 99_000.0):
                model = SKEWED.iv(strike, expiry, rows)
                assert surface.iv(strike, expiry) == pytest.approx(model, abs=2e-3), (strike, expiry)
        # Later than its fit, inside the interval, it still answers (the smile held in IV).
        assert math.isfinite(surface.iv(90_000.0, FAR_NS, now_ns=now))


class Looker(Asker):
    """An Asker that also notes, at each ask, whether the service looked at the chain then."""

    def __init__(self) -> None:
        super().__init__("looker")
        self.service: Any = None
        self.looked: list[bool] = []

    async def on_event(self, event: MarketEvent) -> None:
        asked = len(self.got)
        await super().on_event(event)
        if len(self.got) > asked:
            self.looked.append(self.service.chain("BTC", "deribit", self.name).checked_ns == self.got[-1][0])


def test_a_surface_is_refitted_only_when_the_chain_moved_and_stays_within_the_thresholds(
    skewed: Path,
) -> None:
    every = run(skewed, Asker(), min_iv_change=0.0, min_forward_change=0.0).surfaces.stats
    looker = Looker()
    kernel = BacktestKernel(
        {"deribit": PLUGIN},
        [DataSource("deribit", skewed, "tardis")],
        [looker],
        surface_settings=SurfaceSettings(min_iv_change=0.002, min_forward_change=0.001),
    )
    looker.service = kernel.surfaces
    trio.run(kernel.run)
    stats = kernel.surfaces.stats
    # The spot's sine moves the chain (its IVs at fixed strikes, its forward) fast mid-swing and
    # hardly at its turns: each look fits or skips, and about half of them fit (11 of 23).
    assert stats.fits + stats.refits_skipped == every.fits
    assert every.fits // 4 < stats.fits < every.fits * 3 // 4
    assert stats.refits_skipped > 0
    assert set(stats.refit_reasons) <= {"first", "iv", "forward", "age"} and stats.refit_reasons["first"] == 1
    checked = 0
    for (now, surface), looked in zip(looker.got, looker.looked, strict=True):
        if surface is None or not looked:
            continue
        # At a look, the surface kept or fitted is within the thresholds of the quotes then (the
        # latest option rows before `now`), plus the fit's own error.
        rows = START_NS + (now - START_NS - NS // 1000) // (2 * NS) * (2 * NS)
        for expiry in (NEAR_NS, FAR_NS):
            assert abs(surface.forward(expiry) / SKEWED.spot(rows) - 1) < 0.001
            for strike in SKEWED.strikes:
                model = SKEWED.iv(strike, expiry, rows)
                assert abs(surface.iv(strike, expiry) - model) < 2e-3 + 0.002, (strike, expiry, now)
        checked += 1
    assert checked > 20


def test_two_backtests_get_the_same_surfaces_at_the_same_instants(skewed: Path) -> None:
    first, second = Asker(), Asker()
    run(skewed, first)
    run(skewed, second)
    assert [n for n, _ in first.got] == [n for n, _ in second.got]
    assert [s and s.report() for _, s in first.got] == [s and s.report() for _, s in second.got]


def test_subscribing_earlier_changes_no_surface(skewed: Path) -> None:
    names = [option_name(e, k, c) for e, k, c in SKEWED.options()]
    late, early = Asker("late"), Asker("early", early=names)
    run(skewed, late)
    run(skewed, early)
    assert [(n, s and s.report()) for n, s in late.got] == [(n, s and s.report()) for n, s in early.got]
    # What subscribing changes: when the option tickers start coming to the strategy.
    assert early.option_tickers[0] < late.option_tickers[0]
    assert len(early.option_tickers) > len(late.option_tickers) > 0


def test_the_first_call_subscribes_the_strategy_to_the_chains_tickers_only(skewed: Path) -> None:
    asker = Asker()
    kernel = run(skewed, asker)
    slot = kernel.slots[0]
    names = {option_name(e, k, c) for e, k, c in SKEWED.options()}
    assert {(v, i, kind) for v, i, kind in slot.keys if i != "BTC-PERPETUAL"} == {
        ("deribit", n, DataKind.TICKER) for n in names
    }
    # Every option ticker from the first call on reached the strategy (18 options x 2 expiries
    # every 2 s), none before it.
    first_ask = asker.got[0][0]
    assert asker.option_tickers and min(asker.option_tickers) > first_ask
    assert len(asker.option_tickers) == len(names) * len(range(2, SKEWED.seconds, 2))


def test_the_configs_surface_table_reaches_the_backtest(skewed: Path, tmp_path: Path) -> None:
    config = tmp_path / "bt.toml"
    config.write_text(
        'mode = "backtest"\n[backtest]\n[[backtest.data]]\nvenue = "deribit"\n'
        f'path = "{skewed}"\nformat = "tardis"\n'
        '[[strategies]]\nname = "g"\nclass = "gamma_scalp"\n'
        "[surface]\nmin_refit_interval_s = 30\nmin_quotes = 6\nmax_iv = 3.5\nmin_expiry_s = 7200\n"
        "min_iv_change = 0.01\nmin_forward_change = 0.002\nmax_refit_interval_s = 90\n",
        encoding="utf-8",
    )
    kernel = build_kernel(load_config(config), event_cache=None)
    assert kernel.surfaces.settings == SurfaceSettings(
        min_refit_interval_s=30.0,
        min_quotes=6,
        max_iv=3.5,
        min_expiry_s=7200.0,
        min_iv_change=0.01,
        min_forward_change=0.002,
        max_refit_interval_s=90.0,
    )
    asker = Asker()
    kernel = run(skewed, asker, min_refit_interval_s=30.0)
    as_of = sorted({s.as_of_ns for _, s in asker.got if s is not None})
    assert all(b - a >= 30 * NS for a, b in itertools.pairwise(as_of)) and len(as_of) >= 3
