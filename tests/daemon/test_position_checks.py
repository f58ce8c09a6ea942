"""`[daemon] position_check_interval_s` (issue 16): how often the daemon checks its positions
against the venue while connected (engine.runtime.live `_position_checks`; the checks
themselves are tested in tests/runtime/test_reconcile_positions.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.daemon_inprocess import _daemon
from tradingd.cli.settings import daemon_settings
from tradingd.config import load_config
from tradingd.engine import ConfigError
from tradingd.engine.daemon.service import Daemon
from tradingd.simulators.deribit.simulator import DEFAULT_ACCOUNTS

CONFIG = (
    'mode = "live"\n[venues.deribit]\nurl = "ws://127.0.0.1:9/ws/api/v2"\nrest_url = "http://127.0.0.1:9"\n'
    '[daemon]\nstate_dir = "state"\n{extra}'
    '[[strategies]]\nname = "once"\nclass = "tests.support.daemon_strategies:PlaceOnce"\n'
)


def _configured(tmp_path: Path, extra: str) -> Daemon:
    tmp_path.mkdir(exist_ok=True)
    config = tmp_path / "live.toml"
    config.write_text(CONFIG.format(extra=extra), encoding="utf-8")
    client_id, secret = next(iter(DEFAULT_ACCOUNTS.items()))
    return Daemon(
        daemon_settings(load_config(config)),
        environ={"DERIBIT_CLIENT_ID": client_id, "DERIBIT_CLIENT_SECRET": secret},
    )


def _closed(daemon: Daemon) -> None:
    if daemon.journal is not None:
        daemon.journal.close()


def test_positions_are_checked_every_five_minutes_unless_the_config_says(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path)
    _closed(daemon)
    assert daemon.engine.position_check_interval_s == 300.0
    daemon = _configured(tmp_path / "set", "position_check_interval_s = 60\n")
    _closed(daemon)
    assert daemon.engine.position_check_interval_s == 60.0


def test_a_position_check_interval_that_is_not_positive_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "live.toml"
    config.write_text(CONFIG.format(extra="position_check_interval_s = 0\n"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"daemon.position_check_interval_s"):
        load_config(config)
