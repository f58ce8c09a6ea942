"""Polymarket order ids are hex hashes ("0x..."), the same order whatever the case of their
digits; the engine indexes them by their exact text. The connector reads every order id the venue
sends in lower case (the spelling `signing.py` prepares), so an order the venue names in upper
case (its `POST /order` answer, the user channel's orders and trades, `/data/orders`,
`/data/order/{id}`, `/data/trades`) is still ours: its fills booked once, live and when caught
up after a restart. The simulator below answers every order id in upper case."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.support.live_support import Probe, until
from tests.support.polymarket_live import API, V, cache, start, yes
from tradingd.connectors.polymarket.codec import PolymarketDecoder, decode_open_orders, decode_order
from tradingd.engine import BookUpdate, Fill, OrderState, Subscription
from tradingd.engine.store.journal import OrderJournal
from tradingd.engine.venue import InstrumentRegistry
from tradingd.simulators.polymarket.simulator import PolymarketSimulator, serve

__all__ = ["cache"]  # the fixture (tests/support/polymarket_live), used by name


def shout(order_id: Any) -> Any:
    """`0xabc...` as `0xABC...` (the same order to the venue)."""
    if isinstance(order_id, str) and order_id.startswith("0x"):
        return "0x" + order_id[2:].upper()
    return order_id


class ShoutingSimulator(PolymarketSimulator):
    """The simulator, but every order id it sends is in upper-case hex."""

    def place(self, account: Any, payload: Any) -> dict[str, Any]:
        answer = super().place(account, payload)
        return {**answer, "orderID": shout(answer.get("orderID"))}

    def _order_json(self, sim: Any, kind: str | None = None, status: str | None = None) -> dict[str, Any]:
        out = super()._order_json(sim, kind, status)
        return {**out, "id": shout(out["id"])}

    def _trade_json(self, t: Any, *, rest: bool = False) -> dict[str, Any]:
        out = super()._trade_json(t, rest=rest)
        makers = [{**m, "order_id": shout(m["order_id"])} for m in out["maker_orders"]]
        return {**out, "taker_order_id": shout(out["taker_order_id"]), "maker_orders": makers}


async def serve_shouting(nursery: trio.Nursery) -> tuple[ShoutingSimulator, str]:
    simulator = ShoutingSimulator(seed=5, step_s=0.05, mine_s=0.1, confirm_s=0.1)
    binds = await nursery.start(serve, simulator)
    return simulator, binds[0].removeprefix("http://")


@pytest.fixture
async def sim(nursery: trio.Nursery) -> tuple[ShoutingSimulator, str]:
    return await serve_shouting(nursery)


def upper_ids_seen(simulator: PolymarketSimulator) -> None:
    """The simulator really names our orders in upper case (the test tests something)."""
    some = next(iter(simulator.orders))
    assert simulator._order_json(simulator.orders[some])["id"] == shout(some) != some


async def test_a_resting_order_named_in_upper_case_is_filled_once_by_its_later_fill(
    sim: tuple[ShoutingSimulator, str], nursery: trio.Nursery, cache: Path
) -> None:
    """Accepted (the answer names it `0xABC...`, prepared as `0xabc...`), then hit by another
    participant: the user channel's fill, naming it in upper case, is booked to it, once."""
    simulator, base = sim
    token = yes(simulator, 0)
    probe = Probe("p", [Subscription(V, token)])
    engine = await start(nursery, base, probe, cache=cache)
    await until(lambda: bool(probe.of(BookUpdate, token)))
    resting = await probe.ctx.buy(V, token, 10, price="0.05")
    assert resting.status is OrderState.OPEN and resting.order_id in simulator.orders
    assert resting.order_id == (resting.order_id or "").lower()
    upper_ids_seen(simulator)
    simulator.trade(token, "sell", "0.05", "10")  # through our bid
    tracker = engine.flow.tracker
    await until(
        lambda: (o := tracker.get(resting.client_order_id or "")) is not None and o.state is OrderState.FILLED
    )
    order = tracker.get(resting.client_order_id or "")
    assert order is not None and order.fills_size == 10
    fills = probe.of(Fill)
    assert [(f.client_order_id, f.order_id, f.size) for f in fills] == [
        (resting.client_order_id, resting.order_id, Decimal(10))
    ]
    assert probe.ctx.position(V, token) == 10 == simulator.accounts[API.key].positions[token]
    assert tracker.stats.duplicate_fills == 0


async def test_a_taker_order_named_in_upper_case_waits_for_and_books_its_fill(
    sim: tuple[ShoutingSimulator, str], nursery: trio.Nursery, cache: Path
) -> None:
    """A taker order matched at once: the answer and its fill both name it in upper case; the
    order is filled by that fill, booked once."""
    simulator, base = sim
    token = yes(simulator, 0)
    probe = Probe("p", [Subscription(V, token)])
    engine = await start(nursery, base, probe, cache=cache)
    await until(lambda: bool(probe.of(BookUpdate, token)))
    ask = Decimal(repr(probe.of(BookUpdate, token)[-1].best_ask))
    filled = await probe.ctx.buy(V, token, 5, price=ask + Decimal("0.02"))
    assert filled.status is OrderState.FILLED and filled.filled_size == 5
    (fill,) = probe.of(Fill)
    assert (fill.client_order_id, fill.order_id) == (filled.client_order_id, filled.order_id)
    assert probe.ctx.position(V, token) == 5 == simulator.accounts[API.key].positions[token]
    assert engine.flow.tracker.stats.duplicate_fills == 0


