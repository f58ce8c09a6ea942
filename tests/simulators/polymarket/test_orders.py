"""Orders on the simulated CLOB, placed as Polymarket's own client signs them (py-clob-client-v2's
`OrderBuilder`, L2 headers and JSON): price-time priority between two clients, what a taker pays
(`fees.py`: pUSD on both sides, every matched share credited), and the switches that make an
order's HTTP answer and its user-channel news arrive in either order."""

from __future__ import annotations

import json
from decimal import ROUND_DOWN, Decimal
from typing import Any

import httpx
import orjson
import pytest
import trio
from py_clob_client_v2.clob_types import ApiCreds, CreateOrderOptions, OrderArgsV2, RequestArgs  # type: ignore[import-untyped]
from py_clob_client_v2.headers.headers import create_level_2_headers  # type: ignore[import-untyped]
from py_clob_client_v2.order_builder.builder import OrderBuilder  # type: ignore[import-untyped]
from py_clob_client_v2.order_utils.model.order_data_v2 import order_to_json_v2  # type: ignore[import-untyped]
from py_clob_client_v2.signer import Signer  # type: ignore[import-untyped]

from tests.support.sim_clock import fixed_clock
from tradingd.simulators.polymarket.simulator import DEMO_KEY, PolymarketSimulator

# Hardhat's well-known test accounts #1 and #2 (demo keys, never funds), beside the demo account #0.
KEYS = (
    DEMO_KEY,
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3af26a6c2cbf4b05",
)


class Client:
    """One trader on the simulator, speaking through the official client's own signing code."""

    def __init__(self, sim: PolymarketSimulator, key: str) -> None:
        self.sim = sim
        self.signer = Signer(key, 137)
        self.account = sim.register(self.signer.address())
        api = self.account.api
        self.creds = ApiCreds(api.key, api.secret, api.passphrase)
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=sim), base_url="http://sim")

    async def post(self, path: str, body: Any) -> httpx.Response:
        raw = json.dumps(body, separators=(",", ":"))
        headers = create_level_2_headers(
            self.signer, self.creds, RequestArgs("POST", path, body, serialized_body=raw)
        )
        return await self.http.post(path, content=raw, headers=headers)

    async def order(
        self, token: str, side: str, price: str, size: str, order_type: str = "GTC"
    ) -> dict[str, Any]:
        signed = OrderBuilder(self.signer).build_order(
            OrderArgsV2(token_id=token, price=float(price), size=float(size), side=side),
            CreateOrderOptions(tick_size="0.01", neg_risk=False),
        )
        answer = await self.post("/order", order_to_json_v2(signed, self.creds.api_key, order_type))
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def listen(self, peer_id: int) -> trio.MemoryReceiveChannel[bytes]:
        """A user-channel session of this account, without a socket: what it is sent."""
        send, receive = trio.open_memory_channel[bytes](1000)
        peer = self.sim.new_peer(peer_id, send, "/ws/user")
        peer.account, peer.subscribed = self.account, True
        self.sim.sessions[peer_id] = peer
        return receive


def fee(size: Decimal, price: Decimal, rate: Decimal) -> Decimal:
    """docs.polymarket.com/trading/fees: C x feeRate x p x (1 - p), to 0.00001 (floored)."""
    return (size * rate * price * (1 - price)).quantize(Decimal("0.00001"), rounding=ROUND_DOWN)


@pytest.fixture
def sim() -> PolymarketSimulator:
    return PolymarketSimulator(seed=3, clock=fixed_clock(), mine_s=0.01, confirm_s=0.01)


def inside(sim: PolymarketSimulator, token: str) -> Decimal:
    """A price strictly inside the token's spread (the market is still: nothing steps it)."""
    bid, ask = sim.tokens[token].top()
    assert bid is not None and ask is not None and ask - bid >= Decimal("0.02")
    return bid + Decimal("0.01")


def widen(sim: PolymarketSimulator, token: str) -> tuple[Decimal, Decimal]:
    """The market withdraws its asks below its bid + 0.04 (its own `price_change`, as the feed
    sends one), so two prices lie strictly inside the spread; returns them, lower first."""
    bid, _ = sim.tokens[token].top()
    assert bid is not None
    for price in [p for p in sim.tokens[token].asks if p < bid + Decimal("0.04")]:
        change = {"asset_id": token, "price": str(price), "size": "0", "side": "SELL"}
        sim.on_market_frame(
            orjson.dumps({"event_type": "price_change", "market": "", "price_changes": [change]}), sim.clock()
        )
    _, ask = sim.tokens[token].top()
    assert ask is not None and ask >= bid + Decimal("0.04")
    return bid + Decimal("0.01"), bid + Decimal("0.02")


