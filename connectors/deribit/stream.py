"""One Deribit WebSocket session: JSON-RPC 2.0 both ways on a single trio-websocket connection.

What it keeps up, across reconnections (VENUES.md §1.2-§1.6, §1.10):

- Requests matched to responses by id, each with a timeout. A request that could not be sent
  raises `VenueUnavailable` (nothing reached the venue); one sent but unanswered raises
  `VenueError` (outcome unknown: never retried for orders).
- Authentication (`client_signature` by default, so the secret never crosses the wire; or
  `client_credentials`), and the token refreshed before it expires.
- `public/set_heartbeat`, every `test_request` answered with `public/test`, and a watchdog that
  declares the feed stale (a `feed_stale` status, then a reconnect) when nothing has arrived for
  `stale_after_s`.
- The router's merged subscriptions as `public/subscribe`/`private/subscribe` calls: diffed on
  every change, batched, the granted channels checked and refusals reported; a `change_id` gap
  resubscribes that book only, for a fresh snapshot.
- Reconnection with jittered exponential backoff: re-authenticate, resubscribe everything (each
  book starts again from a snapshot), and report each step as a `status` event.
- Local credit buckets ahead of Deribit's (§1.10), so a burst of orders waits a little instead of
  getting the session cut off; a `too_many_requests` answer drains the bucket, and is retried
  where that is safe (subscriptions, reads), never for orders.
"""

from __future__ import annotations

import functools
import random
import re
import time
from collections.abc import Callable
from typing import Annotated, Any, Final

import msgspec
import structlog
import trio
import trio_websocket
from msgspec import Meta

from tradingd.engine.venue import (
    AuthError,
    Connect,
    CreditBucket,
    DataKind,
    Envelope,
    InstrumentRegistry,
    JsonRpcSession,
    MalformedFrame,
    RateLimited,
    RpcError,
    SessionStats,
    SubscriptionSource,
    VenueError,
    VenueRejected,
    VenueSink,
    default_connect,
    frame_head,
    loads_untyped,
    register_secret,
)

from .codec import DeribitDecoder, _decode_envelope, _Params
from .execution import DeribitExecution
from .instruments import VENUE
from .settings import DeribitSettings
from .signing import Credentials, new_nonce, sign_client_signature

__all__ = ["DeribitSession", "SessionStats", "map_error"]

_NOTIFICATION: Final = '{"jsonrpc":"2.0","method":"subscription"'
_KIND_CHANNEL: Final = {DataKind.TICKER: "ticker", DataKind.BOOK: "book", DataKind.TRADES: "trades"}
_PRIVATE_CHANNELS: Final = ("user.orders.any.any.raw", "user.trades.any.any.raw")

# §1.9, the complete table. Codes that mean "this request was refused and did nothing".
_REJECTION_CODES: Final = frozenset(
    {
        10002, 10003, 10004, 10005, 10007, 10009, 10010, 10011, 10012, 10020, 10021, 10023, 10025,
        10026, 10027, 10029, 10041, 10043, 10047, 11008, 11029, 11036, 11044, 11050, 11054, 13020,
        13030, 13777,
    }
)  # fmt: skip
_AUTH_CODES: Final = frozenset({10000, 13004, 13009, 13021})
_RATE_CODES: Final = frozenset({10028, 10066})

# What a recording may hold (engine.venue.session: recordings are shared as backtest data). Market data
# channels (§1.6; the private ones are all `user.*`, but public is what is listed here), heartbeats
# (§1.5), and the answers a replay reads or that tell nothing of the account: never `public/auth`
# (its tokens), never a `private/*` answer.
_PUBLIC_CHANNELS: Final = (
    "book.", "ticker.", "trades.", "quote.", "incremental_ticker.", "deribit_price_index.",
    "deribit_price_ranking.", "deribit_volatility_index.", "estimated_expiration_price.",
    "markprice.options.", "perpetual.", "instrument.state.", "platform_state", "chart.trades.",
)  # fmt: skip
_PUBLIC_ANSWERS: Final = frozenset(
    {
        "public/get_instruments",
        "public/subscribe",
        "public/unsubscribe",
        "public/set_heartbeat",
        "public/test",
    }
)
_PUBLIC_NOTIFICATIONS: Final = tuple(f'{_NOTIFICATION},"params":{{"channel":"{c}' for c in _PUBLIC_CHANNELS)
# The head of a notification or an answer in any spacing (§1.2), read without parsing the frame.
_NOTIFICATION_HEAD: Final = re.compile(
    r'\{\s*"jsonrpc"\s*:\s*"2\.0"\s*,\s*"method"\s*:\s*"(subscription|heartbeat)"\s*,'
    r'\s*"params"\s*:\s*\{\s*"(?:channel"\s*:\s*"([^"]*)"|type")'
)
_ANSWER_HEAD: Final = re.compile(
    r'\{\s*"jsonrpc"\s*:\s*"2\.0"\s*,\s*"id"\s*:\s*(\d{1,18})\s*,\s*"result"\s*:'
)


