"""A venue handler raising is never lost in the noise of garbage market frames."""

from __future__ import annotations

import trio
from structlog.testing import capture_logs

from tests.support.frame_sessions import _session, _Ws
from tradingd.engine import MalformedFrame


async def test_a_handler_failure_is_logged_after_a_burst_of_malformed_frames() -> None:
    """Failures of our own handling (a bug, or a venue change) have their own log budget: after
    many malformed market frames, one handler exception is still an error line with its type."""

    def handle(message: bytes | str) -> None:
        if message == b"garbage":
            raise MalformedFrame("not JSON", venue="deribit")
        if message == b"order-answer":
            raise ZeroDivisionError("an order answer the handler did not foresee")

    with capture_logs() as logs:
        session = _session(handle)
        with trio.move_on_after(0.5):
            await session._receive(_Ws([b"garbage"] * 25 + [b"order-answer"]))  # type: ignore[arg-type]
    failed = [e for e in logs if e["event"] == "frame.failed"]
    assert [(e["log_level"], e["error_type"]) for e in failed] == [("error", "ZeroDivisionError")]
    assert session.stats.failed_frames == 1 and session.stats.malformed == 26