async def test_two_clients_at_one_price_fill_in_time_order_and_a_better_price_first(
    sim: PolymarketSimulator,
) -> None:
    token = sim.feed.markets[0].yes
    first, second, taker = (Client(sim, k) for k in KEYS)
    better, worse = widen(sim, token)  # for a buyer, the lower ask is the better one
    for c in (first, second):
        c.account.positions[token] = Decimal(100)  # shares to sell
    a = (await first.order(token, "SELL", str(worse), "10"))["orderID"]
    b = (await second.order(token, "SELL", str(worse), "10"))["orderID"]
    c = (await second.order(token, "SELL", str(better), "5"))["orderID"]  # later, at a better price
    assert [sim.orders[o].status for o in (a, b, c)] == ["LIVE"] * 3
    answer = await taker.order(token, "BUY", str(worse), "18")
    assert answer["success"] and answer["status"] == "matched"
    # The better price first, then the two at one price in the order they came: 5, 10, 3, each
    # at its maker's price.
    met = [
        (t.counterparty.order_id if t.counterparty else None, t.price, t.size) for t in taker.account.trades
    ]
    assert met == [(c, better, Decimal(5)), (a, worse, Decimal(10)), (b, worse, Decimal(3))]
    assert (sim.orders[a].matched, sim.orders[b].matched, sim.orders[c].matched) == (
        Decimal(10),
        Decimal(3),
        Decimal(5),
    )
    assert [sim.orders[o].status for o in (a, b, c)] == ["MATCHED", "LIVE", "MATCHED"]
    assert taker.account.positions[token] == 18
    # The makers were paid their own prices and charged nothing (`fees.py`: makers never pay).
    assert first.account.balance == Decimal(100_000) + 10 * worse
    assert second.account.balance == Decimal(100_000) + 5 * better + 3 * worse
    # Each maker's trade names the taker's order; the taker's, the maker's.
    (made,) = first.account.trades
    assert made.counterparty is not None and made.counterparty.order_id == answer["orderID"]


async def test_a_print_fills_two_resting_bids_at_one_price_in_time_order(sim: PolymarketSimulator) -> None:
    token = sim.feed.markets[0].yes
    first, second = Client(sim, KEYS[1]), Client(sim, KEYS[2])
    a = (await first.order(token, "BUY", "0.05", "10"))["orderID"]
    b = (await second.order(token, "BUY", "0.05", "10"))["orderID"]
    printed = sim.trade(token, "sell", "0.05", "15")
    assert printed["orders"] == sorted([a, b])
    assert (sim.orders[a].matched, sim.orders[b].matched) == (Decimal(10), Decimal(5))
    assert (first.account.positions[token], second.account.positions[token]) == (Decimal(10), Decimal(5))


async def test_a_taker_buy_is_credited_every_share_and_pays_its_fee_in_pusd(sim: PolymarketSimulator) -> None:
    market = sim.feed.markets[0]
    token = market.yes
    rate = Decimal(str(sim.feed._gamma(market)["feeSchedule"]["rate"]))
    maker, taker = Client(sim, KEYS[1]), Client(sim, KEYS[2])
    maker.account.positions[token] = Decimal(50)
    price = inside(sim, token)
    await maker.order(token, "SELL", str(price), "20")
    cash = taker.account.balance
    await taker.order(token, "BUY", str(price), "20")
    charged = fee(Decimal(20), price, rate)
    assert charged > 0
    assert taker.account.positions[token] == 20  # every share: no fee taken in shares (V2)
    assert taker.account.balance == cash - 20 * price - charged  # the fee in pUSD, on top
    (trade,) = taker.account.trades
    assert (trade.size, trade.fee) == (Decimal(20), charged)
    # The maker: exactly its price for its shares, no fee.
    assert maker.account.positions[token] == 30 and maker.account.balance == Decimal(100_000) + 20 * price
    # The official client reads the balances as the venue's millionths of pUSD and shares.
    page = orjson.loads(
        (
            await taker.http.get(
                "/balance-allowance",
                params={"asset_type": "CONDITIONAL", "token_id": token},
                headers=create_level_2_headers(
                    taker.signer, taker.creds, RequestArgs("GET", "/balance-allowance")
                ),
            )
        ).content
    )
    assert page["balance"] == "20000000"


async def test_a_taker_sell_receives_its_proceeds_less_the_fee_in_pusd(sim: PolymarketSimulator) -> None:
    market = sim.feed.markets[0]
    token = market.yes
    rate = Decimal(str(sim.feed._gamma(market)["feeSchedule"]["rate"]))
    taker = Client(sim, KEYS[1])
    taker.account.positions[token] = Decimal(30)
    bid, _ = sim.tokens[token].top()
    assert bid is not None
    cash = taker.account.balance
    answer = await taker.order(token, "SELL", str(bid), "10", "FAK")  # takes the market's best bid
    assert answer["success"] and answer["takingAmount"] == str(10 * bid).rstrip("0").rstrip(".")
    assert taker.account.positions[token] == 20
    assert taker.account.balance == cash + 10 * bid - fee(Decimal(10), bid, rate)


