"""How the engine finds a venue's simulator: the entry point group `tradingd.simulators`, one
`SimulatorPlugin` per venue name (ours are in the top-level `simulators/` package, which shares
nothing with the connectors but the loopback server). `tradingd simulate`, `tradingd generate` and
a backtest's missing sample use it; a venue without a simulator simply has none to offer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

from ..model.errors import ConfigError
from ..venue.plugins import load_checked

__all__ = ["SimulatorPlugin", "available_simulators", "load_simulator"]


@runtime_checkable  # `load_simulator` checks a plugin has every member before anything uses it
class SimulatorPlugin(Protocol):
    """A venue's local simulator and its synthetic data."""

    name: str

    async def simulate(
        self, *, host: str, port: int, seed: int = 7, task_status: Any = None, **options: Any
    ) -> None:
        """Serve a local simulation of the venue on `host:port` until cancelled (`tradingd
        simulate <venue>`); started with `nursery.start`, it reports the addresses bound."""
        ...

    def banner(self, binds: list[str]) -> list[str]:
        """What `tradingd simulate <venue>` prints: where to point a config, the demo account."""
        ...

    def generate_sample(
        self, path: Path, options: Mapping[str, Any], progress: Callable[[float, float], None] | None = None
    ) -> int:
        """Write a synthetic recording of this venue's wire frames to `path`; returns the
        number of frames written. `options` come from the config's `generate` table;
        `progress(done, total)`, if given, is called as it goes (increasing, up to `total` at
        the end, in any unit: ours give seconds of market time) for a progress bar."""
        ...


GROUP: Final = "tradingd.simulators"


def available_simulators() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=GROUP))


def load_simulator(name: str) -> SimulatorPlugin:
    """The simulator registered as `name`; `ConfigError` naming the known ones otherwise."""
    plugin: SimulatorPlugin | None = load_checked(
        GROUP, name, SimulatorPlugin, "simulator", "tradingd.engine.sim.SimulatorPlugin"
    )
    if plugin is None:
        known = ", ".join(available_simulators()) or "none installed"
        raise ConfigError(f"no simulator for venue {name!r} (simulated: {known})")
    return plugin
