"""What the shared fault switches show (issue 16, the live tour): `garbage` of n is n malformed
frames, each counted and logged once by the daemon's session; a switch set and not yet fired is
listed under `faults` in `/_sim/state`; a `gap` with no book subscribed says it waits."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
import structlog
import trio

from tests.support.deribit_live import PERP, serve_sim, start
from tradingd.engine import DataKind, MarketEvent, Strategy, Subscription
from tradingd.engine.sim import SimulatorServer
from tradingd.simulators.deribit.simulator import DeribitSimulator
from tradingd.simulators.derive.simulator import DeriveSimulator
from tradingd.simulators.polymarket.simulator import PolymarketSimulator

SIMULATORS: dict[str, Callable[[], SimulatorServer]] = {  # type: ignore[type-arg]
    "deribit": lambda: DeribitSimulator(seed=5),
    "derive": lambda: DeriveSimulator(seed=2),
    "polymarket": lambda: PolymarketSimulator(seed=3),
}


class Tickers(Strategy):
    """Subscribes the perpetual's ticker only (as the tour's example strategies do)."""

    def required_subscriptions(self) -> list[Subscription]:
        return [Subscription("deribit", PERP, {DataKind.TICKER})]

    async def on_event(self, event: MarketEvent) -> None:
        pass  # it only holds the subscription


@pytest.mark.parametrize("n", [1, 3])
async def test_garbage_of_n_is_n_malformed_frames_counted_and_logged_once_each(
    nursery: trio.Nursery, n: int
) -> None:
    with structlog.testing.capture_logs() as logs:
        sim, base = await serve_sim(nursery)
        engine = await start(nursery, base, Tickers("tickers"))
        session = engine.venues["deribit"].stats
        sim.apply_faults({"garbage": n})
        with trio.fail_after(10):
            while session.malformed < n:
                await trio.sleep(0.01)
            # The garbage leaves in one step: once market frames of many later steps are in, a
            # second round (or a frame counted twice) would have been counted by now.
            frames = session.frames
            while session.frames < frames + 40:
                await trio.sleep(0.01)
    assert session.malformed == n
    lines = [e for e in logs if e["event"] in ("frame.malformed", "frame.failed", "frame.decoder_fault")]
    assert len(lines) == n, lines


@pytest.mark.parametrize("venue", sorted(SIMULATORS))
async def test_garbage_of_n_sends_n_frames_to_each_peer(venue: str) -> None:
    sim = SIMULATORS[venue]()
    send, receive = trio.open_memory_channel[bytes](1000)
    sim.sessions[1] = sim.new_peer(1, send, "/ws/market" if venue == "polymarket" else "/ws")
    sim.market_step = list  # type: ignore[method-assign]  # only the switch's frames
    for n in (1, 2, 5):
        sim.apply_faults({"garbage": n})
        sim.step()
        got = []
        while True:
            try:
                got.append(receive.receive_nowait())
            except trio.WouldBlock:
                break
        assert len(got) == n, (n, got)
        assert sim.faults.garbage == 0


@pytest.mark.parametrize("venue", sorted(SIMULATORS))
async def test_pending_switches_are_shown_in_sim_state_until_they_fire(venue: str) -> None:
    sim = SIMULATORS[venue]()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim), base_url="http://sim") as http:
        assert (await http.get("/_sim/state")).json()["faults"] == {}
        answer = await http.post(
            "/_sim/faults",
            json={"gap": "*", "reject": {"count": 2}, "rate_limit": 3, "garbage": 1, "frames": ["{}"]},
        )
        # Nobody is connected, so no book is subscribed: the gap says it has nothing to act on.
        assert "no book channel is subscribed" in answer.json()["applied"]["gap_waits"]
        faults = (await http.get("/_sim/state")).json()["faults"]
        assert faults == {
            "gap": ["*"],
            "gap_books": 0,
            "reject": 2,
            "rate_limit": 3,
            "garbage": 1,
            "frames": 1,
        }
        sim.faults.take_reject()
        sim.faults.take_rate_limit()
        faults = (await http.get("/_sim/state")).json()["faults"]
        assert (faults["reject"], faults["rate_limit"]) == (1, 2)


async def test_pending_venue_switches_are_shown_too() -> None:
    deribit = DeribitSimulator(seed=5)
    deribit.apply_faults({"listing": "*", "user_delay_s": 0.5})
    assert deribit.pending_faults() == {"listing": ["*"], "user_delay_s": 0.5}
    derive = DeriveSimulator(seed=2)
    derive.apply_faults({"revert": 2})
    assert derive.pending_faults() == {"revert": 2}
    polymarket = PolymarketSimulator(seed=3)
    polymarket.apply_faults({"too_early": 2, "fail_trades": 1, "trading": "cancel_only"})
    assert polymarket.pending_faults() == {"too_early": 2, "fail_trades": 1, "trading": "cancel_only"}
