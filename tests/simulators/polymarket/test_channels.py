"""Hostile subscription messages on the simulator's WebSocket channels: a venue never dies of a
client's message; the market channel ignores a malformed one, the user channel closes on bad auth."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest
import trio

from tests.support.sim_clock import fixed_clock
from tradingd.simulators.polymarket.simulator import DEMO_API, PolymarketSimulator

HOSTILE: list[Any] = [
    {"assets_ids": 5},
    {"assets_ids": "abc"},
    {"assets_ids": [None, {}], "operation": "subscribe"},
    {"operation": "unsubscribe", "assets_ids": 3},
    {"auth": [1]},
    {"auth": "x"},
    {"auth": {"apiKey": 5}},
    {"markets": 5, "auth": {}},
    {"operation": "subscribe", "markets": 7},
    [1, 2],
    "PING PONG",
]
_ids = itertools.count(5000)


async def say(sim: PolymarketSimulator, path: str, message: Any) -> Any:
    send, _ = trio.open_memory_channel[bytes](100)
    peer = sim.new_peer(next(_ids), send, path)
    sim.sessions[peer.id] = peer
    await sim.on_text(peer, message if isinstance(message, str) else orjson.dumps(message).decode())
    return peer


@pytest.mark.parametrize("message", HOSTILE, ids=repr)
@pytest.mark.parametrize("path", ["/ws/market", "/ws/user"])
async def test_a_hostile_subscription_is_survived(path: str, message: Any) -> None:
    sim = PolymarketSimulator(seed=3, clock=fixed_clock())
    peer = await say(sim, path, message)
    assert peer.assets == set() and peer.account is None
    # The venue goes on: a good subscription on the same channel works.
    token = sim.feed.markets[0].yes
    good = (
        {"assets_ids": [token], "type": "market"}
        if path == "/ws/market"
        else {"auth": {"apiKey": DEMO_API.key, "secret": DEMO_API.secret, "passphrase": DEMO_API.passphrase}}
    )
    other = await say(sim, path, good)
    assert other.assets == {token} if path == "/ws/market" else other.account is not None
