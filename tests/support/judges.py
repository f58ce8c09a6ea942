"""Client set-up shared by the judge tests (tests/simulators/): how a third-party client is
pointed at a simulator, whether the simulator runs in the test's process or as `tradingd
simulate` (tests/simulators/test_judges_on_the_cli.py)."""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["WarningRecords", "cryptofeed_deribit"]


class WarningRecords(logging.Handler):
    """What a client logs at warning and above."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.levelname}: {record.getMessage()}")


def cryptofeed_deribit(base: str) -> Any:
    """cryptofeed's `Deribit` feed with its own endpoints re-pointed at the simulator on `base`
    (host:port): its symbol routes, on the simulator's host."""
    from cryptofeed.connection import (
        RestEndpoint,
        Routes,
        WebsocketEndpoint,
    )
    from cryptofeed.exchanges import Deribit

    # Its WebSocket connection refuses any address but `wss://`; the simulator serves plain
    # `ws://` on loopback, so the endpoint is given as `wss://` and cryptofeed's own hook for
    # rewriting the address just before connecting (`_ws_authentication`) hands it `ws://`.
    routes = Routes([f"/api/v2/public/get_instruments?currency={c}" for c in ("BTC", "ETH", "USDC", "SOL")])

    async def plain_ws(self: Any, address: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return address.replace("wss://", "ws://", 1), options

    return type(
        "SimulatedDeribit",
        (Deribit,),
        {
            "websocket_endpoints": [WebsocketEndpoint(f"wss://{base}/ws/api/v2", authentication=True)],
            "rest_endpoints": [RestEndpoint(f"http://{base}", routes=routes)],
            "_ws_authentication": plain_ws,
        },
    )
