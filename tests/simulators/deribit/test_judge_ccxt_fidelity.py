"""The Deribit simulator's fidelity, proven by a client nobody here wrote: ccxt (its REST client
and its ccxt.pro WebSocket client) loads markets, watches a ticker, an order book and trades, and
places, edits and cancels an order against it, without errors."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import trio

from tradingd.simulators.deribit.simulator import DEFAULT_ACCOUNTS, DeribitSimulator, serve


async def _scenario(base: str) -> dict[str, Any]:
    import ccxt.pro as ccxtpro

    client_id, secret = next(iter(DEFAULT_ACCOUNTS.items()))
    exchange = ccxtpro.deribit({"apiKey": client_id, "secret": secret, "enableRateLimit": False})
    exchange.urls["api"] = {"rest": f"http://{base}", "ws": f"ws://{base}/ws/api/v2"}
    out: dict[str, Any] = {}
    try:
        markets = await exchange.load_markets()
        out["markets"] = len(markets)
        symbol = next(s for s, m in markets.items() if m["id"] == "BTC-PERPETUAL")
        out["symbol"] = symbol
        out["ticker"] = await asyncio.wait_for(exchange.watch_ticker(symbol), 10)
        out["book"] = await asyncio.wait_for(exchange.watch_order_book(symbol), 10)
        out["trades"] = await asyncio.wait_for(exchange.watch_trades(symbol), 20)
        out["rest_book"] = await exchange.fetch_order_book(symbol)
        bid = out["book"]["bids"][0][0]
        price = float(int(bid * 0.9) // 0.5 * 0.5)
        order = await exchange.create_order(symbol, "limit", "buy", 100, price)
        out["created"] = order
        out["edited"] = await exchange.edit_order(order["id"], symbol, "limit", "buy", 200, price - 10)
        out["open"] = await exchange.fetch_open_orders(symbol)
        out["cancelled"] = await exchange.cancel_order(order["id"], symbol)
        out["balance"] = await exchange.fetch_balance({"currency": "BTC"})
    finally:
        await exchange.close()
    return out


async def test_ccxt_speaks_to_the_simulator(nursery: trio.Nursery) -> None:
    simulator = DeribitSimulator(seed=9, step_s=0.05)
    binds = await nursery.start(functools.partial(serve, simulator))
    base = binds[0].removeprefix("http://")
    with trio.fail_after(60):
        out = await trio.to_thread.run_sync(lambda: asyncio.run(_scenario(base)))
    assert out["markets"] == len(simulator.instrument_items) == 34
    ticker = out["ticker"]
    assert ticker["symbol"] == out["symbol"] and ticker["bid"] < ticker["ask"]
    book = out["book"]
    assert book["bids"] and book["asks"] and book["bids"][0][0] < book["asks"][0][0]
    assert out["trades"] and all(t["side"] in ("buy", "sell") and t["amount"] > 0 for t in out["trades"])
    assert out["rest_book"]["bids"]
    created = out["created"]
    assert created["status"] == "open" and created["id"] in simulator.orders
    assert out["edited"]["price"] == created["price"] - 10 and out["edited"]["amount"] == 200
    assert [o["id"] for o in out["open"]] == [created["id"]]
    assert out["cancelled"]["status"] == "canceled"
    assert simulator.orders[created["id"]].state == "cancelled"
    assert out["balance"]["BTC"]["total"] > 0
