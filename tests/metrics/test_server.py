"""The metrics' HTTP server: a scrape reads the daemon in the trio thread and never the other way
round; once the trio run is over a scrape fails cleanly (503, one line, nothing on stderr); the
daemon serves `[metrics]` only when configured, says where, stops serving when it stops, and a
port already taken is one line naming the key."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
import trio

from tests.support.daemon_process import CLIENT_ID, ROOT, SECRET
from tests.support.daemon_strategies import LIVE_ONCE_CONFIG
from tests.support.live_support import until
from tradingd.cli.settings import daemon_settings
from tradingd.config import load_config
from tradingd.engine import ConfigError
from tradingd.engine.daemon import Daemon
from tradingd.engine.metrics import MetricsServer, Snapshot

S = 1_000_000_000
STATUS: dict[str, Any] = {
    "mode": "live",
    "started_ns": 1 * S,
    "updated_ns": 2 * S,
    "ready": True,
    "kill_switch": None,
    "venues": {},
    "strategies": {},
    "unrouted_events": 0,
    "today_pnl": 1.5,
    "journal": None,
    "log_write_failures": 0,
    "recording": None,
}
CONFIG = LIVE_ONCE_CONFIG


def _get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=5)


def _metrics_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "tradingd-metrics"]


@contextlib.contextmanager
def _taken_port() -> Iterator[int]:
    """A loopback port some other program listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def _free(port: int) -> bool:
    """Nothing listens on `port` any more (a server may take it again: TIME_WAIT allows that)."""
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            again.bind(("127.0.0.1", port))
            again.listen()
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_a_scrape_reads_the_snapshot_in_the_trio_thread() -> None:
    trio_thread = threading.get_ident()
    seen: list[int] = []

    def snapshot() -> Snapshot:
        seen.append(threading.get_ident())
        return Snapshot(status=STATUS, version="1.2.3")

    server = MetricsServer("127.0.0.1", 0, snapshot)
    server.start()
    try:
        assert server.port != 0 and len(_metrics_threads()) == 1
        answer = await trio.to_thread.run_sync(_get, f"http://{server.address}/metrics")
    finally:
        await trio.to_thread.run_sync(server.close)
    assert answer.status_code == 200
    assert "tradingd_ready 1.0" in answer.text and 'tradingd_daily_pnl_usd{scope="engine"} 1.5' in answer.text
    assert seen == [trio_thread]
    assert not _metrics_threads()
    assert _free(server.port)


async def test_a_snapshot_that_fails_is_a_500_and_a_log_line_never_a_traceback() -> None:
    def snapshot() -> Snapshot:
        raise RuntimeError("a bug")

    server = MetricsServer("127.0.0.1", 0, snapshot)
    server.start()
    try:
        with structlog.testing.capture_logs() as logs:
            answer = await trio.to_thread.run_sync(_get, f"http://{server.address}/metrics")
            await trio.testing.wait_all_tasks_blocked()
    finally:
        await trio.to_thread.run_sync(server.close)
    assert answer.status_code == 500 and answer.text == "tradingd could not build its metrics: see its log\n"
    assert [(e["event"], e["failures"]) for e in logs] == [("metrics.snapshot_failed", 1)]
    assert logs[0]["exc_info"] is True
    assert server.failures == 1


async def test_a_snapshot_that_keeps_failing_is_logged_at_the_1st_10th_100th_failure() -> None:
    def snapshot() -> Snapshot:
        raise RuntimeError("a bug")

    server = MetricsServer("127.0.0.1", 0, snapshot)
    server.start()
    try:
        with structlog.testing.capture_logs() as logs:
            for _ in range(12):
                answer = await trio.to_thread.run_sync(_get, f"http://{server.address}/metrics")
                assert answer.status_code == 500
            await trio.testing.wait_all_tasks_blocked()
    finally:
        await trio.to_thread.run_sync(server.close)
    assert [(e["event"], e["failures"]) for e in logs] == [
        ("metrics.snapshot_failed", 1),
        ("metrics.snapshot_failed", 10),
    ]
    assert server.failures == 12


