"""The judges against the real command: each third-party client runs a short scripted session
against `tradingd simulate VENUE --host 127.0.0.1 --port 0` in a subprocess (not the simulator
object served in-process, as the judges in tests/simulators/<venue>/ do), with the address and
the demo account's credentials read from the banner a user would copy. What the client parses is
checked, and cross-checked with the simulator's public `/_sim/state`; the command must then stop
cleanly on SIGINT (exit 0) with no fault on its stderr (no warning or error record, no
traceback).

The clients: ccxt REST and ccxt.pro WebSocket and cryptofeed on Deribit, derive-client on
Derive, py-clob-client-v2 on Polymarket. The asyncio clients run on their own loop in the
test's thread: the simulator is another process, nothing else needs the thread."""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from decimal import Decimal
from typing import Any

import pytest

from tests.support.derive_judges import loopback_config
from tests.support.judges import WarningRecords, cryptofeed_deribit
from tests.support.simulate_cli import Simulated, faults_in, simulate_cli

_PERPETUAL = "BTC-PERPETUAL"


def _stops_cleanly(sim: Simulated) -> None:
    code = sim.stop()
    stderr = sim.stderr()
    assert code == 0, f"`tradingd simulate {sim.venue}` exited {code}: {stderr[-2000:]}"
    assert faults_in(stderr) == []


def _ccxt_deribit(sim: Simulated, *, pro: bool) -> Any:
    import ccxt
    import ccxt.pro

    cls = ccxt.pro.deribit if pro else ccxt.deribit
    exchange = cls(
        {
            "apiKey": sim.credentials["DERIBIT_CLIENT_ID"],
            "secret": sim.credentials["DERIBIT_CLIENT_SECRET"],
            "enableRateLimit": False,
        }
    )
    exchange.urls["api"] = {"rest": sim.http, "ws": f"ws://{sim.address}/ws/api/v2"}
    return exchange


def _orders(sim: Simulated) -> dict[str, Any]:
    orders = sim.state()["orders"]
    assert isinstance(orders, dict)
    return orders


def test_a_fault_on_stderr_is_seen() -> None:
    """The clean-stop check would see a warning, an error, or a line that is no log record."""
    info = '{"ts": "2026-01-01T00:00:00Z", "level": "info", "event": "listening"}'
    warning = '{"ts": "2026-01-01T00:00:00Z", "level": "warning", "event": "frame_refused"}'
    assert faults_in(f"{info}\n\n") == []
    assert faults_in(f"{info}\n{warning}\n") == [warning]
    assert faults_in("Traceback (most recent call last):\n") == ["Traceback (most recent call last):"]


def test_the_command_is_stopped_when_a_test_fails() -> None:
    started: list[Simulated] = []

    def failing_test() -> None:
        with simulate_cli("deribit") as sim:
            started.append(sim)
            raise RuntimeError("the test failed")

    with pytest.raises(RuntimeError, match="the test failed"):
        failing_test()
    assert started[0].process.returncode == 0  # stopped by SIGINT on the way out, not left behind


def test_ccxt_rest_trades_on_the_deribit_command() -> None:
    with simulate_cli("deribit") as sim:
        exchange = _ccxt_deribit(sim, pro=False)
        markets = exchange.load_markets()
        symbol = next(s for s, m in markets.items() if m["id"] == _PERPETUAL)
        tick = markets[symbol]["precision"]["price"]
        book = exchange.fetch_order_book(symbol, 10)
        assert book["bids"] and book["asks"]
        assert book["bids"][0][0] < book["asks"][0][0]
        assert [b[0] for b in book["bids"]] == sorted((b[0] for b in book["bids"]), reverse=True)

        # A buy well below the market rests; it is the account's one open order; cancelled.
        price = int(book["bids"][0][0] * 0.9 / tick) * tick
        resting = exchange.create_order(symbol, "limit", "buy", 100, price)
        assert resting["status"] == "open" and resting["amount"] == 100 and resting["filled"] == 0
        assert [o["id"] for o in exchange.fetch_open_orders(symbol)] == [resting["id"]]
        assert _orders(sim)[resting["id"]] == "open"
        cancelled = exchange.cancel_order(resting["id"], symbol)
        assert cancelled["status"] == "canceled" and exchange.fetch_open_orders(symbol) == []
        assert _orders(sim)[resting["id"]] == "cancelled"

        # A buy through the ask (the market moves: a few ticks above the ask read) takes it.
        ask = exchange.fetch_order_book(symbol, 1)["asks"][0][0]
        taken = exchange.create_order(symbol, "limit", "buy", 10, ask + 20 * tick)
        assert taken["status"] == "closed" and taken["filled"] == 10
        mine = [t for t in exchange.fetch_my_trades(symbol) if t["order"] == taken["id"]]
        assert mine and sum(t["amount"] for t in mine) == 10
        assert all(t["side"] == "buy" and t["takerOrMaker"] == "taker" and t["id"] for t in mine)
        assert all(t["price"] <= ask + 20 * tick for t in mine)
        assert _orders(sim)[taken["id"]] == "filled"
        _stops_cleanly(sim)


