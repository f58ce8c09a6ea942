"""Expiries and perpetual funding, live against each venue's simulator (the venue delivers an
expired instrument and pays funding; the engine books what the venue reports), in a backtest from
Tardis' `derivative_ticker` funding fields, and once only across a restart."""

from __future__ import annotations

import functools
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import structlog
import trio

from tests.support.backtests import BuyOnce
from tests.support.live_support import Probe, until
from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.engine import BookUpdate, OrderState, StatusKind, Subscription, Ticker
from tradingd.engine.runtime.live import LiveEngine
from tradingd.engine.store.journal import OrderJournal
from tradingd.simulators.deribit.simulator import DEFAULT_ACCOUNTS, DeribitSimulator, serve

PERP = "BTC-PERPETUAL"
OPTION = "BTC-11DEC26-90000-C"
CREDS = {
    "DERIBIT_CLIENT_ID": next(iter(DEFAULT_ACCOUNTS)),
    "DERIBIT_CLIENT_SECRET": next(iter(DEFAULT_ACCOUNTS.values())),
}


class Clock:
    """The engine's wall clock, which a test can move past an expiry."""

    def __init__(self) -> None:
        self.offset = 0

    def __call__(self) -> int:
        return time.time_ns() + self.offset


async def deribit_sim(nursery: trio.Nursery) -> tuple[DeribitSimulator, str]:
    simulator = DeribitSimulator(seed=5, step_s=0.05, heartbeat_scale=0.1)
    binds = await nursery.start(functools.partial(serve, simulator))
    return simulator, binds[0].removeprefix("http://")


async def deribit_engine(
    nursery: trio.Nursery,
    base: str,
    probe: Probe,
    clock: Clock,
    journal: OrderJournal | None = None,
    mode: str = "live",
) -> LiveEngine:
    engine = LiveEngine(
        [probe],
        {"deribit": DeribitSettings(url=f"ws://{base}/ws/api/v2", rest_url=f"http://{base}")},
        mode=mode,  # type: ignore[arg-type]
        environ=CREDS,
        paper_latency_s=0.0,
        clock=clock,
        journal=journal,
    )
    engine.settle_interval_s = 3600.0  # the tests run each round themselves (`settle_once`)
    await nursery.start(engine.run)
    with trio.fail_after(10):
        await engine.ready.wait()
    return engine


async def test_a_reconnection_between_the_venues_delivery_and_ours_leaves_the_delivery_to_book(
    nursery: trio.Nursery,
) -> None:
    """The venue closes an expired option at its delivery; we book the delivery at our next
    settlement round. A reconnection in between reconciles positions: an instrument past its
    expiry is not compared (the venue's 0 is the delivery we have yet to book, issue 16 review),
    so nothing is alerted or changed, and the round books the delivery's PnL."""
    simulator, base = await deribit_sim(nursery)
    clock = Clock()
    probe = Probe("p", [Subscription("deribit", OPTION), Subscription("deribit", PERP, {"ticker"})])
    engine = await deribit_engine(nursery, base, probe, clock)
    engine.position_recheck_s = 0.05
    await until(lambda: probe.of(Ticker, OPTION) and probe.of(Ticker, PERP) and probe.of(BookUpdate, OPTION))
    bought = await probe.ctx.buy("deribit", OPTION, 1)
    assert bought.status is OrderState.FILLED
    await until(lambda: probe.ctx.position("deribit", OPTION) == 1)
    ledger = engine.flow.ledger("p")
    inst = engine.registry.require("deribit", OPTION)
    assert inst.expiry_ns is not None
    clock.offset = inst.expiry_ns - time.time_ns() + 1_000_000_000
    simulator.deliver(OPTION, 100_000.0)  # the venue delivers: its position is closed
    before = ledger.realized_usd
    with structlog.testing.capture_logs() as logs:
        done = engine.position_checks
        simulator.drop_all()  # a reconnection before our settlement round
        await until(lambda: engine.position_checks > done, within=20)
    assert not [e for e in logs if e["event"] == "position.mismatch"]
    assert probe.ctx.position("deribit", OPTION) == 1 and not engine.mismatched
    await engine.settle_once()
    assert probe.ctx.position("deribit", OPTION) == 0
    assert ledger.realized_usd != before  # the delivery's PnL, booked


