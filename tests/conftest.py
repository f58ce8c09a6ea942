"""What every test gets: the process's logging as it was before the test (`_logging_kept`).

The CLI run in-process (`main([...])`) and the daemon's helpers configure structlog for the
whole process: a filtering wrapper at the run's level, a sink on the run's stream. Left behind,
that made a later test's `structlog.testing.capture_logs()` see nothing below the level, so
`tests/connectors/deribit/test_tour_switches.py` waited out its 15 s for a `session.connected`
it never saw when it ran after `tests/cli/test_settings.py` (issue 17).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.isolation import logging_kept


@pytest.fixture(autouse=True)
def _logging_kept() -> Iterator[None]:
    with logging_kept():
        yield