async def test_a_fee_free_market_charges_nothing(sim: PolymarketSimulator) -> None:
    token = sim.feed.markets[1].yes  # the Fed market: no fee schedule
    assert sim.tokens[token].fees is None
    taker = Client(sim, KEYS[1])
    _, ask = sim.tokens[token].top()
    assert ask is not None
    cash = taker.account.balance
    await taker.order(token, "BUY", str(ask), "10", "FAK")
    assert taker.account.positions[token] == 10 and taker.account.balance == cash - 10 * ask


def drain(receive: trio.MemoryReceiveChannel[bytes]) -> list[dict[str, Any]]:
    out = []
    while True:
        try:
            out.append(orjson.loads(receive.receive_nowait()))
        except trio.WouldBlock:
            return out


async def test_the_user_channel_can_trail_the_answer(sim: PolymarketSimulator) -> None:
    token = sim.feed.markets[0].yes
    client = Client(sim, KEYS[1])
    news = client.listen(901)
    assert sim.apply_faults({"user_lag_s": 0.2}) == {"user_lag_s": 0.2}
    answer = await client.order(token, "BUY", "0.05", "10")
    assert answer["success"] and answer["status"] == "live"
    assert drain(news) == []  # answered, and the channel has said nothing yet
    await trio.sleep(0.25)
    sim.step()
    (placed,) = drain(news)
    assert (placed["type"], placed["id"]) == ("PLACEMENT", answer["orderID"])


async def test_the_answer_can_trail_the_user_channel(sim: PolymarketSimulator) -> None:
    token = sim.feed.markets[0].yes
    client = Client(sim, KEYS[1])
    news = client.listen(902)
    sim.apply_faults({"answer_lag_s": 0.3})
    seen: list[tuple[str, float]] = []

    async def watch() -> None:
        frame = orjson.loads(await news.receive())
        seen.append((frame["type"], trio.current_time()))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        start = trio.current_time()
        answer = await client.order(token, "BUY", "0.05", "10")
        answered = trio.current_time()
    assert answered - start >= 0.3
    ((kind, at),) = seen
    assert kind == "PLACEMENT" and at < answered  # the channel told first
    assert answer["orderID"] in sim.orders
    for bad in (-1, "later", float("inf")):
        with pytest.raises(ValueError):
            sim.apply_faults({"answer_lag_s": bad})


async def test_a_buy_of_yes_meets_a_buy_of_no_and_they_mint_a_pair(sim: PolymarketSimulator) -> None:
    """docs.polymarket.com/developers/CLOB: "the contract enables complementary tokens to match
    across a unified order book"; the V2 exchange's MINT match; the live capture
    `nt_py_user_trade1.json` (a Yes buy at 0.518 filled partly by a No buy at 0.482)."""
    market = sim.feed.markets[0]
    better, _ = widen(sim, market.yes)
    no_buyer, yes_buyer = Client(sim, KEYS[1]), Client(sim, KEYS[2])
    no_price = 1 - better
    a = (await no_buyer.order(market.no, "BUY", str(no_price), "10"))["orderID"]
    assert sim.orders[a].status == "LIVE"  # nothing of the market's meets it
    cash = yes_buyer.account.balance
    answer = await yes_buyer.order(market.yes, "BUY", str(better), "10")
    assert answer["status"] == "matched"
    # One pair minted: each side holds its token, having paid its own price (the taker its fee).
    assert no_buyer.account.positions[market.no] == 10 and sim.orders[a].status == "MATCHED"
    assert no_buyer.account.balance == Decimal(100_000) - 10 * no_price
    (taken,) = yes_buyer.account.trades
    assert (taken.price, taken.size) == (better, Decimal(10)) and taken.fee > 0
    assert yes_buyer.account.positions[market.yes] == 10
    assert yes_buyer.account.balance == cash - 10 * better - taken.fee
    # Told as the venue tells it: the taker's terms on top, the maker's own in `maker_orders`.
    for t in (taken, no_buyer.account.trades[0]):
        told = sim._trade_json(t)
        assert (told["asset_id"], told["side"], told["price"]) == (market.yes, "BUY", str(better))
        (maker,) = told["maker_orders"]
        assert (maker["order_id"], maker["asset_id"], maker["outcome"], maker["side"], maker["price"]) == (
            a,
            market.no,
            "No",
            "BUY",
            str(no_price),
        )


