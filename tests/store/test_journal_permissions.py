"""The order journal and its SQLite side files are readable by their owner only (issue 12 §3)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tradingd.engine.store.journal import OrderJournal


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that would leave new files world-readable (what a shell usually has)."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("open_umask")
def test_the_journal_and_its_wal_and_shm_files_are_0600_from_their_first_write(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    journal = OrderJournal(path)
    try:
        journal.set_meta("risk_day", {"start_ns": 1})  # a write: the WAL holds it until checkpoint
        wal, shm = path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")
        assert wal.exists() and shm.exists()
        assert {p.name: mode(p) for p in (path, wal, shm)} == {
            path.name: 0o600,
            wal.name: 0o600,
            shm.name: 0o600,
        }
    finally:
        journal.close()


@pytest.mark.usefixtures("open_umask")
def test_side_files_left_world_readable_by_an_older_run_are_narrowed_at_open(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    OrderJournal(path).close()
    wal = path.with_name(path.name + "-wal")
    wal.touch()
    for p in (path, wal):
        p.chmod(0o644)
    journal = OrderJournal(path)
    try:
        assert mode(path) == 0o600 and mode(wal) == 0o600
        shm = path.with_name(path.name + "-shm")
        assert mode(shm) == 0o600
    finally:
        journal.close()
