"""A live engine built without its constructor, for a test of one of its tasks (settlement, funding,
the catch-up of fills): the order flow, one Deribit venue that is only its execution client, a clock
the test moves, a logger, live mode. The test sets whatever else the code under test reads."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import structlog

from tradingd.engine.runtime import OrderFlow
from tradingd.engine.runtime.live import LiveEngine

C = TypeVar("C")


class _Venue(Generic[C]):
    """A live venue that is only its execution client."""

    def __init__(self, client: C) -> None:
        self.client = client

    def execution(self) -> C:
        return self.client


def reduced_engine(flow: OrderFlow, client: object, now: list[int]) -> Any:
    """The engine over `flow`, its "deribit" venue answering through `client`, its clock `now[0]`."""
    engine: Any = LiveEngine.__new__(LiveEngine)
    engine.flow = flow
    engine.venues = {"deribit": _Venue(client)}
    engine.clock = lambda: now[0]
    engine.log = structlog.get_logger("test")
    engine.mode = "live"
    return engine
