"""The Deribit simulator judged by ccxt's WebSocket client (`ccxt.pro.deribit`, on its own asyncio
loop in a thread): `watch_order_book`, `watch_trades`, `watch_ticker` and `watch_bids_asks`
(`quote.*`) while the test steps the market, then, the market still, what ccxt holds must be
what the simulator holds: the same book level for level, the simulator's prints, its last ticker
and quote. With the demo account, `watch_orders` and `watch_my_trades` see an order taking
liquidity as the simulator recorded it, and `watch_balance` the balance it left."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from tradingd.simulators.deribit.simulator import DEFAULT_ACCOUNTS, DeribitSimulator, serve
from tradingd.simulators.matching import Side

_STILL = 3600.0  # the market moves only when the test steps it
_NAME = "BTC-PERPETUAL"


def _levels(simulator: DeribitSimulator, name: str) -> tuple[list[list[float]], list[list[float]]]:
    """The simulator's public book of `name`, best first, as [price, amount]."""
    book = simulator.books[name]
    return (
        [[float(p), float(a)] for p, a in book.levels(Side.BUY)],
        [[float(p), float(a)] for p, a in book.levels(Side.SELL)],
    )


def _exchange(base: str) -> Any:
    import ccxt.pro

    client_id, secret = next(iter(DEFAULT_ACCOUNTS.items()))
    exchange = ccxt.pro.deribit({"apiKey": client_id, "secret": secret, "enableRateLimit": False})
    exchange.urls["api"] = {"rest": f"http://{base}", "ws": f"ws://{base}/ws/api/v2"}
    return exchange


async def _keep(watch: Callable[[], Awaitable[Any]], sink: list[Any]) -> None:
    while True:
        sink.append(await watch())


def _settled(exchange: Any, symbol: str, target: dict[str, Any]) -> bool:
    """Whether ccxt has taken every frame the still market sent: its book, last trade, ticker."""
    book, trades, ticker = (
        exchange.orderbooks.get(symbol),
        exchange.trades.get(symbol),
        exchange.tickers.get(symbol),
    )
    return (
        book is not None
        and [list(level[:2]) for level in book["bids"]] == target["bids"]
        and [list(level[:2]) for level in book["asks"]] == target["asks"]
        and bool(trades)
        and trades[-1]["id"] == target["trade_id"]
        and ticker is not None
        and ticker["timestamp"] == target["ticker_ts"]
    )


async def _public(
    base: str, ready: threading.Event, still: threading.Event, target: dict[str, Any]
) -> dict[str, Any]:
    exchange = _exchange(base)
    try:
        markets = await exchange.load_markets()
        symbol = next(s for s, m in markets.items() if m["id"] == _NAME)
        got: dict[str, list[Any]] = {"book": [], "trades": [], "ticker": [], "quote": []}
        watchers = [
            asyncio.create_task(_keep(lambda: exchange.watch_order_book(symbol), got["book"])),
            asyncio.create_task(_keep(lambda: exchange.watch_trades(symbol), got["trades"])),
            asyncio.create_task(_keep(lambda: exchange.watch_ticker(symbol), got["ticker"])),
            asyncio.create_task(_keep(lambda: exchange.watch_bids_asks([symbol]), got["quote"])),
        ]
        while not still.is_set():
            if all(got.values()):
                ready.set()
            await asyncio.sleep(0.02)
        for _ in range(250):  # the frames already sent are taken (5 s at most; then compared)
            if _settled(exchange, symbol, target):
                break
            await asyncio.sleep(0.02)
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        book = exchange.orderbooks[symbol]
        return {
            "symbol": symbol,
            "got": got,
            "bids": [list(level[:2]) for level in book["bids"]],  # ccxt keeps [price, amount, …]
            "asks": [list(level[:2]) for level in book["asks"]],
            "trades": list(exchange.trades[symbol]),
            "ticker": exchange.tickers[symbol],
            "quote": exchange.bidsasks[symbol],
        }
    finally:
        await exchange.close()


