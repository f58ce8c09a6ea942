"""A strategy for sweep tests whose parameters make its trial misbehave: raise, kill its own
worker process (once, or every time), or take its time. Copied beside a test's base config
(`sweep_base`) as a user's strategy module, as a sweep meets them."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import attrs

from tradingd.engine import MarketEvent, Strategy, Subscription


@attrs.frozen
class TrapParams:
    fail: bool = False  # raise when built
    kill_marker: str = ""  # SIGKILL its own process on start, unless this file exists (made first)
    kill_always: bool = False  # with kill_marker: every time
    sleep_s: float = 0.0  # on start (a slow trial)
    count_dir: str = ""  # a file per run made here (how many times trials ran)


class Trap(Strategy):
    Params = TrapParams

    def __init__(self, name: str, params: Any = None) -> None:
        p: TrapParams = params or TrapParams()
        super().__init__(name, p)
        if p.fail:
            raise RuntimeError("the trap was sprung\nsecond line never shown")

    async def on_start(self) -> None:
        # Not in __init__: the config loader builds a strategy once more to check it.
        _on_start(self.params)

    def required_subscriptions(self) -> list[Subscription]:
        return [Subscription("deribit", "BTC-PERPETUAL", "ticker")]

    async def on_event(self, event: MarketEvent) -> None:
        pass


def _on_start(p: TrapParams) -> None:
    """What the trap does as its backtest starts (blocking on purpose: a trial that computes)."""
    if p.count_dir:
        Path(p.count_dir, f"run-{os.getpid()}-{time.monotonic_ns()}").touch()
    if p.kill_marker:
        marker = Path(p.kill_marker)
        if p.kill_always or not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
    if p.sleep_s:
        time.sleep(p.sleep_s)