class _Token(msgspec.Struct):
    """A `public/auth` answer (§1.3), what the session reads of it. `expires_in` is seconds: 900
    as the daemon asks, but the venue documents longer-lived tokens (its example answers
    31,536,000, its OpenAPI schema 315,360,000), so any finite figure >= 0 is a token; the
    refresh is at most a day away however long it lives (`refresh_delay`)."""

    access_token: Annotated[str, Meta(min_length=1)]
    expires_in: Annotated[float, Meta(ge=0)] = 0.0
    refresh_token: str | None = None


_decode_token: Final = msgspec.json.Decoder(_Token).decode
_REFRESH_AT_MOST_S: Final = 86_400.0


def refresh_delay(expires_in: float) -> float:
    """Seconds until a token living `expires_in` seconds is refreshed: at 80% of its life, at
    least 1 s, at most a day (a ten-year token is still refreshed, and a refresh is never put
    off past what a float sleep can say)."""
    return min(_REFRESH_AT_MOST_S, max(1.0, 0.8 * expires_in))


# What msgspec raises for an answer it cannot read (engine.venue.jsonrpc `_UNREADABLE`).
_UNREADABLE_ANSWER: Final = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


def map_error(error: Any, *, method: str) -> VenueError:
    """A JSON-RPC error object as the typed exception callers catch (§1.9)."""
    read = RpcError.read(error, method)
    code = read.code
    kind: type[VenueError] = VenueError
    if code in _RATE_CODES:
        kind = RateLimited
    elif code in _AUTH_CODES:
        kind = AuthError
    elif code in _REJECTION_CODES:
        kind = VenueRejected
    return read.as_error(kind, VENUE)


