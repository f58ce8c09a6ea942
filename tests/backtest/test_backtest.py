"""The backtest kernel: latency, parked strategies, the fill model through the whole path,
expiry, strategy faults, and determinism on the generated sample."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio

from tests.support import deribit_frames as F
from tests.support.backtests import BuyEachToken, Scripted, run
from tradingd.config import load_config
from tradingd.connectors.deribit import PLUGIN
from tradingd.engine import (
    BookUpdate,
    Fill,
    MarketEvent,
    OrderRejected,
    OrderState,
    OrderUpdate,
    Status,
    StatusKind,
    Strategy,
    StrategyContext,
    StrategyError,
    Subscription,
    Ticker,
    TimeInForce,
)
from tradingd.engine.backtest.kernel import BacktestKernel, BacktestSettings, DataSource
from tradingd.engine.backtest.report import report_dict
from tradingd.simulators.deribit import SIMULATOR as DERIBIT_SIM

MS = 1_000_000
T0 = (F.T0_MS + 1) * MS  # the first line's receive time


def book_frames() -> list[tuple[int, bytes]]:
    return [
        (0, F.instruments()),
        (1, F.ticker(F.PERP, 1, bid=89999.5, ask=90000.0, mark=90000.0, index=90000.0)),
        (2, F.snapshot(F.OPTION, 2, 10, [(0.049, 3.0), (0.048, 5.0)], [(0.05, 2.0), (0.051, 4.0)])),
    ]


def once(action: Callable[[StrategyContext], Coroutine[Any, Any, Any]], store: list[Any]) -> Any:
    """A script that runs `action` on the first option ticker and stores its answer (or error)."""

    async def script(ctx: StrategyContext, ev: MarketEvent) -> None:
        if isinstance(ev, Ticker) and ev.instrument == F.OPTION and not store:
            sent = ctx.now_ns()
            try:
                answer = await action(ctx)
            except OrderRejected as exc:
                store.append(("rejected", ctx.now_ns() - sent, exc))
            else:
                store.append(("answer", ctx.now_ns() - sent, answer))

    return script


def test_latency_decides_what_the_order_meets(tmp_path: Path) -> None:
    frames = [
        *book_frames(),
        (1000, F.ticker(F.OPTION, 1000, bid=0.049, ask=0.05, mark=0.0495, index=90000.0)),
        # 10 ms later the 0.05 offer is gone.
        (1010, F.change(F.OPTION, 1010, 11, [], [["delete", 0.05, 0.0]])),
        (5000, F.ticker(F.PERP, 5000, bid=89999.5, ask=90000.0, mark=90000.0, index=90000.0)),
    ]
    path = F.write(tmp_path / "lat.rec", frames)
    results = {}
    for latency in (5, 20):
        store: list[Any] = []
        s = Scripted(
            "s",
            once(
                lambda ctx: ctx.buy("deribit", F.OPTION, "1", price="0.05", time_in_force=TimeInForce.IOC),
                store,
            ),
            [Subscription("deribit", F.OPTION, {"ticker"})],
        )
        run(path, s, latency_ms=latency)
        results[latency] = store[0]
    kind, waited, answer = results[5]
    assert kind == "answer" and answer.status is OrderState.FILLED  # arrived before the offer left
    assert waited == 10 * MS  # 5 ms there, 5 ms back
    kind, waited, answer = results[20]
    assert answer.status is OrderState.CANCELLED and answer.filled_size == 0  # arrived after: nothing at 0.05
    assert waited == 40 * MS


def test_a_parked_strategy_gets_the_events_afterwards_conflated(tmp_path: Path) -> None:
    frames = [*book_frames()]
    for i in range(10):  # tickers every 2 ms while the order travels (20 ms each way)
        frames.append(
            (
                1000 + 2 * i,
                F.ticker(F.OPTION, 1000 + 2 * i, bid=0.049, ask=0.05, mark=0.0495 + i * 1e-4, index=90000.0),
            )
        )
    frames.append((2000, F.ticker(F.PERP, 2000, bid=89999.5, ask=90000.0, mark=90000.0, index=90000.0)))
    path = F.write(tmp_path / "park.rec", frames)
    store: list[Any] = []
    s = Scripted(
        "s",
        once(lambda ctx: ctx.buy("deribit", F.OPTION, "1", price="0.05"), store),
        [Subscription("deribit", F.OPTION, {"ticker"})],
    )
    result = run(path, s, latency_ms=20)
    tickers = [e for e in s.seen if isinstance(e, Ticker)]
    private = [e for e in s.seen if isinstance(e, Fill | OrderUpdate)]
    # The first ticker triggered the order; the nine that came while it was in flight were
    # conflated into the newest one, delivered once the strategy was free again, in arrival order
    # with the order's events (accepted, fill, filled) that came after it.
    assert len(tickers) == 2
    assert tickers[-1].mark == pytest.approx(0.0504)
    assert result.strategies["s"].conflated == 8
    assert [type(e).__name__ for e in private] == ["OrderUpdate", "Fill", "OrderUpdate"]
    assert [e.ts_local for e in s.seen] == sorted(e.ts_local for e in s.seen)


def test_resting_order_fills_as_maker_on_a_trade_and_is_booked(tmp_path: Path) -> None:
    frames = [
        *book_frames(),
        (1000, F.ticker(F.OPTION, 1000, bid=0.049, ask=0.05, mark=0.0495, index=90000.0)),
        (3000, F.trade(F.OPTION, 3000, 0.0495, 0.4, "sell", "T1")),  # someone sells into our bid
        (4000, F.ticker(F.OPTION, 4000, bid=0.049, ask=0.05, mark=0.06, index=90000.0)),
        (60_000, F.ticker(F.PERP, 60_000, bid=89999.5, ask=90000.0, mark=90000.0, index=90000.0)),
    ]
    path = F.write(tmp_path / "rest.rec", frames)
    store: list[Any] = []
    s = Scripted(
        "s",
        once(lambda ctx: ctx.buy("deribit", F.OPTION, "1", price="0.0495"), store),
        [Subscription("deribit", F.OPTION, {"ticker"})],
    )
    result = run(path, s)
    assert store[0][2].status is OrderState.OPEN
    fills = [e for e in s.seen if isinstance(e, Fill)]
    assert len(fills) == 1
    f = fills[0]
    assert (f.price, f.size, f.liquidity.value, f.fee) == (
        Decimal("0.0495"),
        Decimal("0.4"),
        "maker",
        Decimal("0.00012"),
    )
    r = result.strategies["s"]
    assert (r.orders, r.fills) == (1, 1)
    assert r.fees == Decimal("0.00012") * 90000  # exact: money is Decimal
    # Marked at 0.06 BTC with the index at 90000: 0.4 x (0.06 - 0.0495) x 90000.
    assert r.unrealized_pnl == Decimal("0.4") * (Decimal("0.06") - Decimal("0.0495")) * 90000
    assert r.positions == {"deribit:" + F.OPTION: "0.4"}


def test_pre_trade_rejection_is_immediate_and_venue_rejection_takes_the_round_trip(tmp_path: Path) -> None:
    frames = [
        *book_frames(),
        (1000, F.ticker(F.OPTION, 1000, bid=0.049, ask=0.05, mark=0.0495, index=90000.0)),
    ]
    path = F.write(tmp_path / "rej.rec", frames)
    store: list[Any] = []
    s = Scripted(
        "s",
        once(lambda ctx: ctx.buy("deribit", F.OPTION, "1", price="0.0503"), store),
        [Subscription("deribit", F.OPTION)],
    )
    run(path, s)
    assert store[0][0] == "rejected" and store[0][1] == 0
    assert "tick size 0.0005" in store[0][2].reason
    store2: list[Any] = []
    s2 = Scripted(
        "s",
        once(lambda ctx: ctx.sell("deribit", F.OPTION, "1", price="0.049", post_only=True), store2),
        [Subscription("deribit", F.OPTION)],
    )
    result = run(path, s2)
    assert store2[0][0] == "rejected" and store2[0][1] == 40 * MS
    assert store2[0][2].code == "post_only_reject"
    assert result.strategies["s"].rejected == 1


def test_sleep_faults_and_what_a_backtest_cannot_simulate(tmp_path: Path) -> None:
    frames = [*book_frames()]
    frames += [
        (1000 + i * 100, F.ticker(F.OPTION, 1000 + i * 100, bid=0.049, ask=0.05, mark=0.0495, index=90000.0))
        for i in range(5)
    ]
    path = F.write(tmp_path / "faults.rec", frames)
    times: list[int] = []

    async def script(ctx: StrategyContext, ev: MarketEvent) -> None:
        if not isinstance(ev, Ticker):
            return
        if len(times) == 0:
            before = ctx.now_ns()
            await ctx.sleep(0.25)
            times.append(ctx.now_ns() - before)
        elif len(times) == 1:
            times.append(1)
            raise RuntimeError("a bug in the strategy")
        elif len(times) == 2:
            times.append(2)
            await trio.sleep(1)  # not the context: the kernel cannot simulate it

    s = Scripted("s", script, [Subscription("deribit", F.OPTION, {"ticker"})])
    result = run(path, s)
    assert times[0] == 250 * MS
    assert result.strategies["s"].errors == 2  # the exception and the trio await, both counted
    assert (
        len([e for e in s.seen if isinstance(e, Ticker)]) == 4
    )  # it kept receiving events (1 conflated while asleep)


@pytest.mark.parametrize("compiled", [True, False])
def test_options_settle_at_expiry_exactly_and_pay_the_delivery_fee(tmp_path: Path, compiled: bool) -> None:
    expiry_ms = F.T0_MS + 120_000
    frames = [
        (0, F.instruments(expiry_ms=expiry_ms)),
        (1, F.ticker(F.PERP, 1, bid=89999.5, ask=90000.0, mark=90000.0, index=90000.0)),
        (2, F.snapshot(F.OPTION, 2, 10, [(0.049, 3.0)], [(0.05, 2.0)])),
        (1000, F.ticker(F.OPTION, 1000, bid=0.049, ask=0.05, mark=0.0495, index=90000.0)),
        (119_000, F.ticker(F.PERP, 119_000, bid=91999.5, ask=92000.0, mark=92000.0, index=92000.0)),
        (200_000, F.ticker(F.PERP, 200_000, bid=91999.5, ask=92000.0, mark=92000.0, index=92000.0)),
    ]
    path = F.write(tmp_path / "exp.rec", frames)
    store: list[Any] = []
    s = Scripted(
        "s",
        once(lambda ctx: ctx.buy("deribit", F.OPTION, "1", price="0.05"), store),
        [Subscription("deribit", F.OPTION, {"ticker"})],
    )
    kernel = BacktestKernel({"deribit": PLUGIN}, [DataSource("deribit", path)], [s], compiled=compiled)
    r = trio.run(kernel.run).strategies["s"]
    # Bought 1 at 0.05 BTC (4500 USD at 90000); settles at (92000-90000)/92000 BTC = 2000 USD,
    # exactly: the delivery price is Decimal, not a float's 2000.000000000000064.
    assert r.positions == {}
    assert r.realized_pnl == Decimal(2000 - 4500)
    # Fees: the fill's 0.0003 BTC at 90000, and the delivery's, half a taker's (0.00015 BTC a
    # contract, below 12.5% of the option's value) at 92000 (Deribit's fee pages).
    assert r.fees == Decimal("0.0003") * 90000 + Decimal("0.00015") * 92000
    assert any(isinstance(e, Status) and e.status is StatusKind.EXPIRED for e in s.seen)


@pytest.mark.parametrize("compiled", [True, False])
def test_a_future_held_at_its_expiry_is_delivered_at_the_index_for_half_a_takers_fee(
    tmp_path: Path, compiled: bool
) -> None:
    # A dated inverse future (10 USD contracts, settled in BTC) bought for 1,000 USD at 90,000
    # and delivered at the 92,000 index. Its delivery was free.
    expiry_ms = F.T0_MS + 120_000
    future = "BTC-25DEC26"
    listing = orjson.loads(F.instruments(expiry_ms=expiry_ms))
    perp = next(i for i in listing["result"] if i["instrument_name"] == F.PERP)
    listing["result"].append(
        {**perp, "instrument_name": future, "expiration_timestamp": expiry_ms, "settlement_period": "month"}
    )
    frames = [
        (0, orjson.dumps(listing)),
        (1, F.ticker(F.PERP, 1, bid=89999.5, ask=90000.0, mark=90000.0, index=90000.0)),
        (2, F.snapshot(future, 2, 10, [(89990.0, 50000.0)], [(90000.0, 50000.0)])),
        (119_000, F.ticker(F.PERP, 119_000, bid=91999.5, ask=92000.0, mark=92000.0, index=92000.0)),
        (200_000, F.ticker(F.PERP, 200_000, bid=91999.5, ask=92000.0, mark=92000.0, index=92000.0)),
    ]
    path = F.write(tmp_path / "future.rec", frames)
    bought: list[Any] = []

    async def script(ctx: StrategyContext, ev: MarketEvent) -> None:
        if isinstance(ev, BookUpdate) and not bought:
            bought.append(await ctx.buy("deribit", future, "1000"))

    s = Scripted("s", script, [Subscription("deribit", future, {"book"})])
    kernel = BacktestKernel({"deribit": PLUGIN}, [DataSource("deribit", path)], [s], compiled=compiled)
    r = trio.run(kernel.run).strategies["s"]
    assert bought[0].status is OrderState.FILLED
    assert r.positions == {}
    eighths = Decimal("1e-8")
    taker = (Decimal("0.0005") * 1000 / 90000).quantize(eighths)  # the fill's, BTC
    delivery = (Decimal("0.00025") * 1000 / 92000).quantize(eighths)  # half a taker's, at delivery
    assert r.fees == taker * 90000 + delivery * 92000
    # (1000 / 90000 - 1000 / 92000) BTC at 92000.
    assert r.realized_pnl == pytest.approx(Decimal(1000) * 92000 / 90000 - 1000, abs=Decimal("1e-20"))


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("when", ["after_the_expiry", "in_flight_across_it"])
def test_an_order_reaching_an_expired_option_is_refused_and_opens_no_position(
    tmp_path: Path, when: str, compiled: bool
) -> None:
    # The option's last book (ask 0.05 x 2) stays in memory after its expiry: an order reaching
    # the venue then filled against it, a position the venue never opened. Sent after the
    # expiry was settled, it was held to the end, marked at a dead option's last mark; sent
    # 10 ms before the expiry (20 ms latency), it filled, then was settled at intrinsic.
    expiry_ms = F.T0_MS + 120_000
    frames = [
        (0, F.instruments(expiry_ms=expiry_ms)),
        (1, F.ticker(F.PERP, 1, bid=89999.5, ask=90000.0, mark=90000.0, index=90000.0)),
        (2, F.snapshot(F.OPTION, 2, 10, [(0.049, 3.0)], [(0.05, 2.0)])),
        (1000, F.ticker(F.OPTION, 1000, bid=0.049, ask=0.05, mark=0.0495, index=90000.0)),
        (119_990, F.ticker(F.PERP, 119_990, bid=91999.5, ask=92000.0, mark=92000.0, index=92000.0)),
        (121_000, F.ticker(F.PERP, 121_000, bid=91999.5, ask=92000.0, mark=92000.0, index=92000.0)),
        (200_000, F.ticker(F.PERP, 200_000, bid=91999.5, ask=92000.0, mark=92000.0, index=92000.0)),
    ]
    path = F.write(tmp_path / "exp.rec", frames)
    store: list[Any] = []

    async def script(ctx: StrategyContext, ev: MarketEvent) -> None:
        if when == "after_the_expiry":
            due = isinstance(ev, Status) and ev.status is StatusKind.EXPIRED
        else:
            due = isinstance(ev, Ticker) and ev.instrument == F.PERP and ev.ts_exchange == 119_990 * MS
        if due and not store:
            try:
                store.append(await ctx.buy("deribit", F.OPTION, "1", price="0.05"))
            except OrderRejected as exc:
                store.append(exc)

    s = Scripted(
        "s",
        script,
        [Subscription("deribit", F.OPTION, {"ticker"}), Subscription("deribit", F.PERP, {"ticker"})],
    )
    kernel = BacktestKernel({"deribit": PLUGIN}, [DataSource("deribit", path)], [s], compiled=compiled)
    r = trio.run(kernel.run).strategies["s"]
    [answer] = store
    assert isinstance(answer, OrderRejected) and answer.code == "instrument_expired"
    assert (r.fills, r.positions) == (0, {})
    assert r.fees == r.realized_pnl == r.unrealized_pnl == 0
    assert r.rejected == 1


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("book_moves_ms", [119_990, 120_500])
def test_a_resting_option_bid_is_settled_when_filled_before_the_expiry_and_never_filled_after(
    tmp_path: Path, book_moves_ms: int, compiled: bool
) -> None:
    # A bid rests at 0.046; the asks move onto it 10 ms before the expiry (its fill's report
    # then reaches the engine 10 ms after it), or 500 ms after it, the first frame past it.
    # Before: the expiry, seen on the next frame (5 ms after it), settled the position before
    # the fill was booked, so it was never settled: held to the end. After: the dead option's
    # book filled it, before its orders were ended, again a position no settlement closed.
    expiry_ms = F.T0_MS + 120_000
    frames = [
        (0, F.instruments(expiry_ms=expiry_ms)),
        (1, F.ticker(F.PERP, 1, bid=89999.5, ask=90000.0, mark=90000.0, index=90000.0)),
        (2, F.snapshot(F.OPTION, 2, 10, [(0.040, 3.0)], [(0.05, 2.0)])),
        (1000, F.ticker(F.OPTION, 1000, bid=0.04, ask=0.05, mark=0.045, index=90000.0)),
        (book_moves_ms, F.change(F.OPTION, book_moves_ms, 11, [], [["new", 0.045, 2.0]])),
        (200_000, F.ticker(F.PERP, 200_000, bid=91999.5, ask=92000.0, mark=92000.0, index=92000.0)),
    ]
    if book_moves_ms < 120_000:  # the first frame after the expiry, 5 ms after it
        frames.insert(
            -1, (120_005, F.ticker(F.PERP, 120_005, bid=91999.5, ask=92000.0, mark=92000.0, index=92000.0))
        )
    path = F.write(tmp_path / "rest.rec", frames)
    answers: list[Any] = []
    seen: list[tuple[str, Decimal]] = []

    async def script(ctx: StrategyContext, ev: MarketEvent) -> None:
        if isinstance(ev, Ticker) and ev.instrument == F.OPTION and not answers:
            answers.append(await ctx.buy("deribit", F.OPTION, "1", price="0.046"))
        elif isinstance(ev, Status) and ev.status is StatusKind.EXPIRED:
            seen.append((ev.instrument, ctx.positions().positions.get(("deribit", F.OPTION), Decimal(0))))

    s = Scripted("s", script, [Subscription("deribit", F.OPTION, {"ticker"})])
    kernel = BacktestKernel({"deribit": PLUGIN}, [DataSource("deribit", path)], [s], compiled=compiled)
    r = trio.run(kernel.run).strategies["s"]
    assert r.positions == {}
    assert seen == [(F.OPTION, Decimal(0))]  # settled by the time the strategy hears of it
    if book_moves_ms < 120_000:
        # Bought 1 at 0.046 BTC, booked at 92,000 (the index when its report arrived): 4,232
        # USD; delivered (92,000 - 90,000) / 92,000 BTC = 2,000 USD.
        assert r.fills == 1
        assert r.realized_pnl == pytest.approx(Decimal(2000 - 4232), abs=Decimal("1e-9"))
    else:
        assert r.fills == 0 and r.realized_pnl == 0


@pytest.mark.parametrize("compiled", [True, False])
def test_an_order_partly_filled_before_the_expiry_reports_its_fill_before_its_expiry(
    tmp_path: Path, compiled: bool
) -> None:
    # A bid of 3 rests at 0.046; 2 are filled 10 ms before the expiry, that fill's report
    # reaching the engine 10 ms after it. The rest of the order expires, seen on the frame 5 ms
    # after the expiry. Its final report (EXPIRED, filled 2) was applied then, at once, and
    # overtook the fill in flight: the strategy heard EXPIRED before the Fill it counts.
    expiry_ms = F.T0_MS + 120_000
    frames = [
        (0, F.instruments(expiry_ms=expiry_ms)),
        (1, F.ticker(F.PERP, 1, bid=89999.5, ask=90000.0, mark=90000.0, index=90000.0)),
        (2, F.snapshot(F.OPTION, 2, 10, [(0.040, 3.0)], [(0.05, 2.0)])),
        (1000, F.ticker(F.OPTION, 1000, bid=0.04, ask=0.05, mark=0.045, index=90000.0)),
        (119_990, F.change(F.OPTION, 119_990, 11, [], [["new", 0.045, 2.0]])),
        (120_005, F.ticker(F.PERP, 120_005, bid=91999.5, ask=92000.0, mark=92000.0, index=92000.0)),
        (200_000, F.ticker(F.PERP, 200_000, bid=91999.5, ask=92000.0, mark=92000.0, index=92000.0)),
    ]
    path = F.write(tmp_path / "partial.rec", frames)
    answers: list[Any] = []

    async def script(ctx: StrategyContext, ev: MarketEvent) -> None:
        if isinstance(ev, Ticker) and ev.instrument == F.OPTION and not answers:
            answers.append(await ctx.buy("deribit", F.OPTION, "3", price="0.046"))

    s = Scripted("s", script, [Subscription("deribit", F.OPTION, {"ticker"})])
    kernel = BacktestKernel({"deribit": PLUGIN}, [DataSource("deribit", path)], [s], compiled=compiled)
    r = trio.run(kernel.run).strategies["s"]
    private = [e for e in s.seen if isinstance(e, Fill | OrderUpdate)]
    heard = [
        ("fill", e.size) if isinstance(e, Fill) else (e.status.value, e.filled_size)
        for e in private
        if not (isinstance(e, OrderUpdate) and e.status is OrderState.OPEN)
    ]
    assert heard[0] == ("fill", Decimal(2))
    assert heard[-1] == (OrderState.EXPIRED.value, Decimal(2))
    assert [h for h in heard if h[0] == "fill"] == [("fill", Decimal(2))]
    assert r.fills == 1 and r.positions == {}


def test_an_option_held_at_an_expiry_with_no_index_price_is_said_not_settled(tmp_path: Path) -> None:
    # A USDC option (its USD value needs no index) on data with books only: no index, so no
    # delivery price at its expiry. It was left held without a word, in the positions and the
    # equity as if it still traded.
    expiry_ms = F.T0_MS + 120_000
    listing = orjson.loads(F.instruments(expiry_ms=expiry_ms))
    option = "BTC_USDC-25DEC26-90000-C"
    for item in listing["result"]:
        if item["kind"] == "option":
            item.update(
                instrument_name=option,
                quote_currency="USDC",
                settlement_currency="USDC",
                instrument_type="linear",
                tick_size=5.0,
                tick_size_steps=[],
                min_trade_amount=0.01,
                contract_size=0.01,
                maker_commission=0.0001,  # Deribit's USDC option rates (the coin options': 0.0003)
                taker_commission=0.0005,
            )
    frames = [
        (0, orjson.dumps(listing)),
        (2, F.snapshot(option, 2, 10, [(4400.0, 3.0)], [(4500.0, 2.0)])),
        (200_000, F.snapshot(option, 200_000, 11, [(4400.0, 3.0)], [(4500.0, 2.0)])),
    ]
    path = F.write(tmp_path / "usdc.rec", frames)
    bought: list[Any] = []

    async def script(ctx: StrategyContext, ev: MarketEvent) -> None:
        if not bought:
            bought.append(await ctx.buy("deribit", option, "1", price="4500"))

    s = Scripted("s", script, [Subscription("deribit", option)])
    result = run(path, s)
    r = result.strategies["s"]
    assert bought[0].status is OrderState.FILLED
    assert r.positions == {f"deribit:{option}": "1"}  # never settled at a guessed price
    assert r.fees > 0  # 0.0005 (taker) x the strike a contract (no underlying price known): not free
    [warning] = [w for w in result.warnings if option in w]
    assert "no BTC index price" in warning and "not settled" in warning and "held by s" in warning


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("known", ["perpetual_book", "own_ticker", "nothing"])
def test_a_usdc_options_fee_before_any_index_is_of_the_underlyings_price_not_the_strike(
    tmp_path: Path, known: str, compiled: bool
) -> None:
    # A USDC call struck at 60,000, BTC at 90,000, bought before any index is in the data. Its
    # fee (0.0005 x the underlying a contract) was of the strike: 33% too little. Now of the
    # option's own ticker's underlying price, else the perpetual's mid (its book here); the
    # strike only with neither.
    listing = orjson.loads(F.instruments())
    option = "BTC_USDC-25DEC26-60000-C"
    for item in listing["result"]:
        if item["kind"] == "option":
            item.update(
                instrument_name=option,
                strike=60000.0,
                quote_currency="USDC",
                settlement_currency="USDC",
                instrument_type="linear",
                tick_size=5.0,
                tick_size_steps=[],
                min_trade_amount=0.01,
                contract_size=0.01,
                maker_commission=0.0001,  # Deribit's USDC option rates (the coin options': 0.0003)
                taker_commission=0.0005,
            )
    frames = [(0, orjson.dumps(listing))]
    if known == "perpetual_book":
        frames.append((1, F.snapshot(F.PERP, 1, 5, [(89999.5, 100.0)], [(90000.5, 100.0)])))
    elif known == "own_ticker":
        note = orjson.loads(F.ticker(option, 1, bid=30000.0, ask=30500.0, mark=30250.0, index=90000.0))
        note["params"]["data"].update(instrument_name=option, index_price=None, underlying_price=90000.0)
        frames.append((1, orjson.dumps(note)))
    frames += [
        (2, F.snapshot(option, 2, 10, [(30000.0, 3.0)], [(30500.0, 2.0)])),
        (200_000, F.snapshot(option, 200_000, 11, [(30000.0, 3.0)], [(30500.0, 2.0)])),
    ]
    path = F.write(tmp_path / "usdc.rec", frames)
    bought: list[Any] = []

    async def script(ctx: StrategyContext, ev: MarketEvent) -> None:
        if isinstance(ev, BookUpdate) and not bought:
            bought.append(await ctx.buy("deribit", option, "0.1", price="30500"))

    s = Scripted("s", script, [Subscription("deribit", option, {"book"})])
    kernel = BacktestKernel({"deribit": PLUGIN}, [DataSource("deribit", path)], [s], compiled=compiled)
    r = trio.run(kernel.run).strategies["s"]
    assert bought[0].status is OrderState.FILLED
    # 0.1 BTC (a linear option's amount is in the coin) x 0.0005 x 90,000 = 4.5 USDC; of the
    # strike, 3.0. (The cap, 12.5% of 0.1 x 30,500, is far above.)
    assert r.fees == (Decimal("3.0") if known == "nothing" else Decimal("4.5"))


def _funding_ticker(ms: int, next_funding_ms: int, index: float | None) -> bytes:
    """A replayed perpetual ticker naming its next funding event (Tardis' `funding_timestamp`)."""
    note = orjson.loads(F.ticker(F.PERP, ms, bid=89999.5, ask=90000.0, mark=90000.0, index=90000.0))
    note["params"]["data"].update(
        index_price=index, current_funding=0.0001, funding_timestamp=next_funding_ms
    )
    return orjson.dumps(note)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("index", [None, 90000.0])
def test_funding_not_booked_for_want_of_a_usd_rate_is_a_counted_warning(
    tmp_path: Path, compiled: bool, index: float | None
) -> None:
    # A perpetual held across two funding events with no index in the data: no USD rate, so
    # nothing booked (never at an unknown rate). It was only a log line: the report showed a
    # PnL without its funding as if complete.
    frames = [
        (0, F.instruments()),
        (1, F.snapshot(F.PERP, 1, 10, [(89999.5, 50000.0)], [(90000.0, 50000.0)])),
        (1000, _funding_ticker(1000, 2000, index)),
        (3000, _funding_ticker(3000, 10_000, index)),
        (11_000, _funding_ticker(11_000, 20_000, index)),
    ]
    path = F.write(tmp_path / "funding.rec", frames)
    bought: list[Any] = []

    async def script(ctx: StrategyContext, ev: MarketEvent) -> None:
        if isinstance(ev, BookUpdate) and not bought:
            bought.append(await ctx.buy("deribit", F.PERP, "1000"))

    s = Scripted("s", script, [Subscription("deribit", F.PERP, {"book", "ticker"})])
    kernel = BacktestKernel({"deribit": PLUGIN}, [DataSource("deribit", path)], [s], compiled=compiled)
    result = trio.run(kernel.run)
    assert bought[0].status is OrderState.FILLED
    unpriced = [w for w in result.warnings if "funding" in w]
    if index is None:
        assert result.strategies["s"].funding == 0
        assert unpriced == [
            f"s: 2 funding event(s) of deribit:{F.PERP} not booked, no BTC USD rate in the data then:"
            " its PnL lacks that funding"
        ]
    else:  # the same events with an index: booked (a long pays a positive rate), nothing said
        assert result.strategies["s"].funding < 0
        assert unpriced == []


@pytest.mark.slow
def test_the_example_backtest_is_deterministic_and_both_strategies_trade(tmp_path: Path) -> None:
    loaded = load_config(Path(__file__).parent.parent.parent / "config" / "backtest-deribit.toml")
    path = tmp_path / "sample.rec.zst"
    DERIBIT_SIM.generate_sample(path, {"seed": 3, "hours": 0.5})

    def once_more() -> dict[str, Any]:
        kernel = BacktestKernel({"deribit": PLUGIN}, [DataSource("deribit", path)], loaded.build_strategies())
        report = report_dict(trio.run(kernel.run))
        report.pop("duration_s")
        return report

    first, second = once_more(), once_more()
    assert first == second
    assert first["events"] > 70_000 and first["malformed_frames"] == 0
    for name in ("gamma_btc", "momentum_eth"):
        s = first["strategies"][name]
        assert s["orders"] > 0 and s["fills"] > 0 and s["fees"] > 0
        assert s["errors"] == 0
        assert s["max_drawdown"] >= 0
        assert s["sharpe"] is not None


def test_strategies_discover_markets_through_the_catalog(tmp_path: Path) -> None:
    """`ctx.catalog(venue)`: run-time discovery, then subscriptions that follow it."""
    from tradingd.connectors.polymarket.catalog import PolymarketCatalog, write_cache
    from tradingd.simulators.polymarket.catalog_generator import market_lines

    cache = tmp_path / "polymarket_markets.jsonl"
    write_cache(cache, market_lines(300, seed=4))
    catalog = PolymarketCatalog.from_cache(cache)
    found: dict[str, Any] = {}

    class Discoverer(Strategy):
        async def on_start(self) -> None:
            markets = self.ctx.catalog("polymarket").find_by_slug_regex(
                r"^[a-z]+-updown-", tradable_only=True
            )
            found["markets"] = markets
            self.ctx.subscribe(s for m in markets for s in m.subscriptions())
            try:
                self.ctx.catalog("deribit")
            except StrategyError as exc:
                found["error"] = str(exc)

        async def on_event(self, event: MarketEvent) -> None:
            return None

    path = F.write(tmp_path / "d.rec", book_frames())
    kernel = BacktestKernel(
        {"deribit": PLUGIN},
        [DataSource("deribit", path)],
        [Discoverer("d")],
        catalogs={"polymarket": catalog},
    )
    trio.run(kernel.run)
    markets = found["markets"]
    assert markets and all("-updown-" in m.slug and m.active and not m.closed for m in markets)
    merged = kernel.router.merged("polymarket")
    assert {inst for inst, _ in merged} == {t.token_id for m in markets for t in m.tokens}
    assert "no market catalog for 'deribit'" in found["error"]


def test_prediction_market_positions_settle_at_resolution(tmp_path: Path) -> None:
    from tradingd.connectors.polymarket import PLUGIN as POLYMARKET
    from tradingd.simulators.polymarket import SIMULATOR as POLYMARKET_SIM

    path = tmp_path / "pm.rec.zst"
    POLYMARKET_SIM.generate_sample(path, {"hours": 0.2, "seed": 3})
    resolved: list[Status] = []

    class BuyEverything(BuyEachToken):
        """Records the markets' resolutions too."""

        async def on_event(self, event: MarketEvent) -> None:
            if isinstance(event, Status) and event.status is StatusKind.MARKET_RESOLVED:
                resolved.append(event)
            await super().on_event(event)

    strategy = BuyEverything()
    kernel = BacktestKernel({"polymarket": POLYMARKET}, [DataSource("polymarket", path)], [strategy])
    result = trio.run(kernel.run)
    ledger = kernel.flow.ledger("s")
    assert resolved, "the sample's market did not resolve"
    settled = {r.instrument: float(r.data["payout"]) for r in resolved}
    assert sorted(settled.values()) == [0.0, 1.0]  # a binary market: one winner
    for token in settled:
        assert ledger.position("polymarket", token) == 0  # closed at the payout
    held = [p for p in ledger if p.qty != 0]
    assert held and all(p.instrument.symbol not in settled for p in held)  # the others still held
    assert result.strategies["s"].errors == 0
    assert result.strategies["s"].fills >= len(settled)
    assert result.strategies["s"].realized_pnl != 0


def test_polymarket_shares_not_held_are_never_sold_in_a_backtest(tmp_path: Path) -> None:
    from tradingd.connectors.polymarket import PLUGIN as POLYMARKET
    from tradingd.simulators.polymarket import SIMULATOR as POLYMARKET_SIM

    path = tmp_path / "pm.rec.zst"
    POLYMARKET_SIM.generate_sample(path, {"hours": 0.2, "seed": 3})

    class ShortSeller(BuyEachToken):
        """Sells the minimum of three tokens it never bought, at their best bid: each was
        filled, a short position in a share (the venue refuses the sell)."""

        def __init__(self) -> None:
            super().__init__("s")
            self.answers: list[int | str | None] = []

        async def on_event(self, event: MarketEvent) -> None:
            if not (isinstance(event, BookUpdate) and event.best_bid is not None):
                return
            if event.instrument in self.bought or len(self.bought) == 3:
                return
            self.bought.add(event.instrument)
            try:
                await self.ctx.sell(
                    "polymarket", event.instrument, "5", price=str(event.best_bid), time_in_force="ioc"
                )
            except OrderRejected as exc:
                self.answers.append(exc.code)
            else:
                self.answers.append("filled")

    strategy = ShortSeller()
    kernel = BacktestKernel({"polymarket": POLYMARKET}, [DataSource("polymarket", path)], [strategy])
    r = trio.run(kernel.run).strategies["s"]
    assert strategy.answers == ["not_enough_balance"] * 3
    assert (r.fills, r.positions) == (0, {})
    assert r.fees == r.realized_pnl == r.unrealized_pnl == 0


class _Resolutions(Strategy):
    """Subscribes to every Polymarket token; notes each resolution, and each token's last book
    with an ask before it."""

    def __init__(self) -> None:
        super().__init__("w")
        self.resolved: dict[str, tuple[int, float]] = {}
        self.last_book: dict[str, tuple[int, float]] = {}
        self.last_bid: dict[str, tuple[int, float, float]] = {}  # (ts, best bid, its size)
        self.first_ask: dict[str, tuple[int, float]] = {}

    async def on_start(self) -> None:
        self.ctx.subscribe(Subscription("polymarket", i.symbol) for i in self.ctx.instruments("polymarket"))

    async def on_event(self, event: MarketEvent) -> None:
        if isinstance(event, Status) and event.status is StatusKind.MARKET_RESOLVED:
            self.resolved[event.instrument] = (self.ctx.now_ns(), float(event.data["payout"]))
        elif isinstance(event, BookUpdate) and event.instrument not in self.resolved and event.best_ask:
            self.last_book[event.instrument] = (self.ctx.now_ns(), event.best_ask)
            self.first_ask.setdefault(event.instrument, (self.ctx.now_ns(), event.best_ask))
        if isinstance(event, BookUpdate) and event.instrument not in self.resolved and event.best_bid:
            self.last_bid[event.instrument] = (self.ctx.now_ns(), event.best_bid, event.best_bid_size or 0.0)


@pytest.mark.parametrize("compiled", [True, False])
def test_a_polymarket_fill_whose_report_crosses_the_resolution_is_paid_out(
    tmp_path: Path, compiled: bool
) -> None:
    # Each token of the resolving market is bought (ioc, at its ask) on its last book before
    # the resolution; the fill's report takes longer than what is left to the resolution. It
    # was booked after the payout settled the market, and held to the end, never paid out.
    from tradingd.connectors.polymarket import PLUGIN as POLYMARKET
    from tradingd.simulators.polymarket import SIMULATOR as POLYMARKET_SIM

    path = tmp_path / "pm.rec.zst"
    POLYMARKET_SIM.generate_sample(path, {"hours": 0.2, "seed": 3})
    watch = _Resolutions()
    trio.run(BacktestKernel({"polymarket": POLYMARKET}, [DataSource("polymarket", path)], [watch]).run)
    assert sorted(p for _, p in watch.resolved.values()) == [0.0, 1.0]
    at = {token: watch.last_book[token] for token in watch.resolved}
    gap_ms = max(watch.resolved[t][0] - at[t][0] for t in at) / 1e6
    bought: list[Any] = []

    async def script(ctx: StrategyContext, ev: MarketEvent) -> None:
        if isinstance(ev, BookUpdate) and at[ev.instrument][0] == ctx.now_ns():
            ask = at[ev.instrument][1]
            bought.append(
                await ctx.buy("polymarket", ev.instrument, "5", price=str(ask), time_in_force="ioc")
            )

    # One strategy per token: each waits for its own answer while the other's book comes.
    tokens = sorted(at)
    strategies = [Scripted(f"s{i}", script, [Subscription("polymarket", t)]) for i, t in enumerate(tokens)]
    settings = BacktestSettings(latency_ms=1, response_latency_ms=gap_ms + 100)
    kernel = BacktestKernel(
        {"polymarket": POLYMARKET}, [DataSource("polymarket", path)], strategies, settings, compiled=compiled
    )
    result = trio.run(kernel.run)
    assert [u.status for u in bought] == [OrderState.FILLED] * 2
    for i, token in enumerate(tokens):
        r = result.strategies[f"s{i}"]
        assert r.positions == {}  # paid out
        payout, ask = Decimal(repr(watch.resolved[token][1])), Decimal(repr(at[token][1]))
        assert r.realized_pnl == 5 * (payout - ask) and r.unrealized_pnl == 0


@pytest.mark.parametrize("compiled", [True, False])
def test_a_polymarket_sale_whose_report_crosses_the_resolution_is_one_round_trip_never_short(
    tmp_path: Path, compiled: bool
) -> None:
    # 5 shares of each token are bought on its first book, and sold (ioc, at the bid) on its
    # last book before the resolution; the sale's report takes longer than what is left to the
    # resolution. The market was settled at once (the 5 held paid out: a round trip), then the
    # sale booked on the flat position (-5 shares, a second trip), settled again later: two
    # round trips for one, and a short position in a share for a response latency.
    from tradingd.connectors.polymarket import PLUGIN as POLYMARKET
    from tradingd.simulators.polymarket import SIMULATOR as POLYMARKET_SIM

    path = tmp_path / "pm.rec.zst"
    POLYMARKET_SIM.generate_sample(path, {"hours": 0.2, "seed": 3})
    watch = _Resolutions()
    trio.run(BacktestKernel({"polymarket": POLYMARKET}, [DataSource("polymarket", path)], [watch]).run)
    tokens = sorted(watch.resolved)
    assert len(tokens) == 2 and all(watch.last_bid[t][2] >= 5 for t in tokens)
    gap_ms = max(watch.resolved[t][0] - watch.last_bid[t][0] for t in tokens) / 1e6
    answers: list[Any] = []
    held: list[Decimal] = []

    async def script(ctx: StrategyContext, ev: MarketEvent) -> None:
        token = ev.instrument
        held.append(ctx.positions().positions.get(("polymarket", token), Decimal(0)))
        if not isinstance(ev, BookUpdate):
            return
        if watch.first_ask[token][0] == ctx.now_ns():
            price = str(watch.first_ask[token][1])
            answers.append(await ctx.buy("polymarket", token, "5", price=price, time_in_force="ioc"))
        elif watch.last_bid[token][0] == ctx.now_ns():
            price = str(watch.last_bid[token][1])
            answers.append(await ctx.sell("polymarket", token, "5", price=price, time_in_force="ioc"))

    strategies = [Scripted(f"s{i}", script, [Subscription("polymarket", t)]) for i, t in enumerate(tokens)]
    settings = BacktestSettings(latency_ms=1, response_latency_ms=gap_ms + 100)
    kernel = BacktestKernel(
        {"polymarket": POLYMARKET}, [DataSource("polymarket", path)], strategies, settings, compiled=compiled
    )
    result = trio.run(kernel.run)
    assert [u.status for u in answers] == [OrderState.FILLED] * 4
    assert min(held) == 0  # never short
    for i, token in enumerate(tokens):
        r = result.strategies[f"s{i}"]
        assert r.positions == {} and r.fills == 2
        ask, bid = Decimal(repr(watch.first_ask[token][1])), Decimal(repr(watch.last_bid[token][1]))
        assert r.realized_pnl == 5 * (bid - ask)  # sold, not paid out
        assert r.round_trips == 1 and r.win_rate == (1.0 if bid > ask else 0.0)
