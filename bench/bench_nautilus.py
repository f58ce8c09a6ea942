"""tradingd's backtest kernel side by side with NautilusTrader's BacktestEngine, in one process.

    pip install nautilus_trader==1.221.0      # the benchmark's only extra (not a tradingd dependency)
    python bench/bench_nautilus.py [--quotes 500000] [--every 100] [--repeat 2]

Both engines replay the same generated quotes of one perpetual (a random walk on a 0.5 tick,
one quote every 100 ms) into an equivalent trivial strategy: count every quote, and every
`--every` quotes cancel the resting order and place a new limit buy 1% below the bid (it never
fills). Both use zero latency. Reported: quotes per second through each engine's `run` (best of
`--repeat`), and the ratio.

What each engine is handed differs, as it does in use: tradingd replays wire frames (Deribit
`quote.BTC-PERPETUAL` notifications in a recording file: reading, JSON decoding and event
building are inside its time), NautilusTrader takes `QuoteTick` objects built beforehand (their
construction is timed separately, as `nautilus_data_s`, and is not in its figure).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import random
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import trio

from tradingd.engine import MarketEvent, OrderRejected, Strategy, Subscription, Ticker
from tradingd.engine.backtest.kernel import BacktestKernel, BacktestSettings, DataSource
from tradingd.engine.logs.setup import configure_logging
from tradingd.engine.store import RecordingWriter

T0 = 1_795_478_400 * 1_000_000_000  # 2026-11-24T00:00:00Z
STEP = 100_000_000  # ns between quotes


def generate_quotes(n: int, seed: int = 1) -> list[tuple[int, float, float, float, float]]:
    """(ts ns, bid, ask, bid size, ask size): a random walk of the mid on a 0.5 tick."""
    rng = random.Random(seed)
    ticks = 180_000  # 90,000.0
    out = []
    for i in range(n):
        ticks += rng.choice((-1, 0, 0, 1))
        spread = rng.choice((1, 1, 2))
        out.append(
            (
                T0 + i * STEP,
                ticks * 0.5,
                (ticks + spread) * 0.5,
                float(rng.randrange(1, 50) * 10),
                10.0 * rng.randrange(1, 50),
            )
        )
    return out


# -- tradingd -------------------------------------------------------------------------------


class QuoteCounter(Strategy):
    def __init__(self, every: int) -> None:
        super().__init__("counter")
        self.every = every
        self.count = 0
        self.orders = 0
        self.resting: str | None = None

    def required_subscriptions(self) -> list[Subscription]:
        return [Subscription("deribit", "BTC-PERPETUAL", {"ticker"})]

    async def on_event(self, event: MarketEvent) -> None:
        if event.__class__ is not Ticker:
            return
        self.count += 1
        if self.count % self.every or event.bid is None:
            return
        if self.resting is not None:
            with contextlib.suppress(OrderRejected):
                await self.ctx.cancel_order(self.resting)
        price = Decimal(round(event.bid * 0.99 * 2)) / 2
        placed = await self.ctx.buy("deribit", "BTC-PERPETUAL", 10, price=price)
        self.orders += 1
        self.resting = placed.client_order_id


def write_recording(quotes: list[tuple[int, float, float, float, float]], path: Path) -> None:
    instruments = orjson.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "result": [
                {
                    "kind": "future",
                    "instrument_name": "BTC-PERPETUAL",
                    "tick_size": 0.5,
                    "min_trade_amount": 10.0,
                    "contract_size": 10.0,
                    "base_currency": "BTC",
                    "quote_currency": "USD",
                    "settlement_currency": "BTC",
                    "settlement_period": "perpetual",
                    "instrument_type": "reversed",
                    "expiration_timestamp": 32503708800000,
                }
            ],
        }
    )
    prefix = b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"quote.BTC-PERPETUAL","data":'
    with RecordingWriter(path) as w:
        w.write(T0 - 1000, instruments)
        for ts, bid, ask, bid_size, ask_size in quotes:
            data = {
                "timestamp": ts // 1_000_000,
                "instrument_name": "BTC-PERPETUAL",
                "best_bid_price": bid,
                "best_bid_amount": bid_size,
                "best_ask_price": ask,
                "best_ask_amount": ask_size,
            }
            w.write(ts, prefix + orjson.dumps(data) + b"}}")


def run_tradingd(path: Path, every: int) -> tuple[float, int, int]:
    from tradingd.connectors.deribit import PLUGIN

    strategy = QuoteCounter(every)
    kernel = BacktestKernel(
        {"deribit": PLUGIN}, [DataSource("deribit", path)], [strategy], BacktestSettings(latency_ms=0)
    )
    t0 = time.perf_counter()
    trio.run(kernel.run)
    return time.perf_counter() - t0, strategy.count, strategy.orders


# -- NautilusTrader -------------------------------------------------------------------------


def nautilus_available() -> str | None:
    """The installed NautilusTrader version, or None."""
    try:
        import nautilus_trader
    except ImportError:
        return None
    return str(nautilus_trader.__version__)


def _nt(module: str) -> Any:
    return importlib.import_module(f"nautilus_trader.{module}")


def run_nautilus(
    quotes: list[tuple[int, float, float, float, float]], every: int
) -> tuple[float, float, int, int]:
    # Through importlib: NautilusTrader's compiled modules carry no type stubs (and it may not be
    # installed where this file is type-checked).
    engine_mod = _nt("backtest.engine")
    BacktestEngine, BacktestEngineConfig = engine_mod.BacktestEngine, engine_mod.BacktestEngineConfig
    config_mod = _nt("config")
    LoggingConfig = config_mod.LoggingConfig
    StrategyConfig: Any = config_mod.StrategyConfig
    USDT = _nt("model.currencies").USDT
    QuoteTick = _nt("model.data").QuoteTick
    enums = _nt("model.enums")
    AccountType, OmsType, OrderSide = enums.AccountType, enums.OmsType, enums.OrderSide
    ids = _nt("model.identifiers")
    TraderId, Venue = ids.TraderId, ids.Venue
    objects = _nt("model.objects")
    Money, Price, Quantity = objects.Money, objects.Price, objects.Quantity
    TestInstrumentProvider = _nt("test_kit.providers").TestInstrumentProvider
    NTStrategy: Any = _nt("trading.strategy").Strategy

    instrument = TestInstrumentProvider.btcusdt_perp_binance()

    class CounterConfig(StrategyConfig, frozen=True):  # type: ignore[misc, call-arg]
        every: int = 100

    class NTCounter(NTStrategy):  # type: ignore[misc]
        def __init__(self, config: CounterConfig) -> None:
            super().__init__(config)
            self.every = config.every
            self.count = 0
            self.orders = 0

        def on_start(self) -> None:
            self.subscribe_quote_ticks(instrument.id)

        def on_quote_tick(self, tick: Any) -> None:
            self.count += 1
            if self.count % self.every:
                return
            self.cancel_all_orders(instrument.id)
            price = instrument.make_price(round(float(tick.bid_price) * 0.99 * 2) / 2)
            order = self.order_factory.limit(
                instrument_id=instrument.id,
                order_side=OrderSide.BUY,
                quantity=instrument.make_qty(0.01),
                price=price,
            )
            self.submit_order(order)
            self.orders += 1

    t0 = time.perf_counter()
    iid = instrument.id
    ticks = [
        QuoteTick(
            instrument_id=iid,
            bid_price=Price(bid, 1),
            ask_price=Price(ask, 1),
            bid_size=Quantity(bid_size, 3),
            ask_size=Quantity(ask_size, 3),
            ts_event=ts,
            ts_init=ts,
        )
        for ts, bid, ask, bid_size, ask_size in quotes
    ]
    data_s = time.perf_counter() - t0
    engine = BacktestEngine(
        BacktestEngineConfig(trader_id=TraderId("BENCH-001"), logging=LoggingConfig(bypass_logging=True))
    )
    engine.add_venue(
        venue=Venue("BINANCE"),
        oms_type=OmsType.NETTING,
        account_type=AccountType.MARGIN,
        base_currency=USDT,
        starting_balances=[Money(10_000_000, USDT)],
    )
    engine.add_instrument(instrument)
    engine.add_data(ticks)
    strategy = NTCounter(CounterConfig(every=every))
    engine.add_strategy(strategy)
    t0 = time.perf_counter()
    engine.run()
    run_s = time.perf_counter() - t0
    count, orders = strategy.count, strategy.orders
    engine.dispose()
    return run_s, data_s, count, orders


def compare(n: int, every: int = 100, repeat: int = 2) -> dict[str, Any]:
    """Both engines on the same `n` quotes, best of `repeat` each (this process)."""
    quotes = generate_quotes(n)
    out: dict[str, Any] = {"quotes": n, "every": every, "nautilus_version": nautilus_available()}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "quotes.rec"
        write_recording(quotes, path)
        best = min((run_tradingd(path, every) for _ in range(repeat)), key=lambda r: r[0])
    out["tradingd_s"], out["tradingd_seen"], out["tradingd_orders"] = best
    out["tradingd_per_s"] = n / best[0]
    if out["nautilus_version"] is not None:
        nbest = min((run_nautilus(quotes, every) for _ in range(repeat)), key=lambda r: r[0])
        out["nautilus_s"], out["nautilus_data_s"], out["nautilus_seen"], out["nautilus_orders"] = nbest
        out["nautilus_per_s"] = n / nbest[0]
        out["ratio"] = out["tradingd_per_s"] / out["nautilus_per_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quotes", type=int, default=500_000)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    configure_logging("error", "json")
    if nautilus_available() is None:
        print("NautilusTrader is not installed: pip install nautilus_trader==1.221.0 (tradingd runs alone)")
    r = compare(args.quotes, args.every, args.repeat)
    print(
        f"tradingd: {r['quotes']:,} quotes in {r['tradingd_s']:.2f} s = {r['tradingd_per_s']:,.0f} quotes/s "
        f"(strategy saw {r['tradingd_seen']:,}, sent {r['tradingd_orders']:,} orders; wire frames decoded)"
    )
    if "nautilus_s" in r:
        print(
            f"NautilusTrader {r['nautilus_version']}: {r['nautilus_s']:.2f} s"
            f" = {r['nautilus_per_s']:,.0f} quotes/s "
            f"(strategy saw {r['nautilus_seen']:,}, sent {r['nautilus_orders']:,} orders; "
            f"QuoteTicks built beforehand in {r['nautilus_data_s']:.2f} s)"
        )
        print(f"ratio tradingd / NautilusTrader: {r['ratio']:.2f}")


if __name__ == "__main__":
    main()
