"""A venue session whose frame handler is the test's (`_session`), a connection that delivers given
frames, then nothing (`_Ws`), and a Polymarket session receiving one frame from it
(`polymarket_session_receives`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from tests.support.offline_sessions import _Sink
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.venue.plugins import load_venue
from tradingd.engine.venue.session import VenueSession


class _Ws:
    """A connection that delivers `frames`, then nothing."""

    def __init__(self, frames: list[bytes]) -> None:
        self.frames = frames

    async def get_message(self) -> bytes:
        if not self.frames:
            await trio.sleep_forever()
        return self.frames.pop(0)


def _session(handle: Callable[[bytes | str], None]) -> VenueSession:
    class _Session(VenueSession):
        venue = "deribit"

        async def _handle(self, message: bytes | str, now: int) -> None:
            handle(message)

    registry = InstrumentRegistry()
    return _Session(
        decoder=load_venue("deribit").decoder(registry),
        registry=registry,
        router=None,  # type: ignore[arg-type]  # `_handle` is the test's: nothing reaches a router
        sink=_Sink(),
    )


async def polymarket_session_receives(frame: bytes) -> None:
    """A Polymarket session (its module imports signing) takes `frame` from its connection."""
    import tradingd.connectors.polymarket.stream  # noqa: F401 - it imports signing (py_ecc)

    seen: list[Any] = []

    class _Session(VenueSession):
        venue = "polymarket"

        async def _handle(self, message: bytes | str, now: int) -> None:
            await self.decode(message, now)

    class _Keep:
        async def market(self, events: list[Any]) -> None:
            seen.extend(events)

        def private(self, events: list[Any]) -> None:
            seen.extend(events)

    registry = InstrumentRegistry()
    session = _Session(
        decoder=load_venue("polymarket").decoder(registry),
        registry=registry,
        router=None,  # type: ignore[arg-type]  # `_handle` only decodes: nothing reaches a router
        sink=_Keep(),
    )
    with trio.move_on_after(0.5):
        await session._receive(_Ws([frame, b'"not a dict"']))  # type: ignore[arg-type]  # a stand-in socket
    assert session.stats.malformed == 2, session.stats
