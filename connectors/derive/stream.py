"""One Derive WebSocket session: JSON-RPC both ways on a single trio-websocket connection
(VENUES.md §3.1, §3.4, §3.5, §3.7).

What it keeps up, across reconnections (the loop itself is `engine.venue.session.VenueSession`):

- Requests matched to responses by id, each with a timeout. A request that could not be sent
  raises `VenueUnavailable` (nothing reached the venue); one sent but unanswered raises
  `VenueError` (outcome unknown: never retried for orders). Error answers become typed
  exceptions with the venue's code and message (`map_error`, §3.7).
- `public/login` (§3.5: the UTC time in ms, EIP-191-signed by the session key) when trading,
  checked against the subaccount we trade (the login answer lists the wallet's subaccounts).
  The key never leaves the process; only the signature does.
- Instruments (§3.2): `public/get_instruments` per configured currency and `instrument_type`,
  loaded once and refreshed every `instruments_refresh_s` (not on every reconnect). A refresh
  that lists new instruments or drops old ones (an expiry passed, a new one listed) updates the
  registry (dropped ones turn inactive) and tells the strategies with an `instrument_state`
  status (`listed`, `delisted`), so a strategy re-selecting with an `InstrumentFilter` follows
  the live set.
- Keepalive (§3.1): the venue pings at the WebSocket level (trio-websocket answers) and has no
  application heartbeat, so after `keepalive_s` of silence the session asks `public/get_time`;
  its answer proves the venue alive, and no answer within `stale_after_s` makes the watchdog
  declare the feed stale and reconnect.
- The router's merged subscriptions as `subscribe`/`unsubscribe` calls (§3.4: the method names
  carry no `public/`): diffed on every change, batched, each channel's status in the answer
  checked, refusals reported as `subscription_refused` statuses (and not asked again until the
  channel leaves and re-enters the wanted set). Books are whole snapshots (§3.4): a skipped
  `publish_id` is reported (`book_gap`) but needs no resubscription, since the very message
  that shows the skip is a whole book again.
- Local rate limiting ahead of Derive's (§3.7, Trader tier): matching requests (orders,
  cancels) and non-matching ones in separate buckets, a per-instrument bucket for matching
  requests, and `private/cancel_all` at 1 per second; a -32000 answer drains the bucket, and is
  retried where that is safe (subscriptions, reads), never for orders.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from typing import Any, Final

import attrs
import msgspec
import structlog
import trio
import trio_websocket

from tradingd.engine.venue import (
    AuthError,
    Connect,
    CreditBucket,
    DataKind,
    Envelope,
    InstrumentRegistry,
    JsonRpcSession,
    MalformedFrame,
    NotificationParams,
    RateLimited,
    RpcError,
    StatusKind,
    SubscriptionSource,
    Ticker,
    VenueError,
    VenueRejected,
    VenueSink,
    VenueUnavailable,
    default_connect,
    frame_head,
    loads_untyped,
)

from .codec import DeriveDecoder, _decode_envelope
from .execution import DeriveExecution
from .instruments import VENUE, instruments_params, is_instrument_item
from .settings import DeriveSettings
from .signing import Credentials, login_params

__all__ = ["DeriveSession", "map_error"]

_NOTIFICATIONS: Final = ('{"method":"subscription"', '{"jsonrpc":"2.0","method":"subscription"')
_MATCHING: Final = frozenset(  # §3.7: the requests the matching engine's limit counts
    {
        "private/order",
        "private/replace",
        "private/cancel",
        "private/cancel_by_nonce",
        "private/cancel_by_instrument",
        "private/cancel_by_label",
    }
)
# §3.7 error codes. Refusals: the request was refused and did nothing.
_REJECTION_CODES: Final = frozenset(
    {
        -32700, -32600, -32601, -32602, 11000, 11003, 11004, 11006, 11007, 11008, 11011, 11012, 11013,
        11014, 11015, 11017, 11018, 11021, 12001, 13000, 16000,
    }
)  # fmt: skip
_AUTH_CODES: Final = frozenset({14000, 14001, 14014, 14021, 14023, 14026, 14030})
_RATE_CODES: Final = frozenset({-32000})
_NOT_IN_WALLET: Final = "subaccount_not_in_wallet"  # our own check of the login answer

# What a recording may hold (engine.venue.session: recordings are shared as backtest data). The public
# channels of §3.4 (the private ones are named `{subaccount_id}.*` and `{wallet}.*`), and the
# answers a replay reads (instruments, subscriptions) or that tell nothing of the account: never
# the `public/login` answer, never a `private/*` one.
_PUBLIC_CHANNELS: Final = (
    "orderbook.", "ticker_slim.", "ticker.", "trades.", "spot_feed.", "margin.watch", "auctions.watch",
)  # fmt: skip
_PUBLIC_ANSWERS: Final = frozenset(
    {"public/get_instruments", "subscribe", "unsubscribe", "public/get_time", "public/get_ticker"}
)
_PUBLIC_NOTIFICATIONS: Final = tuple(
    f'{head},"params":{{"channel":"{c}' for head in _NOTIFICATIONS for c in _PUBLIC_CHANNELS
)
# The head of a notification or an answer in any spacing (§3.1), read without parsing the frame.
_NOTIFICATION_HEAD: Final = re.compile(
    r'\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"method"\s*:\s*"subscription"\s*,'
    r'\s*"params"\s*:\s*\{\s*"channel"\s*:\s*"([^"]*)"'
)
_ANSWER_HEAD: Final = re.compile(
    r'\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"id"\s*:\s*(\d{1,18})\s*,\s*"result"\s*:'
)


def map_error(error: Any, *, method: str) -> VenueError:
    """A JSON-RPC error object (§3.1 `{code, message, data}`) as the typed exception callers
    catch (§3.7): rate limit -> `RateLimited`; a refused request -> `VenueRejected` (an order
    refused for its signature or session key included: it was refused, nothing happened); a
    refused login or account -> `AuthError`; anything else (internal errors, 9000 order
    confirmation timeout) -> `VenueError`, whose outcome is unknown."""
    read = RpcError.read(error, method)
    code = read.code
    ordering = method in _MATCHING or method == "private/cancel_all"
    kind: type[VenueError] = VenueError
    if code in _RATE_CODES:
        kind = RateLimited
    elif method == "public/login":
        kind = AuthError
    elif code in _REJECTION_CODES or (code in _AUTH_CODES and ordering):
        kind = VenueRejected
    elif code in _AUTH_CODES:
        kind = AuthError
    return read.as_error(kind, VENUE)


class _SubscribeResult(msgspec.Struct):
    """§3.4: `subscribe` answers `status` per channel and `current_subscriptions`;
    `unsubscribe` answers `status` and `remaining_subscriptions`."""

    status: dict[str, str] = {}
    current_subscriptions: list[str] | None = None
    remaining_subscriptions: list[str] | None = None


_decode_subscribe: Final = msgspec.json.Decoder(_SubscribeResult).decode


class DeriveSession(JsonRpcSession):
    """A `LiveVenue` for Derive (see the module docstring). `sink` receives market and private
    events; `execution()` gives the client that signs and sends orders over this connection."""

    venue = VENUE
    public_frame_prefixes = _PUBLIC_NOTIFICATIONS
    notification_prefixes = _NOTIFICATIONS
    batch_refusals = frozenset({13000, -32602})  # §3.7: invalid channels / params

    def __init__(
        self,
        settings: DeriveSettings,
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
        self.decoder: DeriveDecoder = DeriveDecoder(registry, check_skips=settings.check_publish_ids)
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
        self.details = self.decoder.details  # what order signing needs beyond the registry
        self.subaccounts: list[int] = []  # the wallet's, as the last login listed them
        self.index_prices: dict[str, float] = {}  # by base currency, from the tickers
        self.mark_prices: dict[str, float] = {}  # by instrument, from the tickers
        self.instrument_loads = 0
        self._execution: DeriveExecution | None = None
        self._authenticated = False
        self._listed: dict[tuple[str, str], set[str]] = {}  # (currency, type) -> names listed
        self._instruments_loaded_at: float | None = None
        burst = settings.burst_multiplier
        self._buckets = {
            "matching": CreditBucket.below(settings.matching_tps * burst, settings.matching_tps),
            "non_matching": CreditBucket.below(settings.non_matching_tps * burst, settings.non_matching_tps),
            "cancel_all": CreditBucket.below(1.0, settings.cancel_all_tps),
        }
        self._instrument_buckets: dict[str, CreditBucket] = {}

    # -- public API -------------------------------------------------------------------------
    @property
    def authenticated(self) -> bool:
        return self._authenticated

    @property
    def trading(self) -> bool:
        """Logged in with the private channels followed: orders can be placed."""
        return self._authenticated and self.settings.private

    def now_ns(self) -> int:
        """The session's clock (wall time unless injected)."""
        return self._clock()

    def book_counters(self) -> dict[str, int]:
        """Orderbook snapshots the decoder refused as crossed."""
        return {"crossed_books": self.decoder.crossed_books}

    def execution_counters(self) -> dict[str, int]:
        e = self._execution
        if e is None:
            return {}
        return {"trades_refused": e.trades_refused, "orders_refused": e.orders_refused,
                "funding_refused": e.funding_refused, "funding_held": e.funding_held}  # fmt: skip

    def execution(self) -> DeriveExecution:
        """The session's `DeriveExecution` (one per session: its nonces must never repeat)."""
        if self._execution is None:
            from .execution import DeriveExecution

            self._execution = DeriveExecution(self)
        return self._execution

    def _bucket_for(self, instrument: str) -> CreditBucket:
        bucket = self._instrument_buckets.get(instrument)
        if bucket is None:
            tps = self.settings.instrument_tps
            bucket = self._instrument_buckets[instrument] = CreditBucket.below(
                tps * self.settings.burst_multiplier, tps
            )
        return bucket

    async def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        instrument: str | None = None,
    ) -> Any:
        """Send one JSON-RPC request and return its raw `result` (engine.venue.jsonrpc `request`).

        Waits for the local rate-limit buckets first (matching requests also per `instrument`).
        Raises `VenueUnavailable` when it could not be sent, the typed exception of the venue's
        error answer (`map_error`), and `VenueError` when no answer came in time."""
        if self._ws is None:  # before any bucket is made or waited for
            raise VenueUnavailable(f"{method}: not connected", venue=VENUE)
        first = None
        if method == "private/cancel_all":
            bucket = self._buckets["cancel_all"]
        elif method in _MATCHING:
            bucket = self._buckets["matching"]
            if instrument:
                first = self._bucket_for(instrument)
        else:
            bucket = self._buckets["non_matching"]
        return await self.request(method, params, bucket, 1, first=first)

    async def call_retrying(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """`call` for requests that are safe to repeat (reads, subscriptions): a rate-limit
        answer waits and tries again (three times)."""
        return await self.retrying(lambda: self.call(method, params))

    # -- the connection (VenueSession hooks) -------------------------------------------------
    def _url(self) -> str:
        return self.settings.ws_url

    async def _serve(self, ws: trio_websocket.WebSocketConnection, nursery: trio.Nursery) -> None:
        nursery.start_soon(self._keepalive)
        if self.credentials is not None and self.settings.private:
            await self._login()
        if self._instruments_loaded_at is None:
            await self._load_instruments()
        nursery.start_soon(self._refresh_instruments)

    def _on_connected(self) -> dict[str, Any]:
        return {"authenticated": self._authenticated}

    def _credentials_hint(self, exc: AuthError) -> str | None:
        # §3.7 "Account and auth" codes answering `public/login` (a wallet, session key or
        # signature the venue does not take), or a subaccount the wallet does not have. Others
        # (an internal error) are passing: reconnected.
        if exc.code not in _AUTH_CODES and exc.code != _NOT_IN_WALLET:
            return None
        return (
            "DERIVE_WALLET, DERIVE_SESSION_KEY and DERIVE_SUBACCOUNT_ID (or the files their _FILE "
            "variables name, e.g. systemd's LoadCredential)"
        )

    def public_frame(self, message: bytes | str) -> bool:
        """A public notification in another spacing, or the answer to a request in
        `_PUBLIC_ANSWERS` (its request still pending: this runs before `_handle`)."""
        head = frame_head(message)
        m = _NOTIFICATION_HEAD.match(head)
        if m is not None:
            return m[1].startswith(_PUBLIC_CHANNELS)
        return self._requests.answers_one_of(head, _ANSWER_HEAD, _PUBLIC_ANSWERS)

    def _reset(self) -> None:
        super()._reset()
        self._authenticated = False

    async def _other(self, env: Envelope[NotificationParams], message: bytes | str, now: int) -> None:
        if env.error:
            # An error nobody asked for (the venue could not read a request's id).
            try:
                error_object = loads_untyped(env.error, VENUE, "error without id")
            except MalformedFrame as exc:
                self.malformed(exc)
                return
            self.log.warning("rpc.error_without_id", error=error_object)
            return
        await super()._other(env, message, now)

    def _map_error(self, error: Any, method: str) -> VenueError:
        return map_error(error, method=method)

    async def decode(self, message: bytes | str, now: int) -> None:
        """Decode a data frame and dispatch its events; tickers also keep the index and mark
        prices order signing uses (a `max_fee`, a market order's worst price)."""
        try:
            events = self.decoder.decode(message, now)
        except MalformedFrame as exc:
            self.malformed(exc)
            return
        for ev in events:
            if ev.__class__ is Ticker:
                t: Ticker = ev
                if t.index:
                    self.index_prices[t.instrument.partition("-")[0]] = t.index
                if t.mark:
                    self.mark_prices[t.instrument] = t.mark
        await self.dispatch(events)

    async def _keepalive(self) -> None:
        """§3.1: no application heartbeat on Derive; a request after `keepalive_s` of silence."""
        period = self.settings.keepalive_s
        while True:
            await trio.sleep_until(self._last_rx + period)
            if trio.current_time() - self._last_rx < period:
                continue  # something arrived meanwhile
            try:
                await self.call("public/get_time", {})
                self.stats.heartbeats_answered += 1
            except VenueError as exc:
                # No answer: the watchdog decides whether the feed is stale.
                self.log.warning("keepalive.unanswered", error=str(exc))

    # -- login and instruments ----------------------------------------------------------------
    async def _login(self) -> None:
        creds = self.credentials
        assert creds is not None
        # Refused for rate (-32000, §3.7: the connection stays), tried again, signing anew.
        raw = await self.retry_rate_limited(
            lambda: self.call("public/login", login_params(creds, self._clock() // 1_000_000)),
            what="public/login",
        )
        try:
            subaccounts = msgspec.json.decode(raw, type=list[int])
        except msgspec.DecodeError as exc:
            raise AuthError(f"public/login: unexpected answer ({exc})", venue=VENUE) from None
        self.subaccounts = subaccounts
        if creds.subaccount_id not in subaccounts:
            raise AuthError(
                f"subaccount {creds.subaccount_id} is not one of wallet {creds.wallet}'s "
                f"({', '.join(map(str, subaccounts)) or 'none'}): check DERIVE_SUBACCOUNT_ID",
                venue=VENUE,
                code=_NOT_IN_WALLET,
            )
        self._authenticated = True
        self.log.info("session.logged_in", wallet=creds.wallet, subaccount=creds.subaccount_id)

    async def _load_instruments(self) -> None:
        """`public/get_instruments` per currency and type (§3.2), into the registry and the
        signing side table; what a refresh no longer lists turns inactive."""
        first = self._instruments_loaded_at is None
        listed: list[str] = []
        delisted: list[str] = []
        for currency in self.settings.currencies:
            for kind in self.settings.instrument_types:
                raw = await self.call_retrying("public/get_instruments", instruments_params(currency, kind))
                try:
                    items = loads_untyped(raw, VENUE, "get_instruments answer")
                    if not isinstance(items, list):
                        raise MalformedFrame("get_instruments: expected a list", venue=VENUE)
                    self.decoder.learn_instruments(items)
                    names = {
                        item["instrument_name"]
                        for item in items
                        if is_instrument_item(item) and self.registry.get(VENUE, item["instrument_name"])
                    }
                except Exception as exc:  # an absurd answer is refused, never the session's end
                    # Refused whole: what it lists is not compared with the last answer, so
                    # nothing known is delisted on its word.
                    self.instruments_refused(exc, currency=currency, kind=kind)
                    continue
                before = self._listed.get((currency, kind))
                self._listed[(currency, kind)] = names
                if before is None:
                    continue
                listed += sorted(names - before)
                for name in sorted(before - names):
                    inst = self.registry.get(VENUE, name)
                    if inst is not None and inst.active:
                        self.registry.add(attrs.evolve(inst, active=False))
                    delisted.append(name)
        self._instruments_loaded_at = trio.current_time()
        self.instrument_loads += 1
        self.log.info(
            "instruments.loaded", known=len(self.details), listed=len(listed), delisted=len(delisted)
        )
        if not first and (listed or delisted):
            await self.status(
                StatusKind.INSTRUMENT_STATE,
                f"instruments changed: {len(listed)} listed, {len(delisted)} delisted",
                listed=listed,
                delisted=delisted,
            )

    async def _refresh_instruments(self) -> None:
        while True:
            await trio.sleep_until(
                (self._instruments_loaded_at or trio.current_time()) + self.settings.instruments_refresh_s
            )
            await self._load_instruments()

    async def refresh_instruments(self) -> None:
        """Reload the instruments now (the periodic refresh does this on its own)."""
        await self._load_instruments()

    # -- subscriptions ------------------------------------------------------------------------
    def desired_channels(self) -> set[str]:
        """The channels the router's merged subscriptions (and trading) call for (§3.4)."""
        s = self.settings
        ticker = f".{s.ticker_interval}"
        book = f".{s.book_group}.{s.book_depth}"
        out: set[str] = set()
        for instrument, kind in self.router.merged(VENUE):
            if kind is DataKind.TICKER:
                out.add(f"ticker_slim.{instrument}{ticker}")
            elif kind is DataKind.BOOK:
                out.add(f"orderbook.{instrument}{book}")
            else:
                out.add(f"trades.{instrument}")
        if self.trading:
            out |= self.private_channels()
        return out

    def private_channels(self) -> frozenset[str]:
        """Our orders, fills as they match and trades the chain reverted after that (§3.4): a
        refusal of them ends the connection."""
        if self.credentials is None:
            return frozenset()
        sub = self.credentials.subaccount_id
        return frozenset((f"{sub}.orders", f"{sub}.trades", f"{sub}.trades.reverted"))

    def _resnapshot_channels(self, books: set[str]) -> set[str]:
        # Snapshot-only books (§3.4): the message that showed the skip was whole already.
        self.log.info("book.publish_id_skipped", instruments=sorted(books))
        return set()

    async def _unsubscribe(self, channels: list[str], held: set[str]) -> set[str]:
        result = await self._subscription_call("unsubscribe", channels)
        if result.remaining_subscriptions is not None:
            return set(result.remaining_subscriptions)
        return held - set(channels)

    async def _subscribe(self, channels: list[str], held: set[str]) -> tuple[set[str], list[tuple[str, str]]]:
        result = await self._subscription_call("subscribe", channels)
        refusals = [(ch, result.status.get(ch, "no status in the answer")) for ch in channels]
        refusals = [(ch, why) for ch, why in refusals if why != "ok"]
        granted = set(channels) - {ch for ch, _ in refusals}
        if result.current_subscriptions is not None:
            return set(result.current_subscriptions) | granted, refusals
        return held | granted, refusals

    async def _subscription_call(self, method: str, channels: list[str]) -> _SubscribeResult:
        """One `subscribe`/`unsubscribe` call (a whole batch refused: `batch_refusals`)."""
        raw = await self.call_retrying(method, {"channels": channels})
        try:
            return _decode_subscribe(raw)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            # A string that is not UTF-8 (a channel name) raises UnicodeDecodeError: unreadable
            # too, the venue's error (the session reconnects), never the follower's crash.
            raise VenueError(f"{method}: unreadable answer ({exc})", venue=VENUE, code="malformed") from None

    def instrument_of(self, channel: str) -> str:
        parts = channel.split(".")
        if parts[0] in ("ticker_slim", "orderbook") or (parts[0] == "trades" and len(parts) == 2):
            return parts[1] if len(parts) >= 2 else ""
        return ""
