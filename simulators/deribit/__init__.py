"""A local Deribit (`simulator`) and Deribit-shaped synthetic recordings (`generator`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["SIMULATOR", "DeribitSimulatorPlugin"]


class DeribitSimulatorPlugin:
    name = "deribit"

    async def simulate(
        self, *, host: str, port: int, seed: int = 7, task_status: Any = None, **options: Any
    ) -> None:
        """Serve a local Deribit on `host:port` until cancelled (`tradingd simulate deribit`)."""
        import trio

        from .simulator import DeribitSimulator, serve

        sim = DeribitSimulator(seed=seed, **options)
        await serve(sim, host=host, port=port, task_status=task_status or trio.TASK_STATUS_IGNORED)

    def banner(self, binds: list[str]) -> list[str]:
        """What `tradingd simulate deribit` prints: where to point a config, and the demo key."""
        from .simulator import DEFAULT_ACCOUNTS

        base = binds[0].replace("http://", "")
        client_id, secret = next(iter(DEFAULT_ACCOUNTS.items()))
        return [
            f"simulating Deribit on {base} (Ctrl-C stops)",
            f'  [venues.deribit] url = "ws://{base}/ws/api/v2"  rest_url = "http://{base}"',
            f"  demo account: DERIBIT_CLIENT_ID={client_id} DERIBIT_CLIENT_SECRET={secret}",
        ]

    def generate_sample(
        self, path: Path, options: Mapping[str, Any], progress: Callable[[float, float], None] | None = None
    ) -> int:
        from .generator import generate_sample

        frames: int = generate_sample(path, options, progress)
        return frames


SIMULATOR = DeribitSimulatorPlugin()
