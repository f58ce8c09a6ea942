"""End to end: the daemon (in this process, under the test's trio) against the Deribit simulator,
with `[alerts]` pointing at the loopback webhook server and `[metrics]` on a loopback port, its
settings made as `tradingd run` makes them (the config loader): the kill switch file engaged ->
the webhooks receive the kill-switch alert (json through `$TRADINGD_ALERT_URL`, Slack through a
URL file beside the config), cleared -> the info alert; a scrape counts them by channel (the
metrics read the daemon's `alert_notifier`); the URL in nothing the daemon wrote or served."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import structlog
import trio
from prometheus_client.parser import text_string_to_metric_families

from tests.alerts.webhooks import WebhookServer
from tests.support.daemon_process import CLIENT_ID, ROOT, SECRET, serve_sim
from tradingd.cli.exits import EXIT_CREDENTIALS
from tradingd.cli.settings import daemon_settings
from tradingd.config import load_config
from tradingd.engine.alerts import Alert
from tradingd.engine.daemon.service import Daemon, release_state_dir
from tradingd.engine.daemon.settings import DaemonSettings
from tradingd.engine.model.errors import ConfigError
from tradingd.engine.store.journal import OrderJournal

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="signals as on the servers")

SLACK_PATH = "/services/T0E2E/B0E2E/e2eSlackSecret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def settings(tmp_path: Path, address: str, alerts: str, metrics_port: int | None = None) -> DaemonSettings:
    """A live config with `alerts` as its `[alerts]` table, loaded as `tradingd run` loads it."""
    config = tmp_path / "live.toml"
    metrics = "" if metrics_port is None else f'[metrics]\nlisten = "127.0.0.1:{metrics_port}"\n'
    config.write_text(
        f"""
mode = "live"
[venues.deribit]
url = "ws://{address}/ws/api/v2"
rest_url = "http://{address}"
currencies = ["BTC"]
[daemon]
state_dir = "state"
shutdown_timeout_s = 5
{metrics}
[[strategies]]
name = "once"
class = "tests.support.daemon_strategies:PlaceOnce"

[alerts]
{alerts}
""",
        encoding="utf-8",
    )
    return daemon_settings(load_config(config))


def _scrape(port: int) -> tuple[str, dict[tuple[str, frozenset[tuple[str, str]]], float]]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return text, samples


async def test_the_kill_switch_reaches_the_webhooks(nursery: trio.Nursery, tmp_path: Path) -> None:
    _, address = await serve_sim(nursery)
    server = WebhookServer()
    base = await nursery.start(server.serve)
    (tmp_path / "slack-url").write_text(f"{base}{SLACK_PATH}\n", encoding="utf-8")
    table = """timeout_s = 2.0