def test_once_the_trio_run_is_over_a_scrape_fails_cleanly(capfd: pytest.CaptureFixture[str]) -> None:
    async def serve() -> tuple[MetricsServer, int]:
        server = MetricsServer("127.0.0.1", 0, lambda: Snapshot(status=STATUS, version="1"))
        server.start()
        answer = await trio.to_thread.run_sync(_get, f"http://{server.address}/metrics")
        return server, answer.status_code

    server, during = trio.run(serve)
    try:
        after = _get(f"http://{server.address}/metrics")
    finally:
        server.close()
    assert during == 200
    assert after.status_code == 503 and after.text == "tradingd has stopped: no metrics\n"
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and not err


async def test_ipv6_loopback_is_served_in_brackets() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    server = MetricsServer("::1", 0, lambda: Snapshot(status=STATUS, version="1"))
    server.start()
    try:
        assert server.address == f"[::1]:{server.port}"
        answer = await trio.to_thread.run_sync(_get, f"http://{server.address}/metrics")
    finally:
        await trio.to_thread.run_sync(server.close)
    assert answer.status_code == 200 and "tradingd_info" in answer.text


# -- the daemon ------------------------------------------------------------------------------------


def _daemon(tmp_path: Path, extra: str = "", **options: Any) -> Daemon:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "live.toml"
    path.write_text(CONFIG + extra, encoding="utf-8")
    return Daemon(
        daemon_settings(load_config(path)),
        environ={"DERIBIT_CLIENT_ID": CLIENT_ID, "DERIBIT_CLIENT_SECRET": SECRET},
        **options,
    )


async def _run_while(daemon: Daemon, check: Callable[[], Any]) -> None:
    """Run the daemon (its venue never answers) while `check` runs in a worker thread."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(daemon.run)
        await until(lambda: daemon.engine.started.is_set(), 10, "engine started")
        await trio.to_thread.run_sync(check)
        nursery.cancel_scope.cancel()


async def test_the_daemon_serves_its_metrics_only_when_configured(tmp_path: Path) -> None:
    port = _free_port()
    daemon = _daemon(tmp_path / "on", f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
    scraped: list[httpx.Response] = []
    with structlog.testing.capture_logs() as logs:
        await _run_while(daemon, lambda: scraped.append(_get(f"http://127.0.0.1:{port}/metrics")))
    (answer,) = scraped
    assert answer.status_code == 200 and 'tradingd_info{mode="live"' in answer.text
    assert [e["address"] for e in logs if e["event"] == "metrics.listening"] == [
        f"http://127.0.0.1:{port}/metrics"
    ]
    assert daemon.metrics is None and not _metrics_threads()  # stopped with the daemon
    assert _free(port)

    off = _daemon(tmp_path / "off")
    seen: list[list[threading.Thread]] = []
    await _run_while(off, lambda: seen.append(_metrics_threads()))
    assert seen == [[]] and off.metrics is None


async def test_a_port_in_use_is_one_error_naming_the_key_at_the_start(tmp_path: Path) -> None:
    with _taken_port() as port:
        daemon = _daemon(tmp_path, f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
        with pytest.raises(ConfigError) as info:
            await daemon.run()
    assert info.value.path == "metrics.listen" and f"127.0.0.1:{port}" in info.value.message
    assert "in use" in info.value.message
    assert not daemon.engine.started.is_set()  # nothing connected
    _daemon(tmp_path)  # the state directory's lock was let go


def test_tradingd_run_with_a_port_in_use_exits_non_zero_with_one_line(tmp_path: Path) -> None:
    with _taken_port() as port:
        config = tmp_path / "live.toml"
        config.write_text(CONFIG + f'[metrics]\nlisten = "127.0.0.1:{port}"\n', encoding="utf-8")
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DERIBIT_CLIENT_ID": CLIENT_ID,
            "DERIBIT_CLIENT_SECRET": SECRET,
        }
        env.pop("NOTIFY_SOCKET", None)
        done = subprocess.run(
            [sys.executable, "-c", "import sys; from tradingd.cli.main import main; sys.exit(main())",
             "run", "--config", str(config)],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=False,
        )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "metrics.listen" in lines[0] and "in use" in lines[0], done.stderr
    assert "Traceback" not in done.stdout + done.stderr
