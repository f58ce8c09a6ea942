"""Simulation for tests and demos: the loopback simulator server (hypercorn: the `sim` extra,
imported only when serving) and how the engine finds a venue's simulator (`plugins`). The venue
simulators and the synthetic data generators themselves live in the top-level `simulators/`
package (`tradingd.simulators`), which imports nothing from the connectors; the simulated venue
that fills backtest and paper orders is in the model room (model.simvenue).

Depends on: model, venue (its checked entry point loader)."""

from .plugins import SimulatorPlugin, available_simulators, load_simulator
from .server import PeerT, Receive, Scope, Send, SimFaults, SimPeer, SimulatorServer, require_server, serve

__all__ = [
    "PeerT",
    "Receive",
    "Scope",
    "Send",
    "SimFaults",
    "SimPeer",
    "SimulatorPlugin",
    "SimulatorServer",
    "available_simulators",
    "load_simulator",
    "require_server",
    "serve",
]
