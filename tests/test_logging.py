"""Secrets never reach a log line; lines are JSON objects with the stable fields."""

from __future__ import annotations

import io

import orjson
import structlog

from engine._logging import REDACTED, configure_logging, register_secret


class _Stream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.buffer = io.BytesIO()

    def isatty(self) -> bool:
        return False


def test_json_lines_with_redaction() -> None:
    stream = _Stream()
    configure_logging("info", "json", stream)  # type: ignore[arg-type]
    try:
        register_secret("s3cr3t-VALUE-xyz")
        log = structlog.get_logger("t").bind(venue="deribit", strategy="g")
        log.info(
            "auth.ok",
            client_secret="hunter2hunter2",
            params={"grant_type": "client_credentials", "client_secret": "abc", "client_id": "me"},
            note="token is s3cr3t-VALUE-xyz here",
            access_token="t0k",
            instrument="BTC-PERPETUAL",
        )
        log.debug("not shown")
        lines = stream.buffer.getvalue().splitlines()
        assert len(lines) == 1
        entry = orjson.loads(lines[0])
        assert entry["event"] == "auth.ok" and entry["level"] == "info" and entry["ts"].endswith("Z")
        assert (
            entry["venue"] == "deribit"
            and entry["strategy"] == "g"
            and entry["instrument"] == "BTC-PERPETUAL"
        )
        assert entry["client_secret"] == REDACTED and entry["access_token"] == REDACTED
        assert entry["params"] == {
            "grant_type": "client_credentials",
            "client_secret": REDACTED,
            "client_id": "me",
        }
        assert entry["note"] == REDACTED
        raw = lines[0].decode()
        for secret in ("hunter2hunter2", "s3cr3t-VALUE-xyz", "t0k"):
            assert secret not in raw
    finally:
        structlog.reset_defaults()
