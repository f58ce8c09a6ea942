"""A venue session whose frame handler is the test's (`_session`), and a connection that delivers
given frames, then nothing (`_Ws`)."""

from __future__ import annotations

from collections.abc import Callable

import trio

from tests.support.offline_sessions import _Sink
from tradingd.engine import InstrumentRegistry
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
