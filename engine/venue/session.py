"""What every venue's live WebSocket session shares: one connection kept up until cancelled.

`VenueSession` is the base of `DeribitSession`, `PolymarketSession` and `DeriveSession`. It owns
the parts that must behave the same on every venue, so that a user reading the logs of one knows
them all:

- the connection loop: connect, let the venue's handshake run (`_serve`), and when the
  connection is lost (closed by either side, a handshake that fails, a stale feed) report it,
  forget what the connection held (`_reset`) and reconnect after a jittered exponential backoff,
  reported as `disconnected` / `reconnecting` / `connected` status events and logged as
  `session.disconnected` (the reason), `session.reconnecting` (the reason, the attempt and the
  delay) and `session.connected` (the URL and the connection's number);
- rate limits in the handshake: a login or set-up call the venue refuses for rate is tried again
  as its limits allow (`retry_rate_limited`: on the same connection, once the venue's credits are
  back), and a connection the venue ends for it (Deribit does, VENUES.md §1.10) is reconnected
  as soon as the credits allow, not after the exponential backoff: a rate-limit storm costs
  seconds, not minutes;
- refused credentials: before the session's first successful handshake, credentials the venue
  refuses (the venue says which errors mean that: `_credentials_hint`) end `run` with
  `CredentialsRefused`, one line naming the venue and what to check: retrying a wrong secret
  forever helps nobody. Under the daemon, "at start" is the process's, not the session's
  (`refusal_is_fatal`, engine.daemon.service): fatal only before the daemon is ready and before any
  order, and then the daemon stops in order and exits with a status systemd does not restart
  into. Otherwise the same refusal is retried with backoff, as an error log and a
  `reconnecting` status saying `credentials_refused` (a key revoked or rotated mid-run);
- the receive loop: every frame counted, handed to `on_frame` (the recorder) exactly as received
  when the venue says it is public (below), then to the venue's `_handle`. A frame nested too
  deep is refused before anything parses it (`check_nesting`); a malformed frame, and any
  exception from handling one frame (other than the connection's own errors), is that frame's:
  counted as malformed, logged with its type (rate-limited), skipped, never fatal. A decoder
  fault (`DecoderFault`: its books were invalidated) also reports a `book_gap` (reason
  "decoder_fault") for each book the decoder held, and each is resnapshotted as a broken book;
- what a recording may hold: recordings are shared as backtest data, so only frames the venue
  declares public reach the recorder: market data channels and the answers a replay reads
  (instruments, subscriptions). Never a token, a login or auth answer, a private channel or a
  private answer. A venue declares it cheaply, without parsing: `public_frame_prefixes` (the hot
  path: text frames starting with one of them) and `public_frame` (the rest, by their head).
  Anything else, including what cannot be told apart, is left out (fail closed) and counted in
  `stats.unrecorded`;
- faults: an exception nobody foresaw out of the session's own tasks (its handshake, the
  subscription follower, a venue's task in `_serve`'s nursery: a token refresher...) is a bug of
  ours or a venue answer nothing expected. It ends the connection, never the engine (`run`):
  logged at critical level with its traceback (`session.fault`), counted (`session_faults`, an
  alert), and the session reconnects with its backoff;
- the watchdog: nothing received for `stale_after_s` -> a `feed_stale` status and a reconnect;
- the subscription follower: whenever the router's merged subscriptions for the venue change
  (or a book needs a fresh snapshot), the venue's `_sync_subscriptions` runs; `ready` is set
  after the first one;
- `dispatch`: decoded events split into the engine's private (order tracker) and market (router)
  paths, `book_gap` statuses remembered so the next sync refreshes those books: at once the first
  time, then, for a book that breaks again before a snapshot of it held (a venue that keeps
  sending it crossed), spaced out by a per-book backoff (1 s doubling to 60 s, logged once per
  book), never a resubscription as fast as the venue answers.

`PendingRequests` matches JSON-RPC answers to requests by id (engine.venue.jsonrpc, the
mechanism Deribit and Derive share).
"""

from __future__ import annotations

import itertools
import random
import re
import time
from collections.abc import Awaitable, Callable, Container
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar, Final, Protocol, TypeVar

import attrs
import structlog
import trio
import trio_websocket

from ..model.errors import AuthError, CredentialsRefused, FeedStale, MalformedFrame, RateLimited, VenueError
from ..model.events import BookUpdate, DataKind, MarketEvent, PrivateEvent, Status, StatusKind
from ..model.instruments import InstrumentRegistry
from .plugins import SHORT_FRAME, DecoderFault, check_nesting, restore_recursion_limit
from .ratelimit import Backoff
from .spi import Decoder, VenueSink
from .websocket import open_connection, take_nowait

