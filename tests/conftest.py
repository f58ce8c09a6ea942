"""What every test gets: the process's logging as it was before the test (`_logging_kept`), and
a decoded-event cache folder of its own (`_event_cache_kept`).

The CLI run in-process (`main([...])`) and the daemon's helpers configure structlog for the
whole process: a filtering wrapper at the run's level, a sink on the run's stream. Left behind,
that made a later test's `structlog.testing.capture_logs()` see nothing below the level, so
`tests/connectors/deribit/test_tour_switches.py` waited out its 15 s for a `session.connected`
it never saw when it ran after `tests/cli/test_settings.py` (issue 17).

`tradingd backtest` caches by default in the user's ~/.cache, which a test run must neither fill
nor read from; and one folder shared by the session let tests that generate the same data read
each other's entries, so a test meant to cover the frame path (and the writing of an entry)
silently replayed from the cache instead. Each test's own folder: every backtest in a test takes
the first-run path unless the test itself runs it twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.isolation import logging_kept


@pytest.fixture(autouse=True)
def _logging_kept() -> Iterator[None]:
    with logging_kept():
        yield


@pytest.fixture(autouse=True)
def _event_cache_kept(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path_factory.mktemp("event-cache")
    monkeypatch.setenv("TRADINGD_CACHE_DIR", str(folder))
    return folder
