"""A sweep's base backtest config for tests: the README's config (both example strategies) on a
few minutes of the generated Deribit sample, plus a `trap` strategy (`sweep_trap.Trap`, copied
beside it as a user's module, `trap_<folder>.py`) whose parameters make a trial raise, kill its
worker or take its time; and its decoded-event cache, written once (as `tradingd sweep` warms
it)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import trio

from tests.support.backtests import bundled_config_on
from tradingd.config import load_config
from tradingd.engine.store.evcache import EventCache

_TRAP = Path(__file__).with_name("sweep_trap.py")

TRAP_TABLE = """
[[strategies]]
name = "trap"
class = "{module}:Trap"
[strategies.params]
fail = false
"""


def sweep_base(folder: Path, *, hours: float = 0.05, warm: bool = True) -> Path:
    """`folder/bt.toml` (and its data, the trap's module, and with `warm` the cache `folder/evc`)."""
    from tradingd.cli.backtest import build_kernel

    config = bundled_config_on(folder, hours=hours, seed=7)
    # A low threshold: momentum trades within a few minutes of data.
    text = config.read_text().replace("threshold = 0.04 ", "threshold = 0.001")
    assert "threshold = 0.001" in text
    # A module name of this folder's own: one process imports one module per name, and tests
    # of several folders may share a process.
    module = "trap_" + re.sub(r"\W", "_", folder.name)
    config.write_text(text + TRAP_TABLE.format(module=module))
    shutil.copyfile(_TRAP, folder / f"{module}.py")
    if warm:
        kernel = build_kernel(load_config(config), event_cache=EventCache(folder / "evc"))
        trio.run(kernel.run)
        assert kernel.cache_entry is not None
    return config
