"""How the engine finds venues and strategies by name, without importing them.

Venues register under the entry-point group `tradingd.venues` (an object following
`VenuePlugin`), strategies under `tradingd.strategies` (a `Strategy` subclass). A config may also
name a strategy as `package.module:Class`, the way uvicorn names an app, so a user's own strategy
needs no packaging at all.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import attrs
import orjson
import trio

from ._book import OrderBook
from ._errors import ConfigError, MalformedFrame, StrategyError
from ._events import MarketEvent, PrivateEvent
from ._fees import FeeModel
from ._instruments import InstrumentRegistry
from ._strategy import Strategy

__all__ = [
    "Decoder",
    "DecoderStats",
    "LiveVenue",
    "VenuePlugin",
    "VenueSink",
    "available_strategies",
    "available_venues",
    "decode_parsed",
    "load_catalog_class",
    "load_strategy_class",
    "load_venue",
]


@attrs.define
class DecoderStats:
    """What a decoder has seen; `malformed` frames raised `MalformedFrame` and changed nothing."""

    frames: int = 0
    events: int = 0
    malformed: int = 0
    control: int = 0  # responses, heartbeats: frames that are not market data
    unknown_channel: int = 0
    gaps: int = 0
    ignored_changes: int = 0  # book changes dropped: no snapshot yet, or waiting for one after a gap
    skipped_instruments: int = 0  # instrument definitions that could not be parsed


def decode_parsed(decoder: Decoder, msg: Any, ts_local: int, venue: str) -> list[MarketEvent]:
    """Every venue decoder's `decode_message`: an already-parsed message, decoded as its JSON
    frame with the decoder's own contract. One that cannot be JSON is counted as a malformed
    frame and raises `MalformedFrame`."""
    try:
        frame = orjson.dumps(msg)
    except TypeError as exc:
        decoder.stats.frames += 1
        decoder.stats.malformed += 1
        raise MalformedFrame(f"not a JSON message: {exc}", venue=venue) from None
    return decoder.decode(frame, ts_local)


@runtime_checkable
class Decoder(Protocol):
    """Bytes in, events out, no I/O. One per venue connection (it owns that connection's books)."""

    venue: str
    registry: InstrumentRegistry
    stats: DecoderStats

    def decode(self, frame: bytes, ts_local: int) -> list[MarketEvent]:
        """The market events in one frame (possibly none). Raises `MalformedFrame` for a frame
        that cannot be decoded; the decoder's state is then unchanged."""
        ...

    def book(self, instrument: str) -> OrderBook | None:
        """The book this decoder maintains for `instrument`, if any."""
        ...


class VenueSink(Protocol):
    """Where a live venue session delivers what it receives (the engine implements it)."""

    async def market(self, events: list[MarketEvent]) -> None:
        """Market and status events, in arrival order (to the market state and the router)."""
        ...

    def private(self, events: list[PrivateEvent]) -> None:
        """Reports about our own orders (to the order tracker, then their strategies)."""
        ...


class LiveVenue(Protocol):
    """One venue's live side: the connection task, its decoder, and its execution client."""

    venue: str
    decoder: Decoder
    ready: trio.Event  # set once connected and subscribed (systemd READY waits for all venues)
    # Called with (receive time in ns, the frame exactly as received) for every frame of every
    # connection of the venue, before it is decoded: how `tradingd record` captures a session.
    on_frame: Callable[[int, bytes | str], None] | None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the connection up (reconnecting as needed) until cancelled."""
        ...

    def execution(self) -> Any:
        """The venue's `ExecutionClient` (real orders: live mode only)."""
        ...


class VenuePlugin(Protocol):
    """What a venue package offers the engine."""

    name: str
    Settings: type[Any]
    """The attrs class `[venues.<name>]` is structured into (its `fees` table included)."""

    def decoder(self, registry: InstrumentRegistry) -> Decoder:
        """A fresh decoder that adds the instruments it learns of to `registry`."""
        ...

    def fee_model(self, overrides: Mapping[str, Any]) -> FeeModel:
        """The venue's fee schedule, with the config's overrides applied."""
        ...

    def generate_sample(self, path: Path, options: Mapping[str, Any]) -> int:
        """Write a synthetic recording of this venue's wire frames to `path`; returns the
        number of frames written. `options` come from the config's `generate` table."""
        ...


def load_catalog_class(venue: str) -> type[Any] | None:
    """The `MarketCatalog` class a venue registers (entry point group `tradingd.catalogs`),
    None when the venue has no catalog."""
    for ep in entry_points(group="tradingd.catalogs"):
        if ep.name == venue:
            cls: type[Any] = ep.load()
            return cls
    return None


def available_venues() -> list[str]:
    return sorted(ep.name for ep in entry_points(group="tradingd.venues"))


def available_strategies() -> list[str]:
    return sorted(ep.name for ep in entry_points(group="tradingd.strategies"))


def load_venue(name: str) -> VenuePlugin:
    """The venue plugin registered as `name`; `ConfigError` naming the known ones otherwise."""
    for ep in entry_points(group="tradingd.venues"):
        if ep.name == name:
            plugin: VenuePlugin = ep.load()
            return plugin
    known = ", ".join(available_venues()) or "none installed"
    raise ConfigError(f"unknown venue {name!r} (known: {known})")


def load_strategy_class(spec: str) -> type[Strategy]:
    """A strategy class from an entry-point name (`gamma_scalp`) or a `module:Class` path."""
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError as exc:
            raise StrategyError(f"cannot import strategy module {module_name!r}: {exc}") from exc
        for part in attr.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise StrategyError(f"module {module_name!r} has no {attr!r}") from None
    else:
        for ep in entry_points(group="tradingd.strategies"):
            if ep.name == spec:
                obj = ep.load()
                break
        else:
            known = ", ".join(available_strategies()) or "none installed"
            raise StrategyError(f"unknown strategy {spec!r} (known: {known}; or use module:Class)")
    if not (isinstance(obj, type) and issubclass(obj, Strategy)):
        raise StrategyError(f"{spec!r} is not a Strategy subclass")
    return obj
