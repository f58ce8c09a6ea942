"""Each venue's `config/sim-<venue>.toml` runs as its comment says (issue 16, the live tour): the
simulator served as `tradingd simulate <venue>` serves it (its default seed), the credentials
copied from the config's own comment (the demo account the simulator's banner prints), and
`tradingd run --config` in a subprocess gets ready with every strategy running, then stops
cleanly on SIGINT. The config's port is the one its comment starts the simulator on; the test
serves on a free port and points a copy of the config there."""

from __future__ import annotations

import functools
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trio

from tests.support.daemon_process import ROOT, until
from tradingd.engine.sim import load_simulator

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="signals as on the servers")

PORTS = {"deribit": 8765, "polymarket": 8766, "derive": 8767}


def _status(state: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = orjson.loads((state / "status.json").read_bytes())
    except (OSError, ValueError):
        return {}
    return data


@pytest.mark.parametrize("venue", sorted(PORTS))
async def test_the_sim_config_runs_against_its_simulator_with_the_credentials_it_names(
    nursery: trio.Nursery, tmp_path: Path, venue: str
) -> None:
    path = ROOT / "config" / f"sim-{venue}.toml"
    text = path.read_text(encoding="utf-8")
    port = PORTS[venue]
    comment = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert f"tradingd simulate {venue} --port {port}" in comment
    assert f"127.0.0.1:{port}" in text and f"run --config config/sim-{venue}.toml" in comment
    env = dict(re.findall(r"\b([A-Z][A-Z_]+)=(\S+)", comment))
    assert env, "the comment names the demo account's variables"

    binds = await nursery.start(
        lambda task_status: load_simulator(venue).simulate(host="127.0.0.1", port=0, task_status=task_status)
    )
    address = binds[0].removeprefix("http://")
    (tmp_path / "config").mkdir()
    config = tmp_path / "config" / path.name
    config.write_text(text.replace(f"127.0.0.1:{port}", address), encoding="utf-8")
    state = tmp_path / "runs" / f"state-sim-{venue}"  # the config's own `../runs/...`

    inherited = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    cmd = [sys.executable, "-c", "import sys; from tradingd.cli.main import main; sys.exit(main())"]
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        proc: trio.Process = await nursery.start(
            functools.partial(
                trio.run_process,
                [*cmd, "run", "--config", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**inherited, "PYTHONPATH": str(ROOT), **env},
                cwd=str(tmp_path),
                check=False,
            )
        )

    def running() -> bool:
        status = _status(state)
        strategies = status.get("strategies") or {}
        return bool(
            status.get("ready")
            and (status.get("venues") or {}).get(venue, {}).get("ready")
            and strategies
            and all(s.get("state") == "running" for s in strategies.values())
        )

    def logged(event: str) -> list[dict[str, Any]]:
        lines = []
        for line in log.read_bytes().splitlines():
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(entry, dict) and entry.get("event") == event:
                lines.append(entry)
        return lines

    try:
        await until(running, within=60, what=f"the daemon ready on the {venue} simulator")
        # The tour's configs follow a book, so a `gap` switch has something to lose (Polymarket's
        # market channel carries the book of every token subscribed: its gap fires at the next
        # move of a best bid or ask, which a quiet market may not make within the test).
        assert venue == "polymarket" or "hedge_book = true" in text
        if venue != "polymarket":
            # The tour's `gap` switch shows: the hedge's book is subscribed (ready means the
            # subscriptions are made), so the switch has something to lose, and the daemon says
            # so (book.gap, the book resnapshotted), as does the strategy (its hedges held).
            async with httpx.AsyncClient(base_url=binds[0]) as http:
                answer = (await http.post("/_sim/faults", json={"gap": "*"})).json()
            assert answer["applied"] == {"gap": "*"}, answer
            await until(lambda: logged("book.gap"), within=30, what="the book.gap line")
            await until(lambda: logged("gamma.hedge_held"), within=30, what="the hedges held")
    finally:
        proc.send_signal(signal.SIGINT)
        with trio.fail_after(30):
            code = await proc.wait()
    lines = log.read_text(encoding="utf-8", errors="replace")
    assert code == 0, lines[-3000:]
    assert "session.credentials_refused" not in lines
    # Its `[logging] file` (the README's `tradingd logs runs/sim-<venue>.log`), its folder made.
    written = (tmp_path / "runs" / f"sim-{venue}.log").read_bytes().splitlines()
    assert any(orjson.loads(line).get("event") == "daemon.ready" for line in written)