async def test_a_fill_named_in_upper_case_while_down_is_caught_up_once(
    sim: tuple[ShoutingSimulator, str], nursery: trio.Nursery, cache: Path, tmp_path: Path
) -> None:
    """A resting order fills while the daemon is down, another rests on: the restart's catch-up
    (`/data/orders`, `/data/order/{id}`, `/data/trades`, all naming them in upper case) finds
    the fill and books it once, and keeps the resting order as ours (never a foreign order)."""
    simulator, base = sim
    token = yes(simulator, 0)
    path = tmp_path / "journal.sqlite"
    journal = OrderJournal(path)
    first = Probe("p", [Subscription(V, token)])
    async with trio.open_nursery() as daemon:
        await start(daemon, base, first, cache=cache, journal=journal)
        await until(lambda: bool(first.of(BookUpdate, token)))
        hit = await first.ctx.buy(V, token, 10, price="0.05")
        kept = await first.ctx.buy(V, token, 10, price="0.03")
        daemon.cancel_scope.cancel()  # the daemon dies
    journal.close()
    upper_ids_seen(simulator)
    simulator.trade(token, "sell", "0.05", "10")  # fills `hit` while we are away
    assert simulator.orders[hit.order_id or ""].status == "MATCHED"
    second = Probe("p", [Subscription(V, token, {"ticker"})])
    engine = await start(nursery, base, second, cache=cache, journal=OrderJournal(path))
    tracker = engine.flow.tracker

    def state(cid: str | None) -> OrderState | None:
        order = tracker.get(cid or "")
        return None if order is None else order.state

    await until(
        lambda: (
            (state(hit.client_order_id), state(kept.client_order_id)) == (OrderState.FILLED, OrderState.OPEN)
        )
    )
    order = tracker.get(hit.client_order_id or "")
    assert order is not None and order.fills_size == 10
    assert [(f.client_order_id, f.size) for f in second.of(Fill)] == [(hit.client_order_id, Decimal(10))]
    assert second.ctx.position(V, token) == 10 == simulator.accounts[API.key].positions[token]
    assert simulator.orders[kept.order_id or ""].status == "LIVE"  # ours: not cancelled as foreign
    assert tracker.stats.duplicate_fills == 0


# -- the decoders, one by one ---------------------------------------------------------------------
ID = "0x" + "ab" * 32


def test_every_order_id_the_decoders_read_is_lower_case() -> None:
    """The user channel's order and trade events, `/data/orders`, `/data/order/{id}` and
    `/data/trades`: each id in upper case comes out as the prepared spelling."""
    upper = shout(ID)
    order = {
        "id": upper,
        "asset_id": "1",
        "side": "BUY",
        "price": "0.5",
        "original_size": "10",
        "size_matched": "0",
        "status": "LIVE",
    }
    page = decode_open_orders(f'{{"data": [{_json(order)}], "next_cursor": "LTE="}}'.encode(), 1)
    assert [u.order_id for u in page.updates] == [ID]
    one = decode_order(_json(order).encode(), 1)
    assert one is not None and one.order_id == ID
    bad = {**order, "price": "nope"}
    refused = decode_open_orders(f'{{"data": [{_json(bad)}], "next_cursor": "LTE="}}'.encode(), 1).refused
    assert [r.id for r in refused] == [ID]
    decoder = PolymarketDecoder(InstrumentRegistry(), api_key="k")
    (update,) = decoder.decode(_json({**order, "event_type": "order", "type": "PLACEMENT"}), 1)
    assert getattr(update, "order_id", None) == ID
    trade = {
        "event_type": "trade",
        "id": "t1",
        "asset_id": "1",
        "side": "BUY",
        "price": "0.5",
        "size": "2",
        "status": "MATCHED",
        "taker_order_id": upper,
        "trader_side": "TAKER",
        "owner": "k",
        "maker_orders": [],
    }
    events = decoder.decode(_json(trade), 1)
    assert [e.order_id for e in events if isinstance(e, Fill)] == [ID]
    maker = {
        **trade,
        "id": "t2",
        "trader_side": "MAKER",
        "taker_order_id": "0x" + "cd" * 32,
        "maker_orders": [
            {"order_id": upper, "matched_amount": "2", "price": "0.5", "owner": "k", "asset_id": "1"}
        ],
    }
    events = decoder.decode(_json(maker), 1)
    assert [e.order_id for e in events if isinstance(e, Fill)] == [ID]


def _json(obj: Any) -> str:
    import orjson

    return orjson.dumps(obj).decode()