async def _watch(sim: Simulated) -> dict[str, Any]:
    exchange = _ccxt_deribit(sim, pro=True)
    try:
        markets = await exchange.load_markets()
        symbol = next(s for s, m in markets.items() if m["id"] == _PERPETUAL)
        book = await asyncio.wait_for(exchange.watch_order_book(symbol), 10)
        trades: list[Any] = []
        async with asyncio.timeout(15):  # the market prints a trade every few steps
            while not trades:
                trades = list(await exchange.watch_trades(symbol))
        out = {
            "symbol": symbol,
            "bids": [list(level[:2]) for level in book["bids"]],
            "asks": [list(level[:2]) for level in book["asks"]],
            "trades": trades,
            "printed": await exchange.fetch_trades(symbol, limit=1000),  # the venue's REST view
            "sessions": sim.state()["sessions"],  # while ccxt is connected and subscribed
        }
        # Ctrl-C with the client still connected and subscribed: the command stops cleanly.
        _stops_cleanly(sim)
        return out
    finally:
        await exchange.close()


def test_ccxt_pro_watches_the_deribit_command() -> None:
    with simulate_cli("deribit") as sim:
        out = asyncio.run(_watch(sim))
        bids, asks = out["bids"], out["asks"]
        assert bids and asks and bids[0][0] < asks[0][0]
        assert all(amount > 0 for _, amount in bids + asks)
        trades = out["trades"]
        assert all(t["id"] and t["symbol"] == out["symbol"] and t["amount"] > 0 for t in trades)
        assert all(t["side"] in ("buy", "sell") for t in trades)
        # The prints it streamed are the venue's: REST lists them, same ids, prices, amounts.
        printed = {t["id"]: (t["price"], t["amount"], t["side"]) for t in out["printed"]}
        assert {t["id"]: (t["price"], t["amount"], t["side"]) for t in trades}.items() <= printed.items()
        # One WebSocket session, with the book's and the trades' subscriptions.
        assert [s["channels"] >= 2 for s in out["sessions"]] == [True]


def _cryptofeed_session(sim: Simulated) -> dict[str, Any]:
    from cryptofeed import FeedHandler
    from cryptofeed.defines import L2_BOOK, TRADES
    from cryptofeed.symbols import Symbols

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    records = WarningRecords()
    logging.getLogger("feedhandler").addHandler(records)
    feed_class = cryptofeed_deribit(sim.address)
    Symbols.clear()  # symbols are cached by exchange id across feeds: load the simulator's
    config = {
        "log": {"disabled": True},
        "uvloop": False,
        "deribit": {
            "key_id": sim.credentials["DERIBIT_CLIENT_ID"],
            "key_secret": sim.credentials["DERIBIT_CLIENT_SECRET"],
        },
    }
    got: dict[str, list[Any]] = {L2_BOOK: [], TRADES: []}

    def keep(channel: str) -> Any:
        async def callback(item: Any, receipt: float) -> None:
            got[channel].append(item)

        return callback

    handler = FeedHandler(config=config)
    try:
        mapping = feed_class.symbol_mapping()
        perpetual = next(std for std, name in mapping.items() if name == _PERPETUAL)
        handler.add_feed(
            feed_class(
                config=config,
                symbols=[perpetual],
                channels=list(got),
                callbacks={channel: keep(channel) for channel in got},
            )
        )
        handler.run(start_loop=False, install_signal_handlers=False)

        async def until_both() -> None:
            deadline = time.monotonic() + 15  # books at once; a print within a few steps
            while not all(got.values()) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)

        loop.run_until_complete(until_both())
        loop.run_until_complete(handler.stop_async(loop))
        for task in asyncio.all_tasks(loop):  # cryptofeed leaves its connection watchers behind
            task.cancel()
        loop.run_until_complete(asyncio.gather(*asyncio.all_tasks(loop), return_exceptions=True))
    finally:
        logging.getLogger("feedhandler").removeHandler(records)
        asyncio.set_event_loop(None)
        loop.close()
    return {"got": got, "symbol": perpetual, "log": records.records}


