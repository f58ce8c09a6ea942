"""Polymarket's live side: two WebSocket connections and the CLOB's REST API, one decoder.

The CLOB publishes market data and our own orders on separate endpoints (VENUES.md §2.1, §2.2):
`<ws>/market` (public, by token id) and `<ws>/user` (authenticated, by condition id). A
`PolymarketSession` (the engine's `LiveVenue`) holds one `MarketConnection` and, when trading, one
`UserConnection`, both `VenueSession`s (reconnection with backoff, status events, the stale-feed
watchdog, the subscription follower), sharing one `PolymarketDecoder` (the market's books, our
trades' memory) and one `ClobRest` client. Every frame of both, and every REST answer that feeds
the decoder (book snapshots, market definitions), goes to `on_frame` exactly as received, so a
recording replays what the live run knew of the market; the user connection's frames and the
trades it recovers never do (they are ours, not market data: engine.venue.session).

Market connection (§2.2):
- the first subscription is `{"assets_ids": [...], "type": "market", "custom_feature_enabled":
  true, "initial_dump": true}`, later changes `{"assets_ids": [...], "operation": "subscribe" |
  "unsubscribe"}`: the router's merged subscriptions, diffed, on one connection. Third parties
  report ~500 assets per connection [U]; the documented protocol states no limit, so there is no
  split across connections: tokens beyond `max_assets_per_connection` are refused with a
  `subscription_refused` status instead of silently missing;
- a token not yet known is looked up before it is subscribed: its book (`GET /book`, or `POST
  /books` for several: a snapshot, and its tick, minimum size, neg_risk and market, §2.3), then
  `GET /markets/{condition_id}` (both outcomes, labels, whether it accepts orders); so is the
  market of a token known without its exchange (restored from the order journal); alongside,
  concurrently, each market's fee schedule (`GET /clob-markets/{condition_id}`, which the
  `/markets` object lacks; asked again every 30 s while the venue cannot say), so that it is
  known at READY and before the market's first order. A token the venue does not know is
  refused;
- the venue acknowledges no subscription (§2.2, and §"Subscribe methods differ": "no
  acknowledgement is documented"), but it answers one with the books of its tokens (the initial
  dump): the connection's first `ready` waits for them, so that the daemon's READY means market
  data is flowing, not merely that a message was sent. The wait is bounded by
  `snapshot_timeout_s`: past it, `ready` is set anyway, the tokens without a book from the venue
  are named (a `subscription.books_late` warning and `late_books` in the `subscribed` status)
  and fetched over REST. The subscription follower waits with it (only on that first
  subscription: the engine's strategies start after `ready`);
- every book starts from a snapshot: the venue's initial dump, or a REST one when none came
  within `snapshot_timeout_s`; a `book_gap` (the decoder's best bid/ask cross-check failed, a
  crossed book, or changes for a subscribed token without a book: `data["reason"]`, codec.py) is
  logged (`book.gap`) and answered with a `GET /book` snapshot of that book only, without
  reconnecting (`book_resync` follows); a book that breaks again before a snapshot of it held (a
  REST snapshot that is itself crossed) is fetched again after the shared per-book backoff
  (engine.venue.session: 1 s doubling to 60 s), never in a loop;
- the text frame `PING` every `ping_s` (10 s), answered by `PONG` (§2.2 "Keepalive");
- liveness comes from market data, not from `PONG`, and a silence is a question before it is a
  verdict: while tokens are subscribed, a connection that brings no market message (anything but
  `PONG`) for `market_stale_after_s` is asked for one: one of its tokens (in turn) is unsubscribed
  and subscribed again with `initial_dump`, which the venue answers with the token's book (§2.2:
  a subscription is answered by its books; whether a subscription of an already subscribed token
  is answered at all is not documented, so it is dropped first). Any market message within
  `snapshot_timeout_s` answers it: the market is merely quiet (a few illiquid tokens), the
  connection stays up, and the answer is the venue's current book of the token. No answer: the
  connection is stale (a `feed_stale` status, then a reconnection, which resubscribes and so
  snapshots every book again). The venue is known to keep a market connection open, accepting
  subscriptions and answering `PING`, while it sends no book data for hours (py-clob-client
  #292); the base watchdog (`stale_after_s`, any frame) would count its `PONG`s as life forever.

User connection (§2.2 "User channel"): `{"auth": {...}, "markets": [], "type": "user"}`. The
condition-id filter is optional (the venue's AsyncAPI for `/ws/user`: "Optionally filter by
market condition IDs"): no filter, so a report about an order in any market reaches us, even one
placed a moment ago. A trade of a market whose fee schedule is not known (an order of another
run or client) has its schedule asked before it is decoded (`learn_fees_of_trades`), for at most
2 s (the reports behind it wait); a fill the venue cannot say the fee of in time is booked with
none and alerted (`fees.unknown_fill`, critical), and its market is asked in the background. So
is the market of an order refused `fees_unknown` and of our open orders and positions found at
reconciliation (`want_fees`): a token restored from the journal that no subscription loads.
After a reconnection, the trades of the gap are fetched (`GET /data/trades`
since shortly before the last frame received) and fed to the decoder like the channel's own
reports (fills, settlements, reversals of trades that FAILED meanwhile): it remembers the fills it
reported, so none is reported twice and none is lost; then a `subscribed` status (`private=True`)
makes the engine reconcile (`execution.open_orders`, `order_status`, `recent_fills`). The market
connection's `subscribed` statuses say `private=False`: they tell nothing about our orders. The
API secret crosses the wire in this message (the venue's design, §2.2); it is registered with the
log redactor and never logged.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

import attrs
import orjson
import structlog
import trio
import trio_websocket

from tradingd.engine.venue import (
    AuthError,
    BookUpdate,
    Connect,
    Decoder,
    FeedStale,
    InstrumentRegistry,
    MalformedFrame,
    MarketEvent,
    PrivateEvent,
    SessionStats,
    StatusKind,
    SubscriptionSource,
    VenueError,
    VenueSession,
    VenueSink,
    default_connect,
)

from .codec import PolymarketDecoder
from .execution import (
    ClobRest,
    FillWatch,
    PolymarketExecution,
    alert_unknown_fees,
    learn_fee_schedule,
    our_addresses,
    trade_tokens,
)
from .instruments import VENUE
from .settings import PolymarketSettings
from .signing import Credentials, OrderSigner

__all__ = ["MarketConnection", "PolymarketSession", "UserConnection"]

_PONG: Final = "PONG"
_BOOKS_BATCH: Final = 50  # tokens per POST /books
_TRADES_MARGIN_S: Final = 60  # trades are recovered from this long before the last frame
_END_CURSOR: Final = "LTE="
_MAX_PAGES: Final = 1000
_FEES_CONCURRENCY: Final = 8  # `GET /clob-markets` requests in flight at once
_FEES_RETRY_S: Final = 30.0  # markets whose fee schedule could not be learned are asked again
# How long a trade's decoding waits for its market's fee schedule (`learn_fees_of_trades`): the
# user channel's reports queue behind it (cancels included), and httpx's timeout is per phase (a
# slow-drip answer never times out). Past it the trade is booked with its fee flagged unknown and
# alerted, and the market is left to `_retry_fees`.
_ON_DEMAND_FEES_S: Final = 2.0


def _frame(raw: bytes) -> bytes:
    """A REST answer as one recording line: compact (a line break would split it)."""
    if b"\n" not in raw and b"\r" not in raw:
        return raw
    try:
        return orjson.dumps(orjson.loads(raw))
    except orjson.JSONDecodeError:
        return raw.replace(b"\r", b" ").replace(b"\n", b" ")  # malformed anyway: the decoder says so


def _batches(items: list[str], n: int) -> Iterable[list[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


class _Connection(VenueSession):
    """What both connections share: the owner, `PING` every `ping_s`, `PONG` counted."""

    venue = VENUE

    def __init__(self, owner: PolymarketSession, **kw: Any) -> None:
        super().__init__(**kw)
        self.owner = owner
        self.settings = owner.settings
        self.pongs = 0

    async def _ping(self, ws: trio_websocket.WebSocketConnection) -> None:
        """§2.2: an application text frame `PING`, not a WebSocket ping."""
        while True:
            await trio.sleep(self.settings.ping_s)
            await ws.send_message("PING")

    async def _send_json(self, obj: Any) -> None:
        ws = self._ws
        if ws is None:
            raise VenueError("not connected", venue=VENUE)
        await ws.send_message(orjson.dumps(obj).decode())

    async def feed(self, raw: bytes, now: int | None = None) -> list[MarketEvent]:
        """A REST answer for the decoder: recorded (`on_frame`), decoded and dispatched like a
        frame. Returns the events (none for a malformed answer, which is counted)."""
        now = self._clock() if now is None else now
        frame = _frame(raw)
        if self.on_frame is not None:
            self.on_frame(now, frame)
        try:
            events = self.decoder.decode(frame, now)
        except MalformedFrame as exc:
            self.malformed(exc)
            if self._fault_books:  # not a frame of the receive loop: report its broken books here
                await self._report_fault_gaps()
            return []
        await self.dispatch(events)
        return events


class MarketConnection(_Connection):
    """`<ws>/market`: the books, trades and market events of the subscribed tokens."""

    def __init__(self, owner: PolymarketSession, **kw: Any) -> None:
        super().__init__(owner, **kw)
        self._current: set[str] = set()  # tokens subscribed on this connection
        self._initial_sent = False
        self._refused: set[str] = set()  # tokens refused (unknown to the venue, over the limit)
        # Before the first `ready`: the tokens of the first subscription whose book has not come
        # from the venue yet, and the event set when the last one has (`_decode_awaiting`).
        self._awaiting: set[str] = set()
        self._books_in = trio.Event()
        # Trio time of the last market message (not `PONG`), or of the subscription that made
        # the connection expect one: what `_watch_market_data` measures silence from.
        self._last_market_rx = 0.0
        self.quiet_probes = 0  # the silences asked about (`_ask_for_a_book`)

    @property
    def assets(self) -> frozenset[str]:
        """The tokens subscribed on the current connection."""
        return frozenset(self._current)

    def _url(self) -> str:
        return self.settings.market_url

    def public_frame(self, message: bytes | str) -> bool:
        # The market channel (§2.2) and the REST answers fed with it (books, market definitions,
        # §2.3 "Public market data") are public: every frame of this connection may be recorded.
        return True

    def _on_connected(self) -> dict[str, Any]:
        return {"channel": "market"}

    async def _serve(self, ws: trio_websocket.WebSocketConnection, nursery: trio.Nursery) -> None:
        self._last_market_rx = trio.current_time()
        nursery.start_soon(self._watch_market_data)
        await self.owner.load_configured_markets(self)
        nursery.start_soon(self._ping, ws)

    async def _watch_market_data(self) -> None:
        """The market-data watchdog (module docstring): with tokens subscribed, no market
        message for `market_stale_after_s` sends a question (`_ask_for_a_book`); no market
        message within `snapshot_timeout_s` of it ends the connection (`FeedStale`), whatever
        `PONG`s came meanwhile; the session's loop reconnects and resubscribes."""
        limit = self.settings.market_stale_after_s
        answer_within = self.settings.snapshot_timeout_s
        tick = min(1.0, limit / 4, answer_within / 4)
        asked_at: float | None = None  # trio time of the question not answered yet
        while True:
            await trio.sleep(tick)
            now = trio.current_time()
            if not self._current:
                self._last_market_rx = now  # nothing asked: nothing to wait for
                asked_at = None
                continue
            if asked_at is not None and self._last_market_rx >= asked_at:
                asked_at = None  # answered (or the market spoke): a quiet market, a live socket
            silent = now - self._last_market_rx
            if asked_at is None:
                if silent > limit:
                    asked_at = now
                    await self._ask_for_a_book(silent)
                continue
            if now - asked_at <= answer_within:
                continue
            self.stats.stale += 1
            self.log.warning(
                "feed.no_market_data",
                silent_s=round(silent, 3),
                asked_s=round(now - asked_at, 3),
                assets=len(self._current),
                pongs=self.pongs,
            )
            await self.status(
                StatusKind.FEED_STALE,
                f"no market data for {silent:.1f} s on {len(self._current)} subscribed assets, "
                f"nor a book {now - asked_at:.1f} s after asking for one (PONGs only)",
                silent_s=round(silent, 3),
                market_data=True,
            )
            raise FeedStale(
                f"no market data for {silent:.1f} s (limit {limit} s) with {len(self._current)} "
                f"assets subscribed, and no answer within {answer_within} s to a subscription",
                venue=VENUE,
            )

    async def _ask_for_a_book(self, silent: float) -> None:
        """The silence's question (module docstring): one subscribed token, in turn, dropped and
        subscribed again with `initial_dump`, which the venue answers with its book."""
        tokens = sorted(self._current)
        token = tokens[self.quiet_probes % len(tokens)]
        self.quiet_probes += 1
        self.log.info("feed.quiet_probe", instrument=token, silent_s=round(silent, 3), assets=len(tokens))
        await self._send_json({"assets_ids": [token], "operation": "unsubscribe"})
        await self._send_json(
            {
                "assets_ids": [token],
                "operation": "subscribe",
                "custom_feature_enabled": self.settings.custom_features,
                "initial_dump": True,
            }
        )
        if token not in self._current:  # the router dropped it meanwhile: it stays dropped
            await self._send_json({"assets_ids": [token], "operation": "unsubscribe"})

    def _reset(self) -> None:
        super()._reset()  # every book starts again from a snapshot
        self._current.clear()
        self._initial_sent = False
        self._awaiting.clear()

    async def _handle(self, message: bytes | str, now: int) -> None:
        if message == _PONG:
            self.pongs += 1
            return
        self._last_market_rx = trio.current_time()
        if self._awaiting:  # only until the first subscription's books are in
            await self._decode_awaiting(message, now)
            return
        await self.decode(message, now)

    async def _decode_awaiting(self, message: bytes | str, now: int) -> None:
        """`decode`, noting the books the venue sent (its answer to the first subscription)."""
        try:
            events = self.decoder.decode(message, now)  # type: ignore[arg-type]
        except MalformedFrame as exc:
            self.malformed(exc)
            return
        for ev in events:
            if isinstance(ev, BookUpdate) and ev.snapshot:
                self._awaiting.discard(ev.instrument)
        if not self._awaiting:
            self._books_in.set()
        await self.dispatch(events)

    def desired_assets(self) -> set[str]:
        """The tokens the router's merged subscriptions ask for (every kind comes from one
        subscription on this venue)."""
        return {instrument for instrument, _ in self.router.merged(VENUE)}

    async def _refuse(self, tokens: Iterable[str], why: str) -> None:
        for token in sorted(tokens):
            if token in self._refused:
                continue
            self._refused.add(token)
            self.stats.refused_channels += 1
            self.log.warning("subscription.refused", instrument=token, reason=why)
            await self.status(
                StatusKind.SUBSCRIPTION_REFUSED, f"{token}: {why}", instrument=token, reason=why
            )

    async def _sync_subscriptions(self) -> None:
        desired = self.desired_assets()
        self._refused &= desired  # a token asked again after it left is tried again
        desired -= self._refused
        limit = self.settings.max_assets_per_connection
        if len(desired) > limit:
            keep = set(sorted(self._current & desired)[:limit])
            keep |= set(sorted(desired - keep)[: limit - len(keep)])
            await self._refuse(
                desired - keep, f"more than {limit} assets on one connection (max_assets_per_connection)"
            )
            desired = keep
        add = desired - self._current
        remove = self._current - desired
        unknown = {t for t in add if self.registry.get(VENUE, t) is None}
        if unknown:
            answered = await self.owner.fetch_books(sorted(unknown), self)
            missing = unknown - answered
            if missing:
                await self._refuse(missing, "the venue has no order book for this token")
                add -= missing
                desired -= missing
            await self.owner.load_markets(self.owner.markets_of(answered), self)
        # Tokens known without their exchange (restored from the order journal, or announced by a
        # `new_market`): their markets' definitions, so that `prepare` can sign their orders (and
        # name them) before they are sent.
        outcomes = self.owner.outcomes
        undefined = {t for t in add - unknown if (o := outcomes.get(t)) is None or o.neg_risk is None}
        if undefined:
            await self.owner.load_markets(self.owner.markets_of(undefined), self)
        confirm = not self._initial_sent and not self.ready.is_set() and bool(desired)
        if not self._initial_sent:
            if desired:
                if confirm:  # before sending: the books may come back before `send` returns
                    self._awaiting = set(desired)
                    self._books_in = trio.Event()
                await self._send_json(
                    {
                        "assets_ids": sorted(desired),
                        "type": "market",
                        "custom_feature_enabled": self.settings.custom_features,
                        "initial_dump": True,
                    }
                )
                self._initial_sent = True
        else:
            if add:
                await self._send_json(
                    {
                        "assets_ids": sorted(add),
                        "operation": "subscribe",
                        "custom_feature_enabled": self.settings.custom_features,
                    }
                )
            if remove:
                await self._send_json({"assets_ids": sorted(remove), "operation": "unsubscribe"})
        self._current = desired
        refresh = self._gaps & self._current
        self._gaps.clear()
        if refresh:
            self.stats.resubscribed_books += len(refresh)
            self.log.info("book.resnapshot", instruments=sorted(refresh))
            await self.owner.fetch_books(sorted(refresh), self)
        late: list[str] = []
        expecting = (add - unknown) - refresh
        if confirm:
            late = await self._await_first_books()
            if late and self._nursery is not None:
                self._nursery.start_soon(self._fetch_missing, set(late))
        elif expecting and self._nursery is not None:
            self._nursery.start_soon(self._await_snapshots, expecting)
        if add or remove:
            extra: dict[str, Any] = {"late_books": late} if late else {}
            await self.status(
                StatusKind.SUBSCRIBED,
                f"{len(self._current)} assets"
                + (f", {len(late)} without their initial book yet" if late else ""),
                channel="market",
                assets=len(self._current),
                private=False,  # market data only: tells nothing of our orders
                **extra,
            )

    async def _await_first_books(self) -> list[str]:
        """The first subscription's books (module docstring): waits until the venue has sent
        one for every token, at most `snapshot_timeout_s`. Returns the tokens still without one
        (sorted; empty when all came)."""
        timeout = self.settings.snapshot_timeout_s
        if self._awaiting:
            with trio.move_on_after(timeout):
                await self._books_in.wait()
        late = sorted(self._awaiting & self._current)
        self._awaiting.clear()
        if late:
            self.log.warning(
                "subscription.books_late", instruments=late, waited_s=timeout, assets=len(self._current)
            )
        return late

    async def _await_snapshots(self, tokens: set[str]) -> None:
        """Books the venue did not snapshot within `snapshot_timeout_s` of subscribing are
        fetched over REST (the initial dump is a request, not a promise)."""
        await trio.sleep(self.settings.snapshot_timeout_s)
        await self._fetch_missing(tokens)

    async def _fetch_missing(self, tokens: set[str]) -> None:
        """A REST snapshot of each of `tokens` still subscribed without a valid book."""
        missing = []
        for token in sorted(tokens & self._current):
            book = self.decoder.book(token)
            if book is None or not book.valid:
                missing.append(token)
        if missing:
            self.log.info("book.snapshot_missing", instruments=missing)
            await self.owner.fetch_books(missing, self)


