"""The real daemon (`tradingd run` in a subprocess) against the Deribit simulator served by the
test: systemd notifications on a socket of the test's own, an orderly SIGTERM with an order in
flight, a `kill -9` mid-order and a restart that reconciles, the kill switch, redaction."""

from __future__ import annotations

import os
import signal
import sys
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
import trio

from tests.support.daemon_process import ROOT, SECRET, Daemon, serve_sim, sim_orders, until
from tradingd.simulators.deribit.simulator import DeribitSimulator

PERP = "BTC-PERPETUAL"

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="sd_notify and signals as on the servers")


class Notifications:
    """The test's own `$NOTIFY_SOCKET`: every datagram, with the simulator's state when READY came."""

    def __init__(self, path: Path, sim: DeribitSimulator) -> None:
        self.path = path
        self.sim = sim
        self.messages: list[tuple[float, dict[str, str]]] = []
        self.channels_at_ready: set[str] | None = None

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_DGRAM)
        await sock.bind(str(self.path))
        task_status.started()
        with sock:
            while True:
                data = await sock.recv(4096)
                fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
                if "READY" in fields and self.channels_at_ready is None:
                    self.channels_at_ready = {c for s in self.sim.sessions.values() for c in s.wanted}
                self.messages.append((trio.current_time(), fields))

    def having(self, key: str) -> list[tuple[float, dict[str, str]]]:
        return [(t, m) for t, m in self.messages if key in m]


async def test_ready_watchdog_and_an_orderly_stop_with_an_order_in_flight(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    sim, address = await serve_sim(nursery)
    notes = Notifications(tmp_path / "notify.sock", sim)
    await nursery.start(notes.serve)
    daemon = Daemon(tmp_path, address, below=0.1, after_s=2.0)
    await daemon.start(nursery, {"NOTIFY_SOCKET": str(notes.path), "WATCHDOG_USEC": "1000000"})

    await until(lambda: notes.having("READY"), what="READY=1")
    assert notes.channels_at_ready is not None and f"ticker.{PERP}.100ms" in notes.channels_at_ready
    ready_at = notes.having("READY")[0][0]
    await until(lambda: len([t for t, _ in notes.having("WATCHDOG") if t > ready_at]) >= 3, what="watchdogs")
    assert any("deribit up" in m["STATUS"] for _, m in notes.having("STATUS"))

    # The strategy places 2 s after its first ticker; the simulator holds every answer for 4 s.
    await until(lambda: (daemon.status() or {}).get("strategies", {}).get("once", {}).get("events"))
    sim.apply_faults({"stall_s": 4.0})
    await until(lambda: daemon.orders(), what="the order in the journal")
    (cid, order_id, state) = daemon.orders()[0]
    assert (order_id, state) == (None, "pending_new")  # sent, unanswered
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGTERM)
    t0 = trio.current_time()
    code = await daemon.wait_exit(within=12)
    assert code == 0
    assert trio.current_time() - t0 < 6 + 1  # the shutdown bound
    assert notes.having("STOPPING")
    # The answer came during the shutdown: the order is settled in the journal, as at the venue.
    (cid, order_id, state) = daemon.orders()[0]
    (at_venue,) = sim_orders(sim, cid)
    assert (order_id, state) == (at_venue.order_id, "open")
    assert [e["event"] for e in daemon.log_lines()].index("daemon.stopping") < [
        e["event"] for e in daemon.log_lines()
    ].index("daemon.exit")
    assert daemon.status()["stopped"] is True  # type: ignore[index]


async def test_kill_9_mid_order_then_restart_loses_nothing_and_sends_nothing_twice(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    sim, address = await serve_sim(nursery)
    # A marketable order: it fills at the venue while the daemon is dead.
    daemon = Daemon(tmp_path, address, below=0.0, after_s=1.5)
    proc = await daemon.start(nursery)
    await until(lambda: (daemon.status() or {}).get("strategies", {}).get("once", {}).get("events"))
    sim.apply_faults({"stall_s": 3.0})
    await until(lambda: daemon.orders(), what="the order in the journal")
    proc.kill()
    assert await daemon.wait_exit(within=5) == -signal.SIGKILL
    [(cid, order_id, state)] = daemon.orders()
    assert (order_id, state) == (None, "pending_new")
    (at_venue,) = await until(lambda: sim_orders(sim, cid))
    assert at_venue.state == "filled"  # it reached the venue and traded: the daemon never heard

    await trio.sleep(max(0.0, sim.faults.stall_until - trio.current_time()))
    await daemon.start(nursery)
    await until(lambda: (daemon.status() or {}).get("ready"))
    await until(lambda: daemon.orders() and daemon.orders()[0][2] == "filled", what="reconciled")
    [(cid2, order_id, state)] = daemon.orders()
    assert (cid2, order_id, state) == (cid, at_venue.order_id, "filled")
    assert len(sim_orders(sim, cid)) == 1 and len(sim.orders) == 1  # nothing sent twice
    status = await until(lambda: (s := daemon.status()) and s["strategies"]["once"]["positions"] and s)
    account = next(iter(sim.accounts.values()))
    held = {k: Decimal(v) for k, v in status["strategies"]["once"]["positions"].items()}
    assert held == {f"deribit:{PERP}": account.positions[PERP]}  # the same amount (10 == 10.0)
    assert status["strategies"]["once"]["orders_sent"] == 0  # the restarted strategy saw its position
    assert daemon.events("fills.caught_up") and daemon.events("journal.restored")
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGTERM)
    assert await daemon.wait_exit(within=12) == 0


