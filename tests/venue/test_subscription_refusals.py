"""A venue that refuses a whole subscribe call: its channels are refused (reported once each, not
asked again while wanted), and the session goes on. Derive did so (13000, -32602); Deribit's
session let its `subscribe_error_unsubscribed` (11052, VENUES.md §1.4) end the connection, which
then reconnected and asked the same again, forever. Both now share the rule (engine.venue.jsonrpc
`batch_refusals`)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import trio

from tests.support.helpers import registry
from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.connectors.deribit.stream import DeribitSession
from tradingd.connectors.derive.settings import DeriveSettings
from tradingd.connectors.derive.stream import DeriveSession
from tradingd.engine import InstrumentRegistry, MarketEvent, Status, StatusKind
from tradingd.engine.runtime.router import MarketRouter

_WANTED = {"alpha.1", "beta.2"}


class _Sink:
    def __init__(self) -> None:
        self.events: list[MarketEvent] = []

    async def market(self, events: list[MarketEvent]) -> None:
        self.events.extend(events)

    def private(self, events: list[Any]) -> None:
        return None


class _Deribit(DeribitSession):
    def desired_channels(self) -> set[str]:
        return set(_WANTED)


class _Derive(DeriveSession):
    def desired_channels(self) -> set[str]:
        return set(_WANTED)


class _Refusing:
    """A connection whose venue answers every request with the error `code`."""

    def __init__(self, session: DeribitSession | DeriveSession, nursery: trio.Nursery, code: int) -> None:
        self.session = session
        self.nursery = nursery
        self.code = code
        self.sent: list[str] = []

    async def send_message(self, message: str) -> None:
        request = orjson.loads(message)
        self.sent.append(request["method"])
        error = {"code": self.code, "message": "refused"}
        answer = orjson.dumps({"jsonrpc": "2.0", "id": request["id"], "error": error})
        self.nursery.start_soon(self.session._handle, answer, 0)


def _deribit(sink: _Sink) -> DeribitSession:
    return _Deribit(DeribitSettings(), registry=registry(), router=MarketRouter(), sink=sink)


def _derive(sink: _Sink) -> DeriveSession:
    return _Derive(DeriveSettings(), registry=InstrumentRegistry(), router=MarketRouter(), sink=sink)


@pytest.mark.parametrize(
    ("make", "code"),
    [
        pytest.param(_deribit, 11052, id="deribit-11052"),
        pytest.param(_derive, 13000, id="derive-13000"),
        pytest.param(_derive, -32602, id="derive-32602"),
    ],
)
async def test_a_subscribe_call_refused_whole_refuses_its_channels_and_the_session_goes_on(
    make: Any, code: int
) -> None:
    sink = _Sink()
    session = make(sink)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            ws = _Refusing(session, nursery, code)
            session._ws = ws
            await session._sync_subscriptions()  # no VenueError: the connection stays
            refused = [
                e
                for e in sink.events
                if isinstance(e, Status) and e.status is StatusKind.SUBSCRIPTION_REFUSED
            ]
            assert [e.data["channel"] for e in refused] == ["alpha.1", "beta.2"]
            assert session.stats.refused_channels == 2 and session.channels == frozenset()
            asked = len(ws.sent)
            await session._sync_subscriptions()
            assert len(ws.sent) == asked  # not asked again while still wanted
