"""A local Deribit: the same JSON-RPC over WebSocket (`/ws/api/v2`) and HTTP (`/api/v2/<method>`),
on 127.0.0.1 (`tradingd simulate deribit --port N`). Tests point the daemon at it; so can users.

Fidelity (VENUES.md §1):
- Auth: `client_credentials`, `client_signature` (HMAC checked, timestamp within 60 s),
  `refresh_token`; HTTP `Authorization: Bearer`, `Basic`, or `deri-hmac-sha256` (checked).
- Heartbeats: after `public/set_heartbeat` the server sends `test_request`; a client that has not
  answered with `public/test` by the next one is disconnected (§1.5).
- Subscriptions: the real channel names (`ticker.`, `book.`, `trades.` at `100ms`, `raw` (needs
  auth) or `agg2`; `user.orders.*`, `user.trades.*`); unknown channels are left out of the answer
  (refused), and every book starts with a snapshot whose `change_id` the changes then chain from.
- The market: the backtest generator's synthetic market, stepped on the wall clock, in the exact
  frame shapes of the bundled data.
- Orders: `private/buy`, `sell`, `edit`, `cancel`, `cancel_all`, `cancel_all_by_instrument`,
  `cancel_by_label`, open orders, account summary, positions; matched by the engine's
  `SimulatedVenue` against the simulator's own books and trades (the backtest's fill model), with
  Deribit's fees; results, errors (§1.9 codes) and `user.*` notifications shaped as Deribit's.
  Client orders do not appear in the public book. With `self_trading=True` (an account that allows
  self-trading: Deribit makes its prevention an account setting, `private/set_self_trading_config`
  with `reject_taker` or `cancel_maker`) a new order trades first with the account's own resting
  orders it reaches at a price better than the market's: one trade, one `trade_id`, a user trade
  for each of the two orders.
- Rate limits: the matching engine's credit bucket (§1.10, tier 4 by default): a client that
  bursts past it gets `too_many_requests` and its session closed, as on Deribit.

Fault switches (tests, and `POST /_sim/faults` with a JSON object): `drop` the connections,
`stall_s` (send nothing, heartbeats included), `gap` (skip one book change of an instrument),
`reject` (the next orders fail with a code), `rate_limit` (the next requests get 10028),
`garbage` (send malformed frames).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from functools import partial
from typing import Any, Final
from urllib.parse import parse_qsl

import attrs
import orjson
import structlog
import trio
import trio.lowlevel

from tradingd.connectors.deribit.codec import DeribitDecoder
from tradingd.connectors.deribit.fees import DeribitFees
from tradingd.connectors.deribit.instruments import VENUE
from tradingd.engine.backtest import SimulatedVenue
from tradingd.engine.sim import SimFaults, SimPeer, SimulatorServer, serve
from tradingd.engine.venue import (
    BookUpdate,
    CreditBucket,
    Fill,
    InstrumentKind,
    InstrumentRegistry,
    OptionRight,
    Order,
    OrderRejected,
    OrderRequest,
    OrderState,
    OrderUpdate,
    PrivateEvent,
    Trade,
)

from . import public_methods
from .generator import DeribitFeed

__all__ = ["DEFAULT_ACCOUNTS", "DeribitSimulator", "Faults", "serve"]

DEFAULT_ACCOUNTS: Final = {"tradingd-sim": "sim-secret-0123456789"}
_NOTE_PREFIX: Final = b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"'
_INTERVALS: Final = ("100ms", "raw", "agg2")
_NUMERIC: Final = frozenset(
    {"amount", "contracts", "price", "trigger_price", "depth", "count", "interval", "timestamp", "max_show",
     "start_timestamp", "end_timestamp", "trigger_offset", "display_amount"}
)  # fmt: skip
_BOOLEAN: Final = frozenset({"post_only", "reduce_only", "reject_post_only", "expired", "mmp", "include_old"})
_VERSION: Final = "1.2.26"
_MATCHING: Final = frozenset(  # the matching engine's methods: their own rate limit (§1.10)
    {
        "private/buy",
        "private/sell",
        "private/edit",
        "private/cancel",
        "private/cancel_all",
        "private/cancel_all_by_instrument",
        "private/cancel_by_label",
    }
)


class RpcError(Exception):
    """A JSON-RPC error answer (§1.9 codes)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


Faults = SimFaults  # the switches every simulator has (engine/sim/server.py)


@attrs.define(eq=False)
class _Account:
    client_id: str
    secret: str
    balances: dict[str, float] = attrs.field(factory=lambda: {"BTC": 10.0, "ETH": 100.0, "USDC": 100_000.0})
    positions: dict[str, Decimal] = attrs.field(factory=dict)
    orders: dict[str, _SimOrder] = attrs.field(factory=dict)
    trades: list[dict[str, Any]] = attrs.field(factory=list)  # the account's trades, oldest first
    settlements: list[dict[str, Any]] = attrs.field(factory=list)  # deliveries and settlements, oldest first
    limiter: CreditBucket | None = None


@attrs.define(eq=False)
class _SimOrder:
    order: Order  # the engine order the matching engine knows
    account: _Account
    label: str
    order_id: str = ""
    state: str = "open"
    filled: Decimal = Decimal(0)
    average: Decimal = Decimal(0)
    cancel_reason: str | None = None
    created_ms: int = 0
    updated_ms: int = 0
    replaced: bool = False


@attrs.define(eq=False)
class _Session(SimPeer):
    account: _Account | None = None
    wanted: dict[str, str] = attrs.field(factory=dict)  # feed channel (100ms) -> requested name
    private: set[str] = attrs.field(factory=set)  # user.* channels
    heartbeat_s: float = 0.0
    awaiting_test: bool = False


def _channel_of(frame: bytes) -> str:
    end = frame.find(b'"', len(_NOTE_PREFIX))
    return frame[len(_NOTE_PREFIX) : end].decode()


def _with_interval(channel: str, interval: str) -> str:
    head, _, _ = channel.rpartition(".")
    return f"{head}.{interval}"


