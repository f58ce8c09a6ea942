"""Logging: structlog set-up (console, or JSON files reopened after logrotate; secret
redaction) and the log tailer behind `tradingd logs`.

Depends on: model, store (the tailer reads compressed files with the recordings' opener)."""

from .setup import (
    REDACTED,
    configure_logging,
    console_renderer,
    log_write_failures,
    redact_secrets,
    redact_text,
    register_secret,
    reopen_logs,
    route_uncaught_exceptions,
    uncaught_exceptions_routed,
)
from .tail import LEVELS, LogFilter, LogView, follow_file, parse_line, parse_time, read_file, read_stream

__all__ = [
    "LEVELS",
    "REDACTED",
    "LogFilter",
    "LogView",
    "configure_logging",
    "console_renderer",
    "follow_file",
    "log_write_failures",
    "parse_line",
    "parse_time",
    "read_file",
    "read_stream",
    "redact_secrets",
    "redact_text",
    "register_secret",
    "reopen_logs",
    "route_uncaught_exceptions",
    "uncaught_exceptions_routed",
]
