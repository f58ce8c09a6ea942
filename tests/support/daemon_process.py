"""The real daemon as a test drives it: `tradingd run` in a subprocess with its own config, state
directory and log file (`Daemon`), against the Deribit simulator served by the test (`serve_sim`)."""

from __future__ import annotations

import functools
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import trio

from tests.support.live_support import until as poll_until
from tradingd.simulators.deribit.simulator import DEFAULT_ACCOUNTS, DeribitSimulator, serve

ROOT = Path(__file__).resolve().parent.parent.parent
CLIENT_ID, SECRET = next(iter(DEFAULT_ACCOUNTS.items()))


async def until(predicate: Callable[[], Any], within: float = 15.0, what: str = "") -> Any:
    """Poll another process's files or the simulator's state (slower steps than in-process)."""
    return await poll_until(predicate, within, what, every=0.05)


class Daemon:
    """One `tradingd run` process with its config, state directory and log file."""

    def __init__(
        self,
        tmp: Path,
        address: str,
        *,
        below: float,
        after_s: float = 0.0,
        log_file: str = "",
        **daemon: Any,
    ) -> None:
        self.tmp = tmp
        self.state = tmp / "state"
        self.config = tmp / "live.toml"
        extra = "".join(f"{k} = {orjson.dumps(v).decode()}\n" for k, v in daemon.items())
        self.config.write_text(
            f"""
mode = "live"
[logging]
level = "info"
format = "json"
{f'file = "{log_file}"' if log_file else ""}
[venues.deribit]
url = "ws://{address}/ws/api/v2"
rest_url = "http://{address}"
currencies = ["BTC"]
[daemon]
state_dir = "state"
shutdown_timeout_s = 6
{extra}
[[strategies]]
name = "once"
class = "tests.support.daemon_strategies:PlaceOnce"
[strategies.params]
below = {below}
after_s = {after_s}
""",
            encoding="utf-8",
        )
        self.logs: list[Path] = []
        self.proc: trio.Process | None = None

    async def start(self, nursery: trio.Nursery, env: dict[str, str] | None = None) -> trio.Process:
        log = self.tmp / f"daemon-{len(self.logs)}.log"
        self.logs.append(log)
        inherited = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
        environ = {
            **inherited,
            "PYTHONPATH": str(ROOT),
            "DERIBIT_CLIENT_ID": CLIENT_ID,
            "DERIBIT_CLIENT_SECRET": SECRET,
            **(env or {}),
        }
        cmd = [sys.executable, "-c", "import sys; from tradingd.cli.main import main; sys.exit(main())"]
        with log.open("wb") as out:
            self.proc = await nursery.start(
                functools.partial(
                    trio.run_process,
                    [*cmd, "run", "--config", str(self.config)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=environ,
                    cwd=str(self.tmp),
                    check=False,
                )
            )
        assert self.proc is not None
        return self.proc

    def status(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = orjson.loads((self.state / "status.json").read_bytes())
        except (OSError, ValueError):
            return None
        return data

    def orders(self) -> list[tuple[str, str | None, str]]:
        path = self.state / "journal.sqlite"
        if not path.exists():
            return []
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                rows = db.execute("SELECT client_order_id, order_id, state FROM orders ORDER BY created_ns")
                return [(str(c), o, str(s)) for c, o, s in rows]
            finally:
                db.close()
        except sqlite3.Error:
            return []

    def log_lines(self) -> list[dict[str, Any]]:
        out = []
        for path in self.logs:
            for line in path.read_bytes().splitlines():
                try:
                    out.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    out.append({"event": "(not json)", "line": line.decode("utf-8", "replace")})
        return out

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.log_lines() if e.get("event") == name]

    async def wait_exit(self, within: float) -> int:
        assert self.proc is not None
        with trio.fail_after(within):
            return await self.proc.wait()


async def serve_sim(nursery: trio.Nursery) -> tuple[DeribitSimulator, str]:
    sim = DeribitSimulator(seed=3, step_s=0.1)
    binds = await nursery.start(functools.partial(serve, sim))
    return sim, binds[0].removeprefix("http://")


def sim_orders(sim: DeribitSimulator, label: str) -> list[Any]:
    return [o for o in sim.orders.values() if o.label == label]