async def test_kill_switch_sighup_status_and_redaction(nursery: trio.Nursery, tmp_path: Path) -> None:
    sim, address = await serve_sim(nursery)
    daemon = Daemon(tmp_path, address, below=0.1, log_file="tradingd.log")
    proc = await daemon.start(nursery)
    await until(lambda: (daemon.status() or {}).get("open_orders"), what="a resting order")
    cli = [sys.executable, "-c", "import sys; from tradingd.cli.main import main; sys.exit(main())"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    shown = await trio.run_process(
        [*cli, "status", "--config", str(daemon.config), "--json"], capture_stdout=True, env=env, check=False
    )
    assert shown.returncode == 0 and orjson.loads(shown.stdout)["running"] is True

    await trio.run_process([*cli, "kill", "--config", str(daemon.config), "--reason", "test drill"], env=env)
    status = await until(lambda: (s := daemon.status()) and s["kill_switch"] and s, what="kill switch")
    assert status["kill_switch"] == "test drill"
    cid = daemon.orders()[0][0]
    await until(lambda: sim_orders(sim, cid)[0].state == "cancelled", what="orders cancelled")
    await until(lambda: daemon.orders()[0][2] == "cancelled")
    await trio.run_process([*cli, "kill", "--config", str(daemon.config), "--clear"], env=env)
    await until(lambda: (s := daemon.status()) and s["kill_switch"] is None, what="cleared")

    # logrotate: rename the file, then SIGHUP; lines after the signal go to a new file.
    log_file = tmp_path / "tradingd.log"
    log_file.rename(tmp_path / "tradingd.log.1")
    proc.send_signal(signal.SIGHUP)
    sighup = await until(lambda: daemon.events("daemon.sighup"))
    assert sighup[0]["reopened"] is True
    assert proc.returncode is None  # still running
    await until(lambda: log_file.exists() and b"daemon.sighup" in log_file.read_bytes(), what="new log file")
    rotated = [
        orjson.loads(line)["event"] for line in (tmp_path / "tradingd.log.1").read_bytes().splitlines()
    ]
    assert "risk.kill_switch_engaged" in rotated and "daemon.sighup" not in rotated
    proc.send_signal(signal.SIGTERM)
    assert await daemon.wait_exit(within=12) == 0
    stopped = await trio.run_process(
        [*cli, "status", "--config", str(daemon.config)], capture_stdout=True, env=env, check=False
    )
    assert stopped.returncode == 3  # not running

    text = b"".join(p.read_bytes() for p in [*daemon.logs, log_file, tmp_path / "tradingd.log.1"])
    assert SECRET.encode() not in text
    tokens = [t for t in list(sim.tokens) + list(sim.refresh_tokens) if len(t) >= 6]
    assert tokens and not any(t.encode() in text for t in tokens)
    events = [e["event"] for e in daemon.log_lines()]
    assert "risk.kill_switch_engaged" in events and "risk.kill_switch_cleared" in events
    assert all({"ts", "level", "event"} <= e.keys() for e in daemon.log_lines() if e["event"] != "(not json)")


async def test_notifier_speaks_sd_notify_and_stays_silent_without_systemd(tmp_path: Path) -> None:
    from tradingd.engine.daemon.service import Notifier

    assert not Notifier({}).enabled and Notifier({}).notify(ready=1) is False
    name = f"tradingd-test-{os.getpid()}"
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_DGRAM)
    await sock.bind("\0" + name)  # the abstract namespace, as systemd's "@..." addresses
    with sock:
        n = Notifier(
            {"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())}
        )
        assert n.watchdog_s == 4.0
        assert n.notify(ready=1, status="all good")
        with trio.fail_after(2):
            assert await sock.recv(100) == b"READY=1\nSTATUS=all good"
        n.close()
    other = Notifier({"NOTIFY_SOCKET": "/nonexistent/sock", "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"})
    assert other.watchdog_s is None  # the watchdog is another process's
    assert other.notify(watchdog=1) is False and other.failed == 1