async def test_a_sale_of_yes_meets_a_sale_of_no_and_they_merge_a_pair(sim: PolymarketSimulator) -> None:
    market = sim.feed.markets[0]
    _, worse = widen(sim, market.yes)
    yes_seller, no_seller = Client(sim, KEYS[1]), Client(sim, KEYS[2])
    yes_seller.account.positions[market.yes] = Decimal(10)
    no_seller.account.positions[market.no] = Decimal(10)
    a = (await yes_seller.order(market.yes, "SELL", str(worse), "10"))["orderID"]
    answer = await no_seller.order(market.no, "SELL", str(1 - worse), "10")
    assert answer["status"] == "matched" and sim.orders[a].status == "MATCHED"
    (taken,) = no_seller.account.trades
    # The pair is redeemed: each seller is paid its own price (the taker less its fee).
    assert yes_seller.account.positions[market.yes] == 0 and no_seller.account.positions[market.no] == 0
    assert yes_seller.account.balance == Decimal(100_000) + 10 * worse
    assert no_seller.account.balance == Decimal(100_000) + 10 * (1 - worse) - taken.fee


@pytest.mark.parametrize(
    "change",
    [
        {"salt": 2**300},
        {"salt": -1},
        {"makerAmount": "-5"},
        {"takerAmount": "1e6"},
        {"tokenId": "abc"},
        {"maker": "0x123"},
        {"metadata": "zz"},
        {"timestamp": None},
        {"signature": "0x" + "11" * 65},
        {"signature": 7},
        {"side": 0},
        {"signatureType": "EOA"},
    ],
    ids=repr,
)
async def test_a_hostile_order_gets_the_venues_error_and_the_venue_goes_on(
    sim: PolymarketSimulator, change: dict[str, Any]
) -> None:
    token = sim.feed.markets[0].yes
    client = Client(sim, KEYS[1])
    signed = OrderBuilder(client.signer).build_order(
        OrderArgsV2(token_id=token, price=0.05, size=10.0, side="BUY"),
        CreateOrderOptions(tick_size="0.01", neg_risk=False),
    )
    body = order_to_json_v2(signed, client.creds.api_key, "GTC")
    body["order"].update(change)
    answer = await client.post("/order", body)
    assert answer.status_code == 400 and "error" in answer.json()
    assert sim.orders == {}
    assert (await client.order(token, "BUY", "0.05", "10"))["success"]  # and it goes on


async def test_a_resting_order_shows_in_both_views_of_the_public_book(sim: PolymarketSimulator) -> None:
    market = sim.feed.markets[0]
    client = Client(sim, KEYS[1])
    send, receive = trio.open_memory_channel[bytes](1000)
    peer = sim.new_peer(903, send, "/ws/market")
    sim.sessions[903] = peer
    await sim.on_text(
        peer, orjson.dumps({"assets_ids": [market.yes, market.no], "initial_dump": False}).decode()
    )
    placed = (await client.order(market.yes, "BUY", "0.05", "10"))["orderID"]
    # Announced: the Yes bid at 0.05 and the No ask at 0.95, each with its book's top.
    (change,) = drain(receive)
    assert {(e["asset_id"], e["side"], e["price"], e["size"]) for e in change["price_changes"]} == {
        (market.yes, "BUY", "0.05", "10"),
        (market.no, "SELL", "0.95", "10"),
    }
    yes_book, no_book = sim.summary(market.yes), sim.summary(market.no)
    assert {"price": "0.05", "size": "10"} in yes_book["bids"]
    assert {"price": "0.95", "size": "10"} in no_book["asks"]
    # A feed frame of the market (its levels only) is sent with ours added where they meet: the
    # market bids 3 at 0.05 behind our 10.
    entry = {"asset_id": market.yes, "price": "0.05", "size": "3", "side": "BUY", "hash": "", "best_bid": "0"}
    feed = orjson.dumps(
        {"event_type": "price_change", "market": market.condition_id, "price_changes": [entry]}
    )
    sim.on_market_frame(feed, sim.clock())
    sim.publish(feed)
    (shown,) = drain(receive)
    (level,) = shown["price_changes"]
    assert (level["price"], level["size"], level["best_bid"]) == ("0.05", "13", _fmt_top(sim, market.yes))
    assert sim.orders[placed].status == "LIVE"
    # Cancelled: the levels are announced as they are without it (the market's 3 stay).
    sim._cancel_ids(client.account, [placed])
    (gone,) = drain(receive)
    assert {(e["asset_id"], e["price"], e["size"]) for e in gone["price_changes"]} == {
        (market.yes, "0.05", "3"),
        (market.no, "0.95", "0"),
    }
    assert {"price": "0.05", "size": "3"} in sim.summary(market.yes)["bids"]


def _fmt_top(sim: PolymarketSimulator, token: str) -> str:
    bid, _ = sim.top(token)
    assert bid is not None
    return str(bid.normalize())