@pytest.mark.parametrize("mode", ["live", "paper"])
async def test_deribit_an_expired_option_settles_at_the_venues_delivery_price(
    nursery: trio.Nursery, mode: str
) -> None:
    """In paper mode too: the delivery record is public."""
    simulator, base = await deribit_sim(nursery)
    clock = Clock()
    probe = Probe("p", [Subscription("deribit", OPTION), Subscription("deribit", PERP, {"ticker"})])
    engine = await deribit_engine(nursery, base, probe, clock, mode=mode)
    await until(lambda: probe.of(Ticker, OPTION) and probe.of(Ticker, PERP) and probe.of(BookUpdate, OPTION))
    bought = await probe.ctx.buy("deribit", OPTION, 1)
    assert bought.status is OrderState.FILLED
    await until(lambda: probe.ctx.position("deribit", OPTION) == 1)
    await engine.settle_once()  # not expired yet: nothing happens
    assert probe.ctx.position("deribit", OPTION) == 1 and not engine.awaiting_delivery

    inst = engine.registry.get("deribit", OPTION)
    assert inst is not None and inst.expiry_ns is not None
    clock.offset = inst.expiry_ns - time.time_ns() + 1_000_000_000  # a second past the expiry
    # Expired, but the venue has not published the delivery yet: held, flagged, and valued at
    # its last mark (not at cost), which no later ticker moves (the simulator still sends one).
    last_mark = engine.market_state.mark("deribit", OPTION)
    await engine.settle_once()
    assert probe.ctx.position("deribit", OPTION) == 1
    assert ("deribit", OPTION) in engine.awaiting_delivery
    n = len(probe.of(Ticker, OPTION))
    await until(lambda: len(probe.of(Ticker, OPTION)) > n)
    assert last_mark is not None and engine.market_state.mark("deribit", OPTION) == last_mark

    price = simulator.deliver(OPTION, 100_000.0)
    assert price == 0.1  # (100,000 - 90,000) / 100,000 BTC
    ledger = engine.flow.ledger("p")
    before = float(ledger.realized_usd)
    entry_usd = float(ledger.positions[("deribit", OPTION)].avg)
    await engine.settle_once()
    assert probe.ctx.position("deribit", OPTION) == 0
    assert not engine.awaiting_delivery
    # Closed at 0.1 BTC converted at the index of the moment: what the venue delivered.
    rate = engine.market_state.usd_rate("deribit", "BTC")
    assert rate is not None
    assert abs((float(ledger.realized_usd) - before) - (0.1 * rate - entry_usd)) < 1e-6 * rate
    expired = await until(lambda: probe.statuses(StatusKind.EXPIRED))
    assert expired[-1].instrument == OPTION and expired[-1].data["delivery_price"] == "0.1"
    await engine.settle_once()  # once only
    assert probe.ctx.position("deribit", OPTION) == 0
    assert len(probe.statuses(StatusKind.EXPIRED)) == 1


