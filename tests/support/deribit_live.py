"""The Deribit simulator served on loopback for a test (`serve_sim`) and the credentials of its first
account (`CREDS`)."""

from __future__ import annotations

import functools
from typing import Any

import trio

from tradingd.connectors.deribit.simulator import DEFAULT_ACCOUNTS, DeribitSimulator, serve

PERP = "BTC-PERPETUAL"
CREDS = {
    "DERIBIT_CLIENT_ID": next(iter(DEFAULT_ACCOUNTS)),
    "DERIBIT_CLIENT_SECRET": next(iter(DEFAULT_ACCOUNTS.values())),
}


async def serve_sim(nursery: trio.Nursery, **options: Any) -> tuple[DeribitSimulator, str]:
    simulator = DeribitSimulator(seed=5, step_s=0.05, heartbeat_scale=0.1, **options)
    binds = await nursery.start(functools.partial(serve, simulator))
    return simulator, binds[0].removeprefix("http://")
