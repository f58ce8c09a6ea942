"""Deribit and Derive sessions built with no connection (`deribit`, `derive`) over a sink that drops
what it is given (`_Sink`), and what the caller of a pending request hears when the venue answers it
with an error object (`error_answer`)."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from tests.support.helpers import registry
from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.connectors.deribit.stream import DeribitSession
from tradingd.connectors.derive.settings import DeriveSettings
from tradingd.connectors.derive.stream import DeriveSession
from tradingd.engine import VenueError
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.runtime.router import MarketRouter


class _Sink:
    async def market(self, events: list[Any]) -> None:
        return None

    def private(self, events: list[Any]) -> None:
        return None


def deribit(reg: InstrumentRegistry | None = None) -> DeribitSession:
    return DeribitSession(DeribitSettings(), registry=reg or registry(), router=MarketRouter(), sink=_Sink())


def derive(reg: InstrumentRegistry | None = None) -> DeriveSession:
    return DeriveSession(
        DeriveSettings(), registry=reg or InstrumentRegistry(), router=MarketRouter(), sink=_Sink()
    )


Session = DeribitSession | DeriveSession


async def error_answer(session: Session, error: bytes) -> VenueError:
    """What the caller of a pending `private/buy` hears when the venue answers it with the error
    object `error`, handled as the receive loop hands it over (minus the loop's nesting net: the
    venue's own parse must hold). Within a second: at once, not after the request's timeout."""
    rid = session._requests.open("private/buy")
    caught: list[VenueError] = []

    async def caller() -> None:
        try:
            await session._requests.wait(rid, 5.0, what="private/buy")
        except VenueError as exc:
            caught.append(exc)

    with trio.fail_after(1):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(caller)
            await trio.testing.wait_all_tasks_blocked()
            await session._handle(b'{"jsonrpc":"2.0","id":%d,"error":%s}' % (rid, error), 0)
    (exc,) = caught
    return exc
