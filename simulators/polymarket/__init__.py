"""A local Polymarket CLOB with its Gamma catalog (`simulator`, `gamma_simulator`) and
Polymarket-shaped synthetic recordings and catalogs (`generator`, `catalog_generator`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["SIMULATOR", "PolymarketSimulatorPlugin"]


class PolymarketSimulatorPlugin:
    name = "polymarket"

    async def simulate(
        self, *, host: str, port: int, seed: int = 7, task_status: Any = None, **options: Any
    ) -> None:
        """Serve a local Polymarket CLOB on `host:port` until cancelled (`tradingd simulate
        polymarket`)."""
        import trio

        from .simulator import PolymarketSimulator, serve

        sim = PolymarketSimulator(seed=seed, **options)
        await serve(sim, host=host, port=port, task_status=task_status or trio.TASK_STATUS_IGNORED)

    def banner(self, binds: list[str]) -> list[str]:
        """What `tradingd simulate polymarket` prints: where to point a config, and the demo
        account's credentials (a well-known test key: never use it for real funds)."""
        from .simulator import DEMO_ACCOUNT

        base = binds[0].replace("http://", "")
        api = DEMO_ACCOUNT.api
        assert api is not None
        return [
            f"simulating Polymarket's CLOB on {base} (Ctrl-C stops)",
            f'  [venues.polymarket] url = "ws://{base}/ws"  rest_url = "http://{base}"',
            f'  [catalog] gamma_url = "http://{base}/gamma"',
            f"  demo account: POLYMARKET_PRIVATE_KEY={DEMO_ACCOUNT.private_key}",
            f"    POLYMARKET_API_KEY={api.key} POLYMARKET_API_SECRET={api.secret}"
            f" POLYMARKET_API_PASSPHRASE={api.passphrase}",
        ]

    def generate_sample(
        self, path: Path, options: Mapping[str, Any], progress: Callable[[float, float], None] | None = None
    ) -> int:
        from .generator import generate_sample

        frames: int = generate_sample(path, options, progress)
        return frames


SIMULATOR = PolymarketSimulatorPlugin()
