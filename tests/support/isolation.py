"""Process-wide state a test may change and the next test must not inherit (`logging_kept`,
used for every test by `tests/conftest.py`)."""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Iterator

import structlog

from tradingd.engine.logs import setup


@contextlib.contextmanager
def logging_kept() -> Iterator[None]:
    """Run the body, then put back the logging it found: structlog's configuration (a
    `configure_logging` in the body leaves a level filter and a sink behind: every later
    `capture_logs()` would miss the lines below that level), the root logger's handlers and level,
    and what `route_uncaught_exceptions` changes (the hooks, the warnings capture, and the flag
    that sends the CLI's error line to the real stderr, past `capsys`)."""
    config = structlog.get_config()
    config["processors"] = list(config["processors"])  # a copy: the list may be edited in place
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    hooks = (sys.excepthook, threading.excepthook, sys.unraisablehook)
    routed = setup._routed
    try:
        yield
    finally:
        if structlog.get_config() != config:
            structlog.configure(**config)
        root.handlers[:] = handlers
        root.setLevel(level)
        sys.excepthook, threading.excepthook, sys.unraisablehook = hooks
        if setup._routed and not routed:
            logging.captureWarnings(False)
            setup._routed = False