def _coerce(params: dict[str, Any]) -> dict[str, Any]:
    """HTTP GET params arrive as strings: numbers and booleans as Deribit reads them."""
    out: dict[str, Any] = {}
    for k, v in params.items():
        if k in _NUMERIC and isinstance(v, str):
            try:
                out[k] = int(v) if v.lstrip("-").isdigit() else float(v)
            except ValueError:
                out[k] = v
        elif k in _BOOLEAN and isinstance(v, str):
            out[k] = v.lower() == "true"
        else:
            out[k] = v
    return out


def _num(d: Decimal | float) -> float:
    return float(d)


class DeribitSimulator(SimulatorServer["_Session"]):
    """The simulated venue (module docstring). An ASGI app; `run` steps its market."""

    venue = VENUE
    ws_paths = ("/ws/api/v2",)
    default_reject = (10009, "not_enough_funds")

    def __init__(
        self,
        *,
        seed: int = 7,
        accounts: dict[str, str] | None = None,
        step_s: float = 0.1,
        matching_rate: float = 5.0,
        matching_burst: float = 20.0,
        outbox: int = 10_000,
        heartbeat_scale: float = 1.0,
        self_trading: bool = False,
        clock: Callable[[], int] = time.time_ns,
        log: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        super().__init__(step_s=step_s, outbox=outbox, clock=clock, log=log)
        self.feed = DeribitFeed.create(seed=seed, start_ns=clock())
        self.registry = InstrumentRegistry()
        self.decoder = DeribitDecoder(self.registry)  # the simulator's own books, from its feed
        self.instrument_items = [item for result in self.feed.results for item in result]
        self.tickers: dict[str, dict[str, Any]] = {}
        self.trades: dict[str, list[dict[str, Any]]] = {}
        for _, frame in self.feed.opening():
            self._track(frame)
        self.matching = SimulatedVenue(
            VENUE, self.registry, DeribitFees(), self.decoder.book, index=self._index
        )
        self.accounts = {cid: _Account(cid, sec) for cid, sec in (accounts or DEFAULT_ACCOUNTS).items()}
        for acct in self.accounts.values():
            acct.limiter = CreditBucket(matching_burst, matching_rate)
        self.tokens: dict[str, _Account] = {}
        self.refresh_tokens: dict[str, _Account] = {}
        self.orders: dict[str, _SimOrder] = {}  # by venue order id
        self._by_key: dict[str, _SimOrder] = {}  # by the engine order's client id
        self._order_keys = itertools.count(1)
        self._trade_seq = itertools.count(1)
        # Tests compress heartbeat time: 0.1 makes Deribit's minimum 10 s interval last 1 s.
        self.heartbeat_scale = heartbeat_scale
        self.self_trading = self_trading  # an account's orders may trade with each other
        self.deliveries_made: list[dict[str, Any]] = []  # the public delivery records, oldest first

    # -- the market ---------------------------------------------------------------------------
    def _index(self, base: str) -> float | None:
        for name in (f"{base}-PERPETUAL",):
            t = self.tickers.get(name)
            if t is not None:
                return float(t.get("index_price") or 0.0) or None
        return None

    def _track(self, frame: bytes) -> list[Any]:
        """Keep the simulator's own books, last tickers and trades from one of its frames."""
        events = self.decoder.decode(frame, self.clock())
        if frame.startswith(_NOTE_PREFIX):
            channel = _channel_of(frame)
            if channel.startswith("ticker."):
                self.tickers[channel.split(".")[1]] = orjson.loads(frame)["params"]["data"]
            elif channel.startswith("trades."):
                inst = channel.split(".")[1]
                kept = self.trades.setdefault(inst, [])
                kept.extend(orjson.loads(frame)["params"]["data"])
                del kept[:-100]
        return events

    def market_step(self) -> list[bytes]:
        return [frame for _, frame in self.feed.step()]

    def on_market_frame(self, frame: bytes, now: int) -> None:
        """Track the frame, and fill resting client orders against the book or trade it moved."""
        for ev in self._track(frame):
            out: list[PrivateEvent] = []
            if isinstance(ev, BookUpdate):
                out = self.matching.on_book(ev, now)
            elif isinstance(ev, Trade) and self.matching.has_orders(ev.instrument):
                out = self.matching.on_trade(ev, now)
            if out:
                self._apply(out)

    def garbage_frames(self) -> list[bytes]:
        return [b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":', b"\x00\xffnot json at all"]

    def deliveries(self, frame: bytes) -> Iterable[tuple[_Session, bytes]]:
        channel = _channel_of(frame)
        if channel.startswith("book.") and self.faults.gap and self.faults.take_gap(channel.split(".")[1]):
            return  # this change never reaches anyone: the next one breaks the chain
        for session in list(self.sessions.values()):
            requested = session.wanted.get(channel)
            if requested is None:
                continue
            if requested == channel:
                yield session, frame
            else:
                yield session, frame.replace(channel.encode(), requested.encode(), 1)

    def probe_key(self, frame: bytes) -> Any:
        if frame.startswith(_NOTE_PREFIX + b"ticker." + (self.probe or "").encode()):
            return int(orjson.loads(frame)["params"]["data"]["timestamp"])
        return None

    def _respond(self, rid: Any, result: Any = None, error: RpcError | None = None) -> bytes:
        us_out = self.clock() // 1000
        body: dict[str, Any] = {"jsonrpc": "2.0"}
        if rid is not None:  # a request without an id (a REST GET) gets an answer without one
            body["id"] = rid
        if error is not None:
            body["error"] = {"code": error.code, "message": error.message, "data": error.data}
        else:
            body["result"] = result
        body.update(usIn=us_out - 150, usOut=us_out, usDiff=150, testnet=True)
        return orjson.dumps(body)

    # -- WebSocket and HTTP -----------------------------------------------------------------
    def new_peer(self, peer_id: int, outbox: trio.MemorySendChannel[bytes], path: str) -> _Session:
        return _Session(peer_id, outbox, path)

    def peer_tasks(self, peer: _Session) -> list[Callable[[], Awaitable[None]]]:
        return [partial(self._heartbeats, peer)]

    async def _heartbeats(self, session: _Session) -> None:
        while True:
            if session.heartbeat_s <= 0:
                await trio.sleep(0.2)
                continue
            await trio.sleep(session.heartbeat_s * self.heartbeat_scale)
            if trio.current_time() < self.faults.stall_until:
                continue
            if session.awaiting_test:
                self.close(session, "heartbeat: no public/test answer to test_request")
                return
            session.awaiting_test = True
            self.send(session, b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}')

    async def on_text(self, session: _Session, text: str) -> None:
        try:
            msg = orjson.loads(text)
            rid = msg.get("id")
            method = msg["method"]
            params = msg.get("params") or {}
            if not isinstance(method, str) or not isinstance(params, dict):
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            self.send(session, self._respond(None, error=RpcError(11050, "bad_request")))
            return
        after: list[bytes] = []
        try:
            result = self.call(method, params, session=session, after=after)
        except RpcError as exc:
            self.send(session, self._respond(rid, error=exc))
            if exc.code == 10028:
                self.close(session, "too_many_requests")  # Deribit ends the session (§1.10)
            return
        self.send(session, self._respond(rid, result))
        for frame in after:
            self.send(session, frame)

    async def handle_http(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes] | None:
        """`/api/v2/<method>`: GET with query parameters, or POST with a JSON-RPC body."""
        if not path.startswith("/api/v2/"):
            return None
        rpc_method = path[len("/api/v2/") :]
        rid: Any = None
        if method == "POST" and body:
            try:
                msg = orjson.loads(body)
                rid = msg.get("id")
                params = msg.get("params") or {}
                rpc_method = msg.get("method") or rpc_method
            except (orjson.JSONDecodeError, AttributeError):
                params = {}
        else:
            params = _coerce(dict(parse_qsl(query, keep_blank_values=True)))
        uri = path + (f"?{query}" if query else "")
        try:
            account = self._http_account(headers.get("authorization"), method, uri, body.decode())
            result = self.call(rpc_method, _coerce(params), account=account)
            return 200, self._respond(rid, result)
        except RpcError as exc:
            return 400, self._respond(rid, error=exc)

    def _http_account(self, auth: str | None, method: str, uri: str, body: str) -> _Account | None:
        """§1.3 HTTP auth: Bearer token, Basic id:secret, or deri-hmac-sha256 (checked)."""
        if not auth:
            return None
        scheme, _, value = auth.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            acct = self.tokens.get(value.strip())
            if acct is None:
                raise RpcError(13009, "unauthorized", {"reason": "invalid token"})
            return acct
        if scheme == "basic":
            try:
                cid, _, secret = base64.b64decode(value).decode().partition(":")
            except ValueError:
                raise RpcError(13004, "invalid_credentials") from None
            acct = self.accounts.get(cid)
            if acct is None or not hmac.compare_digest(acct.secret, secret):
                raise RpcError(13004, "invalid_credentials")
            return acct
        if scheme == "deri-hmac-sha256":
            fields = dict(part.split("=", 1) for part in value.split(",") if "=" in part)
            acct = self.accounts.get(fields.get("id", ""))
            if acct is None:
                raise RpcError(13004, "invalid_credentials")
            ts, nonce = fields.get("ts", ""), fields.get("nonce", "")
            message = f"{ts}\n{nonce}\n{method.upper()}\n{uri}\n{body}\n".encode()
            expected = hmac.new(acct.secret.encode(), message, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, fields.get("sig", "")):
                raise RpcError(13004, "invalid_credentials", {"reason": "bad signature"})
            if not ts.isdigit() or abs(int(ts) - self.clock() // 1_000_000) > 60_000:
                raise RpcError(13004, "invalid_credentials", {"reason": "timestamp out of range"})
            return acct
        raise RpcError(13009, "unauthorized", {"reason": f"unknown scheme {scheme}"})

    # -- faults and state ---------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "sessions": [
                {
                    "id": s.id,
                    "account": s.account.client_id if s.account else None,
                    "channels": len(s.wanted) + len(s.private),
                }
                for s in self.sessions.values()
            ],
            "orders": {oid: o.state for oid, o in self.orders.items()},
            "requests": self.requests,
        }

    # -- methods ------------------------------------------------------------------------------
    def call(
        self,
        method: str,
        params: dict[str, Any],
        *,
        session: _Session | None = None,
        account: _Account | None = None,
        after: list[bytes] | None = None,
    ) -> Any:
        """Answer one JSON-RPC method (WebSocket or HTTP). Raises `RpcError`."""
        self.requests += 1
        self.method_counts[method] += 1
        if self.probe is not None and method in ("private/buy", "private/sell") and "label" in params:
            self.arrived_at[str(params["label"])] = time.perf_counter()
        if self.faults.take_rate_limit():
            raise RpcError(10028, "too_many_requests")
        if session is not None:
            account = session.account
            token = params.get("access_token")
            if account is None and isinstance(token, str):
                account = self.tokens.get(token)
        after = after if after is not None else []
        if method.startswith("private/"):
            if account is None:
                raise RpcError(13009, "unauthorized", {"reason": "authorization required"})
            if method in _MATCHING:
                limiter = account.limiter
                assert limiter is not None
                if not limiter.try_acquire(1):
                    raise RpcError(10028, "too_many_requests")
        handler = _METHODS.get(method)
        if handler is None:
            raise RpcError(-32601, "Method not found", {"method": method})
        return handler(self, params, session, account, after)

    def _public_auth(self, p: dict[str, Any], session: _Session | None, _: Any, after: list[bytes]) -> Any:
        grant = p.get("grant_type")
        account: _Account | None
        if grant == "client_credentials":
            account = self.accounts.get(str(p.get("client_id")))
            if account is None or not hmac.compare_digest(account.secret, str(p.get("client_secret", ""))):
                raise RpcError(13004, "invalid_credentials")
        elif grant == "client_signature":
            account = self.accounts.get(str(p.get("client_id")))
            if account is None:
                raise RpcError(13004, "invalid_credentials")
            ts = p.get("timestamp")
            if not isinstance(ts, int) or abs(ts - self.clock() // 1_000_000) > 60_000:
                raise RpcError(13004, "invalid_credentials", {"reason": "timestamp out of range"})
            message = f"{ts}\n{p.get('nonce', '')}\n{p.get('data', '')}".encode()
            expected = hmac.new(account.secret.encode(), message, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, str(p.get("signature", ""))):
                raise RpcError(13004, "invalid_credentials", {"reason": "bad signature"})
        elif grant == "refresh_token":
            account = self.refresh_tokens.pop(str(p.get("refresh_token")), None)
            if account is None:
                raise RpcError(13009, "unauthorized", {"reason": "invalid refresh token"})
        else:
            raise RpcError(-32602, "Invalid params", {"param": "grant_type"})
        token, refresh = secrets.token_hex(24), secrets.token_hex(24)
        self.tokens[token] = account
        self.refresh_tokens[refresh] = account
        if session is not None:
            session.account = account
        return {
            "access_token": token,
            "expires_in": 900,
            "refresh_token": refresh,
            "scope": "connection mainaccount trade:read_write",
            "enabled_features": [],
            "token_type": "bearer",
        }

    def _set_heartbeat(self, p: dict[str, Any], session: _Session | None, *_: Any) -> Any:
        interval = p.get("interval")
        if session is None:
            raise RpcError(10030, "must_be_websocket_request")
        if not isinstance(interval, int | float) or interval < 10:
            raise RpcError(-32602, "Invalid params", {"param": "interval", "reason": "must be >= 10"})
        session.heartbeat_s = float(interval)
        return "ok"

    def _disable_heartbeat(self, p: dict[str, Any], session: _Session | None, *_: Any) -> Any:
        if session is not None:
            session.heartbeat_s = 0.0
        return "ok"

    def _test(self, p: dict[str, Any], session: _Session | None, *_: Any) -> Any:
        if p.get("expected_result") == "exception":
            raise RpcError(11094, "internal_server_error")
        if session is not None:
            session.awaiting_test = False
        return {"version": _VERSION}

    def _known_channel(self, channel: str, account: _Account | None) -> str | None:
        """The feed channel (at 100ms) a requested public channel maps to, None if refused."""
        parts = channel.split(".")
        if len(parts) != 3 or parts[0] not in ("ticker", "book", "trades") or parts[2] not in _INTERVALS:
            return None
        if self.registry.get(VENUE, parts[1]) is None:
            return None
        if parts[2] == "raw" and account is None:
            return None  # §1.4: raw intervals need an authenticated connection
        return _with_interval(channel, "100ms")

    def _subscribe(
        self, p: dict[str, Any], session: _Session | None, account: _Account | None, after: list[bytes]
    ) -> Any:
        if session is None:
            raise RpcError(10030, "must_be_websocket_request")
        channels = p.get("channels")
        if not isinstance(channels, list):
            raise RpcError(-32602, "Invalid params", {"param": "channels"})
        granted: list[str] = []
        for channel in channels:
            if not isinstance(channel, str):
                continue
            if channel.startswith("user."):
                parts = channel.split(".")
                if account is not None and len(parts) in (4, 5) and parts[1] in ("orders", "trades"):
                    session.private.add(channel)
                    granted.append(channel)
                continue
            feed = self._known_channel(channel, account)
            if feed is None:
                continue
            session.wanted[feed] = channel
            granted.append(channel)
            if channel.startswith("book."):
                after.append(self._snapshot(channel))
        return granted

    def _snapshot(self, channel: str) -> bytes:
        inst = channel.split(".")[1]
        book = self.decoder.book(inst)
        bids = [] if book is None else [["new", book.price_of(t), s] for t, s in book.iter_bids()]
        asks = [] if book is None else [["new", book.price_of(t), s] for t, s in book.iter_asks()]
        data = {
            "type": "snapshot",
            "timestamp": self.clock() // 1_000_000,
            "instrument_name": inst,
            "change_id": 0 if book is None else book.sequence,
            "bids": bids,
            "asks": asks,
        }
        return orjson.dumps(
            {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}}
        )

    def _unsubscribe(self, p: dict[str, Any], session: _Session | None, *_: Any) -> Any:
        if session is None:
            raise RpcError(10030, "must_be_websocket_request")
        removed = []
        for channel in p.get("channels") or []:
            if channel in session.private:
                session.private.discard(channel)
                removed.append(channel)
                continue
            for feed, requested in list(session.wanted.items()):
                if requested == channel:
                    del session.wanted[feed]
                    removed.append(channel)
        return removed

    def _unsubscribe_all(self, p: dict[str, Any], session: _Session | None, *_: Any) -> Any:
        if session is not None:
            session.wanted.clear()
            session.private.clear()
        return "ok"

    def _get_instruments(self, p: dict[str, Any], *_: Any) -> Any:
        currency = p.get("currency", "any")
        kind = p.get("kind")
        return [
            item
            for item in self.instrument_items
            if currency in (None, "any", item["base_currency"]) and (kind is None or item["kind"] == kind)
        ]

    def _get_instrument(self, p: dict[str, Any], *_: Any) -> Any:
        for item in self.instrument_items:
            if item["instrument_name"] == p.get("instrument_name"):
                return item
        raise RpcError(10020, "invalid_or_unsupported_instrument")

    def _get_currencies(self, *_: Any) -> Any:
        names = {"BTC": "Bitcoin", "ETH": "Ethereum"}
        return [
            {
                "currency": c,
                "currency_long": n,
                "coin_type": n.upper(),
                "fee_precision": 4,
                "min_confirmations": 1,
                "min_withdrawal_fee": 0.0001,
                "withdrawal_fee": 0.0001,
                "withdrawal_priorities": [],
            }
            for c, n in names.items()
        ]

    def _require_instrument(self, name: Any) -> str:
        if not isinstance(name, str) or self.registry.get(VENUE, name) is None:
            raise RpcError(10020, "invalid_or_unsupported_instrument", {"param": "instrument_name"})
        return name

    def _ticker(self, p: dict[str, Any], *_: Any) -> Any:
        inst = self._require_instrument(p.get("instrument_name"))
        return self.tickers.get(inst) or {"instrument_name": inst, "timestamp": self.clock() // 1_000_000}

    def _get_order_book(self, p: dict[str, Any], *_: Any) -> Any:
        inst = self._require_instrument(p.get("instrument_name"))
        depth = int(p.get("depth") or 20)
        book = self.decoder.book(inst)
        bids, asks = ([], []) if book is None else book.depth(depth)
        ticker = self.tickers.get(inst, {})
        return {
            **{k: v for k, v in ticker.items() if k not in ("bids", "asks")},
            "instrument_name": inst,
            "timestamp": self.clock() // 1_000_000,
            "change_id": None if book is None else book.sequence,
            "bids": [list(level) for level in bids],
            "asks": [list(level) for level in asks],
            "state": "open",
        }

    def _get_time(self, *_: Any) -> Any:
        return self.clock() // 1_000_000

    def _last_trades(self, p: dict[str, Any], *_: Any) -> Any:
        inst = self._require_instrument(p.get("instrument_name"))
        count = int(p.get("count") or 10)
        return {"trades": self.trades.get(inst, [])[-count:], "has_more": False}

    # -- orders -------------------------------------------------------------------------------
    def _order_json(self, o: _SimOrder) -> dict[str, Any]:
        req = o.order.request
        return {
            "order_id": o.order_id,
            "label": o.label,
            "instrument_name": req.instrument,
            "direction": req.side.value,
            "price": _num(o.order.price) if o.order.price is not None else "market_price",
            "amount": _num(o.order.size),
            "filled_amount": _num(o.filled),
            "average_price": _num(o.average),
            "order_state": o.state,
            "order_type": req.type.value,
            "time_in_force": {
                "gtc": "good_til_cancelled",
                "ioc": "immediate_or_cancel",
                "fok": "fill_or_kill",
            }.get(req.time_in_force.value, "good_til_cancelled"),
            "post_only": req.post_only,
            "reduce_only": req.reduce_only,
            "creation_timestamp": o.created_ms,
            "last_update_timestamp": o.updated_ms,
            "replaced": o.replaced,
            "api": True,
            "web": False,
            "is_liquidation": False,
            "max_show": _num(o.order.size),
            **({"cancel_reason": o.cancel_reason} if o.cancel_reason else {}),
        }

    def _trade_json(self, o: _SimOrder, f: Fill) -> dict[str, Any]:
        ticker = self.tickers.get(f.instrument, {})
        return {
            "trade_id": f.trade_id,
            "trade_seq": next(self._trade_seq),
            "order_id": o.order_id,
            "label": o.label,
            "instrument_name": f.instrument,
            "direction": f.side.value,
            "price": _num(f.price),
            "amount": _num(f.size),
            "fee": _num(f.fee),
            "fee_currency": f.fee_currency,
            "liquidity": "M" if f.liquidity.value == "maker" else "T",
            "timestamp": (f.ts_exchange or self.clock()) // 1_000_000,
            "state": "filled",
            "order_type": o.order.request.type.value,
            "post_only": o.order.request.post_only,
            "reduce_only": o.order.request.reduce_only,
            "matching_id": None,
            "tick_direction": 0,
            "index_price": ticker.get("index_price"),
            "mark_price": ticker.get("mark_price"),
        }

    def _apply(self, events: list[PrivateEvent]) -> tuple[list[_SimOrder], list[dict[str, Any]]]:
        """Fold matching-engine events into the orders and accounts; notify the owners."""
        touched: list[_SimOrder] = []
        trades: list[dict[str, Any]] = []
        now_ms = self.clock() // 1_000_000
        for ev in events:  # name new orders first: their fills (listed before the state) carry the id
            o = self._by_key.get(ev.client_order_id or "")
            if o is not None and isinstance(ev, OrderUpdate) and not o.order_id and ev.order_id:
                o.order_id = ev.order_id
                self.orders[o.order_id] = o
                o.account.orders[o.order_id] = o
        for ev in events:
            o = self._by_key.get(ev.client_order_id or "")
            if o is None:
                continue
            if isinstance(ev, Fill):
                acct = o.account
                signed = ev.size if ev.side.value == "buy" else -ev.size
                acct.positions[ev.instrument] = acct.positions.get(ev.instrument, Decimal(0)) + signed
                acct.balances[ev.fee_currency] = acct.balances.get(ev.fee_currency, 0.0) - float(ev.fee)
                trades.append(self._trade_json(o, ev))
                acct.trades.append(trades[-1])
                self._notify(o.account, "trades", ev.instrument, [trades[-1]])
            elif isinstance(ev, OrderUpdate):
                if not o.order_id and ev.order_id:
                    o.order_id = ev.order_id
                    self.orders[o.order_id] = o
                    o.account.orders[o.order_id] = o
                o.filled = ev.filled_size
                o.average = ev.avg_fill_price or Decimal(0)
                o.state = {
                    OrderState.OPEN: "open",
                    OrderState.PARTIALLY_FILLED: "open",
                    OrderState.FILLED: "filled",
                    OrderState.CANCELLED: "cancelled",
                    OrderState.EXPIRED: "cancelled",
                    OrderState.REJECTED: "rejected",
                }.get(ev.status, o.state)
                o.cancel_reason = (
                    ev.reason if ev.status in (OrderState.CANCELLED, OrderState.EXPIRED) else o.cancel_reason
                )
                o.updated_ms = now_ms
                if o not in touched:
                    touched.append(o)
        for o in touched:
            self._notify(o.account, "orders", o.order.request.instrument, self._order_json(o))
        return touched, trades

    def _notify(self, account: _Account, what: str, instrument: str, data: Any) -> None:
        inst = self.registry.get(VENUE, instrument)
        kind = "option" if inst is not None and inst.kind is InstrumentKind.OPTION else "future"
        base = inst.base if inst is not None else "any"
        for session in list(self.sessions.values()):
            if session.account is not account:
                continue
            for channel in session.private:
                parts = channel.split(".")
                if parts[1] != what:
                    continue
                scope = parts[2:-1]
                if scope in ([instrument], ["any", "any"], [kind, "any"], ["any", base], [kind, base]):
                    interval = parts[-1]
                    payload = data if (what == "trades" or interval == "raw") else [data]
                    if what == "trades" and not isinstance(payload, list):
                        payload = [payload]
                    self.send(
                        session,
                        orjson.dumps(
                            {
                                "jsonrpc": "2.0",
                                "method": "subscription",
                                "params": {"channel": channel, "data": payload},
                            }
                        ),
                    )

    def _new_order(self, side: str, p: dict[str, Any], account: _Account | None) -> Any:
        assert account is not None
        refusal = self.faults.take_reject()
        if refusal is not None:
            raise RpcError(int(refusal[0]), refusal[1])
        inst_name = self._require_instrument(p.get("instrument_name"))
        inst = self.registry.get(VENUE, inst_name)
        assert inst is not None
        amount = p.get("amount")
        if amount is None and p.get("contracts") is not None:
            amount = float(p["contracts"]) * float(inst.contract_size)
        if not isinstance(amount, int | float) or amount <= 0:
            raise RpcError(10021, "invalid_amount", {"param": "amount"})
        size = Decimal(repr(float(amount))) if isinstance(amount, float) else Decimal(amount)
        if size % inst.min_size != 0:
            raise RpcError(10027, "non_integer_contract_amount" if not inst.is_option else "invalid_amount")
        order_type = p.get("type", "limit")
        if order_type not in ("limit", "market"):
            raise RpcError(
                11029,
                "invalid_arguments",
                {"param": "type", "reason": "the simulator takes limit and market"},
            )
        price: Decimal | None = None
        if order_type == "limit":
            raw_price = p.get("price")
            if not isinstance(raw_price, int | float) or raw_price <= 0:
                raise RpcError(10023, "invalid_price", {"param": "price"})
            price = Decimal(repr(float(raw_price))) if isinstance(raw_price, float) else Decimal(raw_price)
            if price % inst.tick_for(price) != 0:
                raise RpcError(10043, "price_wrong_tick")
        tif = {
            "good_til_cancelled": "gtc",
            "good_til_day": "gtc",
            "immediate_or_cancel": "ioc",
            "fill_or_kill": "fok",
        }.get(str(p.get("time_in_force", "good_til_cancelled")))
        if tif is None:
            raise RpcError(-32602, "Invalid params", {"param": "time_in_force"})
        key = f"{account.client_id}:{next(self._order_keys)}"
        try:
            request = OrderRequest(
                venue=VENUE,
                instrument=inst_name,
                side=side,
                size=size,
                price=price,
                time_in_force=tif,
                post_only=bool(p.get("post_only", False)) and order_type == "limit",
                reduce_only=bool(p.get("reduce_only", False)),
                client_order_id=key,
            )
        except (ValueError, TypeError) as exc:
            raise RpcError(11029, "invalid_arguments", {"reason": str(exc)}) from None
        label = str(p.get("label") or "")
        now_ms = self.clock() // 1_000_000
        sim_order = _SimOrder(
            Order(request, now_ns=self.clock()), account, label, created_ms=now_ms, updated_ms=now_ms
        )
        self._by_key[key] = sim_order
        own = None
        if self.self_trading:

            def own(resting: Order) -> bool:
                mine = self._by_key.get(resting.client_order_id)
                return mine is not None and mine.account is account

        events = self.matching.submit(sim_order.order, self.clock(), own=own)
        first = next((e for e in events if isinstance(e, OrderUpdate)), None)
        if first is not None and first.status is OrderState.REJECTED:
            self._by_key.pop(key, None)
            if first.reason == "post_only_reject":
                raise RpcError(11054, "post_only_reject")
            raise RpcError(10001, "error", {"reason": first.reason})
        _, trades = self._apply(list(events))
        # This order's trades (a self-trade's other side is the resting order's, told by notification).
        trades = [t for t in trades if t["order_id"] == sim_order.order_id]
        return {"order": self._order_json(sim_order), "trades": trades}

    def _buy(self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]) -> Any:
        return self._new_order("buy", p, a)

    def _sell(self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]) -> Any:
        return self._new_order("sell", p, a)

    def _own(self, account: _Account | None, order_id: Any) -> _SimOrder:
        o = self.orders.get(str(order_id))
        if o is None or o.account is not account:
            raise RpcError(10004, "order_not_found", {"param": "order_id"})
        return o

    def _cancel(self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]) -> Any:
        o = self._own(a, p.get("order_id"))
        if o.state != "open":
            raise RpcError(11044, "not_open_order")
        try:
            events = self.matching.cancel(o.order, self.clock())
        except OrderRejected:
            raise RpcError(11044, "not_open_order") from None
        self._apply(list(events))
        return self._order_json(o)

    def _edit(self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]) -> Any:
        o = self._own(a, p.get("order_id"))
        if o.state != "open":
            raise RpcError(11044, "not_open_order")
        inst = self.registry.get(VENUE, o.order.request.instrument)
        assert inst is not None
        price = p.get("price")
        amount = p.get("amount")
        new_price = Decimal(repr(float(price))) if isinstance(price, int | float) else None
        new_size = Decimal(repr(float(amount))) if isinstance(amount, int | float) else None
        if new_price is not None and new_price % inst.tick_for(new_price) != 0:
            raise RpcError(10043, "price_wrong_tick")
        if new_size is not None and (new_size <= 0 or new_size % inst.min_size != 0):
            raise RpcError(10021, "invalid_amount")
        try:
            events = self.matching.edit(o.order, self.clock(), price=new_price, size=new_size)
        except OrderRejected as exc:
            raise RpcError(
                10021 if exc.code == "invalid_amount" else 11044, str(exc.venue_message or exc)
            ) from None
        if new_price is not None:
            o.order.price = new_price
        if new_size is not None:
            o.order.size = new_size
        o.replaced = True
        _, trades = self._apply(list(events))
        return {"order": self._order_json(o), "trades": trades}

    def _cancel_many(self, account: _Account | None, pick: Callable[[_SimOrder], bool]) -> int:
        assert account is not None
        count = 0
        for o in list(account.orders.values()):
            if o.state == "open" and pick(o):
                try:
                    self._apply(list(self.matching.cancel(o.order, self.clock())))
                    count += 1
                except OrderRejected:
                    continue
        return count

    def _cancel_all(
        self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]
    ) -> Any:
        return self._cancel_many(a, lambda o: True)

    def _cancel_all_by_instrument(
        self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]
    ) -> Any:
        inst = self._require_instrument(p.get("instrument_name"))
        return self._cancel_many(a, lambda o: o.order.request.instrument == inst)

    def _cancel_by_label(
        self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]
    ) -> Any:
        label = str(p.get("label", ""))
        return self._cancel_many(a, lambda o: o.label == label)

    def _open_orders_by_currency(
        self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]
    ) -> Any:
        assert a is not None
        currency = p.get("currency")
        out = []
        for o in a.orders.values():
            inst = self.registry.get(VENUE, o.order.request.instrument)
            if o.state == "open" and inst is not None and currency in (None, "any", inst.base):
                out.append(self._order_json(o))
        return out

    def _open_orders_by_instrument(
        self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]
    ) -> Any:
        assert a is not None
        name = p.get("instrument_name")
        return [
            self._order_json(o)
            for o in a.orders.values()
            if o.state == "open" and o.order.request.instrument == name
        ]

    def _order_state(
        self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]
    ) -> Any:
        return self._order_json(self._own(a, p.get("order_id")))

    def _base_of(self, instrument: str) -> str | None:
        inst = self.registry.get(VENUE, instrument)
        return None if inst is None else inst.base

    def _order_state_by_label(
        self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]
    ) -> Any:
        """Recent orders (open or not) with a label, in one currency."""
        assert a is not None
        label, currency = p.get("label"), p.get("currency")
        return [
            self._order_json(o)
            for o in a.orders.values()
            if o.label == label and self._base_of(o.order.request.instrument) == currency
        ]

    def _user_trades_by_currency_and_time(
        self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]
    ) -> Any:
        """The account's trades in one currency within [start, end] (ms), oldest first unless
        `sorting = "desc"`, at most `count` (default 10, max 1000) with `has_more`."""
        assert a is not None
        currency = p.get("currency")
        start = int(p.get("start_timestamp", 0))
        end = int(p.get("end_timestamp", 2**62))
        count = max(1, min(int(p.get("count", 10)), 1000))
        found = [
            t
            for t in a.trades
            if start <= t["timestamp"] <= end and self._base_of(t["instrument_name"]) == currency
        ]
        if p.get("sorting") == "desc":
            found.reverse()
        return {"trades": found[:count], "has_more": len(found) > count}

    def _account_summary(
        self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]
    ) -> Any:
        assert a is not None
        currency = str(p.get("currency", "BTC"))
        balance = a.balances.get(currency, 0.0)
        return {
            "currency": currency,
            "balance": balance,
            "equity": balance,
            "available_funds": balance,
            "available_withdrawal_funds": balance,
            "margin_balance": balance,
            "initial_margin": 0.0,
            "maintenance_margin": 0.0,
            "session_upl": 0.0,
            "session_rpl": 0.0,
            "total_pl": 0.0,
            "delta_total": 0.0,
            "fee_balance": 0.0,
            "margin_model": "segregated_sm",
        }

    def _account_summaries(
        self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]
    ) -> Any:
        assert a is not None
        return {
            "summaries": [self._account_summary({"currency": c}, s, a, after) for c in sorted(a.balances)],
            "id": 1,
            "email": f"{a.client_id}@simulator.local",
            "username": a.client_id,
        }

    def _positions(
        self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]
    ) -> Any:
        assert a is not None
        out = []
        for name, size in sorted(a.positions.items()):
            inst = self.registry.get(VENUE, name)
            if size == 0 or inst is None or p.get("currency") not in (None, "any", inst.base):
                continue
            ticker = self.tickers.get(name, {})
            out.append(
                {
                    "instrument_name": name,
                    "size": float(size),
                    "direction": "buy" if size > 0 else "sell",
                    "kind": "option" if inst.is_option else "future",
                    "mark_price": ticker.get("mark_price"),
                    "index_price": ticker.get("index_price"),
                }
            )
        return out

    # -- expiries and funding (what the venue does at 08:00 UTC; the tests say when) -------------
    def deliver(self, instrument: str, delivery_index: float, *, ts_ms: int | None = None) -> float:
        """Deliver an expired instrument at `delivery_index` (the index's delivery price) and
        return its delivery price in its quote currency: a future's is the index; a coin option's
        is its value in the coin, `max(0, S - K) / S` for a call and `max(0, K - S) / S` for a put
        (Deribit "Options explained": a 300 call delivered at 400 USD is worth 100 USD, "0.25BTC
        at the price of 400 dollar"). Every account's position in it is closed and recorded as a
        `delivery` (`private/get_settlement_history_by_currency`), and the instrument's public
        delivery record is kept (`public/get_last_settlements_by_instrument`)."""
        inst = self.registry.get(VENUE, instrument)
        if inst is None or inst.expiry_ns is None:
            raise ValueError(f"{instrument}: not an instrument that expires")
        ts = self.clock() // 1_000_000 if ts_ms is None else ts_ms
        s = delivery_index
        if inst.is_option:
            k = float(inst.strike or 0)
            intrinsic = max(0.0, s - k) if inst.right is OptionRight.CALL else max(0.0, k - s)
            price = intrinsic / s
        else:
            price = s
        record = {
            "type": "delivery",
            "timestamp": ts,
            "instrument_name": instrument,
            "mark_price": price,
            "index_price": s,
            "position": 0.0,
            "profit_loss": 0.0,
            "session_profit_loss": 0.0,
        }
        for acct in self.accounts.values():
            held = acct.positions.pop(instrument, Decimal(0))
            if held:
                acct.settlements.append({**record, "position": float(held)})
        self.deliveries_made.append(record)
        return price

    def pay_funding(self, instrument: str, rate: float, *, ts_ms: int | None = None) -> dict[str, float]:
        """A settlement of a perpetual: each account holding it gets its funding for the period,
        `funding rate x position size` with the size in the coin, in the settlement currency
        (USDC for a linear perpetual: times the mark) (Deribit "Funding
        specifications"; positive rate: longs pay shorts), and the settlement is recorded with
        its `funding` (`private/get_settlement_history_by_currency`, `type = settlement`).
        Returns the funding per account (received: positive)."""
        inst = self.registry.get(VENUE, instrument)
        if inst is None:
            raise ValueError(f"{instrument}: unknown")
        ts = self.clock() // 1_000_000 if ts_ms is None else ts_ms
        ticker = self.tickers.get(instrument, {})
        mark = float(ticker.get("mark_price") or 0.0)
        index = float(ticker.get("index_price") or 0.0)
        out: dict[str, float] = {}
        for acct in self.accounts.values():
            held = acct.positions.get(instrument, Decimal(0))
            if not held or not mark:
                continue
            # A USD-sized (inverse) position is `size / mark` coins, paid in the coin; a linear
            # one (BTC_USDC-PERPETUAL) is in the coin and settles in USDC, so its payment is
            # that many coins' worth at the mark, in USDC (Deribit "Funding specifications":
            # rate x position size, in the settlement currency).
            coins = float(held) / mark if inst.inverse else float(held) * float(inst.contract_size)
            funding = -rate * coins if inst.inverse else -rate * coins * mark
            acct.balances[inst.settle] = acct.balances.get(inst.settle, 0.0) + funding
            acct.settlements.append(
                {
                    "type": "settlement",
                    "timestamp": ts,
                    "instrument_name": instrument,
                    "position": float(held),
                    "mark_price": mark,
                    "index_price": index,
                    "profit_loss": 0.0,
                    "session_profit_loss": funding,
                    "funding": funding,
                }
            )
            out[acct.client_id] = funding
        return out

    def _last_settlements_by_instrument(self, p: dict[str, Any], *_: Any) -> Any:
        """`public/get_last_settlements_by_instrument`: the instrument's records, newest first,
        of one `type` when given, at most `count` (default 20)."""
        name = self._require_instrument(p.get("instrument_name"))
        kind = p.get("type")
        found = [r for r in reversed(self.deliveries_made) if r["instrument_name"] == name]
        found = [r for r in found if kind in (None, r["type"])]
        count = max(1, min(int(p.get("count", 20)), 1000))
        return {"settlements": found[:count], "continuation": "none"}

    def _settlement_history_by_currency(
        self, p: dict[str, Any], s: _Session | None, a: _Account | None, after: list[bytes]
    ) -> Any:
        """`private/get_settlement_history_by_currency`: the account's records in one currency,
        newest first, of one `type` when given, none newer than `search_start_timestamp`, at most
        `count` (default 20) a page, the next page by `continuation` ("none" at the end)."""
        assert a is not None
        currency = p.get("currency")
        kind = p.get("type")
        latest = int(p.get("search_start_timestamp", 2**62))
        count = max(1, min(int(p.get("count", 20)), 1000))
        skip = int(p.get("continuation") or 0)
        found = [
            r
            for r in reversed(a.settlements)
            if kind in (None, r["type"])
            and r["timestamp"] <= latest
            and self._base_of(r["instrument_name"]) == currency
        ]
        page = found[skip : skip + count]
        more = skip + count < len(found)
        return {"settlements": page, "continuation": str(skip + count) if more else "none"}


