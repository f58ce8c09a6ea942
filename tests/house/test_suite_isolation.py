"""The suite's tests do not leak process-wide state into the tests after them (issue 17): a
test that configured logging left a level filter behind, and a later test's `capture_logs()`
missed every line below it (the Deribit tour-switch tests waited out 15 s each)."""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path

import pytest
import structlog

from tests.support.isolation import logging_kept
from tradingd.cli.main import main
from tradingd.engine.logs.setup import (
    configure_logging,
    route_uncaught_exceptions,
    uncaught_exceptions_routed,
)
from tradingd.engine.store.evcache import cache_dir


def test_every_test_gets_its_logging_kept(request: pytest.FixtureRequest) -> None:
    assert "_logging_kept" in request.fixturenames  # tests/conftest.py's autouse fixture


def test_logging_configured_inside_is_undone_after() -> None:
    hooks = (sys.excepthook, sys.unraisablehook)
    handlers = list(logging.getLogger().handlers)
    routed = uncaught_exceptions_routed()
    with logging_kept():
        configure_logging("error", "json", io.StringIO())
        route_uncaught_exceptions()  # (the CLI's error line would go past capsys after it)
        with structlog.testing.capture_logs() as hidden:
            structlog.get_logger().info("below the level")
        assert hidden == []  # what a later test saw before the fix
    with structlog.testing.capture_logs() as logs:
        structlog.get_logger().info("seen", n=1)
    assert logs == [{"event": "seen", "n": 1, "log_level": "info"}]
    assert (sys.excepthook, sys.unraisablehook) == hooks
    assert logging.getLogger().handlers == handlers
    assert uncaught_exceptions_routed() is routed


def test_the_cli_error_line_reaches_capsys_after_a_test_that_routed_uncaught_exceptions(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """What failed in the suite once the test above routed them in-process without putting the
    flag back: `tradingd logs` on a missing file wrote its one line past `capsys`."""
    with logging_kept():
        route_uncaught_exceptions()
    assert main(["logs", str(tmp_path / "missing.log")]) == 1
    assert "cannot read" in capsys.readouterr().err


@pytest.fixture(scope="module")
def cache_of_a_module_fixture() -> Path:
    """The decoded-event cache folder a module-scoped fixture's backtest would use."""
    return cache_dir()


def test_a_module_fixture_never_uses_the_users_event_cache(
    cache_of_a_module_fixture: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Module fixtures are set up before the test's own folder (tests/conftest.py); one that ran
    # a backtest wrote into ~/.cache (tests/logs/test_logtail.py) and replayed from it next time.
    assert tmp_path_factory.getbasetemp() in cache_of_a_module_fixture.parents
