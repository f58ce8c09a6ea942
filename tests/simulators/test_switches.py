"""`POST /_sim/faults` on every simulator: a body that is not a JSON object, a switch the venue
does not have, or a value of the wrong kind is refused with 400 and one line naming it (and, for
an unknown switch, the known ones), and nothing of that body is applied."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tradingd.engine.sim import SimulatorServer
from tradingd.simulators.deribit.simulator import DeribitSimulator
from tradingd.simulators.derive.simulator import DeriveSimulator
from tradingd.simulators.polymarket.simulator import PolymarketSimulator

# (the simulator, one of its own switches, a value of the wrong kind for it)
VENUES: dict[str, tuple[Callable[[], SimulatorServer], str, object]] = {  # type: ignore[type-arg]
    "deribit": (lambda: DeribitSimulator(seed=5), "max_frame_bytes", "big"),
    "derive": (lambda: DeriveSimulator(seed=2), "settle", "yes please"),
    "polymarket": (lambda: PolymarketSimulator(seed=3), "silent", "yes please"),
}


@pytest.mark.parametrize("venue", sorted(VENUES))
async def test_unknown_switches_wrong_kinds_and_non_objects_are_refused(venue: str) -> None:
    make, own, wrong = VENUES[venue]
    sim = make()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim), base_url="http://sim") as http:

        async def refused(**body: object) -> str:
            answer = await http.post("/_sim/faults", **body)  # type: ignore[arg-type]
            assert answer.status_code == 400, answer.text
            error: str = answer.json()["error"]
            assert "\n" not in error
            return error

        error = await refused(json={"rate_limit": 2, "silly": 1, "sillier": True})
        assert "unknown switch sillier, silly" in error
        assert "known: " in error and "rate_limit" in error and own in error
        assert "JSON object, not an array" in await refused(content=b'["drop"]')
        assert "JSON object, not a string" in await refused(content=b'"drop"')
        assert f"{own}: expected" in await refused(json={"rate_limit": 2, own: wrong})
        assert "drop: expected true or false" in await refused(json={"drop": "yes please"})
        assert "rate_limit: expected a count" in await refused(json={"rate_limit": 1.5})
        assert sim.faults.rate_limit == 0  # nothing of a refused body was applied
        ok = await http.post("/_sim/faults", json={"rate_limit": 2})
        assert ok.status_code == 200 and ok.json() == {"ok": True, "applied": {"rate_limit": 2}}


@pytest.mark.parametrize("venue", sorted(VENUES))
async def test_values_out_of_range_are_refused_naming_the_switch(venue: str) -> None:
    """A negative stall, a negative count, a `reject` whose count is no number: refused by name,
    not taken (a negative stall), nor a Python error naming nothing (`int('two')`)."""
    sim = VENUES[venue][0]()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim), base_url="http://sim") as http:
        for body, name in (
            ({"stall_s": -5}, "stall_s: expected"),
            ({"garbage": -1}, "garbage: expected"),
            ({"reject": {"count": "two"}}, "reject: expected"),
            ({"reject": {"count": 0}}, "reject: expected"),
            ({"reject": {"cuont": 2}}, "reject: expected"),
        ):
            answer = await http.post("/_sim/faults", json=body)
            assert answer.status_code == 400 and name in answer.json()["error"], (body, answer.text)
        assert not sim.faults.reject and sim.faults.garbage == 0


async def test_deribits_no_quotes_names_an_unknown_instrument_or_side_and_applies_nothing() -> None:
    sim = DeribitSimulator(seed=5)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim), base_url="http://sim") as http:
        for body, said in (
            ({"no_quotes": {"instrument": "NOPE", "side": "buy"}}, "no_quotes: no instrument 'NOPE'"),
            ({"no_quotes": {"instrument": "BTC-PERPETUAL", "side": "up"}}, "no_quotes: side is buy, sell"),
            ({"order_answer": "later", "rate_limit": 3}, "order_answer: user_first or answer_first"),
        ):
            answer = await http.post("/_sim/faults", json=body)
            assert answer.status_code == 400 and said in answer.json()["error"], (body, answer.text)
        assert sim.faults.rate_limit == 0
