"""JSON-RPC 2.0 over a venue's WebSocket session: the one mechanism Deribit and Derive share.

`JsonRpcSession` extends `VenueSession` (the connection loop, receive loop, watchdog and
subscription follower) with what every JSON-RPC venue does the same way:

- requests: a fresh id each (`PendingRequests`), sent as `{"jsonrpc": "2.0", "id", "method",
  "params"}` once the venue's local credit buckets allow (`request`). One that could not be sent
  raises `VenueUnavailable` (nothing reached the venue); one sent but unanswered within
  `request_timeout_s` raises `VenueError(code="timeout")`: its outcome is unknown, and it is
  never retried for orders. A rate-limit answer drains the bucket it was sent under, so the next
  request waits for the venue's refill rate; reads and subscriptions may retry it (`retrying`);
- answers matched to their pending request by id, in any order. An error answer becomes the
  engine's typed exception through the venue's own table of its codes (`_map_error`, kept in the
  connector: the codes are the venue's). An answer nobody waits for (late, after its request
  timed out, or not ours) is dropped and counted (`stats.unmatched_answers`);
- notifications: the text frames that start with one of `notification_prefixes` go straight to
  the decoder (the hot path, no envelope parse); any other frame is parsed as an envelope
  (`Envelope`): an answer, a `subscription` notification in another spacing (decoded), or what
  the venue says (`_other`: Deribit's heartbeats, Derive's error without an id). A frame that is
  not JSON-RPC at all is that frame's problem: counted as malformed, never fatal;
- subscriptions (`_sync_subscriptions`): the router's wanted channels diffed against what the
  venue holds, unsubscribed and subscribed in batches of `subscribe_batch`, refusals reported as
  `subscription_refused` statuses and not asked again until the channel leaves and re-enters the
  wanted set. The venue says how a batch is asked and what its answer means (`_unsubscribe`,
  `_subscribe`), which channels it wants (`desired_channels`), and how a broken book is taken
  again (`_resnapshot_channels`).

`JsonRpcDecoder` is the same on the decoding side (the hot path of every backtest): one typed
envelope parse per frame, a `subscription` notification routed by its channel (the route of a
channel found once by the venue's `_route`, then remembered), anything else handed to the venue's
`_response` (answers, heartbeats). Every way a frame can fail to parse becomes that frame's
`MalformedFrame`, counted, with the decoder's state unchanged.
"""

from __future__ import annotations

import abc
import types
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, ClassVar, Final, Generic, NamedTuple, TypeVar

import msgspec
import orjson
import trio
import trio_websocket
from msgspec import Raw, Struct

from ..model.book import OrderBook
from ..model.errors import MalformedFrame, RateLimited, VenueError, VenueUnavailable
from ..model.events import MarketEvent, StatusKind
from ..model.instruments import InstrumentRegistry
from .plugins import decode_parsed, guard_decode, invalid_frame, loads_untyped, malformed_frame, not_json
from .ratelimit import CreditBucket
from .sent import bytes_sent
from .session import PendingRequests, VenueSession, error_code
from .spi import BookGaps, DecoderStats
from .websocket import send_text

__all__ = [
    "Envelope",
    "JsonRpcDecoder",
    "JsonRpcSession",
    "NotificationParams",
    "RpcError",
    "batches",
]

_T = TypeVar("_T")
_ABSENT: Final = Raw(b"")  # msgspec takes no `Raw | None`: an empty Raw marks a missing member
# A read or a subscription refused for rate is tried again this many times, 0.5 s doubling.
_RETRIES: Final = 3
# Errors of the send itself: nothing reached the venue.
_SEND_ERRORS: Final = (trio_websocket.ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError)
# What msgspec raises for a frame it cannot read as an envelope: not JSON (DecodeError), a string
# that is not UTF-8 (it reads one only when it takes it as a str), or nested past the
# interpreter's recursion limit.
_UNREADABLE: Final = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
_Frame = bytes | bytearray | memoryview | str  # what a decoder or the session is handed


def _unreadable(
    venue: str, exc: msgspec.DecodeError | UnicodeDecodeError | RecursionError, frame: _Frame
) -> MalformedFrame:
    """`frame`, whose envelope msgspec could not read (`_UNREADABLE`), as the frame's
    `MalformedFrame`, in the words every venue uses, the decoder's and the session's alike:
    "frame: not JSON (...)", "frame: Expected 'object', got 'array'" (JSON, but not the shape of a
    message), "frame: a string is not UTF-8 (...)", "frame: nested deeper than ..."."""
    if isinstance(exc, msgspec.ValidationError):
        return invalid_frame(venue, "frame", exc)
    if isinstance(exc, msgspec.DecodeError):
        return not_json(venue, "frame", exc, frame)
    if isinstance(exc, UnicodeDecodeError):
        # msgspec checks a string's UTF-8 only when it reads it as a str, after the envelope.
        return malformed_frame(venue, f"frame: a string is not UTF-8 ({exc.reason} at byte {exc.start})")
    # A short frame is not checked for nesting (engine.venue.plugins): msgspec, skipping a member
    # nested deeper than the interpreter allows, refuses it with a RecursionError. Nothing was
    # applied.
    return malformed_frame(venue, "frame: nested deeper than the interpreter's recursion limit")


class NotificationParams(Struct):
    """A notification's `params`: its `channel` and `data` (kept raw: the decoder reads it). A
    venue whose notifications carry more extends it (Deribit's heartbeat `type`)."""

    channel: str | None = None
    data: Raw = _ABSENT


_P = TypeVar("_P", bound=NotificationParams)


class Envelope(Struct, Generic[_P]):
    """A JSON-RPC message: a notification (`method`, `params`), or an answer (`id` with `result`
    or `error`, both kept raw). Unknown members are ignored, `jsonrpc` included (Derive omits it)."""

    method: str | None = None
    params: _P | None = None
    id: int | str | None = None
    result: Raw = _ABSENT
    error: Raw = _ABSENT


# A channel's handler: (the notification's raw `data`, the local time, the route's argument).
Handler = Callable[[Any, int, str], list[MarketEvent]]
# A remembered route: its handler's function, called with the decoder first (`_remember`).
_Route = tuple[Callable[[Any, Any, int, str], list[MarketEvent]], str]
_MAX_ROUTES: Final = 65_536  # the route cache is a memo: a flood of odd channels just resets it


def _called_without_decoder(handler: Handler) -> Callable[[Any, Any, int, str], list[MarketEvent]]:
    """A remembered route's function for a handler that is no method of its decoder."""

    def call(_decoder: Any, data: Any, ts_local: int, arg: str) -> list[MarketEvent]:
        return handler(data, ts_local, arg)

    return call


class JsonRpcDecoder(abc.ABC):
    """The decoding half of a JSON-RPC venue (module docstring). A venue sets `venue`, passes its
    envelope parse, and implements `_route` (a channel's handler), `_response` (a frame that is
    no notification), `book`, `book_instruments` and `invalidate_books`."""

    venue: str  # set by the venue's class

    def __init__(self, registry: InstrumentRegistry, envelope: Callable[[Any], Envelope[Any]]) -> None:
        self.registry = registry
        self.stats = DecoderStats()
        self.last_unknown_channel: str | None = None
        # Per instrument, its book's gaps (`Decoder.gapped_books`): the venue's class counts them.
        self.gapped_books = BookGaps()
        self._decode_envelope = envelope
        self._routes: dict[str, _Route] = {}

    @guard_decode  # any exception from one frame is that frame's: the Decoder contract holds
    def decode(self, frame: bytes | bytearray | memoryview | str, ts_local: int) -> list[MarketEvent]:
        """The events in one raw WebSocket frame (possibly none).

        Raises `MalformedFrame` (counted in `stats.malformed`) for a frame that is not a decodable
        message of the venue; the decoder's state (books, sequence ids, registry) is then exactly
        as it was.
        """
        stats = self.stats
        stats.frames += 1
        try:
            env = self._decode_envelope(frame)
            params = env.params
            if env.method == "subscription" and params is not None:
                channel = params.channel
                data = params.data
                if channel is None or not data:
                    raise malformed_frame(
                        self.venue, "a subscription notification needs params.channel and params.data"
                    )
                route = self._routes.get(channel)
                if route is None:
                    route = self._remember(channel)
                try:
                    events = route[0](self, data, ts_local, route[1])
                except msgspec.DecodeError as exc:
                    raise invalid_frame(self.venue, channel, exc) from None
            else:
                events = self._response(env, ts_local)
        except MalformedFrame:
            stats.malformed += 1
            raise
        except _UNREADABLE as exc:
            stats.malformed += 1
            raise _unreadable(self.venue, exc, frame) from None
        stats.events += len(events)
        return events

    def decode_message(self, msg: Any, ts_local: int) -> list[MarketEvent]:
        """The events in an already-parsed message (same contract as `decode`)."""
        return decode_parsed(self, msg, ts_local, self.venue)

    def _remember(self, channel: str) -> _Route:
        """The route of a channel not seen before, remembered for the next frames. A handler
        that is a method of this decoder (a venue's are) is kept as its function: a bound method
        in the memo would hold the decoder, a cycle only the cyclic collector frees."""
        handler, arg = self._route(channel)
        if isinstance(handler, types.MethodType) and handler.__self__ is self:
            route: _Route = (handler.__func__, arg)
        else:
            route = (_called_without_decoder(handler), arg)
        if len(self._routes) >= _MAX_ROUTES:
            self._routes.clear()
        self._routes[channel] = route
        return route

    def _on_unknown(self, data: Any, ts_local: int, channel: str) -> list[MarketEvent]:
        """The route of a channel the decoder does not read: counted and named."""
        self.stats.unknown_channel += 1
        self.last_unknown_channel = channel
        return []

    # -- what a venue provides ---------------------------------------------------------------
    @abc.abstractmethod
    def _route(self, channel: str) -> tuple[Handler, str]:
        """A channel's handler and the argument it is called with (`_on_unknown` for a channel
        the venue's decoder does not read)."""

    @abc.abstractmethod
    def _response(self, env: Envelope[Any], ts_local: int) -> list[MarketEvent]:
        """A frame that is no subscription notification (an answer, a heartbeat)."""

    @abc.abstractmethod
    def book(self, instrument: str) -> OrderBook | None:
        """The book kept for `instrument` (None: none yet)."""

    @abc.abstractmethod
    def book_instruments(self) -> list[str]:
        """The instruments a book is kept for."""

    @abc.abstractmethod
    def invalidate_books(self) -> None:
        """Forget every book's contents (the `Decoder` contract)."""


class RpcError(NamedTuple):
    """A JSON-RPC error object as read for the venue's table of its codes (`RpcError.read`)."""

    code: int | str | None  # a number or text; anything else is no code the venue documents
    message: str
    detail: str  # what the exception says: `public/auth: invalid_credentials (13004): data`

    @classmethod
    def read(cls, error: Any, method: str) -> RpcError:
        """The error object `error` (parsed JSON) of an answer to `method`."""
        code = error_code(error)  # a list or an object is no code (and unhashable: `in` would raise)
        message = str(error.get("message", "")) if isinstance(error, dict) else str(error)
        data = error.get("data") if isinstance(error, dict) else None
        return cls(code, message, f"{method}: {message} ({code})" + (f": {data}" if data else ""))

    def as_error(self, kind: type[VenueError], venue: str) -> VenueError:
        """The typed exception `kind` the venue's table chose for this error."""
        return kind(self.detail, venue=venue, code=self.code, venue_message=self.message)


def batches(items: Sequence[_T], size: int) -> Iterator[list[_T]]:
    """`items` in lists of at most `size`, in order."""
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


class JsonRpcSession(VenueSession):
    """A `VenueSession` speaking JSON-RPC 2.0 (module docstring). A venue sets `venue`,
    `notification_prefixes` and `envelope`, and implements `_map_error`, `desired_channels`,
    `_unsubscribe` and `_subscribe` (besides `VenueSession`'s `_url` and `_serve`)."""

    # Text frames starting with one of these are subscription notifications, in the form the venue
    # sends them: decoded at once, without parsing the envelope first (the hot path).
    notification_prefixes: ClassVar[tuple[str, ...]] = ()
    # Channels per subscribe/unsubscribe call.
    subscribe_batch: ClassVar[int] = 100
    # Error codes with which the venue refuses a whole subscribe or unsubscribe call: its channels
    # are refused (reported, not asked again while wanted) and the session goes on. Any other
    # error answer ends the connection (reconnected, then subscribed again).
    batch_refusals: ClassVar[frozenset[int | str]] = frozenset()

    def __init__(
        self,
        *,
        envelope: Callable[[bytes | str], Envelope[Any]],
        request_timeout_s: float,
        **session: Any,
    ) -> None:
        super().__init__(**session)
        self.request_timeout_s = request_timeout_s
        self._envelope = envelope  # the venue's typed envelope parse (its `Envelope[params]`)
        self._requests = PendingRequests(self.venue)
        self._current: set[str] = set()  # channels the venue holds on this connection
        self._refused: set[str] = set()  # refused: not asked again until they leave `desired`

    # -- what a venue provides ---------------------------------------------------------------
    def _map_error(self, error: Any, method: str) -> VenueError:
        """The venue's error object (parsed JSON) as the typed exception callers catch: the
        venue's table of its codes."""
        raise NotImplementedError

    def desired_channels(self) -> set[str]:
        """The channels the router's merged subscriptions (and trading) call for."""
        raise NotImplementedError

    async def _unsubscribe(self, channels: list[str], held: set[str]) -> set[str]:
        """Unsubscribe one batch; returns the channels the venue holds after it (`held`: before)."""
        raise NotImplementedError

    async def _subscribe(self, channels: list[str], held: set[str]) -> tuple[set[str], list[tuple[str, str]]]:
        """Subscribe one batch; returns the channels the venue holds after it, and the refused
        ones of the batch with the venue's reason ("" when it gives none)."""
        raise NotImplementedError

    def _resnapshot_channels(self, books: set[str]) -> set[str]:
        """The held channels to take again for a fresh snapshot of `books` (broken books). By
        default none: a venue whose book messages are whole snapshots needs no resubscription."""
        return set()

    def instrument_of(self, channel: str) -> str:
        """The instrument a channel is about ("" when none): named in a refusal's status."""
        return ""

    async def _other(self, env: Envelope[Any], message: bytes | str, now: int) -> None:
        """A frame that is neither an answer nor a subscription notification (a venue's heartbeat,
        say). By default, malformed."""
        self.malformed(MalformedFrame(f"unexpected message (method {env.method!r})", venue=self.venue))

    # -- requests ------------------------------------------------------------------------------
    @property
    def channels(self) -> frozenset[str]:
        """The channels the venue holds on the current connection."""
        return frozenset(self._current)

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None,
        bucket: CreditBucket,
        cost: float = 1.0,
        *,
        first: CreditBucket | None = None,
    ) -> Any:
        """Send one request once `bucket` has `cost` credits (and `first`, a narrower bucket such
        as a per-instrument one, too: it is not drained by a rate-limit answer, which is of the
        venue's pool) and return its raw `result` (msgspec Raw JSON bytes). Raises
        `VenueUnavailable` when it could not be sent, the venue's typed exception for its error
        answer (`_map_error`), and `VenueError` (outcome unknown) when no answer came in time or
        the connection was lost before it."""
        if self._ws is None:
            raise VenueUnavailable(f"{method}: not connected", venue=self.venue)
        if first is not None:
            await first.acquire(cost)
        await bucket.acquire(cost)
        ws = self._ws
        if ws is None:  # lost while waiting for the credits
            raise VenueUnavailable(f"{method}: not connected", venue=self.venue)
        requests = self._requests
        rid = requests.open(method)
        frame = orjson.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}})
        self.stats.requests += 1
        try:
            await send_text(ws, frame.decode())
        except _SEND_ERRORS as exc:
            requests.discard(rid)
            raise VenueUnavailable(
                f"{method}: connection closed before sending ({exc!r})", venue=self.venue
            ) from None
        bytes_sent()  # the gateway's `order.sent` line if still waiting, the order out (engine.venue.sent)
        try:
            return await requests.wait(rid, self.request_timeout_s, what=method)
        except RateLimited as exc:
            bucket.drain()
            self.note_rate_limited(exc)
            raise
        except VenueError as exc:
            if exc.code == "timeout":
                self.stats.timeouts += 1
            raise

    @staticmethod
    async def retrying(call: Callable[[], Awaitable[_T]]) -> _T:
        """`call()` for a request that is safe to repeat (a read, a subscription): refused for
        rate, it waits and tries again (0.5 s, 1 s, 2 s), then lets the refusal through."""
        for attempt in range(_RETRIES + 1):
            try:
                return await call()
            except RateLimited:
                if attempt == _RETRIES:
                    raise
                await trio.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- receiving -----------------------------------------------------------------------------
    async def _handle(self, message: bytes | str, now: int) -> None:
        if isinstance(message, str) and message.startswith(self.notification_prefixes):
            await self.decode(message, now)  # the hot path: a subscription notification
            return
        try:
            env = self._envelope(message)
        except _UNREADABLE as exc:
            self.malformed(_unreadable(self.venue, exc, message))
            return
        if env.id is not None and (env.result or env.error):
            self._answer(env)
        elif env.method == "subscription":
            await self.decode(message, now)
        else:
            await self._other(env, message, now)

    def _answer(self, env: Envelope[Any]) -> None:
        """An answer to its pending request. An error answer is named by the method asked
        (`public/auth: invalid_credentials (13004)`); one nobody waits for is dropped, counted."""
        requests = self._requests
        error = None
        if env.error:
            method = requests.method_of(env.id) if isinstance(env.id, int) else None
            error = self._error_answer(env.error, method or "request")
        if not requests.resolve(env.id, env.result, error):
            self.stats.unmatched_answers += 1
            self.log.debug("rpc.unmatched_response", id=env.id, count=self.stats.unmatched_answers)

    def _error_answer(self, raw: Any, method: str) -> VenueError:
        """A JSON-RPC error answer as its typed exception (`_map_error`). One that cannot be read
        is a malformed frame (counted), and its request's outcome is unknown (a `VenueError`):
        the caller hears of it now, not after its timeout."""
        try:
            return self._map_error(loads_untyped(raw, self.venue, f"{method}: error answer"), method)
        except MalformedFrame as exc:
            self.malformed(exc)
            return VenueError(
                f"{method}: unreadable error answer; outcome unknown", venue=self.venue, code="malformed"
            )

    def _reset(self) -> None:
        super()._reset()
        self._current.clear()
        self._requests.fail_all()  # each waiter: the connection was lost, outcome unknown

    # -- subscriptions -------------------------------------------------------------------------
    async def _sync_subscriptions(self) -> None:
        refresh = self._resnapshot_channels(self._gaps) if self._gaps else set()
        self._gaps.clear()
        desired = self.desired_channels()
        remove = self._current - desired
        # Refused channels are not asked again until they leave and re-enter the desired set.
        self._refused &= desired
        add = desired - self._current - self._refused
        size = self.subscribe_batch
        for batch in batches(sorted(remove | refresh), size):
            try:
                self._current = await self._unsubscribe(batch, self._current)
            except VenueError as exc:
                if exc.code not in self.batch_refusals:
                    raise
                self.log.warning("unsubscribe.refused", channels=len(batch), error=str(exc))
        if refresh:
            self.stats.resubscribed_books += len(refresh)
            self.log.info("book.resubscribe", channels=sorted(refresh))
        # Our private channels in batches of their own, first: a batch refused whole for a bad
        # public channel must never take them with it (a refused private channel ends the
        # connection, and the same mixed batch would be refused again on every reconnect).
        wanted = add | (refresh & desired)
        private = wanted & self.private_channels()
        for batch in [*batches(sorted(private), size), *batches(sorted(wanted - private), size)]:
            try:
                self._current, refusals = await self._subscribe(batch, self._current)
            except VenueError as exc:
                if exc.code not in self.batch_refusals:
                    raise
                self.log.warning("subscribe.refused", channels=len(batch), error=str(exc))
                why = f"refused as a batch ({exc.venue_message or exc.code})"
                refusals = [(channel, why) for channel in batch]
            await self._refusals(refusals)
        if add or remove:
            await self.status(
                StatusKind.SUBSCRIBED, f"{len(self._current)} channels", channels=len(self._current)
            )

    def private_channels(self) -> frozenset[str]:
        """The channels that carry this session's own orders and fills (none by default). A
        refusal of one of them is never taken as "not asked again": without them, order reports
        and fills would go missing silently; the connection ends instead (retried, with backoff)."""
        return frozenset()

    async def _refusals(self, refusals: list[tuple[str, str]]) -> None:
        """Refused channels: remembered (not asked again), counted, logged, and one
        `subscription_refused` status each, with the venue's reason when it gave one. A refused
        private channel (`private_channels`) ends the connection instead."""
        if not refusals:
            return
        mine = self.private_channels()
        private = sorted(channel for channel, _ in refusals if channel in mine)
        refusals = [(channel, reason) for channel, reason in refusals if channel not in mine]
        if refusals:  # the public ones first: remembered and reported, whatever follows
            await self._public_refusals(refusals)
        if private:
            self.log.error("subscription.private_refused", channels=private)
            raise VenueError(
                f"the venue refused the private channels {private}: without them order reports and "
                "fills would be lost; reconnecting",
                venue=self.venue,
                code="private_refused",
            )

    async def _public_refusals(self, refusals: list[tuple[str, str]]) -> None:
        self._refused |= {channel for channel, _ in refusals}
        self.stats.refused_channels += len(refusals)
        self.log.warning("subscription.refused", channels=sorted(channel for channel, _ in refusals))
        for channel, reason in sorted(refusals):
            data: dict[str, Any] = {"channel": channel}
            message = f"the venue refused {channel}"
            if reason:
                message += f": {reason}"
                data["reason"] = reason
            await self.status(
                StatusKind.SUBSCRIPTION_REFUSED, message, instrument=self.instrument_of(channel), **data
            )