async def test_ccxt_watches_what_the_simulator_holds(nursery: trio.Nursery) -> None:
    simulator = DeribitSimulator(seed=4, step_s=_STILL)
    for _ in range(100):
        simulator.step()
    binds = await nursery.start(functools.partial(serve, simulator))
    base = binds[0].removeprefix("http://")
    ready, still = threading.Event(), threading.Event()
    out: dict[str, Any] = {}
    target: dict[str, Any] = {}  # what the still market last sent, for the client to wait for

    async def client() -> None:
        out.update(await trio.to_thread.run_sync(lambda: asyncio.run(_public(base, ready, still, target))))

    with trio.fail_after(20):
        async with trio.open_nursery() as inner:
            inner.start_soon(client)
            try:
                steps = 0
                with trio.move_on_after(10):
                    while not ready.is_set() or steps < 40:  # every watch has had data, and more
                        simulator.step()
                        steps += 1
                        await trio.sleep(0.02)
            finally:
                bids, asks = _levels(simulator, _NAME)
                target.update(
                    bids=bids,
                    asks=asks,
                    trade_id=simulator.trades[_NAME][-1]["trade_id"],
                    ticker_ts=simulator.tickers[_NAME]["timestamp"],
                )
                still.set()  # the client's thread ends whatever happened

    assert all(out["got"].values()), {k: len(v) for k, v in out["got"].items()}
    bids, asks = _levels(simulator, _NAME)
    assert out["bids"] == bids and out["asks"] == asks  # level for level, after every change
    # ccxt's trades are the simulator's last prints, in order, ids and all.
    trades = out["trades"]
    printed = simulator.trades[_NAME][-len(trades) :]
    assert [(t["id"], t["price"], t["amount"], t["side"], t["timestamp"]) for t in trades] == [
        (p["trade_id"], p["price"], p["amount"], p["direction"], p["timestamp"]) for p in printed
    ]
    last = simulator.tickers[_NAME]
    ticker = out["ticker"]
    assert (ticker["bid"], ticker["ask"], ticker["last"]) == (
        last["best_bid_price"],
        last["best_ask_price"],
        last["last_price"],
    )
    assert ticker["timestamp"] == last["timestamp"] and ticker["info"]["mark_price"] == last["mark_price"]
    quote = out["quote"]  # quote.*: the book's top now
    assert (quote["bid"], quote["bidVolume"], quote["ask"], quote["askVolume"]) == (
        bids[0][0],
        bids[0][1],
        asks[0][0],
        asks[0][1],
    )


async def _private(base: str) -> dict[str, Any]:
    exchange = _exchange(base)
    try:
        markets = await exchange.load_markets()
        symbol = next(s for s, m in markets.items() if m["id"] == _NAME)
        orders = asyncio.create_task(exchange.watch_orders())
        mine = asyncio.create_task(exchange.watch_my_trades())
        balance = asyncio.create_task(exchange.watch_balance())  # user.portfolio.{currency}
        await asyncio.sleep(0.5)  # both subscriptions answered before the order goes in
        book = await exchange.fetch_order_book(symbol, 1)
        placed = await exchange.create_order(symbol, "limit", "buy", 20, book["asks"][0][0])
        return {
            "placed": placed,
            "ask": book["asks"][0][0],
            "orders": await asyncio.wait_for(orders, 5),
            "my_trades": await asyncio.wait_for(mine, 5),
            "balance": await asyncio.wait_for(balance, 5),
        }
    finally:
        await exchange.close()


async def test_ccxt_watches_the_accounts_orders_and_trades(nursery: trio.Nursery) -> None:
    simulator = DeribitSimulator(seed=4, step_s=_STILL)
    for _ in range(100):
        simulator.step()
    binds = await nursery.start(functools.partial(serve, simulator))
    base = binds[0].removeprefix("http://")
    with trio.fail_after(20):
        out = await trio.to_thread.run_sync(lambda: asyncio.run(_private(base)))
    placed, ask = out["placed"], out["ask"]
    assert placed["status"] == "closed" and placed["filled"] == 20
    account = simulator.accounts[next(iter(DEFAULT_ACCOUNTS))]
    (order,) = [o for o in out["orders"] if o["id"] == placed["id"]]
    assert order["status"] == "closed" and order["filled"] == 20 and order["average"] == ask
    assert order["symbol"] == out["placed"]["symbol"] and order["side"] == "buy"
    # The portfolio the fill changed: the balance less the fee, as the simulator holds it.
    # (ccxt 4.5 files the whole parsed balance under the currency's code: hence the two "BTC".)
    assert out["balance"]["BTC"]["BTC"]["total"] == float(account.balances["BTC"]) < 10
    recorded = [t for t in account.trades if t["order_id"] == placed["id"]]
    assert [(t["id"], t["price"], t["amount"], t["order"]) for t in out["my_trades"]] == [
        (t["trade_id"], t["price"], t["amount"], t["order_id"]) for t in recorded
    ]