_METHODS: Final[dict[str, Callable[..., Any]]] = {
    "public/auth": DeribitSimulator._public_auth,
    "public/set_heartbeat": DeribitSimulator._set_heartbeat,
    "public/disable_heartbeat": DeribitSimulator._disable_heartbeat,
    "public/test": DeribitSimulator._test,
    "public/subscribe": DeribitSimulator._subscribe,
    "private/subscribe": DeribitSimulator._subscribe,
    "public/unsubscribe": DeribitSimulator._unsubscribe,
    "private/unsubscribe": DeribitSimulator._unsubscribe,
    "public/unsubscribe_all": DeribitSimulator._unsubscribe_all,
    "private/unsubscribe_all": DeribitSimulator._unsubscribe_all,
    "public/get_instruments": DeribitSimulator._get_instruments,
    "public/get_instrument": DeribitSimulator._get_instrument,
    "public/get_currencies": DeribitSimulator._get_currencies,
    "public/ticker": DeribitSimulator._ticker,
    "public/get_order_book": DeribitSimulator._get_order_book,
    "public/get_time": DeribitSimulator._get_time,
    "public/get_last_trades_by_instrument": DeribitSimulator._last_trades,
    "private/buy": DeribitSimulator._buy,
    "private/sell": DeribitSimulator._sell,
    "private/edit": DeribitSimulator._edit,
    "private/cancel": DeribitSimulator._cancel,
    "private/cancel_all": DeribitSimulator._cancel_all,
    "private/cancel_all_by_instrument": DeribitSimulator._cancel_all_by_instrument,
    "private/cancel_by_label": DeribitSimulator._cancel_by_label,
    "private/get_open_orders_by_currency": DeribitSimulator._open_orders_by_currency,
    "private/get_open_orders_by_instrument": DeribitSimulator._open_orders_by_instrument,
    "private/get_order_state": DeribitSimulator._order_state,
    "private/get_order_state_by_label": DeribitSimulator._order_state_by_label,
    "private/get_user_trades_by_currency_and_time": DeribitSimulator._user_trades_by_currency_and_time,
    "private/get_account_summary": DeribitSimulator._account_summary,
    "private/get_account_summaries": DeribitSimulator._account_summaries,
    "private/get_positions": DeribitSimulator._positions,
    "public/get_last_settlements_by_instrument": DeribitSimulator._last_settlements_by_instrument,
    "private/get_settlement_history_by_currency": DeribitSimulator._settlement_history_by_currency,
    **public_methods.METHODS,  # hello, status, get_index_price, get_book_summary_by_currency
}
