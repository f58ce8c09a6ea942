"""A local Derive (`simulator`) and Derive-shaped synthetic recordings (`generator`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["SIMULATOR", "DeriveSimulatorPlugin"]


class DeriveSimulatorPlugin:
    name = "derive"

    async def simulate(
        self, *, host: str, port: int, seed: int = 7, task_status: Any = None, **options: Any
    ) -> None:
        """Serve a local Derive on `host:port` until cancelled (`tradingd simulate derive`)."""
        import trio

        from .simulator import DeriveSimulator, serve

        sim = DeriveSimulator(seed=seed, **options)
        await serve(sim, host=host, port=port, task_status=task_status or trio.TASK_STATUS_IGNORED)

    def banner(self, binds: list[str]) -> list[str]:
        """What `tradingd simulate derive` prints: where to point a config, and the demo account
        (public test values, valid on the simulator only)."""
        from .simulator import DEMO_SESSION_KEY, DEMO_SUBACCOUNT, DEMO_WALLET

        base = binds[0].replace("http://", "")
        return [
            f"simulating Derive on {base} (Ctrl-C stops)",
            f'  [venues.derive] url = "ws://{base}/ws"  rest_url = "http://{base}"',
            f"  demo account: DERIVE_WALLET={DEMO_WALLET} DERIVE_SUBACCOUNT_ID={DEMO_SUBACCOUNT}",
            f"                DERIVE_SESSION_KEY={DEMO_SESSION_KEY}",
        ]

    def generate_sample(
        self, path: Path, options: Mapping[str, Any], progress: Callable[[float, float], None] | None = None
    ) -> int:
        from .generator import generate_sample

        frames: int = generate_sample(path, options, progress)
        return frames


SIMULATOR = DeriveSimulatorPlugin()
