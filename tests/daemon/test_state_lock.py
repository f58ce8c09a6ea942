"""One live daemon per state directory: a second `tradingd run` on the same config (a manual
run beside the systemd unit) would trade the same account from the same journal. It is refused
in one line naming the holder's pid, and the lock goes with the first daemon, however it ends
(a fresh-clone trial of issue 15 ran two side by side, both trading)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.daemon_inprocess import _daemon
from tradingd.engine import ConfigError
from tradingd.engine.daemon.service import hold_state_dir, release_state_dir


def test_a_second_holder_of_a_state_directory_is_refused_naming_the_first(tmp_path: Path) -> None:
    first = hold_state_dir(tmp_path)
    try:
        with pytest.raises(ConfigError, match=rf"in use by another tradingd \(pid {os.getpid()}\)"):
            hold_state_dir(tmp_path)
    finally:
        release_state_dir(first)
    release_state_dir(hold_state_dir(tmp_path))  # free again once released


def test_the_lock_goes_with_a_process_that_dies(tmp_path: Path) -> None:
    """A daemon killed (SIGKILL, a crash) leaves no lock behind: the kernel drops it with the
    process, so the next start is never refused by a stale lock file."""
    code = (
        "import os, sys; from pathlib import Path; "
        "from tradingd.engine.daemon.service import hold_state_dir; "
        f"hold_state_dir(Path({str(tmp_path)!r})); os._exit(9)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 9
    release_state_dir(hold_state_dir(tmp_path))


def test_a_second_live_daemon_on_the_same_state_directory_is_refused_before_its_journal(
    tmp_path: Path,
) -> None:
    first = _daemon(tmp_path)
    try:
        with pytest.raises(ConfigError, match="is in use by another tradingd"):
            _daemon(tmp_path)
    finally:
        release_state_dir(first._state_lock)
        assert first.journal is not None
        first.journal.close()
    second = _daemon(tmp_path)  # the first gone, the directory is free
    release_state_dir(second._state_lock)
    assert second.journal is not None
    second.journal.close()
