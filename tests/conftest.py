"""What every test gets: the process's logging as it was before the test (`_logging_kept`).

The CLI run in-process (`main([...])`) and the daemon's helpers configure structlog for the
whole process: a filtering wrapper at the run's level, a sink on the run's stream. Left behind,
that made a later test's `structlog.testing.capture_logs()` see nothing below the level, so
`tests/connectors/deribit/test_tour_switches.py` waited out its 15 s for a `session.connected`
it never saw when it ran after `tests/cli/test_settings.py` (issue 17).

And a decoded-event cache folder of the session's own (`_event_cache_kept`): `tradingd backtest`
caches by default in the user's ~/.cache, which a test run must neither fill nor read from.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.isolation import logging_kept


@pytest.fixture(autouse=True)
def _logging_kept() -> Iterator[None]:
    with logging_kept():
        yield


@pytest.fixture(autouse=True, scope="session")
def _event_cache_kept(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    before = os.environ.get("TRADINGD_CACHE_DIR")
    os.environ["TRADINGD_CACHE_DIR"] = str(tmp_path_factory.mktemp("event-cache"))
    yield
    if before is None:
        os.environ.pop("TRADINGD_CACHE_DIR", None)
    else:
        os.environ["TRADINGD_CACHE_DIR"] = before
