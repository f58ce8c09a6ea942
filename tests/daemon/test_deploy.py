"""The shipped systemd unit: what the README promises is in it, and systemd itself accepts it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.systemd_unit import UNIT, settings


def test_the_unit_is_a_notify_service_with_a_watchdog_hardening_and_credentials() -> None:
    s = settings()
    assert s["Type"] == ["notify"] and s["WatchdogSec"] and s["Restart"] == ["on-failure"]
    assert (
        s["DynamicUser"] == ["yes"] and s["ProtectSystem"] == ["strict"] and s["NoNewPrivileges"] == ["yes"]
    )
    assert s["StateDirectory"] == ["tradingd"] and s["RuntimeDirectory"] == ["tradingd"]
    # The secret reaches the daemon as a credential file, never as a value in the unit.
    assert any(v.startswith("deribit_client_secret:") for v in s["LoadCredential"])
    assert "DERIBIT_CLIENT_SECRET_FILE=%d/deribit_client_secret" in s["Environment"]
    assert not any("SECRET=" in v and "_FILE" not in v for v in s.get("Environment", []))
    # systemd waits longer than the daemon's own shutdown bound before it SIGKILLs.
    assert int(s["TimeoutStopSec"][0]) > 10


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    exe = tmp_path / "tradingd"
    exe.write_text("#!/bin/sh\n", encoding="utf-8")
    exe.chmod(0o755)
    unit = tmp_path / "tradingd.service"
    unit.write_text(UNIT.read_text(encoding="utf-8").replace("/opt/tradingd/.venv/bin/tradingd", str(exe)))
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False, timeout=60
    )
    problems = [line for line in proc.stderr.splitlines() if "tradingd.service" in line]
    assert proc.returncode == 0 and not problems, proc.stderr
