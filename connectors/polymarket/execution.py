"""Polymarket execution: signed CLOB V2 orders over REST (VENUES.md §2.3-§2.6).

Two parts:

- `ClobRest`, the one place httpx is used (one `AsyncClient` per session: HTTP/1.1 keep-alive,
  the settings' timeout). Every authenticated call carries the L2 headers, an HMAC over the exact
  bytes sent (§2.4). Failures are typed: nothing sent (could not connect) is `VenueUnavailable`;
  sent but no answer (timeout, connection lost) is `VenueError` with the outcome unknown; a 429 is
  `RateLimited`; a 401 is `AuthError` (`Unauthorized/Invalid api key`); other 4xx are the
  venue's refusal (`OrderRejected` for order requests, which are then known not to be placed);
  5xx is `VenueError` (outcome unknown: an order is never sent again). The venue's passing
  states: HTTP 425 (the matching engine restarting, "on all order-related endpoints ... retry
  with exponential backoff", docs.polymarket.com/trading/matching-engine) and 503 (trading
  disabled, or cancel-only, docs.polymarket.com/resources/error-codes) are asked again after
  `retry_delays_s` (1, 2, 4 s) for every request that changes nothing (reads, heartbeats). An
  order request (place, cancel) is never sent again: answered 425, or 503 with one of the
  venue's documented bodies (`{"error": "Trading is currently disabled. ..."}`: "No orders
  (including cancels) are accepted"; `{"error": "Trading is currently cancel-only. ..."}`: "New
  orders are not accepted"), it was not processed, which is the venue's word: a refusal
  (`VenueRejected`, code `too_early`, `trading_disabled` or `cancel_only`, with the venue's
  message); a 503 with any other body leaves its outcome unknown (`VenueError`), for the user
  channel or the reconciliation to settle. An HTML page instead of the CLOB's JSON is said in
  one line naming its title and Cloudflare Ray ID, never as its markup: a 403 page is
  Cloudflare's firewall block (py-clob-client #101, #262; `rest.blocked`), the request never
  reached the CLOB (an order refused); a 5xx page (Cloudflare's 524 "A timeout occurred", 502,
  ...) comes from past the firewall, the CLOB may have had the request (`rest.html_page`; an
  order's outcome unknown).
- `PolymarketExecution`, the engine's `ExecutionClient`. An order is validated against its
  token (tick, price range, minimum size, 2-decimal sizes; `signing.check_order`) and signed in
  `prepare` (the gateway registers the order id, the EIP-712 digest, before the order leaves, so
  a user-channel report that outruns the REST answer is matched), then posted by `place`.

Time in force (engine -> Polymarket `orderType`): GTC -> GTC, GTD -> GTD, IOC -> FAK, FOK -> FOK.
A GTD order's `expiration` is the engine's `expire_at_ns` plus the venue's one-minute security
threshold (the venue expires GTD orders a minute before their stated expiration), and must be at
least three minutes ahead (the venue refuses sooner ones). Market orders do not exist on the
CLOB: an engine market order is a FAK (or FOK, when asked) limit order at the worst price the
venue accepts (1 - tick to buy, tick to sell). Refused before signing: post-only with FAK/FOK
(the venue refuses it, `INVALID_POST_ONLY_ORDER_TYPE`), a market GTD order, and a reduce-only
buy (there are no short positions to reduce; a reduce-only sell is what every sell is). There is
no amendment: `edit` raises `OrderRejected` (cancel and place again).

Reconciliation (the engine's, after each (re)subscription and so after a restart): `open_orders`
(`GET /data/orders`), `order_status` (`GET /data/order/{id}`, or the order's trades when the venue
no longer holds it), `recent_fills` (`GET /data/trades?after=`; a trade found FAILED, whose fill
may have been booked, is taken back with a `FillReversal` through `report`), `cancel_by_order_id`
(a foreign order, `DELETE /order`), `venue_positions` (`GET /balance-allowance`, CONDITIONAL: the
shares held, which the engine compares with its positions and alerts when they differ).

Fees: an order is refused (`OrderDenied`, code `fees_unknown`) in a market whose V2 fee schedule
is not known, for its fills could not be booked at the venue's fee (`fees.py`). The session
learns each market's schedule when it loads it (`learn_fee_schedule`, `stream.py`), never on
the order path: a request in the gateway holds up every request behind it, cancels included.

Answers: `POST /order` success with status `live` is an open order; `matched` waits up to
`fill_wait_s` for the user channel's fills of what matched, so that the strategy sees the fills
before the order's final state, then reports filled, partially filled (the rest rests), or, for
FAK, cancelled with what matched (the answer's amount, or every fill in); a FAK whose answer does
not say how much matched and whose fills fall short is an outcome unknown
(`OrderOutcomeUnknown` `matched_amount_unknown`, naming the venue's id: the engine takes the id,
holds the order open, acknowledged, and asks the venue), never cancelled with what arrived;
`delayed` / `unmatched` are open with that remark. The fills themselves only ever come from the
user channel (`codec.py`).
"""

from __future__ import annotations

import collections
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from urllib.parse import quote

import attrs
import httpx
import msgspec
import orjson
import structlog
import trio

from tradingd.engine.venue import (
    AuthError,
    CreditBucket,
    Fill,
    Holdings,
    InstrumentRegistry,
    MalformedFrame,
    Order,
    OrderDenied,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderState,
    OrderUpdate,
    PrivateEvent,
    RateLimited,
    Side,
    TimeInForce,
    VenueError,
    VenueExecution,
    VenueRejected,
    VenueUnavailable,
)

from .codec import PolymarketDecoder, RefusedRecord, _classify, decode_open_orders, decode_order
from .instruments import VENUE, FeeSchedule, Outcome, Outcomes
from .signing import (
    ApiCredentials,
    OrderSigner,
    OrderType,
    SignedOrder,
    cancel_body,
    cancel_market_body,
    l2_headers,
    order_body,
    order_type_for,
)

__all__ = [
    "ClobRest",
    "FillWatch",
    "PolymarketExecution",
    "alert_unknown_fees",
    "learn_fee_schedule",
    "map_http_error",
    "our_addresses",
    "trade_tokens",
]

_INITIAL_CURSOR: Final = "MA=="  # §2.3: base64 "0"
_END_CURSOR: Final = "LTE="  # base64 "-1"
_MAX_PAGES: Final = 1000
_GTD_THRESHOLD_S: Final = 60  # the venue expires GTD orders a minute before `expiration`
_GTD_MIN_AHEAD_S: Final = 180  # and refuses an `expiration` less than three minutes ahead
_TRADES_MARGIN_S: Final = 60  # an order's trades are looked for from this long before it was made
_WHAT_TEXT: Final = 200  # characters of a request's method and path said in an error (a path may be huge)
_ERROR_CODE: Final = re.compile(r"^[A-Z][A-Z0-9_]+$")  # `INVALID_ORDER_MIN_SIZE`, ... (§2.3)
_IMMEDIATE: Final = frozenset({OrderType.FOK, OrderType.FAK})
# The reason an immediate order answered "matched" by an amount not said is open with
# (`OrderFlow.acknowledged`); `order_status` reads the venue's silence about it as no word.
MATCHED_AMOUNT_UNKNOWN: Final = "matched, amount unknown"
_SHARE_UNITS: Final = Decimal(1_000_000)  # a balance's units per share (6 decimals)
_ON_DEMAND_FEES_S: Final = 2.0  # a page of trades waits this long at most for fee schedules
_BALANCE_CONCURRENCY: Final = 4  # `GET /balance-allowance` requests in flight at once


def our_addresses(signer: OrderSigner | None) -> tuple[str, ...]:
    """The addresses a trade names our maker orders by (`maker_address`, VENUES.md §2.2): the
    funder our orders move funds of, and the key's own address (with EOA they are one)."""
    if signer is None:
        return ()
    return tuple(dict.fromkeys((signer.maker, signer.signer, signer.address)))


def _text(body: bytes) -> str:
    """The venue's error message in an answer: `{"error": ...}`, `errorMsg`, or the raw text."""
    try:
        obj = orjson.loads(body)  # depth-bounded, unlike msgspec's untyped decoder (codec.py)
    except orjson.JSONDecodeError:
        return body[:200].decode("utf-8", "replace").strip()
    if isinstance(obj, dict):
        for key in ("error", "errorMsg", "message"):
            value = obj.get(key)
            if value:
                return value if isinstance(value, str) else msgspec.json.encode(value).decode()
    return body[:200].decode("utf-8", "replace").strip()


_TITLE: Final = re.compile(rb"<title>\s*(.*?)\s*</title>", re.IGNORECASE | re.DOTALL)
_RAY_ID: Final = re.compile(rb"Ray ID:\s*(?:<[^>]*>\s*)*([0-9a-fA-F]+)")
# The venue's passing states (module docstring): asked again when nothing could change by it.
_PASSING: Final = frozenset({425, 503})
# The bodies of a 503 the venue documents (docs.polymarket.com/resources/error-codes), by the
# words they start with, and the refusal's code.
_PAUSES: Final = (
    ("Trading is currently disabled", "trading_disabled"),
    ("Trading is currently cancel-only", "cancel_only"),
)


def html_page(body: bytes) -> tuple[str, str] | None:
    """(title, Cloudflare Ray ID or "") of an HTML page answered instead of the CLOB's JSON (a
    Cloudflare block: `Attention Required! | Cloudflare`); None for anything else."""
    head = body[:512].lstrip().lower()
    if not head.startswith((b"<!doctype html", b"<html")):
        return None
    title = _TITLE.search(body)
    ray = _RAY_ID.search(body)
    return (
        title.group(1).decode("utf-8", "replace") if title else "(untitled)",
        ray.group(1).decode() if ray else "",
    )


def _documented_pause(body: bytes) -> tuple[str, str] | None:
    """(code, the venue's message) of a 503 answered with one of the bodies the venue documents
    for a trading pause (docs.polymarket.com/resources/error-codes, "Global Errors"): trading
    disabled ("No orders (including cancels) are accepted") or cancel-only ("New orders are not
    accepted, but cancels are allowed"); None for any other body (an HTML page, an unknown
    error), whose request may have been processed."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    error = obj.get("error") if isinstance(obj, dict) else None
    if not isinstance(error, str):
        return None
    for prefix, code in _PAUSES:
        if error.startswith(prefix):
            return code, error
    return None


def map_http_error(
    status: int, body: bytes, *, what: str, order: bool = False, instrument: str | None = None
) -> VenueError:
    """A non-200 answer as the typed exception callers catch (module docstring). `order`: the
    request asked for an order change, so a refusal is `VenueRejected` (an `OrderRejected`: known
    not done): any 4xx (a 403 HTML page is Cloudflare's block, before the CLOB), a 425 (the
    matching engine restarting: not processed) and a 503 with the venue's documented body of a
    trading pause. Any other 5xx, HTML pages included, leaves an order's outcome unknown."""
    page = html_page(body)
    if page is not None:  # said by its title and Ray ID, never by its markup
        title, ray = page
        message = f"an HTML page {title!r}" + (f" (Cloudflare Ray ID {ray})" if ray else "")
        if status == 403:
            # Cloudflare's firewall (`Attention Required! | Cloudflare`): the CLOB never saw it.
            detail = f"{what}: HTTP 403: blocked before the CLOB: {message}"
        else:
            detail = f"{what}: HTTP {status}: {message}"
    else:
        message = _text(body)
        detail = f"{what}: HTTP {status}: {message}"
    context: dict[str, Any] = {"venue": VENUE, "instrument": instrument}
    if order and status == 425:
        return VenueRejected(
            f"{detail} (the matching engine is restarting: the request was not processed)",
            code="too_early",
            venue_message=message,
            **context,
        )
    pause = _documented_pause(body) if status == 503 else None
    if order and pause is not None:
        code, words = pause
        return VenueRejected(
            f"{detail} (the venue is not trading: the request was not processed)",
            code=code,
            venue_message=words,
            **context,
        )
    if status in _PASSING and not order:
        state = "the matching engine is restarting" if status == 425 else "the venue is not trading"
        if status >= 500:
            state += "; outcome unknown"  # as every 5xx says
        return VenueError(f"{detail} ({state})", code=status, venue_message=message, **context)
    if status == 429:
        return RateLimited(detail, code=429, venue_message=message, **context)
    if order and 400 <= status < 500:
        return VenueRejected(detail, code=status, venue_message=message, **context)
    if status in (401, 403):
        return AuthError(detail, code=status, venue_message=message, **context)
    return VenueError(
        detail + ("; outcome unknown" if status >= 500 else ""), code=status, venue_message=message, **context
    )


class ClobRest:
    """The CLOB's REST API (module docstring). `api` and `address` (the signer's EOA) make the L2
    headers; without them only public calls can be made. `client` is injected in tests (an
    `httpx.AsyncClient` on an ASGI or mock transport); otherwise one is made for `base_url`."""

    def __init__(
        self,
        base_url: str,
        *,
        api: ApiCredentials | None = None,
        address: str | None = None,
        timeout_s: float = 10.0,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], int] = time.time_ns,
        retry_delays_s: Sequence[float] = (1.0, 2.0, 4.0),
        log: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry_delays_s = tuple(retry_delays_s)  # 425 / 503 to a request that changes nothing
        self.log = (log or structlog.get_logger("tradingd.polymarket")).bind(venue=VENUE)
        self.api = api
        self.address = address
        self._owned = client is None
        self.client = client or httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s),
            headers={"Accept": "application/json", "User-Agent": "tradingd"},
        )
        self.clock = clock
        self.requests = 0
        self.rate_limited = 0  # requests answered 429 (the venue's `rate_limited` counter)
        # Requests sent with no answer in time (the venue's `request_timeouts`, as a JSON-RPC
        # venue's `timeouts`); not reaching the venue (nothing sent) is not one.
        self.request_timeouts = 0

    async def aclose(self) -> None:
        if self._owned:
            await self.client.aclose()

    @property
    def authenticated(self) -> bool:
        return self.api is not None and self.address is not None

    def headers(self, method: str, path: str, body: bytes | None) -> dict[str, str]:
        """The L2 headers of one request (§2.4): HMAC over `timestamp + METHOD + path + body`."""
        if self.api is None or self.address is None:
            raise AuthError(f"{method} {path}: needs the API credentials (L2)", venue=VENUE)
        return l2_headers(
            self.api,
            self.address,
            method=method,
            path=path,
            body=body,
            timestamp=self.clock() // 1_000_000_000,
        )

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        auth: bool = False,
        order: bool = False,
        instrument: str | None = None,
    ) -> bytes:
        """One request; the raw JSON of a 200 answer. Raises as the module docstring says: a
        request that changes nothing (`order` false) answered 425 or 503 is asked again after
        each of `retry_delays_s`; an order request never is."""
        what = f"{method} {path}"
        delays = () if order else self.retry_delays_s
        for delay in (*delays, None):
            try:
                return await self._once(method, path, what, params, body, auth, order, instrument)
            except VenueError as exc:
                if delay is None or exc.code not in _PASSING:
                    raise
                self.log.warning("rest.retry", request=what, status=exc.code, in_s=delay, error=str(exc))
                await trio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(
        self,
        method: str,
        path: str,
        what: str,
        params: Mapping[str, str] | None,
        body: bytes | None,
        auth: bool,
        order: bool,
        instrument: str | None,
    ) -> bytes:
        headers = self.headers(method, path, body) if auth else {}  # signed anew: a fresh timestamp
        if body is not None:
            headers["Content-Type"] = "application/json"
        self.requests += 1
        try:
            response = await self.client.request(
                method, self.base_url + path, params=params, content=body, headers=headers
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise VenueUnavailable(
                f"{what}: cannot reach the venue ({type(exc).__name__}); nothing was sent",
                venue=VENUE,
                instrument=instrument,
            ) from None
        except (httpx.InvalidURL, UnicodeEncodeError) as exc:
            # A path or parameter the venue gave us (a market id in a trade, a token id) that
            # makes no URL: control characters, an unpaired surrogate, too long. httpx refuses
            # it before sending; the venue's word, never an exception out of the session's tasks
            # (the fee learning of a user channel trade, the catch-up, the background retries).
            raise VenueUnavailable(
                f"{what[:_WHAT_TEXT]}: no request can be made of it ({type(exc).__name__}); nothing was sent",
                venue=VENUE,
                instrument=instrument,
            ) from None
        except httpx.TimeoutException as exc:
            self.request_timeouts += 1
            raise VenueError(
                f"{what}: no answer in time ({type(exc).__name__}); outcome unknown",
                venue=VENUE,
                instrument=instrument,
                code="timeout",
            ) from None
        except httpx.HTTPError as exc:
            raise VenueError(
                f"{what}: connection lost ({type(exc).__name__}: {exc}); outcome unknown",
                venue=VENUE,
                instrument=instrument,
                code="lost",
            ) from None
        if response.status_code != 200:
            if response.status_code == 429:
                self.rate_limited += 1
            error = map_http_error(
                response.status_code, response.content, what=what, order=order, instrument=instrument
            )
            page = html_page(response.content)
            if page is not None:  # one clear line, never the page's markup
                blocked = response.status_code == 403
                self.log.error(
                    "rest.blocked" if blocked else "rest.html_page",
                    request=what,
                    status=response.status_code,
                    page=page[0],
                    ray_id=page[1] or None,
                    hint=(
                        "an HTML page instead of the CLOB's JSON: Cloudflare's firewall refused "
                        "the request (a restricted region or a flagged IP); it never reached the CLOB"
                    )
                    if blocked
                    else "an HTML error page instead of the CLOB's JSON, from past Cloudflare's "
                    "firewall: the CLOB may have received the request"
                    + ("; outcome unknown" if order and response.status_code >= 500 else ""),
                )
            raise error
        return response.content


# -- answers ---------------------------------------------------------------------------------


class _OrderAnswer(msgspec.Struct):
    """`POST /order` (§2.3; fields beyond `success`/`orderID`/`errorMsg` are [U])."""

    success: bool = False
    orderID: str | None = None  # the venue's field names
    errorMsg: str | None = None
    status: str | None = None
    makingAmount: str | float | None = None
    takingAmount: str | float | None = None


class _CancelAnswer(msgspec.Struct):
    canceled: list[str] = []
    not_canceled: dict[str, str] = {}


class _NegRisk(msgspec.Struct):
    neg_risk: bool


class _FeeDetails(msgspec.Struct):
    """`fd` of `GET /clob-markets/{condition_id}`: the market's V2 fee schedule as
    `py-clob-client-v2` reads it (`get_clob_market_info`: rate `r`, exponent `e`; `to` taker
    only, per third-party reads of the same object [T])."""

    r: float | str = 0
    e: float | str = 1
    to: bool = True


class _Balance(msgspec.Struct):
    """`GET /balance-allowance` (§2.3; `{"balance": "1000000000", "allowance": ...}`, the
    captured answer in tests/fixtures/polymarket)."""

    balance: str | int


class _ClobToken(msgspec.Struct):
    t: str


class _ClobMarket(msgspec.Struct):
    t: list[_ClobToken]
    fd: _FeeDetails | None = None


_decode_order_answer: Final = msgspec.json.Decoder(_OrderAnswer, strict=False).decode
_decode_cancel_answer: Final = msgspec.json.Decoder(_CancelAnswer, strict=False).decode
_decode_neg_risk: Final = msgspec.json.Decoder(_NegRisk).decode
_decode_clob_market: Final = msgspec.json.Decoder(_ClobMarket).decode
_decode_balance: Final = msgspec.json.Decoder(_Balance).decode


def trade_tokens(raw: bytes | str) -> dict[str, str]:
    """The tokens of our trades and their maker orders, each with its market's condition id (""
    when the trade does not say), in a `GET /data/trades` page or a user-channel frame (one
    event or an array of them, §2.2); nothing for anything else (the decoder says what is wrong
    with it)."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    if isinstance(obj, dict):
        data = obj.get("data")
        items = data if isinstance(data, list) else [obj]
    else:
        items = obj if isinstance(obj, list) else []
    tokens: dict[str, str] = {}
    for item in items:
        # What the decoder reads it as: an order report without `event_type` is no trade.
        if not isinstance(item, dict) or (item.get("event_type") or _classify(item)) != "trade":
            continue
        market = str(item.get("market") or "")
        makers = item.get("maker_orders")  # a list, unless the trade is one the decoder refuses
        legs = [item, *(m for m in makers if isinstance(m, dict))] if isinstance(makers, list) else [item]
        for leg in legs:
            if leg.get("asset_id"):
                tokens[str(leg["asset_id"])] = market
    return tokens


def _amount(v: str | float | None) -> Decimal | None:
    if v is None or v == "":
        return None
    try:
        d = Decimal(repr(v)) if isinstance(v, float) else Decimal(v)
    except InvalidOperation:
        return None
    return d if d.is_finite() and d >= 0 else None


async def learn_fee_schedule(
    rest: ClobRest,
    registry: InstrumentRegistry,
    outcomes: Outcomes,
    *,
    token: str | None = None,
    condition_id: str | None = None,
    log: structlog.typing.FilteringBoundLogger,
) -> bool:
    """Learn the fee schedule of a market (by `condition_id`, or `token`'s) for both its tokens:
    `GET /clob-markets/{condition_id}` (`fd`), as the official V2 client asks before it builds
    an order (`py-clob-client-v2` `__ensure_market_info_cached`); a market without `fd` charges
    nothing. The CLOB `/markets` objects the session learns markets from carry none, and a V2
    trade's `fee_rate_bps` is no rate (`fees.py`). Returns whether it is known; a failure is
    logged (`fees.unknown`), never raised: orders in that market are refused meanwhile
    (`PolymarketExecution._require_fees`)."""
    if condition_id is None:
        outcome = outcomes.get(token) if token is not None else None
        inst = registry.get(VENUE, token) if token is not None else None
        condition_id = outcome.condition_id if outcome is not None else inst.base if inst is not None else ""
    if not condition_id:
        return False
    try:
        # Quoted: the id may come from a trade the venue reported, and is one path segment.
        raw = await rest.call("GET", f"/clob-markets/{quote(condition_id, safe='')}", instrument=token)
        market = _decode_clob_market(raw)
        fd = market.fd
        schedule = (
            FeeSchedule(rate=0) if fd is None else FeeSchedule(rate=fd.r, exponent=fd.e, taker_only=fd.to)
        )
    except (VenueError, msgspec.DecodeError, TypeError, ValueError, ArithmeticError) as exc:
        log.warning("fees.unknown", instrument=token, market=condition_id, error=str(exc))
        return False
    tokens = {tok.t for tok in market.t} | ({token} if token is not None else set())
    for t in tokens:
        known = outcomes.get(t) or Outcome(t, condition_id)
        outcomes.add(attrs.evolve(known, fees=schedule))
        tinst = registry.get(VENUE, t)
        if tinst is not None:
            registry.add(
                attrs.evolve(
                    tinst,
                    taker_fee=schedule.rate,
                    maker_fee=Decimal(0) if schedule.taker_only else schedule.rate,
                )
            )
    return True


def alert_unknown_fees(decoder: PolymarketDecoder, log: structlog.typing.FilteringBoundLogger) -> None:
    """Each fill the decoder booked with no fee because its market's fee schedule could not be
    learned (the venue did not answer `GET /clob-markets`): an alert naming the fill, so that the
    operator knows the cash may be overstated by its fee. Not guessed, not dropped: the shares
    moved, and the position must say so."""
    for fill in decoder.take_unknown_fees():
        log.critical(
            "fees.unknown_fill",
            instrument=fill.instrument,
            trade_id=fill.trade_id,
            order_id=fill.order_id,
            side=fill.side.value,
            price=fill.price,
            size=fill.size,
            liquidity=fill.liquidity.value,
            booked_fee=fill.fee,
        )


class FillWatch:
    """How much of each of our orders the user channel has reported filled, so that a `place`
    whose answer says "matched" can wait for those fills. Remembers the last `capacity` orders."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._filled: collections.OrderedDict[str, Decimal] = collections.OrderedDict()
        self._capacity = capacity
        self._changed = trio.Event()

    def observe(self, events: Sequence[PrivateEvent]) -> None:
        changed = False
        for ev in events:
            if isinstance(ev, Fill) and ev.order_id:
                self._filled[ev.order_id] = self._filled.get(ev.order_id, Decimal(0)) + ev.size
                self._filled.move_to_end(ev.order_id)
                changed = True
        while len(self._filled) > self._capacity:
            self._filled.popitem(last=False)
        if changed:
            self._changed.set()
            self._changed = trio.Event()

    def filled(self, order_id: str) -> Decimal:
        return self._filled.get(order_id, Decimal(0))

    async def wait(self, order_id: str, size: Decimal, within_s: float) -> Decimal:
        """Wait until `size` of `order_id` has been reported filled, or `within_s`; returns what
        was."""
        with trio.move_on_after(within_s):
            while self.filled(order_id) < size:
                await self._changed.wait()
        return self.filled(order_id)


@attrs.frozen
class _Prepared:
    signed: SignedOrder
    order_type: OrderType
    post_only: bool


class PolymarketExecution(VenueExecution):
    """The `ExecutionClient` of Polymarket (module docstring). `signer` signs orders, `rest`
    (authenticated) sends them, `outcomes` says which exchange a token's orders are for
    (`neg_risk`), `fills` sees the user channel's fills."""

    venue = VENUE
    trades_refused = 0  # trades of `GET /data/trades` pages that could not be read (each read, logged)
    orders_refused = 0  # orders of `GET /data/orders` pages that could not be read (each read, logged)
    balances_unknown = 0  # share balances asked that could not be said (each look, per token)

    def __init__(
        self,
        rest: ClobRest,
        signer: OrderSigner,
        registry: InstrumentRegistry,
        outcomes: Outcomes,
        *,
        fills: FillWatch | None = None,
        decoder: PolymarketDecoder | None = None,
        report: Callable[[list[PrivateEvent]], None] | None = None,
        order_rate: float = 50.0,
        order_burst: float = 100.0,
        fill_wait_s: float = 2.0,
        clock: Callable[[], int] = time.time_ns,
        log: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        if rest.api is None:
            raise AuthError("trading needs the API credentials (POLYMARKET_API_KEY...)", venue=VENUE)
        self.rest = rest
        self.api: ApiCredentials = rest.api
        self.signer = signer
        self.registry = registry
        self.outcomes = outcomes
        self.fills = fills or FillWatch()
        # Reads our trades (`recent_fills`): the session's decoder, so that a fill found there and
        # later FAILED on chain is reversed like one the user channel reported.
        self.decoder = decoder or PolymarketDecoder(
            registry, outcomes, api_key=self.api.key, addresses=our_addresses(signer)
        )
        self.report = report  # private events found while reconciling (the engine's order tracker)
        self.fill_wait_s = fill_wait_s
        self.clock = clock
        self.log = (log or structlog.get_logger("tradingd.polymarket")).bind(venue=VENUE)
        self._bucket = CreditBucket(order_burst, order_rate)
        # Tokens whose unknown balance was alerted, until one of its answers reads again.
        self._balance_alerted: set[str] = set()
        self._prepared: dict[str, _Prepared] = {}
        # Set by the session: the markets of these tokens whose fee schedule is unknown are
        # learned in the background (an order refused `fees_unknown`, the tokens the
        # reconciliation finds); and the bounded on-demand learning of a page of trades.
        self.want_fees: Callable[[Iterable[str]], None] | None = None
        self.learn_trade_fees: Callable[[bytes], Awaitable[None]] | None = None

    # -- signing -------------------------------------------------------------------------------
    def _update(
        self,
        order: Order,
        order_id: str,
        state: OrderState,
        reason: str | None,
        price: Decimal | None,
        size: Decimal,
        filled_size: Decimal,
        avg_fill_price: Decimal | None = None,
    ) -> OrderUpdate:
        """What this client learned of `order` (venue id `order_id`), now (no exchange time)."""
        return OrderUpdate(
            venue=VENUE,
            instrument=order.request.instrument,
            ts_exchange=None,
            ts_local=self.clock(),
            order_id=order_id,
            client_order_id=order.client_order_id,
            strategy=order.strategy,
            status=state,
            side=order.request.side,
            price=price,
            size=size,
            filled_size=filled_size,
            avg_fill_price=avg_fill_price,
            reason=reason,
        )

    def _reject(self, order: Order, reason: str) -> OrderRejected:
        return OrderRejected(
            reason, venue=VENUE, instrument=order.request.instrument, client_order_id=order.client_order_id
        )

    def _sign(self, order: Order, neg_risk: bool) -> _Prepared:
        """Validate and sign an order (raises `OrderRejected` before signing anything wrong)."""
        req = order.request
        cid = order.client_order_id
        inst = self.registry.require(VENUE, req.instrument, client_order_id=cid)
        order_type = order_type_for(req.time_in_force)
        price = req.price
        if req.is_market:
            if req.time_in_force is TimeInForce.GTD:
                raise self._reject(order, "a market order cannot be GTD (it never rests)")
            if order_type is not OrderType.FOK:
                order_type = OrderType.FAK
            tick = inst.tick_size
            price = Decimal(1) - tick if req.side is Side.BUY else tick
        assert price is not None
        if req.post_only and order_type in _IMMEDIATE:
            raise self._reject(
                order, "post-only orders must be GTC or GTD (the venue refuses post-only FAK/FOK)"
            )
        if req.reduce_only and req.side is Side.BUY:
            raise self._reject(
                order, "Polymarket has no reduce-only orders, and a buy cannot reduce a position there"
            )
        expiration = 0
        if order_type is OrderType.GTD:
            assert req.expire_at_ns is not None, "OrderRequest makes sure"
            expiration = math.ceil(req.expire_at_ns / 1_000_000_000) + _GTD_THRESHOLD_S
            now_s = self.clock() // 1_000_000_000
            if expiration < now_s + _GTD_MIN_AHEAD_S:
                raise self._reject(
                    order,
                    f"a GTD order must expire at least {_GTD_MIN_AHEAD_S - _GTD_THRESHOLD_S} s ahead "
                    "(the venue's minimum lifetime)",
                )
        try:
            signed = self.signer.limit_order(
                inst, req.side, price, req.size, neg_risk=neg_risk, expiration=expiration, client_order_id=cid
            )
        except ValueError as exc:  # amounts the signer cannot make exact (check_order let it by)
            raise self._reject(order, f"cannot sign: {exc}") from None
        return _Prepared(signed, order_type, req.post_only)

    # -- the venue SPI's capabilities (engine.venue.spi.VenueExecution) --------------------------
    @property
    def positions(self) -> PolymarketExecution:
        """Share balances: the account's holding of each token (`venue_positions`)."""
        return self

    @property
    def delivery(self) -> None:
        """None: a market has no expiry; it ends with its resolution, an event on the market
        channel (`market_resolved`) the engine settles by."""
        return None

    @property
    def funding(self) -> None:
        """None: no perpetuals, no funding."""
        return None

    def prepare(self, order: Order) -> str | None:
        """Validate and sign `order` now; its id (the EIP-712 digest) for the gateway to register
        before `place` sends it. None when the token's exchange is not known yet (`place` asks the
        venue, then signs)."""
        self._require_fees(order)
        outcome = self.outcomes.get(order.request.instrument)
        if outcome is None or outcome.neg_risk is None:
            return None
        prepared = self._sign(order, outcome.neg_risk)
        self._prepared[order.client_order_id] = prepared
        return prepared.signed.order_id

    async def _neg_risk(self, token: str) -> bool:
        """Whether `token` trades on the neg-risk exchange: known, or `GET /neg-risk` (§2.3)."""
        outcome = self.outcomes.get(token)
        if outcome is not None and outcome.neg_risk is not None:
            return outcome.neg_risk
        raw = await self.rest.call("GET", "/neg-risk", params={"token_id": token}, instrument=token)
        try:
            neg_risk = _decode_neg_risk(raw).neg_risk
        except msgspec.DecodeError as exc:
            raise VenueError(
                f"GET /neg-risk: unreadable answer ({exc})", venue=VENUE, instrument=token
            ) from None
        inst = self.registry.get(VENUE, token)
        known = outcome or Outcome(token, "" if inst is None else inst.base)
        self.outcomes.add(attrs.evolve(known, neg_risk=neg_risk))
        return neg_risk

    async def _learn_fees(self, token: str) -> None:
        """Learn the fee schedule of `token`'s market if it is not known (`learn_fee_schedule`);
        for the fills found while reconciling, never on the order path."""
        outcome = self.outcomes.get(token)
        if outcome is not None and outcome.fees is not None:
            return
        await learn_fee_schedule(self.rest, self.registry, self.outcomes, token=token, log=self.log)

    def _require_fees(self, order: Order) -> None:
        """Refuse an order in a market whose fee schedule is not known: its fills could not be
        booked at the fee the venue charges (a V2 trade's `fee_rate_bps` reads 0 and `GET
        /fee-rate` says 1000 for every fee-bearing market, `fees.py`), and guessing it is not
        done. The session learns every market's schedule when it loads it (`stream.py`), never
        on this path: a request in the gateway must not wait for it, nor the cancels behind it."""
        token = order.request.instrument
        self.registry.require(VENUE, token, client_order_id=order.client_order_id)  # unknown first
        outcome = self.outcomes.get(token)
        if outcome is not None and outcome.fees is not None:
            return
        market = outcome.condition_id if outcome is not None else ""
        if self.want_fees is not None:  # learned in the background: a later order may go
            self.want_fees([token])
        raise OrderDenied(
            f"{token}: the fee schedule of its market {market or '(unknown)'} is not known yet "
            "(GET /clob-markets has not answered): its fills could not be booked at their fee; "
            "refused until the session learns it",
            venue=VENUE,
            instrument=token,
            client_order_id=order.client_order_id,
            code="fees_unknown",
        )

    # -- ExecutionClient -----------------------------------------------------------------------
    async def place(self, order: Order) -> Sequence[PrivateEvent]:
        self._require_fees(order)
        prepared = self._prepared.pop(order.client_order_id, None)
        if prepared is None:
            token = order.request.instrument
            self.registry.require(VENUE, token, client_order_id=order.client_order_id)
            try:
                neg_risk = await self._neg_risk(token)
            except VenueError as exc:  # the order itself was not sent: refused, and final
                raise self._reject(order, f"cannot tell which exchange the token trades on: {exc}") from None
            prepared = self._sign(order, neg_risk)
        body = order_body(
            prepared.signed, owner=self.api.key, order_type=prepared.order_type, post_only=prepared.post_only
        )
        await self._bucket.acquire()
        raw = await self.rest.call(
            "POST", "/order", body=body, auth=True, order=True, instrument=order.request.instrument
        )
        try:
            answer = _decode_order_answer(raw)
        except msgspec.DecodeError as exc:
            # Sent and answered, but the answer is unreadable: the outcome is unknown.
            raise VenueError(
                f"POST /order: unreadable answer ({exc})", venue=VENUE, code="malformed"
            ) from None
        if not answer.success:
            message = answer.errorMsg or "refused without a message"
            raise VenueRejected(
                f"POST /order refused: {message}",
                venue=VENUE,
                instrument=order.request.instrument,
                client_order_id=order.client_order_id,
                code=message if _ERROR_CODE.match(message) else "refused",
                venue_message=message,
            )
        return await self._accepted(order, prepared, answer)

    async def _accepted(self, order: Order, prepared: _Prepared, answer: _OrderAnswer) -> list[PrivateEvent]:
        """The order's state from a successful `POST /order` answer (module docstring)."""
        signed = prepared.signed
        # In lower case, the spelling `signing.py` prepares and the codec reads every order id in
        # (codec module docstring): the engine finds the order's later fills by this text.
        order_id = (answer.orderID or signed.order_id).lower()
        if order_id != signed.order_id.lower():
            self.log.warning("order.id_mismatch", expected=signed.order_id, venue_id=order_id)
        status = (answer.status or "live").lower()
        size = order.request.size
        # What matched at once, in shares: a buy takes shares, a sell gives them (§2.5).
        shares = answer.takingAmount if signed.side is Side.BUY else answer.makingAmount
        matched = _amount(shares)
        if matched is None and status == "matched" and prepared.order_type is OrderType.FOK:
            matched = size  # a FOK that matched matched all of it
        reason: str | None = None
        filled = self.fills.filled(order_id)
        if status == "matched":
            want = matched if matched is not None else size
            filled = await self.fills.wait(order_id, min(want, size), self.fill_wait_s)
        elif status != "live":
            reason = status  # "delayed", "unmatched": accepted, with a remark
        done = max(filled, matched or Decimal(0))
        if done >= size:
            state = OrderState.FILLED
        elif prepared.order_type in _IMMEDIATE and status == "matched" and matched is None:
            # It matched, how much the answer does not say and the user channel has not told
            # yet; what did not match is gone. "Cancelled" with what we know would guess (0,
            # say, for all of it traded): the outcome is unknown until the venue's reports
            # (its fills, the engine's question about the order) settle it.
            # The answer named the order and said it matched: the engine takes its id (fills
            # that come later name only that) and holds it open, acknowledged (`OrderFlow.
            # acknowledged`), so its silence is never read as "never taken" (`order_status`).
            raise OrderOutcomeUnknown(
                f"POST /order: {prepared.order_type.value} order {order_id} matched, by an amount the "
                f"answer does not say and whose fills did not arrive within {self.fill_wait_s} s",
                order_id=order_id,
                accepted=True,
                venue=VENUE,
                instrument=order.request.instrument,
                client_order_id=order.client_order_id,
                code="matched_amount_unknown",
                venue_message=MATCHED_AMOUNT_UNKNOWN,
            )
        elif prepared.order_type in _IMMEDIATE and status == "matched":
            state = OrderState.CANCELLED  # the venue killed what did not match at once
            reason = f"{prepared.order_type.value}: unmatched remainder cancelled"
        elif done > 0:
            state = OrderState.PARTIALLY_FILLED
        else:
            state = OrderState.OPEN
        return [self._update(order, order_id, state, reason, order.request.price, size, min(done, size))]

    async def edit(
        self, order: Order, *, price: Decimal | None, size: Decimal | None
    ) -> Sequence[PrivateEvent]:
        raise self._reject(order, "Polymarket has no order amendment: cancel the order and place a new one")

    async def cancel(self, order: Order) -> Sequence[PrivateEvent]:
        """`DELETE /order` (§2.3): the order cancelled, or `OrderRejected` with the venue's
        reason (`already canceled or matched`: its fills come through the user channel)."""
        order_id = order.order_id
        if order_id is None:
            raise self._reject(order, "the order has no venue id yet: nothing to cancel")
        await self._cancel_one(order_id, order.request.instrument, order.client_order_id)
        return [
            self._update(
                order,
                order_id,
                OrderState.CANCELLED,
                "cancelled",
                order.price,
                order.size,
                order.filled_size,
                order.avg_fill_price,
            )
        ]

    async def _cancel_one(self, order_id: str, instrument: str, client_order_id: str | None = None) -> None:
        """`DELETE /order` (§2.3); `OrderRejected` with the venue's reason when the answer does
        not list the order as cancelled."""
        raw = await self.rest.call(
            "DELETE", "/order", body=cancel_body(order_id), auth=True, order=True, instrument=instrument
        )
        try:
            answer = _decode_cancel_answer(raw)
        except msgspec.DecodeError as exc:
            raise VenueError(
                f"DELETE /order: unreadable answer ({exc})", venue=VENUE, code="malformed"
            ) from None
        if order_id.lower() in (c.lower() for c in answer.canceled):
            return
        refused = answer.not_canceled
        why = refused.get(order_id) or next(iter(refused.values()), "not cancelled")
        raise VenueRejected(
            f"cancel refused: {why}",
            venue=VENUE,
            instrument=instrument,
            client_order_id=client_order_id,
            code="not_canceled",
            venue_message=why,
        )

    async def cancel_all(self, instrument: str | None = None) -> int:
        """Cancel every open order (`DELETE /cancel-all`), or those of one token
        (`DELETE /cancel-market-orders`); returns how many the venue cancelled."""
        if instrument is None:
            raw = await self.rest.call("DELETE", "/cancel-all", auth=True, order=True)
        else:
            raw = await self.rest.call(
                "DELETE",
                "/cancel-market-orders",
                body=cancel_market_body(asset_id=instrument),
                auth=True,
                order=True,
                instrument=instrument,
            )
        try:
            return len(_decode_cancel_answer(raw).canceled)
        except msgspec.DecodeError as exc:
            raise VenueError(
                f"cancel all: unreadable answer ({exc})", venue=VENUE, code="malformed"
            ) from None

    async def open_orders(self) -> list[OrderUpdate]:
        """Every resting order of the account (`GET /data/orders`, every page). A page that is
        not a page of orders is an unreadable answer (`VenueError`); one order in it that cannot
        be read is left out, counted (`orders_refused`) and logged (`orders.record_refused`):
        the engine then asks about each of ours the pages did not show (`order_status`, by its
        id), whose unreadable answer concludes nothing, so a record left out never reads as an
        order gone."""
        out: list[OrderUpdate] = []
        cursor = _INITIAL_CURSOR
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            seen.add(cursor)
            raw = await self.rest.call("GET", "/data/orders", params={"next_cursor": cursor}, auth=True)
            try:
                page = decode_open_orders(raw, self.clock())
            except MalformedFrame as exc:
                raise VenueError(f"open orders: unreadable answer ({exc})", venue=VENUE) from None
            for refused in page.refused:
                self.orders_refused += 1
                self.log.error(
                    "orders.record_refused",
                    order_id=refused.id,
                    reason=refused.reason,
                    action="left out of the open orders; the engine asks about any of ours by its id",
                )
            out.extend(page.updates)
            if self.want_fees is not None:  # an order of a market no subscription loads
                self.want_fees({u.instrument for u in page.updates})
            cursor = page.next_cursor
            if not cursor or cursor == _END_CURSOR:
                return out
            if cursor in seen:
                raise VenueError(f"open orders: the pages' next_cursor {cursor!r} came back", venue=VENUE)
        raise VenueError(f"open orders: more than {_MAX_PAGES} pages", venue=VENUE)

    # -- reconciliation (after a reconnect or a restart) ----------------------------------------
    async def order_status(self, order: Order) -> list[PrivateEvent]:
        """The venue's current report of one of our orders (`GET /data/order/{id}`, §2.3).

        The venue answers nothing for an order it no longer holds (one that matched in full, or
        was cancelled; py-clob-client issue #217 [T]): the order's trades then tell (`GET
        /data/trades` of its token since shortly before it was made), returned as its fills
        followed by its final state: filled; cancelled with what filled; with no trade at all,
        rejected if the venue never acknowledged it (it never arrived: not sent again), else
        cancelled while we were away. Raises `VenueError` for an order whose id was never known
        (signed in `place` after `prepare` could not, and its answer lost): Polymarket has no
        client order ids to look it up by."""
        order_id = order.order_id
        req = order.request
        if order_id is None:
            raise VenueError(
                f"{order.client_order_id}: the order's venue id was never known (its answer was "
                "lost): it cannot be looked up; see the venue's open orders and trades",
                venue=VENUE,
                instrument=req.instrument,
                code="unidentifiable",
            )
        try:
            raw = await self.rest.call("GET", f"/data/order/{order_id}", auth=True, instrument=req.instrument)
        except VenueError as exc:
            if exc.code != 404:
                raise
            raw = b""  # not found: as an empty answer
        try:
            update = decode_order(raw, self.clock())
        except MalformedFrame as exc:
            raise VenueError(f"order state: unreadable answer ({exc})", venue=VENUE) from None
        if update is not None:
            return [update]
        since_s = order.created_ns // 1_000_000_000 - _TRADES_MARGIN_S
        found, refused = await self._trades({"asset_id": req.instrument, "after": str(since_s)})
        unread = [r for r in refused if r.may_be_of(order_id)]
        if unread:
            # What filled of it is what its trades say: one of them that cannot be read leaves
            # its final state unknown, never guessed from the others.
            raise VenueError(
                f"order state: {len(unread)} trade(s) of its token that may be its own cannot be read "
                f"({unread[0].reason})",
                venue=VENUE,
                instrument=req.instrument,
                code="malformed",
            )
        fills = [f for f in found if f.order_id is not None and f.order_id.lower() == order_id.lower()]
        filled = sum((f.size for f in fills), Decimal(0))
        if filled >= order.size:
            state, reason = OrderState.FILLED, "matched in full (the venue no longer lists it)"
        elif filled > 0:
            state, reason = OrderState.CANCELLED, "no longer at the venue; part of it matched"
        elif order.state is OrderState.PENDING_NEW or order.reason == MATCHED_AMOUNT_UNKNOWN:
            # An order the venue said matched, by an amount not said (`place`), whose trades are
            # not listed yet: no word on it, never "cancelled with nothing" (the engine alerts
            # at its last question, and its fills book it when they come).
            # No record of an order we never heard back about: an empty answer (the Reconciler's
            # "never received"). When that is the venue's last word is the engine's to decide: a
            # second after a request that timed out, the venue may not have filed it yet.
            return []
        else:
            state, reason = OrderState.CANCELLED, "no longer at the venue (cancelled while we were away)"
        final = self._update(
            order, order_id, state, reason, order.price, order.size, max(filled, order.filled_size)
        )
        return [*fills, final]

    async def recent_fills(self, since_ns: int) -> list[Fill]:
        """Our fills since `since_ns` (`GET /data/trades?after=`, every page), trades that
        FAILED on chain left out. A page that is not a page of trades is an unreadable answer
        (`VenueError`); one trade in it that cannot be read is that trade's problem: left out,
        counted (`trades_refused`) and logged (`fills.record_refused`), the others booked, and
        the pages followed by the envelope's `next_cursor` whatever their trades hold."""
        fills, _ = await self._trades({"after": str(since_ns // 1_000_000_000)})
        return fills

    async def _trades(self, params: Mapping[str, str]) -> tuple[list[Fill], list[RefusedRecord]]:
        """Our fills in every page of `GET /data/trades` with `params`, and the trades that could
        not be read (each logged); the reversals of trades that FAILED meanwhile go to `report`
        (the order tracker) at once. A `next_cursor` that comes back is an unreadable answer."""
        out: list[Fill] = []
        refused: list[RefusedRecord] = []
        cursor = _INITIAL_CURSOR
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            seen.add(cursor)
            raw = await self.rest.call(
                "GET", "/data/trades", params={**params, "next_cursor": cursor}, auth=True
            )
            # Their fees are charged by their schedules: learned first, within a bound (a page
            # the venue is slow to say the schedules of is booked with fees flagged unknown).
            if self.learn_trade_fees is not None:
                await self.learn_trade_fees(raw)
            else:
                with trio.move_on_after(_ON_DEMAND_FEES_S):
                    for token in trade_tokens(raw):
                        await self._learn_fees(token)
            try:
                page = self.decoder.trade_fills(raw, self.clock())
            except MalformedFrame as exc:
                raise VenueError(f"trades: unreadable answer ({exc})", venue=VENUE) from None
            alert_unknown_fees(self.decoder, self.log)
            for record in page.refused:
                self.trades_refused += 1
                self.log.error(
                    "fills.record_refused",
                    trade_id=record.id,
                    reason=record.reason,
                    action="left out; the page's other trades are booked",
                )
            refused.extend(page.refused)
            out.extend(page.fills)
            if page.reversals:
                self.log.warning("fills.failed_while_away", trades=[r.trade_id for r in page.reversals])
                if self.report is not None:
                    self.report(list[PrivateEvent](page.reversals))
            cursor = page.next_cursor
            if cursor == _END_CURSOR:
                return out, refused
            if cursor in seen:
                raise VenueError(f"trades: the pages' next_cursor {cursor!r} came back", venue=VENUE)
        raise VenueError(f"trades: more than {_MAX_PAGES} pages", venue=VENUE)

    async def venue_positions(self, tokens: Sequence[str]) -> Holdings:
        """The shares the venue holds for us of each of `tokens` (the engine compares them with
        its positions when it reconciles): `GET /balance-allowance?asset_type=CONDITIONAL
        &token_id=...&signature_type=...` (§2.3), as `py-clob-client-v2` `get_balance_allowance`
        asks it (the signature type says whose wallet: ours, or the funder's). `balance` is in
        millionths of a share (the CTF tokens' 6 decimals; the venue's refusals count shares
        so: `balance: 4893500` for 4.8935, py-clob-client #311). Asked `_BALANCE_CONCURRENCY`
        at a time (the caller bounds the whole).

        A token whose balance cannot be said (no answer, or one that is no whole number of
        millionths) is unknown: counted (`balances_unknown`), alerted once (`balance.unavailable`,
        `balance.unreadable`; again only after it has read since), and named in the answer's
        `unread`, never given a figure: read as 0 it would be a false mismatch for a position we
        hold, a false match (and a past mismatch cleared) for one we do not. The engine compares
        the tokens that read (`held`) and leaves the unread out (`positions.left_out`)."""
        out: dict[str, Decimal] = {}
        failed: list[str] = []
        if self.want_fees is not None:  # a position of a market no subscription loads
            self.want_fees(tokens)
        limiter = trio.CapacityLimiter(_BALANCE_CONCURRENCY)

        async def one(token: str) -> None:
            async with limiter:
                await ask(token)

        async def ask(token: str) -> None:
            try:
                raw = await self.rest.call(
                    "GET",
                    "/balance-allowance",
                    params={
                        "asset_type": "CONDITIONAL",
                        "token_id": token,
                        "signature_type": str(int(self.signer.signature_type)),
                    },
                    auth=True,
                    instrument=token,
                )
                units = _amount(_decode_balance(raw).balance)
            except (VenueError, msgspec.DecodeError) as exc:
                unknown(token, "balance.unavailable", error=str(exc))
                return
            if units is None or units != units.to_integral_value():
                unknown(token, "balance.unreadable", answer=raw[:200].decode("utf-8", "replace"))
                return
            self._balance_alerted.discard(token)
            out[token] = units / _SHARE_UNITS

        def unknown(token: str, event: str, **why: str) -> None:
            failed.append(token)
            self.balances_unknown += 1
            if token not in self._balance_alerted:
                self._balance_alerted.add(token)
                self.log.error(
                    event,
                    instrument=token,
                    action="not compared until its balance reads (the venue's other positions are)",
                    **why,
                )

        async with trio.open_nursery() as nursery:
            for token in tokens:
                nursery.start_soon(one, token)
        return Holdings(out, unread=frozenset(failed))

    async def cancel_by_order_id(self, instrument: str, order_id: str) -> None:
        """Cancel an order that is not this daemon's (the `foreign_orders = "cancel"` policy):
        `DELETE /order`; `OrderRejected` with the venue's reason when it is not cancelled."""
        await self._cancel_one(order_id, instrument)

    def __repr__(self) -> str:
        return f"PolymarketExecution({self.signer!r}, key={self.api.key[:8]}...)"
