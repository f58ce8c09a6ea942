"""The README's "Add a strategy" works as written: its two code blocks, saved as the README says
(`my_strategies.py` and `dip.toml`) in a folder of their own, pass `tradingd check-config` and
run in `tradingd backtest` from that folder, with no PYTHONPATH (the installed console script,
as a user types it). The run must show what the section promises: the strategy ordered, its
position plus its working buy orders never went past its own `max_position`, and an order the
engine refused (the example's `max_orders_per_minute`) did not stop it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent.parent
_SCRIPT = shutil.which("tradingd", path=str(Path(sys.executable).parent))
TRADINGD = [_SCRIPT] if _SCRIPT else [sys.executable, "-m", "tradingd.cli.main"]
FINAL = {"filled", "cancelled", "rejected", "expired"}


def _section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"^## Add a strategy\n(.*?)^## ", readme, re.MULTILINE | re.DOTALL)
    assert found, "README.md has no '## Add a strategy' section"
    return found[1]


def _block(section: str, language: str) -> str:
    blocks = re.findall(rf"^```{language}\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1, f"expected one ```{language} block in the section, found {len(blocks)}"
    text: str = blocks[0]
    return text


def _tradingd(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # a user's shell: none set
    return subprocess.run(
        [*TRADINGD, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _events(stderr: str) -> list[dict[str, Any]]:
    out = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            event: dict[str, Any] = orjson.loads(line)
            out.append(event)
    return out


def test_the_readme_strategy_runs_as_written_from_its_folder(tmp_path: Path) -> None:
    section = _section()
    assert "`my_strategies.py`" in section and "`dip.toml`" in section  # the names the README gives
    folder = tmp_path / "my-first-strategy"
    folder.mkdir()
    (folder / "my_strategies.py").write_text(_block(section, "python"), encoding="utf-8")
    (folder / "dip.toml").write_text(_block(section, "toml"), encoding="utf-8")

    checked = _tradingd(folder, "check-config", "dip.toml")
    assert checked.returncode == 0, checked.stderr
    assert "strategies: dip (BuyTheDip)" in checked.stdout, checked.stdout

    # JSON logs at info: every order sent, refused, updated and filled, in the order they happened.
    logged = ("--log-level", "info", "--log-format", "json")
    run = _tradingd(folder, *logged, "backtest", "--config", "dip.toml", "--no-progress")
    assert run.returncode == 0, run.stderr
    configured = re.search(r"^max_position = (\d+)", _block(section, "toml"), re.MULTILINE)
    assert configured, "the example's toml sets no max_position"
    limit = Decimal(configured[1])
    events = [e for e in _events(run.stderr) if e.get("strategy") == "dip"]
    held = Decimal(0)
    working: dict[str, Decimal] = {}  # open buy orders: what may still fill
    sent = refused = sent_after_refusal = 0
    for e in events:
        name = e["event"]
        if name == "order.sent":
            assert e["side"] == "buy"
            size = Decimal(e["size"])
            assert held + sum(working.values()) + size <= limit, (held, working, e)
            working[e["client_order_id"]] = size
            sent += 1
            sent_after_refusal += refused > 0
        elif name == "order.refused":
            refused += 1
        elif name == "order.fill":
            size = Decimal(e["size"])
            held += size
            working[e["client_order_id"]] -= size
            assert held <= limit, (held, e)
        elif name == "order.update" and e["status"] in FINAL:
            working.pop(e["client_order_id"], None)
    assert sent > 0 and held > 0, run.stderr[-2000:]
    assert refused > 0, "the example's risk limit refused nothing: the section's claim is untested"
    assert sent_after_refusal > 0, "the strategy sent nothing after a refusal"
    # No exception escaped the strategy (each is logged as strategy.error, or strategy.failed).
    assert not [e for e in events if e["event"] in ("strategy.error", "strategy.failed")], run.stderr[-2000:]


def test_run_finds_the_readme_strategy_as_backtest_does(tmp_path: Path) -> None:
    # `tradingd run` loads the same config the same way: the module is found (a missing one is
    # refused first), so what stops this backtest config is only its mode.
    section = _section()
    (tmp_path / "my_strategies.py").write_text(_block(section, "python"), encoding="utf-8")
    (tmp_path / "dip.toml").write_text(_block(section, "toml"), encoding="utf-8")
    done = _tradingd(tmp_path, "run", "--config", "dip.toml")
    assert done.returncode == 2, done.stderr
    assert (
        done.stderr
        == "tradingd: error: dip.toml: mode: mode is 'backtest': run it with `tradingd backtest`\n"
    )
    (tmp_path / "my_strategies.py").rename(tmp_path / "elsewhere.py")
    done = _tradingd(tmp_path, "run", "--config", "dip.toml")
    assert done.returncode == 2 and "strategy module 'my_strategies' not found" in done.stderr, done.stderr
