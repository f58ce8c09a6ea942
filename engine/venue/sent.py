"""The signal "this request's bytes have left", from the request path to the gateway.

The gateway logs an order's `order.sent` line, which costs tens of microseconds at the info
level (the daemon's default), once the order's bytes are written rather than before: then it is
off the path from a tick to the order. A venue client whose requests go through
`JsonRpcSession.request` says so with `signals_sent = True`; the gateway then sets `SENT` to a
callback for the duration of its `place`, and `request` calls `bytes_sent()` right after its
write. The write ends with a schedule point (trio's `SocketStream.send_all`), at which another
task may read the venue's report of the order and log it before this call: so until then the
line waits in the order flow (`OrderFlow.accept(log_sent=False)`), which logs it before any line
about an order; `bytes_sent()` logs it if it still waits. Exactly one line per accepted order,
before every line about its fate. Contextvars are per task: only the gateway task's own request
fires it, once.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Final

__all__ = ["SENT", "bytes_sent"]

SENT: Final[ContextVar[Callable[[], None] | None]] = ContextVar("tradingd_sent", default=None)


def bytes_sent() -> None:
    """The current task's request has been written: call (once) what the gateway set, if any."""
    hook = SENT.get()
    if hook is not None:
        SENT.set(None)
        hook()
