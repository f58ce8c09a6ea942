"""What Deribit answers outside the market channels (its login answer, its order reports) may be
hostile: such an answer is refused as the venue's error, never an exception that ends the daemon,
and never a fill booked twice."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any

import msgspec
import pytest
import trio

from tests.support.deribit_live import PERP, serve_sim, start
from tests.support.flows import make_flow
from tests.support.helpers import OPTION, registry, request
from tests.support.live_support import Probe
from tests.support.offline_sessions import deribit
from tradingd.connectors.deribit.codec import DeribitDecoder, decode_order_result
from tradingd.connectors.deribit.stream import DeribitSession, refresh_delay
from tradingd.engine import AuthError, Fill, MalformedFrame, OrderUpdate, Subscription
from tradingd.simulators.deribit import simulator as deribit_simulator

ABSURD_TOKENS = [
    pytest.param({"expires_in": "abc"}, id="expires_in text"),  # ValueError out of float() before
    pytest.param({"expires_in": True}, id="expires_in bool"),
    pytest.param({"expires_in": -1}, id="expires_in negative"),
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


@pytest.mark.parametrize("expires_in", [900, 31_536_000, 31_536_001, 315_360_000, 1e308])
async def test_a_long_lived_token_the_venue_documents_authenticates_and_is_refreshed_within_a_day(
    expires_in: float,
) -> None:
    """Deribit's own `public/auth` example answers `expires_in` 31,536,000 and its OpenAPI
    schema 315,360,000: a bound of a year refused them as no token, and the session reconnected
    forever, never trading. Any finite figure >= 0 is a token; its refresh is at most a day away."""
    session = deribit()
    await session._take_token(msgspec.Raw(_token(expires_in=expires_in)))
    assert session.authenticated and session._token_expires_in == float(expires_in)
    assert refresh_delay(session._token_expires_in) == min(86_400.0, 0.8 * expires_in)


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


# ------------------------------------------------- a trade the venue reports without its id

TRADE: dict[str, Any] = {
    "trade_id": "",
    "order_id": "V1",
    "label": "s-bt-1",
    "instrument_name": OPTION.symbol,
    "direction": "buy",
    "price": 0.05,
    "amount": 0.25,
    "timestamp": 1_767_978_363_493,
    "fee": 0.0003,
    "fee_currency": "BTC",
    "liquidity": "M",
}
ORDER: dict[str, Any] = {
    "order_id": "V1",
    "label": "s-bt-1",
    "instrument_name": OPTION.symbol,
    "direction": "buy",
    "order_state": "open",
    "amount": 1.0,
    "filled_amount": 0.25,
    "price": 0.05,
}


def _channel_frame(trade: dict[str, Any]) -> bytes:
    params = {"channel": "user.trades.any.any.raw", "data": [trade]}
    return msgspec.json.encode({"jsonrpc": "2.0", "method": "subscription", "params": params})


@pytest.mark.parametrize("trade_id", ["", 0], ids=["empty", "number"])
def test_a_trade_without_its_id_is_never_booked_twice_from_the_answer_and_the_channel(
    trade_id: str | int,
) -> None:
    """Deribit reports one trade in the order's answer and on `user.trades`: its id is what
    books it once. Without one (`""`), both were decoded and both booked (0.5 of a 0.25 trade).
    Now each is malformed (the channel's counted; the answer's outcome unknown), as the trade
    history already refused it; a numeric id still reads."""
    decoder = DeribitDecoder(registry())
    flow = make_flow(None)
    flow.accept(request(), now_ns=1)
    trade = TRADE | {"trade_id": trade_id}
    answer = msgspec.json.encode({"order": ORDER, "trades": [trade]})
    reports: list[Any] = []
    with contextlib.suppress(MalformedFrame):
        reports += decode_order_result(answer, 2)
    with contextlib.suppress(MalformedFrame):
        reports += decoder.decode(_channel_frame(trade), 3)
    for report in reports:
        if isinstance(report, Fill):
            flow.on_fill(report)
        else:
            flow.on_update(report)
    order = flow.tracker.find("deribit", order_id="V1", client_order_id="s-bt-1")
    assert order is not None
    booked = order.filled_size
    if trade_id == "":
        assert booked == 0 and decoder.stats.malformed == 1
    else:
        assert booked == Decimal("0.25") and decoder.stats.malformed == 0


# ------------------------------------------------- an order report that contradicts itself


@pytest.mark.parametrize(
    ("amount", "filled", "state", "seen"),
    [
        pytest.param(1.0, 0.5, "filled", ("cancelled", "0.5"), id="filled short of its amount"),
        pytest.param(1.0, None, "filled", None, id="filled, no filled_amount"),
        pytest.param(1.0, 0.0, "filled", None, id="filled, nothing executed"),
        pytest.param(1.0, 1.0, "filled", ("filled", "1.0"), id="filled"),
        pytest.param(0.0, 0.0, "filled", None, id="an order of nothing"),
    ],
)
def test_an_order_said_filled_short_of_its_amount_is_no_fill_of_all_of_it(
    amount: float, filled: float | None, state: str, seen: tuple[str, str] | None
) -> None:
    """A `user.orders` report "filled" whose `filled_amount` is short of its `amount` (or an
    amount of 0) made our order FILLED with 0.5 (or nothing) of 1 executed: the strategy told all
    of it traded. Read as Derive's codec reads the same: the rest will never trade (CANCELLED,
    with its filled size). "filled" with nothing executed contradicts itself (CANCELLED with 0
    would be a guess a strategy could act on by sending it again), and an order of nothing, are
    malformed."""
    decoder = DeribitDecoder(registry())
    flow = make_flow(None)
    flow.accept(request(), now_ns=1)
    order = ORDER | {"order_state": state, "amount": amount, "filled_amount": filled}
    frame = msgspec.json.encode(
        {
            "jsonrpc": "2.0",
            "method": "subscription",
            "params": {"channel": "user.orders.any.any.raw", "data": order},
        }
    )
    if seen is None:
        with pytest.raises(MalformedFrame):
            decoder.decode(frame, 2)
        return
    for report in decoder.decode(frame, 2):
        assert isinstance(report, OrderUpdate)
        flow.on_update(report)
    tracked = flow.tracker.find("deribit", order_id="V1", client_order_id="s-bt-1")
    assert tracked is not None
    assert (tracked.state.value, str(tracked.filled_size)) == seen
