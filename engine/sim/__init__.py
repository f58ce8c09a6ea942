"""Simulation for tests and demos: the loopback simulator server (hypercorn: the `sim` extra,
imported only when serving) and synthetic market data for the sample generators. Issue 15 moves
the venue simulators out of connectors/; the simulated venue that fills backtest and paper orders
is in the model room (model.simvenue).

Depends on: model."""

from .server import PeerT, Receive, Scope, Send, SimFaults, SimPeer, SimulatorServer, require_server, serve
from .synth import (
    InstrumentSpec,
    LevelChange,
    MarketUpdate,
    OptionQuote,
    SynthMarket,
    SynthTrade,
    TickGrid,
    UnderlyingSpec,
)

__all__ = [
    "InstrumentSpec",
    "LevelChange",
    "MarketUpdate",
    "OptionQuote",
    "PeerT",
    "Receive",
    "Scope",
    "Send",
    "SimFaults",
    "SimPeer",
    "SimulatorServer",
    "SynthMarket",
    "SynthTrade",
    "TickGrid",
    "UnderlyingSpec",
    "require_server",
    "serve",
]
