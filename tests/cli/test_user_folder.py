"""A user's folder, as a quant starts one: its own `config.py`, its own `strategies/` package, and a
backtest TOML naming `class = "strategies.mine:Mine"`. `tradingd backtest` (the installed console
script, run from that folder, no PYTHONPATH) runs the user's strategy, which sees the user's
`config`, beside ours loaded by name: everything of ours lives under `tradingd.`, so neither
shadows the other. A user's module is looked for in the config file's folder, then the working
directory (as uvicorn's `--app-dir`); one found nowhere is a one-line error naming both.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson

_SCRIPT = shutil.which("tradingd", path=str(Path(sys.executable).parent))
TRADINGD = [_SCRIPT] if _SCRIPT else [sys.executable, "-m", "tradingd.cli.main"]

USER_CONFIG = """\
from pathlib import Path

VALUE = "user's"
OUT = Path(__file__).with_name("ran.json")
"""

USER_STRATEGY = """\
import json

import config
from tradingd.engine import MarketEvent, Strategy, Subscription


class Mine(Strategy):
    def __init__(self, name, params=None):
        super().__init__(name, params)
        self.events = 0

    def required_subscriptions(self):
        return [Subscription("deribit", "BTC-PERPETUAL")]

    async def on_event(self, event: MarketEvent) -> None:
        self.events += 1

    async def on_stop(self) -> None:
        seen = {"strategy": self.name, "value": config.VALUE, "events": self.events}
        config.OUT.write_text(json.dumps(seen))
"""

BACKTEST = """\
mode = "backtest"
[logging]
level = "warning"
[backtest]
[[backtest.data]]
venue = "deribit"
path = "{data}"
generate = {{ seed = 7, hours = 0.1 }}

[[strategies]]
name = "mine"
class = "strategies.mine:Mine"

[[strategies]]
name = "momentum_eth"
class = "momentum"
[strategies.params]
underlying = "ETH"
index_instrument = "ETH-PERPETUAL"
"""


def _user_folder(root: Path) -> Path:
    folder = root / "quant"
    (folder / "strategies").mkdir(parents=True)
    (folder / "config.py").write_text(USER_CONFIG, encoding="utf-8")
    (folder / "strategies" / "__init__.py").write_text("", encoding="utf-8")
    (folder / "strategies" / "mine.py").write_text(USER_STRATEGY, encoding="utf-8")
    return folder


def _tradingd(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the user's shell: none set
    return subprocess.run(
        [*TRADINGD, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_a_users_own_strategy_and_config_run_beside_ours(tmp_path: Path) -> None:
    folder = _user_folder(tmp_path)
    toml = folder / "backtest.toml"
    toml.write_text(BACKTEST.format(data=folder / "data" / "sample.rec.zst"), encoding="utf-8")
    done = _tradingd(folder, "backtest", "--config", str(toml), "--no-progress")
    assert done.returncode == 0, done.stderr
    ran = orjson.loads((folder / "ran.json").read_bytes())
    assert ran["strategy"] == "mine" and ran["value"] == "user's" and ran["events"] > 0, ran
    # The summary's table: a column per strategy, named in its header row.
    header = next(line for line in done.stdout.splitlines() if "momentum_eth" in line)
    assert header.split() == ["mine", "momentum_eth"], done.stdout  # ours, by name, in the same run


def test_a_users_module_is_found_in_the_working_directory_when_not_beside_the_config(tmp_path: Path) -> None:
    folder = _user_folder(tmp_path)
    (folder / "configs").mkdir()
    toml = folder / "configs" / "backtest.toml"
    toml.write_text(BACKTEST.format(data=tmp_path / "sample.rec.zst"), encoding="utf-8")
    done = _tradingd(folder, "check-config", str(toml))
    assert done.returncode == 0, done.stderr
    assert "strategies: mine (Mine), momentum_eth (Momentum)" in done.stdout, done.stdout


def test_a_users_module_found_nowhere_is_one_line_naming_the_folders_searched(tmp_path: Path) -> None:
    folder = _user_folder(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    toml = elsewhere / "backtest.toml"
    toml.write_text(BACKTEST.format(data=tmp_path / "sample.rec.zst"), encoding="utf-8")
    done = _tradingd(tmp_path, "check-config", str(toml))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert (
        "strategies[0].class" in done.stderr and "strategy module 'strategies.mine' not found" in done.stderr
    )
    assert f"no 'strategies' in {elsewhere.resolve()} or {tmp_path.resolve()}, nor installed" in done.stderr
    assert folder.exists()  # the module is there, just not where a user of this config looks
