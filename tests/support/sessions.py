"""A live engine's venue session as its own class, for the state a test reads on it (its counters,
its channels, its login) beyond what the engine's `LiveVenue` contract offers."""

from __future__ import annotations

from typing import TypeVar

from tradingd.engine.runtime.live import LiveEngine

S = TypeVar("S")


def venue_session(engine: LiveEngine, venue: str, kind: type[S]) -> S:
    """`engine`'s session for `venue`, checked to be a `kind`."""
    session = engine.venues[venue]
    assert isinstance(session, kind), f"{venue}: a {type(session).__name__}, not a {kind.__name__}"
    return session
