"""End to end: the daemon (in this process, under the test's trio) against the Deribit simulator,
with `[alerts]` pointing at the loopback webhook server: the kill switch file engaged -> the
webhooks receive the kill-switch alert (json through `$TRADINGD_ALERT_URL`, Slack through a URL
file), cleared -> the info alert; the URL in nothing the daemon wrote.

The config loader does not know `[alerts]` yet (the settings field comes with the metrics work):
the test gives the daemon settings that carry `alerts`, as `DaemonSettings` will."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import attrs
import pytest
import structlog
import trio

from tests.alerts.webhooks import WebhookServer
from tests.support.daemon_process import CLIENT_ID, SECRET, serve_sim
from tradingd.cli.settings import daemon_settings
from tradingd.config import load_config
from tradingd.engine.alerts import AlertOptions, alert_options_from_table
from tradingd.engine.daemon.service import Daemon
from tradingd.engine.daemon.settings import DaemonSettings
from tradingd.engine.model.errors import ConfigError

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="signals as on the servers")

SLACK_PATH = "/services/T0E2E/B0E2E/e2eSlackSecret"


@attrs.frozen
class _WithAlerts(DaemonSettings):
    alerts: AlertOptions | None = None


def settings(tmp_path: Path, address: str, alerts: dict[str, Any]) -> DaemonSettings:
    config = tmp_path / "live.toml"
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
[[strategies]]
name = "once"
class = "tests.support.daemon_strategies:PlaceOnce"
""",
        encoding="utf-8",
    )
    base = daemon_settings(load_config(config))
    fields = {f.name: getattr(base, f.name) for f in attrs.fields(DaemonSettings)}
    return _WithAlerts(**fields, alerts=alert_options_from_table(alerts))


async def test_the_kill_switch_reaches_the_webhooks(nursery: trio.Nursery, tmp_path: Path) -> None:
    _, address = await serve_sim(nursery)
    server = WebhookServer()
    base = await nursery.start(server.serve)
    (tmp_path / "slack-url").write_text(f"{base}{SLACK_PATH}\n", encoding="utf-8")
    table = {
        "webhooks": [
            {"format": "json", "url_env": "TRADINGD_ALERT_URL"},
            {"format": "slack", "url_file": "slack-url"},  # relative to the config's folder
        ],
        "timeout_s": 2.0,
    }
    environ = {
        "DERIBIT_CLIENT_ID": CLIENT_ID,
        "DERIBIT_CLIENT_SECRET": SECRET,
        "TRADINGD_ALERT_URL": f"{base}/hooks/e2eJsonSecret",
    }
    with structlog.testing.capture_logs() as logs:
        daemon = Daemon(settings(tmp_path, address, table), environ=environ)
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

        assert daemon._nursery is not None
        daemon._nursery.start_soon(daemon._stop, daemon._nursery.cancel_scope)
        with trio.fail_after(15):
            await done.wait()
    status_file = daemon.paths.status_file.read_text(encoding="utf-8")
    for secret in ("e2eJsonSecret", "e2eSlackSecret"):
        assert secret not in repr(logs) and secret not in status_file
    assert [e["event"] for e in logs].count("alerts.sent") == 4


def test_a_missing_webhook_variable_stops_the_start_with_one_line(tmp_path: Path) -> None:
    table = {"webhooks": [{"format": "telegram", "url_env": "TRADINGD_TELEGRAM_URL"}]}
    with pytest.raises(ConfigError) as caught:
        Daemon(settings(tmp_path, "127.0.0.1:9", table), environ={})
    assert str(caught.value) == (
        f"{tmp_path / 'live.toml'}: alerts.webhooks[0].url_env: the environment variable "
        "TRADINGD_TELEGRAM_URL is not set"
    )
    assert not (tmp_path / "state" / "lock").exists()  # refused before the state directory was taken
