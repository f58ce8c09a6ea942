"""The Deribit simulator judged by cryptofeed (2.4.1), a streaming client nobody here wrote: its
`Deribit` feed, pointed at the simulator served on 127.0.0.1, loads the symbols over REST
(`public/get_instruments` per currency), authenticates (`client_signature`, scope `session:…`:
cryptofeed takes books, trades and tickers on authenticated `raw` channels, through
`private/subscribe`), subscribes `quote.*` publicly, and its callbacks (`L2_BOOK`, `TRADES`,
`TICKER`, `L1_BOOK`, and `FUNDING` / `OPEN_INTEREST`, read from the tickers) must receive what
the simulator holds: the same book, the simulator's prints, its last ticker and quote, with
nothing logged at warning or error by cryptofeed (a broken `change_id` chain, an unknown
channel, a refused subscription would be).

cryptofeed runs in a thread on its own asyncio loop; the test steps the simulator's market, then
lets it go still and compares."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from decimal import Decimal
from typing import Any

import trio

from tests.support.judges import WarningRecords, cryptofeed_deribit
from tradingd.simulators.deribit.simulator import DEFAULT_ACCOUNTS, DeribitSimulator, serve
from tradingd.simulators.matching import Side

_STILL = 3600.0  # the market moves only when the test steps it
_INSTRUMENTS = ("BTC-PERPETUAL", "ETH-PERPETUAL")


def _book(simulator: DeribitSimulator, name: str) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
    """The simulator's public book of `name` (price -> amount per side)."""
    book = simulator.books[name]
    return dict(book.levels(Side.BUY)), dict(book.levels(Side.SELL))


def _cryptofeed_session(
    base: str, names: tuple[str, ...], ready: threading.Event, still: threading.Event, target: dict[str, Any]
) -> dict[str, Any]:
    from cryptofeed import FeedHandler
    from cryptofeed.defines import (
        FUNDING,
        L1_BOOK,
        L2_BOOK,
        OPEN_INTEREST,
        TICKER,
        TRADES,
    )
    from cryptofeed.symbols import Symbols

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    records = WarningRecords()
    logging.getLogger("feedhandler").addHandler(records)
    feed_class = cryptofeed_deribit(base)
    Symbols.clear()  # symbols are cached by exchange id across feeds: load the simulator's
    client_id, secret = next(iter(DEFAULT_ACCOUNTS.items()))
    config = {
        "log": {"disabled": True},
        "uvloop": False,
        "deribit": {"key_id": client_id, "key_secret": secret},
    }
    # FUNDING and OPEN_INTEREST are cryptofeed's readings of the same ticker frames.
    got: dict[str, list[Any]] = {
        L2_BOOK: [],
        TRADES: [],
        TICKER: [],
        L1_BOOK: [],
        FUNDING: [],
        OPEN_INTEREST: [],
    }

    def keep(channel: str) -> Any:
        async def callback(item: Any, receipt: float) -> None:
            got[channel].append(item)
            # Every callback has had data of every instrument; prints and quotes (sent when the
            # top moves) of the busy perpetuals: the option's quote comes when its market leaves.
            seen = {channel: {mapping[i.symbol] for i in items} for channel, items in got.items()}
            busy = set(_INSTRUMENTS)
            if (
                seen[L2_BOOK] >= set(names)
                and seen[TICKER] >= set(names)
                and seen[TRADES] >= busy <= seen[L1_BOOK]
            ):
                ready.set()

        return callback

    handler = FeedHandler(config=config)
    try:
        mapping = feed_class.symbol_mapping()
        symbols = [std for std, name in mapping.items() if name in names]
        handler.add_feed(
            feed_class(
                config=config,
                symbols=symbols,
                channels=list(got),
                callbacks={channel: keep(channel) for channel in got},
                cross_check=True,
            )
        )
        handler.run(start_loop=False, install_signal_handlers=False)

        def settled() -> bool:
            """Whether cryptofeed has taken every frame the still market sent (per instrument:
            its book, its last print, its last ticker)."""
            for name in names:
                books = [b for b in got[L2_BOOK] if mapping[b.symbol] == name]
                trades = [t.id for t in got[TRADES] if mapping[t.symbol] == name]
                tickers = [t for t in got[TICKER] if mapping[t.symbol] == name]
                if not (books and tickers):
                    return False
                book = books[-1].book
                if (book.bids.to_dict(), book.asks.to_dict()) != target["books"][name]:
                    return False
                if target["trade_id"][name] is not None and trades[-1:] != [target["trade_id"][name]]:
                    return False
                if tickers[-1].timestamp != target["ticker_ts"][name] / 1000:
                    return False
            return True

        async def until_still() -> None:
            while not still.is_set():
                await asyncio.sleep(0.05)
            for _ in range(250):  # the frames already sent are taken (5 s at most; then compared)
                if settled():
                    break
                await asyncio.sleep(0.02)

        loop.run_until_complete(until_still())
        loop.run_until_complete(handler.stop_async(loop))
        for task in asyncio.all_tasks(loop):  # cryptofeed leaves its connection watchers behind
            task.cancel()
        loop.run_until_complete(asyncio.gather(*asyncio.all_tasks(loop), return_exceptions=True))
    finally:
        logging.getLogger("feedhandler").removeHandler(records)
        loop.close()
    return {"got": got, "symbols": mapping, "log": records.records}


