"""A user module, named in the config as `module:Class`, trades in a backtest run in-process,
without touching our packages (the README's own walkthrough: tests/config/test_readme_strategy.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import trio

from tradingd.config import load_config
from tradingd.connectors.deribit import PLUGIN
from tradingd.engine.backtest.kernel import BacktestKernel, DataSource
from tradingd.simulators.deribit import SIMULATOR as DERIBIT_SIM

# The README's own example runs as written in tests/config/test_readme_strategy.py; this one is
# loaded in-process, with its folder already on sys.path.
SNIPPET = """
from tradingd.engine import Strategy, Subscription, Ticker


class BuyTheDip(Strategy):
    high = 0.0

    def required_subscriptions(self):
        return [Subscription("deribit", "ETH-PERPETUAL", {"ticker"})]

    async def on_event(self, event):
        if isinstance(event, Ticker) and event.bid:
            self.high = max(self.high, event.bid)
            if event.bid < self.high * 0.999 and self.ctx.position("deribit", "ETH-PERPETUAL") < 100:
                await self.ctx.buy("deribit", "ETH-PERPETUAL", 10, price=event.bid)
"""


def test_a_user_strategy_by_module_path(tmp_path: Path) -> None:
    (tmp_path / "my_strategies.py").write_text(SNIPPET)
    data = tmp_path / "s.rec.zst"
    DERIBIT_SIM.generate_sample(data, {"hours": 0.1, "seed": 11})
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        'mode = "backtest"\n[backtest]\n[[backtest.data]]\nvenue = "deribit"\n'
        f'path = "{data}"\n[[strategies]]\nname = "dip"\nclass = "my_strategies:BuyTheDip"\n'
    )
    sys.path.insert(0, str(tmp_path))
    try:
        loaded = load_config(cfg)
        kernel = BacktestKernel({"deribit": PLUGIN}, [DataSource("deribit", data)], loaded.build_strategies())
        result = trio.run(kernel.run)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("my_strategies", None)
    dip = result.strategies["dip"]
    assert dip.errors == 0
    assert dip.orders > 0 and dip.fills > 0