[[alerts.webhooks]]
format = "json"
url_env = "TRADINGD_ALERT_URL"
[[alerts.webhooks]]
format = "slack"
url_file = "slack-url"  # relative to the config's folder
"""
    port = _free_port()
    environ = {
        "DERIBIT_CLIENT_ID": CLIENT_ID,
        "DERIBIT_CLIENT_SECRET": SECRET,
        "TRADINGD_ALERT_URL": f"{base}/hooks/e2eJsonSecret",
    }
    with structlog.testing.capture_logs() as logs:
        daemon = Daemon(settings(tmp_path, address, table, metrics_port=port), environ=environ)
        assert daemon.alert_notifier is not None
        done = trio.Event()

        async def run() -> None:
            try:
                await daemon.run()
            finally:
                done.set()

        nursery.start_soon(run)
        with trio.fail_after(20):
            await daemon.engine.ready.wait()
        daemon.paths.kill_switch_file.write_text("e2e drill\n", encoding="utf-8")
        await server.until(lambda: len(server.received) == 2, within=10, what="the kill switch alert")
        alert = server.at("/hooks/e2eJsonSecret")[0].json()
        assert (alert["kind"], alert["subject"], alert["severity"]) == ("kill_switch", "engine", "critical")
        assert alert["text"].startswith("kill switch engaged: e2e drill.")
        assert isinstance(alert["ts"], int) and alert["ts"] > 1_700_000_000 * 10**9
        (slack,) = server.at(SLACK_PATH)
        assert slack.json()["text"].startswith("[CRITICAL] tradingd@") and "e2e drill" in slack.json()["text"]
        assert daemon.status()["kill_switch"] == "e2e drill"
        assert daemon.status()["foreign_orders"] == {}  # a fresh simulator account: none

        daemon.paths.kill_switch_file.unlink()
        assert daemon.alert_notifier is not None
        notifier = daemon.alert_notifier
        await server.until(lambda: sum(notifier.sent.values()) == 4, within=10, what="the cleared alert")
        assert server.at("/hooks/e2eJsonSecret")[1].json()["kind"] == "kill_switch_cleared"
        assert notifier.sent == {"json": 2, "slack": 2} and len(server.received) == 4
        assert notifier.failed == {"json": 0, "slack": 0}
        # The metrics read the same counters from the daemon's notifier, by channel and reason.
        scraped, samples = await trio.to_thread.run_sync(_scrape, port)
        for channel in ("json", "slack"):
            assert samples[("tradingd_alerts_sent_total", frozenset({("channel", channel)}))] == 2
            assert samples[("tradingd_alerts_failed_total", frozenset({("channel", channel)}))] == 0
        for reason in ("dedup", "rate", "queue_full"):
            assert samples[("tradingd_alerts_suppressed_total", frozenset({("reason", reason)}))] == 0

        assert daemon._nursery is not None
        daemon._nursery.start_soon(daemon._stop, daemon._nursery.cancel_scope)
        with trio.fail_after(15):
            await done.wait()
    status_file = daemon.paths.status_file.read_text(encoding="utf-8")
    for secret in ("e2eJsonSecret", "e2eSlackSecret"):
        assert secret not in repr(logs) and secret not in status_file and secret not in scraped
    assert [e["event"] for e in logs].count("alerts.sent") == 4


def test_a_missing_webhook_variable_stops_the_start_with_one_line(tmp_path: Path) -> None:
    table = 'webhooks = [{ format = "telegram", url_env = "TRADINGD_TELEGRAM_URL" }]'
    with pytest.raises(ConfigError) as caught:
        Daemon(settings(tmp_path, "127.0.0.1:9", table), environ={})
    assert str(caught.value) == (
        f"{tmp_path / 'live.toml'}: alerts.webhooks[0].url_env: the environment variable "
        "TRADINGD_TELEGRAM_URL is not set"
    )
    assert not (tmp_path / "state" / "lock").exists()  # refused before the state directory was taken


async def test_the_kill_switch_alert_goes_before_the_cancels_end(tmp_path: Path) -> None:
    """Cancelling every open order may take seconds (a slow venue): the alert says the kill
    switch is engaged the moment it is, not once the cancels are done."""
    table = '[[alerts.webhooks]]\nformat = "json"\nurl_env = "TRADINGD_ALERT_URL"\n'
    environ = {
        "DERIBIT_CLIENT_ID": CLIENT_ID,
        "DERIBIT_CLIENT_SECRET": SECRET,
        "TRADINGD_ALERT_URL": "http://127.0.0.1:9/hook",
    }
    daemon = Daemon(settings(tmp_path, "127.0.0.1:9", table), environ=environ)
    assert daemon.alert_watcher is not None
    raised: list[str] = []
    daemon.alert_watcher.sink = lambda alert: raised.append(alert.kind)
    seen_at_cancel: list[list[str]] = []
    release = trio.Event()

    async def slow_cancel(*args: object, **kwargs: object) -> int:
        seen_at_cancel.append(list(raised))
        await release.wait()  # a venue that takes its time
        return 0

    daemon.engine.cancel_all_orders = slow_cancel  # type: ignore[method-assign]
    daemon.paths.kill_switch_file.parent.mkdir(parents=True, exist_ok=True)
    daemon.paths.kill_switch_file.write_text("slow drill\n", encoding="utf-8")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(daemon._check_kill_switch)
        with trio.fail_after(5):
            while not seen_at_cancel:
                await trio.sleep(0.01)
        assert seen_at_cancel == [["kill_switch"]]  # queued while the cancels still run
        release.set()
    assert raised == ["kill_switch"]


@pytest.mark.parametrize(
    ("hook", "named"),
    [
        ('{ format = "slack", url_env = "TRADINGD_SLACK_URL" }', "TRADINGD_SLACK_URL is not set"),
        ('{ format = "json", url_file = "hook-url" }', "hook-url does not exist"),
    ],
)
def test_tradingd_run_without_its_webhook_url_exits_78_not_restarted(
    tmp_path: Path, hook: str, named: str
) -> None:
    # As missing venue credentials: a restart does not bring the URL, so the exit is the one the
    # systemd unit does not restart (RestartPreventExitStatus=78), with the same one line.
    settings(tmp_path, "127.0.0.1:9", f"webhooks = [{hook}]")  # writes live.toml
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DERIBIT_", "TRADINGD_"))}
    env.update({"PYTHONPATH": str(ROOT), "DERIBIT_CLIENT_ID": CLIENT_ID, "DERIBIT_CLIENT_SECRET": SECRET})
    cmd = [sys.executable, "-c", "import sys; from tradingd.cli.main import main; sys.exit(main())"]
    done = subprocess.run(
        [*cmd, "run", "--config", str(tmp_path / "live.toml")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == EXIT_CREDENTIALS, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("tradingd: ")]
    assert len(lines) == 1 and lines[0].startswith("tradingd: error: ") and named in lines[0], done.stderr
    assert "Traceback" not in done.stderr and SECRET not in done.stderr + done.stdout


async def test_a_venue_id_contested_in_the_journal_at_the_start_reaches_the_alerts_once(
    tmp_path: Path,
) -> None:
    """The journal holds an open contest (a `venue_id_contested` note, no settling one): the
    daemon restores it at its start (`contested_ids`) and its status loop's watcher alerts it,
    critical, once, however many seconds it stays open. Before, the watcher took the first
    status as its baseline and a contest open at the start reached only the log."""
    table = '[[alerts.webhooks]]\nformat = "json"\nurl_env = "TRADINGD_ALERT_URL"\n'
    environ = {
        "DERIBIT_CLIENT_ID": CLIENT_ID,
        "DERIBIT_CLIENT_SECRET": SECRET,
        "TRADINGD_ALERT_URL": "http://127.0.0.1:9/hook",
    }
    configured = settings(tmp_path, "127.0.0.1:9", table)
    (tmp_path / "state").mkdir(mode=0o700)
    journal = OrderJournal(tmp_path / "state" / "journal.sqlite")
    journal.note("venue_id_contested", None, venue="deribit", order_id="V1", claimants=["s-bt-1", "s-bt-2"])
    assert not journal.close()
    daemon = Daemon(configured, environ=environ)
    try:
        assert daemon.alert_watcher is not None
        raised: list[Alert] = []
        daemon.alert_watcher.sink = raised.append
        with trio.move_on_after(3.5):
            await daemon._status_loop()  # a status and a watcher's reading a second
        assert daemon.alert_watcher.observed >= 3
        assert daemon.status()["contested_ids"] == {"deribit V1": ["s-bt-1", "s-bt-2"]}
        assert [(a.kind, a.subject, a.severity) for a in raised] == [
            ("order_id_conflict", "deribit V1", "critical")
        ]
        assert "s-bt-1, s-bt-2" in raised[0].text
    finally:
        assert daemon.journal is not None
        daemon.journal.close()
        release_state_dir(daemon._state_lock)
