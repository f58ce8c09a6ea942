"""The switches every simulator shares, driven over HTTP as a user drives them (`curl`), against
a minimal venue built on the base: what each switch does to a connected client."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable

import httpx
import orjson
import pytest
import trio
import trio_websocket

from tradingd.engine.sim.server import SimPeer, SimulatorServer, serve


class EchoVenue(SimulatorServer[SimPeer]):
    """A market of one counter, published to every peer; peers' frames echoed back."""

    venue = "echo"
    ws_paths = ("/ws",)

    def __init__(self) -> None:
        super().__init__(step_s=0.01)
        self.n = 0

    def market_step(self) -> list[bytes]:
        self.n += 1
        return [orjson.dumps({"book": "X", "n": self.n})]

    def on_market_frame(self, frame: bytes, now: int) -> None:
        pass  # no state beyond the counter

    def deliveries(self, frame: bytes) -> Iterable[tuple[SimPeer, bytes]]:
        if self.faults.gap and self.faults.take_gap("X"):
            return []
        return [(p, frame) for p in list(self.sessions.values())]

    def new_peer(self, peer_id: int, outbox: trio.MemorySendChannel[bytes], path: str) -> SimPeer:
        return SimPeer(peer_id, outbox, path)

    async def on_text(self, peer: SimPeer, text: str) -> None:
        self.send(peer, text.encode())


async def read_forever(ws: trio_websocket.WebSocketConnection) -> None:
    while True:
        await ws.get_message()


async def test_switches_over_http_act_on_connected_clients(nursery: trio.Nursery) -> None:
    sim = EchoVenue()
    binds = await nursery.start(functools.partial(serve, sim))
    base = binds[0]
    url = base.replace("http://", "ws://") + "/ws"
    async with httpx.AsyncClient(base_url=base) as http:
        async with trio_websocket.open_websocket_url(url) as ws:
            first = orjson.loads(await ws.get_message())
            # gap: exactly one market frame is lost
            r = await http.post("/_sim/faults", json={"gap": "X"})
            assert r.json()["applied"] == {"gap": "X"}
            seen = [orjson.loads(await ws.get_message())["n"] for _ in range(20)]
            gaps = [b - a for a, b in itertools.pairwise([first["n"], *seen])]
            assert gaps.count(2) == 1 and set(gaps) <= {1, 2}
            # garbage: frames a client must survive arrive (n of them: both kinds), then the
            # market goes on
            await http.post("/_sim/faults", json={"garbage": 2})
            raw = [await ws.get_message() for _ in range(30)]
            assert any("not json" in str(m) for m in raw)
            # stall: nothing for the stall, then the queued frames
            await http.post("/_sim/faults", json={"stall_s": 0.3})
            with trio.move_on_after(0.2) as quiet:
                while True:  # drain what was already on its way
                    await ws.get_message()
            assert quiet.cancelled_caught
            state = (await http.get("/_sim/state")).json()
            assert [s["path"] for s in state["sessions"]] == ["/ws"]
            # drop: the connection is closed by the simulator
            r = await http.post("/_sim/faults", json={"drop": True})
            assert r.json()["applied"]["dropped"] == 1
            with trio.fail_after(2), pytest.raises(trio_websocket.ConnectionClosed) as closed:
                await read_forever(ws)
            reason = closed.value.reason
            assert reason is not None and "dropped" in (reason.reason or "")
        assert (await http.get("/nope")).status_code == 404
        reject = await http.post("/_sim/faults", json={"reject": {"count": 2}})
        assert reject.json()["applied"]["reject"] == 2
        assert sim.faults.take_reject() == ("rejected", "rejected by the simulator")
        # An unknown WebSocket path is refused.
        with pytest.raises((trio_websocket.ConnectionRejected, trio_websocket.ConnectionClosed)):
            async with trio_websocket.open_websocket_url(base.replace("http://", "ws://") + "/other") as ws:
                await ws.get_message()


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"not json", "JSONDecodeError"),
        (b'{"stall_s": "soon"}', "ValueError"),
        (b'["drop"]', "ValueError"),  # not a JSON object
    ],
)
async def test_a_switch_with_bad_terms_is_a_400_that_names_the_mistake(
    nursery: trio.Nursery, body: bytes, error: str
) -> None:
    sim = EchoVenue()
    binds = await nursery.start(functools.partial(serve, sim))
    async with httpx.AsyncClient(base_url=binds[0]) as http:
        r = await http.post("/_sim/faults", content=body)
        assert r.status_code == 400 and r.json()["error"].startswith(error)
        assert sim.faults.stall_until == 0 and (await http.get("/_sim/state")).status_code == 200