__all__ = [
    "SESSION_ERRORS",
    "Connect",
    "ConnectionLost",
    "CredentialsRefused",
    "PendingRequests",
    "SessionStats",
    "SubscriptionSource",
    "VenueSession",
    "default_connect",
    "error_code",
    "frame_head",
]


class SubscriptionSource(Protocol):
    """What a venue session reads of the engine's router: the subscriptions its strategies
    merged, per venue, and a version to wait on for a change. The runtime's `MarketRouter` is
    one; the venue room names only this, so it never imports the runtime (the runtime imports it)."""

    def merged(self, venue: str) -> frozenset[tuple[str, DataKind]]:
        """The (instrument, kind) pairs some strategy wants from `venue`."""
        ...

    def version(self, venue: str) -> int:
        """A number that changes whenever `merged(venue)` does."""
        ...

    async def wait_changed(self, venue: str, seen_version: int) -> int:
        """Wait until `version(venue)` is no longer `seen_version`; the new version."""
        ...


@attrs.define
class SessionStats:
    """Counters of one venue session (also in `tradingd status`)."""

    connects: int = 0
    disconnects: int = 0
    frames: int = 0
    malformed: int = 0
    requests: int = 0
    timeouts: int = 0
    heartbeats_answered: int = 0
    resubscribed_books: int = 0
    refused_channels: int = 0
    stale: int = 0
    unrecorded: int = 0  # frames kept out of the recording (not public), when recording
    refused_instruments: int = 0  # instruments answers refused (malformed or absurd): nothing learned
    deferred_resnapshots: int = 0  # book resnapshots held back by the per-book backoff (`dispatch`)
    failed_frames: int = 0  # frames whose handling raised (not MalformedFrame); also in `malformed`
    unmatched_answers: int = 0  # JSON-RPC answers nobody waited for (late, after a timeout), dropped
    rate_limited: int = 0  # requests the venue refused for rate (`note_rate_limited`)
    session_faults: int = 0  # unexpected exceptions out of the session's own tasks, reconnected (`run`)


class ConnectionLost(Exception):
    """The connection went away (closed by either side, or a stale feed)."""


@attrs.define
class _Resnapshots:
    """One book's resnapshot backoff (`VenueSession.dispatch`)."""

    last: float  # when its last resnapshot was asked for (trio time)
    wait_s: float  # how long after `last` the next one may be
    good_at: float | None = None  # when a snapshot of it last came whole (since `last`)
    logged: bool = False  # its backoff was logged (once per episode)


_T = TypeVar("_T")
# A connection the venue ended for rate during the handshake is reconnected after the first
# backoff step, not an escalating one; this many times in a row, then the backoff takes over.
_RATE_LIMITED_RECONNECTS: Final = 10
# Handshake calls refused for rate, tried again on the same connection this many times at most.
_HANDSHAKE_TRIES: Final = 10
# A book that breaks again before it held (a venue that keeps sending it crossed) is not
# resnapshotted at once every time, which would resubscribe as fast as the venue answers: the next
# resnapshot waits, 1 s after the last, then 2, 4... up to 60 s. 1 s: a real gap on a healthy book
# (one lost message) is rare, and a second one within a second says the venue's book is broken,
# not our copy; 60 s: such a book still gets a fresh chance every minute. The wait starts again
# from 1 s once a snapshot has held for as long as the current wait.
_RESNAPSHOT_FIRST_S: Final = 1.0
_RESNAPSHOT_MAX_S: Final = 60.0
_ERROR_TEXT: Final = 200  # characters of an exception's text logged: it may quote a huge answer
# Frames handled one after another without a checkpoint (`_receive`): at a few tens of us each, a
# burst holds the event loop for about a millisecond at most before the strategies, the order
# gateway and the heartbeats run; one scheduler pass per this many frames instead of per frame.
_BATCH: Final = 32


# The errors a session survives by reconnecting.
SESSION_ERRORS: Final = (
    trio_websocket.HandshakeError,
    trio_websocket.ConnectionClosed,
    OSError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    VenueError,
    ConnectionLost,
)

Connect = Callable[[str], AbstractAsyncContextManager[trio_websocket.WebSocketConnection]]


def error_code(error: Any) -> int | str | None:
    """The `code` of a JSON-RPC error object: a number or text, anything else (a list, an object,
    a float, a bool) is no code the venue documents (None: the outcome is unknown, never guessed)."""
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, int | str) and not isinstance(code, bool) else None


def default_connect(url: str) -> AbstractAsyncContextManager[trio_websocket.WebSocketConnection]:
    # Frames up to 16 MiB (an instruments answer is large). trio-websocket's reader task queues
    # what it has read for us (and keeps answering pings while we decode); handed over in batches
    # (engine.venue.websocket), with room for many messages, it drains a whole read of the socket
    # in one go and `_receive` takes them all, instead of a scheduler pass per frame.
    return open_connection(url, max_message_size=16 * 1024 * 1024, message_queue_size=4096)


@attrs.define(eq=False)
class _Call:
    method: str = ""
    done: trio.Event = attrs.field(factory=trio.Event)
    result: Any = None
    error: VenueError | None = None


class PendingRequests:
    """Requests awaiting their answer, by id. `open()` before sending, `resolve()` from the
    receive loop, `wait()` in the caller; `fail_all()` when the connection is lost (each waiter
    gets "outcome unknown": a request that was sent may have been executed)."""

    def __init__(self, venue: str) -> None:
        self.venue = venue
        self._ids = itertools.count(1)
        self._pending: dict[int, _Call] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def open(self, method: str = "") -> int:
        rid = next(self._ids)
        self._pending[rid] = _Call(method)
        return rid

    def method_of(self, rid: int) -> str | None:
        """The method of a request still awaiting its answer (None: not ours, or answered)."""
        call = self._pending.get(rid)
        return None if call is None else call.method

    def answers_one_of(self, head: str, answer: re.Pattern[str], methods: Container[str]) -> bool:
        """Whether `head` (`frame_head`) opens the answer to a pending request of one of
        `methods`: `answer` matches an answer's head and captures its id (the recording filter:
        it runs before the answer is handled, while its request is still pending)."""
        m = answer.match(head)
        return m is not None and self.method_of(int(m[1])) in methods

    def discard(self, rid: int) -> None:
        """The request was never sent."""
        self._pending.pop(rid, None)

    def resolve(self, rid: object, result: Any = None, error: VenueError | None = None) -> bool:
        """Deliver an answer; False for an id nobody waits for (late, or not ours)."""
        call = self._pending.pop(rid, None) if isinstance(rid, int) else None
        if call is None:
            return False
        call.result = result
        call.error = error
        call.done.set()
        return True

    async def wait(self, rid: int, within_s: float, *, what: str) -> Any:
        """The answer's result; raises its error, or `VenueError(code="timeout")` (outcome
        unknown) when none came within `within_s` seconds."""
        call = self._pending.get(rid)
        if call is None:
            raise VenueError(f"{what}: no such request", venue=self.venue, code="lost")
        try:
            with trio.move_on_after(within_s):
                await call.done.wait()
        finally:
            if not call.done.is_set():
                self._pending.pop(rid, None)
        if not call.done.is_set():
            raise VenueError(
                f"{what}: no answer within the timeout; outcome unknown", venue=self.venue, code="timeout"
            )
        if call.error is not None:
            raise call.error
        return call.result

    def fail_all(self) -> None:
        for call in self._pending.values():
            call.error = VenueError(
                "connection lost before the answer; outcome unknown", venue=self.venue, code="lost"
            )
            call.done.set()
        self._pending.clear()


def frame_head(message: bytes | str, size: int = 256) -> str:
    """The first `size` characters of a frame as text, never failing (bytes that are not UTF-8
    are replaced): enough to tell what a frame is without parsing it."""
    head = message[:size]
    return head if isinstance(head, str) else head.decode("utf-8", "replace")


class VenueSession:
    """A `LiveVenue`'s connection (see the module docstring). Subclasses set `venue` and
    implement `_url`, `_serve`, `_handle` and `_sync_subscriptions`."""

    venue: ClassVar[str]

    def __init__(
        self,
        *,
        decoder: Decoder,
        registry: InstrumentRegistry,
        router: SubscriptionSource,
        sink: VenueSink,
        connect: Connect = default_connect,
        clock: Callable[[], int] = time.time_ns,
        rng: random.Random | None = None,
        reconnect_base_s: float = 0.5,
        reconnect_cap_s: float = 30.0,
        stale_after_s: float = 30.0,
        log: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        restore_recursion_limit()  # the venue's signing imports (py_ecc) may have raised it
        self.decoder = decoder
        self.registry = registry
        self.router = router
        self.sink = sink
        self.ready = trio.Event()
        self.stats = SessionStats()
        self._on_frame: Callable[[int, bytes | str], None] | None = None  # a recorder, when set
        self.log = (log or structlog.get_logger(f"tradingd.{self.venue}")).bind(venue=self.venue)
        self.stale_after_s = stale_after_s
        self._connect = connect
        self._clock = clock
        self._backoff = Backoff(reconnect_base_s, reconnect_cap_s, rng=rng)
        self._ws: trio_websocket.WebSocketConnection | None = None
        self._nursery: trio.Nursery | None = None
        self._gaps: set[str] = set()  # instruments whose book needs a fresh snapshot
        self._resnapshots: dict[str, _Resnapshots] = {}  # per book: the backoff (`dispatch`)
        self._deferred: dict[str, float] = {}  # books whose resnapshot waits, and until when
        self._fault_books: dict[str, None] = {}  # books a decoder fault broke, not yet reported
        self._wake = trio.Event()
        self._last_rx = 0.0
        self._started = False  # a handshake has succeeded once (refused credentials are then retried)
        # Whether refused credentials are fatal, asked at each refusal. Unset (a bare engine): before
        # this session's first handshake, and `run` raises `CredentialsRefused`. The daemon sets
        # it to decide for the whole process (engine.daemon.service): only at its start, before it is
        # ready and before any order; then it stops in order itself while `run` waits.
        self.refusal_is_fatal: Callable[[CredentialsRefused], bool] | None = None
        self._handshaking = False
        self._handshake_rate_limited: RateLimited | None = None  # this connection ended for rate
        self._rate_limited_reconnects = 0

    @property
    def handshaken(self) -> bool:
        """A handshake (login included) has succeeded on one of this session's connections."""
        return self._started

    # -- what a venue provides ---------------------------------------------------------------
    def _url(self) -> str:
        raise NotImplementedError

    async def _serve(self, ws: trio_websocket.WebSocketConnection, nursery: trio.Nursery) -> None:
        """The venue's handshake on a fresh connection (auth, heartbeat setup, instruments),
        starting any venue tasks in `nursery`. The receive loop and watchdog already run."""
        raise NotImplementedError

    async def _handle(self, message: bytes | str, now: int) -> None:
        """One frame: answers to requests, control frames, or data for `self.decode`."""
        raise NotImplementedError

    async def _sync_subscriptions(self) -> None:
        """Bring the connection's subscriptions in line with `desired_channels()` (and refresh
        the books in `self._gaps`)."""
        raise NotImplementedError

    def _reset(self) -> None:
        """Forget what the lost connection held (extend it; call super). The resnapshot backoff
        of each book is kept: a book the venue keeps sending broken stays held back."""
        self._gaps.clear()
        self._deferred.clear()
        self.decoder.invalidate_books()  # every book starts again from a snapshot

    def _on_connected(self) -> dict[str, Any]:
        """Extra data for the `connected` status event."""
        return {}

    # Text frames starting with one of these are public (module docstring): a venue's market data
    # notifications, in the form the venue sends them. Checked first, for every frame.
    public_frame_prefixes: ClassVar[tuple[str, ...]] = ()

    def public_frame(self, message: bytes | str) -> bool:
        """Whether a frame that starts with none of `public_frame_prefixes` may be recorded
        (module docstring). Called before `_handle`, so an answer's request is still pending.
        Must not parse the whole frame (it has not been checked yet, and this is per frame).
        By default nothing is: a venue records only what it declares public."""
        return False

    def recordable(self, message: bytes | str) -> bool:
        """Whether `message` may go to a recording (module docstring)."""
        if isinstance(message, str) and message.startswith(self.public_frame_prefixes):
            return True
        return self.public_frame(message)

    # -- public -------------------------------------------------------------------------------
    @property
    def on_frame(self) -> Callable[[int, bytes | str], None] | None:
        """The recorder's per-frame hook, behind the public-frames filter (module docstring)."""
        return self._on_frame

    @on_frame.setter
    def on_frame(self, hook: Callable[[int, bytes | str], None] | None) -> None:
        if hook is None:
            self._on_frame = None
            return
        prefixes = self.public_frame_prefixes
        public_frame = self.public_frame
        stats = self.stats

        def on_frame(now: int, message: bytes | str) -> None:
            # `recordable`, inlined: this runs for every frame on the event loop.
            if (message.__class__ is str and message.startswith(prefixes)) or public_frame(message):
                hook(now, message)
            else:
                stats.unrecorded += 1

        self._on_frame = on_frame

    @property
    def connected(self) -> bool:
        return self._ws is not None

    @property
    def connections(self) -> tuple[VenueSession, ...]:
        """A `LiveVenue`'s connections: a session that is the whole venue is its one connection."""
        return (self,)

    @property
    def last_frame_age_s(self) -> float | None:
        """Seconds since the last frame arrived (or the connection opened); None before the first
        connection. The daemon's watchdog reads it."""
        if self._last_rx == 0.0:
            return None
        return trio.current_time() - self._last_rx

    def wake(self) -> None:
        """Ask the subscription follower to run again."""
        self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep a connection up until cancelled. Starts at once; `ready` is set when the first
        connection has its handshake done and its subscriptions made."""
        task_status.started()
        while True:
            began = trio.current_time()
            reason = "closed"
            refused: CredentialsRefused | None = None
            self._handshake_rate_limited = None
            try:
                await self._session(self._url())
            except* SESSION_ERRORS as group:
                first: BaseException = group.exceptions[0]
                while isinstance(first, BaseExceptionGroup):
                    first = first.exceptions[0]
                auth = _first_leaf(group, AuthError)
                if isinstance(auth, AuthError):
                    first = auth  # a refusal says more than the connection closing after it
                    hint = self._credentials_hint(auth)
                    if hint is not None:
                        refused = CredentialsRefused(
                            f"{self.venue} refused the credentials ({auth}): check {hint}",
                            venue=self.venue,
                            code=auth.code,
                            venue_message=auth.venue_message,
                        )
                limited = _first_leaf(group, RateLimited)
                if isinstance(limited, RateLimited) and self._handshake_rate_limited is None:
                    self._handshake_rate_limited = limited
                reason = f"{type(first).__name__}: {first}"
                self._on_session_error(first)
            except* Exception as group:
                # Not a connection's error: a bug of ours or a venue answer nothing expected, out
                # of a task of this session (its handshake, the subscription follower, a token
                # refresher, a venue's own task in `_serve`'s nursery). It ends this connection,
                # never the engine: the other venues and the strategies keep running.
                # (Cancelled, KeyboardInterrupt and SystemExit are no `Exception`: they go on.)
                reason = self._fault(group)
                if not self._started:
                    # No handshake has ever succeeded: a bug met at every start would loop on
                    # reconnects forever, a daemon never ready that never exits (systemd's start
                    # timeout extended meanwhile). It ends the engine, as refused credentials
                    # do at start: the unit fails and says why.
                    raise
            finally:
                self._handshaking = False
                await self._lost(reason)
            if refused is not None:
                if self.refusal_is_fatal is None:
                    fatal = not self._started
                else:
                    fatal = self.refusal_is_fatal(refused)
                if fatal:
                    self.log.error("session.credentials_refused", error=str(refused))
                    if self.refusal_is_fatal is None:
                        raise refused
                    # The daemon stops in order for it (and exits 78): no reconnecting meanwhile.
                    await trio.sleep_forever()
            if trio.current_time() - began > 60:
                self._backoff.reset()
            data: dict[str, Any] = {}
            if refused is not None:
                data["credentials_refused"] = True
                data["error"] = str(refused)
            if (
                self._handshake_rate_limited is not None
                and self._rate_limited_reconnects < _RATE_LIMITED_RECONNECTS
            ):
                # The connection ended for rate (refused in its handshake, or a refusal ended
                # it): the venue's credits come back within a second (VENUES.md §1.10, §3.7) and
                # its `call` waits for them, so the first backoff step, not an escalating one.
                self._rate_limited_reconnects += 1
                delay = self._backoff.first_delay()
                data["rate_limited"] = True
            else:
                delay = self._backoff.next_delay()
            # One log line per attempt, with what the strategies' `reconnecting` status says: why
            # the connection ended, which attempt this is and how long until it.
            self.log.warning(
                "session.reconnecting",
                reason=reason,
                attempt=self._backoff.attempts,
                delay_s=round(delay, 3),
                rate_limited=bool(data.get("rate_limited")),
            )
            await self.status(
                StatusKind.RECONNECTING,
                f"reconnecting in {delay:.1f} s",
                attempt=self._backoff.attempts,
                delay_s=round(delay, 3),
                reason=reason,
                **data,
            )
            await trio.sleep(delay)

    def _fault(self, group: BaseExceptionGroup[Exception]) -> str:
        """An unexpected exception ended the connection (`run`): counted (`stats.session_faults`,
        `session_faults` in the status, an alert), logged at critical level with its traceback
        (the log's scrubbing applies, no locals), and the session reconnects with its backoff.
        Returns the reason the reconnection reports: the exception's type, not its text (it may
        quote a huge answer)."""
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        self._log_fault(leaf)
        return f"session fault: {type(leaf).__name__}"

    def _log_fault(self, exc: BaseException, **where: Any) -> None:
        self.stats.session_faults += 1
        text = str(exc)
        self.log.critical(
            "session.fault",
            error_type=type(exc).__name__,
            error=text if len(text) <= _ERROR_TEXT else text[:_ERROR_TEXT] + "...",
            faults=self.stats.session_faults,
            exc_info=exc,
            **where,
        )

    async def supervise(
        self, task: Callable[[], Awaitable[None]], *, what: str, max_delay: float | None = None
    ) -> None:
        """Run a venue's background task that lives beside its connections, not on one (outside
        `_session`'s nursery: Polymarket's fee retries and order heartbeats), under the same net
        as the session's own tasks: an unexpected exception is a session fault of this session
        (counted, logged with `task`, alerted) and the task starts again after the backoff's next
        delay (reset once it has run a minute), never ending the engine; `max_delay` caps that
        delay (a dead-man heartbeat must not wait out the venue's window). Returns when it does."""
        cap = self._backoff.cap if max_delay is None else min(self._backoff.cap, max_delay)
        backoff = Backoff(min(self._backoff.base, cap), cap)
        while True:
            began = trio.current_time()
            try:
                await task()
                return
            except Exception as exc:  # Cancelled, KeyboardInterrupt, SystemExit: not Exception
                self._log_fault(exc, task=what)
            if trio.current_time() - began > 60:
                backoff.reset()
            await trio.sleep(backoff.next_delay())

    def _on_session_error(self, exc: BaseException) -> None:
        """A connection ended with `exc`: refused credentials are an error of their own (the
        reconnection loop alone would only say the connection ended). Extend for more."""
        if isinstance(exc, AuthError):
            self.log.error("session.auth_failed", error=str(exc))

    def _credentials_hint(self, exc: AuthError) -> str | None:
        """When `exc` means the venue refused our credentials (not a passing failure): what the
        user should check (the environment variables or credential files), else None."""
        return None

    def note_rate_limited(self, exc: RateLimited) -> None:
        """The venue answered a request with a rate-limit refusal (a venue's `call` reports
        each): counted; during the handshake, a connection that then ends was ended for rate
        (`run`)."""
        self.stats.rate_limited += 1
        if self._handshaking:
            self._handshake_rate_limited = exc

    async def retry_rate_limited(self, attempt: Callable[[], Awaitable[_T]], *, what: str) -> _T:
        """A handshake call (login, heartbeat set-up, a token refresh): refused for rate, it is
        tried again on this connection, as soon as the venue's `call` finds the credits (it
        drains its local bucket on such an answer, so the next waits for the venue's refill
        rate). `attempt` builds the request anew each time (a login signs the current time)."""
        for n in itertools.count(1):
            try:
                return await attempt()
            except RateLimited as exc:
                if n >= _HANDSHAKE_TRIES:
                    raise
                self.log.warning("session.rate_limited", call=what, attempt=n, error=str(exc))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _session(self, url: str) -> None:
        async with self._connect(url) as ws, trio.open_nursery() as nursery:
            self._ws = ws
            self._nursery = nursery
            self._last_rx = trio.current_time()
            self.stats.connects += 1
            nursery.start_soon(self._receive, ws)
            nursery.start_soon(self._watchdog)
            self._handshaking = True
            await self._serve(ws, nursery)
            self._handshaking = False
            self._started = True
            self._rate_limited_reconnects = 0
            self.log.info("session.connected", url=url, connection=self.stats.connects)
            await self.status(StatusKind.CONNECTED, f"connected to {url}", **self._on_connected())
            nursery.start_soon(self._follow_subscriptions)
            nursery.start_soon(self._watch_router)

    async def _lost(self, reason: str) -> None:
        was_connected = self._ws is not None
        self._ws = None
        self._nursery = None
        self._reset()
        if was_connected:
            self.stats.disconnects += 1
        self.log.warning("session.disconnected", reason=reason)
        with trio.move_on_after(1.0, shield=True):  # bounded: the router may be shutting down too
            await self.status(StatusKind.DISCONNECTED, reason)

    async def status(self, kind: StatusKind, message: str, instrument: str = "", **data: Any) -> None:
        """Report a `Status` event about this venue to the engine. A `connected` or `subscribed`
        one names the connection (`connection`: this session's connection number, counted from
        1): the engine reconciles our orders once per connection, not at each subscription change
        on it (engine.runtime.live `_on_subscribed`)."""
        if kind is StatusKind.CONNECTED or kind is StatusKind.SUBSCRIBED:
            data.setdefault("connection", self.stats.connects)
        ev = Status(
            venue=self.venue,
            instrument=instrument,
            ts_exchange=None,
            ts_local=self._clock(),
            status=kind,
            message=message,
            data=data,
        )
        await self.sink.market([ev])

    # -- receiving ----------------------------------------------------------------------------
    async def _receive(self, ws: trio_websocket.WebSocketConnection) -> None:
        """Every frame of the connection, in order. What the connection has already queued is
        taken without a checkpoint (engine.venue.websocket `take_nowait`), and the loop yields to
        the other tasks once per `_BATCH` frames so taken: a burst costs one scheduler pass per
        batch, not per frame, and still lets the strategies, orders and heartbeats run. It waits
        (`get_message`) only when nothing is queued."""
        stats = self.stats
        clock = self._clock
        handle = self._handle
        take = take_nowait(ws)
        taken = 0
        while True:
            message: bytes | str | None = None
            if take is not None and taken < _BATCH:
                try:
                    message = take()
                    taken += 1
                except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                    pass  # nothing queued (or closed: `get_message` says why)
            if message is None:
                taken = 0
                try:
                    message = await ws.get_message()
                except trio_websocket.ConnectionClosed as exc:
                    raise ConnectionLost(f"connection closed: {exc.reason}") from None
            self._last_rx = trio.current_time()
            stats.frames += 1
            now = clock()
            if self.on_frame is not None:
                self.on_frame(now, message)
            try:
                if len(message) > SHORT_FRAME:
                    check_nesting(message, self.venue)  # before the venue's own envelope parse
                await handle(message, now)
            except MalformedFrame as exc:
                self.malformed(exc)
            except SESSION_ERRORS:
                raise  # the connection's own errors: the reconnection loop handles them
            except Exception as exc:
                self.frame_failed(exc, message)
            if self._fault_books:
                await self._report_fault_gaps()

    async def _report_fault_gaps(self) -> None:
        """A decoder fault broke the books the decoder held: one `book_gap` status each (reason
        "decoder_fault", like a crossed or sequence-gap book), so the strategies know and each is
        resnapshotted by the gap path, with its backoff (a venue repeating such a frame does not
        get every book resubscribed each time; logged once, by `malformed`)."""
        books = list(self._fault_books)
        self._fault_books.clear()
        now = self._clock()
        events: list[MarketEvent] = []
        for instrument in books:
            self._book_broken(instrument, quiet=True)
            events.append(
                Status(
                    venue=self.venue,
                    instrument=instrument,
                    ts_exchange=None,
                    ts_local=now,
                    status=StatusKind.BOOK_GAP,
                    message="decoder fault: the book waits for a fresh snapshot",
                    data={"reason": "decoder_fault"},
                )
            )
        await self.sink.market(events)

    async def decode(self, message: bytes | str, now: int) -> None:
        """Decode a data frame and dispatch its events; a malformed one is counted."""
        try:
            events = self.decoder.decode(message, now)  # type: ignore[arg-type]
        except MalformedFrame as exc:
            self.malformed(exc)
            return
        await self.dispatch(events)

    def malformed(self, exc: MalformedFrame) -> None:
        self.stats.malformed += 1
        n = self.stats.malformed
        if isinstance(exc, DecoderFault):
            # The decoder did not foresee this frame and dropped its books: each book it held
            # is broken. The receive loop reports them after this frame (`_report_fault_gaps`).
            self._fault_books.update(dict.fromkeys(exc.books))
            if n <= 10 or n % 1000 == 0:
                self.log.error("frame.decoder_fault", error_type=exc.error_type, error=str(exc), count=n)
            return
        if n <= 10 or n % 1000 == 0:
            self.log.warning("frame.malformed", error=str(exc), count=n)

    def frame_failed(self, exc: Exception, message: bytes | str) -> None:
        """Handling one frame raised `exc` (not a `MalformedFrame`): the frame is counted as
        malformed and skipped. The log names the exception and the frame's size, never the
        frame (it may be huge); the first few also carry the traceback."""
        self.stats.malformed += 1
        self.stats.failed_frames += 1
        # Its own log budget, apart from malformed frames: a handler raising is a bug of ours or a
        # venue change, and must stay visible after a burst of garbage market frames.
        n = self.stats.failed_frames
        if n <= 10 or n % 100 == 0:
            text = str(exc)
            self.log.error(
                "frame.failed",
                error_type=type(exc).__name__,
                error=text if len(text) <= 200 else text[:200] + "...",
                frame_bytes=len(message),
                count=n,
                exc_info=n <= 3,
            )

    def instruments_refused(self, exc: Exception, **where: Any) -> None:
        """An instruments answer (`get_instruments`, a markets answer) that could not be learned:
        malformed, or absurd enough that learning it raised. That answer is refused, counted
        (`stats.refused_instruments`) and logged; the instruments already known stay, and the
        session goes on (a refusal here must never end the handshake: it would reconnect into the
        same answer forever). The next refresh asks again."""
        self.stats.refused_instruments += 1
        text = str(exc)
        self.log.error(
            "instruments.refused",
            error_type=type(exc).__name__,
            error=text if len(text) <= _ERROR_TEXT else text[:_ERROR_TEXT] + "...",
            count=self.stats.refused_instruments,
            known=len(self.registry),
            exc_info=not isinstance(exc, MalformedFrame),  # not foreseen: the traceback says where
            **where,
        )

    async def dispatch(self, events: list[MarketEvent]) -> None:
        """Private events to the order tracker, market events (in order) to the router. A
        `book_gap` asks the subscription follower for a fresh snapshot of that book, at once the
        first time; a book that breaks again before a snapshot of it held waits for its backoff
        (`_RESNAPSHOT_FIRST_S` doubling to `_RESNAPSHOT_MAX_S`, logged once per book)."""
        if not events:
            return
        market: list[MarketEvent] = []
        private: list[PrivateEvent] = []
        broken: list[str] = []
        resnapshots = self._resnapshots
        for ev in events:
            if isinstance(ev, PrivateEvent):
                private.append(ev)
                continue
            market.append(ev)
            if isinstance(ev, BookUpdate):
                if ev.snapshot and resnapshots:
                    state = resnapshots.get(ev.instrument)
                    if state is not None and state.good_at is None:
                        state.good_at = trio.current_time()  # whole: it holds from now on
            elif isinstance(ev, Status) and ev.status is StatusKind.BOOK_GAP:
                broken.append(ev.instrument)
                # Said in the log too, not only to the strategies that follow the book (a `gap`
                # switch on the simulator shows here, then as `book.resubscribe`).
                self.log.warning("book.gap", instrument=ev.instrument, reason=ev.data.get("reason"))
        for instrument in broken:
            self._book_broken(instrument)
        if private:
            self.sink.private(private)
        if market:
            await self.sink.market(market)

    async def _watchdog(self) -> None:
        limit = self.stale_after_s
        while True:
            await trio.sleep(min(1.0, limit / 4))
            silent = trio.current_time() - self._last_rx
            if silent > limit:
                self.stats.stale += 1
                await self.status(
                    StatusKind.FEED_STALE, f"nothing received for {silent:.1f} s", silent_s=round(silent, 3)
                )
                raise FeedStale(f"nothing received for {silent:.1f} s (limit {limit} s)", venue=self.venue)

    # -- subscriptions --------------------------------------------------------------------------
    async def _watch_router(self) -> None:
        version = self.router.version(self.venue)
        while True:
            version = await self.router.wait_changed(self.venue, version)
            self._wake.set()

    def _book_broken(self, instrument: str, *, quiet: bool = False) -> None:
        """A broken book (`dispatch`): resnapshot it now, or when its backoff allows. `quiet`:
        the caller says it in one line for all (a decoder fault breaks every book)."""
        now = trio.current_time()
        state = self._resnapshots.get(instrument)
        if state is not None and state.good_at is not None and state.good_at + state.wait_s <= now:
            state = None  # its last snapshot held: a new problem, the backoff starts again
        if state is None:
            if len(self._resnapshots) >= 10_000:
                self._resnapshots.clear()  # bounded: forgetting one only resnapshots it sooner
            self._resnapshots[instrument] = _Resnapshots(last=now, wait_s=_RESNAPSHOT_FIRST_S)
            self._deferred.pop(instrument, None)
            self._gaps.add(instrument)
            self._wake.set()
            return
        state.good_at = None  # whatever came since the last resnapshot did not hold
        if instrument in self._deferred:
            return  # already waiting for its turn
        due = state.last + state.wait_s
        if due <= now:
            self._resnapshot_now(instrument, state, now)
            return
        self._deferred[instrument] = due
        self.stats.deferred_resnapshots += 1
        self._wake.set()  # the follower sleeps until the earliest due
        if not state.logged and not quiet:
            state.logged = True
            self.log.warning(
                "book.resnapshot_backoff",
                instrument=instrument,
                wait_s=round(due - now, 3),
                detail="the book broke again before a snapshot of it held: resnapshots are spaced out, "
                f"{_RESNAPSHOT_FIRST_S:g} s doubling to {_RESNAPSHOT_MAX_S:g} s",
            )

    def _resnapshot_now(self, instrument: str, state: _Resnapshots, now: float) -> None:
        state.last = now
        state.wait_s = min(state.wait_s * 2, _RESNAPSHOT_MAX_S)
        self._gaps.add(instrument)
        self._wake.set()

    def _release_deferred(self) -> float:
        """Books whose resnapshot is due go to `_gaps`; returns when the next one is (or inf)."""
        if not self._deferred:
            return float("inf")
        now = trio.current_time()
        for instrument, due in list(self._deferred.items()):
            if due <= now:
                del self._deferred[instrument]
                state = self._resnapshots.get(instrument)
                if state is not None:
                    self._resnapshot_now(instrument, state, now)
                else:
                    self._gaps.add(instrument)
        return min(self._deferred.values(), default=float("inf"))

    async def _follow_subscriptions(self) -> None:
        while True:
            self._wake = trio.Event()
            self._release_deferred()
            await self._sync_subscriptions()
            if not self.ready.is_set():
                self.ready.set()
            with trio.move_on_at(self._release_deferred()):
                await self._wake.wait()


def _first_leaf(group: BaseExceptionGroup[BaseException], kind: type[BaseException]) -> BaseException | None:
    """The first exception of `kind` in a (nested) exception group, None when there is none."""
    matched = group.subgroup(kind)
    if matched is None:
        return None
    leaf: BaseException = matched
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf
