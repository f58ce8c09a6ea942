"""For the Derive judges: the simulator served on loopback, and Derive's official client
(`derive-client` 0.3.16) pointed at it.

The client takes its URLs from `derive_client.config.CONFIGS[env]` (an `EnvConfig`: `base_url`,
`ws_address`, the signing constants and contract addresses) when it is built; the judges replace
the TEST environment's entry (`monkeypatch.setitem`) by a copy whose `base_url` and `ws_address`
are the simulator's loopback addresses. Everything else stays the client's own: the testnet
DOMAIN_SEPARATOR, ACTION_TYPEHASH and trade module it signs orders with (VENUES.md §3.6, the
simulator's signing domain), its HTTP session (requests), its WebSocket session (websockets)."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import trio
from derive_client.config import CONFIGS  # type: ignore[import-untyped]
from derive_client.data_types import Environment  # type: ignore[import-untyped]

from tradingd.simulators.derive.simulator import DeriveSimulator, serve


@pytest.fixture
async def venue(nursery: trio.Nursery) -> DeriveSimulator:
    sim = DeriveSimulator(seed=13, step_s=0.05, settle_after_s=0.2)
    binds: list[str] = await nursery.start(functools.partial(serve, sim))
    sim.base_url = binds[0]  # type: ignore[attr-defined]
    return sim


@pytest.fixture
def loopback_env(venue: DeriveSimulator, monkeypatch: pytest.MonkeyPatch) -> Environment:
    """Environment.TEST, pointed at the simulator."""
    base: str = venue.base_url  # type: ignore[attr-defined]
    monkeypatch.setitem(CONFIGS, Environment.TEST, loopback_config(base))
    return Environment.TEST


def loopback_config(base: str) -> Any:
    """A copy of the client's TEST environment whose REST and WebSocket addresses are the
    simulator's at `base` (http://host:port); no chain RPC is reachable (port 9, discard)."""
    ws = "ws://" + base.removeprefix("http://") + "/ws"
    return CONFIGS[Environment.TEST].model_copy(
        update={"base_url": base, "ws_address": ws, "rpc_endpoint": "http://127.0.0.1:9"}
    )
