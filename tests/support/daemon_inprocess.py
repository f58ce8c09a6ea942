"""The daemon in the test's own process (`_daemon`): its config file written for one Deribit venue that
is never reached (port 9) and the once-placing strategy, with the simulator's first account."""

from __future__ import annotations

from pathlib import Path

from tradingd.cli.settings import daemon_settings
from tradingd.config import load_config
from tradingd.engine.daemon.service import Daemon
from tradingd.simulators.deribit.simulator import DEFAULT_ACCOUNTS


def _daemon(tmp_path: Path) -> Daemon:
    config = tmp_path / "live.toml"
    config.write_text(
        'mode = "live"\n[venues.deribit]\nurl = "ws://127.0.0.1:9/ws/api/v2"\nrest_url = "http://127.0.0.1:9"\n'
        'currencies = ["BTC"]\n[daemon]\nstate_dir = "state"\n'
        '[[strategies]]\nname = "once"\nclass = "tests.support.daemon_strategies:PlaceOnce"\n',
        encoding="utf-8",
    )
    client_id, secret = next(iter(DEFAULT_ACCOUNTS.items()))
    return Daemon(
        daemon_settings(load_config(config)),
        environ={"DERIBIT_CLIENT_ID": client_id, "DERIBIT_CLIENT_SECRET": secret},
    )
