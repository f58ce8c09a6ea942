"""Structured logging: JSON lines (one object per line) by default, pretty on a terminal.

Every line has `ts` (ISO-8601 UTC), `level` and `event`, plus whatever was bound (`venue`,
`strategy`, `instrument`, `client_order_id`...). A redaction processor runs last before
rendering: any key that names a secret, and any registered secret value wherever it appears,
is replaced by "[redacted]", so a credential never reaches a log line.
Use the sync methods (`log.info`) under trio; structlog's async methods use asyncio.
"""

from __future__ import annotations

import re
import sys
from collections.abc import MutableMapping
from typing import IO, Any

import orjson
import structlog

__all__ = ["REDACTED", "configure_logging", "redact_secrets", "register_secret"]

REDACTED = "[redacted]"
_SECRET_KEY = re.compile(
    r"(secret|passw|passphrase|private[_-]?key|api[_-]?key|access[_-]?token|refresh[_-]?token|"
    r"signature|authorization|credential|session[_-]?key|mnemonic)",
    re.IGNORECASE,
)
_secret_values: set[str] = set()
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


def register_secret(value: str) -> None:
    """Make `value` (a key, a token) unloggable: any log value containing it is redacted.
    Values shorter than 6 characters are refused (they would redact ordinary text)."""
    if len(value) >= 6:
        _secret_values.add(value)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        for secret in _secret_values:
            if secret in value:
                return REDACTED
        return value
    if isinstance(value, dict):
        return {k: (REDACTED if _SECRET_KEY.search(str(k)) else _scrub(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: redact secret-named keys and registered secret values."""
    for key in list(event_dict):
        if key != "event" and _SECRET_KEY.search(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


def _orjson_dumps(obj: Any, **_: Any) -> bytes:
    return orjson.dumps(obj, default=str)


def configure_logging(level: str = "info", fmt: str = "auto", stream: IO[str] | None = None) -> None:
    """Set up structlog for the process. `fmt`: "json", "pretty", or "auto" (pretty when
    `stream` is a terminal). Logs go to `stream` (stderr by default; the daemon uses stdout)."""
    stream = stream or sys.stderr
    pretty = fmt == "pretty" or (fmt == "auto" and stream.isatty())
    shared: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
    ]
    if pretty:
        processors = [*shared, redact_secrets, structlog.dev.ConsoleRenderer(colors=stream.isatty())]
        factory: Any = structlog.PrintLoggerFactory(stream)  # type: ignore[arg-type]
    else:
        processors = [
            *shared,
            structlog.processors.dict_tracebacks,
            redact_secrets,
            structlog.processors.JSONRenderer(serializer=_orjson_dumps),
        ]
        factory = structlog.BytesLoggerFactory(
            stream.buffer if hasattr(stream, "buffer") else sys.stderr.buffer
        )
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )
