"""The exceptions tradingd raises, in one tree.

    TradingError                      root: catch this to catch anything of ours
    ├── ConfigError                   a config file is unreadable or wrong (names the key path)
    ├── DataError                     a recording/data file is unreadable or malformed
    ├── IllegalTransition             an order was asked to move to a state its state machine forbids
    ├── StrategyError                 a strategy could not be loaded, built, or misused its context
    └── VenueError                    anything a venue (or our side of its protocol) did wrong
        ├── MalformedFrame            a frame from the venue could not be decoded
        ├── SequenceGap               a book's sequence numbers skipped (the book is not patched)
        ├── FeedStale                 nothing arrived from the venue for longer than allowed
        ├── AuthError                 the venue refused our credentials
        │   └── CredentialsRefused    ... at start, before any login succeeded (tradingd exits 78)
        ├── RateLimited               the venue (or our local limiter) refused for rate
        ├── VenueUnavailable          a request could not be sent (no connection): nothing reached the venue
        └── OrderRejected             an order was refused, before sending (pre-trade) or by the venue

Each carries the context a log line needs (`.venue`, `.instrument`, `.client_order_id`, `.code`)
so the user sees one clear line and the log keeps the detail.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "ConfigError",
    "CredentialsRefused",
    "DataError",
    "FeedStale",
    "IllegalTransition",
    "MalformedFrame",
    "OrderRejected",
    "RateLimited",
    "SequenceGap",
    "StrategyError",
    "TradingError",
    "VenueError",
    "VenueUnavailable",
]


class TradingError(Exception):
    """Root of every error tradingd raises on purpose."""


class ConfigError(TradingError, ValueError):
    """Raised when a config file cannot be read or does not fit the schema.

    `path` is the key path of the offending value (`strategies[0].params.band`), or None when
    the problem is the file itself (missing, not TOML).
    """

    def __init__(self, message: str, *, file: str | None = None, path: str | None = None) -> None:
        self.file = file
        self.path = path
        self.message = message
        where = ": ".join(p for p in (file, path) if p)
        super().__init__(f"{where}: {message}" if where else message)


class DataError(TradingError, ValueError):
    """Raised when a data file (a recording, a generated sample) cannot be read."""


class IllegalTransition(TradingError, RuntimeError):
    """Raised when an order is asked to move to a state its state machine does not allow
    (for example a fill on a cancelled order). The order is left unchanged."""

    def __init__(self, client_order_id: str, current: str, target: str) -> None:
        self.client_order_id = client_order_id
        self.current = current
        self.target = target
        super().__init__(f"order {client_order_id}: illegal transition {current} -> {target}")


class StrategyError(TradingError):
    """Raised when a strategy cannot be found or built, or uses its context in a way the
    current mode cannot honour (for example awaiting trio directly inside a backtest)."""


class VenueError(TradingError):
    """Something a venue sent or refused, or our side of its protocol failing.

    `code` and `venue_message` carry the venue's own error code and text when there is one.
    """

    def __init__(
        self,
        message: str,
        *,
        venue: str | None = None,
        instrument: str | None = None,
        code: int | str | None = None,
        venue_message: str | None = None,
    ) -> None:
        self.venue = venue
        self.instrument = instrument
        self.code = code
        self.venue_message = venue_message
        super().__init__(message)


class MalformedFrame(VenueError, ValueError):
    """Raised by a decoder when a frame is not valid JSON or lacks what its channel promises.
    The decoder's state (books, sequence numbers) is left as it was before the frame."""


class SequenceGap(VenueError):
    """Raised (or reported as a `status` event) when a book's sequence numbers skip: the book
    is marked invalid and is not patched until a fresh snapshot arrives."""


class FeedStale(VenueError):
    """Raised when nothing arrived from a venue connection for longer than its watchdog allows."""


class AuthError(VenueError):
    """Raised when a venue refuses our credentials or a token cannot be refreshed."""


class CredentialsRefused(AuthError):
    """Raised when a venue refused our credentials before the session ever logged in: a wrong
    key or secret, which retrying does not fix. The message is one line naming the venue and
    what to check. `tradingd run` exits with status 78 for it only at its start, before it is
    ready and before any order (engine._daemon); after that it is retried and alerted."""


class RateLimited(VenueError):
    """Raised when a venue (or our own limiter, ahead of it) refuses a request for rate."""


class VenueUnavailable(VenueError):
    """Raised when a request could not be sent at all (the connection is down, or going down).
    Unlike a timeout, the outcome is known: nothing reached the venue, so an order refused this
    way is final and safe to report as not placed."""


class OrderRejected(VenueError):
    """Raised when an order is refused: by the pre-trade checks (`code` is None and `reason`
    says which check) or by the venue (`code`/`venue_message` are the venue's)."""

    def __init__(
        self,
        reason: str,
        *,
        venue: str | None = None,
        instrument: str | None = None,
        client_order_id: str | None = None,
        code: int | str | None = None,
        venue_message: str | None = None,
    ) -> None:
        self.reason = reason
        self.client_order_id = client_order_id
        super().__init__(reason, venue=venue, instrument=instrument, code=code, venue_message=venue_message)