class UserConnection(_Connection):
    """`<ws>/user`: our orders and trades (module docstring)."""

    def __init__(self, owner: PolymarketSession, **kw: Any) -> None:
        super().__init__(owner, **kw)
        self._fresh = False  # a new connection whose subscription is not reported yet
        self._last_frame_ns: int | None = None
        self._connected_ns: int | None = None
        self._recover_after_s: int | None = None
        self.recovered_trades = 0

    def _url(self) -> str:
        return self.settings.user_url

    def public_frame(self, message: bytes | str) -> bool:
        # Our orders and trades (§2.2 "User channel") and the trades recovered over REST: none of
        # it goes to a recording (engine.venue.session).
        return False

    def _on_session_error(self, exc: BaseException) -> None:
        # The venue answers bad credentials by closing the connection (§2.2 documents no error
        # message): say so plainly, the reconnection loop alone would only say "closed".
        if "auth" in str(exc).lower():
            self.log.error("session.auth_refused", error=str(exc))

    def _on_connected(self) -> dict[str, Any]:
        return {"channel": "user"}

    def _credentials_hint(self, exc: AuthError) -> str | None:
        # A 401 to the L2-signed key check (§2.3, §2.4 L2): the key, secret or passphrase, or the
        # address they belong to. Not a 403: that is also what a restricted region gets.
        if exc.code != 401:
            return None
        return (
            "POLYMARKET_API_KEY, POLYMARKET_API_SECRET and POLYMARKET_API_PASSPHRASE, and that they "
            "belong to POLYMARKET_PRIVATE_KEY's address (or the files their _FILE variables name)"
        )

    async def _serve(self, ws: trio_websocket.WebSocketConnection, nursery: trio.Nursery) -> None:
        api = self.owner.rest.api
        assert api is not None, "a user connection needs the API credentials"
        if not self._started:
            # The venue answers a refused user-channel login only by closing the connection (§2.2
            # documents no message), which says nothing of why: so at start the API key is
            # checked first with an L2-signed `GET /auth/api-keys` (§2.3), whose 401 is refused
            # credentials (engine.venue.session), one clear line instead of reconnecting forever.
            await self.owner.rest.call("GET", "/auth/api-keys", auth=True)
        message = {
            "auth": {"apiKey": api.key, "secret": api.secret, "passphrase": api.passphrase},
            "markets": [],
            "type": "user",
        }
        await ws.send_message(orjson.dumps(message).decode())
        self._connected_ns = self._clock()
        self._fresh = True
        nursery.start_soon(self._ping, ws)

    def _reset(self) -> None:
        # The books are the market connection's: a lost user connection leaves them alone.
        self._gaps.clear()
        self._fresh = False
        last = self._last_frame_ns or self._connected_ns
        if last is not None:
            since = last // 1_000_000_000 - _TRADES_MARGIN_S
            self._recover_after_s = (
                since if self._recover_after_s is None else min(since, self._recover_after_s)
            )

    async def _handle(self, message: bytes | str, now: int) -> None:
        self._last_frame_ns = now
        if message == _PONG:
            self.pongs += 1
            return
        await self.owner.learn_fees_of_trades(message)
        await self.decode(message, now)
        self.owner.alert_unknown_fees()

    async def dispatch(self, events: list[MarketEvent]) -> None:
        await super().dispatch(events)
        self.owner.fills.observe([e for e in events if isinstance(e, PrivateEvent)])

    async def _sync_subscriptions(self) -> None:
        if not self._fresh:
            return  # the user channel follows every market: nothing to change
        self._fresh = False
        if self._recover_after_s is not None:
            await self._recover_trades(self._recover_after_s)
            self._recover_after_s = None
        await self.status(StatusKind.SUBSCRIBED, "user channel: every market", channel="user", private=True)

    async def _recover_trades(self, after_s: int) -> None:
        """The trades reported while disconnected (`GET /data/trades?after=`, every page), fed to
        the decoder: fills it already reported are not reported again."""
        cursor = "MA=="
        for _ in range(_MAX_PAGES):
            raw = await self.owner.rest.call(
                "GET", "/data/trades", params={"after": str(after_s), "next_cursor": cursor}, auth=True
            )
            await self.owner.learn_fees_of_trades(raw)
            await self.feed(raw)  # a page that is not one is counted as malformed there
            self.owner.alert_unknown_fees()
            try:
                page = orjson.loads(raw)
                cursor = page.get("next_cursor") or _END_CURSOR
                data = page.get("data") or ()
            except (orjson.JSONDecodeError, AttributeError):
                return
            if not isinstance(cursor, str) or not isinstance(data, list | tuple):
                return  # not a page (§2.3 `{"data": [...], "next_cursor": "..."}`): no next one
            self.recovered_trades += len(data)
            if cursor == _END_CURSOR:
                break
        self.log.info("trades.recovered", after=after_s, trades=self.recovered_trades)


class PolymarketSession:
    """A `LiveVenue` for Polymarket (module docstring). `execution()` is the client that trades
    (it needs `credentials` with API keys); market data alone needs none."""

    venue = VENUE

    def __init__(
        self,
        settings: PolymarketSettings,
        *,
        registry: InstrumentRegistry,
        router: SubscriptionSource,
        sink: VenueSink,
        credentials: Credentials | None = None,
        connect: Connect = default_connect,
        http: Any = None,
        clock: Callable[[], int] = time.time_ns,
        rng: random.Random | None = None,
        log: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.sink = sink
        self.credentials = credentials
        self.clock = clock
        self.log = (log or structlog.get_logger("tradingd.polymarket")).bind(venue=VENUE)
        api = credentials.api if credentials is not None else None
        self.signer: OrderSigner | None = (
            credentials.signer(chain_id=settings.chain_id) if credentials is not None else None
        )
        # Our maker orders in a trade are known by our API key or by our addresses (codec.py).
        self.decoder: PolymarketDecoder = PolymarketDecoder(
            registry, api_key=api.key if api else None, addresses=our_addresses(self.signer)
        )
        self.outcomes = self.decoder.outcomes
        self.rest = ClobRest(
            settings.http_url,
            api=api,
            address=self.signer.address if self.signer is not None else None,
            timeout_s=settings.request_timeout_s,
            client=http,
            clock=clock,
            log=self.log,
        )
        self.fills = FillWatch()
        decoder: Decoder = self.decoder
        common: dict[str, Any] = {
            "decoder": decoder,
            "registry": registry,
            "router": router,
            "sink": sink,
            "connect": connect,
            "clock": clock,
            "rng": rng,
            "reconnect_base_s": settings.reconnect_base_s,
            "reconnect_cap_s": settings.reconnect_cap_s,
            "stale_after_s": settings.stale_after_s,
            "log": log,
        }
        self.market = MarketConnection(self, **common)
        self.user = UserConnection(self, **common) if api is not None and settings.private else None
        self.ready = trio.Event()
        self._on_frame: Callable[[int, bytes | str], None] | None = None
        self._execution: PolymarketExecution | None = None
        self._loaded_markets: set[str] = set()
        self._fee_markets: set[str] = set()  # markets whose fee schedule was asked for
        self._fee_failed: set[str] = set()  # on-demand learning failed: `_retry_fees` asks again
        self._fees_wake = trio.Event()  # a market wanted now (`want_fees`): `_retry_fees` asks
        self._configured_loaded = False
        self.heartbeats_sent = 0
        self._heartbeat_id = ""  # the venue's dead-man chain (`_order_heartbeats`), kept across its restarts

    # -- LiveVenue -------------------------------------------------------------------------------
    @property
    def on_frame(self) -> Callable[[int, bytes | str], None] | None:
        return self._on_frame

    @on_frame.setter
    def on_frame(self, hook: Callable[[int, bytes | str], None] | None) -> None:
        """Both connections' frames (and the REST answers they feed the decoder) go to `hook`."""
        self._on_frame = hook
        for connection in self.connections:
            connection.on_frame = hook

    @property
    def connections(self) -> tuple[_Connection, ...]:
        return (self.market,) if self.user is None else (self.market, self.user)

    # What the daemon's status file and watchdog read of every live venue.
    @property
    def connected(self) -> bool:
        """Both connections up (the market one alone in paper mode)."""
        return all(c.connected for c in self.connections)

    @property
    def stats(self) -> SessionStats:
        """Both connections' counters, added up (each has its own: `market.stats`, `user.stats`),
        with the REST API's requests refused for rate (`ClobRest.rate_limited`) and left without
        an answer in time (`ClobRest.request_timeouts`)."""
        total = SessionStats()
        for connection in self.connections:
            for field in attrs.fields(SessionStats):
                setattr(total, field.name, getattr(total, field.name) + getattr(connection.stats, field.name))
        total.rate_limited += self.rest.rate_limited
        total.timeouts += self.rest.request_timeouts
        return total

    @property
    def last_frame_age_s(self) -> float | None:
        """The older of the connections' last frames (PONGs count: a quiet market is not stale)."""
        ages = [c.last_frame_age_s for c in self.connections]
        return None if any(a is None for a in ages) else max(a for a in ages if a is not None)

    @property
    def channels(self) -> frozenset[str]:
        """What is subscribed: the market connection's tokens, and `user` once it follows our
        orders."""
        user = (
            {"user"} if self.user is not None and self.user.ready.is_set() and self.user.connected else set()
        )
        return self.market.assets | user

    def book_counters(self) -> dict[str, int]:
        """Price changes for tokens that never had a book (reported once each, then counted)."""
        return {"bookless_changes": self.decoder.bookless_changes}

    def execution_counters(self) -> dict[str, int]:
        e = self._execution
        if e is None:
            return {}
        return {"trades_refused": e.trades_refused, "orders_refused": e.orders_refused,
                "balances_unknown": e.balances_unknown}  # fmt: skip

    def execution(self) -> PolymarketExecution:
        """The execution client (one per session: it holds the orders signed by `prepare`)."""
        if self._execution is None:
            if self.signer is None or self.rest.api is None:
                raise AuthError(
                    "trading on Polymarket needs POLYMARKET_PRIVATE_KEY and the API key, secret and "
                    "passphrase (POLYMARKET_API_KEY, _SECRET, _PASSPHRASE)",
                    venue=VENUE,
                )
            s = self.settings
            self._execution = PolymarketExecution(
                self.rest,
                self.signer,
                self.registry,
                self.outcomes,
                fills=self.fills,
                decoder=self.decoder,
                report=self.sink.private,
                order_rate=s.order_rate,
                order_burst=s.order_burst,
                fill_wait_s=s.fill_wait_s,
                clock=self.clock,
                log=self.log,
            )
            self._execution.want_fees = self.want_fees
            self._execution.learn_trade_fees = self.learn_fees_of_trades
        return self._execution

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep both connections up until cancelled; `ready` once each is subscribed."""
        # Beside the connections, not on one: an unexpected exception out of either task is a
        # fault of the market connection's session (counted, alerted), the task restarted.
        supervise = self.market.supervise
        try:
            async with trio.open_nursery() as nursery:
                for connection in self.connections:
                    await nursery.start(connection.run)
                nursery.start_soon(self._await_ready)
                if self.user is not None and self.settings.order_heartbeat_s > 0:
                    # Restarted within one heartbeat's interval: a backoff growing to its cap
                    # would let the venue's dead-man switch cancel every open order meanwhile.
                    heartbeats = functools.partial(
                        supervise,
                        self._order_heartbeats,
                        what="order_heartbeats",
                        max_delay=self.settings.order_heartbeat_s,
                    )
                    nursery.start_soon(heartbeats)
                nursery.start_soon(functools.partial(supervise, self._retry_fees, what="retry_fees"))
                task_status.started()
        finally:
            with trio.move_on_after(1.0, shield=True):
                await self.rest.aclose()

    async def _await_ready(self) -> None:
        for connection in self.connections:
            await connection.ready.wait()
        self.ready.set()

    async def _order_heartbeats(self) -> None:
        """`POST /v1/heartbeats` (§2.3): the venue's dead-man switch for our open orders. The
        chain's id is the session's (`_heartbeat_id`), kept when a fault restarts this task."""
        while True:
            try:
                raw = await self.rest.call(
                    "POST",
                    "/v1/heartbeats",
                    body=orjson.dumps({"heartbeat_id": self._heartbeat_id}),
                    auth=True,
                )
                answer = orjson.loads(raw)
                self._heartbeat_id = str(answer.get("heartbeat_id") or "") if isinstance(answer, dict) else ""
                self.heartbeats_sent += 1
            except VenueError as exc:
                self.log.warning("heartbeat.failed", error=str(exc))
            except orjson.JSONDecodeError:
                self.log.warning("heartbeat.unreadable_answer")
            await trio.sleep(self.settings.order_heartbeat_s)

    # -- what the connections ask of the REST side --------------------------------------------
    async def fetch_books(self, tokens: list[str], via: _Connection) -> set[str]:
        """Snapshots of `tokens` fed to the decoder through `via` (§2.3): one token by `GET
        /book` (a book gap), several by `POST /books` in batches. Returns the tokens the venue
        answered for; a batch the venue refuses is asked token by token, so that one bad token
        does not hide the others."""
        answered: set[str] = set()
        for batch in _batches(tokens, _BOOKS_BATCH):
            if len(batch) > 1:
                body = orjson.dumps([{"token_id": t} for t in batch])
                try:
                    raw = await self.rest.call("POST", "/books", body=body)
                except VenueError as exc:
                    self.log.warning("books.batch_failed", tokens=len(batch), error=str(exc))
                else:
                    answered |= _assets(await via.feed(raw), raw)
                    continue
            for token in batch:
                try:
                    raw = await self.rest.call("GET", "/book", params={"token_id": token}, instrument=token)
                except VenueError as one:
                    self.log.warning("book.unavailable", instrument=token, error=str(one))
                    continue
                answered |= _assets(await via.feed(raw), raw)
        return answered

    def markets_of(self, tokens: Iterable[str]) -> set[str]:
        """The condition ids of `tokens` (as their books or definitions say)."""
        out = set()
        for token in tokens:
            book = self.decoder.book(token)
            if book is not None and book.market:
                out.add(book.market)
                continue
            inst = self.registry.get(VENUE, token)
            if inst is not None and inst.base:
                out.add(inst.base)
        return out

    async def load_markets(self, condition_ids: Iterable[str], via: _Connection) -> int:
        """Definitions of markets not loaded yet (`GET /markets/{condition_id}`, §2.3): both
        tokens, their outcomes, whether they accept orders; and, alongside, the fee schedule of
        every one of `condition_ids` not known yet (`learn_fees`), so that it is known before
        the market's first order. Returns how many definitions were loaded."""
        wanted = set(condition_ids)
        n = 0
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.learn_fees, wanted)
            for cid in sorted(wanted - self._loaded_markets):
                try:
                    raw = await self.rest.call("GET", f"/markets/{cid}")
                except VenueError as exc:
                    self.log.warning("market.unavailable", market=cid, error=str(exc))
                    continue
                self._loaded_markets.add(cid)
                await via.feed(raw)
                n += 1
        return n

    def _fees_unknown(self, condition_id: str) -> bool:
        outcomes = self.outcomes.of_market(condition_id)
        return not outcomes or any(o.fees is None for o in outcomes)

    async def learn_fees(self, condition_ids: Iterable[str]) -> int:
        """The fee schedules of the markets among `condition_ids` whose schedule is not known
        (`GET /clob-markets/{condition_id}`, `execution.learn_fee_schedule`), asked
        concurrently: the CLOB `/markets` objects carry none, and the execution refuses orders
        in a market without one (never asking on the order path, where a request would hold up
        the gateway's queue, cancels included). A market that could not be learned is asked
        again every `_FEES_RETRY_S` (`_retry_fees`). Returns how many were learned."""
        unknown = sorted(c for c in set(condition_ids) if c and self._fees_unknown(c))
        self._fee_markets.update(unknown)
        if not unknown:
            return 0
        learned = 0
        limiter = trio.CapacityLimiter(_FEES_CONCURRENCY)

        async def one(cid: str) -> None:
            nonlocal learned
            async with limiter:
                if await learn_fee_schedule(
                    self.rest, self.registry, self.outcomes, condition_id=cid, log=self.log
                ):
                    learned += 1

        async with trio.open_nursery() as nursery:
            for cid in unknown:
                nursery.start_soon(one, cid)
        return learned

    async def _retry_fees(self) -> None:
        """In the background: every `_FEES_RETRY_S`, or at once when a market is wanted
        (`want_fees`), the schedules still unknown among those asked for."""
        while True:
            with trio.move_on_after(_FEES_RETRY_S):
                await self._fees_wake.wait()
            self._fees_wake = trio.Event()
            await self.learn_fees(c for c in self._fee_markets if self._fees_unknown(c))

    def want_fees(self, tokens: Iterable[str]) -> None:
        """The markets of `tokens` whose schedule is unknown are learned in the background
        (`_retry_fees`, woken at once for a market not asked for yet): an order refused with
        `fees_unknown` (a token restored from the journal, whose market no subscription loads),
        and the tokens of our open orders and positions the reconciliation finds."""
        new = False
        for token in tokens:
            outcome = self.outcomes.get(token)
            if outcome is not None and outcome.fees is not None:
                continue
            for cid in self.markets_of([token]) | ({outcome.condition_id} if outcome else set()):
                if cid and cid not in self._fee_markets and self._fees_unknown(cid):
                    self._fee_markets.add(cid)
                    new = True
        if new:
            self._fees_wake.set()

    async def learn_fees_of_trades(self, raw: bytes | str) -> None:
        """Before our trades are decoded (the user channel's `trade` events, a `GET
        /data/trades` page): the schedules of their markets that are not known (a fill of an
        order this session did not place: a restart's, another client's), so that their fills
        are booked at the fee the venue charged. Bounded (`_ON_DEMAND_FEES_S`): every report
        behind this one waits for it. A market that could not be learned so (the venue slow or
        failing) is not asked here again: its trades are booked with their fee flagged unknown
        (alerted), and `_retry_fees` asks it in the background."""
        # Every trade carries `taker_order_id` and `maker_orders` (§2.2 "trade", §2.3 trades);
        # an order report carries neither (its `associate_trades` matched a plain b"trade").
        if isinstance(raw, bytes):
            if b"maker_orders" not in raw and b"taker_order_id" not in raw:
                return  # no trade in it: the common case, without parsing the frame
        elif "maker_orders" not in raw and "taker_order_id" not in raw:
            return
        markets: set[str] = set()
        for token, market in trade_tokens(raw).items():
            outcome = self.outcomes.get(token)
            if outcome is not None and outcome.fees is not None:
                continue
            markets |= {market} if market else self.markets_of([token])
            if outcome is not None:
                markets.add(outcome.condition_id)
        markets = {m for m in markets if m and m not in self._fee_failed}
        if not markets:
            return
        with trio.move_on_after(_ON_DEMAND_FEES_S) as waited:
            await self.learn_fees(markets)
        failed = {m for m in markets if self._fees_unknown(m)}
        if failed:
            self._fee_failed |= failed
            self._fee_markets |= failed
            self.log.warning(
                "fees.on_demand_failed",
                markets=sorted(failed),
                timed_out=waited.cancelled_caught,
                action="booked with the fee flagged unknown; asked again in the background",
            )

    def alert_unknown_fees(self) -> None:
        """Alert the fills booked with no fee because their market's schedule is unknown."""
        alert_unknown_fees(self.decoder, self.log)

    async def load_configured_markets(self, via: _Connection) -> None:
        """The `markets` of the settings, once per session."""
        if self._configured_loaded:
            return
        await self.load_markets(self.settings.markets, via)
        self._configured_loaded = True
        self.log.info("instruments.loaded", markets=len(self._loaded_markets), known=len(self.registry))

    def __repr__(self) -> str:
        return f"PolymarketSession({self.settings.url}, trading={self.user is not None})"


def _assets(events: list[MarketEvent], raw: bytes) -> set[str]:
    """The tokens a books answer covered: those it produced events for, or (an empty book
    answer produces a snapshot too) named in it."""
    found = {e.instrument for e in events if e.instrument}
    if found:
        return found
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return set()
    items = obj if isinstance(obj, list) else [obj]
    return {str(i["asset_id"]) for i in items if isinstance(i, dict) and "asset_id" in i}
