"""The simulated Derive's wire shapes against real captures (`tests/fixtures/derive/`, README
there): public channels, the private channels and answers of an order, history pages, and the
venue's refusals, field for field."""

from __future__ import annotations

import itertools
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import trio
from derive_action_signing import SignedAction, TradeModuleData  # type: ignore[import-untyped]

from tests.support.sim_clock import fixed_clock
from tradingd.simulators.derive.eip712 import ACTION_TYPEHASH, TESTNET
from tradingd.simulators.derive.simulator import (
    DEMO_SESSION_KEY,
    DEMO_SIGNER,
    DEMO_SUBACCOUNT,
    DEMO_WALLET,
    DeriveSimulator,
    _Peer,
)
from tradingd.simulators.matching import Side

FIXTURES = Path(__file__).parent.parent.parent / "fixtures" / "derive"
PERP = "ETH-PERP"
SUB = DEMO_SUBACCOUNT
NONCES = itertools.count()


def fixture(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


class Client:
    """One WebSocket peer of the simulator, driven in-process."""

    def __init__(self, sim: DeriveSimulator) -> None:
        self.sim = sim
        send, self.inbox = trio.open_memory_channel[bytes](100_000)
        self.peer = _Peer(1, send, "/ws")
        sim.sessions[1] = self.peer
        self.ids = 0

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.ids += 1
        await self.sim.on_text(
            self.peer, orjson.dumps({"id": self.ids, "method": method, "params": params}).decode()
        )
        for msg in self.drain():
            if msg.get("id") == self.ids:
                return msg
        raise AssertionError(f"no answer to {method}")

    def drain(self) -> list[dict[str, Any]]:
        self.frames: list[dict[str, Any]] = getattr(self, "frames", [])
        out = []
        while True:
            try:
                msg = orjson.loads(self.inbox.receive_nowait())
            except trio.WouldBlock:
                break
            out.append(msg)
            if msg.get("method") == "subscription":
                self.frames.append(msg)
        return out

    def on(self, channel: str) -> list[Any]:
        return [f["params"]["data"] for f in self.frames if f["params"]["channel"] == channel]


def official_order(sim: DeriveSimulator, price: Decimal, amount: str) -> dict[str, Any]:
    item = next(i for i in sim.instrument_items if i["instrument_name"] == PERP)
    action = SignedAction(
        subaccount_id=SUB,
        owner=DEMO_WALLET,
        signer=DEMO_SIGNER,
        signature_expiry_sec=sim.clock() // 1_000_000_000 + 600,  # the simulator's time
        nonce=sim.clock() // 1_000_000 * 1000 + next(NONCES) % 1000,
        module_address=TESTNET.trade_module,
        module_data=TradeModuleData(
            asset_address=item["base_asset_address"],
            sub_id=int(item["base_asset_sub_id"]),
            limit_price=price,
            amount=Decimal(amount),
            max_fee=Decimal(50),
            recipient_id=SUB,
            is_bid=True,
        ),
        DOMAIN_SEPARATOR="0x" + TESTNET.separator.hex(),
        ACTION_TYPEHASH="0x" + ACTION_TYPEHASH.hex(),
    )
    action.sign(DEMO_SESSION_KEY)
    return {
        **action.to_json(),
        "instrument_name": PERP,
        "direction": "buy",
        "order_type": "limit",
        "time_in_force": "gtc",
        "mmp": False,
        "label": "wire-1",
    }


async def test_public_channels_carry_the_captured_shapes() -> None:
    sim = DeriveSimulator(seed=21, clock=fixed_clock())
    client = Client(sim)
    option = next(i["instrument_name"] for i in sim.instrument_items if i["instrument_type"] == "option")
    channels = [
        f"orderbook.{PERP}.1.10",
        f"ticker_slim.{PERP}.100",
        f"ticker_slim.{option}.1000",
        f"trades.{PERP}",
    ]
    answer = await client.call("subscribe", {"channels": [*channels, "trades.spot.ETH"]})
    ack = fixture("spot/ws_subscribe_ack.json")
    assert set(answer) == set(ack) and set(answer["result"]) == set(ack["result"])
    assert answer["result"]["status"] == {
        **dict.fromkeys(channels, "ok"),
        "trades.spot.ETH": ack["result"]["status"]["trades.spot.ETH"],
    }
    for _ in range(30):
        sim.step()
    sim.trade(PERP, "sell", "3000", "0.1")
    client.drain()
    books = client.on(f"orderbook.{PERP}.1.10")
    assert len(books) > 2  # the snapshot on subscribing, then the stream
    for book in books:
        assert set(book) == set(fixture("spot/ws_orderbook_eth_mainnet.json"))
        assert all(isinstance(p, str) and isinstance(a, str) for p, a in book["bids"] + book["asks"])
    slim = fixture("perps/ws_ticker_slim_eth.json")
    for data in client.on(f"ticker_slim.{PERP}.100"):
        assert set(data) == set(slim) and set(data["instrument_ticker"]) == set(slim["instrument_ticker"])
        assert set(data["instrument_ticker"]["stats"]) == set(slim["instrument_ticker"]["stats"])
    call = fixture("options/ws_ticker_slim_eth_call.json")["instrument_ticker"]["option_pricing"]
    assert all(
        set(d["instrument_ticker"]["option_pricing"]) == set(call)
        for d in client.on(f"ticker_slim.{option}.1000")
    )
    live = fixture("bourse/ws_trades_eth_perp_mainnet.json")["params"]["data"][0]
    trades = [t for data in client.on(f"trades.{PERP}") for t in data]
    assert trades and all(list(t) == list(live) for t in trades)


async def test_the_venues_refusals_word_for_word() -> None:
    sim = DeriveSimulator(seed=21, clock=fixed_clock())
    client = Client(sim)
    unmatched = await client.call("subscribe", {"channels": [":ETH-PERP"]})
    assert unmatched["error"] == fixture("bourse/error_invalid_channels_demo.json")
    deprecated = await client.call("subscribe", {"channels": [f"ticker.{PERP}.100"]})
    assert deprecated["error"] == fixture("bourse/error_ticker_deprecated_demo.json")


async def test_an_order_its_answer_private_channels_and_history_carry_the_captured_shapes() -> None:
    sim = DeriveSimulator(seed=21, clock=fixed_clock())
    client = Client(sim)
    client.peer.account = sim.accounts[DEMO_WALLET.lower()]
    private = [f"{SUB}.orders", f"{SUB}.trades", f"{SUB}.balances"]
    assert (await client.call("subscribe", {"channels": private}))["result"]["status"] == dict.fromkeys(
        private, "ok"
    )
    ask = sim.book(PERP).best(Side.SELL)
    assert ask is not None
    answer = (await client.call("private/order", official_order(sim, ask + 1, "0.1")))["result"]
    captured = fixture("spot/http_submit_order_response.json")["result"]
    assert set(answer) == set(captured) and set(answer["order"]) == set(captured["order"])
    assert answer["order"]["order_status"] == "filled" and answer["trades"]
    (order,) = client.on(f"{SUB}.orders")[-1]
    assert set(order) == set(captured["order"])
    (trade,) = client.on(f"{SUB}.trades")[0]
    assert set(fixture("perps/http_private_trade_eth.json")) <= set(trade)
    assert trade["liquidity_role"] == "taker" and trade["tx_status"] == "requested"
    (balance,) = client.on(f"{SUB}.balances")[0]
    assert set(balance) == {"name", "new_balance", "previous_balance", "update_type"}  # VENUES.md §3.4
    positions = (await client.call("private/get_positions", {"subaccount_id": SUB}))["result"]
    captured_positions = fixture("perps/http_positions_result_eth.json")
    assert set(positions) == set(captured_positions)
    assert set(captured_positions["positions"][0]) <= set(positions["positions"][0])
    history = (await client.call("private/get_trade_history", {"subaccount_id": SUB}))["result"]
    mainnet = fixture("ccxt/http_get_trade_history_btc_perp.json")["result"]
    assert set(mainnet) <= set(history) and set(history["pagination"]) == set(mainnet["pagination"])
    assert set(mainnet["trades"][0]) <= set(history["trades"][0])


async def test_instruments_and_ticker_answers_carry_the_captured_fields() -> None:
    sim = DeriveSimulator(seed=21, clock=fixed_clock())
    client = Client(sim)
    items = (
        await client.call(
            "public/get_instruments", {"currency": "ETH", "instrument_type": "perp", "expired": False}
        )
    )["result"]
    captured = fixture("common/http_get_instruments_eth_all.json")["result"]
    assert set(captured[0]) <= set(items[0])
    ticker = (await client.call("public/get_ticker", {"instrument_name": PERP}))["result"]
    snapshot = fixture("perps/http_ticker_eth_snapshot.json")
    # `stats`, `open_interest` and the 5% depths come from the judges' module (issue 15).
    assert set(snapshot) - {"stats"} <= set(ticker)
    assert ticker["best_bid_price"] == str(sim.book(PERP).best(Side.BUY))


async def test_rest_answers_decode_with_derives_own_client_schemas() -> None:
    """Each answer, as bytes off the wire, through derive-client's own response schema (msgspec,
    `derive_client.data_types.generated_models`): a missing or mistyped field fails to decode."""
    import httpx
    import msgspec
    from derive_action_signing import sign_rest_auth_header
    from derive_client.data_types import generated_models as dc  # type: ignore[import-untyped]
    from web3 import Web3

    sim = DeriveSimulator(seed=21)  # the wall clock: derive-client signs its header with it
    transport = httpx.ASGITransport(app=sim)
    async with httpx.AsyncClient(transport=transport, base_url="http://derive.sim") as http:

        async def post(path: str, params: dict[str, Any], schema: Any) -> Any:
            headers = (
                sign_rest_auth_header(Web3(), DEMO_WALLET, DEMO_SESSION_KEY)
                if path.startswith("/private")
                else {}
            )
            answer = await http.post(path, content=orjson.dumps(params), headers=headers)
            assert answer.status_code == 200 and "error" not in answer.json(), answer.text
            return msgspec.json.decode(answer.content, type=schema)

        ask = sim.book(PERP).best(Side.SELL)
        assert ask is not None
        placed = await post(
            "/private/order", official_order(sim, ask + 1, "0.1"), dc.PrivateOrderResponseSchema
        )
        assert placed.result.order.order_status.value == "filled" and placed.result.trades
        bid = sim.book(PERP).best(Side.BUY)
        assert bid is not None
        resting = {**official_order(sim, bid - 100, "0.1"), "label": "wire-2"}
        resting_order = (await post("/private/order", resting, dc.PrivateOrderResponseSchema)).result.order
        assert resting_order.order_status.value == "open"
        cancel = {"subaccount_id": SUB, "instrument_name": PERP, "order_id": resting_order.order_id}
        cancelled = await post("/private/cancel", cancel, dc.PrivateCancelResponseSchema)
        assert cancelled.result.order_status.value == "cancelled"
        sub = {"subaccount_id": SUB}
        await post("/private/get_positions", sub, dc.PrivateGetPositionsResponseSchema)
        await post("/private/get_trade_history", sub, dc.PrivateGetTradeHistoryResponseSchema)
        await post("/private/get_orders", sub, dc.PrivateGetOrdersResponseSchema)
        await post("/private/get_order_history", sub, dc.PrivateGetOrderHistoryResponseSchema)
        await post("/private/get_open_orders", sub, dc.PrivateGetOpenOrdersResponseSchema)
        await post(
            "/private/get_subaccounts", {"wallet": DEMO_WALLET}, dc.PrivateGetSubaccountsResponseSchema
        )
        await post("/private/cancel_all", sub, dc.PrivateCancelAllResponseSchema)
        await post("/public/get_instrument", {"instrument_name": PERP}, dc.PublicGetInstrumentResponseSchema)
        await post(
            "/public/get_instruments",
            {"currency": "ETH", "instrument_type": "option", "expired": False},
            dc.PublicGetInstrumentsResponseSchema,
        )
        await post("/public/get_time", {}, dc.PublicGetTimeResponseSchema)


async def test_the_published_book_shows_the_clients_resting_orders() -> None:
    sim = DeriveSimulator(seed=21, clock=fixed_clock())
    client = Client(sim)
    client.peer.account = sim.accounts[DEMO_WALLET.lower()]
    await client.call("subscribe", {"channels": [f"orderbook.{PERP}.1.10"]})
    feed = sim.last_book(PERP)
    assert feed is not None
    # The feed's third bid: a level the next published book still holds when the market moves
    # a few ticks (its deepest can leave the 10 published ones; its best can trade through the
    # order, leaving nothing to show). The fixed clock makes the market's path the same each day.
    price = Decimal(feed["bids"][2][0])
    answer = await client.call("private/order", {**official_order(sim, price, "0.5"), "direction": "buy"})
    assert answer["result"]["order"]["order_status"] == "open"
    client.drain()
    client.frames.clear()
    market = sim.markets[PERP]
    for _ in range(20):  # until the feed's next book of ETH-PERP went out
        sim.step()
        if market.published is not None:
            break
    assert market.published is not None  # the feed's frame, and what went out instead
    client.drain()
    published = client.on(f"orderbook.{PERP}.1.10")[-1]
    raw = orjson.loads(market.published[0])["params"]["data"]
    feed_levels = {Decimal(p): Decimal(a) for p, a in raw["bids"]}
    shown = {Decimal(p): Decimal(a) for p, a in published["bids"]}
    assert shown[price] == feed_levels.get(price, Decimal(0)) + Decimal("0.5")
    assert published["publish_id"] == raw["publish_id"] and set(published) == set(raw)
    assert sim.last_book(PERP) == published  # what a new subscriber's snapshot starts from


async def test_the_slim_ticker_tops_the_book_with_the_clients_orders() -> None:
    sim = DeriveSimulator(seed=21, clock=fixed_clock())
    client = Client(sim)
    client.peer.account = sim.accounts[DEMO_WALLET.lower()]
    await client.call("subscribe", {"channels": [f"ticker_slim.{PERP}.100"]})
    best = sim.book(PERP).best(Side.BUY)
    assert best is not None
    answer = await client.call("private/order", {**official_order(sim, best, "0.5"), "direction": "buy"})
    assert answer["result"]["order"]["order_status"] == "open"
    client.drain()
    client.frames.clear()
    market = sim.markets[PERP]
    sim.step()  # a perpetual's ticker goes out every 100 ms step
    assert market.published_ticker is not None
    client.drain()
    (data,) = client.on(f"ticker_slim.{PERP}.100")
    ticker = data["instrument_ticker"]
    book = sim.book(PERP)
    top_bid, top_ask = book.levels(Side.BUY, 1)[0], book.levels(Side.SELL, 1)[0]
    assert (Decimal(ticker["b"]), Decimal(ticker["B"])) == top_bid
    assert (Decimal(ticker["a"]), Decimal(ticker["A"])) == top_ask
    mine = [o for o in book.orders() if o.price == top_bid[0]]
    feed = orjson.loads(market.published_ticker[0])["params"]["data"]["instrument_ticker"]
    assert mine and Decimal(feed["b"]) == top_bid[0]  # our order joined the feed's best bid
    assert Decimal(ticker["B"]) == Decimal(feed["B"]) + sum(o.remaining for o in mine)
    assert sim.tickers[PERP]["b"] == ticker["b"]  # what get_ticker and the positions read
