"""What Deribit answers outside the market channels (its login answer, its order reports) may be
hostile: such an answer is refused as the venue's error, never an exception that ends the daemon,
and never a fill booked twice."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
import trio

from tests.support.deribit_live import PERP, serve_sim, start
from tests.support.live_support import Probe
from tests.support.offline_sessions import deribit
from tradingd.connectors.deribit.stream import DeribitSession
from tradingd.engine import AuthError, Subscription
from tradingd.simulators.deribit import simulator as deribit_simulator

ABSURD_TOKENS = [
    pytest.param({"expires_in": "abc"}, id="expires_in text"),  # ValueError out of float() before
    pytest.param({"expires_in": True}, id="expires_in bool"),
    pytest.param({"expires_in": 1e308}, id="expires_in never"),
    pytest.param({"refresh_token": 5}, id="refresh_token number"),  # TypeError out of register_secret
    pytest.param({"refresh_token": {"x": "y"}}, id="refresh_token object"),
    pytest.param({"access_token": ""}, id="no access_token"),
    pytest.param({"access_token": ["t0ken-t0ken"]}, id="access_token list"),
]


def _token(**changes: Any) -> bytes:
    answer = {"access_token": "t0ken-t0ken", "expires_in": 900, "refresh_token": "r3fresh-r3fresh"}
    return msgspec.json.encode(answer | changes)


@pytest.mark.parametrize("changes", ABSURD_TOKENS)
async def test_an_auth_answer_that_is_no_token_is_the_venues_auth_error(changes: dict[str, Any]) -> None:
    session = deribit()
    with pytest.raises(AuthError):
        await session._take_token(msgspec.Raw(_token(**changes)))
    assert not session.authenticated


async def test_a_good_auth_answer_still_authenticates() -> None:
    session = deribit()
    await session._take_token(msgspec.Raw(_token()))
    assert session.authenticated and session._token_expires_in == 900.0
    assert session._refresh_token == "r3fresh-r3fresh"


@pytest.mark.parametrize("changes", [{"expires_in": "abc"}, {"refresh_token": 5}])
async def test_an_absurd_auth_answer_is_retried_never_the_engines_end(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch, changes: dict[str, Any]
) -> None:
    """The live path: the simulator's first two logins answered absurdly; the engine reconnects
    and is ready on the third. Before, the handshake's ValueError/TypeError ended `LiveEngine.run`."""
    real = deribit_simulator._METHODS["public/auth"]
    absurd = [2]

    def auth(*args: Any) -> Any:
        answer = real(*args)
        if absurd[0] > 0:
            absurd[0] -= 1
            return answer | changes
        return answer

    monkeypatch.setitem(deribit_simulator._METHODS, "public/auth", auth)
    _, base = await serve_sim(nursery)
    probe = Probe("p", [Subscription("deribit", PERP, {"ticker"})])
    engine = await start(nursery, base, probe)
    live = engine.venues["deribit"]
    assert isinstance(live, DeribitSession)
    assert absurd == [0] and live.authenticated
    assert live.stats.connects == 3