async def test_cryptofeed_streams_what_the_simulator_holds(nursery: trio.Nursery) -> None:
    simulator = DeribitSimulator(seed=5, step_s=_STILL)
    for _ in range(100):
        simulator.step()
    # An option too: during the session its market stops quoting it (the `no_quotes` switch),
    # and Deribit then sends the empty sides as price 0 / amount 0 (ticker, quote).
    option = next(i["instrument_name"] for i in simulator.instrument_items if i["kind"] == "option")
    names = (*_INSTRUMENTS, option)
    binds = await nursery.start(functools.partial(serve, simulator))
    base = binds[0].removeprefix("http://")
    ready, still = threading.Event(), threading.Event()
    out: dict[str, Any] = {}
    target: dict[str, Any] = {}  # what the still market last sent, for the client to wait for

    async def client() -> None:
        out.update(await trio.to_thread.run_sync(_cryptofeed_session, base, names, ready, still, target))

    with trio.fail_after(20):
        async with trio.open_nursery() as inner:
            inner.start_soon(client)
            try:
                steps = 0
                with trio.move_on_after(10):
                    while not ready.is_set() or steps < 40:  # every callback has had data, and more
                        simulator.step()
                        steps += 1
                        await trio.sleep(0.02)
                    simulator.apply_faults({"no_quotes": {"instrument": option, "side": "both"}})
                    pulled_at = simulator.tickers[option]["timestamp"]
                    while simulator.tickers[option]["timestamp"] == pulled_at or steps < 60:
                        simulator.step()  # until the option's next ticker, and then some
                        steps += 1
                        await trio.sleep(0.02)
            finally:
                target.update(
                    books={name: _book(simulator, name) for name in names},
                    trade_id={n: (simulator.trades.get(n) or [{}])[-1].get("trade_id") for n in names},
                    ticker_ts={name: simulator.tickers[name]["timestamp"] for name in names},
                )
                still.set()  # the client's thread ends whatever happened
    got, log = out["got"], out["log"]
    assert log == []  # no refused subscription, broken chain, unknown message, error answer
    name_of = out["symbols"]
    for name in names:
        books = [b for b in got["l2_book"] if name_of[b.symbol] == name]
        assert books, name
        bids, asks = _book(simulator, name)
        book = books[-1].book  # cryptofeed's book after every snapshot and change it applied
        assert {Decimal(p): Decimal(a) for p, a in book.bids.to_dict().items()} == bids
        assert {Decimal(p): Decimal(a) for p, a in book.asks.to_dict().items()} == asks
        # The trades it got are the simulator's last prints, in order, to the last one.
        trades = [t for t in got["trades"] if name_of[t.symbol] == name]
        printed = simulator.trades[name][-len(trades) :] if trades else []
        assert [(t.id, t.price, t.amount, t.side) for t in trades] == [
            (p["trade_id"], Decimal(str(p["price"])), Decimal(str(p["amount"])), p["direction"])
            for p in printed
        ]
        tickers = [t for t in got["ticker"] if name_of[t.symbol] == name]
        last = simulator.tickers[name]
        assert (tickers[-1].bid, tickers[-1].ask) == (
            Decimal(str(last["best_bid_price"])),
            Decimal(str(last["best_ask_price"])),
        )
        # quote.* (public, no interval): the book's top as it stands, 0 / 0 for an empty side.
        quotes = [q for q in got["l1_book"] if name_of[q.symbol] == name]
        assert quotes, name
        top = simulator.top(name)
        assert (quotes[-1].bid_price, quotes[-1].bid_size, quotes[-1].ask_price, quotes[-1].ask_size) == top
        if name in _INSTRUMENTS:  # a perpetual's ticker carries its funding
            funding = [f for f in got["funding"] if name_of[f.symbol] == name][-1]
            assert (funding.rate, funding.mark_price) == (
                Decimal(str(last["current_funding"])),
                Decimal(str(last["mark_price"])),
            )
        interest = [i for i in got["open_interest"] if name_of[i.symbol] == name][-1]
        assert interest.open_interest == Decimal(str(last["open_interest"]))
    assert not [f for f in got["funding"] if name_of[f.symbol] == option]  # options have none
    assert _book(simulator, option) == ({}, {})  # the option's market has withdrawn
    option_ticker = [t for t in got["ticker"] if name_of[t.symbol] == option][-1]
    assert (option_ticker.bid, option_ticker.ask) == (0, 0)
    assert {name_of[t.symbol] for t in got["trades"]} >= set(_INSTRUMENTS)
    assert simulator.requests_for("public/subscribe") == 1  # the quotes: public, as Deribit has them
    assert simulator.requests_for("private/subscribe") == 1 and simulator.requests_for("public/auth") == 1