def test_cryptofeed_streams_from_the_deribit_command() -> None:
    with simulate_cli("deribit") as sim:
        out = _cryptofeed_session(sim)
        got = out["got"]
        assert out["log"] == []  # no refused subscription, broken change_id chain, unknown message
        books, trades = got["l2_book"], got["trades"]
        assert books and trades
        assert {b.symbol for b in books} == {out["symbol"]} == {t.symbol for t in trades}
        book = books[-1].book  # after every snapshot and change cryptofeed applied
        bids, asks = book.bids.to_dict(), book.asks.to_dict()
        assert bids and asks and max(bids) < min(asks)
        assert all(t.id and t.amount > 0 and t.side in ("buy", "sell") for t in trades)
        _stops_cleanly(sim)


def test_derive_client_trades_on_the_derive_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from derive_client import HTTPClient  # type: ignore[import-untyped]
    from derive_client.config import CONFIGS  # type: ignore[import-untyped]
    from derive_client.data_types import Environment  # type: ignore[import-untyped]
    from derive_client.data_types.generated_models import (  # type: ignore[import-untyped]
        Direction,
        OrderStatus,
    )

    with simulate_cli("derive") as sim:
        monkeypatch.setitem(CONFIGS, Environment.TEST, loopback_config(sim.http))
        subaccount = int(sim.credentials["DERIVE_SUBACCOUNT_ID"])
        client = HTTPClient(
            wallet=sim.credentials["DERIVE_WALLET"],
            session_key=sim.credentials["DERIVE_SESSION_KEY"],
            subaccount_id=subaccount,
            env=Environment.TEST,
        )
        client.connect()  # account, session keys, every instrument type, the subaccount
        try:
            assert client.account.state.wallet == sim.credentials["DERIVE_WALLET"]
            assert client.active_subaccount.id == subaccount
            perp = client.markets.perp_instruments_cache["ETH-PERP"]
            assert perp.tick_size > 0 and perp.amount_step > 0
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # the client deprecates get_ticker
                ticker = client.markets.get_ticker(instrument_name="ETH-PERP")
            assert 0 < ticker.best_bid_price < ticker.best_ask_price
            assert ticker.min_price < ticker.mark_price < ticker.max_price

            order = client.orders.create(
                amount=perp.amount_step * 3,
                direction=Direction.buy,
                instrument_name="ETH-PERP",
                limit_price=ticker.best_bid_price * Decimal("0.8"),  # far below the market: it rests
                label="cli-judge",
            )
            assert order.order_status is OrderStatus.open and order.amount == perp.amount_step * 3
            assert [o.order_id for o in client.orders.list_open()] == [order.order_id]
            assert _orders(sim)[order.order_id] == "open"
            cancelled = client.orders.cancel(instrument_name="ETH-PERP", order_id=order.order_id)
            assert cancelled.order_status is OrderStatus.cancelled
            assert client.orders.list_open() == []
            assert _orders(sim)[order.order_id] == "cancelled"
        finally:
            client.disconnect()
        _stops_cleanly(sim)


def test_py_clob_client_trades_on_the_polymarket_command() -> None:
    from py_clob_client_v2.client import ClobClient  # type: ignore[import-untyped]
    from py_clob_client_v2.clob_types import (  # type: ignore[import-untyped]
        ApiCreds,
        OpenOrderParams,
        OrderArgsV2,
        OrderPayload,
    )

    with simulate_cli("polymarket") as sim:
        creds = ApiCreds(
            sim.credentials["POLYMARKET_API_KEY"],
            sim.credentials["POLYMARKET_API_SECRET"],
            sim.credentials["POLYMARKET_API_PASSPHRASE"],
        )
        client = ClobClient(
            sim.http, chain_id=137, key=sim.credentials["POLYMARKET_PRIVATE_KEY"], creds=creds
        )
        assert client.get_ok() == "OK"
        market = next(m for m in client.get_markets()["data"] if m["accepting_orders"])
        token = market["tokens"][0]["token_id"]
        book = client.get_order_book(token)
        # The summary's hash is the venue's algorithm (VENUES.md §2.3), as the client computes it.
        assert book["hash"] == client.get_order_book_hash(book)
        bids = [float(b["price"]) for b in book["bids"]]
        asks = [float(a["price"]) for a in book["asks"]]
        assert bids and asks and max(bids) < min(asks)

        # At the book's worst bid: below every ask, it rests.
        posted = client.create_and_post_order(
            OrderArgsV2(token_id=token, price=min(bids), size=10, side="BUY")
        )
        assert posted["success"] is True and posted["status"] == "live"
        order_id = posted["orderID"]
        listed = client.get_open_orders(OpenOrderParams(asset_id=token))
        assert [o["id"] for o in listed] == [order_id] and listed[0]["original_size"] == "10"
        assert _orders(sim)[order_id] == "LIVE"
        cancelled = client.cancel_order(OrderPayload(orderID=order_id))
        assert cancelled == {"canceled": [order_id], "not_canceled": {}}
        assert client.get_open_orders() == []
        assert _orders(sim)[order_id] == "CANCELED"
        _stops_cleanly(sim)
