"""`tradingd record` with GammaScalp, which follows its option's ticker only (issue 16): its paper
orders on the option cannot fill (the fill model needs a book) and the recording holds no book of
the option. Both are said: `paper.no_book` in the log when it first happens, and a line at the end
beside the recording's summary."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any

import orjson
import trio

from tradingd.simulators.deribit.simulator import DeribitSimulator, serve

ROOT = Path(__file__).resolve().parent.parent.parent
CLI = [sys.executable, "-c", "import sys; from tradingd.cli.main import main; sys.exit(main())"]
ENV = {**{k: v for k, v in os.environ.items() if not k.startswith("DERIBIT_")}, "PYTHONPATH": str(ROOT)}


async def _record(
    nursery: trio.Nursery, tmp_path: Path, extra: str = ""
) -> tuple[str, list[dict[str, Any]], Path]:
    """`tradingd record` for 3 s with GammaScalp (its `extra` params added): the stderr, its JSON
    lines, and the recording directory."""
    sim = DeribitSimulator(seed=5, step_s=0.05)
    address = str((await nursery.start(functools.partial(serve, sim)))[0]).removeprefix("http://")
    config = tmp_path / "record.toml"
    config.write_text(
        f"""mode = "live"
[daemon]
state_dir = "state"
[venues.deribit]
url = "ws://{address}/ws/api/v2"
rest_url = "http://{address}"
currencies = ["BTC"]
[[strategies]]
name = "gamma_btc"
class = "gamma_scalp"
[strategies.params]
underlying = "BTC"
hedge = "BTC-PERPETUAL"
hedge_book = true
target_days = 30
option_size = 1
{extra}""",
        encoding="utf-8",
    )
    out = tmp_path / "rec"
    cmd = [
        *CLI,
        "--log-format",
        "json",
        "record",
        "--config",
        str(config),
        "--out",
        str(out),
        "--duration",
        "3",
    ]
    with trio.fail_after(40):
        done = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True, env=ENV, check=False)
    log = done.stderr.decode()
    assert done.returncode == 0, log
    return log, [orjson.loads(line) for line in log.splitlines() if line.startswith("{")], out


async def test_record_says_which_paper_orders_could_not_fill_for_want_of_a_book(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    log, lines, out = await _record(nursery, tmp_path)
    chosen = [e["option"] for e in lines if e.get("event") == "gamma.option_chosen"]
    assert chosen, log
    option = chosen[0]
    warned = [e for e in lines if e.get("event") == "paper.no_book"]
    assert [e["instrument"] for e in warned] == [option]  # once, and not the hedge (its book is followed)
    assert "subscribe a strategy to its `book` channel" in warned[0]["why"]
    unbooked = orjson.loads((out / "status.json").read_bytes())["paper_no_book"]
    assert list(unbooked) == [f"deribit:{option}"] and unbooked[f"deribit:{option}"] >= 1
    said = [line for line in log.splitlines() if "could not fill" in line and not line.startswith("{")]
    assert len(said) == 1 and said[0].startswith(f"deribit:{option}: ")
    assert "a backtest of it cannot fill them either" in said[0]


async def test_with_option_book_the_option_fills_in_paper_mode_and_is_recorded(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """`option_book = true` (config/paper-deribit.toml sets it): the option's book is followed, so
    its paper order fills, nothing is warned of, and the recording holds that book."""
    log, lines, out = await _record(nursery, tmp_path, "option_book = true\n")
    (option,) = {e["option"] for e in lines if e.get("event") == "gamma.option_chosen"}
    assert not [e for e in lines if e.get("event") == "paper.no_book"], log
    filled = [e for e in lines if e.get("event") == "order.fill" and e.get("instrument") == option]
    assert filled, log
    assert orjson.loads((out / "status.json").read_bytes())["paper_no_book"] is None
    channels = orjson.loads((out / "manifest.json").read_bytes())["venues"]["deribit"]["channels_at_start"]
    assert any(c.startswith(f"book.{option}.") for c in channels), channels