async def test_deribit_perpetual_funding_is_booked_once_across_a_restart(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    simulator, base = await deribit_sim(nursery)
    clock = Clock()
    path = tmp_path / "journal.sqlite"
    probe = Probe("p", [Subscription("deribit", PERP, {"ticker"})])
    with trio.CancelScope() as first:
        async with trio.open_nursery() as inner:
            engine = await deribit_engine(inner, base, probe, clock, OrderJournal(path))
            await until(lambda: probe.of(Ticker, PERP))
            assert (await probe.ctx.buy("deribit", PERP, 100)).status is OrderState.FILLED
            await until(lambda: probe.ctx.position("deribit", PERP) == 100)
            paid = simulator.pay_funding(PERP, 0.0002)
            (funding,) = paid.values()
            assert funding < 0  # a long pays a positive rate
            ledger = engine.flow.ledger("p")
            before = float(ledger.realized_usd)
            await engine.settle_once()
            rate = engine.market_state.usd_rate("deribit", "BTC")
            assert rate is not None
            assert abs((float(ledger.realized_usd) - before) - funding * rate) < 1e-9 * rate
            booked = ledger.realized_usd
            await engine.settle_once()  # asked again: not booked twice
            assert ledger.realized_usd == booked
            first.cancel()
    rows = [e for e in OrderJournal(path).ledger() if e.kind == "funding"]
    assert [(r.strategy, r.instrument, r.price) for r in rows] == [("p", PERP, Decimal(repr(funding)))]

    # Restarted on the same journal: the funding is restored, and the venue's report of the
    # same payment is recognised, not booked again.
    probe2 = Probe("p", [Subscription("deribit", PERP, {"ticker"})])
    engine2 = await deribit_engine(nursery, base, probe2, clock, OrderJournal(path))
    restored = engine2.flow.ledger("p").realized_usd
    assert restored != 0.0
    await engine2.settle_once()
    assert engine2.flow.ledger("p").realized_usd == restored
    assert len([e for e in OrderJournal(path).ledger() if e.kind == "funding"]) == 1


async def test_funding_is_split_between_strategies_by_their_share(nursery: trio.Nursery) -> None:
    simulator, base = await deribit_sim(nursery)
    clock = Clock()
    a = Probe("a", [Subscription("deribit", PERP, {"ticker"})])
    b = Probe("b", [Subscription("deribit", PERP, {"ticker"})])
    engine = LiveEngine(
        [a, b],
        {"deribit": DeribitSettings(url=f"ws://{base}/ws/api/v2", rest_url=f"http://{base}")},
        mode="live",
        environ=CREDS,
        clock=clock,
    )
    engine.settle_interval_s = 3600.0
    await nursery.start(engine.run)
    await until(lambda: a.of(Ticker, PERP))
    await a.ctx.buy("deribit", PERP, 300)
    await b.ctx.buy("deribit", PERP, 100)
    await until(lambda: a.ctx.position("deribit", PERP) == 300 and b.ctx.position("deribit", PERP) == 100)
    # The day's settlement a session later: both held all through its session (Deribit's
    # settlement funding is the session's, split by the positions held over it).
    later_ms = time.time_ns() // 1_000_000 + 25 * 3600 * 1000
    (funding,) = simulator.pay_funding(PERP, -0.0004, ts_ms=later_ms).values()
    assert funding > 0  # a long receives a negative rate
    share_a = float(engine.flow.ledger("a").realized_usd)
    share_b = float(engine.flow.ledger("b").realized_usd)
    await engine.settle_once()
    got_a = float(engine.flow.ledger("a").realized_usd) - share_a
    got_b = float(engine.flow.ledger("b").realized_usd) - share_b
    assert got_a > 0 and abs(got_a - 3 * got_b) < 1e-9 * got_a


# -- Derive ------------------------------------------------------------------------------------
DERIVE_PERP = "ETH-PERP"
DERIVE_OPTION = "BTC-20261211-90000-C"


async def derive_engine(nursery: trio.Nursery, probe: Probe, clock: Clock) -> tuple[Any, LiveEngine]:
    from tests.support.derive_live import CREDS as DERIVE_CREDS
    from tradingd.connectors.derive.settings import DeriveSettings
    from tradingd.simulators.derive.simulator import DeriveSimulator
    from tradingd.simulators.derive.simulator import serve as serve_derive

    simulator = DeriveSimulator(seed=5, step_s=0.05, settle_after_s=0.2)
    binds = await nursery.start(functools.partial(serve_derive, simulator))
    base = binds[0].removeprefix("http://")
    engine = LiveEngine(
        [probe],
        {"derive": DeriveSettings(url=f"ws://{base}/ws", rest_url=f"http://{base}")},
        mode="live",
        environ=DERIVE_CREDS,
        paper_latency_s=0.0,
        clock=clock,
    )
    engine.settle_interval_s = 3600.0
    await nursery.start(engine.run)
    with trio.fail_after(10):
        await engine.ready.wait()
    return simulator, engine


async def test_derive_an_expired_option_settles_at_the_venues_settlement_price(nursery: trio.Nursery) -> None:
    clock = Clock()
    probe = Probe("p", [Subscription("derive", DERIVE_OPTION), Subscription("derive", DERIVE_PERP)])
    simulator, engine = await derive_engine(nursery, probe, clock)
    await until(lambda: probe.of(Ticker, DERIVE_OPTION))
    bought = await probe.ctx.buy("derive", DERIVE_OPTION, Decimal("0.5"))
    assert bought.status is OrderState.FILLED
    await until(lambda: probe.ctx.position("derive", DERIVE_OPTION) == Decimal("0.5"))
    inst = engine.registry.get("derive", DERIVE_OPTION)
    assert inst is not None and inst.expiry_ns is not None
    clock.offset = inst.expiry_ns - time.time_ns() + 1_000_000_000
    await engine.settle_once()  # the venue has not settled it yet
    assert probe.ctx.position("derive", DERIVE_OPTION) == Decimal("0.5")
    assert ("derive", DERIVE_OPTION) in engine.awaiting_delivery
    assert engine.market_state.mark("derive", DERIVE_OPTION) is not None  # its last: not at cost

    simulator.deliver(DERIVE_OPTION, Decimal("95500"))
    ledger = engine.flow.ledger("p")
    before = float(ledger.realized_usd)
    entry_usd = float(ledger.positions[("derive", DERIVE_OPTION)].avg)
    await engine.settle_once()
    assert probe.ctx.position("derive", DERIVE_OPTION) == 0 and not engine.awaiting_delivery
    # A call struck at 90,000 settled at 95,500: 5,500 USDC a contract.
    assert abs((float(ledger.realized_usd) - before) - 0.5 * (5500 - entry_usd)) < 1e-6
    expired = await until(lambda: probe.statuses(StatusKind.EXPIRED))
    assert expired[-1].data["delivery_price"] == "5500"


async def test_derive_perpetual_funding_is_booked_from_the_funding_history(nursery: trio.Nursery) -> None:
    clock = Clock()
    probe = Probe("p", [Subscription("derive", DERIVE_PERP)])
    simulator, engine = await derive_engine(nursery, probe, clock)
    await until(lambda: probe.of(Ticker, DERIVE_PERP))
    assert (await probe.ctx.sell("derive", DERIVE_PERP, Decimal("0.3"))).status is OrderState.FILLED
    await until(lambda: probe.ctx.position("derive", DERIVE_PERP) == Decimal("-0.3"))
    # Both payments after the trade's millisecond, never at it: a Derive record at the trade's
    # time is the funding the trade realized on the position before it (flat here, none of
    # ours: tests/runtime/test_funding_timing.py, 5.), and the wall clock's millisecond of a
    # payment made right after the fill was the trade's in one run in four.
    (trade_ms,) = [t["timestamp"] for acct in simulator.accounts.values() for t in acct.trades]
    (first,) = simulator.pay_funding(DERIVE_PERP, Decimal("0.0001"), ts_ms=trade_ms + 1).values()
    (second,) = simulator.pay_funding(DERIVE_PERP, Decimal("-0.00005"), ts_ms=trade_ms + 2).values()
    assert first > 0 > second  # a short receives a positive rate, pays a negative one
    ledger = engine.flow.ledger("p")
    before = ledger.realized_usd
    await engine.settle_once()
    assert abs(float(ledger.realized_usd - before) - float(first + second)) < 1e-9
    await engine.settle_once()
    assert abs(float(ledger.realized_usd - before) - float(first + second)) < 1e-9  # once each


# -- backtest ----------------------------------------------------------------------------------
FUNDING_DATA = Path(__file__).resolve().parent.parent / "fixtures" / "tardis" / "funding"


def test_a_backtest_books_funding_from_tardis_derivative_ticker_funding_fields() -> None:
    """Tardis' `funding_timestamp` is the next funding event's time and `funding_rate` its rate:
    the fixture's events at +10 s (rate 0.0002, the last given for it) and +20 s (0.00005)
    pass while 1,000 USD of BTC-PERPETUAL is held; +30 s never passes. The inverse perpetual
    pays `rate x 1,000 / mark` BTC each time (long, positive rate: paid), here at mark (the
    book's mid, 90,000) and index 90,000: 0.2 and 0.05 USD."""
    from tradingd.connectors.deribit import PLUGIN
    from tradingd.engine.backtest.kernel import BacktestKernel, BacktestSettings, DataSource

    kernel = BacktestKernel(
        {"deribit": PLUGIN}, [DataSource("deribit", FUNDING_DATA, "tardis")], [BuyOnce()], BacktestSettings()
    )
    result = trio.run(kernel.run).strategies["holder"]
    assert result.positions == {f"deribit:{PERP}": "1000"}
    assert abs(float(result.realized_pnl) - (-0.2 - 0.05)) < 1e-9


# -- the order flow alone ------------------------------------------------------------------------
def test_funding_waits_for_a_usd_rate_and_is_booked_once() -> None:
    """Never booked at an unknown rate: a payment in BTC before any BTC index is left for later
    (None); once the index is known it is booked at it, exactly, and only once."""
    from tests.support.helpers import PERP as PERP_DEF
    from tests.support.helpers import registry, ticker
    from tradingd.engine import Fill, Liquidity, Side
    from tradingd.engine.model import MarketState
    from tradingd.engine.model.settlement import FundingPayment
    from tradingd.engine.runtime import OrderFlow

    reg = registry()
    market = MarketState(reg)
    flow = OrderFlow(reg, market, lambda _: None)
    held = Fill(
        venue="deribit",
        instrument=PERP,
        ts_exchange=None,
        ts_local=1,
        order_id="o",
        trade_id="t",
        side=Side.SELL,
        price=Decimal(90_000),
        size=Decimal(500),
        fee=Decimal(0),
        fee_currency="BTC",
        liquidity=Liquidity.MAKER,
    )
    flow.book("s", held, PERP_DEF, (1.0, 90_000.0, 90_000.0))
    payment = FundingPayment("deribit", PERP, f"{PERP}:5", 5, Decimal("0.00001234"), "BTC", Decimal(-500))
    assert flow.funding(payment) is None  # no BTC index yet
    assert flow.ledger("s").realized_usd == 0.0
    market.on_ticker(ticker(PERP, index=91_000.0, mark=91_000.0))
    assert flow.funding(payment) == {"s": Decimal("0.00001234") * Decimal("91000.0")}
    assert flow.funding(payment) == {}  # the same payment again: not booked twice
    assert abs(float(flow.ledger("s").realized_usd) - 0.00001234 * 91_000) < 1e-12


def test_a_payment_the_journal_knows_is_booked_for_no_strategy_after_a_restart(tmp_path: Path) -> None:
    """Booked whole, once: after a restart the same payment reported again is not booked, not
    even to a strategy that holds the perpetual now and had no share then."""
    from tests.support.helpers import PERP as PERP_DEF
    from tests.support.helpers import registry, ticker
    from tradingd.engine import Fill, Liquidity, Side
    from tradingd.engine.model import MarketState
    from tradingd.engine.model.settlement import FundingPayment
    from tradingd.engine.runtime import OrderFlow

    def flow_on(journal: OrderJournal) -> OrderFlow:
        reg = registry()
        market = MarketState(reg)
        market.on_ticker(ticker(PERP, index=90_000.0, mark=90_000.0))
        flow = OrderFlow(reg, market, lambda _: None)
        flow.restore(journal, now_ns=10)
        return flow

    def hold(flow: OrderFlow, strategy: str, size: int) -> None:
        held = Fill(
            venue="deribit",
            instrument=PERP,
            ts_exchange=None,
            ts_local=1,
            order_id="o",
            trade_id=f"t-{strategy}",
            side=Side.BUY,
            price=Decimal(90_000),
            size=Decimal(size),
            fee=Decimal(0),
            fee_currency="BTC",
            liquidity=Liquidity.MAKER,
        )
        flow.book(strategy, held, PERP_DEF, (1.0, 90_000.0, 90_000.0))

    payment = FundingPayment("deribit", PERP, f"{PERP}:7", 7, Decimal("-0.00002"), "BTC")
    path = tmp_path / "j.sqlite"
    first = flow_on(OrderJournal(path))
    hold(first, "a", 100)
    booked = first.funding(payment)
    assert booked is not None and set(booked) == {"a"}
    second = flow_on(OrderJournal(path))
    assert second.ledger("a").realized_usd == first.ledger("a").realized_usd  # restored
    hold(second, "b", 300)  # not held when the payment was made
    assert second.funding(payment) == {}
    assert second.ledger("b").realized_usd == 0.0
    assert [e.strategy for e in OrderJournal(path).ledger() if e.kind == "funding"] == ["a"]
