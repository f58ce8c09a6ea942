"""The simulator's switches for Polymarket's known failures (simulators/polymarket/venue_faults.py):
their terms checked before anything is applied, what each refuses and with which content type,
and the `silent` market channel that still answers PING."""

from __future__ import annotations

import functools

import httpx
import orjson
import pytest
import trio
import trio_websocket

from tests.support.sim_clock import fixed_clock
from tradingd.simulators.polymarket.simulator import PolymarketSimulator, serve


def client_of(sim: PolymarketSimulator) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=sim), base_url="http://sim")


async def test_switch_terms_are_checked_before_anything_is_applied() -> None:
    sim = PolymarketSimulator(seed=3, clock=fixed_clock())
    async with client_of(sim) as http:
        bad = await http.post("/_sim/faults", json={"trading": "closed", "too_early": 2})
        assert bad.status_code == 400 and "trading" in bad.json()["error"]
        assert sim.venue_faults.too_early == 0 and sim.venue_faults.trading == "normal"
        for spec in ({"too_early": -1}, {"silent_s": -1}, {"cloudflare": "many"}):
            assert (await http.post("/_sim/faults", json=spec)).status_code == 400
        ok = await http.post("/_sim/faults", json={"too_early": 2, "trading": "cancel_only"})
        assert ok.json()["applied"] == {"too_early": 2, "trading": "cancel_only"}


async def test_each_refusal_has_the_venues_status_body_and_content_type() -> None:
    sim = PolymarketSimulator(seed=3, clock=fixed_clock())
    token = sim.feed.markets[0].yes
    async with client_of(sim) as http:
        sim.apply_faults({"cloudflare": 1, "too_early": 1})
        blocked = await http.get("/book", params={"token_id": token})  # any path, public too
        assert blocked.status_code == 403 and blocked.headers["content-type"].startswith("text/html")
        assert b"<title>Attention Required! | Cloudflare</title>" in blocked.content
        assert (await http.get("/book", params={"token_id": token})).status_code == 200  # spent
        # 425 only for order requests: a read passes, and keeps the switch for the order.
        assert (await http.get("/midpoint", params={"token_id": token})).status_code == 200
        early = await http.post("/order", content=b"{}")
        assert (early.status_code, early.json()) == (425, {"error": "Too Early"})
        assert early.headers["content-type"] == "application/json"
        sim.apply_faults({"trading": "disabled"})
        for method, path in (("DELETE", "/cancel-all"), ("POST", "/order")):
            refused = await http.request(method, path, content=b"{}")
            assert refused.status_code == 503
            assert refused.json() == {
                "error": "Trading is currently disabled. Check polymarket.com for updates"
            }
        # Authenticated reads too ("any authenticated endpoint"); public reads are not refused.
        headers = {"POLY_API_KEY": "k"}
        assert (await http.get("/data/orders", headers=headers)).status_code == 503
        assert (await http.get("/book", params={"token_id": token})).status_code == 200
        sim.apply_faults({"trading": "normal"})
        assert (await http.post("/order", content=b"{}")).status_code == 401  # to the CLOB again
    assert sim.venue_faults.refused == 5


async def test_a_silent_market_channel_answers_ping_and_nothing_else(nursery: trio.Nursery) -> None:
    sim = PolymarketSimulator(seed=3, clock=fixed_clock(), step_s=0.05)
    (base,) = await nursery.start(functools.partial(serve, sim))
    token = sim.feed.markets[0].yes
    sim.apply_faults({"silent_s": 0.6})
    async with trio_websocket.open_websocket_url(base.replace("http", "ws") + "/ws/market") as ws:
        await ws.send_message(orjson.dumps({"assets_ids": [token], "type": "market"}).decode())
        await ws.send_message("PING")
        assert await ws.get_message() == "PONG"  # no book before it, though one was asked for
        with trio.move_on_after(0.3) as quiet:
            await ws.get_message()
        assert quiet.cancelled_caught
        await trio.sleep(0.4)  # the silence ends: the market speaks again (changes, not the dump)
        with trio.fail_after(3):
            frame = orjson.loads(await ws.get_message())
        events = frame if isinstance(frame, list) else [frame]
        assert all(e["event_type"] != "book" or e["asset_id"] == token for e in events)
    assert not sim.venue_faults.silent


@pytest.mark.parametrize("spec", [{"silent": True}, {"silent_s": 5}])
async def test_silence_is_lifted_by_switching_it_off(spec: dict[str, object]) -> None:
    sim = PolymarketSimulator(seed=3, clock=fixed_clock())
    sim.apply_faults(spec)
    assert sim.venue_faults.silent
    sim.apply_faults({"silent": False})
    assert not sim.venue_faults.silent