class DeribitSession(JsonRpcSession):
    """A `LiveVenue` for Deribit (see the module docstring). `sink` receives market and private
    events; `execution()` gives the client that sends orders over this same connection."""

    venue = VENUE
    public_frame_prefixes = _PUBLIC_NOTIFICATIONS
    notification_prefixes = (_NOTIFICATION,)
    # §1.4: `subscribe_error_unsubscribed`; 13778 `raw_subscriptions_not_available_for_unauthorized`
    # refuses a whole subscribe that asks for `raw` before authenticating (cryptofeed issue #768).
    batch_refusals = frozenset({11052, 13778})

    def __init__(
        self,
        settings: DeribitSettings,
        *,
        registry: InstrumentRegistry,
        router: SubscriptionSource,
        sink: VenueSink,
        credentials: Credentials | None = None,
        connect: Connect = default_connect,
        clock: Callable[[], int] = time.time_ns,
        rng: random.Random | None = None,
        log: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        self.decoder: DeribitDecoder = DeribitDecoder(registry)
        super().__init__(
            envelope=_decode_envelope,
            request_timeout_s=settings.request_timeout_s,
            decoder=self.decoder,
            registry=registry,
            router=router,
            sink=sink,
            connect=connect,
            clock=clock,
            rng=rng,
            reconnect_base_s=settings.reconnect_base_s,
            reconnect_cap_s=settings.reconnect_cap_s,
            stale_after_s=settings.stale_after_s,
            log=log,
        )
        self.settings = settings
        self.credentials = credentials
        self._authenticated = False
        self._token_expires_in = 0.0
        self._refresh_token: str | None = None
        self._instruments_loaded_at: float | None = None
        self._execution: DeribitExecution | None = None
        self._buckets = {
            # §1.10: default 500 credits of a 50,000 pool refilled 10,000/s; subscribe 3,000 of
            # 30,000; get_instruments 10,000 of 500,000; matching engine by tier (requests).
            "default": CreditBucket.below(50_000, 10_000),
            "subscribe": CreditBucket.below(30_000, 10_000),
            "instruments": CreditBucket.below(500_000, 10_000),
            "matching": CreditBucket.below(settings.matching_burst, settings.matching_rate),
        }

    # -- public API -------------------------------------------------------------------------
    @property
    def authenticated(self) -> bool:
        return self._authenticated

    def book_counters(self) -> dict[str, int]:
        """None beyond `DecoderStats`: Deribit's decoder counts nothing else."""
        return {}

    def execution_counters(self) -> dict[str, int]:
        e = self._execution
        if e is None:
            return {}
        return {"trades_refused": e.trades_refused, "orders_refused": e.orders_refused,
                "funding_refused": e.funding_refused,
                "history_truncated": e.history_truncated}  # fmt: skip

    def execution(self) -> DeribitExecution:
        """The session's execution client, one per session as the other venues' are: its counters
        (`trades_refused`, `orders_refused`, `funding_refused`) and the settlement records it has
        already refused live as long as the session, not one reconciliation or one funding poll."""
        if self._execution is None:
            self._execution = DeribitExecution(self, self.registry, currencies=self.settings.currencies)
        return self._execution

    async def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        bucket: str = "default",
        cost: float = 500,
    ) -> Any:
        """Send one JSON-RPC request under the local credit bucket `bucket` (§1.10) and return
        its raw `result` (engine.venue.jsonrpc `request`: `VenueUnavailable` when it could not be
        sent, the typed exception of the venue's error answer (`map_error`), `VenueError` when no
        answer came in time)."""
        return await self.request(method, params, self._buckets[bucket], cost)

    async def call_retrying(self, method: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        """`call` for requests that are safe to repeat (reads, subscriptions): a
        `too_many_requests` answer waits and tries again (three times)."""
        return await self.retrying(lambda: self.call(method, params, **kw))

    # -- the connection (VenueSession hooks) -------------------------------------------------
    def _url(self) -> str:
        return self.settings.ws_url

    async def _serve(self, ws: trio_websocket.WebSocketConnection, nursery: trio.Nursery) -> None:
        await self._handshake()
        nursery.start_soon(self._refresh_instruments)
        if self._authenticated and self._token_expires_in > 0:
            nursery.start_soon(self._refresh_auth)

    def _on_connected(self) -> dict[str, Any]:
        return {"authenticated": self._authenticated}

    def _credentials_hint(self, exc: AuthError) -> str | None:
        # §1.9: 13004 `invalid_credentials` is the answer to a wrong client id, secret or
        # signature (or a clock too far off: the venue's message says which). 13009 is a token
        # expired or used on another connection: that one a reconnection fixes.
        if exc.code != 13004:
            return None
        return (
            "DERIBIT_CLIENT_ID and DERIBIT_CLIENT_SECRET (or the files DERIBIT_CLIENT_ID_FILE and "
            "DERIBIT_CLIENT_SECRET_FILE name, e.g. systemd's LoadCredential)"
        )

    def public_frame(self, message: bytes | str) -> bool:
        """A public notification in another spacing, a heartbeat, or the answer to a request in
        `_PUBLIC_ANSWERS` (its request still pending: this runs before `_handle`)."""
        head = frame_head(message)
        m = _NOTIFICATION_HEAD.match(head)
        if m is not None:
            return m[1] == "heartbeat" or (m[2] is not None and m[2].startswith(_PUBLIC_CHANNELS))
        return self._requests.answers_one_of(head, _ANSWER_HEAD, _PUBLIC_ANSWERS)

    def _reset(self) -> None:
        super()._reset()
        self._authenticated = False

    async def _other(self, env: Envelope[_Params], message: bytes | str, now: int) -> None:
        """§1.5 heartbeats: a `test_request` is answered (`public/test`), others need nothing."""
        if env.method == "heartbeat":
            if env.params is not None and env.params.type == "test_request" and self._nursery is not None:
                self._nursery.start_soon(self._answer_test_request)
            return
        await super()._other(env, message, now)

    def _map_error(self, error: Any, method: str) -> VenueError:
        return map_error(error, method=method)

    async def _answer_test_request(self) -> None:
        """§1.5: a `test_request` unanswered gets the connection closed by the venue."""
        try:
            await self.call("public/test", {})
            self.stats.heartbeats_answered += 1
        except VenueError as exc:
            self.log.warning("heartbeat.test_failed", error=str(exc))

    # -- handshake, auth, instruments ---------------------------------------------------------
    async def _handshake(self) -> None:
        # Refused for rate (10028), these are tried again as the credits allow (§1.10; if the
        # venue ends the session for it, the reconnection does: engine.venue.session).
        if self.credentials is not None and (self.settings.private or self.settings.interval == "raw"):
            await self.retry_rate_limited(self._authenticate, what="public/auth")
        await self.retry_rate_limited(
            lambda: self.call("public/set_heartbeat", {"interval": self.settings.heartbeat_s}),
            what="public/set_heartbeat",
        )
        if self._instruments_loaded_at is None:
            await self._load_instruments()

    async def _authenticate(self) -> None:
        creds = self.credentials
        assert creds is not None
        if self.settings.auth == "client_signature":
            ts = self._clock() // 1_000_000
            nonce = new_nonce()
            params: dict[str, Any] = {
                "grant_type": "client_signature",
                "client_id": creds.client_id,
                "timestamp": ts,
                "nonce": nonce,
                "data": "",
                "signature": sign_client_signature(creds.client_secret, ts, nonce),
            }
        else:
            params = {
                "grant_type": "client_credentials",
                "client_id": creds.client_id,
                "client_secret": creds.client_secret,
            }
        await self._take_token(await self.call("public/auth", params))

    async def _take_token(self, raw: Any) -> None:
        """A `public/auth` answer (§1.3): its tokens made unloggable, the session authenticated.
        An answer that is not one (a token that is no text, an `expires_in` that is no number of
        seconds the venue gives) is the venue's `AuthError`: the connection is retried, never a
        ValueError or TypeError out of the handshake (or the token refresh) ending the daemon."""
        try:
            token: _Token = _decode_token(raw)
        except _UNREADABLE_ANSWER as exc:
            raise AuthError(f"public/auth: unexpected answer ({exc})", venue=VENUE) from None
        register_secret(token.access_token)
        self._token_expires_in = token.expires_in
        self._refresh_token = token.refresh_token or None
        if self._refresh_token:
            register_secret(self._refresh_token)
        self._authenticated = True
        self.log.info("session.authenticated", expires_in=self._token_expires_in)

    async def _refresh_auth(self) -> None:
        """Refresh the token at 80% of its life (§1.3 `grant_type=refresh_token`)."""
        while True:
            await trio.sleep(refresh_delay(self._token_expires_in))
            if not self._refresh_token:
                return
            params = {"grant_type": "refresh_token", "refresh_token": self._refresh_token}
            raw = await self.retry_rate_limited(
                functools.partial(self.call, "public/auth", params), what="public/auth"
            )
            await self._take_token(raw)

    async def _load_instruments(self) -> None:
        learned = 0
        for currency in self.settings.currencies:
            for kind in ("future", "option"):
                raw = await self.call_retrying(
                    "public/get_instruments",
                    {"currency": currency, "kind": kind, "expired": False},
                    bucket="instruments",
                    cost=10_000,
                )
                try:
                    learned += self.decoder.learn_instruments(raw)
                except Exception as exc:  # an absurd answer is refused, never the session's end
                    self.instruments_refused(exc, currency=currency, kind=kind)
        self._instruments_loaded_at = trio.current_time()
        self.log.info("instruments.loaded", new=learned, known=len(self.registry))

    async def _refresh_instruments(self) -> None:
        while True:
            await trio.sleep(self.settings.instruments_refresh_s)
            await self._load_instruments()

    # -- subscriptions ------------------------------------------------------------------------
    def desired_channels(self) -> set[str]:
        """The channels the router's merged subscriptions (and trading) call for."""
        interval = self.settings.interval
        out = {
            f"{_KIND_CHANNEL[kind]}.{instrument}.{interval}" for instrument, kind in self.router.merged(VENUE)
        }
        if self._authenticated and self.settings.private:
            out.update(_PRIVATE_CHANNELS)
        return out

    def private_channels(self) -> frozenset[str]:
        """Our orders and trades (§1.6): a refusal of them ends the connection."""
        return frozenset(_PRIVATE_CHANNELS)

    def _resnapshot_channels(self, books: set[str]) -> set[str]:
        # A `change_id` gap: that book's channel is taken again, for a fresh snapshot (§1.6).
        interval = self.settings.interval
        return {f"book.{i}.{interval}" for i in books} & self._current

    async def _unsubscribe(self, channels: list[str], held: set[str]) -> set[str]:
        method = f"{self._prefix}/unsubscribe"
        removed = _channels(await self.call_retrying(method, {"channels": channels}), method)
        return held - (removed | set(channels))

    async def _subscribe(self, channels: list[str], held: set[str]) -> tuple[set[str], list[tuple[str, str]]]:
        method = f"{self._prefix}/subscribe"
        raw = await self.call_retrying(method, {"channels": channels}, bucket="subscribe", cost=3_000)
        granted = _channels(raw, method)
        # The answer lists the granted channels (§1.4): the others were refused, with no reason.
        return held | granted, [(channel, "") for channel in set(channels) - granted]

    @property
    def _prefix(self) -> str:
        return "private" if self._authenticated else "public"

    def instrument_of(self, channel: str) -> str:
        parts = channel.split(".")
        return parts[1] if len(parts) >= 3 and parts[0] in ("ticker", "book", "trades") else ""


def _channels(raw: Any, method: str) -> set[str]:
    """A (un)subscribe answer (§1.4: the array of channels). One that is not is the venue's
    error (`VenueError`: the session reconnects and subscribes again), never a crash."""
    try:
        channels = loads_untyped(raw, VENUE, f"{method} answer")
    except MalformedFrame as exc:
        raise VenueError(str(exc), venue=VENUE, code="malformed") from None
    if channels is None:
        return set()
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise VenueError(f"{method}: expected an array of channels", venue=VENUE, code="malformed")
    return set(channels)
