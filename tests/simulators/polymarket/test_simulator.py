"""The Polymarket simulator's own switches (`simulators.polymarket.simulator`): `trade` (another
participant's taker trade prints as a `last_trade_price`, VENUES.md §2.2, and fills the resting
client orders it reaches, as Derive's switch does) and `dump_delay_s` (a subscription's books,
and with them the subscription, come late). The simulator runs in-process: REST over ASGI, a
market-channel peer on a memory channel."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.polymarket_live import API, venue_book
from tests.support.sim_clock import fixed_clock
from tradingd.connectors.polymarket.codec import PolymarketDecoder
from tradingd.connectors.polymarket.execution import ClobRest, PolymarketExecution
from tradingd.connectors.polymarket.signing import OrderSigner
from tradingd.engine import OrderRequest, Side, Trade
from tradingd.engine.model import InstrumentRegistry, Order
from tradingd.simulators.polymarket.simulator import DEMO_ACCOUNT, DEMO_API, PolymarketSimulator

NOW_NS = 1_795_000_000 * 1_000_000_000


@pytest.fixture
def sim() -> PolymarketSimulator:
    return PolymarketSimulator(seed=3, clock=fixed_clock(), mine_s=0.01, confirm_s=0.01)


def execution_for(sim: PolymarketSimulator) -> PolymarketExecution:
    """Our client on the simulator (in-process), knowing its markets."""
    registry = InstrumentRegistry()
    decoder = PolymarketDecoder(registry)
    decoder.learn_markets([sim.feed._gamma(m) for m in sim.feed.markets])
    signer = OrderSigner(DEMO_ACCOUNT.private_key)
    rest = ClobRest(
        "http://sim",
        api=API,
        address=signer.address,
        client=httpx.AsyncClient(transport=httpx.ASGITransport(app=sim)),
    )
    return PolymarketExecution(rest, signer, registry, decoder.outcomes, fill_wait_s=0.0)


async def rest(ex: PolymarketExecution, token: str, price: str, n: int, side: str = "buy") -> str:
    """A resting order of 10 shares; its venue order id."""
    request = OrderRequest(
        venue="polymarket",
        instrument=token,
        side=Side(side),
        size=Decimal(10),
        price=Decimal(price),
        client_order_id=f"s-t-{n}",
        strategy="s",
    )
    o = Order(request, now_ns=NOW_NS)
    order_id = ex.prepare(o)
    assert order_id is not None
    await ex.place(o)
    return order_id


class Listener:
    """A market-channel client of the simulator, without a socket: what it is sent, as sent."""

    def __init__(self, sim: PolymarketSimulator, peer_id: int = 900) -> None:
        send, self._receive = trio.open_memory_channel[bytes](1000)
        self.peer = sim.new_peer(peer_id, send, "/ws/market")
        sim.sessions[peer_id] = self.peer
        self.sim = sim

    async def say(self, **message: Any) -> None:
        await self.sim.on_text(self.peer, orjson.dumps(message).decode())

    def frames(self) -> list[Any]:
        out = []
        while True:
            try:
                out.append(orjson.loads(self._receive.receive_nowait()))
            except trio.WouldBlock:
                return out


async def test_the_trade_switch_prints_and_fills_the_resting_orders_it_reaches(
    sim: PolymarketSimulator,
) -> None:
    market = sim.feed.markets[0]
    token = market.yes
    ex = execution_for(sim)
    reached = await rest(ex, token, "0.05", 1)
    below = await rest(ex, token, "0.03", 2)  # under the trade's price: not reached
    ours = Listener(sim)
    await ours.say(assets_ids=[token], type="market", initial_dump=False)
    other = Listener(sim, 901)
    await other.say(assets_ids=[market.no], type="market", initial_dump=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim), base_url="http://sim") as http:
        answer = await http.post(
            "/_sim/faults",
            json={"trade": {"token": token, "side": "sell", "price": "0.04", "size": "15"}},
        )
    assert answer.status_code == 200, answer.text
    printed = answer.json()["applied"]["trade"]
    assert (printed["token"], printed["side"], printed["price"], printed["size"]) == (
        token,
        "SELL",
        "0.04",
        "15",
    )
    # The sale at 0.04 went through our 0.05 bid (filled at its own price), not the 0.03 one.
    assert printed["orders"] == [reached]
    assert printed["trades"] == sim.orders[reached].trades and len(printed["trades"]) == 1
    assert (sim.orders[reached].status, sim.orders[reached].matched) == ("MATCHED", Decimal(10))
    assert (sim.orders[below].status, sim.orders[below].matched) == ("LIVE", Decimal(0))
    (made,) = [sim.trades[t] for t in printed["trades"]]
    assert (made.side.value, made.price, made.size) == ("buy", Decimal("0.05"), Decimal(10))
    assert sim.accounts[DEMO_API.key].positions[token] == 10
    # Printed on the market channel, to the token's subscribers only, as §2.2 shows it; then the
    # book's change: our filled bid's level gone (on the No token's view too, as its ask at 0.95).
    frame, change = ours.frames()
    (level,) = change["price_changes"]
    assert (change["event_type"], level["price"], level["size"], level["side"]) == (
        "price_change",
        "0.05",
        "0",
        "BUY",
    )
    assert list(frame) == [
        "asset_id",
        "event_type",
        "fee_rate_bps",
        "market",
        "price",
        "side",
        "size",
        "timestamp",
    ]
    assert (frame["event_type"], frame["market"], frame["side"]) == (
        "last_trade_price",
        market.condition_id,
        "SELL",
    )
    (mirror,) = other.frames()
    assert [(e["asset_id"], e["price"], e["size"], e["side"]) for e in mirror["price_changes"]] == [
        (market.no, "0.95", "0", "SELL")
    ]
    decoder = PolymarketDecoder(InstrumentRegistry())
    decoder.learn_markets([sim.feed._gamma(m) for m in sim.feed.markets])
    (trade,) = decoder.decode(orjson.dumps(frame), NOW_NS)
    assert isinstance(trade, Trade)
    assert (trade.instrument, trade.side, trade.price, trade.size) == (token, Side.SELL, 0.04, 15.0)
    assert sim.last_trade[token] == ("0.04", "SELL")


async def test_a_trade_fills_only_what_its_side_price_and_size_reach(sim: PolymarketSimulator) -> None:
    token = sim.feed.markets[0].yes
    ex = execution_for(sim)
    bid = await rest(ex, token, "0.05", 1)
    # A buyer lifts asks: our bid is not on its side.
    assert sim.trade(token, "buy", "0.02", "50")["orders"] == []
    # A seller above our bid does not reach it.
    assert sim.trade(token, "sell", "0.06", "50")["orders"] == []
    assert sim.orders[bid].matched == 0
    # A small sale through it fills part of it; the rest still rests.
    partial = sim.trade(token, "sell", "0.01", "4")
    assert partial["orders"] == [bid] and len(partial["trades"]) == 1
    assert (sim.orders[bid].status, sim.orders[bid].matched) == ("LIVE", Decimal(4))
    rest_of_it = sim.trade(token, "SELL", "0.01", "100")
    assert rest_of_it["orders"] == [bid]
    assert (sim.orders[bid].status, sim.orders[bid].matched) == ("MATCHED", Decimal(10))
    assert sim.accounts[DEMO_API.key].positions[token] == 10


@pytest.mark.parametrize(
    ("terms", "message"),
    [
        ({"token": "12345", "side": "sell", "price": "0.5", "size": "1"}, "no token"),
        ({"token": None, "side": "sell", "price": "0.5", "size": "1"}, "expected"),
        ({"side": "sell", "price": "0.5"}, "expected"),
        ({"side": "hold", "price": "0.5", "size": "1"}, "side must be buy or sell"),
        ({"side": "sell", "price": "0.055", "size": "1"}, "on the tick 0.01"),
        ({"side": "sell", "price": "1", "size": "1"}, r"in \(0, 1\)"),
        ({"side": "sell", "price": "0", "size": "1"}, r"in \(0, 1\)"),
        ({"side": "sell", "price": "0.5", "size": "0"}, "size 0 positive"),
        ({"side": "sell", "price": "0.5", "size": "NaN"}, "size NaN positive"),
        ({"side": "sell", "price": "half", "size": "1"}, "must be numbers"),
    ],
)
async def test_terms_the_venue_could_not_print_are_refused_and_nothing_happens(
    sim: PolymarketSimulator, terms: dict[str, str], message: str
) -> None:
    token = sim.feed.markets[0].yes
    ex = execution_for(sim)
    bid = await rest(ex, token, "0.05", 1)
    listener = Listener(sim)
    await listener.say(assets_ids=[token], type="market", initial_dump=False)
    last = sim.last_trade.get(token)
    with pytest.raises(ValueError, match=message):
        sim.apply_faults({"trade": {"token": token, **terms}})
    assert listener.frames() == [] and sim.last_trade.get(token) == last
    assert sim.trades == {} and sim.orders[bid].matched == 0
    with pytest.raises(ValueError, match="expected"):
        sim.apply_faults({"trade": ["not", "an", "object"]})


@settings(max_examples=60, deadline=None)
@given(
    price=st.decimals(min_value=Decimal("-0.5"), max_value=Decimal("1.5"), places=3),
    size=st.decimals(min_value=Decimal(-5), max_value=Decimal(1000), places=2),
)
def test_a_trade_prints_exactly_the_terms_it_was_given_or_is_refused(price: Decimal, size: Decimal) -> None:
    sim = PolymarketSimulator(seed=3, clock=fixed_clock())
    token = sim.feed.markets[0].yes  # tick 0.01
    valid = Decimal(0) < price < 1 and price % Decimal("0.01") == 0 and size > 0
    before = dict(sim.last_trade)
    if not valid:
        with pytest.raises(ValueError):
            sim.trade(token, "buy", str(price), str(size))
        assert sim.last_trade == before  # nothing printed
        return
    printed = sim.trade(token, "buy", str(price), str(size))
    assert (Decimal(printed["price"]), Decimal(printed["size"])) == (price, size)
    assert Decimal(sim.last_trade[token][0]) == price and sim.last_trade[token][1] == "BUY"


async def test_a_delayed_dump_holds_the_subscription_until_its_books() -> None:
    sim = PolymarketSimulator(seed=3, clock=fixed_clock())
    assert sim.apply_faults({"dump_delay_s": 0.2}) == {"dump_delay_s": 0.2}
    token, dropped = sim.feed.markets[0].yes, sim.feed.markets[1].yes
    listener = Listener(sim)
    await listener.say(
        assets_ids=[token, dropped], type="market", custom_feature_enabled=False, initial_dump=True
    )
    assert listener.peer.subscribed and listener.peer.assets == set()
    for _ in range(40):  # the market moves: nothing of the tokens before their books
        sim.step()
    sim.trade(token, "sell", "0.04", "1")
    assert listener.frames() == []
    await listener.say(assets_ids=[dropped], operation="unsubscribe")  # left before its book came
    await listener.say(assets_ids=[token], operation="subscribe")  # asked again: one book, not two
    await trio.sleep(0.25)
    sim.step()
    frames = listener.frames()
    assert frames, "the books never came"
    books = frames[0]
    assert isinstance(books, list) and [b["event_type"] for b in books] == ["book"]
    assert books[0]["asset_id"] == token and listener.peer.assets == {token}
    assert all(f["asset_id"] == token for f in frames[1:] if isinstance(f, dict) and "asset_id" in f)
    # Its changes follow from now on; the same books as the simulator's own.
    decoder = PolymarketDecoder(InstrumentRegistry())
    decoder.learn_markets([sim.feed._gamma(m) for m in sim.feed.markets])
    for f in frames:
        decoder.decode(orjson.dumps(f), NOW_NS)
    for _ in range(40):
        sim.step()
    for f in listener.frames():
        decoder.decode(orjson.dumps(f), NOW_NS)
    mine = decoder.book(token)
    assert mine is not None and mine.valid
    assert (mine.bids, mine.asks) == venue_book(sim, token)


async def test_without_a_delay_the_books_come_at_once_and_bad_delays_are_refused(
    sim: PolymarketSimulator,
) -> None:
    token = sim.feed.markets[0].yes
    listener = Listener(sim)
    await listener.say(assets_ids=[token], type="market", initial_dump=True)
    (books,) = listener.frames()
    assert [b["asset_id"] for b in books] == [token] and listener.peer.assets == {token}
    for bad in (-1, "soon", float("nan")):
        with pytest.raises(ValueError):
            sim.apply_faults({"dump_delay_s": bad})
    assert sim.dump_delay_s == 0


async def test_every_cursor_page_refuses_a_cursor_that_is_not_one() -> None:
    """One pager for `/markets`, the account's pages and clob_reads' market pages: a negative
    or unreadable `next_cursor` is the venue's 400 on each (the simulator's own pager once read
    a negative one as an offset from the end)."""
    sim = PolymarketSimulator(seed=3, clock=fixed_clock())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim), base_url="http://sim") as http:
        first = (await http.get("/markets")).json()
        assert (
            first["count"] == len(first["data"]) == len(sim.condition_tokens)
            and first["next_cursor"] == "LTE="
        )
        for path in ("/markets", "/sampling-markets"):
            for cursor in ("LTU=", "not base64!"):  # base64 "-5"
                answer = await http.get(path, params={"next_cursor": cursor})
                assert answer.status_code == 400 and "invalid next_cursor" in answer.text, (path, cursor)