def _cryptofeed_account(base: str, got: dict[str, list[Any]], done: threading.Event) -> dict[str, Any]:
    """cryptofeed's private feeds of the demo account: FILLS (`user.trades.{instrument}.raw`) and
    BALANCES (`user.portfolio.{currency}`). Its ORDER_INFO is left out: cryptofeed 2.4.1 reads
    `side` from the notification's envelope and `cumQuantity` from its data, fields Deribit's
    `user.orders` never has (docs, and the real capture `ws_user_orders_filled.json`), so it
    fails on any venue's order notification, the real one's too."""
    from cryptofeed import FeedHandler
    from cryptofeed.defines import BALANCES, FILLS
    from cryptofeed.symbols import Symbols

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    records = WarningRecords()
    logging.getLogger("feedhandler").addHandler(records)
    feed_class = cryptofeed_deribit(base)
    Symbols.clear()
    client_id, secret = next(iter(DEFAULT_ACCOUNTS.items()))
    config = {
        "log": {"disabled": True},
        "uvloop": False,
        "deribit": {"key_id": client_id, "key_secret": secret},
    }

    def keep(channel: str) -> Any:
        async def callback(item: Any, receipt: float) -> None:
            got[channel].append(item)

        return callback

    handler = FeedHandler(config=config)
    try:
        mapping = feed_class.symbol_mapping()
        perpetual = next(std for std, name in mapping.items() if name == "BTC-PERPETUAL")
        handler.add_feed(
            feed_class(
                config=config,
                subscription={FILLS: [perpetual], BALANCES: ["BTC"]},
                callbacks={channel: keep(channel) for channel in got},
            )
        )
        handler.run(start_loop=False, install_signal_handlers=False)

        async def until_done() -> None:
            while not done.is_set():
                await asyncio.sleep(0.02)

        loop.run_until_complete(until_done())
        loop.run_until_complete(handler.stop_async(loop))
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.gather(*asyncio.all_tasks(loop), return_exceptions=True))
    finally:
        logging.getLogger("feedhandler").removeHandler(records)
        loop.close()
    return {"got": got, "symbols": mapping, "log": records.records}


def _take(base: str, price: float) -> dict[str, Any]:
    """A buy of 30 at `price` by the demo account, over REST (HTTP Basic auth, VENUES.md §1.3)."""
    import requests

    client_id, secret = next(iter(DEFAULT_ACCOUNTS.items()))
    params: dict[str, str | float] = {
        "instrument_name": "BTC-PERPETUAL",
        "amount": 30,
        "type": "limit",
        "price": price,
    }
    r = requests.get(f"http://{base}/api/v2/private/buy", params=params, auth=(client_id, secret), timeout=5)
    result: dict[str, Any] = r.json()["result"]
    return result


async def test_cryptofeed_gets_the_accounts_fills_and_balance(nursery: trio.Nursery) -> None:
    simulator = DeribitSimulator(seed=6, step_s=_STILL)
    for _ in range(100):
        simulator.step()
    binds = await nursery.start(functools.partial(serve, simulator))
    base = binds[0].removeprefix("http://")
    done = threading.Event()
    got: dict[str, list[Any]] = {"fills": [], "balances": []}  # cryptofeed's FILLS, BALANCES
    out: dict[str, Any] = {}
    account = simulator.accounts[next(iter(DEFAULT_ACCOUNTS))]

    async def client() -> None:
        out.update(await trio.to_thread.run_sync(_cryptofeed_account, base, got, done))

    with trio.fail_after(20):
        async with trio.open_nursery() as inner:
            inner.start_soon(client)
            try:
                while not any(s.private for s in simulator.sessions.values()):
                    await trio.sleep(0.02)  # cryptofeed has authenticated and subscribed
                top = simulator.top("BTC-PERPETUAL")
                assert top is not None
                answer = await trio.to_thread.run_sync(_take, base, float(top[2]))
                with trio.move_on_after(5):  # until cryptofeed has every fill and the balance after
                    final = Decimal(str(float(account.balances["BTC"])))
                    while len(got["fills"]) < len(account.trades) or not any(
                        b.balance == final for b in got["balances"]
                    ):
                        await trio.sleep(0.02)
            finally:
                done.set()
    assert out["log"] == []
    assert answer["order"]["order_state"] == "filled"
    fills = got["fills"]
    recorded = [t for t in account.trades if t["order_id"] == answer["order"]["order_id"]]
    assert recorded and [
        (f.id, f.order_id, f.side, f.price, f.amount, f.fee, f.liquidity) for f in fills
    ] == [
        (
            t["trade_id"],
            t["order_id"],
            "buy",
            Decimal(str(t["price"])),
            Decimal(str(t["amount"])),
            Decimal(str(t["fee"])),
            "taker",
        )
        for t in recorded
    ]
    assert {out["symbols"][f.symbol] for f in fills} == {"BTC-PERPETUAL"}
    balance = got["balances"][-1]
    assert balance.currency == "BTC" and balance.balance == Decimal(str(float(account.balances["BTC"])))
