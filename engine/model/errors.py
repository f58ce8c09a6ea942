"""The exceptions tradingd raises, in one tree.

    TradingError                      root: catch this to catch anything of ours
    ├── ConfigError                   a config file is unreadable or wrong (names the key path)
    │   └── SecretUnavailable         ... a secret it names by place (a webhook URL's variable or
    │                                 file) missing or unusable at start (tradingd exits 78)
    ├── DataError                     a recording/data file is unreadable or malformed
    ├── IllegalTransition             an order was asked to move to a state its state machine forbids
    ├── StrategyError                 a strategy could not be loaded, built, or misused its context
    ├── OrderRejected                 an order request was refused: known NOT done (catch this one)
    │   ├── OrderDenied               ... by our side, before anything was sent (pre-trade checks,
    │   │                             the kill switch, the journal failing, a stopping daemon)
    │   └── VenueRejected             ... by the venue (or it could not be sent): also a VenueError
    └── VenueError                    anything a venue (or our side of its protocol) did wrong
        ├── MalformedFrame            a frame from the venue could not be decoded
        ├── SequenceGap               a book's sequence numbers skipped (the book is not patched)
        ├── FeedStale                 nothing arrived from the venue for longer than allowed
        ├── AuthError                 the venue refused our credentials
        │   └── CredentialsRefused    ... at start, before any login succeeded (tradingd exits 78)
        ├── RateLimited               the venue (or our local limiter) refused for rate
        ├── VenueUnavailable          a request could not be sent (no connection): nothing reached the venue
        ├── VenueRejected             (above) the venue's refusal of an order request
        └── OrderOutcomeUnknown       an order request was sent and its outcome is unknown (timeout,
                                      connection lost, an unreadable answer): NOT a refusal

A strategy needs two cases: `OrderRejected` (the request was not done: nothing to undo, try
again or give up) and `OrderOutcomeUnknown` (it may or may not have been done: the order stays
tracked and the venue's reports or the next reconciliation settle it; never send it again).
A local refusal is not a `VenueError`: nothing went wrong at the venue.

Each carries the context a log line needs (`.venue`, `.instrument`, `.client_order_id`, `.code`)
so the user sees one clear line and the log keeps the detail.
"""

from __future__ import annotations

from typing import TypedDict, Unpack

__all__ = [
    "AuthError",
    "ConfigError",
    "CredentialsRefused",
    "DataError",
    "FeedStale",
    "IllegalTransition",
    "MalformedFrame",
    "OrderDenied",
    "OrderOutcomeUnknown",
    "OrderRejected",
    "RateLimited",
    "SecretUnavailable",
    "SequenceGap",
    "StrategyError",
    "TradingError",
    "VenueError",
    "VenueRejected",
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


class SecretUnavailable(ConfigError):
    """A secret the config names by its place (an alert webhook URL's environment variable or
    file) is not set, empty, unreadable or not what it must be. Like venue credentials missing
    at start, a restart does not fix it: `tradingd run` exits 78 (systemd's unit does not
    restart on 78). The message names the variable or file, never a value."""


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


class _Context(TypedDict, total=False):
    """What a venue's error or an order's refusal may say besides its message."""

    venue: str | None
    instrument: str | None
    client_order_id: str | None
    code: int | str | None
    venue_message: str | None


class _WithContext(TradingError):
    """The common base of `VenueError` and `OrderRejected`: the venue and instrument concerned,
    our order (`client_order_id`), and the venue's own error `code` and text (`venue_message`)
    when there is one; each None when unknown."""

    def __init__(self, message: str, **context: Unpack[_Context]) -> None:
        self.venue = context.get("venue")
        self.instrument = context.get("instrument")
        self.client_order_id = context.get("client_order_id")
        self.code = context.get("code")
        self.venue_message = context.get("venue_message")
        super().__init__(message)


class VenueError(_WithContext):
    """Something a venue sent or refused, or our side of its protocol failing.

    `code` and `venue_message` carry the venue's own error code and text when there is one.
    """


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
    ready and before any order (engine.daemon.service); after that it is retried and alerted."""


class RateLimited(VenueError):
    """Raised when a venue (or our own limiter, ahead of it) refuses a request for rate."""


class VenueUnavailable(VenueError):
    """Raised when a request could not be sent at all (the connection is down, or going down).
    Unlike a timeout, the outcome is known: nothing reached the venue, so an order refused this
    way is final and safe to report as not placed."""


class OrderRejected(_WithContext):
    """Raised when an order request (a new order, an edit, a cancel) is refused: it is known not
    to have been done. `reason` says why; `code` and `venue_message` are the venue's when the
    venue refused. Which side refused is the subclass: `OrderDenied` (our pre-trade checks, the
    journal) or `VenueRejected` (the venue); a connector's own checks before signing may raise
    this class itself. Strategies catch this one for every refusal."""

    def __init__(self, reason: str, **context: Unpack[_Context]) -> None:
        self.reason = reason
        super().__init__(reason, **context)


class OrderDenied(OrderRejected):
    """Refused on our side before anything was sent: a pre-trade check (the kill switch, a
    limit, the instrument's tick or minimum size), the order journal failing to record it, an
    unknown order, a daemon that is stopping, or an order whose venue id (computed before
    sending) another working order holds. `code` is None or our own word ("stopping",
    "venue_id_conflict"), never a venue's, nor `VenueRejected`'s "not_sent". Not a
    `VenueError`: nothing happened at any venue."""


class VenueRejected(OrderRejected, VenueError):
    """Refused by the venue (`code`/`venue_message` are its own), or not sent at all because
    the venue could not be reached, refused for rate, or we have no credentials for it (`code`
    "not_sent", the venue's rate code, "no_credentials"): either way the request is known not
    done."""


class OrderOutcomeUnknown(VenueError):
    """Raised to the caller of an order request (place, edit, cancel) that was sent, or may have
    been, but whose outcome is unknown: no answer in time, the connection lost after sending,
    an answer that could not be read, a venue's internal error. Not a refusal: the order may
    be resting or filled. It stays tracked in the state it had, is never sent again, and the
    venue's reports (or the reconciliation after a reconnect) settle it. `client_order_id` names
    the order; `__cause__` is the error the connector raised.

    A connector raises it itself when the venue's answer named the order but not its outcome:
    `order_id` is the venue's id the answer gave (the engine learns it from nowhere else when it
    was not known before sending), and `accepted` says the venue acknowledged the order (a
    Polymarket FAK answered "matched" without its amounts): it is then open, not pending, and
    the venue's silence about it later is no word that it never took it."""

    def __init__(
        self,
        message: str,
        *,
        order_id: str | None = None,
        accepted: bool = False,
        **context: Unpack[_Context],
    ) -> None:
        self.order_id = order_id
        self.accepted = accepted
        super().__init__(message, **context)
