"""The Deribit simulator judged by ccxt's REST client (`ccxt.deribit`, synchronous, in a thread):
a scripted session with the demo account (load the markets, read a ticker, a book and the last
trades, the balance; rest an order, find it open, cancel it; take liquidity, find the trade)
whose parsed results must be the simulator's own state. The market stands still (the test steps
it before the session), so every figure can be compared exactly."""

from __future__ import annotations

import functools
from decimal import Decimal
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


def _session(base: str) -> dict[str, Any]:
    import ccxt

    client_id, secret = next(iter(DEFAULT_ACCOUNTS.items()))
    exchange = ccxt.deribit({"apiKey": client_id, "secret": secret, "enableRateLimit": False})
    exchange.urls["api"] = {"rest": f"http://{base}", "ws": f"ws://{base}/ws/api/v2"}
    out: dict[str, Any] = {"markets": exchange.load_markets()}
    symbol = next(s for s, m in out["markets"].items() if m["id"] == _NAME)
    out["symbol"] = symbol
    out["ticker"] = exchange.fetch_ticker(symbol)
    out["book"] = exchange.fetch_order_book(symbol, 10)
    out["trades"] = exchange.fetch_trades(symbol, limit=20)
    out["balance_before"] = exchange.fetch_balance({"code": "BTC"})
    bid, ask = out["book"]["bids"][0][0], out["book"]["asks"][0][0]
    resting = exchange.create_order(symbol, "limit", "buy", 100, float(int(bid * 0.9) // 0.5 * 0.5))
    out["resting"] = resting
    out["open"] = exchange.fetch_open_orders(symbol)
    out["cancelled"] = exchange.cancel_order(resting["id"], symbol)
    out["open_after"] = exchange.fetch_open_orders(symbol)
    out["taken"] = exchange.create_order(symbol, "limit", "buy", 10, ask)
    out["my_trades"] = exchange.fetch_my_trades(symbol)
    out["balance_after"] = exchange.fetch_balance({"code": "BTC"})
    out["my_trades_btc"] = exchange.fetch_my_trades(params={"code": "BTC"})
    out["again"] = exchange.create_order(symbol, "limit", "buy", 10, ask)
    # A page of the account's trades: the oldest, and more to come (REST query strings).
    out["page"] = exchange.private_get_get_user_trades_by_instrument(
        {"instrument_name": _NAME, "count": 1, "sorting": "asc", "start_seq": 0}
    )
    try:
        exchange.private_get_get_user_trades_by_instrument({"instrument_name": "BTC-NOPE"})
    except ccxt.BadRequest as exc:  # -32602 Invalid params, as ccxt maps Deribit's code
        out["refused"] = str(exc)
    return out


async def test_ccxt_rest_session_reads_the_simulators_state(nursery: trio.Nursery) -> None:
    simulator = DeribitSimulator(seed=3, step_s=_STILL)
    for _ in range(100):
        simulator.step()
    binds = await nursery.start(functools.partial(serve, simulator))
    base = binds[0].removeprefix("http://")
    bids, asks = _levels(simulator, _NAME)
    printed = simulator.trades[_NAME][-20:]  # the market's last prints, before the session's own
    with trio.fail_after(20):
        out = await trio.to_thread.run_sync(_session, base)

    markets = out["markets"]
    items = {i["instrument_name"]: i for i in simulator.instrument_items}
    assert sorted(m["id"] for m in markets.values()) == sorted(items)
    for market in markets.values():
        item = items[market["id"]]
        assert market["precision"]["price"] == item["tick_size"]
        assert market["option"] == (item["kind"] == "option")
        if market["option"]:
            assert market["strike"] == item["strike"] and market["expiry"] == item["expiration_timestamp"]

    ticker, last = out["ticker"], simulator.tickers[_NAME]
    assert (ticker["bid"], ticker["ask"]) == (last["best_bid_price"], last["best_ask_price"])
    assert ticker["last"] == last["last_price"] and ticker["info"]["mark_price"] == last["mark_price"]

    book = out["book"]
    assert book["bids"] == bids[:10] and book["asks"] == asks[:10]

    assert [(t["id"], t["price"], t["amount"], t["side"]) for t in out["trades"]] == [
        (p["trade_id"], p["price"], p["amount"], p["direction"]) for p in printed
    ]

    account = simulator.accounts[next(iter(DEFAULT_ACCOUNTS))]
    resting = out["resting"]
    assert resting["status"] == "open" and resting["amount"] == 100 and resting["filled"] == 0
    assert [o["id"] for o in out["open"]] == [resting["id"]]
    assert out["cancelled"]["status"] == "canceled" and out["open_after"] == []

    # A buy at the best ask takes that much of it: one trade at the ask, the account's.
    taken, ask = out["taken"], asks[0][0]
    assert taken["status"] == "closed" and taken["filled"] == 10 and taken["average"] == ask
    (mine,) = out["my_trades"]
    assert mine["order"] == taken["id"] and mine["price"] == ask and mine["amount"] == 10
    assert mine["side"] == "buy" and mine["takerOrMaker"] == "taker"
    assert mine["id"] == account.trades[0]["trade_id"]
    assert [t["id"] for t in out["my_trades_btc"]] == [mine["id"]]
    assert simulator.requests_for("private/get_user_trades_by_instrument") == 3  # ccxt, a page, a refusal
    assert simulator.requests_for("private/get_user_trades_by_currency") == 1
    again = out["again"]
    assert again["status"] == "closed" and again["filled"] == 10
    page = out["page"]["result"]
    assert [t["trade_id"] for t in page["trades"]] == [mine["id"]] and page["has_more"] is True
    assert "instrument_name" in out["refused"]
    fee = Decimal(str(mine["fee"]["cost"]))
    assert mine["fee"]["currency"] == "BTC" and fee > 0
    before, after = out["balance_before"]["BTC"]["total"], out["balance_after"]["BTC"]["total"]
    # The fee is taken from the balance; both travel as JSON floats, so to a float's step at 10
    # (1.8e-15 BTC, far below a satoshi).
    assert before == 10 and abs(Decimal(str(before)) - Decimal(str(after)) - fee) < Decimal("2e-15")
    assert account.positions[_NAME] == 20
