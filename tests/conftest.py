"""What every test gets: a decoded-event cache folder of its own (`_event_cache_kept`).

`tradingd backtest` caches by default in the user's ~/.cache, which a test run must neither fill
nor read from; and one folder shared by the session let tests that generate the same data read
each other's entries, so a test meant to cover the frame path (and the writing of an entry)
silently replayed from the cache instead. Each test's own folder: every backtest in a test takes
the first-run path unless the test itself runs it twice.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _event_cache_kept(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path_factory.mktemp("event-cache")
    monkeypatch.setenv("TRADINGD_CACHE_DIR", str(folder))
    return folder
