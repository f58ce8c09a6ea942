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
the first-run path unless the test itself runs it twice. A module's fixtures are set up before
any of its tests' folders exist, so each module gets a folder of its own too
(`_module_event_cache_kept`): `tests/logs/test_logtail.py`'s module fixture ran a backtest into
the user's cache, and from the second run on replayed from it.

Under pytest-xdist (pyproject: `-n logical`) each worker is a process of its own: these folders
come from the worker's own base temporary folder, and the environment changed here is the
worker's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.support.isolation import logging_kept

# Hypothesis times each example (a 200 ms deadline) and its data generation (the too_slow health
# check): timing asserts that fail on a loaded machine, which two workers on two cores make of
# every run, and that say nothing about what the properties check. Off for the whole suite; a
# test's own `@settings` still sets the rest (and may name other health checks).
settings.register_profile("tradingd", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("tradingd")


@pytest.fixture(autouse=True)
def _logging_kept() -> Iterator[None]:
    with logging_kept():
        yield


@pytest.fixture(autouse=True, scope="module")
def _module_event_cache_kept(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # Autouse: set up before the module's other module-scoped fixtures.
    folder = tmp_path_factory.mktemp("module-event-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRADINGD_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture(autouse=True)
def _event_cache_kept(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path_factory.mktemp("event-cache")
    monkeypatch.setenv("TRADINGD_CACHE_DIR", str(folder))
    return folder
